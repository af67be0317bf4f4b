// Decodes every sample (deploy/samples) and every CRD test manifest
// (tests/integration/manifests), and checks the codecs against the CRDs in crds/:
// defaults, the fields each side knows, enums, and each invalid manifest's "# expect:".
#include <fstream>
#include <set>

#include <gtest/gtest.h>

#include "waterline/api/capacity_pool.h"
#include "waterline/api/model_deployment.h"
#include "waterline/api/ptu_reservation.h"
#include "yaml_json.h"

namespace waterline::api {
namespace {

using nlohmann::json;
using testing::loadYamlFile;
using testing::sourceDir;
using testing::yamlFiles;

struct Decoded {
  std::string error;                    // decode error, empty when decoded
  std::vector<std::string> violations;  // validate()
  json encoded;                         // toJson() of the decoded object
  bool roundTrips = false;              // fromJson(toJson(x)) == x
};

template <class T>
Decoded decodeAs(const json& j) {
  Decoded d;
  auto r = T::fromJson(j);
  if (!r) {
    d.error = r.error();
    return d;
  }
  d.violations = validate(*r);
  d.encoded = r->toJson();
  auto again = T::fromJson(d.encoded);
  d.roundTrips = again.has_value() && *again == *r;
  return d;
}

Decoded decode(const json& j) {
  std::string kind = j.value("kind", "");
  if (kind == "CapacityPool") return decodeAs<CapacityPool>(j);
  if (kind == "ModelDeployment") return decodeAs<ModelDeployment>(j);
  if (kind == "PTUReservation") return decodeAs<PTUReservation>(j);
  Decoded d;
  d.error = "unknown kind " + kind;
  return d;
}

std::string joinAll(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += x + "\n";
  return s;
}

// Numbers compare by value; a number may come back as a quantity string; times may come
// back normalised to UTC.
bool sameScalar(const json& a, const json& b) {
  if (a == b) return true;
  if (a.is_number() && b.is_number()) return a.get<double>() == b.get<double>();
  if (a.is_number() && b.is_string()) return a.dump() == b.get<std::string>();
  if (a.is_string() && b.is_string()) {
    auto ta = parseTime(a.get<std::string>());
    auto tb = parseTime(b.get<std::string>());
    return ta && tb && *ta == *tb;
  }
  return false;
}

// Every field of `sub` is in `sup` with the same value.
void expectContains(const json& sup, const json& sub, const std::string& path) {
  if (sub.is_object()) {
    ASSERT_TRUE(sup.is_object()) << path;
    for (auto it = sub.begin(); it != sub.end(); ++it) {
      if (it.value().is_null()) continue;
      ASSERT_TRUE(sup.contains(it.key())) << "encoding dropped " << path << "." << it.key();
      expectContains(sup[it.key()], it.value(), path + "." + it.key());
    }
  } else if (sub.is_array()) {
    ASSERT_TRUE(sup.is_array()) << path;
    ASSERT_EQ(sup.size(), sub.size()) << path;
    for (size_t i = 0; i < sub.size(); ++i) expectContains(sup[i], sub[i], path + "[" + std::to_string(i) + "]");
  } else {
    EXPECT_TRUE(sameScalar(sub, sup)) << path << ": wrote " << sub << ", encoded " << sup;
  }
}

json crdSchema(const std::string& file) {
  auto docs = loadYamlFile(sourceDir() / "crds" / file);
  EXPECT_EQ(docs.size(), 1u);
  return docs.at(0)["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
}

json schemaFor(const std::string& kind) {
  if (kind == "CapacityPool") return crdSchema("waterline.dev_capacitypools.yaml");
  if (kind == "ModelDeployment") return crdSchema("waterline.dev_modeldeployments.yaml");
  return crdSchema("waterline.dev_ptureservations.yaml");
}

// Every field the codec writes is declared in the CRD schema (else the apiserver would
// prune it) and has the declared type.
void expectDeclared(const json& schema, const json& v, const std::string& path) {
  if (schema.value("x-kubernetes-int-or-string", false)) {
    EXPECT_TRUE(v.is_number_integer() || v.is_string()) << path;
    return;
  }
  if (schema.value("x-kubernetes-preserve-unknown-fields", false)) return;
  std::string type = schema.value("type", "");
  if (type == "object") {
    ASSERT_TRUE(v.is_object()) << path;
    if (path == "metadata") return;
    for (auto it = v.begin(); it != v.end(); ++it) {
      std::string p = path.empty() ? it.key() : path + "." + it.key();
      if (schema.contains("properties")) {
        ASSERT_TRUE(schema["properties"].contains(it.key())) << "not in the CRD schema: " << p;
        expectDeclared(schema["properties"][it.key()], it.value(), p);
      } else {
        ASSERT_TRUE(schema.contains("additionalProperties")) << p;
        expectDeclared(schema["additionalProperties"], it.value(), p);
      }
    }
  } else if (type == "array") {
    ASSERT_TRUE(v.is_array()) << path;
    for (size_t i = 0; i < v.size(); ++i) expectDeclared(schema["items"], v[i], path + "[" + std::to_string(i) + "]");
  } else if (type == "string") {
    EXPECT_TRUE(v.is_string()) << path;
  } else if (type == "integer") {
    EXPECT_TRUE(v.is_number_integer()) << path;
  } else if (type == "number") {
    EXPECT_TRUE(v.is_number()) << path;
  } else if (type == "boolean") {
    EXPECT_TRUE(v.is_boolean()) << path;
  } else {
    ADD_FAILURE() << "schema without type at " << path;
  }
}

// For every `default` in the schema: where the manifest left the field out but the
// encoding has its parent object, the encoding holds the CRD's default.
void expectDefaults(const json& schema, const json& original, const json& encoded, const std::string& path) {
  if (schema.value("type", "") != "object" || !schema.contains("properties") || !encoded.is_object()) return;
  // spec.template is kept as given (the apiserver applies its defaults; the operator
  // passes it through to the worker pods), so the codec defaults nothing in it.
  if (path == "spec.template") return;
  for (auto it = schema["properties"].begin(); it != schema["properties"].end(); ++it) {
    const std::string& key = it.key();
    const json& prop = it.value();
    std::string p = path.empty() ? key : path + "." + key;
    bool inOriginal = original.is_object() && original.contains(key) && !original[key].is_null();
    if (prop.contains("default") && !inOriginal) {
      ASSERT_TRUE(encoded.contains(key)) << "CRD defaults " << p << " but the codec does not";
      if (prop["default"].is_object())
        EXPECT_TRUE(encoded[key].is_object()) << p;
      else
        EXPECT_TRUE(sameScalar(prop["default"], encoded[key]))
            << p << ": CRD default " << prop["default"] << ", codec " << encoded[key];
    }
    if (encoded.contains(key))
      expectDefaults(prop, inOriginal ? original[key] : json::object(), encoded[key], p);
  }
}

std::vector<std::filesystem::path> validManifests() {
  auto a = yamlFiles(sourceDir() / "deploy" / "samples");
  auto b = yamlFiles(sourceDir() / "tests" / "integration" / "manifests" / "valid");
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

TEST(Manifests, SamplesCoverTheFleet) {
  std::set<std::string> seen;
  int n = 0;
  for (const auto& f : yamlFiles(sourceDir() / "deploy" / "samples")) {
    for (const auto& j : loadYamlFile(f)) {
      ++n;
      std::string kind = j["kind"];
      const json& s = j["spec"];
      if (kind == "CapacityPool") seen.insert("pool/" + s.value("sharing", json::object()).value("mode", "Exclusive"));
      if (kind == "ModelDeployment") {
        seen.insert("mdep/" + s.value("deploymentType", "Standard"));
        for (const char* k : {"count", "migProfile", "sharesPerGpu"})
          if (s["gpu"].contains(k)) seen.insert(std::string("gpu/") + k);
        if (s.contains("spillover")) seen.insert("spillover");
      }
      if (kind == "PTUReservation") seen.insert("ptu");
    }
  }
  EXPECT_GE(n, 10);
  for (const char* want : {"pool/Exclusive", "pool/MIG", "pool/TimeSlicing", "mdep/Standard", "mdep/DataZone",
                           "mdep/Global", "gpu/count", "gpu/migProfile", "gpu/sharesPerGpu", "spillover", "ptu"})
    EXPECT_TRUE(seen.count(want)) << "no sample with " << want;
}

TEST(Manifests, KustomizationListsEverySample) {
  auto k = loadYamlFile(sourceDir() / "deploy" / "samples" / "kustomization.yaml").at(0);
  std::set<std::string> listed;
  for (const auto& r : k["resources"]) listed.insert(r.get<std::string>());
  std::set<std::string> files;
  for (const auto& f : yamlFiles(sourceDir() / "deploy" / "samples")) files.insert(f.filename().string());
  EXPECT_EQ(listed, files);
}

TEST(Manifests, ValidOnesDecodeValidateAndRoundTrip) {
  auto files = validManifests();
  ASSERT_GE(files.size(), 15u);
  for (const auto& f : files) {
    SCOPED_TRACE(f.string());
    auto docs = loadYamlFile(f);
    ASSERT_EQ(docs.size(), 1u);
    Decoded d = decode(docs[0]);
    ASSERT_EQ(d.error, "");
    EXPECT_TRUE(d.violations.empty()) << joinAll(d.violations);
    EXPECT_TRUE(d.roundTrips);
    expectContains(d.encoded, docs[0], "");
  }
}

TEST(Manifests, EncodingMatchesTheCrdSchemaAndDefaults) {
  for (const auto& f : validManifests()) {
    SCOPED_TRACE(f.string());
    json original = loadYamlFile(f).at(0);
    Decoded d = decode(original);
    ASSERT_EQ(d.error, "");
    json schema = schemaFor(original["kind"]);
    expectDeclared(schema, d.encoded, "");
    expectDefaults(schema["properties"]["spec"], original["spec"], d.encoded["spec"], "spec");
  }
}

TEST(Manifests, InvalidOnesAreRejectedNamingTheField) {
  auto files = yamlFiles(sourceDir() / "tests" / "integration" / "manifests" / "invalid");
  ASSERT_GE(files.size(), 8u);
  for (const auto& f : files) {
    SCOPED_TRACE(f.string());
    std::ifstream in(f);
    std::string first;
    std::getline(in, first);
    const std::string prefix = "# expect: ";
    ASSERT_EQ(first.rfind(prefix, 0), 0u) << "first line must be '# expect: <field>'";
    std::string expect = first.substr(prefix.size());
    ASSERT_FALSE(expect.empty());
    auto docs = loadYamlFile(f);
    ASSERT_EQ(docs.size(), 1u);
    Decoded d = decode(docs[0]);
    if (!d.error.empty()) {
      EXPECT_NE(d.error.find(expect), std::string::npos) << "decode error: " << d.error;
      continue;
    }
    ASSERT_FALSE(d.violations.empty()) << "accepted by the client-side validation";
    bool named = false;
    for (const auto& v : d.violations) named |= v.find(expect) != std::string::npos;
    EXPECT_TRUE(named) << joinAll(d.violations);
  }
}

// Enum values in the CRDs are exactly those the codec knows.
template <class E, size_t N>
void expectEnum(const json& schema, const std::array<E, N>& values) {
  std::set<std::string> crd, cpp;
  for (const auto& v : schema["enum"]) crd.insert(v.get<std::string>());
  for (E e : values) cpp.insert(std::string(toString(e)));
  EXPECT_EQ(crd, cpp);
}

TEST(Manifests, CrdEnumsMatchTheCodec) {
  json pool = crdSchema("waterline.dev_capacitypools.yaml")["properties"]["spec"]["properties"];
  expectEnum(pool["sharing"]["properties"]["mode"],
             std::array{SharingMode::Exclusive, SharingMode::MIG, SharingMode::TimeSlicing, SharingMode::MPS});
  expectEnum(pool["schedulingStrategy"], std::array{SchedulingStrategy::BinPack, SchedulingStrategy::Spread});
  expectEnum(pool["nodeSelector"]["properties"]["matchExpressions"]["items"]["properties"]["operator"],
             std::array{SelectorOperator::In, SelectorOperator::NotIn, SelectorOperator::Exists,
                        SelectorOperator::DoesNotExist});
  json md = crdSchema("waterline.dev_modeldeployments.yaml")["properties"]["spec"]["properties"];
  expectEnum(md["deploymentType"], std::array{DeploymentType::Standard, DeploymentType::DataZone, DeploymentType::Global});
  expectEnum(md["template"]["properties"]["spec"]["properties"]["ports"]["items"]["properties"]["protocol"],
             std::array{Protocol::TCP, Protocol::UDP, Protocol::SCTP});
  json up = md["autoscaling"]["properties"]["scaleUp"]["properties"];
  expectEnum(up["selectPolicy"], std::array{SelectPolicy::Max, SelectPolicy::Min, SelectPolicy::Disabled});
  expectEnum(up["policies"]["items"]["properties"]["type"],
             std::array{ScalingPolicyType::Pods, ScalingPolicyType::Percent});
  json ptu = crdSchema("waterline.dev_ptureservations.yaml")["properties"];
  expectEnum(ptu["spec"]["properties"]["scope"]["properties"]["type"],
             std::array{ScopeType::Regional, ScopeType::DataZone, ScopeType::Global});
  expectEnum(ptu["status"]["properties"]["phase"],
             std::array{ReservationPhase::Pending, ReservationPhase::Active, ReservationPhase::Insufficient,
                        ReservationPhase::Expired});
  expectEnum(ptu["status"]["properties"]["conditions"]["items"]["properties"]["status"],
             std::array{ConditionStatus::True, ConditionStatus::False, ConditionStatus::Unknown});
}

// Fully populated statuses encode to fields the CRDs declare, and round-trip.
TEST(Manifests, StatusEncodingMatchesTheCrdSchema) {
  SystemTime t = *parseTime("2025-05-01T12:00:00Z");
  Condition ready{"Ready", ConditionStatus::True, "NodesReady", "3/3 nodes ready", t, 4};

  auto pool = CapacityPool::fromJson(loadYamlFile(sourceDir() / "deploy/samples/capacitypool-h100-mig-eu-west.yaml").at(0));
  ASSERT_TRUE(pool) << pool.error();
  pool->metadata.uid = "u-1";
  pool->metadata.resourceVersion = "42";
  pool->metadata.generation = 4;
  pool->metadata.creationTimestamp = t;
  pool->status = {4, 3, 2, {"gpu-a", "gpu-b", "gpu-c"}, {24, 16, 10, 8, 4, 6}, CapacityCounts{112, 64, 30, 56, 8, 34},
                  0.25, 0.5, {ready}};
  expectDeclared(crdSchema("waterline.dev_capacitypools.yaml"), pool->toJson(), "");
  EXPECT_EQ(CapacityPool::fromJson(pool->toJson()).value(), *pool);

  auto md = ModelDeployment::fromJson(loadYamlFile(sourceDir() / "deploy/samples/modeldeployment-llama-70b-standard.yaml").at(0));
  ASSERT_TRUE(md) << md.error();
  md->metadata.namespace_ = "llm";
  md->metadata.ownerReferences = {{"v1", "ConfigMap", "owner", "u-2", true, true}};
  md->metadata.finalizers = {"waterline.dev/finalizer"};
  md->status = {7, 3, 4, 3, 2, 3, "app.kubernetes.io/managed-by=waterline,waterline.dev/deployment=llama-70b",
                {{"h100-eu-west", 3, 2}}, "1 replica needs 4 GPUs on one node", AutoscalingStatus{"2713.5", t},
                {Condition{"Available", ConditionStatus::False, "MinimumReplicasUnavailable", "2/3", t, 7}}};
  expectDeclared(crdSchema("waterline.dev_modeldeployments.yaml"), md->toJson(), "");
  EXPECT_EQ(ModelDeployment::fromJson(md->toJson()).value(), *md);

  auto ptu = PTUReservation::fromJson(loadYamlFile(sourceDir() / "deploy/samples/ptureservation-llama-70b.yaml").at(0));
  ASSERT_TRUE(ptu) << ptu.error();
  ptu->status = {ReservationPhase::Active, 2, 125000, 1, {{"h100-eu-west", 1, 4}}, 90000, 0.72, "1234.5", 17, 3, t,
                 {Condition{"Ready", ConditionStatus::True, "Provisioned", "", t, 2}}};
  expectDeclared(crdSchema("waterline.dev_ptureservations.yaml"), ptu->toJson(), "");
  EXPECT_EQ(PTUReservation::fromJson(ptu->toJson()).value(), *ptu);
}

TEST(Manifests, CrdsDeclareTheirNamesAndSubresources) {
  struct Want {
    const char* file;
    const char* kind;
    const char* plural;
    const char* shortName;
    const char* scope;
    bool scale;
  };
  for (const Want& w : {Want{"waterline.dev_capacitypools.yaml", "CapacityPool", "capacitypools", "cpool", "Cluster", false},
                        Want{"waterline.dev_modeldeployments.yaml", "ModelDeployment", "modeldeployments", "mdep",
                             "Namespaced", true},
                        Want{"waterline.dev_ptureservations.yaml", "PTUReservation", "ptureservations", "ptu",
                             "Namespaced", false}}) {
    SCOPED_TRACE(w.file);
    json crd = loadYamlFile(sourceDir() / "crds" / w.file).at(0);
    EXPECT_EQ(crd["metadata"]["name"], std::string(w.plural) + ".waterline.dev");
    EXPECT_EQ(crd["spec"]["group"], "waterline.dev");
    EXPECT_EQ(crd["spec"]["names"]["kind"], w.kind);
    EXPECT_EQ(crd["spec"]["names"]["plural"], w.plural);
    EXPECT_EQ(crd["spec"]["names"]["shortNames"], json::array({w.shortName}));
    EXPECT_EQ(crd["spec"]["names"]["categories"], json::array({"waterline"}));
    EXPECT_EQ(crd["spec"]["scope"], w.scope);
    const json& v = crd["spec"]["versions"][0];
    EXPECT_EQ(v["name"], "v1alpha1");
    EXPECT_TRUE(v["subresources"].contains("status"));
    EXPECT_EQ(v["subresources"].contains("scale"), w.scale);
  }
}

}  // namespace
}  // namespace waterline::api
