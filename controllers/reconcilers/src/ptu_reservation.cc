#include "waterline/reconcilers/ptu_reservation.h"

#include <algorithm>
#include <cmath>

#include "waterline/api/capacity_pool.h"
#include "waterline/api/keys.h"
#include "waterline/api/model_deployment.h"
#include "waterline/api/ptu_reservation.h"
#include "waterline/common/log.h"
#include "waterline/planners/ptu_admission.h"

namespace waterline::reconcilers {

using runtime::ReconcileError;
using runtime::Result;

int32_t reservedGpusInPool(const std::vector<std::shared_ptr<const kube::Json>>& reservations,
                           const std::string& pool) {
  double sum = 0;
  for (const auto& r : reservations) {
    if (!r->contains("status") || (*r)["status"].value("phase", "") != "Active") continue;
    const auto& st = (*r)["status"];
    if (!st.contains("placements") || !st["placements"].is_array()) continue;
    for (const auto& p : st["placements"])
      if (p.value("pool", "") == pool && p.contains("gpus") && p["gpus"].is_number()) sum += p["gpus"].get<double>();
  }
  return int32_t(std::ceil(sum - 1e-9));
}

namespace {

kube::Json statusApplyObject(const api::PTUReservation& r, const api::PTUReservationStatus& st) {
  return {{"apiVersion", kube::kinds::PTUReservation.apiVersion()},
          {"kind", "PTUReservation"},
          {"metadata", {{"name", r.metadata.name}, {"namespace", r.metadata.namespace_}}},
          {"status", api::toJson(st)}};
}

kube::Json finalizersPatch(const api::PTUReservation& r, std::vector<std::string> finalizers) {
  return {{"metadata", {{"resourceVersion", r.metadata.resourceVersion}, {"finalizers", finalizers}}}};
}

}  // namespace

runtime::ReconcileResult PtuReservationReconciler::reconcile(const runtime::Request& req) {
  const auto lg = log::logger("ptureservation");
  auto obj = d_.reservations->store().get(req.key());
  if (!obj) return Result::done();
  auto r = api::PTUReservation::fromJson(*obj);
  if (!r) {
    d_.recorder->event(*obj, "Warning", std::string(api::reasons::kInvalidSpec), r.error());
    return Result::done();
  }
  const std::string fin(api::kFinalizer);
  if (r->metadata.deletionTimestamp) {
    // Its capacity is released as soon as it is being deleted (admission skips it): let it go.
    if (!r->metadata.hasFinalizer(fin)) return Result::done();
    std::vector<std::string> rest;
    for (const auto& f : r->metadata.finalizers)
      if (f != fin) rest.push_back(f);
    auto p = d_.client->patch(kube::kinds::PTUReservation, req.ns, req.name, kube::PatchType::Merge,
                              finalizersPatch(*r, rest).dump(), {std::string(api::kFieldManager), false, ""});
    if (!p && !p.error().isNotFound()) return std::unexpected(ReconcileError{"remove finalizer: " + p.error().describe()});
    d_.recorder->event(*obj, "Normal", "Released", "reservation deleted; its capacity is released");
    return Result::done();
  }
  if (!r->metadata.hasFinalizer(fin)) {
    auto f = r->metadata.finalizers;
    f.push_back(fin);
    auto p = d_.client->patch(kube::kinds::PTUReservation, req.ns, req.name, kube::PatchType::Merge,
                              finalizersPatch(*r, f).dump(), {std::string(api::kFieldManager), false, ""});
    if (!p) {
      if (p.error().isNotFound()) return Result::done();
      return std::unexpected(ReconcileError{"add finalizer: " + p.error().describe()});
    }
  }

  const SystemTime now = d_.time->systemTime();
  planners::PtuAdmissionInput in;
  in.now = now;
  for (const auto& p : d_.pools->store().list())
    if (auto pool = api::CapacityPool::fromJson(*p)) in.pools.push_back(std::move(*pool));
  for (const auto& o : d_.reservations->store().list())
    if (auto x = api::PTUReservation::fromJson(*o)) in.reservations.push_back(std::move(*x));
  for (const auto& o : d_.deployments->store().list())
    if (auto md = api::ModelDeployment::fromJson(*o)) in.deployments[md->metadata.key()] = std::move(*md);
  auto plan = planners::planPtuAdmission(in);
  auto it = plan.byReservation.find(req.key());
  if (it == plan.byReservation.end()) return Result::done();
  const auto& a = it->second;
  auto st = planners::planPtuStatus(*r, a, now);

  if (!(st == r->status)) {
    kube::PatchOptions po{std::string(api::kFieldManager), true, "status"};
    auto w = d_.client->apply(kube::kinds::PTUReservation, req.ns, statusApplyObject(*r, st), po);
    if (!w) {
      if (w.error().isNotFound()) return Result::done();
      return std::unexpected(ReconcileError{"apply status: " + w.error().describe()});
    }
  }
  const auto* before = api::findCondition(r->status.conditions, api::conditions::kReady);
  if (r->status.phase != st.phase || !before || before->reason != a.reason) {
    const bool warn = st.phase == api::ReservationPhase::Insufficient;
    d_.recorder->event(*obj, warn ? "Warning" : "Normal", a.reason,
                       std::string(api::toString(*st.phase)) + ": " + a.message);
    lg.info("reservation phase", {{"reservation", req.key()}, {"phase", std::string(api::toString(*st.phase))},
                                  {"reason", a.reason}});
  }

  // Requeue at the next time boundary, and every minute while Active (accrual).
  std::optional<Duration> after;
  if (a.nextChange && *a.nextChange > now) after = *a.nextChange - now;
  if (st.phase == api::ReservationPhase::Active) {
    const Duration minute = std::chrono::seconds(60);
    after = after ? std::min(*after, minute) : minute;
  }
  if (after) return Result::after(*after + std::chrono::milliseconds(50));
  return Result::done();
}

namespace {

std::vector<runtime::Request> allReservations(const cache::InformerPtr& ptus) {
  std::vector<runtime::Request> out;
  for (const auto& o : ptus->store().list()) out.push_back({runtime::namespaceOf(*o), runtime::nameOf(*o)});
  return out;
}

kube::Json capacityPart(const kube::Json& pool) {
  kube::Json out = kube::Json::object();
  if (pool.contains("spec")) out["spec"] = pool["spec"];
  if (pool.contains("status") && pool["status"].contains("gpus") && pool["status"]["gpus"].contains("allocatable"))
    out["allocatable"] = pool["status"]["gpus"]["allocatable"];
  return out;
}

}  // namespace

runtime::ControllerPtr newPtuReservationController(PtuReservationDeps deps, runtime::ControllerOptions opts) {
  auto ptus = deps.reservations;
  auto c = std::make_unique<runtime::Controller>("ptureservation", std::make_unique<PtuReservationReconciler>(deps),
                                                 std::move(opts));
  c->watchFor(ptus, {runtime::metadataOrGenerationChangedPredicate()});
  // Another reservation released or took capacity: the others are re-admitted.
  runtime::Predicate released{
      [](const kube::Json&) { return false; },
      [](const kube::Json& o, const kube::Json& n) {
        auto phase = [](const kube::Json& j) { return j.contains("status") ? j["status"].value("phase", "") : ""; };
        auto deleting = [](const kube::Json& j) { return j.contains("metadata") && j["metadata"].contains("deletionTimestamp"); };
        return phase(o) != phase(n) || deleting(o) != deleting(n);
      },
      [](const kube::Json&) { return true; }};
  c->watchMapped(ptus, [ptus](const kube::Json&) { return allReservations(ptus); }, {released});
  // Capacity changed.
  runtime::Predicate capacity{[](const kube::Json&) { return true; },
                              [](const kube::Json& o, const kube::Json& n) { return capacityPart(o) != capacityPart(n); },
                              [](const kube::Json&) { return true; }};
  c->watchMapped(deps.pools, [ptus](const kube::Json&) { return allReservations(ptus); }, {capacity});
  // The deployment appeared, went away or changed (throughput, GPU shape, type).
  c->watchMapped(deps.deployments, [ptus](const kube::Json& md) {
    std::vector<runtime::Request> out;
    const std::string ns = runtime::namespaceOf(md), name = runtime::nameOf(md);
    for (const auto& o : ptus->store().list())
      if (runtime::namespaceOf(*o) == ns && o->contains("spec") && (*o)["spec"].contains("deploymentRef") &&
          (*o)["spec"]["deploymentRef"].value("name", "") == name)
        out.push_back({ns, runtime::nameOf(*o)});
    return out;
  }, {runtime::generationChangedPredicate()});
  return c;
}

}  // namespace waterline::reconcilers
