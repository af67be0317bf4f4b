#pragma once
// CapacityPool reconciler: reads the pool and the nodes from the cache, plans the
// status (planners::planPoolStatus) and writes it with server-side apply to the status
// subresource. Node events enqueue the pools that select the node; pool events enqueue
// the other pools that share a node with the pool (overlaps, on both sides). Events on
// condition transitions (NodeInMultiplePools, TopologyMismatch, UnsupportedMigProfile).
#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "waterline/api/capacity_pool.h"
#include "waterline/cache/informer.h"
#include "waterline/cache/lister.h"
#include "waterline/capacity/capacity_cache.h"
#include "waterline/kube/client.h"
#include "waterline/runtime/controller.h"
#include "waterline/planners/nodes.h"
#include "waterline/planners/inventory_snapshot.h"
#include "waterline/runtime/events.h"
#include "waterline/scheduling/model.h"

namespace waterline::reconcilers {

struct CapacityPoolDeps {
  kube::WriterPtr writer;  // its reads come from listers
  cache::InformerPtr pools;
  cache::InformerPtr nodes;
  // Worker pods (optional): their creation / deletion enqueues the pool named by their
  // waterline.dev/pool label.
  cache::InformerPtr workerPods = nullptr;
  runtime::EventRecorderPtr recorder;
  TimeSourcePtr time;
  // ModelDeployments (optional, with workerPods): their request shapes give
  // status.fragmentation; a spec change re-plans every pool.
  cache::InformerPtr deployments = nullptr;
  // PTUReservations (optional): GPUs held by Active ones give status.gpus.reserved.
  cache::InformerPtr reservations = nullptr;
  // The capacity cache (optional): its inventory gives the allocated / free counts and,
  // with deployments, status.fragmentation.
  capacity::CapacityCachePtr capacity = nullptr;
  // A status whose only change is in its counts (gpus, slices, fragmentation,
  // utilization, and condition messages that restate them) is written at most this often
  // per pool; the first change after a quiet spell, and any change of a condition's
  // status or reason, of nodes or of observedGeneration, at once. While
  // workers are placed, every placement changes the counts of its pool: without this,
  // each one was a status write (892 writes for 50 pools in `make bench-fleet`).
  Duration countsWriteInterval = std::chrono::seconds(2);
  // While the inventory keeps changing, status.fragmentation (a scheduling probe over the
  // whole inventory) is recomputed at most this often for all pools together.
  Duration fragmentationMaxAge = std::chrono::seconds(1);
};

// What a ModelDeployment adds to the demand a pool's fragmentation is measured against:
// its shape key (GPU request, type, region, zone) and its request (none when invalid).
struct DemandShape {
  std::string id;  // namespace/name of the deployment
  std::string key;
  std::optional<scheduling::Request> request;
  static std::optional<DemandShape> fromJson(const kube::Json& md);
};

// The other pools that select at least one node `poolObj` (a CapacityPool object, the
// old or the new state) selects: those whose overlap with it appears or goes away when it
// is created, changed or deleted. The controller enqueues them on every pool event.
std::vector<runtime::Request> overlappingPools(const kube::Json& poolObj, const cache::Lister<api::CapacityPool>& pools,
                                              const cache::Lister<planners::NodeView>& nodes);

class CapacityPoolReconciler final : public runtime::Reconciler {
 public:
  explicit CapacityPoolReconciler(CapacityPoolDeps deps);
  ~CapacityPoolReconciler() override;
  runtime::ReconcileResult reconcile(const runtime::Request& req) override;
  // Typed listers (decoded once per version), shared with the controller's mappings.
  std::shared_ptr<cache::Lister<api::CapacityPool>> poolLister() const { return pools_; }
  std::shared_ptr<cache::Lister<planners::NodeView>> nodeLister() const { return nodes_; }
  std::shared_ptr<cache::Lister<DemandShape>> shapeLister() const { return shapes_; }

 private:
  CapacityPoolDeps d_;
  std::shared_ptr<cache::Lister<api::CapacityPool>> pools_;
  std::shared_ptr<cache::Lister<planners::NodeView>> nodes_;
  std::shared_ptr<cache::Lister<DemandShape>> shapes_;  // null without deployments
  // Per-pool figures derived from the whole inventory, for one inventory version and demand.
  struct PoolDerived {
    std::uint64_t version = 0;
    std::string shapesKey;
    MonotonicTime at{};
    std::map<std::string, planners::PoolAllocation> allocation;
    std::map<std::string, double> fragmentation;
  };
  // The nodes each pool selects, listed again only after a node event or a spec change
  // (every reconcile used to test every node against the pool's selector).
  struct Members {
    uint64_t nodesGen = 0;
    api::CapacityPoolSpec spec;
    std::vector<std::shared_ptr<const planners::NodeView>> nodes;
  };
  std::vector<std::shared_ptr<const planners::NodeView>> membersOf(const api::CapacityPool& pool);
  std::atomic<uint64_t> nodesGen_{0};
  uint64_t nodeHandler_ = 0;
  std::mutex mu_;
  std::map<std::string, Members> members_;
  std::shared_ptr<const PoolDerived> allocation_, fragmentation_;
  std::map<std::string, MonotonicTime> lastWrite_;  // pool -> last status write (counts coalescing)
};

// Builds the controller with its watches (pools, and nodes mapped to pools).
runtime::ControllerPtr newCapacityPoolController(CapacityPoolDeps deps,
                                                 runtime::ControllerOptions opts = {});

}  // namespace waterline::reconcilers
