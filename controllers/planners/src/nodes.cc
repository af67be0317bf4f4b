#include "waterline/planners/nodes.h"

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
  return n;
}

}  // namespace waterline::planners
