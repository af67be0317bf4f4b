// PTU admission against small fleets, with an injected `now`.
#include "waterline/planners/ptu_admission.h"

#include <gtest/gtest.h>

#include "waterline/api/keys.h"
#include "waterline/api/quantity.h"
#include "waterline/api/meta.h"
#include "waterline/planners/ptu_sizing.h"

namespace waterline::planners {
namespace {

using namespace std::chrono_literals;
using api::ReservationPhase;

const SystemTime kT0 = SystemTime{} + std::chrono::seconds(1'700'000'040);  // a minute boundary + 40 s

api::CapacityPool pool(const std::string& name, const std::string& region, const std::string& zone, int allocatable,
                       double fraction = 0.5, api::SharingMode mode = api::SharingMode::Exclusive) {
  api::CapacityPool p;
  p.metadata.name = name;
  p.spec.region = region;
  p.spec.dataZone = zone;
  p.spec.gpuProduct = "NVIDIA-H100-80GB-HBM3";
  p.spec.sharing.mode = mode;
  if (mode == api::SharingMode::TimeSlicing) p.spec.sharing.slicesPerGpu = 4;
  p.spec.reservableFraction = fraction;
  p.status.gpus.allocatable = allocatable;
  p.status.gpus.total = allocatable;
  return p;
}

api::ModelDeployment deployment(const std::string& name, int gpus, int64_t tpmPerReplica,
                                api::DeploymentType type = api::DeploymentType::DataZone) {
  api::ModelDeployment d;
  d.metadata.name = name;
  d.metadata.namespace_ = "ml";
  d.spec.deploymentType = type;
  if (type == api::DeploymentType::DataZone) d.spec.dataZone = "EU";
  if (type == api::DeploymentType::Standard) d.spec.region = "eu-west";
  d.spec.gpu.count = gpus;
  if (tpmPerReplica > 0) d.spec.throughput = api::ThroughputSpec{tpmPerReplica, 1, 1};
  return d;
}

api::PTUReservation reservation(const std::string& name, const std::string& dep, int units, int64_t tpmPerUnit,
                                api::ReservationScope scope, int createdSecondsAgo = 100) {
  api::PTUReservation r;
  r.metadata.name = name;
  r.metadata.namespace_ = "ml";
  r.metadata.generation = 1;
  r.metadata.creationTimestamp = kT0 - std::chrono::seconds(createdSecondsAgo);
  r.spec.deploymentRef.name = dep;
  r.spec.units = units;
  r.spec.tokensPerMinutePerUnit = tpmPerUnit;
  r.spec.scope = scope;
  return r;
}

api::ReservationScope regional(const std::string& r) { return {api::ScopeType::Regional, r, std::nullopt}; }
api::ReservationScope zone(const std::string& z) { return {api::ScopeType::DataZone, std::nullopt, z}; }

PtuAdmissionInput world() {
  PtuAdmissionInput in;
  in.now = kT0;
  in.pools = {pool("euw-a", "eu-west", "EU", 16), pool("eun-a", "eu-north", "EU", 8),
              pool("use-a", "us-east", "US", 32)};
  in.deployments["ml/llama"] = deployment("llama", 2, 1000);
  return in;
}

TEST(PtuAdmission, SizesByRoundingUpAndPlacesInScope) {
  auto in = world();
  // 5 units x 450 = 2250 tokens/min over 1000 per replica: 3 replicas, 6 GPUs.
  in.reservations = {reservation("r1", "llama", 5, 450, regional("eu-west"))};
  auto plan = planPtuAdmission(in);
  const auto& a = plan.byReservation.at("ml/r1");
  EXPECT_EQ(a.phase, ReservationPhase::Active) << a.message;
  EXPECT_EQ(a.replicas, 3);
  EXPECT_EQ(a.provisionedTokensPerMinute, 2250);
  ASSERT_EQ(a.placements.size(), 1u);
  EXPECT_EQ(a.placements[0].pool, "euw-a");
  EXPECT_EQ(a.placements[0].replicas, 3);
  EXPECT_DOUBLE_EQ(a.placements[0].gpus, 6);
  EXPECT_DOUBLE_EQ(plan.reservedGpus["euw-a"], 6);
}

TEST(PtuAdmission, InsufficientSaysHowMuchIsMissingWhere) {
  auto in = world();
  // reservable: euw-a 8 GPUs (0.5 x 16) -> 4 replicas of 2 GPUs; 6 wanted.
  in.reservations = {reservation("r1", "llama", 6, 1000, regional("eu-west"))};
  auto a = planPtuAdmission(in).byReservation.at("ml/r1");
  EXPECT_EQ(a.phase, ReservationPhase::Insufficient);
  EXPECT_EQ(a.reason, "InsufficientCapacity");
  EXPECT_NE(a.message.find("needs 6 replicas (12 GPUs)"), std::string::npos) << a.message;
  EXPECT_NE(a.message.find("missing 2 replicas (4 GPUs)"), std::string::npos) << a.message;
  EXPECT_NE(a.message.find("euw-a 8 of 8 reservable GPUs free"), std::string::npos) << a.message;
  EXPECT_TRUE(a.placements.empty());
  // A DataZone scope spans both EU pools: 4 + 2 replicas fit.
  in.reservations = {reservation("r1", "llama", 6, 1000, zone("EU"))};
  auto b = planPtuAdmission(in).byReservation.at("ml/r1");
  EXPECT_EQ(b.phase, ReservationPhase::Active) << b.message;
  ASSERT_EQ(b.placements.size(), 2u);
  EXPECT_EQ(b.placements[0].pool, "eun-a");
  EXPECT_EQ(b.placements[0].replicas, 2);
  EXPECT_EQ(b.placements[1].replicas, 4);
}

TEST(PtuAdmission, ScopeAndDeploymentTypeBothRestrict) {
  auto in = world();
  in.deployments["ml/llama"] = deployment("llama", 2, 1000, api::DeploymentType::Standard);  // eu-west only
  in.reservations = {reservation("r1", "llama", 2, 1000, regional("us-east"))};
  auto a = planPtuAdmission(in).byReservation.at("ml/r1");
  EXPECT_EQ(a.phase, ReservationPhase::Insufficient);
  EXPECT_NE(a.message.find("no pool"), std::string::npos) << a.message;
  // Sharing mode must fit the request: a whole-GPU deployment never lands in a time-sliced pool.
  in.pools = {pool("euw-ts", "eu-west", "EU", 16, 1.0, api::SharingMode::TimeSlicing)};
  in.reservations = {reservation("r1", "llama", 1, 1000, regional("eu-west"))};
  EXPECT_EQ(planPtuAdmission(in).byReservation.at("ml/r1").phase, ReservationPhase::Insufficient);
}

TEST(PtuAdmission, ReservationsAddUpAndNeverTakeFromAnActiveOne) {
  auto in = world();
  auto older = reservation("a-old", "llama", 2, 1000, regional("eu-west"), 500);  // 2 replicas, 4 GPUs
  auto newer = reservation("b-new", "llama", 3, 1000, regional("eu-west"), 50);   // 3 replicas, 6 GPUs
  in.reservations = {newer, older};
  auto plan = planPtuAdmission(in);
  EXPECT_EQ(plan.byReservation.at("ml/a-old").phase, ReservationPhase::Active);
  EXPECT_EQ(plan.byReservation.at("ml/b-new").phase, ReservationPhase::Insufficient);  // 4 of 8 left
  // The newer one is Active already (it came first): the older, new one waits.
  in.reservations[0].status.phase = ReservationPhase::Active;
  plan = planPtuAdmission(in);
  EXPECT_EQ(plan.byReservation.at("ml/b-new").phase, ReservationPhase::Active);
  EXPECT_EQ(plan.byReservation.at("ml/a-old").phase, ReservationPhase::Insufficient);
  // Both fit once the pool grows; they add up.
  in.pools[0].status.gpus.allocatable = 20;
  plan = planPtuAdmission(in);
  EXPECT_EQ(plan.byReservation.at("ml/a-old").phase, ReservationPhase::Active);
  EXPECT_EQ(plan.byReservation.at("ml/b-new").phase, ReservationPhase::Active);
  EXPECT_DOUBLE_EQ(plan.reservedGpus["euw-a"], 10);
}

TEST(PtuAdmission, TimeWindowAndMissingInputs) {
  auto in = world();
  auto r = reservation("r1", "llama", 1, 1000, regional("eu-west"));
  r.spec.startTime = kT0 + 1h;
  r.spec.endTime = kT0 + 2h;
  in.reservations = {r};
  auto a = planPtuAdmission(in).byReservation.at("ml/r1");
  EXPECT_EQ(a.phase, ReservationPhase::Pending);
  EXPECT_EQ(a.reason, "NotStarted");
  EXPECT_EQ(a.nextChange, kT0 + 1h);
  in.now = kT0 + 1h;
  a = planPtuAdmission(in).byReservation.at("ml/r1");
  EXPECT_EQ(a.phase, ReservationPhase::Active);
  EXPECT_EQ(a.nextChange, kT0 + 2h);
  in.now = kT0 + 2h;
  auto plan = planPtuAdmission(in);
  EXPECT_EQ(plan.byReservation.at("ml/r1").phase, ReservationPhase::Expired);
  EXPECT_TRUE(plan.reservedGpus.empty());

  in.now = kT0;
  in.reservations = {reservation("r2", "nope", 1, 1000, regional("eu-west"))};
  EXPECT_EQ(planPtuAdmission(in).byReservation.at("ml/r2").reason, "DeploymentNotFound");
  in.deployments["ml/nothr"] = deployment("nothr", 1, 0);
  in.reservations = {reservation("r3", "nothr", 1, 1000, regional("eu-west"))};
  EXPECT_EQ(planPtuAdmission(in).byReservation.at("ml/r3").reason, "ThroughputUnknown");
}

// Finding 4 of the hardening issue, as a user writes it: "no end" as 9999-12-31 and a
// start far in the future.
TEST(PtuAdmission, FarFutureTimesAreNotWrappedIntoThePast) {
  auto in = world();
  auto r = reservation("r1", "llama", 1, 1000, regional("eu-west"));
  r.spec.endTime = api::parseTime("9999-12-31T23:59:59Z").value();
  in.reservations = {r};
  auto a = planPtuAdmission(in).byReservation.at("ml/r1");
  EXPECT_EQ(a.phase, ReservationPhase::Active) << a.message;
  ASSERT_TRUE(a.nextChange);
  EXPECT_GT(*a.nextChange, in.now + std::chrono::hours(24 * 365 * 100));

  r.spec.endTime.reset();
  r.spec.startTime = api::parseTime("9999-12-31T00:00:00Z").value();
  in.reservations = {r};
  a = planPtuAdmission(in).byReservation.at("ml/r1");
  EXPECT_EQ(a.phase, ReservationPhase::Pending);
  EXPECT_EQ(a.reason, "NotStarted");
  EXPECT_EQ(a.message, "starts at 2200-01-01T00:00:00Z");
  EXPECT_EQ(billedMinutes(*r.spec.startTime, std::nullopt, in.now), 0);
}

TEST(PtuStatus, ConditionsSizingAndAccrualByTheMinute) {
  auto in = world();
  auto r = reservation("r1", "llama", 6, 1000, regional("eu-west"));
  r.spec.units = 3;
  r.spec.startTime = kT0;
  in.reservations = {r};
  auto a = planPtuAdmission(in).byReservation.at("ml/r1");
  auto st = planPtuStatus(r, a, kT0);
  EXPECT_EQ(st.phase, ReservationPhase::Active);
  EXPECT_EQ(st.reservedReplicas, 3);
  EXPECT_EQ(st.provisionedTokensPerMinute, 3000);
  EXPECT_TRUE(api::isTrue(st.conditions, "Ready"));
  EXPECT_TRUE(api::isFalse(st.conditions, "Insufficient"));
  // First accrual at activation: the minute starting at kT0 is billed (3 units / 60).
  EXPECT_EQ(st.unitHoursConsumed, "0.05");
  r.status = st;
  // 90 s later: one more started minute.
  st = planPtuStatus(r, a, kT0 + 90s);
  EXPECT_EQ(st.unitHoursConsumed, "0.1");
  r.status = st;
  st = planPtuStatus(r, a, kT0 + 100s);  // same minute: nothing more
  EXPECT_EQ(st.unitHoursConsumed, "0.1");
  r.status = st;
  // Insufficient for a while: not billed; lastAccrualTime moves on.
  PtuAdmission none = a;
  none.phase = ReservationPhase::Insufficient;
  none.reason = "InsufficientCapacity";
  none.message = "missing";
  st = planPtuStatus(r, none, kT0 + 600s);
  EXPECT_EQ(st.unitHoursConsumed, "0.1");
  EXPECT_EQ(st.reservedReplicas, 0);
  EXPECT_EQ(st.provisionedTokensPerMinute, 0);
  EXPECT_TRUE(api::isTrue(st.conditions, "Insufficient"));
  EXPECT_EQ(api::findCondition(st.conditions, "Ready")->reason, "InsufficientCapacity");
  r.status = st;
  // Active again at kT0+610: minute [600, 660) was started while not Active (billed(600)
  // is counted from lastAccrualTime), so the next bill is the minute starting at 660.
  st = planPtuStatus(r, a, kT0 + 610s);
  EXPECT_EQ(st.unitHoursConsumed, "0.1");
  r.status = st;
  st = planPtuStatus(r, a, kT0 + 660s);
  EXPECT_EQ(st.unitHoursConsumed, "0.15");
}

}  // namespace
}  // namespace waterline::planners
