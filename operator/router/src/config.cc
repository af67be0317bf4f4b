#include "waterline/router/config.h"

#include "waterline/router/membership.h"

#include <charconv>
#include <cmath>
#include <map>

namespace waterline::router {

std::expected<Duration, std::string> parseDuration(std::string_view s) {
  if (s.empty()) return std::unexpected("empty duration");
  size_t i = 0;
  while (i < s.size() && (std::isdigit(static_cast<unsigned char>(s[i])) || s[i] == '.')) ++i;
  std::string num(s.substr(0, i));
  std::string unit(s.substr(i));
  if (num.empty()) return std::unexpected("invalid duration \"" + std::string(s) + "\"");
  char* end = nullptr;
  double v = std::strtod(num.c_str(), &end);
  if (!end || *end != '\0' || !std::isfinite(v) || v < 0)
    return std::unexpected("invalid duration \"" + std::string(s) + "\"");
  double ns;
  if (unit.empty() || unit == "s") ns = v * 1e9;
  else if (unit == "ms") ns = v * 1e6;
  else if (unit == "us" || unit == "µs") ns = v * 1e3;
  else if (unit == "ns") ns = v;
  else if (unit == "m") ns = v * 60e9;
  else if (unit == "h") ns = v * 3600e9;
  else return std::unexpected("invalid duration unit in \"" + std::string(s) + "\" (use ns, us, ms, s, m, h)");
  if (ns > 9e18) return std::unexpected("duration too large");
  return Duration(static_cast<int64_t>(ns));
}

std::expected<std::size_t, std::string> parseBytes(std::string_view s) {
  static const std::map<std::string, double> units = {
      {"", 1}, {"K", 1e3}, {"M", 1e6}, {"G", 1e9}, {"Ki", 1024.0}, {"Mi", 1024.0 * 1024}, {"Gi", 1024.0 * 1024 * 1024}};
  size_t i = 0;
  while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i;
  if (i == 0) return std::unexpected("invalid size \"" + std::string(s) + "\"");
  std::uint64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + i, v);
  if (ec != std::errc()) return std::unexpected("invalid size \"" + std::string(s) + "\"");
  auto it = units.find(std::string(s.substr(i)));
  if (it == units.end()) return std::unexpected("invalid size unit in \"" + std::string(s) + "\" (use K, M, G, Ki, Mi, Gi)");
  double b = static_cast<double>(v) * it->second;
  if (b > 1e15) return std::unexpected("size too large");
  return static_cast<std::size_t>(b);
}

std::string helpText() {
  return R"(waterline-router: an OpenAI-compatible HTTP proxy that routes each request to the
least-utilised allowed pool of its ModelDeployment, enforces PTU reservations and fails
over between pools. Routes come from a RoutingTable list (see docs/routing.md).

Usage: waterline-router [flags]

Endpoints: POST /v1/chat/completions, POST /v1/completions (deployment from the body's
"model": "namespace/name", a deployment name or a model name),
POST /openai/deployments/{name}/chat/completions and .../completions (Azure style),
GET /v1/models, GET /metrics, GET /healthz, GET /readyz, GET /debug/routes.

Flags (--flag=value or --flag value):
  --listen=ADDR:PORT            listen address (default 0.0.0.0:8080); --port=N sets the port only
  --threads=N                   io_context threads, one per core (default: number of cores)
  --busy-poll=DUR               keep polling this long after the last event before sleeping
                                (lower latency for a dedicated core, burns CPU; default 0: off)
  --routes-file=PATH            RoutingTableList JSON file, reloaded when it changes
  --routes-url=URL              http://HOST:PORT/v1/routes polled with If-None-Match (http only)
  --routes-poll-interval=DUR    how often sources are checked (default 1s)
  --routes-long-poll=DUR        --routes-url: the operator holds a poll until the table
                                changes, up to this long (default 30s; 0: plain polling)
  --max-body-bytes=SIZE         larger request bodies get 413 (default 4Mi)
  --max-header-bytes=SIZE       larger request headers get 431 (default 64Ki)
  --max-connections=N           open client connections; a connection over it is answered
                                503 and closed (default 8192; keep below the fd limit)
  --max-inflight=N              requests being proxied at once; over it: 503 with
                                Retry-After: 1 (default 4096)
  --header-timeout=DUR          a request's head must be complete this long after its first
                                byte, else the connection is closed (default 10s)
  --max-body-bytes-in-flight=SIZE  request-body bytes held across all connections; a
                                request over it is answered 503 and its connection closed
                                (default 64Mi; at least --max-body-bytes)
  --connect-timeout=DUR         upstream connect timeout (default 2s)
  --upstream-timeout=DUR        until the upstream response header (default 300s)
  --stream-idle-timeout=DUR     between upstream body reads (default 300s)
  --client-idle-timeout=DUR     keep-alive idle time for clients (default 120s)
  --max-attempts=N              upstream attempts per request, across pools (default 4)
  --failover-deadline=DUR       no retry or failover starts once this long has passed since
                                the request arrived: 503 no_upstream_available instead
                                (default 0: no limit)
  --stale-after=DUR             entries whose heartbeat is older are not used while fresh
                                ones exist (default 30s; 0 disables)
  --epsilon=X                   utilisation band of "near-equal" pools for power-of-two
                                choices (default 0.05)
  --overload=reject|best-effort all allowed pools over maxUtilization and no spillover:
                                429 (default) or send to the least utilised anyway
  --replicas=N                  router replicas sharing each PTU reservation; each
                                enforces 1/N of it (default 1). With --membership-group:
                                N until the first count of the group's Leases
  --membership-group=NAME       count N from Leases: every router with this group (a label
                                value) keeps a coordination.k8s.io/v1 Lease labelled
                                waterline.dev/router-group=NAME, and N = the live ones
                                (default: off, N = --replicas)
  --membership-namespace=NS     namespace of the Leases (default: the kubeconfig
                                context's or the pod's namespace, else "default")
  --membership-kubeconfig=PATH  kubeconfig for the Leases (default: $KUBECONFIG, then the
                                in-cluster service account, then ~/.kube/config)
  --identity=ID                 this replica's holderIdentity (default: the hostname, i.e.
                                the pod name)
  --membership-lease-duration=DUR  whole seconds (default 15s); renewed every third of it;
                                a replica that stops renewing is dropped after it
  --membership-clock-skew=DUR   how far the replicas' clocks may disagree: a Lease counts
                                until renewTime + duration + skew (default 1s)
  --limiter=sliding-window|token-bucket  PTU limiter (default sliding-window)
  --default-max-tokens=N        output tokens charged when a request sets none (default 1024)
  --chars-per-token=X           prompt estimator (default 4)
  --seed=N                      random seed for pool choice (default: random)
  --log-level=LEVEL             error, warn, info, debug (default info)
  --help                        this text
)";
}

std::expected<RouterConfig, std::string> parseFlags(const std::vector<std::string>& args) {
  RouterConfig c;
  std::vector<std::string> membershipFlags;  // set without --membership-group: an error
  bool bodyInFlightSet = false;
  auto fail = [](const std::string& flag, const std::string& why) {
    return std::unexpected("flag --" + flag + ": " + why);
  };
  for (size_t i = 0; i < args.size(); ++i) {
    std::string a = args[i];
    if (a == "-h" || a == "--help" || a == "-help") return std::unexpected("help");
    if (a.rfind("--", 0) != 0) return std::unexpected("unexpected argument \"" + a + "\" (see --help)");
    a = a.substr(2);
    std::string name = a, value;
    bool hasValue = false;
    if (auto eq = a.find('='); eq != std::string::npos) {
      name = a.substr(0, eq);
      value = a.substr(eq + 1);
      hasValue = true;
    }
    auto need = [&]() -> std::expected<std::string, std::string> {
      if (hasValue) return value;
      if (i + 1 >= args.size()) return std::unexpected("flag --" + name + ": missing value");
      return args[++i];
    };
    auto v = need();
    if (!v) return std::unexpected(v.error());
    const std::string& s = *v;
    auto toInt = [&](long lo, long hi) -> std::expected<long, std::string> {
      long x = 0;
      auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), x);
      if (ec != std::errc() || p != s.data() + s.size() || x < lo || x > hi)
        return std::unexpected("flag --" + name + ": want an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got \"" + s + "\"");
      return x;
    };
    auto toDur = [&]() -> std::expected<Duration, std::string> {
      auto d = parseDuration(s);
      if (!d) return std::unexpected("flag --" + name + ": " + d.error());
      return *d;
    };
    if (name == "listen") {
      auto colon = s.rfind(':');
      if (colon == std::string::npos) return fail(name, "want ADDR:PORT");
      std::string addr = s.substr(0, colon);
      if (addr.size() >= 2 && addr.front() == '[' && addr.back() == ']') addr = addr.substr(1, addr.size() - 2);
      c.listenAddress = addr.empty() ? "0.0.0.0" : addr;
      long port = 0;
      auto ps = s.substr(colon + 1);
      auto [p, ec] = std::from_chars(ps.data(), ps.data() + ps.size(), port);
      if (ec != std::errc() || p != ps.data() + ps.size() || port < 0 || port > 65535) return fail(name, "invalid port");
      c.port = static_cast<int>(port);
    } else if (name == "port") {
      auto x = toInt(0, 65535);
      if (!x) return std::unexpected(x.error());
      c.port = static_cast<int>(*x);
    } else if (name == "threads") {
      auto x = toInt(0, 1024);
      if (!x) return std::unexpected(x.error());
      c.threads = static_cast<int>(*x);
    } else if (name == "busy-poll") {
      auto d = toDur();
      if (!d) return std::unexpected(d.error());
      if (*d > std::chrono::seconds(1)) return fail(name, "at most 1s");
      c.busyPoll = *d;
    } else if (name == "routes-file") {
      c.routesFile = s;
    } else if (name == "routes-url") {
      if (s.rfind("http://", 0) != 0) return fail(name, "want http://HOST:PORT/PATH (https is not supported)");
      c.routesUrl = s;
    } else if (name == "routes-poll-interval") {
      auto d = toDur();
      if (!d) return std::unexpected(d.error());
      if (*d <= Duration::zero()) return fail(name, "must be > 0");
      c.routesPollInterval = *d;
    } else if (name == "routes-long-poll") {
      auto d = toDur();
      if (!d) return std::unexpected(d.error());
      if (*d < Duration::zero() || *d > std::chrono::seconds(300)) return fail(name, "must be in [0, 300s]");
      c.routesLongPoll = *d;
    } else if (name == "max-body-bytes" || name == "max-header-bytes") {
      auto b = parseBytes(s);
      if (!b) return fail(name, b.error());
      if (*b == 0) return fail(name, "must be > 0");
      (name == "max-body-bytes" ? c.maxBodyBytes : c.maxHeaderBytes) = *b;
    } else if (name == "max-body-bytes-in-flight") {
      auto b = parseBytes(s);
      if (!b) return fail(name, b.error());
      if (*b == 0) return fail(name, "must be > 0");
      c.maxBodyBytesInFlight = *b;
      bodyInFlightSet = true;
    } else if (name == "max-connections") {
      auto x = toInt(1, 1000000);
      if (!x) return std::unexpected(x.error());
      c.maxConnections = static_cast<int>(*x);
    } else if (name == "max-inflight") {
      auto x = toInt(1, 1000000);
      if (!x) return std::unexpected(x.error());
      c.maxInflight = static_cast<int>(*x);
    } else if (name == "connect-timeout" || name == "upstream-timeout" || name == "stream-idle-timeout" ||
               name == "client-idle-timeout" || name == "header-timeout") {
      auto d = toDur();
      if (!d) return std::unexpected(d.error());
      if (*d <= Duration::zero()) return fail(name, "must be > 0");
      if (name == "connect-timeout") c.connectTimeout = *d;
      else if (name == "upstream-timeout") c.upstreamHeaderTimeout = *d;
      else if (name == "stream-idle-timeout") c.streamIdleTimeout = *d;
      else if (name == "header-timeout") c.headerTimeout = *d;
      else c.clientIdleTimeout = *d;
    } else if (name == "max-attempts") {
      auto x = toInt(1, 64);
      if (!x) return std::unexpected(x.error());
      c.maxAttempts = static_cast<int>(*x);
    } else if (name == "failover-deadline") {
      auto d = toDur();
      if (!d) return std::unexpected(d.error());
      if (*d < Duration::zero()) return fail(name, "must be >= 0");
      c.failoverDeadline = *d;
    } else if (name == "stale-after") {
      auto d = toDur();
      if (!d) return std::unexpected(d.error());
      c.selection.staleAfter = *d;
    } else if (name == "epsilon") {
      char* end = nullptr;
      double e = std::strtod(s.c_str(), &end);
      if (!end || *end || !(e >= 0 && e <= 1)) return fail(name, "want a number in [0, 1]");
      c.selection.epsilon = e;
    } else if (name == "overload") {
      if (s == "reject") c.overload = OverloadPolicy::Reject;
      else if (s == "best-effort") c.overload = OverloadPolicy::BestEffort;
      else return fail(name, "want reject or best-effort");
    } else if (name == "replicas") {
      auto x = toInt(1, 100000);
      if (!x) return std::unexpected(x.error());
      c.replicas = static_cast<int>(*x);
    } else if (name == "membership-group") {
      if (!isLabelValue(s))
        return fail(name, "want a label value (at most 63 of A-Z a-z 0-9 - _ ., alphanumeric at both ends), got \"" + s + "\"");
      c.membership.group = s;
    } else if (name == "membership-namespace") {
      if (!isDns1123Label(s)) return fail(name, "want a namespace name (DNS-1123 label), got \"" + s + "\"");
      c.membership.ns = s;
      membershipFlags.push_back(name);
    } else if (name == "membership-kubeconfig") {
      if (s.empty()) return fail(name, "empty path");
      c.membership.kubeconfig = s;
      membershipFlags.push_back(name);
    } else if (name == "identity") {
      if (s.empty() || s.size() > 253) return fail(name, "want 1 to 253 characters");
      c.membership.identity = s;
      membershipFlags.push_back(name);
    } else if (name == "membership-lease-duration") {
      auto d = toDur();
      if (!d) return std::unexpected(d.error());
      if (*d < std::chrono::seconds(1) || *d > std::chrono::hours(1) || *d % std::chrono::seconds(1) != Duration::zero())
        return fail(name, "want whole seconds in [1s, 1h]");
      c.membership.leaseDuration = *d;
      membershipFlags.push_back(name);
    } else if (name == "membership-clock-skew") {
      auto d = toDur();
      if (!d) return std::unexpected(d.error());
      if (*d > std::chrono::minutes(1)) return fail(name, "at most 1m");
      c.membership.clockSkew = *d;
      membershipFlags.push_back(name);
    } else if (name == "limiter") {
      if (s == "sliding-window") c.limiterMode = routing::LimiterMode::SlidingWindow;
      else if (s == "token-bucket") c.limiterMode = routing::LimiterMode::TokenBucket;
      else return fail(name, "want sliding-window or token-bucket");
    } else if (name == "default-max-tokens") {
      auto x = toInt(0, 100000000);
      if (!x) return std::unexpected(x.error());
      c.estimator.defaultMaxTokens = *x;
    } else if (name == "chars-per-token") {
      char* end = nullptr;
      double e = std::strtod(s.c_str(), &end);
      if (!end || *end || !(e > 0 && e <= 100)) return fail(name, "want a number in (0, 100]");
      c.estimator.charsPerToken = e;
    } else if (name == "seed") {
      std::uint64_t x = 0;
      auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), x);
      if (ec != std::errc() || p != s.data() + s.size()) return fail(name, "want a non-negative integer");
      c.seed = x;
    } else if (name == "log-level") {
      if (s != "error" && s != "warn" && s != "warning" && s != "info" && s != "debug")
        return fail(name, "want error, warn, info or debug");
      c.logLevel = s;
    } else {
      return std::unexpected("unknown flag --" + name + " (see --help)");
    }
  }
  if (c.maxBodyBytesInFlight < c.maxBodyBytes) {
    // A request of the largest allowed size must fit; an explicit contradiction is an error.
    if (bodyInFlightSet)
      return fail("max-body-bytes-in-flight", "must be at least --max-body-bytes (" + std::to_string(c.maxBodyBytes) + ")");
    c.maxBodyBytesInFlight = c.maxBodyBytes;
  }
  if (!c.membership.enabled() && !membershipFlags.empty())
    return fail(membershipFlags.front(), "only applies with --membership-group");
  return c;
}

}  // namespace waterline::router
