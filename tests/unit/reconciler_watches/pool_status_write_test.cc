// CapacityPool status writes: a status whose only change is in its counts is written at
// most every countsWriteInterval per pool (the latest counts, after the interval); the
// first change, and a change of nodes or conditions, is written at once.
#include <gtest/gtest.h>

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

Json node(const std::string& name, int gpus, bool ready) {
  return {{"apiVersion", "v1"},
          {"kind", "Node"},
          {"metadata",
           {{"name", name},
            {"labels",
             {{"waterline.dev/pool", "p1"},
              {"topology.kubernetes.io/region", "eu-west"},
              {"nvidia.com/gpu.product", "NVIDIA-H100-80GB-HBM3"},
              {"nvidia.com/gpu.count", std::to_string(gpus)}}}}},
          {"status",
           {{"conditions", Json::array({{{"type", "Ready"}, {"status", ready ? "True" : "False"}}})},
            {"allocatable", {{"nvidia.com/gpu", std::to_string(gpus)}}}}}};
}

TEST(PoolStatusWrites, CountsOnlyChangesAreCoalescedConditionsAreNot) {
  auto client = std::make_shared<FakeClient>();
  auto sim = std::make_shared<SimulatedTimeSource>(SystemTime{std::chrono::seconds(1'750'000'000)});
  auto mk = [&](const kube::ResourceKind& k) {
    auto i = std::make_shared<cache::Informer>(client, k, cache::InformerOptions{}, sim);
    i->start();
    return i;
  };
  ASSERT_TRUE(client->create(kube::kinds::CapacityPool, "", poolJson("p1", "eu-west", "EU"), {}));
  ASSERT_TRUE(client->create(kube::kinds::Node, "", node("n1", 8, true), {}));
  ASSERT_TRUE(client->create(kube::kinds::Node, "", node("n2", 8, true), {}));
  CapacityPoolDeps d;
  d.writer = client;
  d.pools = mk(kube::kinds::CapacityPool);
  d.nodes = mk(kube::kinds::Node);
  d.recorder = std::make_shared<runtime::FakeEventRecorder>();
  d.time = sim;
  d.countsWriteInterval = 2s;
  ASSERT_TRUE(eventually([&] { return d.pools->hasSynced() && d.nodes->hasSynced(); }));
  CapacityPoolReconciler rec(d);
  auto get = [&] { return *client->get(kube::kinds::CapacityPool, "", "p1"); };
  auto rv = [&] { return get()["metadata"].value("resourceVersion", ""); };
  // Reconciles as the controller does: once the caches show the last writes.
  auto reconcile = [&](const std::string& nodeName, const std::string& nodeRv) {
    EXPECT_TRUE(eventually([&] {
      auto p = d.pools->store().get("p1");
      auto n = d.nodes->store().get(nodeName);
      return p && (*p)["metadata"].value("resourceVersion", "") == rv() && n &&
             (*n)["metadata"].value("resourceVersion", "") == nodeRv;
    }));
    auto r = rec.reconcile({"", "p1"});
    EXPECT_TRUE(r.has_value());
    return r.has_value() ? r->requeueAfter : Duration{-1};
  };
  auto setNode = [&](const std::string& name, int gpus, bool ready) {
    auto cur = client->get(kube::kinds::Node, "", name);
    Json n = node(name, gpus, ready);
    n["metadata"]["resourceVersion"] = (*cur)["metadata"]["resourceVersion"];
    auto r = client->update(kube::kinds::Node, "", n);
    EXPECT_TRUE(r);
    return (*r)["metadata"].value("resourceVersion", "");
  };
  const auto n1rv = (*client->get(kube::kinds::Node, "", "n1"))["metadata"].value("resourceVersion", "");
  reconcile("n1", n1rv);
  ASSERT_EQ(get()["status"]["gpus"].value("total", 0), 16) << get()["status"].dump();
  const auto first = rv();

  // Counts only (n1 goes from 8 to 4 GPUs), within the interval: not written; comes back.
  auto after = reconcile("n1", setNode("n1", 4, true));
  EXPECT_EQ(rv(), first);
  EXPECT_EQ(after, 2s);
  sim->advance(1500ms);
  after = reconcile("n1", setNode("n1", 2, true));
  EXPECT_EQ(rv(), first) << "still within the interval";
  EXPECT_EQ(after, 500ms);
  sim->advance(500ms);
  reconcile("n1", (*client->get(kube::kinds::Node, "", "n1"))["metadata"].value("resourceVersion", ""));
  EXPECT_NE(rv(), first);
  EXPECT_EQ(get()["status"]["gpus"].value("total", 0), 10) << "the latest counts: 2 + 8";
  const auto second = rv();

  // A node no longer ready changes readyNodes and the conditions: written at once.
  sim->advance(100ms);
  reconcile("n2", setNode("n2", 8, false));
  EXPECT_NE(rv(), second);
  EXPECT_EQ(get()["status"].value("readyNodes", 0), 1) << get()["status"].dump();
  for (auto& i : {d.pools, d.nodes}) i->stop();
}

}  // namespace
}  // namespace waterline::reconcilers
