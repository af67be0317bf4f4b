#pragma once
// Finalizer and owner-reference helpers (controller-runtime's controllerutil), and
// predicates that filter events before they become keys.
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "waterline/kube/client.h"

namespace waterline::runtime {

using kube::Json;

// --- finalizers -----------------------------------------------------------------
bool hasFinalizer(const Json& obj, const std::string& finalizer);
// Returns true when the object changed.
bool addFinalizer(Json& obj, const std::string& finalizer);
bool removeFinalizer(Json& obj, const std::string& finalizer);
bool isBeingDeleted(const Json& obj);
// A JSON merge patch that sets metadata.finalizers to `obj`'s list, guarded by its
// resourceVersion (a stale object gets 409 Conflict rather than dropping someone
// else's finalizer).
std::string finalizersPatch(const Json& obj);

// --- owner references -------------------------------------------------------------
// An ownerReference to `owner` (controller=true, blockOwnerDeletion=true by default).
Json ownerReference(const Json& owner, bool controller = true, bool blockOwnerDeletion = true);
// Sets `owner` as the controller of `obj`. Fails (returns false) if another controller
// already owns it.
bool setControllerReference(const Json& owner, Json& obj);
// The controller ownerReference of `obj`, if any.
std::optional<Json> controllerOf(const Json& obj);
bool isControlledBy(const Json& obj, const Json& owner);

// --- metadata accessors -----------------------------------------------------------
std::string nameOf(const Json& obj);
std::string namespaceOf(const Json& obj);
std::string uidOf(const Json& obj);
int64_t generationOf(const Json& obj);
const Json& labelsOf(const Json& obj);  // empty object when absent

// --- predicates -------------------------------------------------------------------
struct Predicate {
  std::function<bool(const Json&)> create;
  std::function<bool(const Json& oldObj, const Json& newObj)> update;
  std::function<bool(const Json&)> remove;
};
// Passes updates only when metadata.generation changed (skips status-only updates).
// Creates and deletes pass.
Predicate generationChangedPredicate();
// Passes updates when generation, labels, annotations, finalizers or the deletion
// timestamp changed.
Predicate metadataOrGenerationChangedPredicate();
// Passes only objects whose labels match `key=value`.
Predicate labelPredicate(const std::string& key, const std::string& value);

// A predicate over decoded objects. `decode` turns the raw object into a T
// (std::expected<T, E> or std::optional<T>: anything that tests as bool and
// dereferences to T), e.g. `&api::PTUReservation::fromJson`, which applies the CRD's
// defaults, so an absent field and its default compare equal. Creates and deletes
// pass; an update passes when `changed(old, new)` says so, or when either side does
// not decode (the reconciler then reports the bad object, or sees it fixed). Both
// sides are decoded per update: meant for the operator's own kinds, whose updates are
// few, not for pods or nodes.
template <class T, class Decode>
Predicate typedUpdatePredicate(Decode decode, std::function<bool(const T& oldObj, const T& newObj)> changed) {
  return Predicate{nullptr,
                   [decode = std::move(decode), changed = std::move(changed)](const Json& a, const Json& b) {
                     auto o = decode(a);
                     if (!o) return true;
                     auto n = decode(b);
                     if (!n) return true;
                     return changed(*o, *n);
                   },
                   nullptr};
}

}  // namespace waterline::runtime
