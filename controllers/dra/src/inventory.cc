#include "waterline/dra/inventory.h"

#include <algorithm>
#include <set>

namespace waterline::dra {

bool naturalLess(std::string_view a, std::string_view b) {
  size_t i = 0, j = 0;
  auto digit = [](char c) { return c >= '0' && c <= '9'; };
  while (i < a.size() && j < b.size()) {
    if (digit(a[i]) && digit(b[j])) {
      size_t i0 = i, j0 = j;
      while (i0 < a.size() && a[i0] == '0') ++i0;
      while (j0 < b.size() && b[j0] == '0') ++j0;
      size_t i1 = i0, j1 = j0;
      while (i1 < a.size() && digit(a[i1])) ++i1;
      while (j1 < b.size() && digit(b[j1])) ++j1;
      std::string_view na = a.substr(i0, i1 - i0), nb = b.substr(j0, j1 - j0);
      if (na.size() != nb.size()) return na.size() < nb.size();
      if (na != nb) return na < nb;
      if ((i1 - i) != (j1 - j)) return (i1 - i) < (j1 - j);  // fewer leading zeros first
      i = i1, j = j1;
      continue;
    }
    if (a[i] != b[j]) return a[i] < b[j];
    ++i, ++j;
  }
  return a.size() - i < b.size() - j;
}

Inventory Inventory::build(std::span<const ResourceSlice> slices, std::span<const ResourceClaim> claims) {
  Inventory inv = fromSlices(slices);
  std::vector<const ResourceClaim*> ptrs;
  ptrs.reserve(claims.size());
  for (const auto& c : claims) ptrs.push_back(&c);
  inv.setClaims(ptrs);
  return inv;
}

Inventory Inventory::fromSlices(std::span<const ResourceSlice> slices) {
  Inventory inv;
  // 1. Newest generation per pool, and its slice count.
  for (const auto& s : slices) {
    PoolState& p = inv.pools_[{s.driver, s.pool}];
    if (p.slices_seen == 0 || s.generation > p.generation) {
      p = PoolState{};
      p.generation = s.generation;
      p.slice_count = s.resource_slice_count;
    }
    if (s.generation == p.generation) {
      ++p.slices_seen;
      if (s.resource_slice_count != p.slice_count && !p.invalid) {
        p.invalid = true;
        p.problem = "slices of generation " + std::to_string(p.generation) + " disagree on resourceSliceCount";
      }
    }
  }
  for (auto& [k, p] : inv.pools_) p.incomplete = p.slices_seen < p.slice_count;
  // Slices of the newest generation, in name order (deterministic).
  std::vector<const ResourceSlice*> current;
  for (const auto& s : slices)
    if (inv.pools_.at({s.driver, s.pool}).generation == s.generation) current.push_back(&s);
  std::sort(current.begin(), current.end(), [](auto* a, auto* b) { return a->name < b->name; });
  // 2. Validity: unique device and counter set names per pool.
  std::set<CounterKey> counterSetsSeen;
  for (const ResourceSlice* s : current) {
    PoolKey k{s->driver, s->pool};
    PoolState& p = inv.pools_.at(k);
    for (const auto& d : s->devices) {
      if (inv.devices_.contains({s->driver, s->pool, d.name}) && !p.invalid) {
        p.invalid = true;
        p.problem = "device " + d.name + " published twice";
      }
      DeviceEntry e;
      e.id = {s->driver, s->pool, d.name};
      e.device = d;
      e.node = s->node_name;
      e.all_nodes = s->all_nodes;
      if (s->node_selector) e.node.clear(), e.all_nodes = false;
      inv.devices_.emplace(e.id, std::move(e));
    }
    for (const auto& cs : s->shared_counters) {
      CounterKey setKey{s->driver, s->pool, cs.name, ""};
      if (!counterSetsSeen.insert(setKey).second && !p.invalid) {
        p.invalid = true;
        p.problem = "counter set " + cs.name + " published twice";
      }
      for (const auto& [name, v] : cs.counters) inv.counters_[{s->driver, s->pool, cs.name, name}].total = v;
    }
  }
  // Devices and counters of unusable pools are dropped.
  std::erase_if(inv.devices_, [&](const auto& kv) {
    return !inv.pools_.at({kv.first.driver, kv.first.pool}).usable();
  });
  std::erase_if(inv.counters_, [&](const auto& kv) {
    return !inv.pools_.at({kv.first.driver, kv.first.pool}).usable();
  });
  inv.index();
  return inv;
}

void Inventory::setClaims(std::span<const ResourceClaim* const> claims) {
  Inventory& inv = *this;
  inv.allocated_.clear();
  inv.problems_.clear();
  for (auto& [id, e] : inv.devices_) e.allocated_by.clear();
  for (auto& [k, c] : inv.counters_) c.consumed = 0;
  // 3. Allocations of every claim, in key order; the first claim keeps a device.
  std::vector<const ResourceClaim*> sorted;
  for (const ResourceClaim* c : claims)
    if (c && c->allocated) sorted.push_back(c);
  std::sort(sorted.begin(), sorted.end(), [](auto* a, auto* b) { return a->key() < b->key(); });
  for (const ResourceClaim* c : sorted) {
    for (const auto& r : c->results) {
      auto [it, fresh] = inv.allocated_.emplace(r.id(), c->key());
      if (!fresh) {
        if (it->second != c->key())
          inv.problems_.push_back({"device " + r.id().str() + " allocated by " + it->second + " and " + c->key()});
        continue;
      }
      auto d = inv.devices_.find(r.id());
      if (d == inv.devices_.end()) continue;
      d->second.allocated_by = c->key();
      // 4. Counters it consumes.
      auto cons = inv.consumption(d->second);
      if (!cons) {
        inv.problems_.push_back({"allocated device " + r.id().str() + ": " + cons.error()});
        continue;
      }
      for (const auto& [k, v] : *cons) inv.counters_.at(k).consumed += v;
    }
  }
  for (const auto& [k, c] : inv.counters_)
    if (c.consumed > c.total)
      inv.problems_.push_back({"counter " + k.driver + "/" + k.pool + "/" + k.counter_set + "/" + k.counter +
                               " over-consumed: " + std::to_string(c.consumed) + " of " + std::to_string(c.total)});
}

bool Inventory::replaceClaim(const ResourceClaim* old, const ResourceClaim* now) {
  if (!problems_.empty()) return false;  // a contested device or counter: the order decides
  const std::string key = old ? old->key() : now ? now->key() : "";
  if (key.empty()) return true;
  // Checks first, so that a refusal leaves everything as it was.
  if (old && old->allocated)
    for (const auto& r : old->results) {
      auto a = allocated_.find(r.id());
      if (a == allocated_.end() || a->second != key) return false;
    }
  std::set<DeviceId> freed;
  if (old && old->allocated)
    for (const auto& r : old->results) freed.insert(r.id());
  std::map<CounterKey, int64_t> delta;
  if (now && now->allocated) {
    std::set<DeviceId> seen;
    for (const auto& r : now->results) {
      if (!seen.insert(r.id()).second) return false;
      if (auto a = allocated_.find(r.id()); a != allocated_.end() && !freed.count(r.id())) return false;
      if (auto d = devices_.find(r.id()); d != devices_.end()) {
        auto cons = consumption(d->second);
        if (!cons) return false;
        for (const auto& [k, v] : *cons) delta[k] += v;
      }
    }
  }
  for (const auto& id : freed) {
    allocated_.erase(id);
    if (auto d = devices_.find(id); d != devices_.end()) {
      d->second.allocated_by.clear();
      if (auto cons = consumption(d->second))
        for (const auto& [k, v] : *cons) delta[k] -= v;
    }
  }
  for (const auto& [k, v] : delta) {
    auto c = counters_.find(k);
    if (c != counters_.end() && c->second.consumed + v > c->second.total) {
      // Over-consumption is a problem a full pass reports: undo and refuse.
      for (const auto& id : freed) {
        allocated_.emplace(id, key);
        if (auto d = devices_.find(id); d != devices_.end()) d->second.allocated_by = key;
      }
      return false;
    }
  }
  for (const auto& [k, v] : delta)
    if (auto c = counters_.find(k); c != counters_.end()) c->second.consumed += v;
  if (now && now->allocated)
    for (const auto& r : now->results) {
      allocated_.emplace(r.id(), key);
      if (auto d = devices_.find(r.id()); d != devices_.end()) d->second.allocated_by = key;
    }
  return true;
}

const DeviceEntry* Inventory::device(const DeviceId& id) const {
  auto it = devices_.find(id);
  return it == devices_.end() ? nullptr : &it->second;
}

namespace {
bool entryLess(const DeviceEntry* a, const DeviceEntry* b) {
  if (a->id.driver != b->id.driver) return a->id.driver < b->id.driver;
  if (a->id.pool != b->id.pool) return a->id.pool < b->id.pool;
  return naturalLess(a->id.device, b->id.device);
}
}  // namespace

void Inventory::index() {
  by_node_.clear();
  all_nodes_.clear();
  for (const auto& [id, e] : devices_) {
    if (e.all_nodes) all_nodes_.push_back(&e);
    else if (!e.node.empty()) by_node_[e.node].push_back(&e);
  }
  for (auto& [n, v] : by_node_) std::sort(v.begin(), v.end(), entryLess);
  std::sort(all_nodes_.begin(), all_nodes_.end(), entryLess);
}

Inventory& Inventory::operator=(const Inventory& o) {
  if (this == &o) return *this;
  pools_ = o.pools_;
  devices_ = o.devices_;
  allocated_ = o.allocated_;
  counters_ = o.counters_;
  problems_ = o.problems_;
  index();
  return *this;
}

std::vector<const DeviceEntry*> Inventory::devicesOn(std::string_view node) const {
  std::vector<const DeviceEntry*> out;
  if (auto it = by_node_.find(node); it != by_node_.end()) out = it->second;
  if (!all_nodes_.empty()) {
    out.insert(out.end(), all_nodes_.begin(), all_nodes_.end());
    std::sort(out.begin(), out.end(), entryLess);
  }
  return out;
}

std::optional<CounterState> Inventory::counter(const CounterKey& k) const {
  auto it = counters_.find(k);
  if (it == counters_.end()) return std::nullopt;
  return it->second;
}

std::expected<std::map<CounterKey, int64_t>, std::string> Inventory::consumption(const DeviceEntry& d) const {
  std::map<CounterKey, int64_t> out;
  for (const auto& cc : d.device.consumes_counters) {
    for (const auto& [name, v] : cc.counters) {
      CounterKey k{d.id.driver, d.id.pool, cc.counter_set, name};
      if (!counters_.contains(k))
        return std::unexpected("counter " + cc.counter_set + "/" + name + " is not published by pool " + d.id.pool);
      out[k] += v;
    }
  }
  return out;
}

bool Inventory::countersFit(const DeviceEntry& d, const std::map<CounterKey, int64_t>& extra) const {
  auto cons = consumption(d);
  if (!cons) return false;
  for (const auto& [k, v] : *cons) {
    int64_t left = counters_.at(k).remaining();
    if (auto e = extra.find(k); e != extra.end()) left -= e->second;
    if (v > left) return false;
  }
  return true;
}

bool Inventory::available(const DeviceEntry& d, const std::map<CounterKey, int64_t>& extra) const {
  if (isAllocated(d.id) || d.device.tainted()) return false;
  auto p = pools_.find({d.id.driver, d.id.pool});
  if (p == pools_.end() || !p->second.usable()) return false;
  return countersFit(d, extra);
}

}  // namespace waterline::dra
