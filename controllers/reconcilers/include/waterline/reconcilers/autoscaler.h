#pragma once
// The autoscaler controller (like the HPA controller, keyed by ModelDeployment). For a
// deployment with spec.autoscaling.enabled it, every sync period:
//   1. renders spec.autoscaling.query (sources::renderQuery) and asks Prometheus for the
//      deployment's total (sources::queryTotal); an error or empty answer is missing data;
//   2. reads the PTU floor (status.reservedReplicas of the deployment's Active
//      PTUReservations) and the capacity limit (status.scheduledReplicas while the
//      deployment's own Scheduled condition is False for the current generation);
//   3. runs planners::planAutoscaling with the state of the annotation
//      waterline.dev/autoscaler-state;
//   4. writes spec.replicas and the new state in ONE merge patch of the ModelDeployment
//      guarded by its resourceVersion (a conflict retries the whole step);
//   5. writes the ScalingActive / ScalingLimited conditions and status.autoscaling by
//      server-side apply under its own field manager (kAutoscalerFieldManager), so it
//      never touches the conditions of the ModelDeployment reconciler, which in turn
//      leaves these out of its own apply (stripAutoscalerStatus);
//   6. records an Event for every rescale and every failed metric, and metrics.
// With autoscaling off the controller writes nothing but ScalingActive=False /
// AutoscalingDisabled (once, if it had written conditions before): spec.replicas is
// then the user's (kubectl scale). See docs/autoscaling.md.
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>

#include "waterline/api/model_deployment.h"
#include "waterline/cache/informer.h"
#include "waterline/cache/lister.h"
#include "waterline/common/metrics.h"
#include "waterline/common/time.h"
#include "waterline/kube/client.h"
#include "waterline/planners/reservations.h"
#include "waterline/planners/autoscaler.h"
#include "waterline/runtime/controller.h"
#include "waterline/runtime/events.h"
#include "waterline/sources/prometheus.h"

namespace waterline::reconcilers {

// Field manager of the autoscaler's status apply (its conditions and status.autoscaling).
inline constexpr std::string_view kAutoscalerFieldManager = "waterline-autoscaler";

// stripAutoscalerStatus and ptuFloorFor: planners/reservations.h (the ModelDeployment
// reconciler uses them too).
using planners::ptuFloorFor;
using planners::stripAutoscalerStatus;

// ---- the pure step -----------------------------------------------------------------

struct AutoscaleStepInput {
  const api::ModelDeployment* deployment = nullptr;
  planners::MetricObservation metric;
  int32_t ptuFloor = 0;
  std::optional<int32_t> maxSchedulableReplicas;
  SystemTime now{};
};

struct AutoscaleStep {
  bool enabled = false;  // spec.autoscaling.enabled (and a valid policy)
  int32_t from = 0;      // spec.replicas now
  int32_t to = 0;        // spec.replicas to write
  // The merge patch for the ModelDeployment (spec.replicas and the state annotation,
  // guarded by resourceVersion); null when nothing changes.
  kube::Json specPatch;
  // The status object to apply under kAutoscalerFieldManager; null when it would not
  // change anything.
  kube::Json statusApply;
  std::optional<planners::AutoscalerDecision> decision;  // when enabled
  std::optional<planners::AutoscalerEvent> event;        // rescale, failed metric, invalid spec
  std::string decisionLabel;  // "scale_up", "scale_down", "hold" (metrics)
};

// The step of one reconcile, without I/O. `metric` is ignored when autoscaling is off.
AutoscaleStep planAutoscaleStep(const AutoscaleStepInput& in);


// The capacity limit the step uses: while the deployment's Scheduled condition is False
// for its current generation, the replicas placed (status.scheduledReplicas); else
// unknown (no limit).
std::optional<int32_t> maxSchedulableFromStatus(const api::ModelDeployment& d);

// ---- the controller ----------------------------------------------------------------

struct AutoscalerMetrics {
  explicit AutoscalerMetrics(metrics::Registry& reg);
  // waterline_autoscaler_decisions_total{namespace,deployment,decision,reason}
  metrics::CounterFamily& decisions;
  // waterline_autoscaler_metric_value{namespace,deployment}: the last valid total
  metrics::GaugeFamily& metricValue;
  // waterline_autoscaler_desired_replicas{namespace,deployment}
  metrics::GaugeFamily& desiredReplicas;
  // waterline_autoscaler_metric_available{namespace,deployment}: 1 valid, 0 missing
  metrics::GaugeFamily& metricAvailable;
  // One instance per registry (families can be registered once).
  static std::shared_ptr<AutoscalerMetrics> forRegistry(metrics::Registry& reg);
};

struct AutoscalerDeps {
  kube::WriterPtr writer;  // its reads come from listers
  cache::InformerPtr deployments;
  cache::InformerPtr reservations;        // optional: the PTU floor
  sources::PrometheusClientPtr prometheus;  // null: no metric source (holds, ScalingActive=False)
  runtime::EventRecorderPtr recorder;
  TimeSourcePtr time;
  Duration syncPeriod = std::chrono::seconds(15);
  metrics::Registry* registry = nullptr;  // default: metrics::defaultRegistry()
};

class AutoscalerReconciler final : public runtime::Reconciler {
 public:
  explicit AutoscalerReconciler(AutoscalerDeps deps);
  runtime::ReconcileResult reconcile(const runtime::Request& req) override;

 private:
  void forget(const std::string& key);
  planners::MetricObservation observe(const api::ModelDeployment& md);

  AutoscalerDeps d_;
  std::shared_ptr<cache::Lister<api::ModelDeployment>> deployments_;  // decoded once per version
  std::shared_ptr<AutoscalerMetrics> m_;
  std::mutex mu_;
  struct Seen {
    SystemTime lastEval{};
    int64_t generation = -1;
    std::set<std::pair<std::string, std::string>> decisionLabels;  // for removal
  };
  std::map<std::string, Seen> seen_;  // key -> last evaluation (scheduling only)
};

// Watches: deployments (created, deleted, or a change of spec.autoscaling /
// min/maxReplicas / spec.replicas), reservations mapped to their deployment.
runtime::ControllerPtr newAutoscalerController(AutoscalerDeps deps, runtime::ControllerOptions opts = {});

}  // namespace waterline::reconcilers
