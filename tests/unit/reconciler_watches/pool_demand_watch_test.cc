// The CapacityPool controller's watch on ModelDeployments: every pool's fragmentation
// depends on the set of demand shapes, so only a deployment that adds a shape nobody
// else has, or takes the last one away, enqueues the pools.
#include <gtest/gtest.h>

#include <atomic>
#include <set>

#include "common.h"
#include "waterline/reconcilers/capacity_pool.h"
#include "waterline/runtime/events.h"

namespace waterline::reconcilers {
namespace {

using namespace std::chrono_literals;
using testing::FakeClient;
using testsupport::deploymentJson;
using testsupport::eventually;
using testsupport::poolJson;
using Json = kube::Json;

TEST(PoolDemandWatch, OnlyANewOrVanishedShapeEnqueuesEveryPool) {
  auto client = std::make_shared<FakeClient>();
  auto sim = std::make_shared<SimulatedTimeSource>();
  auto mk = [&](const kube::ResourceKind& k) {
    return std::make_shared<cache::Informer>(client, k, cache::InformerOptions{}, sim);
  };
  auto pools = mk(kube::kinds::CapacityPool), nodes = mk(kube::kinds::Node), pods = mk(kube::kinds::Pod),
       deployments = mk(kube::kinds::ModelDeployment);
  ASSERT_TRUE(client->create(kube::kinds::CapacityPool, "", poolJson("p1", "eu-west", "EU"), {}));
  ASSERT_TRUE(client->create(kube::kinds::CapacityPool, "", poolJson("p2", "us-east", "US"), {}));
  ASSERT_TRUE(client->create(kube::kinds::ModelDeployment, "team", deploymentJson("team", "a"), {}));
  CapacityPoolDeps deps;
  deps.writer = client;
  deps.pools = pools;
  deps.nodes = nodes;
  deps.workerPods = pods;
  deps.deployments = deployments;
  deps.recorder = std::make_shared<runtime::FakeEventRecorder>();
  deps.time = sim;
  runtime::ControllerOptions opts;
  opts.time = sim;
  auto c = newCapacityPoolController(deps, opts);
  // Handlers run on the informers' threads, in the order they were added, one event at a
  // time: once this last handler has seen an event, the controller's handlers are done
  // with it. drain(n) waits for the n-th event of the pool and deployment informers.
  std::atomic<int> delivered{0};
  cache::EventHandler counter{[&](const cache::ObjectPtr&) { ++delivered; },
                              [&](const cache::ObjectPtr&, const cache::ObjectPtr&) { ++delivered; },
                              [&](const cache::ObjectPtr&, bool) { ++delivered; }};
  pools->addEventHandler(counter);
  deployments->addEventHandler(counter);
  for (auto& i : {pools, nodes, pods, deployments}) i->start();
  ASSERT_TRUE(eventually([&] {
    return pools->hasSynced() && nodes->hasSynced() && pods->hasSynced() && deployments->hasSynced();
  }));
  auto drain = [&](int events) {
    std::set<std::string> keys;
    EXPECT_TRUE(eventually([&] { return delivered.load() >= events; })) << delivered.load() << " events";
    EXPECT_EQ(delivered.load(), events);
    while (auto k = c->queue().tryGet()) {
      keys.insert(*k);
      c->queue().done(*k);
    }
    return keys;
  };
  ASSERT_EQ(drain(3), (std::set<std::string>{"p1", "p2"})) << "the initial adds (two pools, one deployment)";

  ASSERT_TRUE(client->create(kube::kinds::ModelDeployment, "team", deploymentJson("team", "b"), {}));
  EXPECT_TRUE(drain(4).empty()) << "b has a's shape: the set of shapes did not change";

  auto big = deploymentJson("team", "c");
  big["spec"]["gpu"]["count"] = 2;
  ASSERT_TRUE(client->create(kube::kinds::ModelDeployment, "team", big, {}));
  EXPECT_EQ(drain(5), (std::set<std::string>{"p1", "p2"})) << "a new shape";

  ASSERT_TRUE(client->remove(kube::kinds::ModelDeployment, "team", "b"));
  EXPECT_TRUE(drain(6).empty()) << "a still has b's shape";

  ASSERT_TRUE(client->remove(kube::kinds::ModelDeployment, "team", "c"));
  EXPECT_EQ(drain(7), (std::set<std::string>{"p1", "p2"})) << "the last of a shape went";

  for (auto& i : {pools, nodes, pods, deployments}) i->stop();
}

}  // namespace
}  // namespace waterline::reconcilers
