#pragma once
// A pure DRA allocator for Waterline's workers: given the inventory and a node, pick the
// devices of one worker's need and return the status.allocation that Waterline would
// write into the worker's ResourceClaim (as kube-scheduler's DRA plugin does before it
// binds a pod).
//
// What it mirrors of k8s.io/dynamic-resource-allocation/structured (allocator.go):
// - only devices of usable pools (newest generation, complete) on the node (nodeName)
//   or on all nodes (allNodes) are candidates;
// - a device allocated by any claim is never picked again, nor twice in one allocation;
// - a device that consumes shared counters is picked only while every counter it
//   consumes is left in full, counting what the devices picked earlier in the same
//   allocation consume (a full partitionable GPU consumes its whole counter set, so it
//   is unavailable once any MIG device of it is allocated, and the reverse);
// - devices with a NoSchedule or NoExecute taint are not picked (no tolerations);
// - the result lists driver, pool and device per request, and a node selector
//   (matchFields metadata.name In [node]) because the devices are node-local.
// What it does not do:
// - CEL selectors and DeviceClasses are not evaluated: the need is matched on the NVIDIA
//   driver's attributes instead (type "gpu" / "mig", productName, MIG profile);
// - allocationMode All, firstAvailable (prioritized lists), constraints (matchAttribute),
//   adminAccess, consumable capacity and device binding conditions;
// - no backtracking: devices are picked greedily in the order below. For whole GPUs and
//   single MIG devices, whose counter sets do not overlap between GPUs, greedy finds a
//   fit whenever one exists.
// Choice order (deterministic):
// - whole and shared GPUs: devices of type "gpu" in natural name order (gpu-0, gpu-1, ...),
//   ones that consume no counters first, so partitionable GPUs stay open for MIG;
// - MIG: pre-created MIG devices (no counters) first, then partitionable MIG devices on
//   the GPU whose counter set is already the most consumed (best fit, keeps whole GPUs
//   free, like the scheduler's KeepWholeGpusFree), then natural name order.
// A shared GPU (time-slicing or MPS) is one whole GPU allocated to one claim with the
// driver's opaque GpuConfig (resource.nvidia.com/v1beta1, sharing.strategy); the
// workers that share it all refer to that claim (status.reservedFor), which is not
// modelled here.
#include <expected>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "waterline/dra/inventory.h"
#include "waterline/dra/resource.h"

namespace waterline::dra {

struct Need {
  enum class Kind { WholeGpus, Mig, SharedGpu };
  Kind kind = Kind::WholeGpus;
  int count = 1;              // WholeGpus: how many; Mig and SharedGpu: 1
  std::string product;        // productName; empty: any
  std::string mig_profile;    // Mig: "1g.10gb", "3g.40gb", ...
  std::string sharing = "TimeSlicing";  // SharedGpu: TimeSlicing | MPS
  std::string request = "gpu";          // the claim's request name
  std::string driver = std::string(kNvidiaGpuDriver);
};

struct Allocation {
  std::string node;
  std::vector<DeviceResult> results;
  nlohmann::json config;  // status.allocation.devices.config (array; empty when none)

  // status.allocation: {devices: {results, config?}, nodeSelector}.
  nlohmann::json toJson() const;
  // A claim that holds this allocation (for the inventory and tests).
  ResourceClaim asClaim(std::string ns, std::string name, std::string uid) const;
};

// Picks the devices; an error says why nothing fits on the node.
std::expected<Allocation, std::string> allocate(const Inventory& inv, std::string_view node, const Need& need);

// Whether a device can serve the need's shape, ignoring availability.
bool matches(const DeviceEntry& d, const Need& need);

}  // namespace waterline::dra
