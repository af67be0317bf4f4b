#include "waterline/workqueue/queue.h"

#include <algorithm>

namespace waterline::workqueue {

namespace {

// Keeps now + d representable: delays longer than this are treated as this.
constexpr Duration kMaxDelay = std::chrono::hours(24 * 365 * 100);
// How long an idle get() waits before re-checking when nothing is delayed.
constexpr Duration kIdleWait = std::chrono::hours(1);

double secondsBetween(MonotonicTime from, MonotonicTime to) {
  if (to <= from) return 0;
  return std::chrono::duration<double>(to - from).count();
}

}  // namespace

Queue::Queue(QueueOptions opts)
    : name_(std::move(opts.name)),
      clock_(opts.clock ? std::move(opts.clock) : RealTimeSource::instance()) {
  if (opts.metrics && !name_.empty()) {
    metrics_ = opts.metrics->attach(name_, [this] { return statsForMetrics(); });
  }
}

Queue::~Queue() {
  metrics_.reset();  // no scrape reads this queue any more
  shutDown();
}

void Queue::addLocked(const std::string& key, MonotonicTime addedAt) {
  if (shuttingDown_) return;
  if (dirty_.contains(key)) return;
  dirty_.insert(key);
  if (metrics_) {
    metrics_->adds.inc();
    addTimes_.try_emplace(key, addedAt);
  }
  if (processing_.contains(key)) return;  // done() re-queues it
  queue_.push_back(key);
  cv_.notify_one();
}

void Queue::promoteDueLocked(MonotonicTime now) {
  while (!waiting_.empty() && waiting_.begin()->readyAt <= now) {
    auto node = waiting_.extract(waiting_.begin());
    waitingByKey_.erase(node.value().key);
    // Queue latency counts from when the item became due, not from its promotion.
    addLocked(node.value().key, node.value().readyAt);
  }
}

std::string Queue::popLocked(MonotonicTime now) {
  std::string key = std::move(queue_.front());
  queue_.pop_front();
  processing_.insert(key);
  dirty_.erase(key);
  if (metrics_) {
    if (auto it = addTimes_.find(key); it != addTimes_.end()) {
      metrics_->queueDuration.observe(secondsBetween(it->second, now));
      addTimes_.erase(it);
    }
    processingStart_[key] = now;
  }
  return key;
}

void Queue::add(const std::string& key) {
  std::lock_guard g(mu_);
  const MonotonicTime now = clock_->monotonicTime();
  promoteDueLocked(now);
  addLocked(key, now);
}

void Queue::addAfter(const std::string& key, Duration d) {
  std::lock_guard g(mu_);
  if (shuttingDown_) return;
  if (metrics_) metrics_->retries.inc();
  const MonotonicTime now = clock_->monotonicTime();
  promoteDueLocked(now);
  if (d <= Duration::zero()) {
    addLocked(key, now);
    return;
  }
  const MonotonicTime readyAt = now + std::min(d, kMaxDelay);
  if (auto it = waitingByKey_.find(key); it != waitingByKey_.end()) {
    if (it->second->readyAt <= readyAt) return;  // keep the earlier ready time
    waiting_.erase(it->second);
    waitingByKey_.erase(it);
  }
  auto [pos, inserted] = waiting_.insert(Waiting{readyAt, waitingSeq_++, key});
  waitingByKey_.emplace(key, pos);
  if (pos == waiting_.begin()) {
    // Blocked get()s wait for the old earliest time: have them re-plan.
    ++waitGen_;
    cv_.notify_all();
  }
}

std::size_t Queue::len() {
  std::lock_guard g(mu_);
  promoteDueLocked(clock_->monotonicTime());
  return queue_.size();
}

std::size_t Queue::waitingLen() {
  std::lock_guard g(mu_);
  promoteDueLocked(clock_->monotonicTime());
  return waiting_.size();
}

std::size_t Queue::processingLen() const {
  std::lock_guard g(mu_);
  return processing_.size();
}

std::optional<MonotonicTime> Queue::nextReadyAt() const {
  std::lock_guard g(mu_);
  if (waiting_.empty()) return std::nullopt;
  return waiting_.begin()->readyAt;
}

std::optional<std::string> Queue::get() {
  std::unique_lock lk(mu_);
  for (;;) {
    const MonotonicTime now = clock_->monotonicTime();
    promoteDueLocked(now);
    if (!queue_.empty()) return popLocked(now);
    if (shuttingDown_) return std::nullopt;
    const MonotonicTime deadline = waiting_.empty() ? now + kIdleWait : waiting_.begin()->readyAt;
    const std::uint64_t gen = waitGen_;
    clock_->waitUntil(lk, cv_, deadline,
                      [&] { return !queue_.empty() || shuttingDown_ || waitGen_ != gen; });
  }
}

std::optional<std::string> Queue::tryGet() {
  std::lock_guard g(mu_);
  const MonotonicTime now = clock_->monotonicTime();
  promoteDueLocked(now);
  if (queue_.empty()) return std::nullopt;
  return popLocked(now);
}

void Queue::done(const std::string& key) {
  std::lock_guard g(mu_);
  const MonotonicTime now = clock_->monotonicTime();
  promoteDueLocked(now);
  if (metrics_) {
    if (auto it = processingStart_.find(key); it != processingStart_.end()) {
      metrics_->workDuration.observe(secondsBetween(it->second, now));
      processingStart_.erase(it);
    }
  }
  // Unlike client-go, done() of a key that is not in flight changes nothing (client-go
  // would queue a dirty key a second time).
  if (processing_.erase(key) == 0) return;
  if (dirty_.contains(key)) {
    queue_.push_back(key);
    cv_.notify_one();
  } else if (processing_.empty()) {
    drained_.notify_all();
  }
}

void Queue::shutDown() {
  std::lock_guard g(mu_);
  shuttingDown_ = true;
  drain_ = false;
  waiting_.clear();
  waitingByKey_.clear();
  cv_.notify_all();
  drained_.notify_all();
}

void Queue::shutDownWithDrain() {
  std::unique_lock lk(mu_);
  shuttingDown_ = true;
  drain_ = true;
  waiting_.clear();
  waitingByKey_.clear();
  cv_.notify_all();
  drained_.wait(lk, [&] { return processing_.empty() || !drain_; });
}

bool Queue::shuttingDown() const {
  std::lock_guard g(mu_);
  return shuttingDown_;
}

QueueStats Queue::statsForMetrics() {
  std::lock_guard g(mu_);
  const MonotonicTime now = clock_->monotonicTime();
  promoteDueLocked(now);
  QueueStats s;
  s.depth = queue_.size();
  for (const auto& [key, start] : processingStart_) {
    const double age = secondsBetween(start, now);
    s.unfinishedWorkSeconds += age;
    s.longestRunningProcessorSeconds = std::max(s.longestRunningProcessorSeconds, age);
  }
  return s;
}

}  // namespace waterline::workqueue
