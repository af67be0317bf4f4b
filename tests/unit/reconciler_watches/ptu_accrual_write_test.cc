// PTUReservation status writes while Active: a status that only moved by accrual is
// written at most every accrualWriteInterval, and the accrued count stays exact.
#include <gtest/gtest.h>

#include "common.h"
#include "waterline/api/ptu_reservation.h"
#include "waterline/reconcilers/ptu_reservation.h"

namespace waterline::reconcilers {
namespace {

using namespace std::chrono_literals;
using testing::FakeClient;
using testsupport::deploymentJson;
using testsupport::eventually;
using testsupport::poolJson;
using Json = kube::Json;

TEST(PtuAccrualWrites, OnlyAccrualIsWrittenEveryIntervalAndStaysExact) {
  auto client = std::make_shared<FakeClient>();
  auto sim = std::make_shared<SimulatedTimeSource>(SystemTime{std::chrono::seconds(1'750'000'020)});
  auto mk = [&](const kube::ResourceKind& k) {
    auto i = std::make_shared<cache::Informer>(client, k, cache::InformerOptions{}, sim);
    i->start();
    return i;
  };
  auto pool = poolJson("p-eu", "eu-west", "EU");
  pool["status"] = {{"gpus", {{"total", 16}, {"allocatable", 16}, {"allocated", 0}, {"free", 16}}}};
  ASSERT_TRUE(client->create(kube::kinds::CapacityPool, "", pool, {}));
  ASSERT_TRUE(client->create(kube::kinds::ModelDeployment, "team", deploymentJson("team", "llama"), {}));
  Json res = {{"apiVersion", "waterline.dev/v1alpha1"},
              {"kind", "PTUReservation"},
              {"metadata", {{"name", "r1"}, {"namespace", "team"}, {"generation", 1}, {"creationTimestamp", "2025-06-15T15:07:00Z"}}},
              {"spec", {{"deploymentRef", {{"name", "llama"}}}, {"units", 6}, {"tokensPerMinutePerUnit", 10000},
                        {"scope", {{"type", "Global"}}}}}};
  ASSERT_TRUE(client->create(kube::kinds::PTUReservation, "team", res, {}));
  PtuReservationDeps d;
  d.writer = client;
  d.reservations = mk(kube::kinds::PTUReservation);
  d.deployments = mk(kube::kinds::ModelDeployment);
  d.pools = mk(kube::kinds::CapacityPool);
  d.recorder = std::make_shared<runtime::FakeEventRecorder>();
  d.time = sim;
  d.accrualWriteInterval = 5min;
  auto reservations = d.reservations;
  ASSERT_TRUE(eventually([&] {
    return reservations->hasSynced() && d.deployments->hasSynced() && d.pools->hasSynced() &&
           reservations->store().list().size() == 1;
  }));
  PtuReservationReconciler rec(d);
  auto status = [&] { return (*client->get(kube::kinds::PTUReservation, "team", "r1"))["status"]; };
  auto rv = [&] { return (*client->get(kube::kinds::PTUReservation, "team", "r1"))["metadata"]["resourceVersion"]; };
  // Reconciles as the controller does: the cache must show the last write first.
  auto reconcile = [&] {
    const auto want = rv();
    ASSERT_TRUE(eventually([&] { return (*reservations->store().get("team/r1"))["metadata"]["resourceVersion"] == want; }));
    auto r = rec.reconcile({"team", "r1"});
    ASSERT_TRUE(r.has_value()) << r.error().message;
  };
  reconcile();  // finalizer
  reconcile();  // admission: Active, the first started minute billed
  ASSERT_EQ(status().value("phase", ""), "Active") << status().dump();
  const std::string first = status().value("unitHoursConsumed", "");
  EXPECT_EQ(first, "0.1") << "6 units × 1 started minute";
  const auto written = rv();
  for (int i = 0; i < 4; ++i) {  // four more minutes: accrual only, not written yet
    sim->advance(60s);
    reconcile();
  }
  EXPECT_EQ(rv(), written) << "only accrual moved, within the interval: no write";
  EXPECT_EQ(status().value("unitHoursConsumed", ""), first);
  sim->advance(60s);  // 5 minutes since the last write
  reconcile();
  EXPECT_NE(rv(), written);
  EXPECT_EQ(status().value("unitHoursConsumed", ""), "0.6") << "every started minute, none lost: 6 × 6 / 60";
  for (auto& i : {d.reservations, d.deployments, d.pools}) i->stop();
}

}  // namespace
}  // namespace waterline::reconcilers
