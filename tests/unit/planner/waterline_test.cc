#include "waterline/planners/waterline.h"

#include <gtest/gtest.h>

#include <chrono>
#include <random>

#include "waterline/api/model_deployment.h"
#include "waterline/routing/admission.h"

namespace waterline::planners {
namespace {

PreparedSeries series(std::vector<double> weighted, const PtuPrices& p = {}) {
  std::vector<TokenMinute> m;
  for (double d : weighted) m.push_back({d, 0});
  return prepareSeries(m, {1, 1}, p);
}

// Hand-computed: 1 unit of 1,000 TPM, burst 20% -> L = 1,200 per minute.
TEST(WaterlinePlanner, HandComputedServedSpilledThrottled) {
  auto s = series({500, 1200, 1500, 0, 3000});
  auto spill = minuteOutcomes(s, 1, {1000, 20, true});
  ASSERT_EQ(spill.size(), 5u);
  EXPECT_DOUBLE_EQ(spill[0].served, 500);
  EXPECT_DOUBLE_EQ(spill[1].served, 1200);
  EXPECT_DOUBLE_EQ(spill[1].spilled, 0);
  EXPECT_DOUBLE_EQ(spill[2].served, 1200);
  EXPECT_DOUBLE_EQ(spill[2].spilled, 300);
  EXPECT_DOUBLE_EQ(spill[2].throttled, 0);
  EXPECT_DOUBLE_EQ(spill[3].served, 0);
  EXPECT_DOUBLE_EQ(spill[4].spilled, 1800);

  auto e = evaluateUnits(s, 1, {1000, 20, false}, {});
  EXPECT_DOUBLE_EQ(e.limit, 1200);
  EXPECT_DOUBLE_EQ(e.served, 500 + 1200 + 1200 + 0 + 1200);
  EXPECT_DOUBLE_EQ(e.throttled, 300 + 1800);
  EXPECT_DOUBLE_EQ(e.spilled, 0);
  EXPECT_EQ(e.coveredMinutes, 3);  // 500, 1200 (exactly L), 0
  EXPECT_DOUBLE_EQ(e.utilization, 4100.0 / (1000.0 * 5));
  EXPECT_DOUBLE_EQ(e.servedShare(), 4100.0 / 6200.0);
  EXPECT_DOUBLE_EQ(e.throttledShare(), 2100.0 / 6200.0);

  // 0 units: everything over the line.
  auto z = evaluateUnits(s, 0, {1000, 20, true}, {});
  EXPECT_DOUBLE_EQ(z.served, 0);
  EXPECT_DOUBLE_EQ(z.spilled, 6200);
  EXPECT_EQ(z.coveredMinutes, 1);  // only minute 3, which has no demand
}

TEST(WaterlinePlanner, WeightsAreThroughputSpecs) {
  api::ThroughputSpec t;
  t.inputTokenWeight = 0.25;
  t.outputTokenWeight = 4;
  auto s = prepareSeries({{1000, 100}, {400, 0}}, {t.inputTokenWeight, t.outputTokenWeight}, {});
  EXPECT_DOUBLE_EQ(s.demand[0], t.weightedTokens(1000, 100));
  EXPECT_DOUBLE_EQ(s.demand[0], 650);
  EXPECT_DOUBLE_EQ(s.demand[1], 100);
  EXPECT_DOUBLE_EQ(s.peak, 650);
}

// Prices: 2.0 per unit-hour, 0.5 per 1k input, 1.5 per 1k output. 120 minutes = 2 h.
TEST(WaterlinePlanner, CostArithmetic) {
  PtuPrices p{2.0, 0.5, 1.5};
  std::vector<TokenMinute> m(120, TokenMinute{0, 0});
  m[0] = {3000, 1000};  // weighted (1,1): 4000; payg 1.5 + 1.5 = 3.0
  m[1] = {1000, 0};     // 1000; payg 0.5
  auto s = prepareSeries(m, {1, 1}, p);
  EXPECT_DOUBLE_EQ(s.allPaygCost, 3.5);
  // 2 units of 1,000 TPM, no burst: L = 2000. Minute 0 over by 2000 of 4000 -> half its
  // payg cost (1.5) spills; minute 1 fits.
  auto e = evaluateUnits(s, 2, {1000, 0, true}, p);
  EXPECT_DOUBLE_EQ(e.spilled, 2000);
  EXPECT_DOUBLE_EQ(e.reservedCostPerHour, 4.0);
  EXPECT_DOUBLE_EQ(e.paygCostPerHour, 1.5 / 2.0);
  EXPECT_DOUBLE_EQ(e.totalCostPerHour, 4.0 + 0.75);
  EXPECT_DOUBLE_EQ(e.overflowCostPerHour, 0.75);
  // Without spillover the overflow is throttled: not paid, but still the overflow cost.
  auto t = evaluateUnits(s, 2, {1000, 0, false}, p);
  EXPECT_DOUBLE_EQ(t.paygCostPerHour, 0);
  EXPECT_DOUBLE_EQ(t.totalCostPerHour, 4.0);
  EXPECT_DOUBLE_EQ(t.overflowCostPerHour, 0.75);
}

// The planner's L is the router's LimiterConfig::limit() for the reservation.
TEST(WaterlinePlanner, LimitIsTheRoutersLimit) {
  std::mt19937_64 rng(7);
  for (int i = 0; i < 2000; ++i) {
    int64_t units = std::uniform_int_distribution<int64_t>(0, 500)(rng);
    int64_t tpm = std::uniform_int_distribution<int64_t>(1, 100000)(rng);
    int32_t burst = std::uniform_int_distribution<int32_t>(0, 300)(rng);
    routing::LimiterConfig c;
    c.tokensPerMinute = static_cast<double>(units * tpm);
    c.burstPercent = burst;
    ASSERT_EQ(ptuWindowLimit(units, tpm, burst), c.limit()) << units << " " << tpm << " " << burst;
  }
}

// Feeds the router's limiter minute by minute: each minute's demand as requests of
// `grain` tokens at one instant per window. The router's window is 60 s rounded up to
// whole slots (60.00-60.01 s), so minute m is fed at m × 60.01 s: each planner minute is
// one full window of the router. Returns served tokens per minute.
std::vector<double> routerServed(const std::vector<double>& demand, double tpm, int32_t burst, double grain) {
  routing::LimiterConfig c;
  c.tokensPerMinute = tpm;
  c.burstPercent = burst;
  routing::ReservationLimiter lim(c);
  std::vector<double> served(demand.size(), 0);
  const auto window = std::chrono::milliseconds(60010);
  MonotonicTime t0{std::chrono::hours(1)};
  for (size_t m = 0; m < demand.size(); ++m) {
    MonotonicTime now = t0 + window * static_cast<int64_t>(m);
    double left = demand[m];
    while (left > 0) {
      double req = std::min(grain, left);
      left -= req;
      if (lim.tryAdmit(req, now)) served[m] += req;
    }
  }
  return served;
}

TEST(WaterlinePlanner, SameOutcomeAsTheRoutersLimiterExact) {
  // Demand and limits in multiples of the request size: the outcome is exactly equal.
  std::mt19937_64 rng(11);
  for (int trial = 0; trial < 20; ++trial) {
    const double grain = 100;
    std::vector<double> demand(240);
    for (auto& d : demand) d = grain * std::uniform_int_distribution<int>(0, 120)(rng);
    const int64_t tpmUnit = 1000;
    const int64_t units = std::uniform_int_distribution<int64_t>(0, 10)(rng);
    const int32_t burst = 10 * std::uniform_int_distribution<int32_t>(0, 5)(rng);
    const bool spill = trial % 2 == 0;
    auto s = series(demand);
    auto planned = minuteOutcomes(s, units, {tpmUnit, burst, spill});
    auto router = routerServed(demand, static_cast<double>(units * tpmUnit), burst, grain);
    for (size_t m = 0; m < demand.size(); ++m) {
      ASSERT_NEAR(planned[m].served, router[m], 1e-6) << "trial " << trial << " minute " << m;
      const double over = demand[m] - router[m];
      ASSERT_NEAR(spill ? planned[m].spilled : planned[m].throttled, over, 1e-6);
      ASSERT_EQ(spill ? planned[m].throttled : planned[m].spilled, 0);
    }
  }
}

TEST(WaterlinePlanner, SameOutcomeAsTheRoutersLimiterWithinOneRequest) {
  // Any demand, any burst: the router admits whole requests, so per minute it serves at
  // most one request less than the planner's fluid min(demand, L), never more.
  std::mt19937_64 rng(13);
  for (int trial = 0; trial < 20; ++trial) {
    const double grain = std::uniform_real_distribution<double>(5, 80)(rng);
    std::vector<double> demand(200);
    for (auto& d : demand) d = std::uniform_real_distribution<double>(0, 9000)(rng);
    const int64_t tpmUnit = std::uniform_int_distribution<int64_t>(100, 3000)(rng);
    const int64_t units = std::uniform_int_distribution<int64_t>(0, 6)(rng);
    const int32_t burst = std::uniform_int_distribution<int32_t>(0, 50)(rng);
    auto s = series(demand);
    auto planned = minuteOutcomes(s, units, {tpmUnit, burst, false});
    auto router = routerServed(demand, static_cast<double>(units * tpmUnit), burst, grain);
    for (size_t m = 0; m < demand.size(); ++m) {
      ASSERT_LE(router[m], planned[m].served + 1e-6) << "trial " << trial << " minute " << m;
      ASSERT_GE(router[m], planned[m].served - grain - 1e-6) << "trial " << trial << " minute " << m;
    }
  }
}

// 10 minutes: eight at 1,000, one at 2,000, one at 5,000 weighted tokens.
PreparedSeries constructed(const PtuPrices& p) {
  std::vector<TokenMinute> m(10, TokenMinute{1000, 0});
  m[3] = {2000, 0};
  m[7] = {5000, 0};
  return prepareSeries(m, {1, 1}, p);
}

TEST(WaterlinePlanner, RecommendationsOnAConstructedSeries) {
  // 1 unit = 1,000 TPM, no burst; unit-hour 1.0; payg 1.0 per 1k input.
  PtuPrices p{1.0, 1.0, 0};
  auto s = constructed(p);
  auto plan = planWaterline(s, {1000, 0, true}, p, {0, 6, 1}, 80);
  ASSERT_TRUE(plan) << plan.error();
  ASSERT_EQ(plan->rows.size(), 7u);
  ASSERT_EQ(plan->recommendations.size(), 3u);
  // coverage=80: 1 unit covers 8 of 10 minutes.
  EXPECT_EQ(plan->recommendations[0].target, "coverage=80");
  EXPECT_EQ(plan->recommendations[0].units, 1);
  auto c90 = pickTarget(*plan, "coverage=90");
  ASSERT_TRUE(c90);
  EXPECT_EQ(c90->units, 2);
  auto c100 = pickTarget(*plan, "coverage=100");
  EXPECT_EQ(c100->units, 5);
  // Costs per hour (10 minutes = 1/6 h): k units cost k; the overflow over 10 minutes is
  // Σ max(0, d - 1000k) tokens at 1.0/1k, × 6 per hour.
  //   k=0: 15,000 -> 90     total 90
  //   k=1: 1000 + 4000 = 5000 -> 30, total 31
  //   k=2: 3000 -> 18, total 20
  //   k=3: 2000 -> 12, total 15
  //   k=4: 1000 -> 6, total 10
  //   k=5: 0, total 5      <- least
  //   k=6: total 6
  EXPECT_NEAR(plan->rows[1].totalCostPerHour, 31, 1e-9);
  EXPECT_NEAR(plan->rows[4].totalCostPerHour, 10, 1e-9);
  EXPECT_NEAR(plan->allPaygCostPerHour, 90, 1e-9);
  EXPECT_EQ(plan->recommendations[1].target, "min-cost");
  EXPECT_EQ(plan->recommendations[1].units, 5);
  // no-429 with spillover: the cheapest.
  EXPECT_EQ(plan->recommendations[2].units, 5);

  // Expensive units: 20 per unit-hour -> paying as you go wins (0 units: 90 vs 1: 50 ...
  //   k=1: 20 + 30 = 50, k=2: 40 + 18 = 58, so 1).
  PtuPrices dear{20.0, 1.0, 0};
  auto plan2 = planWaterline(constructed(dear), {1000, 0, true}, dear, {0, 6, 1}, 80);
  ASSERT_TRUE(plan2);
  EXPECT_EQ(plan2->recommendations[1].units, 1);
  // Very expensive: none.
  PtuPrices gold{100.0, 1.0, 0};
  auto plan3 = planWaterline(constructed(gold), {1000, 0, true}, gold, {0, 6, 1}, 80);
  EXPECT_EQ(plan3->recommendations[1].units, 0);

  // Without spillover no-429 is the peak: 5 units; with burst 25% 4 units reach 5,000.
  auto plan4 = planWaterline(s, {1000, 0, false}, p, {0, 6, 1}, 80);
  EXPECT_EQ(plan4->recommendations[2].units, 5);
  auto plan5 = planWaterline(s, {1000, 25, false}, p, {0, 6, 1}, 80);
  EXPECT_EQ(plan5->recommendations[2].units, 4);
  // A range that never reaches the peak: no recommendation.
  auto plan6 = planWaterline(s, {1000, 0, false}, p, {0, 3, 1}, 100);
  EXPECT_FALSE(plan6->recommendations[0].units.has_value());
  EXPECT_FALSE(plan6->recommendations[2].units.has_value());
}

TEST(WaterlinePlanner, RangeStepAndErrors) {
  PtuPrices p{1, 1, 1};
  auto s = constructed(p);
  auto plan = planWaterline(s, {1000, 0, true}, p, {1, 10, 4}, 50);
  ASSERT_TRUE(plan);
  ASSERT_EQ(plan->rows.size(), 3u);
  EXPECT_EQ(plan->rows[0].units, 1);
  EXPECT_EQ(plan->rows[1].units, 5);
  EXPECT_EQ(plan->rows[2].units, 9);
  EXPECT_FALSE(planWaterline(s, {0, 0, true}, p, {0, 1, 1}, 50));
  EXPECT_FALSE(planWaterline(s, {1000, 0, true}, p, {3, 1, 1}, 50));
  EXPECT_FALSE(planWaterline(s, {1000, 0, true}, p, {0, 1, 0}, 50));
  EXPECT_FALSE(planWaterline(s, {1000, 0, true}, p, {0, 1, 1}, 101));
  EXPECT_FALSE(planWaterline(s, {1000, -1, true}, p, {0, 1, 1}, 50));
  EXPECT_FALSE(planWaterline(s, {1000, 0, true}, {-1, 0, 0}, {0, 1, 1}, 50));
  EXPECT_FALSE(planWaterline(s, {INT64_MAX / 2, 0, true}, p, {0, 3, 1}, 50));
  EXPECT_FALSE(pickTarget(*plan, "coverage=abc"));
  EXPECT_FALSE(pickTarget(*plan, "coverage=120"));
  EXPECT_FALSE(pickTarget(*plan, "cheapest"));
  EXPECT_TRUE(pickTarget(*plan, "no-429"));
}

TEST(WaterlinePlanner, EmptySeries) {
  auto s = prepareSeries({}, {1, 1}, {});
  auto plan = planWaterline(s, {1000, 0, true}, {1, 1, 1}, {0, 2, 1}, 95);
  ASSERT_TRUE(plan);
  EXPECT_EQ(plan->rows[1].utilization, 0);
  EXPECT_EQ(plan->rows[1].servedShare(), 0);
}

}  // namespace
}  // namespace waterline::planners
