#pragma once
// The attempt planner: for one proxied request, which deployment, pool and replica to
// try next, when to spill over, when to answer 429/503 itself, when to stop, and what to
// settle or refund against the PTU reservation — after Envoy's RetryState (a
// per-request object driven by the results of the attempts, with time passed in).
//
// Pure: no I/O, no Asio, no clock of its own. It reaches the PTU limiters through
// PtuLedger and the replicas through UpstreamPool (upstreams.h); every step takes the
// time (`Now`) from the caller, who reads the router's one injected clock. The wire code
// (server.cc) runs the loop:
//
//   AttemptPlanner p(...);
//   for (;;) {
//     Action a = p.next(now());
//     Spill:  count it (waterline_router_spillovers_total), loop
//     Answer: send p.answer() (429/503 in OpenAI's error shape), done
//     Try:    forward to a.endpoint(); failed before the response started:
//             p.onFailure(why, now()), loop; response relayed: p.onResponse(what, now()), done
//   }
//
// The rules (docs/routing.md, "Failover", "PTU admission", "Quotas"):
//   * A deployment is admitted first (its estimated weighted tokens charged to one of its
//     reservations, else to its spec.rateLimit quota). Spill: on to its spillover deployment (no target in the table:
//     429). Throttle: 429 with Retry-After and the rate-limit headers.
//   * Then its pools in routing::choosePools order (with --overload=best-effort the
//     saturated ones when none is below maxUtilization). None: refund, then spill over
//     ("capacity") or 429 capacity_exceeded (pools saturated) / 503
//     no_healthy_upstream.
//   * Within a pool, replicas not yet tried for this deployment (UpstreamPool picks),
//     then the next pool; at most maxAttempts attempts per request in all. Every pool
//     exhausted: refund, then the spillover deployment ("failover") while attempts are
//     left, else 503 no_upstream_available.
//   * A deployment is visited once; at most maxSpilloverHops spills.
//   * deadline (> 0): no attempt but the first, and no failover, starts once `deadline`
//     has passed since the request arrived; then refund and 503 (--failover-deadline).
//   * The response relayed (any status): settle the admission once with the usage it
//     reported, clamped to what the request could produce (clampUsage); a 4xx/5xx
//     without usage settles 0; an SSE stream without usage settles the estimated
//     prompt plus one completion token per event; anything else keeps the charge.
//   * An admission is settled (or refunded) at most once: a refund and a settlement
//     never both reach the same reservation charge.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "waterline/common/time.h"
#include "waterline/router/openai.h"
#include "waterline/router/upstreams.h"
#include "waterline/routing/admission.h"
#include "waterline/routing/table.h"
#include "waterline/routing/tokens.h"

namespace waterline::router {

using HeaderList = std::vector<std::pair<std::string, std::string>>;

// The PTU limiters as the planner uses them.
class PtuLedger {
 public:
  virtual ~PtuLedger() = default;
  virtual routing::Admission admit(const routing::DeploymentRoutes& d, double tokens, MonotonicTime now) = 0;
  // Replaces an Admitted admission's charge by `actualTokens` (0: a refund).
  virtual void settle(const routing::Admission& a, double actualTokens, MonotonicTime now) = 0;
};

// The router's ledger: its routing::AdmissionController.
class AdmissionLedger final : public PtuLedger {
 public:
  explicit AdmissionLedger(routing::AdmissionController& c) : c_(c) {}
  routing::Admission admit(const routing::DeploymentRoutes& d, double tokens, MonotonicTime now) override {
    return c_.admit(d, tokens, now);
  }
  void settle(const routing::Admission& a, double actualTokens, MonotonicTime now) override {
    c_.settle(a, actualTokens, now);
  }

 private:
  routing::AdmissionController& c_;
};

struct AttemptLimits {
  int maxAttempts = 4;       // upstream attempts per request, all deployments together
  int maxSpilloverHops = 3;  // spills (ptu, capacity, failover) per request
  Duration deadline = Duration::zero();  // since arrival; no attempt but the first after it (zero: none)
  bool bestEffort = false;   // --overload=best-effort: use saturated pools when none is below its limit
};

// One reading of the injected clock.
struct Now {
  MonotonicTime mono;  // admission windows, ejection, the deadline
  SystemTime wall;     // heartbeat freshness
};

struct Action {
  enum class Kind { Try, Spill, Answer };
  Kind kind = Kind::Answer;
  // Try: the deployment, pool entry and replica (an index into entry->endpoints) to send
  // the request to. Spill: the deployment left.
  const routing::DeploymentRoutes* deployment = nullptr;
  const routing::RoutingEntry* entry = nullptr;
  std::size_t replica = 0;
  // Try: fields the response to the client carries (rate-limit headers of the
  // admission, x-waterline-spilled); valid until the planner moves to another deployment.
  const HeaderList* headers = nullptr;
  // Spill: why ("ptu", "quota", "capacity", "failover") and where to (null: the spillover target
  // is missing from the table; the next action answers 429).
  const char* reason = nullptr;
  const routing::DeploymentRoutes* target = nullptr;

  const std::string& endpoint() const { return entry->endpoints[replica]; }
};

// What the router answers itself (Action::Kind::Answer).
struct Answer {
  enum class Why { Throttled, CapacityExceeded, NoHealthyUpstream, NoUpstreamAvailable, DeadlineExceeded };
  Why why = Why::NoUpstreamAvailable;
  ApiError error;
  HeaderList headers;
};
const char* toString(Answer::Why w);

// A relayed response, as far as settlement cares.
struct ResponseSummary {
  int status = 0;
  std::optional<routing::Usage> usage;  // as the upstream reported it
  bool sse = false;
  std::int64_t sseEvents = 0;
};

// What onResponse settled.
struct Settlement {
  bool settled = false;        // an Admitted admission was settled (false: no reservation)
  double tokens = 0;           // the weighted tokens it was settled with
  bool usageClamped = false;   // the reported usage was above what the request could produce
};

class AttemptPlanner {
 public:
  // `requested`: the deployment the request resolved to, in `routes` (both outlive the
  // planner, as do ledger and pool). `est`: the request's token estimate; `bodyBytes`:
  // its body's size (clampUsage's bound); `arrived`: when it arrived (the deadline's start).
  AttemptPlanner(const DeploymentIndex& routes, const routing::DeploymentRoutes& requested,
                 routing::TokenEstimate est, std::size_t bodyBytes, AttemptLimits limits, PtuLedger& ledger,
                 UpstreamPool& pool, MonotonicTime arrived);

  // The next action. After a Try, call onFailure or onResponse first (std::logic_error
  // otherwise); after an Answer, next() returns the same Answer again.
  Action next(Now now);
  // The last Try failed before any byte of its response went to the client.
  void onFailure(AttemptFailure f, Now now);
  // The last Try's response went to the client (whatever its status, complete or cut):
  // settles the admission once. The request is over.
  Settlement onResponse(const ResponseSummary& r, Now now);

  // After an Answer action (std::logic_error before).
  const Answer& answer() const;
  bool finished() const { return phase_ == Phase::Answered || phase_ == Phase::Responded; }
  int attempts() const { return attempts_; }
  // The deployment the request resolved to (its key names the router's own answers).
  const routing::DeploymentRoutes& requested() const { return requested_; }
  // The admission of the deployment being tried (NoReservation before the first).
  const routing::Admission& admission() const { return adm_; }
  // The weighted tokens charged at admission to the current deployment.
  double charge() const { return charge_; }

 private:
  enum class Phase { Admit, Throttle, Choose, Pick, Attempting, Answered, Responded };

  Action spillTo(const routing::DeploymentRoutes* next, const char* reason);
  Action finish(Answer::Why why);
  void refund(Now now);
  bool pastDeadline(Now now) const;
  bool allTried(const routing::RoutingEntry& e) const;

  const DeploymentIndex& routes_;
  const routing::DeploymentRoutes& requested_;
  routing::TokenEstimate est_;
  std::size_t bodyBytes_;
  AttemptLimits limits_;
  PtuLedger& ledger_;
  UpstreamPool& pool_;
  MonotonicTime arrived_;

  Phase phase_ = Phase::Admit;
  const routing::DeploymentRoutes* cur_;
  std::vector<const routing::DeploymentRoutes*> visited_;
  int hops_ = 0;
  int attemptsLeft_;
  int attempts_ = 0;
  const char* spilled_ = nullptr;
  routing::Admission adm_;
  bool admOpen_ = false;  // adm_ is Admitted and not yet settled or refunded
  double charge_ = 0;
  std::vector<const routing::RoutingEntry*> order_;
  std::size_t entry_ = 0;
  std::vector<const std::string*> tried_;  // endpoints tried for the current deployment
  const routing::RoutingEntry* lastEntry_ = nullptr;
  std::size_t lastReplica_ = 0;
  HeaderList headers_;
  std::optional<Answer> answer_;  // made only when answering (an ApiError allocates)
};

// The rate-limit fields of an answer: none without a reservation; else
// x-ratelimit-remaining-{tokens,requests}, and when `throttled` also Retry-After (whole
// seconds, at least 1; 60 when the request can never fit) and retry-after-ms (whole
// milliseconds, rounded up too: a client that waits exactly that long finds room).
HeaderList rateLimitHeaders(const routing::Admission& a, bool throttled);

}  // namespace waterline::router
