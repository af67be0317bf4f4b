#include "waterline/reconcilers/capacity_pool.h"

#include <set>

#include "waterline/api/capacity_pool.h"
#include "waterline/api/keys.h"
#include "waterline/api/model_deployment.h"
#include "waterline/api/ptu_reservation.h"
#include "waterline/common/log.h"
#include "waterline/planners/inventory_snapshot.h"
#include "waterline/planners/pool_status.h"
#include "waterline/planners/reservations.h"
#include "typed_watches.h"

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

// Whether `b` differs from `a` only in its counts (what every placement changes) and in
// condition messages that restate them ("... 12 GPUs allocatable"): no condition changes
// type, status or reason.
bool countsOnly(const api::CapacityPoolStatus& a, const api::CapacityPoolStatus& b) {
  if (a.observedGeneration != b.observedGeneration || a.nodes != b.nodes || a.readyNodes != b.readyNodes ||
      a.nodeNames != b.nodeNames || a.conditions.size() != b.conditions.size())
    return false;
  for (size_t i = 0; i < a.conditions.size(); ++i) {
    const auto &x = a.conditions[i], &y = b.conditions[i];
    if (x.type != y.type || x.status != y.status || x.reason != y.reason) return false;
  }
  return true;
}

}  // namespace

std::optional<DemandShape> DemandShape::fromJson(const kube::Json& md) {
  DemandShape out;
  out.id = runtime::namespaceOf(md) + "/" + runtime::nameOf(md);
  auto d = api::ModelDeployment::fromJson(md);
  if (!d) return out;  // no key, no request: adds no shape
  // The key from the decoded spec (CRD defaults applied), so spellings of one shape agree;
  // only the fields of the key are encoded (not the pod template).
  api::ModelDeploymentSpec keyFields;
  keyFields.gpu = d->spec.gpu;
  keyFields.deploymentType = d->spec.deploymentType;
  keyFields.region = d->spec.region;
  keyFields.dataZone = d->spec.dataZone;
  const auto spec = api::toJson(keyFields);
  out.key = kube::Json{spec.value("gpu", kube::Json()), spec.value("deploymentType", kube::Json()),
                       spec.value("region", kube::Json()), spec.value("dataZone", kube::Json())}
                .dump();
  if (api::validate(*d).empty()) out.request = planners::toRequest(*d, d->metadata.name + "-shape");
  return out;
}

std::vector<runtime::Request> overlappingPools(const kube::Json& poolObj, const cache::Lister<api::CapacityPool>& pools,
                                              const cache::Lister<planners::NodeView>& nodes) {
  std::vector<runtime::Request> out;
  auto me = api::CapacityPool::fromJson(poolObj);  // the old or new state: not (only) the lister's
  if (!me) return out;
  std::vector<const api::CapacityPool*> others;
  const auto all = pools.list();
  for (const auto& p : all)
    if (p->metadata.name != me->metadata.name) others.push_back(p.get());
  if (others.empty()) return out;
  std::set<std::string> hit;
  for (const auto& view : nodes.list()) {
    if (!me->spec.selectsNode(view->labels)) continue;
    for (const auto* o : others)
      if (!hit.count(o->metadata.name) && o->spec.selectsNode(view->labels)) hit.insert(o->metadata.name);
    if (hit.size() == others.size()) break;
  }
  for (const auto& name : hit) out.push_back({"", name});
  return out;
}

CapacityPoolReconciler::CapacityPoolReconciler(CapacityPoolDeps deps)
    : d_(std::move(deps)),
      pools_(cache::Lister<api::CapacityPool>::of(d_.pools)),
      nodes_(cache::Lister<planners::NodeView>::of(d_.nodes)),
      shapes_(d_.deployments ? cache::Lister<DemandShape>::of(d_.deployments) : nullptr) {
  // Any node event may change which nodes a pool selects: membership is listed again.
  cache::EventHandler h;
  h.onAdd = [this](const cache::ObjectPtr&) { ++nodesGen_; };
  h.onUpdate = [this](const cache::ObjectPtr& o, const cache::ObjectPtr& n) {
    if (o != n) ++nodesGen_;
  };
  h.onDelete = [this](const cache::ObjectPtr&, bool) { ++nodesGen_; };
  nodeHandler_ = d_.nodes->addEventHandler(std::move(h));
}

CapacityPoolReconciler::~CapacityPoolReconciler() {
  if (nodeHandler_) d_.nodes->removeEventHandler(nodeHandler_);
}

std::vector<std::shared_ptr<const planners::NodeView>> CapacityPoolReconciler::membersOf(const api::CapacityPool& pool) {
  // Read the generation before listing: a node event after it makes the next call list again.
  const uint64_t gen = nodesGen_.load();
  {
    std::lock_guard g(mu_);
    auto it = members_.find(pool.metadata.name);
    if (it != members_.end() && it->second.nodesGen == gen && it->second.spec == pool.spec) return it->second.nodes;
  }
  Members m;
  m.nodesGen = gen;
  m.spec = pool.spec;
  for (const auto& n : nodes_->list())
    if (pool.spec.selectsNode(n->labels)) m.nodes.push_back(n);
  std::lock_guard g(mu_);
  auto& slot = members_[pool.metadata.name];
  slot = std::move(m);
  return slot.nodes;
}

runtime::ReconcileResult CapacityPoolReconciler::reconcile(const runtime::Request& req) {
  const auto item = pools_->item(req.key());
  if (!item.object) {  // deleted; nothing to clean up
    std::lock_guard g(mu_);
    lastWrite_.erase(req.name);
    members_.erase(req.name);
    return Result::done();
  }
  const auto& obj = item.object;
  const SystemTime now = d_.time->systemTime();
  if (!item.value) {
    // The schema should have rejected it; report instead of looping.
    d_.recorder->event(*obj, "Warning", std::string(api::reasons::kInvalidSpec), item.error);
    return Result::done();
  }
  const auto& pool = item.value;
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
      auto r = d_.writer->apply(kube::kinds::CapacityPool, "", statusApplyObject(*pool, st), po);
      if (!r) return std::unexpected(ReconcileError{r.error().describe()});
      d_.recorder->event(*obj, "Warning", std::string(api::reasons::kInvalidSpec), msg);
    }
    return Result::done();
  }

  planners::PoolStatusInput in;
  in.pool = &*pool;
  // Only this pool's nodes count: a pool's status depends on nothing else (other pools'
  // specs still decide which of its nodes conflict). Typed listers: each object is
  // decoded once per version (cache/lister.h).
  const auto allPools = pools_->list();
  for (const auto& n : membersOf(*pool)) in.nodes.push_back(*n);
  for (const auto& p : allPools)
    if (p->metadata.name != pool->metadata.name) in.others.push_back(p.get());
  std::optional<Duration> refreshAfter;  // fragmentation older than the inventory
  if (d_.capacity) {
    // Occupancy from the capacity cache's inventory (kept up to date by events); without
    // holds: status.gpus.reserved counts those apart.
    std::vector<scheduling::Request> shapes;
    std::string shapesKey;
    if (d_.deployments) {
      // One request per distinct shape of the demand (GPU request and where it may go).
      std::set<std::string> seen;
      for (const auto& sh : shapes_->list())
        if (sh->request && seen.insert(sh->key).second) shapes.push_back(*sh->request);
      for (const auto& k : seen) shapesKey += k + "\n";
    }
    // Both are computed for every pool at once from the whole inventory (under the
    // capacity cache's lock, which placements wait for): shared by the pools reconciled
    // meanwhile. Allocation is exact: recomputed whenever the inventory changed.
    // Fragmentation (a scheduling probe of every demand shape, the costly one) is
    // recomputed at most every fragmentationMaxAge while the inventory keeps changing; a
    // pool that got an older figure comes back when it is due, so the last state of a
    // burst is always reported.
    std::shared_ptr<const PoolDerived> alloc, frag;
    {
      auto txn = d_.capacity->begin(capacity::TxnOptions::withoutHolds());
      const auto version = txn.inventory().version();
      std::lock_guard g(mu_);
      if (allocation_ && allocation_->version == version) {
        alloc = allocation_;
      } else {
        auto d = std::make_shared<PoolDerived>();
        d->version = version;
        d->allocation = planners::allocationByPool(txn.inventory());
        allocation_ = alloc = std::move(d);
      }
      if (d_.deployments) {
        const auto mono = d_.time->monotonicTime();
        const bool sameDemand = fragmentation_ && fragmentation_->shapesKey == shapesKey;
        if (sameDemand && fragmentation_->version == version) {
          frag = fragmentation_;
        } else if (sameDemand && mono - fragmentation_->at < d_.fragmentationMaxAge) {
          frag = fragmentation_;
          refreshAfter = d_.fragmentationMaxAge - (mono - fragmentation_->at);
        } else {
          auto d = std::make_shared<PoolDerived>();
          d->version = version;
          d->shapesKey = shapesKey;
          d->at = mono;
          d->fragmentation = planners::fragmentationByPool(txn.inventory(), std::move(shapes));
          fragmentation_ = frag = std::move(d);
        }
      }
    }
    auto a = alloc->allocation.find(pool->metadata.name);
    in.allocated = a != alloc->allocation.end() ? a->second : planners::PoolAllocation{};
    if (frag) {
      auto f = frag->fragmentation.find(pool->metadata.name);
      in.fragmentation = f != frag->fragmentation.end() ? f->second : 0.0;
    }
  }

  auto plan = planners::planPoolStatus(in, now);
  if (d_.reservations)  // PTU hook: GPUs held by Active reservations (ptu_reservation.h)
    plan.status.gpus.reserved = planners::reservedGpusInPool(d_.reservations->store().list(), pool->metadata.name);
  // An older fragmentation figure was used: come back for the current one.
  auto done = [&] { return refreshAfter ? Result::after(*refreshAfter) : Result::done(); };
  if (plan.status == pool->status) return done();
  const auto mono = d_.time->monotonicTime();
  if (d_.countsWriteInterval > Duration::zero() && countsOnly(pool->status, plan.status)) {
    std::lock_guard g(mu_);
    auto it = lastWrite_.find(pool->metadata.name);
    if (it != lastWrite_.end() && mono - it->second < d_.countsWriteInterval)
      return Result::after(d_.countsWriteInterval - (mono - it->second));  // then the latest counts
  }

  kube::PatchOptions po{std::string(api::kFieldManager), true, "status"};
  auto r = d_.writer->apply(kube::kinds::CapacityPool, "", statusApplyObject(*pool, plan.status), po);
  if (!r) return std::unexpected(ReconcileError{"apply status: " + r.error().describe()});
  {
    std::lock_guard g(mu_);
    lastWrite_[pool->metadata.name] = mono;
  }

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
  return done();
}

runtime::ControllerPtr newCapacityPoolController(CapacityPoolDeps deps,
                                                 runtime::ControllerOptions opts) {
  auto pools = deps.pools;
  auto nodes = deps.nodes;
  auto owned = std::make_unique<CapacityPoolReconciler>(deps);
  auto* reconciler = owned.get();
  auto c = std::make_unique<runtime::Controller>("capacitypool", std::move(owned), std::move(opts));
  c->watchFor(pools, {runtime::generationChangedPredicate()});
  // A pool created, changed or deleted may start or stop overlapping others: each pool
  // that shares a node with it (before or after: the old object is mapped too) reports
  // NodeInMultiplePools, or stops reporting it, at once.
  c->watchMapped(pools, [poolList = reconciler->poolLister(), nodeList = reconciler->nodeLister()](const cache::Json& obj) {
    return overlappingPools(obj, *poolList, *nodeList);
  }, {runtime::generationChangedPredicate()});
  // Any node change may change any pool that selects it (or selected it before).
  c->watchMapped(nodes, [decoded = reconciler->poolLister()](const cache::Json& node) {
    std::vector<runtime::Request> out;
    auto view = planners::NodeView::fromJson(node);
    for (const auto& pool : decoded->list())
      if (pool->spec.selectsNode(view.labels)) out.push_back({"", pool->metadata.name});
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
    // The demand's set of shapes changed: every pool's fragmentation may have. Only a
    // shape that no other valid deployment has (one that appears, or goes) changes the
    // set; 500 deployments of a few shapes used to enqueue every pool 500 times. (For an
    // update the old object is mapped too, so a shape left behind is seen.)
    c->watchMapped(deps.deployments, [pools, shapes = reconciler->shapeLister()](const cache::Json& md) {
      std::vector<runtime::Request> out;
      auto mine = DemandShape::fromJson(md);
      if (!mine || !mine->request) return out;  // an invalid deployment adds no shape
      for (const auto& s : shapes->list())
        if (s->request && mine && s->key == mine->key && s->id != mine->id) return out;  // another has it
      for (const auto& p : pools->store().list()) out.push_back({"", runtime::nameOf(*p)});
      return out;
    }, {runtime::generationChangedPredicate()});
  }
  if (deps.reservations) {
    // A reservation taking or releasing capacity changes status.gpus.reserved.
    auto held = watches::onUpdate<api::PTUReservation>([](const auto& o, const auto& n) {
      return o.status.phase != n.status.phase || o.status.placements != n.status.placements;
    });
    c->watchMapped(deps.reservations, [pools](const cache::Json&) {
      std::vector<runtime::Request> out;
      for (const auto& p : pools->store().list()) out.push_back({"", runtime::nameOf(*p)});
      return out;
    }, {held});
  }
  return c;
}

}  // namespace waterline::reconcilers
