#pragma once
// The CapacityPool status planner: a pure function of the pool, the nodes and the
// other pools (for overlap detection) at `now`. Ready=False when no node is usable (none,
// none ready, all contradicting the pool's region: TopologyMismatch) or when no listed MIG
// profile exists on the product (UnsupportedMigProfile); Degraded=True, first of:
// NodeInMultiplePools, TopologyMismatch, UnsupportedMigProfile, GPUsUnhealthy.
#include <optional>
#include <string>
#include <vector>

#include "waterline/api/capacity_pool.h"
#include "waterline/planners/inventory_snapshot.h"
#include "waterline/planners/nodes.h"

namespace waterline::planners {

struct PoolStatusInput {
  const api::CapacityPool* pool = nullptr;
  std::vector<NodeView> nodes;                 // every node in the cluster
  std::vector<const api::CapacityPool*> others;  // every other pool
  // GPUs / slices held by worker pods (from the inventory rebuilt from their
  // waterline.dev/gpu-assignment annotations); absent: nothing allocated.
  std::optional<PoolAllocation> allocated;
  // fragmentationByPool for this pool; absent: 0.
  std::optional<double> fragmentation;
};

struct PoolStatusPlan {
  api::CapacityPoolStatus status;
  std::vector<std::string> nodeNames;        // the nodes this pool owns
  std::vector<std::string> conflictingNodes;  // selected by this pool and another
  // Nodes whose region / zone / data-zone labels contradict the pool (topologyMismatch):
  // not used, counted unhealthy; the first reason is in Degraded's message.
  std::vector<std::string> mismatchedNodes;
  // spec.sharing.migProfiles entries the GPU product does not have (MIG pools only).
  std::vector<std::string> unsupportedMigProfiles;
};

// The profiles of a MIG pool's spec.sharing.migProfiles that its gpuProduct has no
// geometry for (scheduling::migGeometryForProduct): all of them when the product has no
// known MIG support. Empty for pools that are not MIG.
std::vector<std::string> unsupportedMigProfiles(const api::CapacityPool& pool);

PoolStatusPlan planPoolStatus(const PoolStatusInput& in, SystemTime now);

}  // namespace waterline::planners
