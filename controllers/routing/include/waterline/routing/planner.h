#pragma once
// The routing-entry planner (pure): a deployment's routes from a snapshot of the
// deployment, the pools, its worker pods, observed per-pool load and its reservations.
//
//   entries:   one per pool holding at least one of the deployment's pods (by the
//              waterline.dev/pool label), sorted by pool;
//   endpoints: pods that are Ready, not terminating and without the
//              waterline.dev/draining-since annotation, as "podIP:port";
//   draining:  pods with the annotation or a deletionTimestamp (and an IP);
//   capacity:  ready endpoints x spec.throughput.tokensPerMinutePerReplica (0 without
//              throughput);
//   load:      the observed weighted tokens/min of this deployment in the pool (0 when
//              unknown);
//   utilization: load / capacity; 0 when capacity is unknown (no throughput) but there
//              are ready endpoints; 1 when there are none;
//   healthy:   ready endpoints > 0, the pool exists and its Ready condition is not False;
//   weight:    ready endpoints (near-equal pools share traffic by size);
//   maxUtilization: the pool's spec.routing.maxUtilization;
//   heartbeatTime: now; cluster: the publishing cluster's name.
// Reservations: PTUReservations naming the deployment that are active at `now` and not
// Expired, sorted by name.
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "waterline/api/capacity_pool.h"
#include "waterline/api/model_deployment.h"
#include "waterline/api/ptu_reservation.h"
#include "waterline/common/time.h"
#include "waterline/routing/table.h"

namespace waterline::routing {

inline constexpr int32_t kDefaultServingPort = 8000;

// What the planner needs of a worker pod.
struct WorkerPod {
  std::string name;
  std::string pool;  // waterline.dev/pool label
  std::string ip;    // status.podIP
  bool ready = false;        // Ready condition True
  bool terminating = false;  // metadata.deletionTimestamp set
  std::optional<SystemTime> drainingSince;  // waterline.dev/draining-since
};

// Reads a v1 Pod object (as the apiserver returns it). Never fails: missing fields
// leave defaults; an unparsable draining-since still marks the pod draining (at epoch).
WorkerPod workerPodFromJson(const nlohmann::json& pod);

struct RoutingSnapshot {
  const api::ModelDeployment* deployment = nullptr;
  std::vector<const api::CapacityPool*> pools;       // all pools (looked up by name)
  std::vector<WorkerPod> pods;                        // the deployment's worker pods
  std::map<std::string, double> loadTokensPerMinute;  // by pool
  std::vector<const api::PTUReservation*> reservations;  // any; filtered by deploymentRef
  std::string cluster;
  SystemTime now{};
};

// The serving port: the first template port, else kDefaultServingPort.
int32_t servingPort(const api::ModelDeployment& d);

DeploymentRoutes planRoutes(const RoutingSnapshot& s);

}  // namespace waterline::routing
