#pragma once
// What one node's GPUs look like to Waterline's scheduler in DRA mode, read from the
// DRA inventory (ResourceSlices and every ResourceClaim's allocation) instead of node
// labels and Waterline's own bookkeeping.
//
// The scheduler numbers a node's GPUs 0..count-1. In DRA mode the number of a GPU is its
// minor: the device's "minor" or "index" int attribute where the driver publishes one,
// else the N of the NVIDIA driver's device name "gpu-N". A number is stable while the
// device comes and goes, so a device that disappears from its slice leaves a hole that
// is reported unhealthy (its worker moves, make-before-break) instead of renumbering the
// GPUs after it.
//
// A MIG device belongs to the GPU whose "uuid" its "parentUUID" names (else to the
// "gpu-N" prefix of its name). Whole-GPU placement treats a GPU as held by someone else
// when any device of it (the GPU or one of its MIG devices) is allocated by a claim that
// is not one of Waterline's own workers' claims, or when its counters are consumed
// (a partitionable GPU with MIG devices allocated).
#include <cstdint>
#include <expected>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "waterline/dra/allocator.h"
#include "waterline/dra/inventory.h"

namespace waterline::dra {

struct NodeGpus {
  bool published = false;   // the node has devices of the driver in a usable pool
  int32_t count = 0;        // highest GPU number + 1 (0 when none)
  std::string product;      // productName in GFD's spelling ("NVIDIA-H100-80GB-HBM3")
  int64_t memoryMiB = 0;    // the smallest GPU's capacity "memory", in MiB
  // Numbers below count with no GPU device published, or whose device is tainted
  // NoSchedule / NoExecute: no new work, and their workers move.
  std::vector<int> unhealthy;
  // GPU number -> the claim ("ns/name") of someone else that holds it (or one of its MIG
  // devices), or "counters" when its shared counters are taken.
  std::map<int, std::string> heldByOthers;
  std::map<int, DeviceId> devices;  // GPU number -> its whole-GPU device
  bool operator==(const NodeGpus&) const = default;
};

// GFD writes products with dashes ("NVIDIA-H100-80GB-HBM3"); the driver's productName has
// spaces ("NVIDIA H100 80GB HBM3").
std::string gfdProduct(std::string_view productName);

// The GPU number of a whole-GPU device (-1 when it has none).
int gpuNumber(const Device& d);

// `ours(claimKey)`: whether the claim is one of Waterline's workers' own claims (their
// devices are accounted for by the workers' assignments instead).
NodeGpus nodeGpus(const Inventory& inv, std::string_view node,
                  const std::function<bool(const std::string&)>& ours,
                  std::string_view driver = kNvidiaGpuDriver);

// The allocation of exactly these GPU numbers on the node (request name "gpu"), checked
// against the inventory: every device must exist, be free, untainted and its counters
// (if any) must fit.
std::expected<Allocation, std::string> allocateGpus(const Inventory& inv, std::string_view node,
                                                    const std::vector<int>& gpus,
                                                    std::string_view driver = kNvidiaGpuDriver);

}  // namespace waterline::dra
