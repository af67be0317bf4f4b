#include "waterline/router/server.h"

#include <utility>

#include <boost/asio.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <future>
#include <limits>
#include <random>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "waterline/common/log.h"
#include "waterline/common/process_collector.h"
#include "waterline/routing/selection.h"
#include "waterline/routing/tokens.h"
#include "waterline/router/attempts.h"
#include "waterline/router/cache_layer.h"
#include "waterline/router/framing.h"
#include "waterline/router/metrics_listener.h"
#include "waterline/router/upstreams.h"
#include "waterline/router/wire.h"

namespace waterline::router {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using asio::awaitable;
using asio::use_awaitable;
using json = nlohmann::json;
using steady = std::chrono::steady_clock;

namespace {

inline beast::string_view bsv(std::string_view s) { return beast::string_view(s.data(), s.size()); }
inline std::string_view ssv(beast::string_view s) { return std::string_view(s.data(), s.size()); }

const waterline::log::Logger& rlog() {
  static const auto l = waterline::log::logger("router");
  return l;
}

// Request bodies up to this size are "small" for --max-body-bytes-in-flight (BodyBytes).
constexpr int64_t kSmallBody = 64 << 10;

// Read size for request heads: big enough for a head and a small body in one read.
constexpr std::size_t kHeadReadSize = 8192;

// The answer to a connection over --max-connections: written without waiting, then the
// connection is closed.
const std::string& tooManyConnectionsResponse() {
  static const std::string r = [] {
    const std::string body = makeError(503, "The router has too many open connections. Retry shortly.",
                                       "server_error", "too_many_connections")
                                 .body();
    return "HTTP/1.1 503 Service Unavailable\r\nServer: waterline-router\r\nContent-Type: application/json\r\n"
           "Retry-After: 1\r\nConnection: close\r\nContent-Length: " +
           std::to_string(body.size()) + "\r\n\r\n" + body;
  }();
  return r;
}

// Non-streaming upstream bodies up to this size are read whole and answered in one write.
constexpr std::uint64_t kBufferedBodyLimit = 1u << 20;

// Writes `bufs` to `s`: first one non-blocking send on this thread, then an async write
// for whatever the socket did not take. A small message on a connection with room in its
// send buffer (every request head and JSON answer) then goes out without a round through
// Asio's scheduler, which costs an epoll_wait and a handler dispatch; a proxied request
// has two such writes. On error `ec` is set as an async write would set it.
awaitable<void> writeAll(beast::tcp_stream& s, const std::array<asio::const_buffer, 2>& bufs, beast::error_code& ec) {
  auto& sock = s.socket();
  ec = {};
  if (!sock.non_blocking()) sock.non_blocking(true, ec);  // sync calls answer would_block, never wait
  if (ec) co_return;
  std::size_t n = sock.write_some(bufs, ec);
  if (ec == asio::error::would_block || ec == asio::error::try_again) {
    ec = {};
    n = 0;
  }
  if (ec || n == asio::buffer_size(bufs)) co_return;
  beast::buffers_suffix<std::array<asio::const_buffer, 2>> rest(bufs);
  rest.consume(n);
  co_await asio::async_write(s, rest, asio::redirect_error(use_awaitable, ec));
}

struct Headers {
  HeaderList items;
  void add(std::string k, std::string v) { items.emplace_back(std::move(k), std::move(v)); }
};

}  // namespace

struct Worker;

struct RouterServer::Impl {
  RouterConfig cfg;
  TimeSourcePtr clock;
  metrics::Registry registry;
  RouterCache cache{registry};  // spec.cache: the response caches (cache_layer.h)
  routing::AdmissionController admission;
  AdmissionLedger ledger{admission};  // the attempt planners' view of `admission`
  metrics::CounterFamily* requests = nullptr;
  metrics::HistogramFamily* latency = nullptr;
  metrics::CounterFamily* attempts = nullptr;
  metrics::CounterFamily* spills = nullptr;
  metrics::CounterFamily* routeUpdates = nullptr;
  std::atomic<int64_t> inflight{0};
  // Limits (docs/operations.md, "Limits").
  std::atomic<int64_t> connections{0};    // open client connections
  std::atomic<int64_t> bodyBytes{0};      // request-body bytes held, all connections
  metrics::Counter* rejectedConnections = nullptr;
  metrics::Counter* rejectedInflight = nullptr;
  metrics::Counter* rejectedBodyBytes = nullptr;
  metrics::Counter* rejectedHeaderTimeout = nullptr;
  metrics::Counter* rejectedFraming = nullptr;
  metrics::Counter* usageClamped = nullptr;
  std::atomic<int> replicaCount{1};  // N: router replicas sharing each reservation

  // Graceful shutdown (drain.h): `drain` under drainMu; the wire code reads the flags.
  std::mutex drainMu;
  std::condition_variable drainCv;
  DrainState drain;
  bool drainKick = false;                // something drain() waits for happened (under drainMu)
  std::atomic<bool> closing{false};      // a signal came: /readyz 503, Connection: close
  std::atomic<bool> notAccepting{false}; // the listener is closed: close new and idle connections
  metrics::Counter* shutdownCut = nullptr;

  mutable std::mutex routesMu;
  std::shared_ptr<const DeploymentIndex> routes;
  std::atomic<uint64_t> routesGen{0};

  std::mutex lifecycleMu;
  std::vector<std::unique_ptr<Worker>> workers;
  std::unique_ptr<tcp::acceptor> acceptor;
  std::unique_ptr<asio::steady_timer> acceptRetry;
  std::atomic<size_t> nextWorker{0};
  std::atomic<int> boundPort{0};
  std::unique_ptr<MetricsListener> metricsListener;  // --metrics-listen ADDR:PORT
  bool started = false;
  bool stopped = false;

  Impl(RouterConfig c, TimeSourcePtr clk)
      : cfg(std::move(c)),
        clock(clk ? std::move(clk) : RealTimeSource::instance()),
        admission(cfg.limiterMode, 1.0 / std::max(1, cfg.replicas)),
        replicaCount(std::max(1, cfg.replicas)),
        drain(DrainOptions{cfg.shutdownDelay, cfg.shutdownGrace}) {
    metrics::addProcessCollector(registry);
    shutdownCut = &registry.counter("waterline_router_shutdown_cut_connections_total",
                                    "Client connections still open when --shutdown-grace ran out after "
                                    "SIGTERM/SIGINT, closed by the router (streams cut short).")
                       .get();
    requests = &registry.counter("waterline_router_requests_total",
                                 "Requests answered, by deployment, pool (empty when the router answered itself) and HTTP status.",
                                 {"deployment", "pool", "code"});
    latency = &registry.histogram("waterline_router_request_duration_seconds",
                                  "Time from the request's arrival to the last byte of its response.", {"deployment"},
                                  metrics::exponentialBuckets(0.0001, 2, 22));
    attempts = &registry.counter("waterline_router_upstream_attempts_total",
                                 "Upstream attempts by deployment, pool and result (ok, connect_error, write_error, "
                                 "header_error, status_5xx, body_error).",
                                 {"deployment", "pool", "result"});
    spills = &registry.counter("waterline_router_spillovers_total",
                               "Requests sent on to a deployment's spillover deployment, by reason (ptu, capacity, failover).",
                               {"deployment", "reason"});
    routeUpdates = &registry.counter("waterline_router_routes_updates_total", "Routing tables installed.");
    registry.gaugeFunc("waterline_router_members",
                       "Router replicas sharing each PTU reservation (N: this replica enforces 1/N of each); "
                       "the live members of the Lease group with --membership-group, else --replicas.",
                       {}, [this] { return std::vector<metrics::Sample>{{{}, static_cast<double>(replicaCount.load())}}; });
    registry.gaugeFunc("waterline_router_inflight_requests", "Requests in progress.", {},
                       [this] { return std::vector<metrics::Sample>{{{}, static_cast<double>(inflight.load())}}; });
    registry.gaugeFunc("waterline_router_connections", "Open client connections (at most --max-connections).", {},
                       [this] { return std::vector<metrics::Sample>{{{}, static_cast<double>(connections.load())}}; });
    registry.gaugeFunc("waterline_router_body_bytes_in_flight",
                       "Request-body bytes held across connections (at most --max-body-bytes-in-flight).", {},
                       [this] { return std::vector<metrics::Sample>{{{}, static_cast<double>(bodyBytes.load())}}; });
    auto& rejected = registry.counter(
        "waterline_router_rejected_total",
        "Connections and requests refused or cut by a limit, by reason: connections (503, --max-connections), "
        "inflight (503, --max-inflight), body_bytes (503, --max-body-bytes-in-flight), header_timeout (closed, "
        "--header-timeout), framing (400/501 for a malformed or ambiguous request head, closed).",
        {"reason"});
    rejectedConnections = &rejected.withLabels({"connections"});
    rejectedInflight = &rejected.withLabels({"inflight"});
    rejectedBodyBytes = &rejected.withLabels({"body_bytes"});
    rejectedHeaderTimeout = &rejected.withLabels({"header_timeout"});
    rejectedFraming = &rejected.withLabels({"framing"});
    usageClamped = &registry.counter("waterline_router_usage_clamped_total",
                                     "Upstream usage figures above what the request could have produced, "
                                     "clamped before settlement (docs/routing.md).")
                        .get();
    registry.gaugeFunc("waterline_router_routes_deployments", "Deployments in the routing table.", {}, [this] {
      std::lock_guard lk(routesMu);
      double n = routes ? static_cast<double>(routes->table().deployments.size()) : 0;
      return std::vector<metrics::Sample>{{{}, n}};
    });
    auto statFn = [this](int which) {
      return [this, which] {
        std::vector<metrics::Sample> out;
        for (const auto& [k, s] : admission.stats(clock->monotonicTime())) {
          double v = 0;
          switch (which) {
            case 0: v = static_cast<double>(s.counters.admitted); break;
            case 1: v = static_cast<double>(s.counters.throttled); break;
            case 2: v = static_cast<double>(s.counters.spilled); break;
            case 3: v = s.used; break;
            default: v = s.limit; break;
          }
          out.push_back({{k}, v});
        }
        return out;
      };
    };
    registry.counterFunc("waterline_router_ptu_admitted_total", "Requests admitted within a PTU reservation.",
                         {"reservation"}, statFn(0));
    registry.counterFunc("waterline_router_ptu_throttled_total",
                         "Requests refused (429) because a reservation was exhausted and no spillover is set.",
                         {"reservation"}, statFn(1));
    registry.counterFunc("waterline_router_ptu_spilled_total",
                         "Requests sent to the spillover deployment because a reservation was exhausted.",
                         {"reservation"}, statFn(2));
    registry.gaugeFunc("waterline_router_ptu_window_tokens",
                       "Weighted tokens charged to a reservation in the current window (this replica).",
                       {"reservation"}, statFn(3));
    registry.gaugeFunc("waterline_router_ptu_limit_tokens",
                       "Weighted tokens a reservation admits per window on this replica.", {"reservation"}, statFn(4));
    auto quotaFn = [this](int which) {
      return [this, which] {
        std::vector<metrics::Sample> out;
        for (const auto& [k, q] : admission.quotaStats(clock->monotonicTime())) {
          double v = 0;
          switch (which) {
            case 0: v = static_cast<double>(q.counters.admitted); break;
            case 1: v = static_cast<double>(q.counters.throttled); break;
            case 2: v = static_cast<double>(q.counters.spilled); break;
            case 3: v = q.usedTokens; break;
            default: v = q.limitTokens; break;
          }
          out.push_back({{k}, v});
        }
        return out;
      };
    };
    registry.counterFunc("waterline_router_quota_admitted_total",
                         "Requests admitted within a deployment's rate limit (spec.rateLimit) on this replica.",
                         {"deployment"}, quotaFn(0));
    registry.counterFunc("waterline_router_quota_throttled_total",
                         "Requests refused (429) because a deployment's rate limit was exhausted and no spillover "
                         "is set.",
                         {"deployment"}, quotaFn(1));
    registry.counterFunc("waterline_router_quota_spilled_total",
                         "Requests sent to the spillover deployment because a deployment's rate limit was exhausted.",
                         {"deployment"}, quotaFn(2));
    registry.gaugeFunc("waterline_router_quota_window_tokens",
                       "Weighted tokens charged to a deployment's rate limit in the current window (this replica).",
                       {"deployment"}, quotaFn(3));
    registry.gaugeFunc("waterline_router_quota_limit_tokens",
                       "Weighted tokens a deployment's rate limit admits per window on this replica.", {"deployment"},
                       quotaFn(4));
  }

  void accept();
  void stopAll();
  // The drain's end of the delay: closes the listener, then every idle client connection.
  void stopAccepting();
  void closeAcceptor();
  // A client connection closed (ConnectionCount): wakes drain() once none is left.
  void connectionClosed() {
    if (connections.fetch_sub(1, std::memory_order_relaxed) == 1 && closing.load(std::memory_order_relaxed)) {
      {
        std::lock_guard lk(drainMu);
        drainKick = true;
      }
      drainCv.notify_all();
    }
  }
};

// ---------------------------------------------------------------------------------

struct Worker {
  RouterServer::Impl& sh;
  const RouterConfig& cfg;
  std::mt19937_64 rng;
  // Pool and replica choice, in-flight counts, ejections and this thread's local load
  // (upstreams.h), on the injected clock.
  WorkerUpstreams upstreams;
  std::shared_ptr<const DeploymentIndex> routes;
  uint64_t gen = UINT64_MAX;
  std::unordered_map<std::string, std::vector<std::unique_ptr<beast::tcp_stream>>> idle;
  std::unordered_map<std::string, std::vector<tcp::endpoint>> resolved;
  std::unordered_map<std::string, metrics::Counter*> counterCache;
  std::unordered_map<std::string, metrics::Histogram*> histCache;
  // This thread's client connections (one per session()), so that the drain can close
  // the idle ones: a circular list through the sessions' frames, `sessions` its sentinel.
  // Only this thread touches it.
  struct SessionLink {
    SessionLink* prev = this;
    SessionLink* next = this;
    beast::tcp_stream* client = nullptr;
    bool idle = false;  // waiting for the first byte of a request
  };
  SessionLink sessions;
  std::thread thread;
  asio::io_context io{1};  // declared last: destroyed first, after ~Worker closed `idle`

  Worker(RouterServer::Impl& s, std::uint64_t seed)
      : sh(s),
        cfg(s.cfg),
        rng(seed),
        upstreams(WorkerUpstreams::Options{cfg.selection, cfg.ejectAfterConnectFailure},
                  [this] { return std::uniform_real_distribution<double>(0.0, 1.0)(rng); }) {}

  // On this thread: ends every connection that waits for a request (the drain).
  void closeIdleSessions() {
    for (SessionLink* l = sessions.next; l != &sessions; l = l->next)
      if (l->idle) l->client->cancel();  // its read ends with operation_aborted; session() closes it
  }

  // A response's Connection: keep-alive only while no termination signal has come
  // (drain.h: from the signal on every response closes its connection).
  bool clientKeepAlive(const http::request<http::string_body>& req) const {
    return req.keep_alive() && !sh.closing.load(std::memory_order_relaxed);
  }

  // The router's one clock (RouterServer's TimeSource): request durations, admission
  // windows, heartbeat freshness, ejection and the failover deadline all read it.
  MonotonicTime monoNow() const { return sh.clock->monotonicTime(); }
  Now now() const { return {sh.clock->monotonicTime(), sh.clock->systemTime()}; }
  ~Worker() { idle.clear(); }

  std::shared_ptr<const DeploymentIndex> currentRoutes() {
    uint64_t g = sh.routesGen.load(std::memory_order_acquire);
    if (g != gen) {
      {
        std::lock_guard lk(sh.routesMu);
        routes = sh.routes;
        gen = sh.routesGen.load(std::memory_order_acquire);
      }
      // Drop pooled connections and cached resolutions of endpoints no longer routed to.
      std::unordered_set<std::string> live;
      if (routes)
        for (const auto& d : routes->table().deployments)
          for (const auto& e : d.entries)
            for (const auto& ep : e.endpoints) live.insert(ep);
      std::erase_if(idle, [&](const auto& kv) { return !live.count(kv.first); });
      std::erase_if(resolved, [&](const auto& kv) { return !live.count(kv.first); });
      upstreams.prune(live, sh.clock->systemTime() - std::chrono::hours(1));
    }
    return routes;
  }

  metrics::Counter& counter(metrics::CounterFamily* fam, char tag, const std::string& a, const std::string& b,
                            const std::string& c) {
    std::string key;
    key.reserve(a.size() + b.size() + c.size() + 4);
    key.push_back(tag);
    key += a;
    key.push_back('\x1f');
    key += b;
    key.push_back('\x1f');
    key += c;
    auto it = counterCache.find(key);
    if (it != counterCache.end()) return *it->second;
    auto& ctr = fam->withLabels({a, b, c});
    counterCache.emplace(std::move(key), &ctr);
    return ctr;
  }

  void recordRequest(const std::string& deployment, const std::string& pool, int code, MonotonicTime t0) {
    counter(sh.requests, 'r', deployment, pool, std::to_string(code)).inc();
    auto it = histCache.find(deployment);
    metrics::Histogram* h;
    if (it == histCache.end()) {
      h = &sh.latency->withLabels({deployment});
      histCache.emplace(deployment, h);
    } else {
      h = it->second;
    }
    h->observe(std::chrono::duration<double>(monoNow() - t0).count());
  }

  void recordAttempt(const std::string& deployment, const std::string& pool, const char* result) {
    counter(sh.attempts, 'a', deployment, pool, result).inc();
  }

  void recordSpill(const std::string& deployment, const char* reason) {
    sh.spills->withLabels({deployment, reason}).inc();
  }

  // ---- sessions --------------------------------------------------------------------

  void spawn(tcp::socket s) {
    asio::co_spawn(io, session(std::move(s)), asio::detached);
  }

  // Holds request-body bytes against --max-body-bytes-in-flight until the request is done.
  struct BodyBytes {
    std::atomic<int64_t>& total;
    int64_t held = 0;
    explicit BodyBytes(std::atomic<int64_t>& t) : total(t) {}
    ~BodyBytes() { release(); }
    // Holds `n` bytes in all (more than now: takes the difference); false over the cap.
    // A body above kSmallBody may fill only 3/4 of `cap`: the rest stays free for
    // ordinary small requests while large bodies queue up against the cap.
    bool holdUpTo(int64_t n, int64_t cap) {
      if (n <= held) return true;
      const int64_t limit = n > kSmallBody ? cap / 4 * 3 : cap;
      const int64_t more = n - held;
      if (total.fetch_add(more, std::memory_order_relaxed) + more > limit) {
        total.fetch_sub(more, std::memory_order_relaxed);
        return false;
      }
      held = n;
      return true;
    }
    void release() {
      if (held) total.fetch_sub(held, std::memory_order_relaxed);
      held = 0;
    }
  };

  struct ConnectionCount {
    RouterServer::Impl& sh;
    ~ConnectionCount() { sh.connectionClosed(); }
  };
  struct SessionLinked {
    SessionLink& link;
    SessionLinked(SessionLink& sentinel, SessionLink& l) : link(l) {
      l.prev = sentinel.prev;
      l.next = &sentinel;
      sentinel.prev->next = &l;
      sentinel.prev = &l;
    }
    ~SessionLinked() {
      link.prev->next = link.next;
      link.next->prev = link.prev;
    }
  };

  // One client connection (counted in sh.connections by accept()). Per request: the head
  // is read up to its empty line (framing::findHeadEnd; the first byte within
  // --client-idle-timeout, the rest within --header-timeout), checked by
  // framing::checkRequestHead, then parsed by Beast from the buffer, and the body read
  // under --max-body-bytes-in-flight. Any framing or parse error is answered and closes
  // the connection: bytes after an ambiguous head are never read as a request.
  awaitable<void> session(tcp::socket sock) {
    ConnectionCount counted{sh};
    beast::tcp_stream client(std::move(sock));
    SessionLink link;
    link.client = &client;
    SessionLinked linked(sessions, link);
    beast::error_code ec;
    client.socket().set_option(tcp::no_delay(true), ec);
    beast::flat_buffer buf;
    const auto cap = static_cast<int64_t>(std::min<std::size_t>(cfg.maxBodyBytesInFlight, INT64_MAX));
    try {
      for (;;) {
        // The listener has closed (drain.h): a connection accepted just before it gets no
        // new request read.
        if (buf.size() == 0 && sh.notAccepting.load(std::memory_order_relaxed)) break;
        // ---- the head
        std::size_t scanFrom = 0, headEnd = std::string_view::npos;
        bool started = buf.size() > 0;  // a byte of this request is here
        bool armed = started;             // the --header-timeout deadline is set
        client.expires_after(started ? cfg.headerTimeout : cfg.clientIdleTimeout);
        bool tooLarge = false;
        for (;;) {
          const std::string_view have(static_cast<const char*>(buf.data().data()), buf.size());
          headEnd = framing::findHeadEnd(have, scanFrom);
          if (headEnd != std::string_view::npos) {
            tooLarge = headEnd > cfg.maxHeaderBytes;
            break;
          }
          if (buf.size() >= cfg.maxHeaderBytes) {
            tooLarge = true;
            break;
          }
          // Only a head that did not come whole re-arms the deadline (a timer update is
          // not free; the usual head arrives in one read).
          if (started && !armed) {
            client.expires_after(cfg.headerTimeout);
            armed = true;
          }
          link.idle = !started;  // the drain closes a connection while it waits here
          const std::size_t n =
              co_await client.async_read_some(buf.prepare(kHeadReadSize), asio::redirect_error(use_awaitable, ec));
          link.idle = false;
          if (ec) break;
          buf.commit(n);
          started = true;
        }
        if (tooLarge) {
          co_await readError(client, http::error::header_limit);
          break;
        }
        if (ec) {
          // Timed out with part of a head (slowloris): counted. Idle keep-alive timeouts
          // and closes are not.
          if (ec == beast::error::timeout && started) sh.rejectedHeaderTimeout->inc();
          break;
        }
        const std::string_view head(static_cast<const char*>(buf.data().data()), headEnd);
        if (const auto fr = framing::checkRequestHead(head); !fr.ok) {
          sh.rejectedFraming->inc();
          ApiError e = makeError(fr.error.status, "Malformed HTTP request: " + std::string(fr.error.reason),
                                 "invalid_request_error", fr.error.status == 501 ? "not_implemented" : "bad_request");
          recordRequest("", "", fr.error.status, monoNow());
          co_await sendError(client, 11, false, e, {});
          co_await drain(client);
          break;
        }

        // ---- Beast parses the head from the buffer (no I/O)
        http::request_parser<http::string_body> parser;
        parser.header_limit(static_cast<std::uint32_t>(std::min<std::size_t>(cfg.maxHeaderBytes, UINT32_MAX)));
        parser.body_limit(cfg.maxBodyBytes);
        std::size_t used = parser.put(asio::buffer(buf.data().data(), headEnd), ec);
        buf.consume(used);
        if (!ec && !parser.is_header_done()) ec = http::error::partial_message;
        if (ec) {
          if (ec != http::error::body_limit && ec != http::error::header_limit) sh.rejectedFraming->inc();
          co_await readError(client, ec, true);
          break;
        }

        // ---- the body, held against --max-body-bytes-in-flight
        BodyBytes held(sh.bodyBytes);
        if (!parser.is_done()) {
          const auto len = parser.content_length();
          if (len && !held.holdUpTo(static_cast<int64_t>(*len), cap)) {
            co_await bodyBytesExceeded(client);
            break;
          }
          if (beast::iequals(parser.get()[http::field::expect], "100-continue")) {
            http::response<http::empty_body> cont{http::status::continue_, parser.get().version()};
            co_await http::async_write(client, cont, asio::redirect_error(use_awaitable, ec));
            if (ec) break;
          }
          bool over = false;
          parser.eager(true);
          // What is already buffered first (a small body usually came with its head),
          // then reads; a chunked body is held as it grows.
          if (buf.size() > 0) {
            used = parser.put(buf.data(), ec);
            buf.consume(used);
            if (ec == http::error::need_more) ec = {};
          }
          // The rest of the body within --client-idle-timeout (a timer update only when
          // there is a rest to read).
          if (!ec && !parser.is_done()) client.expires_after(cfg.clientIdleTimeout);
          while (!ec && !parser.is_done()) {
            if (!len && !held.holdUpTo(static_cast<int64_t>(parser.get().body().size()), cap)) {
              over = true;
              break;
            }
            co_await http::async_read_some(client, buf, parser, asio::redirect_error(use_awaitable, ec));
          }
          if (!over && !ec && !len && !held.holdUpTo(static_cast<int64_t>(parser.get().body().size()), cap)) over = true;
          if (over) {
            co_await bodyBytesExceeded(client);
            break;
          }
          if (ec) {
            co_await readError(client, ec);
            break;
          }
        }
        http::request<http::string_body> req = parser.release();
        const bool keep = co_await handle(client, req);
        // After a termination signal a connection ends with its response, even one whose
        // head said keep-alive before the signal came.
        if (!keep || sh.closing.load(std::memory_order_relaxed)) break;
      }
    } catch (const std::exception& e) {
      rlog().error("session failed", {{"error", e.what()}});
    }
    client.socket().shutdown(tcp::socket::shutdown_send, ec);
    client.socket().close(ec);
  }

  awaitable<void> bodyBytesExceeded(beast::tcp_stream& client) {
    sh.rejectedBodyBytes->inc();
    Headers h;
    h.add("Retry-After", "1");
    ApiError e = makeError(503, "The router is holding too many request bodies. Retry shortly.", "server_error",
                           "router_overloaded");
    recordRequest("", "", 503, monoNow());
    co_await sendError(client, 11, false, e, h);
    co_await drain(client);
  }

  // Answers a read or parse error (when there is anyone to answer) and leaves the
  // connection to be closed. `parsed`: the error came from parsing a complete head.
  awaitable<void> readError(beast::tcp_stream& client, beast::error_code ec, bool parsed = false) {
    if (ec == http::error::body_limit) {
      ApiError e = makeError(413, "The request body exceeds the limit of " + std::to_string(cfg.maxBodyBytes) + " bytes.",
                             "invalid_request_error", "request_too_large");
      recordRequest("", "", 413, monoNow());
      co_await sendError(client, 11, false, e, {});
      co_await drain(client);
    } else if (ec == http::error::header_limit) {
      ApiError e = makeError(431, "The request headers exceed the limit of " + std::to_string(cfg.maxHeaderBytes) + " bytes.",
                             "invalid_request_error", "headers_too_large");
      recordRequest("", "", 431, monoNow());
      co_await sendError(client, 11, false, e, {});
      co_await drain(client);
    } else if (parsed || (ec.category() == http::make_error_code(http::error::bad_method).category() &&
                          ec != http::error::end_of_stream && ec != http::error::partial_message)) {
      ApiError e = makeError(400, "Malformed HTTP request: " + ec.message() + ".", "invalid_request_error", "bad_request");
      recordRequest("", "", 400, monoNow());
      co_await sendError(client, 11, false, e, {});
      co_await drain(client);
    }
    co_return;
  }

  // Lingering close after an error answer: the client may still be sending the request
  // we refused; closing with unread bytes would reset the connection and could destroy
  // the answer in flight. Read and discard (bounded) until the client closes.
  awaitable<void> drain(beast::tcp_stream& client) {
    beast::error_code ec;
    client.socket().shutdown(tcp::socket::shutdown_send, ec);
    std::array<char, 4096> sink;
    std::size_t total = 0;
    client.expires_after(std::chrono::seconds(2));
    while (total < (4u << 20)) {
      std::size_t n = co_await client.async_read_some(asio::buffer(sink), asio::redirect_error(use_awaitable, ec));
      if (ec) break;
      total += n;
    }
  }

  awaitable<bool> sendResponse(beast::tcp_stream& client, unsigned version, bool keepAlive, unsigned status,
                               std::string_view contentType, std::string body, const Headers& extra) {
    http::response<http::string_body> res{static_cast<http::status>(status), version};
    res.set(http::field::server, "waterline-router");
    res.set(http::field::content_type, bsv(contentType));
    for (const auto& [k, v] : extra.items) res.set(k, v);
    res.body() = std::move(body);
    res.keep_alive(keepAlive);
    res.prepare_payload();
    beast::error_code ec;
    client.expires_after(cfg.streamIdleTimeout);
    co_await http::async_write(client, res, asio::redirect_error(use_awaitable, ec));
    co_return !ec && keepAlive;
  }

  awaitable<bool> sendError(beast::tcp_stream& client, unsigned version, bool keepAlive, const ApiError& e,
                            const Headers& extra) {
    co_return co_await sendResponse(client, version, keepAlive, static_cast<unsigned>(e.status), "application/json",
                                    e.body(), extra);
  }

  awaitable<bool> handle(beast::tcp_stream& client, http::request<http::string_body>& req) {
    const MonotonicTime t0 = monoNow();
    const unsigned ver = req.version();
    const bool keep = clientKeepAlive(req);
    Target t = classifyTarget(ssv(req.target()));
    if (t.kind == RouteKind::NotFound) {
      const auto target = ssv(req.target());
      ApiError e = makeError(404, "Invalid URL (" + quoteBounded(ssv(req.method_string()), 32) + " " +
                                      quoteBounded(target.substr(0, target.find('?'))) + ")");
      recordRequest("", "", 404, t0);
      co_return co_await sendError(client, ver, keep, e, {});
    }
    if (!t.proxied()) {
      if (req.method() != http::verb::get) {
        Headers h;
        h.add("Allow", "GET");
        ApiError e = makeError(405, "Method " + quoteBounded(ssv(req.method_string()), 32) + " is not allowed here; use GET.",
                               "invalid_request_error", "method_not_allowed");
        co_return co_await sendError(client, ver, keep, e, h);
      }
      co_return co_await serveLocal(client, req, t);
    }
    if (req.method() != http::verb::post) {
      Headers h;
      h.add("Allow", "POST");
      ApiError e = makeError(405, "Method " + quoteBounded(ssv(req.method_string()), 32) + " is not allowed here; use POST.",
                             "invalid_request_error", "method_not_allowed");
      recordRequest("", "", 405, t0);
      co_return co_await sendError(client, ver, keep, e, h);
    }
    // --max-inflight: the body is read whole, so the connection may stay open.
    if (sh.inflight.fetch_add(1, std::memory_order_relaxed) >= cfg.maxInflight) {
      sh.inflight.fetch_sub(1, std::memory_order_relaxed);
      sh.rejectedInflight->inc();
      Headers h;
      h.add("Retry-After", "1");
      ApiError e = makeError(503, "The router has too many requests in progress. Retry shortly.", "server_error",
                             "router_overloaded");
      recordRequest("", "", 503, t0);
      co_return co_await sendError(client, ver, keep, e, h);
    }
    InflightCount dec(sh.inflight, false);
    co_return co_await proxy(client, req, t, t0);
  }

  std::string modelsBody() {
    const auto created = std::chrono::duration_cast<std::chrono::seconds>(
                             sh.clock->systemTime().time_since_epoch()).count();
    if (auto r = currentRoutes()) return modelsListBody(r->table(), created);
    return modelsListBody(routing::RoutingTable{}, created);
  }

  awaitable<bool> serveLocal(beast::tcp_stream& client, http::request<http::string_body>& req, const Target& t) {
    const unsigned ver = req.version();
    const bool keep = clientKeepAlive(req);
    switch (t.kind) {
      case RouteKind::Healthz:
        co_return co_await sendResponse(client, ver, keep, 200, "text/plain; charset=utf-8", "ok\n", {});
      case RouteKind::Readyz: {
        // Not ready from the first termination signal on (drain.h), so that endpoints
        // controllers and load balancers stop sending during --shutdown-delay.
        const bool shuttingDown = sh.closing.load(std::memory_order_relaxed);
        const bool ready = !shuttingDown && currentRoutes() != nullptr;
        co_return co_await sendResponse(client, ver, keep, ready ? 200 : 503, "text/plain; charset=utf-8",
                                        ready ? "ok\n" : shuttingDown ? "shutting down\n" : "routing table not loaded\n", {});
      }
      case RouteKind::Metrics:
        if (!sh.cfg.metricsListen.empty())  // served on --metrics-listen, or nowhere ("0")
          co_return co_await sendResponse(client, ver, keep, 404, "text/plain; charset=utf-8", "not found\n", {});
        co_return co_await sendResponse(client, ver, keep, 200, metrics::kContentType, sh.registry.serialize(), {});
      case RouteKind::Models:
        co_return co_await sendResponse(client, ver, keep, 200, "application/json", modelsBody(), {});
      case RouteKind::DebugRoutes: {
        auto r = currentRoutes();
        std::string body = r ? r->table().toJson().dump(2) : std::string("{}");
        co_return co_await sendResponse(client, ver, keep, 200, "application/json", std::move(body), {});
      }
      default:
        break;
    }
    co_return false;
  }

  // ---- proxying --------------------------------------------------------------------

  // What forward() did: Retry (failed before any byte went to the client: `failure`),
  // Done (the response was relayed), Abort (relayed in part; close the client).
  struct Outcome {
    enum Kind { Done, Retry, Abort } kind = Retry;
    AttemptFailure failure = AttemptFailure::ConnectError;
    bool keepAlive = false;
    int status = 0;
    std::optional<routing::Usage> usage;
    bool sse = false;
    int64_t sseEvents = 0;
  };

  // Plain functions, not braced initialisations inside the coroutines (GCC 12 miscompiles
  // some of those; openai.h).
  static AttemptLimits attemptLimits(const RouterConfig& c) {
    AttemptLimits l;
    l.maxAttempts = c.maxAttempts;
    l.maxSpilloverHops = c.maxSpilloverHops;
    l.deadline = c.failoverDeadline;
    l.bestEffort = c.overload == OverloadPolicy::BestEffort;
    return l;
  }
  static ResponseSummary summaryOf(const Outcome& o) {
    ResponseSummary r;
    r.status = o.status;
    r.usage = o.usage;
    r.sse = o.sse;
    r.sseEvents = o.sseEvents;
    return r;
  }

  struct InflightCount {
    std::atomic<int64_t>& n;
    explicit InflightCount(std::atomic<int64_t>& r, bool add = true) : n(r) {
      if (add) n.fetch_add(1, std::memory_order_relaxed);
    }
    ~InflightCount() { n.fetch_sub(1, std::memory_order_relaxed); }
  };

  struct InflightGuard {
    int& n;
    explicit InflightGuard(int& r) : n(r) { ++n; }
    ~InflightGuard() { --n; }
  };

  awaitable<std::unique_ptr<beast::tcp_stream>> connect(const std::string& endpoint) {
    beast::error_code ec;
    auto it = resolved.find(endpoint);
    if (it == resolved.end()) {
      std::string host, port;
      if (!endpoint.empty() && endpoint.front() == '[') {
        auto close = endpoint.find(']');
        if (close == std::string::npos || close + 1 >= endpoint.size() || endpoint[close + 1] != ':') co_return nullptr;
        host = endpoint.substr(1, close - 1);
        port = endpoint.substr(close + 2);
      } else {
        auto colon = endpoint.rfind(':');
        if (colon == std::string::npos) co_return nullptr;
        host = endpoint.substr(0, colon);
        port = endpoint.substr(colon + 1);
      }
      std::vector<tcp::endpoint> eps;
      auto addr = asio::ip::make_address(host, ec);
      if (!ec) {
        unsigned long p = 0;
        try {
          p = std::stoul(port);
        } catch (...) {
          co_return nullptr;
        }
        if (p == 0 || p > 65535) co_return nullptr;
        eps.emplace_back(addr, static_cast<unsigned short>(p));
      } else {
        tcp::resolver resolver(io);
        auto results = co_await resolver.async_resolve(host, port, asio::redirect_error(use_awaitable, ec));
        if (ec) co_return nullptr;
        for (const auto& r : results) eps.push_back(r.endpoint());
        if (eps.empty()) co_return nullptr;
      }
      it = resolved.emplace(endpoint, std::move(eps)).first;
    }
    // A copy: a routing-table update may drop the cache entry while we wait.
    const std::vector<tcp::endpoint> targets = it->second;
    auto s = std::make_unique<beast::tcp_stream>(io);
    s->expires_after(cfg.connectTimeout);
    co_await s->async_connect(targets, asio::redirect_error(use_awaitable, ec));
    if (ec) co_return nullptr;
    s->socket().set_option(tcp::no_delay(true), ec);
    co_return s;
  }

  std::unique_ptr<beast::tcp_stream> takeIdle(const std::string& endpoint) {
    auto it = idle.find(endpoint);
    if (it == idle.end() || it->second.empty()) return nullptr;
    auto s = std::move(it->second.back());
    it->second.pop_back();
    return s;
  }

  void putIdle(const std::string& endpoint, std::unique_ptr<beast::tcp_stream> s) {
    auto& v = idle[endpoint];
    if (v.size() < cfg.maxIdlePerEndpoint) {
      s->expires_never();
      v.push_back(std::move(s));
    }
  }

  // What forward() keeps of a 200 answer for the response cache (spec.cache).
  struct CacheCapture {
    caching::Api api = caching::Api::Chat;
    std::optional<caching::SseAnswerCollector> sse;
    std::optional<caching::StoredAnswer> answer;
  };

  // A request of the router's own (the cache's embedding call): POST `body` to `path` on
  // `endpoint`, the whole response read into memory (at most 16 MiB). Failures before a
  // response are the planner's AttemptFailures, as for forward().
  struct Fetched {
    bool ok = false;
    AttemptFailure failure = AttemptFailure::ConnectError;
    int status = 0;
    std::string body;
  };
  awaitable<Fetched> fetch(const std::string& endpoint, std::string_view path, const std::string& body) {
    Fetched f;
    InflightGuard guard(upstreams.inflight(endpoint));
    beast::error_code ec;
    std::unique_ptr<beast::tcp_stream> up = takeIdle(endpoint);
    bool reused = up != nullptr;
    std::string head;
    head.reserve(256);
    static const http::fields kNoFields;
    wire::appendUpstreamRequestHead(head, path, kNoFields, endpoint, body.size());
    const std::array<asio::const_buffer, 2> upreq{asio::buffer(head), asio::buffer(body)};
    beast::flat_buffer upbuf;
    std::optional<http::response_parser<http::string_body>> p;
    for (int round = 0;; ++round) {
      if (!up) {
        up = co_await connect(endpoint);
        if (!up) {
          f.failure = AttemptFailure::ConnectError;
          co_return f;
        }
        reused = false;
      }
      up->expires_after(cfg.upstreamHeaderTimeout);
      co_await writeAll(*up, upreq, ec);
      if (ec) {
        up.reset();
        if (reused && round == 0) continue;
        f.failure = AttemptFailure::WriteError;
        co_return f;
      }
      p.emplace();
      p->body_limit(16u << 20);
      upbuf.clear();
      co_await http::async_read(*up, upbuf, *p, asio::redirect_error(use_awaitable, ec));
      if (ec) {
        const bool nothing = !p->got_some();
        up.reset();
        if (reused && round == 0 && nothing) continue;
        f.failure = p->is_header_done() ? AttemptFailure::BodyError : AttemptFailure::HeaderError;
        co_return f;
      }
      break;
    }
    f.status = static_cast<int>(p->get().result_int());
    if (f.status >= 500) {
      f.failure = AttemptFailure::Status5xx;
      co_return f;
    }
    f.ok = true;
    f.body = std::move(p->get().body());
    if (p->keep_alive()) putIdle(endpoint, std::move(up));
    co_return f;
  }

  // The prompt's embedding from the cache's embeddings deployment, sent through the
  // routing like any request (its reservations, quota, pools and failover apply).
  awaitable<std::optional<std::vector<float>>> embed(const DeploymentIndex& routes, const routing::DeploymentRoutes& d,
                                                     const CacheRequest& cq) {
    const MonotonicTime t0 = monoNow();
    const routing::DeploymentRoutes* e = routes.find({d.deployment.namespace_, cq.embeddingsDeployment});
    std::optional<std::vector<float>> result;
    if (e) {
      json b = {{"model", e->model}, {"input", cq.canon.promptText}, {"encoding_format", "float"}};
      const std::string body = b.dump(-1, ' ', false, json::error_handler_t::replace);
      routing::TokenEstimate est;
      est.promptTokens = static_cast<int64_t>(cq.canon.promptText.size() / 4 + 1);
      est.maxOutputTokens = 0;
      AttemptPlanner plan(routes, *e, est, body.size(), attemptLimits(cfg), sh.ledger, upstreams, t0);
      for (;;) {
        const Action a = plan.next(now());
        if (a.kind == Action::Kind::Spill) continue;
        if (a.kind == Action::Kind::Answer) break;
        Fetched f = co_await fetch(a.endpoint(), "/v1/embeddings", body);
        recordAttempt(a.deployment->deployment.str(), a.entry->pool, f.ok ? "ok" : "embedding_error");
        if (!f.ok) {
          plan.onFailure(f.failure, now());
          continue;
        }
        ResponseSummary sum;
        sum.status = f.status;
        if (f.status < 400) sum.usage = routing::findUsage(f.body);
        plan.onResponse(sum, now());
        if (f.status == 200) result = parseEmbedding(f.body);
        break;
      }
    }
    sh.cache.recordEmbedding(cq, std::chrono::duration<double>(monoNow() - t0).count(), result.has_value());
    co_return result;
  }

  // A cache hit: the stored answer in the shape the request asked for (JSON or SSE),
  // with a fresh id and created time. No reservation or quota is charged.
  awaitable<bool> sendCached(beast::tcp_stream& client, const http::request<http::string_body>& req,
                             const CacheRequest& cq, const caching::CacheHit& hit, MonotonicTime t0) {
    const auto created =
        std::chrono::duration_cast<std::chrono::seconds>(sh.clock->systemTime().time_since_epoch()).count();
    const std::string id =
        RouterCache::newId(cq.api, [this] { return std::uniform_real_distribution<double>(0.0, 1.0)(rng); });
    RouterCache::Rendered r = RouterCache::render(*hit.answer, cq, id, created);
    Headers h;
    h.add("x-waterline-deployment", cq.deployment);
    h.add("x-waterline-cache", "hit");
    char score[32];
    std::snprintf(score, sizeof score, "%.4f", hit.similarity);
    h.add("x-waterline-cache-similarity", score);
    h.add("server-timing", cq.serverTiming());
    sh.cache.recordLookup(cq, "hit");
    sh.cache.recordHit(cq, hit);
    recordRequest(cq.deployment, "", 200, t0);
    co_return co_await sendResponse(client, req.version(), clientKeepAlive(req), 200, r.contentType, std::move(r.body),
                                    h);
  }

  awaitable<Outcome> forward(beast::tcp_stream& client, const http::request<http::string_body>& req, const Target& t,
                             const routing::DeploymentRoutes& d, const routing::RoutingEntry& entry,
                             const std::string& endpoint, const std::string& body, const HeaderList& extra,
                             CacheCapture* capture = nullptr) {
    Outcome out;
    const std::string dep = d.deployment.str();
    InflightGuard guard(upstreams.inflight(endpoint));
    beast::error_code ec;
    std::unique_ptr<beast::tcp_stream> up = takeIdle(endpoint);
    bool reused = up != nullptr;

    // The request as bytes (wire.h): head and body go out in one gathered write.
    std::string upHead;
    upHead.reserve(512);
    wire::appendUpstreamRequestHead(upHead, t.upstreamPath(), req.base(), endpoint, body.size());
    const std::array<asio::const_buffer, 2> upreq{asio::buffer(upHead), asio::buffer(body)};

    beast::flat_buffer upbuf;
    std::optional<http::response_parser<http::buffer_body>> p;
    for (int round = 0;; ++round) {
      if (!up) {
        up = co_await connect(endpoint);
        if (!up) {
          recordAttempt(dep, entry.pool, "connect_error");
          out.failure = AttemptFailure::ConnectError;  // the planner ejects the endpoint
          co_return out;
        }
        reused = false;
      }
      up->expires_after(cfg.upstreamHeaderTimeout);
      co_await writeAll(*up, upreq, ec);
      if (ec) {
        up.reset();
        if (reused && round == 0) continue;  // a pooled connection the upstream had closed
        recordAttempt(dep, entry.pool, "write_error");
        out.failure = AttemptFailure::WriteError;
        co_return out;
      }
      p.emplace();
      p->body_limit(std::numeric_limits<std::uint64_t>::max());  // not boost::none: Beast 1.74 compares the content length with the optional and fails
      upbuf.clear();
      co_await http::async_read_header(*up, upbuf, *p, asio::redirect_error(use_awaitable, ec));
      if (ec) {
        const bool nothing = !p->got_some();
        up.reset();
        if (reused && round == 0 && nothing) continue;
        recordAttempt(dep, entry.pool, "header_error");
        out.failure = AttemptFailure::HeaderError;
        co_return out;
      }
      break;
    }
    auto& uh = p->get();
    const int status = static_cast<int>(uh.result_int());
    if (status >= 500) {
      up.reset();
      recordAttempt(dep, entry.pool, "status_5xx");
      out.failure = AttemptFailure::Status5xx;
      co_return out;
    }

    // Commit: from here on the client sees this response.
    bool clientKeep = clientKeepAlive(req);
    out.status = status;
    const std::string_view ctype = ssv(uh[http::field::content_type]);
    out.sse = ctype.substr(0, 17) == "text/event-stream";
    Headers set;
    set.items.reserve(2 + extra.size());
    set.add("x-waterline-deployment", dep);
    set.add("x-waterline-pool", entry.pool);
    for (const auto& kv : extra) set.items.push_back(kv);

    // A complete, bounded, non-streaming body (the usual JSON completion): read it all
    // first and answer with one write (head and body in one sendmsg; the head as bytes,
    // wire.h). A failure while reading it is still before any byte went to the client, so
    // it fails over.
    if (auto len = p->content_length(); len && !out.sse && *len <= kBufferedBodyLimit) {
      out.keepAlive = clientKeep;
      std::string full(static_cast<std::size_t>(*len), '\0');
      std::size_t got = 0;
      while (!p->is_done()) {
        p->get().body().data = full.data() + got;
        p->get().body().size = full.size() - got;
        up->expires_after(cfg.streamIdleTimeout);
        co_await http::async_read_some(*up, upbuf, *p, asio::redirect_error(use_awaitable, ec));
        if (ec == http::error::need_buffer) ec = {};
        if (ec) {
          recordAttempt(dep, entry.pool, "body_error");
          out.kind = Outcome::Retry;
          out.failure = AttemptFailure::BodyError;
          co_return out;
        }
        got = full.size() - p->get().body().size;
      }
      full.resize(got);
      std::string head;
      head.reserve(512);
      wire::appendResponseHead(head, req.version(), static_cast<unsigned>(status), ssv(uh.reason()), uh, set.items,
                               full.size(), clientKeep);
      const std::array<asio::const_buffer, 2> whole{asio::buffer(head), asio::buffer(full)};
      client.expires_after(cfg.streamIdleTimeout);
      co_await writeAll(client, whole, ec);
      recordAttempt(dep, entry.pool, "ok");
      if (status < 400 && !full.empty()) out.usage = routing::findUsage(full);
      if (capture && status == 200 && !ec) capture->answer = caching::answerFromJson(full, capture->api);
      if (p->keep_alive()) putIdle(endpoint, std::move(up));
      out.kind = ec ? Outcome::Abort : Outcome::Done;
      co_return out;
    }

    // Streaming (SSE, chunked, or too large to buffer): Beast writes it as it comes.
    http::response<http::buffer_body> res;
    res.version(req.version());
    res.result(static_cast<unsigned>(status));
    res.reason(uh.reason());
    wire::forEachResponseField(uh, set.items, [&](auto name, auto value) { res.insert(name, value); });
    if (auto len = p->content_length()) {
      res.content_length(*len);
    } else if (!p->is_done()) {
      if (req.version() >= 11) res.chunked(true);
      else clientKeep = false;
    }
    res.keep_alive(clientKeep);
    out.keepAlive = clientKeep;
    routing::SseUsageScanner scanner;
    std::string jsonBody;
    bool jsonOverflow = false;
    // On the heap, only here: a 16 KiB array in the coroutine frame made every forward()
    // frame a large allocation.
    constexpr std::size_t kChunk = 16384;
    const auto chunk = std::make_unique_for_overwrite<char[]>(kChunk);
    if (capture && status == 200 && out.sse) capture->sse.emplace(capture->api);
    http::response_serializer<http::buffer_body> sr{res};
    client.expires_after(cfg.streamIdleTimeout);
    co_await http::async_write_header(client, sr, asio::redirect_error(use_awaitable, ec));
    if (ec) {
      out.kind = Outcome::Abort;
      recordAttempt(dep, entry.pool, "ok");
      co_return out;
    }
    while (!p->is_done()) {
      p->get().body().data = chunk.get();
      p->get().body().size = kChunk;
      up->expires_after(cfg.streamIdleTimeout);
      co_await http::async_read_some(*up, upbuf, *p, asio::redirect_error(use_awaitable, ec));
      if (ec == http::error::need_buffer) ec = {};
      if (ec) {
        recordAttempt(dep, entry.pool, "body_error");
        out.kind = Outcome::Abort;
        out.sseEvents = scanner.events();
        out.usage = scanner.usage();
        co_return out;
      }
      const std::size_t n = kChunk - p->get().body().size;
      if (n == 0) continue;
      const std::string_view bytes(chunk.get(), n);
      if (out.sse) {
        scanner.feed(bytes);
        if (capture && capture->sse) capture->sse->feed(bytes);
      } else if (!jsonOverflow) {
        if (jsonBody.size() + n > (1u << 20)) {
          jsonOverflow = true;
          jsonBody.clear();
        } else {
          jsonBody.append(bytes);
        }
      }
      res.body().data = chunk.get();
      res.body().size = n;
      res.body().more = true;
      client.expires_after(cfg.streamIdleTimeout);
      co_await http::async_write(client, sr, asio::redirect_error(use_awaitable, ec));
      if (ec == http::error::need_buffer) ec = {};
      if (ec) {
        recordAttempt(dep, entry.pool, "ok");
        out.kind = Outcome::Abort;
        out.sseEvents = scanner.events();
        out.usage = scanner.usage();
        co_return out;
      }
    }
    res.body().data = nullptr;
    res.body().size = 0;
    res.body().more = false;
    co_await http::async_write(client, sr, asio::redirect_error(use_awaitable, ec));
    if (ec == http::error::need_buffer) ec = {};
    recordAttempt(dep, entry.pool, "ok");
    if (out.sse) {
      out.usage = scanner.usage();
      out.sseEvents = scanner.events();
    } else if (!jsonBody.empty()) {
      out.usage = routing::findUsage(jsonBody);
    }
    if (capture && status == 200 && !ec) {
      if (capture->sse) capture->answer = capture->sse->finish();
      else if (!out.sse && !jsonOverflow && !jsonBody.empty()) capture->answer = caching::answerFromJson(jsonBody, capture->api);
    }
    if (p->keep_alive()) putIdle(endpoint, std::move(up));
    out.kind = ec ? Outcome::Abort : Outcome::Done;
    co_return out;
  }

  awaitable<bool> proxy(beast::tcp_stream& client, http::request<http::string_body>& req, const Target& t,
                        MonotonicTime t0) {
    const unsigned ver = req.version();
    const bool keep = clientKeepAlive(req);
    const bool openaiPath = t.modelInBody();
    auto parsed = parseRequestBody(req.body(), t.apiKind(), openaiPath, cfg.maxJsonDepth);
    if (!parsed) {
      recordRequest("", "", parsed.error().status, t0);
      co_return co_await sendError(client, ver, keep, parsed.error(), {});
    }
    json& body = *parsed;
    auto routesNow = currentRoutes();
    if (!routesNow) {
      ApiError e = makeError(503, "The router has no routing table yet.", "server_error", "routes_unavailable");
      recordRequest("", "", 503, t0);
      co_return co_await sendError(client, ver, keep, e, {});
    }
    std::string requested;
    if (openaiPath) requested = body["model"].get<std::string>();
    else requested = t.deployment;
    const routing::DeploymentRoutes* cur = routesNow->resolve(requested);
    if (!cur) {
      ApiError e;
      e.status = 404;
      if (openaiPath) {
        e.message = "The model `" + quoteBounded(requested) + "` does not exist or you do not have access to it.";
        e.code = "model_not_found";
        e.param = "model";
      } else {
        e.message = "The API deployment `" + quoteBounded(requested) + "` does not exist.";
        e.code = "DeploymentNotFound";
      }
      recordRequest("", "", 404, t0);
      co_return co_await sendError(client, ver, keep, e, {});
    }
    const std::string requestedDep = cur->deployment.str();

    // The response cache (spec.cache, cache_layer.h): an exact hit, else (Semantic) the
    // prompt's embedding and a similarity hit, answers without an upstream.
    CacheRequest cq;
    std::optional<std::vector<float>> embedding;
    if (cur->cache) {
      std::optional<caching::Api> capi;
      if (t.apiKind() == routing::ApiKind::ChatCompletions) capi = caching::Api::Chat;
      else if (t.apiKind() == routing::ApiKind::Completions) capi = caching::Api::Completions;
      if (capi)
        cq = sh.cache.plan(*cur, body, *capi, [&req](std::string_view name) {
          return std::string(ssv(req[bsv(name)]));
        });
      if (cq.state == CacheRequest::State::Lookup) {
        auto ms = [](MonotonicTime::duration d) { return std::chrono::duration<double, std::milli>(d).count(); };
        const MonotonicTime l0 = monoNow();
        std::optional<caching::CacheHit> hit = sh.cache.lookupExact(cq, l0);
        if (!hit && cq.semantic) {
          const MonotonicTime e0 = monoNow();
          embedding = co_await embed(*routesNow, *cur, cq);
          const MonotonicTime e1 = monoNow();
          cq.embeddingMs = ms(e1 - e0);
          if (embedding) hit = sh.cache.lookupSemantic(cq, *embedding, e1);
        }
        cq.lookupMs = ms(monoNow() - l0) - std::max(0.0, cq.embeddingMs);
        if (hit) co_return co_await sendCached(client, req, cq, *hit, t0);
        sh.cache.recordLookup(cq, "miss");
      } else if (cq.state == CacheRequest::State::Bypass) {
        sh.cache.recordLookup(cq, "bypass");
      }
    }
    std::optional<CacheCapture> capture;
    HeaderList withCache;

    const auto est = routing::estimateTokens(body, t.apiKind(), cfg.estimator);
    const std::string originalModel = body.contains("model") && body["model"].is_string() ? body["model"].get<std::string>() : "";

    // The attempt planner (attempts.h) decides; this loop does the I/O.
    AttemptPlanner plan(*routesNow, *cur, est, req.body().size(), attemptLimits(cfg), sh.ledger, upstreams, t0);
    // The body as the tried deployment's workers expect it (their model name).
    const routing::DeploymentRoutes* bodyFor = nullptr;
    const std::string* bodyText = &req.body();
    std::string rewritten;
    for (;;) {
      const Action a = plan.next(now());
      if (a.kind == Action::Kind::Spill) {
        recordSpill(a.deployment->deployment.str(), a.reason);
        continue;
      }
      if (a.kind == Action::Kind::Answer) break;
      if (a.deployment != bodyFor) {
        bodyFor = a.deployment;
        bodyText = &req.body();
        if (originalModel != a.deployment->model) {
          body["model"] = a.deployment->model;
          rewritten = body.dump(-1, ' ', false, json::error_handler_t::replace);
          bodyText = &rewritten;
        }
      }
      const HeaderList* extra = a.headers;
      CacheCapture* cap = nullptr;
      if (cq.state != CacheRequest::State::Off) {
        // x-waterline-cache on what is relayed; the answer kept only when it came from
        // the requested deployment (a spillover target may serve another model).
        withCache = *a.headers;
        withCache.emplace_back("x-waterline-cache", cq.header());
        if (std::string st = cq.serverTiming(); !st.empty()) withCache.emplace_back("server-timing", std::move(st));
        extra = &withCache;
        if (cq.store && a.deployment == cur) {
          capture.emplace();
          capture->api = cq.api;
          cap = &*capture;
        }
      }
      Outcome o = co_await forward(client, req, t, *a.deployment, *a.entry, a.endpoint(), *bodyText, *extra, cap);
      if (o.kind == Outcome::Retry) {
        plan.onFailure(o.failure, now());
        continue;
      }
      const Settlement settled = plan.onResponse(summaryOf(o), now());
      if (settled.usageClamped) sh.usageClamped->inc();
      if (cap && o.kind == Outcome::Done && cap->answer) {
        std::optional<std::span<const float>> emb;
        if (embedding) emb = std::span<const float>(*embedding);
        sh.cache.store(cq, emb, std::move(*cap->answer), monoNow());
      }
      recordRequest(a.deployment->deployment.str(), a.entry->pool, o.status, t0);
      if (o.kind == Outcome::Abort) co_return false;
      co_return o.keepAlive;
    }
    const Answer& answer = plan.answer();
    recordRequest(requestedDep, "", answer.error.status, t0);
    Headers answerHeaders;
    answerHeaders.items = answer.headers;
    co_return co_await sendError(client, ver, keep, answer.error, answerHeaders);
  }
};

// ---------------------------------------------------------------------------------

void RouterServer::Impl::accept() {
  if (!acceptor || !acceptor->is_open()) return;
  Worker& w = *workers[nextWorker.fetch_add(1, std::memory_order_relaxed) % workers.size()];
  acceptor->async_accept(w.io, [this, &w](beast::error_code ec, tcp::socket s) {
    if (!ec) {
      if (connections.fetch_add(1, std::memory_order_relaxed) >= cfg.maxConnections) {
        // Over --max-connections: answer 503 if the socket takes it now, and close.
        connections.fetch_sub(1, std::memory_order_relaxed);
        rejectedConnections->inc();
        beast::error_code wec;
        s.non_blocking(true, wec);
        const auto& r = tooManyConnectionsResponse();
        s.write_some(asio::buffer(r), wec);
        s.shutdown(tcp::socket::shutdown_send, wec);
        s.close(wec);
      } else {
        w.spawn(std::move(s));  // session() gives the count back
      }
    } else if (ec == asio::error::operation_aborted || !acceptor || !acceptor->is_open()) {
      return;
    } else {
      // e.g. EMFILE: back off briefly instead of spinning.
      acceptRetry->expires_after(std::chrono::milliseconds(50));
      acceptRetry->async_wait([this](beast::error_code e) {
        if (!e) accept();
      });
      return;
    }
    accept();
  });
}

// Closes the acceptor on its thread (the first worker's) and waits for that, at most 5 s
// (a worker stuck in a handler must not hold up shutdown). The promise is shared: a
// closing that runs after the wait gave up still has it. Callers hold lifecycleMu.
void RouterServer::Impl::closeAcceptor() {
  auto closed = std::make_shared<std::promise<void>>();
  auto fut = closed->get_future();
  asio::post(workers.front()->io, [this, closed] {
    beast::error_code ec;
    if (acceptor) acceptor->close(ec);
    if (acceptRetry) acceptRetry->cancel();
    closed->set_value();
  });
  fut.wait_for(std::chrono::seconds(5));
}

void RouterServer::Impl::stopAccepting() {
  notAccepting.store(true, std::memory_order_relaxed);
  std::lock_guard lk(lifecycleMu);
  if (!started || stopped || workers.empty()) return;
  // The acceptor lives on the first worker's thread: closed there (new connections are
  // refused from then on), then each worker closes its idle connections on its own.
  closeAcceptor();
  for (auto& w : workers) asio::post(w->io, [wp = w.get()] { wp->closeIdleSessions(); });
}

void RouterServer::Impl::stopAll() {
  std::lock_guard lk(lifecycleMu);
  if (!started || stopped) return;
  stopped = true;
  if (!workers.empty()) closeAcceptor();
  for (auto& w : workers) w->io.stop();
  for (auto& w : workers)
    if (w->thread.joinable()) w->thread.join();
  if (metricsListener) metricsListener->stop();
  acceptRetry.reset();
  acceptor.reset();
  workers.clear();
}

RouterServer::RouterServer(RouterConfig cfg, TimeSourcePtr clock)
    : impl_(std::make_unique<Impl>(std::move(cfg), std::move(clock))) {}

RouterServer::~RouterServer() { stop(); }

std::expected<void, std::string> RouterServer::start() {
  auto& im = *impl_;
  std::lock_guard lk(im.lifecycleMu);
  if (im.started) return std::unexpected("already started");
  int n = im.cfg.threads > 0 ? im.cfg.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  std::uint64_t seed = im.cfg.seed ? im.cfg.seed : std::random_device{}();
  for (int i = 0; i < n; ++i) im.workers.push_back(std::make_unique<Worker>(im, seed + static_cast<std::uint64_t>(i) * 0x9E3779B97F4A7C15ull));
  try {
    beast::error_code ec;
    auto addr = asio::ip::make_address(im.cfg.listenAddress, ec);
    if (ec) {
      im.workers.clear();
      return std::unexpected("invalid listen address \"" + im.cfg.listenAddress + "\"");
    }
    tcp::endpoint ep(addr, static_cast<unsigned short>(im.cfg.port));
    im.acceptor = std::make_unique<tcp::acceptor>(im.workers.front()->io);
    im.acceptor->open(ep.protocol(), ec);
    if (!ec) im.acceptor->set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) im.acceptor->bind(ep, ec);
    if (!ec) im.acceptor->listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      std::string msg = "cannot listen on " + im.cfg.listenAddress + ":" + std::to_string(im.cfg.port) + ": " + ec.message();
      im.acceptor.reset();
      im.workers.clear();
      return std::unexpected(msg);
    }
    im.boundPort = im.acceptor->local_endpoint().port();
    if (!im.cfg.metricsListen.empty() && im.cfg.metricsListen != "0") {
      // ADDR:PORT, [v6]:PORT or :PORT (checked by --metrics-listen's parser).
      const auto colon = im.cfg.metricsListen.rfind(':');
      std::string a = colon == std::string::npos ? "" : im.cfg.metricsListen.substr(0, colon);
      if (a.size() >= 2 && a.front() == '[' && a.back() == ']') a = a.substr(1, a.size() - 2);
      int p = -1;
      try {
        p = colon == std::string::npos ? -1 : std::stoi(im.cfg.metricsListen.substr(colon + 1));
      } catch (const std::exception&) {
      }
      std::string err;
      if (p < 0 || p > 65535) {
        err = "invalid metrics listen address \"" + im.cfg.metricsListen + "\"";
      } else {
        im.metricsListener = std::make_unique<MetricsListener>(im.registry);
        if (auto r = im.metricsListener->start(a.empty() ? "0.0.0.0" : a, p); !r) err = r.error();
      }
      if (!err.empty()) {
        im.metricsListener.reset();
        im.acceptor.reset();
        im.workers.clear();
        return std::unexpected(err);
      }
    }
    im.acceptRetry = std::make_unique<asio::steady_timer>(im.workers.front()->io);
  } catch (const std::exception& e) {
    im.acceptor.reset();
    im.workers.clear();
    return std::unexpected(std::string("cannot listen: ") + e.what());
  }
  im.started = true;
  im.accept();
  for (auto& w : im.workers) {
    Worker* wp = w.get();
    const Duration busyPoll = im.cfg.busyPoll;
    wp->thread = std::thread([wp, busyPoll] {
      auto guard = asio::make_work_guard(wp->io);
      for (;;) {
        try {
          if (busyPoll <= Duration::zero()) {
            wp->io.run();
          } else {
            // Poll without sleeping while events keep coming (and for busyPoll after the
            // last one), then block for the next one. Real time on purpose: this paces the
            // thread against the kernel's events, not the router's (injectable) clock.
            auto lastWork = steady::now();
            while (!wp->io.stopped()) {
              if (wp->io.poll() > 0) {
                lastWork = steady::now();
              } else if (steady::now() - lastWork > busyPoll) {
                if (wp->io.run_one() > 0) lastWork = steady::now();
              }
            }
          }
          break;
        } catch (const std::exception& e) {
          rlog().error("io thread error", {{"error", e.what()}});
        }
      }
    });
  }
  rlog().info("router listening", {{"address", im.cfg.listenAddress}, {"port", im.boundPort.load()}, {"threads", n}});
  if (im.metricsListener) rlog().info("serving /metrics", {{"address", im.cfg.metricsListen}, {"port", im.metricsListener->port()}});
  return {};
}

void RouterServer::stop() { impl_->stopAll(); }

DrainPhase RouterServer::onSignal(int signo) {
  auto& im = *impl_;
  DrainPhase p;
  {
    std::lock_guard lk(im.drainMu);
    p = im.drain.onSignal(im.clock->monotonicTime(), signo);
    im.closing.store(true, std::memory_order_relaxed);
    im.drainKick = true;
  }
  im.drainCv.notify_all();
  return p;
}

DrainPhase RouterServer::drain() {
  auto& im = *impl_;
  std::unique_lock lk(im.drainMu);
  bool listenerClosed = false;
  for (;;) {
    const DrainPhase p = im.drain.update(im.clock->monotonicTime(), im.connections.load(std::memory_order_relaxed));
    if (p == DrainPhase::Serving) {
      im.drainCv.wait(lk, [&im] { return im.drainKick; });
      im.drainKick = false;
      continue;
    }
    if (!im.drain.accepting() && !listenerClosed && p != DrainPhase::Abort) {
      // The delay is over: close the listener and the idle connections, then count again.
      listenerClosed = true;
      lk.unlock();
      im.stopAccepting();
      rlog().info("shutdown delay over: listener closed, draining",
                  {{"connections", im.connections.load(std::memory_order_relaxed)},
                   {"inflight", im.inflight.load(std::memory_order_relaxed)},
                   {"grace_left", std::chrono::duration_cast<std::chrono::milliseconds>(
                                      im.drain.deadline() - im.clock->monotonicTime())}});
      lk.lock();
      continue;
    }
    switch (p) {
      case DrainPhase::Drained:
        rlog().info("drained: no client connection left");
        return p;
      case DrainPhase::Cut: {
        const auto open = im.connections.load(std::memory_order_relaxed);
        const auto inflight = im.inflight.load(std::memory_order_relaxed);
        im.shutdownCut->inc(static_cast<double>(std::max<int64_t>(open, 0)));
        rlog().warn("shutdown grace over: cutting the connections still open",
                    {{"connections", open}, {"inflight", inflight}, {"grace", im.cfg.shutdownGrace}});
        lk.unlock();
        im.stopAll();  // closes every connection and joins the threads
        return p;
      }
      case DrainPhase::Abort:
        return p;
      default:
        break;
    }
    const MonotonicTime wake = *im.drain.wakeAt();
    im.clock->waitUntil(lk, im.drainCv, wake, [&im] { return im.drainKick; });
    im.drainKick = false;
  }
}

int RouterServer::drainExitCode() const {
  std::lock_guard lk(impl_->drainMu);
  return impl_->drain.exitCode();
}

int RouterServer::port() const { return impl_->boundPort.load(); }
int RouterServer::metricsPort() const {
  const auto& l = impl_->cfg.metricsListen;
  if (l == "0") return 0;
  if (l.empty()) return port();
  return impl_->metricsListener ? impl_->metricsListener->port() : 0;
}

void RouterServer::setRoutes(routing::RoutingTable t) {
  auto& im = *impl_;
  im.admission.sync(t, im.clock->monotonicTime());
  im.cache.sync(t);
  auto idx = std::make_shared<const DeploymentIndex>(std::move(t));
  {
    std::lock_guard lk(im.routesMu);
    im.routes = std::move(idx);
    im.routesGen.fetch_add(1, std::memory_order_acq_rel);
  }
  im.routeUpdates->get().inc();
}

std::shared_ptr<const DeploymentIndex> RouterServer::routes() const {
  std::lock_guard lk(impl_->routesMu);
  return impl_->routes;
}

bool RouterServer::hasRoutes() const { return routes() != nullptr; }

void RouterServer::setReplicaCount(int n) {
  n = std::max(1, n);
  // AdmissionController::setShare is thread-safe: it re-splits every limiter under its
  // lock while requests keep being admitted (usage is kept).
  impl_->admission.setShare(1.0 / n, impl_->clock->monotonicTime());
  impl_->replicaCount.store(n);
}

int RouterServer::replicaCount() const { return impl_->replicaCount.load(); }

metrics::Registry& RouterServer::registry() { return impl_->registry; }
routing::AdmissionController& RouterServer::admission() { return impl_->admission; }
const RouterConfig& RouterServer::config() const { return impl_->cfg; }

}  // namespace waterline::router
