#pragma once
// The ModelDeployment planner: a pure function of the deployment, its worker pods, the
// shared GPU inventory and the clock. It decides which pods to create (each with a pool,
// node and GPU assignment, rendered as a complete Pod), which to mark draining and which
// to delete, and the status to write. New placements are assumed into `inventory`, so the
// caller (holding the placement lock) sees them in the next plan of any deployment.
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "waterline/api/model_deployment.h"
#include "waterline/common/time.h"
#include "waterline/planners/inventory_snapshot.h"
#include "waterline/planners/nodes.h"
#include "waterline/scheduling/inventory.h"
#include "waterline/scheduling/model.h"

namespace waterline::planners {

// Hash of everything that shapes a worker pod (template, GPU request, health check,
// model), as 10 hex digits: the waterline.dev/template-hash label.
std::string templateHash(const api::ModelDeployment& d);
// clamp(spec.replicas, minReplicas, maxReplicas) (planDeployment raises it to the PTU
// floor for deployments without autoscaling).
int32_t desiredReplicas(const api::ModelDeployment& d);
// maxUnavailable resolved against `desired` (percent rounded down), at least 1.
int32_t maxUnavailable(const api::ModelDeployment& d, int32_t desired);
// "<deployment>-<index>".
std::string workerPodName(const std::string& deployment, int index);

// The worker pod for one replica placed at `a` in `pool` (see docs/workers.md).
nlohmann::json renderWorkerPod(const api::ModelDeployment& d, const std::string& name,
                               const std::string& pool, const scheduling::Assignment& a,
                               int slicesPerGpu, scheduling::SharingMode mode,
                               const std::string& hash);

struct PodToCreate {
  std::string name;
  std::string pool;
  scheduling::Assignment assignment;
  nlohmann::json pod;
};

struct PlannedEvent {
  std::string type, reason, message;
};

struct DeploymentPlanInput {
  const api::ModelDeployment* deployment = nullptr;
  std::vector<WorkerPod> pods;            // this deployment's pods (cache plus assumed)
  std::vector<NodeView> nodes;            // for repairs: pods on broken nodes
  scheduling::Inventory* inventory = nullptr;  // shared state; placements are assumed into it
  // Repair backoff (RepairBackoff::holdUntil): until then, worker-caused repairs (Failed
  // pods, failing probes) wait; a Failed pod keeps its replica slot meanwhile.
  std::optional<SystemTime> repairHoldUntil;
  // spec.cache in Semantic mode names an embeddings deployment that does not exist (or is
  // being deleted) in the namespace: CacheReady=False, and a Warning on the transition.
  bool embeddingsDeploymentMissing = false;
  // Pods that active health probing turned unhealthy (names): replaced like Failed pods.
  std::set<std::string> unhealthyWorkers;
  // Replicas held by the deployment's Active PTU reservations. Without autoscaling the
  // deployment runs at least this many (capped by maxReplicas); with autoscaling the
  // autoscaler applies the floor to spec.replicas instead.
  int32_t ptuFloor = 0;
  // The GPU inventory's conflicts (capacity cache): claims it refused. One of this
  // deployment's workers whose GPUs another worker (or another deployment's reservation)
  // holds loses: the older claim wins, the worker is deleted and placed again.
  std::vector<scheduling::Conflict> conflicts;
};

// A worker deleted because another one holds its GPUs. Deleted with its uid as a
// precondition (never a successor of the same name); `message` is the GpuConflict Event's.
struct ConflictDelete {
  std::string pod, uid, holder, node;
  std::string message;
};

// One worker replaced or moved for health reasons (an Event and a metric each).
struct Repair {
  std::string pod, uid, node;
  std::string reason;  // planners::repair_reasons
  std::string message;
};

struct DeploymentPlan {
  std::vector<PodToCreate> creates;
  std::vector<std::string> drain;    // pod names to annotate draining-since=now
  std::vector<std::string> remove;   // pod names to delete now
  // Of `remove`: pods of nodes that are gone, deleted at once (grace period 0) as
  // kube-controller-manager's pod GC does: no kubelet is left to confirm a graceful deletion.
  std::set<std::string> removeWithoutGrace;
  std::vector<ConflictDelete> conflictDeletes;  // double-booked workers to delete
  std::optional<Duration> requeueAfter;  // next drain deadline
  api::ModelDeploymentStatus status;
  std::vector<PlannedEvent> events;
  std::vector<Repair> repairs;  // the Events for them are in `events` already
  int repairsHeld = 0;          // worker-caused repairs postponed by the backoff
  int moving = 0;               // workers on faulty GPUs waiting for their replacement
  bool unschedulable = false;  // some desired replica has no capacity
};

DeploymentPlan planDeployment(const DeploymentPlanInput& in, SystemTime now);

// A planned create that did not happen (the apiserver refused the pod, or the request
// failed): `message` is the apiserver's, as the caller got it.
struct CreateFailure {
  std::string pod;
  std::string message;
};

// At most this many bytes of an apiserver message go into a condition or an Event.
inline constexpr size_t kMaxFailureMessage = 512;

// Status from the workers that exist. planDeployment counts its creates as scheduled;
// the caller reports the creates that failed, and this takes them out of plan.status
// (replicas, scheduledReplicas, updatedReplicas, placements), sets Scheduled=False and
// Degraded=True with reason WorkerCreateFailed and the first failure's message (bounded
// to kMaxFailureMessage), keeps the previous transition times of conditions that did not
// change, and replaces the plan's "Scaled" Event by a Warning WorkerCreateFailed Event.
// No failures: the plan is unchanged.
void recordCreateFailures(DeploymentPlan& plan, const api::ModelDeployment& d,
                          const std::vector<CreateFailure>& failures, SystemTime now);

}  // namespace waterline::planners
