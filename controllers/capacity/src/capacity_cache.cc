#include "waterline/capacity/capacity_cache.h"

#include <algorithm>

#include "waterline/api/keys.h"
#include "waterline/common/log.h"
#include "waterline/dra/node_gpus.h"
#include "waterline/scheduling/annotation.h"

namespace waterline::capacity {

namespace {

// The Node fields capacity depends on (NodeView minus the log-only invalidValues).
bool sameCapacity(const planners::NodeView& a, const planners::NodeView& b) {
  return a.dra == b.dra && a.heldGpus == b.heldGpus && a.labels == b.labels && a.ready == b.ready && a.unschedulable == b.unschedulable &&
         a.taints == b.taints && a.gpuProduct == b.gpuProduct && a.gpuCount == b.gpuCount &&
         a.gpuMemoryMiB == b.gpuMemoryMiB && a.gpuAllocatable == b.gpuAllocatable &&
         a.gpuFaultTaint == b.gpuFaultTaint && a.unhealthyGpus == b.unhealthyGpus;
}

bool holdsGpus(const planners::WorkerPod& w) { return !w.terminal() && !w.assignment.empty(); }

std::string metaString(const kube::Json& o, const char* field) {
  auto m = o.find("metadata");
  if (m == o.end() || !m->is_object()) return "";
  auto f = m->find(field);
  return f != m->end() && f->is_string() ? f->get<std::string>() : "";
}

}  // namespace

CapacityCache::CapacityCache(CapacityCacheSources sources, TimeSourcePtr time, CapacityCacheOptions opts)
    : src_(std::move(sources)), time_(std::move(time)), opts_(opts) {
  auto subscribe = [this](const cache::InformerPtr& inf, void (CapacityCache::*fn)(const cache::ObjectPtr&, bool)) {
    if (!inf) return;
    cache::EventHandler h;
    h.onAdd = [this, fn](const cache::ObjectPtr& o) { (this->*fn)(o, false); };
    h.onUpdate = [this, fn](const cache::ObjectPtr&, const cache::ObjectPtr& n) { (this->*fn)(n, false); };
    h.onDelete = [this, fn](const cache::ObjectPtr& o, bool) { (this->*fn)(o, true); };
    handlers_.emplace_back(inf, inf->addEventHandler(std::move(h)));
  };
  subscribe(src_.pools, &CapacityCache::onPool);
  subscribe(src_.nodes, &CapacityCache::onNode);
  subscribe(src_.workerPods, &CapacityCache::onPod);
  subscribe(src_.reservations, &CapacityCache::onReservation);
  subscribe(src_.resourceSlices, &CapacityCache::onSlice);
  subscribe(src_.resourceClaims, &CapacityCache::onClaim);
}

CapacityCache::~CapacityCache() {
  for (auto& [inf, id] : handlers_) inf->removeEventHandler(id);
}

// ---- events ---------------------------------------------------------------------------

void CapacityCache::onPool(const cache::ObjectPtr& o, bool deleted) {
  if (!o) return;
  const std::string name = metaString(*o, "name");
  std::lock_guard g(mu_);
  auto it = pools_.find(name);
  if (deleted) {
    if (it != pools_.end()) {
      pools_.erase(it);
      dirty_ = true;
      draDirty_ = true;
      draAll_ = true;
    }
    return;
  }
  auto p = api::CapacityPool::fromJson(*o);
  if (!p) {  // the schema should have refused it; it selects nothing (as in buildSnapshot)
    if (it != pools_.end()) {
      pools_.erase(it);
      dirty_ = true;
    }
    return;
  }
  auto decoded = std::make_shared<const api::CapacityPool>(std::move(*p));
  // A status write (every pool reconcile) changes nothing here.
  if (it == pools_.end() || !(it->second->spec == decoded->spec)) {
    dirty_ = true;
    draDirty_ = true;  // the pool's allocation mode may resolve differently
    draAll_ = true;
  }
  pools_[name] = std::move(decoded);
}

void CapacityCache::onNode(const cache::ObjectPtr& o, bool deleted) {
  if (!o) return;
  auto raw = planners::NodeView::fromJson(*o);
  std::lock_guard g(mu_);
  if (!slices_.empty()) {  // pool membership (labels) decides which automatic pools are DRA
    auto prev = rawNodes_.find(raw.name);
    if (deleted || prev == rawNodes_.end() || prev->second->labels != raw.labels) {
      draDirty_ = true;
      draAll_ = true;
    }
  }
  if (deleted) rawNodes_.erase(raw.name);
  else rawNodes_[raw.name] = std::make_shared<const planners::NodeView>(raw);
  auto view = deleted ? std::move(raw) : effectiveLocked(raw);
  auto it = nodes_.find(view.name);
  if (deleted) {
    if (it == nodes_.end()) return;
    nodes_.erase(it);
    if (dirty_) return;
    if (auto np = snap_.nodePool.find(view.name); np != snap_.nodePool.end()) {
      snap_.nodePool.erase(np);
      // Its workers' claims now name an unknown node: the rebuild reports them as the
      // conflicts it always has (the deployments repair them).
      if (!snap_.inventory.removeNode(view.name).empty()) dirty_ = true;
    }
    return;
  }
  if (it != nodes_.end() && sameCapacity(*it->second, view)) return;  // a heartbeat
  for (const auto& m : view.invalidValues)  // once per node version that changes capacity
    log::logger("capacity").warn("ignoring an invalid node value", {{"node", view.name}, {"detail", m}});
  auto stored = std::make_shared<const planners::NodeView>(std::move(view));
  nodes_[stored->name] = stored;
  if (!dirty_) applyNodeLocked(*stored);
}

void CapacityCache::onPod(const cache::ObjectPtr& o, bool deleted) {
  if (!o) return;
  auto w = planners::WorkerPod::fromJson(*o);
  const std::string key = w.key();
  std::lock_guard g(mu_);
  ++stats_.podEvents;
  assumed_.erase(key);  // the watch shows it (or its end): no longer an expectation
  if (deleted || w.deleting) expectedDeletions_.erase(w.uid);
  if (deleted || w.drainingSince) expectedDrains_.erase(key);
  if (deleted) {
    pods_.erase(key);
    workerClaimChangedLocked(key);
    if (!dirty_) releaseWorkerLocked(key);
    return;
  }
  // DRA: whether its claim counts as a worker's (or as someone else's) depends on the pod.
  if (claimOfWorker_.count(key) && (!pods_.count(key) || pods_[key]->terminal() != w.terminal()))
    workerClaimChangedLocked(key);
  auto stored = std::make_shared<const planners::WorkerPod>(std::move(w));
  pods_[key] = stored;
  if (!dirty_) applyWorkerLocked(*stored);
}

void CapacityCache::onReservation(const cache::ObjectPtr& o, bool deleted) {
  if (!o) return;
  const std::string key = metaString(*o, "namespace") + "/" + metaString(*o, "name");
  std::lock_guard g(mu_);
  if (deleted) {
    holds_.erase(key);
    return;
  }
  auto h = planners::holdsFromReservations({o});
  if (h.empty()) holds_.erase(key);
  else holds_[key] = std::move(h);
}

void CapacityCache::onSlice(const cache::ObjectPtr& o, bool deleted) {
  if (!o) return;
  const std::string name = metaString(*o, "name");
  std::lock_guard g(mu_);
  draDirty_ = true;
  slicesChanged_ = true;
  if (auto old = slices_.find(name); old != slices_.end()) {
    if (old->second.node_name.empty()) draAll_ = true;
    else draDirtyNodes_.insert(old->second.node_name);
  }
  if (deleted) {
    slices_.erase(name);
    return;
  }
  auto sl = dra::decodeResourceSlice(*o);
  if (sl) {
    if (sl->node_name.empty()) draAll_ = true;
    else draDirtyNodes_.insert(sl->node_name);
  }
  if (!sl) {
    log::logger("capacity").warn("ignoring a ResourceSlice", {{"slice", name}, {"error", sl.error()}});
    slices_.erase(name);
    return;
  }
  slices_[name] = std::move(*sl);
}

void CapacityCache::onClaim(const cache::ObjectPtr& o, bool deleted) {
  if (!o) return;
  const std::string key = metaString(*o, "namespace") + "/" + metaString(*o, "name");
  std::lock_guard g(mu_);
  std::optional<dra::ResourceClaim> before;
  if (auto it = claims_.find(key); it != claims_.end()) before = it->second.claim;
  auto drop = [&] {
    if (auto it = claims_.find(key); it != claims_.end()) {
      for (const auto& r : it->second.claim.results) draDirtyDevices_.insert(r.id());
      if (!it->second.worker.empty()) claimOfWorker_.erase(it->second.claim.ns + "/" + it->second.worker);
      claims_.erase(it);
    }
  };
  draDirty_ = true;
  drop();
  if (deleted) {
    claimDeltas_.emplace_back(std::move(before), std::nullopt);
    return;
  }
  auto c = dra::decodeResourceClaim(*o);
  if (!c) {
    log::logger("capacity").warn("ignoring a ResourceClaim", {{"claim", key}, {"error", c.error()}});
    claimDeltas_.emplace_back(std::move(before), std::nullopt);
    return;
  }
  claimDeltas_.emplace_back(std::move(before), *c);
  ClaimInfo info;
  info.claim = std::move(*c);
  if (auto m = o->find("metadata"); m != o->end() && m->contains("labels") && (*m)["labels"].is_object()) {
    const auto& l = (*m)["labels"];
    info.waterline = l.value(std::string(api::labels::kManagedBy), "") == api::labels::kManagedByValue;
    info.deployment = l.value(std::string(api::labels::kDeployment), "");
    info.worker = l.value(std::string(api::labels::kWorker), "");
  }
  if (info.waterline && !info.worker.empty()) claimOfWorker_[info.claim.ns + "/" + info.worker] = key;
  for (const auto& r : info.claim.results) draDirtyDevices_.insert(r.id());
  claims_[key] = std::move(info);
}

// ---- DRA (mu_ held) ---------------------------------------------------------------------

void CapacityCache::workerClaimChangedLocked(const std::string& podKey) {
  auto c = claimOfWorker_.find(podKey);
  if (c == claimOfWorker_.end()) return;
  draDirty_ = true;
  if (auto it = claims_.find(c->second); it != claims_.end())
    for (const auto& r : it->second.claim.results) draDirtyDevices_.insert(r.id());
}

bool CapacityCache::ourClaimLocked(const std::string& claimKey) const {
  auto it = claims_.find(claimKey);
  if (it == claims_.end() || !it->second.waterline || it->second.worker.empty()) return false;
  const std::string pod = it->second.claim.ns + "/" + it->second.worker;
  if (auto p = pods_.find(pod); p != pods_.end()) return !p->second->terminal();
  return assumed_.count(pod) > 0;
}

bool CapacityCache::draPoolLocked(const api::CapacityPool& p) const {
  // Whole GPUs only so far: MIG and shared pools keep the device-plugin path (the CRD
  // refuses allocation DRA with another sharing mode).
  if (p.spec.sharing.mode != api::SharingMode::Exclusive) return false;
  if (p.spec.allocation == "DRA") return true;
  if (p.spec.allocation == "DevicePlugin") return false;
  return autoDraPools_.count(p.metadata.name) > 0;
}

planners::NodeView CapacityCache::effectiveLocked(const planners::NodeView& raw) const {
  auto [owner, matches] = ownerLocked(raw);
  if (!owner || !draPoolLocked(*owner)) return raw;
  auto g = dra::nodeGpus(draInv_, raw.name, [this](const std::string& k) { return ourClaimLocked(k); });
  planners::NodeView v = raw;
  v.dra = true;
  v.gpuCount = g.count;
  if (!g.product.empty()) v.gpuProduct = g.product;
  if (g.memoryMiB > 0) v.gpuMemoryMiB = g.memoryMiB;
  v.gpuAllocatable.erase("nvidia.com/gpu");  // the device plugin's count says nothing here
  std::vector<int> bad = g.unhealthy;
  for (int i : raw.unhealthyGpus)
    if (i < g.count) bad.push_back(i);
  std::sort(bad.begin(), bad.end());
  bad.erase(std::unique(bad.begin(), bad.end()), bad.end());
  v.unhealthyGpus = std::move(bad);
  v.heldGpus.clear();
  for (const auto& [i, by] : g.heldByOthers) v.heldGpus.push_back(i);
  return v;
}

void CapacityCache::refreshDraLocked() {
  if (!draDirty_) return;
  draDirty_ = false;
  ++stats_.draRefreshes;
  // Slices change rarely (a driver's restart, a device's health), claims with every
  // worker: the slice part of the inventory is rebuilt only when they change.
  const bool slicesChanged = slicesChanged_;
  if (slicesChanged_) {
    std::vector<dra::ResourceSlice> ss;
    ss.reserve(slices_.size());
    for (const auto& [n, sl] : slices_) ss.push_back(sl);
    draInv_ = dra::Inventory::fromSlices(ss);
    slicesChanged_ = false;
  }
  bool full = slicesChanged;
  for (const auto& [before, after] : claimDeltas_) {
    if (full) break;
    full = !draInv_.replaceClaim(before ? &*before : nullptr, after ? &*after : nullptr);
  }
  claimDeltas_.clear();
  if (full) {
    std::vector<const dra::ResourceClaim*> cs;
    cs.reserve(claims_.size());
    for (const auto& [k, c] : claims_) cs.push_back(&c.claim);
    draInv_.setClaims(cs);
  }
  for (const auto& pr : draInv_.problems())
    log::logger("capacity").warn("DRA inventory problem", {{"detail", pr.message}});
  // Which automatic pools are in DRA mode depends on the slices, the pools and the
  // nodes' labels only, not on claims.
  if (slicesChanged || draAll_) {
    std::set<std::string> autoPools;
    for (const auto& [name, raw] : rawNodes_) {
      bool published = false;
      for (const auto* e : draInv_.devicesOn(name)) published |= e->id.driver == dra::kNvidiaGpuDriver && !e->all_nodes;
      if (!published) continue;
      auto [owner, matches] = ownerLocked(*raw);
      if (owner && owner->spec.allocation.empty()) autoPools.insert(owner->metadata.name);
    }
    if (autoPools != autoDraPools_) {
      autoDraPools_ = std::move(autoPools);
      draAll_ = true;
    }
  }
  // Only the nodes whose devices, slices or claims changed are derived again.
  for (const auto& id : draDirtyDevices_)
    if (const auto* e = draInv_.device(id); e && !e->node.empty()) draDirtyNodes_.insert(e->node);
  auto refresh = [&](const std::string& name, const planners::NodeView& raw) {
    auto eff = effectiveLocked(raw);
    auto it = nodes_.find(name);
    if (it != nodes_.end() && sameCapacity(*it->second, eff)) return;
    auto stored = std::make_shared<const planners::NodeView>(std::move(eff));
    nodes_[name] = stored;
    if (!dirty_) applyNodeLocked(*stored);
  };
  if (draAll_) {
    for (const auto& [name, raw] : rawNodes_) refresh(name, *raw);
  } else {
    for (const auto& name : draDirtyNodes_)
      if (auto r = rawNodes_.find(name); r != rawNodes_.end()) refresh(name, *r->second);
  }
  draAll_ = false;
  draDirtyNodes_.clear();
  draDirtyDevices_.clear();
}

// ---- incremental upkeep (mu_ held) -----------------------------------------------------

std::pair<const api::CapacityPool*, int> CapacityCache::ownerLocked(const planners::NodeView& n) const {
  const api::CapacityPool* owner = nullptr;
  int matches = 0;
  for (const auto& [name, p] : pools_)  // name order: the first pool by name owns the node
    if (p->spec.selectsNode(n.labels)) {
      if (!owner) owner = p.get();
      ++matches;
    }
  return {owner, matches};
}

void CapacityCache::applyNodeLocked(const planners::NodeView& n) {
  auto [owner, matches] = ownerLocked(n);
  auto np = snap_.nodePool.find(n.name);
  const std::string was = np == snap_.nodePool.end() ? "" : np->second;
  const std::string now = owner ? owner->metadata.name : "";
  auto& inv = snap_.inventory;
  if (was != now && !was.empty()) {
    // Leaves its pool (or moves to another): fine while it holds no worker.
    if (!inv.removeNode(n.name).empty()) {
      dirty_ = true;
      return;
    }
    snap_.nodePool.erase(np);
  }
  if (!owner) return;
  ++stats_.nodeUpserts;
  auto spec = planners::toNodeSpec(n, now, owner->spec.sharing.mode);
  if (matches > 1) spec.unschedulable = true;  // conflicting membership (buildSnapshot)
  if (!planners::topologyMismatch(*owner, n).empty()) spec.unschedulable = true;
  if (!inv.upsertNode(std::move(spec))) {
    dirty_ = true;  // e.g. GPUs that hold workers would disappear: the rebuild decides
    return;
  }
  snap_.nodePool[n.name] = now;
  retryConflictsLocked();  // claims on a node that was unknown may apply now
}

void CapacityCache::applyWorkerLocked(const planners::WorkerPod& w) {
  const std::string key = w.key();
  auto cur = applied_.find(key);
  if (!holdsGpus(w)) {
    releaseWorkerLocked(key);
    return;
  }
  if (cur != applied_.end() && cur->second == w.assignment) return;  // nothing moved
  const bool released = cur != applied_.end();
  if (released) {
    snap_.inventory.forget(key);
    applied_.erase(cur);
  }
  conflicts_.erase(key);
  auto a = scheduling::decodeAssignment(w.assignment);
  if (!a) {
    scheduling::Conflict c;
    c.kind = scheduling::Conflict::Kind::Malformed;
    c.worker = key;
    c.node = w.node;
    c.message = a.error();
    conflicts_[key] = std::move(c);
  } else if (auto r = snap_.inventory.assume(planners::requestFromAssignment(*a, key, w.ns + "/" + w.deployment), *a);
             r) {
    applied_[key] = w.assignment;
  } else {
    conflicts_[key] = std::move(r.error());
  }
  if (released) retryConflictsLocked();
}

void CapacityCache::releaseWorkerLocked(const std::string& key) {
  conflicts_.erase(key);
  auto cur = applied_.find(key);
  if (cur == applied_.end()) return;
  snap_.inventory.forget(key);
  applied_.erase(cur);
  retryConflictsLocked();
}

void CapacityCache::retryConflictsLocked() {
  if (conflicts_.empty()) return;
  // Oldest claim first, as the rebuild orders them.
  std::vector<std::pair<int64_t, const planners::WorkerPod*>> waiting;
  for (const auto& [key, c] : conflicts_) {
    if (c.kind == scheduling::Conflict::Kind::Malformed) continue;
    const planners::WorkerPod* w = nullptr;
    if (auto p = pods_.find(key); p != pods_.end()) w = p->second.get();
    else if (auto a = assumed_.find(key); a != assumed_.end()) w = &a->second.pod;
    if (!w) continue;
    const int64_t order =
        w->created ? std::chrono::duration_cast<std::chrono::seconds>(w->created->time_since_epoch()).count()
                   : INT64_MAX;
    waiting.emplace_back(order, w);
  }
  std::sort(waiting.begin(), waiting.end(), [](const auto& a, const auto& b) {
    return a.first != b.first ? a.first < b.first : a.second->key() < b.second->key();
  });
  for (const auto& [order, w] : waiting) {
    auto a = scheduling::decodeAssignment(w->assignment);
    if (!a) continue;
    const std::string key = w->key();
    if (snap_.inventory.assume(planners::requestFromAssignment(*a, key, w->ns + "/" + w->deployment), *a)) {
      applied_[key] = w->assignment;
      conflicts_.erase(key);
    }
  }
}

void CapacityCache::rebuildLocked() {
  planners::SnapshotRefs refs;
  for (const auto& [n, p] : pools_) refs.pools.push_back(p.get());
  for (const auto& [n, v] : nodes_) refs.nodes.push_back(v.get());
  for (const auto& [k, p] : pods_) refs.pods.push_back(p.get());
  for (const auto& [k, a] : assumed_) refs.pods.push_back(&a.pod);
  snap_ = planners::buildSnapshot(refs);  // no holds: a Txn applies them
  applied_.clear();
  conflicts_.clear();
  for (auto& c : snap_.conflicts) conflicts_[c.worker] = std::move(c);
  snap_.conflicts.clear();
  for (const auto* p : refs.pods)
    if (holdsGpus(*p) && !conflicts_.count(p->key())) applied_[p->key()] = p->assignment;
  dirty_ = false;
  ++stats_.rebuilds;
}

void CapacityCache::expireLocked() {
  const MonotonicTime now = time_->monotonicTime();
  for (auto it = assumed_.begin(); it != assumed_.end();) {
    if (now - it->second.at <= opts_.assumeTimeout) {
      ++it;
      continue;
    }
    // Created (we thought) and never seen: its GPUs go back.
    const std::string key = it->first;
    it = assumed_.erase(it);
    workerClaimChangedLocked(key);
    ++stats_.expiredAssumed;
    if (!pods_.count(key) && !dirty_) releaseWorkerLocked(key);
  }
  std::erase_if(expectedDeletions_, [&](const auto& kv) { return now - kv.second > opts_.deletionTimeout; });
  std::erase_if(expectedDrains_, [&](const auto& kv) { return now - kv.second.second > opts_.deletionTimeout; });
}

std::vector<planners::PoolHold> CapacityCache::holdsLocked(const TxnOptions& opts) const {
  std::vector<planners::PoolHold> out;
  for (const auto& [key, hs] : holds_)
    if (!opts.holdOverride || opts.holdOverride->first != key) out.insert(out.end(), hs.begin(), hs.end());
  if (opts.holdOverride) out.insert(out.end(), opts.holdOverride->second.begin(), opts.holdOverride->second.end());
  return out;
}

planners::WorkerPod CapacityCache::expectedLocked(const planners::WorkerPod& w) const {
  planners::WorkerPod out = w;
  if (!out.deleting && !out.uid.empty() && expectedDeletions_.count(out.uid)) out.deleting = true;
  if (!out.drainingSince)
    if (auto d = expectedDrains_.find(out.key()); d != expectedDrains_.end()) out.drainingSince = d->second.first;
  return out;
}

// ---- outside a Txn -------------------------------------------------------------------

void CapacityCache::forget(const std::string& key) {
  std::lock_guard g(mu_);
  if (!assumed_.erase(key)) return;
  workerClaimChangedLocked(key);
  if (!pods_.count(key) && !dirty_) releaseWorkerLocked(key);
}

void CapacityCache::assume(const kube::Json& pod) {
  auto txn = begin(TxnOptions::withoutHolds());
  txn.assume(pod);
}

void CapacityCache::expectDeletion(const std::string& uid) {
  if (uid.empty()) return;
  std::lock_guard g(mu_);
  expectedDeletions_[uid] = time_->monotonicTime();
}

void CapacityCache::expectDrain(const std::string& key, SystemTime since) {
  std::lock_guard g(mu_);
  expectedDrains_[key] = {since, time_->monotonicTime()};
}

CapacityCacheStats CapacityCache::stats() const {
  std::lock_guard g(mu_);
  CapacityCacheStats s = stats_;
  s.assumed = assumed_.size();
  s.expectedDeletions = expectedDeletions_.size();
  s.conflicts = conflicts_.size();
  s.resourceSlices = slices_.size();
  s.resourceClaims = claims_.size();
  return s;
}

// ---- Txn -----------------------------------------------------------------------------

CapacityCache::Txn CapacityCache::begin(TxnOptions opts) { return Txn(*this, std::move(opts)); }

CapacityCache::Txn::Txn(CapacityCache& c, TxnOptions opts) : c_(&c), lk_(c.mu_) {
  c_->expireLocked();
  c_->refreshDraLocked();
  if (c_->dirty_) c_->rebuildLocked();
  auto& snap = c_->snap_;
  snap.conflicts.clear();
  for (const auto& [k, conflict] : c_->conflicts_) snap.conflicts.push_back(conflict);
  snap.holds.clear();
  if (opts.holds) {
    holds_ = c_->holdsLocked(opts);
    if (!holds_.empty()) {
      planners::applyHolds(snap, holds_);
      holdsApplied_ = true;
    }
  }
}

CapacityCache::Txn::Txn(Txn&& o) noexcept
    : c_(o.c_), lk_(std::move(o.lk_)), holdsApplied_(o.holdsApplied_), holds_(std::move(o.holds_)) {
  o.c_ = nullptr;
}

CapacityCache::Txn::~Txn() {
  if (!c_ || !lk_.owns_lock()) return;
  // Between Txns the inventory holds workers only: events apply to it as they come.
  if (holdsApplied_) planners::withdrawHolds(c_->snap_);
  c_->snap_.conflicts.clear();
}

planners::Snapshot& CapacityCache::Txn::snapshot() { return c_->snap_; }

std::vector<planners::WorkerPod> CapacityCache::Txn::workersOf(const std::string& ns,
                                                                const std::string& deployment) const {
  std::vector<planners::WorkerPod> out;
  for (const auto& [k, p] : c_->pods_)
    if (p->deployment == deployment && p->ns == ns) out.push_back(c_->expectedLocked(*p));
  for (const auto& [k, a] : c_->assumed_)
    if (a.pod.deployment == deployment && a.pod.ns == ns && !c_->pods_.count(k)) out.push_back(c_->expectedLocked(a.pod));
  return out;
}

std::vector<planners::WorkerPod> CapacityCache::Txn::workers() const {
  std::vector<planners::WorkerPod> out;
  out.reserve(c_->pods_.size() + c_->assumed_.size());
  for (const auto& [k, p] : c_->pods_) out.push_back(c_->expectedLocked(*p));
  for (const auto& [k, a] : c_->assumed_)
    if (!c_->pods_.count(k)) out.push_back(c_->expectedLocked(a.pod));
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.key() < b.key(); });
  return out;
}

const planners::NodeView* CapacityCache::Txn::node(const std::string& name) const {
  auto it = c_->nodes_.find(name);
  return it == c_->nodes_.end() ? nullptr : it->second.get();
}

bool CapacityCache::Txn::draNode(const std::string& node) const {
  auto it = c_->nodes_.find(node);
  return it != c_->nodes_.end() && it->second->dra;
}

std::expected<dra::Allocation, std::string> CapacityCache::Txn::draAllocation(const std::string& node,
                                                                              const std::vector<int>& gpus) const {
  return dra::allocateGpus(c_->draInv_, node, gpus);
}

std::vector<OrphanClaim> CapacityCache::Txn::orphanClaims(const std::string& ns) const {
  std::vector<OrphanClaim> out;
  for (const auto& [key, c] : c_->claims_) {
    if (!c.waterline || c.worker.empty() || c.claim.ns != ns) continue;
    const std::string pod = ns + "/" + c.worker;
    if (c_->pods_.count(pod) || c_->assumed_.count(pod)) continue;
    out.push_back({ns, c.claim.name, c.claim.uid, c.deployment, c.worker});
  }
  return out;
}

std::vector<UnreservedClaim> CapacityCache::Txn::unreservedClaims(const std::string& ns) const {
  std::vector<UnreservedClaim> out;
  for (const auto& [key, c] : c_->claims_) {
    if (!c.waterline || c.worker.empty() || c.claim.ns != ns || !c.claim.allocated) continue;
    auto p = c_->pods_.find(ns + "/" + c.worker);
    if (p == c_->pods_.end() || p->second->uid.empty() || p->second->terminal() || p->second->deleting) continue;
    bool reserved = false;
    for (const auto& r : c.claim.reserved_for) reserved |= r.uid == p->second->uid;
    if (!reserved) out.push_back({ns, c.claim.name, c.deployment, c.worker, p->second->uid});
  }
  return out;
}

std::vector<const api::CapacityPool*> CapacityCache::Txn::pools() const {
  std::vector<const api::CapacityPool*> out;
  for (const auto& [n, p] : c_->pools_) out.push_back(p.get());
  return out;
}

void CapacityCache::Txn::assume(const kube::Json& pod) {
  auto w = planners::WorkerPod::fromJson(pod);
  const std::string key = w.key();
  if (c_->pods_.count(key)) return;  // the watch shows it already: it is the truth
  c_->assumed_[key] = {w, c_->time_->monotonicTime()};
  c_->workerClaimChangedLocked(key);  // its claim is a worker's now
  if (c_->dirty_) return;
  // The planner assumed its placement into the inventory itself: adopt it.
  if (!c_->applied_.count(key) && c_->snap_.inventory.worker(key) && holdsGpus(w)) {
    c_->applied_[key] = w.assignment;
    return;
  }
  c_->applyWorkerLocked(w);
}

}  // namespace waterline::capacity
