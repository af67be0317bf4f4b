#include "waterline/dra/node_gpus.h"

#include <algorithm>
#include <charconv>
#include <set>

namespace waterline::dra {

namespace {

// N of "gpu-N" (digits only after the prefix), -1 otherwise; `rest` gets what follows N.
int numberAfterGpuPrefix(std::string_view name, std::string_view* rest = nullptr) {
  if (!name.starts_with("gpu-")) return -1;
  std::string_view s = name.substr(4);
  int n = -1;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
  if (ec != std::errc() || p == s.data() || n < 0 || n > 63) return -1;
  if (rest) *rest = std::string_view(p, size_t(s.data() + s.size() - p));
  return n;
}

bool isGpu(const Device& d) {
  const std::string* t = d.stringAttr("type");
  return t ? *t == "gpu" : (numberAfterGpuPrefix(d.name) >= 0 && d.name.find("-mig") == std::string::npos);
}

}  // namespace

std::string gfdProduct(std::string_view productName) {
  std::string out(productName);
  std::replace(out.begin(), out.end(), ' ', '-');
  return out;
}

int gpuNumber(const Device& d) {
  for (const char* a : {"minor", "index"})
    if (auto v = d.intAttr(a); v && *v >= 0 && *v <= 63) return int(*v);
  std::string_view rest;
  const int n = numberAfterGpuPrefix(d.name, &rest);
  return n >= 0 && rest.empty() ? n : -1;
}

NodeGpus nodeGpus(const Inventory& inv, std::string_view node, const std::function<bool(const std::string&)>& ours,
                  std::string_view driver) {
  NodeGpus out;
  const auto devs = inv.devicesOn(node);
  std::map<std::string, int> byUuid;  // GPU uuid -> number
  std::set<int> tainted;
  int64_t minMem = 0;
  for (const DeviceEntry* e : devs) {
    if (e->id.driver != driver || e->all_nodes || !isGpu(e->device)) continue;
    const int n = gpuNumber(e->device);
    if (n < 0 || out.devices.count(n)) continue;  // unnumbered or a duplicate number: not offered
    out.published = true;
    out.devices[n] = e->id;
    out.count = std::max(out.count, n + 1);
    if (out.product.empty())
      if (const auto* p = e->device.stringAttr("productName")) out.product = gfdProduct(*p);
    if (auto m = e->device.capacityOf("memory"); m && *m > 0) {
      const int64_t mib = *m / (1024 * 1024);
      minMem = minMem == 0 ? mib : std::min(minMem, mib);
    }
    if (const auto* u = e->device.stringAttr("uuid")) byUuid[*u] = n;
    if (e->device.tainted()) tainted.insert(n);
  }
  out.memoryMiB = minMem;
  for (int i = 0; i < out.count; ++i)
    if (!out.devices.count(i) || tainted.count(i)) out.unhealthy.push_back(i);

  auto holder = [&](int n, const std::string& by) {
    if (n >= 0 && n < out.count && !out.heldByOthers.count(n)) out.heldByOthers[n] = by;
  };
  for (const DeviceEntry* e : devs) {
    if (e->id.driver != driver || e->all_nodes) continue;
    int n = -1;
    if (isGpu(e->device)) {
      n = gpuNumber(e->device);
    } else {
      if (const auto* p = e->device.stringAttr("parentUUID"); p && byUuid.count(*p)) n = byUuid[*p];
      else n = numberAfterGpuPrefix(e->device.name);
    }
    if (n < 0) continue;
    if (e->allocated()) {
      if (!ours(e->allocated_by)) holder(n, e->allocated_by);
    } else if (isGpu(e->device) && !inv.countersFit(*e)) {
      holder(n, "counters");  // a partitionable GPU with MIG devices of it allocated
    }
  }
  // Devices allocated to claims but no longer published (a device that went away while
  // held) are not on the node's list; they hold nothing a new allocation could take.
  return out;
}

std::expected<Allocation, std::string> allocateGpus(const Inventory& inv, std::string_view node,
                                                    const std::vector<int>& gpus, std::string_view driver) {
  Allocation a;
  a.node = std::string(node);
  a.config = nlohmann::json::array();
  std::map<int, const DeviceEntry*> byNumber;
  for (const DeviceEntry* e : inv.devicesOn(node))
    if (e->id.driver == driver && !e->all_nodes && isGpu(e->device))
      if (int n = gpuNumber(e->device); n >= 0 && !byNumber.count(n)) byNumber[n] = e;
  std::map<CounterKey, int64_t> extra;
  for (int g : gpus) {
    auto it = byNumber.find(g);
    if (it == byNumber.end())
      return std::unexpected("node " + std::string(node) + " publishes no GPU " + std::to_string(g) + " of driver " +
                             std::string(driver));
    const DeviceEntry& e = *it->second;
    if (e.allocated()) return std::unexpected("device " + e.id.str() + " is allocated by claim " + e.allocated_by);
    if (!inv.available(e, extra))
      return std::unexpected("device " + e.id.str() + " is not available (tainted, or its counters are taken)");
    if (auto c = inv.consumption(e))
      for (const auto& [k, v] : *c) extra[k] += v;
    a.results.push_back({"gpu", e.id.driver, e.id.pool, e.id.device});
  }
  return a;
}

}  // namespace waterline::dra
