#pragma once
// Builds the scheduler's inventory (scheduling::Inventory) from what the cluster holds:
// CapacityPools, Nodes (NodeView) and worker pods with their waterline.dev/gpu-assignment
// annotation. Pure: the same objects give the same occupancy, which is what lets a
// restarted operator rebuild the GPU map without double allocation.
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "waterline/api/capacity_pool.h"
#include "waterline/api/model_deployment.h"
#include "waterline/common/time.h"
#include "waterline/planners/nodes.h"
#include "waterline/scheduling/inventory.h"
#include "waterline/scheduling/model.h"

namespace waterline::planners {

// What the planners need of a worker pod.
struct WorkerPod {
  std::string ns, name;
  std::string uid;
  std::string deployment;    // waterline.dev/deployment label
  std::string pool;          // waterline.dev/pool label
  std::string templateHash;  // waterline.dev/template-hash label
  std::string node;          // spec.nodeName
  std::string phase;         // status.phase ("" before kwok/kubelet reports)
  bool ready = false;        // condition Ready=True
  bool deleting = false;     // metadata.deletionTimestamp set
  std::string assignment;    // waterline.dev/gpu-assignment annotation
  std::optional<SystemTime> drainingSince;  // waterline.dev/draining-since
  std::optional<SystemTime> created;        // metadata.creationTimestamp

  std::string key() const { return ns + "/" + name; }
  // Failed or Succeeded: holds no GPU any more.
  bool terminal() const { return phase == "Failed" || phase == "Succeeded"; }
  static WorkerPod fromJson(const nlohmann::json& pod);
};

scheduling::PoolSpec toPoolSpec(const api::CapacityPool& pool);
// `pool`: the pool the node belongs to ("" for none), `mode` its sharing mode (an
// Exclusive pool gets the node's whole GPUs only: NodeView::gpusFor).
scheduling::NodeSpec toNodeSpec(const NodeView& node, const std::string& pool,
                                api::SharingMode mode);
scheduling::GpuShape toShape(const api::GpuRequest& gpu);
// The template's tolerations (spec.template.spec.tolerations), as the scheduler's taint filter
// reads them: a worker may only land on a node whose NoSchedule/NoExecute taints they
// tolerate (e.g. the usual nvidia.com/gpu:NoSchedule of GPU nodes).
std::vector<scheduling::Toleration> tolerationsOf(const api::ModelDeployment& d);
// The scheduling request of one replica of `d` (worker id "ns/podName").
scheduling::Request toRequest(const api::ModelDeployment& d, const std::string& podName);
// The request a recorded assignment stands for (its shape), so that occupancy can be
// rebuilt from pods alone, with or without their deployment.
scheduling::Request requestFromAssignment(const scheduling::Assignment& a,
                                          const std::string& worker,
                                          const std::string& deployment);

// Capacity an Active PTUReservation holds in one pool for its deployment (its
// status.placements entry): `replicas` workers of `gpus` GPUs in all.
struct PoolHold {
  std::string reservation;  // "namespace/name"
  std::string deployment;   // "namespace/name"
  std::string pool;
  int32_t replicas = 0;
  double gpus = 0;
};

// Holds of every Active reservation (status.phase Active, not being deleted), from
// PTUReservation objects as JSON.
std::vector<PoolHold> holdsFromReservations(const std::vector<std::shared_ptr<const nlohmann::json>>& reservations);

struct SnapshotInput {
  std::vector<api::CapacityPool> pools;
  std::vector<NodeView> nodes;
  std::vector<WorkerPod> pods;  // every worker pod (cache plus assumed)
  std::vector<PoolHold> holds;  // PTU capacity kept for its deployment (see buildSnapshot)
};

// What a pool's holds for one deployment could not get: GPUs that would have to be
// freed (reclaimed from other deployments' workers) for the reservation to be whole.
struct HoldShortfall {
  std::string pool, deployment;
  int32_t missingReplicas = 0;  // replicas held beyond the deployment's workers in the pool
  double gpusPerReplica = 0;    // as held (whole count, or a fraction of one GPU)
  int32_t needGpus = 0;         // GPUs held for the deployment beyond what its workers there use
  int32_t reservedGpus = 0;     // idle GPUs kept for it now
  int32_t missingGpus() const { return needGpus - reservedGpus; }
};

struct Snapshot {
  scheduling::Inventory inventory;
  std::vector<scheduling::Conflict> conflicts;  // claims refused (clashes, malformed)
  std::map<std::string, std::string> nodePool;  // node -> pool it belongs to
  std::vector<HoldShortfall> holds;  // one per (pool, deployment) with holds, sorted
};

// Pools and nodes in name order; a node selected by several pools belongs to the first by
// name and is marked unschedulable (the pool status reports it as conflicting). Pods that
// are terminal or carry no assignment hold nothing; pods being deleted still hold their
// GPUs until they are gone. Assignments apply oldest pod first.
//
// Holds: after the workers, per (pool, deployment) the holds add up to R replicas and G
// GPUs; the deployment's workers already in the pool (W) count against them, and
//   need = ceil(G × max(0, R − W) / R)
// whole idle GPUs of the pool are reserved for that deployment (scheduling reservations
// named "ptu:<pool>:<deployment>"): its own placements use them first, no other
// deployment's may. Idle GPUs are taken in (pool, deployment) order, up to what is idle
// and within the pool's reservableFraction; the rest is the shortfall (Snapshot::holds),
// what reclaim frees. Deterministic: the same objects give the same reservations.
Snapshot buildSnapshot(const SnapshotInput& in);

// Name prefix of the scheduling reservations that holds create ("ptu:<pool>:<deployment>").
inline constexpr std::string_view kHoldReservationPrefix = "ptu:";

// The holds step of buildSnapshot on its own, for a snapshot kept up to date by events
// (capacity::CapacityCache): reserves idle GPUs for `holds` as described above and fills
// snap.holds. The inventory must hold no hold reservations (withdrawHolds first).
void applyHolds(Snapshot& snap, const std::vector<PoolHold>& holds);
// Releases every hold reservation and clears snap.holds; the workers placed on reserved
// GPUs meanwhile stay.
void withdrawHolds(Snapshot& snap);

// The same over objects the caller keeps (decoded once, shared between reconciles).
struct SnapshotRefs {
  std::vector<const api::CapacityPool*> pools;
  std::vector<const NodeView*> nodes;
  std::vector<const WorkerPod*> pods;
  std::vector<PoolHold> holds;
};
Snapshot buildSnapshot(const SnapshotRefs& in);

// Healthy, idle, unreserved GPUs on schedulable nodes of a pool.
int32_t idleGpus(const scheduling::Inventory& inv, scheduling::PoolId pool);

// GPUs holding at least one worker and slices held, per pool (healthy, schedulable
// nodes only, as counted against allocatable).
struct PoolAllocation {
  int32_t gpus = 0;
  int32_t slices = 0;
  bool operator==(const PoolAllocation&) const = default;
};
std::map<std::string, PoolAllocation> allocationByPool(const scheduling::Inventory& inv);

// Per pool, the share (0..1) of its free capacity (GPU-equivalents on healthy,
// schedulable, unreserved GPUs) that none of `shapes` can use in one placement
// (scheduling::fragmentation; docs/scheduling.md). `shapes`: one request per
// ModelDeployment (toRequest), the demand the pool may have to serve; with none, a
// one-GPU whole request stands in. Pools with no free capacity get 0.
std::map<std::string, double> fragmentationByPool(const scheduling::Inventory& inv,
                                                  std::vector<scheduling::Request> shapes);

}  // namespace waterline::planners
