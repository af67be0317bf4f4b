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
#include "waterline/common/process_collector.h"
#include "waterline/kube/config.h"
#include "waterline/kube/rest_client.h"
#include "waterline/main/operator_config.h"
#include "waterline/reconcilers/setup.h"
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
  log::setFormat(o.logFormat);
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
  mo.metricsBindAddress = o.metricsBindAddress;
  if (o.metricsAuth == "kubernetes") mo.metricsAuthorizer = runtime::kubernetesMetricsAuthorizer(*client, time);
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

  metrics::addProcessCollector(metrics::defaultRegistry());
  runtime::Manager mgr(mo);
  runtime::registerInformerMetrics(mgr.registry(), mgr.informers());
  auto recorder = std::make_shared<runtime::KubeEventRecorder>(*client, "waterline-operator",
                                                               le.identity, time);
  runtime::ControllerOptions co;
  co.workers = o.workers;
  co.time = time;

  if (o.prometheusUrl.empty())
    if (const char* e = std::getenv("WATERLINE_PROMETHEUS_URL")) o.prometheusUrl = e;
  sources::PrometheusClientPtr prometheus;
  if (!o.prometheusUrl.empty()) {
    sources::PrometheusClientConfig pc;
    pc.baseUrl = o.prometheusUrl;
    pc.timeout = o.prometheusTimeout;
    prometheus = sources::makeHttpPrometheusClient(pc, time);
    lg.info("autoscaling queries go to Prometheus", {{"url", o.prometheusUrl}});
  } else {
    lg.info("no --prometheus-url: autoscaled deployments hold their replica count");
  }

  // The routing hub: this cluster, or another one named by its kubeconfig (docs/routing.md).
  reconcilers::RoutingSetup routing;
  routing.cluster = o.clusterName;
  routing.heartbeat = o.routingHeartbeat;
  routing.heartbeatNamespace =
      o.routingHeartbeatNamespace.empty() ? o.leaderElectionNamespace : o.routingHeartbeatNamespace;
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
    routing.hub = *hc;
    routing.hubInformers = std::make_shared<cache::InformerFactory>(routing.hub, time, mo.resyncPeriod);
    lg.info("routing hub", {{"server", hcfg->server}, {"cluster", o.clusterName}});
  }

  // The controllers (controllers/reconcilers/setup.h). The shared informers and the
  // capacity cache come first, so the cache's event handlers run before any controller's.
  auto shared = reconcilers::setupShared(mgr, *client, recorder, time, co, prometheus, o.dra);
  reconcilers::setupCapacityPoolController(mgr, shared);
  reconcilers::setupModelDeploymentController(mgr, shared, {.activeHealthProbes = o.activeHealthProbes});
  reconcilers::setupAutoscalerController(mgr, shared, o.autoscalerSyncPeriod);
  reconcilers::setupXidWatcher(mgr, shared, o.xidPollPeriod);  // leader only, with Prometheus
  reconcilers::setupPtuReservationController(mgr, shared);
  reconcilers::setupRouting(mgr, shared, std::move(routing));
  reconcilers::setupFleetMetrics(mgr, shared);

  int rc = mgr.run();
  recorder->flush(std::chrono::seconds(5));
  recorder->stop();
  lg.info("exiting", {{"code", rc}});
  return rc;
}
