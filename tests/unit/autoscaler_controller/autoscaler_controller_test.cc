// The autoscaler controller's step without I/O: what it writes (spec.replicas and state in
// one guarded patch, its own status part), its events and when it writes nothing.
#include <gtest/gtest.h>

#include "waterline/api/keys.h"
#include "waterline/api/meta.h"
#include "waterline/reconcilers/autoscaler.h"

namespace waterline::reconcilers {
namespace {

using kube::Json;
using namespace std::chrono_literals;
namespace as = planners::autoscaling;

const SystemTime kT0 = SystemTime{} + std::chrono::seconds(1'700'000'000);

Json deploymentJson(int replicas, bool autoscaling = true, int minR = 1, int maxR = 10) {
  Json spec = {{"model", {{"name", "m"}, {"version", "v1"}}},
               {"region", "eu-west"},
               {"template", {{"spec", {{"image", "img"}, {"ports", {{{"containerPort", 8000}}}}}}}},
               {"gpu", {{"count", 1}}},
               {"replicas", replicas},
               {"minReplicas", minR},
               {"maxReplicas", maxR}};
  if (autoscaling)
    spec["autoscaling"] = {{"enabled", true},
                           {"targetPerReplica", 100},
                           {"tolerance", 0.1},
                           {"scaleDown", {{"stabilizationWindowSeconds", 0}}}};
  return {{"apiVersion", "waterline.dev/v1alpha1"},
          {"kind", "ModelDeployment"},
          {"metadata", {{"name", "llama"}, {"namespace", "ml"}, {"generation", 3}, {"resourceVersion", "42"}}},
          {"spec", spec}};
}

api::ModelDeployment md(const Json& j) {
  auto d = api::ModelDeployment::fromJson(j);
  EXPECT_TRUE(d) << (d ? "" : d.error());
  return *d;
}

AutoscaleStep step(const api::ModelDeployment& d, planners::MetricObservation m, SystemTime now = kT0,
                   int32_t floor = 0, std::optional<int32_t> maxSched = std::nullopt) {
  AutoscaleStepInput in;
  in.deployment = &d;
  in.metric = std::move(m);
  in.now = now;
  in.ptuFloor = floor;
  in.maxSchedulableReplicas = maxSched;
  return planAutoscaleStep(in);
}

const Json* condIn(const Json& apply, const std::string& type) {
  for (const auto& c : apply["status"]["conditions"])
    if (c["type"] == type) return &c;
  return nullptr;
}

// Applies what a step wrote to the deployment, as the apiserver would.
void applyStep(api::ModelDeployment& d, const AutoscaleStep& s) {
  if (!s.specPatch.is_null()) {
    if (s.specPatch.contains("spec")) d.spec.replicas = s.specPatch["spec"]["replicas"];
    d.metadata.annotations[std::string(planners::kAutoscalerStateAnnotation)] =
        s.specPatch["metadata"]["annotations"][std::string(planners::kAutoscalerStateAnnotation)];
  }
  if (!s.statusApply.is_null()) {
    std::erase_if(d.status.conditions, [](const api::Condition& c) {
      return c.type == as::kScalingActive || c.type == as::kScalingLimited;
    });
    for (const auto& c : s.statusApply["status"]["conditions"]) d.status.conditions.push_back(*api::Condition::fromJson(c));
    d.status.autoscaling.reset();
    if (s.statusApply["status"].contains("autoscaling")) {
      api::AutoscalingStatus a;
      const auto& j = s.statusApply["status"]["autoscaling"];
      if (j.contains("currentValue")) a.currentValue = j["currentValue"].get<std::string>();
      if (j.contains("lastScaleTime")) a.lastScaleTime = *api::parseTime(j["lastScaleTime"].get<std::string>());
      d.status.autoscaling = a;
    }
  }
}

TEST(AutoscalerStep, ScalesUpWithOneGuardedPatchAndOwnStatus) {
  auto d = md(deploymentJson(2));
  auto s = step(d, planners::MetricObservation::value(480));
  EXPECT_TRUE(s.enabled);
  EXPECT_EQ(s.from, 2);
  EXPECT_EQ(s.to, 5);
  EXPECT_EQ(s.decisionLabel, "scale_up");
  ASSERT_FALSE(s.specPatch.is_null());
  EXPECT_EQ(s.specPatch["spec"]["replicas"], 5);
  EXPECT_EQ(s.specPatch["metadata"]["resourceVersion"], "42");
  EXPECT_TRUE(s.specPatch["metadata"]["annotations"].contains("waterline.dev/autoscaler-state"));
  ASSERT_FALSE(s.statusApply.is_null());
  // Only the autoscaler's part of the status.
  EXPECT_EQ(s.statusApply["status"].size(), 2u);
  const Json* active = condIn(s.statusApply, "ScalingActive");
  ASSERT_TRUE(active);
  EXPECT_EQ((*active)["status"], "True");
  EXPECT_EQ((*active)["reason"], "ValidMetric");
  EXPECT_NE((*active)["message"].get<std::string>().find("owns spec.replicas"), std::string::npos);
  EXPECT_EQ((*active)["observedGeneration"], 3);
  ASSERT_TRUE(condIn(s.statusApply, "ScalingLimited"));
  EXPECT_EQ(s.statusApply["status"]["autoscaling"]["currentValue"], "480");
  EXPECT_EQ(s.statusApply["status"]["autoscaling"]["lastScaleTime"], api::formatTime(kT0));
  ASSERT_TRUE(s.event);
  EXPECT_FALSE(s.event->warning);
  EXPECT_EQ(s.event->reason, "SuccessfulRescale");
  EXPECT_EQ(s.event->message, "from 2 to 5: metric 480 target 100 reason MetricAboveTarget");
}

TEST(AutoscalerStep, MissingMetricHoldsAndSaysWhy) {
  auto d = md(deploymentJson(4));
  auto s = step(d, planners::MetricObservation::failed("Transport: connection refused"));
  EXPECT_EQ(s.to, 4);
  EXPECT_EQ(s.decisionLabel, "hold");
  EXPECT_TRUE(s.specPatch.is_null() || !s.specPatch.contains("spec"));
  const Json* active = condIn(s.statusApply, "ScalingActive");
  ASSERT_TRUE(active);
  EXPECT_EQ((*active)["status"], "False");
  EXPECT_EQ((*active)["reason"], "FailedGetMetric");
  EXPECT_NE((*active)["message"].get<std::string>().find("connection refused"), std::string::npos);
  EXPECT_FALSE(s.statusApply["status"].contains("autoscaling"));
  ASSERT_TRUE(s.event);
  EXPECT_TRUE(s.event->warning);
  EXPECT_EQ(s.event->reason, "FailedGetMetric");
}

TEST(AutoscalerStep, MissingMetricStillHonoursThePtuFloor) {
  auto d = md(deploymentJson(1));
  auto s = step(d, planners::MetricObservation::failed("EmptyResult"), kT0, 3);
  EXPECT_EQ(s.to, 3);
  EXPECT_EQ(s.specPatch["spec"]["replicas"], 3);
  // The change is a rescale Event (the condition carries the failed metric).
  ASSERT_TRUE(s.event);
  EXPECT_EQ(s.event->reason, "SuccessfulRescale");
  EXPECT_EQ(s.event->message, "from 1 to 3: metric unavailable target 100 reason TooFewReplicas");
  EXPECT_EQ((*condIn(s.statusApply, "ScalingActive"))["reason"], "FailedGetMetric");
  EXPECT_EQ((*condIn(s.statusApply, "ScalingLimited"))["reason"], "TooFewReplicas");
}

TEST(AutoscalerStep, MissingMetricNeverScalesTowardsMin) {
  auto d = md(deploymentJson(6));
  for (int i = 0; i < 10; ++i) {
    auto s = step(d, planners::MetricObservation::failed("EmptyResult"), kT0 + std::chrono::seconds(15 * i));
    EXPECT_EQ(s.to, 6);
    applyStep(d, s);
  }
}

TEST(AutoscalerStep, SteadyStateWritesNoStatus) {
  auto d = md(deploymentJson(2));
  auto s1 = step(d, planners::MetricObservation::value(200));
  EXPECT_EQ(s1.to, 2);
  applyStep(d, s1);
  auto s2 = step(d, planners::MetricObservation::value(200), kT0 + 15s);
  EXPECT_EQ(s2.to, 2);
  EXPECT_TRUE(s2.statusApply.is_null()) << s2.statusApply.dump();
  EXPECT_FALSE(s2.event);
}

TEST(AutoscalerStep, PtuFloorIsTheLowerClampAndCappedAtMax) {
  auto d = md(deploymentJson(2, true, 1, 6));
  auto s = step(d, planners::MetricObservation::value(10), kT0, 4);
  EXPECT_EQ(s.to, 4);
  EXPECT_EQ((*condIn(s.statusApply, "ScalingLimited"))["reason"], "TooFewReplicas");
  auto d2 = md(deploymentJson(2, true, 1, 6));
  auto s2 = step(d2, planners::MetricObservation::value(10), kT0, 9);
  EXPECT_EQ(s2.to, 6);  // spec.replicas must stay <= maxReplicas
  EXPECT_NE((*condIn(s2.statusApply, "ScalingLimited"))["message"].get<std::string>().find("raise spec.maxReplicas"),
            std::string::npos);
  EXPECT_EQ(s2.event->message.rfind("from 2 to 6:", 0), 0u) << s2.event->message;
}

TEST(AutoscalerStep, CapacityLimitStopsScaleUp) {
  auto d = md(deploymentJson(3));
  auto s = step(d, planners::MetricObservation::value(900), kT0, 0, 4);
  EXPECT_EQ(s.to, 4);
  EXPECT_EQ((*condIn(s.statusApply, "ScalingLimited"))["reason"], "CapacityLimited");
}

TEST(AutoscalerStep, DisabledWritesNothingUnlessItOwnedConditions) {
  auto d = md(deploymentJson(3, false));
  auto s = step(d, planners::MetricObservation::value(900));
  EXPECT_FALSE(s.enabled);
  EXPECT_TRUE(s.specPatch.is_null());
  EXPECT_TRUE(s.statusApply.is_null());

  // Was on, then turned off: ScalingActive=False/AutoscalingDisabled, ScalingLimited and
  // status.autoscaling dropped (left out of this manager's apply), replicas untouched.
  auto on = md(deploymentJson(2));
  auto s1 = step(on, planners::MetricObservation::value(480));
  applyStep(on, s1);
  auto offJson = deploymentJson(on.spec.replicas, false);
  auto off = md(offJson);
  off.status = on.status;
  auto s2 = step(off, planners::MetricObservation::value(0), kT0 + 30s);
  EXPECT_TRUE(s2.specPatch.is_null());
  ASSERT_FALSE(s2.statusApply.is_null());
  EXPECT_EQ(s2.statusApply["status"]["conditions"].size(), 1u);
  EXPECT_EQ((*condIn(s2.statusApply, "ScalingActive"))["reason"], "AutoscalingDisabled");
  EXPECT_FALSE(s2.statusApply["status"].contains("autoscaling"));
  applyStep(off, s2);
  EXPECT_TRUE(step(off, {}, kT0 + 60s).statusApply.is_null());
}

TEST(AutoscalerStatus, ReconcilerStatusLeavesTheAutoscalersPartOut) {
  Json st = {{"replicas", 2},
             {"autoscaling", {{"currentValue", "1"}}},
             {"conditions",
              {{{"type", "Scheduled"}, {"status", "True"}},
               {{"type", "ScalingActive"}, {"status", "True"}},
               {{"type", "ScalingLimited"}, {"status", "False"}},
               {{"type", "Available"}, {"status", "True"}}}}};
  stripAutoscalerStatus(st);
  EXPECT_FALSE(st.contains("autoscaling"));
  ASSERT_EQ(st["conditions"].size(), 2u);
  EXPECT_EQ(st["conditions"][0]["type"], "Scheduled");
  EXPECT_EQ(st["conditions"][1]["type"], "Available");
  EXPECT_EQ(st["replicas"], 2);
}

TEST(AutoscalerInputs, PtuFloorSumsActiveReservationsOfTheDeployment) {
  auto r = [](std::string ns, std::string dep, std::string phase, int replicas) {
    return std::make_shared<const Json>(Json{{"metadata", {{"name", "r"}, {"namespace", ns}}},
                                             {"spec", {{"deploymentRef", {{"name", dep}}}}},
                                             {"status", {{"phase", phase}, {"reservedReplicas", replicas}}}});
  };
  std::vector<std::shared_ptr<const Json>> all = {r("ml", "llama", "Active", 2), r("ml", "llama", "Active", 3),
                                                  r("ml", "llama", "Pending", 7), r("ml", "other", "Active", 5),
                                                  r("x", "llama", "Active", 11), r("ml", "llama", "Expired", 13)};
  EXPECT_EQ(ptuFloorFor(all, "ml", "llama"), 5);
  EXPECT_EQ(ptuFloorFor(all, "ml", "none"), 0);
}

TEST(AutoscalerInputs, CapacityLimitOnlyWhileUnschedulableForThisGeneration) {
  auto d = md(deploymentJson(5));
  EXPECT_FALSE(maxSchedulableFromStatus(d));
  d.status.observedGeneration = 3;
  d.status.scheduledReplicas = 3;
  d.status.conditions.push_back({"Scheduled", api::ConditionStatus::False, "InsufficientCapacity", "", kT0, 3});
  EXPECT_EQ(maxSchedulableFromStatus(d), 3);
  d.status.observedGeneration = 2;
  EXPECT_FALSE(maxSchedulableFromStatus(d));
}

}  // namespace
}  // namespace waterline::reconcilers
