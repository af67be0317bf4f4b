// waterline-operator: the composition root. The only place that wires implementations
// together: config -> REST client -> informers -> controllers -> manager.
#include <malloc.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <iostream>
#include <string>
#include <vector>

#include "waterline/common/log.h"
#include "waterline/common/metrics.h"
#include "waterline/kube/config.h"
#include "waterline/kube/rest_client.h"
#include "waterline/main/operator_config.h"
#include "waterline/api/keys.h"
#include "waterline/capacity/capacity_cache.h"
#include "waterline/reconcilers/autoscaler.h"
#include "waterline/reconcilers/capacity_pool.h"
#include "waterline/reconcilers/fleet_metrics.h"
#include "waterline/reconcilers/health_prober.h"
#include "waterline/reconcilers/model_deployment.h"
#include "waterline/reconcilers/ptu_reservation.h"
#include "waterline/reconcilers/routes_service.h"
#include "waterline/reconcilers/routing_heartbeat.h"
#include "waterline/reconcilers/routing_publisher.h"
#include "waterline/reconcilers/xid_watcher.h"
#include "waterline/runtime/client_metrics.h"
#include "waterline/runtime/manager.h"
#include "waterline/sources/prometheus.h"

#ifndef WATERLINE_VERSION
#define WATERLINE_VERSION "dev"
#endif

namespace {

using namespace waterline;

std::string defaultIdentity() {
  char host[256] = {0};
  gethostname(host, sizeof host - 1);
  return std::string(host) + "_" + std::to_string(getpid());
}

}  // namespace

int main(int argc, char** argv) {
  // glibc gives every thread that allocates its own arena (up to 8 per core) and keeps
  // what is freed in each. The operator's reconcile workers, informers and HTTP threads
  // allocate in bursts; at fleet size that held about a third of the peak RSS
  // (docs/performance.md, "Fleet"). Two arenas, unless MALLOC_ARENA_MAX says otherwise.
  if (!std::getenv("MALLOC_ARENA_MAX")) mallopt(M_ARENA_MAX, 2);
  // Flags: a typed OperatorConfig (docs/flags.md); bad flags exit 2 with a message that names the flag.
  auto parsed = cmd::parseOperatorConfig(argc, argv);
  if (!parsed) {
    if (parsed.error().code == 0) std::cout << parsed.error().text;
    else std::cerr << "waterline-operator: " << parsed.error().text << "\n";
    return parsed.error().code;
  }
  cmd::OperatorConfig& o = *parsed;
  log::setLevel(o.logLevel);
  log::setVerbosity(o.verbosity);
  const auto lg = log::logger("main");

  // Block termination signals before any thread starts (every thread inherits the mask);
  // they wait on a signalfd that the manager's run loop polls, so a signal that arrives
  // during start-up stops the manager as soon as it runs, and the exit code is the
  // manager's: 0 after a graceful stop, non-zero after an error.
  const int signalFd = runtime::blockSignalsToFd({SIGTERM, SIGINT});
  if (signalFd < 0) {
    lg.error("cannot block termination signals", {{"err", std::strerror(errno)}});
    return 1;
  }

  auto cfg = kube::loadDefault(o.kubeconfig, o.context);
  if (!cfg) {
    lg.error("cannot load Kubernetes client configuration", {{"err", cfg.error()}});
    return 1;
  }
  cfg->qps = o.kubeApiQps;
  cfg->burst = o.kubeApiBurst;
  cfg->userAgent = "waterline-operator/" WATERLINE_VERSION;
  auto time = RealTimeSource::instance();
  auto clientMetrics = std::make_shared<runtime::ClientMetrics>(metrics::defaultRegistry());
  auto client = kube::RestClient::create(*cfg, time, clientMetrics);
  if (!client) {
    lg.error("cannot create Kubernetes client", {{"err", client.error()}});
    return 1;
  }
  lg.info("using API server", {{"server", cfg->server}, {"source", cfg->source}});

  runtime::ManagerOptions mo;
  mo.client = *client;
  mo.time = time;
  mo.bindAddress = o.bindAddress;
  mo.leaderElection = o.leaderElect;
  mo.resyncPeriod = o.resyncPeriod;
  mo.stopSignalFd = signalFd;
  auto& le = mo.leaderElectionConfig;
  le.ns = o.leaderElectionNamespace;
  le.name = o.leaderElectionId;
  le.identity = o.identity.empty() ? defaultIdentity() : o.identity;
  le.leaseDuration = o.leaseDuration;  // parseOperatorConfig checked lease > renew > retry
  le.renewDeadline = o.renewDeadline;
  le.retryPeriod = o.retryPeriod;

  runtime::Manager mgr(mo);
  runtime::registerInformerMetrics(mgr.registry(), mgr.informers());
  auto recorder = std::make_shared<runtime::KubeEventRecorder>(*client, "waterline-operator",
                                                               le.identity, time);
  runtime::ControllerOptions co;
  co.workers = o.workers;
  co.time = time;

  auto pools = mgr.informers().informerFor(kube::kinds::CapacityPool);
  auto nodes = mgr.informers().informerFor(kube::kinds::Node);
  // Worker pods (all namespaces), selected by the label every worker carries.
  cache::InformerOptions podOpts;
  podOpts.labelSelector =
      std::string(api::labels::kManagedBy) + "=" + std::string(api::labels::kManagedByValue);
  auto workerPods = mgr.informers().informerFor(kube::kinds::Pod, podOpts);
  workerPods->addIndexer(reconcilers::kWorkerDeploymentIndex, reconcilers::workerDeploymentIndexFunc);
  auto deployments = mgr.informers().informerFor(kube::kinds::ModelDeployment);
  auto ptus = mgr.informers().informerFor(kube::kinds::PTUReservation);
  // The one GPU capacity state of the process (an event-fed inventory with assume /
  // forget / expire), shared by every reconciler that reads or places capacity. Built
  // before the controllers, so its handlers run first: a reconcile an event triggers sees
  // that event in the inventory.
  auto capacityCache = std::make_shared<capacity::CapacityCache>(
      capacity::CapacityCacheSources{pools, nodes, workerPods, ptus}, time);
  {
    reconcilers::CapacityPoolDeps cd{*client, pools, nodes, workerPods, recorder, time, deployments, ptus};
    cd.capacity = capacityCache;
    mgr.add(reconcilers::newCapacityPoolController(std::move(cd), co));
  }
  // Worker repairs: per-deployment backoff and waterline_repairs_total{reason}.
  auto repairs = std::make_shared<reconcilers::RepairTracker>(mgr.registry());
  // Active HTTP health probing of workers (spec.healthCheck), opt-in: kwok pod IPs are
  // not reachable. A transition enqueues the deployment; unhealthy workers are replaced.
  std::shared_ptr<reconcilers::HealthProber> prober;
  auto mdController = std::make_shared<runtime::Controller*>(nullptr);
  if (o.activeHealthProbes) {
    reconcilers::HealthProberOptions po;
    po.deployments = deployments;
    po.pods = workerPods;
    po.time = time;
    po.registry = &mgr.registry();
    po.onTransition = [mdController](const std::string& ns, const std::string& name) {
      if (*mdController) (*mdController)->enqueue({ns, name});
    };
    prober = std::make_shared<reconcilers::HealthProber>(std::move(po));
    mgr.addRunnable({"health-prober", true, [prober] { prober->start(); }, [prober] { prober->stop(); }});
  }
  reconcilers::UnhealthyWorkersFn unhealthyWorkers = nullptr;
  if (prober)
    unhealthyWorkers = [prober](const std::string& ns, const std::string& name) { return prober->unhealthy(ns, name); };
  *mdController = &mgr.add(reconcilers::newModelDeploymentController(
      {*client, deployments, pools, nodes, capacityCache, recorder, time, repairs, unhealthyWorkers, ptus}, co));

  // The autoscaler: its own controller keyed by ModelDeployment (docs/autoscaling.md).
  sources::PrometheusClientPtr prometheus;
  {
    if (o.prometheusUrl.empty())
      if (const char* e = std::getenv("WATERLINE_PROMETHEUS_URL")) o.prometheusUrl = e;
    reconcilers::AutoscalerDeps ad;
    ad.client = *client;
    ad.deployments = deployments;
    ad.reservations = ptus;
    ad.recorder = recorder;
    ad.time = time;
    ad.syncPeriod = o.autoscalerSyncPeriod;
    if (!o.prometheusUrl.empty()) {
      sources::PrometheusClientConfig pc;
      pc.baseUrl = o.prometheusUrl;
      pc.timeout = o.prometheusTimeout;
      prometheus = sources::makeHttpPrometheusClient(pc, time);
      ad.prometheus = prometheus;
      lg.info("autoscaling queries go to Prometheus", {{"url", o.prometheusUrl}});
    } else {
      lg.info("no --prometheus-url: autoscaled deployments hold their replica count");
    }
    mgr.add(reconcilers::newAutoscalerController(std::move(ad), co));
  }
  // GPU faults from DCGM XID errors (docs/workers.md): leader only, with Prometheus.
  if (prometheus) {
    reconcilers::XidWatcherDeps xd;
    xd.client = *client;
    xd.nodes = nodes;
    xd.prometheus = prometheus;
    xd.recorder = recorder;
    xd.time = time;
    xd.period = o.xidPollPeriod;
    auto xid = std::make_shared<reconcilers::XidWatcher>(std::move(xd));
    mgr.addRunnable({"xid-watcher", true, [xid] { xid->start(); }, [xid] { xid->stop(); }});
  }
  // PTUReservations: admission, status, accrual, finalizer (docs/autoscaling.md).
  {
    reconcilers::PtuReservationDeps pd{*client, ptus, deployments, pools, recorder, time};
    pd.capacity = capacityCache;  // reclaim plans on the same capacity state as placement
    if (prometheus) {
      pd.load = reconcilers::makePrometheusLoad(prometheus);          // usedTokensPerMinute
      pd.routerCounts = reconcilers::makePrometheusPtuCounters(prometheus);  // 429s, spillovers
    }
    mgr.add(reconcilers::newPtuReservationController(std::move(pd), co));
  }

  // Routing (docs/routing.md): publish this cluster's entries into the hub's RoutingTables
  // (leader only) and serve the hub's whole table at /v1/routes (every replica).
  std::unique_ptr<cache::InformerFactory> hubInformers;
  std::shared_ptr<reconcilers::RoutesService> routesService;
  {
    kube::ClientPtr hub = *client;
    if (o.routingKubeconfig.empty())
      if (const char* e = std::getenv("WATERLINE_HUB_KUBECONFIG")) o.routingKubeconfig = e;
    if (!o.routingKubeconfig.empty()) {
      auto hcfg = kube::loadDefault(o.routingKubeconfig, "");
      if (!hcfg) {
        lg.error("cannot load the routing hub's kubeconfig", {{"err", hcfg.error()}});
        return 1;
      }
      hcfg->qps = cfg->qps;
      hcfg->burst = cfg->burst;
      hcfg->userAgent = cfg->userAgent;
      auto hc = kube::RestClient::create(*hcfg, time, clientMetrics);
      if (!hc) {
        lg.error("cannot create the routing hub client", {{"err", hc.error()}});
        return 1;
      }
      hub = *hc;
      hubInformers = std::make_unique<cache::InformerFactory>(hub, time, mo.resyncPeriod);
      lg.info("routing hub", {{"server", hcfg->server}, {"cluster", o.clusterName}});
    }
    auto tables = hubInformers ? hubInformers->informerFor(kube::kinds::RoutingTable)
                               : mgr.informers().informerFor(kube::kinds::RoutingTable);
    // One heartbeat Lease per cluster in the hub (docs/routing.md, "Heartbeat").
    const Duration heartbeatEvery = o.routingHeartbeat;
    const std::string hbNamespace = o.routingHeartbeatNamespace.empty() ? o.leaderElectionNamespace : o.routingHeartbeatNamespace;
    cache::InformerOptions hbOpts;
    hbOpts.ns = hbNamespace;
    hbOpts.labelSelector = std::string(reconcilers::kRoutingHeartbeatLabel) + "=true";
    auto heartbeatLeases = hubInformers ? hubInformers->informerFor(kube::kinds::Lease, hbOpts)
                                        : mgr.informers().informerFor(kube::kinds::Lease, hbOpts);
    auto clusterHeartbeat =
        std::make_shared<reconcilers::ClusterHeartbeat>(hub, hbNamespace, o.clusterName, heartbeatEvery, time);
    mgr.addRunnable({"routing-heartbeat", true, [clusterHeartbeat] { clusterHeartbeat->start(); },
                     [clusterHeartbeat] { clusterHeartbeat->stop(); }});
    routesService = std::make_shared<reconcilers::RoutesService>(tables, time, heartbeatLeases);
    // Coalesce bursts of RoutingTable events (each rebuild serializes the whole table);
    // routers still see a change well within a second.
    routesService->setMinRebuildInterval(std::chrono::milliseconds(250));
    routesService->install(mgr.http());
    routesService->registerMetrics(mgr.registry());
    auto* hf = hubInformers.get();
    mgr.addRunnable({"routes-service", false,
                     [hf, rs = routesService] {
                       if (hf) hf->start();
                       rs->start();
                     },
                     [hf, rs = routesService] {
                       rs->stop();
                       if (hf) hf->stop();
                     }});
    reconcilers::RoutingPublisherDeps rp;
    rp.hub = hub;
    rp.deployments = deployments;
    rp.pools = pools;
    rp.workerPods = workerPods;
    rp.reservations = mgr.informers().informerFor(kube::kinds::PTUReservation);
    rp.cluster = o.clusterName;
    rp.heartbeat = heartbeatEvery;
    rp.clusterHeartbeatLive = [clusterHeartbeat] { return clusterHeartbeat->live(); };
    rp.hubTables = tables;
    if (prometheus) rp.load = reconcilers::makePrometheusLoad(prometheus);  // per-pool tokens/min
    rp.time = time;
    mgr.add(reconcilers::newRoutingPublisherController(std::move(rp), co));
  }

  // Fleet gauges (pools, deployments, reservations) from the informer caches, at scrape
  // time, on every replica (docs/metrics.md).
  reconcilers::registerFleetMetrics(
      mgr.registry(), reconcilers::FleetSources::fromInformers(
                          pools, deployments, mgr.informers().informerFor(kube::kinds::PTUReservation)));

  int rc = mgr.run();
  recorder->flush(std::chrono::seconds(5));
  recorder->stop();
  lg.info("exiting", {{"code", rc}});
  return rc;
}
