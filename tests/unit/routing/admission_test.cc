#include "waterline/routing/admission.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "fixtures.h"
#include "waterline/routing/tokens.h"

#include <limits>

namespace waterline::routing {
namespace {

using namespace std::chrono_literals;
using namespace testing;

MonotonicTime at(Duration d) { return MonotonicTime(std::chrono::hours(1000)) + d; }

// 100 ms slots keep the timing arithmetic below readable; the default is 10 ms.
LimiterConfig cfg(double tpm, int burst = 0, LimiterMode mode = LimiterMode::SlidingWindow) {
  LimiterConfig c;
  c.tokensPerMinute = tpm;
  c.burstPercent = burst;
  c.mode = mode;
  c.slots = 600;
  return c;
}

TEST(Limiter, DefaultResolutionIsTenMilliseconds) {
  LimiterConfig c;
  c.tokensPerMinute = 6000;
  EXPECT_EQ(c.slots, 6000);
  ReservationLimiter l(c);
  ASSERT_TRUE(l.tryAdmit(6000, at(0s)));
  EXPECT_FALSE(l.tryAdmit(1, at(60s)));
  EXPECT_TRUE(l.tryAdmit(1, at(60s + 10ms)));
  ReservationLimiter l2(c);
  ASSERT_TRUE(l2.tryAdmit(6000, at(0s)));
  EXPECT_EQ(l2.retryAfter(1, at(30s)), 30s + 10ms);
}

TEST(Limiter, LimitIsOneMinuteTimesBurstTimesShare) {
  EXPECT_DOUBLE_EQ(cfg(60000).limit(), 60000);
  EXPECT_DOUBLE_EQ(cfg(60000, 20).limit(), 72000);
  auto c = cfg(60000, 20);
  c.share = 0.25;
  EXPECT_DOUBLE_EQ(c.limit(), 18000);
}

TEST(Limiter, SlidingWindowAdmitsUpToTheLimitThenRefuses) {
  ReservationLimiter l(cfg(6000));
  for (int i = 0; i < 6; ++i) EXPECT_TRUE(l.tryAdmit(1000, at(i * 1s))) << i;
  EXPECT_FALSE(l.tryAdmit(1, at(6s)));
  EXPECT_DOUBLE_EQ(l.used(at(6s)), 6000);
  EXPECT_DOUBLE_EQ(l.remaining(at(6s)), 0);
}

TEST(Limiter, NonFiniteChargesAndUsageCannotPoisonTheWindow) {
  for (auto mode : {LimiterMode::SlidingWindow, LimiterMode::TokenBucket}) {
    ReservationLimiter l(cfg(600, 0, mode));
    const auto t0 = at(0s);
    EXPECT_FALSE(l.tryAdmit(std::nan(""), t0)) << "a NaN charge was admitted";
    EXPECT_FALSE(l.tryAdmit(std::numeric_limits<double>::infinity(), t0));
    auto t = l.tryAdmit(100, t0);
    ASSERT_TRUE(t);
    l.settle(*t, std::numeric_limits<double>::infinity(), t0);
    EXPECT_DOUBLE_EQ(l.used(t0), 100);  // kept the charge
    auto u = l.tryAdmit(100, t0);
    ASSERT_TRUE(u);
    l.settle(*u, std::nan(""), t0);
    EXPECT_DOUBLE_EQ(l.used(t0), 200);
    EXPECT_TRUE(l.tryAdmit(400, t0));  // the rest of the window is still usable
  }
}

TEST(Limiter, SlidingWindowRefillsAsChargesLeaveTheWindow) {
  ReservationLimiter l(cfg(6000));
  ASSERT_TRUE(l.tryAdmit(4000, at(0s)));
  ASSERT_TRUE(l.tryAdmit(2000, at(10s)));
  EXPECT_FALSE(l.tryAdmit(1000, at(59s)));
  // The window is 60.0-60.1 s (whole 100 ms slots): at 60.05 s the first charge is
  // still counted, at 60.1 s it has left.
  EXPECT_FALSE(l.tryAdmit(1000, at(60s + 50ms)));
  EXPECT_TRUE(l.tryAdmit(1000, at(60s + 100ms)));
  EXPECT_DOUBLE_EQ(l.used(at(60s + 100ms)), 3000);
  EXPECT_DOUBLE_EQ(l.used(at(71s)), 1000);
  EXPECT_DOUBLE_EQ(l.used(at(10min)), 0);
}

TEST(Limiter, AnySixtySecondIntervalStaysWithinTheLimit) {
  // Greedy client: asks for 700 tokens every 250 ms for 5 minutes; limit 6000/min.
  ReservationLimiter l(cfg(6000));
  std::vector<std::pair<Duration, double>> admitted;
  for (Duration t = 0s; t < 300s; t += 250ms)
    if (l.tryAdmit(700, at(t))) admitted.emplace_back(t, 700);
  for (size_t i = 0; i < admitted.size(); ++i) {
    double sum = 0;
    for (size_t j = i; j < admitted.size() && admitted[j].first < admitted[i].first + 60s; ++j) sum += admitted[j].second;
    EXPECT_LE(sum, 6000) << "window starting at " << admitted[i].first.count();
  }
  // And it uses (almost) all of it: 8 requests (5600) per 60.x s.
  EXPECT_GE(admitted.size(), 8u * 4u);
}

TEST(Limiter, BurstRaisesTheLimit) {
  ReservationLimiter l(cfg(6000, 50));
  for (int i = 0; i < 9; ++i) EXPECT_TRUE(l.tryAdmit(1000, at(0s)));
  EXPECT_FALSE(l.tryAdmit(1000, at(0s)));
}

TEST(Limiter, SettleRefundsAndCharges) {
  ReservationLimiter l(cfg(6000));
  auto t = l.tryAdmit(5000, at(0s));  // estimate: prompt + max_tokens
  ASSERT_TRUE(t);
  EXPECT_FALSE(l.tryAdmit(2000, at(1s)));
  l.settle(*t, 3000, at(2s));  // actual usage was smaller: refund 2000
  EXPECT_DOUBLE_EQ(l.used(at(2s)), 3000);
  auto t2 = l.tryAdmit(2000, at(2s));
  ASSERT_TRUE(t2);
  l.settle(*t2, 2500, at(3s));  // actual larger: charge 500 more
  EXPECT_DOUBLE_EQ(l.used(at(3s)), 5500);
  // The refund lands in the original slot, so it leaves the window with it.
  EXPECT_DOUBLE_EQ(l.used(at(60s + 500ms)), 2500);
  // Settling a charge that already left the window changes nothing.
  l.settle(*t, 0, at(200s));
  EXPECT_DOUBLE_EQ(l.used(at(200s)), 0);
}

TEST(Limiter, RetryAfterIsWhenEnoughChargesExpire) {
  ReservationLimiter l(cfg(6000));
  ASSERT_TRUE(l.tryAdmit(3000, at(0s)));
  ASSERT_TRUE(l.tryAdmit(3000, at(20s)));
  EXPECT_EQ(l.retryAfter(1000, at(30s)), 30s + 100ms);  // first charge leaves at 60.1 s
  EXPECT_EQ(l.retryAfter(4000, at(30s)), 50s + 100ms);  // needs both to leave
  EXPECT_EQ(l.retryAfter(0, at(30s)), Duration::zero());
  EXPECT_EQ(l.retryAfter(7000, at(30s)), Duration::max());  // larger than the limit
}

TEST(Limiter, RemainingRequestsUsesTheAverageCharge) {
  ReservationLimiter l(cfg(10000));
  ASSERT_TRUE(l.tryAdmit(1000, at(0s)));
  ASSERT_TRUE(l.tryAdmit(3000, at(0s)));
  EXPECT_DOUBLE_EQ(l.remainingRequests(at(1s), 500), 3);  // 6000 left / 2000 average
  ReservationLimiter empty(cfg(10000));
  EXPECT_DOUBLE_EQ(empty.remainingRequests(at(1s), 500), 20);
}

TEST(Limiter, TokenBucketModeRefillsContinuouslyAndAllowsMoreThanTheLimitPerMinute) {
  ReservationLimiter l(cfg(6000, 0, LimiterMode::TokenBucket));
  EXPECT_TRUE(l.tryAdmit(6000, at(0s)));  // starts full
  EXPECT_FALSE(l.tryAdmit(100, at(0s)));
  EXPECT_TRUE(l.tryAdmit(100, at(1s)));   // 100 tokens/s refill
  EXPECT_FALSE(l.tryAdmit(200, at(2s)));
  EXPECT_EQ(l.retryAfter(200, at(2s)), 1s);
  // Within [0, 60 s] a full bucket plus the refill admits ~2x the per-minute limit.
  double admitted = 6100;
  for (Duration t = 2s; t <= 60s; t += 1s)
    if (l.tryAdmit(100, at(t))) admitted += 100;
  EXPECT_GT(admitted, 11000);
  auto t = l.tryAdmit(0, at(60s));
  ASSERT_TRUE(t);
}

TEST(Limiter, ReconfigureKeepsUsage) {
  ReservationLimiter l(cfg(6000));
  ASSERT_TRUE(l.tryAdmit(5000, at(0s)));
  l.reconfigure(cfg(12000), at(1s));
  EXPECT_DOUBLE_EQ(l.limit(), 12000);
  EXPECT_DOUBLE_EQ(l.used(at(1s)), 5000);
  EXPECT_TRUE(l.tryAdmit(7000, at(1s)));
  EXPECT_FALSE(l.tryAdmit(1, at(1s)));
  auto c = cfg(12000);
  c.share = 0.5;
  l.reconfigure(c, at(2s));
  EXPECT_DOUBLE_EQ(l.limit(), 6000);
  EXPECT_FALSE(l.tryAdmit(1, at(2s)));
  // Changing the layout carries usage as one charge.
  auto c2 = c;
  c2.slots = 6000;
  l.reconfigure(c2, at(3s));
  EXPECT_DOUBLE_EQ(l.used(at(3s)), 12000);
}

// ---- controller ------------------------------------------------------------------

ReservationInfo reservation(std::string name, int64_t tpm, int burst = 0) {
  ReservationInfo r;
  r.reservation = {"team", std::move(name)};
  r.tokensPerMinute = tpm;
  r.burstPercent = burst;
  return r;
}

RoutingTable tableWith(DeploymentRoutes d) {
  RoutingTable t;
  t.deployments.push_back(std::move(d));
  t.normalize();
  return t;
}

TEST(Admission, NoReservationMeansNoLimit) {
  AdmissionController ac;
  auto d = deployment("d", api::DeploymentType::Global, threePools(0, 0, 0));
  ac.sync(tableWith(d), at(0s));
  auto a = ac.admit(d, 1e12, at(0s));
  EXPECT_EQ(a.outcome, AdmitOutcome::NoReservation);
}

TEST(Admission, ThrottlesWithRetryAfterAndRemaining) {
  AdmissionController ac;
  auto d = deployment("d", api::DeploymentType::Global, threePools(0, 0, 0));
  d.reservations = {reservation("r1", 6000)};
  ac.sync(tableWith(d), at(0s));
  auto a = ac.admit(d, 4000, at(0s));
  ASSERT_EQ(a.outcome, AdmitOutcome::Admitted);
  EXPECT_EQ(a.reservation.str(), "team/r1");
  EXPECT_DOUBLE_EQ(a.remainingTokens, 2000);
  auto b = ac.admit(d, 4000, at(1s));
  ASSERT_EQ(b.outcome, AdmitOutcome::Throttle);
  EXPECT_EQ(b.reservation.str(), "team/r1");
  EXPECT_EQ(b.retryAfter, 59s + 10ms);  // default 10 ms slots
  EXPECT_DOUBLE_EQ(b.remainingTokens, 2000);
  EXPECT_FALSE(b.limiter);
  auto s = ac.stats(at(1s));
  EXPECT_EQ(s["team/r1"].counters, (AdmissionCounters{1, 1, 0}));
  EXPECT_DOUBLE_EQ(s["team/r1"].limit, 6000);
  EXPECT_DOUBLE_EQ(s["team/r1"].used, 4000);
}

TEST(Admission, SpilloverTakesPrecedenceOverThrottling) {
  AdmissionController ac;
  auto d = deployment("d", api::DeploymentType::Global, threePools(0, 0, 0));
  d.reservations = {reservation("r1", 6000)};
  d.spillover = "d-overflow";
  ac.sync(tableWith(d), at(0s));
  ASSERT_EQ(ac.admit(d, 6000, at(0s)).outcome, AdmitOutcome::Admitted);
  auto s = ac.admit(d, 1, at(0s));
  EXPECT_EQ(s.outcome, AdmitOutcome::Spill);
  EXPECT_EQ(ac.stats(at(0s))["team/r1"].counters, (AdmissionCounters{1, 0, 1}));
}

TEST(Admission, ReservationsAreTriedInOrderBeforeSpilling) {
  AdmissionController ac;
  auto d = deployment("d", api::DeploymentType::Global, threePools(0, 0, 0));
  auto r2 = reservation("b-second", 3000);
  r2.scope.type = api::ScopeType::Regional;
  r2.scope.region = "us-east";
  d.reservations = {r2, reservation("a-first", 3000)};
  d.spillover = "other";
  d.normalize();
  ac.sync(tableWith(d), at(0s));
  auto a = ac.admit(d, 2000, at(0s));
  EXPECT_EQ(a.reservation.name, "a-first");
  EXPECT_EQ(a.scope->type, api::ScopeType::Global);
  auto b = ac.admit(d, 2000, at(0s));
  EXPECT_EQ(b.outcome, AdmitOutcome::Admitted);
  EXPECT_EQ(b.reservation.name, "b-second");
  EXPECT_EQ(b.scope->region, "us-east");
  EXPECT_EQ(ac.admit(d, 2000, at(0s)).outcome, AdmitOutcome::Spill);
  // Settling a refund makes room in the charged reservation again.
  ac.settle(a, 500, at(1s));
  auto c = ac.admit(d, 2000, at(1s));
  EXPECT_EQ(c.outcome, AdmitOutcome::Admitted);
  EXPECT_EQ(c.reservation.name, "a-first");
}

TEST(Admission, ShareSplitsTheReservationBetweenReplicas) {
  AdmissionController ac(LimiterMode::SlidingWindow, 1.0 / 3);
  auto d = deployment("d", api::DeploymentType::Global, threePools(0, 0, 0));
  d.reservations = {reservation("r", 9000)};
  ac.sync(tableWith(d), at(0s));
  EXPECT_EQ(ac.admit(d, 3000, at(0s)).outcome, AdmitOutcome::Admitted);
  EXPECT_EQ(ac.admit(d, 1, at(0s)).outcome, AdmitOutcome::Throttle);
  ac.setShare(0.5, at(1s));  // a replica left: 2 remain
  EXPECT_DOUBLE_EQ(ac.share(), 0.5);
  EXPECT_EQ(ac.admit(d, 1500, at(1s)).outcome, AdmitOutcome::Admitted);
}

TEST(Admission, SyncReconfiguresKeepsCountersAndDropsGoneReservations) {
  AdmissionController ac;
  auto d = deployment("d", api::DeploymentType::Global, threePools(0, 0, 0));
  d.reservations = {reservation("r", 6000)};
  ac.sync(tableWith(d), at(0s));
  ASSERT_EQ(ac.admit(d, 5000, at(0s)).outcome, AdmitOutcome::Admitted);
  d.reservations[0].tokensPerMinute = 12000;
  ac.sync(tableWith(d), at(1s));
  auto a = ac.admit(d, 5000, at(1s));
  EXPECT_EQ(a.outcome, AdmitOutcome::Admitted);
  EXPECT_EQ(ac.stats(at(1s))["team/r"].counters.admitted, 2u);
  EXPECT_DOUBLE_EQ(ac.stats(at(1s))["team/r"].used, 10000);
  d.reservations.clear();
  ac.sync(tableWith(d), at(2s));
  EXPECT_TRUE(ac.stats(at(2s)).empty());
  // A settle against a dropped reservation is harmless.
  ac.settle(a, 0, at(3s));
}

TEST(Admission, UnsyncedReservationIsNotEnforced) {
  AdmissionController ac;
  auto d = deployment("d", api::DeploymentType::Global, threePools(0, 0, 0));
  d.reservations = {reservation("r", 1)};
  EXPECT_EQ(ac.admit(d, 100, at(0s)).outcome, AdmitOutcome::NoReservation);
}

// Finding 1 of the hardening issue, end to end through the estimate and the charge: twenty
// requests with a huge max_tokens and n = 128 against a 100,000 tokens/min reservation
// were all admitted (the estimate wrapped negative and the charge was clamped to 0).
TEST(Admission, HostileEstimatesAreThrottledNotAdmittedForFree) {
  AdmissionController ac;
  auto d = deployment("d", api::DeploymentType::Global, threePools(0, 0, 0));
  d.reservations = {reservation("r1", 100'000)};
  ac.sync(tableWith(d), at(0s));
  nlohmann::json body = {{"model", "d"},
                         {"messages", nlohmann::json::array({{{"role", "user"}, {"content", "hello"}}})},
                         {"max_tokens", INT64_MAX / 4},
                         {"n", 128}};
  const auto est = estimateTokens(body, ApiKind::ChatCompletions);
  const double charge = d.weightedTokens(static_cast<double>(est.promptTokens), static_cast<double>(est.maxOutputTokens));
  for (int i = 0; i < 20; ++i) {
    auto a = ac.admit(d, charge, at(std::chrono::milliseconds(i)));
    EXPECT_EQ(a.outcome, AdmitOutcome::Throttle) << i;
    EXPECT_EQ(a.retryAfter, Duration::max());
  }
  EXPECT_DOUBLE_EQ(ac.stats(at(1s))["team/r1"].used, 0);
}

TEST(Limiter, NonFiniteChargesAreRefusedAndNonFiniteUsageKeepsTheCharge) {
  ReservationLimiter l(cfg(6000));
  EXPECT_FALSE(l.tryAdmit(std::numeric_limits<double>::quiet_NaN(), at(0s)));
  EXPECT_FALSE(l.tryAdmit(std::numeric_limits<double>::infinity(), at(0s)));
  EXPECT_EQ(l.retryAfter(std::numeric_limits<double>::quiet_NaN(), at(0s)), Duration::max());
  auto t = l.tryAdmit(1000, at(0s));
  ASSERT_TRUE(t);
  l.settle(*t, std::numeric_limits<double>::infinity(), at(1s));
  EXPECT_TRUE(l.tryAdmit(5000, at(1s)));  // still 1000 charged, not a full window
  auto u = l.tryAdmit(0, at(1s));
  ASSERT_TRUE(u);
  l.settle(*u, std::numeric_limits<double>::quiet_NaN(), at(1s));
  EXPECT_FALSE(l.tryAdmit(1, at(2s)));  // 6000 of 6000: the NaN did not reset the sum
}

}  // namespace
}  // namespace waterline::routing
