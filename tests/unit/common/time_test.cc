#include "waterline/common/time.h"

#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <thread>

namespace waterline {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

// Advances `sim` in steps until `done` is ready (so a waiter that has not started
// yet cannot miss the advance). The real-time bound only guards against a hang.
template <class F>
void advanceUntilReady(SimulatedTimeSource& sim, std::future<F>& done, Duration step) {
  const auto giveUp = std::chrono::steady_clock::now() + seconds(60);
  while (done.wait_for(milliseconds(1)) != std::future_status::ready) {
    ASSERT_LT(std::chrono::steady_clock::now(), giveUp) << "waiter never woke";
    sim.advance(step);
  }
}

TEST(SimulatedTimeSource, MovesOnlyWhenAdvanced) {
  SimulatedTimeSource sim;
  const auto m0 = sim.monotonicTime();
  const auto s0 = sim.systemTime();
  EXPECT_EQ(sim.monotonicTime(), m0);
  sim.advance(seconds(5));
  EXPECT_EQ(sim.monotonicTime() - m0, seconds(5));
  EXPECT_EQ(sim.systemTime() - s0, seconds(5));
  sim.setMonotonic(m0 + seconds(7));
  EXPECT_EQ(sim.monotonicTime() - m0, seconds(7));
  EXPECT_EQ(sim.systemTime() - s0, seconds(7));
  sim.setMonotonic(m0);  // never backwards
  EXPECT_EQ(sim.monotonicTime() - m0, seconds(7));
}

TEST(SimulatedTimeSource, SleepForReturnsAfterAdvance) {
  SimulatedTimeSource sim;
  auto done = std::async(std::launch::async, [&] {
    sim.sleepFor(seconds(30));
    return true;
  });
  advanceUntilReady(sim, done, seconds(1));
  EXPECT_TRUE(done.get());
}

TEST(SimulatedTimeSource, WaitUntilTimesOutOnSimulatedDeadline) {
  auto sim = std::make_shared<SimulatedTimeSource>();
  std::mutex mu;
  std::condition_variable cv;
  const auto deadline = sim->monotonicTime() + seconds(10);
  auto done = std::async(std::launch::async, [&] {
    std::unique_lock lk(mu);
    return sim->waitUntil(lk, cv, deadline, [] { return false; });
  });
  advanceUntilReady(*sim, done, seconds(1));
  EXPECT_FALSE(done.get());
  EXPECT_GE(sim->monotonicTime(), deadline);
}

TEST(SimulatedTimeSource, WaitUntilWakesOnPredicate) {
  SimulatedTimeSource sim;
  std::mutex mu;
  std::condition_variable cv;
  bool ready = false;
  auto done = std::async(std::launch::async, [&] {
    std::unique_lock lk(mu);
    return sim.waitUntil(lk, cv, sim.monotonicTime() + seconds(10), [&] { return ready; });
  });
  {
    std::lock_guard g(mu);
    ready = true;
  }
  cv.notify_all();
  EXPECT_TRUE(done.get());
}

TEST(RealTimeSource, WaitUntilDeadline) {
  auto rt = RealTimeSource::instance();
  EXPECT_EQ(rt, RealTimeSource::instance());
  std::mutex mu;
  std::condition_variable cv;
  std::unique_lock lk(mu);
  const auto start = rt->monotonicTime();
  EXPECT_FALSE(rt->waitUntil(lk, cv, start + milliseconds(5), [] { return false; }));
  EXPECT_GE(rt->monotonicTime() - start, milliseconds(5));
}

}  // namespace
}  // namespace waterline
