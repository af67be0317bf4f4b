// GPU and node faults: how a Node's taints and waterline.dev/unhealthy-gpus annotation
// become unhealthy GPUs in the inventory and the pool status, how the ModelDeployment
// planner moves workers off them (replacement first, then drain) and replaces workers on
// broken nodes, and the per-deployment repair backoff.
#include <gtest/gtest.h>

#include <algorithm>

#include "waterline/api/keys.h"
#include "waterline/planners/deployment.h"
#include "waterline/planners/inventory_snapshot.h"
#include "waterline/planners/nodes.h"
#include "waterline/planners/pool_status.h"
#include "waterline/planners/repair.h"
#include "waterline/scheduling/annotation.h"

namespace waterline::planners {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

const SystemTime kNow = SystemTime{} + std::chrono::hours(24 * 365 * 55);
constexpr const char* kH100 = "NVIDIA-H100-80GB-HBM3";

api::CapacityPool pool(const std::string& name = "h100") {
  json j = {{"apiVersion", "waterline.dev/v1alpha1"},
            {"kind", "CapacityPool"},
            {"metadata", {{"name", name}, {"generation", 1}}},
            {"spec",
             {{"region", "eu-west"},
              {"dataZone", "EU"},
              {"gpuProduct", kH100},
              {"nodeSelector", {{"matchLabels", {{"topology.kubernetes.io/region", "eu-west"}}}}}}}};
  auto p = api::CapacityPool::fromJson(j);
  EXPECT_TRUE(p) << p.error();
  return *p;
}

json nodeJson(const std::string& name, int gpus = 8) {
  return {{"metadata",
           {{"name", name},
            {"labels",
             {{"topology.kubernetes.io/region", "eu-west"},
              {"nvidia.com/gpu.product", kH100},
              {"nvidia.com/gpu.count", std::to_string(gpus)},
              {"nvidia.com/gpu.memory", "81559"}}}}},
          {"status",
           {{"conditions", json::array({{{"type", "Ready"}, {"status", "True"}}})},
            {"allocatable", {{"nvidia.com/gpu", std::to_string(gpus)}}}}}};
}

json withTaint(json n, const std::string& key, const std::string& effect) {
  n["spec"]["taints"].push_back({{"key", key}, {"value", "unhealthy"}, {"effect", effect}});
  return n;
}

json withUnhealthyGpus(json n, const std::string& list) {
  n["metadata"]["annotations"][std::string(kUnhealthyGpusAnnotation)] = list;
  return n;
}

api::ModelDeployment deployment(const std::string& name, int replicas, int gpus, json extra = json::object()) {
  json spec = {{"model", {{"name", "meta-llama/Llama-3.1-8B-Instruct"}, {"version", "v1"}}},
               {"region", "eu-west"},
               {"template", {{"spec", {{"image", "vllm/vllm-openai:v0.6.3"}}}}},
               {"gpu", {{"count", gpus}}},
               {"replicas", replicas}};
  spec.update(extra);
  json j = {{"apiVersion", "waterline.dev/v1alpha1"},
            {"kind", "ModelDeployment"},
            {"metadata", {{"name", name}, {"namespace", "llm"}, {"uid", "uid-" + name}, {"generation", 1}}},
            {"spec", spec}};
  auto d = api::ModelDeployment::fromJson(j);
  EXPECT_TRUE(d) << d.error();
  return *d;
}

WorkerPod created(const PodToCreate& c, bool ready = true) {
  json p = c.pod;
  p["metadata"]["uid"] = "uid-" + c.name;
  p["metadata"]["creationTimestamp"] = api::formatTime(kNow - 100s);
  p["status"] = {{"phase", "Running"},
                 {"conditions", json::array({{{"type", "Ready"}, {"status", ready ? "True" : "False"}}})}};
  return WorkerPod::fromJson(p);
}

struct World {
  std::vector<api::CapacityPool> pools = {pool()};
  std::vector<json> nodeObjs = {nodeJson("n0"), nodeJson("n1")};
  std::vector<WorkerPod> pods;
  std::optional<SystemTime> hold;
  std::set<std::string> unhealthy;

  std::vector<NodeView> nodes() const {
    std::vector<NodeView> v;
    for (const auto& n : nodeObjs) v.push_back(NodeView::fromJson(n));
    return v;
  }
  json& node(const std::string& name) {
    for (auto& n : nodeObjs)
      if (n["metadata"]["name"] == name) return n;
    throw std::runtime_error("no node " + name);
  }
  DeploymentPlan plan(const api::ModelDeployment& d, SystemTime now = kNow) {
    auto snap = buildSnapshot({pools, nodes(), pods});
    DeploymentPlanInput in;
    in.deployment = &d;
    in.pods = pods;
    in.nodes = nodes();
    in.inventory = &snap.inventory;
    in.repairHoldUntil = hold;
    in.unhealthyWorkers = unhealthy;
    return planDeployment(in, now);
  }
  // Plans and applies: creates appear (ready), drains are marked, removals disappear.
  DeploymentPlan step(const api::ModelDeployment& d, SystemTime now = kNow, bool readyCreates = true) {
    auto p = plan(d, now);
    for (const auto& c : p.creates) pods.push_back(created(c, readyCreates));
    for (auto& pod : pods)
      if (std::find(p.drain.begin(), p.drain.end(), pod.name) != p.drain.end()) pod.drainingSince = now;
    std::erase_if(pods, [&](const WorkerPod& x) {
      return std::find(p.remove.begin(), p.remove.end(), x.name) != p.remove.end();
    });
    return p;
  }
  WorkerPod& pod(const std::string& name) {
    for (auto& p : pods)
      if (p.name == name) return p;
    throw std::runtime_error("no pod " + name);
  }
  PoolStatusPlan poolStatus() const {
    auto ps = pools[0];
    PoolStatusInput in;
    in.pool = &ps;
    in.nodes = nodes();
    auto snap = buildSnapshot({pools, in.nodes, pods});
    in.allocated = allocationByPool(snap.inventory)[ps.metadata.name];
    return planPoolStatus(in, kNow);
  }
};

std::vector<int> gpusOf(const WorkerPod& p) {
  auto a = scheduling::decodeAssignment(p.assignment);
  EXPECT_TRUE(a);
  return a ? a->gpus : std::vector<int>{};
}

// ---- NodeView ---------------------------------------------------------------------

TEST(NodeFaults, GpuFaultTaintMarksEveryGpu) {
  auto n = NodeView::fromJson(withTaint(nodeJson("n0"), "nvidia.com/gpu.health", "NoSchedule"));
  EXPECT_EQ(n.gpuFaultTaint, "nvidia.com/gpu.health");
  EXPECT_EQ(n.faultyGpus(), (std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7}));
  EXPECT_EQ(n.unhealthyGpuCount(), 8);
  EXPECT_FALSE(n.broken());  // NoSchedule: its workers move, they are not evicted
  EXPECT_TRUE(NodeView::fromJson(withTaint(nodeJson("n0"), "waterline.dev/gpu-unhealthy", "NoExecute")).broken());
}

TEST(NodeFaults, OtherTaintsAndPreferNoScheduleAreNotFaults) {
  // nvidia.com/gpu:NoSchedule is the usual "GPU node" taint, not a fault.
  auto a = NodeView::fromJson(withTaint(nodeJson("n0"), "nvidia.com/gpu", "NoSchedule"));
  EXPECT_EQ(a.gpuFaultTaint, "");
  EXPECT_TRUE(a.faultyGpus().empty());
  EXPECT_EQ(a.unhealthyGpuCount(), 0);
  auto b = NodeView::fromJson(withTaint(nodeJson("n0"), "nvidia.com/gpu.health", "PreferNoSchedule"));
  EXPECT_EQ(b.gpuFaultTaint, "");
}

TEST(NodeFaults, UnhealthyGpusAnnotationIsParsedStrictly) {
  EXPECT_EQ(NodeView::fromJson(withUnhealthyGpus(nodeJson("n0"), "3,0")).unhealthyGpus, (std::vector<int>{0, 3}));
  // Malformed entries, duplicates and out-of-range indices are ignored.
  EXPECT_EQ(NodeView::fromJson(withUnhealthyGpus(nodeJson("n0"), "1, 1,x,-2,9,,7")).unhealthyGpus,
            (std::vector<int>{1, 7}));
  EXPECT_TRUE(NodeView::fromJson(withUnhealthyGpus(nodeJson("n0"), "")).unhealthyGpus.empty());
  auto n = NodeView::fromJson(withUnhealthyGpus(nodeJson("n0"), "2"));
  EXPECT_EQ(n.unhealthyGpuCount(), 1);
  EXPECT_FALSE(n.broken());
}

// ---- Pool status --------------------------------------------------------------------

TEST(PoolStatusFaults, CountsUnhealthyGpusAndRecovery) {
  World w;
  auto st = w.poolStatus().status;
  EXPECT_EQ(st.gpus.total, 16);
  EXPECT_EQ(st.gpus.unhealthy, 0);
  EXPECT_EQ(st.gpus.allocatable, 16);

  w.node("n0") = withUnhealthyGpus(w.node("n0"), "0,3");
  w.node("n1") = withTaint(w.node("n1"), "nvidia.com/gpu-unhealthy", "NoSchedule");
  st = w.poolStatus().status;
  EXPECT_EQ(st.gpus.unhealthy, 2 + 8);
  EXPECT_EQ(st.gpus.allocatable, 6);
  EXPECT_EQ(st.gpus.free, 6);
  const auto* deg = api::findCondition(st.conditions, "Degraded");
  ASSERT_TRUE(deg);
  EXPECT_EQ(deg->status, api::ConditionStatus::True);
  EXPECT_EQ(deg->reason, api::reasons::kGpusUnhealthy);

  // Recovery: annotation and taint removed.
  w.nodeObjs = {nodeJson("n0"), nodeJson("n1")};
  st = w.poolStatus().status;
  EXPECT_EQ(st.gpus.unhealthy, 0);
  EXPECT_EQ(st.gpus.allocatable, 16);
}

TEST(PoolStatusFaults, NotReadyNodeIsUnhealthy) {
  World w;
  w.node("n1")["status"]["conditions"][0]["status"] = "Unknown";
  auto st = w.poolStatus().status;
  EXPECT_EQ(st.gpus.unhealthy, 8);
  EXPECT_EQ(st.readyNodes, 1);
}

TEST(PoolStatusFragmentation, FreeCapacityNoShapeCanUse) {
  World w;
  w.nodeObjs = {nodeJson("n0", 4)};
  // Nothing placed: 4 idle GPUs on one node; a 4-GPU shape can use them all.
  auto d4 = deployment("big", 0, 4);
  auto snap = buildSnapshot({w.pools, w.nodes(), w.pods});
  EXPECT_EQ(fragmentationByPool(snap.inventory, {toRequest(d4, "big-shape")})["h100"], 0.0);
  // One GPU taken: 3 idle GPUs on the node, which no 4-GPU worker can use.
  w.step(deployment("small", 1, 1));
  snap = buildSnapshot({w.pools, w.nodes(), w.pods});
  EXPECT_EQ(fragmentationByPool(snap.inventory, {toRequest(d4, "big-shape")})["h100"], 1.0);
  // A 1-GPU shape can use them; no shapes at all: a 1-GPU worker stands in.
  EXPECT_EQ(fragmentationByPool(snap.inventory, {toRequest(deployment("one", 0, 1), "one-shape")})["h100"], 0.0);
  EXPECT_EQ(fragmentationByPool(snap.inventory, {})["h100"], 0.0);
  // The figure lands in the pool status.
  auto ps = w.pools[0];
  PoolStatusInput in;
  in.pool = &ps;
  in.nodes = w.nodes();
  in.fragmentation = 2.0 / 3.0;
  EXPECT_DOUBLE_EQ(planPoolStatus(in, kNow).status.fragmentation, 0.667);
}

// ---- Inventory ------------------------------------------------------------------------

TEST(InventoryFaults, NoNewWorkOnFaultyGpus) {
  World w;
  w.nodeObjs = {withUnhealthyGpus(nodeJson("n0", 4), "0,1,2")};
  auto d = deployment("llama", 1, 2);
  auto p = w.plan(d);
  EXPECT_TRUE(p.creates.empty());  // only GPU 3 is healthy: a 2-GPU worker does not fit
  EXPECT_TRUE(p.unschedulable);
  auto d1 = deployment("small", 1, 1);
  auto p1 = w.plan(d1);
  ASSERT_EQ(p1.creates.size(), 1u);
  EXPECT_EQ(p1.creates[0].assignment.gpus, (std::vector<int>{3}));
  // A fault taint removes the whole node.
  w.nodeObjs = {withTaint(nodeJson("n0", 4), "nvidia.com/gpu.health", "NoSchedule")};
  EXPECT_TRUE(w.plan(d1).creates.empty());
}

TEST(InventoryFaults, WorkersOnFaultyGpusStillHoldThem) {
  World w;
  w.nodeObjs = {nodeJson("n0", 2)};
  auto d = deployment("llama", 1, 2);
  w.step(d);
  ASSERT_EQ(w.pods.size(), 1u);
  w.nodeObjs = {withUnhealthyGpus(nodeJson("n0", 2), "1")};
  auto snap = buildSnapshot({w.pools, w.nodes(), w.pods});
  EXPECT_TRUE(snap.conflicts.empty());
  EXPECT_NE(snap.inventory.worker("llm/llama-0"), nullptr);
  // Allocation counts healthy GPUs only; pool status does not go negative.
  EXPECT_EQ(allocationByPool(snap.inventory)["h100"].gpus, 1);
  auto st = w.poolStatus().status;
  EXPECT_EQ(st.gpus.unhealthy, 1);
  EXPECT_EQ(st.gpus.allocated, 1);
  EXPECT_EQ(st.gpus.free, 0);
}

// ---- Moves and repairs ----------------------------------------------------------------

TEST(Repairs, WorkerOnUnhealthyGpuMovesReplacementFirst) {
  World w;
  auto d = deployment("llama", 2, 1, {{"drainSeconds", 30}});
  w.step(d);
  ASSERT_EQ(w.pods.size(), 2u);
  const WorkerPod victim = w.pods[0];
  const int gpu = gpusOf(victim)[0];
  w.node(victim.node) = withUnhealthyGpus(w.node(victim.node), std::to_string(gpu));

  // 1: the replacement is created; the old worker keeps serving.
  auto p1 = w.step(d, kNow, /*readyCreates=*/false);
  ASSERT_EQ(p1.creates.size(), 1u);
  EXPECT_TRUE(p1.drain.empty());
  EXPECT_TRUE(p1.remove.empty());
  EXPECT_EQ(p1.moving, 1);
  EXPECT_TRUE(p1.repairs.empty());
  const auto& nc = p1.creates[0].assignment;
  EXPECT_FALSE(nc.node == victim.node && nc.gpus[0] == gpu) << "placed on the faulty GPU";
  EXPECT_EQ(p1.status.readyReplicas, 2);  // the moving worker still serves
  EXPECT_EQ(api::findCondition(p1.status.conditions, "Degraded")->status, api::ConditionStatus::True);

  // 2: replacement not ready yet: nothing changes, nothing new is created.
  auto p2 = w.step(d);
  EXPECT_TRUE(p2.creates.empty());
  EXPECT_TRUE(p2.drain.empty());
  EXPECT_EQ(p2.moving, 1);

  // 3: replacement ready: the old worker drains, with one repair and an Event.
  w.pod(p1.creates[0].name).ready = true;
  auto p3 = w.step(d);
  EXPECT_TRUE(p3.creates.empty());
  ASSERT_EQ(p3.drain, std::vector<std::string>{victim.name});
  ASSERT_EQ(p3.repairs.size(), 1u);
  EXPECT_EQ(p3.repairs[0].reason, repair_reasons::kGpuUnhealthy);
  EXPECT_EQ(p3.repairs[0].pod, victim.name);
  bool moved = false;
  for (const auto& e : p3.events) moved |= e.reason == "WorkerMoved";
  EXPECT_TRUE(moved);

  // 4: a draining worker is not repaired again; deleted after drainSeconds.
  auto p4 = w.step(d, kNow + 5s);
  EXPECT_TRUE(p4.repairs.empty());
  EXPECT_TRUE(p4.remove.empty());
  auto p5 = w.step(d, kNow + 31s);
  EXPECT_EQ(p5.remove, std::vector<std::string>{victim.name});
  EXPECT_EQ(w.pods.size(), 2u);
  for (const auto& p : w.pods) EXPECT_NE(p.name, victim.name);
}

TEST(Repairs, NotReadyWorkerOnFaultyGpuIsRemovedAtOnce) {
  World w;
  auto d = deployment("llama", 1, 1);
  w.step(d);
  w.pods[0].ready = false;
  w.node(w.pods[0].node) = withTaint(w.node(w.pods[0].node), "nvidia.com/gpu.health", "NoSchedule");
  const auto old = w.pods[0];
  auto p = w.plan(d);
  EXPECT_EQ(p.remove, std::vector<std::string>{old.name});
  ASSERT_EQ(p.creates.size(), 1u);
  EXPECT_NE(p.creates[0].assignment.node, old.node);  // the whole node is faulty
  ASSERT_EQ(p.repairs.size(), 1u);
  EXPECT_EQ(p.repairs[0].reason, repair_reasons::kGpuUnhealthy);
}

TEST(Repairs, NoCapacityForReplacementKeepsTheOldWorker) {
  World w;
  w.nodeObjs = {nodeJson("n0", 1)};
  auto d = deployment("llama", 1, 1);
  w.step(d);
  w.node("n0") = withUnhealthyGpus(w.node("n0"), "0");
  auto p = w.plan(d);
  EXPECT_TRUE(p.creates.empty());
  EXPECT_TRUE(p.remove.empty());
  EXPECT_TRUE(p.drain.empty());
  EXPECT_TRUE(p.unschedulable);
  EXPECT_EQ(p.moving, 1);
  EXPECT_EQ(p.status.readyReplicas, 1);
}

TEST(Repairs, BrokenNodeReasons) {
  auto d = deployment("llama", 1, 1);
  {
    World w;
    w.step(d);
    w.node(w.pods[0].node)["status"]["conditions"][0]["status"] = "False";
    auto p = w.plan(d);
    ASSERT_EQ(p.repairs.size(), 1u);
    EXPECT_EQ(p.repairs[0].reason, repair_reasons::kNodeNotReady);
    ASSERT_EQ(p.creates.size(), 1u);
  }
  {
    World w;
    w.step(d);
    w.node(w.pods[0].node) = withTaint(w.node(w.pods[0].node), "node.kubernetes.io/unreachable", "NoExecute");
    auto p = w.plan(d);
    ASSERT_EQ(p.repairs.size(), 1u);
    EXPECT_EQ(p.repairs[0].reason, repair_reasons::kNodeEvicting);
  }
  {
    World w;
    w.step(d);
    const std::string gone = w.pods[0].node;
    std::erase_if(w.nodeObjs, [&](const json& n) { return n["metadata"]["name"] == gone; });
    auto p = w.plan(d);
    ASSERT_EQ(p.repairs.size(), 1u);
    EXPECT_EQ(p.repairs[0].reason, repair_reasons::kNodeGone);
    EXPECT_EQ(p.remove.size(), 1u);
  }
}

TEST(Repairs, BackoffHoldsFailedPodsAndTheirSlot) {
  World w;
  auto d = deployment("llama", 2, 1);
  w.step(d);
  w.pods[0].phase = "Failed";
  w.hold = kNow + 20s;
  auto p = w.plan(d);
  EXPECT_TRUE(p.remove.empty());
  EXPECT_TRUE(p.creates.empty());
  EXPECT_TRUE(p.repairs.empty());
  EXPECT_EQ(p.repairsHeld, 1);
  ASSERT_TRUE(p.requeueAfter);
  EXPECT_EQ(*p.requeueAfter, 20s);
  EXPECT_EQ(api::findCondition(p.status.conditions, "Degraded")->status, api::ConditionStatus::True);
  // Hold over: replaced.
  auto p2 = w.plan(d, kNow + 21s);
  EXPECT_EQ(p2.remove.size(), 1u);
  EXPECT_EQ(p2.creates.size(), 1u);
  ASSERT_EQ(p2.repairs.size(), 1u);
  EXPECT_EQ(p2.repairs[0].reason, repair_reasons::kWorkerFailed);
}

TEST(Repairs, ProbeUnhealthyWorkersAreReplacedUnlessHeld) {
  World w;
  auto d = deployment("llama", 2, 1);
  w.step(d);
  const std::string bad = w.pods[1].name;
  w.unhealthy = {bad};
  auto p = w.plan(d);
  EXPECT_EQ(p.remove, std::vector<std::string>{bad});
  EXPECT_EQ(p.creates.size(), 1u);
  ASSERT_EQ(p.repairs.size(), 1u);
  EXPECT_EQ(p.repairs[0].reason, repair_reasons::kProbeFailed);
  w.hold = kNow + 5s;
  auto p2 = w.plan(d);
  EXPECT_TRUE(p2.remove.empty());
  EXPECT_TRUE(p2.creates.empty());  // the held worker keeps its GPU and its slot
  EXPECT_EQ(p2.repairsHeld, 1);
}

// ---- Backoff -------------------------------------------------------------------------

TEST(RepairBackoff, ExponentialCappedAndReset) {
  RepairBackoff b({10s, 60s, 10min});
  const std::string k = "llm/llama";
  EXPECT_FALSE(b.holdUntil(k, kNow));
  b.record(k, kNow);
  EXPECT_EQ(b.holdUntil(k, kNow), kNow + 10s);
  EXPECT_FALSE(b.holdUntil(k, kNow + 10s));
  b.record(k, kNow + 10s);
  EXPECT_EQ(b.holdUntil(k, kNow + 10s), kNow + 30s);
  b.record(k, kNow + 30s);
  EXPECT_EQ(b.holdUntil(k, kNow + 30s), kNow + 70s);
  b.record(k, kNow + 70s);  // 80s capped at 60s
  EXPECT_EQ(b.holdUntil(k, kNow + 70s), kNow + 130s);
  EXPECT_EQ(b.failures(k, kNow + 70s), 4);
  // Other deployments are independent.
  EXPECT_FALSE(b.holdUntil("llm/other", kNow + 70s));
  // Quiet for `reset`: back to zero.
  EXPECT_EQ(b.failures(k, kNow + 70s + 10min), 0);
  EXPECT_FALSE(b.holdUntil(k, kNow + 70s + 10min));
  b.record(k, kNow + 70s + 10min);
  EXPECT_EQ(b.holdUntil(k, kNow + 70s + 10min), kNow + 80s + 10min);
  b.forget(k);
  EXPECT_EQ(b.failures(k, kNow + 80s + 10min), 0);
}

TEST(RepairBackoff, OnlyWorkerCausedReasons) {
  EXPECT_TRUE(workerCaused(repair_reasons::kWorkerFailed));
  EXPECT_TRUE(workerCaused(repair_reasons::kProbeFailed));
  EXPECT_FALSE(workerCaused(repair_reasons::kNodeNotReady));
  EXPECT_FALSE(workerCaused(repair_reasons::kGpuUnhealthy));
}

}  // namespace
}  // namespace waterline::planners
