#include "waterline/common/backoff.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

namespace waterline {
namespace {

using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::seconds;

TEST(ExponentialBackoff, DoublesFromBaseUntilCap) {
  ExponentialBackoff b(milliseconds(5), seconds(1000));
  EXPECT_EQ(b.next(0), milliseconds(5));
  EXPECT_EQ(b.next(1), milliseconds(10));
  EXPECT_EQ(b.next(2), milliseconds(20));
  EXPECT_EQ(b.next(3), milliseconds(40));
  EXPECT_EQ(b.next(17), milliseconds(655360));
  EXPECT_EQ(b.next(18), seconds(1000));  // 1310.72s capped
  EXPECT_EQ(b.next(500), seconds(1000));
  EXPECT_EQ(b.next(100000), seconds(1000));  // 2^100000 = inf, still the cap
  EXPECT_EQ(b.next(-3), milliseconds(5));
}

TEST(ExponentialBackoff, IsPure) {
  ExponentialBackoff b(milliseconds(100), seconds(10), 1.5);
  for (int i = 0; i < 20; ++i) EXPECT_EQ(b.next(i), b.next(i));
  EXPECT_EQ(b.next(0), milliseconds(100));
  EXPECT_EQ(b.next(1), milliseconds(150));
  EXPECT_EQ(b.next(2), milliseconds(225));
}

TEST(ExponentialBackoff, RejectsBadParameters) {
  EXPECT_THROW(ExponentialBackoff(milliseconds(-1), seconds(1)), std::invalid_argument);
  EXPECT_THROW(ExponentialBackoff(milliseconds(1), seconds(1), 0.5), std::invalid_argument);
}

TEST(ExponentialBackoff, JitterFromInjectedRandom) {
  auto b = ExponentialBackoff(seconds(1), seconds(100)).withJitter(0.2, [] { return 0.5; });
  EXPECT_EQ(b.next(0), milliseconds(1100));
  EXPECT_EQ(b.next(1), milliseconds(2200));
  // Jitter applies after the cap, so it may exceed it by the jitter fraction.
  EXPECT_EQ(b.next(10), seconds(110));
}

TEST(ExponentialBackoff, SeededJitterIsReproducibleAndBounded) {
  auto a = ExponentialBackoff(seconds(1), seconds(100)).withJitter(0.5, 42);
  auto b = ExponentialBackoff(seconds(1), seconds(100)).withJitter(0.5, 42);
  bool sawJitter = false;
  for (int i = 0; i < 10; ++i) {
    const Duration da = a.next(i), db = b.next(i);
    EXPECT_EQ(da, db);
    const Duration plain = ExponentialBackoff(seconds(1), seconds(100)).next(i);
    EXPECT_GE(da, plain);
    EXPECT_LE(da, plain + plain / 2);
    sawJitter |= da != plain;
  }
  EXPECT_TRUE(sawJitter);
}

TEST(SeededRandom, InUnitInterval) {
  auto r = seededRandom(7);
  for (int i = 0; i < 1000; ++i) {
    const double v = r();
    EXPECT_GE(v, 0.0);
    EXPECT_LT(v, 1.0);
  }
}

TEST(ScaleDuration, Saturates) {
  EXPECT_EQ(scaleDuration(seconds(2), 1.5), seconds(3));
  EXPECT_EQ(scaleDuration(seconds(2), -1), Duration::zero());
  EXPECT_EQ(scaleDuration(hours(1000000), 1e30), Duration::max());
  EXPECT_EQ(scaleDuration(seconds(1), std::numeric_limits<double>::quiet_NaN()), Duration::max());
}

TEST(JitteredBackoff, StepsThenStaysFixed) {
  JitteredBackoff b({.duration = seconds(1), .factor = 2, .jitter = 0, .steps = 4, .cap = Duration{0}});
  EXPECT_EQ(b.step(), seconds(1));
  EXPECT_EQ(b.step(), seconds(2));
  EXPECT_EQ(b.step(), seconds(4));
  EXPECT_EQ(b.step(), seconds(8));
  EXPECT_EQ(b.stepsLeft(), 0);
  EXPECT_EQ(b.step(), seconds(16));
  EXPECT_EQ(b.step(), seconds(16));
  b.reset();
  EXPECT_EQ(b.step(), seconds(1));
}

TEST(JitteredBackoff, CapEndsGrowth) {
  JitteredBackoff b({.duration = seconds(1), .factor = 2, .jitter = 0, .steps = 100, .cap = seconds(5)});
  EXPECT_EQ(b.step(), seconds(1));
  EXPECT_EQ(b.step(), seconds(2));
  EXPECT_EQ(b.step(), seconds(4));
  EXPECT_EQ(b.stepsLeft(), 0);
  EXPECT_EQ(b.current(), seconds(5));
  EXPECT_EQ(b.step(), seconds(5));
  EXPECT_EQ(b.step(), seconds(5));
}

TEST(JitteredBackoff, JitterAndConstantFactor) {
  JitteredBackoff b({.duration = seconds(1), .factor = 0, .jitter = 0.1, .steps = 3}, [] { return 0.5; });
  EXPECT_EQ(b.step(), milliseconds(1050));
  EXPECT_EQ(b.step(), milliseconds(1050));
  EXPECT_EQ(b.step(), milliseconds(1050));
  EXPECT_EQ(b.step(), milliseconds(1050));
}

class TokenBucketTest : public ::testing::Test {
 protected:
  std::shared_ptr<SimulatedTimeSource> sim = std::make_shared<SimulatedTimeSource>();
};

TEST_F(TokenBucketTest, StartsFullAndRefills) {
  TokenBucket b(sim, 1, 3);
  EXPECT_TRUE(b.tryTake());
  EXPECT_TRUE(b.tryTake());
  EXPECT_TRUE(b.tryTake());
  EXPECT_FALSE(b.tryTake());
  sim->advance(milliseconds(999));
  EXPECT_FALSE(b.tryTake());
  sim->advance(milliseconds(1));
  EXPECT_TRUE(b.tryTake());
  EXPECT_FALSE(b.tryTake());
  sim->advance(seconds(100));
  EXPECT_DOUBLE_EQ(b.tokens(), 3);  // capped at burst
  EXPECT_FALSE(b.tryTake(4));
  EXPECT_TRUE(b.tryTake(3));
}

TEST_F(TokenBucketTest, ReserveReturnsWaitLikeXTimeRate) {
  TokenBucket b(sim, 10, 100);
  for (int i = 0; i < 100; ++i) ASSERT_EQ(b.reserve(), Duration::zero()) << i;
  EXPECT_EQ(b.reserve(), milliseconds(100));
  EXPECT_EQ(b.reserve(), milliseconds(200));
  EXPECT_EQ(b.reserve(), milliseconds(300));
  EXPECT_DOUBLE_EQ(b.tokens(), -3);
  sim->advance(milliseconds(100));
  EXPECT_EQ(b.reserve(), milliseconds(300));  // -2 + (-1)
  EXPECT_FALSE(b.tryTake());
  sim->advance(seconds(1));  // -3 + 10 = 7
  EXPECT_EQ(b.reserve(), Duration::zero());
  EXPECT_NEAR(b.tokens(), 6, 1e-9);
}

TEST_F(TokenBucketTest, ReserveMoreThanBurstOrZeroRate) {
  TokenBucket b(sim, 10, 5);
  EXPECT_EQ(b.reserve(6), Duration::max());
  EXPECT_DOUBLE_EQ(b.tokens(), 5);  // nothing taken
  TokenBucket z(sim, 0, 2);
  EXPECT_EQ(z.reserve(), Duration::zero());
  EXPECT_EQ(z.reserve(), Duration::zero());
  EXPECT_EQ(z.reserve(), Duration::max());
  sim->advance(hours(10));
  EXPECT_FALSE(z.tryTake());
}

TEST_F(TokenBucketTest, InfiniteRateAllowsAll) {
  TokenBucket b(sim, std::numeric_limits<double>::infinity(), 0);
  for (int i = 0; i < 1000; ++i) {
    EXPECT_TRUE(b.tryTake());
    EXPECT_EQ(b.reserve(), Duration::zero());
  }
}

TEST_F(TokenBucketTest, ThreadSafeTryTake) {
  TokenBucket b(sim, 0, 1000);
  std::atomic<int> taken{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t) {
    ts.emplace_back([&] {
      for (int i = 0; i < 500; ++i) {
        if (b.tryTake()) taken.fetch_add(1);
      }
    });
  }
  for (auto& t : ts) t.join();
  EXPECT_EQ(taken.load(), 1000);
}

TEST_F(TokenBucketTest, RejectsBadParameters) {
  EXPECT_THROW(TokenBucket(sim, -1, 1), std::invalid_argument);
  EXPECT_THROW(TokenBucket(sim, 1, -1), std::invalid_argument);
  EXPECT_THROW(TokenBucket(nullptr, 1, 1), std::invalid_argument);
}

}  // namespace
}  // namespace waterline
