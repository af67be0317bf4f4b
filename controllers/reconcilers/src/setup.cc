// Composition of the controllers (see setup.h): what main() did positionally, one
// function per controller, so that the operator and the in-process tests wire them alike.
#include "waterline/reconcilers/setup.h"

#include <utility>

#include "waterline/api/keys.h"
#include "waterline/common/log.h"
#include "waterline/reconcilers/autoscaler.h"
#include "waterline/reconcilers/capacity_pool.h"
#include "waterline/reconcilers/fleet_metrics.h"
#include "waterline/reconcilers/observations.h"
#include "waterline/reconcilers/ptu_reservation.h"
#include "waterline/reconcilers/routes_service.h"
#include "waterline/reconcilers/routing_heartbeat.h"
#include "waterline/reconcilers/routing_publisher.h"
#include "waterline/reconcilers/xid_watcher.h"

namespace waterline::reconcilers {

Shared setupShared(runtime::Manager& mgr, kube::ClientPtr client, runtime::EventRecorderPtr recorder,
                   TimeSourcePtr time, runtime::ControllerOptions opts,
                   sources::PrometheusClientPtr prometheus, bool dra) {
  Shared s;
  s.client = std::move(client);
  s.recorder = std::move(recorder);
  s.time = std::move(time);
  s.controllerOptions = std::move(opts);
  if (!s.controllerOptions.time) s.controllerOptions.time = s.time;
  s.prometheus = std::move(prometheus);
  auto& f = mgr.informers();
  s.pools = f.informerFor(kube::kinds::CapacityPool);
  s.nodes = f.informerFor(kube::kinds::Node);
  // Worker pods (all namespaces), selected by the label every worker carries.
  cache::InformerOptions podOpts;
  podOpts.labelSelector =
      std::string(api::labels::kManagedBy) + "=" + std::string(api::labels::kManagedByValue);
  s.workerPods = f.informerFor(kube::kinds::Pod, podOpts);
  s.workerPods->addIndexer(kWorkerDeploymentIndex, workerDeploymentIndexFunc);
  s.deployments = f.informerFor(kube::kinds::ModelDeployment);
  s.reservations = f.informerFor(kube::kinds::PTUReservation);
  // DRA (resource.k8s.io/v1, GA since Kubernetes 1.34) when the cluster serves it: every
  // ResourceSlice and every ResourceClaim (those of pods Waterline does not manage too).
  if (dra) {
    kube::ListOptions probe;
    probe.limit = 1;
    auto served = s.client->list(kube::kinds::ResourceSlice, "", probe);
    if (served) {
      s.resourceSlices = f.informerFor(kube::kinds::ResourceSlice);
      s.resourceClaims = f.informerFor(kube::kinds::ResourceClaim);
    } else {
      log::logger("setup").info("DRA off: resource.k8s.io/v1 ResourceSlices cannot be listed",
                                {{"error", served.error().describe()}});
    }
  }
  // The one GPU capacity state of the process (an event-fed inventory with assume /
  // forget / expire), shared by every reconciler that reads or places capacity. Created
  // before any controller, so its handlers run first.
  s.capacity = std::make_shared<capacity::CapacityCache>(
      capacity::CapacityCacheSources{s.pools, s.nodes, s.workerPods, s.reservations, s.resourceSlices,
                                     s.resourceClaims},
      s.time);
  return s;
}

void setupCapacityPoolController(runtime::Manager& mgr, const Shared& s) {
  CapacityPoolDeps cd{s.client, s.pools, s.nodes, s.workerPods, s.recorder, s.time, s.deployments, s.reservations};
  cd.capacity = s.capacity;
  mgr.add(newCapacityPoolController(std::move(cd), s.controllerOptions));
}

runtime::Controller& setupModelDeploymentController(runtime::Manager& mgr, const Shared& s,
                                                    ModelDeploymentSetup opts) {
  // Worker repairs: per-deployment backoff and waterline_repairs_total{reason}.
  auto repairs = std::make_shared<RepairTracker>(mgr.registry());
  // Active HTTP health probing of workers (spec.healthCheck), opt-in: kwok pod IPs are
  // not reachable. A transition enqueues the deployment; unhealthy workers are replaced.
  std::shared_ptr<HealthProber> prober;
  auto controller = std::make_shared<runtime::Controller*>(nullptr);
  if (opts.activeHealthProbes) {
    HealthProberOptions po;
    po.deployments = s.deployments;
    po.pods = s.workerPods;
    po.time = s.time;
    po.registry = &mgr.registry();
    po.onTransition = [controller](const std::string& ns, const std::string& name) {
      if (*controller) (*controller)->enqueue({ns, name});
    };
    prober = std::make_shared<HealthProber>(std::move(po));
    mgr.addRunnable({"health-prober", true, [prober] { prober->start(); }, [prober] { prober->stop(); }});
  }
  UnhealthyWorkersFn unhealthyWorkers = nullptr;
  if (prober)
    unhealthyWorkers = [prober](const std::string& ns, const std::string& name) { return prober->unhealthy(ns, name); };
  *controller = &mgr.add(newModelDeploymentController(
      {s.client, s.deployments, s.pools, s.nodes, s.capacity, s.recorder, s.time, repairs, unhealthyWorkers,
       s.reservations, s.client},
      s.controllerOptions));
  return **controller;
}

void setupAutoscalerController(runtime::Manager& mgr, const Shared& s, Duration syncPeriod) {
  AutoscalerDeps ad;
  ad.writer = s.client;
  ad.deployments = s.deployments;
  ad.reservations = s.reservations;
  ad.recorder = s.recorder;
  ad.time = s.time;
  ad.syncPeriod = syncPeriod;
  ad.prometheus = s.prometheus;  // null: autoscaled deployments hold their replica count
  mgr.add(newAutoscalerController(std::move(ad), s.controllerOptions));
}

void setupXidWatcher(runtime::Manager& mgr, const Shared& s, Duration period) {
  if (!s.prometheus) return;
  XidWatcherDeps xd;
  xd.writer = s.client;
  xd.nodes = s.nodes;
  xd.prometheus = s.prometheus;
  xd.recorder = s.recorder;
  xd.time = s.time;
  xd.period = period;
  auto xid = std::make_shared<XidWatcher>(std::move(xd));
  mgr.addRunnable({"xid-watcher", true, [xid] { xid->start(); }, [xid] { xid->stop(); }});
}

void setupPtuReservationController(runtime::Manager& mgr, const Shared& s) {
  PtuReservationDeps pd{s.client, s.reservations, s.deployments, s.pools, s.recorder, s.time};
  pd.capacity = s.capacity;  // reclaim plans on the same capacity state as placement
  if (s.prometheus) {
    pd.load = makePrometheusLoad(s.prometheus);                // usedTokensPerMinute
    pd.routerCounts = makePrometheusPtuCounters(s.prometheus);  // 429s, spillovers
  }
  mgr.add(newPtuReservationController(std::move(pd), s.controllerOptions));
}

void setupRouting(runtime::Manager& mgr, const Shared& s, RoutingSetup r) {
  kube::ClientPtr hub = r.hub ? r.hub : s.client;
  auto hubInformers = r.hubInformers;
  auto informerFor = [&](const kube::ResourceKind& kind, cache::InformerOptions o = {}) {
    return hubInformers ? hubInformers->informerFor(kind, o) : mgr.informers().informerFor(kind, o);
  };
  auto tables = informerFor(kube::kinds::RoutingTable);
  // One heartbeat Lease per cluster in the hub (docs/routing.md, "Heartbeat").
  cache::InformerOptions hbOpts;
  hbOpts.ns = r.heartbeatNamespace;
  hbOpts.labelSelector = std::string(kRoutingHeartbeatLabel) + "=true";
  auto heartbeatLeases = informerFor(kube::kinds::Lease, hbOpts);
  auto clusterHeartbeat =
      std::make_shared<ClusterHeartbeat>(hub, r.heartbeatNamespace, r.cluster, r.heartbeat, s.time);
  mgr.addRunnable({"routing-heartbeat", true, [clusterHeartbeat] { clusterHeartbeat->start(); },
                   [clusterHeartbeat] { clusterHeartbeat->stop(); }});
  auto routesService = std::make_shared<RoutesService>(tables, s.time, heartbeatLeases);
  // Coalesce bursts of RoutingTable events (each rebuild serializes the whole table);
  // routers still see a change well within a second.
  routesService->setMinRebuildInterval(std::chrono::milliseconds(250));
  routesService->install(mgr.http());
  routesService->registerMetrics(mgr.registry());
  mgr.addRunnable({"routes-service", false,
                   [hubInformers, rs = routesService] {
                     if (hubInformers) hubInformers->start();
                     rs->start();
                   },
                   [hubInformers, rs = routesService] {
                     rs->stop();
                     if (hubInformers) hubInformers->stop();
                   }});
  RoutingPublisherDeps rp;
  rp.hub = hub;
  rp.hubReader = hub;
  rp.deployments = s.deployments;
  rp.pools = s.pools;
  rp.workerPods = s.workerPods;
  rp.reservations = s.reservations;
  rp.cluster = r.cluster;
  rp.heartbeat = r.heartbeat;
  rp.clusterHeartbeatLive = [clusterHeartbeat] { return clusterHeartbeat->live(); };
  rp.hubTables = tables;
  if (s.prometheus) rp.load = makePrometheusLoad(s.prometheus);  // per-pool tokens/min
  rp.time = s.time;
  mgr.add(newRoutingPublisherController(std::move(rp), s.controllerOptions));
}

void setupFleetMetrics(runtime::Manager& mgr, const Shared& s) {
  registerFleetMetrics(mgr.registry(), FleetSources::fromInformers(s.pools, s.deployments, s.reservations));
}

}  // namespace waterline::reconcilers
