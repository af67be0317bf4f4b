#include "waterline/router/flags.h"

#include <CLI/CLI.hpp>

#include <charconv>
#include <map>

#ifndef WATERLINE_VERSION
#define WATERLINE_VERSION "dev"
#endif

#include "waterline/router/membership.h"
#include "waterline/router/ptu_share_exchange.h"

namespace waterline::router {

namespace {

// "ADDR:PORT", "[v6]:PORT", ":PORT" (all addresses).
std::string parseListen(const std::string& s, std::string* addr, int* port) {
  const auto colon = s.rfind(':');
  if (colon == std::string::npos) return "want ADDR:PORT, got \"" + s + "\"";
  std::string a = s.substr(0, colon);
  if (a.size() >= 2 && a.front() == '[' && a.back() == ']') a = a.substr(1, a.size() - 2);
  long p = -1;
  const std::string ps = s.substr(colon + 1);
  auto [end, ec] = std::from_chars(ps.data(), ps.data() + ps.size(), p);
  if (ec != std::errc() || end != ps.data() + ps.size() || p < 0 || p > 65535)
    return "want ADDR:PORT with a port in [0, 65535], got \"" + s + "\"";
  if (addr) *addr = a.empty() ? "0.0.0.0" : a;
  if (port) *port = static_cast<int>(p);
  return {};
}

// "a/b=30,a/c=95": round-trip times in ms between regions.
std::string parseRegionRtt(const std::string& s, std::map<std::pair<std::string, std::string>, double>* out) {
  std::size_t pos = 0;
  while (pos <= s.size()) {
    std::size_t comma = s.find(',', pos);
    if (comma == std::string::npos) comma = s.size();
    const std::string item = s.substr(pos, comma - pos);
    const auto slash = item.find('/'), eq = item.find('=');
    if (slash == std::string::npos || eq == std::string::npos || slash == 0 || eq < slash + 2 || eq + 1 >= item.size())
      return "want REGION/REGION=MS[,...], got \"" + item + "\"";
    double ms = -1;
    const std::string v = item.substr(eq + 1);
    auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), ms);
    if (ec != std::errc() || end != v.data() + v.size() || !(ms >= 0))
      return "want a number of ms >= 0, got \"" + v + "\"";
    if (out) (*out)[{item.substr(0, slash), item.substr(slash + 1, eq - slash - 1)}] = ms;
    pos = comma + 1;
  }
  return {};
}

CLI::Validator textCheck(std::function<std::string(const std::string&)> f, const std::string& name) {
  return CLI::Validator([f = std::move(f)](std::string& s) { return f(s); }, "", name);
}

struct Checked {
  CLI::Option* bodyInFlight = nullptr;
  CLI::Option* shutdownGrace = nullptr;
};

// Adds every flag, writing into c; returns the options checked against each other.
Checked addFlags(CLI::App& app, RouterConfig& c) {
  Checked out;
  using std::chrono::seconds;
  app.description(R"(waterline-router: an OpenAI-compatible HTTP proxy that routes each request to the
least-utilised allowed pool of its ModelDeployment, enforces PTU reservations and fails
over between pools. Routes come from a RoutingTable list (see docs/routing.md).

Endpoints: POST /v1/chat/completions, POST /v1/completions (deployment from the body's
"model": "namespace/name", a deployment name or a model name),
POST /openai/deployments/{name}/chat/completions and .../completions (Azure style),
GET /v1/models, GET /metrics, GET /healthz, GET /readyz, GET /debug/routes.

One of --routes-file or --routes-url is required. Flags are --flag=value or --flag value;
durations take a unit (ns, us, ms, s, m, h: 15s, 500ms, 2m; 0 alone is zero); sizes are
bytes with an optional unit (K, M, G, Ki, Mi, Gi: 4Mi).)");
  app.set_version_flag("--version", "waterline-router " WATERLINE_VERSION, "print the version");
  app.get_formatter()->column_width(44);
  const cli::DurationLimits positive{.min = Duration(1)};

  app.add_option_function<std::string>(
         "--listen", [&c](const std::string& s) { parseListen(s, &c.listenAddress, &c.port); },
         "listen address; --port overrides its port")
      ->check(textCheck([](const std::string& s) { return parseListen(s, nullptr, nullptr); }, "ADDR:PORT"))
      ->type_name("ADDR:PORT")
      ->default_str("0.0.0.0:8080");
  app.add_option("--port", c.port, "listen port (0: any free port, printed at start)")->check(CLI::Range(0, 65535));
  app.add_option("--metrics-listen", c.metricsListen,
                 "ADDR:PORT that serves /metrics alone (empty: /metrics on the data port; 0 disables metrics)")
      ->check(textCheck([](const std::string& s) { return s.empty() || s == "0" ? std::string() : parseListen(s, nullptr, nullptr); },
                        "ADDR:PORT"))
      ->type_name("ADDR:PORT");
  app.add_option("--threads", c.threads, "io_context threads (0: one per core)")
      ->check(CLI::Range(0, 1024))
      ->capture_default_str();
  cli::addDuration(app, "busy-poll", c.busyPoll,
                   "keep polling this long after the last event before sleeping (lower latency for a dedicated "
                   "core, burns CPU; 0: off)",
                   {.max = seconds(1)});

  app.add_option("--routes-file", c.routesFile, "RoutingTableList JSON file, reloaded when it changes");
  app.add_option("--routes-url", c.routesUrl, "http://HOST:PORT/v1/routes polled with If-None-Match (http only)")
      ->check(textCheck(
          [](const std::string& s) {
            return s.rfind("http://", 0) == 0 ? std::string()
                                               : "want http://HOST:PORT/PATH (https is not supported), got \"" + s + "\"";
          },
          "URL"));
  cli::addDuration(app, "routes-poll-interval", c.routesPollInterval, "how often routes sources are checked", positive);
  cli::addDuration(app, "routes-long-poll", c.routesLongPoll,
                   "--routes-url: the operator holds a poll until the table changes, up to this long (0: plain polling)",
                   {.max = seconds(300)});

  cli::addBytes(app, "max-body-bytes", c.maxBodyBytes, "larger request bodies get 413");
  cli::addBytes(app, "max-header-bytes", c.maxHeaderBytes, "larger request headers get 431");
  app.add_option("--max-connections", c.maxConnections,
                 "open client connections; a connection over it is answered 503 and closed (keep below the fd limit)")
      ->check(CLI::Range(1, 1000000))
      ->capture_default_str();
  app.add_option("--max-inflight", c.maxInflight,
                 "requests being proxied at once; over it: 503 with Retry-After: 1")
      ->check(CLI::Range(1, 1000000))
      ->capture_default_str();
  cli::addDuration(app, "header-timeout", c.headerTimeout,
                   "a request's head must be complete this long after its first byte, else the connection is closed",
                   positive);
  out.bodyInFlight = cli::addBytes(app, "max-body-bytes-in-flight", c.maxBodyBytesInFlight,
                                     "request-body bytes held across all connections; a request over it is answered "
                                     "503 and its connection closed (at least --max-body-bytes)");

  cli::addDuration(app, "connect-timeout", c.connectTimeout, "upstream connect timeout", positive);
  cli::addDuration(app, "upstream-timeout", c.upstreamHeaderTimeout, "until the upstream response header", positive);
  cli::addDuration(app, "stream-idle-timeout", c.streamIdleTimeout, "between upstream body reads", positive);
  cli::addDuration(app, "client-idle-timeout", c.clientIdleTimeout, "keep-alive idle time for clients", positive);
  app.add_option("--max-attempts", c.maxAttempts, "upstream attempts per request, across pools")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  cli::addDuration(app, "failover-deadline", c.failoverDeadline,
                   "no retry or failover starts once this long has passed since the request arrived: 503 "
                   "no_upstream_available instead (0: no limit)");

  cli::addDuration(app, "stale-after", c.selection.staleAfter,
                   "entries whose heartbeat is older are not used while fresh ones exist (0 disables)");
  app.add_option("--epsilon", c.selection.epsilon,
                 "utilisation band of \"near-equal\" pools for power-of-two choices")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  cli::addChoice(
      app, "pool-choice", {"utilization", "latency"}, "utilization",
      [&c](const std::string& s) { c.selection.latency.enabled = s == "latency"; },
      "how a pool is chosen among the eligible ones: least utilisation, or the lowest estimated time to first "
      "token (network + published queue + prefill; docs/routing.md, \"Latency-aware pool choice\")");
  app.add_option("--region", c.selection.latency.clientRegion,
                 "the region this router's clients are in (latency choice: RTT and locality preference)");
  app.add_option("--data-zone", c.selection.latency.clientZone, "the data zone of --region (latency choice)");
  app.add_option_function<std::string>(
         "--region-rtt", [&c](const std::string& s) { parseRegionRtt(s, &c.selection.latency.rttMs); },
         "round-trip times between regions in ms, REGION/REGION=MS[,...] (latency choice; unlisted pairs: "
         "2 ms in the same region, 30 in the same zone, 100 otherwise)")
      ->check(textCheck([](const std::string& s) { return parseRegionRtt(s, nullptr); }, "REGION/REGION=MS,..."));
  app.add_option("--local-tolerance-ms", c.selection.latency.localToleranceMs,
                 "latency choice: stay in --region (then --data-zone) while its estimate is within this of the best")
      ->check(CLI::Range(0.0, 600000.0))
      ->capture_default_str();
  app.add_option("--near-equal-ms", c.selection.latency.nearEqualMs,
                 "latency choice: estimates within this of the best are near-equal (power-of-two choices)")
      ->check(CLI::Range(0.0, 600000.0))
      ->capture_default_str();
  app.add_option("--max-queue-ms", c.selection.latency.maxQueueMs,
                 "latency choice: a pool whose estimated queueing delay is above this is treated as saturated (0: off)")
      ->check(CLI::Range(0.0, 3600000.0))
      ->capture_default_str();
  app.add_option("--max-remote-queue-ms", c.selection.latency.maxRemoteQueueMs,
                 "latency choice: a pool outside --region whose estimated queueing delay is above this is treated as "
                 "saturated (0: off)")
      ->check(CLI::Range(0.0, 3600000.0))
      ->capture_default_str();
  app.add_option("--prefill-tokens-per-second", c.selection.latency.prefillTokensPerSecond,
                 "latency choice: one replica's prefill speed when its routing entry publishes none")
      ->check(CLI::Range(1.0, 1e9))
      ->capture_default_str();
  cli::addChoice(
      app, "overload", {"reject", "best-effort"}, "reject",
      [&c](const std::string& s) { c.overload = s == "reject" ? OverloadPolicy::Reject : OverloadPolicy::BestEffort; },
      "all allowed pools over maxUtilization and no spillover: 429 (reject) or send to the least utilised anyway");
  app.add_option("--replicas", c.replicas,
                 "router replicas sharing each PTU reservation; each enforces 1/N of it. With --membership-group: N "
                 "until the first count of the group's Leases")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();

  auto* group = app.add_option("--membership-group", c.membership.group,
                               "count N from Leases: every router with this group keeps a coordination.k8s.io/v1 "
                               "Lease labelled waterline.dev/router-group=NAME, and N = the live ones (default: off, "
                               "N = --replicas)")
                    ->check(textCheck(
                        [](const std::string& s) {
                          return isLabelValue(s) ? std::string()
                                                 : "want a label value (at most 63 of A-Z a-z 0-9 - _ ., alphanumeric "
                                                   "at both ends), got \"" + s + "\"";
                        },
                        "NAME"));
  app.add_option("--membership-namespace", c.membership.ns,
                 "namespace of the Leases (default: the kubeconfig context's or the pod's namespace, else \"default\")")
      ->check(textCheck(
          [](const std::string& s) {
            return isDns1123Label(s) ? std::string() : "want a namespace name (DNS-1123 label), got \"" + s + "\"";
          },
          "NS"))
      ->needs(group);
  app.add_option("--membership-kubeconfig", c.membership.kubeconfig,
                 "kubeconfig for the Leases (default: $KUBECONFIG, then the in-cluster service account, then "
                 "~/.kube/config)")
      ->check(textCheck([](const std::string& s) { return s.empty() ? std::string("empty path") : std::string(); },
                        "PATH"))
      ->needs(group);
  app.add_option("--identity", c.membership.identity,
                 "this replica's holderIdentity (default: the hostname, i.e. the pod name)")
      ->check(textCheck(
          [](const std::string& s) {
            return s.empty() || s.size() > 253 ? std::string("want 1 to 253 characters") : std::string();
          },
          "ID"))
      ->needs(group);
  cli::addDuration(app, "membership-lease-duration", c.membership.leaseDuration,
                   "renewed every third of it; a replica that stops renewing is dropped after it",
                   {.min = seconds(1), .max = std::chrono::hours(1), .wholeSeconds = true})
      ->needs(group);
  cli::addDuration(app, "membership-clock-skew", c.membership.clockSkew,
                   "how far the replicas' clocks may disagree: a Lease counts until renewTime + duration + skew",
                   {.max = std::chrono::minutes(1)})
      ->needs(group);

  app.add_option("--ptu-share-store", c.ptuShareStore,
                 "redis://HOST:PORT: the replicas exchange their recent PTU usage there every --ptu-share-interval "
                 "and set demand-aware shares of each reservation instead of 1/N (default: off, the static split)")
      ->check(textCheck([](const std::string& s) { return parsePtuShareStore(s, nullptr); }, "URL"))
      ->type_name("URL");
  cli::addDuration(app, "ptu-share-interval", c.ptuShareInterval,
                   "how often the PTU shares are exchanged and rebalanced (with --ptu-share-store)",
                   {.min = std::chrono::milliseconds(100), .max = std::chrono::minutes(1)});
  app.add_option("--ptu-share-overcommit", c.ptuShareOvercommit,
                 "experimental: the fraction of the other replicas' even parts of the spare PTU room (beyond twice "
                 "an interval's demand) each replica may also use; 0 keeps the shares summing to 1")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();

  cli::addChoice(
      app, "limiter", {"sliding-window", "token-bucket"}, "sliding-window",
      [&c](const std::string& s) {
        c.limiterMode = s == "token-bucket" ? routing::LimiterMode::TokenBucket : routing::LimiterMode::SlidingWindow;
      },
      "PTU limiter");
  app.add_option("--default-max-tokens", c.estimator.defaultMaxTokens,
                 "output tokens charged when a request sets none")
      ->check(CLI::Range(std::int64_t{0}, std::int64_t{100000000}))
      ->capture_default_str();
  app.add_option("--chars-per-token", c.estimator.charsPerToken, "prompt estimator: characters per token, in (0, 100]")
      ->check(CLI::Range(1e-9, 100.0))
      ->capture_default_str();
  app.add_option("--seed", c.seed, "random seed for pool choice (0: random)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cli::addDuration(
      app, "shutdown-delay", c.shutdownDelay,
      "after SIGTERM/SIGINT: /readyz answers 503 and new connections are still accepted this long, so that "
      "endpoints and load balancers stop sending; then the listener closes");
  out.shutdownGrace = cli::addDuration(
      app, "shutdown-grace", c.shutdownGrace,
      "after SIGTERM/SIGINT (the delay included): requests and streams in flight may finish this long, then "
      "they are cut (exit 1); at least --shutdown-delay");
  cli::addLogLevel(app, c.logLevel);
  cli::addLogFormat(app, c.logFormat);
  return out;
}

}  // namespace

std::vector<cli::FlagDoc> routerFlags() {
  RouterConfig c;
  CLI::App app("", "waterline-router");
  addFlags(app, c);
  return cli::describe(app);
}

std::expected<RouterConfig, cli::Exit> parseRouterConfig(const std::vector<std::string>& args) {
  RouterConfig c;
  CLI::App app("", "waterline-router");
  const Checked opts = addFlags(app, c);
  if (auto exit = cli::parse(app, args)) return std::unexpected(*exit);

  if (c.shutdownGrace < c.shutdownDelay) {
    // The grace includes the delay. An explicit contradiction is an error; a delay given
    // alone above the default grace raises the grace to it.
    if (opts.shutdownGrace->count() > 0)
      return std::unexpected(cli::Exit{2, "--shutdown-grace: must be at least --shutdown-delay (" +
                                              cli::formatDuration(c.shutdownDelay) + "): the grace counts from the signal"});
    c.shutdownGrace = c.shutdownDelay;
  }
  if (c.maxBodyBytesInFlight < c.maxBodyBytes) {
    // A request of the largest allowed size must fit; an explicit contradiction is an error.
    if (opts.bodyInFlight->count() > 0)
      return std::unexpected(cli::Exit{2, "--max-body-bytes-in-flight: must be at least --max-body-bytes (" +
                                              std::to_string(c.maxBodyBytes) + ")"});
    c.maxBodyBytesInFlight = c.maxBodyBytes;
  }
  return c;
}

std::expected<RouterConfig, cli::Exit> parseRouterConfig(int argc, const char* const* argv) {
  return parseRouterConfig(std::vector<std::string>(argv + (argc > 0 ? 1 : 0), argv + argc));
}

}  // namespace waterline::router
