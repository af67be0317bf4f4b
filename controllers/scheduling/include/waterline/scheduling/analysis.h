#pragma once
// Pure read-only analyses of an inventory: scale-down victim selection, the
// fragmentation figure, and packing statistics. Definitions in docs/scheduling.md.
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "waterline/scheduling/framework.h"
#include "waterline/scheduling/inventory.h"

namespace waterline::scheduling {

// Chooses `count` of `workers` (names of live workers, normally one deployment's) to
// remove so that fragmentation falls. Greedy, one victim at a time against the state
// left by the earlier ones, best first by:
//   1. on a node that is not ready / cordoned, or holding an unhealthy GPU;
//   2. removal empties its node;
//   3. more GPUs become idle;
//   4. BinPack pools: the emptiest node after removal (drain it); Spread pools: the
//      fullest node (even it out);
//   5. worker name.
// Unknown names are ignored. Deterministic.
std::vector<std::string> selectVictims(const Inventory& inv, std::span<const std::string> workers,
                                       std::size_t count);

// Free capacity that no pending request shape can use. Capacity is counted in
// GPU-equivalents on schedulable nodes, healthy and unreserved GPUs only: an idle whole
// GPU is 1, a free MIG memory slice 1/8 (1/4 on A30), a free share slice 1/slicesPerGpu. A free unit
// is usable when some pending request whose class-level filters pass for the node's
// class could take it in one placement:
//   - whole GPUs of a node: usable when the node has at least as many idle GPUs as the
//     smallest eligible whole request;
//   - a free MIG slice: usable when it lies inside a free valid placement of an eligible
//     profile on that GPU;
//   - free share slices of a GPU: usable when an eligible share request takes no more
//     slices than the GPU has free.
// Everything else is stranded.
struct FragmentationReport {
  struct Pool {
    std::string pool;
    double free_gpus = 0;
    double stranded_gpus = 0;
  };
  double free_gpus = 0;
  double stranded_gpus = 0;
  std::vector<Pool> pools;  // sorted by name
  double strandedPct() const { return free_gpus > 0 ? 100.0 * stranded_gpus / free_gpus : 0.0; }
};
FragmentationReport fragmentation(const Inventory& inv, const Profile& profile,
                                  std::span<const Request> pending);

// Occupancy versus the fewest GPUs that could hold the same placed demand.
//   gpus_used:        GPUs with at least one occupant;
//   lower_bound_gpus: per pool, Exclusive: GPUs held; MIG: max(ceil(memory slices / 8),
//                     ceil(compute slices / 7), number of +me instances); shares:
//                     ceil(slices held / slicesPerGpu); summed over pools;
//   stranded:         gpus_used - lower_bound_gpus (GPUs opened but not filled);
//   gpus_partial:     used GPUs on which some allowed shape of the pool still fits.
struct PackingStats {
  std::int64_t gpus = 0;
  std::int64_t gpus_used = 0;
  std::int64_t gpus_partial = 0;
  std::int64_t lower_bound_gpus = 0;
  std::int64_t nodes = 0;
  std::int64_t nodes_used = 0;
  std::int64_t nodes_full = 0;
  std::int64_t idle_nodes = 0;  // schedulable nodes with every GPU idle
  std::int64_t stranded() const { return gpus_used - lower_bound_gpus; }
  double strandedVsBoundPct() const {
    return lower_bound_gpus > 0 ? 100.0 * static_cast<double>(stranded()) /
                                      static_cast<double>(lower_bound_gpus)
                                : 0.0;
  }
};
PackingStats packingStats(const Inventory& inv);

}  // namespace waterline::scheduling
