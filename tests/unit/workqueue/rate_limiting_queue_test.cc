#include "waterline/workqueue/rate_limiting_queue.h"

#include <gtest/gtest.h>

#include <future>

namespace waterline::workqueue {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

class RateLimitingQueueTest : public ::testing::Test {
 protected:
  std::shared_ptr<SimulatedTimeSource> sim = std::make_shared<SimulatedTimeSource>();
  RateLimitingQueue q{std::make_shared<ItemExponentialFailureRateLimiter>(),
                      QueueOptions{.name = "test", .clock = sim}};

  // Fails `key` once: get, addRateLimited, done.
  void fail(const std::string& key) {
    auto k = q.tryGet();
    ASSERT_EQ(k, key);
    q.addRateLimited(*k);
    q.done(*k);
  }
};

TEST_F(RateLimitingQueueTest, BackoffSequenceThenForget) {
  q.add("ns/a");
  const std::vector<Duration> delays = {milliseconds(5), milliseconds(10), milliseconds(20),
                                        milliseconds(40)};
  for (Duration d : delays) {
    fail("ns/a");
    sim->advance(d - std::chrono::nanoseconds(1));
    EXPECT_EQ(q.tryGet(), std::nullopt) << "too early for " << d.count();
    sim->advance(std::chrono::nanoseconds(1));
  }
  EXPECT_EQ(q.numRequeues("ns/a"), 4);
  // Success: forget resets the backoff.
  ASSERT_EQ(q.tryGet(), "ns/a");
  q.forget("ns/a");
  q.done("ns/a");
  EXPECT_EQ(q.numRequeues("ns/a"), 0);
  q.addRateLimited("ns/a");
  sim->advance(milliseconds(5));
  EXPECT_EQ(q.tryGet(), "ns/a");
}

TEST_F(RateLimitingQueueTest, RequeueAfterRule) {
  // controller-runtime: RequeueAfter means forget, then addAfter.
  q.add("ns/a");
  fail("ns/a");
  sim->advance(milliseconds(5));
  ASSERT_EQ(q.tryGet(), "ns/a");
  q.forget("ns/a");
  q.addAfter("ns/a", seconds(30));
  q.done("ns/a");
  sim->advance(seconds(29));
  EXPECT_EQ(q.tryGet(), std::nullopt);
  sim->advance(seconds(1));
  EXPECT_EQ(q.tryGet(), "ns/a");
  EXPECT_EQ(q.numRequeues("ns/a"), 0);
}

TEST_F(RateLimitingQueueTest, RateLimitedAddDedupsWithPlainAdd) {
  q.addRateLimited("ns/a");  // due in 5ms
  q.add("ns/a");             // now
  ASSERT_EQ(q.tryGet(), "ns/a");
  q.done("ns/a");
  sim->advance(milliseconds(5));
  EXPECT_EQ(q.tryGet(), "ns/a");  // the delayed add still lands (client-go semantics)
}

TEST(RateLimitingQueue, DefaultLimiterUsesTheQueueClock) {
  auto sim = std::make_shared<SimulatedTimeSource>();
  RateLimitingQueue q(nullptr, QueueOptions{.clock = sim});
  for (int i = 0; i < 100; ++i) q.addRateLimited("k" + std::to_string(i));  // 5ms each
  q.addRateLimited("late");  // bucket exhausted: 100ms
  sim->advance(milliseconds(5));
  EXPECT_EQ(q.len(), 100u);
  sim->advance(milliseconds(95));
  EXPECT_EQ(q.len(), 101u);
}

TEST(RateLimitingQueue, ShutDownUnblocksGet) {
  RateLimitingQueue q;
  auto got = std::async(std::launch::async, [&] { return q.get(); });
  q.shutDown();
  ASSERT_EQ(got.wait_for(seconds(60)), std::future_status::ready);
  EXPECT_EQ(got.get(), std::nullopt);
  EXPECT_TRUE(q.shuttingDown());
}

}  // namespace
}  // namespace waterline::workqueue
