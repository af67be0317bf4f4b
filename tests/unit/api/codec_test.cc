// JSON codecs: defaults, errors naming the field, round trips, metadata and time.
#include <gtest/gtest.h>

#include "waterline/api/capacity_pool.h"
#include "waterline/api/model_deployment.h"
#include "waterline/api/ptu_reservation.h"
#include "yaml_json.h"

namespace waterline::api {
namespace {

using nlohmann::json;
using testing::yamlToJson;

json minimalPool() {
  return yamlToJson(R"(
apiVersion: waterline.dev/v1alpha1
kind: CapacityPool
metadata: {name: p}
spec:
  region: eu-west
  dataZone: EU
  gpuProduct: NVIDIA-H100-80GB-HBM3
  nodeSelector: {}
)");
}

json minimalDeployment() {
  return yamlToJson(R"(
apiVersion: waterline.dev/v1alpha1
kind: ModelDeployment
metadata: {name: m, namespace: llm}
spec:
  model: {name: meta-llama/Llama-3.1-8B-Instruct, version: v1}
  region: eu-west
  template: {spec: {image: vllm/vllm-openai:v0.6.3, ports: [{containerPort: 8000}]}}
  gpu: {count: 1}
)");
}

json minimalReservation() {
  return yamlToJson(R"(
apiVersion: waterline.dev/v1alpha1
kind: PTUReservation
metadata: {name: r, namespace: llm}
spec:
  deploymentRef: {name: m}
  units: 10
  tokensPerMinutePerUnit: 2500
  scope: {type: Global}
)");
}

TEST(Codec, PoolDefaults) {
  auto p = CapacityPool::fromJson(minimalPool());
  ASSERT_TRUE(p) << p.error();
  EXPECT_EQ(p->spec.sharing.mode, SharingMode::Exclusive);
  EXPECT_TRUE(p->spec.sharing.migProfiles.empty());
  EXPECT_FALSE(p->spec.sharing.slicesPerGpu);
  EXPECT_EQ(p->spec.sharing.sharesPerGpu(), 1);
  EXPECT_EQ(p->spec.schedulingStrategy, SchedulingStrategy::BinPack);
  EXPECT_DOUBLE_EQ(p->spec.reservableFraction, 0.8);
  EXPECT_DOUBLE_EQ(p->spec.routing.maxUtilization, 0.9);
  EXPECT_TRUE(p->spec.nodeSelector.empty());
  EXPECT_TRUE(validate(*p).empty());
}

TEST(Codec, DeploymentDefaults) {
  auto m = ModelDeployment::fromJson(minimalDeployment());
  ASSERT_TRUE(m) << m.error();
  const auto& s = m->spec;
  EXPECT_EQ(m->metadata.namespace_, "llm");
  EXPECT_EQ(m->metadata.key(), "llm/m");
  EXPECT_EQ(s.deploymentType, DeploymentType::Standard);
  EXPECT_EQ(s.replicas, 1);
  EXPECT_EQ(s.maxUnavailable, IntOrString::fromInt(1));
  EXPECT_EQ(s.drainSeconds, 30);
  EXPECT_EQ(s.priority, 0);
  EXPECT_FALSE(s.autoscalingEnabled());
  EXPECT_EQ(s.healthCheck.path, "/health");
  EXPECT_EQ(s.healthCheck.periodSeconds, 10);
  EXPECT_EQ(s.healthCheck.timeoutSeconds, 2);
  EXPECT_EQ(s.healthCheck.failureThreshold, 3);
  EXPECT_EQ(s.healthCheck.successThreshold, 1);
  EXPECT_EQ(s.healthPort(), 8000);
  EXPECT_EQ(s.workerPorts().at(0).protocol, Protocol::TCP);
  EXPECT_EQ(s.gpu.kind(), GpuRequestKind::Count);
  EXPECT_TRUE(validate(*m).empty());

  json j = minimalDeployment();
  j["spec"]["autoscaling"] = {{"enabled", true}, {"targetPerReplica", "1.5k"}};
  j["spec"]["maxReplicas"] = 4;
  auto a = ModelDeployment::fromJson(j);
  ASSERT_TRUE(a) << a.error();
  const auto& as = *a->spec.autoscaling;
  EXPECT_EQ(as.query, kDefaultAutoscalingQuery);
  EXPECT_DOUBLE_EQ(as.tolerance, 0.1);
  EXPECT_EQ(as.scaleUp.stabilizationWindowSeconds, 0);
  EXPECT_EQ(as.scaleDown.stabilizationWindowSeconds, 300);
  EXPECT_EQ(as.scaleDown.selectPolicy, SelectPolicy::Max);
  EXPECT_EQ(as.targetPerReplica->milli, 1'500'000);
  EXPECT_TRUE(validate(*a).empty());
}

TEST(Codec, ReservationDefaults) {
  auto r = PTUReservation::fromJson(minimalReservation());
  ASSERT_TRUE(r) << r.error();
  EXPECT_EQ(r->spec.burstPercent, 0);
  EXPECT_EQ(r->spec.tokensPerMinute(), 25000);
  EXPECT_EQ(r->spec.scope.type, ScopeType::Global);
  EXPECT_FALSE(r->status.phase);
  EXPECT_EQ(r->status.unitHoursConsumed, "0");
  EXPECT_TRUE(r->spec.activeAt(SystemTime{}));
  EXPECT_TRUE(validate(*r).empty());
}

// Each mutation makes decoding fail with an error that starts with the field's path.
struct DecodeErrorCase {
  const char* name;
  std::function<void(json&)> mutate;
  const char* field;  // expected error prefix
};

void expectDecodeErrors(const json& base, auto decodeFn, const std::vector<DecodeErrorCase>& cases) {
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    json j = base;
    c.mutate(j);
    auto r = decodeFn(j);
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().rfind(std::string(c.field) + ": ", 0), 0u) << r.error();
  }
}

TEST(Codec, PoolDecodeErrorsNameTheField) {
  expectDecodeErrors(minimalPool(), CapacityPool::fromJson, {
      {"missing spec", [](json& j) { j.erase("spec"); }, "spec"},
      {"spec not object", [](json& j) { j["spec"] = 3; }, "spec"},
      {"missing region", [](json& j) { j["spec"].erase("region"); }, "spec.region"},
      {"region type", [](json& j) { j["spec"]["region"] = 7; }, "spec.region"},
      {"mode enum", [](json& j) { j["spec"]["sharing"] = {{"mode", "Fractional"}}; }, "spec.sharing.mode"},
      {"slices type", [](json& j) { j["spec"]["sharing"] = {{"mode", "MPS"}, {"slicesPerGpu", "four"}}; },
       "spec.sharing.slicesPerGpu"},
      {"slices fraction", [](json& j) { j["spec"]["sharing"] = {{"mode", "MPS"}, {"slicesPerGpu", 2.5}}; },
       "spec.sharing.slicesPerGpu"},
      {"slices int32 overflow", [](json& j) { j["spec"]["sharing"] = {{"mode", "MPS"}, {"slicesPerGpu", 1LL << 40}}; },
       "spec.sharing.slicesPerGpu"},
      {"profile type", [](json& j) { j["spec"]["sharing"] = {{"mode", "MIG"}, {"migProfiles", {"1g.10gb", 3}}}; },
       "spec.sharing.migProfiles[1]"},
      {"operator enum",
       [](json& j) { j["spec"]["nodeSelector"]["matchExpressions"] = {{{"key", "a"}, {"operator", "Gt"}}}; },
       "spec.nodeSelector.matchExpressions[0].operator"},
      {"label value type", [](json& j) { j["spec"]["nodeSelector"]["matchLabels"] = {{"a", 1}}; },
       "spec.nodeSelector.matchLabels.a"},
      {"fraction type", [](json& j) { j["spec"]["reservableFraction"] = "0.5"; }, "spec.reservableFraction"},
      {"metadata labels", [](json& j) { j["metadata"]["labels"] = {{"team", 1}}; }, "metadata.labels.team"},
      {"creation time", [](json& j) { j["metadata"]["creationTimestamp"] = "yesterday"; }, "metadata.creationTimestamp"},
      {"condition status",
       [](json& j) { j["status"]["conditions"] = {{{"type", "Ready"}, {"status", "Yes"}}}; },
       "status.conditions[0].status"},
      {"condition type missing", [](json& j) { j["status"]["conditions"] = {{{"status", "True"}}}; },
       "status.conditions[0].type"},
  });
  json wrongKind = minimalPool();
  wrongKind["kind"] = "ModelDeployment";
  auto r = CapacityPool::fromJson(wrongKind);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().rfind("kind: ", 0), 0u);
  EXPECT_FALSE(CapacityPool::fromJson(json::array()));
}

TEST(Codec, DeploymentDecodeErrorsNameTheField) {
  expectDecodeErrors(minimalDeployment(), ModelDeployment::fromJson, {
      {"missing model", [](json& j) { j["spec"].erase("model"); }, "spec.model"},
      {"missing version", [](json& j) { j["spec"]["model"].erase("version"); }, "spec.model.version"},
      {"missing image", [](json& j) { j["spec"]["template"]["spec"].erase("image"); }, "spec.template.spec.image"},
      {"missing gpu", [](json& j) { j["spec"].erase("gpu"); }, "spec.gpu"},
      {"type enum", [](json& j) { j["spec"]["deploymentType"] = "Regional"; }, "spec.deploymentType"},
      {"gpu memory", [](json& j) { j["spec"]["gpu"]["memory"] = "lots"; }, "spec.gpu.memory"},
      {"port type", [](json& j) { j["spec"]["template"]["spec"]["ports"][0]["containerPort"] = "http"; },
       "spec.template.spec.ports[0].containerPort"},
      {"protocol enum", [](json& j) { j["spec"]["template"]["spec"]["ports"][0]["protocol"] = "QUIC"; },
       "spec.template.spec.ports[0].protocol"},
      {"env name", [](json& j) { j["spec"]["template"]["spec"]["env"] = {{{"value", "x"}}}; },
       "spec.template.spec.env[0].name"},
      {"cpu", [](json& j) { j["spec"]["template"]["spec"]["resources"]["limits"]["cpu"] = true; },
       "spec.template.spec.resources.limits.cpu"},
      {"maxUnavailable", [](json& j) { j["spec"]["maxUnavailable"] = 0.5; }, "spec.maxUnavailable"},
      {"enabled type", [](json& j) { j["spec"]["autoscaling"] = {{"enabled", "yes"}}; }, "spec.autoscaling.enabled"},
      {"policy type",
       [](json& j) {
         j["spec"]["autoscaling"] = {{"scaleDown", {{"policies", {{{"type", "Replicas"}, {"value", 1}, {"periodSeconds", 60}}}}}}};
       },
       "spec.autoscaling.scaleDown.policies[0].type"},
      {"policy period missing",
       [](json& j) { j["spec"]["autoscaling"] = {{"scaleUp", {{"policies", {{{"type", "Pods"}, {"value", 1}}}}}}}; },
       "spec.autoscaling.scaleUp.policies[0].periodSeconds"},
      {"throughput tpm", [](json& j) { j["spec"]["throughput"] = {{"inputTokenWeight", 1}}; },
       "spec.throughput.tokensPerMinutePerReplica"},
      {"spillover ref", [](json& j) { j["spec"]["spillover"] = {{"deploymentRef", json::object()}}; },
       "spec.spillover.deploymentRef.name"},
      {"placement pool", [](json& j) { j["status"]["placements"] = {{{"replicas", 1}}}; }, "status.placements[0].pool"},
  });
}

TEST(Codec, ReservationDecodeErrorsNameTheField) {
  expectDecodeErrors(minimalReservation(), PTUReservation::fromJson, {
      {"missing ref", [](json& j) { j["spec"].erase("deploymentRef"); }, "spec.deploymentRef"},
      {"missing units", [](json& j) { j["spec"].erase("units"); }, "spec.units"},
      {"missing scope type", [](json& j) { j["spec"]["scope"] = json::object(); }, "spec.scope.type"},
      {"scope enum", [](json& j) { j["spec"]["scope"]["type"] = "Zonal"; }, "spec.scope.type"},
      {"start time", [](json& j) { j["spec"]["startTime"] = "2025-13-01T00:00:00Z"; }, "spec.startTime"},
      {"phase enum", [](json& j) { j["status"]["phase"] = "Done"; }, "status.phase"},
      {"unit hours", [](json& j) { j["status"]["unitHoursConsumed"] = "-1"; }, "status.unitHoursConsumed"},
  });
}

TEST(Codec, NullFieldsAreAbsent) {
  json j = minimalDeployment();
  j["spec"]["region"] = "eu-west";
  j["spec"]["minReplicas"] = nullptr;
  j["spec"]["autoscaling"] = nullptr;
  auto m = ModelDeployment::fromJson(j);
  ASSERT_TRUE(m) << m.error();
  EXPECT_FALSE(m->spec.minReplicas);
  EXPECT_FALSE(m->spec.autoscaling);
}

TEST(Codec, UnknownFieldsAreIgnored) {
  json j = minimalPool();
  j["metadata"]["managedFields"] = json::array({{{"manager", "kubectl"}}});
  j["spec"]["futureField"] = 1;
  EXPECT_TRUE(CapacityPool::fromJson(j));
}

TEST(Codec, MetadataRoundTrip) {
  json j = yamlToJson(R"(
name: w-0
generateName: w-
namespace: llm
uid: 8c0e1b1e-0000-4000-8000-000000000001
resourceVersion: "12345"
generation: 3
labels: {waterline.dev/deployment: m}
annotations: {waterline.dev/gpu-assignment: "0,1"}
ownerReferences:
  - {apiVersion: waterline.dev/v1alpha1, kind: ModelDeployment, name: m, uid: u-1, controller: true, blockOwnerDeletion: true}
  - {apiVersion: v1, kind: ConfigMap, name: c, uid: u-2}
finalizers: [waterline.dev/finalizer]
creationTimestamp: "2025-05-01T10:00:00Z"
deletionTimestamp: "2025-05-01T11:00:00Z"
)");
  auto m = ObjectMeta::fromJson(j);
  ASSERT_TRUE(m) << m.error();
  EXPECT_EQ(m->generation, 3);
  EXPECT_TRUE(m->hasFinalizer("waterline.dev/finalizer"));
  EXPECT_FALSE(m->hasFinalizer("other"));
  ASSERT_NE(m->controllerRef(), nullptr);
  EXPECT_EQ(m->controllerRef()->name, "m");
  EXPECT_EQ(m->toJson(), j);
  EXPECT_EQ(ObjectMeta::fromJson(m->toJson()).value(), *m);
  EXPECT_EQ(ObjectMeta{}.toJson(), json::object());
}

TEST(Codec, DeploymentFullRoundTrip) {
  json j = minimalDeployment();
  j["spec"]["template"] = yamlToJson(R"(
metadata: {labels: {team: a}, annotations: {note: b}}
spec:
  image: img
  imagePullPolicy: Always
  command: [python3]
  args: [--x]
  env: [{name: A, value: "1"}, {name: B}]
  ports: [{name: http, containerPort: 8000, protocol: TCP}, {containerPort: 9000, protocol: UDP}]
  resources: {requests: {cpu: 500m, memory: 1Gi}, limits: {memory: 2Gi}}
  serviceAccountName: worker
)");
  j["spec"]["gpu"] = {{"sharesPerGpu", 4}, {"memory", "10Gi"}, {"product", "NVIDIA-L40S"}};
  j["spec"]["replicas"] = 3;
  j["spec"]["minReplicas"] = 1;
  j["spec"]["maxReplicas"] = 5;
  j["spec"]["maxUnavailable"] = "25%";
  j["spec"]["autoscaling"] = {{"enabled", true}, {"targetPerReplica", 100}};
  j["spec"]["throughput"] = {{"tokensPerMinutePerReplica", 90000}, {"inputTokenWeight", 0.5}};
  j["spec"]["spillover"] = {{"deploymentRef", {{"name", "other"}}}};
  auto m = ModelDeployment::fromJson(j);
  ASSERT_TRUE(m) << m.error();
  EXPECT_TRUE(validate(*m).empty());
  EXPECT_EQ(m->spec.gpu.kind(), GpuRequestKind::Shares);
  EXPECT_EQ(m->spec.gpu.memory->value(), 10LL << 30);
  EXPECT_FALSE(m->spec.template_.raw["spec"]["env"][1].contains("value"));
  EXPECT_EQ(m->spec.workerPorts()[1].protocol, Protocol::UDP);
  EXPECT_EQ(m->spec.workerImage(), "img");
  EXPECT_EQ(m->spec.maxUnavailable.scaledValue(3, false).value(), 0);
  EXPECT_EQ(ModelDeployment::fromJson(m->toJson()).value(), *m);
  EXPECT_EQ(ModelDeployment::fromJson(m->toJson(false)).value().status, ModelDeploymentStatus{});
  EXPECT_FALSE(m->toJson(false).contains("status"));
}

TEST(Time, ParseAndFormat) {
  auto t = parseTime("2025-03-01T09:00:00+01:00");
  ASSERT_TRUE(t);
  EXPECT_EQ(formatTime(*t), "2025-03-01T08:00:00Z");
  EXPECT_EQ(formatTime(parseTime("1999-12-31T23:59:59.999999Z").value()), "1999-12-31T23:59:59Z");
  EXPECT_EQ(formatTime(parseTime("2024-02-29T00:00:00-05:30").value()), "2024-02-29T05:30:00Z");
  EXPECT_EQ(formatTime(SystemTime{}), "1970-01-01T00:00:00Z");
  EXPECT_EQ(parseTime("2025-01-01T00:00:00.5Z").value() - parseTime("2025-01-01T00:00:00Z").value(),
            std::chrono::milliseconds(500));
  for (const char* bad : {"", "2025-01-01", "2025-01-01T00:00:00", "2025-02-30T00:00:00Z", "2025-01-01T24:00:00Z",
                          "2025-01-01T00:00:00Zjunk", "2025-01-01T00:00:00+1:00", "next tuesday", "2025-01-01T00:00:00.Z"})
    EXPECT_FALSE(parseTime(bad)) << bad;
}

// Finding 4 of the hardening issue: nanoseconds summed past 2262 wrapped, so an endTime of
// 9999-12-31 ended a reservation "at 1816" and a startTime of 9999-12-31 started it at once.
TEST(Time, FarFutureAndFarPastSaturateAtTheWindow) {
  const SystemTime latest{kLatestTime}, earliest{kEarliestTime};
  for (const char* far : {"9999-12-31T23:59:59Z", "9999-12-31T23:59:59.999999999-23:59", "2262-04-11T23:47:17Z",
                          "2200-01-01T00:00:00Z", "3000-01-01T00:00:00+05:00"})
    EXPECT_EQ(parseTime(far).value(), latest) << far;
  EXPECT_LT(parseTime("2199-12-31T23:59:59Z").value(), latest);
  EXPECT_EQ(formatTime(parseTime("9999-12-31T23:59:59Z").value()), "2200-01-01T00:00:00Z");
  for (const char* past : {"0001-01-01T00:00:00Z", "1677-09-21T00:12:43Z", "1969-12-31T23:59:59Z"})
    EXPECT_EQ(parseTime(past).value(), earliest) << past;
  EXPECT_GT(parseTime("9999-12-31T23:59:59Z").value(), parseTime("2026-12-07T00:00:00Z").value());
  // Differences and sums near the bounds stay representable.
  const auto span = latest - earliest;
  EXPECT_GT(span, std::chrono::hours(24 * 365 * 229));
  EXPECT_GT(latest + std::chrono::hours(24 * 365 * 50), latest);
}

}  // namespace
}  // namespace waterline::api

namespace waterline::api {
namespace {

// spec.cache: decoded, written back unchanged, and validated (what the CRD's schema and
// CEL refuse at apply time is refused here too).
TEST(Codec, ModelDeploymentCache) {
  json j = minimalDeployment();
  j["spec"]["cache"] = {{"mode", "Semantic"},
                        {"similarityThreshold", 0.9},
                        {"ttlSeconds", 60},
                        {"maxEntries", 100},
                        {"varyBy", json::array({{{"header", "X-Api-Key"}}, {{"field", "user"}}})},
                        {"embeddingsDeploymentRef", {{"name", "embed"}}}};
  auto m = ModelDeployment::fromJson(j);
  ASSERT_TRUE(m) << m.error();
  ASSERT_TRUE(m->spec.cache);
  const CacheSpec& c = *m->spec.cache;
  EXPECT_EQ(c.mode, CacheMode::Semantic);
  EXPECT_DOUBLE_EQ(c.effectiveSimilarityThreshold(), 0.9);
  EXPECT_EQ(c.effectiveTtlSeconds(), 60);
  EXPECT_EQ(c.effectiveMaxEntries(), 100);
  ASSERT_EQ(c.varyBy.size(), 2u);
  EXPECT_EQ(c.varyBy[0].header, "X-Api-Key");
  EXPECT_EQ(c.varyBy[1].field, "user");
  EXPECT_TRUE(validate(*m).empty());
  EXPECT_EQ(toJson(m->spec)["cache"], j["spec"]["cache"]);

  // Defaults.
  json e = minimalDeployment();
  e["spec"]["cache"] = {{"mode", "Exact"}};
  auto ex = ModelDeployment::fromJson(e);
  ASSERT_TRUE(ex) << ex.error();
  EXPECT_DOUBLE_EQ(ex->spec.cache->effectiveSimilarityThreshold(), 0.95);
  EXPECT_EQ(ex->spec.cache->effectiveTtlSeconds(), 3600);
  EXPECT_EQ(ex->spec.cache->effectiveMaxEntries(), 10000);
  EXPECT_TRUE(validate(*ex).empty());

  auto errorsFor = [&](const json& cache) {
    json b = minimalDeployment();
    b["spec"]["cache"] = cache;
    auto d = ModelDeployment::fromJson(b);
    if (!d) return std::string(d.error());
    std::string all;
    for (const auto& s : validate(*d)) all += s + "\n";
    return all;
  };
  EXPECT_NE(errorsFor({{"mode", "Fuzzy"}}), "");
  EXPECT_NE(errorsFor({{"mode", "Semantic"}}).find("spec.cache.embeddingsDeploymentRef"), std::string::npos);
  EXPECT_NE(errorsFor({{"mode", "Exact"}, {"similarityThreshold", 1.5}}).find("spec.cache.similarityThreshold"),
            std::string::npos);
  EXPECT_NE(errorsFor({{"mode", "Exact"}, {"ttlSeconds", 0}}).find("spec.cache.ttlSeconds"), std::string::npos);
  EXPECT_NE(errorsFor({{"mode", "Exact"}, {"maxEntries", 0}}).find("spec.cache.maxEntries"), std::string::npos);
  EXPECT_NE(errorsFor({{"mode", "Exact"}, {"varyBy", json::array({{{"header", "a"}, {"field", "user"}}})}})
                .find("spec.cache.varyBy[0]"),
            std::string::npos);
  EXPECT_NE(errorsFor({{"mode", "Exact"}, {"varyBy", json::array({json::object()})}}).find("spec.cache.varyBy[0]"),
            std::string::npos);
  EXPECT_NE(errorsFor({{"mode", "Exact"}, {"varyBy", json::array({{{"field", "email"}}})}})
                .find("spec.cache.varyBy[0].field"),
            std::string::npos);
  EXPECT_NE(errorsFor({{"mode", "Semantic"}, {"embeddingsDeploymentRef", {{"name", "m"}}}})
                .find("must not name the ModelDeployment itself"),
            std::string::npos);
}

}  // namespace
}  // namespace waterline::api
