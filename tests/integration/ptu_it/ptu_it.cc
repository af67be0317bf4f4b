// PTUReservation end to end against the fixture's kube-apiserver with kwok GPU nodes (the
// operator binary as a child process). Nodes are isolated by a name prefix
// (hack/fixtures/gpu-nodes.sh --prefix) and a pool selecting that prefix.
#include "procs.h"
#include "waterline/api/meta.h"
#include "waterline/scheduling/annotation.h"

#include <set>

namespace waterline {
namespace {

using namespace std::chrono_literals;
using kube::Json;

std::string fixture() {
  return "bash " + it::sourceDir() + "/hack/fixtures/gpu-nodes.sh --kubeconfig " + it::env("WATERLINE_TEST_KUBECONFIG") +
         " --profile small";
}

// Prefixed kwok nodes (2 eu-west nodes x 8 H100), a pool over them with
// reservableFraction 0.5 (8 GPUs reservable), a namespace and a deployment of 4-GPU
// replicas at 1000 tokens/min each, with no replicas of its own.
struct World {
  std::shared_ptr<kube::RestClient> c;
  std::string prefix = it::uniqueName("p");
  std::string ns = it::uniqueName("ptu");
  std::string pool = it::uniqueName("h100-euw");
  std::vector<std::string> extraNodes;

  explicit World(std::shared_ptr<kube::RestClient> client) : c(std::move(client)) {
    EXPECT_EQ(it::run(fixture() + " --prefix " + prefix + " >/dev/null"), 0);
    EXPECT_TRUE(c->create(kube::kinds::Namespace, "", {{"apiVersion", "v1"}, {"kind", "Namespace"}, {"metadata", {{"name", ns}}}}));
    Json p = {{"apiVersion", "waterline.dev/v1alpha1"},
              {"kind", "CapacityPool"},
              {"metadata", {{"name", pool}}},
              {"spec",
               {{"region", "eu-west"},
                {"dataZone", "EU"},
                {"gpuProduct", "NVIDIA-H100-80GB-HBM3"},
                {"reservableFraction", 0.5},
                {"nodeSelector",
                 {{"matchLabels", {{"topology.kubernetes.io/region", "eu-west"}, {"waterline.dev/fixture-prefix", prefix}}}}}}}};
    EXPECT_TRUE(c->apply(kube::kinds::CapacityPool, "", p, {"it-test", true, ""}));
    Json d = {{"apiVersion", "waterline.dev/v1alpha1"},
              {"kind", "ModelDeployment"},
              {"metadata", {{"name", "llama"}, {"namespace", ns}}},
              {"spec",
               {{"model", {{"name", "meta-llama/Llama-3.1-70B-Instruct"}, {"version", "v1"}}},
                {"region", "eu-west"},
                {"template", {{"spec", {{"image", "vllm/vllm-openai:v0.6.3"}, {"ports", {{{"containerPort", 8000}}}}}}}},
                {"gpu", {{"count", 4}}},
                {"replicas", 0},
                {"throughput", {{"tokensPerMinutePerReplica", 1000}}}}}};
    EXPECT_TRUE(c->apply(kube::kinds::ModelDeployment, ns, d, {"it-test", true, ""}));
  }
  ~World() {
    // Reservations first (the operator may be gone: drop the finalizer).
    if (auto l = c->list(kube::kinds::PTUReservation, ns))
      for (const auto& r : l->items) {
        const std::string name = r["metadata"]["name"];
        (void)c->patch(kube::kinds::PTUReservation, ns, name, kube::PatchType::Merge, R"({"metadata":{"finalizers":null}})");
        (void)c->remove(kube::kinds::PTUReservation, ns, name);
      }
    if (auto l = c->list(kube::kinds::ModelDeployment, ns))
      for (const auto& d : l->items) (void)c->remove(kube::kinds::ModelDeployment, ns, d["metadata"]["name"]);
    kube::DeleteOptions now;
    now.gracePeriodSeconds = 0;
    if (auto l = c->list(kube::kinds::Pod, ns))
      for (const auto& p : l->items) (void)c->remove(kube::kinds::Pod, ns, p["metadata"]["name"], now);
    (void)c->remove(kube::kinds::CapacityPool, "", pool);
    for (const auto& n : extraNodes) (void)c->remove(kube::kinds::Node, "", n);
    (void)it::run(fixture() + " --prefix " + prefix + " --delete >/dev/null 2>&1");
    (void)c->remove(kube::kinds::Namespace, "", ns);
  }
  void addNode(const std::string& suffix) {
    const std::string name = prefix + "-euw-h100-" + suffix;
    auto base = c->get(kube::kinds::Node, "", prefix + "-euw-h100-0");
    ASSERT_TRUE(base);
    Json n = {{"apiVersion", "v1"},
              {"kind", "Node"},
              {"metadata", {{"name", name}, {"labels", (*base)["metadata"]["labels"]},
                            {"annotations", {{"kwok.x-k8s.io/node", "fake"}}}}},
              {"spec", Json::object()},
              {"status", {{"capacity", (*base)["status"]["capacity"]}, {"allocatable", (*base)["status"]["allocatable"]}}}};
    n["metadata"]["labels"]["kubernetes.io/hostname"] = name;
    ASSERT_TRUE(c->create(kube::kinds::Node, "", n));
    extraNodes.push_back(name);
  }
  void reserve(const std::string& name, int units, Json extra = Json::object()) {
    Json spec = {{"deploymentRef", {{"name", "llama"}}},
                 {"units", units},
                 {"tokensPerMinutePerUnit", 1000},
                 {"scope", {{"type", "Regional"}, {"region", "eu-west"}}}};
    spec.update(extra);
    Json r = {{"apiVersion", "waterline.dev/v1alpha1"},
              {"kind", "PTUReservation"},
              {"metadata", {{"name", name}, {"namespace", ns}}},
              {"spec", spec}};
    ASSERT_TRUE(c->apply(kube::kinds::PTUReservation, ns, r, {"it-test", true, ""}));
  }
  Json ptu(const std::string& name) {
    auto g = c->get(kube::kinds::PTUReservation, ns, name);
    return g ? *g : Json::object();
  }
  std::string phase(const std::string& name) {
    auto r = ptu(name);
    return r.contains("status") ? r["status"].value("phase", "") : "";
  }
  Json cond(const std::string& name, const std::string& type) {
    auto r = ptu(name);
    if (r.contains("status") && r["status"].contains("conditions"))
      for (const auto& x : r["status"]["conditions"])
        if (x.value("type", "") == type) return x;
    return Json::object();
  }
  int poolGpus(const std::string& field) {
    auto p = c->get(kube::kinds::CapacityPool, "", pool);
    if (!p || !p->contains("status") || !(*p)["status"].contains("gpus")) return -1;
    return (*p)["status"]["gpus"].value(field, 0);
  }
};

TEST(PtuIT, InsufficientThenActiveWhenCapacityAppearsThenReleasedOnDelete) {
  WL_CLIENT_OR_SKIP(client);
  World w(client);
  it::Operator op;
  op.start({});
  ASSERT_TRUE(it::eventually([&] { return w.poolGpus("allocatable") == 16; }, 60s)) << op.logText();
  // 3 units x 1000 tokens/min = 3 replicas of 4 GPUs = 12 GPUs; reservable 0.5 x 16 = 8.
  w.reserve("r1", 3);
  // The operator's pool and reservation watches are separate streams: a first admission
  // may still see the pool without its GPUs; the pool's update re-admits (level-based).
  ASSERT_TRUE(it::eventually([&] {
    return w.phase("r1") == "Insufficient" &&
           w.cond("r1", "Insufficient").value("message", "").find("missing 1 replicas") != std::string::npos;
  }, 60s)) << w.ptu("r1").dump() << op.logText();
  auto ins = w.cond("r1", "Insufficient");
  EXPECT_EQ(ins.value("status", ""), "True");
  EXPECT_EQ(ins.value("reason", ""), "InsufficientCapacity");
  const std::string msg = ins.value("message", "");
  EXPECT_NE(msg.find("needs 3 replicas (12 GPUs)"), std::string::npos) << msg;
  EXPECT_NE(msg.find("missing 1 replicas (4 GPUs)"), std::string::npos) << msg;
  EXPECT_NE(msg.find(w.pool + " 8 of 8 reservable GPUs free"), std::string::npos) << msg;
  EXPECT_EQ(w.ptu("r1")["status"].value("reservedReplicas", -1), 0);
  EXPECT_EQ(w.poolGpus("reserved"), 0);
  // The finalizer is on.
  EXPECT_NE(w.ptu("r1")["metadata"]["finalizers"].dump().find("waterline.dev/finalizer"), std::string::npos);

  // A third node: 24 allocatable, 12 reservable: the reservation activates by itself.
  w.addNode("9");
  ASSERT_TRUE(it::eventually([&] { return w.phase("r1") == "Active"; }, 60s)) << w.ptu("r1").dump() << op.logText();
  auto st = w.ptu("r1")["status"];
  EXPECT_EQ(st.value("reservedReplicas", 0), 3);
  EXPECT_EQ(st.value("provisionedTokensPerMinute", 0), 3000);
  ASSERT_EQ(st["placements"].size(), 1u);
  EXPECT_EQ(st["placements"][0].value("pool", ""), w.pool);
  EXPECT_EQ(st["placements"][0].value("replicas", 0), 3);
  EXPECT_EQ(w.cond("r1", "Ready").value("status", ""), "True");
  EXPECT_EQ(w.cond("r1", "Insufficient").value("status", ""), "False");
  EXPECT_NE(st.value("unitHoursConsumed", "0"), "0");  // the first started minute is billed
  EXPECT_TRUE(st.contains("lastAccrualTime"));
  ASSERT_TRUE(it::eventually([&] { return w.poolGpus("reserved") == 12; }, 30s)) << op.logText();

  // A second reservation adds up but does not take from the first: 1 more replica needs
  // 4 GPUs and none are left.
  w.reserve("r2", 1);
  ASSERT_TRUE(it::eventually([&] { return w.phase("r2") == "Insufficient"; }, 30s)) << w.ptu("r2").dump();
  EXPECT_EQ(w.phase("r1"), "Active");

  // Deleting r1 releases its capacity (finalizer removed), and r2 activates.
  ASSERT_TRUE(client->remove(kube::kinds::PTUReservation, w.ns, "r1"));
  ASSERT_TRUE(it::eventually([&] { return !client->get(kube::kinds::PTUReservation, w.ns, "r1"); }, 30s)) << op.logText();
  ASSERT_TRUE(it::eventually([&] { return w.phase("r2") == "Active"; }, 30s)) << w.ptu("r2").dump();
  ASSERT_TRUE(it::eventually([&] { return w.poolGpus("reserved") == 4; }, 30s)) << op.logText();
}

TEST(PtuIT, PendingBeforeStartExpiredAfterEnd) {
  WL_CLIENT_OR_SKIP(client);
  World w(client);
  it::Operator op;
  op.start({});
  ASSERT_TRUE(it::eventually([&] { return w.poolGpus("allocatable") == 16; }, 60s)) << op.logText();
  const auto now = std::chrono::system_clock::now();
  w.reserve("later", 1, {{"startTime", api::formatTime(now + 1h)}});
  w.reserve("short", 1, {{"startTime", api::formatTime(now - 1h)}, {"endTime", api::formatTime(now + 8s)}});
  ASSERT_TRUE(it::eventually([&] { return w.phase("later") == "Pending"; }, 30s)) << w.ptu("later").dump() << op.logText();
  EXPECT_EQ(w.cond("later", "Ready").value("reason", ""), "NotStarted");
  EXPECT_EQ(w.ptu("later")["status"].value("reservedReplicas", -1), 0);
  ASSERT_TRUE(it::eventually([&] { return w.phase("short") == "Active"; }, 30s)) << w.ptu("short").dump();
  ASSERT_TRUE(it::eventually([&] { return w.poolGpus("reserved") == 4; }, 30s));
  // endTime passes: Expired by the requeue alone, capacity released.
  ASSERT_TRUE(it::eventually([&] { return w.phase("short") == "Expired"; }, 30s)) << w.ptu("short").dump();
  EXPECT_EQ(w.cond("short", "Ready").value("reason", ""), "Expired");
  EXPECT_EQ(w.ptu("short")["status"].value("reservedReplicas", -1), 0);
  EXPECT_EQ(w.ptu("short")["status"].value("provisionedTokensPerMinute", -1), 0);
  EXPECT_NE(w.ptu("short")["status"].value("unitHoursConsumed", "0"), "0");
  ASSERT_TRUE(it::eventually([&] { return w.poolGpus("reserved") == 0; }, 30s));
}

TEST(PtuIT, ActiveReservationsFloorAnAutoscaledDeployment) {
  WL_CLIENT_OR_SKIP(client);
  World w(client);
  it::Operator op;
  op.start({"--autoscaler-sync-period=1s"});  // no Prometheus: the autoscaler holds, within its bounds
  ASSERT_TRUE(it::eventually([&] { return w.poolGpus("allocatable") == 16; }, 60s)) << op.logText();
  Json d = {{"apiVersion", "waterline.dev/v1alpha1"},
            {"kind", "ModelDeployment"},
            {"metadata", {{"name", "auto"}, {"namespace", w.ns}}},
            {"spec",
             {{"model", {{"name", "meta-llama/Llama-3.1-70B-Instruct"}, {"version", "v1"}}},
              {"region", "eu-west"},
              {"template", {{"spec", {{"image", "vllm/vllm-openai:v0.6.3"}, {"ports", {{{"containerPort", 8000}}}}}}}},
              {"gpu", {{"count", 4}}},
              {"drainSeconds", 0},
              {"replicas", 0},
              {"minReplicas", 0},
              {"maxReplicas", 6},
              {"autoscaling", {{"enabled", true}, {"targetPerReplica", 100}}},
              {"throughput", {{"tokensPerMinutePerReplica", 1000}}}}}};
  ASSERT_TRUE(client->apply(kube::kinds::ModelDeployment, w.ns, d, {"it-test", true, ""}));
  // Two reservations of one replica each (1 unit x 1000 tokens/min): they add up to 2.
  for (const std::string name : {"f1", "f2"}) {
    Json r = {{"apiVersion", "waterline.dev/v1alpha1"},
              {"kind", "PTUReservation"},
              {"metadata", {{"name", name}, {"namespace", w.ns}}},
              {"spec",
               {{"deploymentRef", {{"name", "auto"}}},
                {"units", 1},
                {"tokensPerMinutePerUnit", 1000},
                {"scope", {{"type", "Regional"}, {"region", "eu-west"}}}}}};
    ASSERT_TRUE(client->apply(kube::kinds::PTUReservation, w.ns, r, {"it-test", true, ""}));
  }
  ASSERT_TRUE(it::eventually([&] { return w.phase("f1") == "Active" && w.phase("f2") == "Active"; }, 30s))
      << w.ptu("f1").dump() << w.ptu("f2").dump() << op.logText();
  auto replicas = [&] {
    auto m = client->get(kube::kinds::ModelDeployment, w.ns, "auto");
    return m ? (*m)["spec"].value("replicas", -1) : -1;
  };
  ASSERT_TRUE(it::eventually([&] { return replicas() == 2; }, 30s)) << op.logText();
  // The raise is a rescale Event (the ScalingLimited=TooFewReplicas condition of that
  // evaluation lasts one sync period: the next one holds the count within range).
  EXPECT_TRUE(it::eventually([&] {
    if (auto l = client->list(kube::kinds::CoreEvent, w.ns))
      for (const auto& e : l->items)
        if (e["involvedObject"].value("name", "") == "auto" && e.value("reason", "") == "SuccessfulRescale" &&
            e.value("message", "").rfind("from 0 to ", 0) == 0)
          return true;
    return false;
  }, 20s));
  // One reservation gone: the floor is 1, but a missing metric never scales down.
  ASSERT_TRUE(client->remove(kube::kinds::PTUReservation, w.ns, "f2"));
  ASSERT_TRUE(it::eventually([&] { return !client->get(kube::kinds::PTUReservation, w.ns, "f2"); }, 30s));
  std::this_thread::sleep_for(3s);
  EXPECT_EQ(replicas(), 2);
}

// Pay-as-you-go workers fill the pool; a reservation that activates takes its GPUs back:
// the lowest-priority deployment's workers are evicted (Eviction API), at most its
// maxUnavailable at a time, the higher-priority one keeps every worker, the reserved
// deployment (no autoscaling) is raised to its floor and placed, and nothing is ever
// double-allocated. The victims' deployment cannot take the GPUs back.
TEST(PtuIT, ActivationReclaimsCapacityFromLowerPriorityPayAsYouGoWorkers) {
  WL_CLIENT_OR_SKIP(client);
  World w(client);
  it::Operator op;
  op.start({});
  ASSERT_TRUE(it::eventually([&] { return w.poolGpus("allocatable") == 16; }, 60s)) << op.logText();
  auto payg = [&](const std::string& name, int priority) {
    Json d = {{"apiVersion", "waterline.dev/v1alpha1"},
              {"kind", "ModelDeployment"},
              {"metadata", {{"name", name}, {"namespace", w.ns}}},
              {"spec",
               {{"model", {{"name", "meta-llama/Llama-3.1-8B-Instruct"}, {"version", "v1"}}},
                {"region", "eu-west"},
                {"template", {{"spec", {{"image", "vllm/vllm-openai:v0.6.3"}, {"ports", {{{"containerPort", 8000}}}}}}}},
                {"gpu", {{"count", 1}}},
                {"replicas", 8},
                {"priority", priority},
                {"maxUnavailable", 3}}}};
    ASSERT_TRUE(client->apply(kube::kinds::ModelDeployment, w.ns, d, {"it-test", true, ""}));
  };
  payg("low", -10);
  ASSERT_TRUE(it::eventually([&] { return w.poolGpus("free") == 8; }, 60s)) << op.logText();
  payg("high", 10);
  auto pods = [&](const std::string& deployment) {
    std::vector<Json> out;
    kube::ListOptions lo;
    lo.labelSelector = "waterline.dev/deployment=" + deployment;
    if (auto l = client->list(kube::kinds::Pod, w.ns, lo)) out = l->items;
    return out;
  };
  auto running = [&](const std::string& deployment) {
    int n = 0;
    for (const auto& p : pods(deployment))
      if (!p["metadata"].contains("deletionTimestamp") && p.contains("status") &&
          p["status"].value("phase", "") == "Running")
        ++n;
    return n;
  };
  ASSERT_TRUE(it::eventually([&] { return running("low") == 8 && running("high") == 8; }, 60s)) << op.logText();
  ASSERT_TRUE(it::eventually([&] { return w.poolGpus("free") == 0; }, 30s)) << op.logText();
  std::set<std::string> highUids;
  for (const auto& p : pods("high")) highUids.insert(p["metadata"].value("uid", ""));

  // 2 units x 1000 tokens/min = 2 replicas of 4 GPUs = 8 GPUs (the reservable half).
  w.reserve("r1", 2);
  ASSERT_TRUE(it::eventually([&] { return w.phase("r1") == "Active"; }, 30s)) << w.ptu("r1").dump() << op.logText();
  // Watch the victims while the reclaim runs: never more than maxUnavailable (3) of
  // "low" going at once.
  int maxDeleting = 0;
  ASSERT_TRUE(it::eventually([&] {
    int deleting = 0;
    for (const auto& p : pods("low")) deleting += p["metadata"].contains("deletionTimestamp") ? 1 : 0;
    maxDeleting = std::max(maxDeleting, deleting);
    return running("llama") == 2;
  }, 90s)) << w.ptu("r1").dump() << op.logText();
  EXPECT_LE(maxDeleting, 3);
  // The reserved deployment has no autoscaling and replicas 0: the floor raised it.
  auto llama = client->get(kube::kinds::ModelDeployment, w.ns, "llama");
  ASSERT_TRUE(llama);
  EXPECT_EQ((*llama)["status"].value("desiredReplicas", -1), 2);
  // The lower-priority deployment lost 8 GPUs' worth, the higher one nothing.
  ASSERT_TRUE(it::eventually([&] { return running("low") == 0 && pods("low").empty(); }, 30s)) << op.logText();
  std::set<std::string> highNow;
  for (const auto& p : pods("high")) highNow.insert(p["metadata"].value("uid", ""));
  EXPECT_EQ(highNow, highUids);
  // It waits for capacity and does not take the reserved GPUs back.
  std::this_thread::sleep_for(3s);
  EXPECT_EQ(running("low"), 0);
  auto low = client->get(kube::kinds::ModelDeployment, w.ns, "low");
  ASSERT_TRUE(low);
  bool waiting = false;
  for (const auto& c : (*low)["status"].value("conditions", Json::array()))
    waiting |= c.value("type", "") == "Scheduled" && c.value("status", "") == "False";
  EXPECT_TRUE(waiting) << low->dump();
  // No GPU is held twice.
  std::set<std::string> gpus;
  int held = 0;
  for (const auto& d : {"llama", "low", "high"})
    for (const auto& p : pods(d)) {
      if (p["metadata"].contains("deletionTimestamp")) continue;
      auto a = scheduling::decodeAssignment(p["metadata"]["annotations"].value("waterline.dev/gpu-assignment", ""));
      ASSERT_TRUE(a) << p.dump();
      for (int g : a->gpus) {
        ++held;
        gpus.insert(a->node + "/" + std::to_string(g));
      }
    }
  EXPECT_EQ(held, 16);
  EXPECT_EQ(gpus.size(), 16u);
  // Events: on the reservation and on the victims' deployment.
  auto hasEvent = [&](const std::string& object, const std::string& reason) {
    if (auto l = client->list(kube::kinds::CoreEvent, w.ns))
      for (const auto& e : l->items)
        if (e["involvedObject"].value("name", "") == object && e.value("reason", "") == reason) return true;
    return false;
  };
  EXPECT_TRUE(it::eventually([&] { return hasEvent("r1", "Reclaimed") && hasEvent("low", "Preempted"); }, 10s));
}

}  // namespace
}  // namespace waterline
