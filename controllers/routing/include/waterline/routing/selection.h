#pragma once
// Pool choice (pure): which pool, and which replica in it, a request goes to.
//
//   1. Allowed pools: Standard = entries in the deployment's region; DataZone = in its
//      data zone; Global = every entry.
//   2. Eligible: allowed, healthy, at least one ready endpoint, weight > 0, FRESH
//      (now - heartbeatTime <= staleAfter) and utilization < maxUtilization.
//   3. Primary: among eligible entries within `epsilon` of the least utilization,
//      power-of-two-choices: draw two distinct entries (probability proportional to
//      weight) and keep the less utilised one (the first drawn on a tie). With one such
//      entry it is the primary. This avoids every router herding onto the same "least
//      loaded" pool between two heartbeats.
//   4. Fallbacks (failover order): the other eligible entries, least utilised first.
//   5. `saturated`: allowed, healthy, fresh entries at or above maxUtilization (or with
//      weight 0), least utilised first. The router does not use them by default (it
//      spills over or answers 429); an overload policy may.
//   6. When no allowed entry is fresh at all (the publisher is down), the stale ones are
//      used as if fresh (panic mode, as Envoy does) and `usedStale` is set: a router
//      whose table stops updating keeps serving from its last view.
// A `preferred` scope (a PTU reservation's) moves eligible entries inside the scope
// ahead of the others: the primary is drawn among them first.
// An `adjust` function adds what the caller knows beyond the published numbers (the
// load this router itself sent to a pool since the entry's heartbeat: LocalLoad) to
// every entry's utilization before any of the rules above. Published utilization only
// moves at heartbeats; without this, "least utilised" sends all of a router's traffic
// to one pool until the next heartbeat whenever pools differ by more than epsilon.
// Deterministic: same inputs and the same RandomFn sequence give the same choice.
#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "waterline/api/ptu_reservation.h"
#include "waterline/common/backoff.h"
#include "waterline/common/time.h"
#include "waterline/routing/table.h"

namespace waterline::routing {

struct SelectionOptions {
  Duration staleAfter = std::chrono::seconds(30);  // <= 0: entries never go stale
  double epsilon = 0.05;                           // "near-equal" utilization band
  bool panicWhenAllStale = true;                   // use stale entries when none is fresh
};

struct PoolChoice {
  std::vector<const RoutingEntry*> order;      // primary first, then fallbacks
  std::vector<const RoutingEntry*> saturated;  // over maxUtilization (or weight 0)
  std::size_t allowed = 0;                     // entries allowed by the deployment type
  std::size_t fresh = 0;                       // allowed and fresh
  bool usedStale = false;                      // panic mode was used

  const RoutingEntry* primary() const { return order.empty() ? nullptr : order.front(); }
};

// True when the deployment type allows routing to the entry's pool.
bool poolAllowed(const DeploymentRoutes& d, const RoutingEntry& e);
// True when the entry's heartbeat is within staleAfter of now (always when staleAfter <= 0).
bool isFresh(const RoutingEntry& e, SystemTime now, Duration staleAfter);
// True when the entry's pool lies inside a reservation scope.
bool inScope(const api::ReservationScope& scope, const RoutingEntry& e);

using UtilizationAdjustFn = std::function<double(const RoutingEntry&)>;

PoolChoice choosePools(const DeploymentRoutes& d, SystemTime now, const SelectionOptions& opts,
                       const RandomFn& rand,
                       const std::optional<api::ReservationScope>& preferred = std::nullopt,
                       const UtilizationAdjustFn& adjust = {});

// Weighted tokens a router sent to each entry since that entry's heartbeat, as extra
// utilization: tokens / capacityTokensPerMinute (the published utilization is a
// trailing-minute load over the same capacity, so tokens sent since the heartbeat are
// exactly what it does not show yet). A new heartbeat resets the entry's count. Keys are
// the caller's (the router uses deployment/cluster/pool). Not thread-safe: one per
// router thread.
class LocalLoad {
 public:
  void add(const std::string& key, SystemTime heartbeat, double tokens);
  double extraUtilization(const std::string& key, SystemTime heartbeat, double capacityTokensPerMinute) const;
  // Drops keys whose heartbeat is older than `before` (bounded memory).
  void prune(SystemTime before);
  std::size_t size() const { return sent_.size(); }

 private:
  struct Sent {
    SystemTime heartbeat{};
    double tokens = 0;
  };
  std::unordered_map<std::string, Sent> sent_;
};

// The replica for a request within a pool: power-of-two-choices on the caller's count of
// requests in flight per endpoint (Envoy's LEAST_REQUEST); `skip` endpoints (e.g. ones
// that just refused a connection) are avoided unless all are skipped. Returns an index
// into e.endpoints, or nullopt when it has none.
using InflightFn = std::function<int(std::string_view endpoint)>;
using SkipFn = std::function<bool(std::string_view endpoint)>;
std::optional<std::size_t> pickEndpoint(const RoutingEntry& e, const InflightFn& inflight,
                                        const RandomFn& rand, const SkipFn& skip = {});

}  // namespace waterline::routing
