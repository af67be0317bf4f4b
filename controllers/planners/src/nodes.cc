#include "waterline/planners/nodes.h"

#include "waterline/api/keys.h"

#include <algorithm>
#include <optional>
#include <string>
#include <string_view>

#include "waterline/common/parse.h"

namespace waterline::planners {

namespace {
// Allocatable extended resources under nvidia.com/: GPUs, MIG devices (at most 7 per
// GPU), time-slicing/MPS shares (gpu.replicas per GPU).
constexpr int64_t kMaxAllocatable = int64_t{kMaxGpusPerNode} * kMaxGpuReplicas;

// A count from the API: a JSON integer or a decimal string in [0, hi]; nullopt otherwise.
std::optional<int64_t> parseCount(const nlohmann::json& v, int64_t hi) {
  if (v.is_number_integer()) {
    const auto x = v.get<int64_t>();
    if (v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(hi)) return std::nullopt;
    return x >= 0 && x <= hi ? std::optional<int64_t>(x) : std::nullopt;
  }
  if (v.is_string()) return parseIntegerInRange<int64_t>(v.get<std::string>(), 0, hi);
  return std::nullopt;
}
}  // namespace

std::vector<int> parseIndexList(std::string_view s) {
  std::vector<int> out;
  while (!s.empty()) {
    auto comma = s.find(',');
    std::string_view part = s.substr(0, comma);
    while (!part.empty() && part.front() == ' ') part.remove_prefix(1);
    while (!part.empty() && part.back() == ' ') part.remove_suffix(1);
    if (auto v = parseIntegerInRange<int>(part, 0, kMaxGpusPerNode - 1)) out.push_back(*v);
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
        if (std::string_view(k).starts_with("nvidia.com/")) {
          if (auto c = parseCount(v, kMaxAllocatable)) n.gpuAllocatable[k] = *c;
          else
            n.invalidValues.push_back("allocatable " + k + " = " + v.dump() + ": not a count in [0, " +
                                      std::to_string(kMaxAllocatable) + "], ignored");
        }
  }
  auto label = [&](const char* k) -> std::string {
    auto it = n.labels.find(k);
    return it == n.labels.end() ? "" : it->second;
  };
  n.gpuProduct = label("nvidia.com/gpu.product");
  // A label value out of range or not a number is treated as absent, and reported.
  auto bad = [&](const char* key, const std::string& v, int64_t hi) {
    n.invalidValues.push_back(std::string("label ") + key + "=\"" + v + "\": not an integer in [0, " +
                              std::to_string(hi) + "], ignored");
  };
  std::optional<int32_t> count;
  if (auto c = label("nvidia.com/gpu.count"); !c.empty()) {
    count = parseIntegerInRange<int32_t>(c, 0, kMaxGpusPerNode);
    if (!count) bad("nvidia.com/gpu.count", c, kMaxGpusPerNode);
  }
  if (count) n.gpuCount = *count;
  else if (auto it = n.gpuAllocatable.find("nvidia.com/gpu"); it != n.gpuAllocatable.end())
    n.gpuCount = int32_t(std::min<int64_t>(it->second, kMaxGpusPerNode));
  if (auto m = label("nvidia.com/gpu.memory"); !m.empty()) {
    if (auto v = parseIntegerInRange<int64_t>(m, 0, kMaxGpuMemoryMiB)) n.gpuMemoryMiB = *v;
    else bad("nvidia.com/gpu.memory", m, kMaxGpuMemoryMiB);
  }
  if (auto r = label("nvidia.com/gpu.replicas"); !r.empty() && !parseIntegerInRange<int32_t>(r, 0, kMaxGpuReplicas))
    bad("nvidia.com/gpu.replicas", r, kMaxGpuReplicas);
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
