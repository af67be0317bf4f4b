#pragma once
// The waterline-router server: Boost.Beast/Asio, one single-threaded io_context per
// thread (one thread per core), keep-alive upstream connection pools per thread.
//
// Per request (docs/routing.md has the full rules):
//   1. classify the target; read and validate the JSON body (4xx in OpenAI's error shape);
//   2. resolve the deployment (body "model", or the Azure path's deployment name);
//   3. PTU admission: charge the estimated tokens to the deployment's reservations;
//      past them spill over to spec.spillover, else 429 with Retry-After and
//      x-ratelimit-remaining-{tokens,requests};
//   4. choose pools (routing/selection.h) and a replica in the primary; on connect
//      error, upstream 5xx or a broken response header (before any byte went to the
//      client) fail over to the next pool, then to the spillover deployment; 503 when
//      nothing is left;
//   5. relay the response unchanged (SSE streamed chunk by chunk), then settle the
//      reservation with the response's usage.
// Everything the router serves is on one port: the proxied endpoints, /v1/models,
// /metrics, /healthz, /readyz and /debug/routes.
#include <expected>
#include <memory>
#include <string>

#include "waterline/common/metrics.h"
#include "waterline/common/time.h"
#include "waterline/router/config.h"
#include "waterline/router/drain.h"
#include "waterline/router/openai.h"
#include "waterline/routing/admission.h"
#include "waterline/routing/table.h"

namespace waterline::router {

struct Worker;

class RouterServer {
 public:
  // clock: for heartbeat freshness and PTU windows (default: the real clock).
  explicit RouterServer(RouterConfig cfg, TimeSourcePtr clock = nullptr);
  ~RouterServer();
  RouterServer(const RouterServer&) = delete;
  RouterServer& operator=(const RouterServer&) = delete;

  // Binds the listener and starts the threads. Fails (without throwing) when the
  // address cannot be bound.
  std::expected<void, std::string> start();
  // Stops accepting, closes connections and joins the threads. Idempotent.
  void stop();

  // Graceful shutdown (router/drain.h; docs/routing.md, "Shutdown"), on the router's clock.
  // A termination signal, from any thread: the first starts the drain (/readyz answers
  // 503 and every response closes its connection from now on); a later one answers
  // Abort, and the caller exits at once. Returns the phase after it.
  DrainPhase onSignal(int signo);
  // Blocks until the drain that onSignal starts has ended (before the first signal it
  // waits for one): after --shutdown-delay the listener closes (new connections are
  // refused) and idle connections are closed; returns Drained once no client connection
  // is open, or Cut when --shutdown-grace has passed since the signal (the connections
  // still open are counted in waterline_router_shutdown_cut_connections_total, logged,
  // and closed: the server is stopped), or Abort after a second signal.
  DrainPhase drain();
  // The exit status for the drain's final phase (DrainState::exitCode); -1 before.
  int drainExitCode() const;
  // The bound port (after start()).
  int port() const;
  // Where /metrics is served (after start()): port() without --metrics-listen, the
  // metrics listener's port with one, 0 with --metrics-listen=0.
  int metricsPort() const;

  // Replaces the routing table (thread-safe; requests in flight keep the old one) and
  // syncs the PTU limiters with its reservations.
  void setRoutes(routing::RoutingTable t);
  std::shared_ptr<const DeploymentIndex> routes() const;
  bool hasRoutes() const;

  // Router replicas sharing the reservations (each enforces 1/n of each). Thread-safe,
  // callable at any time (LeaseMembership calls it when the member count changes);
  // usage already charged is kept. n < 1 counts as 1.
  void setReplicaCount(int n);
  int replicaCount() const;

  metrics::Registry& registry();
  routing::AdmissionController& admission();
  const RouterConfig& config() const;

 private:
  friend struct Worker;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace waterline::router
