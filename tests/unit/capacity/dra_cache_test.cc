// capacity::CapacityCache in DRA mode, against real informers on the in-memory
// FakeClient: a pool's nodes take their GPUs from ResourceSlices; claims of others hold
// GPUs (no new work, nobody moved); a device that leaves its slice is a fault; Waterline's
// own claims count through their worker's assignment; orphan and unreserved claims are
// reported; allocation mode DevicePlugin ignores slices.
#include <gtest/gtest.h>

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

// Labels say 2 GPUs; the slice says otherwise: DRA mode must believe the slice.
Json nodeJson(const std::string& name, const std::string& pool) {
  return {{"apiVersion", "v1"},
          {"kind", "Node"},
          {"metadata",
           {{"name", name},
            {"labels",
             {{"waterline.dev/pool", pool},
              {"nvidia.com/gpu.product", "NVIDIA-H100-80GB-HBM3"},
              {"nvidia.com/gpu.count", "2"}}}}},
          {"status",
           {{"conditions", Json::array({{{"type", "Ready"}, {"status", "True"}}})},
            {"allocatable", {{"nvidia.com/gpu", "2"}}}}}};
}

Json sliceJson(const std::string& node, int64_t gen, const std::vector<int>& minors) {
  Json devs = Json::array();
  for (int i : minors)
    devs.push_back({{"name", "gpu-" + std::to_string(i)},
                    {"attributes", {{"type", {{"string", "gpu"}}}, {"productName", {{"string", "NVIDIA H100 80GB HBM3"}}}}},
                    {"capacity", {{"memory", {{"value", "80Gi"}}}}}});
  return {{"apiVersion", "resource.k8s.io/v1"},
          {"kind", "ResourceSlice"},
          {"metadata", {{"name", node + "-slice"}}},
          {"spec",
           {{"driver", "gpu.nvidia.com"},
            {"pool", {{"name", node}, {"generation", gen}, {"resourceSliceCount", 1}}},
            {"nodeName", node},
            {"devices", devs}}}};
}

Json claimJson(const std::string& name, const std::string& node, const std::vector<int>& gpus,
               const std::string& worker = "", const std::string& reservedUid = "") {
  Json results = Json::array();
  for (int g : gpus)
    results.push_back({{"request", "gpu"}, {"driver", "gpu.nvidia.com"}, {"pool", node}, {"device", "gpu-" + std::to_string(g)}});
  Json labels = Json::object();
  if (!worker.empty())
    labels = {{"app.kubernetes.io/managed-by", "waterline"}, {"waterline.dev/deployment", "d"}, {"waterline.dev/worker", worker}};
  Json status = {{"allocation", {{"devices", {{"results", results}}}}}};
  if (!reservedUid.empty()) status["reservedFor"] = Json::array({{{"resource", "pods"}, {"name", worker}, {"uid", reservedUid}}});
  return {{"apiVersion", "resource.k8s.io/v1"},
          {"kind", "ResourceClaim"},
          {"metadata", {{"name", name}, {"namespace", "team"}, {"labels", labels}}},
          {"spec",
           {{"devices",
             {{"requests", Json::array({{{"name", "gpu"},
                                         {"exactly", {{"deviceClassName", "gpu.nvidia.com"}, {"count", gpus.size()}}}}})}}}}},
          {"status", status}};
}

Json workerJson(const std::string& name, const std::string& node, std::vector<int> gpus, const std::string& uid) {
  scheduling::Assignment a;
  a.node = node;
  a.gpus = std::move(gpus);
  return {{"apiVersion", "v1"},
          {"kind", "Pod"},
          {"metadata",
           {{"name", name},
            {"namespace", "team"},
            {"uid", uid},
            {"labels", {{"waterline.dev/deployment", "d"}, {"app.kubernetes.io/managed-by", "waterline"}}},
            {"annotations", {{"waterline.dev/gpu-assignment", scheduling::encodeAssignment(a)}}}}},
          {"spec", {{"nodeName", node}}},
          {"status", {{"phase", "Running"}}}};
}

struct Fixture {
  std::shared_ptr<FakeClient> client = std::make_shared<FakeClient>();
  std::shared_ptr<SimulatedTimeSource> sim = std::make_shared<SimulatedTimeSource>();
  std::vector<cache::InformerPtr> all;
  std::shared_ptr<CapacityCache> cc;
  explicit Fixture(bool dra = true) {
    auto mk = [&](const kube::ResourceKind& k) {
      auto i = std::make_shared<cache::Informer>(client, k, cache::InformerOptions{}, sim);
      all.push_back(i);
      return i;
    };
    CapacityCacheSources s{mk(kube::kinds::CapacityPool), mk(kube::kinds::Node), mk(kube::kinds::Pod), nullptr};
    if (dra) {
      s.resourceSlices = mk(kube::kinds::ResourceSlice);
      s.resourceClaims = mk(kube::kinds::ResourceClaim);
    }
    cc = std::make_shared<CapacityCache>(s, sim);
  }
  void start() {
    for (auto& i : all) i->start();
    ASSERT_TRUE(eventually([&] {
      for (auto& i : all)
        if (!i->hasSynced()) return false;
      return true;
    }));
  }
  ~Fixture() {
    cc.reset();
    for (auto& i : all) i->stop();
  }
  planners::NodeView node(const std::string& n) {
    auto txn = cc->begin();
    const auto* v = txn.node(n);
    return v ? *v : planners::NodeView{};
  }
  int idle() {
    auto txn = cc->begin();
    return planners::idleGpus(txn.inventory(), txn.inventory().findPool("p1"));
  }
};

Json pool(const std::string& allocation) {
  Json p = poolJson("p1", "eu-west", "EU");
  if (!allocation.empty()) p["spec"]["allocation"] = allocation;
  return p;
}

TEST(CapacityCacheDra, SlicesAreTheGpusAndOthersClaimsHoldThem) {
  Fixture f;
  ASSERT_TRUE(f.client->create(kube::kinds::CapacityPool, "", pool(""), {}));  // automatic
  ASSERT_TRUE(f.client->create(kube::kinds::Node, "", nodeJson("n1", "p1"), {}));
  ASSERT_TRUE(f.client->create(kube::kinds::ResourceSlice, "", sliceJson("n1", 1, {0, 1, 2, 3, 4, 5, 6, 7}), {}));
  ASSERT_TRUE(f.client->create(kube::kinds::ResourceClaim, "team", claimJson("trainer", "n1", {0, 1, 2}), {}));
  f.start();
  if (::testing::Test::HasFatalFailure()) return;
  ASSERT_TRUE(eventually([&] { return f.cc->stats().resourceClaims == 1 && f.cc->stats().resourceSlices == 1; }));
  auto v = f.node("n1");
  EXPECT_TRUE(v.dra);
  EXPECT_EQ(v.gpuCount, 8);  // the slice, not the label's 2
  EXPECT_EQ(v.heldGpus, (std::vector<int>{0, 1, 2}));
  EXPECT_TRUE(v.faultyGpus().empty());  // held by others is no fault
  EXPECT_EQ(f.idle(), 5);
  {
    auto txn = f.cc->begin();
    EXPECT_TRUE(txn.draNode("n1"));
    EXPECT_FALSE(txn.draAllocation("n1", {2}).has_value());  // the trainer's
    auto a = txn.draAllocation("n1", {3, 4});
    ASSERT_TRUE(a.has_value()) << a.error();
    EXPECT_EQ(a->results[1].device, "gpu-4");
  }
  // The trainer's claim goes: its GPUs come back.
  ASSERT_TRUE(f.client->remove(kube::kinds::ResourceClaim, "team", "trainer", {}));
  ASSERT_TRUE(eventually([&] { return f.idle() == 8; }));
  // A device leaves its slice (a new generation): a hole, and a fault.
  {
    auto cur = f.client->get(kube::kinds::ResourceSlice, "", "n1-slice");
    ASSERT_TRUE(cur);
    Json next = sliceJson("n1", 2, {0, 1, 2, 3, 5, 6, 7});
    next["metadata"]["resourceVersion"] = (*cur)["metadata"]["resourceVersion"];
    ASSERT_TRUE(f.client->update(kube::kinds::ResourceSlice, "", next, {}));
  }
  ASSERT_TRUE(eventually([&] { return f.idle() == 7; }));
  v = f.node("n1");
  EXPECT_EQ(v.gpuCount, 8);
  EXPECT_EQ(v.faultyGpus(), std::vector<int>{4});
}

TEST(CapacityCacheDra, OwnClaimsCountThroughTheirWorkerOrphansAndUnreservedAreReported) {
  Fixture f;
  ASSERT_TRUE(f.client->create(kube::kinds::CapacityPool, "", pool("DRA"), {}));
  ASSERT_TRUE(f.client->create(kube::kinds::Node, "", nodeJson("n1", "p1"), {}));
  ASSERT_TRUE(f.client->create(kube::kinds::ResourceSlice, "", sliceJson("n1", 1, {0, 1, 2, 3}), {}));
  // w1: pod and claim, reserved. w2: pod and claim, not reserved yet. ghost: claim only.
  auto p1 = f.client->create(kube::kinds::Pod, "team", workerJson("w1", "n1", {0}, "u1"), {});
  ASSERT_TRUE(p1);
  const std::string u1 = (*p1)["metadata"]["uid"];
  ASSERT_TRUE(f.client->create(kube::kinds::ResourceClaim, "team", claimJson("w1-gpu", "n1", {0}, "w1", u1), {}));
  auto p2 = f.client->create(kube::kinds::Pod, "team", workerJson("w2", "n1", {1}, "u2"), {});
  ASSERT_TRUE(p2);
  const std::string u2 = (*p2)["metadata"]["uid"];
  ASSERT_TRUE(f.client->create(kube::kinds::ResourceClaim, "team", claimJson("w2-gpu", "n1", {1}, "w2"), {}));
  ASSERT_TRUE(f.client->create(kube::kinds::ResourceClaim, "team", claimJson("ghost-gpu", "n1", {2}, "ghost"), {}));
  f.start();
  if (::testing::Test::HasFatalFailure()) return;
  ASSERT_TRUE(eventually([&] { return f.cc->stats().resourceClaims == 3; }));
  auto v = f.node("n1");
  EXPECT_EQ(v.heldGpus, std::vector<int>{2});  // only the ghost's: w1 and w2 hold theirs as workers
  {
    auto txn = f.cc->begin();
    EXPECT_TRUE(txn.snapshot().conflicts.empty());
    auto orphans = txn.orphanClaims("team");
    ASSERT_EQ(orphans.size(), 1u);
    EXPECT_EQ(orphans[0].name, "ghost-gpu");
    EXPECT_EQ(orphans[0].worker, "ghost");
    EXPECT_EQ(orphans[0].deployment, "d");
    auto unreserved = txn.unreservedClaims("team");
    ASSERT_EQ(unreserved.size(), 1u);
    EXPECT_EQ(unreserved[0].name, "w2-gpu");
    EXPECT_EQ(unreserved[0].podUid, u2);
    EXPECT_TRUE(txn.orphanClaims("other").empty());
  }
  EXPECT_EQ(f.idle(), 1);  // 4 - w1 - w2 - ghost
  // w1's pod goes: its claim is an orphan now, and holds its GPU until deleted.
  ASSERT_TRUE(f.client->remove(kube::kinds::Pod, "team", "w1", {}));
  ASSERT_TRUE(eventually([&] {
    auto txn = f.cc->begin();
    return txn.orphanClaims("team").size() == 2;
  }));
  EXPECT_EQ(f.node("n1").heldGpus, (std::vector<int>{0, 2}));
  EXPECT_EQ(f.idle(), 1);
  // An assumed worker makes its claim its own (between the claim's create and the pod's).
  {
    auto txn = f.cc->begin();
    txn.assume(workerJson("ghost", "n1", {2}, ""));
    EXPECT_EQ(txn.orphanClaims("team").size(), 1u);
  }
  EXPECT_EQ(f.node("n1").heldGpus, std::vector<int>{0});
}

TEST(CapacityCacheDra, DevicePluginModeAndDraOffIgnoreSlices) {
  for (bool draInformers : {true, false}) {
    Fixture f(draInformers);
    ASSERT_TRUE(f.client->create(kube::kinds::CapacityPool, "", pool(draInformers ? "DevicePlugin" : ""), {}));
    ASSERT_TRUE(f.client->create(kube::kinds::Node, "", nodeJson("n1", "p1"), {}));
    ASSERT_TRUE(f.client->create(kube::kinds::ResourceSlice, "", sliceJson("n1", 1, {0, 1, 2, 3}), {}));
    f.start();
    if (::testing::Test::HasFatalFailure()) return;
    auto v = f.node("n1");
    EXPECT_FALSE(v.dra);
    EXPECT_EQ(v.gpuCount, 2);  // the labels
    EXPECT_EQ(f.idle(), 2);
    auto txn = f.cc->begin();
    EXPECT_FALSE(txn.draNode("n1"));
  }
}

}  // namespace
}  // namespace waterline::capacity
