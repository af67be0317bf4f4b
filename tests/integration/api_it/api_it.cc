// Our CRDs, samples and API client against a real kube-apiserver (the `controlplane`
// CTest fixture: hack/controlplane.sh, crds/ applied and Established).
//
//   - every sample in deploy/samples and every manifest in
//     tests/integration/manifests/valid is accepted by `kubectl apply`, reads back through
//     RestClient and decodes with api::*::fromJson to the spec the local file decodes to
//     (so our client-side defaults agree with the CRD's);
//   - every manifest in tests/integration/manifests/invalid is rejected, naming the field
//     of its `# expect:` header (by kubectl and by RestClient::create);
//   - server-side apply, field-manager conflicts, status and scale subresources, printer
//     columns / category / short names, optimistic concurrency and delete preconditions.
//
// The kubeconfig comes from $WATERLINE_TEST_KUBECONFIG (tests skip only when it is unset;
// set but unusable fails), the repository from $WATERLINE_SOURCE_DIR. Each test works in a
// namespace of its own and deletes what it created (no kube-controller-manager runs, so
// namespaced objects are deleted one by one and the namespace stays Terminating).
// kubectl is $WATERLINE_KUBECTL, else `kubectl` from PATH.
#include <gtest/gtest.h>

#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <fcntl.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <charconv>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include "waterline/api/capacity_pool.h"
#include "waterline/api/conditions.h"
#include "waterline/api/keys.h"
#include "waterline/api/model_deployment.h"
#include "waterline/api/ptu_reservation.h"
#include "waterline/api/selector.h"
#include "waterline/kube/config.h"
#include "waterline/kube/rest_client.h"

extern char** environ;

namespace waterline {
namespace {

namespace fs = std::filesystem;
using kube::ApiError;
using kube::Json;
using kube::ResourceKind;

// ------------------------------------------------------------------ environment

std::string envOr(const char* name, const std::string& fallback = "") {
  const char* v = std::getenv(name);
  return v && *v ? std::string(v) : fallback;
}

std::string kubeconfigPath() { return envOr("WATERLINE_TEST_KUBECONFIG"); }

fs::path sourceDir() { return envOr("WATERLINE_SOURCE_DIR", WATERLINE_SOURCE_DIR); }

std::string randomSuffix() {
  static std::mt19937_64 rng{std::random_device{}()};
  static std::mutex mu;
  std::lock_guard g(mu);
  const char* alphabet = "abcdefghijklmnopqrstuvwxyz0123456789";
  std::string s;
  for (int i = 0; i < 6; ++i) s.push_back(alphabet[rng() % 36]);
  return s;
}

std::string join(const std::vector<std::string>& v, const std::string& sep = "; ") {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : sep) + s;
  return out;
}

std::string readFile(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// ------------------------------------------------------------------ running kubectl

struct CmdResult {
  int exitCode = -1;  // -signal when killed by one
  std::string out;
  std::string err;
  std::string cmdline;
  std::string describe() const {
    return "`" + cmdline + "` exited " + std::to_string(exitCode) + "\n--- stdout:\n" + out +
           "--- stderr:\n" + err;
  }
};

// Runs argv[0] (from PATH) with stdin from /dev/null, capturing stdout and stderr in
// temporary files (no pipes to drain, no deadlock on large outputs).
CmdResult runCmd(const std::vector<std::string>& argv) {
  CmdResult r;
  for (const auto& a : argv) r.cmdline += (r.cmdline.empty() ? "" : " ") + a;
  static std::atomic<int> seq{0};
  const fs::path base = fs::temp_directory_path() /
                        ("wl-api-it-" + std::to_string(::getpid()) + "-" + std::to_string(seq++));
  const std::string outPath = base.string() + ".out", errPath = base.string() + ".err";

  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, outPath.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_addopen(&fa, 2, errPath.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  std::vector<char*> cargv;
  for (const auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);
  pid_t pid = 0;
  const int rc = posix_spawnp(&pid, cargv[0], &fa, nullptr, cargv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) {
    r.err = "posix_spawnp: " + std::string(std::strerror(rc));
    return r;
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  r.exitCode = WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
  r.out = readFile(outPath);
  r.err = readFile(errPath);
  std::error_code ec;
  fs::remove(outPath, ec);
  fs::remove(errPath, ec);
  return r;
}

CmdResult kubectl(std::vector<std::string> args) {
  std::vector<std::string> argv = {envOr("WATERLINE_KUBECTL", "kubectl"), "--kubeconfig",
                                   kubeconfigPath(), "--request-timeout=60s"};
  argv.insert(argv.end(), args.begin(), args.end());
  return runCmd(argv);
}

bool contains(const std::string& hay, const std::string& needle) {
  return hay.find(needle) != std::string::npos;
}

std::vector<std::string> splitWs(const std::string& line) {
  std::istringstream in(line);
  std::vector<std::string> out;
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

std::vector<std::string> lines(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  for (std::string l; std::getline(in, l);)
    if (!l.empty()) out.push_back(l);
  return out;
}

// ------------------------------------------------------------------ manifests

// YAML -> JSON as sigs.k8s.io/yaml resolves plain scalars (null, bool, int, float, else
// string); quoted and block scalars stay strings.
Json yamlToJson(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Undefined:
    case YAML::NodeType::Null:
      return nullptr;
    case YAML::NodeType::Sequence: {
      Json a = Json::array();
      for (const auto& e : n) a.push_back(yamlToJson(e));
      return a;
    }
    case YAML::NodeType::Map: {
      Json o = Json::object();
      for (const auto& kv : n) o[kv.first.Scalar()] = yamlToJson(kv.second);
      return o;
    }
    case YAML::NodeType::Scalar:
      break;
  }
  const std::string& s = n.Scalar();
  if (n.Tag() != "?") return s;  // quoted ("!"), block, or explicitly tagged
  if (s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL") return nullptr;
  if (s == "true" || s == "True" || s == "TRUE") return true;
  if (s == "false" || s == "False" || s == "FALSE") return false;
  static const std::regex intRe(R"([-+]?[0-9]+)");
  static const std::regex floatRe(R"([-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?)");
  if (std::regex_match(s, intRe)) {
    int64_t v = 0;
    const char* b = s.data() + (s[0] == '+' ? 1 : 0);
    auto [p, ec] = std::from_chars(b, s.data() + s.size(), v);
    if (ec == std::errc() && p == s.data() + s.size()) return v;
  }
  if (std::regex_match(s, floatRe)) return std::stod(s);
  return s;
}

// The one object of a manifest file.
Json loadManifest(const fs::path& p) {
  auto docs = YAML::LoadAllFromFile(p.string());
  std::vector<Json> objs;
  for (const auto& d : docs)
    if (d && !d.IsNull()) objs.push_back(yamlToJson(d));
  if (objs.size() != 1)
    throw std::runtime_error(p.string() + ": expected one object, found " + std::to_string(objs.size()));
  return objs[0];
}

// The value of a `# <key>: value` header line, "" when absent.
std::string headerValue(const fs::path& p, const std::string& key) {
  std::ifstream in(p);
  const std::string prefix = "# " + key + ":";
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(prefix, 0) == 0) {
      std::string v = line.substr(prefix.size());
      v.erase(0, v.find_first_not_of(" \t"));
      v.erase(v.find_last_not_of(" \t\r") + 1);
      return v;
    }
  }
  return "";
}

// *.yaml file names in a repository folder, sorted; kustomization.yaml left out.
std::vector<std::string> manifestFiles(const std::string& rel) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(sourceDir() / rel, ec)) {
    const std::string name = e.path().filename().string();
    if (e.is_regular_file() && e.path().extension() == ".yaml" && name != "kustomization.yaml")
      out.push_back(name);
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string paramName(const ::testing::TestParamInfo<std::string>& info) {
  std::string s = fs::path(info.param).stem().string();
  for (char& c : s)
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  return s;
}

const ResourceKind* kindFor(const std::string& kind) {
  if (kind == "CapacityPool") return &kube::kinds::CapacityPool;
  if (kind == "ModelDeployment") return &kube::kinds::ModelDeployment;
  if (kind == "PTUReservation") return &kube::kinds::PTUReservation;
  return nullptr;
}

std::string nameOf(const Json& obj) { return obj["metadata"].value("name", ""); }
std::string rvOf(const Json& obj) { return obj["metadata"].value("resourceVersion", ""); }
int64_t generationOf(const Json& obj) { return obj["metadata"].value("generation", int64_t{0}); }

// The metadata.managedFields entry of `manager` (and operation), or null.
Json managedFieldsOf(const Json& obj, const std::string& manager, const std::string& subresource = "") {
  for (const auto& mf : obj["metadata"].value("managedFields", Json::array()))
    if (mf.value("manager", "") == manager && mf.value("subresource", "") == subresource) return mf;
  return nullptr;
}

// ------------------------------------------------------------------ fixture

class ApiIT : public ::testing::Test {
 protected:
  void SetUp() override {
    if (kubeconfigPath().empty()) GTEST_SKIP() << "WATERLINE_TEST_KUBECONFIG is not set";
    auto cfg = kube::loadKubeconfig(kubeconfigPath());
    ASSERT_TRUE(cfg) << "WATERLINE_TEST_KUBECONFIG=" << kubeconfigPath() << ": " << cfg.error();
    auto c = kube::RestClient::create(*cfg);
    ASSERT_TRUE(c) << c.error();
    client_ = *c;
    const std::string ns = "wl-api-it-" + randomSuffix();
    auto created = client_->create(kube::kinds::Namespace, "",
                                   Json{{"apiVersion", "v1"}, {"kind", "Namespace"},
                                        {"metadata", {{"name", ns}}}});
    ASSERT_TRUE(created) << "apiserver unreachable or refusing (WATERLINE_TEST_KUBECONFIG="
                         << kubeconfigPath() << "): " << created.error().describe();
    ns_ = ns;
  }

  void TearDown() override {
    if (!client_) return;
    // Cluster-scoped objects this test made.
    for (auto it = clusterObjects_.rbegin(); it != clusterObjects_.rend(); ++it) {
      auto r = client_->remove(*it->first, "", it->second);
      if (!r && !r.error().isNotFound())
        ADD_FAILURE() << "cleanup of " << it->first->kind << " " << it->second << ": "
                      << r.error().describe();
    }
    if (ns_.empty()) return;
    // Everything of ours in the namespace (nothing garbage-collects it).
    for (const ResourceKind* k : {&kube::kinds::PTUReservation, &kube::kinds::ModelDeployment}) {
      auto l = kube::listAll(*client_, *k, ns_);
      if (!l) {
        ADD_FAILURE() << "cleanup list of " << k->resource << ": " << l.error().describe();
        continue;
      }
      for (const auto& o : l->items) {
        auto r = client_->remove(*k, ns_, nameOf(o));
        if (!r && !r.error().isNotFound())
          ADD_FAILURE() << "cleanup of " << k->kind << " " << nameOf(o) << ": " << r.error().describe();
      }
    }
    (void)client_->remove(kube::kinds::Namespace, "", ns_);
  }

  kube::RestClient& c() { return *client_; }
  const std::string& ns() const { return ns_; }

  // Deletes this cluster-scoped object in TearDown.
  void own(const ResourceKind& kind, const std::string& name) {
    clusterObjects_.emplace_back(&kind, name);
  }

  // A cluster-scoped object must not exist before a test applies it under its fixed name
  // (a sample's), else the test would modify and then delete somebody else's object.
  void assertAbsent(const ResourceKind& kind, const std::string& name) {
    auto got = c().get(kind, "", name);
    ASSERT_FALSE(got) << kind.kind << " " << name
                      << " already exists (left behind by another test?); refusing to touch it";
    ASSERT_TRUE(got.error().isNotFound()) << got.error().describe();
  }

  // A fresh CapacityPool name, deleted in TearDown.
  std::string poolName() {
    std::string n = "wl-api-it-" + randomSuffix();
    own(kube::kinds::CapacityPool, n);
    return n;
  }

  // Applies one manifest file with kubectl (into this test's namespace when namespaced),
  // then reads it back and checks that it decodes as the local file does.
  void applyAndDecode(const fs::path& file);

  template <class T>
  void checkDecodes(const Json& server, const Json& local);

  std::shared_ptr<kube::RestClient> client_;
  std::string ns_;
  std::vector<std::pair<const ResourceKind*, std::string>> clusterObjects_;
};

// Every field of `sub` is in `sup` with the same value (lists item by item, same length).
bool jsonSubset(const Json& sup, const Json& sub) {
  if (sub.is_object()) {
    if (!sup.is_object()) return false;
    for (auto it = sub.begin(); it != sub.end(); ++it)
      if (!sup.contains(it.key()) || !jsonSubset(sup[it.key()], it.value())) return false;
    return true;
  }
  if (sub.is_array()) {
    if (!sup.is_array() || sup.size() != sub.size()) return false;
    for (size_t i = 0; i < sub.size(); ++i)
      if (!jsonSubset(sup[i], sub[i])) return false;
    return true;
  }
  return sup == sub;
}

template <class T>
void ApiIT::checkDecodes(const Json& server, const Json& local) {
  auto s = T::fromJson(server);
  ASSERT_TRUE(s) << "fromJson of the server's object: " << s.error() << "\n" << server.dump(2);
  auto l = T::fromJson(local);
  ASSERT_TRUE(l) << "fromJson of the manifest: " << l.error();
  EXPECT_EQ(s->metadata.name, nameOf(local));
  EXPECT_FALSE(s->metadata.uid.empty());
  EXPECT_FALSE(s->metadata.resourceVersion.empty());
  EXPECT_EQ(s->metadata.generation, 1);
  EXPECT_TRUE(s->metadata.creationTimestamp.has_value());
  // The CRD's defaults (applied by the server) equal operator/api's (applied by fromJson).
  auto sSpec = s->spec;
  auto lSpec = l->spec;
  if constexpr (std::is_same_v<T, api::ModelDeployment>) {
    // spec.template is kept as given (a PodTemplateSpec passed through to the workers):
    // the server's is the manifest's plus the defaults of the Kubernetes schema in it
    // (ports[].protocol and the like), which fromJson does not apply.
    EXPECT_TRUE(jsonSubset(sSpec.template_.raw, lSpec.template_.raw))
        << "server's template:\n" << sSpec.template_.raw.dump(2) << "\nmanifest's:\n" << lSpec.template_.raw.dump(2);
    sSpec.template_ = lSpec.template_ = {};
  }
  EXPECT_TRUE(sSpec == lSpec) << "spec as the server defaulted it:\n"
                              << api::toJson(s->spec).dump(2)
                              << "\nspec as fromJson defaulted the manifest:\n"
                              << api::toJson(l->spec).dump(2);
  // Client-side validation agrees with the server's.
  const auto errs = api::validate(*s);
  EXPECT_TRUE(errs.empty()) << "api::validate rejects an object the server accepted: " << join(errs);
  // toJson/fromJson round trip.
  auto rt = T::fromJson(s->toJson());
  ASSERT_TRUE(rt) << rt.error();
  EXPECT_TRUE(*rt == *s) << "round trip changed the object:\n"
                         << s->toJson().dump(2) << "\nvs\n"
                         << rt->toJson().dump(2);
}

void ApiIT::applyAndDecode(const fs::path& file) {
  Json local;
  ASSERT_NO_THROW(local = loadManifest(file)) << file;
  const std::string kindName = local.value("kind", "");
  const ResourceKind* kind = kindFor(kindName);
  ASSERT_NE(kind, nullptr) << file << ": unexpected kind " << kindName;
  ASSERT_EQ(local.value("apiVersion", ""), kind->apiVersion()) << file;
  const std::string name = nameOf(local);
  ASSERT_FALSE(name.empty()) << file;
  ASSERT_FALSE(local["metadata"].contains("namespace"))
      << file << ": manifests carry no namespace (applied with -n)";

  std::vector<std::string> args = {"apply", "-f", file.string()};
  if (kind->namespaced) {
    args.insert(args.end(), {"-n", ns()});
  } else {
    assertAbsent(*kind, name);
    if (HasFatalFailure()) return;
    own(*kind, name);
  }
  const CmdResult applied = kubectl(args);
  ASSERT_EQ(applied.exitCode, 0) << applied.describe();
  EXPECT_TRUE(contains(applied.out, " created")) << applied.describe();

  const std::string objNs = kind->namespaced ? ns() : "";
  auto got = c().get(*kind, objNs, name);
  ASSERT_TRUE(got) << got.error().describe();
  EXPECT_EQ((*got)["kind"], kindName);
  if (kindName == "CapacityPool") checkDecodes<api::CapacityPool>(*got, local);
  if (kindName == "ModelDeployment") checkDecodes<api::ModelDeployment>(*got, local);
  if (kindName == "PTUReservation") checkDecodes<api::PTUReservation>(*got, local);

  // Applying the same file again writes nothing. (kubectl may still print "configured":
  // its client-side apply re-sends whole lists whose items the server defaulted, such as
  // template ports gaining protocol: TCP, as a no-op merge patch.)
  const CmdResult again = kubectl(args);
  ASSERT_EQ(again.exitCode, 0) << again.describe();
  auto after = c().get(*kind, objNs, name);
  ASSERT_TRUE(after) << after.error().describe();
  EXPECT_EQ(rvOf(*after), rvOf(*got)) << "re-applying the unchanged file modified the object";
  EXPECT_EQ(generationOf(*after), 1);
}

// ------------------------------------------------------------------ 1. samples and valid/

class SampleApplies : public ApiIT, public ::testing::WithParamInterface<std::string> {};

TEST_P(SampleApplies, ApplyReadDecode) {
  applyAndDecode(sourceDir() / "deploy/samples" / GetParam());
}
INSTANTIATE_TEST_SUITE_P(Samples, SampleApplies,
                         ::testing::ValuesIn(manifestFiles("deploy/samples")), paramName);

class ValidManifest : public ApiIT, public ::testing::WithParamInterface<std::string> {};

TEST_P(ValidManifest, ApplyReadDecode) {
  applyAndDecode(sourceDir() / "tests/integration/manifests/valid" / GetParam());
}
INSTANTIATE_TEST_SUITE_P(Valid, ValidManifest,
                         ::testing::ValuesIn(manifestFiles("tests/integration/manifests/valid")),
                         paramName);

// deploy/samples/kustomization.yaml lists exactly the samples; `kubectl apply -k` applies
// them all at once, and the references between them resolve.
TEST_F(ApiIT, KustomizationAppliesEverySample) {
  const fs::path dir = sourceDir() / "deploy/samples";
  const auto files = manifestFiles("deploy/samples");
  ASSERT_FALSE(files.empty());
  YAML::Node kust = YAML::LoadFile((dir / "kustomization.yaml").string());
  std::set<std::string> listed;
  for (const auto& r : kust["resources"]) listed.insert(r.as<std::string>());
  EXPECT_EQ(listed, std::set<std::string>(files.begin(), files.end()))
      << "kustomization.yaml resources differ from the sample files";

  std::map<std::string, std::set<std::string>> names;  // kind -> names
  std::vector<Json> objs;
  for (const auto& f : files) {
    Json o = loadManifest(dir / f);
    names[o.value("kind", "")].insert(nameOf(o));
    objs.push_back(o);
  }
  for (const auto& p : names["CapacityPool"]) {
    assertAbsent(kube::kinds::CapacityPool, p);
    if (HasFatalFailure()) return;
    own(kube::kinds::CapacityPool, p);
  }
  // References between samples resolve.
  for (const auto& o : objs) {
    if (o["kind"] == "PTUReservation") {
      EXPECT_TRUE(names["ModelDeployment"].contains(o["spec"]["deploymentRef"]["name"].get<std::string>()))
          << nameOf(o) << ": deploymentRef names no sample ModelDeployment";
    }
    if (o["kind"] == "ModelDeployment" && o["spec"].contains("spillover")) {
      EXPECT_TRUE(names["ModelDeployment"].contains(
          o["spec"]["spillover"]["deploymentRef"]["name"].get<std::string>()))
          << nameOf(o) << ": spillover names no sample ModelDeployment";
    }
  }

  const CmdResult r = kubectl({"apply", "-k", dir.string(), "-n", ns()});
  ASSERT_EQ(r.exitCode, 0) << r.describe();
  EXPECT_EQ(lines(r.out).size(), files.size()) << r.describe();

  for (const auto& p : names["CapacityPool"]) {
    auto got = c().get(kube::kinds::CapacityPool, "", p);
    EXPECT_TRUE(got) << p << ": " << got.error().describe();
  }
  for (const auto& [kindName, kind] :
       {std::pair{"ModelDeployment", &kube::kinds::ModelDeployment},
        std::pair{"PTUReservation", &kube::kinds::PTUReservation}}) {
    auto l = kube::listAll(c(), *kind, ns());
    ASSERT_TRUE(l) << l.error().describe();
    std::set<std::string> got;
    for (const auto& i : l->items) got.insert(nameOf(i));
    EXPECT_EQ(got, names[kindName]) << kindName;
  }
}

// ------------------------------------------------------------------ 2. invalid/

class InvalidManifest : public ApiIT, public ::testing::WithParamInterface<std::string> {};

TEST_P(InvalidManifest, Rejected) {
  const fs::path file = sourceDir() / "tests/integration/manifests/invalid" / GetParam();
  const std::string expect = headerValue(file, "expect");
  ASSERT_FALSE(expect.empty()) << file << ": no `# expect: <substring>` header";
  EXPECT_FALSE(headerValue(file, "checks").empty()) << file << ": no `# checks:` header";
  Json local;
  ASSERT_NO_THROW(local = loadManifest(file)) << file;
  const ResourceKind* kind = kindFor(local.value("kind", ""));
  ASSERT_NE(kind, nullptr) << file << ": unexpected kind " << local.value("kind", "");
  const std::string name = nameOf(local);
  ASSERT_FALSE(name.empty());
  const std::string objNs = kind->namespaced ? ns() : "";
  if (!kind->namespaced) {
    assertAbsent(*kind, name);
    if (HasFatalFailure()) return;
    own(*kind, name);  // in case it is (wrongly) accepted
  }

  const CmdResult r = kubectl({"apply", "-f", file.string(), "-n", ns()});
  EXPECT_NE(r.exitCode, 0) << "accepted:\n" << r.describe();
  EXPECT_TRUE(contains(r.err, "is invalid")) << "not a validation error:\n" << r.describe();
  EXPECT_TRUE(contains(r.err, expect)) << "error does not name `" << expect << "`:\n" << r.describe();

  // The same object through our client: 422 Invalid, and the error names the field.
  auto created = c().create(*kind, objNs, local);
  ASSERT_FALSE(created) << "RestClient::create accepted it";
  EXPECT_TRUE(created.error().isInvalid()) << created.error().describe();
  EXPECT_EQ(created.error().httpCode, 422);
  EXPECT_TRUE(contains(created.error().describe(), expect))
      << "ApiError does not name `" << expect << "`: " << created.error().describe();

  auto got = c().get(*kind, objNs, name);
  ASSERT_FALSE(got) << "the object exists after being rejected";
  EXPECT_TRUE(got.error().isNotFound()) << got.error().describe();
}
INSTANTIATE_TEST_SUITE_P(Invalid, InvalidManifest,
                         ::testing::ValuesIn(manifestFiles("tests/integration/manifests/invalid")),
                         paramName);

// ------------------------------------------------------------------ helpers for 3-7

constexpr const char* kTestManager = "waterline-api-it";

api::CapacityPool makePool(const std::string& name) {
  api::CapacityPool p;
  p.metadata.name = name;
  p.spec.region = "eu-west";
  p.spec.dataZone = "EU";
  p.spec.gpuProduct = "NVIDIA-H100-80GB-HBM3";
  p.spec.nodeSelector.matchLabels = {{"waterline.dev/pool", name}};
  p.spec.sharing.mode = api::SharingMode::Exclusive;
  p.spec.schedulingStrategy = api::SchedulingStrategy::Spread;
  p.spec.reservableFraction = 0.5;
  return p;
}

// An apply configuration: apiVersion, kind, metadata.name (and namespace) only.
Json applyHead(const ResourceKind& kind, const std::string& name, const std::string& ns = "") {
  Json meta = {{"name", name}};
  if (!ns.empty()) meta["namespace"] = ns;
  return {{"apiVersion", kind.apiVersion()}, {"kind", kind.kind}, {"metadata", meta}};
}

kube::PatchOptions ssa(const std::string& manager, const std::string& subresource = "",
                       bool force = false) {
  kube::PatchOptions o;
  o.fieldManager = manager;
  o.subresource = subresource;
  o.force = force;
  return o;
}

// The status the operator would write: observedGeneration, counts and a Ready condition
// computed for that generation.
api::CapacityPoolStatus poolStatus(int64_t generation, int32_t gpus, int32_t free) {
  api::CapacityPoolStatus st;
  st.observedGeneration = generation;
  st.nodes = gpus / 8;
  st.readyNodes = gpus / 8;
  st.gpus.total = st.gpus.allocatable = gpus;
  st.gpus.free = free;
  st.gpus.allocated = gpus - free;
  api::Condition ready;
  ready.type = std::string(api::conditions::kReady);
  ready.status = api::ConditionStatus::True;
  ready.reason = std::string(api::reasons::kNodesReady);
  ready.message = "all nodes ready";
  ready.observedGeneration = generation;
  api::setCondition(st.conditions, ready, std::chrono::system_clock::now());
  return st;
}

Json statusApply(const std::string& name, const api::CapacityPoolStatus& st) {
  Json body = applyHead(kube::kinds::CapacityPool, name);
  body["status"] = api::toJson(st);
  return body;
}

// ------------------------------------------------------------------ 3. SSA and status

TEST_F(ApiIT, ServerSideApplyCreatesAndUpdatesCapacityPool) {
  const std::string name = poolName();
  const api::CapacityPool pool = makePool(name);
  Json body = pool.toJson(/*withStatus=*/false);

  auto created = c().apply(kube::kinds::CapacityPool, "", body, ssa(kTestManager));
  ASSERT_TRUE(created) << created.error().describe();
  EXPECT_EQ(generationOf(*created), 1);
  auto decoded = api::CapacityPool::fromJson(*created);
  ASSERT_TRUE(decoded) << decoded.error();
  EXPECT_TRUE(decoded->spec == pool.spec) << created->dump(2);
  const Json mf = managedFieldsOf(*created, kTestManager);
  ASSERT_FALSE(mf.is_null()) << created->dump(2);
  EXPECT_EQ(mf["operation"], "Apply");
  EXPECT_TRUE(mf["fieldsV1"]["f:spec"].contains("f:schedulingStrategy")) << mf.dump();

  // The same configuration again is a no-op.
  auto same = c().apply(kube::kinds::CapacityPool, "", body, ssa(kTestManager));
  ASSERT_TRUE(same) << same.error().describe();
  EXPECT_EQ(rvOf(*same), rvOf(*created));
  EXPECT_EQ(generationOf(*same), 1);

  // A changed configuration updates; a field left out of it is removed (and the CRD
  // default comes back).
  body["spec"]["reservableFraction"] = 0.25;
  body["spec"].erase("schedulingStrategy");
  auto updated = c().apply(kube::kinds::CapacityPool, "", body, ssa(kTestManager));
  ASSERT_TRUE(updated) << updated.error().describe();
  EXPECT_EQ(generationOf(*updated), 2);
  EXPECT_NE(rvOf(*updated), rvOf(*created));
  EXPECT_EQ((*updated)["spec"]["reservableFraction"], 0.25);
  EXPECT_EQ((*updated)["spec"]["schedulingStrategy"], "BinPack");
  auto got = c().get(kube::kinds::CapacityPool, "", name);
  ASSERT_TRUE(got) << got.error().describe();
  auto typed = api::CapacityPool::fromJson(*got);
  ASSERT_TRUE(typed) << typed.error();
  EXPECT_EQ(typed->spec.reservableFraction, 0.25);
  EXPECT_EQ(typed->spec.schedulingStrategy, api::SchedulingStrategy::BinPack);
  EXPECT_EQ(typed->metadata.generation, 2);
}

TEST_F(ApiIT, StatusSubresourceTracksObservedGeneration) {
  const std::string name = poolName();
  Json spec = makePool(name).toJson(false);
  auto created = c().apply(kube::kinds::CapacityPool, "", spec, ssa(kTestManager));
  ASSERT_TRUE(created) << created.error().describe();
  const int64_t gen1 = generationOf(*created);
  ASSERT_EQ(gen1, 1);
  EXPECT_FALSE(created->contains("status") && (*created)["status"].contains("observedGeneration"));

  const std::string op(api::kFieldManager);
  ASSERT_EQ(op, "waterline-operator");
  auto st1 = c().apply(kube::kinds::CapacityPool, "", statusApply(name, poolStatus(gen1, 16, 16)),
                       ssa(op, "status"));
  ASSERT_TRUE(st1) << st1.error().describe();
  {
    auto p = api::CapacityPool::fromJson(*st1);
    ASSERT_TRUE(p) << p.error();
    EXPECT_EQ(p->metadata.generation, gen1) << "a status write must not bump generation";
    EXPECT_EQ(p->status.observedGeneration, p->metadata.generation);
    EXPECT_TRUE(api::isTrueFor(p->status.conditions, api::conditions::kReady, gen1));
    EXPECT_EQ(p->status.gpus.total, 16);
  }
  const Json opFields = managedFieldsOf(*st1, op, "status");
  ASSERT_FALSE(opFields.is_null()) << st1->dump(2);
  EXPECT_EQ(opFields["operation"], "Apply");

  // A spec change bumps generation; status still describes the old one until rewritten.
  spec["spec"]["region"] = "eu-north";
  auto changed = c().apply(kube::kinds::CapacityPool, "", spec, ssa(kTestManager));
  ASSERT_TRUE(changed) << changed.error().describe();
  const int64_t gen2 = generationOf(*changed);
  EXPECT_EQ(gen2, gen1 + 1);
  EXPECT_EQ((*changed)["status"]["observedGeneration"], gen1);

  auto st2 = c().apply(kube::kinds::CapacityPool, "", statusApply(name, poolStatus(gen2, 16, 8)),
                       ssa(op, "status"));
  ASSERT_TRUE(st2) << st2.error().describe();
  auto got = c().get(kube::kinds::CapacityPool, "", name);
  ASSERT_TRUE(got) << got.error().describe();
  auto p = api::CapacityPool::fromJson(*got);
  ASSERT_TRUE(p) << p.error();
  EXPECT_EQ(p->metadata.generation, gen2);
  EXPECT_EQ(p->status.observedGeneration, gen2);
  EXPECT_TRUE(api::isTrueFor(p->status.conditions, api::conditions::kReady, gen2));
  EXPECT_EQ(p->status.gpus.free, 8);
  EXPECT_EQ(p->spec.region, "eu-north");

  // getSubresource("status") serves the same object.
  auto viaStatus = c().getSubresource(kube::kinds::CapacityPool, "", name, "status");
  ASSERT_TRUE(viaStatus) << viaStatus.error().describe();
  EXPECT_EQ((*viaStatus)["status"]["observedGeneration"], gen2);
}

TEST_F(ApiIT, StatusWriteDoesNotChangeSpec) {
  const std::string name = poolName();
  auto created = c().apply(kube::kinds::CapacityPool, "", makePool(name).toJson(false), ssa(kTestManager));
  ASSERT_TRUE(created) << created.error().describe();

  // SSA on the status subresource with a spec field in it: the spec part is dropped.
  Json body = statusApply(name, poolStatus(1, 8, 8));
  body["spec"] = {{"region", "us-east"}};
  auto viaApply = c().apply(kube::kinds::CapacityPool, "", body, ssa(std::string(api::kFieldManager), "status"));
  ASSERT_TRUE(viaApply) << viaApply.error().describe();
  EXPECT_EQ((*viaApply)["spec"]["region"], "eu-west");
  EXPECT_EQ((*viaApply)["status"]["gpus"]["total"], 8);

  // PUT /status with a changed spec: likewise.
  auto typed = api::CapacityPool::fromJson(*viaApply);
  ASSERT_TRUE(typed) << typed.error();
  typed->spec.region = "us-east";
  typed->spec.reservableFraction = 0.9;
  typed->status.gpus.total = 24;
  kube::WriteOptions wo;
  wo.subresource = "status";
  auto viaPut = c().update(kube::kinds::CapacityPool, "", typed->toJson(), wo);
  ASSERT_TRUE(viaPut) << viaPut.error().describe();
  EXPECT_EQ((*viaPut)["status"]["gpus"]["total"], 24);

  // Merge patch on /status with a spec change: likewise.
  kube::PatchOptions po;
  po.subresource = "status";
  auto viaPatch = c().patch(kube::kinds::CapacityPool, "", name, kube::PatchType::Merge,
                            R"({"spec":{"region":"us-east"},"status":{"gpus":{"free":3}}})", po);
  ASSERT_TRUE(viaPatch) << viaPatch.error().describe();
  EXPECT_EQ((*viaPatch)["status"]["gpus"]["free"], 3);

  auto got = c().get(kube::kinds::CapacityPool, "", name);
  ASSERT_TRUE(got) << got.error().describe();
  EXPECT_EQ((*got)["spec"]["region"], "eu-west");
  EXPECT_EQ((*got)["spec"]["reservableFraction"], 0.5);
  EXPECT_EQ(generationOf(*got), 1);
  EXPECT_EQ((*got)["status"]["gpus"]["total"], 24);
}

TEST_F(ApiIT, MainResourceWriteDoesNotChangeStatus) {
  const std::string name = poolName();
  auto created = c().apply(kube::kinds::CapacityPool, "", makePool(name).toJson(false), ssa(kTestManager));
  ASSERT_TRUE(created) << created.error().describe();
  auto st = c().apply(kube::kinds::CapacityPool, "", statusApply(name, poolStatus(1, 16, 16)),
                      ssa(std::string(api::kFieldManager), "status"));
  ASSERT_TRUE(st) << st.error().describe();

  // SSA on the main resource with a status in it: the status part is dropped.
  Json body = makePool(name).toJson(false);
  body["status"] = {{"observedGeneration", 42}, {"gpus", {{"total", 1}}}};
  auto viaApply = c().apply(kube::kinds::CapacityPool, "", body, ssa(kTestManager));
  ASSERT_TRUE(viaApply) << viaApply.error().describe();
  EXPECT_EQ((*viaApply)["status"]["observedGeneration"], 1);
  EXPECT_EQ((*viaApply)["status"]["gpus"]["total"], 16);

  // PUT of the main resource (typed round trip) with status and spec changed: spec
  // lands, status does not.
  auto typed = api::CapacityPool::fromJson(*viaApply);
  ASSERT_TRUE(typed) << typed.error();
  typed->spec.routing.maxUtilization = 0.75;
  typed->status.gpus.total = 99;
  typed->status.conditions.clear();
  auto viaPut = c().update(kube::kinds::CapacityPool, "", typed->toJson());
  ASSERT_TRUE(viaPut) << viaPut.error().describe();
  EXPECT_EQ((*viaPut)["spec"]["routing"]["maxUtilization"], 0.75);
  EXPECT_EQ(generationOf(*viaPut), 2);

  // Merge patch of the main resource with a status change.
  auto viaPatch = c().patch(kube::kinds::CapacityPool, "", name, kube::PatchType::Merge,
                            R"({"status":{"gpus":{"free":0}}})");
  ASSERT_TRUE(viaPatch) << viaPatch.error().describe();

  auto got = c().get(kube::kinds::CapacityPool, "", name);
  ASSERT_TRUE(got) << got.error().describe();
  auto p = api::CapacityPool::fromJson(*got);
  ASSERT_TRUE(p) << p.error();
  EXPECT_EQ(p->status.observedGeneration, 1);
  EXPECT_EQ(p->status.gpus.total, 16);
  EXPECT_EQ(p->status.gpus.free, 16);
  EXPECT_TRUE(api::isTrue(p->status.conditions, api::conditions::kReady));
  EXPECT_EQ(p->spec.routing.maxUtilization, 0.75);
}

// ------------------------------------------------------------------ 4. conflicts

TEST_F(ApiIT, FieldManagersConflictWithoutForce) {
  const std::string name = poolName();
  Json body = makePool(name).toJson(false);
  auto a = c().apply(kube::kinds::CapacityPool, "", body, ssa("api-it-a"));
  ASSERT_TRUE(a) << a.error().describe();

  // Manager B sets a field A owns to another value: 409 Conflict naming field and owner.
  Json fromB = applyHead(kube::kinds::CapacityPool, name);
  fromB["spec"] = {{"reservableFraction", 0.7}};
  auto conflict = c().apply(kube::kinds::CapacityPool, "", fromB, ssa("api-it-b"));
  ASSERT_FALSE(conflict) << "applied without a conflict: " << conflict->dump();
  EXPECT_EQ(conflict.error().reason, ApiError::Reason::Conflict) << conflict.error().describe();
  EXPECT_EQ(conflict.error().httpCode, 409);
  EXPECT_TRUE(contains(conflict.error().describe(), "spec.reservableFraction")) << conflict.error().describe();
  EXPECT_TRUE(contains(conflict.error().describe(), "api-it-a")) << conflict.error().describe();
  EXPECT_FALSE(conflict.error().isRetryable());
  auto unchanged = c().get(kube::kinds::CapacityPool, "", name);
  ASSERT_TRUE(unchanged);
  EXPECT_EQ((*unchanged)["spec"]["reservableFraction"], 0.5);
  EXPECT_EQ(rvOf(*unchanged), rvOf(*a));

  // Setting it to the value it already has is no conflict (shared ownership).
  Json sameValue = applyHead(kube::kinds::CapacityPool, name);
  sameValue["spec"] = {{"reservableFraction", 0.5}};
  auto shared = c().apply(kube::kinds::CapacityPool, "", sameValue, ssa("api-it-c"));
  EXPECT_TRUE(shared) << shared.error().describe();

  // With force, B takes the field over.
  auto forced = c().apply(kube::kinds::CapacityPool, "", fromB, ssa("api-it-b", "", true));
  ASSERT_TRUE(forced) << forced.error().describe();
  EXPECT_EQ((*forced)["spec"]["reservableFraction"], 0.7);
  const Json bFields = managedFieldsOf(*forced, "api-it-b");
  ASSERT_FALSE(bFields.is_null());
  EXPECT_TRUE(bFields["fieldsV1"]["f:spec"].contains("f:reservableFraction")) << bFields.dump();
  const Json aFields = managedFieldsOf(*forced, "api-it-a");
  ASSERT_FALSE(aFields.is_null());
  EXPECT_FALSE(aFields["fieldsV1"]["f:spec"].contains("f:reservableFraction")) << aFields.dump();

  // Now A, re-applying its old value, conflicts with B.
  auto back = c().apply(kube::kinds::CapacityPool, "", body, ssa("api-it-a"));
  ASSERT_FALSE(back);
  EXPECT_TRUE(back.error().isConflict()) << back.error().describe();
  EXPECT_TRUE(contains(back.error().describe(), "api-it-b")) << back.error().describe();
}

// ------------------------------------------------------------------ 5. scale

TEST_F(ApiIT, ScaleSubresource) {
  Json md = loadManifest(sourceDir() / "tests/integration/manifests/valid/modeldeployment-minimal.yaml");
  const std::string name = nameOf(md);
  md["spec"]["replicas"] = 1;
  md["spec"]["maxReplicas"] = 5;
  auto created = c().create(kube::kinds::ModelDeployment, ns(), md);
  ASSERT_TRUE(created) << created.error().describe();

  const CmdResult scaled = kubectl({"scale", "modeldeployment", name, "--replicas=3", "-n", ns()});
  ASSERT_EQ(scaled.exitCode, 0) << scaled.describe();

  auto scale = c().getSubresource(kube::kinds::ModelDeployment, ns(), name, "scale");
  ASSERT_TRUE(scale) << scale.error().describe();
  EXPECT_EQ((*scale)["kind"], "Scale");
  EXPECT_EQ((*scale)["apiVersion"], "autoscaling/v1");
  EXPECT_EQ((*scale)["spec"]["replicas"], 3);
  auto got = c().get(kube::kinds::ModelDeployment, ns(), name);
  ASSERT_TRUE(got) << got.error().describe();
  auto typed = api::ModelDeployment::fromJson(*got);
  ASSERT_TRUE(typed) << typed.error();
  EXPECT_EQ(typed->spec.replicas, 3);
  EXPECT_EQ(typed->metadata.generation, 2);

  // status.selector / status.replicas written through status are the scale's status.
  const std::string selector = api::selectorStringFromLabels(typed->workerSelectorLabels());
  ASSERT_FALSE(selector.empty());
  Json status = applyHead(kube::kinds::ModelDeployment, name, ns());
  status["status"] = {{"observedGeneration", typed->metadata.generation},
                      {"replicas", 2},
                      {"selector", selector}};
  auto st = c().apply(kube::kinds::ModelDeployment, ns(), status,
                      ssa(std::string(api::kFieldManager), "status"));
  ASSERT_TRUE(st) << st.error().describe();
  scale = c().getSubresource(kube::kinds::ModelDeployment, ns(), name, "scale");
  ASSERT_TRUE(scale) << scale.error().describe();
  EXPECT_EQ((*scale)["status"]["selector"], selector) << scale->dump();
  EXPECT_EQ((*scale)["status"]["replicas"], 2) << scale->dump();
  EXPECT_EQ((*scale)["spec"]["replicas"], 3);

  // Scale writes are validated against the CRD (maxReplicas 5) ...
  const CmdResult tooMany = kubectl({"scale", "mdep", name, "--replicas=6", "-n", ns()});
  EXPECT_NE(tooMany.exitCode, 0) << tooMany.describe();
  EXPECT_TRUE(contains(tooMany.err, "spec.replicas")) << tooMany.describe();
  // ... and honour --current-replicas.
  const CmdResult wrongCurrent =
      kubectl({"scale", "mdep", name, "--current-replicas=1", "--replicas=4", "-n", ns()});
  EXPECT_NE(wrongCurrent.exitCode, 0) << wrongCurrent.describe();

  // Our client writes through /scale too.
  kube::PatchOptions po;
  po.subresource = "scale";
  auto patched = c().patch(kube::kinds::ModelDeployment, ns(), name, kube::PatchType::Merge,
                           R"({"spec":{"replicas":4}})", po);
  ASSERT_TRUE(patched) << patched.error().describe();
  EXPECT_EQ((*patched)["kind"], "Scale");
  auto rejected = c().patch(kube::kinds::ModelDeployment, ns(), name, kube::PatchType::Merge,
                            R"({"spec":{"replicas":6}})", po);
  ASSERT_FALSE(rejected);
  EXPECT_TRUE(rejected.error().isInvalid()) << rejected.error().describe();

  auto final = c().get(kube::kinds::ModelDeployment, ns(), name);
  ASSERT_TRUE(final) << final.error().describe();
  EXPECT_EQ((*final)["spec"]["replicas"], 4);
  EXPECT_EQ((*final)["status"]["selector"], selector);
  EXPECT_EQ(generationOf(*final), 3);
}

// ------------------------------------------------------------------ 6. printer columns

// Header names of a CRD's default table: NAME, then the priority-0 printer columns.
std::vector<std::string> expectedColumns(const std::string& crdFile) {
  YAML::Node crd = YAML::LoadFile((sourceDir() / "crds" / crdFile).string());
  std::vector<std::string> cols = {"NAME"};
  for (const auto& v : crd["spec"]["versions"]) {
    if (v["name"].as<std::string>() != "v1alpha1") continue;
    for (const auto& col : v["additionalPrinterColumns"]) {
      if (col["priority"] && col["priority"].as<int>() > 0) continue;
      std::string n = col["name"].as<std::string>();
      for (char& ch : n) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
      cols.push_back(n);
    }
  }
  return cols;
}

// The table `kubectl get` printed: column name -> value of the row named `name`.
std::map<std::string, std::string> tableRow(const CmdResult& r, const std::string& name,
                                            std::vector<std::string>* header = nullptr) {
  const auto ls = lines(r.out);
  if (ls.empty()) return {};
  const auto head = splitWs(ls[0]);
  if (header) *header = head;
  for (size_t i = 1; i < ls.size(); ++i) {
    const auto cells = splitWs(ls[i]);
    if (cells.empty() || cells[0] != name) continue;
    std::map<std::string, std::string> row;
    // Empty cells print as blanks, so only a full row maps column by column.
    if (cells.size() == head.size())
      for (size_t k = 0; k < head.size(); ++k) row[head[k]] = cells[k];
    else
      row["NAME"] = cells[0];
    return row;
  }
  return {};
}

TEST_F(ApiIT, PrinterColumnsCategoryAndShortNames) {
  const std::string pool = poolName();
  auto created = c().apply(kube::kinds::CapacityPool, "", makePool(pool).toJson(false), ssa(kTestManager));
  ASSERT_TRUE(created) << created.error().describe();
  auto st = c().apply(kube::kinds::CapacityPool, "", statusApply(pool, poolStatus(1, 16, 8)),
                      ssa(std::string(api::kFieldManager), "status"));
  ASSERT_TRUE(st) << st.error().describe();
  Json md = loadManifest(sourceDir() / "tests/integration/manifests/valid/modeldeployment-minimal.yaml");
  const std::string mdep = nameOf(md);
  auto mdCreated = c().create(kube::kinds::ModelDeployment, ns(), md);
  ASSERT_TRUE(mdCreated) << mdCreated.error().describe();
  Json ptuObj = loadManifest(sourceDir() / "tests/integration/manifests/valid/ptureservation-start-only.yaml");
  const std::string ptu = nameOf(ptuObj);
  auto ptuCreated = c().create(kube::kinds::PTUReservation, ns(), ptuObj);
  ASSERT_TRUE(ptuCreated) << ptuCreated.error().describe();

  // CapacityPool columns, with the values from spec and status.
  const CmdResult poolTable = kubectl({"get", "cpool", pool});
  ASSERT_EQ(poolTable.exitCode, 0) << poolTable.describe();
  std::vector<std::string> header;
  auto row = tableRow(poolTable, pool, &header);
  EXPECT_EQ(header, expectedColumns("waterline.dev_capacitypools.yaml")) << poolTable.out;
  ASSERT_FALSE(row.empty()) << poolTable.out;
  EXPECT_EQ(row["REGION"], "eu-west") << poolTable.out;
  EXPECT_EQ(row["ZONE"], "EU") << poolTable.out;
  EXPECT_EQ(row["PRODUCT"], "NVIDIA-H100-80GB-HBM3") << poolTable.out;
  EXPECT_EQ(row["MODE"], "Exclusive") << poolTable.out;
  EXPECT_EQ(row["GPUS"], "16") << poolTable.out;
  EXPECT_EQ(row["FREE"], "8") << poolTable.out;
  EXPECT_EQ(row["READY"], "True") << poolTable.out;

  const CmdResult mdTable = kubectl({"get", "mdep", mdep, "-n", ns()});
  ASSERT_EQ(mdTable.exitCode, 0) << mdTable.describe();
  row = tableRow(mdTable, mdep, &header);
  EXPECT_EQ(header, expectedColumns("waterline.dev_modeldeployments.yaml")) << mdTable.out;
  EXPECT_FALSE(row.empty()) << mdTable.out;
  EXPECT_TRUE(contains(mdTable.out, md["spec"]["model"]["name"].get<std::string>())) << mdTable.out;

  const CmdResult ptuTable = kubectl({"get", "ptu", ptu, "-n", ns()});
  ASSERT_EQ(ptuTable.exitCode, 0) << ptuTable.describe();
  row = tableRow(ptuTable, ptu, &header);
  EXPECT_EQ(header, expectedColumns("waterline.dev_ptureservations.yaml")) << ptuTable.out;
  EXPECT_FALSE(row.empty()) << ptuTable.out;

  // The `waterline` category lists all three kinds.
  const std::string poolRef = "capacitypool.waterline.dev/" + pool;
  const std::string mdRef = "modeldeployment.waterline.dev/" + mdep;
  const std::string ptuRef = "ptureservation.waterline.dev/" + ptu;
  const CmdResult all = kubectl({"get", "waterline", "-A"});
  ASSERT_EQ(all.exitCode, 0) << all.describe();
  EXPECT_TRUE(contains(all.out, poolRef)) << all.out;
  for (const auto& ref : {mdRef, ptuRef}) {
    bool found = false;
    for (const auto& l : lines(all.out)) {
      const auto cells = splitWs(l);
      found |= cells.size() >= 2 && cells[0] == ns() && cells[1] == ref;
    }
    EXPECT_TRUE(found) << ref << " in namespace " << ns() << " not listed:\n" << all.out;
  }
  const CmdResult inNs = kubectl({"get", "waterline", "-n", ns(), "-o", "name"});
  ASSERT_EQ(inNs.exitCode, 0) << inNs.describe();
  EXPECT_TRUE(contains(inNs.out, mdRef + "\n")) << inNs.out;
  EXPECT_TRUE(contains(inNs.out, ptuRef + "\n")) << inNs.out;

  // Short, singular and plural names resolve.
  const std::vector<std::pair<std::vector<std::string>, std::string>> forms = {
      {{"get", "cpool/" + pool, "-o", "name"}, poolRef},
      {{"get", "capacitypool", pool, "-o", "name"}, poolRef},
      {{"get", "capacitypools.waterline.dev", pool, "-o", "name"}, poolRef},
      {{"get", "mdep/" + mdep, "-n", ns(), "-o", "name"}, mdRef},
      {{"get", "modeldeployment", mdep, "-n", ns(), "-o", "name"}, mdRef},
      {{"get", "ptu/" + ptu, "-n", ns(), "-o", "name"}, ptuRef},
      {{"get", "ptureservation", ptu, "-n", ns(), "-o", "name"}, ptuRef},
  };
  for (const auto& [args, want] : forms) {
    const CmdResult r = kubectl(args);
    ASSERT_EQ(r.exitCode, 0) << r.describe();
    EXPECT_EQ(r.out, want + "\n") << r.describe();
  }
}

// ------------------------------------------------------------------ 7. concurrency

TEST_F(ApiIT, StaleResourceVersionIsConflict) {
  const std::string name = poolName();
  auto created = c().create(kube::kinds::CapacityPool, "", makePool(name).toJson(false));
  ASSERT_TRUE(created) << created.error().describe();
  auto first = api::CapacityPool::fromJson(*created);
  ASSERT_TRUE(first) << first.error();

  // Two writers read the same version; the first update wins ...
  api::CapacityPool a = *first, b = *first;
  a.spec.reservableFraction = 0.6;
  auto ua = c().update(kube::kinds::CapacityPool, "", a.toJson(false));
  ASSERT_TRUE(ua) << ua.error().describe();
  EXPECT_NE(rvOf(*ua), first->metadata.resourceVersion);

  // ... the second, carrying the stale resourceVersion, is a 409 Conflict.
  b.spec.reservableFraction = 0.7;
  auto ub = c().update(kube::kinds::CapacityPool, "", b.toJson(false));
  ASSERT_FALSE(ub) << "stale update accepted";
  EXPECT_EQ(ub.error().reason, ApiError::Reason::Conflict) << ub.error().describe();
  EXPECT_EQ(ub.error().httpCode, 409);

  // The same on the status subresource.
  b.status = poolStatus(1, 8, 8);
  kube::WriteOptions wo;
  wo.subresource = "status";
  auto us = c().update(kube::kinds::CapacityPool, "", b.toJson(), wo);
  ASSERT_FALSE(us) << "stale status update accepted";
  EXPECT_TRUE(us.error().isConflict()) << us.error().describe();

  auto got = c().get(kube::kinds::CapacityPool, "", name);
  ASSERT_TRUE(got) << got.error().describe();
  EXPECT_EQ((*got)["spec"]["reservableFraction"], 0.6);
  EXPECT_EQ(rvOf(*got), rvOf(*ua));
  EXPECT_FALSE((*got).contains("status") && (*got)["status"].contains("gpus"));

  // A namespaced kind behaves alike.
  Json md = loadManifest(sourceDir() / "tests/integration/manifests/valid/modeldeployment-minimal.yaml");
  auto mdCreated = c().create(kube::kinds::ModelDeployment, ns(), md);
  ASSERT_TRUE(mdCreated) << mdCreated.error().describe();
  Json m1 = *mdCreated, m2 = *mdCreated;
  m1["spec"]["priority"] = 5;
  ASSERT_TRUE(c().update(kube::kinds::ModelDeployment, ns(), m1));
  m2["spec"]["priority"] = 7;
  auto staleMd = c().update(kube::kinds::ModelDeployment, ns(), m2);
  ASSERT_FALSE(staleMd);
  EXPECT_TRUE(staleMd.error().isConflict()) << staleMd.error().describe();
}

TEST_F(ApiIT, DeletePreconditionsAreConflicts) {
  const std::string name = poolName();
  auto created = c().create(kube::kinds::CapacityPool, "", makePool(name).toJson(false));
  ASSERT_TRUE(created) << created.error().describe();
  const std::string uid = (*created)["metadata"]["uid"];

  kube::DeleteOptions wrongUid;
  wrongUid.preconditions.uid = "00000000-0000-0000-0000-000000000000";
  auto r = c().remove(kube::kinds::CapacityPool, "", name, wrongUid);
  ASSERT_FALSE(r) << "deleted despite a wrong uid precondition";
  EXPECT_EQ(r.error().reason, ApiError::Reason::Conflict) << r.error().describe();
  EXPECT_EQ(r.error().httpCode, 409);
  EXPECT_TRUE(c().get(kube::kinds::CapacityPool, "", name)) << "gone after a failed delete";

  // A stale resourceVersion precondition likewise.
  auto bumped = c().apply(kube::kinds::CapacityPool, "", statusApply(name, poolStatus(1, 8, 8)),
                          ssa(std::string(api::kFieldManager), "status"));
  ASSERT_TRUE(bumped) << bumped.error().describe();
  kube::DeleteOptions staleRv;
  staleRv.preconditions.resourceVersion = rvOf(*created);
  auto r2 = c().remove(kube::kinds::CapacityPool, "", name, staleRv);
  ASSERT_FALSE(r2) << "deleted despite a stale resourceVersion precondition";
  EXPECT_TRUE(r2.error().isConflict()) << r2.error().describe();

  // The right uid and resourceVersion delete it.
  kube::DeleteOptions right;
  right.preconditions.uid = uid;
  right.preconditions.resourceVersion = rvOf(*bumped);
  auto ok = c().remove(kube::kinds::CapacityPool, "", name, right);
  ASSERT_TRUE(ok) << ok.error().describe();
  auto gone = c().get(kube::kinds::CapacityPool, "", name);
  ASSERT_FALSE(gone);
  EXPECT_TRUE(gone.error().isNotFound()) << gone.error().describe();

  // A namespaced kind behaves alike.
  Json ptuObj = loadManifest(sourceDir() / "tests/integration/manifests/valid/ptureservation-start-only.yaml");
  auto ptu = c().create(kube::kinds::PTUReservation, ns(), ptuObj);
  ASSERT_TRUE(ptu) << ptu.error().describe();
  auto r3 = c().remove(kube::kinds::PTUReservation, ns(), nameOf(ptuObj), wrongUid);
  ASSERT_FALSE(r3);
  EXPECT_TRUE(r3.error().isConflict()) << r3.error().describe();
}

// The manifest folders are found (else the parametrised suites above would be empty).
TEST(ApiITSelf, ManifestFoldersAreListed) {
  EXPECT_FALSE(manifestFiles("deploy/samples").empty()) << sourceDir();
  EXPECT_FALSE(manifestFiles("tests/integration/manifests/valid").empty()) << sourceDir();
  EXPECT_FALSE(manifestFiles("tests/integration/manifests/invalid").empty()) << sourceDir();
}

}  // namespace
}  // namespace waterline
