#include "waterline/planners/waterline.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <limits>

#include "sfmt.h"

namespace waterline::planners {

using detail::sfmt;

PreparedSeries prepareSeries(const std::vector<TokenMinute>& series, const TokenWeights& w, const PtuPrices& p) {
  PreparedSeries s;
  s.demand.resize(series.size());
  s.paygPerWeighted.resize(series.size());
  for (size_t m = 0; m < series.size(); ++m) {
    const double in = std::max(0.0, series[m].inputTokens);
    const double out = std::max(0.0, series[m].outputTokens);
    const double d = in * w.input + out * w.output;  // ThroughputSpec::weightedTokens
    const double payg = (in * p.inputPer1k + out * p.outputPer1k) / 1000.0;
    s.demand[m] = d;
    s.paygPerWeighted[m] = d > 0 ? payg / d : 0.0;
    s.totalDemand += d;
    s.allPaygCost += payg;
    s.peak = std::max(s.peak, d);
  }
  return s;
}

double ptuWindowLimit(int64_t units, int64_t tokensPerMinutePerUnit, int32_t burstPercent) {
  // routing::LimiterConfig::limit() with tokensPerMinute = units × tokensPerMinutePerUnit
  // (the reservation's spec.tokensPerMinute(), an int64 made double), share 1, window 60 s.
  const double tokensPerMinute = static_cast<double>(units * tokensPerMinutePerUnit);
  const double share = 1.0, minutes = 60.0 / 60.0;
  return std::max(0.0, tokensPerMinute) * (1.0 + std::max(0, burstPercent) / 100.0) * share * minutes;
}

namespace {
// The router admits while charged + tokens <= L × (1 + 1e-12) (admission.cc).
inline double admitBound(double limit) { return limit * (1 + 1e-12); }
}  // namespace

double UnitsEvaluation::servedShare() const { return totalDemand > 0 ? served / totalDemand : 0; }
double UnitsEvaluation::spilledShare() const { return totalDemand > 0 ? spilled / totalDemand : 0; }
double UnitsEvaluation::throttledShare() const { return totalDemand > 0 ? throttled / totalDemand : 0; }
double UnitsEvaluation::coveredShare(size_t minutes) const {
  return minutes > 0 ? static_cast<double>(coveredMinutes) / static_cast<double>(minutes) : 0;
}

UnitsEvaluation evaluateUnits(const PreparedSeries& s, int64_t units, const ReservationShape& shape,
                              const PtuPrices& p) {
  UnitsEvaluation e;
  e.units = units;
  e.limit = ptuWindowLimit(units, shape.tokensPerMinutePerUnit, shape.burstPercent);
  e.totalDemand = s.totalDemand;
  const double bound = admitBound(e.limit);
  const double L = e.limit;
  const size_t n = s.demand.size();
  const double* d = s.demand.data();
  const double* c = s.paygPerWeighted.data();
  double served = 0, over = 0, overCost = 0;
  int64_t covered = 0;
  for (size_t m = 0; m < n; ++m) {
    const double dm = d[m];
    if (dm <= bound) {
      served += dm;
      ++covered;
    } else {
      served += L;
      const double o = dm - L;
      over += o;
      overCost += o * c[m];
    }
  }
  e.served = served;
  e.coveredMinutes = covered;
  if (shape.spillover) {
    e.spilled = over;
  } else {
    e.throttled = over;
  }
  const double hours = static_cast<double>(n) / 60.0;
  const double provisioned = static_cast<double>(units * shape.tokensPerMinutePerUnit);
  e.utilization = provisioned > 0 && n > 0 ? served / (provisioned * static_cast<double>(n)) : 0;
  e.reservedCostPerHour = static_cast<double>(units) * p.unitHour;
  e.overflowCostPerHour = hours > 0 ? overCost / hours : 0;
  e.paygCostPerHour = shape.spillover ? e.overflowCostPerHour : 0;
  e.totalCostPerHour = e.reservedCostPerHour + e.paygCostPerHour;
  return e;
}

std::vector<MinuteOutcome> minuteOutcomes(const PreparedSeries& s, int64_t units, const ReservationShape& shape) {
  const double L = ptuWindowLimit(units, shape.tokensPerMinutePerUnit, shape.burstPercent);
  const double bound = admitBound(L);
  std::vector<MinuteOutcome> out(s.demand.size());
  for (size_t m = 0; m < s.demand.size(); ++m) {
    const double dm = s.demand[m];
    if (dm <= bound) {
      out[m].served = dm;
      continue;
    }
    out[m].served = L;
    (shape.spillover ? out[m].spilled : out[m].throttled) = dm - L;
  }
  return out;
}

namespace {

Recommendation coverage(const WaterlinePlan& plan, double percent) {
  Recommendation r;
  r.target = sfmt("coverage=%g", percent);
  for (const auto& row : plan.rows) {
    if (row.coveredShare(plan.minutes) * 100.0 + 1e-9 >= percent) {
      r.units = row.units;
      r.why = sfmt("smallest count with nothing over the waterline in %.2f%% of minutes (target %g%%)",
                          row.coveredShare(plan.minutes) * 100.0, percent);
      return r;
    }
  }
  r.why = sfmt("no count in the range covers %g%% of minutes", percent);
  return r;
}

Recommendation minCost(const WaterlinePlan& plan) {
  Recommendation r;
  r.target = "min-cost";
  const UnitsEvaluation* best = nullptr;
  for (const auto& row : plan.rows) {
    const double c = row.reservedCostPerHour + row.overflowCostPerHour;
    if (!best || c < best->reservedCostPerHour + best->overflowCostPerHour - 1e-12) best = &row;
  }
  if (!best) {
    r.why = "no count in the range";
    return r;
  }
  r.units = best->units;
  r.why = sfmt("least reserved + pay-as-you-go for the tokens over the waterline: %.4f/h (all pay-as-you-go: %.4f/h)",
                      best->reservedCostPerHour + best->overflowCostPerHour, plan.allPaygCostPerHour);
  return r;
}

Recommendation no429(const WaterlinePlan& plan, bool spillover) {
  if (spillover) {
    Recommendation r = minCost(plan);
    r.target = "no-429";
    r.why = "with spillover no count throttles; the cheapest: " + r.why;
    return r;
  }
  Recommendation r;
  r.target = "no-429";
  for (const auto& row : plan.rows) {
    if (row.throttled == 0) {
      r.units = row.units;
      r.why = sfmt("smallest count with no throttled token (peak %.0f weighted tokens/min)", plan.peak);
      return r;
    }
  }
  r.why = sfmt("no count in the range reaches the peak of %.0f weighted tokens/min", plan.peak);
  return r;
}

}  // namespace

std::expected<WaterlinePlan, std::string> planWaterline(const PreparedSeries& s, const ReservationShape& shape,
                                                        const PtuPrices& p, const PlanRange& range,
                                                        double coveragePercent) {
  if (shape.tokensPerMinutePerUnit <= 0) return std::unexpected("tokens per minute per unit must be > 0");
  if (shape.burstPercent < 0) return std::unexpected("burst percent must be >= 0");
  if (range.minUnits < 0 || range.maxUnits < range.minUnits) return std::unexpected("need 0 <= min units <= max units");
  if (range.step <= 0) return std::unexpected("step must be > 0");
  if (range.maxUnits > std::numeric_limits<int64_t>::max() / shape.tokensPerMinutePerUnit)
    return std::unexpected("max units × tokens per minute per unit overflows");
  if (!(coveragePercent >= 0 && coveragePercent <= 100)) return std::unexpected("coverage must be within [0, 100]");
  if (p.unitHour < 0 || p.inputPer1k < 0 || p.outputPer1k < 0) return std::unexpected("prices must be >= 0");
  WaterlinePlan plan;
  plan.minutes = s.minutes();
  plan.peak = s.peak;
  plan.allPaygCostPerHour = s.minutes() > 0 ? s.allPaygCost / (static_cast<double>(s.minutes()) / 60.0) : 0;
  plan.rows.reserve(static_cast<size_t>((range.maxUnits - range.minUnits) / range.step + 1));
  for (int64_t u = range.minUnits; u <= range.maxUnits; u += range.step) {
    plan.rows.push_back(evaluateUnits(s, u, shape, p));
    if (range.maxUnits - u < range.step) break;
  }
  plan.recommendations.push_back(coverage(plan, coveragePercent));
  plan.recommendations.push_back(minCost(plan));
  plan.recommendations.push_back(no429(plan, shape.spillover));
  return plan;
}

std::expected<Recommendation, std::string> pickTarget(const WaterlinePlan& plan, const std::string& target) {
  if (target == "min-cost") return minCost(plan);
  if (target == "no-429") {
    // The plan's no-429 already knows whether spillover was set.
    for (const auto& r : plan.recommendations)
      if (r.target == "no-429") return r;
    return std::unexpected("plan has no no-429 recommendation");
  }
  constexpr std::string_view kCov = "coverage=";
  if (target.starts_with(kCov)) {
    const std::string v = target.substr(kCov.size());
    double x = 0;
    auto [ptr, ec] = std::from_chars(v.data(), v.data() + v.size(), x);
    if (ec != std::errc() || ptr != v.data() + v.size() || v.empty() || !(x >= 0 && x <= 100))
      return std::unexpected("coverage target must be coverage=X with 0 <= X <= 100, got '" + target + "'");
    return coverage(plan, x);
  }
  return std::unexpected("unknown target '" + target + "' (coverage=X, min-cost, no-429)");
}

}  // namespace waterline::planners
