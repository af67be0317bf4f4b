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
#include <map>
#include <string>
#include <vector>

#include "waterline/common/log.h"
#include "waterline/common/metrics.h"
#include "waterline/kube/config.h"
#include "waterline/kube/rest_client.h"
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

struct Flag {
  std::string name, def, help;
  std::string* target;
};

struct Options {
  std::string kubeconfig, context;
  std::string bindAddress = ":8080";
  std::string leaderElect = "true";
  std::string leaseNamespace = "waterline-system";
  std::string leaseName = "waterline-operator";
  std::string identity;
  std::string leaseDuration = "15", renewDeadline = "10", retryPeriod = "2";
  std::string workers = "4";
  std::string qps = "0", burst = "100";
  std::string logLevel = "info", verbosity = "0";
  std::string resync = "600";
  std::string activeHealthProbes = "false";
  std::string prometheusUrl;  // default: $WATERLINE_PROMETHEUS_URL
  std::string prometheusTimeout = "5";
  std::string autoscalerSyncPeriod = "15";
  std::string xidPollPeriod = "30";
  std::string clusterName;        // this cluster's name in routing entries
  std::string routingKubeconfig;  // the routing hub (default: this cluster)
  std::string routingHeartbeat = "10";
  std::string routingHeartbeatNamespace;  // default: the leader-election namespace
};

void usage(const std::vector<Flag>& flags) {
  std::cout << "waterline-operator " WATERLINE_VERSION
               " - control plane for GPU capacity pools (CapacityPool, ModelDeployment,\n"
               "PTUReservation).\n\nUsage: waterline-operator [flags]\n\nFlags:\n";
  for (const auto& f : flags) {
    std::string left = "  --" + f.name + (f.def.empty() ? "" : "=" + f.def);
    std::cout << left << std::string(left.size() < 34 ? 34 - left.size() : 1, ' ') << f.help << "\n";
  }
  std::cout << "  -h, --help                        print this help\n"
               "  --version                         print the version\n";
}

int toInt(const std::string& name, const std::string& v) {
  try {
    size_t pos = 0;
    int x = std::stoi(v, &pos);
    if (pos != v.size()) throw std::invalid_argument(v);
    return x;
  } catch (...) {
    std::cerr << "invalid value for --" << name << ": " << v << " (want an integer)\n";
    std::exit(2);
  }
}

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
  Options o;
  std::vector<Flag> flags = {
      {"kubeconfig", "", "path to a kubeconfig (else $KUBECONFIG, in-cluster, ~/.kube/config)", &o.kubeconfig},
      {"context", "", "kubeconfig context to use (default: current-context)", &o.context},
      {"bind-address", o.bindAddress, "host:port for /healthz, /readyz and /metrics (0 disables)", &o.bindAddress},
      {"leader-elect", o.leaderElect, "run leader election so only one replica reconciles", &o.leaderElect},
      {"leader-election-namespace", o.leaseNamespace, "namespace of the leader Lease", &o.leaseNamespace},
      {"leader-election-id", o.leaseName, "name of the leader Lease", &o.leaseName},
      {"identity", "", "this replica's identity in the Lease (default hostname_pid)", &o.identity},
      {"lease-duration", o.leaseDuration, "seconds a standby waits before taking an unrenewed lease", &o.leaseDuration},
      {"renew-deadline", o.renewDeadline, "seconds the leader keeps trying to renew before stepping down", &o.renewDeadline},
      {"retry-period", o.retryPeriod, "seconds between lease acquire/renew attempts", &o.retryPeriod},
      {"workers", o.workers, "concurrent reconciles per controller", &o.workers},
      {"kube-api-qps", o.qps, "client-side rate limit on API requests per second; 0 (the default) sets none and leaves it to the API server's Priority and Fairness, as controller-runtime does", &o.qps},
      {"kube-api-burst", o.burst, "client-side burst of API requests (with --kube-api-qps > 0)", &o.burst},
      {"resync-period", o.resync, "seconds between full cache resyncs (level-based catch-up)", &o.resync},
      {"active-health-probes", o.activeHealthProbes, "probe workers' spec.healthCheck over HTTP from the operator and replace unhealthy ones", &o.activeHealthProbes},
      {"prometheus-url", "", "Prometheus base URL for autoscaling queries (default $WATERLINE_PROMETHEUS_URL; unset: autoscaling holds)", &o.prometheusUrl},
      {"prometheus-timeout", o.prometheusTimeout, "seconds per Prometheus query attempt", &o.prometheusTimeout},
      {"xid-poll-period", o.xidPollPeriod, "seconds between queries of DCGM XID errors (with --prometheus-url); fatal XIDs mark GPUs unhealthy", &o.xidPollPeriod},
      {"autoscaler-sync-period", o.autoscalerSyncPeriod, "seconds between autoscaler evaluations of a deployment", &o.autoscalerSyncPeriod},
      {"cluster-name", "", "this cluster's name in the routing entries it publishes (needed when several clusters share a hub)", &o.clusterName},
      {"routing-kubeconfig", "", "kubeconfig of the routing hub cluster where RoutingTables are written and read (default $WATERLINE_HUB_KUBECONFIG, else this cluster)", &o.routingKubeconfig},
      {"routing-heartbeat", o.routingHeartbeat, "seconds between renewals of this cluster's routing heartbeat Lease in the hub (entries are rewritten only on change; every heartbeat while the Lease cannot be renewed)", &o.routingHeartbeat},
      {"routing-heartbeat-namespace", "", "namespace of the routing heartbeat Lease in the hub (default: --leader-election-namespace; it must exist there)", &o.routingHeartbeatNamespace},
      {"log-level", o.logLevel, "error, warn, info or debug", &o.logLevel},
      {"v", o.verbosity, "info verbosity (klog-style -v)", &o.verbosity},
  };
  std::map<std::string, Flag*> byName;
  for (auto& f : flags) byName[f.name] = &f;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "-h" || a == "--help") {
      usage(flags);
      return 0;
    }
    if (a == "--version") {
      std::cout << "waterline-operator " WATERLINE_VERSION "\n";
      return 0;
    }
    if (a.rfind("--", 0) != 0 && a.rfind("-", 0) == 0) a = "-" + a;  // -v=2 -> --v=2
    if (a.rfind("--", 0) != 0) {
      std::cerr << "unexpected argument: " << a << " (see --help)\n";
      return 2;
    }
    std::string name = a.substr(2), value;
    auto eq = name.find('=');
    bool hasValue = eq != std::string::npos;
    if (hasValue) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
    }
    auto it = byName.find(name);
    if (it == byName.end()) {
      std::cerr << "unknown flag: --" << name << " (see --help)\n";
      return 2;
    }
    if (!hasValue) {
      if (name == "leader-elect") value = "true";
      else if (i + 1 < argc) value = argv[++i];
      else {
        std::cerr << "flag --" << name << " needs a value\n";
        return 2;
      }
    }
    *it->second->target = value;
  }

  auto lvl = log::parseLevel(o.logLevel);
  if (!lvl) {
    std::cerr << "invalid --log-level: " << o.logLevel << "\n";
    return 2;
  }
  log::setLevel(*lvl);
  log::setVerbosity(toInt("v", o.verbosity));
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
  cfg->qps = toInt("kube-api-qps", o.qps);
  cfg->burst = toInt("kube-api-burst", o.burst);
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
  mo.leaderElection = o.leaderElect == "true" || o.leaderElect == "1";
  mo.resyncPeriod = std::chrono::seconds(toInt("resync-period", o.resync));
  mo.stopSignalFd = signalFd;
  auto& le = mo.leaderElectionConfig;
  le.ns = o.leaseNamespace;
  le.name = o.leaseName;
  le.identity = o.identity.empty() ? defaultIdentity() : o.identity;
  le.leaseDuration = std::chrono::seconds(toInt("lease-duration", o.leaseDuration));
  le.renewDeadline = std::chrono::seconds(toInt("renew-deadline", o.renewDeadline));
  le.retryPeriod = std::chrono::seconds(toInt("retry-period", o.retryPeriod));
  if (!(le.leaseDuration > le.renewDeadline && le.renewDeadline > le.retryPeriod)) {
    lg.error("leader election timings must satisfy lease-duration > renew-deadline > retry-period");
    return 2;
  }

  runtime::Manager mgr(mo);
  runtime::registerInformerMetrics(mgr.registry(), mgr.informers());
  auto recorder = std::make_shared<runtime::KubeEventRecorder>(*client, "waterline-operator",
                                                               le.identity, time);
  runtime::ControllerOptions co;
  co.workers = toInt("workers", o.workers);
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
  if (o.activeHealthProbes == "true" || o.activeHealthProbes == "1") {
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
    ad.syncPeriod = std::chrono::seconds(std::max(1, toInt("autoscaler-sync-period", o.autoscalerSyncPeriod)));
    if (!o.prometheusUrl.empty()) {
      sources::PrometheusClientConfig pc;
      pc.baseUrl = o.prometheusUrl;
      pc.timeout = std::chrono::seconds(std::max(1, toInt("prometheus-timeout", o.prometheusTimeout)));
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
    xd.period = std::chrono::seconds(std::max(1, toInt("xid-poll-period", o.xidPollPeriod)));
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
    const Duration heartbeatEvery = std::chrono::seconds(std::max(1, toInt("routing-heartbeat", o.routingHeartbeat)));
    const std::string hbNamespace = o.routingHeartbeatNamespace.empty() ? o.leaseNamespace : o.routingHeartbeatNamespace;
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
