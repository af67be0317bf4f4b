#include "waterline/dra/allocator.h"

#include <algorithm>

namespace waterline::dra {

namespace {
using Json = nlohmann::json;

const char* kindName(Need::Kind k) {
  switch (k) {
    case Need::Kind::WholeGpus: return "whole GPU";
    case Need::Kind::Mig: return "MIG device";
    case Need::Kind::SharedGpu: return "shared GPU";
  }
  return "?";
}

// Fraction of a device's counter sets already consumed, in parts per million (higher:
// fuller GPU). Devices without counters score 0.
int64_t fill(const Inventory& inv, const DeviceEntry& d) {
  int64_t total = 0, used = 0;
  const auto& counters = inv.counters();
  for (const auto& cc : d.device.consumes_counters) {
    // The set's counters are adjacent in the map: (driver, pool, set, counter) order.
    for (auto it = counters.lower_bound({d.id.driver, d.id.pool, cc.counter_set, ""});
         it != counters.end() && it->first.driver == d.id.driver && it->first.pool == d.id.pool &&
         it->first.counter_set == cc.counter_set;
         ++it) {
      total += it->second.total;
      used += it->second.consumed;
    }
  }
  return total == 0 ? 0 : used * 1'000'000 / total;
}
}  // namespace

bool matches(const DeviceEntry& d, const Need& need) {
  if (d.id.driver != need.driver) return false;
  const std::string* type = d.device.stringAttr(nvidia::kType);
  if (!type) return false;
  if (!need.product.empty()) {
    const std::string* product = d.device.stringAttr(nvidia::kProductName);
    if (!product || *product != need.product) return false;
  }
  switch (need.kind) {
    case Need::Kind::WholeGpus:
    case Need::Kind::SharedGpu:
      return *type == nvidia::kTypeGpu;
    case Need::Kind::Mig: {
      if (*type != nvidia::kTypeMig) return false;
      const std::string* profile = d.device.stringAttr(nvidia::kProfile);
      return profile && *profile == need.mig_profile;
    }
  }
  return false;
}

std::expected<Allocation, std::string> allocate(const Inventory& inv, std::string_view node, const Need& need) {
  int want = need.kind == Need::Kind::WholeGpus ? need.count : 1;
  if (want < 1) return std::unexpected("need at least one device");
  if (need.kind == Need::Kind::Mig && need.mig_profile.empty()) return std::unexpected("MIG need without a profile");
  if (need.kind == Need::Kind::SharedGpu && need.sharing != "TimeSlicing" && need.sharing != "MPS")
    return std::unexpected("unknown sharing strategy " + need.sharing);

  struct Cand {
    const DeviceEntry* d;
    bool counters;
    int64_t fill;
  };
  std::vector<Cand> cands;
  int matching = 0;
  for (const DeviceEntry* d : inv.devicesOn(node)) {
    if (!matches(*d, need)) continue;
    ++matching;
    if (!inv.available(*d)) continue;
    cands.push_back({d, !d->device.consumes_counters.empty(), fill(inv, *d)});
  }
  // devicesOn is already in (driver, pool, natural name) order; stable sorts keep it.
  if (need.kind == Need::Kind::Mig) {
    std::stable_sort(cands.begin(), cands.end(), [](const Cand& a, const Cand& b) {
      if (a.counters != b.counters) return !a.counters;
      return a.fill > b.fill;
    });
  } else {
    std::stable_sort(cands.begin(), cands.end(), [](const Cand& a, const Cand& b) { return !a.counters && b.counters; });
  }

  Allocation out;
  out.node = std::string(node);
  out.config = Json::array();
  std::map<CounterKey, int64_t> extra;
  for (const Cand& c : cands) {
    if (static_cast<int>(out.results.size()) == want) break;
    if (!inv.available(*c.d, extra)) continue;
    auto cons = inv.consumption(*c.d);
    for (const auto& [k, v] : *cons) extra[k] += v;  // available() checked it decodes
    out.results.push_back({need.request, c.d->id.driver, c.d->id.pool, c.d->id.device});
  }
  if (static_cast<int>(out.results.size()) < want) {
    std::string what = std::to_string(want) + " " + kindName(need.kind) + (want > 1 ? "s" : "");
    if (!need.product.empty()) what += " of " + need.product;
    if (need.kind == Need::Kind::Mig) what += " profile " + need.mig_profile;
    return std::unexpected("node " + std::string(node) + ": need " + what + "; " + std::to_string(out.results.size()) +
                           " free of " + std::to_string(matching) + " matching devices");
  }
  if (need.kind == Need::Kind::SharedGpu) {
    out.config.push_back({
        {"source", "FromClaim"},
        {"requests", Json::array({need.request})},
        {"opaque",
         {{"driver", need.driver},
          {"parameters",
           {{"apiVersion", "resource.nvidia.com/v1beta1"},
            {"kind", "GpuConfig"},
            {"sharing", {{"strategy", need.sharing}}}}}}},
    });
  }
  return out;
}

nlohmann::json Allocation::toJson() const {
  Json res = Json::array();
  for (const auto& r : results)
    res.push_back({{"request", r.request}, {"driver", r.driver}, {"pool", r.pool}, {"device", r.device}});
  Json devices = {{"results", res}};
  if (config.is_array() && !config.empty()) devices["config"] = config;
  return {
      {"devices", devices},
      {"nodeSelector",
       {{"nodeSelectorTerms",
         Json::array({{{"matchFields",
                        Json::array({{{"key", "metadata.name"}, {"operator", "In"}, {"values", Json::array({node})}}})}}})}}},
  };
}

ResourceClaim Allocation::asClaim(std::string ns, std::string name, std::string uid) const {
  ResourceClaim c;
  c.ns = std::move(ns), c.name = std::move(name), c.uid = std::move(uid);
  c.allocated = true;
  c.results = results;
  c.node_selector = toJson()["nodeSelector"];
  return c;
}

}  // namespace waterline::dra
