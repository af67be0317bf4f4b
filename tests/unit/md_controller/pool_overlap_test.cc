// Two CapacityPools that come to share a node: both report NodeInMultiplePools, so a
// pool created, changed or deleted enqueues every other pool it shares (or shared) a
// node with, not just itself.
#include <gtest/gtest.h>

#include <set>

#include "common.h"
#include "waterline/reconcilers/capacity_pool.h"
#include "waterline/runtime/events.h"

namespace waterline::reconcilers {
namespace {

using namespace std::chrono_literals;
using testing::FakeClient;
using testsupport::eventually;
using testsupport::poolJson;
using Json = kube::Json;

Json node(const std::string& name, const std::string& pool) {
  return {{"apiVersion", "v1"},
          {"kind", "Node"},
          {"metadata",
           {{"name", name},
            {"labels",
             {{"waterline.dev/pool", pool},
              {"topology.kubernetes.io/region", "eu-west"},
              {"nvidia.com/gpu.product", "NVIDIA-H100-80GB-HBM3"},
              {"nvidia.com/gpu.count", "8"}}}}},
          {"status",
           {{"conditions", Json::array({{{"type", "Ready"}, {"status", "True"}}})},
            {"allocatable", {{"nvidia.com/gpu", "8"}}}}}};
}

// A pool selecting every eu-west node: it overlaps whatever pool selects one of them.
Json wide(const std::string& name) {
  auto p = poolJson(name, "eu-west", "EU");
  p["spec"]["nodeSelector"] = {{"matchLabels", {{"topology.kubernetes.io/region", "eu-west"}}}};
  return p;
}

TEST(PoolOverlapWatch, BothPoolsAreEnqueuedWhenAnOverlapAppearsOrGoes) {
  auto client = std::make_shared<FakeClient>();
  auto sim = std::make_shared<SimulatedTimeSource>();
  auto mk = [&](const kube::ResourceKind& k) {
    return std::make_shared<cache::Informer>(client, k, cache::InformerOptions{}, sim);
  };
  auto pools = mk(kube::kinds::CapacityPool), nodes = mk(kube::kinds::Node);
  ASSERT_TRUE(client->create(kube::kinds::CapacityPool, "", poolJson("p1", "eu-west", "EU"), {}));
  ASSERT_TRUE(client->create(kube::kinds::CapacityPool, "", poolJson("p3", "eu-west", "EU"), {}));
  ASSERT_TRUE(client->create(kube::kinds::Node, "", node("n1", "p1"), {}));
  auto n3 = node("n3", "p3");
  n3["metadata"]["labels"]["topology.kubernetes.io/region"] = "us-east";  // not eu-west
  ASSERT_TRUE(client->create(kube::kinds::Node, "", n3, {}));
  CapacityPoolDeps deps;
  deps.writer = client;
  deps.pools = pools;
  deps.nodes = nodes;
  deps.recorder = std::make_shared<runtime::FakeEventRecorder>();
  deps.time = sim;
  runtime::ControllerOptions opts;
  opts.time = sim;
  auto c = newCapacityPoolController(deps, opts);
  for (auto& i : {pools, nodes}) i->start();
  ASSERT_TRUE(eventually([&] { return pools->hasSynced() && nodes->hasSynced(); }));
  auto drain = [&] {
    std::set<std::string> keys;
    std::this_thread::sleep_for(100ms);  // handlers run on the informers' threads
    while (auto k = c->queue().tryGet()) {
      keys.insert(*k);
      c->queue().done(*k);
    }
    return keys;
  };
  drain();

  // p2 appears and selects n1, p1's node: p1 must be reconciled too (not p3).
  ASSERT_TRUE(client->create(kube::kinds::CapacityPool, "", wide("p2"), {}));
  std::set<std::string> keys;
  ASSERT_TRUE(eventually([&] {
    for (const auto& k : drain()) keys.insert(k);
    return keys.count("p2") > 0;
  }));
  EXPECT_EQ(keys, (std::set<std::string>{"p1", "p2"}));

  // p2 narrowed to a node of its own: the overlap goes, p1 must hear of it (the old
  // object is what overlapped).
  auto p2 = *client->get(kube::kinds::CapacityPool, "", "p2");
  p2["spec"]["nodeSelector"] = {{"matchLabels", {{"waterline.dev/pool", "p2"}}}};
  p2["metadata"]["generation"] = 2;
  ASSERT_TRUE(client->update(kube::kinds::CapacityPool, "", p2, {}));
  keys.clear();
  ASSERT_TRUE(eventually([&] {
    for (const auto& k : drain()) keys.insert(k);
    return keys.count("p2") > 0;
  }));
  EXPECT_EQ(keys, (std::set<std::string>{"p1", "p2"}));

  // Wide again, then deleted: p1 is enqueued both times.
  p2 = *client->get(kube::kinds::CapacityPool, "", "p2");
  p2["spec"] = wide("p2")["spec"];
  p2["metadata"]["generation"] = 3;
  ASSERT_TRUE(client->update(kube::kinds::CapacityPool, "", p2, {}));
  keys.clear();
  ASSERT_TRUE(eventually([&] {
    for (const auto& k : drain()) keys.insert(k);
    return keys.count("p1") > 0 && keys.count("p2") > 0;
  }));
  ASSERT_TRUE(client->remove(kube::kinds::CapacityPool, "", "p2"));
  keys.clear();
  ASSERT_TRUE(eventually([&] {
    for (const auto& k : drain()) keys.insert(k);
    return keys.count("p2") > 0;
  }));
  EXPECT_EQ(keys, (std::set<std::string>{"p1", "p2"})) << "the pool left behind reports the overlap gone";

  for (auto& i : {pools, nodes}) i->stop();
}

}  // namespace
}  // namespace waterline::reconcilers
