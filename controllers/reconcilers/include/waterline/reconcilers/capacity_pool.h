#pragma once
// CapacityPool reconciler: reads the pool and the nodes from the cache, plans the
// status (planners::planPoolStatus) and writes it with server-side apply to the status
// subresource. Node events enqueue the pools that select the node.
#include <memory>

#include "waterline/cache/informer.h"
#include "waterline/kube/client.h"
#include "waterline/runtime/controller.h"
#include "waterline/runtime/events.h"

namespace waterline::reconcilers {

struct CapacityPoolDeps {
  kube::ClientPtr client;  // writes only
  cache::InformerPtr pools;
  cache::InformerPtr nodes;
  // Worker pods (optional): their GPU assignments give the allocated / free counts, and
  // their creation / deletion enqueues the pool named by their waterline.dev/pool label.
  cache::InformerPtr workerPods = nullptr;
  runtime::EventRecorderPtr recorder;
  TimeSourcePtr time;
  // ModelDeployments (optional, with workerPods): their request shapes give
  // status.fragmentation; a spec change re-plans every pool.
  cache::InformerPtr deployments = nullptr;
  // PTUReservations (optional): GPUs held by Active ones give status.gpus.reserved.
  cache::InformerPtr reservations = nullptr;
};

class CapacityPoolReconciler final : public runtime::Reconciler {
 public:
  explicit CapacityPoolReconciler(CapacityPoolDeps deps) : d_(std::move(deps)) {}
  runtime::ReconcileResult reconcile(const runtime::Request& req) override;

 private:
  CapacityPoolDeps d_;
};

// Builds the controller with its watches (pools, and nodes mapped to pools).
runtime::ControllerPtr newCapacityPoolController(CapacityPoolDeps deps,
                                                 runtime::ControllerOptions opts = {});

}  // namespace waterline::reconcilers
