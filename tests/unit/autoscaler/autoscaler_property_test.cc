// Property test: the planner, with its pruned, bounded state persisted as JSON between
// steps, decides exactly as a naive HPA-style reference that keeps every
// recommendation and scale event forever.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <random>
#include <vector>

#include "waterline/planners/autoscaler.h"

namespace waterline::planners {
namespace {

using api::ScalingPolicy;
using api::ScalingPolicyType;
using api::ScalingRules;
using api::SelectPolicy;

struct Ev {
  int64_t t;
  int32_t v;
};

// The textbook algorithm over unbounded histories.
struct Reference {
  std::vector<Ev> recs, ups, downs;
  // flap damping: the last metric-driven event and the penalty (thousandths) then
  int64_t lastT = 0;
  int32_t lastDir = 0;
  int32_t milli = 0;

  static int64_t changeIn(const std::vector<Ev>& evs, int64_t now, int32_t period) {
    int64_t s = 0;
    for (const auto& e : evs)
      if (e.t > now - period) s += e.v;
    return s;
  }

  std::optional<int64_t> upLimit(int32_t current, const ScalingRules& r, int64_t now) const {
    if (r.selectPolicy == SelectPolicy::Disabled) return current;
    if (r.policies.empty()) return std::nullopt;
    std::vector<int64_t> proposals;
    for (const auto& p : r.policies) {
      const int64_t start = std::max<int64_t>(0, current - changeIn(ups, now, p.periodSeconds) +
                                                     changeIn(downs, now, p.periodSeconds));
      proposals.push_back(p.type == ScalingPolicyType::Pods
                              ? start + p.value
                              : static_cast<int64_t>(std::ceil(double(start) * (1 + p.value / 100.0) - 1e-9)));
    }
    return r.selectPolicy == SelectPolicy::Min ? *std::min_element(proposals.begin(), proposals.end())
                                               : *std::max_element(proposals.begin(), proposals.end());
  }

  std::optional<int64_t> downLimit(int32_t current, const ScalingRules& r, int64_t now) const {
    if (r.selectPolicy == SelectPolicy::Disabled) return current;
    if (r.policies.empty()) return std::nullopt;
    std::vector<int64_t> proposals;
    for (const auto& p : r.policies) {
      const int64_t start = std::max<int64_t>(0, current - changeIn(ups, now, p.periodSeconds) +
                                                     changeIn(downs, now, p.periodSeconds));
      proposals.push_back(p.type == ScalingPolicyType::Pods
                              ? start - p.value
                              : static_cast<int64_t>(double(start) * (1 - p.value / 100.0) + 1e-9));
    }
    return r.selectPolicy == SelectPolicy::Min ? *std::max_element(proposals.begin(), proposals.end())
                                               : *std::min_element(proposals.begin(), proposals.end());
  }

  int32_t step(const AutoscalerPolicy& p, int64_t now, int32_t current, std::optional<double> total, int32_t ptu,
               std::optional<int32_t> maxSched) {
    const int32_t lower = std::max({0, p.minReplicas, ptu});
    const int32_t upper = std::max(lower, p.maxReplicas);
    auto record = [&](int32_t to) {
      if (to > current) ups.push_back({now, to - current});
      if (to < current) downs.push_back({now, current - to});
      return to;
    };
    if (!total) return record(std::clamp(current, lower, upper));
    const double pen = p.flapHalfLifeSeconds > 0 && milli > 0
                           ? milli / 1000.0 * std::exp2(-double(now - lastT) / p.flapHalfLifeSeconds)
                           : 0.0;
    const double tol = p.flapHalfLifeSeconds > 0 ? p.tolerance * (1 + std::min(pen, p.flapPenaltyMax)) : p.tolerance;
    int32_t raw;
    if (current == 0) {
      raw = replicasForLoad(*total, p.targetPerReplica);
    } else {
      const double ratio = *total / (current * p.targetPerReplica);
      raw = std::fabs(ratio - 1) <= tol + 1e-9 ? current : replicasForLoad(*total, p.targetPerReplica);
    }
    const int32_t up = p.scaleUp.stabilizationWindowSeconds, down = p.scaleDown.stabilizationWindowSeconds;
    const int32_t longest = std::max(up, down);
    const bool anyRecent = std::any_of(recs.begin(), recs.end(), [&](const Ev& e) { return e.t > now - longest; });
    if (!anyRecent && down > 0) recs.push_back({now, current});
    int32_t upRec = raw, downRec = raw;
    for (const auto& r : recs) {
      if (r.t > now - up) upRec = std::min(upRec, r.v);
      if (r.t > now - down) downRec = std::max(downRec, r.v);
    }
    recs.push_back({now, raw});
    int32_t d = std::clamp(current, upRec, downRec);
    if (d > current) {
      if (auto l = upLimit(current, p.scaleUp, now)) d = static_cast<int32_t>(std::min<int64_t>(d, std::max<int64_t>(*l, current)));
    } else if (d < current) {
      if (auto l = downLimit(current, p.scaleDown, now)) d = static_cast<int32_t>(std::max<int64_t>(d, std::min<int64_t>(*l, current)));
    }
    const int32_t metricDir = d > current ? 1 : d < current ? -1 : 0;
    d = std::clamp(d, lower, upper);
    if (maxSched && d > current && d > *maxSched) d = std::min(d, std::max({current, *maxSched, lower}));
    const int32_t dir = d > current ? 1 : d < current ? -1 : 0;
    if (p.flapHalfLifeSeconds > 0 && dir != 0 && dir == metricDir) {
      double np = pen + (lastDir != 0 && dir != lastDir ? p.flapPenaltyStep : 0.0);
      np = std::clamp(np, 0.0, p.flapPenaltyMax);
      milli = int32_t(std::lround(np * 1000));
      lastT = now;
      lastDir = dir;
    }
    return record(d);
  }
};

ScalingRules randomRules(std::mt19937_64& rng, int window) {
  ScalingRules r;
  r.stabilizationWindowSeconds = window;
  const int sel = int(rng() % 6);
  r.selectPolicy = sel == 0 ? SelectPolicy::Disabled : sel < 3 ? SelectPolicy::Min : SelectPolicy::Max;
  const int n = int(rng() % 3);
  for (int i = 0; i < n; ++i) {
    ScalingPolicy p;
    p.type = rng() % 2 ? ScalingPolicyType::Pods : ScalingPolicyType::Percent;
    p.value = p.type == ScalingPolicyType::Pods ? int(1 + rng() % 5) : int(1 + rng() % 150);
    p.periodSeconds = int(1 + rng() % 120);
    r.policies.push_back(p);
  }
  return r;
}

TEST(AutoscalerProperty, PrunedPersistedStateDecidesLikeTheUnboundedReference) {
  const int windows[] = {0, 0, 15, 60, 300};
  std::mt19937_64 rng(20240501);
  int checked = 0;
  for (int scenario = 0; scenario < 300; ++scenario) {
    AutoscalerPolicy p;
    p.targetPerReplica = 100;
    p.tolerance = (rng() % 3) * 0.05;
    p.scaleUp = randomRules(rng, windows[rng() % 5]);
    p.scaleDown = randomRules(rng, windows[rng() % 5]);
    p.minReplicas = int(rng() % 4);
    p.maxReplicas = p.minReplicas + 1 + int(rng() % 25);
    // flap damping: off (the HPA algorithm alone), or a random half-life, step and cap
    const int damping = int(rng() % 3);
    p.flapHalfLifeSeconds = damping == 0 ? 0 : int(30 + rng() % 900);
    p.flapPenaltyStep = 0.25 * double(1 + rng() % 4);
    p.flapPenaltyMax = 0.5 * double(1 + rng() % 4);
    Reference ref;
    std::string state;  // the annotation
    int32_t current = p.minReplicas + int(rng() % 5), refCurrent = current;
    int64_t now = 1'700'000'000;
    for (int i = 0; i < 150; ++i) {
      now += 5 + int64_t(rng() % 36);
      std::optional<double> total;
      if (rng() % 10 != 0) total = double(rng() % 3000);
      const int32_t ptu = rng() % 8 == 0 ? int32_t(rng() % 10) : 0;
      std::optional<int32_t> maxSched;
      if (rng() % 5 == 0) maxSched = int32_t(rng() % 30);
      if (rng() % 25 == 0) current = refCurrent = int32_t(rng() % 35);  // someone edits the count

      AutoscalerInput in;
      in.now = SystemTime{} + std::chrono::seconds(now) + std::chrono::milliseconds(rng() % 1000);
      in.currentReplicas = current;
      in.metric = total ? MetricObservation::value(*total) : MetricObservation::failed("down");
      in.ptuFloor = ptu;
      in.maxSchedulableReplicas = maxSched;
      auto d = planAutoscaling(p, AutoscalerState::parseOrEmpty(state), in);
      const int32_t want = ref.step(p, now, refCurrent, total, ptu, maxSched);
      ASSERT_EQ(d.desiredReplicas, want) << "scenario " << scenario << " step " << i << ": " << d.message
                                         << " state " << state;
      state = d.newState.toJson();
      ASSERT_LE(d.newState.recommendations.size(), AutoscalerState::kMaxEntries);
      current = refCurrent = d.desiredReplicas;
      ++checked;
    }
  }
  EXPECT_EQ(checked, 300 * 150);
}

}  // namespace
}  // namespace waterline::planners
