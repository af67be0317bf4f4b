#pragma once
// Reclaim (pure): an Active PTUReservation holds GPUs in a pool for its deployment
// (planners::PoolHold). When the pool is full of other deployments' workers, the holds
// come up short (Snapshot::holds, HoldShortfall) and the reservation's deployment cannot
// place its reserved replicas. planReclaim picks which workers to evict so that those
// replicas fit, and then the snapshot reserves the freed GPUs for the deployment.
//
// Per pool where the deployment's holds miss GPUs, in units of what one replica needs
// on one node (c = its GPU count for whole-GPU requests; for fractional requests one
// GPU, and the units are the missing GPUs):
//   - units that already fit (nodes with c idle GPUs, unreserved or reserved for the
//     deployment, counting GPUs that workers being deleted will free) need no eviction:
//     a shortfall that idle GPUs cover is the pool's reservableFraction, not occupancy;
//   - candidates: live workers in the pool of OTHER deployments that are not reserved
//     themselves (a deployment with holds in the pool keeps its oldest `replicas`
//     workers there); orphans (no ModelDeployment) first, then by the deployment's
//     spec.priority (lowest first), not-Ready before Ready, newest first, then name;
//   - disruption limits: a deployment loses at most maxUnavailable workers at a time,
//     counting its workers already unavailable (not Ready, or being deleted); the others
//     wait (`blocked`) for a later pass;
//   - one unit at a time, the node where it costs least: taking that node's candidates
//     in order until one more unit fits there; cost = (highest priority evicted, number
//     of evictions, node name). Simulated on a copy of the inventory. When every node
//     needs more evictions than the budgets allow now (a 4-GPU replica, maxUnavailable
//     2), the cheapest node's allowed evictions go ahead and the rest wait: the freed
//     GPUs are reserved for the deployment, so the next pass continues from there.
// Deterministic: the same cluster gives the same victims, so two passes racing evict the
// same pods.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "waterline/api/model_deployment.h"
#include "waterline/planners/inventory_snapshot.h"

namespace waterline::planners {

struct ReclaimInput {
  const Snapshot* snapshot = nullptr;  // built with every Active reservation's holds
  std::vector<WorkerPod> pods;         // every worker pod (as given to the snapshot)
  std::map<std::string, api::ModelDeployment> deployments;  // "namespace/name"
  std::vector<PoolHold> holds;                               // as given to the snapshot
  std::string deployment;  // reclaim for this deployment ("namespace/name")
};

struct Eviction {
  std::string ns, name, uid;
  std::string deployment;  // "namespace/name" of the victim's deployment
  std::string pool, node;
  int32_t priority = 0;
};

struct PoolReclaim {
  std::string pool;
  int32_t gpusPerUnit = 1;  // c
  int32_t missingUnits = 0;  // replicas (or GPUs, fractional) the holds miss
  int32_t fittingUnits = 0;  // of those, fit already (idle, or freed by deletions in flight)
  int32_t freedUnits = 0;    // made to fit by the evictions planned now
  int32_t blocked = 0;       // candidates held back by disruption limits
};

struct ReclaimPlan {
  std::vector<Eviction> evictions;
  std::vector<PoolReclaim> pools;  // pools where the holds miss GPUs, by name
  // Whether units still do not fit after what is in flight and planned now (a later pass
  // is needed: after deletions finish, or when budgets allow).
  bool pending() const;
};

ReclaimPlan planReclaim(const ReclaimInput& in);

}  // namespace waterline::planners
