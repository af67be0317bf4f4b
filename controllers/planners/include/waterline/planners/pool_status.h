#pragma once
// The CapacityPool status planner: a pure function of the pool, the nodes and the
// other pools (for overlap detection) at `now`.
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
};

PoolStatusPlan planPoolStatus(const PoolStatusInput& in, SystemTime now);

}  // namespace waterline::planners
