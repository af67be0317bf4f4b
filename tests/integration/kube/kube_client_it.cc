// RestClient against a real kube-apiserver (hack/controlplane.sh). The kubeconfig comes
// from $WATERLINE_TEST_KUBECONFIG; the tests skip only when it is unset. Each run works
// in its own namespace (no namespace controller runs, so it is left behind, Terminating).
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <random>
#include <set>
#include <thread>

#include "support/test_pki.h"
#include "waterline/kube/config.h"
#include "waterline/kube/rest_client.h"

namespace waterline::kube {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

const ResourceKind kWidget{"kubetest.waterline.dev", "v1", "widgets", "Widget", true};

std::string kubeconfigPath() {
  const char* p = std::getenv("WATERLINE_TEST_KUBECONFIG");
  return p ? p : "";
}

std::string randomSuffix() {
  static std::mt19937_64 rng{std::random_device{}()};
  static std::mutex mu;
  std::lock_guard g(mu);
  const char* alphabet = "abcdefghijklmnopqrstuvwxyz0123456789";
  std::string s;
  for (int i = 0; i < 6; ++i) s.push_back(alphabet[rng() % 36]);
  return s;
}

Json configMap(const std::string& ns, const std::string& name, Json data = Json::object()) {
  return {{"apiVersion", "v1"},
          {"kind", "ConfigMap"},
          {"metadata", {{"name", name}, {"namespace", ns}}},
          {"data", data}};
}

ListOptions byName(const std::string& name) {
  ListOptions o;
  o.fieldSelector = "metadata.name=" + name;
  return o;
}

std::string rvOf(const Json& obj) { return obj["metadata"].value("resourceVersion", ""); }

class KubeIT : public ::testing::Test {
 protected:
  // Connects once (lazily, from the first test's SetUp, so that a failure fails tests
  // instead of being reported as skips) and creates this run's namespace.
  static std::string connect() {
    auto cfg = loadKubeconfig(kubeconfigPath());
    if (!cfg) return cfg.error();
    auto c = RestClient::create(*cfg);
    if (!c) return c.error();
    std::string ns = "wl-kube-it-" + randomSuffix();
    auto created = (*c)->create(kinds::Namespace, "",
                                Json{{"apiVersion", "v1"}, {"kind", "Namespace"},
                                     {"metadata", {{"name", ns}}}});
    if (!created) return "apiserver unreachable or refusing: " + created.error().describe();
    client_ = *c;
    ns_ = ns;
    return {};
  }
  static void TearDownTestSuite() {
    if (client_ && !ns_.empty()) (void)client_->remove(kinds::Namespace, "", ns_);
    client_.reset();
  }

  void SetUp() override {
    if (kubeconfigPath().empty()) GTEST_SKIP() << "WATERLINE_TEST_KUBECONFIG is not set";
    static const std::string setupError = connect();
    ASSERT_TRUE(setupError.empty()) << "WATERLINE_TEST_KUBECONFIG=" << kubeconfigPath() << ": "
                                    << setupError;
    ASSERT_TRUE(client_);
  }

  RestClient& c() { return *client_; }
  const std::string& ns() { return ns_; }

  Json mustCreate(const Json& obj) {
    auto r = c().create(kinds::ConfigMap, ns(), obj);
    EXPECT_TRUE(r) << r.error().describe();
    return r ? *r : Json();
  }

  // The test CRD (status and scale subresources), created once and waited for.
  void ensureWidgetCrd() {
    Json crd = Json::parse(R"({
      "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
      "metadata": {"name": "widgets.kubetest.waterline.dev"},
      "spec": {
        "group": "kubetest.waterline.dev", "scope": "Namespaced",
        "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
        "versions": [{
          "name": "v1", "served": true, "storage": true,
          "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas"}},
          "schema": {"openAPIV3Schema": {"type": "object", "properties": {
            "spec": {"type": "object", "properties": {"replicas": {"type": "integer", "minimum": 0}, "color": {"type": "string"}}},
            "status": {"type": "object", "properties": {"replicas": {"type": "integer"}, "phase": {"type": "string"}}}
          }}}
        }]
      }})");
    PatchOptions po;
    po.fieldManager = "kube-it";
    po.force = true;
    auto applied = c().apply(kinds::CustomResourceDefinition, "", crd, po);
    ASSERT_TRUE(applied) << applied.error().describe();
    const auto deadline = Clock::now() + 30s;
    for (;;) {
      auto got = c().get(kinds::CustomResourceDefinition, "", "widgets.kubetest.waterline.dev");
      bool established = false;
      if (got && got->contains("status"))
        for (const auto& cond : (*got)["status"].value("conditions", Json::array()))
          if (cond.value("type", "") == "Established" && cond.value("status", "") == "True") established = true;
      if (established) {
        // Served once a list works.
        if (c().list(kWidget, ns())) return;
      }
      ASSERT_LT(Clock::now(), deadline) << "CRD not established";
      std::this_thread::sleep_for(200ms);
    }
  }

  static std::shared_ptr<RestClient> client_;
  static std::string ns_;
};
std::shared_ptr<RestClient> KubeIT::client_;
std::string KubeIT::ns_;

TEST_F(KubeIT, VersionEndpoint) {
  auto v = c().getRaw("/version");
  ASSERT_TRUE(v) << v.error().describe();
  EXPECT_NE(Json::parse(*v).value("gitVersion", ""), "");
}

TEST_F(KubeIT, ConfigMapCrud) {
  Json created = mustCreate(configMap(ns(), "crud", {{"k", "v1"}}));
  ASSERT_FALSE(created.is_null());
  EXPECT_FALSE(rvOf(created).empty());
  EXPECT_FALSE(created["metadata"].value("uid", "").empty());

  auto got = c().get(kinds::ConfigMap, ns(), "crud");
  ASSERT_TRUE(got) << got.error().describe();
  EXPECT_EQ((*got)["data"]["k"], "v1");

  Json upd = *got;
  upd["data"]["k"] = "v2";
  auto updated = c().update(kinds::ConfigMap, ns(), upd);
  ASSERT_TRUE(updated) << updated.error().describe();
  EXPECT_EQ((*updated)["data"]["k"], "v2");
  EXPECT_NE(rvOf(*updated), rvOf(*got));

  auto listed = c().list(kinds::ConfigMap, ns(), byName("crud"));
  ASSERT_TRUE(listed) << listed.error().describe();
  ASSERT_EQ(listed->items.size(), 1u);
  EXPECT_EQ(listed->items[0]["kind"], "ConfigMap");
  EXPECT_FALSE(listed->resourceVersion.empty());

  auto again = c().create(kinds::ConfigMap, ns(), configMap(ns(), "crud"));
  ASSERT_FALSE(again);
  EXPECT_TRUE(again.error().isAlreadyExists()) << again.error().describe();

  DeleteOptions bg;
  bg.propagationPolicy = "Background";
  auto del = c().remove(kinds::ConfigMap, ns(), "crud", bg);
  ASSERT_TRUE(del) << del.error().describe();
  auto gone = c().get(kinds::ConfigMap, ns(), "crud");
  ASSERT_FALSE(gone);
  EXPECT_TRUE(gone.error().isNotFound());
  EXPECT_EQ(gone.error().httpCode, 404);
  auto delAgain = c().remove(kinds::ConfigMap, ns(), "crud");
  ASSERT_FALSE(delAgain);
  EXPECT_TRUE(delAgain.error().isNotFound());
}

TEST_F(KubeIT, NamespaceCreateGetList) {
  const std::string name = "wl-kube-it-ns-" + randomSuffix();
  auto created = c().create(kinds::Namespace, "",
                            Json{{"apiVersion", "v1"}, {"kind", "Namespace"}, {"metadata", {{"name", name}}}});
  ASSERT_TRUE(created) << created.error().describe();
  auto got = c().get(kinds::Namespace, "", name);
  ASSERT_TRUE(got) << got.error().describe();
  EXPECT_EQ((*got)["status"]["phase"], "Active");
  auto list = listAll(c(), kinds::Namespace, "");
  ASSERT_TRUE(list);
  bool found = false;
  for (auto& n : list->items) found |= n["metadata"]["name"] == name;
  EXPECT_TRUE(found);
  auto del = c().remove(kinds::Namespace, "", name);
  ASSERT_TRUE(del) << del.error().describe();
}

TEST_F(KubeIT, PaginationWithLimitAndContinue) {
  for (int i = 0; i < 25; ++i) {
    Json cm = configMap(ns(), "page-" + std::to_string(i));
    cm["metadata"]["labels"] = {{"suite", "pagination"}};
    mustCreate(cm);
  }
  ListOptions o;
  o.labelSelector = "suite=pagination";
  o.limit = 10;
  auto first = c().list(kinds::ConfigMap, ns(), o);
  ASSERT_TRUE(first) << first.error().describe();
  EXPECT_EQ(first->items.size(), 10u);
  EXPECT_FALSE(first->continueToken.empty());

  ListOptions next = o;
  next.continueToken = first->continueToken;
  auto second = c().list(kinds::ConfigMap, ns(), next);
  ASSERT_TRUE(second) << second.error().describe();
  EXPECT_EQ(second->items.size(), 10u);
  EXPECT_EQ(second->resourceVersion, first->resourceVersion);  // one consistent snapshot

  auto all = listAll(c(), kinds::ConfigMap, ns(), o);
  ASSERT_TRUE(all) << all.error().describe();
  EXPECT_EQ(all->items.size(), 25u);
  EXPECT_TRUE(all->continueToken.empty());
  std::set<std::string> names;
  for (auto& i : all->items) names.insert(i["metadata"]["name"].get<std::string>());
  EXPECT_EQ(names.size(), 25u);

  // A list from the watch-cache-or-etcd with resourceVersion=0 also works.
  ListOptions rv0;
  rv0.labelSelector = o.labelSelector;
  rv0.resourceVersion = "0";
  auto any = c().list(kinds::ConfigMap, ns(), rv0);
  ASSERT_TRUE(any) << any.error().describe();
  EXPECT_EQ(any->items.size(), 25u);
}

TEST_F(KubeIT, StaleResourceVersionIsConflict) {
  Json created = mustCreate(configMap(ns(), "stale", {{"k", "a"}}));
  Json first = created;
  first["data"]["k"] = "b";
  ASSERT_TRUE(c().update(kinds::ConfigMap, ns(), first));
  Json stale = created;  // still carries the old resourceVersion
  stale["data"]["k"] = "c";
  auto r = c().update(kinds::ConfigMap, ns(), stale);
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().isConflict()) << r.error().describe();
  EXPECT_EQ(r.error().httpCode, 409);
  EXPECT_FALSE(r.error().isRetryable());
}

TEST_F(KubeIT, InvalidHasFieldCauses) {
  auto r = c().create(kinds::ConfigMap, ns(), configMap(ns(), "Bad_Name"));
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().isInvalid()) << r.error().describe();
  EXPECT_EQ(r.error().httpCode, 422);
  ASSERT_FALSE(r.error().causes.empty());
  EXPECT_EQ(r.error().causes[0].field, "metadata.name");
  EXPECT_NE(r.error().describe().find("metadata.name"), std::string::npos);
}

TEST_F(KubeIT, Patches) {
  mustCreate(configMap(ns(), "patched", {{"a", "1"}}));
  auto merged = c().patch(kinds::ConfigMap, ns(), "patched", PatchType::Merge,
                          R"({"data":{"b":"2","a":null}})");
  ASSERT_TRUE(merged) << merged.error().describe();
  EXPECT_EQ((*merged)["data"], (Json{{"b", "2"}}));

  auto jp = c().patch(kinds::ConfigMap, ns(), "patched", PatchType::JsonPatch,
                      R"([{"op":"add","path":"/data/c","value":"3"}])");
  ASSERT_TRUE(jp) << jp.error().describe();
  EXPECT_EQ((*jp)["data"]["c"], "3");

  auto sm = c().patch(kinds::ConfigMap, ns(), "patched", PatchType::StrategicMerge,
                      R"({"metadata":{"labels":{"x":"y"}}})");
  ASSERT_TRUE(sm) << sm.error().describe();
  EXPECT_EQ((*sm)["metadata"]["labels"]["x"], "y");

  auto bad = c().patch(kinds::ConfigMap, ns(), "patched", PatchType::JsonPatch,
                       R"([{"op":"test","path":"/data/c","value":"nope"}])");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().httpCode, 0);

  auto missing = c().patch(kinds::ConfigMap, ns(), "nope", PatchType::Merge, "{}");
  ASSERT_FALSE(missing);
  EXPECT_TRUE(missing.error().isNotFound());
}

TEST_F(KubeIT, ServerSideApplyManagersAndForce) {
  PatchOptions a;
  a.fieldManager = "manager-a";
  auto first = c().apply(kinds::ConfigMap, ns(), configMap(ns(), "ssa", {{"k", "from-a"}}), a);
  ASSERT_TRUE(first) << first.error().describe();
  EXPECT_EQ((*first)["data"]["k"], "from-a");
  bool managedByA = false;
  for (auto& mf : (*first)["metadata"]["managedFields"])
    managedByA |= mf["manager"] == "manager-a" && mf["operation"] == "Apply";
  EXPECT_TRUE(managedByA);

  // Re-applying as the same manager is fine and idempotent.
  auto same = c().apply(kinds::ConfigMap, ns(), configMap(ns(), "ssa", {{"k", "from-a"}}), a);
  ASSERT_TRUE(same) << same.error().describe();
  EXPECT_EQ(rvOf(*same), rvOf(*first));

  PatchOptions b;
  b.fieldManager = "manager-b";
  auto conflict = c().apply(kinds::ConfigMap, ns(), configMap(ns(), "ssa", {{"k", "from-b"}}), b);
  ASSERT_FALSE(conflict);
  EXPECT_TRUE(conflict.error().isConflict()) << conflict.error().describe();
  EXPECT_EQ(conflict.error().httpCode, 409);
  ASSERT_FALSE(conflict.error().causes.empty());
  EXPECT_NE(conflict.error().causes[0].field.find("data.k"), std::string::npos)
      << conflict.error().describe();

  b.force = true;
  auto forced = c().apply(kinds::ConfigMap, ns(), configMap(ns(), "ssa", {{"k", "from-b"}}), b);
  ASSERT_TRUE(forced) << forced.error().describe();
  EXPECT_EQ((*forced)["data"]["k"], "from-b");
}

TEST_F(KubeIT, StatusAndScaleSubresources) {
  ensureWidgetCrd();
  if (HasFatalFailure()) return;
  Json w = {{"apiVersion", "kubetest.waterline.dev/v1"},
            {"kind", "Widget"},
            {"metadata", {{"name", "w1"}, {"namespace", ns()}}},
            {"spec", {{"replicas", 1}, {"color", "red"}}}};
  auto created = c().create(kWidget, ns(), w);
  ASSERT_TRUE(created) << created.error().describe();
  EXPECT_EQ((*created)["metadata"]["generation"], 1);

  // PUT /status writes status only: the spec change is dropped.
  Json st = *created;
  st["status"] = {{"phase", "Ready"}, {"replicas", 1}};
  st["spec"]["color"] = "blue";
  WriteOptions wo;
  wo.subresource = "status";
  auto stUpd = c().update(kWidget, ns(), st, wo);
  ASSERT_TRUE(stUpd) << stUpd.error().describe();
  EXPECT_EQ((*stUpd)["status"]["phase"], "Ready");
  EXPECT_EQ((*stUpd)["spec"]["color"], "red");
  EXPECT_EQ((*stUpd)["metadata"]["generation"], 1);

  // Stale resourceVersion on the status subresource is a conflict too.
  auto stale = c().update(kWidget, ns(), st, wo);
  ASSERT_FALSE(stale);
  EXPECT_TRUE(stale.error().isConflict());

  // Merge patch and SSA on status.
  PatchOptions sp;
  sp.subresource = "status";
  auto stPatch = c().patch(kWidget, ns(), "w1", PatchType::Merge, R"({"status":{"phase":"Degraded"}})", sp);
  ASSERT_TRUE(stPatch) << stPatch.error().describe();
  EXPECT_EQ((*stPatch)["status"]["phase"], "Degraded");
  PatchOptions ssa;
  ssa.subresource = "status";
  ssa.fieldManager = "kube-it-status";
  ssa.force = true;
  auto stApply = c().apply(kWidget, ns(),
                           Json{{"apiVersion", "kubetest.waterline.dev/v1"},
                                {"kind", "Widget"},
                                {"metadata", {{"name", "w1"}, {"namespace", ns()}}},
                                {"status", {{"phase", "Applied"}}}},
                           ssa);
  ASSERT_TRUE(stApply) << stApply.error().describe();
  EXPECT_EQ((*stApply)["status"]["phase"], "Applied");

  auto status = c().getSubresource(kWidget, ns(), "w1", "status");
  ASSERT_TRUE(status) << status.error().describe();
  EXPECT_EQ((*status)["status"]["phase"], "Applied");

  // Scale: read, then patch replicas through it.
  auto scale = c().getSubresource(kWidget, ns(), "w1", "scale");
  ASSERT_TRUE(scale) << scale.error().describe();
  EXPECT_EQ((*scale)["kind"], "Scale");
  EXPECT_EQ((*scale)["spec"]["replicas"], 1);
  PatchOptions sc;
  sc.subresource = "scale";
  auto scaled = c().patch(kWidget, ns(), "w1", PatchType::Merge, R"({"spec":{"replicas":3}})", sc);
  ASSERT_TRUE(scaled) << scaled.error().describe();
  auto after = c().get(kWidget, ns(), "w1");
  ASSERT_TRUE(after);
  EXPECT_EQ((*after)["spec"]["replicas"], 3);
  EXPECT_EQ((*after)["metadata"]["generation"], 2);

  // Schema validation of the CRD: 422 with the field.
  Json bad = w;
  bad["metadata"]["name"] = "w-bad";
  bad["spec"]["replicas"] = -1;
  auto invalid = c().create(kWidget, ns(), bad);
  ASSERT_FALSE(invalid);
  EXPECT_TRUE(invalid.error().isInvalid());
  ASSERT_FALSE(invalid.error().causes.empty());
  EXPECT_EQ(invalid.error().causes[0].field, "spec.replicas");
}

TEST_F(KubeIT, DeletePreconditions) {
  Json created = mustCreate(configMap(ns(), "precond"));
  DeleteOptions wrongUid;
  wrongUid.preconditions.uid = "00000000-0000-0000-0000-000000000000";
  auto r = c().remove(kinds::ConfigMap, ns(), "precond", wrongUid);
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().isConflict()) << r.error().describe();

  DeleteOptions wrongRv;
  wrongRv.preconditions.resourceVersion = "1";
  auto r2 = c().remove(kinds::ConfigMap, ns(), "precond", wrongRv);
  ASSERT_FALSE(r2);
  EXPECT_TRUE(r2.error().isConflict()) << r2.error().describe();

  DeleteOptions right;
  right.preconditions.uid = created["metadata"]["uid"].get<std::string>();
  right.preconditions.resourceVersion = rvOf(created);
  auto ok = c().remove(kinds::ConfigMap, ns(), "precond", right);
  ASSERT_TRUE(ok) << ok.error().describe();
}

TEST_F(KubeIT, WatchSeesAddModifyDeleteInOrder) {
  const std::string name = "watched";
  auto start = c().list(kinds::ConfigMap, ns(), byName(name));
  ASSERT_TRUE(start) << start.error().describe();
  ListOptions o;
  o.fieldSelector = "metadata.name=" + name;
  o.resourceVersion = start->resourceVersion;
  o.allowWatchBookmarks = true;
  o.timeoutSeconds = 60;
  auto w = c().watch(kinds::ConfigMap, ns(), o);
  ASSERT_TRUE(w) << w.error().describe();

  auto nextNonBookmark = [&]() -> std::optional<WatchEvent> {
    const auto deadline = Clock::now() + 10s;
    while (Clock::now() < deadline) {
      auto ev = (*w)->next();
      EXPECT_TRUE(ev) << ev.error().describe();
      if (!ev || !*ev) return std::nullopt;
      if ((*ev)->type == WatchEventType::Bookmark) {
        EXPECT_FALSE(rvOf((*ev)->object).empty());
        continue;
      }
      return **ev;
    }
    return std::nullopt;
  };

  Json created = mustCreate(configMap(ns(), name, {{"v", "1"}}));
  const auto t0 = Clock::now();
  auto added = nextNonBookmark();
  ASSERT_TRUE(added);
  EXPECT_LT(Clock::now() - t0, 3s);
  EXPECT_EQ(added->type, WatchEventType::Added);
  EXPECT_EQ(added->object["metadata"]["name"], name);
  EXPECT_EQ(rvOf(added->object), rvOf(created));

  Json upd = created;
  upd["data"]["v"] = "2";
  auto updated = c().update(kinds::ConfigMap, ns(), upd);
  ASSERT_TRUE(updated);
  auto modified = nextNonBookmark();
  ASSERT_TRUE(modified);
  EXPECT_EQ(modified->type, WatchEventType::Modified);
  EXPECT_EQ(modified->object["data"]["v"], "2");

  ASSERT_TRUE(c().remove(kinds::ConfigMap, ns(), name));
  auto deleted = nextNonBookmark();
  ASSERT_TRUE(deleted);
  EXPECT_EQ(deleted->type, WatchEventType::Deleted);
  EXPECT_EQ(deleted->object["metadata"]["name"], name);
  (*w)->cancel();
}

TEST_F(KubeIT, WatchEndsAtServerTimeout) {
  ListOptions o;
  o.fieldSelector = "metadata.name=never-there";
  o.timeoutSeconds = 2;
  const auto t0 = Clock::now();
  auto w = c().watch(kinds::ConfigMap, ns(), o);
  ASSERT_TRUE(w) << w.error().describe();
  for (;;) {
    auto ev = (*w)->next();
    ASSERT_TRUE(ev) << ev.error().describe();
    if (!*ev) break;
    EXPECT_EQ((*ev)->type, WatchEventType::Bookmark);
  }
  const auto took = Clock::now() - t0;
  EXPECT_GE(took, 1500ms);
  EXPECT_LT(took, 10s);
}

TEST_F(KubeIT, CancelUnblocksAWatchWithinASecond) {
  ListOptions o;
  o.fieldSelector = "metadata.name=never-there";
  o.timeoutSeconds = 120;
  auto w = c().watch(kinds::ConfigMap, ns(), o);
  ASSERT_TRUE(w) << w.error().describe();
  auto fut = std::async(std::launch::async, [&] {
    for (;;) {
      auto ev = (*w)->next();
      if (!ev || !*ev) return ev;
    }
  });
  ASSERT_EQ(fut.wait_for(500ms), std::future_status::timeout);
  const auto t0 = Clock::now();
  (*w)->cancel();
  ASSERT_EQ(fut.wait_for(1s), std::future_status::ready);
  EXPECT_LT(Clock::now() - t0, 1s);
  auto r = fut.get();
  ASSERT_TRUE(r);
  EXPECT_FALSE(*r);
}

// Compacts etcd through hack/controlplane.sh (the control plane's dir is the
// kubeconfig's); then a watch from a resourceVersion before the compaction is Gone.
TEST_F(KubeIT, WatchFromCompactedResourceVersionIsGone) {
  const fs::path dir = fs::path(kubeconfigPath()).parent_path();
  const fs::path script = fs::path(WATERLINE_SOURCE_DIR) / "hack" / "controlplane.sh";
  if (!fs::exists(dir / "ports.env") || !fs::exists(script))
    GTEST_SKIP() << "no hack/controlplane.sh control plane in " << dir << " to compact";

  Json created = mustCreate(configMap(ns(), "compacted", {{"v", "0"}}));
  const std::string oldRv = rvOf(created);
  Json cur = created;
  for (int i = 1; i <= 3; ++i) {
    cur["data"]["v"] = std::to_string(i);
    auto u = c().update(kinds::ConfigMap, ns(), cur);
    ASSERT_TRUE(u) << u.error().describe();
    cur = *u;
  }
  const std::string cmd = "bash '" + script.string() + "' compact --dir '" + dir.string() + "' >/dev/null";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;

  // The first error of a watch from `rv`, or nullopt when it ran to its end.
  auto watchError = [&](const std::string& rv) -> std::optional<ApiError> {
    ListOptions o;
    o.resourceVersion = rv;
    o.timeoutSeconds = 5;
    auto w = c().watch(kinds::ConfigMap, ns(), o);
    if (!w) return w.error();
    for (;;) {
      auto ev = (*w)->next();
      if (!ev) return ev.error();
      if (!*ev) return std::nullopt;
    }
  };

  if (auto err = watchError(oldRv)) {
    EXPECT_TRUE(err->isGone()) << err->describe();
    // A list at that exact resourceVersion is Gone too.
    ListOptions exact;
    exact.resourceVersion = oldRv;
    exact.resourceVersionMatch = "Exact";
    auto l = c().list(kinds::ConfigMap, ns(), exact);
    ASSERT_FALSE(l);
    EXPECT_TRUE(l.error().isGone()) << l.error().describe();
  } else {
    // The apiserver's watch cache (WL_CP_WATCH_CACHE=true) still held those events and
    // replayed them; a resourceVersion older than its window is Gone instead.
    auto tooOld = watchError("1");
    ASSERT_TRUE(tooOld) << "expected 410 Gone for resourceVersion 1";
    EXPECT_TRUE(tooOld->isGone()) << tooOld->describe();
  }
}

TEST_F(KubeIT, BearerTokenContext) {
  auto cfg = loadKubeconfig(kubeconfigPath(), "waterline-token");
  if (!cfg) GTEST_SKIP() << "kubeconfig has no waterline-token context: " << cfg.error();
  ASSERT_FALSE(cfg->bearerToken.empty());
  EXPECT_TRUE(cfg->clientCertData.empty());
  auto tc = RestClient::create(*cfg);
  ASSERT_TRUE(tc) << tc.error();
  auto got = (*tc)->get(kinds::Namespace, "", ns());
  ASSERT_TRUE(got) << got.error().describe();

  RestConfig badToken = *cfg;
  badToken.bearerToken = "not-a-valid-token";
  auto bc = RestClient::create(badToken);
  ASSERT_TRUE(bc);
  auto denied = (*bc)->get(kinds::Namespace, "", ns());
  ASSERT_FALSE(denied);
  EXPECT_EQ(denied.error().reason, ApiError::Reason::Unauthorized) << denied.error().describe();
}

TEST_F(KubeIT, ClientCertificateIdentity) {
  // The default context authenticates with a client certificate; the server knows who.
  EXPECT_FALSE(c().config().clientCertData.empty());
  Json review = {{"apiVersion", "authentication.k8s.io/v1"}, {"kind", "SelfSubjectReview"}};
  const ResourceKind ssr{"authentication.k8s.io", "v1", "selfsubjectreviews", "SelfSubjectReview", false};
  auto r = c().create(ssr, "", review);
  ASSERT_TRUE(r) << r.error().describe();
  const Json& groups = (*r)["status"]["userInfo"]["groups"];
  EXPECT_NE(std::find(groups.begin(), groups.end(), "system:masters"), groups.end()) << r->dump();
}

TEST_F(KubeIT, NoCredentialsIsDenied) {
  RestConfig anon = c().config();
  anon.clientCertData.clear();
  anon.clientKeyData.clear();
  anon.bearerToken.clear();
  auto ac = RestClient::create(anon);
  ASSERT_TRUE(ac);
  auto r = (*ac)->get(kinds::Namespace, "", ns());
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().reason == ApiError::Reason::Forbidden ||
              r.error().reason == ApiError::Reason::Unauthorized)
      << r.error().describe();
}

TEST_F(KubeIT, WrongCaIsTransportError) {
  RestConfig wrong = c().config();
  wrong.caData = testing::makeTestPki().ca.certPem;
  auto wc = RestClient::create(wrong);
  ASSERT_TRUE(wc) << wc.error();
  auto r = (*wc)->get(kinds::Namespace, "", ns());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().reason, ApiError::Reason::Transport) << r.error().describe();
  EXPECT_EQ(r.error().httpCode, 0);

  wrong.insecureSkipTLSVerify = true;
  auto ic = RestClient::create(wrong);
  ASSERT_TRUE(ic);
  auto ok = (*ic)->get(kinds::Namespace, "", ns());
  EXPECT_TRUE(ok) << ok.error().describe();
}

TEST_F(KubeIT, SharedClientAcrossThreads) {
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 5; ++i) {
        const std::string name = "mt-" + std::to_string(t) + "-" + std::to_string(i);
        auto cr = c().create(kinds::ConfigMap, ns(), configMap(ns(), name));
        auto g = c().get(kinds::ConfigMap, ns(), name);
        auto d = c().remove(kinds::ConfigMap, ns(), name);
        if (cr && g && d) ++ok;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(ok.load(), 40);
}

}  // namespace
}  // namespace waterline::kube
