#pragma once
// The world of a ModelDeployment integration test (md_it.cc, repair_it.cc): prefixed
// kwok GPU nodes (hack/fixtures/gpu-nodes.sh --prefix), a namespace, and a pool over the
// prefixed eu-west H100 nodes (2 nodes x 8 GPUs); everything is deleted afterwards
// (this control plane has no garbage collector).
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <map>
#include <set>
#include <string>
#include <vector>

#include "it_support.h"
#include "operator_process.h"
#include "waterline/scheduling/annotation.h"

namespace waterline::mdit {

using namespace std::chrono_literals;
using kube::Json;

inline std::string sourceDir() {
  auto v = it::env("WATERLINE_SOURCE_DIR");
  return v.empty() ? WL_SOURCE_DIR : v;
}

// The operator without leader election (one process at a time).
struct OperatorProcess : it::OperatorProcess {
  void start() { it::OperatorProcess::start({"--leader-elect=false"}); }
};

inline std::string fixture() { return "bash " + sourceDir() + "/hack/fixtures/gpu-nodes.sh --kubeconfig " + it::env("WATERLINE_TEST_KUBECONFIG") + " --profile small"; }

// A test's world: prefixed kwok nodes, a namespace, a pool over the prefixed eu-west
// H100 nodes (2 nodes x 8 GPUs).
struct World {
  std::shared_ptr<kube::RestClient> c;
  std::string prefix = it::uniqueName("m");
  std::string ns = it::uniqueName("md");
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
                {"nodeSelector",
                 {{"matchLabels",
                   {{"topology.kubernetes.io/region", "eu-west"}, {"waterline.dev/fixture-prefix", prefix}}}}}}}};
    EXPECT_TRUE(c->apply(kube::kinds::CapacityPool, "", p, {"it-test", true, ""}));
  }
  ~World() {
    (void)c->remove(kube::kinds::CapacityPool, "", pool);
    if (auto l = c->list(kube::kinds::ModelDeployment, ns))
      for (const auto& d : l->items) (void)c->remove(kube::kinds::ModelDeployment, ns, d["metadata"]["name"]);
    deleteAllPods();
    for (const auto& n : extraNodes) (void)c->remove(kube::kinds::Node, "", n);
    (void)it::run(fixture() + " --prefix " + prefix + " --delete >/dev/null 2>&1");
    (void)c->remove(kube::kinds::Namespace, "", ns);
  }
  void deleteAllPods() {
    kube::DeleteOptions now;
    now.gracePeriodSeconds = 0;
    if (auto l = c->list(kube::kinds::Pod, ns))
      for (const auto& p : l->items) (void)c->remove(kube::kinds::Pod, ns, p["metadata"]["name"], now);
  }
  // Adds one more 8x H100 node to the pool (same shape as the fixture's).
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
  Json deployment(const std::string& name, int replicas, int gpus, int drainSeconds = 2) {
    return {{"apiVersion", "waterline.dev/v1alpha1"},
            {"kind", "ModelDeployment"},
            {"metadata", {{"name", name}, {"namespace", ns}}},
            {"spec",
             {{"model", {{"name", "meta-llama/Llama-3.1-8B-Instruct"}, {"version", "v1"}}},
              {"region", "eu-west"},
              {"template", {{"spec", {{"image", "vllm/vllm-openai:v0.6.3"}, {"ports", {{{"containerPort", 8000}}}}}}}},
              {"gpu", {{"count", gpus}, {"product", "NVIDIA-H100-80GB-HBM3"}}},
              {"drainSeconds", drainSeconds},
              {"replicas", replicas}}}};
  }
  void apply(const Json& d) { ASSERT_TRUE(c->apply(kube::kinds::ModelDeployment, ns, d, {"it-test", true, ""})); }
  void scale(const std::string& name, int replicas) {
    Json patch = {{"spec", {{"replicas", replicas}}}};
    ASSERT_TRUE(c->patch(kube::kinds::ModelDeployment, ns, name, kube::PatchType::Merge, patch.dump()));
  }
  std::vector<Json> pods(const std::string& deployment = "") {
    kube::ListOptions o;
    if (!deployment.empty()) o.labelSelector = "waterline.dev/deployment=" + deployment;
    auto l = c->list(kube::kinds::Pod, ns, o);
    return l ? l->items : std::vector<Json>{};
  }
  Json md(const std::string& name) {
    auto g = c->get(kube::kinds::ModelDeployment, ns, name);
    return g ? *g : Json::object();
  }
  Json conditionOf(const std::string& name, const std::string& type) {
    auto m = md(name);
    if (m.contains("status") && m["status"].contains("conditions"))
      for (const auto& c : m["status"]["conditions"])
        if (c.value("type", "") == type) return c;
    return Json::object();
  }
  int statusInt(const std::string& name, const std::string& field) {
    auto m = md(name);
    return m.contains("status") ? m["status"].value(field, 0) : 0;
  }
};

inline bool isReady(const Json& p) {
  if (!p.contains("status") || !p["status"].contains("conditions")) return false;
  for (const auto& c : p["status"]["conditions"])
    if (c.value("type", "") == "Ready") return c.value("status", "") == "True";
  return false;
}

// Decodes every pod's assignment; fails the test on a GPU held twice.
inline void expectNoDoubleBooking(const std::vector<Json>& pods) {
  std::map<std::pair<std::string, int>, std::string> held;
  for (const auto& p : pods) {
    std::string ann = p["metadata"]["annotations"].value("waterline.dev/gpu-assignment", "");
    auto a = scheduling::decodeAssignment(ann);
    ASSERT_TRUE(a) << ann;
    EXPECT_EQ(a->node, p["spec"].value("nodeName", ""));
    for (int g : a->gpus) {
      auto [it, fresh] = held.insert({{a->node, g}, p["metadata"]["name"]});
      EXPECT_TRUE(fresh) << "GPU " << a->node << "/" << g << " held by " << it->second << " and "
                         << p["metadata"]["name"];
    }
  }
}

// waterline-sim flags for a stand-in worker of `deployment` in the world's pool (the labels
// of the pod the operator creates) serving vLLM token counters under a Poisson load of
// ~4 requests/s of ~200 prompt + 8 output tokens.
inline std::vector<std::string> tokenLoadSimArgs(const World& w, const std::string& deployment, int seed) {
  return {"--worker", "pod=" + deployment + "-sim,namespace=" + w.ns + ",deployment=" + deployment + ",pool=" + w.pool +
                          ",gpu=H100,tp=4,model=llama2-70b",
          "--load", "poisson", "--poisson-rate", "4", "--mean-input", "200", "--mean-output", "8",
          "--seed", std::to_string(seed), "--load-deployment", deployment};
}

}  // namespace waterline::mdit
