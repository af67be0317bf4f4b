#pragma once
// Composition: one setup function per controller (controller-runtime's
// `SetupWithManager`), so that the operator's main() only reads its configuration and
// calls them, and a test can wire the same controllers the same way.
//
// `setupShared` creates what the controllers share, in the order that matters: the
// informers, then the capacity cache (whose event handlers must run before any
// controller's, so that a reconcile an event triggers sees that event in the inventory).
#include <functional>
#include <memory>
#include <string>

#include "waterline/capacity/capacity_cache.h"
#include "waterline/cache/informer.h"
#include "waterline/common/time.h"
#include "waterline/kube/client.h"
#include "waterline/reconcilers/health_prober.h"
#include "waterline/reconcilers/model_deployment.h"
#include "waterline/runtime/controller.h"
#include "waterline/runtime/events.h"
#include "waterline/runtime/manager.h"
#include "waterline/sources/prometheus.h"

namespace waterline::reconcilers {

struct Shared {
  kube::ClientPtr client;
  runtime::EventRecorderPtr recorder;
  TimeSourcePtr time;
  runtime::ControllerOptions controllerOptions;
  cache::InformerPtr pools, nodes, workerPods, deployments, reservations;
  cache::InformerPtr resourceSlices, resourceClaims;  // null: DRA off (not served, or disabled)
  capacity::CapacityCachePtr capacity;
  sources::PrometheusClientPtr prometheus;  // null: no Prometheus (no autoscaling input, no XIDs)
};

// Informers (from the manager's factory) and the capacity cache. `dra`: read
// ResourceSlices and ResourceClaims when the cluster serves resource.k8s.io/v1 (checked
// with one list call).
Shared setupShared(runtime::Manager& mgr, kube::ClientPtr client, runtime::EventRecorderPtr recorder,
                   TimeSourcePtr time, runtime::ControllerOptions opts,
                   sources::PrometheusClientPtr prometheus = nullptr, bool dra = true);

void setupCapacityPoolController(runtime::Manager& mgr, const Shared& s);

struct ModelDeploymentSetup {
  bool activeHealthProbes = false;  // HTTP probes of workers (leader-only runnable)
};
runtime::Controller& setupModelDeploymentController(runtime::Manager& mgr, const Shared& s,
                                                    ModelDeploymentSetup opts = {});

void setupAutoscalerController(runtime::Manager& mgr, const Shared& s, Duration syncPeriod);
// Leader-only; only with Prometheus (does nothing without).
void setupXidWatcher(runtime::Manager& mgr, const Shared& s, Duration period);
void setupPtuReservationController(runtime::Manager& mgr, const Shared& s);

struct RoutingSetup {
  kube::ClientPtr hub;  // the routing hub (this cluster's client when it is its own hub)
  // Informers of the hub when it is another cluster (started and stopped with the routes
  // service); null: the manager's own.
  std::shared_ptr<cache::InformerFactory> hubInformers;
  std::string cluster;
  Duration heartbeat = std::chrono::seconds(10);
  std::string heartbeatNamespace;
};
// The routing heartbeat, the /v1/routes service (every replica) and the publisher.
void setupRouting(runtime::Manager& mgr, const Shared& s, RoutingSetup r);

// Fleet gauges from the informer caches, at scrape time, on every replica.
void setupFleetMetrics(runtime::Manager& mgr, const Shared& s);

}  // namespace waterline::reconcilers
