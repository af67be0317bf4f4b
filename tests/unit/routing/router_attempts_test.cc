// The router's attempt planner (router/attempts.h) and its upstream pool
// (router/upstreams.h), without sockets: a fake PTU ledger and a fake pool where a test
// needs to see every call, the real AdmissionController and WorkerUpstreams where it
// needs their rules, and simulated time throughout.
#include "waterline/router/attempts.h"

#include <gtest/gtest.h>

#include <map>
#include <set>
#include <stdexcept>

#include "fixtures.h"
#include "waterline/router/upstreams.h"

namespace waterline::router {
namespace {

using namespace std::chrono_literals;
using routing::AdmitOutcome;
using routing::DeploymentRoutes;
using routing::RoutingEntry;
using routing::testing::entry;
using routing::testing::fixedRandom;
using routing::testing::t0;
using Kind = Action::Kind;

routing::ReservationInfo reservation(std::string name, int64_t tpm) {
  routing::ReservationInfo r;
  r.reservation = {"team", std::move(name)};
  r.tokensPerMinute = tpm;
  return r;
}

DeploymentRoutes dep(std::string name, std::vector<RoutingEntry> entries, std::optional<std::string> spillover = {}) {
  auto d = routing::testing::deployment(std::move(name), api::DeploymentType::Global, std::move(entries));
  d.spillover = std::move(spillover);
  return d;
}

DeploymentIndex indexOf(std::vector<DeploymentRoutes> ds) {
  routing::RoutingTable t;
  t.deployments = std::move(ds);
  t.normalize();
  return DeploymentIndex(std::move(t));
}

const DeploymentRoutes& find(const DeploymentIndex& idx, const std::string& name) {
  const auto* d = idx.find({"team", name});
  if (!d) throw std::runtime_error("no deployment " + name);
  return *d;
}

// 100 prompt tokens, at most 50 output tokens: a charge of 150 weighted tokens.
routing::TokenEstimate est() { return {100, 50}; }
constexpr double kCharge = 150;
constexpr std::size_t kBodyBytes = 1000;

// Every admission Admitted (or what `outcomes` says for a deployment), each with its
// own ticket; records every admit and settle.
struct FakeLedger : PtuLedger {
  std::map<std::string, AdmitOutcome> outcomes;  // by deployment name; default Admitted
  int admits = 0;
  struct Settle {
    int64_t ticket;
    std::string reservation;
    double tokens;
  };
  std::vector<Settle> settles;

  routing::Admission admit(const DeploymentRoutes& d, double tokens, MonotonicTime) override {
    routing::Admission a;
    auto it = outcomes.find(d.deployment.name);
    a.outcome = it == outcomes.end() ? AdmitOutcome::Admitted : it->second;
    a.reservation = {"team", "res-" + d.deployment.name};
    a.ticket.slot = ++admits;
    a.ticket.charged = tokens;
    a.charged = tokens;
    a.retryAfter = 3s;
    return a;
  }
  void settle(const routing::Admission& a, double actual, MonotonicTime) override {
    settles.push_back({a.ticket.slot, a.reservation.str(), actual});
  }
  // No ticket settled twice.
  bool eachSettledOnce() const {
    std::set<int64_t> seen;
    for (const auto& s : settles)
      if (!seen.insert(s.ticket).second) return false;
    return true;
  }
};

// Pools in table order; the first replica neither tried nor down; records the calls.
struct FakePool : UpstreamPool {
  std::set<std::string> saturatedPools;  // in PoolChoice::saturated instead of order
  std::set<std::string> down;            // never picked
  std::vector<std::string> attempts, failures;

  double promptTokens = -1;  // the last choosePools call's

  routing::PoolChoice choosePools(const DeploymentRoutes& d, const std::optional<api::ReservationScope>&,
                                  SystemTime, double prompt) override {
    promptTokens = prompt;
    routing::PoolChoice c;
    for (const auto& e : d.entries) (saturatedPools.count(e.pool) ? c.saturated : c.order).push_back(&e);
    return c;
  }
  std::optional<std::size_t> pickReplica(const RoutingEntry& e, std::span<const std::string* const> tried,
                                         MonotonicTime) override {
    for (std::size_t i = 0; i < e.endpoints.size(); ++i) {
      bool t = down.count(e.endpoints[i]) > 0;
      for (const auto* p : tried) t = t || *p == e.endpoints[i];
      if (!t) return i;
    }
    return std::nullopt;
  }
  void onAttempt(const RoutingEntry& e, std::size_t i, double) override { attempts.push_back(e.endpoints[i]); }
  void onFailure(const RoutingEntry& e, std::size_t i, AttemptFailure f, MonotonicTime) override {
    failures.push_back(e.endpoints[i] + ":" + toString(f));
  }
};

struct Clocked : ::testing::Test {
  SimulatedTimeSource clock{t0()};
  Now now() const { return {clock.monotonicTime(), clock.systemTime()}; }
};

ResponseSummary ok(std::optional<routing::Usage> usage = {}, int status = 200) {
  ResponseSummary r;
  r.status = status;
  r.usage = usage;
  return r;
}

std::string header(const HeaderList& h, const std::string& name) {
  for (const auto& [k, v] : h)
    if (k == name) return v;
  return "<none>";
}

// ---- retries and failover ---------------------------------------------------------

using AttemptPlannerTest = Clocked;

TEST_F(AttemptPlannerTest, RetriesAnotherReplicaOnConnectErrorThenTheNextPool) {
  auto idx = indexOf({dep("a", {entry("p1", "r", "z", 0.1, {"10.0.0.1:80", "10.0.0.2:80"}),
                                entry("p2", "r", "z", 0.1, {"10.0.1.1:80"})})});
  FakeLedger ledger;
  FakePool pool;
  AttemptPlanner p(idx, find(idx, "a"), est(), kBodyBytes, {}, ledger, pool, clock.monotonicTime());

  Action a = p.next(now());
  ASSERT_EQ(a.kind, Kind::Try);
  EXPECT_EQ(a.entry->pool, "p1");
  EXPECT_EQ(a.endpoint(), "10.0.0.1:80");
  EXPECT_DOUBLE_EQ(pool.promptTokens, 100);  // the estimate's prompt, for the latency model
  p.onFailure(AttemptFailure::ConnectError, now());

  a = p.next(now());
  ASSERT_EQ(a.kind, Kind::Try);
  EXPECT_EQ(a.entry->pool, "p1");  // another replica of the same pool first
  EXPECT_EQ(a.endpoint(), "10.0.0.2:80");
  p.onFailure(AttemptFailure::Status5xx, now());

  a = p.next(now());
  ASSERT_EQ(a.kind, Kind::Try);
  EXPECT_EQ(a.entry->pool, "p2");  // then the next pool
  EXPECT_EQ(a.endpoint(), "10.0.1.1:80");
  EXPECT_EQ(header(*a.headers, "x-waterline-spilled"), "<none>");
  const Settlement s = p.onResponse(ok(routing::Usage{80, 20}), now());

  EXPECT_EQ(pool.failures, (std::vector<std::string>{"10.0.0.1:80:connect_error", "10.0.0.2:80:status_5xx"}));
  EXPECT_EQ(p.attempts(), 3);
  EXPECT_TRUE(p.finished());
  // Settled once, with the usage (no refunds for the failed attempts: the charge stands
  // until the response settles it).
  ASSERT_EQ(ledger.settles.size(), 1u);
  EXPECT_DOUBLE_EQ(ledger.settles[0].tokens, 100);
  EXPECT_TRUE(s.settled);
  EXPECT_DOUBLE_EQ(s.tokens, 100);
  EXPECT_FALSE(s.usageClamped);
  EXPECT_THROW(p.next(now()), std::logic_error);
}

TEST_F(AttemptPlannerTest, StopsAtMaxAttemptsAndRefundsOnce) {
  auto idx = indexOf({dep("a", {entry("p1", "r", "z", 0.1, {"10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"})}, "b"),
                      dep("b", {entry("p2", "r", "z", 0.1, {"10.0.1.1:80"})})});
  FakeLedger ledger;
  FakePool pool;
  AttemptLimits limits;
  limits.maxAttempts = 2;
  AttemptPlanner p(idx, find(idx, "a"), est(), kBodyBytes, limits, ledger, pool, clock.monotonicTime());
  for (int i = 0; i < 2; ++i) {
    ASSERT_EQ(p.next(now()).kind, Kind::Try);
    p.onFailure(AttemptFailure::HeaderError, now());
  }
  // No third attempt, and no failover to b: the attempts are spent.
  const Action a = p.next(now());
  ASSERT_EQ(a.kind, Kind::Answer);
  EXPECT_EQ(p.answer().why, Answer::Why::NoUpstreamAvailable);
  EXPECT_EQ(p.answer().error.status, 503);
  EXPECT_EQ(p.answer().error.code, "no_upstream_available");
  EXPECT_EQ(p.attempts(), 2);
  EXPECT_EQ(ledger.admits, 1);
  ASSERT_EQ(ledger.settles.size(), 1u);
  EXPECT_DOUBLE_EQ(ledger.settles[0].tokens, 0);  // refunded
  // Asking again gives the same answer and refunds nothing more.
  EXPECT_EQ(p.next(now()).kind, Kind::Answer);
  EXPECT_EQ(ledger.settles.size(), 1u);
}

TEST_F(AttemptPlannerTest, FailsOverToTheSpilloverDeploymentRefundingTheFirstAndSettlingTheSecondOnce) {
  auto idx = indexOf({dep("a", {entry("p1", "r", "z", 0.1, {"10.0.0.1:80"})}, "b"),
                      dep("b", {entry("p2", "r", "z", 0.1, {"10.0.1.1:80"})})});
  FakeLedger ledger;
  FakePool pool;
  AttemptPlanner p(idx, find(idx, "a"), est(), kBodyBytes, {}, ledger, pool, clock.monotonicTime());
  ASSERT_EQ(p.next(now()).kind, Kind::Try);
  p.onFailure(AttemptFailure::ConnectError, now());
  Action a = p.next(now());
  ASSERT_EQ(a.kind, Kind::Spill);
  EXPECT_STREQ(a.reason, "failover");
  EXPECT_EQ(a.deployment->deployment.name, "a");
  ASSERT_NE(a.target, nullptr);
  EXPECT_EQ(a.target->deployment.name, "b");
  a = p.next(now());
  ASSERT_EQ(a.kind, Kind::Try);
  EXPECT_EQ(a.deployment->deployment.name, "b");
  EXPECT_EQ(header(*a.headers, "x-waterline-spilled"), "failover");
  p.onResponse(ok(), now());  // 200 without usage: the charge stands
  ASSERT_EQ(ledger.settles.size(), 2u);
  EXPECT_EQ(ledger.settles[0].reservation, "team/res-a");
  EXPECT_DOUBLE_EQ(ledger.settles[0].tokens, 0);
  EXPECT_EQ(ledger.settles[1].reservation, "team/res-b");
  EXPECT_DOUBLE_EQ(ledger.settles[1].tokens, kCharge);
  EXPECT_TRUE(ledger.eachSettledOnce());
}

TEST_F(AttemptPlannerTest, ASpilloverCycleEndsWith503) {
  auto idx = indexOf({dep("a", {entry("p1", "r", "z", 0.1, {"10.0.0.1:80"})}, "b"),
                      dep("b", {entry("p2", "r", "z", 0.1, {"10.0.1.1:80"})}, "a")});
  FakeLedger ledger;
  FakePool pool;
  pool.down = {"10.0.0.1:80", "10.0.1.1:80"};  // no replica to pick anywhere
  AttemptPlanner p(idx, find(idx, "a"), est(), kBodyBytes, {}, ledger, pool, clock.monotonicTime());
  EXPECT_EQ(p.next(now()).kind, Kind::Spill);  // a -> b
  EXPECT_EQ(p.next(now()).kind, Kind::Spill);  // b -> a
  ASSERT_EQ(p.next(now()).kind, Kind::Answer);  // a again: visited
  EXPECT_EQ(p.answer().why, Answer::Why::NoUpstreamAvailable);
  EXPECT_EQ(p.answer().error.message, "No upstream replica of deployment team/a could take the request.");
  EXPECT_EQ(ledger.admits, 2);
  EXPECT_EQ(ledger.settles.size(), 2u);  // both refunded, once each
  EXPECT_TRUE(ledger.eachSettledOnce());
}

TEST_F(AttemptPlannerTest, StopsAtTheDeadlineButAlwaysMakesTheFirstAttempt) {
  auto idx = indexOf({dep("a", {entry("p1", "r", "z", 0.1, {"10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"})})});
  FakeLedger ledger;
  FakePool pool;
  AttemptLimits limits;
  limits.deadline = 1s;
  const MonotonicTime arrived = clock.monotonicTime();
  clock.advance(5s);  // the request waited (e.g. for its body) past the deadline
  AttemptPlanner p(idx, find(idx, "a"), est(), kBodyBytes, limits, ledger, pool, arrived);
  ASSERT_EQ(p.next(now()).kind, Kind::Try);  // the first attempt always starts
  p.onFailure(AttemptFailure::ConnectError, now());
  ASSERT_EQ(p.next(now()).kind, Kind::Answer);
  EXPECT_EQ(p.answer().why, Answer::Why::DeadlineExceeded);
  EXPECT_EQ(p.answer().error.status, 503);
  EXPECT_EQ(p.attempts(), 1);
  ASSERT_EQ(ledger.settles.size(), 1u);
  EXPECT_DOUBLE_EQ(ledger.settles[0].tokens, 0);

  // Within the deadline it retries; once the clock passes it, it stops.
  FakeLedger ledger2;
  FakePool pool2;
  AttemptPlanner q(idx, find(idx, "a"), est(), kBodyBytes, limits, ledger2, pool2, clock.monotonicTime());
  ASSERT_EQ(q.next(now()).kind, Kind::Try);
  clock.advance(999ms);
  q.onFailure(AttemptFailure::ConnectError, now());
  ASSERT_EQ(q.next(now()).kind, Kind::Try);
  clock.advance(1ms);
  q.onFailure(AttemptFailure::ConnectError, now());
  ASSERT_EQ(q.next(now()).kind, Kind::Answer);
  EXPECT_EQ(q.answer().why, Answer::Why::DeadlineExceeded);
  EXPECT_EQ(q.attempts(), 2);
}

TEST_F(AttemptPlannerTest, NextBeforeTheOutcomeIsAnError) {
  auto idx = indexOf({dep("a", {entry("p1", "r", "z", 0.1, {"10.0.0.1:80"})})});
  FakeLedger ledger;
  FakePool pool;
  AttemptPlanner p(idx, find(idx, "a"), est(), kBodyBytes, {}, ledger, pool, clock.monotonicTime());
  EXPECT_THROW(p.onFailure(AttemptFailure::ConnectError, now()), std::logic_error);
  ASSERT_EQ(p.next(now()).kind, Kind::Try);
  EXPECT_THROW(p.next(now()), std::logic_error);
  p.onResponse(ok(), now());
  EXPECT_THROW(p.onResponse(ok(), now()), std::logic_error);  // never settled twice
  EXPECT_EQ(ledger.settles.size(), 1u);
}

// ---- settlement ------------------------------------------------------------------

TEST_F(AttemptPlannerTest, SettlesWithTheResponseOnce) {
  auto idx = indexOf({dep("a", {entry("p1", "r", "z", 0.1, {"10.0.0.1:80"})})});
  struct Case {
    ResponseSummary r;
    double tokens;
    bool clamped;
  };
  ResponseSummary sse;
  sse.status = 200;
  sse.sse = true;
  sse.sseEvents = 7;
  ResponseSummary huge = ok(routing::Usage{INT64_MAX, INT64_MAX});
  for (const auto& c : std::vector<Case>{
           {ok(routing::Usage{10, 5}), 15, false},        // the usage reported
           {ok(std::nullopt, 429), 0, false},             // an upstream 429 (passed through): refund
           {ok(std::nullopt, 400), 0, false},             // any 4xx without usage: refund
           {sse, 100 + 7, false},                         // SSE without usage: prompt estimate + events
           {ok(), kCharge, false},                        // 200 without usage: the charge stands
           {huge, 1000 + 16 * 100 + 50, true},            // clamped: body bytes + 16 x estimate, max output
       }) {
    FakeLedger ledger;
    FakePool pool;
    AttemptPlanner p(idx, find(idx, "a"), est(), kBodyBytes, {}, ledger, pool, clock.monotonicTime());
    ASSERT_EQ(p.next(now()).kind, Kind::Try);
    const Settlement s = p.onResponse(c.r, now());
    EXPECT_TRUE(s.settled);
    EXPECT_DOUBLE_EQ(s.tokens, c.tokens) << "status " << c.r.status;
    EXPECT_EQ(s.usageClamped, c.clamped);
    ASSERT_EQ(ledger.settles.size(), 1u);
    EXPECT_DOUBLE_EQ(ledger.settles[0].tokens, c.tokens);
  }
}

TEST_F(AttemptPlannerTest, WithoutAReservationNothingIsSettled) {
  auto idx = indexOf({dep("a", {entry("p1", "r", "z", 0.1, {"10.0.0.1:80"})})});
  FakeLedger ledger;
  ledger.outcomes["a"] = AdmitOutcome::NoReservation;
  FakePool pool;
  AttemptPlanner p(idx, find(idx, "a"), est(), kBodyBytes, {}, ledger, pool, clock.monotonicTime());
  const Action a = p.next(now());
  ASSERT_EQ(a.kind, Kind::Try);
  EXPECT_TRUE(a.headers->empty());  // no rate-limit headers without a reservation
  const Settlement s = p.onResponse(ok(routing::Usage{10, 5}), now());
  EXPECT_FALSE(s.settled);
  EXPECT_TRUE(ledger.settles.empty());
}

// ---- PTU: spill or 429, with the real limiter on simulated time ---------------------

struct PtuTest : Clocked {
  routing::AdmissionController admission;
  AdmissionLedger ledger{admission};
  FakePool pool;

  // A reservation of 200 weighted tokens per minute on `a`: one request of 150 fits.
  DeploymentIndex table(bool withSpillover) {
    auto a = dep("a", {entry("p1", "r", "z", 0.1, {"10.0.0.1:80"})}, withSpillover ? std::optional<std::string>("b")
                                                                                    : std::nullopt);
    a.reservations = {reservation("r1", 200)};
    auto idx = indexOf({a, dep("b", {entry("p2", "r", "z", 0.1, {"10.0.1.1:80"})})});
    admission.sync(idx.table(), clock.monotonicTime());
    return idx;
  }
  // One request served with its estimate (150 tokens) as usage.
  void serveOne(const DeploymentIndex& idx) {
    AttemptPlanner p(idx, find(idx, "a"), est(), kBodyBytes, {}, ledger, pool, clock.monotonicTime());
    const Action a = p.next(now());
    ASSERT_EQ(a.kind, Kind::Try);
    ASSERT_EQ(a.deployment->deployment.name, "a");
    p.onResponse(ok(), now());
  }
  double used() { return admission.stats(clock.monotonicTime())["team/r1"].used; }
};

TEST_F(PtuTest, ExhaustedReservationSpillsToTheSpilloverDeployment) {
  auto idx = table(true);
  serveOne(idx);
  EXPECT_DOUBLE_EQ(used(), kCharge);
  clock.advance(1s);
  AttemptPlanner p(idx, find(idx, "a"), est(), kBodyBytes, {}, ledger, pool, clock.monotonicTime());
  Action a = p.next(now());
  ASSERT_EQ(a.kind, Kind::Spill);
  EXPECT_STREQ(a.reason, "ptu");
  ASSERT_NE(a.target, nullptr);
  EXPECT_EQ(a.target->deployment.name, "b");
  a = p.next(now());
  ASSERT_EQ(a.kind, Kind::Try);
  EXPECT_EQ(a.deployment->deployment.name, "b");
  EXPECT_EQ(a.entry->pool, "p2");
  EXPECT_EQ(header(*a.headers, "x-waterline-spilled"), "ptu");
  p.onResponse(ok(), now());
  EXPECT_DOUBLE_EQ(used(), kCharge);  // nothing more charged to r1
}

TEST_F(PtuTest, ExhaustedReservationWithoutSpilloverAnswers429UntilTheWindowMoves) {
  auto idx = table(false);
  serveOne(idx);
  clock.advance(1s);
  {
    AttemptPlanner p(idx, find(idx, "a"), est(), kBodyBytes, {}, ledger, pool, clock.monotonicTime());
    ASSERT_EQ(p.next(now()).kind, Kind::Answer);
    EXPECT_EQ(p.answer().why, Answer::Why::Throttled);
    EXPECT_EQ(p.answer().error.status, 429);
    EXPECT_EQ(p.answer().error.code, "rate_limit_exceeded");
    EXPECT_EQ(header(p.answer().headers, "Retry-After"), "60");  // 59.01 s, rounded up
    EXPECT_EQ(header(p.answer().headers, "x-ratelimit-remaining-tokens"), "50");
    EXPECT_EQ(p.attempts(), 0);
    EXPECT_TRUE(pool.attempts.size() == 1u);  // only serveOne's
  }
  // A minute later (simulated) the charge has left the window: admitted again.
  clock.advance(60s);
  serveOne(idx);
  EXPECT_EQ(pool.attempts.size(), 2u);
}

// ---- Quotas (spec.rateLimit): the same sliding window, per deployment ---------------

struct QuotaTest : Clocked {
  routing::AdmissionController admission;
  AdmissionLedger ledger{admission};
  FakePool pool;

  // `a` with a quota of `tpm` weighted tokens and `rpm` requests per minute (no
  // reservation); every request is charged kCharge (150).
  DeploymentIndex table(int64_t tpm, int64_t rpm, bool withSpillover = false) {
    auto a = dep("a", {entry("p1", "r", "z", 0.1, {"10.0.0.1:80"})}, withSpillover ? std::optional<std::string>("b")
                                                                                    : std::nullopt);
    a.rateLimit = routing::RateLimitInfo{tpm, rpm};
    auto idx = indexOf({a, dep("b", {entry("p2", "r", "z", 0.1, {"10.0.1.1:80"})})});
    admission.sync(idx.table(), clock.monotonicTime());
    return idx;
  }
  // Admitted and served (its estimate as usage): the headers of the Try.
  HeaderList serveOne(const DeploymentIndex& idx) {
    AttemptPlanner p(idx, find(idx, "a"), est(), kBodyBytes, {}, ledger, pool, clock.monotonicTime());
    const Action a = p.next(now());
    EXPECT_EQ(a.kind, Kind::Try);
    EXPECT_EQ(a.deployment->deployment.name, "a");
    HeaderList h = a.headers ? *a.headers : HeaderList{};
    p.onResponse(ok(), now());
    return h;
  }
  // A request that must be answered 429: the answer's headers.
  HeaderList throttled(const DeploymentIndex& idx) {
    AttemptPlanner p(idx, find(idx, "a"), est(), kBodyBytes, {}, ledger, pool, clock.monotonicTime());
    EXPECT_EQ(p.next(now()).kind, Kind::Answer);
    EXPECT_EQ(p.answer().why, Answer::Why::Throttled);
    EXPECT_EQ(p.answer().error.status, 429);
    EXPECT_EQ(p.answer().error.code, "rate_limit_exceeded");
    return p.answer().headers;
  }
  routing::QuotaStats stats() { return admission.quotaStats(clock.monotonicTime())["team/a"]; }
};

TEST_F(QuotaTest, TokensPerMinuteAdmitsUpToTheLimitThen429WithOpenAIHeaders) {
  auto idx = table(300, 100);  // two requests of 150
  auto h = serveOne(idx);
  EXPECT_EQ(header(h, "x-ratelimit-limit-tokens"), "300");
  EXPECT_EQ(header(h, "x-ratelimit-limit-requests"), "100");
  EXPECT_EQ(header(h, "x-ratelimit-remaining-tokens"), "150");
  EXPECT_EQ(header(h, "x-ratelimit-remaining-requests"), "99");
  clock.advance(1s);
  serveOne(idx);
  clock.advance(1s);
  h = throttled(idx);
  EXPECT_EQ(header(h, "Retry-After"), "59");  // the first charge leaves at 60.01 s: 58.01 s
  EXPECT_EQ(header(h, "retry-after-ms"), "58010");
  EXPECT_EQ(header(h, "x-ratelimit-limit-tokens"), "300");
  EXPECT_EQ(header(h, "x-ratelimit-limit-requests"), "100");
  EXPECT_EQ(header(h, "x-ratelimit-remaining-tokens"), "0");
  EXPECT_EQ(header(h, "x-ratelimit-remaining-requests"), "98");
  EXPECT_EQ(pool.attempts.size(), 2u);
  EXPECT_EQ(stats().counters, (routing::AdmissionCounters{2, 1, 0}));
  // When the first charge has left the window, one more fits.
  clock.advance(58s + 10ms);
  serveOne(idx);
  EXPECT_EQ(pool.attempts.size(), 3u);
}

TEST_F(QuotaTest, RequestsPerMinuteLimitsOnItsOwnAndARefusedRequestChargesNoTokens) {
  auto idx = table(100000, 2);
  serveOne(idx);
  serveOne(idx);
  clock.advance(10s);
  auto h = throttled(idx);
  EXPECT_EQ(header(h, "Retry-After"), "51");  // 50.01 s
  EXPECT_EQ(header(h, "x-ratelimit-remaining-requests"), "0");
  EXPECT_EQ(header(h, "x-ratelimit-remaining-tokens"), "99700");  // the refused one refunded
  EXPECT_DOUBLE_EQ(stats().usedTokens, 300);
  EXPECT_DOUBLE_EQ(stats().usedRequests, 2);
}

// N router replicas: each admits 1/N of the quota, as the static PTU split.
TEST_F(QuotaTest, EachOfNReplicasAdmitsItsShare) {
  auto idx = table(600, 8);
  admission.setShare(1.0 / 4, clock.monotonicTime());  // 150 tokens, 2 requests here
  auto h = serveOne(idx);
  EXPECT_EQ(header(h, "x-ratelimit-limit-tokens"), "150");
  EXPECT_EQ(header(h, "x-ratelimit-limit-requests"), "2");
  EXPECT_EQ(header(h, "x-ratelimit-remaining-tokens"), "0");
  EXPECT_EQ(header(h, "x-ratelimit-remaining-requests"), "1");
  clock.advance(1s);
  throttled(idx);
  EXPECT_DOUBLE_EQ(stats().limitTokens, 150);
  EXPECT_DOUBLE_EQ(stats().limitRequests, 2);
}

TEST_F(QuotaTest, OverTheQuotaSpillsToTheSpilloverDeployment) {
  auto idx = table(150, 100, true);
  serveOne(idx);
  AttemptPlanner p(idx, find(idx, "a"), est(), kBodyBytes, {}, ledger, pool, clock.monotonicTime());
  Action a = p.next(now());
  ASSERT_EQ(a.kind, Kind::Spill);
  EXPECT_STREQ(a.reason, "quota");
  a = p.next(now());
  ASSERT_EQ(a.kind, Kind::Try);
  EXPECT_EQ(a.deployment->deployment.name, "b");
  EXPECT_EQ(header(*a.headers, "x-waterline-spilled"), "quota");
  EXPECT_EQ(stats().counters, (routing::AdmissionCounters{1, 0, 1}));
}

// Settled like a reservation: a smaller usage is refunded to the quota.
TEST_F(QuotaTest, AdmittedRequestsAreSettledWithTheirUsage) {
  auto idx = table(1000, 100);
  AttemptPlanner p(idx, find(idx, "a"), est(), kBodyBytes, {}, ledger, pool, clock.monotonicTime());
  ASSERT_EQ(p.next(now()).kind, Kind::Try);
  EXPECT_DOUBLE_EQ(stats().usedTokens, kCharge);
  p.onResponse(ok(routing::Usage{10, 5}), now());
  EXPECT_DOUBLE_EQ(stats().usedTokens, 15);
}

// A reservation is used first; the quota takes what it cannot.
TEST_F(QuotaTest, WithAReservationTheQuotaTakesTheOverflow) {
  auto a = dep("a", {entry("p1", "r", "z", 0.1, {"10.0.0.1:80"})});
  a.reservations = {reservation("r1", 150)};
  a.rateLimit = routing::RateLimitInfo{150, 100};
  auto idx = indexOf({a});
  admission.sync(idx.table(), clock.monotonicTime());
  auto h = serveOne(idx);  // the reservation: no quota headers
  EXPECT_EQ(header(h, "x-ratelimit-limit-tokens"), "<none>");
  h = serveOne(idx);  // the quota
  EXPECT_EQ(header(h, "x-ratelimit-limit-tokens"), "150");
  throttled(idx);
  EXPECT_EQ(stats().counters, (routing::AdmissionCounters{1, 1, 0}));
}

// Both Retry-After and retry-after-ms are rounded up: the openai SDK waits exactly
// retry-after-ms, and with the milliseconds rounded down its retry could arrive up to 1 ms
// before the request fits, be refused again and spend the SDK's last retry.
TEST(RateLimitHeaders, RetryAfterIsRoundedUpInSecondsAndMilliseconds) {
  auto headersFor = [](Duration d) {
    routing::Admission a;
    a.outcome = routing::AdmitOutcome::Throttle;
    a.retryAfter = d;
    return rateLimitHeaders(a, true);
  };
  using std::chrono::microseconds;
  using std::chrono::milliseconds;
  auto h = headersFor(microseconds(5'170'400));  // 5.1704 s
  EXPECT_EQ(header(h, "Retry-After"), "6");
  EXPECT_EQ(header(h, "retry-after-ms"), "5171");
  h = headersFor(microseconds(5'000'400));  // 5.0004 s: the seconds agree with the milliseconds
  EXPECT_EQ(header(h, "Retry-After"), "6");
  EXPECT_EQ(header(h, "retry-after-ms"), "5001");
  h = headersFor(microseconds(1'500));
  EXPECT_EQ(header(h, "Retry-After"), "1");
  EXPECT_EQ(header(h, "retry-after-ms"), "2");
  h = headersFor(Duration(1));  // 1 ns
  EXPECT_EQ(header(h, "retry-after-ms"), "1");
  h = headersFor(milliseconds(2'000));  // exact: unchanged
  EXPECT_EQ(header(h, "Retry-After"), "2");
  EXPECT_EQ(header(h, "retry-after-ms"), "2000");
  h = headersFor(Duration::zero());
  EXPECT_EQ(header(h, "Retry-After"), "1");
  EXPECT_EQ(header(h, "retry-after-ms"), "1");
  h = headersFor(Duration::max());  // never fits
  EXPECT_EQ(header(h, "Retry-After"), "60");
  EXPECT_EQ(header(h, "retry-after-ms"), "60000");
}

TEST_F(PtuTest, AFailedRequestIsRefundedAndASuccessfulOneSettledWithItsUsage) {
  auto idx = table(false);
  {
    AttemptPlanner p(idx, find(idx, "a"), est(), kBodyBytes, {}, ledger, pool, clock.monotonicTime());
    ASSERT_EQ(p.next(now()).kind, Kind::Try);
    EXPECT_DOUBLE_EQ(used(), kCharge);  // charged at admission
    p.onFailure(AttemptFailure::ConnectError, now());
    ASSERT_EQ(p.next(now()).kind, Kind::Answer);  // the only replica failed
    EXPECT_DOUBLE_EQ(used(), 0);                   // refunded, once (a second refund would not show)
  }
  {
    AttemptPlanner p(idx, find(idx, "a"), est(), kBodyBytes, {}, ledger, pool, clock.monotonicTime());
    ASSERT_EQ(p.next(now()).kind, Kind::Try);
    p.onResponse(ok(routing::Usage{30, 10}), now());
    EXPECT_DOUBLE_EQ(used(), 40);
  }
}

// ---- capacity --------------------------------------------------------------------

TEST_F(AttemptPlannerTest, SaturatedPoolsSpillOverOr429AndBestEffortUsesThem) {
  auto idx = indexOf({dep("a", {entry("p1", "r", "z", 0.95, {"10.0.0.1:80"})}, "b"),
                      dep("b", {entry("p2", "r", "z", 0.1, {"10.0.1.1:80"})}),
                      dep("c", {entry("p3", "r", "z", 0.95, {"10.0.2.1:80"})})});
  FakePool pool;
  pool.saturatedPools = {"p1", "p3"};
  {
    FakeLedger ledger;
    AttemptPlanner p(idx, find(idx, "a"), est(), kBodyBytes, {}, ledger, pool, clock.monotonicTime());
    const Action a = p.next(now());
    ASSERT_EQ(a.kind, Kind::Spill);
    EXPECT_STREQ(a.reason, "capacity");
    ASSERT_EQ(ledger.settles.size(), 1u);  // a's charge refunded before spilling
    EXPECT_DOUBLE_EQ(ledger.settles[0].tokens, 0);
    EXPECT_EQ(p.next(now()).deployment->deployment.name, "b");
  }
  {
    FakeLedger ledger;
    AttemptPlanner p(idx, find(idx, "c"), est(), kBodyBytes, {}, ledger, pool, clock.monotonicTime());
    ASSERT_EQ(p.next(now()).kind, Kind::Answer);
    EXPECT_EQ(p.answer().why, Answer::Why::CapacityExceeded);
    EXPECT_EQ(p.answer().error.status, 429);
    EXPECT_EQ(p.answer().error.code, "capacity_exceeded");
    EXPECT_EQ(header(p.answer().headers, "Retry-After"), "1");
    EXPECT_EQ(ledger.settles.size(), 1u);
  }
  {
    FakeLedger ledger;
    AttemptLimits limits;
    limits.bestEffort = true;
    AttemptPlanner p(idx, find(idx, "c"), est(), kBodyBytes, limits, ledger, pool, clock.monotonicTime());
    const Action a = p.next(now());
    ASSERT_EQ(a.kind, Kind::Try);
    EXPECT_EQ(a.entry->pool, "p3");
  }
}

TEST_F(AttemptPlannerTest, NoHealthyReplicaAnswers503) {
  auto idx = indexOf({dep("a", {entry("p1", "r", "z", 0.1, {})})});
  FakeLedger ledger;
  WorkerUpstreams pool({}, fixedRandom({0.0}));
  AttemptPlanner p(idx, find(idx, "a"), est(), kBodyBytes, {}, ledger, pool, clock.monotonicTime());
  ASSERT_EQ(p.next(now()).kind, Kind::Answer);
  EXPECT_EQ(p.answer().why, Answer::Why::NoHealthyUpstream);
  EXPECT_EQ(p.answer().error.status, 503);
  EXPECT_EQ(p.answer().error.code, "no_healthy_upstream");
}

// ---- WorkerUpstreams: ejection on the injected clock --------------------------------

TEST_F(AttemptPlannerTest, AReplicaThatRefusedAConnectionIsEjectedForTheConfiguredTime) {
  auto idx = indexOf({dep("a", {entry("p1", "r", "z", 0.1, {"10.0.0.1:80", "10.0.0.2:80"})})});
  WorkerUpstreams::Options opts;
  opts.ejectAfterConnectFailure = 2s;
  // Random draws that always pick the first replica when it is a candidate.
  WorkerUpstreams pool(opts, fixedRandom({0.0}));
  FakeLedger ledger;
  {
    AttemptPlanner p(idx, find(idx, "a"), est(), kBodyBytes, {}, ledger, pool, clock.monotonicTime());
    Action a = p.next(now());
    ASSERT_EQ(a.endpoint(), "10.0.0.1:80");
    p.onFailure(AttemptFailure::ConnectError, now());
    a = p.next(now());
    ASSERT_EQ(a.kind, Kind::Try);
    EXPECT_EQ(a.endpoint(), "10.0.0.2:80");
    p.onResponse(ok(), now());
  }
  EXPECT_TRUE(pool.ejected("10.0.0.1:80", clock.monotonicTime()));
  clock.advance(1999ms);
  {
    AttemptPlanner p(idx, find(idx, "a"), est(), kBodyBytes, {}, ledger, pool, clock.monotonicTime());
    EXPECT_EQ(p.next(now()).endpoint(), "10.0.0.2:80");  // .1 still ejected
  }
  clock.advance(1ms);
  EXPECT_FALSE(pool.ejected("10.0.0.1:80", clock.monotonicTime()));
  {
    AttemptPlanner p(idx, find(idx, "a"), est(), kBodyBytes, {}, ledger, pool, clock.monotonicTime());
    EXPECT_EQ(p.next(now()).endpoint(), "10.0.0.1:80");  // back
  }
}

TEST_F(AttemptPlannerTest, OnlyConnectErrorsEject) {
  auto idx = indexOf({dep("a", {entry("p1", "r", "z", 0.1, {"10.0.0.1:80", "10.0.0.2:80"})})});
  WorkerUpstreams pool({}, fixedRandom({0.0}));
  FakeLedger ledger;
  for (AttemptFailure f : {AttemptFailure::WriteError, AttemptFailure::HeaderError, AttemptFailure::Status5xx,
                           AttemptFailure::BodyError}) {
    AttemptPlanner p(idx, find(idx, "a"), est(), kBodyBytes, {}, ledger, pool, clock.monotonicTime());
    const Action a = p.next(now());
    ASSERT_EQ(a.endpoint(), "10.0.0.1:80");
    p.onFailure(f, now());
    EXPECT_FALSE(pool.ejected("10.0.0.1:80", clock.monotonicTime())) << toString(f);
  }
}

TEST_F(AttemptPlannerTest, EveryReplicaEjectedStillGetsTried) {
  // As pickEndpoint does: when every replica is skipped, one is used anyway.
  auto idx = indexOf({dep("a", {entry("p1", "r", "z", 0.1, {"10.0.0.1:80"})})});
  WorkerUpstreams pool({}, fixedRandom({0.0}));
  FakeLedger ledger;
  {
    AttemptPlanner p(idx, find(idx, "a"), est(), kBodyBytes, {}, ledger, pool, clock.monotonicTime());
    ASSERT_EQ(p.next(now()).kind, Kind::Try);
    p.onFailure(AttemptFailure::ConnectError, now());
    EXPECT_EQ(p.next(now()).kind, Kind::Answer);
  }
  ASSERT_TRUE(pool.ejected("10.0.0.1:80", clock.monotonicTime()));
  AttemptPlanner p(idx, find(idx, "a"), est(), kBodyBytes, {}, ledger, pool, clock.monotonicTime());
  const Action a = p.next(now());
  ASSERT_EQ(a.kind, Kind::Try);
  EXPECT_EQ(a.endpoint(), "10.0.0.1:80");
}

}  // namespace
}  // namespace waterline::router
