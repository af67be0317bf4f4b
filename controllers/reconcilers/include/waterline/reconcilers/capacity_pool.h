#pragma once
// CapacityPool reconciler: reads the pool and the nodes from the cache, plans the
// status (planners::planPoolStatus) and writes it with server-side apply to the status
// subresource. Node events enqueue the pools that select the node; pool events enqueue
// the other pools that share a node with the pool (overlaps, on both sides). Events on
// condition transitions (NodeInMultiplePools, TopologyMismatch, UnsupportedMigProfile).
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "waterline/api/capacity_pool.h"
#include "waterline/cache/informer.h"
#include "waterline/capacity/capacity_cache.h"
#include "waterline/kube/client.h"
#include "waterline/runtime/controller.h"
#include "waterline/planners/nodes.h"
#include "waterline/planners/inventory_snapshot.h"
#include "waterline/reconcilers/decoded.h"
#include "waterline/runtime/events.h"
#include "waterline/scheduling/model.h"

namespace waterline::reconcilers {

struct CapacityPoolDeps {
  kube::ClientPtr client;  // writes only
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
std::vector<runtime::Request> overlappingPools(const kube::Json& poolObj, const cache::InformerPtr& pools,
                                              const cache::InformerPtr& nodes,
                                              DecodedByVersion<api::CapacityPool>& decoded);

class CapacityPoolReconciler final : public runtime::Reconciler {
 public:
  explicit CapacityPoolReconciler(CapacityPoolDeps deps);
  runtime::ReconcileResult reconcile(const runtime::Request& req) override;
  // Decoded pools, shared with the controller's node-to-pool mapping.
  std::shared_ptr<DecodedByVersion<api::CapacityPool>> poolDecoder() const { return pools_; }
  // Decoded demand shapes, shared with the controller's deployment-to-pools mapping.
  std::shared_ptr<DecodedByVersion<DemandShape>> shapeDecoder() const { return shapes_; }

 private:
  CapacityPoolDeps d_;
  // Every pool, node and deployment shape, decoded once per resourceVersion.
  std::shared_ptr<DecodedByVersion<api::CapacityPool>> pools_;
  DecodedByVersion<planners::NodeView> nodes_;
  std::shared_ptr<DecodedByVersion<DemandShape>> shapes_;
};

// Builds the controller with its watches (pools, and nodes mapped to pools).
runtime::ControllerPtr newCapacityPoolController(CapacityPoolDeps deps,
                                                 runtime::ControllerOptions opts = {});

}  // namespace waterline::reconcilers
