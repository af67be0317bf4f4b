#pragma once
// The waterline planner (pure): what a PTUReservation of a given size would do with a
// deployment's per-minute token series, what it costs, and which size to buy.
//
// Input: one point per minute (input tokens, output tokens), weighted as the reservation
// weighs them (ThroughputSpec: input × inputTokenWeight + output × outputTokenWeight).
//
// Per minute m, for `units` units of `tokensPerMinutePerUnit` with `burstPercent`:
//   L         = units × tokensPerMinutePerUnit × (1 + burstPercent/100)
//               (ptuWindowLimit: the router's LimiterConfig::limit() for one router
//               replica, computed the same way, in double)
//   served(m) = min(demand(m), L)
//   over(m)   = demand(m) − served(m): spilled when a spillover deployment is set,
//               throttled (429) otherwise.
// That is the router's sliding window (docs/routing.md, "PTU admission") with each
// minute of the series as one window and requests small against L: the router admits a
// request when the tokens charged in the last window plus its charge fit in L, so a
// window admits min(demand, L) and the rest spills or is refused. What the minute model
// does not see — a burst that straddles a minute boundary, requests large against L,
// estimates settled later — is the planner's error against the routing simulation
// (issue 16's planner_spill_error_pp; not measured yet).
//
// A minute is "covered" when nothing spills or is throttled in it (over(m) == 0).
// Utilisation = Σ served / (units × tokensPerMinutePerUnit × minutes) (may exceed 1 with
// burst). Costs, per hour of the series (minutes / 60):
//   reserved       = units × unitHourPrice
//   pay-as-you-go  = the spilled tokens at the pay-as-you-go prices (a minute's spilled
//                    weighted tokens split into input and output in the minute's
//                    proportion), 0 without spillover
//   total          = reserved + pay-as-you-go
//   overflow cost  = all of over(m) at pay-as-you-go prices, spilled or throttled (what
//                    serving the rest elsewhere would cost; "min-cost" ranks by
//                    reserved + overflow cost, so it means the same with and without
//                    spillover)
//   all-PAYG       = the whole series at pay-as-you-go prices (the baseline)
//
// Performance: prepareSeries() is O(n) once; evaluateUnits() is one O(n) pass with no
// allocation; 30 days × 200 unit counts is ~9M steps.
#include <cstdint>
#include <expected>
#include <optional>
#include <string>
#include <vector>

namespace waterline::planners {

struct TokenMinute {
  double inputTokens = 0;
  double outputTokens = 0;
};

struct TokenWeights {
  double input = 1;
  double output = 1;
};

struct PtuPrices {
  double unitHour = 0;        // price of one reserved unit for one hour
  double inputPer1k = 0;      // pay-as-you-go, per 1,000 input tokens
  double outputPer1k = 0;     // pay-as-you-go, per 1,000 output tokens
};

// The series as the planner evaluates it: weighted demand per minute and the
// pay-as-you-go price of one weighted token of that minute.
struct PreparedSeries {
  std::vector<double> demand;           // weighted tokens per minute
  std::vector<double> paygPerWeighted;  // pay-as-you-go cost of one weighted token
  double totalDemand = 0;
  double allPaygCost = 0;  // the whole series at pay-as-you-go prices
  double peak = 0;         // largest demand(m)
  size_t minutes() const { return demand.size(); }
};

PreparedSeries prepareSeries(const std::vector<TokenMinute>& series, const TokenWeights& w, const PtuPrices& p);

struct ReservationShape {
  int64_t tokensPerMinutePerUnit = 0;
  int32_t burstPercent = 0;
  bool spillover = false;
};

// The router's per-window limit for `units` (one router replica, 60 s window); the same
// expression as routing::LimiterConfig::limit().
double ptuWindowLimit(int64_t units, int64_t tokensPerMinutePerUnit, int32_t burstPercent);

struct UnitsEvaluation {
  int64_t units = 0;
  double limit = 0;  // L
  double served = 0, spilled = 0, throttled = 0;  // weighted tokens over the series
  int64_t coveredMinutes = 0;                     // minutes with nothing over L
  double utilization = 0;                         // served / (provisioned × minutes)
  double reservedCostPerHour = 0;
  double paygCostPerHour = 0;      // spilled tokens at pay-as-you-go prices
  double totalCostPerHour = 0;     // reserved + payg
  double overflowCostPerHour = 0;  // spilled + throttled tokens at pay-as-you-go prices
  // Shares of all demand (0 when there is none) and of minutes.
  double servedShare() const;
  double spilledShare() const;
  double throttledShare() const;
  double coveredShare(size_t minutes) const;
  double totalDemand = 0;
};

// units ≥ 0 and units × tokensPerMinutePerUnit within int64 (planWaterline checks both).
UnitsEvaluation evaluateUnits(const PreparedSeries& s, int64_t units, const ReservationShape& shape,
                              const PtuPrices& p);

// Per minute outcome for one size (for tests and a view): served/spilled/throttled.
struct MinuteOutcome {
  double served = 0, spilled = 0, throttled = 0;
};
std::vector<MinuteOutcome> minuteOutcomes(const PreparedSeries& s, int64_t units, const ReservationShape& shape);

struct PlanRange {
  int64_t minUnits = 0;
  int64_t maxUnits = 0;
  int64_t step = 1;
};

struct Recommendation {
  std::string target;  // "coverage=95", "min-cost", "no-429"
  std::optional<int64_t> units;  // none when no count in the range meets the target
  std::string why;
};

struct WaterlinePlan {
  std::vector<UnitsEvaluation> rows;  // one per unit count, ascending
  std::vector<Recommendation> recommendations;  // coverage, min-cost, no-429
  double allPaygCostPerHour = 0;
  double peak = 0;
  size_t minutes = 0;
};

// Targets:
//   coverage=X : the smallest count in the range with nothing over L in ≥ X% of minutes
//   min-cost   : the count with the least reserved + overflow cost per hour (ties: fewer
//                units)
//   no-429     : with spillover every count has no 429, so the cheapest (= min-cost);
//                without, the smallest count with no throttled token at all (the peak)
std::expected<WaterlinePlan, std::string> planWaterline(const PreparedSeries& s, const ReservationShape& shape,
                                                        const PtuPrices& p, const PlanRange& range,
                                                        double coveragePercent);

// One target out of a plan ("coverage=95", "min-cost", "no-429"); error for other text.
std::expected<Recommendation, std::string> pickTarget(const WaterlinePlan& plan, const std::string& target);

}  // namespace waterline::planners
