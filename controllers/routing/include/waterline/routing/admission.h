#pragma once
// PTU admission (pure; time is passed in): one limiter per PTUReservation.
//
// The limit L of a reservation, per minute, is
//     L = tokensPerMinute x (1 + burstPercent/100) x share
// where share is this router replica's fraction (1/N for N replicas). A request is
// charged its estimated weighted tokens (tokens.h) when admitted and settled with the
// actual usage of the response (refund or extra charge).
//
// Two limiter modes:
//   SlidingWindow (default): a token bucket whose refill is the expiry of the tokens
//     spent one window earlier. Charges land in 100 ms slots; a request is admitted
//     when the tokens charged in the last window (rounded up to whole slots: 60.0 to
//     60.1 s) plus its charge fit in L. So the tokens admitted in ANY 60 s interval
//     never exceed L (up to underestimates settled after the fact), and a client whose
//     usage in every minute stays under L is never throttled.
//   TokenBucket (classic, for comparison): refill at tokensPerMinute x share per minute,
//     capacity L. Any 60 s interval may admit up to capacity + refill (~2L when full),
//     so it misses the "within 2% over any full minute" goal; bench/routing-sim shows it.
//
// Within a deployment, reservations are tried in name order ("reserved capacity first");
// when none has room the request spills over to the deployment's spillover deployment
// if set, else is throttled (429) with Retry-After and remaining-tokens/requests.
//
// Quotas (pay-as-you-go, ModelDeployment spec.rateLimit): per deployment, two limiters of
// the same kind as a reservation's (burst 0, this replica's share setShare, never the
// per-reservation overrides): one of tokensPerMinute weighted tokens, one of
// requestsPerMinute requests (each request charged 1). A request that no reservation of
// the deployment admits (every request when it has none) is admitted when both have
// room (QuotaAdmitted; settled like a reservation's), else spills or is throttled.
// Thread-safe (each limiter has its own mutex).
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <vector>

#include "waterline/common/time.h"
#include "waterline/routing/table.h"

namespace waterline::routing {

enum class LimiterMode { SlidingWindow, TokenBucket };
const char* toString(LimiterMode m);

struct LimiterConfig {
  double tokensPerMinute = 0;  // provisioned (weighted) tokens per minute
  int32_t burstPercent = 0;
  double share = 1.0;  // this replica's fraction of the reservation, (0, 1]
  LimiterMode mode = LimiterMode::SlidingWindow;
  Duration window = std::chrono::seconds(60);
  int slots = 6000;  // SlidingWindow resolution: window / slots per slot (10 ms)

  // Tokens admitted per window at most: tokensPerMinute x (1 + burst/100) x share x window/1min.
  double limit() const;
  bool operator==(const LimiterConfig&) const = default;
};

class ReservationLimiter {
 public:
  explicit ReservationLimiter(LimiterConfig cfg);

  struct Ticket {
    int64_t slot = 0;     // SlidingWindow: the slot the charge landed in
    double charged = 0;   // tokens charged at admission
  };

  // Charges `tokens` when they fit; nullopt (nothing charged) otherwise.
  std::optional<Ticket> tryAdmit(double tokens, MonotonicTime now);
  // Replaces the ticket's charge by `actualTokens` (a refund when smaller). A charge that
  // has already left the window is not revisited.
  void settle(const Ticket& t, double actualTokens, MonotonicTime now);

  double limit() const;
  // Tokens charged in the current window (SlidingWindow) / limit minus the bucket level.
  double used(MonotonicTime now);
  double remaining(MonotonicTime now);
  // Requests of the window's average size (or `fallbackCharge` when the window is empty)
  // that still fit.
  double remainingRequests(MonotonicTime now, double fallbackCharge);
  // How long until `tokens` would fit (0 when they fit now); Duration::max() when
  // tokens exceed the limit itself.
  Duration retryAfter(double tokens, MonotonicTime now);

  // New rate, burst or share; usage history is kept.
  void reconfigure(const LimiterConfig& cfg, MonotonicTime now);
  LimiterConfig config() const;

 private:
  int64_t slotOf(MonotonicTime t) const;
  void advanceLocked(MonotonicTime now);
  double usedLocked(MonotonicTime now);

  mutable std::mutex mu_;
  LimiterConfig cfg_;
  Duration slotWidth_;
  // SlidingWindow: ring of slots+1 slots (tokens and request counts), head_ the newest.
  std::vector<double> tokens_;
  std::vector<int32_t> requests_;
  int64_t head_ = INT64_MIN;
  double sum_ = 0;
  int64_t count_ = 0;
  // TokenBucket.
  double level_ = 0;
  std::optional<MonotonicTime> last_;
};

enum class AdmitOutcome { NoReservation, Admitted, Spill, Throttle };
// What limited (or admitted) a request: a PTU reservation or the deployment's quota.
enum class AdmitLimiter { Reservation, Quota };
const char* toString(AdmitOutcome o);

struct Admission {
  AdmitOutcome outcome = AdmitOutcome::NoReservation;
  DeploymentKey reservation;  // Admitted: the charged one; Spill/Throttle: the first one
  std::shared_ptr<ReservationLimiter> limiter;  // Admitted: settle against it
  ReservationLimiter::Ticket ticket;
  double charged = 0;
  double remainingTokens = 0;    // over the deployment's reservations, after the charge
  double remainingRequests = 0;
  Duration retryAfter{};         // Throttle/Spill: until the request would fit
  std::optional<api::ReservationScope> scope;  // Admitted: the reservation's scope
  AdmitLimiter by = AdmitLimiter::Reservation;  // Quota: the outcome is the quota's
  // Quota only (0 otherwise): this replica's limits, the x-ratelimit-limit-* headers.
  double limitTokens = 0;
  double limitRequests = 0;
};

// The per-replica quota limits of a deployment's rate limit: tokens and requests per
// window (the minute), times share. Exposed for tests and docs.
struct QuotaLimits {
  double tokens = 0;
  double requests = 0;
};
QuotaLimits quotaLimits(const RateLimitInfo& rl, double share);


struct AdmissionCounters {
  std::uint64_t admitted = 0;
  std::uint64_t throttled = 0;
  std::uint64_t spilled = 0;
  bool operator==(const AdmissionCounters&) const = default;
};

struct ReservationStats {
  AdmissionCounters counters;
  double limit = 0;
  double used = 0;
  double share = 1;              // this replica's share of the reservation now
  double reservationLimit = 0;   // the whole reservation's limit (share 1)
  double demanded = 0;           // cumulative estimated tokens of requests admitted or refused here
  double largest = 0;            // the largest such estimate since takeLargest (ptu_shares.h)
};

struct QuotaStats {
  AdmissionCounters counters;
  double limitTokens = 0;     // this replica's
  double limitRequests = 0;
  double usedTokens = 0;      // in the current window, this replica
  double usedRequests = 0;
};

class AdmissionController {
 public:
  explicit AdmissionController(LimiterMode mode = LimiterMode::SlidingWindow, double share = 1.0);

  // Creates limiters for new reservations, reconfigures changed ones (keeping their
  // usage) and drops those no longer in the table. Counters survive while the
  // reservation exists.
  void sync(const RoutingTable& t, MonotonicTime now);
  // This replica's share of every reservation (1/N).
  void setShare(double share, MonotonicTime now);
  double share() const;
  // A share for one reservation (by key, DeploymentKey::str()) that overrides the one of
  // setShare, e.g. a demand-aware share (ptu_shares.h); nullopt goes back to it. Kept
  // while the reservation exists.
  void setReservationShare(const std::string& key, std::optional<double> share, MonotonicTime now);
  // The largest request estimate admitted or refused on the reservation since the last
  // call (0 when none), reset to 0.
  double takeLargest(const std::string& key);

  // Admission for a request of `tokens` estimated weighted tokens to deployment d.
  Admission admit(const DeploymentRoutes& d, double tokens, MonotonicTime now);
  // Settles an Admitted request with its actual weighted tokens.
  void settle(const Admission& a, double actualTokens, MonotonicTime now);

  std::map<std::string, ReservationStats> stats(MonotonicTime now) const;
  // By deployment key (DeploymentKey::str()), the deployments with a rate limit.
  std::map<std::string, QuotaStats> quotaStats(MonotonicTime now) const;

 private:
  struct State {
    std::shared_ptr<ReservationLimiter> limiter;
    std::atomic<std::uint64_t> admitted{0}, throttled{0}, spilled{0};
    std::atomic<double> demanded{0};
    std::atomic<double> largest{0};
  };
  struct QuotaState {
    std::shared_ptr<ReservationLimiter> tokens, requests;
    RateLimitInfo info;
    std::atomic<std::uint64_t> admitted{0}, throttled{0}, spilled{0};
  };
  LimiterConfig configFor(const ReservationInfo& r) const;
  std::pair<LimiterConfig, LimiterConfig> quotaConfigs(const RateLimitInfo& rl) const;
  static void noteDemand(State& st, double tokens);
  Admission admitQuota(const DeploymentRoutes& d, QuotaState& q, double tokens, MonotonicTime now);

  mutable std::shared_mutex mu_;
  LimiterMode mode_;
  double share_;
  std::map<std::string, std::shared_ptr<State>, std::less<>> states_;  // by reservation key
  std::map<std::string, ReservationInfo, std::less<>> infos_;
  std::map<std::string, double, std::less<>> shareOverrides_;  // by reservation key
  std::map<std::string, std::shared_ptr<QuotaState>, std::less<>> quotas_;  // by deployment key
};

}  // namespace waterline::routing
