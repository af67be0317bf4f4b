#include "waterline/planners/autoscaler.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

#include <nlohmann/json.hpp>

namespace waterline::planners {

namespace {

namespace as = autoscaling;
constexpr int32_t kInt32Max = std::numeric_limits<int32_t>::max();

int64_t unixSeconds(SystemTime t) {
  return std::chrono::floor<std::chrono::seconds>(t.time_since_epoch()).count();
}

// Compact decimal: up to 3 decimals, trailing zeros trimmed; integers as integers.
std::string formatNumber(double v) {
  if (!std::isfinite(v)) return std::isnan(v) ? "NaN" : (v > 0 ? "+Inf" : "-Inf");
  char buf[64];
  if (std::fabs(v) >= 1e15) {
    std::snprintf(buf, sizeof buf, "%.6g", v);
    return buf;
  }
  std::snprintf(buf, sizeof buf, "%.3f", v);
  std::string s = buf;
  while (!s.empty() && s.back() == '0') s.pop_back();
  if (!s.empty() && s.back() == '.') s.pop_back();
  if (s == "-0") s = "0";
  return s;
}

api::Condition condition(std::string_view type, api::ConditionStatus status, std::string_view reason,
                         std::string message, int64_t generation) {
  api::Condition c;
  c.type = std::string(type);
  c.status = status;
  c.reason = std::string(reason);
  c.message = std::move(message);
  c.observedGeneration = generation;
  return c;
}

int32_t longestPeriod(const api::ScalingRules& a, const api::ScalingRules& b) {
  int32_t m = 0;
  for (const auto* r : {&a, &b})
    for (const auto& p : r->policies) m = std::max(m, p.periodSeconds);
  return m;
}

// Replica change recorded by events within (now − period, now].
int64_t changeInPeriod(const std::vector<AutoscalerState::Entry>& events, int64_t now, int32_t period) {
  int64_t sum = 0;
  const int64_t cutoff = now - period;
  for (const auto& e : events)
    if (e.unixSeconds > cutoff) sum += e.value;
  return sum;
}

// HPA's calculateScaleUpLimitWithScalingRules. nullopt: no limit (no policies).
std::optional<int64_t> scaleUpLimit(int32_t current, const AutoscalerState& st, const api::ScalingRules& rules,
                                    int64_t now) {
  if (rules.selectPolicy == api::SelectPolicy::Disabled) return current;
  if (rules.policies.empty()) return std::nullopt;
  const bool pickMin = rules.selectPolicy == api::SelectPolicy::Min;
  int64_t result = pickMin ? std::numeric_limits<int64_t>::max() : std::numeric_limits<int64_t>::min();
  for (const auto& p : rules.policies) {
    const int64_t added = changeInPeriod(st.scaleUpEvents, now, p.periodSeconds);
    const int64_t deleted = changeInPeriod(st.scaleDownEvents, now, p.periodSeconds);
    const int64_t start = std::max<int64_t>(0, int64_t{current} - added + deleted);
    int64_t proposed;
    if (p.type == api::ScalingPolicyType::Pods) {
      proposed = start + p.value;
    } else {  // Percent: ceil(start × (1 + value/100)), in integers
      proposed = (start * (100 + int64_t{p.value}) + 99) / 100;
    }
    result = pickMin ? std::min(result, proposed) : std::max(result, proposed);
  }
  return result;
}

// HPA's calculateScaleDownLimitWithBehaviors. nullopt: no limit.
std::optional<int64_t> scaleDownLimit(int32_t current, const AutoscalerState& st,
                                      const api::ScalingRules& rules, int64_t now) {
  if (rules.selectPolicy == api::SelectPolicy::Disabled) return current;
  if (rules.policies.empty()) return std::nullopt;
  // Max picks the policy allowing the largest change, i.e. the lowest limit.
  const bool pickMax = rules.selectPolicy == api::SelectPolicy::Min;
  int64_t result = pickMax ? std::numeric_limits<int64_t>::min() : std::numeric_limits<int64_t>::max();
  for (const auto& p : rules.policies) {
    const int64_t added = changeInPeriod(st.scaleUpEvents, now, p.periodSeconds);
    const int64_t deleted = changeInPeriod(st.scaleDownEvents, now, p.periodSeconds);
    const int64_t start = std::max<int64_t>(0, int64_t{current} - added + deleted);
    int64_t proposed;
    if (p.type == api::ScalingPolicyType::Pods) {
      proposed = start - p.value;
    } else {  // Percent: trunc(start × (1 − value/100)), as HPA
      proposed = start * std::max<int64_t>(0, 100 - int64_t{p.value}) / 100;
    }
    result = pickMax ? std::max(result, proposed) : std::min(result, proposed);
  }
  return result;
}

void capOldest(std::vector<AutoscalerState::Entry>& v) {
  if (v.size() > AutoscalerState::kMaxEntries)
    v.erase(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(v.size() - AutoscalerState::kMaxEntries));
}

void sortEntries(std::vector<AutoscalerState::Entry>& v) {
  std::stable_sort(v.begin(), v.end(),
                   [](const auto& a, const auto& b) { return a.unixSeconds < b.unixSeconds; });
}

// Drops what can no longer matter at `now` or later (see AutoscalerState).
void prune(AutoscalerState& st, int64_t now, const AutoscalerPolicy& p) {
  const int64_t up = std::max(0, p.scaleUp.stabilizationWindowSeconds);
  const int64_t down = std::max(0, p.scaleDown.stabilizationWindowSeconds);
  {
    auto& recs = st.recommendations;
    std::vector<AutoscalerState::Entry> kept;
    int32_t newerMax = std::numeric_limits<int32_t>::min();
    int32_t newerMin = std::numeric_limits<int32_t>::max();
    for (auto it = recs.rbegin(); it != recs.rend(); ++it) {
      const bool inUp = it->unixSeconds > now - up;
      const bool inDown = it->unixSeconds > now - down;
      const bool needed = (inDown && it->value > newerMax) || (inUp && it->value < newerMin);
      newerMax = std::max(newerMax, it->value);
      newerMin = std::min(newerMin, it->value);
      if (needed) kept.push_back(*it);
    }
    std::reverse(kept.begin(), kept.end());
    recs = std::move(kept);
    capOldest(recs);
  }
  const int64_t period = longestPeriod(p.scaleUp, p.scaleDown);
  for (auto* events : {&st.scaleUpEvents, &st.scaleDownEvents}) {
    std::erase_if(*events, [&](const auto& e) { return e.unixSeconds <= now - period || e.value <= 0; });
    capOldest(*events);
  }
}

// The flap penalty of `st` decayed to `now` (0 when damping is off).
double decayedPenalty(const AutoscalerState& st, int64_t now, const AutoscalerPolicy& p) {
  if (p.flapHalfLifeSeconds <= 0 || st.flapPenaltyMilli <= 0) return 0;
  const double age = double(std::max<int64_t>(0, now - st.lastEventSeconds));
  return double(st.flapPenaltyMilli) / 1000.0 * std::exp2(-age / double(p.flapHalfLifeSeconds));
}

std::string windowText(int32_t seconds, std::string_view what) {
  return std::to_string(seconds) + " s " + std::string(what) + " window";
}

}  // namespace

// ------------------------------------------------------------------------------------
// Policy

std::expected<AutoscalerPolicy, std::string> AutoscalerPolicy::fromSpec(const api::ModelDeploymentSpec& spec) {
  if (!spec.autoscaling) return std::unexpected("spec.autoscaling: not set");
  const auto& a = *spec.autoscaling;
  if (!a.enabled) return std::unexpected("spec.autoscaling.enabled: autoscaling is disabled");
  AutoscalerPolicy p;
  if (!a.targetPerReplica) return std::unexpected("spec.autoscaling.targetPerReplica: required");
  p.targetPerReplica = a.targetPerReplica->asDouble();
  if (!(p.targetPerReplica > 0) || !std::isfinite(p.targetPerReplica))
    return std::unexpected("spec.autoscaling.targetPerReplica: must be > 0");
  if (!(a.tolerance >= 0 && a.tolerance <= 1))
    return std::unexpected("spec.autoscaling.tolerance: must be within [0, 1]");
  p.tolerance = a.tolerance;
  for (const auto& [rules, name] : {std::pair{&a.scaleUp, "scaleUp"}, std::pair{&a.scaleDown, "scaleDown"}}) {
    const std::string path = std::string("spec.autoscaling.") + name;
    if (rules->stabilizationWindowSeconds < 0)
      return std::unexpected(path + ".stabilizationWindowSeconds: must be >= 0");
    for (size_t i = 0; i < rules->policies.size(); ++i) {
      const auto& pol = rules->policies[i];
      const std::string pp = path + ".policies[" + std::to_string(i) + "]";
      if (pol.value < 1) return std::unexpected(pp + ".value: must be >= 1");
      if (pol.periodSeconds < 1) return std::unexpected(pp + ".periodSeconds: must be >= 1");
    }
  }
  p.scaleUp = a.scaleUp;
  p.scaleDown = a.scaleDown;
  if (!spec.maxReplicas) return std::unexpected("spec.maxReplicas: required when autoscaling is enabled");
  p.maxReplicas = *spec.maxReplicas;
  p.minReplicas = spec.minReplicas.value_or(1);
  if (p.minReplicas < 0) return std::unexpected("spec.minReplicas: must be >= 0");
  if (p.maxReplicas < 1) return std::unexpected("spec.maxReplicas: must be >= 1");
  if (p.minReplicas > p.maxReplicas)
    return std::unexpected("spec.minReplicas: must not exceed spec.maxReplicas");
  return p;
}

double AutoscalerPolicy::dampedTolerance(double penalty) const {
  if (flapHalfLifeSeconds <= 0) return tolerance;
  return tolerance * (1.0 + std::clamp(penalty, 0.0, std::max(0.0, flapPenaltyMax)));
}

// ------------------------------------------------------------------------------------
// State

std::string AutoscalerState::toJson() const {
  nlohmann::json j = nlohmann::json::object();
  j["v"] = 1;
  auto put = [&](const char* key, const std::vector<Entry>& v) {
    if (v.empty()) return;
    auto arr = nlohmann::json::array();
    for (const auto& e : v) arr.push_back(nlohmann::json::array({e.unixSeconds, e.value}));
    j[key] = std::move(arr);
  };
  put("r", recommendations);
  put("u", scaleUpEvents);
  put("d", scaleDownEvents);
  if (lastDirection != 0)
    j["f"] = nlohmann::json::array({lastEventSeconds, lastDirection, flapPenaltyMilli});
  return j.dump();
}

std::expected<AutoscalerState, std::string> AutoscalerState::fromJson(std::string_view text) {
  auto j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return std::unexpected("autoscaler state: not a JSON object");
  auto v = j.find("v");
  if (v == j.end() || !v->is_number_integer() || v->get<int64_t>() != 1)
    return std::unexpected("autoscaler state: unsupported version");
  AutoscalerState st;
  auto get = [&](const char* key, std::vector<Entry>& out) -> std::optional<std::string> {
    auto it = j.find(key);
    if (it == j.end()) return std::nullopt;
    if (!it->is_array()) return std::string("autoscaler state: ") + key + ": not a list";
    if (it->size() > 4 * kMaxEntries) return std::string("autoscaler state: ") + key + ": too long";
    for (const auto& e : *it) {
      if (!e.is_array() || e.size() != 2 || !e[0].is_number_integer() || !e[1].is_number_integer())
        return std::string("autoscaler state: ") + key + ": entries must be [seconds, count]";
      const auto n = e[1].get<int64_t>();
      if (n < 0 || n > kInt32Max) return std::string("autoscaler state: ") + key + ": count out of range";
      out.push_back(Entry{e[0].get<int64_t>(), static_cast<int32_t>(n)});
    }
    sortEntries(out);
    return std::nullopt;
  };
  if (auto e = get("r", st.recommendations)) return std::unexpected(*e);
  if (auto e = get("u", st.scaleUpEvents)) return std::unexpected(*e);
  if (auto e = get("d", st.scaleDownEvents)) return std::unexpected(*e);
  if (auto f = j.find("f"); f != j.end()) {
    if (!f->is_array() || f->size() != 3 || !(*f)[0].is_number_integer() || !(*f)[1].is_number_integer() ||
        !(*f)[2].is_number_integer())
      return std::unexpected("autoscaler state: f: want [seconds, direction, penalty]");
    const auto dir = (*f)[1].get<int64_t>();
    const auto milli = (*f)[2].get<int64_t>();
    if ((dir != 1 && dir != -1) || milli < 0 || milli > 1'000'000)
      return std::unexpected("autoscaler state: f: direction or penalty out of range");
    st.lastEventSeconds = (*f)[0].get<int64_t>();
    st.lastDirection = static_cast<int32_t>(dir);
    st.flapPenaltyMilli = static_cast<int32_t>(milli);
  }
  return st;
}

AutoscalerState AutoscalerState::parseOrEmpty(std::string_view json) {
  if (json.empty()) return {};
  auto st = fromJson(json);
  return st ? std::move(*st) : AutoscalerState{};
}

// ------------------------------------------------------------------------------------
// Helpers

int32_t replicasForLoad(double total, double targetPerReplica) {
  if (!(total > 0) || !(targetPerReplica > 0)) return 0;
  const double x = total / targetPerReplica;
  if (!(x < static_cast<double>(kInt32Max))) return kInt32Max;
  const double r = std::ceil(x - x * 1e-9);
  return static_cast<int32_t>(std::max(1.0, r));
}

std::string formatRescaleEvent(int32_t from, int32_t to, double metric, double target, std::string_view reason) {
  return "from " + std::to_string(from) + " to " + std::to_string(to) + ": metric " + formatNumber(metric) +
         " target " + formatNumber(target) + " reason " + std::string(reason);
}

int32_t planPlainHpa(int32_t currentReplicas, std::optional<double> total, double targetPerReplica, double tolerance,
                     int32_t minReplicas, int32_t maxReplicas) {
  const int32_t current = std::max(0, currentReplicas);
  const int32_t lo = std::max(0, minReplicas);
  const int32_t hi = std::max(lo, maxReplicas);
  if (!total || !std::isfinite(*total) || *total < 0) return std::clamp(current, lo, hi);
  int32_t desired;
  if (current == 0) {
    desired = replicasForLoad(*total, targetPerReplica);
  } else {
    const double ratio = *total / (double(current) * targetPerReplica);
    desired = std::fabs(ratio - 1.0) <= tolerance + 1e-9 ? current : replicasForLoad(*total, targetPerReplica);
  }
  return std::clamp(desired, lo, hi);
}

// ------------------------------------------------------------------------------------
// Kubernetes HPA (default behaviour)

std::optional<int32_t> hpaPodMetricReplicas(int32_t currentReplicas, double total, const HpaPodCounts& pods,
                                            double targetPerPod, double tolerance) {
  if (pods.withMetrics <= 0 || !std::isfinite(total) || total < 0 || !(targetPerPod > 0)) return std::nullopt;
  const int32_t current = std::max(0, currentReplicas);
  const double usageRatio = total / double(pods.withMetrics) / targetPerPod;
  const bool rebalanceIgnored = pods.pending > 0 && usageRatio > 1.0;
  auto ceilToInt = [](double x) {
    return x >= double(kInt32Max) ? kInt32Max : static_cast<int32_t>(std::ceil(x));
  };
  if (!rebalanceIgnored && pods.missing <= 0) {
    if (std::fabs(1.0 - usageRatio) <= tolerance) return current;
    return ceilToInt(usageRatio * double(pods.withMetrics));
  }
  double sum = total;
  int64_t n = pods.withMetrics;
  if (pods.missing > 0) {
    // scale-down: missing pods use the target; scale-up: 0
    if (usageRatio < 1.0) sum += double(pods.missing) * targetPerPod;
    n += pods.missing;
  }
  if (rebalanceIgnored) n += pods.pending;  // pending pods use 0 on a scale-up
  const double newRatio = sum / double(n) / targetPerPod;
  if (std::fabs(1.0 - newRatio) <= tolerance || (usageRatio < 1.0 && newRatio > 1.0) ||
      (usageRatio > 1.0 && newRatio < 1.0))
    return current;
  const int32_t newReplicas = ceilToInt(newRatio * double(n));
  if ((newRatio < 1.0 && newReplicas > current) || (newRatio > 1.0 && newReplicas < current)) return current;
  return newReplicas;
}

AutoscalerPolicy kubernetesHpaDefaultPolicy(double targetPerPod, int32_t minReplicas, int32_t maxReplicas) {
  AutoscalerPolicy p;
  p.targetPerReplica = targetPerPod;
  p.tolerance = 0.1;  // --horizontal-pod-autoscaler-tolerance
  p.scaleUp.stabilizationWindowSeconds = 0;
  p.scaleUp.selectPolicy = api::SelectPolicy::Max;
  p.scaleUp.policies = {{api::ScalingPolicyType::Pods, 4, 15}, {api::ScalingPolicyType::Percent, 100, 15}};
  p.scaleDown.stabilizationWindowSeconds = 300;
  p.scaleDown.selectPolicy = api::SelectPolicy::Max;
  p.scaleDown.policies = {{api::ScalingPolicyType::Percent, 100, 15}};
  p.flapHalfLifeSeconds = 0;  // Waterline's flap damping is not part of the HPA
  p.minReplicas = minReplicas;
  p.maxReplicas = maxReplicas;
  return p;
}

AutoscalerDecision planKubernetesHpa(const AutoscalerPolicy& policy, const AutoscalerState& state, SystemTime now,
                                     int32_t specReplicas, std::optional<double> total, const HpaPodCounts& pods) {
  AutoscalerInput in;
  in.now = now;
  in.currentReplicas = specReplicas;
  std::optional<int32_t> raw;
  if (total) raw = hpaPodMetricReplicas(specReplicas, *total, pods, policy.targetPerReplica, policy.tolerance);
  if (!raw) {
    in.metric = MetricObservation::failed(total ? "did not receive metrics for any ready pods" : "no metric");
  } else {
    in.metric = MetricObservation::value(*total);
    in.rawRecommendation = raw;
  }
  return planAutoscaling(policy, state, in);
}

// ------------------------------------------------------------------------------------
// The planner

AutoscalerDecision planAutoscaling(const AutoscalerPolicy& policy, const AutoscalerState& state,
                                   const AutoscalerInput& in) {
  AutoscalerDecision d;
  const int64_t now = unixSeconds(in.now);
  const int32_t current = std::max(0, in.currentReplicas);
  d.currentReplicas = current;
  const int32_t lower = std::max({0, policy.minReplicas, in.ptuFloor});
  const int32_t upper = std::max(lower, policy.maxReplicas);  // a PTU floor above max wins
  const double target = policy.targetPerReplica;

  AutoscalerState st = state;
  for (auto* v : {&st.recommendations, &st.scaleUpEvents, &st.scaleDownEvents}) {
    for (auto& e : *v) e.unixSeconds = std::min(e.unixSeconds, now);  // clock skew: never in the future
    sortEntries(*v);
  }
  st.lastEventSeconds = std::min(st.lastEventSeconds, now);
  const double penalty = decayedPenalty(st, now, policy);
  const double tolerance = policy.dampedTolerance(penalty);
  prune(st, now, policy);

  auto lowerText = [&] {
    if (in.ptuFloor > policy.minReplicas)
      return "the PTU reservation floor (" + std::to_string(in.ptuFloor) + ")" +
             (in.ptuFloor > policy.maxReplicas ? ", which exceeds maxReplicas (" +
                                                     std::to_string(policy.maxReplicas) + ")"
                                               : std::string());
    return "minReplicas (" + std::to_string(policy.minReplicas) + ")";
  };
  auto recordEvent = [&](int32_t from, int32_t to) {
    if (to > from) st.scaleUpEvents.push_back({now, to - from});
    if (to < from) st.scaleDownEvents.push_back({now, from - to});
  };
  // Flap damping: a metric-driven scale event (not one the bounds forced, not one made
  // while the metric is missing) that reverses the previous one's direction adds to the
  // penalty.
  auto noteDirection = [&](int32_t from, int32_t to) {
    if (to == from || policy.flapHalfLifeSeconds <= 0) return;
    const int32_t dir = to > from ? 1 : -1;
    double p = penalty;
    if (st.lastDirection != 0 && dir != st.lastDirection) p += std::max(0.0, policy.flapPenaltyStep);
    p = std::clamp(p, 0.0, std::max(0.0, policy.flapPenaltyMax));
    st.lastEventSeconds = now;
    st.lastDirection = dir;
    st.flapPenaltyMilli = static_cast<int32_t>(std::lround(p * 1000.0));
  };

  // ---- missing data: hold.
  const auto& obs = in.metric;
  const bool valid = obs.total && std::isfinite(*obs.total) && *obs.total >= 0;
  if (!valid) {
    std::string why = obs.error;
    if (why.empty()) {
      if (!obs.total) why = "no value";
      else if (std::isnan(*obs.total)) why = "the query returned NaN";
      else if (!std::isfinite(*obs.total)) why = "the query returned " + formatNumber(*obs.total);
      else why = "the query returned a negative value (" + formatNumber(*obs.total) + ")";
    }
    d.desiredReplicas = std::clamp(current, lower, upper);
    d.rawRecommendation = d.stabilizedRecommendation = d.rateLimitedRecommendation = current;
    d.reason = std::string(as::kFailedGetMetric);
    d.message = "holding " + std::to_string(d.desiredReplicas) + " replicas: " + why;
    d.conditions.push_back(condition(as::kScalingActive, api::ConditionStatus::False, as::kFailedGetMetric,
                                     "the autoscaler cannot get the metric: " + why, in.observedGeneration));
    if (d.desiredReplicas < current) {
      d.conditions.push_back(condition(as::kScalingLimited, api::ConditionStatus::True, as::kTooManyReplicas,
                                       "the replica count is above maxReplicas (" +
                                           std::to_string(policy.maxReplicas) + ")",
                                       in.observedGeneration));
    } else if (d.desiredReplicas > current) {
      d.conditions.push_back(condition(as::kScalingLimited, api::ConditionStatus::True, as::kTooFewReplicas,
                                       "the replica count is below " + lowerText(), in.observedGeneration));
    } else {
      d.conditions.push_back(condition(as::kScalingLimited, api::ConditionStatus::False, as::kDesiredWithinRange,
                                       "holding the current count while the metric is missing",
                                       in.observedGeneration));
    }
    if (d.changed()) {
      d.event = AutoscalerEvent{false, std::string(as::kSuccessfulRescale),
                                "from " + std::to_string(current) + " to " + std::to_string(d.desiredReplicas) +
                                    ": metric unavailable target " + formatNumber(target) + " reason " +
                                    std::string(d.desiredReplicas > current ? as::kTooFewReplicas
                                                                            : as::kTooManyReplicas)};
      recordEvent(current, d.desiredReplicas);
    } else {
      d.event = AutoscalerEvent{true, std::string(as::kFailedGetMetric), why};
    }
    prune(st, now, policy);
    d.newState = std::move(st);
    return d;
  }

  // ---- raw recommendation.
  const double total = *obs.total;
  d.metricValue = total;
  int32_t raw;
  double ratio = 0;
  bool tolerated = false;
  if (in.rawRecommendation) {
    raw = std::max(0, *in.rawRecommendation);
    ratio = current > 0 ? total / (double(current) * target) : (total > 0 ? std::numeric_limits<double>::infinity() : 1.0);
    tolerated = raw == current;
  } else if (current == 0) {
    raw = replicasForLoad(total, target);
    ratio = total > 0 ? std::numeric_limits<double>::infinity() : 1.0;
  } else {
    ratio = total / (double(current) * target);
    tolerated = std::fabs(ratio - 1.0) <= tolerance + 1e-9;
    raw = tolerated ? current : replicasForLoad(total, target);
  }
  d.rawRecommendation = raw;
  std::string reason = std::string(raw > current   ? as::kMetricAboveTarget
                                   : raw < current ? as::kMetricBelowTarget
                                                   : as::kWithinTolerance);
  std::string message = "metric " + formatNumber(total) + " for " + std::to_string(current) +
                        " replicas at target " + formatNumber(target) + " per replica (ratio " +
                        formatNumber(ratio) +
                        (tolerated ? (tolerance > policy.tolerance + 1e-12
                                          ? ", within the flap-damped tolerance " + formatNumber(tolerance)
                                          : std::string(", within tolerance"))
                                   : std::string()) +
                        "): recommends " +
                        std::to_string(raw);

  // ---- stabilisation (HPA's stabilizeRecommendationWithBehaviors).
  const int32_t upWin = std::max(0, policy.scaleUp.stabilizationWindowSeconds);
  const int32_t downWin = std::max(0, policy.scaleDown.stabilizationWindowSeconds);
  if (st.recommendations.empty() && downWin > 0) {
    // No history (first run, state lost, or a long metric outage): behave as if the
    // current count had been recommended just now, so that nothing scales down before
    // one full down-window of evidence (HPA's maybeInitScaleDownStabilizationWindow).
    st.recommendations.push_back({now, current});
  }
  int32_t upRec = raw, downRec = raw;
  for (const auto& r : st.recommendations) {
    if (r.unixSeconds > now - upWin) upRec = std::min(upRec, r.value);
    if (r.unixSeconds > now - downWin) downRec = std::max(downRec, r.value);
  }
  int32_t stabilized = current;
  if (stabilized < upRec) stabilized = upRec;
  if (stabilized > downRec) stabilized = downRec;
  d.stabilizedRecommendation = stabilized;
  st.recommendations.push_back({now, raw});
  if (stabilized != raw) {
    const bool upHeld = raw > stabilized;
    reason = std::string(upHeld ? as::kScaleUpStabilized : as::kScaleDownStabilized);
    message += "; stabilized to " + std::to_string(stabilized) + " (the " +
               (upHeld ? "lowest" : "highest") + " recommendation of the " +
               windowText(upHeld ? upWin : downWin, upHeld ? "scale-up" : "scale-down") + ")";
  }

  // ---- rate policies (HPA's convertDesiredReplicasWithBehaviorRate, without bounds).
  int32_t limited = stabilized;
  bool rateLimited = false;
  if (stabilized > current) {
    if (auto lim = scaleUpLimit(current, st, policy.scaleUp, now)) {
      const int64_t l = std::max<int64_t>(*lim, current);
      if (stabilized > l) {
        limited = static_cast<int32_t>(l);
        rateLimited = true;
        message += "; scale-up rate limited to " + std::to_string(limited) +
                   (policy.scaleUp.selectPolicy == api::SelectPolicy::Disabled ? " (scale-up is disabled)"
                                                                               : " by the scale-up policies");
      }
    }
  } else if (stabilized < current) {
    if (auto lim = scaleDownLimit(current, st, policy.scaleDown, now)) {
      const int64_t l = std::min<int64_t>(*lim, current);
      if (stabilized < l) {
        limited = static_cast<int32_t>(l);
        rateLimited = true;
        message += "; scale-down rate limited to " + std::to_string(limited) +
                   (policy.scaleDown.selectPolicy == api::SelectPolicy::Disabled
                        ? " (scale-down is disabled)"
                        : " by the scale-down policies");
      }
    }
  }
  d.rateLimitedRecommendation = limited;
  std::string_view limitReason = as::kDesiredWithinRange;
  std::string limitMessage = "the desired count is within the acceptable range";
  if (rateLimited) {
    reason = std::string(as::kRateLimited);
    limitReason = as::kRateLimited;
    limitMessage = limited > current ? "the desired count is increasing faster than the scale-up policies allow"
                                     : "the desired count is decreasing faster than the scale-down policies allow";
  }

  // ---- bounds (they beat rate limits).
  int32_t desired = limited;
  if (desired < lower) {
    desired = lower;
    reason = std::string(as::kTooFewReplicas);
    limitReason = as::kTooFewReplicas;
    limitMessage = "the desired count is below " + lowerText();
    message += "; raised to " + lowerText();
  } else if (desired > upper) {
    desired = upper;
    reason = std::string(as::kTooManyReplicas);
    limitReason = as::kTooManyReplicas;
    limitMessage = "the desired count is above maxReplicas (" + std::to_string(policy.maxReplicas) + ")";
    message += "; cut to maxReplicas (" + std::to_string(upper) + ")";
  }

  // ---- capacity: never recommend a scale-up the pools cannot place.
  if (in.maxSchedulableReplicas && desired > current && desired > *in.maxSchedulableReplicas) {
    const int32_t capped = std::min(desired, std::max({current, *in.maxSchedulableReplicas, lower}));
    if (capped < desired) {
      desired = capped;
      reason = std::string(as::kCapacityLimited);
      limitReason = as::kCapacityLimited;
      limitMessage = "the pools can place only " + std::to_string(*in.maxSchedulableReplicas) +
                     " replicas of this deployment";
      message += "; capacity-limited to " + std::to_string(desired) + " (schedulable: " +
                 std::to_string(*in.maxSchedulableReplicas) + ")";
    }
  }

  d.desiredReplicas = desired;
  d.reason = std::move(reason);
  d.message = std::move(message);
  d.conditions.push_back(condition(as::kScalingActive, api::ConditionStatus::True, as::kValidMetric,
                                   "the query returned " + formatNumber(total) + " (target " +
                                       formatNumber(target) + " per replica)",
                                   in.observedGeneration));
  d.conditions.push_back(condition(as::kScalingLimited,
                                   limitReason == as::kDesiredWithinRange ? api::ConditionStatus::False
                                                                          : api::ConditionStatus::True,
                                   limitReason, std::move(limitMessage), in.observedGeneration));
  if (d.changed()) {
    d.event = AutoscalerEvent{false, std::string(as::kSuccessfulRescale),
                              formatRescaleEvent(current, desired, total, target, d.reason)};
    recordEvent(current, desired);
    if ((desired > current) == (limited > current) && limited != current) noteDirection(current, desired);
  }
  prune(st, now, policy);
  d.newState = std::move(st);
  return d;
}

}  // namespace waterline::planners
