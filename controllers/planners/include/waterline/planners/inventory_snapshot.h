#pragma once
// Builds the scheduler's inventory (scheduling::Inventory) from what the cluster holds:
// CapacityPools, Nodes (NodeView) and worker pods with their waterline.dev/gpu-assignment
// annotation. Pure: the same objects give the same occupancy, which is what lets a
// restarted operator rebuild the GPU map without double allocation.
#include <cstdint>
#include <map>
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
// `pool`: the pool the node belongs to ("" for none).
scheduling::NodeSpec toNodeSpec(const NodeView& node, const std::string& pool);
scheduling::GpuShape toShape(const api::GpuRequest& gpu);
// The scheduling request of one replica of `d` (worker id "ns/podName").
scheduling::Request toRequest(const api::ModelDeployment& d, const std::string& podName);
// The request a recorded assignment stands for (its shape), so that occupancy can be
// rebuilt from pods alone, with or without their deployment.
scheduling::Request requestFromAssignment(const scheduling::Assignment& a,
                                          const std::string& worker,
                                          const std::string& deployment);

struct SnapshotInput {
  std::vector<api::CapacityPool> pools;
  std::vector<NodeView> nodes;
  std::vector<WorkerPod> pods;  // every worker pod (cache plus assumed)
};

struct Snapshot {
  scheduling::Inventory inventory;
  std::vector<scheduling::Conflict> conflicts;  // claims refused (clashes, malformed)
  std::map<std::string, std::string> nodePool;  // node -> pool it belongs to
};

// Pools and nodes in name order; a node selected by several pools belongs to the first by
// name and is marked unschedulable (the pool status reports it as conflicting). Pods that
// are terminal or carry no assignment hold nothing; pods being deleted still hold their
// GPUs until they are gone. Assignments apply oldest pod first.
Snapshot buildSnapshot(const SnapshotInput& in);

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
