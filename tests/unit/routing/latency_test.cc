// Latency-aware pool choice (routing/selection.h, LatencyModel): the TTFT estimate and
// the locality tolerance.
#include <gtest/gtest.h>

#include <limits>
#include <map>

#include "fixtures.h"
#include "waterline/routing/selection.h"

namespace waterline::routing {
namespace {

using namespace testing;
using api::DeploymentType;

LatencyModel euWestClient() {
  LatencyModel m;
  m.enabled = true;
  m.clientRegion = "eu-west";
  m.clientZone = "EU";
  m.sameRegionRttMs = 2;
  m.sameZoneRttMs = 30;
  m.crossZoneRttMs = 100;
  m.prefillTokensPerSecond = 10'000;
  m.meanRequestTokens = 1000;
  m.localToleranceMs = 200;
  m.nearEqualMs = 50;
  return m;
}

std::vector<std::string> pools(const PoolChoice& c) {
  std::vector<std::string> out;
  for (auto* e : c.order) out.push_back(e->pool);
  return out;
}

// capacity 1,000,000 tokens/min = 16,666.7 tokens/s (fixtures' entry()).

TEST(TtftEstimate, SumsNetworkQueueAndPrefill) {
  auto m = euWestClient();
  auto e = entry("us-east-h100", "us-east", "US", 0.5);
  e.queuedTokens = 50'000;  // 3 s at 16,666.7 tokens/s
  auto est = estimateTtft(m, e, 2000);
  EXPECT_DOUBLE_EQ(est.networkMs, 100);
  EXPECT_NEAR(est.queueMs, 3000, 1e-6);
  EXPECT_NEAR(est.prefillMs, 200, 1e-9);  // 2,000 tokens at 10,000/s
  EXPECT_NEAR(est.totalMs(), 3300, 1e-6);
}

TEST(TtftEstimate, NetworkFromTheTableThenByLocality) {
  auto m = euWestClient();
  m.rttMs[{"eu-north", "eu-west"}] = 41;  // listed in the other order
  EXPECT_DOUBLE_EQ(rttMs(m, "eu-west", "EU", entry("a", "eu-west", "EU", 0)), 2);
  EXPECT_DOUBLE_EQ(rttMs(m, "eu-west", "EU", entry("a", "eu-north", "EU", 0)), 41);
  EXPECT_DOUBLE_EQ(rttMs(m, "eu-west", "EU", entry("a", "eu-south", "EU", 0)), 30);
  EXPECT_DOUBLE_EQ(rttMs(m, "eu-west", "EU", entry("a", "us-east", "US", 0)), 100);
}

TEST(TtftEstimate, QueuedRequestsWhenNoTokensPublished) {
  auto m = euWestClient();
  auto e = entry("eu-west-h100", "eu-west", "EU", 0.5);
  e.queuedRequests = 25;  // x 1,000 tokens = 25,000 tokens = 1.5 s
  EXPECT_NEAR(estimateTtft(m, e, 0).queueMs, 1500, 1e-6);
  e.queuedTokens = 5'000;  // tokens win when published
  EXPECT_NEAR(estimateTtft(m, e, 0).queueMs, 300, 1e-6);
}

TEST(TtftEstimate, OwnSendsAddAndSpareCapacityDrains) {
  auto m = euWestClient();
  auto e = entry("eu-west-h100", "eu-west", "EU", 0.4);  // load 400,000/min: spare 10,000 tokens/s
  e.queuedTokens = 20'000;
  // 20,000 queued + 30,000 sent since the heartbeat = 50,000 tokens = 3 s.
  EXPECT_NEAR(estimateTtft(m, e, 0, 30'000).queueMs, 3000, 1e-6);
  // 2 s later the spare capacity has drained 20,000 of them.
  EXPECT_NEAR(estimateTtft(m, e, 0, 30'000, std::chrono::seconds(2)).queueMs, 30'000.0 / (1e6 / 60) * 1000, 1e-6);
  // Never below zero.
  EXPECT_DOUBLE_EQ(estimateTtft(m, e, 0, 0, std::chrono::seconds(60)).queueMs, 0);
  // A saturated pool drains nothing beyond its load.
  auto full = entry("eu-west-h100", "eu-west", "EU", 1.0);
  full.queuedTokens = 20'000;
  EXPECT_NEAR(estimateTtft(m, full, 0, 0, std::chrono::seconds(5)).queueMs, 1200, 1e-6);
}

TEST(TtftEstimate, PrefillUsesThePoolsOwnSpeed) {
  auto m = euWestClient();
  auto e = entry("eu-west-h100", "eu-west", "EU", 0);
  e.prefillTokensPerSecond = 40'000;
  EXPECT_NEAR(estimateTtft(m, e, 8000).prefillMs, 200, 1e-9);
  EXPECT_NEAR(estimateTtft(m, entry("b", "eu-west", "EU", 0), 8000).prefillMs, 800, 1e-9);
}

TEST(LatencyChoice, LeavesTheRegionWhenItsQueueCostsMoreThanTheTolerance) {
  // eu-west: 2 ms + 3 s of queue; us-east: 100 ms, no queue. Global goes to us-east.
  auto d = deployment("d", DeploymentType::Global,
                      {entry("eu-west-h100", "eu-west", "EU", 0.5),
                       entry("eu-north-h100", "eu-north", "EU", 0.5), entry("us-east-h100", "us-east", "US", 0.5)});
  for (auto& e : d.entries)
    if (e.pool == "eu-west-h100") e.queuedTokens = 50'000;
    else if (e.pool == "eu-north-h100") e.queuedTokens = 40'000;  // 2.4 s
  SelectionOptions o;
  o.latency = euWestClient();
  auto c = choosePools(d, t0(), o, seededRandom(1), std::nullopt, {}, 1000);
  ASSERT_NE(c.primary(), nullptr);
  EXPECT_EQ(c.primary()->pool, "us-east-h100");
  // Fallbacks by estimate: eu-north (2,430 ms) before eu-west (3,002 ms).
  ASSERT_EQ(c.order.size(), 3u);
  EXPECT_EQ(c.order[1]->pool, "eu-north-h100");
  EXPECT_EQ(c.order[2]->pool, "eu-west-h100");
  // Least utilization alone would not see it: all three are at 0.5.
  SelectionOptions plain;
  int usEast = 0;
  auto rand = seededRandom(5);
  for (int i = 0; i < 300; ++i) usEast += choosePools(d, t0(), plain, rand).primary()->pool == "us-east-h100";
  EXPECT_LT(usEast, 200);
}

TEST(LatencyChoice, StaysInTheClientRegionWithinTheTolerance) {
  // eu-west estimates 150 ms above us-east (tolerance 200): stays; 250 ms above: leaves.
  auto make = [](double euWestQueueMs) {
    auto d = deployment("d", DeploymentType::Global,
                        {entry("eu-west-h100", "eu-west", "EU", 0.5), entry("us-east-h100", "us-east", "US", 0.5)});
    for (auto& e : d.entries)
      if (e.pool == "eu-west-h100") e.queuedTokens = euWestQueueMs / 1000.0 * (1e6 / 60);
    return d;
  };
  SelectionOptions o;
  o.latency = euWestClient();
  auto rand = seededRandom(9);
  // us-east = 100 ms; eu-west = 2 + queue.
  for (int i = 0; i < 200; ++i) {
    EXPECT_EQ(choosePools(make(248), t0(), o, rand).primary()->pool, "eu-west-h100");  // 250 vs 100: within 200
    EXPECT_EQ(choosePools(make(320), t0(), o, rand).primary()->pool, "us-east-h100");  // 322 vs 100: beyond
  }
  // Tolerance 0: the lowest estimate wins outright.
  o.latency.localToleranceMs = 0;
  o.latency.nearEqualMs = 0;
  EXPECT_EQ(choosePools(make(120), t0(), o, rand).primary()->pool, "us-east-h100");
}

TEST(LatencyChoice, PrefersTheClientZoneBeforeOtherZones) {
  // eu-west (own region) is far too slow; eu-north (own zone, 30 ms + 100 ms queue) is
  // within the tolerance of us-east (100 ms): the zone wins.
  auto d = deployment("d", DeploymentType::Global,
                      {entry("eu-west-h100", "eu-west", "EU", 0.5), entry("eu-north-h100", "eu-north", "EU", 0.5),
                       entry("us-east-h100", "us-east", "US", 0.5)});
  for (auto& e : d.entries)
    if (e.pool == "eu-west-h100") e.queuedTokens = 100'000;  // 6 s
    else if (e.pool == "eu-north-h100") e.queuedTokens = 100.0 / 1000 * (1e6 / 60);
  SelectionOptions o;
  o.latency = euWestClient();
  auto rand = seededRandom(3);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(choosePools(d, t0(), o, rand).primary()->pool, "eu-north-h100");
}

TEST(LatencyChoice, MaxUtilizationStaysAHardLimit) {
  // us-east has the lowest estimate but is at maxUtilization: never chosen.
  auto d = deployment("d", DeploymentType::Global,
                      {entry("eu-west-h100", "eu-west", "EU", 0.5), entry("us-east-h100", "us-east", "US", 0.95)});
  for (auto& e : d.entries)
    if (e.pool == "eu-west-h100") e.queuedTokens = 200'000;
  SelectionOptions o;
  o.latency = euWestClient();
  auto c = choosePools(d, t0(), o, seededRandom(1));
  ASSERT_EQ(c.order.size(), 1u);
  EXPECT_EQ(c.order[0]->pool, "eu-west-h100");
  ASSERT_EQ(c.saturated.size(), 1u);
  // The router's own sends push a pool over the limit too.
  auto d2 = deployment("d", DeploymentType::Global,
                       {entry("eu-west-h100", "eu-west", "EU", 0.5), entry("us-east-h100", "us-east", "US", 0.5)});
  UtilizationAdjustFn adjust = [](const RoutingEntry& e) { return e.pool == "eu-west-h100" ? 0.45 : 0.0; };
  EXPECT_EQ(pools(choosePools(d2, t0(), o, seededRandom(1), std::nullopt, adjust)),
            (std::vector<std::string>{"us-east-h100"}));
}

TEST(LatencyChoice, QueueLimitsMakePoolsSaturated) {
  // eu-west (local): 1.2 s of queue; us-east (remote): 0.6 s.
  auto d = deployment("d", DeploymentType::Global,
                      {entry("eu-west-h100", "eu-west", "EU", 0.5), entry("us-east-h100", "us-east", "US", 0.5)});
  for (auto& e : d.entries) e.queuedTokens = (e.pool == "eu-west-h100" ? 1.2 : 0.6) * (1e6 / 60);
  SelectionOptions o;
  o.latency = euWestClient();
  EXPECT_EQ(pools(choosePools(d, t0(), o, seededRandom(1))), (std::vector<std::string>{"us-east-h100", "eu-west-h100"}));
  // maxQueueMs applies to every pool.
  o.latency.maxQueueMs = 1000;
  auto c = choosePools(d, t0(), o, seededRandom(1));
  EXPECT_EQ(pools(c), (std::vector<std::string>{"us-east-h100"}));
  ASSERT_EQ(c.saturated.size(), 1u);
  EXPECT_EQ(c.saturated[0]->pool, "eu-west-h100");
  // maxRemoteQueueMs only to pools outside the client's region: the local one stays.
  o.latency.maxQueueMs = 0;
  o.latency.maxRemoteQueueMs = 500;
  EXPECT_EQ(pools(choosePools(d, t0(), o, seededRandom(1))), (std::vector<std::string>{"eu-west-h100"}));
  o.latency.maxRemoteQueueMs = 700;
  EXPECT_EQ(choosePools(d, t0(), o, seededRandom(1)).primary()->pool, "us-east-h100");
}

TEST(LatencyChoice, AnInfiniteAdjustmentSaturatesAndANaNOneIsIgnored) {
  auto d = deployment("d", DeploymentType::Global,
                      {entry("eu-west-h100", "eu-west", "EU", 0.5), entry("us-east-h100", "us-east", "US", 0.5)});
  SelectionOptions o;
  o.latency = euWestClient();
  UtilizationAdjustFn inf = [](const RoutingEntry& e) {
    return e.pool == "eu-west-h100" ? std::numeric_limits<double>::infinity() : 0.0;
  };
  auto c = choosePools(d, t0(), o, seededRandom(1), std::nullopt, inf);
  EXPECT_EQ(pools(c), (std::vector<std::string>{"us-east-h100"}));
  UtilizationAdjustFn nan = [](const RoutingEntry&) { return std::numeric_limits<double>::quiet_NaN(); };
  EXPECT_EQ(choosePools(d, t0(), o, seededRandom(1), std::nullopt, nan).primary()->pool, "eu-west-h100");
}

TEST(LatencyChoice, TypeStillLimitsThePools) {
  auto d = deployment("d", DeploymentType::Standard,
                      {entry("eu-west-h100", "eu-west", "EU", 0.5), entry("us-east-h100", "us-east", "US", 0.1)},
                      "eu-west");
  for (auto& e : d.entries)
    if (e.pool == "eu-west-h100") e.queuedTokens = 500'000;
  SelectionOptions o;
  o.latency = euWestClient();
  EXPECT_EQ(pools(choosePools(d, t0(), o, seededRandom(1))), (std::vector<std::string>{"eu-west-h100"}));
}

TEST(LatencyChoice, PowerOfTwoAmongNearEquals) {
  // Three pools in the client's region within nearEqualMs of the best: two drawn, the
  // lower estimate kept, so a (the best) and b both get traffic, c (the worst of the
  // three) never wins a pair, and d, 100 ms worse, is outside the band.
  auto d = deployment("d", DeploymentType::Global,
                      {entry("eu-west-a", "eu-west", "EU", 0.5), entry("eu-west-b", "eu-west", "EU", 0.5),
                       entry("eu-west-c", "eu-west", "EU", 0.5), entry("eu-west-d", "eu-west", "EU", 0.5)});
  for (auto& e : d.entries)
    if (e.pool == "eu-west-b") e.queuedTokens = 20.0 / 1000 * (1e6 / 60);        // +20 ms
    else if (e.pool == "eu-west-c") e.queuedTokens = 30.0 / 1000 * (1e6 / 60);   // +30 ms
    else if (e.pool == "eu-west-d") e.queuedTokens = 100.0 / 1000 * (1e6 / 60);  // +100 ms
  SelectionOptions o;
  o.latency = euWestClient();
  std::map<std::string, int> hits;
  auto rand = seededRandom(11);
  for (int i = 0; i < 2000; ++i) hits[choosePools(d, t0(), o, rand).primary()->pool]++;
  EXPECT_GT(hits["eu-west-a"], hits["eu-west-b"]);
  EXPECT_GT(hits["eu-west-b"], 400);  // the pair (b, c): a third of the draws
  EXPECT_EQ(hits["eu-west-c"], 0);
  EXPECT_EQ(hits["eu-west-d"], 0);
}

TEST(LatencyChoice, OwnSendsSinceTheHeartbeatSpreadTheLoad) {
  // Equal pools in the client's region, but this router already sent 60,000 tokens
  // (3.6 s of queue) to a: b is chosen.
  auto d = deployment("d", DeploymentType::Global,
                      {entry("eu-west-a", "eu-west", "EU", 0.5), entry("eu-west-b", "eu-west", "EU", 0.5)});
  SelectionOptions o;
  o.latency = euWestClient();
  UtilizationAdjustFn adjust = [](const RoutingEntry& e) { return e.pool == "eu-west-a" ? 0.06 : 0.0; };
  auto rand = seededRandom(2);
  for (int i = 0; i < 50; ++i)
    EXPECT_EQ(choosePools(d, t0(), o, rand, std::nullopt, adjust).primary()->pool, "eu-west-b");
}

TEST(LatencyFields, RoundTripAndAreOmittedWhenUnknown) {
  auto d = deployment("d", DeploymentType::Global, {entry("eu-west-h100", "eu-west", "EU", 0.5)});
  auto plain = d.toJson();
  EXPECT_FALSE(plain["entries"][0].contains("queuedRequests"));
  EXPECT_FALSE(plain["entries"][0].contains("queuedTokens"));
  EXPECT_FALSE(plain["entries"][0].contains("prefillTokensPerSecond"));
  d.entries[0].queuedRequests = 3;
  d.entries[0].queuedTokens = 12'345;
  d.entries[0].prefillTokensPerSecond = 8'700;
  auto back = DeploymentRoutes::fromJson(d.toJson());
  ASSERT_TRUE(back.has_value()) << back.error();
  EXPECT_EQ(back->entries[0].queuedRequests, 3);
  EXPECT_EQ(back->entries[0].queuedTokens, 12'345);
  EXPECT_EQ(back->entries[0].prefillTokensPerSecond, 8'700);
  auto bad = d.toJson();
  bad["entries"][0]["queuedTokens"] = -1;
  EXPECT_FALSE(DeploymentRoutes::fromJson(bad).has_value());
}

}  // namespace
}  // namespace waterline::routing
