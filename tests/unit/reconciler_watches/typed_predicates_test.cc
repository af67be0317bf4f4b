// The watches' predicates over ModelDeployment, PTUReservation and CapacityPool objects
// compare decoded api values (typed_watches.h): an update that changes only a field a
// predicate ignores enqueues nothing, one that changes a compared field does, and one
// that sets an absent field to its CRD default enqueues nothing (the decoded objects are
// equal). An update to an object that does not decode passes (its reconciler reports it).
#include <gtest/gtest.h>

#include <atomic>
#include <set>

#include "common.h"
#include "waterline/reconcilers/autoscaler.h"
#include "waterline/reconcilers/capacity_pool.h"
#include "waterline/reconcilers/model_deployment.h"
#include "waterline/reconcilers/ptu_reservation.h"
#include "waterline/reconcilers/routing_publisher.h"
#include "waterline/runtime/events.h"

namespace waterline::reconcilers {
namespace {

using namespace std::chrono_literals;
using testing::FakeClient;
using testsupport::deploymentJson;
using testsupport::eventually;
using testsupport::poolJson;
using Json = kube::Json;
using Keys = std::set<std::string>;

Json reservationJson(const std::string& ns, const std::string& name, const std::string& deployment) {
  return Json::parse(R"({
    "apiVersion": "waterline.dev/v1alpha1", "kind": "PTUReservation",
    "metadata": {"name": ")" + name + R"(", "namespace": ")" + ns + R"(", "generation": 1},
    "spec": {"deploymentRef": {"name": ")" + deployment + R"("}, "units": 2, "tokensPerMinutePerUnit": 2500,
             "scope": {"type": "Global"}}})");
}

// Informers over a fake client on simulated time, and the keys a controller's handlers
// enqueued for the events delivered so far.
struct Harness {
  std::shared_ptr<FakeClient> client = std::make_shared<FakeClient>();
  std::shared_ptr<SimulatedTimeSource> sim = std::make_shared<SimulatedTimeSource>();
  std::vector<cache::InformerPtr> all;
  std::atomic<int> delivered{0};

  cache::InformerPtr informer(const kube::ResourceKind& k) {
    all.push_back(std::make_shared<cache::Informer>(client, k, cache::InformerOptions{}, sim));
    return all.back();
  }
  runtime::ControllerOptions options() {
    runtime::ControllerOptions o;
    o.time = sim;
    return o;
  }
  // After the controller is built: handlers run in the order they were added, one event
  // at a time, so once this last handler has counted an event the controller's are done.
  void start() {
    cache::EventHandler counter{[&](const cache::ObjectPtr&) { ++delivered; },
                                [&](const cache::ObjectPtr&, const cache::ObjectPtr&) { ++delivered; },
                                [&](const cache::ObjectPtr&, bool) { ++delivered; }};
    for (auto& i : all) i->addEventHandler(counter);
    for (auto& i : all) i->start();
    ASSERT_TRUE(eventually([&] {
      for (auto& i : all)
        if (!i->hasSynced()) return false;
      return true;
    }));
  }
  // Waits for the `events`-th event, then takes every queued key.
  Keys drain(runtime::Controller& c, int events) {
    Keys keys;
    EXPECT_TRUE(eventually([&] { return delivered.load() >= events; })) << delivered.load() << " events";
    EXPECT_EQ(delivered.load(), events);
    while (auto k = c.queue().tryGet()) {
      keys.insert(*k);
      c.queue().done(*k);
    }
    return keys;
  }
  void patch(const kube::ResourceKind& k, const std::string& ns, const std::string& name, const Json& body) {
    ASSERT_TRUE(client->patch(k, ns, name, kube::PatchType::Merge, body.dump()));
  }
  ~Harness() {
    for (auto& i : all) i->stop();
  }
};

TEST(TypedPredicates, AutoscalerComparesTheDecodedScalingInputs) {
  Harness h;
  auto mds = h.informer(kube::kinds::ModelDeployment), ptus = h.informer(kube::kinds::PTUReservation);
  ASSERT_TRUE(h.client->create(kube::kinds::ModelDeployment, "team", deploymentJson("team", "a"), {}));
  ASSERT_TRUE(h.client->create(kube::kinds::PTUReservation, "team", reservationJson("team", "r", "a"), {}));
  AutoscalerDeps deps;
  deps.writer = h.client;
  deps.deployments = mds;
  deps.reservations = ptus;
  deps.recorder = std::make_shared<runtime::FakeEventRecorder>();
  deps.time = h.sim;
  metrics::Registry registry;
  deps.registry = &registry;
  auto c = newAutoscalerController(deps, h.options());
  h.start();
  ASSERT_EQ(h.drain(*c, 2), Keys{"team/a"}) << "the adds";

  h.patch(kube::kinds::ModelDeployment, "team", "a", {{"spec", {{"template", {{"spec", {{"image", "vllm:v2"}}}}}}}});
  EXPECT_EQ(h.drain(*c, 3), Keys{}) << "the image is no scaling input";
  h.patch(kube::kinds::ModelDeployment, "team", "a", {{"spec", {{"replicas", nullptr}}}});
  EXPECT_EQ(h.drain(*c, 4), Keys{"team/a"}) << "replicas 2 -> absent (its default, 1)";
  h.patch(kube::kinds::ModelDeployment, "team", "a", {{"spec", {{"replicas", 1}}}});
  EXPECT_EQ(h.drain(*c, 5), Keys{}) << "absent -> 1, its CRD default: the decoded specs are equal";
  h.patch(kube::kinds::ModelDeployment, "team", "a", {{"spec", {{"maxReplicas", 4}}}});
  EXPECT_EQ(h.drain(*c, 6), Keys{"team/a"});
  h.patch(kube::kinds::ModelDeployment, "team", "a", {{"spec", {{"replicas", "two"}}}});
  EXPECT_EQ(h.drain(*c, 7), Keys{"team/a"}) << "does not decode: passes";
  h.patch(kube::kinds::ModelDeployment, "team", "a", {{"spec", {{"replicas", 1}}}});
  EXPECT_EQ(h.drain(*c, 8), Keys{"team/a"}) << "fixed: passes";

  h.patch(kube::kinds::PTUReservation, "team", "r", {{"status", {{"usedTokensPerMinute", 1000}}}});
  EXPECT_EQ(h.drain(*c, 9), Keys{}) << "usage is not the floor";
  h.patch(kube::kinds::PTUReservation, "team", "r", {{"status", {{"reservedReplicas", 0}}}});
  EXPECT_EQ(h.drain(*c, 10), Keys{}) << "absent -> 0, its default";
  h.patch(kube::kinds::PTUReservation, "team", "r", {{"status", {{"phase", "Active"}, {"reservedReplicas", 1}}}});
  EXPECT_EQ(h.drain(*c, 11), Keys{"team/a"}) << "the floor changed: the reservation's deployment";
}

TEST(TypedPredicates, RoutingPublisherComparesThePoolsDecodedSpecAndReadiness) {
  Harness h;
  auto mds = h.informer(kube::kinds::ModelDeployment), pools = h.informer(kube::kinds::CapacityPool),
       pods = h.informer(kube::kinds::Pod);
  ASSERT_TRUE(h.client->create(kube::kinds::ModelDeployment, "team", deploymentJson("team", "a"), {}));
  ASSERT_TRUE(h.client->create(kube::kinds::CapacityPool, "", poolJson("p1", "eu-west", "EU"), {}));
  RoutingPublisherDeps deps;
  deps.hub = h.client;
  deps.hubReader = h.client;
  deps.deployments = mds;
  deps.pools = pools;
  deps.workerPods = pods;
  deps.time = h.sim;
  auto c = newRoutingPublisherController(deps, h.options());
  h.start();
  ASSERT_EQ(h.drain(*c, 2), Keys{"team/a"}) << "the adds";

  h.patch(kube::kinds::CapacityPool, "", "p1", {{"status", {{"gpus", {{"total", 8}, {"allocatable", 8}}}}}});
  EXPECT_EQ(h.drain(*c, 3), Keys{}) << "GPU counts are in no entry";
  h.patch(kube::kinds::CapacityPool, "", "p1", {{"spec", {{"routing", {{"maxUtilization", nullptr}}}}}});
  EXPECT_EQ(h.drain(*c, 4), Keys{"team/a"}) << "maxUtilization 0.8 -> absent (its default, 0.9)";
  h.patch(kube::kinds::CapacityPool, "", "p1", {{"spec", {{"routing", {{"maxUtilization", 0.9}}}}}});
  EXPECT_EQ(h.drain(*c, 5), Keys{}) << "absent -> 0.9, its CRD default: the decoded specs are equal";
  h.patch(kube::kinds::CapacityPool, "", "p1",
          {{"status", {{"conditions", Json::array({{{"type", "Ready"}, {"status", "True"}, {"reason", "Ready"}, {"message", ""},
                                                     {"lastTransitionTime", "2026-01-01T00:00:00Z"}}})}}}});
  EXPECT_EQ(h.drain(*c, 6), Keys{"team/a"}) << "the pool became Ready";
  h.patch(kube::kinds::CapacityPool, "", "p1",
          {{"status", {{"conditions", Json::array({{{"type", "Ready"}, {"status", "True"}, {"reason", "Ready"}, {"message", ""},
                                                     {"lastTransitionTime", "2026-01-02T00:00:00Z"}}})}}}});
  EXPECT_EQ(h.drain(*c, 7), Keys{}) << "still Ready";
}

TEST(TypedPredicates, PtuReservationsComparePoolCapacityAndPhasesDecoded) {
  Harness h;
  auto ptus = h.informer(kube::kinds::PTUReservation), mds = h.informer(kube::kinds::ModelDeployment),
       pools = h.informer(kube::kinds::CapacityPool);
  ASSERT_TRUE(h.client->create(kube::kinds::ModelDeployment, "team", deploymentJson("team", "a"), {}));
  ASSERT_TRUE(h.client->create(kube::kinds::CapacityPool, "", poolJson("p1", "eu-west", "EU"), {}));
  ASSERT_TRUE(h.client->create(kube::kinds::PTUReservation, "team", reservationJson("team", "r", "a"), {}));
  PtuReservationDeps deps;
  deps.writer = h.client;
  deps.reservations = ptus;
  deps.deployments = mds;
  deps.pools = pools;
  deps.recorder = std::make_shared<runtime::FakeEventRecorder>();
  deps.time = h.sim;
  auto c = newPtuReservationController(deps, h.options());
  h.start();
  ASSERT_EQ(h.drain(*c, 3), Keys{"team/r"}) << "the adds";

  h.patch(kube::kinds::CapacityPool, "", "p1", {{"status", {{"gpus", {{"allocated", 3}}}}}});
  EXPECT_EQ(h.drain(*c, 4), Keys{}) << "allocated GPUs are not capacity";
  h.patch(kube::kinds::CapacityPool, "", "p1", {{"status", {{"gpus", {{"allocatable", 8}}}}}});
  EXPECT_EQ(h.drain(*c, 5), Keys{"team/r"}) << "allocatable GPUs are";
  h.patch(kube::kinds::CapacityPool, "", "p1", {{"spec", {{"sharing", nullptr}}}});
  EXPECT_EQ(h.drain(*c, 6), Keys{}) << "sharing {mode: Exclusive} -> absent, its CRD default";
  h.patch(kube::kinds::CapacityPool, "", "p1", {{"spec", {{"reservableFraction", 0.5}}}});
  EXPECT_EQ(h.drain(*c, 7), Keys{"team/r"});

  ASSERT_TRUE(h.client->create(kube::kinds::PTUReservation, "team", reservationJson("team", "r2", "a"), {}));
  EXPECT_EQ(h.drain(*c, 8), Keys{"team/r2"}) << "its own key only (another's create releases nothing)";
  h.patch(kube::kinds::PTUReservation, "team", "r2", {{"status", {{"usedTokensPerMinute", 1000}}}});
  EXPECT_EQ(h.drain(*c, 9), Keys{}) << "usage releases nothing";
  h.patch(kube::kinds::PTUReservation, "team", "r2", {{"status", {{"phase", "Active"}}}});
  EXPECT_EQ(h.drain(*c, 10), (Keys{"team/r", "team/r2"})) << "r2 took capacity: every reservation";

  h.patch(kube::kinds::ModelDeployment, "team", "a", {{"metadata", {{"generation", 2}}}});
  EXPECT_EQ(h.drain(*c, 11), (Keys{"team/r", "team/r2"})) << "the reservations of the changed deployment";
}

TEST(TypedPredicates, CapacityPoolsCompareDecodedHoldsAndIgnoreInvalidDeployments) {
  Harness h;
  auto pools = h.informer(kube::kinds::CapacityPool), nodes = h.informer(kube::kinds::Node),
       pods = h.informer(kube::kinds::Pod), mds = h.informer(kube::kinds::ModelDeployment),
       ptus = h.informer(kube::kinds::PTUReservation);
  ASSERT_TRUE(h.client->create(kube::kinds::CapacityPool, "", poolJson("p1", "eu-west", "EU"), {}));
  ASSERT_TRUE(h.client->create(kube::kinds::CapacityPool, "", poolJson("p2", "us-east", "US"), {}));
  ASSERT_TRUE(h.client->create(kube::kinds::ModelDeployment, "team", deploymentJson("team", "a"), {}));
  ASSERT_TRUE(h.client->create(kube::kinds::PTUReservation, "team", reservationJson("team", "r", "a"), {}));
  CapacityPoolDeps deps;
  deps.writer = h.client;
  deps.pools = pools;
  deps.nodes = nodes;
  deps.workerPods = pods;
  deps.deployments = mds;
  deps.reservations = ptus;
  deps.recorder = std::make_shared<runtime::FakeEventRecorder>();
  deps.time = h.sim;
  auto c = newCapacityPoolController(deps, h.options());
  h.start();
  ASSERT_EQ(h.drain(*c, 4), (Keys{"p1", "p2"})) << "the adds";

  h.patch(kube::kinds::PTUReservation, "team", "r", {{"status", {{"usedTokensPerMinute", 1000}}}});
  EXPECT_EQ(h.drain(*c, 5), Keys{}) << "usage holds nothing";
  h.patch(kube::kinds::PTUReservation, "team", "r",
          {{"status", {{"phase", "Active"}, {"placements", Json::array({{{"pool", "p1"}, {"gpus", 1}}})}}}});
  EXPECT_EQ(h.drain(*c, 6), (Keys{"p1", "p2"})) << "the reservation holds GPUs";
  h.patch(kube::kinds::PTUReservation, "team", "r",
          {{"status", {{"placements", Json::array({{{"pool", "p1"}, {"replicas", 0}, {"gpus", 1}}})}}}});
  EXPECT_EQ(h.drain(*c, 7), Keys{}) << "placements[0].replicas absent -> 0, its default: the same hold";

  // A deployment that does not decode adds no shape to the demand, whatever its GPU
  // request: creating or deleting it enqueues no pool.
  auto bad = deploymentJson("team", "bad");
  bad["spec"]["gpu"]["count"] = 2;
  bad["spec"]["replicas"] = "two";
  ASSERT_TRUE(h.client->create(kube::kinds::ModelDeployment, "team", bad, {}));
  EXPECT_EQ(h.drain(*c, 8), Keys{}) << "an invalid deployment adds no shape";
  ASSERT_TRUE(h.client->remove(kube::kinds::ModelDeployment, "team", "bad"));
  EXPECT_EQ(h.drain(*c, 9), Keys{}) << "nor takes one away";
}

Json waitingJson(const std::string& name) {
  auto j = deploymentJson("team", name);
  j["status"] = {{"conditions", Json::array({{{"type", "Scheduled"},
                                              {"status", "False"},
                                              {"reason", "InsufficientCapacity"},
                                              {"message", "need 1 more GPU"},
                                              {"lastTransitionTime", "2025-01-01T00:00:00Z"}}})}};
  return j;
}

TEST(TypedPredicates, ModelDeploymentsCompareDecodedHoldsAndWakeOnlyDecodedWaiters) {
  Harness h;
  metrics::Registry registry;
  auto pools = h.informer(kube::kinds::CapacityPool), nodes = h.informer(kube::kinds::Node),
       pods = h.informer(kube::kinds::Pod), mds = h.informer(kube::kinds::ModelDeployment),
       ptus = h.informer(kube::kinds::PTUReservation);
  ASSERT_TRUE(h.client->create(kube::kinds::ModelDeployment, "team", deploymentJson("team", "a"), {}));
  ASSERT_TRUE(h.client->create(kube::kinds::ModelDeployment, "team", waitingJson("waiting"), {}));
  ASSERT_TRUE(h.client->create(kube::kinds::PTUReservation, "team", reservationJson("team", "r", "a"), {}));
  ModelDeploymentDeps deps;
  deps.writer = h.client;
  deps.deployments = mds;
  deps.pools = pools;
  deps.nodes = nodes;
  deps.capacity =
      std::make_shared<capacity::CapacityCache>(capacity::CapacityCacheSources{pools, nodes, pods, ptus}, h.sim);
  deps.reservations = ptus;
  deps.recorder = std::make_shared<runtime::FakeEventRecorder>();
  deps.time = h.sim;
  deps.repairs = std::make_shared<RepairTracker>(registry);
  auto opts = h.options();
  opts.registry = &registry;
  auto c = newModelDeploymentController(deps, opts);
  h.start();
  ASSERT_EQ(h.drain(*c, 3), (Keys{"team/a", "team/waiting"})) << "the adds";

  h.patch(kube::kinds::PTUReservation, "team", "r", {{"status", {{"usedTokensPerMinute", 1000}}}});
  EXPECT_EQ(h.drain(*c, 4), Keys{}) << "usage is no hold";
  h.patch(kube::kinds::PTUReservation, "team", "r",
          {{"status", {{"phase", "Active"}, {"placements", Json::array({{{"pool", "p1"}, {"gpus", 1}}})}}}});
  EXPECT_EQ(h.drain(*c, 5), (Keys{"team/a", "team/waiting"})) << "the hold changed: its deployment and the waiting";
  h.patch(kube::kinds::PTUReservation, "team", "r",
          {{"status", {{"placements", Json::array({{{"pool", "p1"}, {"replicas", 0}, {"gpus", 1}}})}}}});
  EXPECT_EQ(h.drain(*c, 6), Keys{}) << "placements[0].replicas absent -> 0, its default: the same hold";

  // A deployment that does not decode is invalid: freed capacity does not help it, so it
  // is not woken with the waiting ones, whatever its stale Scheduled condition says.
  auto bad = waitingJson("bad");
  bad["spec"]["replicas"] = "two";
  ASSERT_TRUE(h.client->create(kube::kinds::ModelDeployment, "team", bad, {}));
  EXPECT_EQ(h.drain(*c, 7), Keys{"team/bad"}) << "its own create";
  h.patch(kube::kinds::PTUReservation, "team", "r", {{"status", {{"phase", "Insufficient"}}}});
  EXPECT_EQ(h.drain(*c, 8), (Keys{"team/a", "team/waiting"})) << "not team/bad";
}

}  // namespace
}  // namespace waterline::reconcilers
