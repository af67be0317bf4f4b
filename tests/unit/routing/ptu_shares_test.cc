// Demand-aware PTU shares between router replicas (ptu_shares.h) and the per-reservation
// share of AdmissionController they set.
#include "waterline/routing/ptu_shares.h"

#include <gtest/gtest.h>

#include <cmath>
#include <numeric>

#include "fixtures.h"
#include "waterline/routing/admission.h"

namespace waterline::routing {
namespace {

using namespace std::chrono_literals;
using namespace testing;

constexpr double kL = 600'000;  // the reservation's tokens per window
constexpr int64_t kNow = 1'000'000;

ShareReport rep(std::string id, double used, double demand, int64_t at = kNow) {
  return {std::move(id), used, demand, at};
}

double sum(const std::map<std::string, double>& m) {
  double s = 0;
  for (const auto& [k, v] : m) s += v;
  return s;
}

TEST(PtuShares, SumToTheReservation) {
  for (auto reports : std::vector<std::vector<ShareReport>>{
           {rep("a", 0, 0)},
           {rep("a", 0, 0), rep("b", 0, 0), rep("c", 0, 0)},
           {rep("a", 100'000, 900), rep("b", 5'000, 10), rep("c", 0, 0)},
           {rep("a", 590'000, 5000), rep("b", 10'000, 0)},
           {rep("a", 500'000, 1), rep("b", 400'000, 1)},  // over the limit (stale reports)
       }) {
    auto s = computeShares(kL, reports, kNow);
    EXPECT_EQ(s.size(), reports.size());
    EXPECT_NEAR(sum(s), 1.0, 1e-9);
    for (const auto& [id, v] : s) EXPECT_GT(v, 0) << id;
  }
}

TEST(PtuShares, NoDemandAnywhereIsTheStaticSplit) {
  auto s = computeShares(kL, {rep("a", 0, 0), rep("b", 0, 0), rep("c", 0, 0)}, kNow);
  for (const auto& [id, v] : s) EXPECT_NEAR(v, 1.0 / 3, 1e-12) << id;
}

TEST(PtuShares, TheRoomFollowsDemand) {
  // Nothing used yet; a has 9x b's demand, c none.
  ShareParams p;
  p.floor = 0.3;
  p.headroom = 0;
  auto s = computeShares(kL, {rep("a", 0, 900), rep("b", 0, 100), rep("c", 0, 0)}, kNow, p);
  EXPECT_NEAR(s["a"], 0.7 * 0.9 + 0.1, 1e-12);
  EXPECT_NEAR(s["b"], 0.7 * 0.1 + 0.1, 1e-12);
  EXPECT_NEAR(s["c"], 0.1, 1e-12);
  EXPECT_GT(s["a"], s["b"]);
  // Demand moves to c: so does the room.
  auto t = computeShares(kL, {rep("a", 0, 0), rep("b", 0, 100), rep("c", 0, 900)}, kNow, p);
  EXPECT_GT(t["c"], t["a"]);
  EXPECT_NEAR(t["c"], s["a"], 1e-12);
}

TEST(PtuShares, NoShareFallsBelowWhatTheReplicaAlreadyHolds) {
  // a holds half the window but has no demand now; b wants everything.
  ShareParams p;
  p.floor = 0.3;
  p.headroom = 0;
  auto s = computeShares(kL, {rep("a", 300'000, 0), rep("b", 100'000, 5000)}, kNow, p);
  EXPECT_GE(s["a"] * kL, 300'000);
  EXPECT_GE(s["b"] * kL, 100'000);
  // The room (200,000) goes mostly to b, the floor's part evenly.
  EXPECT_NEAR(s["b"] * kL, 100'000 + 200'000 * (0.7 + 0.15), 1e-6);
  EXPECT_NEAR(s["a"] * kL, 300'000 + 200'000 * 0.15, 1e-6);
}

TEST(PtuShares, IdleReplicaKeepsAFloorSoANewBurstIsAdmitted) {
  // a took nearly everything in the last seconds; c has been idle. c still gets
  // floor/N of the room, enough for requests until the next exchange moves more to it.
  ShareParams p;
  p.floor = 0.3;
  p.headroom = 0;
  auto s = computeShares(kL, {rep("a", 200'000, 10'000), rep("b", 0, 0), rep("c", 0, 0)}, kNow, p);
  const double room = kL - 200'000;
  EXPECT_NEAR(s["c"] * kL, room * 0.3 / 3, 1e-6);
  // And with a real limiter: c admits a 20,000-token burst at once.
  LimiterConfig c;
  c.tokensPerMinute = kL;
  c.share = s["c"];
  ReservationLimiter l(c);
  const auto t0 = MonotonicTime(std::chrono::hours(1));
  EXPECT_TRUE(l.tryAdmit(20'000, t0));
  EXPECT_TRUE(l.tryAdmit(20'000, t0));
  // With floor 0 it would be refused outright.
  ShareParams none;
  none.floor = 0;
  none.headroom = 0;
  auto z = computeShares(kL, {rep("a", 200'000, 10'000), rep("b", 0, 0), rep("c", 0, 0)}, kNow, none);
  EXPECT_LT(z["c"] * kL, 1.0);
}

TEST(PtuShares, EverySliceHoldsTheLargestRequestWhileTheRoomAllows) {
  ShareParams p;
  p.floor = 0;
  p.headroom = 0;
  // All demand on a; c's slice would be 0, but b reported a 50,000-token request.
  std::vector<ShareReport> r = {rep("a", 0, 1000), rep("b", 0, 0), rep("c", 0, 0)};
  r[1].largest = 50'000;
  auto s = computeShares(kL, r, kNow, p);
  EXPECT_NEAR(sum(s), 1.0, 1e-9);
  EXPECT_NEAR(s["c"] * kL, 50'000, 1e-6);
  EXPECT_NEAR(s["b"] * kL, 50'000, 1e-6);
  EXPECT_NEAR(s["a"] * kL, kL - 100'000, 1e-6);
  // Little room: the slices are at most an even split of it.
  r[0].used = 540'000;
  s = computeShares(kL, r, kNow, p);
  EXPECT_NEAR(sum(s), 1.0, 1e-9);
  EXPECT_NEAR(s["c"] * kL, 20'000, 1e-6);
  EXPECT_NEAR(s["a"] * kL, 540'000 + 20'000, 1e-6);
}

TEST(PtuShares, RoomBeyondWhatTheDemandCanUseIsSplitEvenly) {
  ShareParams p;
  p.floor = 0;
  p.headroom = 2;
  p.intervalSec = 1;
  // Demand 10,000 tokens/s, all on a: it can use 20,000 (headroom 2) before the next
  // exchange; the other 580,000 of the room are split evenly.
  auto s = computeShares(kL, {rep("a", 0, 10'000), rep("b", 0, 0)}, kNow, p);
  EXPECT_NEAR(s["a"] * kL, 20'000 + 290'000, 1e-6);
  EXPECT_NEAR(s["b"] * kL, 290'000, 1e-6);
  // Demand above the room: all of it by demand.
  s = computeShares(kL, {rep("a", 590'000, 10'000), rep("b", 0, 0)}, kNow, p);
  EXPECT_NEAR(s["a"] * kL, 600'000, 1.0);  // b keeps minShare
  EXPECT_NEAR(sum(s), 1.0, 1e-9);
}

TEST(PtuShares, SpareOvercommitIsBoundedAndOffByDefault) {
  EXPECT_EQ(ShareParams{}.spareOvercommit, 0);
  ShareParams p;
  p.floor = 0;
  p.headroom = 2;
  p.spareOvercommit = 0.5;
  // Room 600,000, demand can use 20,000 of it: spare 580,000. Each replica may also use
  // half of the other's even part (145,000): the shares sum to 1 + 145,000 x 2 / L.
  auto s = computeShares(kL, {rep("a", 0, 10'000), rep("b", 0, 0)}, kNow, p);
  EXPECT_NEAR(s["a"] * kL, 20'000 + 290'000 + 145'000, 1e-6);
  EXPECT_NEAR(s["b"] * kL, 290'000 + 145'000, 1e-6);
  EXPECT_NEAR(sum(s), 1.0 + 290'000.0 / kL, 1e-9);
  // No spare (the demand can use the room): no overcommit, the shares sum to 1.
  s = computeShares(kL, {rep("a", 550'000, 30'000), rep("b", 0, 0)}, kNow, p);
  EXPECT_NEAR(sum(s), 1.0, 1e-9);
}

TEST(PtuShares, StalePeersAreDropped) {
  ShareParams p;
  p.staleAfterMs = 5000;
  std::vector<ShareReport> r = {rep("a", 0, 100), rep("b", 0, 100), rep("gone", 300'000, 100, kNow - 5001)};
  auto s = computeShares(kL, r, kNow, p);
  EXPECT_EQ(s.size(), 2u);
  EXPECT_FALSE(s.count("gone"));
  EXPECT_NEAR(s["a"], 0.5, 1e-12);
  EXPECT_NEAR(s["b"], 0.5, 1e-12);
  // Exactly at the bound it is still live.
  r[2].atMs = kNow - 5000;
  EXPECT_EQ(computeShares(kL, r, kNow, p).size(), 3u);
  // A replica whose own report is stale gets no share (the caller falls back to 1/N).
  EXPECT_FALSE(shareOf("gone", kL, {rep("a", 0, 1), rep("gone", 0, 1, kNow - 60'000)}, kNow, p));
  EXPECT_TRUE(computeShares(kL, {rep("x", 0, 1, kNow - 60'000)}, kNow, p).empty());
}

TEST(PtuShares, NewestReportOfAReplicaWins) {
  auto s = computeShares(kL, {rep("a", 500'000, 0, kNow - 2000), rep("a", 0, 0, kNow - 1000), rep("b", 0, 0)}, kNow);
  EXPECT_NEAR(s["a"], 0.5, 1e-12);
}

TEST(PtuShares, BrokenValuesDoNotPoisonTheShares) {
  auto s = computeShares(kL, {rep("a", NAN, INFINITY), rep("b", -5, -1), rep("c", 0, 100)}, kNow);
  EXPECT_NEAR(sum(s), 1.0, 1e-9);
  for (const auto& [id, v] : s) EXPECT_TRUE(std::isfinite(v)) << id;
  auto z = computeShares(0, {rep("a", 0, 1), rep("b", 0, 0)}, kNow);
  EXPECT_NEAR(z["a"], 0.5, 1e-12);
}

TEST(PtuShares, ReportsRoundTripThroughTheirEncoding) {
  ShareReport r = rep("router-1", 12345.5, 678.25, 1733600000123);
  r.largest = 4096;
  auto d = decodeReport("router-1", encodeReport(r));
  ASSERT_TRUE(d);
  EXPECT_EQ(d->atMs, r.atMs);
  EXPECT_NEAR(d->used, r.used, 1e-3);
  EXPECT_NEAR(d->demandPerSec, r.demandPerSec, 1e-3);
  EXPECT_NEAR(d->largest, 4096, 1e-3);
  EXPECT_EQ(decodeReport("x", "12 5 3")->largest, 0);  // three fields: no largest
  EXPECT_FALSE(decodeReport("x", ""));
  EXPECT_FALSE(decodeReport("x", "12 abc"));
  EXPECT_FALSE(decodeReport("x", "12 5 -3"));
  EXPECT_FALSE(decodeReport("x", "12 nan 3"));
}

TEST(PtuShares, DemandRateIsASmoothedRate) {
  DemandRate d(2.0);
  EXPECT_EQ(d.update(0, 0), 0);
  double r = 0;
  for (int i = 1; i <= 30; ++i) r = d.update(1000.0 * i, 1000 * i);  // 1,000 tokens/s
  EXPECT_NEAR(r, 1000, 1);
  // Demand stops: the rate decays.
  for (int i = 31; i <= 40; ++i) r = d.update(30'000, 1000 * i);
  EXPECT_LT(r, 10);
  // A counter reset (process restart) restarts the rate without a negative spike.
  EXPECT_GE(d.update(0, 41'000), 0);
}

// ---- the rebalancing with real limiters, exchanged every second ---------------------

ReservationInfo res(int64_t tpm) {
  ReservationInfo r;
  r.reservation = {"team", "ptu"};
  r.tokensPerMinute = tpm;
  return r;
}

// Three replicas; all the load lands on one of them. With the static 1/3 split it
// admits a third of the reservation per minute; with shares exchanged every second it
// admits nearly all of it, and the three together never exceed it.
double admittedInAMinute(bool exchange, double* worstOver) {
  const int n = 3;
  auto d = deployment("d", api::DeploymentType::Global, threePools(0, 0, 0));
  d.reservations = {res(600'000)};
  RoutingTable t;
  t.deployments.push_back(d);
  t.normalize();
  std::vector<std::unique_ptr<AdmissionController>> acs;
  const auto t0 = MonotonicTime(std::chrono::hours(1));
  for (int i = 0; i < n; ++i) {
    acs.push_back(std::make_unique<AdmissionController>(LimiterMode::SlidingWindow, 1.0 / n));
    acs.back()->sync(t, t0);
  }
  std::vector<DemandRate> rates(n);
  double admitted = 0;
  std::vector<std::pair<int64_t, double>> log;  // (ms, tokens)
  *worstOver = 0;
  for (int64_t ms = 0; ms < 120'000; ms += 10) {
    const auto now = t0 + std::chrono::milliseconds(ms);
    if (exchange && ms % 1000 == 0) {
      std::vector<ShareReport> reports;
      for (int i = 0; i < n; ++i) {
        auto st = acs[i]->stats(now).at("team/ptu");
        reports.push_back({std::to_string(i), st.used, rates[i].update(st.demanded, ms), ms});
      }
      for (int i = 0; i < n; ++i)
        acs[i]->setReservationShare("team/ptu", shareOf(std::to_string(i), 600'000, reports, ms), now);
    }
    // 200 tokens every 10 ms on replica 0: 1.2M tokens/min, twice the reservation.
    auto a = acs[0]->admit(d, 200, now);
    if (a.outcome == AdmitOutcome::Admitted) {
      log.emplace_back(ms, 200);
      if (ms >= 60'000) admitted += 200;
    }
  }
  // Worst 60 s window over the reservation.
  for (size_t i = 0, j = 0; i < log.size(); ++i) {
    double w = 0;
    while (j < log.size() && log[j].first < log[i].first + 60'000) ++j;
    for (size_t k = i; k < j; ++k) w += log[k].second;
    *worstOver = std::max(*worstOver, w - 600'000);
  }
  return admitted;
}

TEST(PtuShares, ExchangeLetsTheBusyReplicaUseTheReservation) {
  double overStatic = 0, overExchange = 0;
  const double staticSplit = admittedInAMinute(false, &overStatic);
  const double exchanged = admittedInAMinute(true, &overExchange);
  EXPECT_NEAR(staticSplit, 200'000, 1000);     // a third
  EXPECT_GT(exchanged, 600'000 * 0.97);         // within 3 % of the reservation
  EXPECT_LE(overExchange, 0);                   // never over it
}

TEST(Admission, ReservationShareOverridesTheCommonShareAndCountsDemand) {
  AdmissionController ac(LimiterMode::SlidingWindow, 0.5);
  auto d = deployment("d", api::DeploymentType::Global, threePools(0, 0, 0));
  ReservationInfo other = res(6000);
  other.reservation = {"team", "other"};
  d.reservations = {res(6000), other};
  RoutingTable t;
  t.deployments.push_back(d);
  t.normalize();
  const auto t0 = MonotonicTime(std::chrono::hours(1));
  ac.sync(t, t0);
  ac.setReservationShare("team/ptu", 0.9, t0);
  auto s = ac.stats(t0);
  EXPECT_DOUBLE_EQ(s["team/ptu"].limit, 5400);
  EXPECT_DOUBLE_EQ(s["team/ptu"].share, 0.9);
  EXPECT_DOUBLE_EQ(s["team/ptu"].reservationLimit, 6000);
  EXPECT_DOUBLE_EQ(s["team/other"].limit, 3000);
  // The common share still applies to the other one, and the override survives it.
  ac.setShare(0.25, t0);
  s = ac.stats(t0);
  EXPECT_DOUBLE_EQ(s["team/ptu"].limit, 5400);
  EXPECT_DOUBLE_EQ(s["team/other"].limit, 1500);
  // ... and a sync.
  ac.sync(t, t0 + 1s);
  EXPECT_DOUBLE_EQ(ac.stats(t0 + 1s)["team/ptu"].limit, 5400);
  ac.setReservationShare("team/ptu", std::nullopt, t0 + 1s);
  EXPECT_DOUBLE_EQ(ac.stats(t0 + 1s)["team/ptu"].limit, 1500);
  // Demand: admitted and refused estimates alike, on the reservation tried first.
  DeploymentRoutes one = d;
  one.reservations = {res(6000)};
  AdmissionController b;
  RoutingTable t2;
  t2.deployments.push_back(one);
  t2.normalize();
  b.sync(t2, t0);
  EXPECT_EQ(b.admit(one, 5000, t0).outcome, AdmitOutcome::Admitted);
  EXPECT_EQ(b.admit(one, 5000, t0).outcome, AdmitOutcome::Throttle);
  EXPECT_DOUBLE_EQ(b.stats(t0)["team/ptu"].demanded, 10000);
  EXPECT_DOUBLE_EQ(b.takeLargest("team/ptu"), 5000);
  EXPECT_DOUBLE_EQ(b.takeLargest("team/ptu"), 0);  // reset by the take
  EXPECT_DOUBLE_EQ(b.takeLargest("team/none"), 0);
}

}  // namespace
}  // namespace waterline::routing
