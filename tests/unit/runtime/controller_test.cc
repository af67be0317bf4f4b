#include "waterline/runtime/controller.h"

#include <gtest/gtest.h>

#include <atomic>
#include <deque>
#include <thread>

#include "fake_client.h"

namespace waterline::runtime {
namespace {

using namespace std::chrono_literals;
using testing::FakeClient;

// A reconciler whose answers are scripted per call.
struct Scripted : Reconciler {
  std::deque<ReconcileResult> answers;
  std::vector<std::string> seen;
  ReconcileResult reconcile(const Request& r) override {
    seen.push_back(r.key());
    if (answers.empty()) return Result::done();
    auto a = answers.front();
    answers.pop_front();
    return a;
  }
};

struct Fixture : ::testing::Test {
  std::shared_ptr<SimulatedTimeSource> sim = std::make_shared<SimulatedTimeSource>();
  metrics::Registry reg;
  Scripted* rec = nullptr;
  std::unique_ptr<Controller> ctl;

  void make() {
    auto r = std::make_unique<Scripted>();
    rec = r.get();
    ControllerOptions o;
    o.time = sim;
    o.registry = &reg;
    o.workers = 1;
    o.rateLimiter = std::make_shared<workqueue::ItemExponentialFailureRateLimiter>(
        std::chrono::milliseconds(5), std::chrono::seconds(1000));
    ctl = std::make_unique<Controller>("test", std::move(r), o);
  }
};

TEST_F(Fixture, SuccessForgetsTheKey) {
  make();
  ctl->enqueue({"ns", "a"});
  ASSERT_TRUE(ctl->processNextForTest());
  EXPECT_EQ(rec->seen, (std::vector<std::string>{"ns/a"}));
  EXPECT_EQ(ctl->queue().numRequeues("ns/a"), 0);
  EXPECT_FALSE(ctl->processNextForTest());
}

TEST_F(Fixture, ErrorRequeuesWithPerKeyExponentialBackoff) {
  make();
  rec->answers = {std::unexpected(ReconcileError{"boom"}), std::unexpected(ReconcileError{"boom"}),
                  Result::done()};
  ctl->enqueue({"ns", "a"});
  ASSERT_TRUE(ctl->processNextForTest());  // error #1 -> requeue after 5ms
  EXPECT_EQ(ctl->queue().numRequeues("ns/a"), 1);
  EXPECT_FALSE(ctl->processNextForTest());
  sim->advance(4ms);
  EXPECT_FALSE(ctl->processNextForTest());
  sim->advance(1ms);
  ASSERT_TRUE(ctl->processNextForTest());  // error #2 -> requeue after 10ms
  EXPECT_EQ(ctl->queue().numRequeues("ns/a"), 2);
  sim->advance(9ms);
  EXPECT_FALSE(ctl->processNextForTest());
  sim->advance(1ms);
  ASSERT_TRUE(ctl->processNextForTest());  // success -> forget
  EXPECT_EQ(ctl->queue().numRequeues("ns/a"), 0);
  EXPECT_EQ(rec->seen.size(), 3u);
  EXPECT_EQ(reg.serialize().find("waterline_controller_reconcile_errors_total{controller=\"test\"} 2") !=
                std::string::npos,
            true)
      << reg.serialize();
}

TEST_F(Fixture, RequeueAfterForgetsBackoffAndWaitsExactly) {
  make();
  rec->answers = {std::unexpected(ReconcileError{"boom"}), Result::after(30s)};
  ctl->enqueue({"", "pool-a"});
  ASSERT_TRUE(ctl->processNextForTest());
  sim->advance(5ms);
  ASSERT_TRUE(ctl->processNextForTest());  // requeueAfter 30s: backoff forgotten
  EXPECT_EQ(ctl->queue().numRequeues("pool-a"), 0);
  sim->advance(29s);
  EXPECT_FALSE(ctl->processNextForTest());
  sim->advance(1s);
  ASSERT_TRUE(ctl->processNextForTest());
  EXPECT_EQ(rec->seen, (std::vector<std::string>{"pool-a", "pool-a", "pool-a"}));
}

TEST_F(Fixture, RequeueIsRateLimited) {
  make();
  rec->answers = {Result::again()};
  ctl->enqueue({"", "x"});
  ASSERT_TRUE(ctl->processNextForTest());
  EXPECT_EQ(ctl->queue().numRequeues("x"), 1);
  EXPECT_FALSE(ctl->processNextForTest());
  sim->advance(5ms);
  EXPECT_TRUE(ctl->processNextForTest());
}

TEST_F(Fixture, ExceptionIsAnError) {
  auto r = std::make_unique<FuncReconciler>([](const Request&) -> ReconcileResult {
    throw std::runtime_error("bad");
  });
  ControllerOptions o;
  o.time = sim;
  o.registry = &reg;
  Controller c("throws", std::move(r), o);
  c.enqueue({"", "k"});
  ASSERT_TRUE(c.processNextForTest());
  EXPECT_EQ(c.queue().numRequeues("k"), 1);
}

// End to end with an informer: events become keys, owners are enqueued for owned
// children, predicates filter status-only updates, workers start only after sync.
TEST(ControllerWithInformers, OwnerEnqueueAndGenerationPredicate) {
  auto client = std::make_shared<FakeClient>();
  auto time = RealTimeSource::instance();
  metrics::Registry reg;
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::string> seen;
  auto r = std::make_unique<FuncReconciler>([&](const Request& req) -> ReconcileResult {
    std::lock_guard g(mu);
    seen.push_back(req.key());
    cv.notify_all();
    return Result::done();
  });
  ControllerOptions o;
  o.registry = &reg;
  Controller c("owners", std::move(r), o);

  cache::InformerOptions po;
  auto parents = std::make_shared<cache::Informer>(client, kube::kinds::ConfigMap, po, time);
  c.watchFor(parents, {generationChangedPredicate()});

  auto parent = client->create(kube::kinds::ConfigMap, "ns", FakeClient::object("ns", "parent"));
  ASSERT_TRUE(parent);
  parents->start();
  ASSERT_TRUE(c.start());
  auto waitSeen = [&](size_t n) {
    std::unique_lock lk(mu);
    return cv.wait_for(lk, 20s, [&] { return seen.size() >= n; });
  };
  ASSERT_TRUE(waitSeen(1));
  // A status-only change (same generation) is filtered.
  Json p2 = *parent;
  p2["status"] = {{"x", 1}};
  ASSERT_TRUE(client->update(kube::kinds::ConfigMap, "ns", p2));
  // A spec change (generation bump) passes.
  auto cur = client->get(kube::kinds::ConfigMap, "ns", "parent");
  Json p3 = *cur;
  p3["metadata"]["generation"] = 2;
  ASSERT_TRUE(client->update(kube::kinds::ConfigMap, "ns", p3));
  ASSERT_TRUE(waitSeen(2));
  c.stop();
  parents->stop();
  std::lock_guard g(mu);
  EXPECT_EQ(seen, (std::vector<std::string>{"ns/parent", "ns/parent"}));
}

TEST(ControllerWithInformers, OwnedChildEnqueuesItsController) {
  metrics::Registry reg;
  std::vector<std::string> seen;
  auto r = std::make_unique<FuncReconciler>([&](const Request& req) -> ReconcileResult {
    seen.push_back(req.key());
    return Result::done();
  });
  ControllerOptions o;
  o.registry = &reg;
  auto sim = std::make_shared<SimulatedTimeSource>();
  o.time = sim;
  Controller c("owned", std::move(r), o);
  auto client = std::make_shared<FakeClient>();
  auto children = std::make_shared<cache::Informer>(client, kube::kinds::ConfigMap,
                                                    cache::InformerOptions{}, RealTimeSource::instance());
  c.watchOwned(children, "ModelDeployment");
  Json owner = {{"apiVersion", "waterline.dev/v1alpha1"},
                {"kind", "ModelDeployment"},
                {"metadata", {{"name", "llama"}, {"namespace", "ns"}, {"uid", "u-1"}}}};
  Json child = FakeClient::object("ns", "llama-0");
  ASSERT_TRUE(setControllerReference(owner, child));
  Json orphan = FakeClient::object("ns", "orphan");
  ASSERT_TRUE(client->create(kube::kinds::ConfigMap, "ns", child));
  ASSERT_TRUE(client->create(kube::kinds::ConfigMap, "ns", orphan));
  children->start();
  ASSERT_TRUE(children->waitForSync(20s));
  while (c.processNextForTest()) {
  }
  EXPECT_EQ(seen, (std::vector<std::string>{"ns/llama"}));
  children->stop();
}

TEST(ControllerWithInformers, StartFailsWhenCachesNeverSync) {
  // An informer that is never started never syncs: start() must give up, not run workers.
  metrics::Registry reg;
  auto sim = std::make_shared<SimulatedTimeSource>();
  ControllerOptions o;
  o.registry = &reg;
  o.time = sim;
  o.cacheSyncTimeout = 10s;
  Controller c("nosync", std::make_unique<FuncReconciler>([](const Request&) -> ReconcileResult {
                 return Result::done();
               }),
               o);
  auto client = std::make_shared<FakeClient>();
  auto inf = std::make_shared<cache::Informer>(client, kube::kinds::ConfigMap,
                                               cache::InformerOptions{}, sim);
  c.watchFor(inf);
  // Simulated time moves until start() returns, however late start() begins to wait (a
  // fixed number of steps could all happen before it reads the clock, and it would then
  // wait for ever).
  const auto t0 = sim->monotonicTime();
  std::atomic<bool> returned{false};
  std::thread advancer([&] {
    while (!returned) {
      sim->advance(1s);
      std::this_thread::yield();
    }
  });
  const bool started = c.start();
  returned = true;
  advancer.join();
  EXPECT_FALSE(started);
  EXPECT_GE(sim->monotonicTime() - t0, 10s) << "it waited for the whole cacheSyncTimeout";
}

}  // namespace
}  // namespace waterline::runtime
