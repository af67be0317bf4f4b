#pragma once
// waterline-router configuration. Its command-line flags: router/flags.h (docs/flags.md).
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>

#include "waterline/common/log.h"
#include "waterline/common/time.h"
#include "waterline/routing/admission.h"
#include "waterline/routing/selection.h"
#include "waterline/routing/tokens.h"

namespace waterline::router {

// What to do when every allowed pool is at or above its maxUtilization and the
// deployment has no spillover: Reject answers 429 (capacity_exceeded, Retry-After 1);
// BestEffort sends the request to the least utilised of those pools anyway.
enum class OverloadPolicy { Reject, BestEffort };

// Lease-based membership (router/membership.h, docs/routing.md): N, the number of router
// replicas sharing each PTU reservation, is counted from the group's Leases instead of
// the static --replicas. Off while `group` is empty.
struct MembershipConfig {
  std::string group;       // --membership-group: routers that share reservations
  std::string ns;          // --membership-namespace ("": the kubeconfig's / pod's namespace, else "default")
  std::string kubeconfig;  // --membership-kubeconfig ("": $KUBECONFIG, in-cluster, ~/.kube/config)
  std::string identity;    // --identity ("": the hostname, i.e. the pod name)
  Duration leaseDuration = std::chrono::seconds(15);  // whole seconds; renewed every third
  Duration clockSkew = std::chrono::seconds(1);       // --membership-clock-skew
  bool enabled() const { return !group.empty(); }
};

struct RouterConfig {
  std::string listenAddress = "0.0.0.0";
  int port = 8080;  // 0: any free port (see RouterServer::port())
  // --metrics-listen: "" serves /metrics on the data port; "0" nowhere; else ADDR:PORT of
  // a listener that serves only /metrics (the data port then answers it 404).
  std::string metricsListen;
  int threads = 0;  // io_context threads; 0: one per core
  // After the last event, an io thread keeps polling (non-blocking) this long before it
  // sleeps in epoll_wait: trades idle CPU for wake-up latency (0: off).
  Duration busyPoll = Duration::zero();

  std::string routesFile;  // JSON RoutingTableList, reloaded when it changes
  std::string routesUrl;   // http://host:port/v1/routes, polled with If-None-Match
  Duration routesPollInterval = std::chrono::seconds(1);
  // --routes-url: how long the operator may hold a poll until the table changes (0: off).
  Duration routesLongPoll = std::chrono::seconds(30);

  std::size_t maxBodyBytes = 4 << 20;    // request bodies above: 413
  std::size_t maxHeaderBytes = 64 << 10; // request headers above: 431
  int maxJsonDepth = 64;                 // deeper request JSON: 400

  // Limits against resource exhaustion (docs/operations.md, "Limits").
  int maxConnections = 8192;      // open client connections; above: 503 and close
  int maxInflight = 4096;         // requests being proxied; above: 503 + Retry-After: 1
  Duration headerTimeout = std::chrono::seconds(10);  // first byte of a request -> end of its head
  std::size_t maxBodyBytesInFlight = 64 << 20;        // request-body bytes held, all connections; above: 503 and close

  Duration connectTimeout = std::chrono::seconds(2);
  Duration upstreamHeaderTimeout = std::chrono::seconds(300);  // until the response header
  Duration streamIdleTimeout = std::chrono::seconds(300);      // between body reads
  Duration clientIdleTimeout = std::chrono::seconds(120);      // keep-alive idle / request read
  Duration ejectAfterConnectFailure = std::chrono::seconds(2); // skip a refusing endpoint
  int maxAttempts = 4;                      // upstream attempts per request (failover)
  // No attempt but a request's first, and no failover to its spillover deployment,
  // starts once this long has passed since it arrived; then 503 (zero: no limit).
  Duration failoverDeadline = Duration::zero();
  std::size_t maxIdlePerEndpoint = 256;     // pooled keep-alive connections, per thread
  int maxSpilloverHops = 3;

  routing::SelectionOptions selection;
  routing::LimiterMode limiterMode = routing::LimiterMode::SlidingWindow;
  // Router replicas sharing each reservation (each gets 1/replicas). With membership on:
  // N until the first successful count.
  int replicas = 1;
  MembershipConfig membership;
  // Demand-aware PTU shares (router/ptu_share_exchange.h, docs/routing.md "PTU shares
  // between router replicas"): "redis://HOST:PORT" of the store the replicas exchange
  // their usage through; "" keeps the static 1/N split.
  std::string ptuShareStore;
  Duration ptuShareInterval = std::chrono::seconds(1);  // --ptu-share-interval
  double ptuShareOvercommit = 0;  // --ptu-share-overcommit (routing::ShareParams::spareOvercommit)
  routing::EstimatorOptions estimator;
  OverloadPolicy overload = OverloadPolicy::Reject;
  std::uint64_t seed = 0;  // 0: random

  // Graceful shutdown (router/drain.h, docs/routing.md "Shutdown"): after SIGTERM/SIGINT
  // /readyz answers 503 and new connections are still accepted for shutdownDelay; then
  // the listener closes and what is in flight may finish until shutdownGrace has passed
  // since the signal (grace >= delay).
  Duration shutdownDelay = std::chrono::seconds(5);
  Duration shutdownGrace = std::chrono::seconds(30);

  log::Level logLevel = log::Level::Info;
  log::Format logFormat = log::Format::Text;
};

}  // namespace waterline::router
