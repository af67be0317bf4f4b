#include "waterline/reconcilers/capacity_pool.h"

#include "waterline/api/capacity_pool.h"
#include "waterline/api/keys.h"
#include "waterline/api/model_deployment.h"
#include "waterline/common/log.h"
#include "waterline/planners/inventory_snapshot.h"
#include "waterline/planners/pool_status.h"
#include "waterline/reconcilers/ptu_reservation.h"

namespace waterline::reconcilers {

using runtime::ReconcileError;
using runtime::Result;

namespace {

kube::Json statusApplyObject(const api::CapacityPool& pool, const api::CapacityPoolStatus& st) {
  return {{"apiVersion", kube::kinds::CapacityPool.apiVersion()},
          {"kind", "CapacityPool"},
          {"metadata", {{"name", pool.metadata.name}}},
          {"status", api::toJson(st)}};
}

const api::Condition* cond(const api::CapacityPoolStatus& st, std::string_view type) {
  return api::findCondition(st.conditions, type);
}

}  // namespace

runtime::ReconcileResult CapacityPoolReconciler::reconcile(const runtime::Request& req) {
  auto obj = d_.pools->store().get(req.key());
  if (!obj) return Result::done();  // deleted; nothing to clean up yet
  auto pool = api::CapacityPool::fromJson(*obj);
  const SystemTime now = d_.time->systemTime();
  if (!pool) {
    // The schema should have rejected it; report instead of looping.
    d_.recorder->event(*obj, "Warning", std::string(api::reasons::kInvalidSpec), pool.error());
    return Result::done();
  }
  if (auto errs = api::validate(*pool); !errs.empty()) {
    api::CapacityPoolStatus st = pool->status;
    st.observedGeneration = pool->metadata.generation;
    std::string msg;
    for (const auto& e : errs) msg += (msg.empty() ? "" : "; ") + e;
    api::setCondition(st.conditions,
                      {std::string(api::conditions::kReady), api::ConditionStatus::False,
                       std::string(api::reasons::kInvalidSpec), msg, {}, pool->metadata.generation},
                      now);
    if (!(st == pool->status)) {
      kube::PatchOptions po{std::string(api::kFieldManager), true, "status"};
      auto r = d_.client->apply(kube::kinds::CapacityPool, "", statusApplyObject(*pool, st), po);
      if (!r) return std::unexpected(ReconcileError{r.error().describe()});
      d_.recorder->event(*obj, "Warning", std::string(api::reasons::kInvalidSpec), msg);
    }
    return Result::done();
  }

  planners::PoolStatusInput in;
  in.pool = &*pool;
  // Only this pool's nodes and their workers are decoded: a pool's status depends on
  // nothing else (other pools' specs still decide which of its nodes conflict), and
  // decoding the whole fleet on every worker event is what made fleet-size clusters slow.
  std::set<std::string> selected;
  for (const auto& n : d_.nodes->store().list()) {
    std::map<std::string, std::string> labels;
    if (n->contains("metadata") && (*n)["metadata"].contains("labels") && (*n)["metadata"]["labels"].is_object())
      for (const auto& [k, v] : (*n)["metadata"]["labels"].items())
        if (v.is_string()) labels[k] = v.get<std::string>();
    if (!pool->spec.selectsNode(labels)) continue;
    in.nodes.push_back(planners::NodeView::fromJson(*n));
    selected.insert(in.nodes.back().name);
  }
  std::vector<api::CapacityPool> others;
  for (const auto& p : d_.pools->store().list()) {
    if (runtime::nameOf(*p) == pool->metadata.name) continue;
    if (auto o = api::CapacityPool::fromJson(*p)) others.push_back(std::move(*o));
  }
  for (const auto& o : others) in.others.push_back(&o);
  if (d_.workerPods) {
    planners::SnapshotInput si;
    si.pools = others;
    si.pools.push_back(*pool);
    si.nodes = in.nodes;
    for (const auto& p : d_.workerPods->store().list())
      if (p->contains("spec") && (*p)["spec"].is_object() && selected.count((*p)["spec"].value("nodeName", "")))
        si.pods.push_back(planners::WorkerPod::fromJson(*p));
    auto snap = planners::buildSnapshot(si);
    auto alloc = planners::allocationByPool(snap.inventory);
    in.allocated = alloc[pool->metadata.name];
    if (d_.deployments) {
      // One request per distinct shape of the demand (GPU request and where it may go).
      std::vector<scheduling::Request> shapes;
      std::set<std::string> seen;
      for (const auto& o : d_.deployments->store().list()) {
        if (!o->contains("spec")) continue;
        const auto& s = (*o)["spec"];
        kube::Json k = {s.value("gpu", kube::Json()), s.value("deploymentType", kube::Json()),
                        s.value("region", kube::Json()), s.value("dataZone", kube::Json())};
        if (!seen.insert(k.dump()).second) continue;
        if (auto md = api::ModelDeployment::fromJson(*o); md && api::validate(*md).empty())
          shapes.push_back(planners::toRequest(*md, md->metadata.name + "-shape"));
      }
      in.fragmentation = planners::fragmentationByPool(snap.inventory, std::move(shapes))[pool->metadata.name];
    }
  }

  auto plan = planners::planPoolStatus(in, now);
  if (d_.reservations)  // PTU hook: GPUs held by Active reservations (ptu_reservation.h)
    plan.status.gpus.reserved = reservedGpusInPool(d_.reservations->store().list(), pool->metadata.name);
  if (plan.status == pool->status) return Result::done();

  kube::PatchOptions po{std::string(api::kFieldManager), true, "status"};
  auto r = d_.client->apply(kube::kinds::CapacityPool, "", statusApplyObject(*pool, plan.status), po);
  if (!r) return std::unexpected(ReconcileError{"apply status: " + r.error().describe()});

  // Events on condition transitions.
  for (auto type : {api::conditions::kReady, api::conditions::kDegraded}) {
    const auto* before = cond(pool->status, type);
    const auto* after = cond(plan.status, type);
    if (!after || (before && before->status == after->status && before->reason == after->reason))
      continue;
    const bool bad = (type == api::conditions::kReady) ? after->status != api::ConditionStatus::True
                                                       : after->status == api::ConditionStatus::True;
    d_.recorder->event(*obj, bad ? "Warning" : "Normal", after->reason,
                       std::string(type) + "=" + std::string(api::toString(after->status)) +
                           (after->message.empty() ? "" : ": " + after->message));
  }
  return Result::done();
}

runtime::ControllerPtr newCapacityPoolController(CapacityPoolDeps deps,
                                                 runtime::ControllerOptions opts) {
  auto pools = deps.pools;
  auto nodes = deps.nodes;
  auto c = std::make_unique<runtime::Controller>(
      "capacitypool", std::make_unique<CapacityPoolReconciler>(deps), std::move(opts));
  c->watchFor(pools, {runtime::generationChangedPredicate()});
  // Any node change may change any pool that selects it (or selected it before).
  c->watchMapped(nodes, [pools](const cache::Json& node) {
    std::vector<runtime::Request> out;
    auto view = planners::NodeView::fromJson(node);
    for (const auto& p : pools->store().list()) {
      auto pool = api::CapacityPool::fromJson(*p);
      if (pool && pool->spec.selectsNode(view.labels)) out.push_back({"", pool->metadata.name});
    }
    return out;
  });
  if (deps.workerPods) {
    // A worker placed or gone changes its pool's allocated counts.
    runtime::Predicate placement{
        [](const cache::Json&) { return true; },
        [](const cache::Json& o, const cache::Json& n) {
          auto phase = [](const cache::Json& p) {
            return p.contains("status") ? p["status"].value("phase", "") : std::string();
          };
          auto ann = [](const cache::Json& p) {
            const auto& m = p.contains("metadata") ? p["metadata"] : cache::Json::object();
            return m.contains("annotations") ? m["annotations"].value(std::string(api::annotations::kGpuAssignment), "")
                                             : std::string();
          };
          return phase(o) != phase(n) || ann(o) != ann(n);
        },
        [](const cache::Json&) { return true; }};
    c->watchMapped(deps.workerPods, [](const cache::Json& pod) {
      std::vector<runtime::Request> out;
      const auto& l = runtime::labelsOf(pod);
      auto it = l.find(std::string(api::labels::kPool));
      if (it != l.end() && it->is_string()) out.push_back({"", it->get<std::string>()});
      return out;
    }, {placement});
  }
  if (deps.workerPods && deps.deployments) {
    // The demand's shapes changed: every pool's fragmentation may have.
    c->watchMapped(deps.deployments, [pools](const cache::Json&) {
      std::vector<runtime::Request> out;
      for (const auto& p : pools->store().list()) out.push_back({"", runtime::nameOf(*p)});
      return out;
    }, {runtime::generationChangedPredicate()});
  }
  if (deps.reservations) {
    // A reservation taking or releasing capacity changes status.gpus.reserved.
    runtime::Predicate held{[](const cache::Json&) { return true; },
                            [](const cache::Json& o, const cache::Json& n) {
                              auto part = [](const cache::Json& j) {
                                return j.contains("status") ? std::make_pair(j["status"].value("phase", ""),
                                                                             j["status"].value("placements", cache::Json()))
                                                            : std::make_pair(std::string(), cache::Json());
                              };
                              return part(o) != part(n);
                            },
                            [](const cache::Json&) { return true; }};
    c->watchMapped(deps.reservations, [pools](const cache::Json&) {
      std::vector<runtime::Request> out;
      for (const auto& p : pools->store().list()) out.push_back({"", runtime::nameOf(*p)});
      return out;
    }, {held});
  }
  return c;
}

}  // namespace waterline::reconcilers
