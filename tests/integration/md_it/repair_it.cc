// Repairs end to end (docs/workers.md, "GPU and node faults"): the operator binary against
// the fixture's kube-apiserver with kwok nodes. A GPU marked unhealthy, a GPU-fault taint,
// a node made NotReady (kwok's node-not-ready stage) and a deleted node each move or
// replace the workers; the pool counts the unhealthy GPUs; every repair is an Event and a
// waterline_repairs_total sample; a recovered node gives its capacity back.
#include <algorithm>
#include <cstdio>
#include <fstream>

#include "md_world.h"

namespace waterline::mdit {
namespace {

// GPU indices and node of a worker pod, from its assignment annotation.
scheduling::Assignment assignmentOf(const Json& pod) {
  auto a = scheduling::decodeAssignment(pod["metadata"]["annotations"].value("waterline.dev/gpu-assignment", ""));
  EXPECT_TRUE(a);
  return a ? *a : scheduling::Assignment{};
}

Json poolGpus(World& w) {
  auto p = w.c->get(kube::kinds::CapacityPool, "", w.pool);
  if (!p || !p->contains("status") || !(*p)["status"].contains("gpus")) return Json::object();
  return (*p)["status"]["gpus"];
}

// Event reasons (and messages) recorded for ModelDeployment `name`.
std::multimap<std::string, std::string> eventsOf(World& w, const std::string& name) {
  std::multimap<std::string, std::string> out;
  auto l = w.c->list(kube::kinds::CoreEvent, w.ns);
  if (!l) return out;
  for (const auto& e : l->items)
    if (e["involvedObject"].value("kind", "") == "ModelDeployment" && e["involvedObject"].value("name", "") == name)
      out.emplace(e.value("reason", ""), e.value("message", ""));
  return out;
}

bool hasEvent(World& w, const std::string& name, const std::string& reason, const std::string& text) {
  auto ev = eventsOf(w, name);
  auto [a, b] = ev.equal_range(reason);
  for (auto it = a; it != b; ++it)
    if (it->second.find(text) != std::string::npos) return true;
  return false;
}

void patchNode(World& w, const std::string& node, const Json& patch) {
  ASSERT_TRUE(w.c->patch(kube::kinds::Node, "", node, kube::PatchType::Merge, patch.dump()));
}

// Exactly `n` pods of `deployment` that are not being deleted, all Ready, none draining
// and none on (node, GPU index; index -1: the whole node). Pods being deleted are left
// out: on a NotReady node nothing confirms their deletion until the node is back.
bool settledAway(World& w, const std::string& deployment, size_t n, const std::string& node, int gpu) {
  auto all = w.pods(deployment);
  std::vector<Json> ps;
  for (const auto& p : all)
    if (!p["metadata"].contains("deletionTimestamp")) ps.push_back(p);
  if (ps.size() != n) return false;
  for (const auto& p : ps) {
    if (!isReady(p)) return false;
    if (p["metadata"]["annotations"].contains("waterline.dev/draining-since")) return false;
    auto a = assignmentOf(p);
    if (a.node == node && (gpu < 0 || std::find(a.gpus.begin(), a.gpus.end(), gpu) != a.gpus.end())) return false;
  }
  return true;
}

TEST(RepairIT, UnhealthyGpuMovesItsWorkerAndRecoveryReturnsCapacity) {
  WL_CLIENT_OR_SKIP(client);
  World w(client);
  OperatorProcess op;
  op.start();
  w.apply(w.deployment("llama", 2, 2, /*drainSeconds=*/1));
  ASSERT_TRUE(it::eventually([&] { return w.statusInt("llama", "readyReplicas") == 2; }, 90s)) << op.logText();
  auto pods = w.pods("llama");
  ASSERT_EQ(pods.size(), 2u);
  const std::string victim = pods[0]["metadata"]["name"];
  const auto a = assignmentOf(pods[0]);
  const int bad = a.gpus.at(0);

  patchNode(w, a.node, {{"metadata", {{"annotations", {{"waterline.dev/unhealthy-gpus", std::to_string(bad)}}}}}});
  // The pool counts the GPU unhealthy; the worker moves (new one first, then the old one
  // drains and goes); nothing lands on the faulty GPU.
  ASSERT_TRUE(it::eventually([&] { return poolGpus(w).value("unhealthy", -1) == 1; }, 60s)) << op.logText();
  EXPECT_EQ(poolGpus(w).value("allocatable", -1), 15);
  ASSERT_TRUE(it::eventually([&] { return settledAway(w, "llama", 2, a.node, bad); }, 90s)) << op.logText();
  // The victim may still be terminating when the others have settled: wait until it is gone.
  EXPECT_TRUE(it::eventually([&] {
    for (const auto& p : w.pods("llama"))
      if (p["metadata"]["name"] == victim) return false;
    return true;
  }, 30s)) << victim << " is still there";
  expectNoDoubleBooking(w.pods("llama"));
  ASSERT_TRUE(it::eventually([&] { return hasEvent(w, "llama", "WorkerMoved", victim); }, 30s));
  EXPECT_TRUE(hasEvent(w, "llama", "WorkerMoved", "GpuUnhealthy"));
  EXPECT_EQ(op.metric("waterline_repairs_total{reason=\"GpuUnhealthy\"}"), 1);
  EXPECT_EQ(w.statusInt("llama", "readyReplicas"), 2);

  // Recovery: the annotation goes, the GPU is allocatable again.
  patchNode(w, a.node, {{"metadata", {{"annotations", {{"waterline.dev/unhealthy-gpus", nullptr}}}}}});
  ASSERT_TRUE(it::eventually([&] {
    auto g = poolGpus(w);
    return g.value("unhealthy", -1) == 0 && g.value("allocatable", -1) == 16;
  }, 60s)) << op.logText();
  op.kill(SIGTERM);
}

TEST(RepairIT, TaintedNotReadyAndDeletedNodesMoveWorkersAndRecoveredNodesReturnCapacity) {
  WL_CLIENT_OR_SKIP(client);
  World w(client);
  OperatorProcess op;
  op.start();
  // Two 4-GPU workers: 8 of the pool's 16 GPUs, so one node can always take both.
  w.apply(w.deployment("llama", 2, 4, /*drainSeconds=*/1));
  ASSERT_TRUE(it::eventually([&] { return w.statusInt("llama", "readyReplicas") == 2; }, 90s)) << op.logText();
  // The node of the first worker that is not being deleted.
  auto nodeOfFirst = [&] {
    for (const auto& p : w.pods("llama"))
      if (!p["metadata"].contains("deletionTimestamp")) return assignmentOf(p).node;
    ADD_FAILURE() << "no live worker";
    return std::string();
  };

  // 1. GPU-fault taint (NoSchedule): every GPU of the node is unhealthy, its workers move.
  const std::string tainted = nodeOfFirst();
  patchNode(w, tainted, {{"spec", {{"taints", {{{"key", "nvidia.com/gpu.health"}, {"value", "xid-79"}, {"effect", "NoSchedule"}}}}}}});
  ASSERT_TRUE(it::eventually([&] { return poolGpus(w).value("unhealthy", -1) == 8; }, 60s)) << op.logText();
  ASSERT_TRUE(it::eventually([&] { return settledAway(w, "llama", 2, tainted, -1); }, 90s)) << op.logText();
  expectNoDoubleBooking(w.pods("llama"));
  EXPECT_TRUE(it::eventually([&] { return hasEvent(w, "llama", "WorkerMoved", tainted); }, 30s));
  EXPECT_GE(op.metric("waterline_repairs_total{reason=\"GpuUnhealthy\"}"), 1);
  patchNode(w, tainted, {{"spec", {{"taints", nullptr}}}});
  ASSERT_TRUE(it::eventually([&] { return poolGpus(w).value("unhealthy", -1) == 0; }, 60s)) << op.logText();

  // 2. NotReady (kwok stage): its workers are replaced on the other node at once.
  const std::string down = nodeOfFirst();
  patchNode(w, down, {{"metadata", {{"labels", {{"node-not-ready.stage.kwok.x-k8s.io", "true"}}}}}});
  ASSERT_TRUE(it::eventually([&] {
    auto p = w.c->get(kube::kinds::CapacityPool, "", w.pool);
    return p && (*p)["status"].value("readyNodes", -1) == 1 && poolGpus(w).value("unhealthy", -1) == 8;
  }, 60s)) << op.logText();
  ASSERT_TRUE(it::eventually([&] { return settledAway(w, "llama", 2, down, -1); }, 90s)) << op.logText();
  EXPECT_TRUE(it::eventually([&] { return hasEvent(w, "llama", "WorkerReplaced", "NodeNotReady"); }, 30s));
  EXPECT_GE(op.metric("waterline_repairs_total{reason=\"NodeNotReady\"}"), 1);
  // Recovery: the label goes, kwok marks the node Ready, the pool has all GPUs again.
  patchNode(w, down, {{"metadata", {{"labels", {{"node-not-ready.stage.kwok.x-k8s.io", nullptr}}}}}});
  ASSERT_TRUE(it::eventually([&] {
    auto g = poolGpus(w);
    return g.value("unhealthy", -1) == 0 && g.value("allocatable", -1) == 16;
  }, 60s)) << op.logText();

  // 3. Node deleted: its workers are replaced on the node that is left.
  const std::string gone = nodeOfFirst();
  ASSERT_TRUE(client->remove(kube::kinds::Node, "", gone));
  ASSERT_TRUE(it::eventually([&] { return settledAway(w, "llama", 2, gone, -1); }, 90s)) << op.logText();
  EXPECT_TRUE(it::eventually([&] { return hasEvent(w, "llama", "WorkerReplaced", "NodeGone"); }, 30s));
  EXPECT_GE(op.metric("waterline_repairs_total{reason=\"NodeGone\"}"), 1);
  ASSERT_TRUE(it::eventually([&] { return poolGpus(w).value("total", -1) == 8; }, 60s)) << op.logText();
  expectNoDoubleBooking(w.pods("llama"));

  // The exposition still lints.
  const std::string file = "/tmp/" + it::uniqueName("wl-repair-metrics") + ".txt";
  std::ofstream(file) << op.get("/metrics");
  EXPECT_EQ(it::run("promtool check metrics < " + file), 0);
  std::remove(file.c_str());
  op.kill(SIGTERM);
}

}  // namespace
}  // namespace waterline::mdit
