#pragma once
// A read-only view of a Kubernetes Node as GPU inventory sees it: GFD labels, GPU
// allocatable resources, readiness, schedulability, taints and GPU faults.
//
// GPU faults (docs/workers.md, "GPU and node faults"):
// - a NoSchedule or NoExecute taint whose key is one of kGpuFaultTaintKeys marks every
//   GPU of the node unhealthy (GPU health tooling: NVIDIA's health checks, Node Problem
//   Detector rules, or an SRE by hand);
// - the annotation waterline.dev/unhealthy-gpus="0,3" marks those GPU indices
//   unhealthy (an annotation because label values cannot hold commas); malformed or
//   out-of-range entries are ignored.
#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "waterline/api/capacity_pool.h"
#include "waterline/api/meta.h"

namespace waterline::planners {

struct Taint {
  std::string key, value, effect;  // effect: NoSchedule, PreferNoSchedule, NoExecute
  bool operator==(const Taint&) const = default;
};

// Taint keys that mean "this node's GPUs are faulty" (with effect NoSchedule or NoExecute).
inline constexpr std::array<std::string_view, 3> kGpuFaultTaintKeys = {
    "nvidia.com/gpu.health",       // value e.g. "unhealthy", "xid-79"
    "nvidia.com/gpu-unhealthy",
    "waterline.dev/gpu-unhealthy",
};
// Annotation listing unhealthy GPU indices of the node: "0,3".
inline constexpr std::string_view kUnhealthyGpusAnnotation = "waterline.dev/unhealthy-gpus";
// The same, written by the operator itself from DCGM XID errors (planners/xid.h); kept
// apart so that clearing an XID never clears what a person or other tooling set.
inline constexpr std::string_view kXidUnhealthyGpusAnnotation = "waterline.dev/xid-unhealthy-gpus";

// The data zone a node is in, as the fixtures and node provisioning label it (optional).
inline constexpr std::string_view kDataZoneLabel = "waterline.dev/data-zone";

// "0,3" -> {0, 3} (sorted, unique); entries that are not integers in [0, 63] (a GPU
// index: kMaxGpusPerNode GPUs at most) are skipped.
std::vector<int> parseIndexList(std::string_view s);

struct NodeView {
  std::string name;
  api::Labels labels;
  bool ready = false;          // condition Ready=True
  bool unschedulable = false;  // spec.unschedulable
  std::vector<Taint> taints;
  std::string gpuProduct;      // nvidia.com/gpu.product
  // Numbers are parsed strictly (common/parse.h): a value that is not a whole decimal
  // integer in range (gpu.count 0..64, gpu.memory 0..16 TiB in MiB, gpu.replicas
  // 0..1024, allocatable counts 0..65536) is treated as absent and described in
  // invalidValues; a count is never negative.
  int32_t gpuCount = 0;        // nvidia.com/gpu.count label, else allocatable nvidia.com/gpu
  int64_t gpuMemoryMiB = 0;    // nvidia.com/gpu.memory
  // Allocatable extended resources under nvidia.com/ (gpu, mig-1g.10gb, ...).
  std::map<std::string, int64_t> gpuAllocatable;
  // Key of the first GPU-fault taint (NoSchedule / NoExecute), "" for none.
  std::string gpuFaultTaint;
  // From the waterline.dev/unhealthy-gpus annotation: ascending, unique, in [0, gpuCount).
  std::vector<int> unhealthyGpus;
  // DRA mode (set by the capacity cache from ResourceSlices and ResourceClaims, never by
  // fromJson): the GPUs come from the driver's slices (gpuCount, gpuProduct,
  // gpuMemoryMiB, unhealthyGpus as published), and heldGpus are held by claims that are
  // not Waterline workers' (kube-scheduler's, another scheduler's): no new work there,
  // but not a fault either (nobody moves).
  bool dra = false;
  std::vector<int> heldGpus;
  // Label or allocatable values that were ignored as invalid, one message each (the
  // capacity-pool controller logs them once per node version).
  std::vector<std::string> invalidValues;

  // Not Ready, or tainted NoExecute: its workers are not serving and are evicted.
  bool broken() const;
  // Indices of GPUs that must take no new work and whose workers move: every GPU when
  // the node carries a GPU-fault taint, else the annotated ones.
  std::vector<int> faultyGpus() const;
  // GPUs counted unhealthy in pool status: all of them when the node is not ready, is
  // cordoned or has a GPU-fault taint; else the annotated ones.
  int32_t unhealthyGpuCount() const;
  // GPUs a pool of that sharing mode can use here. Exclusive pools hand out whole GPUs:
  // at most the allocatable nvidia.com/gpu the device plugin reports, which is lower than
  // gpu.count (0 when all are partitioned) on a node whose GPUs are MIG-partitioned under
  // GFD's mixed strategy. MIG, time-slicing and MPS pools use every physical GPU.
  int32_t gpusFor(api::SharingMode mode) const;

  static NodeView fromJson(const nlohmann::json& node);
};

// Why a node's own topology labels contradict the pool it is in: its
// topology.kubernetes.io/region differs from spec.region, its topology.kubernetes.io/zone
// does not start with spec.region, or its waterline.dev/data-zone differs from
// spec.dataZone. "" when they agree or the node carries none of these labels. Such a node
// is not used for placement (its GPUs count as unhealthy) and the pool reports Degraded
// TopologyMismatch: data-zone work must never land outside its zone because a selector
// was too wide.
std::string topologyMismatch(const api::CapacityPool& pool, const NodeView& node);

}  // namespace waterline::planners
