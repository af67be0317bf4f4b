// Random sequences of slice publications (new generations, split and incomplete pools,
// devices that go away, taints, nodes that leave), allocations through the allocator,
// foreign claims (another scheduler) and claim deletions. After every step: no device
// is allocated twice, no shared counter is over-consumed (both checked by a reference
// written here, independent of the inventory), the inventory reports no problem, and a
// refused one-device need is confirmed by the reference (nothing on the node fits).
#include <gtest/gtest.h>

#include <random>
#include <set>

#include "fixtures.h"
#include "waterline/dra/allocator.h"

namespace waterline::dra {
namespace {
using namespace testing;

struct Node {
  std::string name;
  ResourceSlice full;  // every device the node has, with stable definitions
  int64_t generation = 0;
  bool published = false;
};

struct World {
  std::vector<Node> nodes;
  std::vector<ResourceSlice> slices;          // what the API server serves
  std::vector<ResourceSlice> pending;         // second halves not yet published
  std::vector<ResourceClaim> claims;
  int next_claim = 0;
};

// ---- the reference: newest complete generation per pool, straight from the slices ----
struct RefPool {
  int64_t gen = -1, count = 0, seen = 0;
};

std::map<PoolKey, RefPool> refPools(const std::vector<ResourceSlice>& slices) {
  std::map<PoolKey, RefPool> pools;
  for (const auto& s : slices) {
    RefPool& p = pools[{s.driver, s.pool}];
    if (s.generation > p.gen) p = {s.generation, s.resource_slice_count, 0};
    if (s.generation == p.gen) ++p.seen;
  }
  return pools;
}

// The first violation of the invariants, or "" when there is none.
std::string violations(const World& w) {
  // No device in two claims (nor twice in one).
  std::map<DeviceId, std::string> owner;
  for (const auto& c : w.claims)
    for (const auto& r : c.results) {
      auto [it, fresh] = owner.emplace(r.id(), c.key());
      if (!fresh) return r.id().str() + " allocated by " + it->second + " and " + c.key();
    }
  // No counter over-consumed in any complete newest generation.
  auto pools = refPools(w.slices);
  std::map<CounterKey, int64_t> total, used;
  std::map<DeviceId, const Device*> defs;
  for (const auto& s : w.slices) {
    const RefPool& p = pools.at({s.driver, s.pool});
    if (s.generation != p.gen || p.seen < p.count) continue;
    for (const auto& cs : s.shared_counters)
      for (const auto& [n, v] : cs.counters) total[{s.driver, s.pool, cs.name, n}] = v;
    for (const auto& d : s.devices) defs[{s.driver, s.pool, d.name}] = &d;
  }
  for (const auto& [id, who] : owner) {
    auto d = defs.find(id);
    if (d == defs.end()) continue;
    for (const auto& cc : d->second->consumes_counters)
      for (const auto& [n, v] : cc.counters) used[{id.driver, id.pool, cc.counter_set, n}] += v;
  }
  for (const auto& [k, v] : used) {
    if (!total.contains(k)) return k.counter_set + "/" + k.counter + " consumed but not published";
    if (v > total.at(k))
      return k.pool + "/" + k.counter_set + "/" + k.counter + " over-consumed: " + std::to_string(v) + " of " +
             std::to_string(total.at(k));
  }
  Inventory inv = Inventory::build(w.slices, w.claims);
  if (!inv.problems().empty()) return "inventory: " + inv.problems()[0].message;
  return "";
}

// Whether some single device on the node serves the need, by the reference.
bool refFits(const World& w, const std::string& node, const Need& need) {
  auto pools = refPools(w.slices);
  std::set<DeviceId> allocated;
  for (const auto& c : w.claims)
    for (const auto& r : c.results) allocated.insert(r.id());
  std::map<CounterKey, int64_t> left;
  std::vector<std::pair<DeviceId, const Device*>> devs;
  for (const auto& s : w.slices) {
    const RefPool& p = pools.at({s.driver, s.pool});
    if (s.generation != p.gen || p.seen < p.count) continue;
    for (const auto& cs : s.shared_counters)
      for (const auto& [n, v] : cs.counters) left[{s.driver, s.pool, cs.name, n}] = v;
    for (const auto& d : s.devices) devs.push_back({{s.driver, s.pool, d.name}, &d});
  }
  std::map<DeviceId, const Device*> byId(devs.begin(), devs.end());
  for (const auto& id : allocated) {
    auto d = byId.find(id);
    if (d == byId.end()) continue;
    for (const auto& cc : d->second->consumes_counters)
      for (const auto& [n, v] : cc.counters) left[{id.driver, id.pool, cc.counter_set, n}] -= v;
  }
  for (const auto& [id, d] : devs) {
    if (id.pool != node || allocated.contains(id)) continue;
    bool tainted = false;
    for (const auto& t : d->taints) tainted |= t.effect == "NoSchedule" || t.effect == "NoExecute";
    if (tainted) continue;
    const std::string* type = d->stringAttr("type");
    const std::string* product = d->stringAttr("productName");
    const std::string* profile = d->stringAttr("profile");
    bool wantMig = need.kind == Need::Kind::Mig;
    if (!type || *type != (wantMig ? "mig" : "gpu")) continue;
    if (!need.product.empty() && (!product || *product != need.product)) continue;
    if (wantMig && (!profile || *profile != need.mig_profile)) continue;
    bool fits = true;
    for (const auto& cc : d->consumes_counters)
      for (const auto& [n, v] : cc.counters) {
        auto it = left.find({id.driver, id.pool, cc.counter_set, n});
        fits &= it != left.end() && it->second >= v;
      }
    if (fits) return true;
  }
  return false;
}

void publish(World& w, Node& n, std::mt19937& rng) {
  ++n.generation;
  n.published = true;
  std::uniform_int_distribution<int> pct(0, 99);
  // Old generations: usually deleted, sometimes still served for a while.
  bool keepOld = pct(rng) < 30;
  std::erase_if(w.slices, [&](const ResourceSlice& s) { return s.pool == n.name && !keepOld; });
  std::erase_if(w.pending, [&](const ResourceSlice& s) { return s.pool == n.name; });
  ResourceSlice all = n.full;
  all.generation = n.generation;
  // Devices that went away (only free ones: a driver keeps publishing allocated
  // devices; an unhealthy one gets a taint instead).
  std::set<DeviceId> allocated;
  for (const auto& c : w.claims)
    for (const auto& r : c.results) allocated.insert(r.id());
  std::erase_if(all.devices, [&](const Device& d) {
    return !allocated.contains({all.driver, all.pool, d.name}) && pct(rng) < 5;
  });
  for (auto& d : all.devices)
    if (pct(rng) < 4) d.taints.push_back({"gpu.nvidia.com/xid", "79", pct(rng) < 50 ? "NoSchedule" : "NoExecute"});
  int r = pct(rng);
  if (r < 60 || all.devices.size() < 2) {
    all.resource_slice_count = 1;
    all.name = n.name + "-g" + std::to_string(n.generation);
    w.slices.push_back(all);
    return;
  }
  // Two slices; the second may arrive later (the pool is incomplete until then).
  ResourceSlice a = all, b = all;
  size_t half = all.devices.size() / 2;
  a.devices.assign(all.devices.begin(), all.devices.begin() + half);
  b.devices.assign(all.devices.begin() + half, all.devices.end());
  b.shared_counters.clear();
  a.resource_slice_count = b.resource_slice_count = 2;
  a.name = n.name + "-g" + std::to_string(n.generation) + "-a";
  b.name = n.name + "-g" + std::to_string(n.generation) + "-b";
  w.slices.push_back(a);
  if (r < 80) w.slices.push_back(b);
  else w.pending.push_back(b);
}

// Mostly a need the node's GPUs can serve; sometimes any (mismatches are refused).
Need randomNeed(std::mt19937& rng, size_t node) {
  std::uniform_int_distribution<int> pick(0, 9);
  int k = pick(rng);
  if (std::uniform_int_distribution<int>(0, 99)(rng) < 75) {
    static const std::vector<std::vector<int>> suits = {{0, 1}, {5, 8}, {0, 3, 4, 6}, {2, 7}, {0, 3, 4, 6}};
    const auto& opts = suits[node];
    k = opts[static_cast<size_t>(k) % opts.size()];
  }
  Need need;
  switch (k) {
    case 0: need.kind = Need::Kind::WholeGpus, need.count = 1; break;
    case 1: need.kind = Need::Kind::WholeGpus, need.count = 2, need.product = kH100; break;
    case 2: need.kind = Need::Kind::WholeGpus, need.count = 1, need.product = kL4; break;
    case 3: need.kind = Need::Kind::Mig, need.mig_profile = "1g.10gb"; break;
    case 4: need.kind = Need::Kind::Mig, need.mig_profile = "3g.40gb"; break;
    case 5: need.kind = Need::Kind::Mig, need.mig_profile = "1g.5gb"; break;
    case 6: need.kind = Need::Kind::Mig, need.mig_profile = "7g.80gb"; break;
    case 8: need.kind = Need::Kind::Mig, need.mig_profile = "3g.20gb"; break;
    default: need.kind = Need::Kind::SharedGpu, need.product = kL4; break;
  }
  return need;
}

void runSeed(uint32_t seed, int steps) {
  std::mt19937 rng(seed);
  World w;
  for (int i = 0; i < 5; ++i) {
    Node n;
    n.name = "node-" + std::to_string(i);
    switch (i) {
      case 0: n.full = decodeSlice(h100Slice(n.name, 0, 4)); break;
      case 1: n.full = decodeSlice(a100MigSlice(n.name)); break;
      case 3: n.full = decodeSlice(l4Slice(n.name)); break;
      default: n.full = decodeSlice(partitionableH100Slice(n.name, 0, 2)); break;
    }
    w.nodes.push_back(std::move(n));
  }
  std::uniform_int_distribution<int> pct(0, 99);
  std::uniform_int_distribution<size_t> nodeIdx(0, w.nodes.size() - 1);
  int allocated = 0, refused = 0;
  for (int step = 0; step < steps; ++step) {
    std::string ctx = "seed " + std::to_string(seed) + " step " + std::to_string(step);
    size_t ni = nodeIdx(rng);
    Node& n = w.nodes[ni];
    int op = pct(rng);
    if (op < 12) {
      publish(w, n, rng);
    } else if (op < 17) {
      for (auto it = w.pending.begin(); it != w.pending.end(); ++it)
        if (it->pool == n.name) {
          w.slices.push_back(*it);
          w.pending.erase(it);
          break;
        }
    } else if (op < 19) {  // the node leaves: its slices go (its claims stay until GC)
      std::erase_if(w.slices, [&](const ResourceSlice& s) { return s.pool == n.name; });
      std::erase_if(w.pending, [&](const ResourceSlice& s) { return s.pool == n.name; });
    } else if (op < 59) {  // Waterline places a worker
      Inventory inv = Inventory::build(w.slices, w.claims);
      Need need = randomNeed(rng, ni);
      auto a = allocate(inv, n.name, need);
      if (a) {
        int want = need.kind == Need::Kind::WholeGpus ? need.count : 1;
        ASSERT_EQ(static_cast<int>(a->results.size()), want) << ctx;
        for (const auto& r : a->results) {
          const DeviceEntry* d = inv.device(r.id());
          ASSERT_NE(d, nullptr) << ctx;
          ASSERT_EQ(d->node, n.name) << ctx;
          ASSERT_TRUE(matches(*d, need)) << ctx;
        }
        std::string name = "w-" + std::to_string(w.next_claim++);
        w.claims.push_back(a->asClaim("waterline", name, "uid-" + name));
        ++allocated;
      } else {
        ++refused;
        if (need.kind != Need::Kind::WholeGpus || need.count == 1) {
          ASSERT_FALSE(refFits(w, n.name, need)) << ctx << ": refused but fits: " << a.error();
        }
      }
    } else if (op < 72) {  // another scheduler allocates some free device of the node
      Inventory inv = Inventory::build(w.slices, w.claims);
      std::vector<const DeviceEntry*> free;
      for (auto* d : inv.devicesOn(n.name))
        if (inv.available(*d)) free.push_back(d);
      if (!free.empty()) {
        const DeviceEntry* d = free[std::uniform_int_distribution<size_t>(0, free.size() - 1)(rng)];
        std::string name = "other-" + std::to_string(w.next_claim++);
        w.claims.push_back(decodeClaim(allocatedClaim("ml", name, n.name, {{d->id.pool, d->id.device}})));
      }
    } else if (!w.claims.empty()) {  // a claim goes (its pod ended)
      size_t i = std::uniform_int_distribution<size_t>(0, w.claims.size() - 1)(rng);
      w.claims.erase(w.claims.begin() + static_cast<std::ptrdiff_t>(i));
    }
    ASSERT_EQ(violations(w), "") << ctx;
  }
  // The sequence did real work: both outcomes happened.
  EXPECT_GT(allocated, steps / 10) << "seed " << seed;
  EXPECT_GT(refused, 0) << "seed " << seed;
}

TEST(DraProperty, NoDeviceOrCounterIsEverOverAllocated) {
  for (uint32_t seed = 1; seed <= 40; ++seed) {
    runSeed(seed, 250);
    if (HasFatalFailure()) return;
  }
}

// The checks can fail: a claim that takes a device someone already holds, or a MIG
// device whose slices a full GPU holds, is caught.
TEST(DraProperty, TheInvariantsCatchOverAllocation) {
  World w;
  w.slices.push_back(decodeSlice(partitionableH100Slice("node-p", 1, 1)));
  w.claims.push_back(decodeClaim(allocatedClaim("a", "full", "node-p", {{"node-p", "gpu-0"}})));
  w.claims.push_back(decodeClaim(allocatedClaim("b", "mig", "node-p", {{"node-p", "gpu-0-mig-19-0-1"}})));
  EXPECT_EQ(violations(w), "node-p/gpu-0-counter-set/memory over-consumed: 96636764160 of 85899345920");
  w.claims.pop_back();
  w.claims.push_back(decodeClaim(allocatedClaim("c", "again", "node-p", {{"node-p", "gpu-0"}})));
  EXPECT_EQ(violations(w), "gpu.nvidia.com/node-p/gpu-0 allocated by a/full and c/again");
}

}  // namespace
}  // namespace waterline::dra
