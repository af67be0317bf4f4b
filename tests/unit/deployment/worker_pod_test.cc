// renderWorkerPod with a full PodTemplateSpec: the user's PodSpec first, the operator's
// fields on top (docs/workers.md); the template hash; the shorthand; tolerations for the
// scheduler.
#include <gtest/gtest.h>

#include <functional>
#include <map>

#include "waterline/planners/deployment.h"
#include "waterline/planners/dra_worker.h"
#include "waterline/planners/inventory_snapshot.h"

namespace waterline::planners {
namespace {

using nlohmann::json;

// A vLLM worker as docs/workers.md recommends, with a sidecar and an init container.
json vllmTemplate() {
  return json::parse(R"({
    "metadata": {"labels": {"app": "llama"}, "annotations": {"team.example.com/owner": "ml"}},
    "spec": {
      "serviceAccountName": "llm-worker",
      "runtimeClassName": "nvidia",
      "priorityClassName": "inference-high",
      "terminationGracePeriodSeconds": 120,
      "imagePullSecrets": [{"name": "registry"}],
      "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
      "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
      "volumes": [
        {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "16Gi"}},
        {"name": "model-cache", "persistentVolumeClaim": {"claimName": "hf-cache"}}
      ],
      "initContainers": [{"name": "fetch", "image": "busybox:1.36", "command": ["true"]}],
      "containers": [
        {"name": "proxy", "image": "envoyproxy/envoy:v1.31", "ports": [{"containerPort": 9901}]},
        {"name": "vllm", "image": "vllm/vllm-openai:v0.6.3",
         "args": ["--model", "meta-llama/Llama-3.1-8B-Instruct", "--port", "8000"],
         "ports": [{"name": "http", "containerPort": 8000, "protocol": "TCP"}],
         "env": [{"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": "hf", "key": "token"}}},
                 {"name": "CUDA_VISIBLE_DEVICES", "value": "7"}],
         "envFrom": [{"configMapRef": {"name": "vllm-config"}}],
         "resources": {"requests": {"cpu": "8", "memory": "64Gi"}, "limits": {"memory": "64Gi"}},
         "volumeMounts": [{"name": "dshm", "mountPath": "/dev/shm"},
                          {"name": "model-cache", "mountPath": "/root/.cache/huggingface"}],
         "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}}
      ]
    }
  })");
}

api::ModelDeployment deployment(json tmpl, json extraSpec = json::object()) {
  json spec = {{"model", {{"name", "meta-llama/Llama-3.1-8B-Instruct"}, {"version", "v1"}}},
               {"region", "eu-west"},
               {"template", std::move(tmpl)},
               {"gpu", {{"count", 2}}},
               {"replicas", 1}};
  spec.update(extraSpec);
  json j = {{"apiVersion", "waterline.dev/v1alpha1"},
            {"kind", "ModelDeployment"},
            {"metadata", {{"name", "llama"}, {"namespace", "llm"}, {"uid", "uid-llama"}, {"generation", 1}}},
            {"spec", spec}};
  auto d = api::ModelDeployment::fromJson(j);
  EXPECT_TRUE(d) << d.error();
  return *d;
}

scheduling::Assignment twoGpus() {
  scheduling::Assignment a;
  a.node = "gpu-node-1";
  a.kind = scheduling::ShapeKind::Whole;
  a.gpus = {2, 3};
  return a;
}

json render(const api::ModelDeployment& d) {
  return renderWorkerPod(d, "llama-0", "h100-eu-west", twoGpus(), 0, scheduling::SharingMode::Exclusive,
                         templateHash(d));
}

json container(const json& pod, const std::string& name) {
  for (const auto& c : pod["spec"]["containers"])
    if (c["name"] == name) return c;
  ADD_FAILURE() << "no container " << name;
  return json::object();
}

std::map<std::string, json> envOf(const json& c) {
  std::map<std::string, json> out;
  for (const auto& e : c["env"]) {
    EXPECT_FALSE(out.contains(e["name"])) << "duplicate env " << e["name"];
    out[e["name"]] = e;
  }
  return out;
}

TEST(WorkerPod, UserPodFieldsArePreserved) {
  auto d = deployment(vllmTemplate(), {{"workerContainer", "vllm"}});
  EXPECT_TRUE(api::validate(d).empty());
  json pod = render(d);
  const json& s = pod["spec"];
  const json t = vllmTemplate()["spec"];
  for (const char* f : {"serviceAccountName", "runtimeClassName", "priorityClassName", "imagePullSecrets",
                        "securityContext", "tolerations", "volumes", "initContainers", "terminationGracePeriodSeconds"})
    EXPECT_EQ(s[f], t[f]) << f;
  ASSERT_EQ(s["containers"].size(), 2u);
  // The sidecar is as given: no GPU, no env, no probes.
  EXPECT_EQ(s["containers"][0], t["containers"][0]);
  const json w = container(pod, "vllm");
  for (const char* f : {"image", "args", "ports", "envFrom", "volumeMounts", "securityContext"})
    EXPECT_EQ(w[f], t["containers"][1][f]) << f;
  EXPECT_EQ(pod["metadata"]["labels"]["app"], "llama");
  EXPECT_EQ(pod["metadata"]["annotations"]["team.example.com/owner"], "ml");
}

TEST(WorkerPod, GpuResourcesAreAddedToTheWorkerContainersOwn) {
  auto d = deployment(vllmTemplate(), {{"workerContainer", "vllm"}});
  const json r = container(render(d), "vllm")["resources"];
  EXPECT_EQ(r["requests"], (json{{"cpu", "8"}, {"memory", "64Gi"}, {"nvidia.com/gpu", "2"}}));
  EXPECT_EQ(r["limits"], (json{{"memory", "64Gi"}, {"nvidia.com/gpu", "2"}}));
}

TEST(WorkerPod, TemplateGpuResourcesNeverReachThePod) {
  json t = vllmTemplate();
  t["spec"]["containers"][1]["resources"]["limits"]["nvidia.com/gpu"] = "8";
  t["spec"]["containers"][1]["resources"]["limits"]["nvidia.com/mig-1g.10gb"] = "1";
  auto d = deployment(t, {{"workerContainer", "vllm"}});
  EXPECT_FALSE(api::validate(d).empty());  // rejected at apply; the render is safe on its own
  const json r = container(render(d), "vllm")["resources"];
  EXPECT_EQ(r["limits"], (json{{"memory", "64Gi"}, {"nvidia.com/gpu", "2"}}));
}

TEST(WorkerPod, EnvKeepsTheTemplatesAndTheOperatorsWinsOnItsNames) {
  auto d = deployment(vllmTemplate(), {{"workerContainer", "vllm"}});
  const json w = container(render(d), "vllm");
  auto env = envOf(w);
  EXPECT_EQ(w["env"][0]["name"], "HF_TOKEN");  // the template's first, in its order
  EXPECT_EQ(env["HF_TOKEN"]["valueFrom"]["secretKeyRef"]["name"], "hf");
  EXPECT_EQ(env["CUDA_VISIBLE_DEVICES"]["value"], "2,3");  // not the template's "7"
  EXPECT_EQ(env["NVIDIA_VISIBLE_DEVICES"]["value"], "2,3");
  EXPECT_EQ(env["WATERLINE_DEPLOYMENT"]["value"], "llama");
  EXPECT_EQ(env["WATERLINE_POOL"]["value"], "h100-eu-west");
  EXPECT_EQ(env["WATERLINE_MODEL_VERSION"]["value"], "v1");
}

TEST(WorkerPod, OwnedPodFieldsAreTheOperators) {
  json t = vllmTemplate();
  t["spec"]["nodeName"] = "elsewhere";
  t["spec"]["schedulerName"] = "other";
  t["spec"]["nodeSelector"] = {{"a", "b"}};
  t["spec"]["affinity"] = {{"nodeAffinity", json::object()}};
  t["spec"]["restartPolicy"] = "Never";
  auto d = deployment(t, {{"workerContainer", "vllm"}});
  auto errs = api::validate(d);
  for (const char* f : {"nodeName", "schedulerName", "nodeSelector", "affinity", "restartPolicy"}) {
    bool named = false;
    for (const auto& e : errs) named |= e.find(std::string("spec.template.spec.") + f) != std::string::npos;
    EXPECT_TRUE(named) << f;
  }
  json pod = render(d);
  EXPECT_EQ(pod["spec"]["nodeName"], "gpu-node-1");
  EXPECT_EQ(pod["spec"]["restartPolicy"], "Always");
  for (const char* f : {"schedulerName", "nodeSelector", "affinity"}) EXPECT_FALSE(pod["spec"].contains(f)) << f;
}

TEST(WorkerPod, TheFirstContainerIsTheWorkerByDefault) {
  json t = vllmTemplate();
  auto& cs = t["spec"]["containers"];
  std::swap(cs[0], cs[1]);  // vllm first
  auto d = deployment(t);
  EXPECT_TRUE(api::validate(d).empty());
  EXPECT_EQ(d.spec.workerContainerName(), "vllm");
  EXPECT_EQ(d.spec.workerImage(), "vllm/vllm-openai:v0.6.3");
  EXPECT_EQ(d.spec.healthPort(), 8000);
  json pod = render(d);
  EXPECT_EQ(container(pod, "vllm")["resources"]["limits"]["nvidia.com/gpu"], "2");
  EXPECT_FALSE(container(pod, "proxy").contains("resources"));
}

TEST(WorkerPod, WorkerContainerMustNameAContainer) {
  auto d = deployment(vllmTemplate(), {{"workerContainer", "missing"}});
  auto errs = api::validate(d);
  ASSERT_FALSE(errs.empty());
  EXPECT_NE(errs[0].find("spec.workerContainer"), std::string::npos) << errs[0];
}

TEST(WorkerPod, ProbesOnlyWhereTheWorkerContainerHasNone) {
  json t = vllmTemplate();
  json own = {{"httpGet", {{"path", "/v1/models"}, {"port", 8000}}}, {"periodSeconds", 5}};
  t["spec"]["containers"][1]["readinessProbe"] = own;
  auto d = deployment(t, {{"workerContainer", "vllm"}});
  const json w = container(render(d), "vllm");
  EXPECT_EQ(w["readinessProbe"], own);
  EXPECT_EQ(w["livenessProbe"]["httpGet"]["path"], "/health");
  EXPECT_EQ(w["startupProbe"]["httpGet"]["port"], 8000);

  t["spec"]["containers"][1]["livenessProbe"] = own;
  t["spec"]["containers"][1]["startupProbe"] = own;
  const json all = container(render(deployment(t, {{"workerContainer", "vllm"}})), "vllm");
  EXPECT_EQ(all["livenessProbe"], own);
  EXPECT_EQ(all["startupProbe"], own);
}

TEST(WorkerPod, StartupAllowanceIsTheField) {
  auto d = deployment(vllmTemplate(), {{"workerContainer", "vllm"}});
  EXPECT_EQ(d.spec.startupTimeoutSeconds, 1800);
  EXPECT_EQ(container(render(d), "vllm")["startupProbe"]["failureThreshold"], 180);  // 1800 s / 10 s
  auto longer = deployment(vllmTemplate(), {{"workerContainer", "vllm"}, {"startupTimeoutSeconds", 3605}});
  EXPECT_EQ(container(render(longer), "vllm")["startupProbe"]["failureThreshold"], 361);  // rounded up
  EXPECT_NE(templateHash(d), templateHash(longer));
  auto zero = deployment(vllmTemplate(), {{"workerContainer", "vllm"}, {"startupTimeoutSeconds", 0}});
  EXPECT_FALSE(api::validate(zero).empty());
}

TEST(WorkerPod, TemplateHashCoversTheWholeTemplate) {
  auto d = deployment(vllmTemplate(), {{"workerContainer", "vllm"}});
  const std::string h = templateHash(d);
  for (auto change : std::vector<std::function<void(json&)>>{
           [](json& s) { s["tolerations"][0]["key"] = "other"; },
           [](json& s) { s["volumes"][0]["emptyDir"]["sizeLimit"] = "32Gi"; },
           [](json& s) { s["containers"][0]["image"] = "envoyproxy/envoy:v1.32"; },
           [](json& s) { s["securityContext"]["runAsUser"] = 1000; },
           [](json& s) { s["initContainers"][0]["command"][0] = "false"; },
           [](json& s) { s["priorityClassName"] = "inference-low"; },
       }) {
    auto e = d;
    change(e.spec.template_.raw["spec"]);
    EXPECT_NE(templateHash(e), h) << e.spec.template_.raw["spec"].dump();
  }
  auto other = deployment(vllmTemplate(), {{"workerContainer", "proxy"}});
  EXPECT_NE(templateHash(other), h);
}

TEST(WorkerPod, ShorthandIsOneContainerNamedWorker) {
  json t = json::parse(R"({"spec": {
    "image": "vllm/vllm-openai:v0.6.3", "args": ["--x"], "ports": [{"containerPort": 8000, "protocol": "TCP"}],
    "env": [{"name": "A", "value": "1"}], "resources": {"requests": {"cpu": "4"}},
    "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists"}]}})");
  auto d = deployment(t);
  EXPECT_TRUE(api::validate(d).empty());
  EXPECT_TRUE(d.spec.template_.shorthand());
  EXPECT_EQ(d.spec.workerContainerName(), "worker");
  json pod = render(d);
  ASSERT_EQ(pod["spec"]["containers"].size(), 1u);
  const json& w = pod["spec"]["containers"][0];
  EXPECT_EQ(w["name"], "worker");
  EXPECT_EQ(w["image"], "vllm/vllm-openai:v0.6.3");
  EXPECT_EQ(w["args"], json::array({"--x"}));
  EXPECT_EQ(w["resources"]["requests"], (json{{"cpu", "4"}, {"nvidia.com/gpu", "2"}}));
  EXPECT_EQ(envOf(w)["A"]["value"], "1");
  EXPECT_EQ(pod["spec"]["tolerations"], t["spec"]["tolerations"]);
  for (const char* f : {"image", "args", "ports", "env", "resources"}) EXPECT_FALSE(pod["spec"].contains(f)) << f;
  EXPECT_EQ(pod["spec"]["terminationGracePeriodSeconds"], 30);
}

// Workers made before spec.template became a PodTemplateSpec keep their hash: the
// template's old encoding is what is hashed.
TEST(WorkerPod, ShorthandHashesItsOldEncoding) {
  auto d = deployment(json::parse(R"({"metadata": {"labels": {"app": "x"}}, "spec": {
    "image": "img", "ports": [{"containerPort": 8000, "protocol": "TCP"}], "env": [{"name": "A", "value": ""}],
    "resources": {"limits": {"memory": "1Gi"}}}})"));
  auto legacy = api::legacyTemplateJson(d.spec.template_);
  ASSERT_TRUE(legacy);
  EXPECT_EQ(*legacy, json::parse(R"({"metadata": {"labels": {"app": "x"}}, "spec": {
    "image": "img", "ports": [{"containerPort": 8000, "protocol": "TCP"}], "env": [{"name": "A"}],
    "resources": {"limits": {"memory": "1Gi"}}}})"));
  // FNV-1a of {"gpu":…,"healthCheck":…,"model":…,"template":<the old encoding>}, computed
  // outside the operator from the encoding of the operator before this change.
  EXPECT_EQ(templateHash(d), "541fedf194");
  auto e = d;
  e.spec.template_.raw["spec"]["tolerations"] = json::array();  // beyond the old shape
  EXPECT_FALSE(api::legacyTemplateJson(e.spec.template_));
  EXPECT_NE(templateHash(e), templateHash(d));
  EXPECT_FALSE(api::legacyTemplateJson(deployment(vllmTemplate()).spec.template_));
}

TEST(WorkerPod, FlatShorthandAndContainersAreExclusive) {
  json t = vllmTemplate();
  t["spec"]["image"] = "img";
  EXPECT_FALSE(api::validate(deployment(t)).empty());
  json none = json::parse(R"({"apiVersion": "waterline.dev/v1alpha1", "kind": "ModelDeployment",
    "metadata": {"name": "x"}, "spec": {"model": {"name": "m", "version": "v1"}, "region": "eu-west",
    "gpu": {"count": 1}, "template": {"spec": {"tolerations": []}}}})");
  auto r = api::ModelDeployment::fromJson(none);  // neither: read as the shorthand, without its image
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().find("spec.template.spec.image"), std::string::npos) << r.error();
  json flatEnv = vllmTemplate();
  flatEnv["spec"]["env"] = json::array({{{"name", "A"}, {"value", "1"}}});
  EXPECT_FALSE(api::validate(deployment(flatEnv)).empty());
}

TEST(WorkerPod, TolerationsReachTheScheduler) {
  auto d = deployment(vllmTemplate());
  auto tols = tolerationsOf(d);
  ASSERT_EQ(tols.size(), 1u);
  EXPECT_EQ(tols[0].key, "nvidia.com/gpu");
  EXPECT_EQ(tols[0].op, scheduling::TolerationOperator::Exists);
  EXPECT_EQ(tols[0].effect, scheduling::TaintEffect::NoSchedule);
  EXPECT_TRUE(scheduling::toleratesAll({{"nvidia.com/gpu", "present", scheduling::TaintEffect::NoSchedule}},
                                       toRequest(d, "llama-0").tolerations));
  EXPECT_TRUE(tolerationsOf(deployment(json::parse(R"({"spec": {"image": "img",
    "ports": [{"containerPort": 8000}]}})"))).empty());
}

// DRA mode (planners/dra_worker.h): the same worker, asking for its claim instead.
TEST(WorkerPodDra, ClaimReplacesExtendedResourcesAndDeviceVariables) {
  auto d = deployment(vllmTemplate(), {{"workerContainer", "vllm"}});
  json dp = render(d);
  json pod = draWorkerPod(dp, draClaimName("llama-0"));
  EXPECT_EQ(pod["spec"]["resourceClaims"],
            json::parse(R"([{"name": "gpu", "resourceClaimName": "llama-0-gpu"}])"));
  const json w = container(pod, "vllm");
  EXPECT_EQ(w["resources"]["claims"], json::parse(R"([{"name": "gpu"}])"));
  EXPECT_FALSE(w["resources"]["requests"].contains("nvidia.com/gpu"));
  EXPECT_FALSE(w["resources"]["limits"].contains("nvidia.com/gpu"));
  EXPECT_EQ(w["resources"]["requests"]["cpu"], "8");  // the user's resources stay
  auto env = envOf(w);
  EXPECT_FALSE(env.contains("NVIDIA_VISIBLE_DEVICES"));
  EXPECT_FALSE(env.contains("CUDA_VISIBLE_DEVICES"));
  EXPECT_TRUE(env.contains("HF_TOKEN"));
  EXPECT_TRUE(env.contains("WATERLINE_GPU_ASSIGNMENT"));
  // The sidecar asked for nothing and gets no claim; everything else is unchanged.
  EXPECT_EQ(container(pod, "proxy"), container(dp, "proxy"));
  EXPECT_EQ(pod["metadata"], dp["metadata"]);
  EXPECT_EQ(pod["spec"]["nodeName"], "gpu-node-1");

  json claim = draWorkerClaim(pod, "llama-0-gpu", 2);
  EXPECT_EQ(claim["apiVersion"], "resource.k8s.io/v1");
  EXPECT_EQ(claim["metadata"]["name"], "llama-0-gpu");
  EXPECT_EQ(claim["metadata"]["namespace"], "llm");
  EXPECT_EQ(claim["metadata"]["labels"]["waterline.dev/worker"], "llama-0");
  EXPECT_EQ(claim["metadata"]["labels"]["waterline.dev/deployment"], "llama");
  EXPECT_EQ(claim["metadata"]["labels"]["app.kubernetes.io/managed-by"], "waterline");
  EXPECT_EQ(claim["metadata"]["ownerReferences"][0]["kind"], "ModelDeployment");
  const json& req = claim["spec"]["devices"]["requests"][0];
  EXPECT_EQ(req["name"], "gpu");
  EXPECT_EQ(req["exactly"]["deviceClassName"], "gpu.nvidia.com");
  EXPECT_EQ(req["exactly"]["count"], 2);
  EXPECT_EQ(draClaimOwnerPatch("llama-0", "u1")["metadata"]["ownerReferences"][0]["uid"], "u1");
  EXPECT_EQ(draClaimReservedForPatch("llama-0", "u1")["status"]["reservedFor"][0]["name"], "llama-0");
}

}  // namespace
}  // namespace waterline::planners
