// waterline-router's flags (operator/router/include/waterline/router/flags.h).
#include "waterline/router/flags.h"
#include "waterline/router/ptu_share_exchange.h"

#include <gtest/gtest.h>

namespace waterline::router {
namespace {

using namespace std::chrono_literals;

std::expected<RouterConfig, std::string> parseFlags(const std::vector<std::string>& args) {
  auto c = parseRouterConfig(args);
  if (!c) return std::unexpected(c.error().text);
  return *c;
}

TEST(RouterFlags, Defaults) {
  auto c = parseFlags({});
  ASSERT_TRUE(c);
  EXPECT_EQ(c->port, 8080);
  EXPECT_EQ(c->maxBodyBytes, 4u << 20);
  EXPECT_EQ(c->selection.staleAfter, 30s);
  EXPECT_EQ(c->failoverDeadline, Duration::zero());  // no deadline
  EXPECT_EQ(c->replicas, 1);
  EXPECT_EQ(c->limiterMode, routing::LimiterMode::SlidingWindow);
  EXPECT_EQ(c->shutdownDelay, 5s);
  EXPECT_EQ(c->shutdownGrace, 30s);
  EXPECT_EQ(c->logFormat, log::Format::Text);
}

TEST(RouterFlags, ParsesEveryFlag) {
  auto c = parseFlags({"--listen=127.0.0.1:9000", "--threads", "3", "--routes-file=/tmp/r.json",
                       "--routes-url=http://op:8081/v1/routes", "--routes-poll-interval=250ms", "--max-body-bytes=1Mi",
                       "--max-header-bytes=8Ki", "--connect-timeout=500ms", "--upstream-timeout=2m",
                       "--stream-idle-timeout=30s", "--client-idle-timeout=1h", "--max-attempts=2", "--failover-deadline=1500ms",
                       "--stale-after=10s",
                       "--epsilon=0.1", "--overload=best-effort", "--replicas=4", "--limiter=token-bucket",
                       "--default-max-tokens=256", "--chars-per-token=3.5", "--seed=7", "--log-level=debug",
                       "--busy-poll=50us", "--shutdown-delay=2s", "--shutdown-grace=1m", "--log-format=json"});
  ASSERT_TRUE(c) << c.error();
  EXPECT_EQ(c->listenAddress, "127.0.0.1");
  EXPECT_EQ(c->port, 9000);
  EXPECT_EQ(c->threads, 3);
  EXPECT_EQ(c->routesFile, "/tmp/r.json");
  EXPECT_EQ(c->routesUrl, "http://op:8081/v1/routes");
  EXPECT_EQ(c->routesPollInterval, 250ms);
  EXPECT_EQ(c->maxBodyBytes, 1u << 20);
  EXPECT_EQ(c->maxHeaderBytes, 8u << 10);
  EXPECT_EQ(c->connectTimeout, 500ms);
  EXPECT_EQ(c->upstreamHeaderTimeout, 2min);
  EXPECT_EQ(c->streamIdleTimeout, 30s);
  EXPECT_EQ(c->clientIdleTimeout, 1h);
  EXPECT_EQ(c->maxAttempts, 2);
  EXPECT_EQ(c->failoverDeadline, 1500ms);
  EXPECT_EQ(c->selection.staleAfter, 10s);
  EXPECT_DOUBLE_EQ(c->selection.epsilon, 0.1);
  EXPECT_EQ(c->overload, OverloadPolicy::BestEffort);
  EXPECT_EQ(c->replicas, 4);
  EXPECT_EQ(c->limiterMode, routing::LimiterMode::TokenBucket);
  EXPECT_EQ(c->estimator.defaultMaxTokens, 256);
  EXPECT_DOUBLE_EQ(c->estimator.charsPerToken, 3.5);
  EXPECT_EQ(c->seed, 7u);
  EXPECT_EQ(c->logLevel, log::Level::Debug);
  EXPECT_EQ(c->shutdownDelay, 2s);
  EXPECT_EQ(c->shutdownGrace, 1min);
  EXPECT_EQ(c->logFormat, log::Format::Json);
  EXPECT_EQ(c->busyPoll, 50us);
  auto p = parseFlags({"--listen=[::1]:81"});
  ASSERT_TRUE(p);
  EXPECT_EQ(p->listenAddress, "::1");
  EXPECT_EQ(p->port, 81);
  // --port overrides the port of --listen, in either order.
  for (auto args : {std::vector<std::string>{"--port=0", "--listen=[::1]:81"}, {"--listen=:81", "--port", "0"}}) {
    auto q = parseFlags(args);
    ASSERT_TRUE(q) << q.error();
    EXPECT_EQ(q->port, 0);
  }
}

TEST(RouterFlags, LatencyChoice) {
  auto d = parseFlags({});
  ASSERT_TRUE(d);
  EXPECT_FALSE(d->selection.latency.enabled);  // least utilisation unless asked
  auto c = parseFlags({"--pool-choice=latency", "--region=eu-west", "--data-zone=EU",
                       "--region-rtt=eu-west/eu-north=31,eu-west/us-east=95.5", "--local-tolerance-ms=300",
                       "--near-equal-ms=20", "--max-queue-ms=4000", "--max-remote-queue-ms=500",
                       "--prefill-tokens-per-second=12000"});
  ASSERT_TRUE(c) << c.error();
  const auto& m = c->selection.latency;
  EXPECT_TRUE(m.enabled);
  EXPECT_EQ(m.clientRegion, "eu-west");
  EXPECT_EQ(m.clientZone, "EU");
  ASSERT_EQ(m.rttMs.size(), 2u);
  EXPECT_DOUBLE_EQ(m.rttMs.at({"eu-west", "eu-north"}), 31);
  EXPECT_DOUBLE_EQ(m.rttMs.at({"eu-west", "us-east"}), 95.5);
  EXPECT_DOUBLE_EQ(m.localToleranceMs, 300);
  EXPECT_DOUBLE_EQ(m.nearEqualMs, 20);
  EXPECT_DOUBLE_EQ(m.maxQueueMs, 4000);
  EXPECT_DOUBLE_EQ(m.maxRemoteQueueMs, 500);
  EXPECT_DOUBLE_EQ(m.prefillTokensPerSecond, 12000);
  for (const char* bad : {"--region-rtt=eu-west=30", "--region-rtt=a/b=", "--region-rtt=a/b=-1", "--region-rtt=/b=3",
                          "--region-rtt=a/=3", "--pool-choice=nearest"}) {
    auto e = parseFlags({bad});
    ASSERT_FALSE(e) << bad;
    EXPECT_NE(e.error().find(std::string(bad).substr(2, std::string(bad).find('=') - 2)), std::string::npos) << e.error();
  }
}

TEST(RouterFlags, Limits) {
  auto d = parseFlags({});
  ASSERT_TRUE(d);
  EXPECT_EQ(d->maxConnections, 8192);
  EXPECT_EQ(d->maxInflight, 4096);
  EXPECT_EQ(d->headerTimeout, 10s);
  EXPECT_EQ(d->maxBodyBytesInFlight, 64u << 20);
  auto c = parseFlags({"--max-connections=100", "--max-inflight=7", "--header-timeout=1500ms",
                       "--max-body-bytes-in-flight=16Mi"});
  ASSERT_TRUE(c) << c.error();
  EXPECT_EQ(c->maxConnections, 100);
  EXPECT_EQ(c->maxInflight, 7);
  EXPECT_EQ(c->headerTimeout, 1500ms);
  EXPECT_EQ(c->maxBodyBytesInFlight, 16u << 20);
  // A smaller per-request limit is fine; a body cap below it cannot admit a largest body.
  EXPECT_TRUE(parseFlags({"--max-body-bytes=1Mi", "--max-body-bytes-in-flight=2Mi"}));
  auto small = parseFlags({"--max-body-bytes-in-flight=1Mi"});
  ASSERT_FALSE(small);
  EXPECT_NE(small.error().find("--max-body-bytes-in-flight"), std::string::npos) << small.error();
  // Raising --max-body-bytes past the default cap raises the cap with it.
  auto big = parseFlags({"--max-body-bytes=100Mi"});
  ASSERT_TRUE(big);
  EXPECT_EQ(big->maxBodyBytesInFlight, 100u << 20);
  for (const char* bad : {"--max-connections=0", "--max-inflight=-1", "--header-timeout=0", "--header-timeout=x",
                          "--max-body-bytes-in-flight=0"}) {
    auto r = parseFlags({bad});
    ASSERT_FALSE(r) << bad;
    const std::string flag = std::string(bad).substr(0, std::string(bad).find('='));
    EXPECT_NE(r.error().find(flag), std::string::npos) << r.error();
  }
}

TEST(RouterFlags, ErrorsNameTheFlag) {
  auto bad = [](std::vector<std::string> a, const std::string& want) {
    auto c = parseFlags(a);
    ASSERT_FALSE(c);
    EXPECT_NE(c.error().find(want), std::string::npos) << c.error();
  };
  bad({"--nope=1"}, "unknown flag --nope");
  bad({"--port=70000"}, "--port");
  bad({"--threads"}, "--threads");
  bad({"--listen=nocolon"}, "--listen: want ADDR:PORT");
  bad({"--listen=:99999"}, "--listen");
  // Durations need a unit (the old parser read a bare number as seconds); 0 alone is zero.
  bad({"--connect-timeout=2"}, "--connect-timeout: want a duration with a unit");
  bad({"--stale-after=30"}, "--stale-after: want a duration with a unit");
  bad({"--routes-long-poll=301s"}, "--routes-long-poll: want a duration at most 5m");
  bad({"--busy-poll=2s"}, "--busy-poll");
  bad({"--routes-poll-interval=0"}, "--routes-poll-interval");
  bad({"--log-level=bogus"}, "--log-level: bogus not in");
  bad({"--seed=-1"}, "--seed");
  bad({"--chars-per-token=0"}, "--chars-per-token");
  bad({"--max-attempts=65"}, "--max-attempts");
  bad({"--failover-deadline=x"}, "--failover-deadline");
  bad({"--failover-deadline=-1s"}, "--failover-deadline");
  bad({"--max-body-bytes=12Q"}, "--max-body-bytes");
  bad({"--connect-timeout=soon"}, "--connect-timeout");
  bad({"--routes-url=https://x/v1/routes"}, "https is not supported");
  bad({"--overload=maybe"}, "--overload");
  bad({"--limiter=leaky"}, "--limiter");
  bad({"--epsilon=2"}, "--epsilon");
  bad({"--replicas=0"}, "--replicas");
  bad({"positional"}, "unexpected argument");
  bad({"--log-format=logfmt"}, "--log-format: logfmt not in");
  bad({"--shutdown-delay=5"}, "--shutdown-delay: want a duration with a unit");
  bad({"--shutdown-grace=-1s"}, "--shutdown-grace");
  // The grace counts from the signal and includes the delay.
  bad({"--shutdown-delay=10s", "--shutdown-grace=5s"}, "--shutdown-grace: must be at least --shutdown-delay (10s)");
  auto help = parseRouterConfig(std::vector<std::string>{"--help"});
  ASSERT_FALSE(help);
  EXPECT_EQ(help.error().code, 0);
  for (const auto& f : routerFlags()) EXPECT_NE(help.error().text.find(f.name), std::string::npos) << f.name;
  EXPECT_EQ(parseRouterConfig(std::vector<std::string>{"--nope"}).error().code, 2);
}

TEST(RouterFlags, Membership) {
  auto off = parseFlags({"--replicas=3"});
  ASSERT_TRUE(off);
  EXPECT_FALSE(off->membership.enabled());
  EXPECT_EQ(off->membership.leaseDuration, 15s);
  EXPECT_EQ(off->membership.clockSkew, 1s);

  auto on = parseFlags({"--replicas=2", "--membership-group=wl-waterline-router", "--membership-namespace=wl-sys",
                        "--membership-kubeconfig=/tmp/kc", "--identity=router-7d9f-x2k4q",
                        "--membership-lease-duration=3s", "--membership-clock-skew=500ms"});
  ASSERT_TRUE(on) << on.error();
  EXPECT_TRUE(on->membership.enabled());
  EXPECT_EQ(on->replicas, 2);
  EXPECT_EQ(on->membership.group, "wl-waterline-router");
  EXPECT_EQ(on->membership.ns, "wl-sys");
  EXPECT_EQ(on->membership.kubeconfig, "/tmp/kc");
  EXPECT_EQ(on->membership.identity, "router-7d9f-x2k4q");
  EXPECT_EQ(on->membership.leaseDuration, 3s);
  EXPECT_EQ(on->membership.clockSkew, 500ms);
  auto group = parseFlags({"--membership-group", "Routers_EU.1"});
  ASSERT_TRUE(group);
  EXPECT_EQ(group->membership.ns, "");        // main.cc: the kubeconfig's / pod's namespace
  EXPECT_EQ(group->membership.identity, "");  // main.cc: the hostname

  auto bad = [](std::vector<std::string> a, const std::string& want) {
    auto c = parseFlags(a);
    ASSERT_FALSE(c) << "accepted";
    EXPECT_NE(c.error().find(want), std::string::npos) << c.error();
  };
  bad({"--membership-group=a b"}, "--membership-group: want a label value");
  bad({"--membership-group=-a"}, "--membership-group");
  bad({"--membership-group=" + std::string(64, 'a')}, "--membership-group");
  bad({"--membership-group=g", "--membership-namespace=Wl_Sys"}, "--membership-namespace");
  bad({"--membership-group=g", "--membership-lease-duration=1500ms"}, "--membership-lease-duration: want whole seconds");
  bad({"--membership-group=g", "--membership-lease-duration=0s"}, "--membership-lease-duration");
  bad({"--membership-group=g", "--membership-lease-duration=2h"}, "--membership-lease-duration");
  bad({"--membership-group=g", "--membership-clock-skew=2m"}, "--membership-clock-skew");
  bad({"--membership-group=g", "--identity="}, "--identity");
  bad({"--membership-group=g", "--membership-kubeconfig="}, "--membership-kubeconfig");
  bad({"--membership-group=g", "--membership-lease-duration=15"}, "--membership-lease-duration: want a duration with a unit");
  // Membership flags without a group would silently do nothing.
  bad({"--membership-namespace=wl-sys"}, "--membership-namespace requires --membership-group");
  bad({"--identity=a"}, "--identity requires --membership-group");
  bad({"--membership-lease-duration=3s"}, "--membership-lease-duration requires --membership-group");
}

TEST(RouterFlags, DefaultsOfEveryFlag) {
  auto c = parseFlags({});
  ASSERT_TRUE(c) << c.error();
  EXPECT_EQ(c->listenAddress, "0.0.0.0");
  EXPECT_EQ(c->threads, 0);
  EXPECT_EQ(c->busyPoll, Duration::zero());
  EXPECT_EQ(c->routesFile, "");
  EXPECT_EQ(c->routesUrl, "");
  EXPECT_EQ(c->routesPollInterval, 1s);
  EXPECT_EQ(c->routesLongPoll, 30s);
  EXPECT_EQ(c->maxHeaderBytes, 64u << 10);
  EXPECT_EQ(c->connectTimeout, 2s);
  EXPECT_EQ(c->upstreamHeaderTimeout, 300s);
  EXPECT_EQ(c->streamIdleTimeout, 300s);
  EXPECT_EQ(c->clientIdleTimeout, 120s);
  EXPECT_EQ(c->maxAttempts, 4);
  EXPECT_DOUBLE_EQ(c->selection.epsilon, 0.05);
  EXPECT_EQ(c->overload, OverloadPolicy::Reject);
  EXPECT_EQ(c->estimator.defaultMaxTokens, 1024);
  EXPECT_DOUBLE_EQ(c->estimator.charsPerToken, 4.0);
  EXPECT_EQ(c->seed, 0u);
  EXPECT_EQ(c->logLevel, log::Level::Info);
  EXPECT_EQ(c->membership.group, "");
}

TEST(RouterFlags, MetricsListen) {
  auto d = parseFlags({});
  ASSERT_TRUE(d) << d.error();
  EXPECT_EQ(d->metricsListen, "");
  for (const char* ok : {"--metrics-listen=127.0.0.1:9090", "--metrics-listen=:9090", "--metrics-listen=[::1]:9090",
                         "--metrics-listen=0"}) {
    auto c = parseFlags({ok});
    ASSERT_TRUE(c) << ok << ": " << c.error();
    EXPECT_EQ("--metrics-listen=" + c->metricsListen, ok);
  }
  for (const char* bad : {"--metrics-listen=9090", "--metrics-listen=host:99999", "--metrics-listen=a:b"}) {
    auto c = parseFlags({bad});
    ASSERT_FALSE(c) << bad;
    EXPECT_NE(c.error().find("--metrics-listen"), std::string::npos) << c.error();
  }
}

TEST(RouterFlags, Version) {
  auto v = parseRouterConfig(std::vector<std::string>{"--version"});
  ASSERT_FALSE(v);
  EXPECT_EQ(v.error().code, 0);
  EXPECT_EQ(v.error().text.rfind("waterline-router ", 0), 0u) << v.error().text;
  EXPECT_EQ(v.error().text.back(), '\n');
}

TEST(RouterFlags, ShutdownDelayAloneRaisesTheDefaultGrace) {
  auto c = parseFlags({"--shutdown-delay=45s"});
  ASSERT_TRUE(c) << c.error();
  EXPECT_EQ(c->shutdownDelay, 45s);
  EXPECT_EQ(c->shutdownGrace, 45s);
  auto zero = parseFlags({"--shutdown-delay=0", "--shutdown-grace=0"});
  ASSERT_TRUE(zero) << zero.error();
  EXPECT_EQ(zero->shutdownGrace, Duration::zero());
}

}  // namespace
}  // namespace waterline::router

namespace waterline::router {
namespace {

TEST(RouterFlags, PtuShareStore) {
  auto c = parseFlags({});
  ASSERT_TRUE(c);
  EXPECT_EQ(c->ptuShareStore, "");  // off: the static 1/N split
  EXPECT_EQ(c->ptuShareInterval, std::chrono::seconds(1));
  c = parseFlags({"--ptu-share-store=redis://redis.waterline:6380", "--ptu-share-interval=500ms"});
  ASSERT_TRUE(c) << c.error();
  EXPECT_EQ(c->ptuShareStore, "redis://redis.waterline:6380");
  EXPECT_EQ(c->ptuShareInterval, std::chrono::milliseconds(500));
  for (std::string bad : {"http://x:1", "redis://", "redis://h:0", "redis://h:70000", "redis://h:", "redis://a b:1"}) {
    auto e = parseFlags({"--ptu-share-store=" + bad});
    ASSERT_FALSE(e) << bad;
    EXPECT_NE(e.error().find("--ptu-share-store"), std::string::npos) << e.error();
  }
  EXPECT_FALSE(parseFlags({"--ptu-share-interval=50ms"}));
  PtuShareStoreAddress a;
  EXPECT_EQ(parsePtuShareStore("redis://10.0.0.7", &a), "");
  EXPECT_EQ(a.host, "10.0.0.7");
  EXPECT_EQ(a.port, 6379);
  EXPECT_EQ(parsePtuShareStore("redis://[::1]:7000/", &a), "");
  EXPECT_EQ(a.host, "::1");
  EXPECT_EQ(a.port, 7000);
}

}  // namespace
}  // namespace waterline::router
