#include "waterline/reconcilers/ptu_reservation.h"

#include <algorithm>
#include <cctype>
#include <cmath>

#include "waterline/api/capacity_pool.h"
#include "waterline/api/keys.h"
#include "waterline/api/model_deployment.h"
#include "waterline/api/ptu_reservation.h"
#include "waterline/common/log.h"
#include "waterline/planners/inventory_snapshot.h"
#include "waterline/planners/nodes.h"
#include "waterline/planners/ptu_admission.h"
#include "waterline/planners/ptu_sizing.h"
#include "waterline/planners/reclaim.h"
#include "typed_watches.h"

namespace waterline::reconcilers {

using runtime::ReconcileError;
using runtime::Result;


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
  const auto item = reservations_->item(req.key());
  const auto& obj = item.object;
  if (!obj) return Result::done();
  if (!item.value) {
    d_.recorder->event(*obj, "Warning", std::string(api::reasons::kInvalidSpec), item.error);
    return Result::done();
  }
  const auto& r = item.value;  // decoded once per version (cache/lister.h)
  const std::string fin(api::kFinalizer);
  if (r->metadata.deletionTimestamp) {
    // Its capacity is released as soon as it is being deleted (admission skips it): let it go.
    if (!r->metadata.hasFinalizer(fin)) return Result::done();
    std::vector<std::string> rest;
    for (const auto& f : r->metadata.finalizers)
      if (f != fin) rest.push_back(f);
    auto p = d_.writer->patch(kube::kinds::PTUReservation, req.ns, req.name, kube::PatchType::Merge,
                              finalizersPatch(*r, rest).dump(), {std::string(api::kFieldManager), false, ""});
    if (!p && !p.error().isNotFound()) return std::unexpected(ReconcileError{"remove finalizer: " + p.error().describe()});
    d_.recorder->event(*obj, "Normal", "Released", "reservation deleted; its capacity is released");
    return Result::done();
  }
  if (!r->metadata.hasFinalizer(fin)) {
    auto f = r->metadata.finalizers;
    f.push_back(fin);
    auto p = d_.writer->patch(kube::kinds::PTUReservation, req.ns, req.name, kube::PatchType::Merge,
                              finalizersPatch(*r, f).dump(), {std::string(api::kFieldManager), false, ""});
    if (!p) {
      if (p.error().isNotFound()) return Result::done();
      return std::unexpected(ReconcileError{"add finalizer: " + p.error().describe()});
    }
  }

  const SystemTime now = d_.time->systemTime();
  planners::PtuAdmissionInput in;
  in.now = now;
  for (const auto& p : pools_->list()) in.pools.push_back(*p);
  for (const auto& x : reservations_->list()) in.reservations.push_back(*x);
  for (const auto& md : deployments_->list()) in.deployments[md->metadata.key()] = *md;
  auto plan = planners::planPtuAdmission(in);
  auto it = plan.byReservation.find(req.key());
  if (it == plan.byReservation.end()) return Result::done();
  const auto& a = it->second;
  auto st = planners::planPtuStatus(*r, a, now);
  const std::string deploymentKey = req.ns + "/" + r->spec.deploymentRef.name;
  if (st.phase == api::ReservationPhase::Active) {
    // Observed use: the deployment's weighted tokens/min, shared among its Active
    // reservations by provisioned tokens (unknown load keeps what the status had).
    if (d_.load) {
      if (auto it = in.deployments.find(deploymentKey); it != in.deployments.end()) {
        auto byPool = d_.load(it->second);
        if (!byPool.empty()) {
          double total = 0;
          for (const auto& [_, v] : byPool) total += v;
          int64_t provisioned = 0;
          for (const auto& x : in.reservations) {
            if (x.metadata.namespace_ != req.ns || x.spec.deploymentRef.name != r->spec.deploymentRef.name) continue;
            auto xa = plan.byReservation.find(x.metadata.key());
            if (xa != plan.byReservation.end() && xa->second.phase == api::ReservationPhase::Active)
              provisioned += xa->second.provisionedTokensPerMinute;
          }
          const double share = provisioned > 0 ? double(a.provisionedTokensPerMinute) / double(provisioned) : 1.0;
          st.usedTokensPerMinute = std::max<int64_t>(0, std::llround(total * share));
          st.utilization = planners::ptuUtilization(double(st.usedTokensPerMinute), st.provisionedTokensPerMinute);
        }
      }
    }
    if (d_.routerCounts) {
      if (auto c = d_.routerCounts(req.key())) {
        st.throttledRequests = c->throttled;
        st.spilledRequests = c->spilled;
      }
    }
  }

  // Only accrual moved, and it was written recently: leave it for a later write (the
  // next one accrues from the written lastAccrualTime: nothing is lost or counted twice).
  auto accrualOnly = [&] {
    auto a = st;
    a.unitHoursConsumed = r->status.unitHoursConsumed;
    a.lastAccrualTime = r->status.lastAccrualTime;
    return a == r->status;
  };
  const bool deferAccrual = !(st == r->status) && accrualOnly() && r->status.lastAccrualTime &&
                            now - *r->status.lastAccrualTime < d_.accrualWriteInterval;
  if (!(st == r->status) && !deferAccrual) {
    kube::PatchOptions po{std::string(api::kFieldManager), true, "status"};
    auto w = d_.writer->apply(kube::kinds::PTUReservation, req.ns, statusApplyObject(*r, st), po);
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

  // Reclaim: GPUs the reservation holds but other deployments' workers fill.
  bool reclaimPending = false;
  if (st.phase == api::ReservationPhase::Active && d_.capacity) {
    auto rc = reclaim(*r, st, deploymentKey, in);
    if (!rc) return std::unexpected(ReconcileError{rc.error()});
    reclaimPending = *rc;
  }

  // Requeue at the next time boundary, and while Active when the accrual is next due
  // for a write (every minute with accrualWriteInterval 0), every 30 s with observed load
  // or router counts to refresh; soon while a reclaim is under way.
  std::optional<Duration> after;
  if (reclaimPending) after = std::chrono::seconds(2);
  if (a.nextChange && *a.nextChange > now) after = *a.nextChange - now;
  if (st.phase == api::ReservationPhase::Active) {
    Duration accrual = std::chrono::seconds(60);
    if (d_.accrualWriteInterval > accrual) {
      accrual = d_.accrualWriteInterval;
      if (deferAccrual) accrual = std::max<Duration>(std::chrono::seconds(1), *r->status.lastAccrualTime + accrual - now);
    }
    if (d_.load || d_.routerCounts) after = after ? std::min(*after, Duration(std::chrono::seconds(30))) : std::chrono::seconds(30);
    after = after ? std::min(*after, accrual) : accrual;
  }
  if (after) return Result::after(*after + std::chrono::milliseconds(50));
  return Result::done();
}

std::expected<bool, std::string> PtuReservationReconciler::reclaim(const api::PTUReservation& r,
                                                                   const api::PTUReservationStatus& st,
                                                                   const std::string& deploymentKey,
                                                                   const planners::PtuAdmissionInput& in) {
  const auto lg = log::logger("ptureservation");
  const std::string key = r.metadata.key();
  planners::ReclaimPlan rp;
  {
    // This reservation's holds as just decided (the cache may lag behind our status write).
    capacity::TxnOptions to;
    std::vector<planners::PoolHold> mine;
    for (const auto& pl : st.placements)
      if (pl.replicas > 0 && pl.gpus > 0) mine.push_back({key, deploymentKey, pl.pool, pl.replicas, pl.gpus});
    to.holdOverride = {key, mine};
    auto txn = d_.capacity->begin(to);
    auto& snap = txn.snapshot();
    // Nothing to reclaim unless this deployment's holds miss GPUs (planReclaim looks at
    // nothing else): skip building its input.
    bool shortfall = false;
    for (const auto& sf : snap.holds) shortfall |= sf.deployment == deploymentKey && sf.missingGpus() > 0;
    if (!shortfall) return false;
    planners::ReclaimInput ri;
    ri.snapshot = &snap;
    // Workers this process evicted that the watch does not show as deleting yet read as
    // deleting (the cache's expected deletions): a pass right after another must not see
    // their GPUs as still taken (and evict more, or the same again).
    ri.pods = txn.workers();
    ri.deployments = in.deployments;
    ri.holds = txn.holds();
    ri.deployment = deploymentKey;
    rp = planners::planReclaim(ri);
  }
  if (rp.pools.empty()) return false;
  auto obj = d_.reservations->store().get(key);
  bool blocked = false;
  for (const auto& e : rp.evictions) {
    kube::Json ev = {{"apiVersion", "policy/v1"},
                     {"kind", "Eviction"},
                     {"metadata", {{"name", e.name}, {"namespace", e.ns}}},
                     {"deleteOptions", {{"preconditions", {{"uid", e.uid}}}}}};
    auto res = d_.writer->create(kube::kinds::Pod, e.ns, ev, {"", "eviction", false});
    if (!res) {
      if (res.error().isNotFound() || res.error().isConflict()) continue;  // gone or replaced already
      if (res.error().isTooManyRequests()) {  // a PodDisruptionBudget says not now
        blocked = true;
        if (obj)
          d_.recorder->event(*obj, "Warning", "ReclaimBlocked",
                             "eviction of worker " + e.ns + "/" + e.name + " refused: " + res.error().message);
        continue;
      }
      return std::unexpected("evict " + e.ns + "/" + e.name + ": " + res.error().describe());
    }
    d_.capacity->expectDeletion(e.uid);
    const std::string why = "pool " + e.pool + " capacity is reserved for ModelDeployment " + deploymentKey +
                            " by PTUReservation " + key;
    lg.info("reclaim: evicted worker", {{"reservation", key}, {"pod", e.ns + "/" + e.name}, {"node", e.node},
                                        {"pool", e.pool}, {"deployment", e.deployment}});
    if (obj)
      d_.recorder->event(*obj, "Normal", "Reclaimed",
                         "evicted worker " + e.ns + "/" + e.name + " of ModelDeployment " + e.deployment +
                             " (priority " + std::to_string(e.priority) + ") on node " + e.node + ": " + why);
    if (auto victim = d_.deployments->store().get(e.deployment))
      d_.recorder->event(*victim, "Warning", "Preempted", "worker " + e.name + " evicted: " + why);
  }
  for (const auto& p : rp.pools) {
    const int32_t stillMissing = p.missingUnits - p.fittingUnits - p.freedUnits;
    if (stillMissing > 0 && p.blocked > 0 && obj)
      d_.recorder->event(*obj, "Normal", "ReclaimWaiting",
                         std::to_string(stillMissing) + " reserved replicas' worth of GPUs (" +
                             std::to_string(p.gpusPerUnit) + " per node) in pool " + p.pool +
                             " are still held by other deployments' workers; " + std::to_string(p.blocked) +
                             " evictions wait for their deployment's maxUnavailable");
  }
  return rp.pending() || blocked || !rp.evictions.empty();
}

namespace {

std::vector<runtime::Request> allReservations(const cache::InformerPtr& ptus) {
  std::vector<runtime::Request> out;
  for (const auto& o : ptus->store().list()) out.push_back({runtime::namespaceOf(*o), runtime::nameOf(*o)});
  return out;
}

}  // namespace

runtime::ControllerPtr newPtuReservationController(PtuReservationDeps deps, runtime::ControllerOptions opts) {
  auto ptus = deps.reservations;
  auto c = std::make_unique<runtime::Controller>("ptureservation", std::make_unique<PtuReservationReconciler>(deps),
                                                 std::move(opts));
  c->watchFor(ptus, {runtime::metadataOrGenerationChangedPredicate()});
  // Another reservation released or took capacity: the others are re-admitted.
  auto released = watches::onUpdate<api::PTUReservation>([](const auto& o, const auto& n) {
    return o.status.phase != n.status.phase || watches::deleting(o.metadata) != watches::deleting(n.metadata);
  });
  released.create = [](const kube::Json&) { return false; };
  c->watchMapped(ptus, [ptus](const kube::Json&) { return allReservations(ptus); }, {released});
  // Capacity changed: a pool's spec, or how many of its GPUs are allocatable.
  auto capacity = watches::onUpdate<api::CapacityPool>([](const auto& o, const auto& n) {
    return o.spec != n.spec || o.status.gpus.allocatable != n.status.gpus.allocatable;
  });
  c->watchMapped(deps.pools, [ptus](const kube::Json&) { return allReservations(ptus); }, {capacity});
  // The deployment appeared, went away or changed (throughput, GPU shape, type): the
  // reservations that name it (those that decode; one that does not is reported by its
  // own reconcile, which a deployment change does not help).
  c->watchMapped(deps.deployments, [reservations = cache::Lister<api::PTUReservation>::of(ptus)](const kube::Json& md) {
    std::vector<runtime::Request> out;
    const std::string ns = runtime::namespaceOf(md), name = runtime::nameOf(md);
    for (const auto& r : reservations->list())
      if (r->metadata.namespace_ == ns && r->spec.deploymentRef.name == name) out.push_back({ns, r->metadata.name});
    return out;
  }, {runtime::generationChangedPredicate()});
  return c;
}

}  // namespace waterline::reconcilers
