#include "waterline/routing/selection.h"

#include <gtest/gtest.h>

#include <map>

#include "fixtures.h"

namespace waterline::routing {
namespace {

using namespace testing;
using api::DeploymentType;

std::vector<std::string> pools(const PoolChoice& c) {
  std::vector<std::string> out;
  for (auto* e : c.order) out.push_back(e->pool);
  return out;
}

TEST(PoolChoice, StandardUsesOnlyItsRegion) {
  auto d = deployment("d", DeploymentType::Standard, threePools(0.5, 0.1, 0.0), "eu-west");
  auto c = choosePools(d, t0(), {}, seededRandom(1));
  EXPECT_EQ(pools(c), (std::vector<std::string>{"eu-west-h100"}));
  EXPECT_EQ(c.allowed, 1u);
}

TEST(PoolChoice, DataZoneUsesItsZoneLeastUtilisedFirst) {
  auto d = deployment("d", DeploymentType::DataZone, threePools(0.5, 0.1, 0.0), "", "EU");
  auto c = choosePools(d, t0(), {}, seededRandom(1));
  EXPECT_EQ(pools(c), (std::vector<std::string>{"eu-north-h100", "eu-west-h100"}));
  auto us = deployment("d", DeploymentType::DataZone, threePools(0.5, 0.1, 0.0), "", "US");
  EXPECT_EQ(pools(choosePools(us, t0(), {}, seededRandom(1))), (std::vector<std::string>{"us-east-h100"}));
}

TEST(PoolChoice, GlobalUsesEveryPoolInUtilisationOrder) {
  auto d = deployment("d", DeploymentType::Global, threePools(0.5, 0.3, 0.1));
  auto c = choosePools(d, t0(), {}, seededRandom(1));
  EXPECT_EQ(pools(c), (std::vector<std::string>{"us-east-h100", "eu-north-h100", "eu-west-h100"}));
  EXPECT_EQ(c.primary()->pool, "us-east-h100");
}

TEST(PoolChoice, UnknownRegionOrZoneAllowsNothing) {
  auto d = deployment("d", DeploymentType::Standard, threePools(0.1, 0.1, 0.1), "ap-south");
  auto c = choosePools(d, t0(), {}, seededRandom(1));
  EXPECT_TRUE(c.order.empty());
  EXPECT_EQ(c.allowed, 0u);
}

TEST(PoolChoice, StaleEntriesAreSkippedWhileFreshOnesExist) {
  auto entries = threePools(0.1, 0.5, 0.6);
  entries[0].heartbeatTime = t0() - std::chrono::seconds(31);  // eu-west: least utilised but stale
  auto d = deployment("d", DeploymentType::Global, entries);
  SelectionOptions o;
  o.staleAfter = std::chrono::seconds(30);
  auto c = choosePools(d, t0(), o, seededRandom(1));
  EXPECT_EQ(pools(c), (std::vector<std::string>{"eu-north-h100", "us-east-h100"}));
  EXPECT_EQ(c.fresh, 2u);
  EXPECT_FALSE(c.usedStale);
  // Exactly at the bound is still fresh.
  entries[0].heartbeatTime = t0() - std::chrono::seconds(30);
  auto d2 = deployment("d", DeploymentType::Global, entries);
  EXPECT_EQ(choosePools(d2, t0(), o, seededRandom(1)).primary()->pool, "eu-west-h100");
  // staleAfter <= 0 disables staleness.
  entries[0].heartbeatTime = t0() - std::chrono::hours(24);
  auto d3 = deployment("d", DeploymentType::Global, entries);
  o.staleAfter = Duration::zero();
  EXPECT_EQ(choosePools(d3, t0(), o, seededRandom(1)).primary()->pool, "eu-west-h100");
}

TEST(PoolChoice, AllStaleFallsBackToStaleEntries) {
  auto d = deployment("d", DeploymentType::Global, threePools(0.3, 0.2, 0.1, t0() - std::chrono::minutes(10)));
  auto c = choosePools(d, t0(), {}, seededRandom(1));
  EXPECT_TRUE(c.usedStale);
  EXPECT_EQ(c.fresh, 0u);
  EXPECT_EQ(c.primary()->pool, "us-east-h100");
  SelectionOptions strict;
  strict.panicWhenAllStale = false;
  EXPECT_TRUE(choosePools(d, t0(), strict, seededRandom(1)).order.empty());
}

TEST(PoolChoice, SaturatedUnhealthyAndEmptyPoolsAreNotEligible) {
  auto entries = threePools(0.95, 0.2, 0.1);
  entries[1].healthy = false;    // eu-north
  entries[2].endpoints.clear();  // us-east
  auto d = deployment("d", DeploymentType::Global, entries);
  auto c = choosePools(d, t0(), {}, seededRandom(1));
  EXPECT_TRUE(c.order.empty());
  ASSERT_EQ(c.saturated.size(), 1u);
  EXPECT_EQ(c.saturated[0]->pool, "eu-west-h100");
  // maxUtilization is per entry; equal to it counts as saturated.
  auto e2 = threePools(0.5, 0.7, 0.8);
  e2[0].maxUtilization = 0.5;
  auto d2 = deployment("d", DeploymentType::Global, e2);
  auto c2 = choosePools(d2, t0(), {}, seededRandom(1));
  EXPECT_EQ(pools(c2), (std::vector<std::string>{"eu-north-h100", "us-east-h100"}));
  EXPECT_EQ(c2.saturated[0]->pool, "eu-west-h100");
}

TEST(PoolChoice, WeightZeroTakesNoNewTraffic) {
  auto entries = threePools(0.1, 0.2, 0.3);
  entries[0].weight = 0;
  auto d = deployment("d", DeploymentType::Global, entries);
  auto c = choosePools(d, t0(), {}, seededRandom(1));
  EXPECT_EQ(pools(c), (std::vector<std::string>{"eu-north-h100", "us-east-h100"}));
  ASSERT_EQ(c.saturated.size(), 1u);
}

TEST(PoolChoice, PowerOfTwoAmongNearEqualIsDeterministicGivenTheRng) {
  auto d = deployment("d", DeploymentType::Global, threePools(0.30, 0.31, 0.32));
  SelectionOptions o;
  o.epsilon = 0.05;
  // Group (sorted): eu-west .30, eu-north .31, us-east .32 (all within epsilon).
  // Draw 0.9 -> us-east; then among {eu-west, eu-north} draw 0.6 -> eu-north; keep the
  // less utilised of the two: eu-north.
  auto c = choosePools(d, t0(), o, fixedRandom({0.9, 0.6}));
  EXPECT_EQ(c.primary()->pool, "eu-north-h100");
  EXPECT_EQ(pools(c), (std::vector<std::string>{"eu-north-h100", "eu-west-h100", "us-east-h100"}));
  // Same sequence, same choice.
  EXPECT_EQ(pools(choosePools(d, t0(), o, fixedRandom({0.9, 0.6}))), pools(c));
  // Draws that pick eu-west and us-east keep eu-west.
  EXPECT_EQ(choosePools(d, t0(), o, fixedRandom({0.0, 0.99})).primary()->pool, "eu-west-h100");
  // epsilon 0: no P2C, strictly the least utilised.
  o.epsilon = 0;
  EXPECT_EQ(choosePools(d, t0(), o, fixedRandom({0.9, 0.6})).primary()->pool, "eu-west-h100");
}

TEST(PoolChoice, ExactTiesSpreadInsteadOfHerding) {
  auto d = deployment("d", DeploymentType::Global, threePools(0.2, 0.2, 0.2));
  auto rand = seededRandom(42);
  std::map<std::string, int> hits;
  for (int i = 0; i < 3000; ++i) hits[choosePools(d, t0(), {}, rand).primary()->pool]++;
  ASSERT_EQ(hits.size(), 3u);
  for (auto& [pool, n] : hits) EXPECT_GT(n, 800) << pool;  // ~1000 each
}

TEST(PoolChoice, NearEqualPrefersLessUtilisedButStillSpreads) {
  auto d = deployment("d", DeploymentType::Global, threePools(0.20, 0.22, 0.60));
  auto rand = seededRandom(7);
  std::map<std::string, int> hits;
  for (int i = 0; i < 2000; ++i) hits[choosePools(d, t0(), {}, rand).primary()->pool]++;
  // Group {eu-west .20, eu-north .22}: P2C always keeps eu-west when both are drawn.
  EXPECT_EQ(hits["eu-west-h100"], 2000);
  EXPECT_EQ(hits["us-east-h100"], 0);
}

TEST(PoolChoice, WeightsBiasTheDraw) {
  auto entries = threePools(0.2, 0.2, 0.9);
  entries[0].weight = 9;  // eu-west 9x the replicas of eu-north
  entries[1].weight = 1;
  auto d = deployment("d", DeploymentType::Global, entries);
  auto rand = seededRandom(3);
  std::map<std::string, int> hits;
  for (int i = 0; i < 2000; ++i) hits[choosePools(d, t0(), {}, rand).primary()->pool]++;
  // Both are always drawn (two of two) and tie, so the first drawn wins: P(eu-west first) = 0.9.
  EXPECT_NEAR(hits["eu-west-h100"] / 2000.0, 0.9, 0.04);
}

TEST(PoolChoice, PreferredScopeComesFirst) {
  auto d = deployment("d", DeploymentType::Global, threePools(0.5, 0.4, 0.1));
  api::ReservationScope scope;
  scope.type = api::ScopeType::Regional;
  scope.region = "eu-west";
  auto c = choosePools(d, t0(), {}, seededRandom(1), scope);
  EXPECT_EQ(pools(c), (std::vector<std::string>{"eu-west-h100", "us-east-h100", "eu-north-h100"}));
  scope.type = api::ScopeType::DataZone;
  scope.region.reset();
  scope.dataZone = "EU";
  EXPECT_EQ(pools(choosePools(d, t0(), {}, seededRandom(1), scope)),
            (std::vector<std::string>{"eu-north-h100", "eu-west-h100", "us-east-h100"}));
  // A scope whose pools are all saturated falls back to the others.
  auto e2 = threePools(0.95, 0.4, 0.1);
  auto d2 = deployment("d", DeploymentType::Global, e2);
  scope.type = api::ScopeType::Regional;
  scope.region = "eu-west";
  scope.dataZone.reset();
  EXPECT_EQ(choosePools(d2, t0(), {}, seededRandom(1), scope).primary()->pool, "us-east-h100");
}

TEST(PoolChoice, InScopeRules) {
  auto e = entry("p", "eu-west", "EU", 0);
  api::ReservationScope g;
  EXPECT_TRUE(inScope(g, e));
  api::ReservationScope r{api::ScopeType::Regional, std::string("eu-north"), std::nullopt};
  EXPECT_FALSE(inScope(r, e));
  api::ReservationScope z{api::ScopeType::DataZone, std::nullopt, std::string("EU")};
  EXPECT_TRUE(inScope(z, e));
}

TEST(PickEndpoint, LeastInflightOfTwo) {
  auto e = entry("p", "r", "Z", 0, {"a:1", "b:1", "c:1"});
  std::map<std::string, int> inflight{{"a:1", 5}, {"b:1", 0}, {"c:1", 2}};
  auto fn = [&](std::string_view ep) { return inflight[std::string(ep)]; };
  // Draw 0.0 -> index 0 (a); second draw 0.0 -> index 0 of the rest, shifted past a -> b.
  auto i = pickEndpoint(e, fn, fixedRandom({0.0, 0.0}));
  ASSERT_TRUE(i);
  EXPECT_EQ(e.endpoints[*i], "b:1");
  // a vs c: c has fewer in flight.
  i = pickEndpoint(e, fn, fixedRandom({0.0, 0.99}));
  EXPECT_EQ(e.endpoints[*i], "c:1");
}

TEST(PickEndpoint, SkipsEjectedUnlessAllAre) {
  auto e = entry("p", "r", "Z", 0, {"a:1", "b:1"});
  auto skipA = [](std::string_view ep) { return ep == "a:1"; };
  for (int k = 0; k < 20; ++k) EXPECT_EQ(e.endpoints[*pickEndpoint(e, {}, seededRandom(k), skipA)], "b:1");
  auto skipAll = [](std::string_view) { return true; };
  EXPECT_TRUE(pickEndpoint(e, {}, seededRandom(1), skipAll));
  RoutingEntry none;
  EXPECT_FALSE(pickEndpoint(none, {}, seededRandom(1)));
}

}  // namespace
}  // namespace waterline::routing

namespace waterline::routing {
namespace {

using namespace testing;

TEST(PoolChoice, AdjustmentAddsTheRoutersOwnLoad) {
  auto d = deployment("d", api::DeploymentType::Global, threePools(0.10, 0.30, 0.50));
  // The caller knows it sent 0.35 of eu-west's capacity since the heartbeat.
  auto adjust = [](const RoutingEntry& e) { return e.pool == "eu-west-h100" ? 0.35 : 0.0; };
  auto c = choosePools(d, t0(), {}, seededRandom(1), std::nullopt, adjust);
  EXPECT_EQ(c.primary()->pool, "eu-north-h100");
  EXPECT_EQ(c.order.back()->pool, "us-east-h100");
  // Adjusted past maxUtilization: saturated.
  auto full = [](const RoutingEntry& e) { return e.pool == "eu-west-h100" ? 0.85 : 0.0; };
  auto c2 = choosePools(d, t0(), {}, seededRandom(1), std::nullopt, full);
  ASSERT_EQ(c2.saturated.size(), 1u);
  EXPECT_EQ(c2.saturated[0]->pool, "eu-west-h100");
  // Negative adjustments are ignored.
  auto neg = [](const RoutingEntry&) { return -1.0; };
  EXPECT_EQ(choosePools(d, t0(), {}, seededRandom(1), std::nullopt, neg).primary()->pool, "eu-west-h100");
}

TEST(LocalLoad, CountsSinceTheHeartbeatAndResetsOnANewOne) {
  LocalLoad l;
  l.add("p", t0(), 1000);
  l.add("p", t0(), 500);
  EXPECT_DOUBLE_EQ(l.extraUtilization("p", t0(), 10000), 0.15);
  EXPECT_DOUBLE_EQ(l.extraUtilization("q", t0(), 10000), 0);
  EXPECT_DOUBLE_EQ(l.extraUtilization("p", t0(), 0), 0);  // unknown capacity
  // A newer heartbeat already includes what was sent: the count starts over.
  auto hb2 = t0() + std::chrono::seconds(10);
  EXPECT_DOUBLE_EQ(l.extraUtilization("p", hb2, 10000), 0);
  l.add("p", hb2, 200);
  EXPECT_DOUBLE_EQ(l.extraUtilization("p", hb2, 10000), 0.02);
  l.add("old", t0() - std::chrono::hours(2), 1);
  EXPECT_EQ(l.size(), 2u);
  l.prune(t0() - std::chrono::hours(1));
  EXPECT_EQ(l.size(), 1u);
}

}  // namespace
}  // namespace waterline::routing
