// The informer against a real kube-apiserver: list/watch sees create, update and
// delete; after a watch falls behind an etcd compaction (410 Gone) it relists and
// delivers every change it missed, including deletes.
#include <condition_variable>
#include <iostream>
#include <mutex>
#include <set>

#include "it_support.h"
#include "waterline/cache/informer.h"

namespace waterline {
namespace {

using namespace std::chrono_literals;
using kube::Json;
const kube::ResourceKind& CM = kube::kinds::ConfigMap;

// A Client decorator that can hold back watches, as a network partition between the
// operator and the apiserver would: while closed, watch() blocks and open streams are
// cancelled. Everything else goes straight through.
class PartitionableClient : public kube::Client {
 public:
  explicit PartitionableClient(kube::ClientPtr inner) : inner_(std::move(inner)) {}
  void partition() {
    std::lock_guard g(mu_);
    open_ = false;
    for (auto* s : streams_) s->cancel();
  }
  void heal() {
    std::lock_guard g(mu_);
    open_ = true;
    cv_.notify_all();
  }
  std::vector<std::string> watchRVs() {
    std::lock_guard g(mu_);
    return rvs_;
  }

  kube::Result<Json> get(const kube::ResourceKind& k, const std::string& ns, const std::string& n) override {
    return inner_->get(k, ns, n);
  }
  kube::Result<kube::ObjectList> list(const kube::ResourceKind& k, const std::string& ns,
                                      const kube::ListOptions& o) override {
    return inner_->list(k, ns, o);
  }
  kube::Result<Json> create(const kube::ResourceKind& k, const std::string& ns, const Json& obj,
                            const kube::WriteOptions& o) override {
    return inner_->create(k, ns, obj, o);
  }
  kube::Result<Json> update(const kube::ResourceKind& k, const std::string& ns, const Json& obj,
                            const kube::WriteOptions& o) override {
    return inner_->update(k, ns, obj, o);
  }
  kube::Result<Json> patch(const kube::ResourceKind& k, const std::string& ns, const std::string& n,
                           kube::PatchType t, const std::string& b, const kube::PatchOptions& o) override {
    return inner_->patch(k, ns, n, t, b, o);
  }
  kube::Result<Json> apply(const kube::ResourceKind& k, const std::string& ns, const Json& obj,
                           const kube::PatchOptions& o) override {
    return inner_->apply(k, ns, obj, o);
  }
  kube::Result<Json> remove(const kube::ResourceKind& k, const std::string& ns, const std::string& n,
                            const kube::DeleteOptions& o) override {
    return inner_->remove(k, ns, n, o);
  }
  kube::Result<kube::WatchStreamPtr> watch(const kube::ResourceKind& k, const std::string& ns,
                                           const kube::ListOptions& o) override {
    {
      std::unique_lock lk(mu_);
      cv_.wait(lk, [&] { return open_; });
      rvs_.push_back(o.resourceVersion);
    }
    auto w = inner_->watch(k, ns, o);
    if (!w) return w;
    return std::make_unique<Tracked>(std::move(*w), *this);
  }

 private:
  struct Tracked : kube::WatchStream {
    Tracked(kube::WatchStreamPtr s, PartitionableClient& c) : s(std::move(s)), c(c) {
      std::lock_guard g(c.mu_);
      c.streams_.insert(this);
      if (!c.open_) this->s->cancel();
    }
    ~Tracked() override {
      std::lock_guard g(c.mu_);
      c.streams_.erase(this);
    }
    kube::Result<std::optional<kube::WatchEvent>> next() override { return s->next(); }
    void cancel() override { s->cancel(); }
    kube::WatchStreamPtr s;
    PartitionableClient& c;
  };

  kube::ClientPtr inner_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = true;
  std::set<Tracked*> streams_;
  std::vector<std::string> rvs_;
};

struct Seen {
  std::mutex mu;
  std::map<std::string, std::string> live;  // key -> data.v
  std::vector<std::string> log;
  cache::EventHandler handler() {
    auto put = [this](const cache::ObjectPtr& o, const char* what) {
      std::lock_guard g(mu);
      live[cache::objectKey(*o)] = o->contains("data") ? (*o)["data"].value("v", "") : "";
      log.push_back(std::string(what) + " " + cache::objectKey(*o));
    };
    return {[put](const cache::ObjectPtr& o) { put(o, "add"); },
            [put](const cache::ObjectPtr&, const cache::ObjectPtr& o) { put(o, "update"); },
            [this](const cache::ObjectPtr& o, bool unknown) {
              std::lock_guard g(mu);
              live.erase(cache::objectKey(*o));
              log.push_back(std::string(unknown ? "delete-unknown " : "delete ") + cache::objectKey(*o));
            }};
  }
  std::map<std::string, std::string> snapshot() {
    std::lock_guard g(mu);
    return live;
  }
  bool logged(const std::string& e) {
    std::lock_guard g(mu);
    return std::find(log.begin(), log.end(), e) != log.end();
  }
};

Json configMap(const std::string& ns, const std::string& name, const std::string& v) {
  return {{"apiVersion", "v1"}, {"kind", "ConfigMap"},
          {"metadata", {{"name", name}, {"namespace", ns}}}, {"data", {{"v", v}}}};
}

class InformerIT : public ::testing::Test {
 protected:
  void SetUp() override {
    client = it::clientOrSkip();
    if (!client) GTEST_SKIP() << "WATERLINE_TEST_KUBECONFIG is not set";
    ns = it::uniqueName("inf");
    ASSERT_TRUE(client->create(kube::kinds::Namespace, "",
                               {{"apiVersion", "v1"}, {"kind", "Namespace"}, {"metadata", {{"name", ns}}}}));
  }
  void TearDown() override {
    if (client) (void)client->remove(kube::kinds::Namespace, "", ns);
  }
  std::shared_ptr<kube::RestClient> client;
  std::string ns;
};

TEST_F(InformerIT, ListThenWatchSeesCreateUpdateDelete) {
  ASSERT_TRUE(client->create(CM, ns, configMap(ns, "before", "1")));
  cache::InformerOptions o;
  o.ns = ns;
  cache::Informer inf(client, CM, o, RealTimeSource::instance());
  Seen seen;
  inf.addEventHandler(seen.handler());
  inf.start();
  ASSERT_TRUE(inf.waitForSync(30s));
  EXPECT_TRUE(it::eventually([&] { return seen.snapshot().count(ns + "/before") == 1; }));

  ASSERT_TRUE(client->create(CM, ns, configMap(ns, "a", "1")));
  auto a = client->get(CM, ns, "a");
  ASSERT_TRUE(a);
  Json a2 = *a;
  a2["data"]["v"] = "2";
  ASSERT_TRUE(client->update(CM, ns, a2));
  ASSERT_TRUE(client->remove(CM, ns, "before"));
  EXPECT_TRUE(it::eventually([&] {
    auto s = seen.snapshot();
    return s.size() == 1 && s.count(ns + "/a") && s[ns + "/a"] == "2";
  })) << "informer state did not converge";
  EXPECT_TRUE(seen.logged("delete " + ns + "/before"));  // a real watch DELETED event
  EXPECT_EQ(inf.store().listKeys(), (std::vector<std::string>{ns + "/a"}));
  inf.stop();
}

TEST_F(InformerIT, RecoversFromCompactionWithoutLosingEvents) {
  for (int i = 0; i < 5; ++i)
    ASSERT_TRUE(client->create(CM, ns, configMap(ns, "cm-" + std::to_string(i), "0")));
  auto gated = std::make_shared<PartitionableClient>(client);
  cache::InformerOptions o;
  o.ns = ns;
  cache::Informer inf(gated, CM, o, RealTimeSource::instance());
  Seen seen;
  inf.addEventHandler(seen.handler());
  inf.start();
  ASSERT_TRUE(inf.waitForSync(30s));
  ASSERT_TRUE(it::eventually([&] { return seen.snapshot().size() == 5; }));
  const std::string rvBefore = inf.lastSyncResourceVersion();

  // Partition the watch, change the world, and compact etcd past what the informer saw.
  gated->partition();
  struct Heal {
    PartitionableClient& c;
    ~Heal() { c.heal(); }
  } healOnExit{*gated};
  ASSERT_TRUE(client->remove(CM, ns, "cm-0"));
  ASSERT_TRUE(client->remove(CM, ns, "cm-1"));
  auto c2 = client->get(CM, ns, "cm-2");
  ASSERT_TRUE(c2);
  Json u = *c2;
  u["data"]["v"] = "updated";
  ASSERT_TRUE(client->update(CM, ns, u));
  ASSERT_TRUE(client->create(CM, ns, configMap(ns, "new", "1")));
  const std::string cpDir = it::env("WATERLINE_BINARY_DIR") + "/controlplane";
  ASSERT_EQ(it::run("bash " + it::env("WATERLINE_SOURCE_DIR") + "/hack/controlplane.sh compact --dir " +
                    cpDir + " >/dev/null"),
            0);
  // A watch from the old resourceVersion can no longer be resumed (the apiserver answers
  // 410 Gone; an error of another kind must lead to a relist all the same).
  kube::ListOptions stale;
  stale.resourceVersion = rvBefore;
  auto w = client->watch(CM, ns, stale);
  std::string why = w ? "" : w.error().describe();
  if (w) {
    auto ev = (*w)->next();
    if (!ev) why = ev.error().describe();
    (*w)->cancel();
  }
  EXPECT_FALSE(why.empty()) << "a watch from a compacted resourceVersion did not fail";
  std::cout << "watch from compacted resourceVersion " << rvBefore << ": " << why << "\n";

  const auto relistsBefore = inf.stats().relists;
  gated->heal();
  EXPECT_TRUE(it::eventually([&] {
    auto s = seen.snapshot();
    return s.size() == 4 && !s.count(ns + "/cm-0") && !s.count(ns + "/cm-1") && s.count(ns + "/new") &&
           s[ns + "/cm-2"] == "updated";
  })) << "missed events were not delivered after the relist";
  EXPECT_GT(inf.stats().relists, relistsBefore);
  // The deletes came from the relist, not from a watch event.
  EXPECT_TRUE(seen.logged("delete-unknown " + ns + "/cm-0"));
  EXPECT_TRUE(seen.logged("delete-unknown " + ns + "/cm-1"));
  // And the informer keeps watching afterwards.
  ASSERT_TRUE(client->create(CM, ns, configMap(ns, "after", "1")));
  EXPECT_TRUE(it::eventually([&] { return seen.snapshot().count(ns + "/after") == 1; }));
  inf.stop();
}

}  // namespace
}  // namespace waterline
