#include "waterline/cache/informer.h"

#include <gtest/gtest.h>

#include <chrono>
#include <set>
#include <thread>

#include "fake_client.h"

namespace waterline::cache {
namespace {

using namespace std::chrono_literals;
using testing::FakeClient;
const kube::ResourceKind& CM = kube::kinds::ConfigMap;

// Records what handlers see, and waits for it with a generous real-time bound (the
// informer runs on its own thread; nothing here depends on timing to pass).
struct Recorder {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::string> events;  // "add ns/a", "update ns/a 101->102", "delete ns/a [unknown]"
  std::set<std::string> live;

  EventHandler handler() {
    return EventHandler{
        [this](const ObjectPtr& o) { record("add " + objectKey(*o), objectKey(*o), true); },
        [this](const ObjectPtr& a, const ObjectPtr& b) {
          record("update " + objectKey(*b) + " " + resourceVersionOf(*a) + "->" +
                     resourceVersionOf(*b),
                 objectKey(*b), true);
        },
        [this](const ObjectPtr& o, bool unknown) {
          record("delete " + objectKey(*o) + (unknown ? " [unknown]" : ""), objectKey(*o), false);
        }};
  }
  void record(const std::string& e, const std::string& key, bool present) {
    std::lock_guard g(mu);
    events.push_back(e);
    if (present) live.insert(key);
    else live.erase(key);
    cv.notify_all();
  }
  bool waitFor(const std::function<bool()>& pred) {
    std::unique_lock lk(mu);
    return cv.wait_for(lk, 20s, pred);
  }
  bool hasEvent(const std::string& prefix) {
    for (const auto& e : events)
      if (e.rfind(prefix, 0) == 0) return true;
    return false;
  }
};

class InformerTest : public ::testing::Test {
 protected:
  std::shared_ptr<FakeClient> client = std::make_shared<FakeClient>();
  TimeSourcePtr time = RealTimeSource::instance();
};

TEST_F(InformerTest, SyncsThenDeliversWatchEventsInOrder) {
  ASSERT_TRUE(client->create(CM, "ns", FakeClient::object("ns", "a")));
  Informer inf(client, CM, {}, time);
  Recorder rec;
  inf.addEventHandler(rec.handler());
  EXPECT_FALSE(inf.hasSynced());
  inf.start();
  ASSERT_TRUE(inf.waitForSync(20s));
  ASSERT_TRUE(rec.waitFor([&] { return rec.live.contains("ns/a"); }));

  auto b = client->create(CM, "ns", FakeClient::object("ns", "b"));
  ASSERT_TRUE(b);
  Json b2 = *b;
  b2["data"]["k"] = "v";
  ASSERT_TRUE(client->update(CM, "ns", b2));
  ASSERT_TRUE(client->remove(CM, "ns", "a"));
  ASSERT_TRUE(rec.waitFor([&] { return rec.events.size() >= 4; }));
  std::lock_guard g(rec.mu);
  ASSERT_EQ(rec.events.size(), 4u);
  EXPECT_EQ(rec.events[0], "add ns/a");
  EXPECT_EQ(rec.events[1], "add ns/b");
  EXPECT_EQ(rec.events[2].rfind("update ns/b ", 0), 0u);
  EXPECT_EQ(rec.events[3], "delete ns/a");
  EXPECT_EQ(inf.store().listKeys(), (std::vector<std::string>{"ns/b"}));
  EXPECT_EQ(inf.store().get("ns/b")->at("data").at("k"), "v");
}

TEST_F(InformerTest, RelistAfterGoneDeliversMissedCreatesUpdatesAndDeletes) {
  ASSERT_TRUE(client->create(CM, "ns", FakeClient::object("ns", "keep")));
  ASSERT_TRUE(client->create(CM, "ns", FakeClient::object("ns", "gone")));
  Informer inf(client, CM, {}, time);
  Recorder rec;
  inf.addEventHandler(rec.handler());
  inf.start();
  ASSERT_TRUE(inf.waitForSync(20s));
  ASSERT_TRUE(rec.waitFor([&] { return rec.live.size() == 2; }));
  // The watch must be open before the partition: a watch started later would replay the
  // changes below as ordinary events (as the apiserver would) and no relist would happen.
  for (int i = 0; i < 20000 && client->watchCalls() < 1; ++i) std::this_thread::sleep_for(1ms);
  ASSERT_EQ(client->watchCalls(), 1);
  const int listsBefore = client->listCalls();

  // Partition the watch, change the world, then expire the watch (410).
  client->setPartitioned(true);
  ASSERT_TRUE(client->remove(CM, "ns", "gone"));
  ASSERT_TRUE(client->create(CM, "ns", FakeClient::object("ns", "new")));
  auto keep = client->get(CM, "ns", "keep");
  Json k2 = *keep;
  k2["data"]["x"] = "1";
  ASSERT_TRUE(client->update(CM, "ns", k2));
  client->setPartitioned(false);
  client->expireOpenWatches();

  ASSERT_TRUE(rec.waitFor([&] {
    return rec.hasEvent("delete ns/gone [unknown]") && rec.hasEvent("add ns/new") &&
           rec.hasEvent("update ns/keep");
  }));
  EXPECT_GT(client->listCalls(), listsBefore);
  EXPECT_EQ(client->pageSizeSeen(), 500);  // the relist after 410 is consistent and paginated
  EXPECT_EQ(inf.store().listKeys(), (std::vector<std::string>{"ns/keep", "ns/new"}));
  EXPECT_EQ(inf.stats().relists, 1u);
}

TEST_F(InformerTest, WatchResumesFromLastResourceVersionAndBookmarks) {
  Informer inf(client, CM, {}, time);
  Recorder rec;
  inf.addEventHandler(rec.handler());
  inf.start();
  ASSERT_TRUE(inf.waitForSync(20s));
  auto a = client->create(CM, "ns", FakeClient::object("ns", "a"));
  ASSERT_TRUE(rec.waitFor([&] { return rec.live.contains("ns/a"); }));
  // Unrelated writes (another resource) move the RV; a bookmark carries it.
  client->sendBookmarks();
  const std::string rvA = (*a)["metadata"]["resourceVersion"];
  // Give the bookmark time to land, bounded.
  for (int i = 0; i < 2000 && inf.stats().bookmarks == 0; ++i) std::this_thread::sleep_for(1ms);
  ASSERT_EQ(inf.stats().bookmarks, 1u);
  // A normal close (server timeout) makes the reflector watch again from the last RV,
  // without a list.
  const int lists = client->listCalls();
  client->closeOpenWatches();
  for (int i = 0; i < 5000 && client->watchCalls() < 2; ++i) std::this_thread::sleep_for(1ms);
  ASSERT_GE(client->watchCalls(), 2);
  auto rvs = client->watchResourceVersions();
  EXPECT_EQ(rvs.back(), inf.lastSyncResourceVersion());
  EXPECT_GE(std::stoull(rvs.back()), std::stoull(rvA));
  EXPECT_EQ(client->listCalls(), lists);
  // Events after the reconnect still arrive.
  ASSERT_TRUE(client->create(CM, "ns", FakeClient::object("ns", "b")));
  ASSERT_TRUE(rec.waitFor([&] { return rec.live.contains("ns/b"); }));
}

TEST_F(InformerTest, WatchStartGoneForcesConsistentRelist) {
  ASSERT_TRUE(client->create(CM, "ns", FakeClient::object("ns", "a")));
  Informer inf(client, CM, {}, time);
  client->failNextWatchWithGone();
  inf.start();
  ASSERT_TRUE(inf.waitForSync(20s));
  for (int i = 0; i < 20000 && inf.stats().relists < 1; ++i) std::this_thread::sleep_for(1ms);
  EXPECT_EQ(inf.stats().relists, 1u);
  EXPECT_EQ(client->listCalls(), 2);
}

TEST_F(InformerTest, LateHandlerReceivesExistingObjectsAsAdds) {
  ASSERT_TRUE(client->create(CM, "ns", FakeClient::object("ns", "a")));
  ASSERT_TRUE(client->create(CM, "ns", FakeClient::object("ns", "b")));
  Informer inf(client, CM, {}, time);
  inf.start();
  ASSERT_TRUE(inf.waitForSync(20s));
  Recorder rec;
  inf.addEventHandler(rec.handler());
  std::lock_guard g(rec.mu);
  EXPECT_EQ(rec.events, (std::vector<std::string>{"add ns/a", "add ns/b"}));
}

TEST_F(InformerTest, RemovedHandlerIsNeverCalledAgain) {
  Informer inf(client, CM, {}, time);
  Recorder removed, kept;
  const uint64_t id = inf.addEventHandler(removed.handler());
  inf.addEventHandler(kept.handler());
  inf.start();
  ASSERT_TRUE(inf.waitForSync(20s));
  ASSERT_TRUE(client->create(CM, "ns", FakeClient::object("ns", "a")));
  ASSERT_TRUE(removed.waitFor([&] { return removed.hasEvent("add ns/a"); }));
  inf.removeEventHandler(id);
  inf.removeEventHandler(id);  // unknown ids are ignored
  ASSERT_TRUE(client->create(CM, "ns", FakeClient::object("ns", "b")));
  // Handlers are called in registration order for each event: once the kept one has
  // seen b, a removed one that was still registered would have seen it first.
  ASSERT_TRUE(kept.waitFor([&] { return kept.hasEvent("add ns/b"); }));
  std::lock_guard g(removed.mu);
  EXPECT_EQ(removed.events, (std::vector<std::string>{"add ns/a"}));
}

TEST_F(InformerTest, ManagedFieldsAreDroppedAndStopIsPrompt) {
  Json o = FakeClient::object("ns", "a");
  o["metadata"]["managedFields"] = Json::array({{{"manager", "kubectl"}}});
  ASSERT_TRUE(client->create(CM, "ns", o));
  auto inf = std::make_unique<Informer>(client, CM, InformerOptions{}, time);
  inf->start();
  ASSERT_TRUE(inf->waitForSync(20s));
  EXPECT_FALSE(inf->store().get("ns/a")->at("metadata").contains("managedFields"));
  auto t0 = std::chrono::steady_clock::now();
  inf->stop();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
}

TEST_F(InformerTest, ResyncRedeliversEveryObjectOnTheInjectedClock) {
  auto sim = std::make_shared<SimulatedTimeSource>();
  ASSERT_TRUE(client->create(CM, "ns", FakeClient::object("ns", "a")));
  InformerOptions opts;
  opts.resyncPeriod = 30s;
  Informer inf(client, CM, opts, sim);
  Recorder rec;
  inf.addEventHandler(rec.handler());
  inf.start();
  {
    std::unique_lock lk(rec.mu);
    ASSERT_TRUE(rec.cv.wait_for(lk, 20s, [&] { return rec.live.contains("ns/a"); }));
  }
  {
    std::lock_guard g(rec.mu);
    EXPECT_FALSE(rec.hasEvent("update ns/a"));
  }
  // The resync thread computes its deadline when it starts; keep advancing (bounded)
  // until it fires, so thread start-up order cannot matter.
  bool fired = false;
  for (int i = 0; i < 2000 && !fired; ++i) {
    sim->advance(31s);
    std::unique_lock lk(rec.mu);
    fired = rec.cv.wait_for(lk, 10ms, [&] { return rec.hasEvent("update ns/a"); });
  }
  EXPECT_TRUE(fired);
}

TEST_F(InformerTest, FactorySharesInformersPerKindAndSelector) {
  InformerFactory f(client, time);
  auto a = f.informerFor(CM);
  auto b = f.informerFor(CM);
  InformerOptions sel;
  sel.labelSelector = "app=x";
  auto c = f.informerFor(CM, sel);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  f.start();
  EXPECT_TRUE(f.waitForSync(20s));
  f.stop();
}

}  // namespace
}  // namespace waterline::cache
