#include "waterline/planners/nodes.h"

#include "waterline/api/keys.h"

#include <algorithm>
#include <string_view>

namespace waterline::planners {

namespace {
int64_t parseCount(const nlohmann::json& v) {
  if (v.is_number_integer()) return v.get<int64_t>();
  if (v.is_string()) {
    try {
      return std::stoll(v.get<std::string>());
    } catch (...) {
      return 0;
    }
  }
  return 0;
}
}  // namespace

std::vector<int> parseIndexList(std::string_view s) {
  std::vector<int> out;
  while (!s.empty()) {
    auto comma = s.find(',');
    std::string_view part = s.substr(0, comma);
    while (!part.empty() && part.front() == ' ') part.remove_prefix(1);
    while (!part.empty() && part.back() == ' ') part.remove_suffix(1);
    bool ok = !part.empty() && part.size() <= 3;
    int v = 0;
    for (char c : part) {
      if (c < '0' || c > '9') ok = false;
      else v = v * 10 + (c - '0');
    }
    if (ok) out.push_back(v);
    if (comma == std::string_view::npos) break;
    s.remove_prefix(comma + 1);
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

bool NodeView::broken() const {
  if (!ready) return true;
  for (const auto& t : taints)
    if (t.effect == "NoExecute") return true;
  return false;
}

std::vector<int> NodeView::faultyGpus() const {
  if (!gpuFaultTaint.empty()) {
    std::vector<int> all;
    for (int i = 0; i < gpuCount; ++i) all.push_back(i);
    return all;
  }
  return unhealthyGpus;
}

int32_t NodeView::gpusFor(api::SharingMode mode) const {
  if (mode != api::SharingMode::Exclusive) return gpuCount;
  auto it = gpuAllocatable.find("nvidia.com/gpu");
  if (it == gpuAllocatable.end()) return gpuCount;  // not reported (yet): the label
  return int32_t(std::clamp<int64_t>(it->second, 0, gpuCount));
}

int32_t NodeView::unhealthyGpuCount() const {
  if (!ready || unschedulable || !gpuFaultTaint.empty()) return gpuCount;
  return int32_t(unhealthyGpus.size());
}

NodeView NodeView::fromJson(const nlohmann::json& node) {
  NodeView n;
  const auto& md = node.at("metadata");
  n.name = md.value("name", "");
  if (md.contains("labels") && md["labels"].is_object())
    for (const auto& [k, v] : md["labels"].items())
      if (v.is_string()) n.labels[k] = v.get<std::string>();
  if (node.contains("spec")) {
    const auto& spec = node["spec"];
    n.unschedulable = spec.value("unschedulable", false);
    if (spec.contains("taints") && spec["taints"].is_array())
      for (const auto& t : spec["taints"])
        n.taints.push_back({t.value("key", ""), t.value("value", ""), t.value("effect", "")});
  }
  if (node.contains("status")) {
    const auto& st = node["status"];
    if (st.contains("conditions"))
      for (const auto& c : st["conditions"])
        if (c.value("type", "") == "Ready") n.ready = c.value("status", "") == "True";
    if (st.contains("allocatable") && st["allocatable"].is_object())
      for (const auto& [k, v] : st["allocatable"].items())
        if (std::string_view(k).starts_with("nvidia.com/")) n.gpuAllocatable[k] = parseCount(v);
  }
  auto label = [&](const char* k) -> std::string {
    auto it = n.labels.find(k);
    return it == n.labels.end() ? "" : it->second;
  };
  n.gpuProduct = label("nvidia.com/gpu.product");
  if (auto c = label("nvidia.com/gpu.count"); !c.empty()) n.gpuCount = int32_t(parseCount(c));
  else if (n.gpuAllocatable.contains("nvidia.com/gpu")) n.gpuCount = int32_t(n.gpuAllocatable["nvidia.com/gpu"]);
  if (auto m = label("nvidia.com/gpu.memory"); !m.empty()) n.gpuMemoryMiB = parseCount(m);
  for (const auto& t : n.taints) {
    if (t.effect != "NoSchedule" && t.effect != "NoExecute") continue;
    if (std::find(kGpuFaultTaintKeys.begin(), kGpuFaultTaintKeys.end(), t.key) != kGpuFaultTaintKeys.end()) {
      n.gpuFaultTaint = t.key;
      break;
    }
  }
  if (md.contains("annotations") && md["annotations"].is_object()) {
    for (auto key : {kUnhealthyGpusAnnotation, kXidUnhealthyGpusAnnotation}) {
      auto it = md["annotations"].find(std::string(key));
      if (it != md["annotations"].end() && it->is_string())
        for (int i : parseIndexList(it->get<std::string>()))
          if (i < n.gpuCount) n.unhealthyGpus.push_back(i);
    }
    std::sort(n.unhealthyGpus.begin(), n.unhealthyGpus.end());
    n.unhealthyGpus.erase(std::unique(n.unhealthyGpus.begin(), n.unhealthyGpus.end()), n.unhealthyGpus.end());
  }
  return n;
}

std::string topologyMismatch(const api::CapacityPool& pool, const NodeView& node) {
  auto label = [&](std::string_view k) -> const std::string* {
    auto it = node.labels.find(std::string(k));
    return it == node.labels.end() ? nullptr : &it->second;
  };
  auto quoted = [](const std::string& v) { return "\"" + (v.size() <= 63 ? v : v.substr(0, 63) + "...") + "\""; };
  if (const auto* r = label(api::k8s::kRegion); r && *r != pool.spec.region)
    return "node " + node.name + " is in region " + quoted(*r) + ", the pool in " + quoted(pool.spec.region);
  if (const auto* z = label(api::k8s::kZone); z && !z->starts_with(pool.spec.region))
    return "node " + node.name + " is in zone " + quoted(*z) + ", not in the pool's region " + quoted(pool.spec.region);
  if (const auto* dz = label(kDataZoneLabel); dz && *dz != pool.spec.dataZone)
    return "node " + node.name + " is in data zone " + quoted(*dz) + ", the pool in " + quoted(pool.spec.dataZone);
  return "";
}

}  // namespace waterline::planners
