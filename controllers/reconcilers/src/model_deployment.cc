#include "waterline/reconcilers/model_deployment.h"

#include "waterline/api/capacity_pool.h"
#include "waterline/api/conditions.h"
#include "waterline/api/keys.h"
#include "waterline/api/meta.h"
#include "waterline/api/model_deployment.h"
#include "waterline/api/ptu_reservation.h"
#include "waterline/common/log.h"
#include "waterline/planners/deployment.h"
#include "waterline/planners/dra_worker.h"
#include "waterline/scheduling/annotation.h"
#include "waterline/planners/nodes.h"
#include "waterline/planners/reservations.h"
#include "typed_watches.h"

namespace waterline::reconcilers {

using runtime::ReconcileError;
using runtime::Result;

// ---- RepairTracker --------------------------------------------------------------------

namespace {
metrics::CounterFamily& repairsFamily(metrics::Registry& reg) {
  // One family per registry, shared by every tracker on it.
  auto& f = reg.sharedCounter("waterline_repairs_total",
                              "ModelDeployment workers replaced or moved for health reasons, by reason.", {"reason"});
  namespace R = planners::repair_reasons;
  for (auto r : {R::kWorkerFailed, R::kProbeFailed, R::kNodeNotReady, R::kNodeGone, R::kNodeEvicting,
                 R::kGpuUnhealthy})
    f.withLabels({r});  // every reason present from the start (0)
  return f;
}
}  // namespace

RepairTracker::RepairTracker(metrics::Registry& reg, planners::RepairBackoffPolicy policy)
    : backoff_(policy), counter_(repairsFamily(reg)) {}

std::optional<SystemTime> RepairTracker::holdUntil(const std::string& key, SystemTime now) {
  std::lock_guard g(mu_);
  return backoff_.holdUntil(key, now);
}

std::vector<planners::Repair> RepairTracker::record(const std::string& key,
                                                    const std::vector<planners::Repair>& repairs,
                                                    SystemTime now) {
  std::lock_guard g(mu_);
  for (auto it = seen_.begin(); it != seen_.end();)
    it = now - it->second > std::chrono::minutes(30) ? seen_.erase(it) : std::next(it);
  std::vector<planners::Repair> fresh;
  bool workerCaused = false;
  for (const auto& r : repairs) {
    const std::string id = r.uid.empty() ? key + "/" + r.pod : r.uid;
    if (!seen_.emplace(id, now).second) continue;
    counter_.withLabels({r.reason}).inc();
    workerCaused |= planners::workerCaused(r.reason);
    fresh.push_back(r);
  }
  if (workerCaused) backoff_.record(key, now);
  return fresh;
}

void RepairTracker::forget(const std::string& key) {
  std::lock_guard g(mu_);
  backoff_.forget(key);
}

double RepairTracker::count(std::string_view reason) {
  return counter_.withLabels({reason}).value();
}

// ---- reconciler ----------------------------------------------------------------------

ModelDeploymentReconciler::ModelDeploymentReconciler(ModelDeploymentDeps deps)
    : d_(std::move(deps)), deployments_(cache::Lister<api::ModelDeployment>::of(d_.deployments)) {
  if (!d_.repairs) d_.repairs = std::make_shared<RepairTracker>(metrics::defaultRegistry());
}

namespace {

kube::Json statusApplyObject(const api::ModelDeployment& d, const api::ModelDeploymentStatus& st) {
  kube::Json status = api::toJson(st);
  planners::stripAutoscalerStatus(status);  // the autoscaler's conditions are applied by its own manager
  return {{"apiVersion", kube::kinds::ModelDeployment.apiVersion()},
          {"kind", "ModelDeployment"},
          {"metadata", {{"name", d.metadata.name}, {"namespace", d.metadata.namespace_}}},
          {"status", status}};
}

bool isWorkerOf(const kube::Json& pod, const std::string& ns, const std::string& name) {
  if (runtime::namespaceOf(pod) != ns) return false;
  const auto& l = runtime::labelsOf(pod);
  auto it = l.find(std::string(api::labels::kDeployment));
  return it != l.end() && it->is_string() && it->get<std::string>() == name;
}

}  // namespace

runtime::ReconcileResult ModelDeploymentReconciler::reconcile(const runtime::Request& req) {
  const auto lg = log::logger("modeldeployment");
  const auto item = deployments_->item(req.key());
  const auto& obj = item.object;
  if (!obj) {
    // No garbage collector is assumed: delete the workers of a deployment that is gone.
    for (const auto& p : d_.capacity->sources().workerPods->store().list()) {
      if (!isWorkerOf(*p, req.ns, req.name)) continue;
      if (p->contains("metadata") && (*p)["metadata"].contains("deletionTimestamp")) continue;
      kube::DeleteOptions del;
      del.preconditions.uid = runtime::uidOf(*p);
      auto r = d_.writer->remove(kube::kinds::Pod, req.ns, runtime::nameOf(*p), del);
      if (!r && !r.error().isNotFound() && !r.error().isConflict())
        return std::unexpected(ReconcileError{"delete orphan worker: " + r.error().describe()});
    }
    if (d_.capacity->sources().resourceClaims) {
      std::vector<capacity::OrphanClaim> orphans;
      {
        auto txn = d_.capacity->begin(capacity::TxnOptions::withoutHolds());
        orphans = orphanClaimsOf(txn, req);
      }
      if (auto err = deleteOrphanClaims(orphans); !err.empty()) return std::unexpected(ReconcileError{err});
    }
    d_.repairs->forget(req.key());
    return Result::done();
  }
  if (!item.value) {
    d_.recorder->event(*obj, "Warning", std::string(api::reasons::kInvalidSpec), item.error);
    return Result::done();
  }
  const auto& md = item.value;  // decoded once per version (cache/lister.h)
  if (md->metadata.deletionTimestamp) return Result::done();
  const SystemTime now = d_.time->systemTime();
  if (auto errs = api::validate(*md); !errs.empty()) {
    std::string msg;
    for (const auto& e : errs) msg += (msg.empty() ? "" : "; ") + e;
    api::ModelDeploymentStatus st = md->status;
    st.observedGeneration = md->metadata.generation;
    api::setCondition(st.conditions,
                      {std::string(api::conditions::kScheduled), api::ConditionStatus::False,
                       std::string(api::reasons::kInvalidSpec), msg, {}, md->metadata.generation},
                      now);
    if (!(st == md->status)) {
      kube::PatchOptions po{std::string(api::kFieldManager), true, "status"};
      auto r = d_.writer->apply(kube::kinds::ModelDeployment, md->metadata.namespace_,
                                statusApplyObject(*md, st), po);
      if (!r) return std::unexpected(ReconcileError{r.error().describe()});
      d_.recorder->event(*obj, "Warning", std::string(api::reasons::kInvalidSpec), msg);
    }
    return Result::done();
  }

  planners::DeploymentPlan plan;
  std::map<std::string, std::string> uids;  // worker name -> uid (expected deletions)
  // DRA mode (docs/scheduling.md, "Allocation modes"): per created worker, its claim and
  // the claim's status.allocation; creates whose devices the DRA inventory refused.
  struct DraCreate {
    kube::Json claim, allocation;
  };
  std::map<std::string, DraCreate> draCreates;
  std::map<std::string, std::string> draRefused;
  std::vector<capacity::UnreservedClaim> unreserved;
  std::vector<capacity::OrphanClaim> orphans;
  {
    // One capacity Txn: read, plan, assume. No decoding, no rebuild: the cache keeps the
    // inventory up to date from events.
    auto txn = d_.capacity->begin();
    auto& snap = txn.snapshot();
    planners::DeploymentPlanInput pin;
    pin.deployment = &*md;
    pin.pods = txn.workersOf(md->metadata.namespace_, md->metadata.name);
    std::set<std::string> ourNodes;
    std::set<std::string> ours;
    for (const auto& w : pin.pods) {
      if (!w.node.empty()) ourNodes.insert(w.node);
      ours.insert(w.key());
      uids[w.name] = w.uid;
    }
    // Claims of ours the inventory refused: the planner decides which of them go
    // (planners::DeploymentPlan::conflictDeletes).
    for (const auto& c : snap.conflicts) {
      if (!ours.count(c.worker)) continue;
      lg.warn("assignment conflict in the GPU inventory",
              {{"worker", c.worker}, {"holder", c.holder}, {"node", c.node}, {"message", c.message}});
      pin.conflicts.push_back(c);
    }
    for (const auto& name : ourNodes)  // the planner looks at the nodes of this deployment's pods only
      if (const auto* n = txn.node(name)) pin.nodes.push_back(*n);
    pin.inventory = &snap.inventory;
    pin.repairHoldUntil = d_.repairs->holdUntil(req.key(), now);
    if (d_.unhealthyWorkers) pin.unhealthyWorkers = d_.unhealthyWorkers(md->metadata.namespace_, md->metadata.name);
    if (d_.reservations) pin.ptuFloor = planners::ptuFloorFor(d_.reservations->store().list(), req.ns, req.name);
    if (md->spec.cache && md->spec.cache->mode == api::CacheMode::Semantic && md->spec.cache->embeddingsDeploymentRef) {
      const auto ref = deployments_->get(md->metadata.namespace_, md->spec.cache->embeddingsDeploymentRef->name);
      pin.embeddingsDeploymentMissing = !ref || ref->metadata.deletionTimestamp;
    }
    plan = planners::planDeployment(pin, now);
    for (auto& c : plan.creates) {
      const auto& ann = c.pod["metadata"]["annotations"];
      auto a = scheduling::decodeAssignment(ann.value(std::string(api::annotations::kGpuAssignment), ""));
      if (a && txn.draNode(a->node)) {
        if (a->kind != scheduling::ShapeKind::Whole) {
          draRefused[c.name] = "DRA mode places whole GPUs only, not " + std::string(scheduling::toString(a->kind));
        } else if (auto alloc = txn.draAllocation(a->node, a->gpus); !alloc) {
          draRefused[c.name] = "DRA allocation on " + a->node + ": " + alloc.error();
        } else {
          const std::string claimName = planners::draClaimName(c.name);
          c.pod = planners::draWorkerPod(std::move(c.pod), claimName);
          draCreates[c.name] = {planners::draWorkerClaim(c.pod, claimName, int(a->gpus.size())), alloc->toJson()};
        }
      }
      txn.assume(c.pod);  // a refused one is forgotten below, like a failed create
    }
    for (auto& u : txn.unreservedClaims(md->metadata.namespace_))
      if (u.deployment == md->metadata.name) unreserved.push_back(std::move(u));
    orphans = orphanClaimsOf(txn, req);
  }

  const std::string& ns = md->metadata.namespace_;
  std::string firstError;
  std::vector<planners::CreateFailure> createFailures;
  const kube::WriteOptions createOpts{std::string(api::kFieldManager), "", false};
  const kube::PatchOptions mergeOpts{std::string(api::kFieldManager), false, ""};
  const kube::PatchOptions statusMergeOpts{std::string(api::kFieldManager), false, "status"};
  auto reserveClaim = [&](const std::string& claim, const std::string& pod, const std::string& uid) -> std::string {
    auto r = d_.writer->patch(kube::kinds::ResourceClaim, ns, claim, kube::PatchType::Merge,
                              planners::draClaimOwnerPatch(pod, uid).dump(), mergeOpts);
    if (r)
      r = d_.writer->patch(kube::kinds::ResourceClaim, ns, claim, kube::PatchType::Merge,
                           planners::draClaimReservedForPatch(pod, uid).dump(), statusMergeOpts);
    return r ? "" : "reserve claim " + claim + " for " + pod + ": " + r.error().describe();
  };
  for (const auto& c : plan.creates) {
    if (auto refused = draRefused.find(c.name); refused != draRefused.end()) {
      d_.capacity->forget(ns + "/" + c.name);
      createFailures.push_back({c.name, refused->second});
      if (firstError.empty()) firstError = "create worker " + c.name + ": " + refused->second;
      continue;
    }
    const auto dc = draCreates.find(c.name);
    const std::string claimName = planners::draClaimName(c.name);
    if (dc != draCreates.end()) {
      // The claim first, with its devices, as kube-scheduler's DRA plugin writes them
      // before binding; the pod refers to it. A claim left from an earlier attempt is
      // not reused: the orphan clean-up deletes it and the next attempt starts afresh.
      std::string err;
      auto cr = d_.writer->create(kube::kinds::ResourceClaim, ns, dc->second.claim, createOpts);
      if (!cr) {
        err = "create claim " + claimName + ": " + cr.error().describe();
      } else {
        auto st = d_.writer->patch(kube::kinds::ResourceClaim, ns, claimName, kube::PatchType::Merge,
                                   kube::Json{{"status", {{"allocation", dc->second.allocation}}}}.dump(),
                                   statusMergeOpts);
        if (!st) {
          err = "write the allocation of claim " + claimName + ": " + st.error().describe();
          d_.writer->remove(kube::kinds::ResourceClaim, ns, claimName, {});
        }
      }
      if (!err.empty()) {
        d_.capacity->forget(ns + "/" + c.name);
        createFailures.push_back({c.name, err});
        if (firstError.empty()) firstError = "create worker " + c.name + ": " + err;
        continue;
      }
    }
    auto r = d_.writer->create(kube::kinds::Pod, ns, c.pod, createOpts);
    if (r && dc != draCreates.end()) {
      // The pod owns its claim (deleted with it) and the claim is reserved for it (the
      // kubelet prepares the devices only then). A failure here is retried by the next
      // reconcile (unreservedClaims).
      if (auto err = reserveClaim(claimName, c.name, runtime::uidOf(*r)); !err.empty() && firstError.empty())
        firstError = err;
    }
    if (!r && dc != draCreates.end() && !r.error().isAlreadyExists())
      d_.writer->remove(kube::kinds::ResourceClaim, ns, claimName, {});  // no pod: nothing holds it
    if (r) continue;
    if (r.error().isAlreadyExists()) {
      // Created before (e.g. by a previous process) and not in the cache yet: account for
      // the real pod and its real assignment, not the one planned now.
      if (d_.apiReader)
        if (auto got = d_.apiReader->get(kube::kinds::Pod, ns, c.name)) d_.capacity->assume(*got);
      continue;
    }
    // Refused (422 for a pod the template makes invalid) or failed: the pod does not
    // exist, so its GPUs go back at once and the status does not count it.
    d_.capacity->forget(ns + "/" + c.name);
    createFailures.push_back({c.name, r.error().describe()});
    if (firstError.empty()) firstError = "create worker " + c.name + ": " + r.error().describe();
  }
  for (const auto& u : unreserved)
    if (auto err = reserveClaim(u.name, u.worker, u.podUid); !err.empty() && firstError.empty()) firstError = err;
  if (auto err = deleteOrphanClaims(orphans); !err.empty() && firstError.empty()) firstError = err;
  planners::recordCreateFailures(plan, *md, createFailures, now);
  // The GPUs planned for the failed creates are free again: the deployments waiting for
  // capacity try now, not at the next resync.
  if (!createFailures.empty() && capacityReleased_) capacityReleased_(req);
  const std::string drainingSince = api::formatTime(now);
  for (const auto& name : plan.drain) {
    kube::Json patch = {
        {"metadata", {{"annotations", {{std::string(api::annotations::kDrainingSince), drainingSince}}}}}};
    auto r = d_.writer->patch(kube::kinds::Pod, ns, name, kube::PatchType::Merge, patch.dump(),
                              {std::string(api::kFieldManager), false, ""});
    if (r) d_.capacity->expectDrain(ns + "/" + name, now);
    if (!r && !r.error().isNotFound() && firstError.empty())
      firstError = "mark " + name + " draining: " + r.error().describe();
  }
  for (const auto& c : plan.conflictDeletes) {
    kube::DeleteOptions del;
    del.preconditions.uid = c.uid;
    auto r = d_.writer->remove(kube::kinds::Pod, ns, c.pod, del);
    if (r) d_.capacity->expectDeletion(c.uid);
    if (!r && !r.error().isNotFound() && !r.error().isConflict() && firstError.empty())
      firstError = "delete double-booked worker " + c.pod + ": " + r.error().describe();
    if (r) d_.recorder->event(*obj, "Warning", "GpuConflict", c.message);
  }
  for (const auto& name : plan.remove) {
    kube::DeleteOptions del;
    if (plan.removeWithoutGrace.count(name)) del.gracePeriodSeconds = 0;
    auto r = d_.writer->remove(kube::kinds::Pod, ns, name, del);
    if (r) d_.capacity->expectDeletion(uids[name]);
    if (!r && !r.error().isNotFound() && firstError.empty())
      firstError = "delete worker " + name + ": " + r.error().describe();
  }

  if (!(plan.status == md->status)) {
    kube::PatchOptions po{std::string(api::kFieldManager), true, "status"};
    auto r = d_.writer->apply(kube::kinds::ModelDeployment, ns, statusApplyObject(*md, plan.status), po);
    if (!r && firstError.empty()) firstError = "apply status: " + r.error().describe();
  }
  // Repairs: counted (and their Events sent) once per pod, whatever the cache showed.
  std::set<std::string> repeated;
  {
    auto fresh = d_.repairs->record(req.key(), plan.repairs, now);
    for (const auto& r : plan.repairs) {
      bool isNew = false;
      for (const auto& f : fresh) isNew |= f.pod == r.pod && f.uid == r.uid;
      if (!isNew) repeated.insert(r.message + " (" + r.reason + ")");
    }
    for (const auto& r : fresh)
      lg.info("worker repair", {{"deployment", req.key()}, {"pod", r.pod}, {"node", r.node}, {"reason", r.reason}});
  }
  // Events: scaling and rollouts as they happen; capacity shortage on the transition.
  const auto* before = api::findCondition(md->status.conditions, api::conditions::kScheduled);
  for (const auto& e : plan.events) {
    if (repeated.count(e.message)) continue;
    if (e.type == "Warning" && (e.reason == api::reasons::kInsufficientCapacity ||
                                e.reason == api::reasons::kNoMatchingPool ||
                                e.reason == api::reasons::kWorkerCreateFailed) &&
        before && before->status == api::ConditionStatus::False && before->message == e.message)
      continue;
    d_.recorder->event(*obj, e.type, e.reason, e.message);
  }
  if (!firstError.empty()) return std::unexpected(ReconcileError{firstError});
  if (plan.requeueAfter) return Result::after(*plan.requeueAfter + std::chrono::milliseconds(50));
  return Result::done();
}

std::vector<capacity::OrphanClaim> ModelDeploymentReconciler::orphanClaimsOf(const capacity::CapacityCache::Txn& txn,
                                                                             const runtime::Request& req) const {
  std::vector<capacity::OrphanClaim> out;
  if (!d_.capacity->sources().resourceClaims) return out;  // DRA off: no claims
  for (auto& o : txn.orphanClaims(req.ns))
    if (o.deployment == req.name) out.push_back(std::move(o));
  return out;
}

std::string ModelDeploymentReconciler::deleteOrphanClaims(const std::vector<capacity::OrphanClaim>& orphans) {
  // A worker's claim whose pod is gone, or was never created (the process stopped in
  // between): its devices go back. The garbage collector does the same for claims the
  // pod owns; this covers the gap before the pod exists, and clusters without one.
  for (const auto& o : orphans) {
    kube::DeleteOptions del;
    del.preconditions.uid = o.uid;
    auto r = d_.writer->remove(kube::kinds::ResourceClaim, o.ns, o.name, del);
    if (!r && !r.error().isNotFound() && !r.error().isConflict())
      return "delete orphan claim " + o.name + ": " + r.error().describe();
    if (r) log::logger("modeldeployment").info("deleted a worker claim without its pod", {{"claim", o.ns + "/" + o.name}, {"worker", o.worker}});
  }
  return "";
}

namespace {

// Deployments whose Scheduled condition is False for want of capacity (they wait for
// it). Not those whose creates fail or whose spec is invalid: freed capacity does not help
// them, and enqueuing them would bypass their backoff (two broken deployments would
// otherwise wake each other up in a loop).
std::vector<runtime::Request> waitingForCapacity(const cache::Lister<api::ModelDeployment>& mds) {
  std::vector<runtime::Request> out;
  for (const auto& d : mds.list()) {
    const auto* c = api::findCondition(d->status.conditions, api::conditions::kScheduled);
    if (!c || c->status != api::ConditionStatus::False) continue;
    if (c->reason == api::reasons::kInsufficientCapacity || c->reason == api::reasons::kNoMatchingPool)
      out.push_back({d->metadata.namespace_, d->metadata.name});
  }
  return out;
}

bool sameCapacity(const planners::NodeView& a, const planners::NodeView& b) {
  return a.labels == b.labels && a.ready == b.ready && a.unschedulable == b.unschedulable &&
         a.taints == b.taints && a.gpuCount == b.gpuCount && a.gpuAllocatable == b.gpuAllocatable &&
         a.unhealthyGpus == b.unhealthyGpus;
}

std::string phaseOf(const kube::Json& p) {
  return p.contains("status") ? p["status"].value("phase", "") : "";
}

}  // namespace

runtime::ControllerPtr newModelDeploymentController(ModelDeploymentDeps deps,
                                                    runtime::ControllerOptions opts) {
  auto mds = deps.deployments;
  auto nodes = deps.nodes;
  auto pools = deps.pools;
  auto pods = deps.capacity->sources().workerPods;
  // The deployments decoded once per version (the reconciler's lister): waitingForCapacity
  // reads their Scheduled condition on pod and node events without decoding anything new.
  auto decoded = cache::Lister<api::ModelDeployment>::of(mds);
  auto owned = std::make_unique<ModelDeploymentReconciler>(deps);
  auto* reconciler = owned.get();
  auto c = std::make_unique<runtime::Controller>("modeldeployment", std::move(owned), std::move(opts));
  // A create that failed gave its GPUs back: wake the deployments waiting for capacity.
  // (The controller owns the reconciler, so the pointer outlives every call.)
  reconciler->onCapacityReleased([ctl = c.get(), decoded](const runtime::Request& from) {
    for (const auto& r : waitingForCapacity(*decoded))
      if (r.key() != from.key()) ctl->enqueue(r);
  });
  c->watchFor(mds, {runtime::generationChangedPredicate()});
  // A deployment that goes frees what it held (its workers are deleted by its reconcile;
  // one whose creates failed held nothing the pod watch would report): the deployments
  // waiting for capacity try again at once.
  // An update that marks the object for deletion.
  auto becameDeleting = [](const kube::Json& o, const kube::Json& n) {
    auto deleting = [](const kube::Json& j) {
      return j.contains("metadata") && j["metadata"].contains("deletionTimestamp");
    };
    return !deleting(o) && deleting(n);
  };
  runtime::Predicate deploymentGone{[](const kube::Json&) { return false; }, becameDeleting,
                                    [](const kube::Json&) { return true; }};
  c->watchMapped(mds, [decoded](const kube::Json&) { return waitingForCapacity(*decoded); }, {deploymentGone});
  // A deployment that appears or goes: those whose Semantic cache names it as their
  // embeddings deployment (their CacheReady condition).
  runtime::Predicate createdOrGone{[](const kube::Json&) { return true; }, becameDeleting,
                                   [](const kube::Json&) { return true; }};
  c->watchMapped(mds, [decoded](const kube::Json& obj) {
    std::vector<runtime::Request> out;
    const std::string ns = runtime::namespaceOf(obj), name = runtime::nameOf(obj);
    for (const auto& d : decoded->list())
      if (d->metadata.namespace_ == ns && d->spec.cache && d->spec.cache->embeddingsDeploymentRef &&
          d->spec.cache->embeddingsDeploymentRef->name == name)
        out.push_back({d->metadata.namespace_, d->metadata.name});
    return out;
  }, {createdOrGone});
  c->watchOwned(pods, "ModelDeployment");
  // Capacity freed by any worker pod going away (another deployment scaled down).
  runtime::Predicate podGone{
      [](const kube::Json&) { return false; },
      [](const kube::Json& o, const kube::Json& n) {
        auto p = phaseOf(n);
        return phaseOf(o) != p && (p == "Failed" || p == "Succeeded");
      },
      [](const kube::Json&) { return true; }};
  c->watchMapped(pods, [decoded](const kube::Json&) { return waitingForCapacity(*decoded); }, {podGone});
  // Node changes that matter for capacity or health: the waiting deployments, plus those
  // with workers on the node (repairs).
  runtime::Predicate nodeChanged{
      [](const kube::Json&) { return true; },
      [](const kube::Json& o, const kube::Json& n) {
        return !sameCapacity(planners::NodeView::fromJson(o), planners::NodeView::fromJson(n));
      },
      [](const kube::Json&) { return true; }};
  // The waiting deployments, plus those with workers on the node.
  auto onNode = [decoded, pods](const std::string& name) {
    auto out = waitingForCapacity(*decoded);
    for (const auto& p : pods->store().list()) {
      if (!p->contains("spec") || (*p)["spec"].value("nodeName", "") != name) continue;
      const auto& l = runtime::labelsOf(*p);
      auto it = l.find(std::string(api::labels::kDeployment));
      if (it != l.end() && it->is_string()) out.push_back({runtime::namespaceOf(*p), it->get<std::string>()});
    }
    return out;
  };
  c->watchMapped(nodes, [onNode](const kube::Json& node) { return onNode(runtime::nameOf(node)); }, {nodeChanged});
  c->watchMapped(pools, [decoded](const kube::Json&) { return waitingForCapacity(*decoded); },
                 {runtime::generationChangedPredicate()});
  // DRA: a slice that changes (devices published, removed, tainted) is a node change:
  // the waiting deployments and those with workers on its node. A claim that changes or
  // goes frees or takes devices: the waiting deployments, and the deployment a worker
  // claim belongs to (its orphan clean-up, its reservation).
  const auto& src = deps.capacity->sources();
  if (src.resourceSlices)
    c->watchMapped(src.resourceSlices, [onNode](const kube::Json& sl) {
      const std::string node = sl.contains("spec") ? sl["spec"].value("nodeName", "") : "";
      return onNode(node);
    });
  if (src.resourceClaims)
    c->watchMapped(src.resourceClaims, [decoded](const kube::Json& cl) {
      auto out = waitingForCapacity(*decoded);
      const auto& l = runtime::labelsOf(cl);
      auto m = l.find(std::string(api::labels::kManagedBy));
      auto d = l.find(std::string(api::labels::kDeployment));
      if (m != l.end() && m->is_string() && m->get<std::string>() == api::labels::kManagedByValue && d != l.end() &&
          d->is_string())
        out.push_back({runtime::namespaceOf(cl), d->get<std::string>()});
      return out;
    });
  if (deps.reservations) {
    // A reservation's hold changed (activated, placements moved, released): its deployment
    // (floor, reserved GPUs) and the deployments waiting for capacity (released GPUs).
    auto holdChanged = watches::onUpdate<api::PTUReservation>([](const auto& o, const auto& n) {
      return o.status.phase != n.status.phase || o.status.placements != n.status.placements ||
             o.status.reservedReplicas != n.status.reservedReplicas ||
             watches::deleting(o.metadata) != watches::deleting(n.metadata);
    });
    // The waiting deployments on every event that passes (even for a reservation that does
    // not decode: what it held is released all the same), and its own deployment.
    c->watchMapped(deps.reservations, [decoded](const kube::Json& r) {
      auto out = waitingForCapacity(*decoded);
      if (auto res = api::PTUReservation::fromJson(r))
        for (auto& d : watches::reservedDeployment(*res)) out.push_back(std::move(d));
      return out;
    }, {holdChanged});
  }
  return c;
}

}  // namespace waterline::reconcilers
