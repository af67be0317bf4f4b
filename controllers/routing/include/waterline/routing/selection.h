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
#include <map>
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

// Latency-aware pool choice (docs/routing.md, "Latency-aware pool choice"). When
// enabled, eligible pools (rules 1, 2 and 6 below unchanged: maxUtilization stays a hard
// limit) are ranked by an estimate of the time to first token the request would see
// there instead of by utilization:
//
//   TTFT(pool) = network(client region -> pool region)           rttMs()
//              + queue(pool): queued weighted tokens / (capacityTokensPerMinute / 60)
//              + prefill(request): promptTokens / prefill tokens/s of one replica
//
// queued tokens = the published queuedTokens (else queuedRequests x meanRequestTokens)
// + what the caller sent there since the entry's heartbeat (the adjust function's extra
// utilization x capacity) - what the pool's spare capacity (capacity - load) drained in
// the time since that heartbeat, never below 0.
// With maxQueueMs > 0, a pool whose queue estimate exceeds it is not eligible.
// Locality: when an eligible pool in the client's region estimates within
// localToleranceMs of the best estimate, the choice stays in the client's region; else,
// when one in the client's data zone does, in the zone; else anywhere. Among the pools
// of that group within nearEqualMs of the group's best, power-of-two choices (by
// weight, keeping the lower estimate) as in rule 3. Fallbacks: lowest estimate first.
struct LatencyModel {
  bool enabled = false;
  std::string clientRegion;  // the region requests come from (the router's)
  std::string clientZone;    // its data zone
  // Round-trip times between regions in ms, either order ("a", "b"); pairs not listed
  // use the defaults below by locality.
  std::map<std::pair<std::string, std::string>, double> rttMs;
  double sameRegionRttMs = 2;
  double sameZoneRttMs = 30;
  double crossZoneRttMs = 100;
  double prefillTokensPerSecond = 9000;  // one replica, when the entry publishes none
  double meanRequestTokens = 2000;       // weighted tokens per queued request when only queuedRequests is published
  double localToleranceMs = 250;         // stay local while within this of the best estimate
  double nearEqualMs = 50;               // the power-of-two-choices band
  // A second hard limit beside maxUtilization: a pool whose estimated queueing delay
  // (network and the request's own prefill excluded) is above this is not eligible (it
  // goes to `saturated`): a request that would wait longer is better spilled or
  // answered 429 than queued. 0: off.
  double maxQueueMs = 0;
  // The same limit for pools outside the client's region only: a request leaves its
  // region only for a pool whose estimated queue is at most this (0: off). The client's
  // own region is used up to maxUtilization (and maxQueueMs) as without the latency
  // model, so leaving the region can only add capacity that is actually idle: it never
  // sends a request into a queue it would not have met at home.
  double maxRemoteQueueMs = 0;
};

// One pool's estimate for one request, in ms.
struct TtftEstimate {
  double networkMs = 0;
  double queueMs = 0;
  double prefillMs = 0;
  double totalMs() const { return networkMs + queueMs + prefillMs; }
};

// The round trip between the client's region/zone and a pool's.
double rttMs(const LatencyModel& m, const std::string& clientRegion, const std::string& clientZone,
             const RoutingEntry& e);
// The estimate (see LatencyModel). `extraQueuedTokens`: weighted tokens the caller sent
// to the entry since its heartbeat; `sinceHeartbeat`: now - heartbeatTime.
TtftEstimate estimateTtft(const LatencyModel& m, const RoutingEntry& e, double promptTokens,
                          double extraQueuedTokens = 0, Duration sinceHeartbeat = Duration::zero());

struct SelectionOptions {
  Duration staleAfter = std::chrono::seconds(30);  // <= 0: entries never go stale
  double epsilon = 0.05;                           // "near-equal" utilization band
  bool panicWhenAllStale = true;                   // use stale entries when none is fresh
  LatencyModel latency;                            // off by default: least utilization
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
                       const UtilizationAdjustFn& adjust = {}, double promptTokens = 0);

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
