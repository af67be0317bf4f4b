// registerFleetMetrics: the rendered exposition for known objects, series removed with
// their objects, lenient reading of odd objects, and promtool's lint.
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <thread>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "fake_client.h"
#include "monitoring_support.h"
#include "waterline/reconcilers/fleet_metrics.h"

namespace waterline::reconcilers {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using Json = cache::Json;

// Objects the test hands to the collector, changeable between scrapes.
struct World {
  std::mutex mu;
  std::vector<cache::ObjectPtr> pools, deployments, reservations;

  FleetSources sources() {
    auto get = [this](std::vector<cache::ObjectPtr> World::*v) {
      return [this, v] {
        std::lock_guard g(mu);
        return this->*v;
      };
    };
    return {get(&World::pools), get(&World::deployments), get(&World::reservations)};
  }
};

cache::ObjectPtr obj(Json j) { return std::make_shared<const Json>(std::move(j)); }

Json pool() {
  return Json::parse(R"({
    "apiVersion": "waterline.dev/v1alpha1", "kind": "CapacityPool",
    "metadata": {"name": "h100-us-east"},
    "spec": {"region": "us-east", "dataZone": "US", "gpuProduct": "NVIDIA-H100-80GB-HBM3",
             "sharing": {"mode": "MIG"}},
    "status": {"nodes": 4, "readyNodes": 3,
               "gpus": {"total": 32, "allocatable": 24, "allocated": 20, "free": 4, "unhealthy": 2, "reserved": 8},
               "slices": {"total": 224, "allocatable": 168, "allocated": 150, "free": 18, "unhealthy": 14, "reserved": 56},
               "utilization": 0.8333, "fragmentation": 0.25,
               "conditions": [
                 {"type": "Ready", "status": "True", "reason": "NodesReady", "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"},
                 {"type": "Degraded", "status": "True", "reason": "GPUsUnhealthy", "message": "2 GPUs", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}
  })");
}

Json deployment() {
  return Json::parse(R"({
    "apiVersion": "waterline.dev/v1alpha1", "kind": "ModelDeployment",
    "metadata": {"name": "llama-70b", "namespace": "serving"},
    "spec": {"deploymentType": "Standard", "region": "us-east", "model": {"name": "llama-3-70b", "version": "v2"}, "replicas": 3},
    "status": {"replicas": 3, "desiredReplicas": 3, "scheduledReplicas": 2, "readyReplicas": 1, "updatedReplicas": 3,
               "placements": [{"pool": "h100-us-east", "replicas": 2, "readyReplicas": 1}],
               "conditions": [{"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable",
                               "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}
  })");
}

Json reservation() {
  return Json::parse(R"({
    "apiVersion": "waterline.dev/v1alpha1", "kind": "PTUReservation",
    "metadata": {"name": "contoso", "namespace": "serving"},
    "spec": {"deploymentRef": {"name": "llama-70b"}, "units": 50, "tokensPerMinutePerUnit": 2500,
             "scope": {"type": "Regional", "region": "us-east"}},
    "status": {"phase": "Insufficient", "provisionedTokensPerMinute": 0, "usedTokensPerMinute": 1000,
               "utilization": 0, "reservedReplicas": 1,
               "conditions": [{"type": "Insufficient", "status": "True", "reason": "InsufficientCapacity",
                               "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}
  })");
}

// The sample lines of one family in an exposition.
std::vector<std::string> lines(const std::string& text, const std::string& family) {
  std::vector<std::string> out;
  std::size_t pos = 0;
  while (pos < text.size()) {
    auto nl = text.find('\n', pos);
    std::string l = text.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
    pos = nl == std::string::npos ? text.size() : nl + 1;
    if (l.rfind(family + "{", 0) == 0 || l.rfind(family + " ", 0) == 0) out.push_back(l);
  }
  return out;
}

class FleetMetricsTest : public ::testing::Test {
 protected:
  void SetUp() override { registerFleetMetrics(reg, world.sources()); }
  metrics::Registry reg;
  World world;
};

TEST_F(FleetMetricsTest, NothingBeforeObjectsExist) {
  const std::string text = reg.serialize();
  for (const auto& n : fleetMetricNames()) {
    EXPECT_TRUE(reg.contains(n)) << n;
    EXPECT_THAT(text, Not(HasSubstr(n))) << "labelled families without samples are omitted";
  }
}

TEST_F(FleetMetricsTest, PoolSeries) {
  world.pools = {obj(pool())};
  const std::string t = reg.serialize();
  EXPECT_THAT(lines(t, "waterline_pool_info"),
              ::testing::ElementsAre(
                  R"(waterline_pool_info{pool="h100-us-east",region="us-east",data_zone="US",gpu_product="NVIDIA-H100-80GB-HBM3",sharing_mode="MIG"} 1)"));
  EXPECT_THAT(lines(t, "waterline_pool_nodes"),
              ::testing::ElementsAre(R"(waterline_pool_nodes{pool="h100-us-east",state="ready"} 3)",
                                     R"(waterline_pool_nodes{pool="h100-us-east",state="total"} 4)"));
  EXPECT_THAT(lines(t, "waterline_pool_gpus"),
              ::testing::ElementsAre(R"(waterline_pool_gpus{pool="h100-us-east",state="allocatable"} 24)",
                                     R"(waterline_pool_gpus{pool="h100-us-east",state="allocated"} 20)",
                                     R"(waterline_pool_gpus{pool="h100-us-east",state="free"} 4)",
                                     R"(waterline_pool_gpus{pool="h100-us-east",state="reserved"} 8)",
                                     R"(waterline_pool_gpus{pool="h100-us-east",state="total"} 32)",
                                     R"(waterline_pool_gpus{pool="h100-us-east",state="unhealthy"} 2)"));
  EXPECT_THAT(lines(t, "waterline_pool_gpu_slices"),
              ::testing::Contains(R"(waterline_pool_gpu_slices{pool="h100-us-east",state="free"} 18)"));
  EXPECT_EQ(lines(t, "waterline_pool_gpu_slices").size(), 6u);
  EXPECT_THAT(lines(t, "waterline_pool_allocation_ratio"),
              ::testing::ElementsAre(R"(waterline_pool_allocation_ratio{pool="h100-us-east"} 0.8333)"));
  EXPECT_THAT(lines(t, "waterline_pool_fragmentation_ratio"),
              ::testing::ElementsAre(R"(waterline_pool_fragmentation_ratio{pool="h100-us-east"} 0.25)"));
  EXPECT_THAT(
      lines(t, "waterline_pool_condition"),
      ::testing::ElementsAre(
          R"(waterline_pool_condition{pool="h100-us-east",condition="Degraded",status="True",reason="GPUsUnhealthy"} 1)",
          R"(waterline_pool_condition{pool="h100-us-east",condition="Ready",status="True",reason="NodesReady"} 1)"));
  EXPECT_THAT(t, HasSubstr("# TYPE waterline_pool_gpus gauge\n"));
}

TEST_F(FleetMetricsTest, DeploymentSeries) {
  world.deployments = {obj(deployment())};
  const std::string t = reg.serialize();
  EXPECT_THAT(lines(t, "waterline_deployment_info"),
              ::testing::ElementsAre(
                  R"(waterline_deployment_info{namespace="serving",deployment="llama-70b",type="Standard",model="llama-3-70b",model_version="v2"} 1)"));
  EXPECT_THAT(lines(t, "waterline_deployment_replicas"),
              ::testing::ElementsAre(
                  R"(waterline_deployment_replicas{namespace="serving",deployment="llama-70b",state="current"} 3)",
                  R"(waterline_deployment_replicas{namespace="serving",deployment="llama-70b",state="desired"} 3)",
                  R"(waterline_deployment_replicas{namespace="serving",deployment="llama-70b",state="ready"} 1)",
                  R"(waterline_deployment_replicas{namespace="serving",deployment="llama-70b",state="scheduled"} 2)",
                  R"(waterline_deployment_replicas{namespace="serving",deployment="llama-70b",state="spec"} 3)",
                  R"(waterline_deployment_replicas{namespace="serving",deployment="llama-70b",state="updated"} 3)"));
  EXPECT_THAT(lines(t, "waterline_deployment_pool_replicas"),
              ::testing::ElementsAre(
                  R"(waterline_deployment_pool_replicas{namespace="serving",deployment="llama-70b",pool="h100-us-east",state="current"} 2)",
                  R"(waterline_deployment_pool_replicas{namespace="serving",deployment="llama-70b",pool="h100-us-east",state="ready"} 1)"));
  EXPECT_THAT(
      lines(t, "waterline_deployment_condition"),
      ::testing::ElementsAre(
          R"(waterline_deployment_condition{namespace="serving",deployment="llama-70b",condition="Available",status="False",reason="MinimumReplicasUnavailable"} 1)"));
}

TEST_F(FleetMetricsTest, ReservationSeries) {
  world.reservations = {obj(reservation())};
  const std::string t = reg.serialize();
  EXPECT_THAT(lines(t, "waterline_reservation_info"),
              ::testing::ElementsAre(
                  R"(waterline_reservation_info{namespace="serving",reservation="contoso",deployment="llama-70b",scope="Regional"} 1)"));
  EXPECT_THAT(lines(t, "waterline_reservation_phase"),
              ::testing::ElementsAre(
                  R"(waterline_reservation_phase{namespace="serving",reservation="contoso",phase="Active"} 0)",
                  R"(waterline_reservation_phase{namespace="serving",reservation="contoso",phase="Expired"} 0)",
                  R"(waterline_reservation_phase{namespace="serving",reservation="contoso",phase="Insufficient"} 1)",
                  R"(waterline_reservation_phase{namespace="serving",reservation="contoso",phase="Pending"} 0)"));
  EXPECT_THAT(lines(t, "waterline_reservation_units"),
              ::testing::ElementsAre(R"(waterline_reservation_units{namespace="serving",reservation="contoso"} 50)"));
  EXPECT_THAT(lines(t, "waterline_reservation_used_tokens_per_minute"),
              ::testing::ElementsAre(
                  R"(waterline_reservation_used_tokens_per_minute{namespace="serving",reservation="contoso"} 1000)"));
  EXPECT_THAT(lines(t, "waterline_reservation_reserved_replicas"),
              ::testing::ElementsAre(
                  R"(waterline_reservation_reserved_replicas{namespace="serving",reservation="contoso"} 1)"));
  EXPECT_THAT(
      lines(t, "waterline_reservation_condition"),
      ::testing::ElementsAre(
          R"(waterline_reservation_condition{namespace="serving",reservation="contoso",condition="Insufficient",status="True",reason="InsufficientCapacity"} 1)"));
}

TEST_F(FleetMetricsTest, DeletedObjectsAndOldConditionReasonsLeaveNoSeries) {
  Json other = pool();
  other["metadata"]["name"] = "a100-eu";
  world.pools = {obj(pool()), obj(other)};
  world.deployments = {obj(deployment())};
  world.reservations = {obj(reservation())};
  std::string t = reg.serialize();
  EXPECT_EQ(lines(t, "waterline_pool_gpus").size(), 12u);
  EXPECT_THAT(t, HasSubstr(R"(reason="MinimumReplicasUnavailable")"));

  // The pool a100-eu and the reservation are deleted; the deployment becomes available.
  Json d = deployment();
  d["status"]["conditions"][0]["status"] = "True";
  d["status"]["conditions"][0]["reason"] = "MinimumReplicasAvailable";
  {
    std::lock_guard g(world.mu);
    world.pools = {obj(pool())};
    world.deployments = {obj(d)};
    world.reservations.clear();
  }
  t = reg.serialize();
  EXPECT_THAT(t, Not(HasSubstr("a100-eu")));
  EXPECT_EQ(lines(t, "waterline_pool_gpus").size(), 6u);
  EXPECT_THAT(t, Not(HasSubstr("waterline_reservation_")));
  EXPECT_THAT(t, Not(HasSubstr("MinimumReplicasUnavailable")));
  EXPECT_THAT(lines(t, "waterline_deployment_condition"),
              ::testing::ElementsAre(::testing::HasSubstr(R"(status="True",reason="MinimumReplicasAvailable"} 1)")));
}

TEST_F(FleetMetricsTest, ObjectsWithoutStatusOrWithOddFieldsAreReadLeniently) {
  // A pool before its first status, a deployment without spec.replicas (CRD default 1)
  // and a mistyped status, a reservation without status: no exception, partial series.
  world.pools = {obj(Json::parse(R"({"metadata": {"name": "new"}, "spec": {"region": "r"}})"))};
  world.deployments = {obj(Json::parse(
      R"({"metadata": {"name": "d", "namespace": "n"}, "spec": {}, "status": {"readyReplicas": "three", "conditions": "x"}})"))};
  world.reservations = {obj(Json::parse(R"({"metadata": {"name": "r", "namespace": "n"}, "spec": {"units": 2}})"))};
  std::string t;
  ASSERT_NO_THROW(t = reg.serialize());
  EXPECT_THAT(lines(t, "waterline_pool_info"),
              ::testing::ElementsAre(
                  R"(waterline_pool_info{pool="new",region="r",data_zone="",gpu_product="",sharing_mode="Exclusive"} 1)"));
  EXPECT_TRUE(lines(t, "waterline_pool_gpus").empty());
  EXPECT_TRUE(lines(t, "waterline_pool_nodes").empty());
  EXPECT_THAT(lines(t, "waterline_deployment_replicas"),
              ::testing::Contains(R"(waterline_deployment_replicas{namespace="n",deployment="d",state="spec"} 1)"));
  EXPECT_THAT(lines(t, "waterline_deployment_replicas"),
              ::testing::Contains(R"(waterline_deployment_replicas{namespace="n",deployment="d",state="ready"} 0)"));
  EXPECT_TRUE(lines(t, "waterline_deployment_condition").empty());
  EXPECT_THAT(lines(t, "waterline_reservation_phase"),
              ::testing::Each(::testing::EndsWith(" 0")));
  EXPECT_EQ(lines(t, "waterline_reservation_phase").size(), 4u);
}

TEST_F(FleetMetricsTest, EmptySourcesExportNothingAndSecondRegistrationThrows) {
  metrics::Registry r2;
  registerFleetMetrics(r2, FleetSources{});
  EXPECT_THAT(r2.serialize(), Not(HasSubstr("waterline_")));
  EXPECT_THROW(registerFleetMetrics(r2, FleetSources{}), std::invalid_argument);
}

using monitoring_test::run;

// The wiring main uses: the informers' stores, read at scrape time. Deletes reach the
// exposition through the watch. Waits are bounded conditions, never fixed sleeps.
TEST(FleetMetricsInformers, FromInformersExportsTheLiveStores) {
  using namespace std::chrono_literals;
  auto client = std::make_shared<waterline::testing::FakeClient>();
  auto time = RealTimeSource::instance();
  Json d = deployment();
  ASSERT_TRUE(client->create(kube::kinds::CapacityPool, "", pool()));
  ASSERT_TRUE(client->create(kube::kinds::ModelDeployment, "serving", d));
  ASSERT_TRUE(client->create(kube::kinds::PTUReservation, "serving", reservation()));
  auto pools = std::make_shared<cache::Informer>(client, kube::kinds::CapacityPool, cache::InformerOptions{}, time);
  auto deps = std::make_shared<cache::Informer>(client, kube::kinds::ModelDeployment, cache::InformerOptions{}, time);
  metrics::Registry reg;
  // No reservation informer: that kind exports nothing.
  registerFleetMetrics(reg, FleetSources::fromInformers(pools, deps, nullptr));
  pools->start();
  deps->start();
  ASSERT_TRUE(pools->waitForSync(20s));
  ASSERT_TRUE(deps->waitForSync(20s));
  std::string t = reg.serialize();
  EXPECT_EQ(lines(t, "waterline_pool_info").size(), 1u);
  EXPECT_THAT(lines(t, "waterline_deployment_replicas"),
              ::testing::Contains(R"(waterline_deployment_replicas{namespace="serving",deployment="llama-70b",state="ready"} 1)"));
  EXPECT_THAT(t, Not(HasSubstr("waterline_reservation_")));

  ASSERT_TRUE(client->remove(kube::kinds::CapacityPool, "", "h100-us-east"));
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (!lines(reg.serialize(), "waterline_pool_info").empty() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(10ms);
  t = reg.serialize();
  EXPECT_THAT(t, Not(HasSubstr("waterline_pool_"))) << "the deleted pool's series are gone";
  EXPECT_EQ(lines(t, "waterline_deployment_info").size(), 1u);
  pools->stop();
  deps->stop();
}

// The label names of a sample line, in order: name{a="x",b="y\"z"} 1 -> a, b.
std::vector<std::string> labelNames(const std::string& line) {
  std::vector<std::string> out;
  auto i = line.find('{');
  if (i == std::string::npos) return out;
  ++i;
  while (i < line.size() && line[i] != '}') {
    auto eq = line.find('=', i);
    out.push_back(line.substr(i, eq - i));
    i = eq + 2;  // past ="
    while (i < line.size() && line[i] != '"') i += line[i] == '\\' ? 2 : 1;
    ++i;  // closing quote
    if (i < line.size() && line[i] == ',') ++i;
  }
  return out;
}

TEST_F(FleetMetricsTest, EveryFamilyIsListedInDocsMetricsWithItsTypeAndLabels) {
  world.pools = {obj(pool())};
  world.deployments = {obj(deployment())};
  world.reservations = {obj(reservation())};
  const std::string t = reg.serialize();
  const auto doc = monitoring_test::loadMetricsDoc();
  ASSERT_EQ(fleetMetricNames().size(), 19u);
  for (const auto& n : fleetMetricNames()) {
    SCOPED_TRACE(n);
    ASSERT_TRUE(doc.has(n)) << "no row in docs/metrics.md";
    const auto& row = doc.rows.at(n);
    EXPECT_EQ(row.type, "gauge");
    EXPECT_EQ(row.source, "controllers/reconcilers/src/fleet_metrics.cc");
    EXPECT_THAT(t, HasSubstr("# TYPE " + n + " gauge\n"));
    const auto ls = lines(t, n);
    ASSERT_FALSE(ls.empty()) << "the fixtures should give every family a sample";
    for (const auto& l : ls) EXPECT_EQ(labelNames(l), row.labels) << l;
  }
}

TEST_F(FleetMetricsTest, PromtoolLintsTheExposition) {
  if (!monitoring_test::havePromtool()) GTEST_SKIP() << "promtool not installed";
  Json weird = pool();
  weird["metadata"]["name"] = "we\"ird\\pool";
  world.pools = {obj(pool()), obj(weird)};
  world.deployments = {obj(deployment())};
  world.reservations = {obj(reservation())};
  const std::string text = reg.serialize();
  const auto path = std::filesystem::temp_directory_path() /
                    ("waterline-fleet-" + std::to_string(::getpid()) + ".prom");
  {
    std::ofstream f(path);
    f << text;
  }
  auto [rc, out] = run("promtool check metrics < '" + path.string() + "'");
  std::filesystem::remove(path);
  EXPECT_EQ(rc, 0) << out << "\n--- exposition ---\n" << text;
  EXPECT_EQ(out, "") << "\n--- exposition ---\n" << text;
}

}  // namespace
}  // namespace waterline::reconcilers
