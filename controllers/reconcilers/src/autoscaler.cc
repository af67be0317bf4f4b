#include "waterline/reconcilers/autoscaler.h"

#include <cmath>
#include <cstdio>

#include "waterline/api/keys.h"
#include "waterline/api/meta.h"
#include "waterline/api/model_deployment.h"
#include "waterline/api/ptu_reservation.h"
#include "waterline/common/log.h"
#include "typed_watches.h"

namespace waterline::reconcilers {

using runtime::ReconcileError;
using runtime::Result;
namespace as = planners::autoscaling;


namespace {

std::string formatValue(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.3f", v);
  std::string s = buf;
  if (s.find('.') != std::string::npos) {
    while (!s.empty() && s.back() == '0') s.pop_back();
    if (!s.empty() && s.back() == '.') s.pop_back();
  }
  if (s.size() > 64) s = s.substr(0, 64);
  return s;
}

// The autoscaler's part of the status: its two conditions (keeping lastTransitionTime of
// unchanged statuses) and status.autoscaling.
struct OwnedStatus {
  std::vector<api::Condition> conditions;
  std::optional<api::AutoscalingStatus> autoscaling;
  bool operator==(const OwnedStatus&) const = default;
};

OwnedStatus ownedOf(const api::ModelDeploymentStatus& st) {
  OwnedStatus o;
  for (const auto& c : st.conditions)
    if (c.type == as::kScalingActive || c.type == as::kScalingLimited) o.conditions.push_back(c);
  o.autoscaling = st.autoscaling;
  return o;
}

kube::Json statusApplyObject(const api::ModelDeployment& d, const OwnedStatus& o) {
  kube::Json st = kube::Json::object();
  kube::Json conds = kube::Json::array();
  for (const auto& c : o.conditions) conds.push_back(c.toJson());
  st["conditions"] = conds;
  if (o.autoscaling) {
    kube::Json a = kube::Json::object();
    if (o.autoscaling->currentValue) a["currentValue"] = *o.autoscaling->currentValue;
    if (o.autoscaling->lastScaleTime) a["lastScaleTime"] = api::formatTime(*o.autoscaling->lastScaleTime);
    st["autoscaling"] = a;
  }
  return {{"apiVersion", kube::kinds::ModelDeployment.apiVersion()},
          {"kind", "ModelDeployment"},
          {"metadata", {{"name", d.metadata.name}, {"namespace", d.metadata.namespace_}}},
          {"status", st}};
}

// Same set of conditions by type, status, reason, message, generation (not times: the
// previous ones are kept by setCondition when the status does not change).
bool sameOwned(const OwnedStatus& a, const OwnedStatus& b) {
  if (a.autoscaling != b.autoscaling || a.conditions.size() != b.conditions.size()) return false;
  for (const auto& c : a.conditions) {
    const auto* o = api::findCondition(b.conditions, c.type);
    if (!o || !(*o == c)) return false;
  }
  return true;
}

}  // namespace

AutoscaleStep planAutoscaleStep(const AutoscaleStepInput& in) {
  const api::ModelDeployment& d = *in.deployment;
  AutoscaleStep step;
  step.from = step.to = d.spec.replicas;
  step.decisionLabel = "hold";
  const int64_t gen = d.metadata.generation;
  const OwnedStatus before = ownedOf(d.status);
  OwnedStatus after = before;

  if (!d.spec.autoscalingEnabled()) {
    // Off: spec.replicas is the user's. Say so once if this controller had written
    // conditions before; otherwise write nothing at all.
    if (before.conditions.empty() && !before.autoscaling) return step;
    after.conditions.clear();
    if (const auto* c = api::findCondition(before.conditions, as::kScalingActive)) after.conditions.push_back(*c);
    after.autoscaling.reset();
    api::setCondition(after.conditions,
                      {std::string(as::kScalingActive), api::ConditionStatus::False,
                       std::string(as::kAutoscalingDisabled),
                       "spec.autoscaling is off: spec.replicas (kubectl scale) sets the replica count", {}, gen},
                      in.now);
    if (!sameOwned(after, before)) step.statusApply = statusApplyObject(d, after);
    return step;
  }

  auto policy = planners::AutoscalerPolicy::fromSpec(d.spec);
  if (!policy) {
    // The schema should have rejected it; hold the count and report.
    after.conditions.clear();
    for (const auto& c : before.conditions) after.conditions.push_back(c);
    api::setCondition(after.conditions,
                      {std::string(as::kScalingActive), api::ConditionStatus::False,
                       std::string(api::reasons::kInvalidSpec), policy.error(), {}, gen},
                      in.now);
    if (!sameOwned(after, before)) {
      step.statusApply = statusApplyObject(d, after);
      step.event = planners::AutoscalerEvent{true, std::string(api::reasons::kInvalidSpec), policy.error()};
    }
    return step;
  }
  step.enabled = true;

  std::string stateText;
  if (auto it = d.metadata.annotations.find(std::string(planners::kAutoscalerStateAnnotation));
      it != d.metadata.annotations.end())
    stateText = it->second;
  const auto state = planners::AutoscalerState::parseOrEmpty(stateText);

  planners::AutoscalerInput ai;
  ai.now = in.now;
  ai.currentReplicas = d.spec.replicas;
  ai.metric = in.metric;
  ai.ptuFloor = in.ptuFloor;
  ai.maxSchedulableReplicas = in.maxSchedulableReplicas;
  ai.observedGeneration = gen;
  auto dec = planners::planAutoscaling(*policy, state, ai);

  // spec.replicas must stay within [minReplicas, maxReplicas] (CEL). A PTU floor above
  // maxReplicas wins in the planner; the write is capped and the condition says why.
  int32_t to = dec.desiredReplicas;
  std::string capNote;
  if (d.spec.maxReplicas && to > *d.spec.maxReplicas) {
    capNote = "; capped at maxReplicas " + std::to_string(*d.spec.maxReplicas) + " (the PTU floor " +
              std::to_string(in.ptuFloor) + " is above it: raise spec.maxReplicas)";
    to = *d.spec.maxReplicas;
  }
  step.to = to;
  step.decisionLabel = to > step.from ? "scale_up" : to < step.from ? "scale_down" : "hold";

  // Conditions: the decision's, lastTransitionTime kept when the status is unchanged.
  after.conditions.clear();
  for (const auto& c : before.conditions) after.conditions.push_back(c);
  for (auto c : dec.conditions) {
    if (c.type == as::kScalingActive && c.status == api::ConditionStatus::True)
      c.message += (c.message.empty() ? "" : "; ") +
                   std::string("the autoscaler owns spec.replicas (kubectl scale is overridden)");
    if (c.type == as::kScalingLimited && !capNote.empty()) c.message += capNote;
    api::setCondition(after.conditions, c, in.now);
  }
  api::AutoscalingStatus ast = before.autoscaling.value_or(api::AutoscalingStatus{});
  if (dec.metricValue) ast.currentValue = formatValue(*dec.metricValue);
  else ast.currentValue.reset();
  if (to != step.from) ast.lastScaleTime = std::chrono::time_point_cast<std::chrono::seconds>(in.now);
  if (!ast.currentValue && !ast.lastScaleTime) after.autoscaling.reset();
  else after.autoscaling = ast;
  if (!sameOwned(after, before)) step.statusApply = statusApplyObject(d, after);

  // spec.replicas and the state in one guarded merge patch.
  const std::string newState = dec.newState.toJson();
  if (to != step.from || newState != stateText) {
    kube::Json md = {{"resourceVersion", d.metadata.resourceVersion},
                     {"annotations", {{std::string(planners::kAutoscalerStateAnnotation), newState}}}};
    step.specPatch = {{"metadata", md}};
    if (to != step.from) step.specPatch["spec"] = {{"replicas", to}};
  }
  if (dec.event) {
    step.event = dec.event;
    if (!dec.event->warning && to != dec.desiredReplicas && dec.metricValue)
      step.event->message = planners::formatRescaleEvent(step.from, to, dec.metricValue.value_or(0),
                                                         policy->targetPerReplica, dec.reason);
  }
  step.decision = std::move(dec);
  return step;
}


std::optional<int32_t> maxSchedulableFromStatus(const api::ModelDeployment& d) {
  const auto* c = api::findCondition(d.status.conditions, api::conditions::kScheduled);
  if (!c || c->status != api::ConditionStatus::False || c->reason != api::reasons::kInsufficientCapacity)
    return std::nullopt;
  if (d.status.observedGeneration != d.metadata.generation) return std::nullopt;
  return d.status.scheduledReplicas;
}

// ---- metrics -------------------------------------------------------------------------

AutoscalerMetrics::AutoscalerMetrics(metrics::Registry& reg)
    : decisions(reg.counter("waterline_autoscaler_decisions_total",
                            "Autoscaler evaluations by outcome (scale_up, scale_down, hold) and the reason "
                            "that decided the count.",
                            {"namespace", "deployment", "decision", "reason"})),
      metricValue(reg.gauge("waterline_autoscaler_metric_value",
                            "Last valid value of the deployment's autoscaling query (its total load).",
                            {"namespace", "deployment"})),
      desiredReplicas(reg.gauge("waterline_autoscaler_desired_replicas",
                                "Replica count the autoscaler last chose.", {"namespace", "deployment"})),
      metricAvailable(reg.gauge("waterline_autoscaler_metric_available",
                                "1 when the last query gave a usable value, 0 when the count is held for "
                                "missing data.",
                                {"namespace", "deployment"})) {}

std::shared_ptr<AutoscalerMetrics> AutoscalerMetrics::forRegistry(metrics::Registry& reg) {
  static std::mutex mu;
  static std::map<metrics::Registry*, std::shared_ptr<AutoscalerMetrics>> all;
  std::lock_guard g(mu);
  auto& m = all[&reg];
  if (!m) m = std::make_shared<AutoscalerMetrics>(reg);
  return m;
}

// ---- reconciler ----------------------------------------------------------------------

AutoscalerReconciler::AutoscalerReconciler(AutoscalerDeps deps)
    : d_(std::move(deps)),
      deployments_(cache::Lister<api::ModelDeployment>::of(d_.deployments)),
      m_(AutoscalerMetrics::forRegistry(d_.registry ? *d_.registry : metrics::defaultRegistry())) {}

void AutoscalerReconciler::forget(const std::string& key) {
  std::set<std::pair<std::string, std::string>> labels;
  {
    std::lock_guard g(mu_);
    auto it = seen_.find(key);
    if (it == seen_.end()) return;
    labels = std::move(it->second.decisionLabels);
    seen_.erase(it);
  }
  auto r = runtime::Request::fromKey(key);
  m_->metricValue.remove({r.ns, r.name});
  m_->desiredReplicas.remove({r.ns, r.name});
  m_->metricAvailable.remove({r.ns, r.name});
  for (const auto& [dec, reason] : labels) m_->decisions.remove({r.ns, r.name, dec, reason});
}

planners::MetricObservation AutoscalerReconciler::observe(const api::ModelDeployment& md) {
  if (!d_.prometheus)
    return planners::MetricObservation::failed("no metric source: the operator runs without --prometheus-url");
  auto q = sources::renderQuery(md.spec.autoscaling->query,
                                {md.metadata.name, md.metadata.namespace_, std::string()});
  if (!q) return planners::MetricObservation::failed("spec.autoscaling.query: " + q.error());
  auto v = sources::queryTotal(*d_.prometheus, *q);
  if (!v) return planners::MetricObservation::failed(v.error().toString());
  return planners::MetricObservation::value(*v);
}

runtime::ReconcileResult AutoscalerReconciler::reconcile(const runtime::Request& req) {
  const auto lg = log::logger("autoscaler");
  const std::string key = req.key();
  const auto item = deployments_->item(key);
  const auto& obj = item.object;
  if (!obj) {
    forget(key);
    return Result::done();
  }
  const auto& md = item.value;  // decoded once per version (cache/lister.h)
  if (!md || md->metadata.deletionTimestamp) return Result::done();
  const SystemTime now = d_.time->systemTime();

  AutoscaleStepInput in;
  in.deployment = &*md;
  in.now = now;
  if (md->spec.autoscalingEnabled()) {
    // Evaluate at most once per sync period (watch events in between only reschedule),
    // except right after a spec change.
    {
      std::lock_guard g(mu_);
      auto& s = seen_[key];
      if (s.generation == md->metadata.generation && now - s.lastEval < d_.syncPeriod)
        return Result::after(d_.syncPeriod - (now - s.lastEval));
    }
    in.metric = observe(*md);
    if (d_.reservations) in.ptuFloor = ptuFloorFor(d_.reservations->store().list(), req.ns, req.name);
    in.maxSchedulableReplicas = maxSchedulableFromStatus(*md);
  }
  auto step = planAutoscaleStep(in);

  if (!step.specPatch.is_null()) {
    auto r = d_.writer->patch(kube::kinds::ModelDeployment, req.ns, req.name, kube::PatchType::Merge,
                              step.specPatch.dump(), {std::string(kAutoscalerFieldManager), false, ""});
    if (!r) {
      // Conflict: the object changed since the cache saw it; the whole step runs again
      // on fresh data (nothing was written).
      if (r.error().isNotFound()) return Result::done();
      return std::unexpected(ReconcileError{"write replicas and state: " + r.error().describe()});
    }
  }
  {
    std::lock_guard g(mu_);
    auto& s = seen_[key];
    if (step.enabled) {
      s.lastEval = now;
      s.generation = md->metadata.generation + (step.to != step.from ? 1 : 0);
      if (step.decision) s.decisionLabels.insert({step.decisionLabel, step.decision->reason});
    }
  }
  if (step.enabled && step.decision) {
    m_->decisions.withLabels({req.ns, req.name, step.decisionLabel, step.decision->reason}).inc();
    m_->desiredReplicas.withLabels({req.ns, req.name}).set(step.to);
    m_->metricAvailable.withLabels({req.ns, req.name}).set(step.decision->metricValue ? 1 : 0);
    if (step.decision->metricValue) m_->metricValue.withLabels({req.ns, req.name}).set(*step.decision->metricValue);
  } else {
    m_->desiredReplicas.remove({req.ns, req.name});
    m_->metricValue.remove({req.ns, req.name});
    m_->metricAvailable.remove({req.ns, req.name});
  }
  if (step.event)
    d_.recorder->event(*obj, step.event->warning ? "Warning" : "Normal", step.event->reason, step.event->message);
  if (step.to != step.from)
    lg.info("rescale", {{"deployment", key}, {"from", step.from}, {"to", step.to},
                        {"reason", step.decision ? step.decision->reason : std::string()}});

  if (!step.statusApply.is_null()) {
    kube::PatchOptions po{std::string(kAutoscalerFieldManager), true, "status"};
    auto r = d_.writer->apply(kube::kinds::ModelDeployment, req.ns, step.statusApply, po);
    if (!r && !r.error().isNotFound())
      return std::unexpected(ReconcileError{"apply autoscaler status: " + r.error().describe()});
  }
  if (step.enabled) return Result::after(d_.syncPeriod);
  return Result::done();
}

namespace {

// The spec fields the autoscaler reads, compared decoded: an absent field and its CRD
// default (replicas: 1, autoscaling.tolerance, ...) are equal.
bool autoscalingInputsChanged(const api::ModelDeployment& o, const api::ModelDeployment& n) {
  return o.spec.autoscaling != n.spec.autoscaling || o.spec.minReplicas != n.spec.minReplicas ||
         o.spec.maxReplicas != n.spec.maxReplicas || o.spec.replicas != n.spec.replicas;
}

}  // namespace

runtime::ControllerPtr newAutoscalerController(AutoscalerDeps deps, runtime::ControllerOptions opts) {
  auto mds = deps.deployments;
  auto ptus = deps.reservations;
  auto c = std::make_unique<runtime::Controller>("autoscaler", std::make_unique<AutoscalerReconciler>(deps),
                                                 std::move(opts));
  c->watchFor(mds, {watches::onUpdate<api::ModelDeployment>(autoscalingInputsChanged)});
  if (ptus) {
    // The reservation's floor for its deployment (phase, reservedReplicas).
    auto floorChanged = watches::onUpdate<api::PTUReservation>([](const auto& o, const auto& n) {
      return o.status.phase != n.status.phase || o.status.reservedReplicas != n.status.reservedReplicas;
    });
    c->watchMapped(ptus, watches::mapTyped<api::PTUReservation>(watches::reservedDeployment), {floorChanged});
  }
  return c;
}

}  // namespace waterline::reconcilers
