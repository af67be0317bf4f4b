#include "waterline/workqueue/rate_limiter.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

namespace waterline::workqueue {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

TEST(ItemExponentialFailureRateLimiter, DoublesPerKeyUntilCap) {
  ItemExponentialFailureRateLimiter l;
  const std::vector<Duration> want = {milliseconds(5),   milliseconds(10),  milliseconds(20),
                                      milliseconds(40),  milliseconds(80),  milliseconds(160),
                                      milliseconds(320), milliseconds(640), milliseconds(1280)};
  for (std::size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(l.when("a"), want[i]) << i;
    EXPECT_EQ(l.numRequeues("a"), int(i + 1));
  }
  for (int i = 9; i < 18; ++i) l.when("a");  // 5ms * 2^17 = 655.36s
  EXPECT_EQ(l.when("a"), seconds(1000));      // 2^18 * 5ms > 1000s: capped
  EXPECT_EQ(l.when("a"), seconds(1000));
  EXPECT_EQ(l.numRequeues("a"), 20);
  // Other keys are independent.
  EXPECT_EQ(l.numRequeues("b"), 0);
  EXPECT_EQ(l.when("b"), milliseconds(5));
}

TEST(ItemExponentialFailureRateLimiter, ForgetResets) {
  ItemExponentialFailureRateLimiter l(milliseconds(1), seconds(1));
  l.when("a");
  l.when("a");
  EXPECT_EQ(l.when("a"), milliseconds(4));
  l.forget("a");
  EXPECT_EQ(l.numRequeues("a"), 0);
  EXPECT_EQ(l.when("a"), milliseconds(1));
  for (int i = 0; i < 60; ++i) l.when("a");
  EXPECT_EQ(l.when("a"), seconds(1));
}

TEST(ItemExponentialFailureRateLimiter, ThreadSafe) {
  ItemExponentialFailureRateLimiter l;
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t) {
    ts.emplace_back([&] {
      for (int i = 0; i < 1000; ++i) l.when("a");
    });
  }
  for (auto& t : ts) t.join();
  EXPECT_EQ(l.numRequeues("a"), 4000);
}

TEST(ItemFastSlowRateLimiter, FastThenSlow) {
  ItemFastSlowRateLimiter l(milliseconds(5), seconds(10), 3);
  EXPECT_EQ(l.when("a"), milliseconds(5));
  EXPECT_EQ(l.when("a"), milliseconds(5));
  EXPECT_EQ(l.when("a"), milliseconds(5));
  EXPECT_EQ(l.when("a"), seconds(10));
  EXPECT_EQ(l.numRequeues("a"), 4);
  l.forget("a");
  EXPECT_EQ(l.when("a"), milliseconds(5));
}

TEST(BucketRateLimiter, SharesOneBucketAcrossKeys) {
  auto sim = std::make_shared<SimulatedTimeSource>();
  BucketRateLimiter l(sim, 10, 100);
  for (int i = 0; i < 100; ++i) ASSERT_EQ(l.when("k" + std::to_string(i)), Duration::zero());
  EXPECT_EQ(l.when("x"), milliseconds(100));
  EXPECT_EQ(l.when("y"), milliseconds(200));
  sim->advance(milliseconds(200));  // pays off both reservations
  EXPECT_EQ(l.when("z"), milliseconds(100));
  sim->advance(seconds(60));
  EXPECT_EQ(l.when("z"), Duration::zero());
  EXPECT_EQ(l.numRequeues("x"), 0);
  l.forget("x");
}

TEST(MaxOfRateLimiter, TakesTheLongestDelay) {
  auto sim = std::make_shared<SimulatedTimeSource>();
  auto fastSlow = std::make_shared<ItemFastSlowRateLimiter>(milliseconds(1), seconds(3), 1);
  auto exp = std::make_shared<ItemExponentialFailureRateLimiter>(milliseconds(500), seconds(60));
  MaxOfRateLimiter l({fastSlow, exp});
  EXPECT_EQ(l.when("a"), milliseconds(500));  // max(1ms, 500ms)
  EXPECT_EQ(l.when("a"), seconds(3));         // max(3s, 1s)
  EXPECT_EQ(l.when("a"), seconds(3));         // max(3s, 2s)
  EXPECT_EQ(l.when("a"), seconds(4));         // max(3s, 4s)
  EXPECT_EQ(l.numRequeues("a"), 4);
  l.forget("a");
  EXPECT_EQ(fastSlow->numRequeues("a"), 0);
  EXPECT_EQ(exp->numRequeues("a"), 0);
  EXPECT_THROW(MaxOfRateLimiter({nullptr}), std::invalid_argument);
}

TEST(DefaultControllerRateLimiter, PerKeyBackoffAndOverallBucket) {
  auto sim = std::make_shared<SimulatedTimeSource>();
  auto l = defaultControllerRateLimiter(sim);
  EXPECT_EQ(l->when("a"), milliseconds(5));
  EXPECT_EQ(l->when("a"), milliseconds(10));
  EXPECT_EQ(l->when("a"), milliseconds(20));
  EXPECT_EQ(l->numRequeues("a"), 3);
  l->forget("a");
  EXPECT_EQ(l->numRequeues("a"), 0);
  EXPECT_EQ(l->when("a"), milliseconds(5));
  // 4 tokens used; 96 more first failures stay at the per-key 5ms ...
  for (int i = 0; i < 96; ++i) ASSERT_EQ(l->when("k" + std::to_string(i)), milliseconds(5)) << i;
  // ... then the 10 qps bucket dominates.
  EXPECT_EQ(l->when("new1"), milliseconds(100));
  EXPECT_EQ(l->when("new2"), milliseconds(200));
}

}  // namespace
}  // namespace waterline::workqueue
