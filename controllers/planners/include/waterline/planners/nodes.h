#pragma once
// A read-only view of a Kubernetes Node as GPU inventory sees it: GFD labels, GPU
// allocatable resources, readiness, schedulability and taints.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "waterline/api/meta.h"

namespace waterline::planners {

struct Taint {
  std::string key, value, effect;  // effect: NoSchedule, PreferNoSchedule, NoExecute
  bool operator==(const Taint&) const = default;
};

struct NodeView {
  std::string name;
  api::Labels labels;
  bool ready = false;          // condition Ready=True
  bool unschedulable = false;  // spec.unschedulable
  std::vector<Taint> taints;
  std::string gpuProduct;      // nvidia.com/gpu.product
  int32_t gpuCount = 0;        // nvidia.com/gpu.count label, else allocatable nvidia.com/gpu
  int64_t gpuMemoryMiB = 0;    // nvidia.com/gpu.memory
  // Allocatable extended resources under nvidia.com/ (gpu, mig-1g.10gb, ...).
  std::map<std::string, int64_t> gpuAllocatable;

  static NodeView fromJson(const nlohmann::json& node);
};

}  // namespace waterline::planners
