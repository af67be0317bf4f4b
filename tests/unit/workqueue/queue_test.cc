#include "waterline/workqueue/queue.h"

#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <future>
#include <random>
#include <thread>
#include <vector>

#include "test_util.h"

namespace waterline::workqueue {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using testing::eventually;

TEST(Queue, FifoAndDedup) {
  Queue q;
  q.add("a");
  q.add("b");
  q.add("a");  // already dirty
  q.add("c");
  EXPECT_EQ(q.len(), 3u);
  EXPECT_EQ(q.tryGet(), "a");
  EXPECT_EQ(q.tryGet(), "b");
  EXPECT_EQ(q.tryGet(), "c");
  EXPECT_EQ(q.tryGet(), std::nullopt);
  EXPECT_EQ(q.processingLen(), 3u);
  q.done("a");
  q.done("b");
  q.done("c");
  EXPECT_EQ(q.len(), 0u);
  EXPECT_EQ(q.processingLen(), 0u);
}

TEST(Queue, AddWhileProcessingRequeuesOnDone) {
  Queue q;
  q.add("a");
  ASSERT_EQ(q.tryGet(), "a");
  q.add("a");  // in flight: only marked dirty
  q.add("a");  // still one pending re-run
  EXPECT_EQ(q.len(), 0u);
  EXPECT_EQ(q.tryGet(), std::nullopt);  // never handed out twice at once
  q.done("a");
  EXPECT_EQ(q.len(), 1u);
  ASSERT_EQ(q.tryGet(), "a");
  q.done("a");
  EXPECT_EQ(q.len(), 0u);
  EXPECT_EQ(q.tryGet(), std::nullopt);
}

TEST(Queue, AddAfterGetIsProcessedAgainEvenIfAddedBeforeDone) {
  Queue q;
  q.add("a");
  q.add("b");
  ASSERT_EQ(q.tryGet(), "a");
  q.add("a");
  ASSERT_EQ(q.tryGet(), "b");  // "a" is not behind "b" until done
  q.done("b");
  EXPECT_EQ(q.tryGet(), std::nullopt);
  q.done("a");
  EXPECT_EQ(q.tryGet(), "a");
}

TEST(Queue, DoneOfUnknownKeyIsHarmless) {
  Queue q;
  q.done("ghost");
  q.add("a");
  q.done("a");  // done before get: "a" stays queued once (not duplicated)
  EXPECT_EQ(q.len(), 1u);
  EXPECT_EQ(q.tryGet(), "a");
  EXPECT_EQ(q.tryGet(), std::nullopt);
  EXPECT_EQ(q.processingLen(), 1u);
}

TEST(Queue, ShutDownStopsAddsButHandsOutQueuedItems) {
  Queue q;
  q.add("a");
  q.add("b");
  q.shutDown();
  EXPECT_TRUE(q.shuttingDown());
  q.add("c");
  EXPECT_EQ(q.len(), 2u);
  EXPECT_EQ(q.get(), "a");
  EXPECT_EQ(q.get(), "b");
  EXPECT_EQ(q.get(), std::nullopt);
  EXPECT_EQ(q.tryGet(), std::nullopt);
  q.done("a");
  q.done("b");
}

TEST(Queue, GetBlocksUntilAdd) {
  Queue q;
  auto got = std::async(std::launch::async, [&] { return q.get(); });
  EXPECT_EQ(got.wait_for(milliseconds(20)), std::future_status::timeout);
  q.add("x");
  ASSERT_EQ(got.wait_for(seconds(60)), std::future_status::ready);
  EXPECT_EQ(got.get(), "x");
}

TEST(Queue, ShutDownUnblocksEveryGet) {
  Queue q;
  std::vector<std::future<std::optional<std::string>>> getters;
  for (int i = 0; i < 4; ++i) getters.push_back(std::async(std::launch::async, [&] { return q.get(); }));
  q.shutDown();
  for (auto& g : getters) {
    ASSERT_EQ(g.wait_for(seconds(60)), std::future_status::ready);
    EXPECT_EQ(g.get(), std::nullopt);
  }
}

TEST(Queue, ShutDownWithDrainWaitsForInFlight) {
  Queue q;
  q.add("a");
  q.add("b");
  ASSERT_EQ(q.tryGet(), "a");
  ASSERT_EQ(q.tryGet(), "b");
  q.add("a");  // dirty while in flight: re-run before the drain ends
  std::atomic<bool> drained{false};
  std::thread drainer([&] {
    q.shutDownWithDrain();
    drained = true;
  });
  ASSERT_TRUE(eventually([&] { return q.shuttingDown(); }));
  q.add("c");  // ignored
  std::this_thread::sleep_for(milliseconds(10));
  EXPECT_FALSE(drained.load());
  q.done("b");
  std::this_thread::sleep_for(milliseconds(10));
  EXPECT_FALSE(drained.load());  // "a" still in flight
  q.done("a");                   // re-queued because it was dirty
  EXPECT_EQ(q.len(), 1u);
  ASSERT_EQ(q.get(), "a");
  q.done("a");
  drainer.join();
  EXPECT_TRUE(drained.load());
  EXPECT_EQ(q.get(), std::nullopt);
}

TEST(Queue, ShutDownWithDrainReturnsAtOnceWhenIdle) {
  Queue q;
  q.add("queued-but-not-in-flight");
  q.shutDownWithDrain();
  EXPECT_TRUE(q.shuttingDown());
}

TEST(Queue, ShutDownEndsADrain) {
  Queue q;
  q.add("a");
  ASSERT_EQ(q.tryGet(), "a");
  auto drain = std::async(std::launch::async, [&] { q.shutDownWithDrain(); });
  ASSERT_TRUE(eventually([&] { return q.shuttingDown(); }));
  q.shutDown();
  EXPECT_EQ(drain.wait_for(seconds(60)), std::future_status::ready);
  q.done("a");
}

// N workers, producers adding random keys: no key is ever processed by two workers at
// once, and every key's last processing started after its last add.
void runConcurrencyTest(bool delayed) {
  constexpr int kKeys = 16, kWorkers = 6, kProducers = 3, kAddsPerProducer = 3000;
  Queue q;
  auto key = [](int i) { return "ns/key-" + std::to_string(i); };
  auto index = [](const std::string& k) { return std::stoi(k.substr(7)); };
  std::array<std::atomic<int>, kKeys> inFlight{}, added{}, seen{};
  std::atomic<int> overlaps{0}, processed{0};

  std::vector<std::thread> workers;
  for (int w = 0; w < kWorkers; ++w) {
    workers.emplace_back([&] {
      while (auto k = q.get()) {
        const int i = index(*k);
        if (inFlight[i].fetch_add(1) != 0) overlaps.fetch_add(1);
        const int snapshot = added[i].load();
        if (snapshot > seen[i].load()) seen[i].store(snapshot);
        std::this_thread::yield();
        inFlight[i].fetch_sub(1);
        processed.fetch_add(1);
        q.done(*k);
      }
    });
  }
  std::vector<std::thread> producers;
  for (int p = 0; p < kProducers; ++p) {
    producers.emplace_back([&, p] {
      std::mt19937 rng(p);
      for (int n = 0; n < kAddsPerProducer; ++n) {
        const int i = static_cast<int>(rng() % kKeys);
        added[i].fetch_add(1);
        if (delayed && n % 3 == 0) {
          q.addAfter(key(i), std::chrono::microseconds(rng() % 500));
        } else {
          q.add(key(i));
        }
        if (n % 64 == 0) std::this_thread::yield();
      }
    });
  }
  for (auto& t : producers) t.join();
  ASSERT_TRUE(eventually([&] { return q.waitingLen() == 0; }));  // delayed adds have landed
  q.shutDown();  // workers still drain what is queued, then get() returns nullopt
  for (auto& t : workers) t.join();

  EXPECT_EQ(overlaps.load(), 0);
  for (int i = 0; i < kKeys; ++i) {
    EXPECT_EQ(seen[i].load(), added[i].load()) << key(i);
    EXPECT_EQ(inFlight[i].load(), 0);
  }
  EXPECT_GE(processed.load(), kKeys);
  EXPECT_LE(processed.load(), kProducers * kAddsPerProducer);
  EXPECT_EQ(q.len(), 0u);
  EXPECT_EQ(q.processingLen(), 0u);
}

TEST(QueueConcurrency, NoKeyInTwoWorkersAndEveryAddIsSeen) { runConcurrencyTest(false); }
TEST(QueueConcurrency, WithDelayedAddsOnRealTime) { runConcurrencyTest(true); }

}  // namespace
}  // namespace waterline::workqueue
