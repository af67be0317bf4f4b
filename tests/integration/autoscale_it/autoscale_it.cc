// The autoscaler controller end to end: the operator binary against the fixture's
// kube-apiserver, a real Prometheus scraping waterline-sim, which serves vLLM metrics for
// a Poisson load. No GPU nodes are needed: the test watches spec.replicas (what the
// autoscaler writes), the conditions, Events and the operator's /metrics.
#include <map>

#include "procs.h"

namespace waterline {
namespace {

using namespace std::chrono_literals;
using kube::Json;

// Offered prompt tokens per second of the deployment (the sim counts them at admission).
const std::string kRateQuery =
    R"(sum(rate(vllm:prompt_tokens_total{namespace="{{namespace}}",deployment="{{deployment}}"}[10s])))";

struct Env {
  std::shared_ptr<kube::RestClient> c;
  std::string ns = it::uniqueName("as");
  explicit Env(std::shared_ptr<kube::RestClient> client) : c(std::move(client)) {
    EXPECT_TRUE(c->create(kube::kinds::Namespace, "",
                          {{"apiVersion", "v1"}, {"kind", "Namespace"}, {"metadata", {{"name", ns}}}}));
  }
  ~Env() {
    if (auto l = c->list(kube::kinds::ModelDeployment, ns))
      for (const auto& d : l->items) (void)c->remove(kube::kinds::ModelDeployment, ns, d["metadata"]["name"]);
    kube::DeleteOptions now;
    now.gracePeriodSeconds = 0;
    if (auto l = c->list(kube::kinds::Pod, ns))
      for (const auto& p : l->items) (void)c->remove(kube::kinds::Pod, ns, p["metadata"]["name"], now);
    (void)c->remove(kube::kinds::Namespace, "", ns);
  }
  Json deployment(const std::string& name, int replicas, const Json& autoscaling) {
    Json spec = {{"model", {{"name", "meta-llama/Llama-2-70b"}, {"version", "v1"}}},
                 {"region", "as-nowhere"},  // no pool: the test needs no GPU nodes
                 {"template", {{"spec", {{"image", "vllm/vllm-openai:v0.6.3"}, {"ports", {{{"containerPort", 8000}}}}}}}},
                 {"gpu", {{"count", 4}}},
                 {"drainSeconds", 0},
                 {"replicas", replicas},
                 {"minReplicas", 1},
                 {"maxReplicas", 8}};
    if (!autoscaling.is_null()) spec["autoscaling"] = autoscaling;
    return {{"apiVersion", "waterline.dev/v1alpha1"},
            {"kind", "ModelDeployment"},
            {"metadata", {{"name", name}, {"namespace", ns}}},
            {"spec", spec}};
  }
  void apply(const Json& d) { ASSERT_TRUE(c->apply(kube::kinds::ModelDeployment, ns, d, {"it-test", true, ""})); }
  Json md(const std::string& name) {
    auto g = c->get(kube::kinds::ModelDeployment, ns, name);
    return g ? *g : Json::object();
  }
  int replicas(const std::string& name) {
    auto m = md(name);
    return m.contains("spec") ? m["spec"].value("replicas", -1) : -1;
  }
  Json cond(const std::string& name, const std::string& type) {
    auto m = md(name);
    if (m.contains("status") && m["status"].contains("conditions"))
      for (const auto& x : m["status"]["conditions"])
        if (x.value("type", "") == type) return x;
    return Json::object();
  }
  // Messages of the Events with this reason about the deployment.
  std::vector<std::string> events(const std::string& name, const std::string& reason) {
    std::vector<std::string> out;
    if (auto l = c->list(kube::kinds::CoreEvent, ns))
      for (const auto& e : l->items)
        if (e["involvedObject"].value("name", "") == name && e.value("reason", "") == reason)
          out.push_back(e.value("message", ""));
    return out;
  }
};

std::string curl(const std::string& url) {
  const std::string file = "/tmp/" + it::uniqueName("curl") + ".txt";
  (void)it::run("curl -s -m 5 -o " + file + " '" + url + "'");
  std::string s = it::readFile(file, 1 << 20);
  std::remove(file.c_str());
  return s;
}

struct Stack {
  it::Sim sim;
  std::unique_ptr<it::Prometheus> prom;
  it::Operator op;
  bool ok = false;
  // A sim with two workers of deployment `dep` in `ns` and a Poisson load of `rate`
  // requests/s of ~200 prompt tokens for `duration` s (then none).
  Stack(const std::string& ns, const std::string& dep, double rate, double duration) {
    if (it::findBinary("WATERLINE_PROMETHEUS", "prometheus").empty()) return;
    const std::string w = "namespace=" + ns + ",deployment=" + dep + ",pool=as-pool,gpu=H100,tp=4";
    if (!sim.start({"--worker", "pod=" + dep + "-0," + w, "--worker", "pod=" + dep + "-1," + w, "--load", "poisson",
                    "--poisson-rate", std::to_string(rate), "--duration", std::to_string(duration), "--mean-input",
                    "200", "--mean-output", "8", "--seed", "7", "--load-deployment", dep}))
      return;
    prom = std::make_unique<it::Prometheus>(std::vector<uint16_t>{sim.listenPort});
    prom->start();
    op.start({"--prometheus-url=" + prom->url(), "--autoscaler-sync-period=1s", "--prometheus-timeout=2s"});
    ok = true;
  }
  // What the operator decided and what Prometheus scraped, for failure messages.
  std::string state() {
    std::string out;
    for (const auto& line : [&] {
           std::vector<std::string> v;
           std::stringstream ss(curl("http://127.0.0.1:" + std::to_string(op.port) + "/metrics"));
           for (std::string l; std::getline(ss, l);) v.push_back(l);
           return v;
         }())
      if (line.rfind("waterline_autoscaler_", 0) == 0) out += line + "\n";
    if (prom) out += "up: " + curl(prom->url() + "/api/v1/query?query=up") + "\n";
    return out;
  }
  std::string logs() { return "metrics:\n" + state() + "operator:\n" + op.logText() + "\nsim:\n" + sim.logText() + "\nprometheus:\n" + (prom ? prom->logText() : ""); }
};

#define STACK_OR_SKIP(s)                                                                       \
  if (it::findBinary("WATERLINE_PROMETHEUS", "prometheus").empty())                            \
    GTEST_SKIP() << "no prometheus binary (Debian's prometheus, or set WATERLINE_PROMETHEUS)"; \
  ASSERT_TRUE(s.ok) << s.logs();

TEST(AutoscaleIT, LoadStepScalesUpThenDown) {
  WL_CLIENT_OR_SKIP(client);
  Env e(client);
  // ~4 requests/s x 200 tokens = ~800 prompt tokens/s for 60 s, then nothing.
  Stack s(e.ns, "llama", 4, 60);
  STACK_OR_SKIP(s);
  // "or vector(0)": no load at all is zero here, not missing data.
  e.apply(e.deployment("llama", 1,
                       {{"enabled", true},
                        {"query", kRateQuery + " or vector(0)"},
                        {"targetPerReplica", 200},
                        {"tolerance", 0.2},
                        {"scaleUp", {{"stabilizationWindowSeconds", 0}}},
                        {"scaleDown", {{"stabilizationWindowSeconds", 5}}}}));
  // Up: ~800/200 = 4 replicas (Poisson noise: at least 3).
  ASSERT_TRUE(it::eventually([&] { return e.replicas("llama") >= 3; }, 50s)) << e.md("llama").dump() << s.logs();
  // The count and the status are two writes: wait for the status of that evaluation.
  EXPECT_TRUE(it::eventually([&] { return e.cond("llama", "ScalingActive").value("status", "") == "True"; }, 20s))
      << e.md("llama").dump();
  auto active = e.cond("llama", "ScalingActive");
  EXPECT_EQ(active.value("reason", ""), "ValidMetric");
  EXPECT_TRUE(e.cond("llama", "ScalingLimited").contains("reason"));
  // The ModelDeployment reconciler's conditions live beside the autoscaler's.
  EXPECT_TRUE(it::eventually([&] { return e.cond("llama", "Scheduled").contains("reason") && e.cond("llama", "ScalingActive").contains("reason"); }, 20s))
      << e.md("llama").dump();
  auto m = e.md("llama");
  EXPECT_TRUE(m["metadata"]["annotations"].contains("waterline.dev/autoscaler-state"));
  EXPECT_TRUE(m["status"].contains("autoscaling") && m["status"]["autoscaling"].contains("currentValue"))
      << m["status"].dump();
  ASSERT_TRUE(it::eventually([&] { return !e.events("llama", "SuccessfulRescale").empty(); }, 20s));
  {
    bool fromOne = false;  // the first rescale (the Events' list order is not time order)
    for (const auto& msg : e.events("llama", "SuccessfulRescale")) fromOne = fromOne || msg.rfind("from 1 to ", 0) == 0;
    EXPECT_TRUE(fromOne);
  }
  // The autoscaler's conditions are its own field manager's, and only its.
  for (const auto& mf : m["metadata"]["managedFields"]) {
    const std::string dump = mf.dump();
    if (dump.find("ScalingActive") == std::string::npos) continue;
    EXPECT_EQ(mf.value("manager", ""), "waterline-autoscaler") << dump;
  }
  // Metrics: a scale-up decision, and an exposition that passes promtool.
  const std::string metrics = curl("http://127.0.0.1:" + std::to_string(s.op.port) + "/metrics");
  EXPECT_NE(metrics.find("waterline_autoscaler_decisions_total{namespace=\"" + e.ns +
                         "\",deployment=\"llama\",decision=\"scale_up\""),
            std::string::npos)
      << metrics;
  {
    const std::string file = "/tmp/" + it::uniqueName("metrics") + ".txt";
    std::ofstream(file) << metrics;
    EXPECT_EQ(it::run("promtool check metrics < " + file), 0);
    std::remove(file.c_str());
  }
  // Down: the load ends; back to minReplicas.
  ASSERT_TRUE(it::eventually([&] { return e.replicas("llama") == 1; }, 90s)) << e.md("llama").dump() << s.logs();
  bool down = false;
  for (const auto& msg : e.events("llama", "SuccessfulRescale")) down = down || msg.find(" to 1:") != std::string::npos;
  EXPECT_TRUE(down);
}

TEST(AutoscaleIT, PrometheusDownHoldsThenRecovers) {
  WL_CLIENT_OR_SKIP(client);
  Env e(client);
  Stack s(e.ns, "qwen", 4, 100000);
  STACK_OR_SKIP(s);
  // No "or vector(0)": an empty answer is missing data and holds.
  e.apply(e.deployment("qwen", 1,
                       {{"enabled", true},
                        {"query", kRateQuery},
                        {"targetPerReplica", 200},
                        {"tolerance", 0.2},
                        // Short, so that treating missing data as zero would show at once.
                        {"scaleDown", {{"stabilizationWindowSeconds", 2}}}}));
  ASSERT_TRUE(it::eventually([&] { return e.replicas("qwen") >= 3; }, 90s)) << e.md("qwen").dump() << s.logs();
  ASSERT_TRUE(it::eventually([&] { return e.cond("qwen", "ScalingActive").value("status", "") == "True"; }, 20s));

  s.prom->kill();
  ASSERT_TRUE(it::eventually([&] { return e.cond("qwen", "ScalingActive").value("status", "") == "False"; }, 30s))
      << e.md("qwen").dump() << s.logs();
  const int held = e.replicas("qwen");
  auto c = e.cond("qwen", "ScalingActive");
  EXPECT_EQ(c.value("reason", ""), "FailedGetMetric");
  EXPECT_NE(c.value("message", "").find("Transport"), std::string::npos) << c.dump();
  // Held (never towards minReplicas) for several sync periods and scale-down windows.
  for (int i = 0; i < 10; ++i) {
    std::this_thread::sleep_for(500ms);
    EXPECT_EQ(e.replicas("qwen"), held);
  }
  EXPECT_GE(held, 3);
  EXPECT_TRUE(it::eventually([&] { return !e.events("qwen", "FailedGetMetric").empty(); }, 20s));
  const std::string metrics = curl("http://127.0.0.1:" + std::to_string(s.op.port) + "/metrics");
  EXPECT_NE(metrics.find("waterline_autoscaler_metric_available{namespace=\"" + e.ns + "\",deployment=\"qwen\"} 0"),
            std::string::npos)
      << metrics;

  // Back: same port and TSDB; the first answers are empty (rate needs two scrapes) and
  // hold too, then a value recovers.
  s.prom->start();
  ASSERT_TRUE(it::eventually([&] { return e.cond("qwen", "ScalingActive").value("status", "") == "True"; }, 90s))
      << e.md("qwen").dump() << s.logs();
  EXPECT_TRUE(it::eventually([&] { return e.replicas("qwen") >= 3; }, 30s)) << e.md("qwen").dump();
}

TEST(AutoscaleIT, WithAutoscalingOffKubectlScaleDecides) {
  WL_CLIENT_OR_SKIP(client);
  Env e(client);
  it::Operator op;
  op.start({"--autoscaler-sync-period=1s"});  // and no Prometheus at all
  e.apply(e.deployment("plain", 2, {{"enabled", false}, {"targetPerReplica", 100}}));
  // kubectl scale: the scale subresource.
  Json scale = {{"spec", {{"replicas", 5}}}};
  ASSERT_TRUE(client->patch(kube::kinds::ModelDeployment, e.ns, "plain", kube::PatchType::Merge, scale.dump(),
                            {"it-test", false, "scale"}));
  ASSERT_TRUE(it::eventually([&] { return e.cond("plain", "Scheduled").contains("reason"); }, 30s)) << op.logText();
  std::this_thread::sleep_for(3s);
  EXPECT_EQ(e.replicas("plain"), 5);
  EXPECT_FALSE(e.cond("plain", "ScalingActive").contains("reason")) << e.md("plain").dump();
  EXPECT_FALSE(e.md("plain")["metadata"].value("annotations", Json::object()).contains("waterline.dev/autoscaler-state"));

  // Turned on without a metric source: the count is held (not scaled to minReplicas),
  // and the condition says why.
  e.apply(e.deployment("plain", 5, {{"enabled", true}, {"targetPerReplica", 100}}));
  ASSERT_TRUE(it::eventually([&] { return e.cond("plain", "ScalingActive").value("reason", "") == "FailedGetMetric"; }, 30s))
      << e.md("plain").dump() << op.logText();
  EXPECT_NE(e.cond("plain", "ScalingActive").value("message", "").find("--prometheus-url"), std::string::npos);
  EXPECT_EQ(e.replicas("plain"), 5);

  // Off again: AutoscalingDisabled, ScalingLimited gone, kubectl scale decides again.
  e.apply(e.deployment("plain", 5, {{"enabled", false}, {"targetPerReplica", 100}}));
  ASSERT_TRUE(it::eventually([&] { return e.cond("plain", "ScalingActive").value("reason", "") == "AutoscalingDisabled"; }, 30s))
      << e.md("plain").dump();
  EXPECT_FALSE(e.cond("plain", "ScalingLimited").contains("reason"));
  scale = {{"spec", {{"replicas", 2}}}};
  ASSERT_TRUE(client->patch(kube::kinds::ModelDeployment, e.ns, "plain", kube::PatchType::Merge, scale.dump(),
                            {"it-test", false, "scale"}));
  std::this_thread::sleep_for(3s);
  EXPECT_EQ(e.replicas("plain"), 2);
}

}  // namespace
}  // namespace waterline
