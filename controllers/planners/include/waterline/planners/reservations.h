#pragma once
// Pure rules over PTUReservation and ModelDeployment objects (JSON, as the caches hold
// them) that more than one reconciler applies: the ModelDeployment and autoscaler
// reconcilers (a deployment's PTU floor, the status fields the autoscaler owns) and the
// CapacityPool reconciler (GPUs reserved in a pool).
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace waterline::planners {

// The PTU floor of a deployment: the sum of status.reservedReplicas of the Active
// PTUReservations (not being deleted) in namespace `ns` whose spec.deploymentRef names it.
int32_t ptuFloorFor(const std::vector<std::shared_ptr<const nlohmann::json>>& reservations, const std::string& ns,
                    const std::string& deployment);

// GPUs held in `pool` by Active reservations (their status.placements), rounded up: the
// CapacityPool's status.gpus.reserved.
int32_t reservedGpusInPool(const std::vector<std::shared_ptr<const nlohmann::json>>& reservations,
                           const std::string& pool);

// Removes what the autoscaler owns from a ModelDeployment status object: the
// ScalingActive and ScalingLimited conditions and status.autoscaling. The ModelDeployment
// reconciler calls it on the status it applies, so that it never re-applies a stale copy.
void stripAutoscalerStatus(nlohmann::json& status);

}  // namespace waterline::planners
