// The autoscaler planner against a table of scenarios, with an injected clock.
#include "waterline/planners/autoscaler.h"

// The table leaves trailing Step fields at their defaults.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <optional>
#include <string>
#include <vector>

namespace waterline::planners {
namespace {

using namespace std::chrono_literals;
namespace as = autoscaling;
using api::ScalingPolicy;
using api::ScalingPolicyType;
using api::ScalingRules;
using api::SelectPolicy;

constexpr double kMissing = -12345;  // a step without a value (query error)
const double kNaN = std::numeric_limits<double>::quiet_NaN();
const double kInf = std::numeric_limits<double>::infinity();

const SystemTime kT0 = SystemTime{} + std::chrono::seconds(1'700'000'000);

AutoscalerPolicy makePolicy(double target, double tol, int upWin, int downWin, int minR, int maxR,
                            ScalingRules up = {}, ScalingRules down = {}) {
  AutoscalerPolicy p;
  p.targetPerReplica = target;
  p.tolerance = tol;
  p.scaleUp = up;
  p.scaleUp.stabilizationWindowSeconds = upWin;
  p.scaleDown = down;
  p.scaleDown.stabilizationWindowSeconds = downWin;
  p.minReplicas = minR;
  p.maxReplicas = maxR;
  return p;
}

ScalingRules rules(SelectPolicy select, std::vector<ScalingPolicy> policies) {
  ScalingRules r;
  r.selectPolicy = select;
  r.policies = std::move(policies);
  return r;
}

ScalingPolicy pods(int v, int period) { return {ScalingPolicyType::Pods, v, period}; }
ScalingPolicy pct(int v, int period) { return {ScalingPolicyType::Percent, v, period}; }

struct Step {
  int t;                            // seconds from the scenario start
  double total;                     // kMissing: the query failed
  int32_t expect;                   // desired replicas
  std::string_view reason = "";     // expected Decision::reason ("" = not checked)
  int32_t current = -1;             // -1: the previous step's desired (the reconciler applied it)
  int32_t ptuFloor = 0;
  std::optional<int32_t> maxSched;  // maxSchedulableReplicas
  std::string_view limited = "";    // expected ScalingLimited reason ("" = not checked)
};

struct Case {
  std::string name;
  AutoscalerPolicy policy;
  int32_t start;
  std::vector<Step> steps;
};

void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

std::vector<Case> cases() {
  return {
      {"tolerance",
       makePolicy(100, 0.1, 0, 0, 1, 100),
       10,
       {
           {0, 1050, 10, as::kWithinTolerance, -1, 0, {}, as::kDesiredWithinRange},
           {15, 1100, 10, as::kWithinTolerance},  // ratio exactly 1.1: inside
           {30, 1101, 12, as::kMetricAboveTarget},
           {45, 1200, 12, as::kWithinTolerance},
           {60, 1000, 10, as::kMetricBelowTarget},
           {75, 905, 10, as::kWithinTolerance},
           {90, 0, 1, as::kTooFewReplicas, -1, 0, {}, as::kTooFewReplicas},
       }},
      {"zero tolerance",
       makePolicy(100, 0, 0, 0, 1, 100),
       10,
       {
           {0, 1001, 11, as::kMetricAboveTarget},
           {15, 1100, 11, as::kWithinTolerance},
           {30, 1000, 10, as::kMetricBelowTarget},
       }},
      {"scale-down window holds the highest recommendation",
       makePolicy(100, 0.1, 0, 60, 1, 100),
       10,
       {
           {0, 500, 10, as::kScaleDownStabilized},   // empty history: seeded with the current 10
           {30, 500, 10, as::kScaleDownStabilized},
           {60, 500, 5, as::kMetricBelowTarget},      // the seed has left the window
           {75, 1000, 10, as::kMetricAboveTarget},    // scale-up is immediate (window 0)
           {90, 500, 10, as::kScaleDownStabilized},
           {135, 500, 5, as::kMetricBelowTarget},
       }},
      {"scale-up window holds the lowest recommendation",
       makePolicy(100, 0.1, 60, 0, 1, 100),
       2,
       {
           {0, 200, 2, as::kWithinTolerance},
           {15, 1000, 2, as::kScaleUpStabilized},
           {30, 1000, 2, as::kScaleUpStabilized},
           {60, 1000, 10, as::kMetricAboveTarget},
           {75, 100, 1, as::kMetricBelowTarget},
           {90, 1000, 1, as::kScaleUpStabilized},  // a spike inside the window is ignored
       }},
      {"scale-up Pods policy",
       makePolicy(100, 0.1, 0, 0, 1, 100, rules(SelectPolicy::Max, {pods(4, 60)})),
       2,
       {
           {0, 2000, 6, as::kRateLimited, -1, 0, {}, as::kRateLimited},
           {15, 2000, 6, as::kRateLimited},  // the +4 of t=0 is still in the period
           {60, 2000, 10, as::kRateLimited},
           {120, 2000, 14, as::kRateLimited},
           {180, 2000, 18, as::kRateLimited},
           {240, 2000, 20, as::kMetricAboveTarget, -1, 0, {}, as::kDesiredWithinRange},
       }},
      {"scale-up Pods and Percent, select Max",
       makePolicy(100, 0.1, 0, 0, 1, 100, rules(SelectPolicy::Max, {pods(4, 60), pct(100, 60)})),
       2,
       {
           {0, 2000, 6, as::kRateLimited},     // max(2+4, 2×2)
           {60, 2000, 12, as::kRateLimited},   // max(6+4, 6×2)
           {120, 2000, 20, as::kMetricAboveTarget},
       }},
      {"scale-up Pods and Percent, select Min",
       makePolicy(100, 0.1, 0, 0, 1, 100, rules(SelectPolicy::Min, {pods(4, 60), pct(100, 60)})),
       2,
       {
           {0, 2000, 4, as::kRateLimited},    // min(6, 4)
           {60, 2000, 8, as::kRateLimited},   // min(8, 8)
           {120, 2000, 12, as::kRateLimited},  // min(12, 16)
           {180, 2000, 16, as::kRateLimited},
           {240, 2000, 20, as::kMetricAboveTarget},
       }},
      {"scale-up Percent rounds up",
       makePolicy(100, 0.1, 0, 0, 1, 100, rules(SelectPolicy::Max, {pct(10, 60)})),
       5,
       {
           {0, 2000, 6, as::kRateLimited},  // ceil(5 × 1.1) = 6
       }},
      {"scale-up Disabled",
       makePolicy(100, 0.1, 0, 0, 1, 100, rules(SelectPolicy::Disabled, {})),
       2,
       {
           {0, 2000, 2, as::kRateLimited, -1, 0, {}, as::kRateLimited},
           {15, 100, 1, as::kMetricBelowTarget},  // scale-down still works
       }},
      {"scale-down Percent policy",
       makePolicy(100, 0.1, 0, 0, 1, 100, {}, rules(SelectPolicy::Max, {pct(50, 60)})),
       20,
       {
           {0, 100, 10, as::kRateLimited, -1, 0, {}, as::kRateLimited},
           {30, 100, 10, as::kRateLimited},  // period start is still 20
           {60, 100, 5, as::kRateLimited},
           {120, 100, 2, as::kRateLimited},  // trunc(5 × 0.5)
           {180, 100, 1, as::kMetricBelowTarget},
       }},
      {"scale-down Pods and Percent, select Min keeps the smaller change",
       makePolicy(100, 0.1, 0, 0, 1, 100, {}, rules(SelectPolicy::Min, {pods(2, 60), pct(50, 60)})),
       20,
       {
           {0, 100, 18, as::kRateLimited},
           {60, 100, 16, as::kRateLimited},
       }},
      {"scale-down Disabled",
       makePolicy(100, 0.1, 0, 0, 1, 100, {}, rules(SelectPolicy::Disabled, {})),
       10,
       {
           {0, 100, 10, as::kRateLimited},
           {15, 5000, 50, as::kMetricAboveTarget},
       }},
      {"scale-up after scale-down in the same period counts from the period start",
       makePolicy(100, 0.1, 0, 0, 1, 100, rules(SelectPolicy::Max, {pods(2, 60)})),
       10,
       {
           {0, 500, 5, as::kMetricBelowTarget},
           {15, 2000, 12, as::kRateLimited},  // period start = 5 + 5 removed = 10 → 12
       }},
      {"bounds: min, max and the PTU floor",
       makePolicy(100, 0.1, 0, 0, 3, 10),
       5,
       {
           {0, 100, 3, as::kTooFewReplicas, -1, 0, {}, as::kTooFewReplicas},
           {15, 5000, 10, as::kTooManyReplicas, -1, 0, {}, as::kTooManyReplicas},
           {30, 100, 6, as::kTooFewReplicas, -1, 6, {}, as::kTooFewReplicas},
           {45, 100, 12, as::kTooFewReplicas, -1, 12},  // a PTU floor above maxReplicas wins
           {60, 700, 7, as::kMetricBelowTarget, -1, 0},
           {75, 1400, 10, as::kTooManyReplicas, 14},     // current above max: back to max
           {90, 700, 7, as::kMetricBelowTarget},
           {105, 100, 3, as::kTooFewReplicas, 1, 0},    // current below min, metric says 1 → min
       }},
      {"bounds beat rate limits",
       makePolicy(100, 0.1, 0, 0, 8, 20, rules(SelectPolicy::Max, {pods(1, 60)}),
                  rules(SelectPolicy::Max, {pods(1, 60)})),
       2,
       {
           {0, 100, 8, as::kTooFewReplicas},   // the jump to min ignores the rate limits...
           {15, 10000, 8, as::kRateLimited},  // ...but counts: the +6 is in the period
           {75, 10000, 9, as::kRateLimited},
           {90, 100, 8, as::kTooFewReplicas},  // down-limit 7 (period start 8), then min
       }},
      {"capacity limits scale-up only",
       makePolicy(100, 0.1, 0, 0, 1, 100),
       5,
       {
           {0, 2000, 12, as::kCapacityLimited, -1, 0, 12, as::kCapacityLimited},
           {15, 2000, 12, as::kCapacityLimited, -1, 0, 12, as::kCapacityLimited},
           {30, 2000, 12, as::kCapacityLimited, -1, 0, 8},  // capacity shrank: hold, never cut
           {45, 2000, 20, as::kMetricAboveTarget},         // unknown capacity: no limit
           {60, 500, 5, as::kMetricBelowTarget, -1, 0, 3},  // scale-down is not affected
           {75, 500, 9, as::kTooFewReplicas, -1, 9, 3},     // the floor beats capacity
           // 20 -> 5 at t=60 reversed the scale-ups: flap damping widens the tolerance to
           // 0.1 x (1 + 0.5 x 2^(-30/600)) = 0.148 (the floor's raise at t=75 does not count)
           {90, 1000, 9, as::kWithinTolerance, -1, 0, 10},
           {105, 1200, 12, as::kMetricAboveTarget, -1, 0, 12},
       }},
      {"missing data holds the count and recovers",
       makePolicy(100, 0.1, 0, 300, 2, 20),
       10,
       {
           {0, 1000, 10, as::kWithinTolerance},
           {15, kMissing, 10, as::kFailedGetMetric, -1, 0, {}, as::kDesiredWithinRange},
           {30, kNaN, 10, as::kFailedGetMetric},
           {45, kInf, 10, as::kFailedGetMetric},
           {60, -5, 10, as::kFailedGetMetric},
           {61, kMissing, 10, as::kFailedGetMetric, -1, 0, 3},  // even with little capacity
           {75, kMissing, 2, as::kFailedGetMetric, 1, 0, {}, as::kTooFewReplicas},  // bounds still apply
           {90, 500, 10, as::kScaleDownStabilized, 10},  // recovered; the window still holds 10
           {380, 500, 5, as::kMetricBelowTarget},  // t=0's 10 has left (80, 380]
       }},
      {"a long outage empties the history: hold for one down-window after recovery",
       makePolicy(100, 0.1, 0, 300, 1, 20),
       10,
       {
           {0, 1000, 10, as::kWithinTolerance},
           {1000, kMissing, 10, as::kFailedGetMetric},
           {1015, 100, 10, as::kScaleDownStabilized},
           {1200, 100, 10, as::kScaleDownStabilized},
           {1316, 100, 1, as::kMetricBelowTarget},
       }},
      {"scale from zero",
       makePolicy(100, 0.1, 0, 0, 0, 10),
       0,
       {
           {0, 0, 0, as::kWithinTolerance},
           {15, 250, 3, as::kMetricAboveTarget},
           {30, 0, 0, as::kMetricBelowTarget},
       }},
      {"HPA defaults: fast up, slow down",
       makePolicy(100, 0.1, 0, 300, 1, 100, rules(SelectPolicy::Max, {pods(4, 15), pct(100, 15)}),
                  rules(SelectPolicy::Max, {pct(100, 15)})),
       1,
       {
           {0, 3000, 5, as::kRateLimited},    // max(1+4, 2)
           {15, 3000, 10, as::kRateLimited},  // max(5+4, 10)
           {30, 3000, 20, as::kRateLimited},
           {45, 3000, 30, as::kMetricAboveTarget},
           {60, 300, 30, as::kScaleDownStabilized},
           {344, 300, 30, as::kScaleDownStabilized},  // t=45's 30 is within (44, 344]
           {345, 300, 3, as::kMetricBelowTarget},     // and gone from (45, 345]
       }},
  };
}

class AutoscalerTable : public ::testing::TestWithParam<Case> {};

TEST_P(AutoscalerTable, Steps) {
  const Case& c = GetParam();
  std::string stateJson;  // persisted as the reconciler would
  int32_t current = c.start;
  for (const auto& s : c.steps) {
    SCOPED_TRACE("t=" + std::to_string(s.t));
    AutoscalerInput in;
    in.now = kT0 + std::chrono::seconds(s.t) + 250ms;  // sub-second parts are dropped
    in.currentReplicas = s.current >= 0 ? s.current : current;
    in.metric = s.total == kMissing ? MetricObservation::failed("prometheus: connection refused")
                                    : MetricObservation::value(s.total);
    in.ptuFloor = s.ptuFloor;
    in.maxSchedulableReplicas = s.maxSched;
    in.observedGeneration = 7;
    const auto state = AutoscalerState::fromJson(stateJson.empty() ? "{\"v\":1}" : stateJson);
    ASSERT_TRUE(state.has_value()) << state.error();
    const auto d = planAutoscaling(c.policy, *state, in);
    EXPECT_EQ(d.desiredReplicas, s.expect) << d.message;
    if (!s.reason.empty()) {
      EXPECT_EQ(d.reason, s.reason) << d.message;
    }

    ASSERT_EQ(d.conditions.size(), 2u);
    const bool valid = s.total != kMissing && std::isfinite(s.total) && s.total >= 0;
    EXPECT_EQ(d.conditions[0].type, as::kScalingActive);
    EXPECT_EQ(d.conditions[0].status, valid ? api::ConditionStatus::True : api::ConditionStatus::False);
    EXPECT_EQ(d.conditions[0].reason, valid ? as::kValidMetric : as::kFailedGetMetric);
    EXPECT_EQ(d.conditions[0].observedGeneration, 7);
    EXPECT_EQ(d.conditions[1].type, as::kScalingLimited);
    if (!s.limited.empty()) {
      EXPECT_EQ(d.conditions[1].reason, s.limited) << d.conditions[1].message;
      EXPECT_EQ(d.conditions[1].status, s.limited == as::kDesiredWithinRange ? api::ConditionStatus::False
                                                                             : api::ConditionStatus::True);
    }
    EXPECT_EQ(d.event.has_value() && !d.event->warning, d.changed());
    if (!valid && !d.changed()) {
      ASSERT_TRUE(d.event);
      EXPECT_TRUE(d.event->warning);
      EXPECT_EQ(d.event->reason, as::kFailedGetMetric);
    }
    stateJson = d.newState.toJson();
    current = d.desiredReplicas;
  }
}

INSTANTIATE_TEST_SUITE_P(Cases, AutoscalerTable, ::testing::ValuesIn(cases()),
                         [](const ::testing::TestParamInfo<Case>& info) {
                           std::string n;
                           for (char ch : info.param.name)
                             n += std::isalnum(static_cast<unsigned char>(ch)) ? ch : '_';
                           return n;
                         });

// ---- single behaviours

TEST(Autoscaler, EventTextNamesCountsMetricTargetAndReason) {
  auto p = makePolicy(100, 0.1, 0, 0, 1, 100);
  AutoscalerInput in;
  in.now = kT0;
  in.currentReplicas = 5;
  in.metric = MetricObservation::value(1234.5);
  auto d = planAutoscaling(p, {}, in);
  ASSERT_TRUE(d.event);
  EXPECT_FALSE(d.event->warning);
  EXPECT_EQ(d.event->reason, as::kSuccessfulRescale);
  EXPECT_EQ(d.event->message, "from 5 to 13: metric 1234.5 target 100 reason MetricAboveTarget");
  EXPECT_EQ(formatRescaleEvent(3, 1, 0.125, 2.5, "X"), "from 3 to 1: metric 0.125 target 2.5 reason X");
}

TEST(Autoscaler, FailedMetricMessageCarriesTheSourceError) {
  auto p = makePolicy(100, 0.1, 0, 0, 1, 100);
  AutoscalerInput in;
  in.now = kT0;
  in.currentReplicas = 4;
  in.metric = MetricObservation::failed("bad_data: parse error at char 5");
  auto d = planAutoscaling(p, {}, in);
  EXPECT_EQ(d.desiredReplicas, 4);
  EXPECT_EQ(d.reason, as::kFailedGetMetric);
  EXPECT_NE(d.conditions[0].message.find("bad_data: parse error at char 5"), std::string::npos);
  ASSERT_TRUE(d.event);
  EXPECT_TRUE(d.event->warning);
  EXPECT_EQ(d.event->message, "bad_data: parse error at char 5");
  EXPECT_FALSE(d.metricValue);
  EXPECT_TRUE(d.newState.recommendations.empty());  // no recommendation from missing data
}

TEST(Autoscaler, StateRecordsRawRecommendationsAndEvents) {
  auto p = makePolicy(100, 0.1, 0, 300, 1, 100, rules(SelectPolicy::Max, {pods(4, 60)}));
  AutoscalerInput in;
  in.now = kT0 + 900ms;
  in.currentReplicas = 2;
  in.metric = MetricObservation::value(2000);
  auto d = planAutoscaling(p, {}, in);
  EXPECT_EQ(d.rawRecommendation, 20);
  EXPECT_EQ(d.stabilizedRecommendation, 20);
  EXPECT_EQ(d.rateLimitedRecommendation, 6);
  EXPECT_EQ(d.desiredReplicas, 6);
  const int64_t t = 1'700'000'000;
  // the seed (current count, 2) is dominated by the newer, higher 20 within the down-window
  EXPECT_EQ(d.newState.recommendations, (std::vector<AutoscalerState::Entry>{{t, 20}}));
  EXPECT_EQ(d.newState.scaleUpEvents, (std::vector<AutoscalerState::Entry>{{t, 4}}));
  EXPECT_TRUE(d.newState.scaleDownEvents.empty());
  // "f": the flap-damping record (time, direction up, penalty 0: no reversal yet)
  EXPECT_EQ(d.newState.toJson(), R"({"f":[1700000000,1,0],"r":[[1700000000,20]],"u":[[1700000000,4]],"v":1})");
}

TEST(Autoscaler, FutureTimestampsAreTreatedAsNow) {
  // State written by an operator whose clock ran ahead must not pin the window forever.
  auto p = makePolicy(100, 0.1, 0, 60, 1, 100);
  AutoscalerState st;
  st.recommendations = {{1'800'000'000, 50}};  // far in the future
  AutoscalerInput in;
  in.now = kT0;
  in.currentReplicas = 50;
  in.metric = MetricObservation::value(500);
  auto d = planAutoscaling(p, st, in);
  EXPECT_EQ(d.desiredReplicas, 50);  // held now...
  in.now = kT0 + 30s;
  d = planAutoscaling(p, d.newState, in);
  EXPECT_EQ(d.desiredReplicas, 50);
  in.now = kT0 + 61s;
  d = planAutoscaling(p, d.newState, in);
  EXPECT_EQ(d.desiredReplicas, 5);  // ...but only for one window
}

TEST(Autoscaler, ReplicasForLoadIsRobustToFloatingPoint) {
  EXPECT_EQ(replicasForLoad(300, 100), 3);
  EXPECT_EQ(replicasForLoad(0.3, 0.1), 3);
  EXPECT_EQ(replicasForLoad(1.1, 0.1), 11);
  EXPECT_EQ(replicasForLoad(0.7, 0.1), 7);
  EXPECT_EQ(replicasForLoad(300.5, 100), 4);
  EXPECT_EQ(replicasForLoad(1e-12, 100), 1);
  EXPECT_EQ(replicasForLoad(0, 100), 0);
  EXPECT_EQ(replicasForLoad(-5, 100), 0);
  EXPECT_EQ(replicasForLoad(1e300, 1), std::numeric_limits<int32_t>::max());
}

TEST(Autoscaler, PlainHpaBaseline) {
  EXPECT_EQ(planPlainHpa(10, 1050, 100, 0.1, 1, 100), 10);
  EXPECT_EQ(planPlainHpa(10, 1101, 100, 0.1, 1, 100), 12);
  EXPECT_EQ(planPlainHpa(10, 500, 100, 0.1, 1, 100), 5);  // no window: immediately
  EXPECT_EQ(planPlainHpa(10, 50000, 100, 0.1, 1, 100), 100);
  EXPECT_EQ(planPlainHpa(10, 0, 100, 0.1, 2, 100), 2);
  EXPECT_EQ(planPlainHpa(10, std::nullopt, 100, 0.1, 1, 100), 10);
  EXPECT_EQ(planPlainHpa(10, kNaN, 100, 0.1, 1, 100), 10);
  EXPECT_EQ(planPlainHpa(0, 250, 100, 0.1, 0, 100), 3);
}

// ---- flap damping

// One evaluation at kT0 + t s with the state carried in `json`.
AutoscalerDecision evalAt(const AutoscalerPolicy& p, std::string& json, int t, int32_t current,
                          std::optional<double> total, int32_t ptuFloor = 0) {
  AutoscalerInput in;
  in.now = kT0 + std::chrono::seconds(t);
  in.currentReplicas = current;
  in.metric = total ? MetricObservation::value(*total) : MetricObservation::failed("down");
  in.ptuFloor = ptuFloor;
  auto d = planAutoscaling(p, AutoscalerState::parseOrEmpty(json), in);
  json = d.newState.toJson();
  return d;
}

TEST(FlapDamping, DefaultsAndTheHpaHasNone) {
  const AutoscalerPolicy p;
  EXPECT_EQ(p.flapHalfLifeSeconds, 600);
  EXPECT_DOUBLE_EQ(p.flapPenaltyStep, 0.5);
  EXPECT_DOUBLE_EQ(p.flapPenaltyMax, 1.0);
  EXPECT_DOUBLE_EQ(p.dampedTolerance(0.5), api::kDefaultTolerance * 1.5);
  EXPECT_DOUBLE_EQ(p.dampedTolerance(7), api::kDefaultTolerance * 2);  // capped
  EXPECT_EQ(kubernetesHpaDefaultPolicy(12, 1, 100).flapHalfLifeSeconds, 0);
  AutoscalerPolicy off;
  off.flapHalfLifeSeconds = 0;
  EXPECT_DOUBLE_EQ(off.dampedTolerance(1), off.tolerance);
}

TEST(FlapDamping, AReversalWidensTheToleranceUntilItDecays) {
  const auto p = makePolicy(100, 0.1, 0, 0, 1, 100);  // default damping: 600 s, +0.5, max 1
  std::string json;
  EXPECT_EQ(evalAt(p, json, 0, 10, 1200).desiredReplicas, 12);  // up: the first event, no penalty
  EXPECT_EQ(AutoscalerState::parseOrEmpty(json).flapPenaltyMilli, 0);
  EXPECT_EQ(evalAt(p, json, 15, 12, 900).desiredReplicas, 9);  // down: a reversal, penalty 0.5
  const auto st = AutoscalerState::parseOrEmpty(json);
  EXPECT_EQ(st.flapPenaltyMilli, 500);
  EXPECT_EQ(st.lastDirection, -1);
  // ratio 1.144: outside 0.1, inside 0.1 x (1 + 0.5 x 2^(-15/600)) = 0.149
  auto d = evalAt(p, json, 30, 9, 1030);
  EXPECT_EQ(d.desiredReplicas, 9);
  EXPECT_EQ(d.reason, as::kWithinTolerance);
  EXPECT_NE(d.message.find("flap-damped tolerance 0.149"), std::string::npos) << d.message;
  // two half-lives later the penalty is 0.5 x 2^(-1215/600) = 0.123: tolerance 0.112
  std::string later = json;
  d = evalAt(p, later, 15 + 1200, 9, 1030);
  EXPECT_EQ(d.desiredReplicas, 11);
  EXPECT_EQ(d.reason, as::kMetricAboveTarget);
  // without damping the same steps scale up at t=30
  auto hpa = p;
  hpa.flapHalfLifeSeconds = 0;
  std::string j2;
  evalAt(hpa, j2, 0, 10, 1200);
  evalAt(hpa, j2, 15, 12, 900);
  EXPECT_EQ(evalAt(hpa, j2, 30, 9, 1030).desiredReplicas, 11);
  EXPECT_EQ(j2.find("\"f\""), std::string::npos);  // and it records nothing
}

TEST(FlapDamping, OnlyReversalsAddAndThePenaltyIsCapped) {
  auto p = makePolicy(100, 0.1, 0, 0, 1, 1000);
  p.flapHalfLifeSeconds = 1'000'000;  // no decay to speak of
  std::string json;
  evalAt(p, json, 0, 10, 2000);   // up to 20
  evalAt(p, json, 15, 20, 3000);  // up to 30: same direction, nothing added
  EXPECT_EQ(AutoscalerState::parseOrEmpty(json).flapPenaltyMilli, 0);
  evalAt(p, json, 30, 30, 1000);  // down: +0.5
  EXPECT_EQ(AutoscalerState::parseOrEmpty(json).flapPenaltyMilli, 500);
  evalAt(p, json, 45, 10, 3000);  // up: +0.5
  EXPECT_EQ(AutoscalerState::parseOrEmpty(json).flapPenaltyMilli, 1000);
  evalAt(p, json, 60, 30, 1000);  // down: capped at 1
  EXPECT_EQ(AutoscalerState::parseOrEmpty(json).flapPenaltyMilli, 1000);
  // the tolerance is at most 0.1 x 2: ratio 0.81 holds, 0.79 moves
  std::string a = json, b = json;
  EXPECT_EQ(evalAt(p, a, 75, 10, 810).desiredReplicas, 10);
  EXPECT_EQ(evalAt(p, b, 75, 10, 790).desiredReplicas, 8);
}

TEST(FlapDamping, ForcedAndMetriclessChangesDoNotCount) {
  const auto p = makePolicy(100, 0.1, 0, 0, 1, 100);
  std::string json;
  evalAt(p, json, 0, 10, 500);                                 // down to 5
  EXPECT_EQ(evalAt(p, json, 15, 5, 500, 8).desiredReplicas, 8);  // the PTU floor raises it: not a reversal
  EXPECT_EQ(evalAt(p, json, 30, 0, std::nullopt).desiredReplicas, 1);  // raised to minReplicas, no metric
  const auto st = AutoscalerState::parseOrEmpty(json);
  EXPECT_EQ(st.lastDirection, -1);
  EXPECT_EQ(st.flapPenaltyMilli, 0);
}

// An in-flight metric grows faster than 1/replicas when replicas are removed (batches
// grow, requests take longer): here per-replica load is target x (L/N)^2, so a step to
// the proportional recommendation overshoots and the next undoes it, every evaluation.
TEST(FlapDamping, StopsTheOscillationOfAnElasticMetric) {
  auto run = [](const AutoscalerPolicy& p, int32_t& lo, int32_t& hi) {
    std::string json;
    int32_t n = 100, events = 0;
    lo = hi = n;
    const double load = 93.3;  // replicas' worth: ratio 0.87 at 100, 1.15 at 87
    for (int t = 0; t < 3600; t += 15) {
      const double perReplica = 100 * (load / n) * (load / n);
      const auto d = evalAt(p, json, t, n, perReplica * n);
      if (d.desiredReplicas != n) ++events;
      n = d.desiredReplicas;
      lo = std::min(lo, n);
      hi = std::max(hi, n);
    }
    return events;
  };
  const auto damped = makePolicy(100, 0.1, 0, 0, 1, 200);
  auto undamped = damped;
  undamped.flapHalfLifeSeconds = 0;
  int32_t lo = 0, hi = 0;
  EXPECT_GE(run(undamped, lo, hi), 200);  // a change at nearly every evaluation
  const int events = run(damped, lo, hi);
  EXPECT_LE(events, 8);
  EXPECT_GE(events, 2);  // it still moves when the penalty has decayed
  EXPECT_GE(lo, 87);
  EXPECT_LE(hi, 100);
}

TEST(FlapDamping, StateRoundTripsAndRejectsGarbage) {
  AutoscalerState st;
  st.lastEventSeconds = 1'700'000'015;
  st.lastDirection = -1;
  st.flapPenaltyMilli = 750;
  const auto json = st.toJson();
  EXPECT_EQ(json, R"({"f":[1700000015,-1,750],"v":1})");
  auto back = AutoscalerState::fromJson(json);
  ASSERT_TRUE(back.has_value()) << back.error();
  EXPECT_EQ(*back, st);
  for (const char* bad : {R"({"v":1,"f":[1,0,5]})", R"({"v":1,"f":[1,2,5]})", R"({"v":1,"f":[1,1,-5]})",
                          R"({"v":1,"f":[1,1]})", R"({"v":1,"f":"x"})", R"({"v":1,"f":[1,1,0.5]})"})
    EXPECT_FALSE(AutoscalerState::fromJson(bad).has_value()) << bad;
}

TEST(AutoscalerPolicy, FromSpec) {
  api::ModelDeploymentSpec spec;
  EXPECT_FALSE(AutoscalerPolicy::fromSpec(spec));
  spec.autoscaling = api::AutoscalingSpec{};
  spec.autoscaling->enabled = true;
  auto r = AutoscalerPolicy::fromSpec(spec);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().find("targetPerReplica"), std::string::npos);
  spec.autoscaling->targetPerReplica = api::Quantity::parse("1.5k").value();
  r = AutoscalerPolicy::fromSpec(spec);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().find("spec.maxReplicas"), std::string::npos);
  spec.maxReplicas = 12;
  spec.autoscaling->scaleUp.policies = {pods(4, 15)};
  r = AutoscalerPolicy::fromSpec(spec);
  ASSERT_TRUE(r) << r.error();
  EXPECT_DOUBLE_EQ(r->targetPerReplica, 1500);
  EXPECT_EQ(r->minReplicas, 1);
  EXPECT_EQ(r->maxReplicas, 12);
  EXPECT_EQ(r->scaleDown.stabilizationWindowSeconds, 300);
  EXPECT_EQ(r->scaleUp.policies.size(), 1u);
  spec.minReplicas = 13;
  EXPECT_FALSE(AutoscalerPolicy::fromSpec(spec));
  spec.minReplicas = 0;
  ASSERT_TRUE(AutoscalerPolicy::fromSpec(spec));
  EXPECT_EQ(AutoscalerPolicy::fromSpec(spec)->minReplicas, 0);
  spec.autoscaling->scaleDown.policies = {pct(0, 15)};
  r = AutoscalerPolicy::fromSpec(spec);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), "spec.autoscaling.scaleDown.policies[0].value: must be >= 1");
}

// ---- state (de)serialisation

TEST(AutoscalerState, RoundTrip) {
  AutoscalerState st;
  st.recommendations = {{100, 3}, {115, 7}, {130, 5}};
  st.scaleUpEvents = {{115, 4}};
  st.scaleDownEvents = {{130, 2}};
  const std::string j = st.toJson();
  EXPECT_EQ(j, R"({"d":[[130,2]],"r":[[100,3],[115,7],[130,5]],"u":[[115,4]],"v":1})");
  auto back = AutoscalerState::fromJson(j);
  ASSERT_TRUE(back) << back.error();
  EXPECT_EQ(*back, st);
  EXPECT_EQ(AutoscalerState{}.toJson(), R"({"v":1})");
  EXPECT_EQ(*AutoscalerState::fromJson(R"({"v":1})"), AutoscalerState{});
}

TEST(AutoscalerState, FromJsonSortsAndRejectsGarbage) {
  auto st = AutoscalerState::fromJson(R"({"v":1,"r":[[200,1],[100,2]]})");
  ASSERT_TRUE(st);
  EXPECT_EQ(st->recommendations.front().unixSeconds, 100);
  for (const char* bad : {"", "[]", "{}", R"({"v":2})", R"({"v":1,"r":{}})", R"({"v":1,"r":[[1]]})",
                          R"({"v":1,"r":[[1,-1]]})", R"({"v":1,"r":[["a",1]]})", R"({"v":1,"u":[[1,1.5]]})",
                          "{not json"}) {
    EXPECT_FALSE(AutoscalerState::fromJson(bad)) << bad;
    EXPECT_EQ(AutoscalerState::parseOrEmpty(bad), AutoscalerState{}) << bad;
  }
}

TEST(AutoscalerState, StaysSmallUnderAFastLoop) {
  // A caller evaluating every second for an hour with a noisy metric: the history
  // stays bounded and the annotation small.
  auto p = makePolicy(10, 0.0, 120, 600, 1, 30, rules(SelectPolicy::Max, {pods(2, 60)}),
                      rules(SelectPolicy::Max, {pods(1, 30)}));
  AutoscalerState st;
  int32_t current = 10;
  uint64_t x = 12345;
  size_t maxRecs = 0, maxJson = 0;
  for (int t = 0; t < 3600; ++t) {
    x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    AutoscalerInput in;
    in.now = kT0 + std::chrono::seconds(t);
    in.currentReplicas = current;
    in.metric = MetricObservation::value(double((x >> 33) % 300));
    auto d = planAutoscaling(p, st, in);
    st = d.newState;
    current = d.desiredReplicas;
    maxRecs = std::max(maxRecs, st.recommendations.size());
    maxJson = std::max(maxJson, st.toJson().size());
  }
  EXPECT_LE(maxRecs, 2u * 30u + 2u);
  EXPECT_LE(maxJson, 2048u);
}

// ---- Kubernetes HPA with its default behaviour (the bench's faithful baseline).
// Expected values worked out by hand from replica_calculator.go / horizontal.go.

TEST(KubernetesHpa, PodMetricReplicasPlainPath) {
  HpaPodCounts all10{10, 0, 0};
  // average 105 of target 100: within the 10 % tolerance
  EXPECT_EQ(hpaPodMetricReplicas(10, 1050, all10, 100, 0.1), 10);
  // average 111: ceil(1.11 × 10) = 12
  EXPECT_EQ(hpaPodMetricReplicas(10, 1110, all10, 100, 0.1), 12);
  // average 50: ceil(0.5 × 10) = 5
  EXPECT_EQ(hpaPodMetricReplicas(10, 500, all10, 100, 0.1), 5);
  // the count is of the pods that report, not spec.replicas: 8 report an average of 150
  EXPECT_EQ(hpaPodMetricReplicas(10, 1200, HpaPodCounts{8, 0, 0}, 100, 0.1), 12);
  // nobody reports: the HPA fails the sync
  EXPECT_EQ(hpaPodMetricReplicas(10, 0, HpaPodCounts{0, 4, 0}, 100, 0.1), std::nullopt);
}

TEST(KubernetesHpa, MissingPodsDampenBothDirections) {
  // Scale-up with 4 pods still loading (missing, counted as 0): 6 report an average of
  // 150 (the plain rule: ceil(1.5 × 6) = 9), but 900 over 10 pods is 0.9: within the
  // tolerance after the correction, so no change.
  EXPECT_EQ(hpaPodMetricReplicas(10, 900, HpaPodCounts{6, 4, 0}, 100, 0.1), 10);
  EXPECT_EQ(hpaPodMetricReplicas(10, 1500, HpaPodCounts{6, 4, 0}, 100, 0.1), 15);  // 1500/10 = 1.5
  // Scale-down with 2 missing pods: 8 report an average of 50; the missing count as the
  // target: (400 + 200) / 10 / 100 = 0.6 -> 6 (the plain rule would say 4).
  EXPECT_EQ(hpaPodMetricReplicas(10, 400, HpaPodCounts{8, 2, 0}, 100, 0.1), 6);
  // ... and within tolerance after the correction: no change.
  EXPECT_EQ(hpaPodMetricReplicas(10, 760, HpaPodCounts{8, 2, 0}, 100, 0.1), 10);  // (760+200)/1000
}

TEST(KubernetesHpa, PendingPodsCountAsZeroOnlyOnAScaleUp) {
  // 8 report an average of 150 and 2 are Pending: they count as 0 -> 1200/10 = 1.2 -> 12.
  EXPECT_EQ(hpaPodMetricReplicas(10, 1200, HpaPodCounts{8, 0, 2}, 100, 0.1), 12);
  // 8 report an average of 50: Pending pods are ignored on a scale-down -> ceil(0.5 × 8) = 4.
  EXPECT_EQ(hpaPodMetricReplicas(10, 400, HpaPodCounts{8, 0, 2}, 100, 0.1), 4);
}

TEST(KubernetesHpa, DefaultPolicyIsTheApiDefault) {
  const auto p = kubernetesHpaDefaultPolicy(12, 1, 50);
  EXPECT_DOUBLE_EQ(p.tolerance, 0.1);
  EXPECT_EQ(p.scaleUp.stabilizationWindowSeconds, 0);
  EXPECT_EQ(p.scaleUp.selectPolicy, SelectPolicy::Max);
  EXPECT_EQ(p.scaleUp.policies, (std::vector<ScalingPolicy>{{ScalingPolicyType::Pods, 4, 15},
                                                             {ScalingPolicyType::Percent, 100, 15}}));
  EXPECT_EQ(p.scaleDown.stabilizationWindowSeconds, 300);
  EXPECT_EQ(p.scaleDown.policies, (std::vector<ScalingPolicy>{{ScalingPolicyType::Percent, 100, 15}}));
}

TEST(KubernetesHpa, SyncsFollowTheDefaultBehaviour) {
  const auto policy = kubernetesHpaDefaultPolicy(100, 1, 1000);
  AutoscalerState st;
  int32_t spec = 2;
  auto sync = [&](int sec, double total, HpaPodCounts pods) {
    auto d = planKubernetesHpa(policy, st, kT0 + std::chrono::seconds(sec), spec, total, pods);
    st = d.newState;
    spec = d.desiredReplicas;
    return spec;
  };
  // 2 pods at an average of 1000 want 20: scale-up at most max(+4, +100 %) = 6 per 15 s.
  EXPECT_EQ(sync(0, 2000, {2, 0, 0}), 6);
  // 15 s later the 4 new pods are loading (missing, counted as 0): 2000/6/100 = 3.3 -> 20,
  // limited to max(6 + 4, 12) = 12.
  EXPECT_EQ(sync(15, 2000, {2, 4, 0}), 12);
  // All ready, load gone to an average of 10: the scale-down waits for the 300 s window
  // (the highest recommendation in it is 20).
  EXPECT_EQ(sync(30, 120, {12, 0, 0}), 12);
  EXPECT_EQ(sync(300, 120, {12, 0, 0}), 12);
  // 300 s after the last high recommendation (t = 15): down to 2 at once (100 % per 15 s).
  EXPECT_EQ(sync(316, 120, {12, 0, 0}), 2);
  // No pod reports the metric: hold, record no recommendation.
  EXPECT_EQ(sync(331, 0, {0, 0, 0}), 2);
  for (const auto& r : st.recommendations) EXPECT_LT(r.unixSeconds, 1'700'000'000 + 331);
}

TEST(KubernetesHpa, AMissingMetricHolds) {
  const auto policy = kubernetesHpaDefaultPolicy(100, 1, 10);
  auto d = planKubernetesHpa(policy, {}, kT0, 4, std::nullopt, HpaPodCounts{4, 0, 0});
  EXPECT_EQ(d.desiredReplicas, 4);
  EXPECT_EQ(d.reason, as::kFailedGetMetric);
}

}  // namespace
}  // namespace waterline::planners
