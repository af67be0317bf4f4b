#pragma once
// The autoscaler planner: Kubernetes HPA's algorithm (v2 `behavior`) as a pure function
// of (policy, observation, persisted state, now). It reads no clock; the caller passes
// `now` and persists `Decision::newState` (as JSON, in the ModelDeployment annotation
// `waterline.dev/autoscaler-state`). See docs/autoscaling.md.
//
// The metric is the deployment's TOTAL load (what the PromQL query returns, e.g. the
// weighted tokens per second of all its workers), not a per-pod average:
//
//   ratio   = total / (currentReplicas × targetPerReplica)
//   raw     = currentReplicas                     when |ratio − 1| ≤ tolerance × (1 + penalty)
//           = ceil(total / targetPerReplica)      otherwise
//
// where penalty is flap damping's (0 until the planner reverses its own last step; see
// AutoscalerPolicy::flapHalfLifeSeconds; off in kubernetesHpaDefaultPolicy),
//
// then, in this order:
//   1. stabilisation (HPA): the raw recommendation joins a history; the result is the
//      current count moved no further up than the LOWEST recommendation of the last
//      scaleUp.stabilizationWindowSeconds, and no further down than the HIGHEST of the
//      last scaleDown.stabilizationWindowSeconds;
//   2. rate policies (HPA): at most +N pods / +X % per periodSeconds (scale-up), at most
//      −N / −X % (scale-down), counted from the scale events of the last period; the
//      selectPolicy picks the most (Max) or least (Min) permissive policy, Disabled
//      forbids that direction; no policies means no rate limit;
//   3. bounds: [max(minReplicas, ptuFloor), maxReplicas]; bounds beat rate limits;
//   4. capacity: a scale-up never goes beyond maxSchedulableReplicas (what the pools
//      can place), but capacity never pushes the count below the current one or below
//      the lower bound.
// Missing data (query error, empty result, NaN/Inf, negative) holds the current count
// (clamped to the bounds only), sets ScalingActive=False/FailedGetMetric, records no
// recommendation and recovers on the next good observation.
#include <cstdint>
#include <expected>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "waterline/api/conditions.h"
#include "waterline/api/model_deployment.h"
#include "waterline/common/time.h"

namespace waterline::planners {

// Annotation the reconciler stores AutoscalerState::toJson() in.
inline constexpr std::string_view kAutoscalerStateAnnotation = "waterline.dev/autoscaler-state";

// Condition types and reasons.
namespace autoscaling {
inline constexpr std::string_view kScalingActive = "ScalingActive";
inline constexpr std::string_view kScalingLimited = "ScalingLimited";

// ScalingActive reasons.
inline constexpr std::string_view kValidMetric = "ValidMetric";
inline constexpr std::string_view kFailedGetMetric = "FailedGetMetric";
inline constexpr std::string_view kAutoscalingDisabled = "AutoscalingDisabled";

// ScalingLimited reasons (True unless DesiredWithinRange).
inline constexpr std::string_view kDesiredWithinRange = "DesiredWithinRange";
inline constexpr std::string_view kTooFewReplicas = "TooFewReplicas";    // raised to the lower bound
inline constexpr std::string_view kTooManyReplicas = "TooManyReplicas";  // cut to maxReplicas
inline constexpr std::string_view kCapacityLimited = "CapacityLimited";  // cut to maxSchedulable
inline constexpr std::string_view kRateLimited = "RateLimited";          // cut by a rate policy

// Decision reasons besides the above (what decided the final count).
inline constexpr std::string_view kWithinTolerance = "WithinTolerance";
inline constexpr std::string_view kMetricAboveTarget = "MetricAboveTarget";
inline constexpr std::string_view kMetricBelowTarget = "MetricBelowTarget";
inline constexpr std::string_view kScaleUpStabilized = "ScaleUpStabilized";
inline constexpr std::string_view kScaleDownStabilized = "ScaleDownStabilized";

// Event reasons.
inline constexpr std::string_view kSuccessfulRescale = "SuccessfulRescale";
}  // namespace autoscaling

// The autoscaling parameters of one deployment (from its spec).
struct AutoscalerPolicy {
  double targetPerReplica = 1;  // > 0: total load one replica should carry
  double tolerance = api::kDefaultTolerance;
  api::ScalingRules scaleUp{api::kDefaultScaleUpWindowSeconds, api::SelectPolicy::Max, {}};
  api::ScalingRules scaleDown{api::kDefaultScaleDownWindowSeconds, api::SelectPolicy::Max, {}};
  int32_t minReplicas = 1;
  int32_t maxReplicas = 1;
  // Flap damping (Waterline's, not HPA's; off when flapHalfLifeSeconds is 0): each
  // reversal (a scale event in the direction opposite to the previous one) adds
  // flapPenaltyStep to a penalty that halves every flapHalfLifeSeconds, capped at
  // flapPenaltyMax. The tolerance in force is tolerance × (1 + penalty): a planner whose
  // steps keep being undone (a noisy metric, or one that responds to the replica count
  // more than proportionally, as in-flight requests do) widens its own dead band until
  // they stop, and narrows it again when the load is quiet. See docs/autoscaling.md.
  int32_t flapHalfLifeSeconds = kDefaultFlapHalfLifeSeconds;
  double flapPenaltyStep = kDefaultFlapPenaltyStep;
  double flapPenaltyMax = kDefaultFlapPenaltyMax;
  static constexpr int32_t kDefaultFlapHalfLifeSeconds = 600;
  static constexpr double kDefaultFlapPenaltyStep = 0.5;
  static constexpr double kDefaultFlapPenaltyMax = 1.0;

  // The tolerance in force with `penalty` (the decayed flap penalty).
  double dampedTolerance(double penalty) const;

  // From spec.autoscaling (which must be enabled), spec.minReplicas (default 1) and
  // spec.maxReplicas. Errors name the field.
  static std::expected<AutoscalerPolicy, std::string> fromSpec(const api::ModelDeploymentSpec& spec);
};

// One observation of the query: the total, or why there is none.
struct MetricObservation {
  std::optional<double> total;  // nullopt: missing
  std::string error;            // why it is missing (the source's message)

  static MetricObservation value(double v) { return {v, {}}; }
  static MetricObservation failed(std::string message) { return {std::nullopt, std::move(message)}; }
};

// The persisted part: recommendation history and scale events, at whole-second
// resolution (so that what is stored is exactly what is used). Bounded: entries older
// than the longest window / policy period are dropped, and recommendations that can
// no longer be a window's min or max (an older one dominated by a newer one) too, so
// the history holds at most ~2 × (maxReplicas − minReplicas + 1) entries; a hard cap of
// kMaxEntries per list drops the oldest beyond that.
struct AutoscalerState {
  static constexpr std::size_t kMaxEntries = 64;
  struct Entry {
    int64_t unixSeconds = 0;
    int32_t value = 0;  // a recommendation, or a scale event's replica change (> 0)
    bool operator==(const Entry&) const = default;
  };
  std::vector<Entry> recommendations;  // oldest first
  std::vector<Entry> scaleUpEvents;    // replicas added
  std::vector<Entry> scaleDownEvents;  // replicas removed
  // Flap damping: the last scale event (time, direction +1/−1, 0: none yet) and the
  // penalty in thousandths as of that time (decayed on use).
  int64_t lastEventSeconds = 0;
  int32_t lastDirection = 0;
  int32_t flapPenaltyMilli = 0;

  // Compact JSON: {"v":1,"r":[[t,n],...],"u":[[t,n]],"d":[[t,n]],"f":[t,dir,milli]}; empty
  // lists and an empty "f" (no event yet) left out.
  std::string toJson() const;
  static std::expected<AutoscalerState, std::string> fromJson(std::string_view json);
  // fromJson, or an empty state when the annotation is absent or unreadable (the state
  // is safe to lose: an empty history holds the current count for one down-window).
  static AutoscalerState parseOrEmpty(std::string_view json);

  bool operator==(const AutoscalerState&) const = default;
};

struct AutoscalerInput {
  SystemTime now{};
  int32_t currentReplicas = 0;  // the count the autoscaler last set (spec/status desired)
  MetricObservation metric;
  int32_t ptuFloor = 0;  // replicas held by active PTU reservations: a lower bound
  // Replicas of this deployment the pools could place now (placed + fitting in free
  // capacity). nullopt: unknown, no limit.
  std::optional<int32_t> maxSchedulableReplicas;
  int64_t observedGeneration = 0;  // copied into the conditions
  // A recommendation the caller computed itself; when set it replaces the tolerance step
  // (the raw recommendation), the metric still has to be valid. Used by the Kubernetes
  // HPA model below, whose replica calculation works on per-pod metrics.
  std::optional<int32_t> rawRecommendation;
};

struct AutoscalerEvent {
  bool warning = false;  // Warning (failed metric) or Normal (rescale)
  std::string reason;    // SuccessfulRescale, FailedGetMetric
  std::string message;   // "from 3 to 5: metric 1234 target 100 reason MetricAboveTarget"
};

struct AutoscalerDecision {
  int32_t desiredReplicas = 0;
  int32_t currentReplicas = 0;
  std::string reason;   // what decided the count (autoscaling::k*)
  std::string message;  // human-readable detail
  std::optional<double> metricValue;  // the total, when valid

  // The steps, for status/debugging: raw (tolerance applied), after stabilisation,
  // after rate policies.
  int32_t rawRecommendation = 0;
  int32_t stabilizedRecommendation = 0;
  int32_t rateLimitedRecommendation = 0;

  // ScalingActive and ScalingLimited, lastTransitionTime left zero (setCondition fills
  // it with `now` when the status changes).
  std::vector<api::Condition> conditions;
  std::optional<AutoscalerEvent> event;  // a rescale or a failed metric
  AutoscalerState newState;

  bool changed() const { return desiredReplicas != currentReplicas; }
};

AutoscalerDecision planAutoscaling(const AutoscalerPolicy& policy, const AutoscalerState& state,
                                   const AutoscalerInput& in);

// ceil(total / target) with a relative epsilon, so that 300/100 is 3 and not 4; 0 for
// total <= 0; saturates at INT32_MAX. target must be > 0.
int32_t replicasForLoad(double total, double targetPerReplica);

// The plain HPA-style rule, the bench's baseline: tolerance, then ceil(total/target),
// clamped to [minReplicas, maxReplicas]; no windows, no rate policies, no PTU floor, no
// capacity limit. Missing data (nullopt, NaN, Inf, negative) holds the current count.
int32_t planPlainHpa(int32_t currentReplicas, std::optional<double> total, double targetPerReplica,
                     double tolerance, int32_t minReplicas, int32_t maxReplicas);

// ------------------------------------------------------------------------------------
// Kubernetes' HPA as a cluster runs it by default (the bench's faithful baseline), for a
// Pods metric with an AverageValue target (e.g. vLLM's in-flight requests per pod through
// prometheus-adapter). From pkg/controller/podautoscaler:
//   - replica_calculator.go calcPlainMetricReplicas (hpaPodMetricReplicas below): the
//     usage ratio is the average over the pods that report the metric; Pending pods are
//     "ignored" (counted as 0 on a scale-up), running pods without metrics (a model still
//     loading, /metrics not served yet) are "missing" (counted as the target on a
//     scale-down, as 0 on a scale-up); no change when the ratio is within the tolerance or
//     the correction flips the direction; pods being deleted do not count;
//   - horizontal.go with the API's default behaviour (kubernetesHpaDefaultPolicy): the
//     controller's 10 % tolerance, scale-up window 0 s with policies {Pods 4, Percent 100}
//     per 15 s selectPolicy Max, scale-down window 300 s (the highest recommendation of
//     the last 5 min) with policy {Percent 100} per 15 s; evaluated every sync period
//     (15 s, the caller's loop). currentReplicas is the scale's spec.replicas.
struct HpaPodCounts {
  int32_t withMetrics = 0;  // running, reporting the metric (their values sum to total)
  int32_t missing = 0;      // running, no metric yet
  int32_t pending = 0;      // Pending phase
};

// replica_calculator.go's calcPlainMetricReplicas; `total` is the sum of the metric over
// the pods that report it. nullopt when no pod reports it (the HPA fails the sync with
// "did not receive metrics for any ready pods" and holds).
std::optional<int32_t> hpaPodMetricReplicas(int32_t currentReplicas, double total, const HpaPodCounts& pods,
                                            double targetPerPod, double tolerance);

// The policy of an HPA created with no `behavior` (autoscaling/v2 defaults; identical in
// effect to the legacy path: scale-up at most max(2 × current, 4) per sync, scale-down
// stabilised over 5 min).
AutoscalerPolicy kubernetesHpaDefaultPolicy(double targetPerPod, int32_t minReplicas, int32_t maxReplicas);

// One HPA sync: the replica calculation, then planAutoscaling's stabilisation, rate
// policies and bounds (the same code as horizontal.go's normalizeDesiredReplicasWithBehaviors).
// A missing metric or no pod reporting it holds the count and records nothing.
AutoscalerDecision planKubernetesHpa(const AutoscalerPolicy& policy, const AutoscalerState& state, SystemTime now,
                                     int32_t specReplicas, std::optional<double> total, const HpaPodCounts& pods);

// "from 3 to 5: metric 1234.5 target 100 reason MetricAboveTarget"
std::string formatRescaleEvent(int32_t from, int32_t to, double metric, double target,
                               std::string_view reason);

}  // namespace waterline::planners
