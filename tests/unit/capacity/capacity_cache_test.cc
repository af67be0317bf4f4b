// capacity::CapacityCache against real informers on the in-memory FakeClient:
//  - its event-fed inventory always equals planners::buildSnapshot of the objects the
//    cluster holds (random pod, node and pool changes), and worker and node changes are
//    applied without rebuilding;
//  - assume / forget / expire of creates, expected deletions and drains;
//  - holds are applied for a Txn only; conflicting claims wait and apply when freed.
#include <gtest/gtest.h>

#include <random>

#include "common.h"
#include "waterline/capacity/capacity_cache.h"
#include "waterline/planners/inventory_snapshot.h"
#include "waterline/scheduling/annotation.h"

namespace waterline::capacity {
namespace {

using namespace std::chrono_literals;
using reconcilers::testsupport::eventually;
using reconcilers::testsupport::poolJson;
using testing::FakeClient;
using Json = kube::Json;

Json nodeJson(const std::string& name, const std::string& pool, int gpus) {
  return {{"apiVersion", "v1"},
          {"kind", "Node"},
          {"metadata",
           {{"name", name},
            {"labels",
             {{"waterline.dev/pool", pool},
              {"nvidia.com/gpu.product", "NVIDIA-H100-80GB-HBM3"},
              {"nvidia.com/gpu.count", std::to_string(gpus)}}}}},
          {"status",
           {{"conditions", Json::array({{{"type", "Ready"}, {"status", "True"}}})},
            {"allocatable", {{"nvidia.com/gpu", std::to_string(gpus)}}}}}};
}

Json workerJson(const std::string& name, const std::string& deployment, const std::string& node,
                std::vector<int> gpus) {
  scheduling::Assignment a;
  a.node = node;
  a.kind = scheduling::ShapeKind::Whole;
  a.gpus = std::move(gpus);
  return {{"apiVersion", "v1"},
          {"kind", "Pod"},
          {"metadata",
           {{"name", name},
            {"namespace", "team"},
            {"labels",
             {{"waterline.dev/deployment", deployment}, {"app.kubernetes.io/managed-by", "waterline"}}},
            {"annotations", {{"waterline.dev/gpu-assignment", scheduling::encodeAssignment(a)}}}}},
          {"spec", {{"nodeName", node}}},
          {"status", {{"phase", "Running"}}}};
}

struct Fixture {
  std::shared_ptr<FakeClient> client = std::make_shared<FakeClient>();
  std::shared_ptr<SimulatedTimeSource> sim = std::make_shared<SimulatedTimeSource>();
  cache::InformerPtr pools, nodes, pods, ptus;
  std::shared_ptr<CapacityCache> cc;

  Fixture() {
    auto mk = [&](const kube::ResourceKind& k) {
      return std::make_shared<cache::Informer>(client, k, cache::InformerOptions{}, sim);
    };
    pools = mk(kube::kinds::CapacityPool);
    nodes = mk(kube::kinds::Node);
    pods = mk(kube::kinds::Pod);
    ptus = mk(kube::kinds::PTUReservation);
    cc = std::make_shared<CapacityCache>(CapacityCacheSources{pools, nodes, pods, ptus}, sim);
  }
  void start() {
    for (auto& i : {pools, nodes, pods, ptus}) i->start();
    ASSERT_TRUE(eventually([&] { return pools->hasSynced() && nodes->hasSynced() && pods->hasSynced() && ptus->hasSynced(); }));
  }
  ~Fixture() {
    cc.reset();
    for (auto& i : {pools, nodes, pods, ptus}) i->stop();
  }

  // What a fresh process would build from the objects the cluster holds now.
  planners::Snapshot reference() {
    const auto pools = client->list(kube::kinds::CapacityPool, "", {});
    const auto nodes = client->list(kube::kinds::Node, "", {});
    const auto pods = client->list(kube::kinds::Pod, "", {});
    planners::SnapshotInput in;
    for (const auto& o : pools->items)
      if (auto p = api::CapacityPool::fromJson(o)) in.pools.push_back(*p);
    for (const auto& o : nodes->items) in.nodes.push_back(planners::NodeView::fromJson(o));
    for (const auto& o : pods->items) in.pods.push_back(planners::WorkerPod::fromJson(o));
    return planners::buildSnapshot(in);
  }
  static std::string describe(const planners::Snapshot& s) {
    std::string out = s.inventory.fingerprint();
    for (const auto& [node, pool] : s.nodePool) out += "\n" + node + "->" + pool;
    for (const auto& [pool, a] : planners::allocationByPool(s.inventory))
      out += "\nalloc " + pool + " " + std::to_string(a.gpus) + "/" + std::to_string(a.slices);
    for (auto pid : s.inventory.poolsByName())
      out += "\nidle " + s.inventory.pool(pid).spec.name + " " + std::to_string(planners::idleGpus(s.inventory, pid));
    for (const auto& c : s.conflicts) out += "\nconflict " + c.worker;
    return out;
  }
  std::string cached() {
    auto txn = cc->begin();
    EXPECT_TRUE(txn.inventory().checkInvariants().empty());
    return describe(txn.snapshot());
  }
  // The cache converges on the reference (events are delivered on informer threads).
  ::testing::AssertionResult converges() {
    std::string want, got;
    bool ok = eventually([&] {
      want = describe(reference());
      got = cached();
      return want == got;
    });
    if (ok) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << "cache:\n" << got << "\nreference:\n" << want;
  }
};

TEST(CapacityCache, FollowsRandomChangesWithoutRebuilding) {
  Fixture f;
  ASSERT_TRUE(f.client->create(kube::kinds::CapacityPool, "", poolJson("p1", "eu-west", "EU"), {}));
  ASSERT_TRUE(f.client->create(kube::kinds::CapacityPool, "", poolJson("p2", "us-east", "US"), {}));
  const int kNodes = 12;
  for (int i = 0; i < kNodes; ++i)
    ASSERT_TRUE(f.client->create(kube::kinds::Node, "", nodeJson("n" + std::to_string(i), i % 2 ? "p1" : "p2", 8), {}));
  f.start();
  if (::testing::Test::HasFatalFailure()) return;
  ASSERT_TRUE(f.converges());
  const auto rebuildsAtStart = f.cc->stats().rebuilds;

  std::mt19937 rng(20261207);
  auto pick = [&](int n) { return int(std::uniform_int_distribution<int>(0, n - 1)(rng)); };
  std::map<std::string, std::vector<int>> used;  // node -> GPUs held (by the pods below)
  std::map<std::string, std::pair<std::string, std::vector<int>>> live;  // pod -> (node, gpus)
  int seq = 0;
  for (int step = 0; step < 120; ++step) {
    const int op = pick(10);
    if (op < 5 || live.empty()) {  // a worker appears on free GPUs
      const std::string node = "n" + std::to_string(pick(kNodes));
      std::vector<int> freeGpus;
      for (int g = 0; g < 8; ++g)
        if (std::find(used[node].begin(), used[node].end(), g) == used[node].end()) freeGpus.push_back(g);
      const int want = 1 + pick(2);
      if (int(freeGpus.size()) < want) continue;
      std::vector<int> gpus(freeGpus.begin(), freeGpus.begin() + want);
      const std::string name = "w" + std::to_string(seq++);
      ASSERT_TRUE(f.client->create(kube::kinds::Pod, "team", workerJson(name, "d" + std::to_string(pick(3)), node, gpus), {}));
      used[node].insert(used[node].end(), gpus.begin(), gpus.end());
      live[name] = {node, gpus};
    } else if (op < 7) {  // a worker goes, or ends (Failed: holds nothing any more)
      auto it = std::next(live.begin(), pick(int(live.size())));
      const auto [node, gpus] = it->second;
      if (op == 5) {
        ASSERT_TRUE(f.client->remove(kube::kinds::Pod, "team", it->first, {}));
      } else {
        auto p = *f.client->get(kube::kinds::Pod, "team", it->first);
        p["status"]["phase"] = "Failed";
        ASSERT_TRUE(f.client->update(kube::kinds::Pod, "team", p, {}));
      }
      std::erase_if(used[node], [&](int g) { return std::find(gpus.begin(), gpus.end(), g) != gpus.end(); });
      live.erase(it);
    } else if (op == 7) {  // a node is cordoned or uncordoned
      auto n = *f.client->get(kube::kinds::Node, "", "n" + std::to_string(pick(kNodes)));
      const bool was = n.contains("spec") && n["spec"].is_object() && n["spec"].value("unschedulable", false);
      n["spec"]["unschedulable"] = !was;
      ASSERT_TRUE(f.client->update(kube::kinds::Node, "", n, {}));
    } else if (op == 8) {  // a GPU is marked unhealthy, or healthy again
      auto n = *f.client->get(kube::kinds::Node, "", "n" + std::to_string(pick(kNodes)));
      auto& ann = n["metadata"]["annotations"];
      if (ann.is_object() && ann.contains("waterline.dev/unhealthy-gpus")) ann.erase("waterline.dev/unhealthy-gpus");
      else ann["waterline.dev/unhealthy-gpus"] = std::to_string(pick(8));
      ASSERT_TRUE(f.client->update(kube::kinds::Node, "", n, {}));
    } else {  // a heartbeat: nothing capacity depends on changes
      auto n = *f.client->get(kube::kinds::Node, "", "n" + std::to_string(pick(kNodes)));
      n["status"]["heartbeat"] = step;
      ASSERT_TRUE(f.client->update(kube::kinds::Node, "", n, {}));
    }
    ASSERT_TRUE(f.converges()) << "after step " << step;
  }
  EXPECT_GT(f.cc->stats().podEvents, 60u);
  EXPECT_EQ(f.cc->stats().rebuilds, rebuildsAtStart) << "worker and node changes must not rebuild the inventory";

  // A pool's spec change is structural: one rebuild, same answer as a fresh process.
  auto p = *f.client->get(kube::kinds::CapacityPool, "", "p1");
  p["spec"]["nodeSelector"]["matchLabels"]["waterline.dev/pool"] = "p2";  // p1 now selects p2's nodes too
  ASSERT_TRUE(f.client->update(kube::kinds::CapacityPool, "", p, {}));
  EXPECT_TRUE(f.converges());
  EXPECT_GT(f.cc->stats().rebuilds, rebuildsAtStart);
  // A pool's status write is not.
  const auto before = f.cc->stats().rebuilds;
  p = *f.client->get(kube::kinds::CapacityPool, "", "p2");
  p["status"]["nodes"] = 6;
  ASSERT_TRUE(f.client->update(kube::kinds::CapacityPool, "", p, {}));
  EXPECT_TRUE(f.converges());
  EXPECT_EQ(f.cc->stats().rebuilds, before);
}

TEST(CapacityCache, NodesJoinAndLeaveIncrementally) {
  Fixture f;
  ASSERT_TRUE(f.client->create(kube::kinds::CapacityPool, "", poolJson("p1", "eu-west", "EU"), {}));
  f.start();
  if (::testing::Test::HasFatalFailure()) return;
  ASSERT_TRUE(f.converges());
  const auto rebuilds = f.cc->stats().rebuilds;
  ASSERT_TRUE(f.client->create(kube::kinds::Node, "", nodeJson("a", "p1", 4), {}));
  ASSERT_TRUE(f.client->create(kube::kinds::Node, "", nodeJson("b", "p1", 8), {}));
  ASSERT_TRUE(f.client->create(kube::kinds::Node, "", nodeJson("c", "other", 8), {}));  // in no pool
  ASSERT_TRUE(f.converges());
  ASSERT_TRUE(f.client->create(kube::kinds::Pod, "team", workerJson("w", "d", "b", {0, 1}), {}));
  ASSERT_TRUE(f.converges());
  ASSERT_TRUE(f.client->remove(kube::kinds::Node, "", "a", {}));  // empty: leaves in place
  ASSERT_TRUE(f.converges());
  EXPECT_EQ(f.cc->stats().rebuilds, rebuilds);
  // A node with a worker goes: its claim names an unknown node (a conflict, as a fresh
  // process reports it), which the rebuild settles.
  ASSERT_TRUE(f.client->remove(kube::kinds::Node, "", "b", {}));
  ASSERT_TRUE(f.converges());
  {
    auto txn = f.cc->begin();
    ASSERT_EQ(txn.snapshot().conflicts.size(), 1u);
    EXPECT_EQ(txn.snapshot().conflicts[0].worker, "team/w");
  }
  // It comes back: the claim applies again without a rebuild.
  const auto after = f.cc->stats().rebuilds;
  ASSERT_TRUE(f.client->create(kube::kinds::Node, "", nodeJson("b", "p1", 8), {}));
  ASSERT_TRUE(f.converges());
  EXPECT_EQ(f.cc->stats().rebuilds, after);
  auto txn = f.cc->begin();
  EXPECT_TRUE(txn.snapshot().conflicts.empty());
  EXPECT_NE(txn.inventory().worker("team/w"), nullptr);
}

TEST(CapacityCache, AssumeForgetAndExpire) {
  Fixture f;
  ASSERT_TRUE(f.client->create(kube::kinds::CapacityPool, "", poolJson("p1", "eu-west", "EU"), {}));
  ASSERT_TRUE(f.client->create(kube::kinds::Node, "", nodeJson("n1", "p1", 8), {}));
  f.start();
  if (::testing::Test::HasFatalFailure()) return;
  ASSERT_TRUE(f.converges());
  auto idle = [&] {
    auto txn = f.cc->begin();
    return planners::idleGpus(txn.inventory(), txn.inventory().findPool("p1"));
  };
  // Assumed before the create: the GPUs are taken and the worker is listed.
  {
    auto txn = f.cc->begin();
    txn.assume(workerJson("a", "d", "n1", {0, 1}));
    txn.assume(workerJson("b", "d", "n1", {2}));
    txn.assume(workerJson("c", "d", "n1", {3}));
    EXPECT_EQ(txn.workersOf("team", "d").size(), 3u);
  }
  EXPECT_EQ(f.cc->stats().assumed, 3u);
  EXPECT_EQ(idle(), 4);
  // a: created and seen by the watch (no longer an expectation, still holds its GPUs).
  ASSERT_TRUE(f.client->create(kube::kinds::Pod, "team", workerJson("a", "d", "n1", {0, 1}), {}));
  ASSERT_TRUE(eventually([&] { return f.cc->stats().assumed == 2; }));
  EXPECT_EQ(idle(), 4);
  // b: its create failed.
  f.cc->forget("team/b");
  EXPECT_EQ(f.cc->stats().assumed, 1u);
  EXPECT_EQ(idle(), 5);
  // c: never seen; after the assume timeout its GPU goes back.
  f.sim->advance(4min);
  EXPECT_EQ(idle(), 5);
  f.sim->advance(2min);
  EXPECT_EQ(idle(), 6);
  EXPECT_EQ(f.cc->stats().assumed, 0u);
  EXPECT_EQ(f.cc->stats().expiredAssumed, 1u);
  // a is still there, once.
  auto txn = f.cc->begin();
  EXPECT_EQ(txn.workersOf("team", "d").size(), 1u);
  EXPECT_TRUE(txn.snapshot().conflicts.empty());
}

TEST(CapacityCache, ExpectedDeletionsAndDrainsUntilTheWatchShowsThem) {
  Fixture f;
  ASSERT_TRUE(f.client->create(kube::kinds::CapacityPool, "", poolJson("p1", "eu-west", "EU"), {}));
  ASSERT_TRUE(f.client->create(kube::kinds::Node, "", nodeJson("n1", "p1", 8), {}));
  ASSERT_TRUE(f.client->create(kube::kinds::Pod, "team", workerJson("a", "d", "n1", {0}), {}));
  ASSERT_TRUE(f.client->create(kube::kinds::Pod, "team", workerJson("b", "d", "n1", {1}), {}));
  f.start();
  if (::testing::Test::HasFatalFailure()) return;
  ASSERT_TRUE(f.converges());
  auto view = [&](const std::string& name) {
    auto txn = f.cc->begin();
    for (const auto& w : txn.workersOf("team", "d"))
      if (w.name == name) return w;
    return planners::WorkerPod{};
  };
  const std::string uid = view("a").uid;
  ASSERT_FALSE(uid.empty());
  f.cc->expectDeletion(uid);
  const SystemTime since = f.sim->systemTime();
  f.cc->expectDrain("team/b", since);
  EXPECT_TRUE(view("a").deleting);
  ASSERT_TRUE(view("b").drainingSince.has_value());
  EXPECT_EQ(*view("b").drainingSince, since);
  // The expectations lapse when nothing confirms them.
  f.sim->advance(3min);
  EXPECT_FALSE(view("a").deleting);
  EXPECT_FALSE(view("b").drainingSince.has_value());
  // The watch confirms one: it stays as the watch says, and the expectation is gone.
  f.cc->expectDeletion(uid);
  ASSERT_TRUE(f.client->remove(kube::kinds::Pod, "team", "a", {}));
  ASSERT_TRUE(eventually([&] { return f.cc->stats().expectedDeletions == 0; }));
  EXPECT_TRUE(view("a").name.empty());
}

TEST(CapacityCache, HoldsApplyForATxnOnly) {
  Fixture f;
  ASSERT_TRUE(f.client->create(kube::kinds::CapacityPool, "", poolJson("p1", "eu-west", "EU"), {}));
  ASSERT_TRUE(f.client->create(kube::kinds::Node, "", nodeJson("n1", "p1", 8), {}));
  Json ptu = {{"apiVersion", "waterline.dev/v1alpha1"},
              {"kind", "PTUReservation"},
              {"metadata", {{"name", "r"}, {"namespace", "team"}}},
              {"spec", {{"deploymentRef", {{"name", "d"}}}}},
              {"status",
               {{"phase", "Active"}, {"placements", Json::array({{{"pool", "p1"}, {"replicas", 2}, {"gpus", 2.0}}})}}}};
  ASSERT_TRUE(f.client->create(kube::kinds::PTUReservation, "team", ptu, {}));
  f.start();
  if (::testing::Test::HasFatalFailure()) return;
  ASSERT_TRUE(eventually([&] { return !f.cc->begin().snapshot().holds.empty(); }));
  {
    auto txn = f.cc->begin();
    ASSERT_EQ(txn.snapshot().holds.size(), 1u);
    EXPECT_EQ(txn.snapshot().holds[0].reservedGpus, 2);
    EXPECT_EQ(txn.inventory().reservations().size(), 1u);
    EXPECT_EQ(txn.holds().size(), 1u);
  }
  {
    auto txn = f.cc->begin(TxnOptions::withoutHolds());
    EXPECT_TRUE(txn.inventory().reservations().empty()) << "holds outlived their Txn";
    EXPECT_TRUE(txn.snapshot().holds.empty());
  }
  // A reconciler's own just-decided placements replace the cached ones.
  TxnOptions o;
  o.holdOverride = {"team/r", {{"team/r", "team/d", "p1", 4, 4.0}}};
  auto txn = f.cc->begin(o);
  ASSERT_EQ(txn.snapshot().holds.size(), 1u);
  EXPECT_EQ(txn.snapshot().holds[0].reservedGpus, 4);
}

TEST(CapacityCache, AConflictingClaimWaitsAndAppliesWhenFreed) {
  Fixture f;
  ASSERT_TRUE(f.client->create(kube::kinds::CapacityPool, "", poolJson("p1", "eu-west", "EU"), {}));
  ASSERT_TRUE(f.client->create(kube::kinds::Node, "", nodeJson("n1", "p1", 8), {}));
  f.start();
  if (::testing::Test::HasFatalFailure()) return;
  ASSERT_TRUE(f.converges());  // built once; from here on events apply one by one
  ASSERT_TRUE(f.client->create(kube::kinds::Pod, "team", workerJson("first", "d", "n1", {0, 1}), {}));
  ASSERT_TRUE(eventually([&] { return f.cc->stats().podEvents >= 1; }));
  ASSERT_TRUE(f.client->create(kube::kinds::Pod, "team", workerJson("second", "e", "n1", {1, 2}), {}));
  ASSERT_TRUE(eventually([&] { return f.cc->stats().conflicts == 1; }));
  {
    auto txn = f.cc->begin();
    ASSERT_EQ(txn.snapshot().conflicts.size(), 1u);
    EXPECT_EQ(txn.snapshot().conflicts[0].worker, "team/second");
    EXPECT_EQ(txn.snapshot().conflicts[0].kind, scheduling::Conflict::Kind::Occupied);
    EXPECT_EQ(txn.inventory().worker("team/second"), nullptr);
  }
  ASSERT_TRUE(f.client->remove(kube::kinds::Pod, "team", "first", {}));
  ASSERT_TRUE(eventually([&] { return f.cc->stats().conflicts == 0; }));
  auto txn = f.cc->begin();
  EXPECT_NE(txn.inventory().worker("team/second"), nullptr);
  EXPECT_EQ(txn.inventory().worker("team/first"), nullptr);
}

}  // namespace
}  // namespace waterline::capacity
