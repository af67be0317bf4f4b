#include "waterline/scheduling/inventory.h"

#include <atomic>

#include <algorithm>
#include <bit>
#include <cmath>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <sstream>

#include "waterline/scheduling/annotation.h"

namespace waterline::scheduling {

std::string_view toString(Conflict::Kind k) {
  switch (k) {
    case Conflict::Kind::UnknownNode: return "UnknownNode";
    case Conflict::Kind::UnknownGpu: return "UnknownGpu";
    case Conflict::Kind::DuplicateWorker: return "DuplicateWorker";
    case Conflict::Kind::Occupied: return "Occupied";
    case Conflict::Kind::InvalidPlacement: return "InvalidPlacement";
    case Conflict::Kind::ModeMismatch: return "ModeMismatch";
    case Conflict::Kind::ReservedForOther: return "ReservedForOther";
    case Conflict::Kind::Malformed: return "Malformed";
  }
  return "?";
}

namespace {

int popcount8(MigState s) { return std::popcount(static_cast<unsigned>(s & 0xffu)); }

bool isShared(SharingMode m) { return m == SharingMode::TimeSlicing || m == SharingMode::MPS; }

// Units of the class's resource a GPU has in use: a busy GPU (Exclusive), occupied memory
// slices (MIG), taken share slots (TimeSlicing / MPS). Foreign occupancy (left over from
// a pool reconfiguration) counts as full.
int gpuUsedUnits(const NodeClass& c, const GpuState& g) {
  switch (c.mode) {
    case SharingMode::Exclusive:
      return g.idle() ? 0 : 1;
    case SharingMode::MIG:
      if (g.whole_owner != kNone || g.share_mask != 0) return c.units_per_gpu;
      return popcount8(g.mig);
    case SharingMode::TimeSlicing:
    case SharingMode::MPS:
      if (g.whole_owner != kNone || g.mig != 0) return c.units_per_gpu;
      return std::popcount(g.share_mask);
  }
  return 0;
}

// Preferred start slot per (state, profile) for a set of allowed profiles:
//   1. the fewest free slices left that no allowed profile can ever use (dead slices);
//   2. the most free placements of the largest allowed profiles, compared
//      lexicographically from the largest profile down;
//   3. the highest start, so small instances fill a GPU from its end and keep slice 0..
//      free for 4g/7g instances.
using SlotTable = std::vector<std::array<std::int8_t, 16>>;

const SlotTable* slotTable(const MigGeometry* g, std::uint16_t allowed) {
  static std::mutex mu;
  static std::map<std::pair<const MigGeometry*, std::uint16_t>, std::unique_ptr<SlotTable>> cache;
  std::lock_guard<std::mutex> lk(mu);
  auto& slot = cache[{g, allowed}];
  if (slot) return slot.get();
  auto t = std::make_unique<SlotTable>(kMigStates);
  std::vector<int> order;
  for (std::size_t p = 0; p < g->profiles.size(); ++p) {
    if (allowed & (1u << p)) order.push_back(static_cast<int>(p));
  }
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) {
    const auto &pa = g->profiles[a], &pb = g->profiles[b];
    if (pa.memory_slices != pb.memory_slices) return pa.memory_slices > pb.memory_slices;
    return pa.compute_slices > pb.compute_slices;
  });
  auto flex = [&](MigState s) {
    std::vector<int> v;
    for (int p : order) {
      int c = 0;
      for (int st = 0; st < g->memory_slices; ++st) c += g->canPlace(s, p, st) ? 1 : 0;
      v.push_back(c);
    }
    return v;
  };
  auto dead = [&](MigState s) {
    unsigned cover = 0;
    for (int p : order) {
      for (int st = 0; st < g->memory_slices; ++st) {
        if (g->canPlace(s, p, st)) cover |= g->placementMask(p, st);
      }
    }
    const unsigned free = ~static_cast<unsigned>(s) & ((1u << g->memory_slices) - 1u);
    return std::popcount(free & ~cover);
  };
  for (int s = 0; s < kMigStates; ++s) {
    auto& row = (*t)[s];
    row.fill(-1);
    for (std::size_t p = 0; p < g->profiles.size() && p < 16; ++p) {
      std::vector<int> best;
      int best_start = -1, best_dead = 0;
      for (int st = 0; st < g->memory_slices; ++st) {
        if (!g->canPlace(static_cast<MigState>(s), static_cast<int>(p), st)) continue;
        const MigState after = g->place(static_cast<MigState>(s), static_cast<int>(p), st);
        const int d = dead(after);
        auto f = flex(after);
        // >=: ties go to the higher start.
        if (best_start < 0 || d < best_dead || (d == best_dead && f >= best)) {
          best = std::move(f);
          best_start = st;
          best_dead = d;
        }
      }
      row[p] = static_cast<std::int8_t>(best_start);
    }
  }
  slot = std::move(t);
  return slot.get();
}

std::string workerName(const std::vector<WorkerRecord>& ws, WorkerId id) {
  return id < ws.size() ? ws[id].name : std::string("?");
}

}  // namespace

std::uint32_t NodeState::replicasOf(DeploymentId d) const {
  for (const auto& [dep, n] : replicas) {
    if (dep == d) return n;
  }
  return 0;
}

void ShapeIndex::insert(int key, std::uint32_t local) {
  const auto k = static_cast<std::size_t>(key);
  if (k >= slot_of_key.size()) {
    slot_of_key.resize(k + 1, -1);
    const std::size_t words = (slot_of_key.size() + 63) / 64;
    if (nonempty.size() < words) nonempty.resize(words, 0);
  }
  if (slot_of_key[k] < 0) {
    slot_of_key[k] = static_cast<std::int32_t>(sets.size());
    sets.emplace_back();
  }
  sets[static_cast<std::size_t>(slot_of_key[k])].insert(local);
  nonempty[k >> 6] |= std::uint64_t{1} << (k & 63);
}

void ShapeIndex::erase(int key, std::uint32_t local) {
  const auto k = static_cast<std::size_t>(key);
  if (k >= slot_of_key.size() || slot_of_key[k] < 0) return;
  detail::NodeSet& b = sets[static_cast<std::size_t>(slot_of_key[k])];
  b.erase(local);
  if (b.empty()) nonempty[k >> 6] &= ~(std::uint64_t{1} << (k & 63));
}

// ---------------------------------------------------------------------------------------
// Pools, nodes, classes

PoolId Inventory::findPool(std::string_view name) const {
  auto it = pool_ids_.find(std::string(name));
  return it == pool_ids_.end() ? kNone : it->second;
}

NodeId Inventory::findNode(std::string_view name) const {
  auto it = node_ids_.find(std::string(name));
  return it == node_ids_.end() ? kNone : it->second;
}

DeploymentId Inventory::findDeployment(std::string_view name) const {
  auto it = deployment_ids_.find(std::string(name));
  return it == deployment_ids_.end() ? kNone : it->second;
}

DeploymentId Inventory::internDeployment(std::string_view name) {
  auto [it, inserted] =
      deployment_ids_.emplace(std::string(name), static_cast<DeploymentId>(deployments_.size()));
  if (inserted) deployments_.emplace_back(name);
  return it->second;
}

std::vector<PoolId> Inventory::poolsByName() const {
  std::vector<PoolId> ids(pools_.size());
  for (PoolId i = 0; i < pools_.size(); ++i) ids[i] = i;
  std::sort(ids.begin(), ids.end(),
            [&](PoolId a, PoolId b) { return pools_[a].spec.name < pools_[b].spec.name; });
  return ids;
}

PoolId Inventory::poolForNode(const NodeSpec& n) const {
  if (!n.pool.empty()) return findPool(n.pool);
  for (PoolId p : poolsByName()) {
    const PoolSpec& s = pools_[p].spec;
    if (s.node_selector.empty()) continue;
    if (!s.gpu_product.empty() && s.gpu_product != n.gpu_product) continue;
    bool ok = true;
    for (const auto& [k, v] : s.node_selector) {
      auto it = n.labels.find(k);
      if (it == n.labels.end() || it->second != v) {
        ok = false;
        break;
      }
    }
    if (ok) return p;
  }
  return kNone;
}

ClassId Inventory::classFor(PoolId pool, const NodeSpec& n) {
  std::vector<Taint> taints = n.taints;
  std::sort(taints.begin(), taints.end());
  PoolState& ps = pools_[pool];
  for (ClassId c : ps.classes) {
    const NodeClass& cl = classes_[c];
    if (cl.product == n.gpu_product && cl.gpu_count == n.gpu_count &&
        cl.gpu_memory_mib == n.gpu_memory_mib && cl.taints == taints) {
      return c;
    }
  }
  NodeClass cl;
  cl.pool = pool;
  cl.product = n.gpu_product;
  cl.gpu_count = n.gpu_count;
  cl.gpu_memory_mib = n.gpu_memory_mib;
  cl.taints = std::move(taints);
  cl.mode = ps.spec.sharing;
  switch (cl.mode) {
    case SharingMode::Exclusive:
      cl.units_per_gpu = 1;
      cl.shapes.resize(1);
      break;
    case SharingMode::MIG: {
      cl.mig = migGeometryForProduct(cl.product);
      if (!cl.mig) {
        cl.units_per_gpu = 1;
        break;
      }
      cl.units_per_gpu = cl.mig->memory_slices;
      std::uint16_t allowed = 0;
      for (std::size_t p = 0; p < cl.mig->profiles.size(); ++p) {
        const std::string& name = cl.mig->profiles[p].name;
        if (ps.spec.mig_profiles.empty() ||
            std::find(ps.spec.mig_profiles.begin(), ps.spec.mig_profiles.end(), name) !=
                ps.spec.mig_profiles.end()) {
          cl.mig_profiles.push_back(static_cast<int>(p));
          allowed = static_cast<std::uint16_t>(allowed | (1u << p));
        }
      }
      cl.best_slot = slotTable(cl.mig, allowed);
      for (int p : cl.mig_profiles) {
        ShapeIndex si;
        si.mig_profile = p;
        cl.shapes.push_back(std::move(si));
      }
      break;
    }
    case SharingMode::TimeSlicing:
    case SharingMode::MPS:
      cl.units_per_gpu = std::max(1, ps.spec.slices_per_gpu);
      // A 1/k share takes units/k slices; one shape index per divisor.
      for (int n = 1; n <= cl.units_per_gpu; ++n) {
        if (cl.units_per_gpu % n == 0) cl.share_sizes.push_back(n);
      }
      cl.shapes.resize(cl.share_sizes.size());
      break;
  }
  const ClassId id = static_cast<ClassId>(classes_.size());
  classes_.push_back(std::move(cl));
  ps.classes.push_back(id);
  return id;
}

void Inventory::attach(NodeId n) {
  NodeState& ns = nodes_[n];
  ns.cls = kNone;
  ns.keys.clear();
  ns.pool = poolForNode(ns.spec);
  if (ns.pool == kNone) return;
  const ClassId c = classFor(ns.pool, ns.spec);
  ns.cls = c;
  NodeClass& cl = classes_[c];
  ns.local = static_cast<std::uint32_t>(cl.members.size());
  cl.members.push_back(n);
  cl.dirty = true;
  any_dirty_ = true;
  ns.keys.assign(cl.shapes.size(), -1);
  ns.pool_used = 0;
  ns.pool_capacity = 0;
  PoolState& ps = pools_[ns.pool];
  ps.gpus += static_cast<std::uint32_t>(ns.gpus.size());
  ps.reserved_gpus += ns.reserved_gpus;
  for (const auto& [d, cnt] : ns.replicas) ps.replicas[d] += cnt;
}

void Inventory::detach(NodeId n) {
  NodeState& ns = nodes_[n];
  if (ns.pool == kNone) return;
  unindex(n);
  NodeClass& cl = classes_[ns.cls];
  auto it = std::find(cl.members.begin(), cl.members.end(), n);
  if (it != cl.members.end()) cl.members.erase(it);
  cl.dirty = true;
  any_dirty_ = true;
  PoolState& ps = pools_[ns.pool];
  ps.used_units -= ns.pool_used;
  ps.capacity_units -= ns.pool_capacity;
  ns.pool_used = 0;
  ns.pool_capacity = 0;
  ps.gpus -= static_cast<std::uint32_t>(ns.gpus.size());
  ps.reserved_gpus -= ns.reserved_gpus;
  for (const auto& [d, cnt] : ns.replicas) {
    auto r = ps.replicas.find(d);
    if (r != ps.replicas.end()) {
      r->second -= cnt;
      if (r->second == 0) ps.replicas.erase(r);
    }
  }
  ns.pool = kNone;
  ns.cls = kNone;
  ns.keys.clear();
}


namespace {
struct NodeScan {
  int usable = 0;
  int used = 0;
  int idle = 0;
  std::uint32_t fit = 0;           // bit per class shape index
  std::array<std::uint8_t, 16> fill{};  // per class shape index: best partitioned fill level
};
}  // namespace

// One pass over a node's GPUs under a scope.
static NodeScan scanNode(const Inventory& inv, const NodeState& ns, const NodeClass& cl,
                         GpuScope scope) {
  NodeScan r;
  std::uint16_t anyfit = 0;
  std::array<std::uint8_t, 16> pfill{};  // per geometry profile
  std::uint32_t share_fit = 0;
  std::array<std::uint8_t, 16> share_fill{};
  const int k = cl.units_per_gpu;
  for (const GpuState& g : ns.gpus) {
    if (!inv.usable(g, scope)) continue;
    ++r.usable;
    r.used += gpuUsedUnits(cl, g);
    if (g.idle()) ++r.idle;
    if (cl.mode == SharingMode::MIG && cl.mig) {
      if (g.whole_owner == kNone && g.share_mask == 0) {
        std::uint16_t f = cl.mig->fits[g.mig];
        anyfit |= f;
        if (g.mig & 0xffu) {
          const auto level = static_cast<std::uint8_t>(cl.fillLevel(popcount8(g.mig)));
          while (f) {
            const int p = std::countr_zero(f);
            f &= static_cast<std::uint16_t>(f - 1);
            pfill[p] = std::max(pfill[p], level);
          }
        }
      }
    } else if (isShared(cl.mode)) {
      if (g.whole_owner == kNone && g.mig == 0) {
        const int pc = std::popcount(g.share_mask);
        const auto level = static_cast<std::uint8_t>(cl.fillLevel(pc));
        for (std::size_t i = 0; i < cl.share_sizes.size() && i < 16; ++i) {
          if (k - pc < cl.share_sizes[i]) break;  // sizes ascend
          share_fit |= 1u << i;
          share_fill[i] = std::max(share_fill[i], level);
        }
      }
    }
  }
  switch (cl.mode) {
    case SharingMode::Exclusive:
      if (r.idle > 0) r.fit = 1;
      break;
    case SharingMode::MIG:
      for (std::size_t i = 0; i < cl.mig_profiles.size() && i < 16; ++i) {
        const int p = cl.mig_profiles[i];
        if ((anyfit >> p) & 1u) r.fit |= 1u << i;
        r.fill[i] = pfill[p];
      }
      break;
    case SharingMode::TimeSlicing:
    case SharingMode::MPS:
      r.fit = share_fit;
      r.fill = share_fill;
      break;
  }
  return r;
}

void Inventory::reindex(NodeId n) {
  NodeState& ns = nodes_[n];
  if (ns.cls == kNone) return;
  NodeClass& cl = classes_[ns.cls];
  if (cl.dirty) return;
  const bool sched = ns.schedulable();
  NodeScan scan;
  if (sched) scan = scanNode(*this, ns, cl, GpuScope{});
  const std::int32_t cap = sched ? scan.usable * cl.units_per_gpu : 0;
  const std::int32_t used = sched ? scan.used : 0;
  PoolState& ps = pools_[ns.pool];
  ps.used_units += used - ns.pool_used;
  ps.capacity_units += cap - ns.pool_capacity;
  ns.pool_used = used;
  ns.pool_capacity = cap;
  for (std::size_t i = 0; i < cl.shapes.size(); ++i) {
    int key = -1;
    if (sched && ((scan.fit >> i) & 1u)) {
      // Exclusive: `used` counts busy GPUs among usable ones, so free = usable - used.
      key = cl.keyOf(scan.used, scan.usable, scan.fill[i]);
    }
    if (key != ns.keys[i]) {
      if (ns.keys[i] >= 0) cl.shapes[i].erase(ns.keys[i], ns.local);
      if (key >= 0) cl.shapes[i].insert(key, ns.local);
      ns.keys[i] = key;
    }
  }
}

void Inventory::unindex(NodeId n) {
  NodeState& ns = nodes_[n];
  if (ns.cls == kNone) return;
  NodeClass& cl = classes_[ns.cls];
  for (std::size_t i = 0; i < ns.keys.size(); ++i) {
    if (ns.keys[i] >= 0 && !cl.dirty) cl.shapes[i].erase(ns.keys[i], ns.local);
    ns.keys[i] = -1;
  }
}

void Inventory::flushClass(ClassId c) {
  NodeClass& cl = classes_[c];
  std::sort(cl.members.begin(), cl.members.end(),
            [&](NodeId a, NodeId b) { return nodes_[a].spec.name < nodes_[b].spec.name; });
  for (ShapeIndex& si : cl.shapes) si.clear();
  cl.dirty = false;
  for (std::uint32_t i = 0; i < cl.members.size(); ++i) {
    NodeState& ns = nodes_[cl.members[i]];
    ns.local = i;
    ns.keys.assign(cl.shapes.size(), -1);
    reindex(cl.members[i]);
  }
}

std::uint64_t Inventory::nextVersion() {
  static std::atomic<std::uint64_t> counter{0};
  return ++counter;
}

void Inventory::prepare() {
  if (!any_dirty_) return;
  for (ClassId c = 0; c < classes_.size(); ++c) {
    if (classes_[c].dirty) flushClass(c);
  }
  any_dirty_ = false;
}

std::expected<void, std::string> Inventory::upsertPool(PoolSpec spec) {
  touch();
  if (spec.name.empty()) return std::unexpected(std::string("pool name is empty"));
  if (isShared(spec.sharing) && (spec.slices_per_gpu < 1 || spec.slices_per_gpu > 64)) {
    return std::unexpected("pool " + spec.name + ": slicesPerGpu must be 1..64");
  }
  if (!(spec.reservable_fraction >= 0.0 && spec.reservable_fraction <= 1.0)) {
    return std::unexpected("pool " + spec.name + ": reservableFraction must be in [0,1]");
  }
  PoolId id = findPool(spec.name);
  if (id == kNone) {
    id = static_cast<PoolId>(pools_.size());
    PoolState ps;
    ps.spec = std::move(spec);
    pool_ids_.emplace(ps.spec.name, id);
    pools_.push_back(std::move(ps));
  } else {
    // Detach the pool's nodes and retire its classes; they are rebuilt below.
    for (NodeId n = 0; n < nodes_.size(); ++n) {
      if (!nodes_[n].spec.name.empty() && nodes_[n].pool == id) detach(n);
    }
    for (ClassId c : pools_[id].classes) {
      classes_[c].pool = kNone;
      classes_[c].members.clear();
      classes_[c].shapes.clear();
      classes_[c].dirty = false;
    }
    pools_[id].classes.clear();
    pools_[id].spec = std::move(spec);
  }
  // Membership may change for any node that selects its pool by labels.
  for (NodeId n = 0; n < nodes_.size(); ++n) {
    NodeState& ns = nodes_[n];
    if (ns.spec.name.empty()) continue;
    const PoolId want = poolForNode(ns.spec);
    if (want != ns.pool || ns.pool == kNone) {
      detach(n);
      attach(n);
    }
  }
  return {};
}

std::expected<void, std::string> Inventory::upsertNode(NodeSpec spec) {
  touch();
  spec = withGfdDefaults(std::move(spec));
  if (spec.name.empty()) return std::unexpected(std::string("node name is empty"));
  if (spec.gpu_count < 0 || spec.gpu_count > 64) {
    return std::unexpected("node " + spec.name + ": gpu count must be 0..64");
  }
  for (int u : spec.unhealthy_gpus) {
    if (u < 0 || u >= spec.gpu_count) {
      return std::unexpected("node " + spec.name + ": unhealthy GPU index out of range");
    }
  }
  NodeId id = findNode(spec.name);
  if (id == kNone) {
    if (!free_node_slots_.empty()) {
      id = free_node_slots_.back();
      free_node_slots_.pop_back();
    } else {
      id = static_cast<NodeId>(nodes_.size());
      nodes_.emplace_back();
    }
    NodeState& ns = nodes_[id];
    ns = NodeState{};
    ns.gpus.resize(static_cast<std::size_t>(spec.gpu_count));
    for (int u : spec.unhealthy_gpus) ns.gpus[u].healthy = false;
    ns.spec = std::move(spec);
    node_ids_.emplace(ns.spec.name, id);
    attach(id);
    return {};
  }
  NodeState& ns = nodes_[id];
  const std::size_t old_count = ns.gpus.size();
  if (static_cast<std::size_t>(spec.gpu_count) < old_count) {
    for (std::size_t g = spec.gpu_count; g < old_count; ++g) {
      if (!ns.gpus[g].idle() || ns.gpus[g].reserved_for != kNone) {
        return std::unexpected("node " + spec.name + ": GPU " + std::to_string(g) +
                               " is in use or reserved and cannot disappear");
      }
    }
  }
  std::vector<Taint> a = ns.spec.taints, b = spec.taints;
  std::sort(a.begin(), a.end());
  std::sort(b.begin(), b.end());
  const bool reclass = ns.spec.pool != spec.pool || ns.spec.labels != spec.labels ||
                       ns.spec.gpu_product != spec.gpu_product ||
                       ns.spec.gpu_count != spec.gpu_count ||
                       ns.spec.gpu_memory_mib != spec.gpu_memory_mib || a != b;
  if (reclass) detach(id);
  ns.gpus.resize(static_cast<std::size_t>(spec.gpu_count));
  for (auto& g : ns.gpus) g.healthy = true;
  for (int u : spec.unhealthy_gpus) ns.gpus[u].healthy = false;
  ns.spec = std::move(spec);
  if (reclass) {
    attach(id);
  } else {
    reindex(id);
  }
  return {};
}

std::vector<std::string> Inventory::removeNode(std::string_view name) {
  touch();
  const NodeId n = findNode(name);
  if (n == kNone) return {};
  std::vector<std::string> gone = workersOnNode(name);
  for (const std::string& w : gone) forget(w);
  NodeState& ns = nodes_[n];
  for (int g = 0; g < static_cast<int>(ns.gpus.size()); ++g) {
    GpuState& gs = ns.gpus[g];
    if (gs.reservation == kNone) continue;
    ReservationState& rs = reservations_[gs.reservation];
    std::erase(rs.gpus, std::pair<NodeId, int>{n, g});
    auto& m = reserved_nodes_[gs.reserved_for];
    if (--m[n] == 0) m.erase(n);
    if (m.empty()) reserved_nodes_.erase(gs.reserved_for);
    if (ns.pool != kNone) --pools_[ns.pool].reserved_gpus;
    --ns.reserved_gpus;
    gs.reservation = kNone;
    gs.reserved_for = kNone;
  }
  detach(n);
  node_ids_.erase(ns.spec.name);
  ns = NodeState{};
  free_node_slots_.push_back(n);
  return gone;
}

bool Inventory::setNodeReady(std::string_view name, bool ready) {
  touch();
  const NodeId n = findNode(name);
  if (n == kNone) return false;
  nodes_[n].spec.ready = ready;
  reindex(n);
  return true;
}

bool Inventory::setNodeUnschedulable(std::string_view name, bool unschedulable) {
  touch();
  const NodeId n = findNode(name);
  if (n == kNone) return false;
  nodes_[n].spec.unschedulable = unschedulable;
  reindex(n);
  return true;
}

bool Inventory::setGpuHealthy(std::string_view node, int index, bool healthy) {
  touch();
  const NodeId n = findNode(node);
  if (n == kNone) return false;
  NodeState& ns = nodes_[n];
  if (index < 0 || index >= static_cast<int>(ns.gpus.size())) return false;
  ns.gpus[index].healthy = healthy;
  auto& u = ns.spec.unhealthy_gpus;
  std::erase(u, index);
  if (!healthy) {
    u.push_back(index);
    std::sort(u.begin(), u.end());
  }
  reindex(n);
  return true;
}

// ---------------------------------------------------------------------------------------
// Occupancy

void Inventory::addReplica(NodeId n, DeploymentId d, int delta) {
  NodeState& ns = nodes_[n];
  auto it = std::lower_bound(ns.replicas.begin(), ns.replicas.end(), d,
                             [](const auto& e, DeploymentId v) { return e.first < v; });
  if (it == ns.replicas.end() || it->first != d) {
    it = ns.replicas.insert(it, {d, 0});
  }
  it->second = static_cast<std::uint32_t>(static_cast<int>(it->second) + delta);
  if (it->second == 0) ns.replicas.erase(it);
  if (ns.pool != kNone) {
    auto& m = pools_[ns.pool].replicas;
    auto& v = m[d];
    v = static_cast<std::uint32_t>(static_cast<int>(v) + delta);
    if (v == 0) m.erase(d);
  }
}

std::string Inventory::describeHolder(const GpuState& g, const Assignment& a) const {
  if (g.whole_owner != kNone) return workerName(workers_, g.whole_owner);
  if (a.kind == ShapeKind::Share) {
    for (const auto& s : g.shares) {
      for (int slot : a.share_slots) {
        if (s.slot == slot) return workerName(workers_, s.worker);
      }
    }
  }
  if (!g.mig_instances.empty()) {
    if (a.kind == ShapeKind::Mig) {
      // The first instance whose slices overlap the claimed placement.
      for (const auto& mi : g.mig_instances) {
        const NodeId n = workers_[mi.worker].node;
        const NodeClass* cl = nodes_[n].cls != kNone ? &classes_[nodes_[n].cls] : nullptr;
        if (!cl || !cl->mig) continue;
        const int p = cl->mig->profileIndex(a.mig_profile);
        if (p < 0 || a.mig_slot < 0 || a.mig_slot > 7) break;
        if (cl->mig->placementMask(mi.profile, mi.slot) & cl->mig->placementMask(p, a.mig_slot)) {
          return workerName(workers_, mi.worker);
        }
        if (cl->mig->profiles[mi.profile].media_extensions &&
            cl->mig->profiles[p].media_extensions) {
          return workerName(workers_, mi.worker);
        }
      }
    }
    return workerName(workers_, g.mig_instances.front().worker);
  }
  if (!g.shares.empty()) return workerName(workers_, g.shares.front().worker);
  return {};
}

std::expected<void, Conflict> Inventory::checkAssignment(const Request& r, const Assignment& a,
                                                         NodeId n, DeploymentId d) const {
  const NodeState& ns = nodes_[n];
  auto fail = [&](Conflict::Kind k, std::string msg, std::string holder = {}) {
    return std::unexpected(Conflict{k, r.worker, std::move(holder), a.node, std::move(msg)});
  };
  if (ns.pool == kNone) return fail(Conflict::Kind::ModeMismatch, "node is in no pool");
  const NodeClass& cl = classes_[ns.cls];
  if (a.gpus.empty()) return fail(Conflict::Kind::UnknownGpu, "no GPU index");
  for (std::size_t i = 0; i < a.gpus.size(); ++i) {
    if (a.gpus[i] < 0 || a.gpus[i] >= static_cast<int>(ns.gpus.size())) {
      return fail(Conflict::Kind::UnknownGpu, "GPU " + std::to_string(a.gpus[i]) + " does not exist");
    }
    if (i > 0 && a.gpus[i] <= a.gpus[i - 1]) {
      return fail(Conflict::Kind::Malformed, "GPU indices must ascend");
    }
  }
  if (a.kind != ShapeKind::Whole && a.gpus.size() != 1) {
    return fail(Conflict::Kind::Malformed, "fractional assignment names one GPU");
  }
  for (int gi : a.gpus) {
    const GpuState& g = ns.gpus[gi];
    if (g.reserved_for != kNone && g.reserved_for != d) {
      return fail(Conflict::Kind::ReservedForOther,
                  "GPU " + std::to_string(gi) + " is reserved for " + deployments_[g.reserved_for],
                  reservations_[g.reservation].name);
    }
  }
  switch (a.kind) {
    case ShapeKind::Whole:
      if (cl.mode != SharingMode::Exclusive) {
        return fail(Conflict::Kind::ModeMismatch,
                    "whole GPUs requested on a " + std::string(toString(cl.mode)) + " pool");
      }
      for (int gi : a.gpus) {
        const GpuState& g = ns.gpus[gi];
        if (!g.idle()) {
          return fail(Conflict::Kind::Occupied, "GPU " + std::to_string(gi) + " is in use",
                      describeHolder(g, a));
        }
      }
      break;
    case ShapeKind::Mig: {
      if (cl.mode != SharingMode::MIG) {
        return fail(Conflict::Kind::ModeMismatch,
                    "MIG instance on a " + std::string(toString(cl.mode)) + " pool");
      }
      if (!cl.mig) return fail(Conflict::Kind::InvalidPlacement, "no MIG geometry for " + cl.product);
      const int p = cl.mig->profileIndex(a.mig_profile);
      if (p < 0) {
        return fail(Conflict::Kind::InvalidPlacement,
                    "profile " + a.mig_profile + " does not exist on " + cl.product);
      }
      if (a.mig_slot < 0 || a.mig_slot > 7 || !(cl.mig->profiles[p].starts & (1u << a.mig_slot))) {
        return fail(Conflict::Kind::InvalidPlacement,
                    a.mig_profile + " cannot start at slot " + std::to_string(a.mig_slot));
      }
      const GpuState& g = ns.gpus[a.gpus[0]];
      if (g.whole_owner != kNone || g.share_mask != 0 || !cl.mig->canPlace(g.mig, p, a.mig_slot)) {
        return fail(Conflict::Kind::Occupied,
                    "slices of " + a.mig_profile + "@" + std::to_string(a.mig_slot) +
                        " on GPU " + std::to_string(a.gpus[0]) + " are in use",
                    describeHolder(g, a));
      }
      break;
    }
    case ShapeKind::Share: {
      if (!isShared(cl.mode)) {
        return fail(Conflict::Kind::ModeMismatch,
                    "GPU share on a " + std::string(toString(cl.mode)) + " pool");
      }
      if (a.shares_per_gpu != cl.units_per_gpu) {
        return fail(Conflict::Kind::ModeMismatch,
                    "share of 1/" + std::to_string(a.shares_per_gpu) + " on a pool of 1/" +
                        std::to_string(cl.units_per_gpu));
      }
      if (a.share_slots.empty() || cl.units_per_gpu % static_cast<int>(a.share_slots.size()) != 0) {
        return fail(Conflict::Kind::InvalidPlacement, "share slice count does not divide the GPU");
      }
      std::uint64_t mask = 0;
      for (std::size_t i = 0; i < a.share_slots.size(); ++i) {
        const int slot = a.share_slots[i];
        if (slot < 0 || slot >= cl.units_per_gpu || (i > 0 && slot <= a.share_slots[i - 1])) {
          return fail(Conflict::Kind::InvalidPlacement, "share slice out of range or not ascending");
        }
        mask |= std::uint64_t{1} << slot;
      }
      const GpuState& g = ns.gpus[a.gpus[0]];
      if (g.whole_owner != kNone || g.mig != 0 || (g.share_mask & mask) != 0) {
        return fail(Conflict::Kind::Occupied,
                    "share slices on GPU " + std::to_string(a.gpus[0]) + " are in use",
                    describeHolder(g, a));
      }
      break;
    }
  }
  return {};
}

std::expected<void, Conflict> Inventory::assume(const Request& request, const Assignment& a) {
  touch();
  if (request.worker.empty()) {
    return std::unexpected(Conflict{Conflict::Kind::Malformed, "", "", a.node, "worker name is empty"});
  }
  if (worker_ids_.count(request.worker)) {
    return std::unexpected(Conflict{Conflict::Kind::DuplicateWorker, request.worker, request.worker,
                                    a.node, "worker already placed"});
  }
  const NodeId n = findNode(a.node);
  if (n == kNone) {
    return std::unexpected(
        Conflict{Conflict::Kind::UnknownNode, request.worker, "", a.node, "node does not exist"});
  }
  DeploymentId d = findDeployment(request.deployment);
  if (auto ok = checkAssignment(request, a, n, d); !ok) return ok;
  if (d == kNone) d = internDeployment(request.deployment);

  WorkerId w;
  if (!free_worker_slots_.empty()) {
    w = free_worker_slots_.back();
    free_worker_slots_.pop_back();
  } else {
    w = static_cast<WorkerId>(workers_.size());
    workers_.emplace_back();
  }
  WorkerRecord& rec = workers_[w];
  rec.name = request.worker;
  rec.request = request;
  rec.assignment = a;
  rec.node = n;
  rec.deployment = d;
  rec.live = true;
  worker_ids_.emplace(rec.name, w);
  ++live_workers_;

  NodeState& ns = nodes_[n];
  const NodeClass& cl = classes_[ns.cls];
  switch (a.kind) {
    case ShapeKind::Whole:
      for (int gi : a.gpus) ns.gpus[gi].whole_owner = w;
      break;
    case ShapeKind::Mig: {
      GpuState& g = ns.gpus[a.gpus[0]];
      const int p = cl.mig->profileIndex(a.mig_profile);
      g.mig = cl.mig->place(g.mig, p, a.mig_slot);
      g.mig_instances.push_back(
          {w, static_cast<std::uint8_t>(p), static_cast<std::uint8_t>(a.mig_slot)});
      break;
    }
    case ShapeKind::Share: {
      GpuState& g = ns.gpus[a.gpus[0]];
      for (int slot : a.share_slots) {
        g.share_mask |= std::uint64_t{1} << slot;
        g.shares.push_back({w, static_cast<std::uint8_t>(slot)});
      }
      break;
    }
  }
  ++ns.workers;
  addReplica(n, d, +1);
  reindex(n);
  return {};
}

bool Inventory::forget(std::string_view worker) {
  touch();
  auto it = worker_ids_.find(std::string(worker));
  if (it == worker_ids_.end()) return false;
  const WorkerId w = it->second;
  WorkerRecord& rec = workers_[w];
  NodeState& ns = nodes_[rec.node];
  const Assignment& a = rec.assignment;
  switch (a.kind) {
    case ShapeKind::Whole:
      for (int gi : a.gpus) {
        if (ns.gpus[gi].whole_owner == w) ns.gpus[gi].whole_owner = kNone;
      }
      break;
    case ShapeKind::Mig: {
      GpuState& g = ns.gpus[a.gpus[0]];
      const NodeClass& cl = classes_[ns.cls];
      for (std::size_t i = 0; i < g.mig_instances.size(); ++i) {
        if (g.mig_instances[i].worker == w) {
          g.mig = cl.mig->remove(g.mig, g.mig_instances[i].profile, g.mig_instances[i].slot);
          g.mig_instances.erase(g.mig_instances.begin() + static_cast<std::ptrdiff_t>(i));
          break;
        }
      }
      break;
    }
    case ShapeKind::Share: {
      GpuState& g = ns.gpus[a.gpus[0]];
      for (const auto& e : g.shares) {
        if (e.worker == w) g.share_mask &= ~(std::uint64_t{1} << e.slot);
      }
      std::erase_if(g.shares, [w](const ShareEntry& e) { return e.worker == w; });
      break;
    }
  }
  --ns.workers;
  addReplica(rec.node, rec.deployment, -1);
  const NodeId n = rec.node;
  worker_ids_.erase(it);
  rec = WorkerRecord{};
  free_worker_slots_.push_back(w);
  --live_workers_;
  reindex(n);
  return true;
}

// ---------------------------------------------------------------------------------------
// Reservations

std::expected<ReservationRecord, std::string> Inventory::createReservation(
    std::string_view name, std::string_view deployment, std::string_view pool, int gpus) {
  touch();
  if (name.empty() || deployment.empty()) {
    return std::unexpected(std::string("reservation needs a name and a deployment"));
  }
  if (reservation_ids_.count(std::string(name))) {
    return std::unexpected("reservation " + std::string(name) + " exists");
  }
  const PoolId p = findPool(pool);
  if (p == kNone) return std::unexpected("pool " + std::string(pool) + " does not exist");
  if (gpus < 1) return std::unexpected(std::string("reservation needs at least one GPU"));
  const PoolState& ps = pools_[p];
  const auto cap = static_cast<std::uint32_t>(
      std::floor(ps.spec.reservable_fraction * static_cast<double>(ps.gpus) + 1e-9));
  if (ps.reserved_gpus + static_cast<std::uint32_t>(gpus) > cap) {
    return std::unexpected("pool " + ps.spec.name + " may reserve " + std::to_string(cap) +
                           " GPUs (reservableFraction " + std::to_string(ps.spec.reservable_fraction) +
                           "), " + std::to_string(ps.reserved_gpus) + " already reserved");
  }
  struct Cand {
    NodeId n;
    std::vector<int> idle;
  };
  std::vector<Cand> cands;
  for (ClassId c : ps.classes) {
    for (NodeId n : classes_[c].members) {
      const NodeState& ns = nodes_[n];
      if (!ns.schedulable()) continue;
      Cand cd{n, {}};
      for (int g = 0; g < static_cast<int>(ns.gpus.size()); ++g) {
        const GpuState& gs = ns.gpus[g];
        if (gs.healthy && gs.idle() && gs.reserved_for == kNone) cd.idle.push_back(g);
      }
      if (!cd.idle.empty()) cands.push_back(std::move(cd));
    }
  }
  std::sort(cands.begin(), cands.end(), [&](const Cand& a, const Cand& b) {
    if (a.idle.size() != b.idle.size()) return a.idle.size() > b.idle.size();
    return nodes_[a.n].spec.name < nodes_[b.n].spec.name;
  });
  std::size_t avail = 0;
  for (const auto& cd : cands) avail += cd.idle.size();
  if (avail < static_cast<std::size_t>(gpus)) {
    return std::unexpected("pool " + ps.spec.name + " has " + std::to_string(avail) +
                           " idle GPUs, reservation needs " + std::to_string(gpus));
  }
  ReservationRecord rec;
  rec.name = std::string(name);
  rec.deployment = std::string(deployment);
  int left = gpus;
  for (const auto& cd : cands) {
    for (int g : cd.idle) {
      if (left == 0) break;
      rec.gpus.push_back(GpuRef{nodes_[cd.n].spec.name, g});
      --left;
    }
    if (left == 0) break;
  }
  std::sort(rec.gpus.begin(), rec.gpus.end());
  auto conflicts = restoreReservation(rec);
  if (!conflicts.empty()) return std::unexpected(conflicts.front().message);
  return rec;
}

std::vector<Conflict> Inventory::restoreReservation(const ReservationRecord& r) {
  touch();
  std::vector<Conflict> out;
  if (reservation_ids_.count(r.name)) {
    out.push_back(Conflict{Conflict::Kind::DuplicateWorker, r.name, r.name, "",
                           "reservation already exists"});
    return out;
  }
  const DeploymentId d = internDeployment(r.deployment);
  const auto rid = static_cast<std::uint32_t>(reservations_.size());
  ReservationState rs;
  rs.name = r.name;
  rs.deployment = d;
  rs.live = true;
  reservations_.push_back(std::move(rs));
  reservation_ids_.emplace(r.name, rid);
  std::vector<GpuRef> refs = r.gpus;
  std::sort(refs.begin(), refs.end());
  for (const GpuRef& ref : refs) {
    const NodeId n = findNode(ref.node);
    if (n == kNone) {
      out.push_back(Conflict{Conflict::Kind::UnknownNode, r.name, "", ref.node, "node does not exist"});
      continue;
    }
    NodeState& ns = nodes_[n];
    if (ref.index < 0 || ref.index >= static_cast<int>(ns.gpus.size())) {
      out.push_back(Conflict{Conflict::Kind::UnknownGpu, r.name, "", ref.node,
                             "GPU " + std::to_string(ref.index) + " does not exist"});
      continue;
    }
    GpuState& g = ns.gpus[ref.index];
    if (g.reserved_for != kNone) {
      out.push_back(Conflict{Conflict::Kind::ReservedForOther, r.name,
                             reservations_[g.reservation].name, ref.node,
                             "GPU " + std::to_string(ref.index) + " is already reserved"});
      continue;
    }
    std::string other;
    auto check = [&](WorkerId w) {
      if (other.empty() && workers_[w].deployment != d) other = workers_[w].name;
    };
    if (g.whole_owner != kNone) check(g.whole_owner);
    for (const auto& mi : g.mig_instances) check(mi.worker);
    for (const auto& s : g.shares) check(s.worker);
    if (!other.empty()) {
      out.push_back(Conflict{Conflict::Kind::Occupied, r.name, other, ref.node,
                             "GPU " + std::to_string(ref.index) + " is used by another deployment"});
      continue;
    }
    g.reserved_for = d;
    g.reservation = rid;
    ++ns.reserved_gpus;
    if (ns.pool != kNone) ++pools_[ns.pool].reserved_gpus;
    ++reserved_nodes_[d][n];
    reservations_[rid].gpus.emplace_back(n, ref.index);
    reindex(n);
  }
  return out;
}

bool Inventory::releaseReservation(std::string_view name) {
  touch();
  auto it = reservation_ids_.find(std::string(name));
  if (it == reservation_ids_.end()) return false;
  ReservationState& rs = reservations_[it->second];
  for (const auto& [n, gi] : rs.gpus) {
    NodeState& ns = nodes_[n];
    GpuState& g = ns.gpus[gi];
    g.reserved_for = kNone;
    g.reservation = kNone;
    --ns.reserved_gpus;
    if (ns.pool != kNone) --pools_[ns.pool].reserved_gpus;
    auto& m = reserved_nodes_[rs.deployment];
    if (--m[n] == 0) m.erase(n);
    if (m.empty()) reserved_nodes_.erase(rs.deployment);
    reindex(n);
  }
  rs = ReservationState{};
  reservation_ids_.erase(it);
  return true;
}

std::optional<ReservationRecord> Inventory::reservation(std::string_view name) const {
  auto it = reservation_ids_.find(std::string(name));
  if (it == reservation_ids_.end()) return std::nullopt;
  const ReservationState& rs = reservations_[it->second];
  ReservationRecord r;
  r.name = rs.name;
  r.deployment = deployments_[rs.deployment];
  for (const auto& [n, g] : rs.gpus) r.gpus.push_back(GpuRef{nodes_[n].spec.name, g});
  std::sort(r.gpus.begin(), r.gpus.end());
  return r;
}

std::vector<ReservationRecord> Inventory::reservations() const {
  std::vector<std::string> names;
  for (const auto& [name, id] : reservation_ids_) names.push_back(name);
  std::sort(names.begin(), names.end());
  std::vector<ReservationRecord> out;
  for (const auto& n : names) out.push_back(*reservation(n));
  return out;
}

// ---------------------------------------------------------------------------------------
// Rebuild, reads, invariants

RebuildResult Inventory::rebuild(std::vector<PoolSpec> pools, std::vector<NodeSpec> nodes,
                                 std::vector<RecordedAssignment> assignments,
                                 std::vector<ReservationRecord> reservations) {
  RebuildResult out;
  Inventory& inv = out.inventory;
  std::sort(pools.begin(), pools.end(),
            [](const PoolSpec& a, const PoolSpec& b) { return a.name < b.name; });
  for (auto& p : pools) {
    const std::string name = p.name;
    if (auto ok = inv.upsertPool(std::move(p)); !ok) {
      out.conflicts.push_back(Conflict{Conflict::Kind::Malformed, "", "", "", ok.error()});
    }
  }
  std::sort(nodes.begin(), nodes.end(),
            [](const NodeSpec& a, const NodeSpec& b) { return a.name < b.name; });
  for (auto& n : nodes) {
    const std::string name = n.name;
    if (auto ok = inv.upsertNode(std::move(n)); !ok) {
      out.conflicts.push_back(Conflict{Conflict::Kind::Malformed, "", "", name, ok.error()});
    }
  }
  inv.prepare();
  std::stable_sort(assignments.begin(), assignments.end(),
                   [](const RecordedAssignment& a, const RecordedAssignment& b) {
                     if (a.order != b.order) return a.order < b.order;
                     return a.request.worker < b.request.worker;
                   });
  for (const auto& ra : assignments) {
    auto a = decodeAssignment(ra.annotation);
    if (!a) {
      out.conflicts.push_back(
          Conflict{Conflict::Kind::Malformed, ra.request.worker, "", "", a.error()});
      continue;
    }
    if (auto ok = inv.assume(ra.request, *a); !ok) out.conflicts.push_back(ok.error());
  }
  std::sort(reservations.begin(), reservations.end(),
            [](const ReservationRecord& a, const ReservationRecord& b) { return a.name < b.name; });
  for (const auto& r : reservations) {
    auto cs = inv.restoreReservation(r);
    out.conflicts.insert(out.conflicts.end(), cs.begin(), cs.end());
  }
  inv.prepare();
  return out;
}

const WorkerRecord* Inventory::worker(std::string_view name) const {
  auto it = worker_ids_.find(std::string(name));
  return it == worker_ids_.end() ? nullptr : &workers_[it->second];
}

std::vector<std::string> Inventory::workerNames() const {
  std::vector<std::string> out;
  out.reserve(worker_ids_.size());
  for (const auto& [name, id] : worker_ids_) out.push_back(name);
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> Inventory::workersOf(std::string_view deployment) const {
  const DeploymentId d = findDeployment(deployment);
  std::vector<std::string> out;
  if (d == kNone) return out;
  for (const auto& w : workers_) {
    if (w.live && w.deployment == d) out.push_back(w.name);
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> Inventory::workersOnNode(std::string_view node) const {
  const NodeId n = findNode(node);
  std::vector<std::string> out;
  if (n == kNone) return out;
  std::set<WorkerId> ids;
  for (const GpuState& g : nodes_[n].gpus) {
    if (g.whole_owner != kNone) ids.insert(g.whole_owner);
    for (const auto& m : g.mig_instances) ids.insert(m.worker);
    for (const auto& s : g.shares) ids.insert(s.worker);
  }
  for (WorkerId w : ids) out.push_back(workers_[w].name);
  std::sort(out.begin(), out.end());
  return out;
}


std::optional<ResolvedShape> Inventory::resolve(ClassId c, const GpuShape& shape) const {
  const NodeClass& cl = classes_[c];
  ResolvedShape r;
  r.kind = shape.kind;
  switch (shape.kind) {
    case ShapeKind::Whole:
      if (cl.mode != SharingMode::Exclusive || shape.count < 1 || shape.count > cl.gpu_count) {
        return std::nullopt;
      }
      if (shape.memory_mib > 0 && cl.gpu_memory_mib < shape.memory_mib) return std::nullopt;
      r.count = shape.count;
      r.units = shape.count;
      r.shape_index = 0;
      return r;
    case ShapeKind::Mig: {
      if (cl.mode != SharingMode::MIG || !cl.mig) return std::nullopt;
      const int p = cl.mig->profileIndex(shape.mig_profile);
      if (p < 0) return std::nullopt;
      if (shape.memory_mib > 0 && cl.mig->memoryMib(p, cl.gpu_memory_mib) < shape.memory_mib) {
        return std::nullopt;
      }
      for (std::size_t i = 0; i < cl.mig_profiles.size(); ++i) {
        if (cl.mig_profiles[i] == p) {
          r.mig_profile = p;
          r.shape_index = static_cast<int>(i);
          r.units = cl.mig->profiles[p].memory_slices;
          return r;
        }
      }
      return std::nullopt;
    }
    case ShapeKind::Share: {
      if (!isShared(cl.mode) || shape.shares_per_gpu < 1 ||
          cl.units_per_gpu % shape.shares_per_gpu != 0) {
        return std::nullopt;
      }
      const std::int64_t per_share =
          cl.gpu_memory_mib > 0 ? cl.gpu_memory_mib / shape.shares_per_gpu : 0;
      if (shape.memory_mib > 0 && per_share < shape.memory_mib) return std::nullopt;
      const int slots = cl.units_per_gpu / shape.shares_per_gpu;
      for (std::size_t i = 0; i < cl.share_sizes.size(); ++i) {
        if (cl.share_sizes[i] == slots) r.shape_index = static_cast<int>(i);
      }
      r.k = cl.units_per_gpu;
      r.slots = slots;
      r.units = slots;
      r.memory_mib = per_share;
      return r;
    }
  }
  return std::nullopt;
}

ResourceSummary Inventory::summarize(NodeId n, const ResolvedShape& s, GpuScope scope) const {
  const NodeState& ns = nodes_[n];
  ResourceSummary out;
  if (ns.cls == kNone) return out;
  const NodeClass& cl = classes_[ns.cls];
  const NodeScan scan = scanNode(*this, ns, cl, scope);
  out.used = scan.used;
  out.usable_gpus = scan.usable;
  out.capacity = scan.usable * cl.units_per_gpu;
  out.best_fill = scan.fill[static_cast<std::size_t>(s.shape_index) & 15u];
  out.partial_fit = out.best_fill > 0;
  out.units_per_gpu = cl.units_per_gpu;
  return out;
}

std::optional<Assignment> Inventory::allocateOnNode(NodeId n, const ResolvedShape& s,
                                                    GpuScope scope) const {
  const NodeState& ns = nodes_[n];
  if (ns.cls == kNone) return std::nullopt;
  const NodeClass& cl = classes_[ns.cls];
  Assignment a;
  a.node = ns.spec.name;
  a.kind = s.kind;
  switch (s.kind) {
    case ShapeKind::Whole: {
      for (int g = 0; g < static_cast<int>(ns.gpus.size()); ++g) {
        const GpuState& gs = ns.gpus[g];
        if (usable(gs, scope) && gs.idle()) {
          a.gpus.push_back(g);
          if (static_cast<int>(a.gpus.size()) == s.count) return a;
        }
      }
      return std::nullopt;
    }
    case ShapeKind::Mig: {
      if (!cl.mig || !cl.best_slot) return std::nullopt;
      int best = -1, best_used = -1;
      bool best_partial = false;
      for (int g = 0; g < static_cast<int>(ns.gpus.size()); ++g) {
        const GpuState& gs = ns.gpus[g];
        if (!usable(gs, scope) || gs.whole_owner != kNone || gs.share_mask != 0) continue;
        if (!((cl.mig->fits[gs.mig] >> s.mig_profile) & 1u)) continue;
        const bool partial = (gs.mig & 0xffu) != 0;
        const int used = popcount8(gs.mig);
        // Keep whole GPUs free: already-partitioned GPUs first, then the fullest.
        if (best < 0 || (partial && !best_partial) ||
            (partial == best_partial && used > best_used)) {
          best = g;
          best_used = used;
          best_partial = partial;
        }
      }
      if (best < 0) return std::nullopt;
      a.gpus = {best};
      a.mig_profile = cl.mig->profiles[s.mig_profile].name;
      a.mig_slot = (*cl.best_slot)[ns.gpus[best].mig][s.mig_profile];
      return a;
    }
    case ShapeKind::Share: {
      int best = -1, best_used = -1;
      for (int g = 0; g < static_cast<int>(ns.gpus.size()); ++g) {
        const GpuState& gs = ns.gpus[g];
        if (!usable(gs, scope) || gs.whole_owner != kNone || gs.mig != 0) continue;
        const int used = std::popcount(gs.share_mask);
        if (cl.units_per_gpu - used < s.slots) continue;
        // Partitioned GPUs first (used > 0), the fullest first.
        if (used > best_used) {
          best = g;
          best_used = used;
        }
      }
      if (best < 0) return std::nullopt;
      a.gpus = {best};
      std::uint64_t free = ~ns.gpus[best].share_mask;
      for (int i = 0; i < s.slots; ++i) {
        const int slot = std::countr_zero(free);
        a.share_slots.push_back(slot);
        free &= free - 1;
      }
      a.shares_per_gpu = cl.units_per_gpu;
      a.memory_mib = s.memory_mib;
      return a;
    }
  }
  return std::nullopt;
}

int Inventory::fittingWorkers(NodeId n, const ResolvedShape& s, GpuScope scope) const {
  const NodeState& ns = nodes_[n];
  if (ns.cls == kNone) return 0;
  const NodeClass& cl = classes_[ns.cls];
  int out = 0;
  switch (s.kind) {
    case ShapeKind::Whole: {
      int idle = 0;
      for (const GpuState& g : ns.gpus) idle += (usable(g, scope) && g.idle()) ? 1 : 0;
      return s.count > 0 ? idle / s.count : 0;
    }
    case ShapeKind::Mig:
      if (!cl.mig) return 0;
      for (const GpuState& g : ns.gpus) {
        if (!usable(g, scope) || g.whole_owner != kNone || g.share_mask != 0) continue;
        out += cl.mig->capacity[s.mig_profile][g.mig];
      }
      return out;
    case ShapeKind::Share:
      for (const GpuState& g : ns.gpus) {
        if (!usable(g, scope) || g.whole_owner != kNone || g.mig != 0) continue;
        out += std::max(0, cl.units_per_gpu - std::popcount(g.share_mask)) / std::max(1, s.slots);
      }
      return out;
  }
  return 0;
}

std::string Inventory::fingerprint() const {
  std::vector<NodeId> ids;
  for (NodeId n = 0; n < nodes_.size(); ++n) {
    if (!nodes_[n].spec.name.empty()) ids.push_back(n);
  }
  std::sort(ids.begin(), ids.end(),
            [&](NodeId a, NodeId b) { return nodes_[a].spec.name < nodes_[b].spec.name; });
  std::ostringstream o;
  for (NodeId n : ids) {
    const NodeState& ns = nodes_[n];
    o << "node " << ns.spec.name << " pool="
      << (ns.pool == kNone ? std::string("-") : pools_[ns.pool].spec.name)
      << " ready=" << ns.spec.ready << " cordon=" << ns.spec.unschedulable << "\n";
    for (std::size_t g = 0; g < ns.gpus.size(); ++g) {
      const GpuState& gs = ns.gpus[g];
      o << "  gpu" << g << " healthy=" << gs.healthy << " reserved="
        << (gs.reservation == kNone ? std::string("-") : reservations_[gs.reservation].name);
      if (gs.whole_owner != kNone) o << " whole=" << workers_[gs.whole_owner].name;
      std::vector<std::string> items;
      const NodeClass* cl = ns.cls != kNone ? &classes_[ns.cls] : nullptr;
      for (const auto& mi : gs.mig_instances) {
        items.push_back(std::to_string(mi.slot) + ":" +
                        (cl && cl->mig ? cl->mig->profiles[mi.profile].name : std::string("?")) +
                        ":" + workers_[mi.worker].name);
      }
      std::sort(items.begin(), items.end());
      for (const auto& i : items) o << " mig=" << i;
      items.clear();
      for (const auto& s : gs.shares) {
        items.push_back(std::to_string(s.slot) + ":" + workers_[s.worker].name);
      }
      std::sort(items.begin(), items.end());
      for (const auto& i : items) o << " share=" << i;
      o << "\n";
    }
  }
  for (const std::string& w : workerNames()) {
    const WorkerRecord* r = worker(w);
    o << "worker " << w << " dep=" << r->request.deployment << " "
      << encodeAssignment(r->assignment) << "\n";
  }
  for (const auto& r : reservations()) o << "reservation " << encodeReservation(r) << "\n";
  return o.str();
}

std::vector<std::string> Inventory::checkInvariants() const {
  std::vector<std::string> errs;
  auto err = [&](std::string s) {
    if (errs.size() < 50) errs.push_back(std::move(s));
  };
  // Recount per node / pool from the GPU states and worker records.
  std::vector<std::map<DeploymentId, std::uint32_t>> node_reps(nodes_.size());
  std::vector<std::uint32_t> node_workers(nodes_.size(), 0);
  std::size_t live = 0;
  for (WorkerId w = 0; w < workers_.size(); ++w) {
    const WorkerRecord& r = workers_[w];
    if (!r.live) continue;
    ++live;
    auto it = worker_ids_.find(r.name);
    if (it == worker_ids_.end() || it->second != w) err("worker " + r.name + " not in name map");
    if (r.node >= nodes_.size() || nodes_[r.node].spec.name != r.assignment.node) {
      err("worker " + r.name + " points at the wrong node");
      continue;
    }
    ++node_reps[r.node][r.deployment];
    ++node_workers[r.node];
    const NodeState& ns = nodes_[r.node];
    for (int gi : r.assignment.gpus) {
      if (gi < 0 || gi >= static_cast<int>(ns.gpus.size())) {
        err("worker " + r.name + " GPU out of range");
        continue;
      }
      const GpuState& g = ns.gpus[gi];
      bool found = false;
      if (r.assignment.kind == ShapeKind::Whole) found = g.whole_owner == w;
      if (r.assignment.kind == ShapeKind::Mig) {
        for (const auto& mi : g.mig_instances) found |= mi.worker == w && mi.slot == r.assignment.mig_slot;
      }
      if (r.assignment.kind == ShapeKind::Share) {
        int n = 0;
        for (const auto& s : g.shares) n += s.worker == w ? 1 : 0;
        found = n == static_cast<int>(r.assignment.share_slots.size());
        for (int slot : r.assignment.share_slots) found = found && ((g.share_mask >> slot) & 1u);
      }
      if (!found) err("worker " + r.name + " not recorded on its GPU");
      if (g.reserved_for != kNone && g.reserved_for != r.deployment) {
        err("worker " + r.name + " uses a GPU reserved for another deployment");
      }
    }
  }
  if (live != live_workers_ || live != worker_ids_.size()) err("live worker count mismatch");

  std::vector<std::map<DeploymentId, std::uint32_t>> pool_reps(pools_.size());
  std::vector<std::uint32_t> pool_gpus(pools_.size(), 0), pool_reserved(pools_.size(), 0);
  for (NodeId n = 0; n < nodes_.size(); ++n) {
    const NodeState& ns = nodes_[n];
    if (ns.spec.name.empty()) continue;
    std::uint32_t reserved = 0;
    for (std::size_t gi = 0; gi < ns.gpus.size(); ++gi) {
      const GpuState& g = ns.gpus[gi];
      const std::string where = ns.spec.name + "/gpu" + std::to_string(gi);
      if (g.reserved_for != kNone) ++reserved;
      int kinds = (g.whole_owner != kNone) + (!g.mig_instances.empty()) + (!g.shares.empty());
      if (kinds > 1) err(where + " mixes occupancy kinds");
      // MIG: instances must not overlap and must rebuild the state exactly.
      if (!g.mig_instances.empty()) {
        const NodeClass* cl = ns.cls != kNone ? &classes_[ns.cls] : nullptr;
        if (!cl || !cl->mig) {
          err(where + " has MIG instances without geometry");
        } else {
          MigState s = 0;
          for (const auto& mi : g.mig_instances) {
            if (!cl->mig->canPlace(s, mi.profile, mi.slot)) err(where + " MIG over-commit");
            s = cl->mig->place(s, mi.profile, mi.slot);
          }
          if (s != g.mig) err(where + " MIG state mismatch");
        }
      } else if (g.mig != 0) {
        err(where + " MIG state without instances");
      }
      std::uint64_t mask = 0;
      for (const auto& s : g.shares) {
        if ((mask >> s.slot) & 1u) err(where + " share slot over-commit");
        mask |= std::uint64_t{1} << s.slot;
        if (ns.cls != kNone && s.slot >= classes_[ns.cls].units_per_gpu &&
            isShared(classes_[ns.cls].mode)) {
          err(where + " share slot out of range");
        }
      }
      if (mask != g.share_mask) err(where + " share mask mismatch");
      auto check_owner = [&](WorkerId w) {
        if (w >= workers_.size() || !workers_[w].live || workers_[w].node != n) {
          err(where + " references a dead or foreign worker");
        } else if (g.reserved_for != kNone && workers_[w].deployment != g.reserved_for) {
          err(where + " reserved GPU used by another deployment");
        }
      };
      if (g.whole_owner != kNone) check_owner(g.whole_owner);
      for (const auto& mi : g.mig_instances) check_owner(mi.worker);
      for (const auto& s : g.shares) check_owner(s.worker);
    }
    if (reserved != ns.reserved_gpus) err(ns.spec.name + " reserved count mismatch");
    if (node_workers[n] != ns.workers) err(ns.spec.name + " worker count mismatch");
    std::map<DeploymentId, std::uint32_t> have(ns.replicas.begin(), ns.replicas.end());
    if (have != node_reps[n]) err(ns.spec.name + " replica counts mismatch");
    if (ns.pool != kNone) {
      pool_gpus[ns.pool] += static_cast<std::uint32_t>(ns.gpus.size());
      pool_reserved[ns.pool] += reserved;
      for (const auto& [d, c] : node_reps[n]) pool_reps[ns.pool][d] += c;
    }
    if (ns.pool != kNone && ns.cls != kNone && !any_dirty_) {
      const NodeClass& cl = classes_[ns.cls];
      if (cl.members.size() <= ns.local || cl.members[ns.local] != n) {
        err(ns.spec.name + " class membership broken");
        continue;
      }
      NodeScan scan;
      const bool sched = ns.schedulable();
      if (sched) scan = scanNode(*this, ns, cl, GpuScope{});
      for (std::size_t i = 0; i < cl.shapes.size(); ++i) {
        int key = -1;
        if (sched && ((scan.fit >> i) & 1u)) key = cl.keyOf(scan.used, scan.usable, scan.fill[i]);
        if (key != ns.keys[i]) err(ns.spec.name + " stale bucket key");
        if (key >= 0 && (!cl.shapes[i].bucket(key) || !cl.shapes[i].bucket(key)->contains(ns.local))) {
          err(ns.spec.name + " missing from its bucket");
        }
      }
    }
  }
  if (!any_dirty_) {
    std::vector<std::int64_t> pu(pools_.size(), 0), pc(pools_.size(), 0);
    for (NodeId n = 0; n < nodes_.size(); ++n) {
      const NodeState& ns = nodes_[n];
      if (ns.spec.name.empty() || ns.pool == kNone || !ns.schedulable()) continue;
      const NodeScan scan = scanNode(*this, ns, classes_[ns.cls], GpuScope{});
      pu[ns.pool] += scan.used;
      pc[ns.pool] += scan.usable * classes_[ns.cls].units_per_gpu;
    }
    for (PoolId p = 0; p < pools_.size(); ++p) {
      if (pu[p] != pools_[p].used_units || pc[p] != pools_[p].capacity_units) {
        err("pool " + pools_[p].spec.name + " usage counters mismatch");
      }
    }
  }
  for (PoolId p = 0; p < pools_.size(); ++p) {
    std::map<DeploymentId, std::uint32_t> have(pools_[p].replicas.begin(), pools_[p].replicas.end());
    if (have != pool_reps[p]) err("pool " + pools_[p].spec.name + " replica counts mismatch");
    if (pool_gpus[p] != pools_[p].gpus) err("pool " + pools_[p].spec.name + " GPU count mismatch");
    if (pool_reserved[p] != pools_[p].reserved_gpus) {
      err("pool " + pools_[p].spec.name + " reserved count mismatch");
    }
  }
  // Every bucket entry belongs to a member whose key says so.
  if (!any_dirty_) {
    for (const NodeClass& cl : classes_) {
      if (cl.pool == kNone) continue;
      for (std::size_t i = 0; i < cl.shapes.size(); ++i) {
        std::size_t total = 0;
        for (std::size_t k = 0; k < cl.shapes[i].keyCount(); ++k) {
          const detail::NodeSet* b = cl.shapes[i].bucket(static_cast<int>(k));
          total += b ? b->size() : 0;
          const bool ne = (cl.shapes[i].nonempty[k >> 6] >> (k & 63)) & 1u;
          if (ne != (b && !b->empty())) err("nonempty bitmap mismatch");
        }
        std::size_t indexed = 0;
        for (NodeId n : cl.members) indexed += nodes_[n].keys[i] >= 0 ? 1 : 0;
        if (indexed != total) err("bucket population mismatch");
      }
    }
  }
  return errs;
}

}  // namespace waterline::scheduling
