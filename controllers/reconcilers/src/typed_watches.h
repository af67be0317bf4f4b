#pragma once
// Typed predicates and map functions for the reconcilers' watches on the operator's own
// kinds (ModelDeployment, PTUReservation, CapacityPool): they compare the decoded api
// values (CRD defaults applied, so an absent field equals its default) rather than raw
// JSON. Pods and nodes stay on JSON (or planners::NodeView): their events are many, and
// no decoding is added to them.
#include <functional>
#include <vector>

#include "waterline/api/ptu_reservation.h"
#include "waterline/runtime/controller.h"
#include "waterline/runtime/objects.h"

namespace waterline::reconcilers::watches {

// Creates and deletes pass; an update passes when `changed(old, new)`, or when either
// side does not decode (see runtime::typedUpdatePredicate).
template <class T>
runtime::Predicate onUpdate(std::function<bool(const T& oldObj, const T& newObj)> changed) {
  return runtime::typedUpdatePredicate<T>(&T::fromJson, std::move(changed));
}

// A map function over the decoded T; an object that does not decode maps to nothing.
template <class T>
runtime::MapFunc mapTyped(std::function<std::vector<runtime::Request>(const T&)> map) {
  return runtime::typedMap<T>(&T::fromJson, std::move(map));
}

// The reservation's deployment (spec.deploymentRef, in its namespace); none when unnamed.
inline std::vector<runtime::Request> reservedDeployment(const api::PTUReservation& r) {
  if (r.spec.deploymentRef.name.empty()) return {};
  return {{r.metadata.namespace_, r.spec.deploymentRef.name}};
}

inline bool deleting(const api::ObjectMeta& m) { return m.deletionTimestamp.has_value(); }

}  // namespace waterline::reconcilers::watches
