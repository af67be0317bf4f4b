#include <gtest/gtest.h>

#include <future>
#include <thread>

#include "test_util.h"
#include "waterline/workqueue/queue.h"

namespace waterline::workqueue {
namespace {

using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::seconds;
using testing::eventually;

class DelayingQueueTest : public ::testing::Test {
 protected:
  std::shared_ptr<SimulatedTimeSource> sim = std::make_shared<SimulatedTimeSource>();
  Queue q{QueueOptions{.name = "test", .clock = sim}};
};

TEST_F(DelayingQueueTest, ItemAppearsWhenDue) {
  q.addAfter("a", seconds(5));
  EXPECT_FALSE(q.tryGet());
  EXPECT_EQ(q.len(), 0u);
  EXPECT_EQ(q.waitingLen(), 1u);
  EXPECT_EQ(q.nextReadyAt(), sim->monotonicTime() + seconds(5));
  sim->advance(milliseconds(4999));
  EXPECT_FALSE(q.tryGet());
  sim->advance(milliseconds(1));
  EXPECT_EQ(q.len(), 1u);
  EXPECT_EQ(q.waitingLen(), 0u);
  EXPECT_EQ(*q.tryGet(), "a");
  EXPECT_FALSE(q.nextReadyAt());
}

TEST_F(DelayingQueueTest, NonPositiveDelayAddsNow) {
  q.addAfter("a", Duration::zero());
  q.addAfter("b", -seconds(1));
  EXPECT_EQ(q.tryGet(), "a");
  EXPECT_EQ(q.tryGet(), "b");
}

TEST_F(DelayingQueueTest, DedupKeepsEarliestReadyTime) {
  q.addAfter("a", seconds(10));
  q.addAfter("a", seconds(5));  // earlier: replaces
  q.addAfter("a", seconds(8));  // later: ignored
  EXPECT_EQ(q.waitingLen(), 1u);
  sim->advance(seconds(5));
  EXPECT_EQ(q.tryGet(), "a");
  q.done("a");
  sim->advance(seconds(10));
  EXPECT_EQ(q.tryGet(), std::nullopt);  // the 10s and 8s entries are gone
  EXPECT_EQ(q.waitingLen(), 0u);
}

TEST_F(DelayingQueueTest, DueItemsComeOutInReadyOrder) {
  q.addAfter("c", seconds(3));
  q.addAfter("a", seconds(1));
  q.addAfter("b", seconds(2));
  q.addAfter("a2", seconds(1));  // same time as "a": insertion order
  sim->advance(seconds(3));
  EXPECT_EQ(q.tryGet(), "a");
  EXPECT_EQ(q.tryGet(), "a2");
  EXPECT_EQ(q.tryGet(), "b");
  EXPECT_EQ(q.tryGet(), "c");
  EXPECT_EQ(q.tryGet(), std::nullopt);
}

TEST_F(DelayingQueueTest, DueWhileProcessingRunsAgainAfterDone) {
  q.add("a");
  ASSERT_EQ(q.tryGet(), "a");
  q.addAfter("a", seconds(1));
  sim->advance(seconds(1));
  EXPECT_EQ(q.tryGet(), std::nullopt);  // still in flight
  q.done("a");
  EXPECT_EQ(q.tryGet(), "a");
}

TEST_F(DelayingQueueTest, DoneBeforeDueDoesNotRequeue) {
  q.add("a");
  ASSERT_EQ(q.tryGet(), "a");
  q.addAfter("a", seconds(1));
  q.done("a");
  EXPECT_EQ(q.tryGet(), std::nullopt);
  sim->advance(seconds(1));
  EXPECT_EQ(q.tryGet(), "a");
}

TEST_F(DelayingQueueTest, AddOfWaitingKeyQueuesNowAndKeepsTheDelayedEntry) {
  q.addAfter("a", seconds(5));
  q.add("a");
  ASSERT_EQ(q.tryGet(), "a");
  q.done("a");
  EXPECT_EQ(q.waitingLen(), 1u);
  sim->advance(seconds(5));
  EXPECT_EQ(q.tryGet(), "a");  // as client-go: the delayed add still fires
}

TEST_F(DelayingQueueTest, DueItemStillDedupsAgainstQueued) {
  q.addAfter("a", seconds(1));
  q.add("a");
  sim->advance(seconds(1));
  EXPECT_EQ(q.len(), 1u);
  EXPECT_EQ(q.tryGet(), "a");
  EXPECT_EQ(q.tryGet(), std::nullopt);
}

TEST_F(DelayingQueueTest, BlockedGetWakesOnSimulatedAdvance) {
  q.addAfter("a", seconds(30));
  auto got = std::async(std::launch::async, [&] { return q.get(); });
  sim->advance(seconds(30));  // before or after get() starts waiting: either way it sees "a"
  ASSERT_EQ(got.wait_for(seconds(60)), std::future_status::ready);
  EXPECT_EQ(got.get(), "a");
}

TEST_F(DelayingQueueTest, ShutDownDropsDelayedItemsAndIgnoresNewOnes) {
  q.addAfter("a", seconds(1));
  q.shutDown();
  q.addAfter("b", seconds(1));
  q.addAfter("c", Duration::zero());
  sim->advance(seconds(2));
  EXPECT_EQ(q.waitingLen(), 0u);
  EXPECT_EQ(q.get(), std::nullopt);
}

TEST_F(DelayingQueueTest, HugeDelaysDoNotOverflow) {
  q.addAfter("a", Duration::max());
  EXPECT_EQ(q.waitingLen(), 1u);
  sim->advance(hours(24 * 365));
  EXPECT_EQ(q.tryGet(), std::nullopt);
}

TEST(DelayingQueueRealTime, ItemArrivesAfterItsDelay) {
  Queue q;
  const auto start = std::chrono::steady_clock::now();
  q.addAfter("a", milliseconds(20));
  auto got = q.get();
  EXPECT_EQ(got, "a");
  EXPECT_GE(std::chrono::steady_clock::now() - start, milliseconds(20));
}

TEST(DelayingQueueRealTime, EarlierItemWakesAGetWaitingForALaterOne) {
  Queue q;
  q.addAfter("late", hours(1));
  auto got = std::async(std::launch::async, [&] { return q.get(); });
  // Give get() a chance to start waiting for the 1h deadline (not required for the test
  // to pass: if it has not, it simply sees the earlier item when it starts).
  std::this_thread::sleep_for(milliseconds(5));
  q.addAfter("early", milliseconds(10));
  ASSERT_EQ(got.wait_for(seconds(60)), std::future_status::ready);
  EXPECT_EQ(got.get(), "early");
  q.shutDown();
}

}  // namespace
}  // namespace waterline::workqueue
