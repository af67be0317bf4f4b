#pragma once
// The upstream replicas as the attempt planner (attempts.h) sees them: which pools a
// deployment's request may go to, which replica of a pool next, and what a failed
// attempt tells about the replica (ejection). No I/O: the wire code (server.cc) opens
// the connections; time comes in as arguments, read from the router's one injected
// clock (RouterServer's TimeSource), so tests drive ejection with a simulated clock.
//
//   UpstreamPool     the interface the planner uses (a fake in the planner's tests)
//   WorkerUpstreams  the router's implementation, one per io thread (not thread-safe):
//                    routing::choosePools with this thread's own load since each
//                    entry's heartbeat (routing::LocalLoad), routing::pickEndpoint on
//                    this thread's requests in flight per endpoint (least request),
//                    and ejection: an endpoint that refused a connection is skipped for
//                    ejectAfterConnectFailure (unless every replica of its pool is
//                    skipped; routing/selection.h)
#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

#include "waterline/common/backoff.h"
#include "waterline/common/time.h"
#include "waterline/routing/selection.h"
#include "waterline/routing/table.h"

namespace waterline::router {

// Why an attempt failed before any byte of its response went to the client (the
// failures that fail over). The names are the `result` label values of
// waterline_router_upstream_attempts_total.
enum class AttemptFailure {
  ConnectError,  // no connection (refused, unreachable, connect timeout, bad address)
  WriteError,    // the request could not be written
  HeaderError,   // the response header broke or timed out
  Status5xx,     // the upstream answered 5xx
  BodyError,     // a buffered (non-streamed) body broke before it was relayed
};
const char* toString(AttemptFailure f);

class UpstreamPool {
 public:
  virtual ~UpstreamPool() = default;
  // The pools `d`'s request may use, in failover order (routing::choosePools; `scope`:
  // the PTU reservation's scope the request was admitted against; `promptTokens`: the
  // request's estimated prompt, for the latency model's prefill cost).
  virtual routing::PoolChoice choosePools(const routing::DeploymentRoutes& d,
                                          const std::optional<api::ReservationScope>& scope, SystemTime now,
                                          double promptTokens) = 0;
  // The next replica of `e` (an index into e.endpoints), avoiding the endpoints in
  // `tried` and those ejected at `now` unless every one is; nullopt when `e` has none.
  virtual std::optional<std::size_t> pickReplica(const routing::RoutingEntry& e,
                                                 std::span<const std::string* const> tried, MonotonicTime now) = 0;
  // An attempt of `charge` weighted tokens goes to e.endpoints[replica].
  virtual void onAttempt(const routing::RoutingEntry& e, std::size_t replica, double charge) = 0;
  // That attempt failed before its response started.
  virtual void onFailure(const routing::RoutingEntry& e, std::size_t replica, AttemptFailure f, MonotonicTime now) = 0;
};

class WorkerUpstreams final : public UpstreamPool {
 public:
  struct Options {
    routing::SelectionOptions selection;
    Duration ejectAfterConnectFailure = std::chrono::seconds(2);
  };
  WorkerUpstreams(Options opts, RandomFn rand);

  routing::PoolChoice choosePools(const routing::DeploymentRoutes& d, const std::optional<api::ReservationScope>& scope,
                                  SystemTime now, double promptTokens) override;
  std::optional<std::size_t> pickReplica(const routing::RoutingEntry& e, std::span<const std::string* const> tried,
                                         MonotonicTime now) override;
  void onAttempt(const routing::RoutingEntry& e, std::size_t replica, double charge) override;
  void onFailure(const routing::RoutingEntry& e, std::size_t replica, AttemptFailure f, MonotonicTime now) override;

  // True while `endpoint` is ejected at `now`.
  bool ejected(std::string_view endpoint, MonotonicTime now) const;
  // The requests in flight to `endpoint` on this thread: the wire code counts them up
  // and down around each attempt; pickReplica prefers the endpoint with fewer.
  int& inflight(const std::string& endpoint) { return inflight_[endpoint]; }
  // After a routing-table change: forgets ejections of endpoints not in `live`, and
  // local load older than `before`.
  void prune(const std::unordered_set<std::string>& live, SystemTime before);
  const routing::LocalLoad& localLoad() const { return localLoad_; }

  // The LocalLoad key of an entry: deployment, cluster, pool.
  static std::string loadKey(const routing::RoutingEntry& e);

 private:
  struct Hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };
  template <class V>
  using Map = std::unordered_map<std::string, V, Hash, std::equal_to<>>;

  Options opts_;
  RandomFn rand_;
  Map<int> inflight_;
  Map<MonotonicTime> ejectedUntil_;
  routing::LocalLoad localLoad_;
};

}  // namespace waterline::router
