#include "waterline/main/operator_config.h"

#include <CLI/CLI.hpp>

#ifndef WATERLINE_VERSION
#define WATERLINE_VERSION "dev"
#endif

namespace waterline::cmd {

namespace {

void addFlags(CLI::App& app, OperatorConfig& c) {
  using std::chrono::seconds;
  app.description(
      "waterline-operator " WATERLINE_VERSION
      ": control plane for GPU capacity pools (CapacityPool, ModelDeployment, PTUReservation).\n"
      "Durations take a unit (ns, us, ms, s, m, h: 15s, 500ms, 2m; 0 alone is zero); booleans are --flag,\n"
      "--flag=true or --flag=false. Flags are --flag=value or --flag value.");
  app.set_version_flag("--version", "waterline-operator " WATERLINE_VERSION, "print the version");
  app.get_formatter()->column_width(44);

  app.add_option("--kubeconfig", c.kubeconfig, "path to a kubeconfig (else $KUBECONFIG, in-cluster, ~/.kube/config)");
  app.add_option("--context", c.context, "kubeconfig context to use (default: current-context)");
  app.add_option("--bind-address", c.bindAddress, "host:port for /healthz, /readyz and /metrics (0 disables)")
      ->capture_default_str();
  app.add_option("--metrics-bind-address", c.metricsBindAddress,
                 "host:port that serves /metrics alone (empty: on --bind-address; 0 disables metrics)");
  app.add_option("--metrics-auth", c.metricsAuth,
                 "who may read /metrics: none, or kubernetes (bearer token; TokenReview + SubjectAccessReview)")
      ->check(CLI::IsMember({"none", "kubernetes"}))
      ->capture_default_str();

  cli::addBool(app, "leader-elect", c.leaderElect, "run leader election so only one replica reconciles");
  app.add_option("--leader-election-namespace", c.leaderElectionNamespace, "namespace of the leader Lease")
      ->capture_default_str();
  app.add_option("--leader-election-id", c.leaderElectionId, "name of the leader Lease")->capture_default_str();
  app.add_option("--identity", c.identity, "this replica's identity in the Lease (default hostname_pid)");
  const cli::DurationLimits positive{.min = std::chrono::milliseconds(1)};
  cli::addDuration(app, "lease-duration", c.leaseDuration, "how long a standby waits before taking an unrenewed lease",
                   positive);
  cli::addDuration(app, "renew-deadline", c.renewDeadline,
                   "how long the leader keeps trying to renew before stepping down", positive);
  cli::addDuration(app, "retry-period", c.retryPeriod, "time between lease acquire/renew attempts", positive);

  app.add_option("--workers", c.workers, "concurrent reconciles per controller")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  app.add_option("--kube-api-qps", c.kubeApiQps,
                 "client-side rate limit on API requests per second; 0 sets none and leaves it to the API server's "
                 "Priority and Fairness, as controller-runtime does")
      ->check(CLI::Range(0.0, 1e6))
      ->capture_default_str();
  app.add_option("--kube-api-burst", c.kubeApiBurst, "client-side burst of API requests (with --kube-api-qps > 0)")
      ->check(CLI::Range(1, 1000000))
      ->capture_default_str();
  cli::addDuration(app, "resync-period", c.resyncPeriod, "time between full cache resyncs (level-based catch-up; 0 disables)");

  cli::addBool(app, "dra", c.dra,
               "read DRA ResourceSlices and ResourceClaims when the cluster serves resource.k8s.io/v1 "
               "(pools with spec.allocation DRA or unset use them; false: device-plugin mode everywhere)");
  cli::addBool(app, "active-health-probes", c.activeHealthProbes,
               "probe workers' spec.healthCheck over HTTP from the operator and replace unhealthy ones");
  app.add_option("--prometheus-url", c.prometheusUrl,
                 "Prometheus base URL for autoscaling queries (default $WATERLINE_PROMETHEUS_URL; unset: autoscaling holds)");
  const cli::DurationLimits atLeast1s{.min = seconds(1)};
  cli::addDuration(app, "prometheus-timeout", c.prometheusTimeout, "time per Prometheus query attempt", atLeast1s);
  cli::addDuration(app, "xid-poll-period", c.xidPollPeriod,
                   "time between queries of DCGM XID errors (with --prometheus-url); fatal XIDs mark GPUs unhealthy",
                   atLeast1s);
  cli::addDuration(app, "autoscaler-sync-period", c.autoscalerSyncPeriod,
                   "time between autoscaler evaluations of a deployment", atLeast1s);

  app.add_option("--cluster-name", c.clusterName,
                 "this cluster's name in the routing entries it publishes (needed when several clusters share a hub)");
  app.add_option("--routing-kubeconfig", c.routingKubeconfig,
                 "kubeconfig of the routing hub cluster where RoutingTables are written and read "
                 "(default $WATERLINE_HUB_KUBECONFIG, else this cluster)");
  cli::addDuration(app, "routing-heartbeat", c.routingHeartbeat,
                   "time between renewals of this cluster's routing heartbeat Lease in the hub", atLeast1s);
  app.add_option("--routing-heartbeat-namespace", c.routingHeartbeatNamespace,
                 "namespace of the routing heartbeat Lease in the hub (default: --leader-election-namespace; it must "
                 "exist there)");

  cli::addLogLevel(app, c.logLevel);
  cli::addLogFormat(app, c.logFormat);
  app.add_option("-v,--v", c.verbosity, "info verbosity (klog-style -v)")->check(CLI::Range(0, 10))->capture_default_str();
}

}  // namespace

std::vector<cli::FlagDoc> operatorFlags() {
  OperatorConfig c;
  CLI::App app("", "waterline-operator");
  addFlags(app, c);
  return cli::describe(app);
}

std::expected<OperatorConfig, cli::Exit> parseOperatorConfig(const std::vector<std::string>& args) {
  OperatorConfig c;
  CLI::App app("", "waterline-operator");
  addFlags(app, c);
  if (auto exit = cli::parse(app, args)) return std::unexpected(*exit);
  if (!(c.leaseDuration > c.renewDeadline && c.renewDeadline > c.retryPeriod))
    return std::unexpected(cli::Exit{2, "--lease-duration (" + cli::formatDuration(c.leaseDuration) +
                                            ") > --renew-deadline (" + cli::formatDuration(c.renewDeadline) +
                                            ") > --retry-period (" + cli::formatDuration(c.retryPeriod) +
                                            ") must hold"});
  return c;
}

std::expected<OperatorConfig, cli::Exit> parseOperatorConfig(int argc, const char* const* argv) {
  return parseOperatorConfig(std::vector<std::string>(argv + (argc > 0 ? 1 : 0), argv + argc));
}

}  // namespace waterline::cmd
