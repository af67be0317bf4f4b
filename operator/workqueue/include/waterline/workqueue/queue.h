#pragma once
// client-go's workqueue (util/workqueue/queue.go, delaying_queue.go) for string keys
// ("namespace/name").
//
// Guarantees (the reason controllers use this instead of a plain channel):
//   - A key is in the queue at most once: add() of a key that is already waiting to
//     be processed (dirty) is a no-op.
//   - A key is never handed to two workers at once: while a key is being processed
//     (between get() and done()) an add() only marks it dirty; done() re-queues it.
//   - So every add() that happens after a get() of that key leads to another get().
//
// Usage by a worker:
//   while (auto key = q.get()) {      // blocks; nullopt once shut down and empty
//     reconcile(*key);
//     q.done(*key);                   // always, exactly once per get()
//   }
//
// Time (delayed adds, metrics) is read from the injected TimeSource. Items whose delay
// has elapsed are moved into the queue by whichever call comes first (get() waiting
// for the earliest ready time, tryGet(), len(), add(), addAfter(), done()), so with a
// SimulatedTimeSource tests need no sleeps and no background thread:
//   q.addAfter("a", 5s); EXPECT_FALSE(q.tryGet()); sim->advance(5s); EXPECT_EQ(*q.tryGet(), "a");
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <unordered_set>

#include "waterline/common/time.h"
#include "waterline/workqueue/metrics.h"

namespace waterline::workqueue {

// client-go's workqueue.Interface.
class Interface {
 public:
  virtual ~Interface() = default;

  // Queues `key` unless it is already dirty; ignored after shutDown().
  virtual void add(const std::string& key) = 0;
  // Ready items (not counting delayed ones that are not yet due, nor ones in flight).
  virtual std::size_t len() = 0;
  // Blocks until a key is ready or the queue is shut down. Keys still queued at
  // shutdown are still handed out; nullopt means shut down and empty. The caller must
  // call done(key) when finished.
  virtual std::optional<std::string> get() = 0;
  // get() without blocking: nullopt when nothing is ready (or shut down and empty).
  virtual std::optional<std::string> tryGet() = 0;
  // Marks `key` finished; re-queues it if it was added while in flight. A key that is
  // not in flight is ignored.
  virtual void done(const std::string& key) = 0;
  // Stops accepting adds and wakes every get(); delayed items are dropped.
  virtual void shutDown() = 0;
  // shutDown(), then blocks until every key in flight is done() (a concurrent
  // shutDown() ends the wait).
  virtual void shutDownWithDrain() = 0;
  virtual bool shuttingDown() const = 0;
};

// client-go's DelayingInterface.
class DelayingInterface : public Interface {
 public:
  // add(key) once `d` has passed on the queue's clock; d <= 0 adds now. While a key
  // waits, a second addAfter keeps the earlier ready time. An add() of a waiting key
  // queues it now and leaves the delayed entry in place (as client-go).
  virtual void addAfter(const std::string& key, Duration d) = 0;
};

struct QueueOptions {
  // Names the queue in metrics (label `name`) and logs.
  std::string name{};
  // Defaults to RealTimeSource::instance().
  TimeSourcePtr clock{};
  // Metrics are recorded only with a provider and a non-empty name.
  MetricsProviderPtr metrics{};
};

// The basic queue plus delayed adds. A Queue on which addAfter() is never called is
// exactly client-go's basic queue. Thread-safe.
class Queue final : public DelayingInterface {
 public:
  explicit Queue(QueueOptions opts = {});
  // Shuts the queue down. No thread may still be inside a call.
  ~Queue() override;
  Queue(const Queue&) = delete;
  Queue& operator=(const Queue&) = delete;

  void add(const std::string& key) override;
  void addAfter(const std::string& key, Duration d) override;
  std::size_t len() override;
  std::optional<std::string> get() override;
  std::optional<std::string> tryGet() override;
  void done(const std::string& key) override;
  void shutDown() override;
  void shutDownWithDrain() override;
  bool shuttingDown() const override;

  // Delayed items not yet due.
  std::size_t waitingLen();
  // Keys between get() and done().
  std::size_t processingLen() const;
  // When the earliest delayed item becomes due, if any.
  std::optional<MonotonicTime> nextReadyAt() const;

  const std::string& name() const { return name_; }
  const TimeSourcePtr& clock() const { return clock_; }

 private:
  struct Waiting {
    MonotonicTime readyAt;
    std::uint64_t seq;
    std::string key;
    bool operator<(const Waiting& o) const {
      return readyAt != o.readyAt ? readyAt < o.readyAt : seq < o.seq;
    }
  };

  void addLocked(const std::string& key, MonotonicTime addedAt);
  void promoteDueLocked(MonotonicTime now);
  std::string popLocked(MonotonicTime now);
  QueueStats statsForMetrics();

  const std::string name_;
  const TimeSourcePtr clock_;

  mutable std::mutex mu_;
  std::condition_variable cv_;       // an item is ready, shutdown, or a new earliest delay
  std::condition_variable drained_;  // processing became empty (or drain cancelled)

  std::deque<std::string> queue_;
  std::unordered_set<std::string> dirty_;
  std::unordered_set<std::string> processing_;

  std::set<Waiting> waiting_;
  std::unordered_map<std::string, std::set<Waiting>::iterator> waitingByKey_;
  std::uint64_t waitingSeq_ = 0;
  std::uint64_t waitGen_ = 0;  // bumped when the earliest ready time moves earlier

  bool shuttingDown_ = false;
  bool drain_ = false;

  // Metrics (only when attached).
  std::unordered_map<std::string, MonotonicTime> addTimes_;
  std::unordered_map<std::string, MonotonicTime> processingStart_;
  std::unique_ptr<MetricsProvider::QueueMetrics> metrics_;  // last member: detached first
};

}  // namespace waterline::workqueue
