// The ModelDeployment planner and the inventory snapshot: scale up/down, capacity
// explanation, victim choice, drain timing, rebuild from annotations, pool rules,
// template rollouts, repairs.
#include <gtest/gtest.h>

#include <set>

#include "waterline/api/keys.h"
#include "waterline/planners/deployment.h"
#include "waterline/planners/inventory_snapshot.h"
#include "waterline/planners/pool_status.h"
#include "waterline/planners/reclaim.h"
#include "waterline/scheduling/annotation.h"

namespace waterline::planners {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

const SystemTime kNow = SystemTime{} + std::chrono::hours(24 * 365 * 55);
constexpr const char* kH100 = "NVIDIA-H100-80GB-HBM3";

api::CapacityPool pool(const std::string& name, const std::string& region, const std::string& zone) {
  json j = {{"apiVersion", "waterline.dev/v1alpha1"},
            {"kind", "CapacityPool"},
            {"metadata", {{"name", name}, {"generation", 1}}},
            {"spec",
             {{"region", region},
              {"dataZone", zone},
              {"gpuProduct", kH100},
              {"nodeSelector", {{"matchLabels", {{"topology.kubernetes.io/region", region}}}}}}}};
  auto p = api::CapacityPool::fromJson(j);
  EXPECT_TRUE(p) << p.error();
  return *p;
}

NodeView node(const std::string& name, const std::string& region, int gpus = 8, bool ready = true) {
  json j = {{"metadata",
             {{"name", name},
              {"labels",
               {{"topology.kubernetes.io/region", region},
                {"nvidia.com/gpu.product", kH100},
                {"nvidia.com/gpu.count", std::to_string(gpus)},
                {"nvidia.com/gpu.memory", "81559"}}}}},
            {"status",
             {{"conditions", json::array({{{"type", "Ready"}, {"status", ready ? "True" : "False"}}})},
              {"allocatable", {{"nvidia.com/gpu", std::to_string(gpus)}}}}}};
  return NodeView::fromJson(j);
}

api::ModelDeployment deployment(const std::string& name, int replicas, int gpus,
                                json extraSpec = json::object()) {
  json spec = {{"model", {{"name", "meta-llama/Llama-3.1-8B-Instruct"}, {"version", "v1"}}},
               {"region", "eu-west"},
               {"template", {{"spec", {{"image", "vllm/vllm-openai:v0.6.3"}, {"ports", {{{"containerPort", 8000}}}}}}}},
               {"gpu", {{"count", gpus}}},
               {"replicas", replicas}};
  spec.update(extraSpec);
  for (auto it = spec.begin(); it != spec.end();) it = it->is_null() ? spec.erase(it) : std::next(it);
  json j = {{"apiVersion", "waterline.dev/v1alpha1"},
            {"kind", "ModelDeployment"},
            {"metadata", {{"name", name}, {"namespace", "llm"}, {"uid", "uid-" + name}, {"generation", 2}}},
            {"spec", spec}};
  auto d = api::ModelDeployment::fromJson(j);
  EXPECT_TRUE(d) << d.error();
  return *d;
}

// The pod as the apiserver would return it after the create (plus a phase).
WorkerPod created(const PodToCreate& c, bool ready = true, int ageSeconds = 100) {
  json p = c.pod;
  p["metadata"]["uid"] = "uid-" + c.name;
  p["metadata"]["creationTimestamp"] = api::formatTime(kNow - std::chrono::seconds(ageSeconds));
  p["status"] = {{"phase", "Running"},
                 {"conditions", json::array({{{"type", "Ready"}, {"status", ready ? "True" : "False"}}})}};
  return WorkerPod::fromJson(p);
}

struct World {
  std::vector<api::CapacityPool> pools = {pool("h100-eu-west", "eu-west", "EU")};
  std::vector<NodeView> nodes = {node("euw-0", "eu-west"), node("euw-1", "eu-west")};
  std::vector<WorkerPod> pods;

  Snapshot snapshot() const { return buildSnapshot({pools, nodes, pods}); }
  DeploymentPlan plan(const api::ModelDeployment& d, Snapshot& snap, SystemTime now = kNow) const {
    DeploymentPlanInput in;
    in.deployment = &d;
    for (const auto& p : pods)
      if (p.deployment == d.metadata.name) in.pods.push_back(p);
    in.nodes = nodes;
    in.inventory = &snap.inventory;
    return planDeployment(in, now);
  }
  // Plans and applies the creates as if the apiserver had them.
  DeploymentPlan step(const api::ModelDeployment& d, SystemTime now = kNow) {
    auto snap = snapshot();
    auto p = plan(d, snap, now);
    for (const auto& c : p.creates) pods.push_back(created(c));
    return p;
  }
};

const api::Condition* condition(const DeploymentPlan& p, std::string_view type) {
  return api::findCondition(p.status.conditions, type);
}

TEST(DeploymentPlanner, ScaleUpCreatesBoundPodsWithAssignment) {
  World w;
  auto d = deployment("llama", 3, 2);
  auto snap = w.snapshot();
  auto p = w.plan(d, snap);
  ASSERT_EQ(p.creates.size(), 3u);
  std::set<std::pair<std::string, int>> gpus;
  for (size_t i = 0; i < p.creates.size(); ++i) {
    const auto& c = p.creates[i];
    EXPECT_EQ(c.name, "llama-" + std::to_string(i));
    EXPECT_EQ(c.pool, "h100-eu-west");
    const json& pod = c.pod;
    EXPECT_EQ(pod["spec"]["nodeName"], c.assignment.node);
    EXPECT_EQ(pod["metadata"]["namespace"], "llm");
    EXPECT_EQ(pod["metadata"]["ownerReferences"][0]["kind"], "ModelDeployment");
    EXPECT_EQ(pod["metadata"]["ownerReferences"][0]["uid"], "uid-llama");
    EXPECT_EQ(pod["metadata"]["ownerReferences"][0]["controller"], true);
    const auto& l = pod["metadata"]["labels"];
    EXPECT_EQ(l["waterline.dev/deployment"], "llama");
    EXPECT_EQ(l["waterline.dev/pool"], "h100-eu-west");
    EXPECT_EQ(l["waterline.dev/model"], "meta-llama.Llama-3.1-8B-Instruct");
    EXPECT_EQ(l["waterline.dev/model-version"], "v1");
    EXPECT_EQ(l["app.kubernetes.io/managed-by"], "waterline");
    EXPECT_EQ(l["waterline.dev/template-hash"], templateHash(d));
    const auto& ctr = pod["spec"]["containers"][0];
    EXPECT_EQ(ctr["resources"]["limits"]["nvidia.com/gpu"], "2");
    EXPECT_EQ(ctr["resources"]["requests"]["nvidia.com/gpu"], "2");
    EXPECT_EQ(ctr["readinessProbe"]["httpGet"]["path"], "/health");
    EXPECT_EQ(ctr["readinessProbe"]["httpGet"]["port"], 8000);
    EXPECT_EQ(ctr["livenessProbe"]["httpGet"]["port"], 8000);
    EXPECT_EQ(ctr["startupProbe"]["httpGet"]["path"], "/health");
    EXPECT_EQ(ctr["startupProbe"]["periodSeconds"], 10);
    EXPECT_EQ(ctr["startupProbe"]["failureThreshold"], 180);  // 30 minutes to load
    std::string ann = pod["metadata"]["annotations"]["waterline.dev/gpu-assignment"];
    auto a = scheduling::decodeAssignment(ann);
    ASSERT_TRUE(a) << a.error();
    EXPECT_EQ(*a, c.assignment);
    ASSERT_EQ(a->gpus.size(), 2u);
    std::map<std::string, std::string> env;
    for (const auto& e : ctr["env"]) env[e["name"]] = e.value("value", "");
    EXPECT_EQ(env["WATERLINE_GPU_ASSIGNMENT"], ann);
    EXPECT_EQ(env["NVIDIA_VISIBLE_DEVICES"],
              std::to_string(a->gpus[0]) + "," + std::to_string(a->gpus[1]));
    EXPECT_EQ(env["CUDA_VISIBLE_DEVICES"], env["NVIDIA_VISIBLE_DEVICES"]);
    for (int g : a->gpus) EXPECT_TRUE(gpus.insert({a->node, g}).second) << "GPU double-booked";
  }
  EXPECT_EQ(p.status.desiredReplicas, 3);
  EXPECT_EQ(p.status.scheduledReplicas, 3);
  EXPECT_EQ(p.status.readyReplicas, 0);
  EXPECT_EQ(p.status.observedGeneration, 2);
  EXPECT_EQ(p.status.selector, "app.kubernetes.io/managed-by=waterline,waterline.dev/deployment=llama");
  ASSERT_EQ(p.status.placements.size(), 1u);
  EXPECT_EQ(p.status.placements[0].replicas, 3);
  ASSERT_TRUE(condition(p, "Scheduled"));
  EXPECT_EQ(condition(p, "Scheduled")->status, api::ConditionStatus::True);
  EXPECT_EQ(condition(p, "Progressing")->reason, "Scaling");
  EXPECT_EQ(condition(p, "Available")->status, api::ConditionStatus::False);
}

// Finding 2 of the hardening issue: template annotations were copied onto workers, so a
// template that set waterline.dev/draining-since had every new worker drained, deleted and
// recreated (about 600 pod creations a minute) while the status said ReplicasHealthy.
TEST(DeploymentPlanner, TemplateCannotSetTheOperatorsKeysSoWorkersDoNotChurn) {
  World w;
  auto d = deployment("llama", 2, 1);
  auto& meta = d.spec.template_.raw["metadata"];
  meta["annotations"]["waterline.dev/draining-since"] = "2020-01-01T00:00:00Z";
  meta["annotations"]["ops.waterline.dev/anything"] = "x";
  meta["annotations"]["team.example.com/owner"] = "ml";
  meta["labels"]["waterline.dev/pool"] = "elsewhere";
  meta["labels"]["app"] = "llama";
  EXPECT_FALSE(api::validate(d).empty());  // the reconciler stops here with InvalidSpec; the planner is safe on its own
  auto p = w.step(d);
  ASSERT_EQ(p.creates.size(), 2u);
  for (const auto& c : p.creates) {
    const auto& meta = c.pod["metadata"];
    EXPECT_FALSE(meta["annotations"].contains("waterline.dev/draining-since"));
    EXPECT_FALSE(meta["annotations"].contains("ops.waterline.dev/anything"));
    EXPECT_EQ(meta["annotations"]["team.example.com/owner"], "ml");
    EXPECT_EQ(meta["labels"]["waterline.dev/pool"], "h100-eu-west");
    EXPECT_EQ(meta["labels"]["app"], "llama");
  }
  for (int minute = 1; minute <= 3; ++minute) {
    auto q = w.step(d, kNow + std::chrono::minutes(minute));
    EXPECT_TRUE(q.creates.empty()) << minute;
    EXPECT_TRUE(q.drain.empty()) << minute;
    EXPECT_TRUE(q.remove.empty()) << minute;
  }
}

TEST(DeploymentPlanner, SteadyStateIsANoOpAndAvailable) {
  World w;
  auto d = deployment("llama", 2, 1);
  w.step(d);
  auto snap = w.snapshot();
  auto p = w.plan(d, snap);
  EXPECT_TRUE(p.creates.empty());
  EXPECT_TRUE(p.drain.empty());
  EXPECT_TRUE(p.remove.empty());
  EXPECT_EQ(p.status.readyReplicas, 2);
  EXPECT_EQ(p.status.updatedReplicas, 2);
  EXPECT_EQ(condition(p, "Available")->status, api::ConditionStatus::True);
  EXPECT_EQ(condition(p, "Progressing")->reason, "RolloutComplete");
  EXPECT_EQ(condition(p, "Degraded")->status, api::ConditionStatus::False);
}

TEST(DeploymentPlanner, InsufficientCapacitySchedulesWhatFitsAndExplains) {
  World w;
  auto d = deployment("big", 10, 2,
                      {{"deploymentType", "DataZone"}, {"dataZone", "EU"}, {"region", nullptr},
                       {"gpu", {{"count", 2}, {"product", kH100}}}});
  d.spec.region.reset();
  auto snap = w.snapshot();
  auto p = w.plan(d, snap);
  EXPECT_EQ(p.creates.size(), 8u);  // 16 GPUs / 2
  EXPECT_TRUE(p.unschedulable);
  const auto* s = condition(p, "Scheduled");
  ASSERT_TRUE(s);
  EXPECT_EQ(s->status, api::ConditionStatus::False);
  EXPECT_EQ(s->reason, "InsufficientCapacity");
  EXPECT_NE(s->message.find("need 4 more NVIDIA-H100-80GB-HBM3 GPUs"), std::string::npos) << s->message;
  EXPECT_NE(s->message.find("in zone EU"), std::string::npos) << s->message;
  EXPECT_NE(s->message.find("pool h100-eu-west has 0 free"), std::string::npos) << s->message;
  EXPECT_EQ(p.status.insufficientCapacity, s->message);
  EXPECT_EQ(condition(p, "Degraded")->reason, "InsufficientCapacity");
  bool warned = false;
  for (const auto& e : p.events) warned |= e.reason == "InsufficientCapacity" && e.type == "Warning";
  EXPECT_TRUE(warned);

  // A node added to the pool: the rest is scheduled.
  for (const auto& c : p.creates) w.pods.push_back(created(c));
  w.nodes.push_back(node("euw-2", "eu-west"));
  auto snap2 = w.snapshot();
  auto p2 = w.plan(d, snap2);
  EXPECT_EQ(p2.creates.size(), 2u);
  EXPECT_FALSE(p2.unschedulable);
  for (const auto& c : p2.creates) EXPECT_EQ(c.assignment.node, "euw-2");
  EXPECT_EQ(condition(p2, "Scheduled")->status, api::ConditionStatus::True);
  EXPECT_EQ(p2.status.insufficientCapacity, "");
}

TEST(DeploymentPlanner, DeploymentTypePoolRules) {
  World w;
  // Standard in a region without a pool: nothing scheduled, NoMatchingPool.
  auto d = deployment("us", 1, 1, {{"region", "us-east"}});
  auto snap = w.snapshot();
  auto p = w.plan(d, snap);
  EXPECT_TRUE(p.creates.empty());
  EXPECT_EQ(condition(p, "Scheduled")->reason, "NoMatchingPool");
  // Global takes any pool.
  auto g = deployment("gl", 1, 1, {{"deploymentType", "Global"}});
  g.spec.region.reset();
  auto snap2 = w.snapshot();
  auto p2 = w.plan(g, snap2);
  ASSERT_EQ(p2.creates.size(), 1u);
  EXPECT_EQ(p2.creates[0].pool, "h100-eu-west");
  // DataZone US: no pool of that zone.
  auto z = deployment("zus", 1, 1, {{"deploymentType", "DataZone"}, {"dataZone", "US"}});
  z.spec.region.reset();
  auto snap3 = w.snapshot();
  EXPECT_TRUE(w.plan(z, snap3).creates.empty());
}

TEST(DeploymentPlanner, RebuildFromAnnotationsGivesTheSameOccupancy) {
  World w;
  auto a = deployment("a", 3, 2);
  auto b = deployment("b", 5, 1);
  auto snap = w.snapshot();
  auto pa = w.plan(a, snap);
  auto pb = w.plan(b, snap);  // same inventory: placements of a are assumed
  ASSERT_EQ(pa.creates.size() + pb.creates.size(), 8u);
  for (const auto& c : pa.creates) w.pods.push_back(created(c));
  for (const auto& c : pb.creates) w.pods.push_back(created(c));
  // A restarted operator: only the pods.
  auto rebuilt = w.snapshot();
  EXPECT_TRUE(rebuilt.conflicts.empty());
  EXPECT_EQ(rebuilt.inventory.fingerprint(), snap.inventory.fingerprint());
  EXPECT_TRUE(rebuilt.inventory.checkInvariants().empty());
  // And nothing to do for either deployment.
  EXPECT_TRUE(w.plan(a, rebuilt).creates.empty());
  EXPECT_TRUE(w.plan(b, rebuilt).creates.empty());
  // Terminal pods hold nothing; pods being deleted still do.
  auto alloc = allocationByPool(rebuilt.inventory);
  EXPECT_EQ(alloc["h100-eu-west"].gpus, 11);
}

TEST(DeploymentPlanner, AssumedPodsAreNotCreatedTwiceNorDoubleBooked) {
  World w;
  auto d = deployment("llama", 2, 4);
  auto p1 = w.step(d);
  ASSERT_EQ(p1.creates.size(), 2u);
  // The cache has not seen the pods yet: the reconciler feeds them as assumed pods
  // (no creationTimestamp, no status).
  w.pods.clear();
  for (const auto& c : p1.creates) w.pods.push_back(WorkerPod::fromJson(c.pod));
  auto snap = w.snapshot();
  EXPECT_TRUE(snap.conflicts.empty());
  auto p2 = w.plan(d, snap);
  EXPECT_TRUE(p2.creates.empty());
  // Another deployment placed concurrently gets other GPUs.
  auto other = deployment("other", 2, 4);
  auto p3 = w.plan(other, snap);
  ASSERT_EQ(p3.creates.size(), 2u);
  std::set<std::pair<std::string, int>> used;
  for (const auto* p : {&p1, &p3})
    for (const auto& c : p->creates)
      for (int g : c.assignment.gpus) EXPECT_TRUE(used.insert({c.assignment.node, g}).second);
  // Full now.
  auto p4 = w.plan(deployment("third", 1, 1), snap);
  EXPECT_TRUE(p4.unschedulable);
}

TEST(DeploymentPlanner, ScaleDownDrainsThenDeletesWithinMaxUnavailable) {
  World w;
  auto d = deployment("llama", 4, 1, {{"drainSeconds", 30}});
  w.step(d);
  ASSERT_EQ(w.pods.size(), 4u);
  d.spec.replicas = 1;
  auto snap = w.snapshot();
  auto p = w.plan(d, snap);
  ASSERT_EQ(p.drain.size(), 1u);  // maxUnavailable 1
  EXPECT_TRUE(p.remove.empty());
  ASSERT_TRUE(p.requeueAfter);
  EXPECT_EQ(*p.requeueAfter, std::chrono::seconds(30));
  bool scaled = false;
  for (const auto& e : p.events) scaled |= e.reason == "Scaled";
  EXPECT_TRUE(scaled);
  // Mark it draining 10 s ago: nothing new starts, requeue for the remaining 20 s.
  for (auto& pod : w.pods)
    if (pod.name == p.drain[0]) pod.drainingSince = kNow - 10s;
  auto snap2 = w.snapshot();
  auto p2 = w.plan(d, snap2);
  EXPECT_TRUE(p2.drain.empty());
  EXPECT_TRUE(p2.remove.empty());
  ASSERT_TRUE(p2.requeueAfter);
  EXPECT_EQ(*p2.requeueAfter, std::chrono::seconds(20));
  EXPECT_EQ(p2.status.scheduledReplicas, 3);
  // After drainSeconds: deleted.
  auto snap3 = w.snapshot();
  auto p3 = w.plan(d, snap3, kNow + 21s);
  ASSERT_EQ(p3.remove.size(), 1u);
  EXPECT_EQ(p3.remove[0], p.drain[0]);
  // maxUnavailable 2 drains two at once (when nothing is in flight).
  auto d2 = d;
  d2.spec.maxUnavailable = api::IntOrString::fromInt(2);
  w.pods.erase(std::remove_if(w.pods.begin(), w.pods.end(), [&](auto& x) { return x.name == p.drain[0]; }),
               w.pods.end());
  auto snap4 = w.snapshot();
  EXPECT_EQ(w.plan(d2, snap4).drain.size(), 2u);
  // No drain time: deleted at once.
  auto d3 = d2;
  d3.spec.drainSeconds = 0;
  auto snap5 = w.snapshot();
  auto p5 = w.plan(d3, snap5);
  EXPECT_TRUE(p5.drain.empty());
  EXPECT_EQ(p5.remove.size(), 2u);
}

TEST(DeploymentPlanner, VictimsLowerFragmentation) {
  World w;
  auto d = deployment("llama", 3, 1);
  // Two workers on euw-0, one alone on euw-1: the lone one goes (its node empties).
  auto mk = [&](const std::string& name, const std::string& node, int gpu) {
    scheduling::Assignment a;
    a.node = node;
    a.gpus = {gpu};
    PodToCreate c{name, "h100-eu-west", a,
                  renderWorkerPod(d, name, "h100-eu-west", a, 1, scheduling::SharingMode::Exclusive,
                                  templateHash(d))};
    w.pods.push_back(created(c));
  };
  mk("llama-0", "euw-1", 0);
  mk("llama-1", "euw-0", 0);
  mk("llama-2", "euw-0", 1);
  d.spec.replicas = 2;
  auto snap = w.snapshot();
  auto p = w.plan(d, snap);
  ASSERT_EQ(p.drain.size(), 1u);
  EXPECT_EQ(p.drain[0], "llama-0");
  // A worker that is not ready goes before the scheduler's choice.
  w.pods[2].ready = false;
  auto snap2 = w.snapshot();
  auto p2 = w.plan(d, snap2);
  ASSERT_EQ(p2.drain.size(), 1u);
  EXPECT_EQ(p2.drain[0], "llama-2");
}

TEST(DeploymentPlanner, TemplateChangeRollsOutWithinMaxUnavailable) {
  World w;
  auto d = deployment("llama", 3, 1);
  w.step(d);
  auto d2 = d;
  d2.spec.template_.raw["spec"]["image"] = "vllm/vllm-openai:v0.7.0";
  ASSERT_NE(templateHash(d), templateHash(d2));
  auto snap = w.snapshot();
  auto p = w.plan(d2, snap);
  ASSERT_EQ(p.drain.size(), 1u);  // maxUnavailable 1
  ASSERT_EQ(p.creates.size(), 1u);  // its replacement, on a free GPU
  EXPECT_EQ(p.creates[0].pod["spec"]["containers"][0]["image"], "vllm/vllm-openai:v0.7.0");
  EXPECT_EQ(condition(p, "Progressing")->reason, "RollingOut");
  // While the replacement is not ready, nothing else is drained.
  for (auto& pod : w.pods)
    if (pod.name == p.drain[0]) pod.drainingSince = kNow;
  for (const auto& c : p.creates) w.pods.push_back(created(c, /*ready=*/false));
  auto snap2 = w.snapshot();
  auto p2 = w.plan(d2, snap2);
  EXPECT_TRUE(p2.drain.empty());
  EXPECT_TRUE(p2.creates.empty());
  // Old pod gone and replacement ready: the next one goes.
  w.pods.erase(std::remove_if(w.pods.begin(), w.pods.end(), [&](auto& x) { return x.name == p.drain[0]; }),
               w.pods.end());
  for (auto& pod : w.pods) pod.ready = true;
  auto snap3 = w.snapshot();
  auto p3 = w.plan(d2, snap3);
  EXPECT_EQ(p3.drain.size(), 1u);
  EXPECT_EQ(p3.status.updatedReplicas, 2);  // the ready replacement and the new create
}

TEST(DeploymentPlanner, FailedWorkersAndBrokenNodesAreReplaced) {
  World w;
  auto d = deployment("llama", 2, 1);
  w.step(d);
  w.pods[0].phase = "Failed";
  auto snap = w.snapshot();
  auto p = w.plan(d, snap);
  ASSERT_EQ(p.remove.size(), 1u);
  EXPECT_EQ(p.remove[0], w.pods[0].name);
  ASSERT_EQ(p.creates.size(), 1u);
  bool replaced = false;
  for (const auto& e : p.events) replaced |= e.reason == "WorkerReplaced";
  EXPECT_TRUE(replaced);
  EXPECT_EQ(condition(p, "Degraded")->reason, "ReplicasUnhealthy");
  // A node going NotReady: its worker is replaced on another node.
  World w2;
  w2.step(d);
  const std::string broken = w2.pods[0].node;
  for (auto& n : w2.nodes)
    if (n.name == broken) n.ready = false;
  auto snap2 = w2.snapshot();
  auto p2 = w2.plan(d, snap2);
  EXPECT_FALSE(p2.remove.empty());
  for (const auto& c : p2.creates) EXPECT_NE(c.assignment.node, broken);
}

TEST(DeploymentPlanner, DoubleBookedWorkersAreDeletedAndReplacedOthersConflictsAreNot) {
  World w;
  auto d = deployment("llama", 2, 1);
  w.step(d);
  ASSERT_EQ(w.pods.size(), 2u);
  auto snap = w.snapshot();
  DeploymentPlanInput in;
  in.deployment = &d;
  in.pods = w.pods;
  in.nodes = w.nodes;
  in.inventory = &snap.inventory;
  const auto& loser = w.pods[1];
  scheduling::Conflict occupied;
  occupied.kind = scheduling::Conflict::Kind::Occupied;
  occupied.worker = "llm/" + loser.name;
  occupied.holder = "llm/older";
  occupied.node = loser.node;
  scheduling::Conflict malformed;  // not a double booking: reported, never deleted for it
  malformed.kind = scheduling::Conflict::Kind::Malformed;
  malformed.worker = "llm/" + w.pods[0].name;
  in.conflicts = {occupied, malformed};
  auto p = planDeployment(in, kNow);
  ASSERT_EQ(p.conflictDeletes.size(), 1u);
  EXPECT_EQ(p.conflictDeletes[0].pod, loser.name);
  EXPECT_EQ(p.conflictDeletes[0].uid, loser.uid) << "deleted with its uid as a precondition";
  EXPECT_EQ(p.conflictDeletes[0].holder, "llm/older");
  EXPECT_NE(p.conflictDeletes[0].message.find("claims GPUs on node " + loser.node + " that llm/older holds"),
            std::string::npos);
  EXPECT_TRUE(std::find(p.remove.begin(), p.remove.end(), loser.name) == p.remove.end()) << "deleted once";
  ASSERT_EQ(p.creates.size(), 1u) << "replaced by a real placement";
  EXPECT_NE(p.creates[0].name, loser.name);
  // The same conflict while the worker is already being deleted: nothing more to do.
  in.pods[1].deleting = true;
  EXPECT_TRUE(planDeployment(in, kNow).conflictDeletes.empty());
}

TEST(DeploymentPlanner, WorkersOfAGoneNodeAreDeletedWithoutGraceOthersWithIt) {
  auto d = deployment("llama", 2, 1);
  World w;
  w.step(d);
  const std::string goneNode = w.pods[0].node;
  std::erase_if(w.nodes, [&](const NodeView& n) { return n.name == goneNode; });
  auto snap = w.snapshot();
  auto p = w.plan(d, snap);
  ASSERT_FALSE(p.remove.empty());
  std::set<std::string> onGone;
  for (const auto& pod : w.pods)
    if (pod.node == goneNode) onGone.insert(pod.name);
  EXPECT_EQ(p.removeWithoutGrace, onGone);
  // A node that is only not ready: its worker is replaced with the usual grace period.
  World w2;
  w2.step(d);
  for (auto& n : w2.nodes)
    if (n.name == w2.pods[0].node) n.ready = false;
  auto snap2 = w2.snapshot();
  auto p2 = w2.plan(d, snap2);
  ASSERT_FALSE(p2.remove.empty());
  EXPECT_TRUE(p2.removeWithoutGrace.empty());
}

TEST(DeploymentPlanner, MinMaxClampAndMaxUnavailablePercent) {
  auto d = deployment("x", 10, 1, {{"minReplicas", 2}, {"maxReplicas", 4}});
  EXPECT_EQ(desiredReplicas(d), 4);
  d.spec.replicas = 0;
  EXPECT_EQ(desiredReplicas(d), 2);
  d.spec.maxUnavailable = api::IntOrString::fromString("50%");
  EXPECT_EQ(maxUnavailable(d, 4), 2);
  EXPECT_EQ(maxUnavailable(d, 1), 1);
}

TEST(PoolStatusAllocation, CountsAllocatedAndFreeFromWorkers) {
  World w;
  w.step(deployment("a", 3, 2));
  auto snap = w.snapshot();
  auto alloc = allocationByPool(snap.inventory);
  PoolStatusInput in;
  in.pool = &w.pools[0];
  in.nodes = w.nodes;
  in.allocated = alloc["h100-eu-west"];
  auto plan = planPoolStatus(in, kNow);
  EXPECT_EQ(plan.status.gpus.total, 16);
  EXPECT_EQ(plan.status.gpus.allocated, 6);
  EXPECT_EQ(plan.status.gpus.free, 10);
  // Without worker data the old behaviour stays.
  in.allocated.reset();
  EXPECT_EQ(planPoolStatus(in, kNow).status.gpus.free, 16);
}

// A node whose GPUs are MIG-partitioned under GFD's mixed strategy: gpu.count still says 8,
// but the device plugin reports `whole` allocatable nvidia.com/gpu (the rest are MIG).
NodeView migMixedNode(const std::string& name, int whole) {
  json j = {{"metadata",
             {{"name", name},
              {"labels",
               {{"topology.kubernetes.io/region", "eu-west"},
                {"nvidia.com/gpu.product", kH100},
                {"nvidia.com/gpu.count", "8"},
                {"nvidia.com/mig.strategy", "mixed"}}}}},
            {"status",
             {{"conditions", json::array({{{"type", "Ready"}, {"status", "True"}}})},
              {"allocatable", {{"nvidia.com/gpu", std::to_string(whole)}, {"nvidia.com/mig-1g.10gb", "14"}}}}}};
  return NodeView::fromJson(j);
}

TEST(MigPartitionedNodes, AnExclusivePoolCountsAndPlacesOnlyWholeGpus) {
  World w;
  w.nodes = {migMixedNode("euw-0", 6), migMixedNode("euw-1", 0)};
  PoolStatusInput in;
  in.pool = &w.pools[0];
  in.nodes = w.nodes;
  auto st = planPoolStatus(in, kNow).status;
  EXPECT_EQ(st.gpus.total, 6) << "6 whole GPUs on euw-0, none on euw-1 (all partitioned)";
  EXPECT_EQ(st.gpus.allocatable, 6);
  // Placement: 8 one-GPU replicas, only 6 fit, all on euw-0.
  auto p = w.step(deployment("llama", 8, 1));
  ASSERT_EQ(p.creates.size(), 6u);
  for (const auto& c : p.creates) EXPECT_EQ(c.assignment.node, "euw-0");
  // A MIG pool over the same nodes still sees every physical GPU.
  auto mig = w.pools[0];
  mig.spec.sharing.mode = api::SharingMode::MIG;
  in.pool = &mig;
  EXPECT_EQ(planPoolStatus(in, kNow).status.gpus.total, 16);
  EXPECT_EQ(migMixedNode("n", 0).gpusFor(api::SharingMode::TimeSlicing), 8);
  EXPECT_EQ(node("n", "eu-west").gpusFor(api::SharingMode::Exclusive), 8) << "a plain node: unchanged";
}

// ---- Strict parsing of GPU labels and allocatable counts -------------------------------

NodeView labelledNode(json labels, json allocatable = json::object(), json annotations = json::object()) {
  labels["topology.kubernetes.io/region"] = "eu-west";
  labels["nvidia.com/gpu.product"] = kH100;
  json j = {{"metadata", {{"name", "n"}, {"labels", labels}, {"annotations", annotations}}},
            {"status",
             {{"conditions", json::array({{{"type", "Ready"}, {"status", "True"}}})}, {"allocatable", allocatable}}}};
  return NodeView::fromJson(j);
}

TEST(NodeLabels, ABadGpuCountIsAbsentAndReportedNeverNegative) {
  for (const char* bad : {"-4", "8abc", "4294967304", "65", " 8", ""}) {
    auto n = labelledNode({{"nvidia.com/gpu.count", bad}});
    EXPECT_EQ(n.gpuCount, 0) << bad;
    EXPECT_EQ(n.invalidValues.size(), std::string(bad).empty() ? 0u : 1u) << bad;
  }
  // Absent or invalid, the device plugin's allocatable count is used instead.
  auto n = labelledNode({{"nvidia.com/gpu.count", "4294967304"}}, {{"nvidia.com/gpu", "8"}});
  EXPECT_EQ(n.gpuCount, 8);
  ASSERT_EQ(n.invalidValues.size(), 1u);
  EXPECT_NE(n.invalidValues[0].find("nvidia.com/gpu.count=\"4294967304\""), std::string::npos) << n.invalidValues[0];
  EXPECT_EQ(labelledNode({{"nvidia.com/gpu.count", "64"}}).gpuCount, 64);
}

TEST(NodeLabels, MemoryReplicasAllocatableAndIndicesAreRangeChecked) {
  auto n = labelledNode({{"nvidia.com/gpu.count", "8"}, {"nvidia.com/gpu.memory", "81559MiB"},
                         {"nvidia.com/gpu.replicas", "-1"}},
                        {{"nvidia.com/gpu", "8"}, {"nvidia.com/mig-1g.10gb", "-2"}, {"nvidia.com/mig-2g.20gb", 3},
                         {"nvidia.com/mig-3g.40gb", "99999999999"}},
                        {{"waterline.dev/unhealthy-gpus", "0,3,99,-1,1x,64,7"}});
  EXPECT_EQ(n.gpuCount, 8);
  EXPECT_EQ(n.gpuMemoryMiB, 0);
  EXPECT_EQ(n.gpuAllocatable, (std::map<std::string, int64_t>{{"nvidia.com/gpu", 8}, {"nvidia.com/mig-2g.20gb", 3}}));
  EXPECT_EQ(n.unhealthyGpus, (std::vector<int>{0, 3, 7}));
  EXPECT_EQ(n.invalidValues.size(), 4u) << "memory, replicas, two allocatable counts";
  EXPECT_EQ(labelledNode({{"nvidia.com/gpu.memory", "81559"}}).gpuMemoryMiB, 81559);
  EXPECT_EQ(parseIndexList("1, 2 ,63,64,007"), (std::vector<int>{1, 2, 7, 63}));
}

TEST(NodeLabels, PoolStatusNeverCountsANegativeTotal) {
  World w;
  w.nodes = {labelledNode({{"nvidia.com/gpu.count", "-4"}}), node("euw-1", "eu-west")};
  PoolStatusInput in;
  in.pool = &w.pools[0];
  in.nodes = w.nodes;
  auto st = planPoolStatus(in, kNow).status;
  EXPECT_EQ(st.gpus.total, 8) << "the node labelled -4 adds nothing";
}

// ---- PTU holds (reserved GPUs), the floor without autoscaling, reclaim ----------------

PoolHold hold(const std::string& deployment, int replicas, double gpus, const std::string& reservation = "r1") {
  return {"llm/" + reservation, "llm/" + deployment, "h100-eu-west", replicas, gpus};
}

struct HoldWorld : World {
  std::vector<PoolHold> holds;
  HoldWorld() { pools[0].spec.reservableFraction = 0.5; }
  Snapshot snapshotWithHolds() const {
    SnapshotInput in{pools, nodes, pods};
    in.holds = holds;
    return buildSnapshot(in);
  }
  DeploymentPlan stepWithHolds(const api::ModelDeployment& d, int32_t ptuFloor = 0) {
    auto snap = snapshotWithHolds();
    DeploymentPlanInput in;
    in.deployment = &d;
    for (const auto& p : pods)
      if (p.deployment == d.metadata.name) in.pods.push_back(p);
    in.nodes = nodes;
    in.inventory = &snap.inventory;
    in.ptuFloor = ptuFloor;
    auto plan = planDeployment(in, kNow);
    for (const auto& c : plan.creates) pods.push_back(created(c));
    return plan;
  }
  ReclaimPlan reclaim(const std::string& forDeployment, const std::vector<api::ModelDeployment>& mds) const {
    auto snap = snapshotWithHolds();
    ReclaimInput in;
    in.snapshot = &snap;
    in.pods = pods;
    for (const auto& d : mds) in.deployments[d.metadata.key()] = d;
    in.holds = holds;
    in.deployment = "llm/" + forDeployment;
    return planReclaim(in);
  }
};

TEST(PtuHolds, IdleGpusAreKeptForTheReservedDeploymentOnly) {
  HoldWorld w;
  w.holds = {hold("ptu", 4, 4)};
  auto snap = w.snapshotWithHolds();
  ASSERT_EQ(snap.holds.size(), 1u);
  EXPECT_EQ(snap.holds[0].needGpus, 4);
  EXPECT_EQ(snap.holds[0].reservedGpus, 4);
  EXPECT_EQ(snap.holds[0].missingGpus(), 0);
  // Another deployment gets the 12 other GPUs and no more.
  auto payg = w.stepWithHolds(deployment("payg", 16, 1));
  EXPECT_EQ(payg.creates.size(), 12u);
  EXPECT_TRUE(payg.unschedulable);
  // The reserved deployment still has its 4.
  auto ptu = w.stepWithHolds(deployment("ptu", 4, 1));
  EXPECT_EQ(ptu.creates.size(), 4u);
  EXPECT_FALSE(ptu.unschedulable);
  auto after = w.snapshotWithHolds();
  EXPECT_EQ(after.holds[0].needGpus, 0);  // its workers now use the hold
  EXPECT_TRUE(after.inventory.checkInvariants().empty());
}

TEST(PtuHolds, TheDeploymentsOwnWorkersCountAndSeveralReservationsAddUp) {
  HoldWorld w;
  w.stepWithHolds(deployment("ptu", 2, 1));  // placed before any reservation
  w.holds = {hold("ptu", 2, 2, "r1"), hold("ptu", 3, 3, "r2")};
  auto snap = w.snapshotWithHolds();
  ASSERT_EQ(snap.holds.size(), 1u);
  EXPECT_EQ(snap.holds[0].needGpus, 3);  // 5 replicas held, 2 running
  EXPECT_EQ(snap.holds[0].reservedGpus, 3);
}

TEST(PtuHolds, WithoutAutoscalingTheFloorRaisesReplicasUpToMax) {
  HoldWorld w;
  auto d = deployment("ptu", 1, 1);
  auto p = w.stepWithHolds(d, 3);
  EXPECT_EQ(p.creates.size(), 3u);
  EXPECT_EQ(p.status.desiredReplicas, 3);
  HoldWorld w2;
  auto capped = deployment("ptu", 1, 1, {{"maxReplicas", 2}});
  EXPECT_EQ(w2.stepWithHolds(capped, 3).creates.size(), 2u);
  // With autoscaling on, the autoscaler owns replicas: the planner does not add any.
  HoldWorld w3;
  auto scaled = deployment("ptu", 1, 1, {{"autoscaling", {{"enabled", true}, {"targetPerReplica", "10"}}}});
  EXPECT_EQ(w3.stepWithHolds(scaled, 3).creates.size(), 1u);
}

TEST(PtuReclaim, EvictsLowestPriorityNewestWorkersUntilTheHoldFits) {
  HoldWorld w;
  auto low = deployment("low", 8, 1, {{"priority", -5}, {"maxUnavailable", "50%"}});
  auto high = deployment("high", 8, 1, {{"priority", 5}, {"maxUnavailable", "50%"}});
  auto ptu = deployment("ptu", 3, 1);
  w.step(low);
  w.step(high);
  for (auto& p : w.pods)  // low-1 newest of its deployment... by creation time
    if (p.deployment == "low") p.created = kNow - std::chrono::seconds(1000 - std::stoi(p.name.substr(4)));
  w.holds = {hold("ptu", 3, 3)};
  auto snap = w.snapshotWithHolds();
  ASSERT_EQ(snap.holds.size(), 1u);
  EXPECT_EQ(snap.holds[0].missingGpus(), 3);
  auto plan = w.reclaim("ptu", {low, high, ptu});
  ASSERT_EQ(plan.evictions.size(), 3u);
  std::vector<std::string> names;
  for (const auto& e : plan.evictions) {
    names.push_back(e.name);
    EXPECT_EQ(e.deployment, "llm/low");
    EXPECT_EQ(e.pool, "h100-eu-west");
    EXPECT_FALSE(e.uid.empty());
  }
  EXPECT_EQ(names, (std::vector<std::string>{"low-7", "low-6", "low-5"}));
  EXPECT_FALSE(plan.pending());
  ASSERT_EQ(plan.pools.size(), 1u);
  EXPECT_EQ(plan.pools[0].missingUnits, 3);
  EXPECT_EQ(plan.pools[0].freedUnits, 3);
  // Once they are gone, the holds get their GPUs and nothing more is evicted.
  std::erase_if(w.pods, [&](const WorkerPod& p) { return p.name == "low-7" || p.name == "low-6" || p.name == "low-5"; });
  auto after = w.snapshotWithHolds();
  EXPECT_EQ(after.holds[0].missingGpus(), 0);
  EXPECT_TRUE(w.reclaim("ptu", {low, high, ptu}).evictions.empty());
  // And the victims' deployment cannot take them back.
  auto again = w.stepWithHolds(low);
  EXPECT_TRUE(again.creates.empty());
  EXPECT_TRUE(again.unschedulable);
  EXPECT_EQ(w.stepWithHolds(ptu).creates.size(), 3u);
}

TEST(PtuReclaim, DisruptionLimitsHoldBackEvictions) {
  HoldWorld w;
  auto low = deployment("low", 16, 1);  // maxUnavailable defaults to 1
  w.step(low);
  w.holds = {hold("ptu", 3, 3)};
  auto plan = w.reclaim("ptu", {low});
  ASSERT_EQ(plan.evictions.size(), 1u);
  EXPECT_TRUE(plan.pending());
  EXPECT_GT(plan.pools[0].blocked, 0);
  // That one being deleted (unavailable) uses the budget: nothing more until it is gone,
  // and its GPU counts as in flight.
  for (auto& p : w.pods)
    if (p.name == plan.evictions[0].name) p.deleting = true;
  auto next = w.reclaim("ptu", {low});
  EXPECT_TRUE(next.evictions.empty());
  EXPECT_EQ(next.pools[0].fittingUnits, 1);
  EXPECT_TRUE(next.pending());
}

TEST(PtuReclaim, NothingToEvictWhenInFlightDeletionsCoverIt) {
  HoldWorld w;
  auto low = deployment("low", 16, 1, {{"maxUnavailable", 4}});
  w.step(low);
  w.holds = {hold("ptu", 2, 2)};
  for (auto& p : w.pods)
    if (p.name == "low-0" || p.name == "low-1") p.deleting = true;
  auto plan = w.reclaim("ptu", {low});
  EXPECT_TRUE(plan.evictions.empty());
  EXPECT_EQ(plan.pools[0].fittingUnits, 2);
  EXPECT_FALSE(plan.pending());
}

TEST(PtuReclaim, AnotherReservationsWorkersAreProtected) {
  HoldWorld w;
  auto other = deployment("other", 16, 1, {{"priority", -100}, {"maxUnavailable", "100%"}});
  w.step(other);
  // "other" holds 15 replicas itself (reservable 8 of 16: the test bypasses admission);
  // only its one unreserved worker may go.
  w.holds = {hold("ptu", 2, 2, "r-ptu"), hold("other", 15, 15, "r-other")};
  auto plan = w.reclaim("ptu", {other});
  ASSERT_EQ(plan.evictions.size(), 1u);
  EXPECT_TRUE(plan.pending());
}

TEST(PtuReclaim, IdleGpusOverTheReservableShareAreNotOccupancy) {
  HoldWorld w;
  w.pools[0].spec.reservableFraction = 0.125;  // 2 of 16 GPUs
  auto low = deployment("low", 4, 1, {{"maxUnavailable", 4}});
  w.step(low);
  w.holds = {hold("ptu", 4, 4)};
  auto snap = w.snapshotWithHolds();
  EXPECT_EQ(snap.holds[0].reservedGpus, 2);
  EXPECT_EQ(snap.holds[0].missingGpus(), 2);
  EXPECT_TRUE(w.reclaim("ptu", {low}).evictions.empty());  // idle GPUs exist: evicting frees nothing new
}

TEST(PtuReclaim, MultiGpuReplicasAreFreedOnOneNode) {
  HoldWorld w;
  auto low = deployment("low", 16, 1, {{"maxUnavailable", "100%"}});
  w.step(low);  // low-0..7 on euw-0, low-8..15 on euw-1
  // The newest alternate between the nodes: counting GPUs alone would free 2 + 2.
  const std::vector<std::string> newestFirst = {"low-0", "low-8", "low-1", "low-9", "low-2", "low-10", "low-3", "low-11"};
  for (auto& p : w.pods) {
    auto it = std::find(newestFirst.begin(), newestFirst.end(), p.name);
    const int rank = it == newestFirst.end() ? 100 : int(it - newestFirst.begin());
    p.created = kNow - std::chrono::seconds(10 + rank);
  }
  w.holds = {hold("ptu", 1, 4)};
  auto plan = w.reclaim("ptu", {low});
  ASSERT_EQ(plan.evictions.size(), 4u);
  for (const auto& e : plan.evictions) EXPECT_EQ(e.node, plan.evictions[0].node) << e.name;
  EXPECT_EQ(plan.pools[0].gpusPerUnit, 4);
  EXPECT_FALSE(plan.pending());
  // Gone: the reserved deployment's 4-GPU replica is placed on that node.
  std::set<std::string> gone;
  for (const auto& e : plan.evictions) gone.insert(e.name);
  std::erase_if(w.pods, [&](const WorkerPod& p) { return gone.count(p.name) > 0; });
  auto p = w.stepWithHolds(deployment("ptu", 1, 4));
  ASSERT_EQ(p.creates.size(), 1u);
  EXPECT_EQ(p.creates[0].assignment.node, plan.evictions[0].node);
}

TEST(PtuReclaim, ABudgetSmallerThanAReplicaProgressesPassByPass) {
  HoldWorld w;
  auto low = deployment("low", 16, 1, {{"maxUnavailable", 2}});
  w.step(low);
  w.holds = {hold("ptu", 1, 4)};
  std::set<std::string> evicted;
  for (int pass = 0; pass < 5; ++pass) {
    auto plan = w.reclaim("ptu", {low});
    if (!plan.pending() && plan.evictions.empty()) break;
    EXPECT_LE(plan.evictions.size(), 2u);
    for (const auto& e : plan.evictions) {
      EXPECT_TRUE(evicted.insert(e.name).second) << e.name << " evicted twice";
      EXPECT_EQ(e.node, "euw-0");
    }
    // The evicted pods finish terminating before the next pass.
    std::erase_if(w.pods, [&](const WorkerPod& p) { return evicted.count(p.name) > 0; });
  }
  EXPECT_EQ(evicted.size(), 4u);
  auto snap = w.snapshotWithHolds();
  EXPECT_EQ(snap.holds[0].missingGpus(), 0);
  EXPECT_EQ(w.stepWithHolds(deployment("ptu", 1, 4)).creates.size(), 1u);
}

TEST(PtuHolds, FromReservationObjectsOnlyActiveAndNotDeleting) {
  auto r = [](const std::string& name, const std::string& phase, bool deleting) {
    json j = {{"metadata", {{"name", name}, {"namespace", "llm"}}},
              {"spec", {{"deploymentRef", {{"name", "ptu"}}}}},
              {"status",
               {{"phase", phase},
                {"placements", json::array({{{"pool", "p1"}, {"replicas", 2}, {"gpus", 2.0}},
                                            {{"pool", "p2"}, {"replicas", 1}, {"gpus", 0.5}}})}}}};
    if (deleting) j["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z";
    return std::make_shared<const json>(j);
  };
  auto holds = holdsFromReservations({r("a", "Active", false), r("b", "Insufficient", false), r("c", "Active", true),
                                      std::make_shared<const json>(json{{"status", "garbage"}})});
  ASSERT_EQ(holds.size(), 2u);
  EXPECT_EQ(holds[0].reservation, "llm/a");
  EXPECT_EQ(holds[0].deployment, "llm/ptu");
  EXPECT_EQ(holds[0].pool, "p1");
  EXPECT_EQ(holds[0].replicas, 2);
  EXPECT_DOUBLE_EQ(holds[1].gpus, 0.5);
}

// ---- hardening: failed creates, pool topology, MIG profiles ----------------------------

TEST(CreateFailures, StatusCountsOnlyTheWorkersThatExist) {
  World w;
  w.step(deployment("llama", 1, 1));  // one worker exists
  auto d = deployment("llama", 3, 1);
  auto snap = w.snapshot();
  auto p = w.plan(d, snap);
  ASSERT_EQ(p.creates.size(), 2u);
  EXPECT_EQ(p.status.scheduledReplicas, 3) << "the plan counts its creates";
  const std::string refused = "Pod \"" + p.creates[1].name + "\" is invalid: " + std::string(5000, 'x');
  recordCreateFailures(p, d, {{p.creates[1].name, refused}}, kNow);
  EXPECT_EQ(p.status.scheduledReplicas, 2) << "1 existing + 1 created";
  EXPECT_EQ(p.status.replicas, 2);
  EXPECT_EQ(p.status.updatedReplicas, 2);
  ASSERT_EQ(p.status.placements.size(), 1u);
  EXPECT_EQ(p.status.placements[0].replicas, 2);
  const auto* s = condition(p, "Scheduled");
  ASSERT_TRUE(s);
  EXPECT_EQ(s->status, api::ConditionStatus::False);
  EXPECT_EQ(s->reason, "WorkerCreateFailed");
  EXPECT_NE(s->message.find(p.creates[1].name + ": Pod"), std::string::npos) << s->message;
  EXPECT_LE(s->message.size(), kMaxFailureMessage + 100) << "the apiserver's message is bounded";
  EXPECT_EQ(condition(p, "Degraded")->status, api::ConditionStatus::True);
  EXPECT_EQ(condition(p, "Degraded")->reason, "WorkerCreateFailed");
  bool warned = false, scaled = false;
  for (const auto& e : p.events) {
    warned |= e.type == "Warning" && e.reason == "WorkerCreateFailed" && e.message == s->message;
    scaled |= e.reason == "Scaled";
  }
  EXPECT_TRUE(warned);
  EXPECT_FALSE(scaled) << "no Scaled Event for creates that did not happen";

  // The same failure again (the retry): the status written before does not change, so
  // nothing is written and the transition time holds.
  d.status = p.status;
  auto snap2 = w.snapshot();
  auto again = w.plan(d, snap2, kNow + 30s);
  recordCreateFailures(again, d, {{again.creates[1].name, refused}}, kNow + 30s);
  EXPECT_EQ(again.status, d.status);

  // No failures: the plan is left as it was.
  auto snap3 = w.snapshot();
  auto ok = w.plan(d, snap3, kNow + 60s);
  auto copy = ok.status;
  recordCreateFailures(ok, d, {}, kNow + 60s);
  EXPECT_EQ(ok.status, copy);
}

TEST(CreateFailures, AllCreatesRefusedLeavesNothingScheduled) {
  World w;
  auto d = deployment("llama", 2, 1);
  auto snap = w.snapshot();
  auto p = w.plan(d, snap);
  ASSERT_EQ(p.creates.size(), 2u);
  recordCreateFailures(p, d, {{p.creates[0].name, "422"}, {p.creates[1].name, "422"}}, kNow);
  EXPECT_EQ(p.status.scheduledReplicas, 0);
  EXPECT_EQ(p.status.replicas, 0);
  EXPECT_TRUE(p.status.placements.empty());
  EXPECT_NE(condition(p, "Scheduled")->message.find("2 of 2 worker creates failed"), std::string::npos);
}

// A pool selecting nodes by a label of its own (not by region): its selector cannot keep
// out nodes whose topology contradicts it.
api::CapacityPool poolBySelector(const std::string& name, const std::string& region, const std::string& zone) {
  auto p = pool(name, region, zone);
  p.spec.nodeSelector.matchLabels = {{"waterline.dev/shape", "h100"}};
  return p;
}

NodeView labelledNode(const std::string& name, const std::string& region, const std::string& zone,
                      const std::string& dataZone) {
  json j = {{"metadata",
             {{"name", name},
              {"labels",
               {{"topology.kubernetes.io/region", region},
                {"topology.kubernetes.io/zone", zone},
                {"waterline.dev/data-zone", dataZone},
                {"waterline.dev/shape", "h100"},
                {"nvidia.com/gpu.product", kH100},
                {"nvidia.com/gpu.count", "8"}}}}},
            {"status",
             {{"conditions", json::array({{{"type", "Ready"}, {"status", "True"}}})},
              {"allocatable", {{"nvidia.com/gpu", "8"}}}}}};
  return NodeView::fromJson(j);
}

TEST(PoolTopology, NodesContradictingThePoolAreFlaggedAndNotUsed) {
  World w;
  w.pools = {poolBySelector("h100-eu", "eu-west", "EU")};
  w.nodes = {labelledNode("euw-0", "eu-west", "eu-west-a", "EU"), labelledNode("use-0", "us-east", "us-east-a", "US")};
  EXPECT_EQ(topologyMismatch(w.pools[0], w.nodes[0]), "");
  EXPECT_NE(topologyMismatch(w.pools[0], w.nodes[1]).find("region \"us-east\""), std::string::npos);
  EXPECT_NE(topologyMismatch(w.pools[0], labelledNode("x", "eu-west", "us-east-a", "EU")).find("zone"),
            std::string::npos);
  EXPECT_NE(topologyMismatch(w.pools[0], labelledNode("x", "eu-west", "eu-west-a", "US")).find("data zone"),
            std::string::npos);

  PoolStatusInput in;
  in.pool = &w.pools[0];
  in.nodes = w.nodes;
  auto plan = planPoolStatus(in, kNow);
  EXPECT_EQ(plan.mismatchedNodes, std::vector<std::string>{"use-0"});
  EXPECT_EQ(plan.status.gpus.allocatable, 8) << "the us-east node's GPUs are not usable";
  const auto* deg = api::findCondition(plan.status.conditions, "Degraded");
  ASSERT_TRUE(deg);
  EXPECT_EQ(deg->status, api::ConditionStatus::True);
  EXPECT_EQ(deg->reason, "TopologyMismatch");
  EXPECT_NE(deg->message.find("use-0"), std::string::npos) << deg->message;
  EXPECT_EQ(api::findCondition(plan.status.conditions, "Ready")->status, api::ConditionStatus::True);

  // EU work: 2 replicas of 8 GPUs; only the eu-west node may take one.
  auto d = deployment("eu-only", 2, 8, {{"deploymentType", "DataZone"}, {"dataZone", "EU"}, {"region", nullptr}});
  d.spec.region.reset();
  auto snap = w.snapshot();
  auto p = w.plan(d, snap);
  ASSERT_EQ(p.creates.size(), 1u);
  EXPECT_EQ(p.creates[0].assignment.node, "euw-0");
  EXPECT_TRUE(p.unschedulable);

  // Every node contradicts the pool: not Ready.
  in.nodes = {w.nodes[1]};
  auto all = planPoolStatus(in, kNow);
  EXPECT_EQ(api::findCondition(all.status.conditions, "Ready")->status, api::ConditionStatus::False);
  EXPECT_EQ(api::findCondition(all.status.conditions, "Ready")->reason, "TopologyMismatch");

  // Nodes without topology labels are not judged.
  EXPECT_EQ(topologyMismatch(w.pools[0], migMixedNode("plain", 8)), "");
}

TEST(PoolMigProfiles, ProfilesTheProductDoesNotHaveAreFlagged) {
  World w;
  auto mig = w.pools[0];
  mig.spec.sharing.mode = api::SharingMode::MIG;
  mig.spec.sharing.migProfiles = {"1g.10gb", "3g.40gb"};
  EXPECT_TRUE(unsupportedMigProfiles(mig).empty()) << "H100 80GB has both";
  PoolStatusInput in;
  in.pool = &mig;
  in.nodes = w.nodes;
  auto ok = planPoolStatus(in, kNow);
  EXPECT_EQ(api::findCondition(ok.status.conditions, "Degraded")->reason, "AllHealthy");

  mig.spec.sharing.migProfiles = {"1g.10gb", "2g.35gb", "1g.5gb"};
  EXPECT_EQ(unsupportedMigProfiles(mig), (std::vector<std::string>{"2g.35gb", "1g.5gb"}));
  auto some = planPoolStatus(in, kNow);
  const auto* deg = api::findCondition(some.status.conditions, "Degraded");
  EXPECT_EQ(deg->status, api::ConditionStatus::True);
  EXPECT_EQ(deg->reason, "UnsupportedMigProfile");
  EXPECT_NE(deg->message.find("2g.35gb, 1g.5gb"), std::string::npos) << deg->message;
  EXPECT_EQ(api::findCondition(some.status.conditions, "Ready")->status, api::ConditionStatus::True)
      << "1g.10gb still places";

  mig.spec.sharing.migProfiles = {"2g.35gb"};
  auto none = planPoolStatus(in, kNow);
  EXPECT_EQ(api::findCondition(none.status.conditions, "Ready")->status, api::ConditionStatus::False);
  EXPECT_EQ(api::findCondition(none.status.conditions, "Ready")->reason, "UnsupportedMigProfile");

  // A product without MIG: every profile is unsupported.
  mig.spec.gpuProduct = "NVIDIA-L40S";
  mig.spec.sharing.migProfiles = {"1g.10gb"};
  EXPECT_EQ(unsupportedMigProfiles(mig), std::vector<std::string>{"1g.10gb"});
  // Not a MIG pool: nothing to check.
  mig.spec.sharing.mode = api::SharingMode::Exclusive;
  EXPECT_TRUE(unsupportedMigProfiles(mig).empty());
}

}  // namespace
}  // namespace waterline::planners

namespace waterline::planners {
namespace {

// spec.cache: CacheReady says whether the router can use the cache as configured; a
// missing embeddings deployment is False with a Warning on the transition only; without
// spec.cache the condition goes.
TEST(DeploymentPlanner, CacheReadyConditionAndItsEvent) {
  World w;
  auto d = deployment("llama", 1, 1);
  auto planWith = [&](bool missing) {
    auto snap = w.snapshot();
    DeploymentPlanInput in;
    in.deployment = &d;
    in.nodes = w.nodes;
    in.inventory = &snap.inventory;
    in.embeddingsDeploymentMissing = missing;
    return planDeployment(in, kNow);
  };
  auto warnings = [](const DeploymentPlan& p) {
    int n = 0;
    for (const auto& e : p.events) n += e.reason == "EmbeddingsDeploymentNotFound" && e.type == "Warning";
    return n;
  };
  EXPECT_EQ(condition(planWith(false), "CacheReady"), nullptr);

  api::CacheSpec c;
  c.mode = api::CacheMode::Semantic;
  c.embeddingsDeploymentRef = api::LocalObjectReference{"embed"};
  d.spec.cache = c;
  auto missing = planWith(true);
  const auto* cr = condition(missing, "CacheReady");
  ASSERT_NE(cr, nullptr);
  EXPECT_EQ(cr->status, api::ConditionStatus::False);
  EXPECT_EQ(cr->reason, "EmbeddingsDeploymentNotFound");
  EXPECT_NE(cr->message.find("llm/embed"), std::string::npos) << cr->message;
  EXPECT_EQ(warnings(missing), 1);
  // Still missing on the next reconcile: the condition stays, no second Warning.
  d.status = missing.status;
  auto again = planWith(true);
  EXPECT_EQ(condition(again, "CacheReady")->reason, "EmbeddingsDeploymentNotFound");
  EXPECT_EQ(warnings(again), 0);
  // The embeddings deployment appears.
  d.status = again.status;
  auto found = planWith(false);
  EXPECT_EQ(condition(found, "CacheReady")->status, api::ConditionStatus::True);
  EXPECT_EQ(condition(found, "CacheReady")->reason, "CacheConfigured");
  EXPECT_EQ(warnings(found), 0);
  // spec.cache removed: no condition.
  d.status = found.status;
  d.spec.cache.reset();
  EXPECT_EQ(condition(planWith(false), "CacheReady"), nullptr);
}

}  // namespace
}  // namespace waterline::planners
