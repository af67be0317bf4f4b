// waterline-operator's flags (operator/main/operator_config.h).
#include "waterline/main/operator_config.h"

#include <gtest/gtest.h>

namespace waterline::cmd {
namespace {

using namespace std::chrono_literals;

std::string errorOf(std::vector<std::string> args) {
  auto c = parseOperatorConfig(args);
  if (c) return "accepted";
  EXPECT_EQ(c.error().code, 2) << c.error().text;
  return c.error().text;
}

// The defaults docs/flags.md states (its table is checked against operatorFlags() in
// docs_test.cc); these pin the typed values behind them.
TEST(OperatorFlags, Defaults) {
  auto c = parseOperatorConfig(std::vector<std::string>{});
  ASSERT_TRUE(c) << c.error().text;
  EXPECT_EQ(c->kubeconfig, "");
  EXPECT_EQ(c->context, "");
  EXPECT_EQ(c->bindAddress, ":8080");
  EXPECT_TRUE(c->leaderElect);
  EXPECT_EQ(c->leaderElectionNamespace, "waterline-system");
  EXPECT_EQ(c->leaderElectionId, "waterline-operator");
  EXPECT_EQ(c->identity, "");
  EXPECT_EQ(c->leaseDuration, 15s);
  EXPECT_EQ(c->renewDeadline, 10s);
  EXPECT_EQ(c->retryPeriod, 2s);
  EXPECT_EQ(c->workers, 4);
  EXPECT_EQ(c->kubeApiQps, 0.0);
  EXPECT_EQ(c->kubeApiBurst, 100);
  EXPECT_EQ(c->resyncPeriod, 10min);
  EXPECT_FALSE(c->activeHealthProbes);
  EXPECT_EQ(c->prometheusUrl, "");
  EXPECT_EQ(c->prometheusTimeout, 5s);
  EXPECT_EQ(c->xidPollPeriod, 30s);
  EXPECT_EQ(c->autoscalerSyncPeriod, 15s);
  EXPECT_EQ(c->clusterName, "");
  EXPECT_EQ(c->routingKubeconfig, "");
  EXPECT_EQ(c->routingHeartbeat, 10s);
  EXPECT_EQ(c->routingHeartbeatNamespace, "");
  EXPECT_EQ(c->logLevel, log::Level::Info);
  EXPECT_EQ(c->logFormat, log::Format::Text);
  EXPECT_EQ(c->verbosity, 0);
}

TEST(OperatorFlags, EveryFlagRoundTripsToItsTypedValue) {
  auto c = parseOperatorConfig(std::vector<std::string>{
      "--kubeconfig", "/tmp/kc", "--context=kind", "--bind-address=127.0.0.1:9090", "--leader-elect=false",
      "--leader-election-namespace=ops", "--leader-election-id=wl", "--identity=me", "--lease-duration=30s",
      "--renew-deadline=20s", "--retry-period=500ms", "--workers=8", "--kube-api-qps=12.5", "--kube-api-burst=40",
      "--resync-period=0", "--active-health-probes", "--prometheus-url=http://prom:9090", "--prometheus-timeout=2s",
      "--xid-poll-period=1m", "--autoscaler-sync-period=3s", "--cluster-name=eu-1", "--routing-kubeconfig=/tmp/hub",
      "--routing-heartbeat=2s", "--routing-heartbeat-namespace=hub-ns", "--log-level=debug", "--log-format=json", "-v=3"});
  ASSERT_TRUE(c) << c.error().text;
  EXPECT_EQ(c->kubeconfig, "/tmp/kc");
  EXPECT_EQ(c->context, "kind");
  EXPECT_EQ(c->bindAddress, "127.0.0.1:9090");
  EXPECT_FALSE(c->leaderElect);
  EXPECT_EQ(c->leaderElectionNamespace, "ops");
  EXPECT_EQ(c->leaderElectionId, "wl");
  EXPECT_EQ(c->identity, "me");
  EXPECT_EQ(c->leaseDuration, 30s);
  EXPECT_EQ(c->renewDeadline, 20s);
  EXPECT_EQ(c->retryPeriod, 500ms);
  EXPECT_EQ(c->workers, 8);
  EXPECT_DOUBLE_EQ(c->kubeApiQps, 12.5);
  EXPECT_EQ(c->kubeApiBurst, 40);
  EXPECT_EQ(c->resyncPeriod, Duration::zero());
  EXPECT_TRUE(c->activeHealthProbes);
  EXPECT_EQ(c->prometheusUrl, "http://prom:9090");
  EXPECT_EQ(c->prometheusTimeout, 2s);
  EXPECT_EQ(c->xidPollPeriod, 1min);
  EXPECT_EQ(c->autoscalerSyncPeriod, 3s);
  EXPECT_EQ(c->clusterName, "eu-1");
  EXPECT_EQ(c->routingKubeconfig, "/tmp/hub");
  EXPECT_EQ(c->routingHeartbeat, 2s);
  EXPECT_EQ(c->routingHeartbeatNamespace, "hub-ns");
  EXPECT_EQ(c->logLevel, log::Level::Debug);
  EXPECT_EQ(c->logFormat, log::Format::Json);
  EXPECT_EQ(c->verbosity, 3);

  // Booleans: bare, =true, =false; the last of repeated flags wins (chart extraArgs
  // come after the chart's own flags).
  auto b = parseOperatorConfig(std::vector<std::string>{"--leader-elect=false", "--active-health-probes=true",
                                                         "--leader-elect", "--workers=2", "--workers=6", "--v", "2"});
  ASSERT_TRUE(b) << b.error().text;
  EXPECT_TRUE(b->leaderElect);
  EXPECT_TRUE(b->activeHealthProbes);
  EXPECT_EQ(b->workers, 6);
  EXPECT_EQ(b->verbosity, 2);
}

TEST(OperatorFlags, EachErrorNamesTheFlag) {
  // Durations need a unit: the old bare seconds are refused, naming the flag.
  EXPECT_NE(errorOf({"--lease-duration=15"}).find("--lease-duration: want a duration with a unit"), std::string::npos);
  EXPECT_NE(errorOf({"--resync-period=600"}).find("--resync-period"), std::string::npos);
  EXPECT_NE(errorOf({"--routing-heartbeat=10"}).find("--routing-heartbeat"), std::string::npos);
  EXPECT_NE(errorOf({"--prometheus-timeout=soon"}).find("--prometheus-timeout"), std::string::npos);
  // Out of range.
  EXPECT_NE(errorOf({"--autoscaler-sync-period=500ms"}).find("--autoscaler-sync-period: want a duration at least 1s"),
            std::string::npos);
  EXPECT_NE(errorOf({"--retry-period=0"}).find("--retry-period"), std::string::npos);
  EXPECT_NE(errorOf({"--workers=0"}).find("--workers"), std::string::npos);
  EXPECT_NE(errorOf({"--kube-api-qps=-1"}).find("--kube-api-qps"), std::string::npos);
  EXPECT_NE(errorOf({"--kube-api-burst=0"}).find("--kube-api-burst"), std::string::npos);
  EXPECT_NE(errorOf({"--v=11"}).find("--v"), std::string::npos);
  EXPECT_NE(errorOf({"--workers=four"}).find("--workers"), std::string::npos);
  // Enums.
  EXPECT_NE(errorOf({"--log-level=bogus"}).find("--log-level: bogus not in"), std::string::npos);
  EXPECT_NE(errorOf({"--log-format=yaml"}).find("--log-format: yaml not in"), std::string::npos);
  // A bare boolean no longer swallows the next flag as its value: --log-level is checked.
  EXPECT_NE(errorOf({"--active-health-probes", "--log-level=bogus"}).find("--log-level"), std::string::npos);
  // Booleans.
  EXPECT_NE(errorOf({"--leader-elect=maybe"}).find("--leader-elect"), std::string::npos);
  EXPECT_NE(errorOf({"--active-health-probes=2"}).find("--active-health-probes"), std::string::npos);
  // Unknown flags, stray arguments, missing values.
  EXPECT_NE(errorOf({"--no-such-flag=1"}).find("unknown flag --no-such-flag"), std::string::npos);
  EXPECT_NE(errorOf({"--active-health-probes", "true"}).find("unexpected argument \"true\""), std::string::npos);
  EXPECT_NE(errorOf({"--kubeconfig"}).find("--kubeconfig"), std::string::npos);
  // Leader election timings must nest.
  const std::string nest = errorOf({"--lease-duration=5s", "--renew-deadline=10s"});
  EXPECT_NE(nest.find("--lease-duration (5s) > --renew-deadline (10s) > --retry-period (2s) must hold"),
            std::string::npos)
      << nest;
}

TEST(OperatorFlags, HelpAndVersion) {
  auto h = parseOperatorConfig(std::vector<std::string>{"--help"});
  ASSERT_FALSE(h);
  EXPECT_EQ(h.error().code, 0);
  for (const auto& f : operatorFlags()) EXPECT_NE(h.error().text.find(f.name), std::string::npos) << f.name;
  EXPECT_NE(h.error().text.find("--lease-duration DURATION"), std::string::npos) << h.error().text;
  auto v = parseOperatorConfig(std::vector<std::string>{"--version"});
  ASSERT_FALSE(v);
  EXPECT_EQ(v.error().code, 0);
  EXPECT_EQ(v.error().text.rfind("waterline-operator ", 0), 0u) << v.error().text;
}

// The metrics port and its authentication (docs/metrics.md, "Ports and authentication").
TEST(OperatorFlags, MetricsBindAddressAndAuth) {
  auto d = parseOperatorConfig(std::vector<std::string>{});
  ASSERT_TRUE(d) << d.error().text;
  EXPECT_EQ(d->metricsBindAddress, "");
  EXPECT_EQ(d->metricsAuth, "none");
  auto c = parseOperatorConfig(std::vector<std::string>{"--metrics-bind-address=:8443", "--metrics-auth=kubernetes"});
  ASSERT_TRUE(c) << c.error().text;
  EXPECT_EQ(c->metricsBindAddress, ":8443");
  EXPECT_EQ(c->metricsAuth, "kubernetes");
  auto off = parseOperatorConfig(std::vector<std::string>{"--metrics-bind-address", "0"});
  ASSERT_TRUE(off) << off.error().text;
  EXPECT_EQ(off->metricsBindAddress, "0");
  EXPECT_NE(errorOf({"--metrics-auth=basic"}).find("--metrics-auth"), std::string::npos);
}

}  // namespace
}  // namespace waterline::cmd
