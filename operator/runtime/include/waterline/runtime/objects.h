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

}  // namespace waterline::runtime
