#pragma once
// client-go's RateLimitingInterface: a delaying queue plus a RateLimiter, the queue
// controllers use. Requeue rules (controller-runtime): on error addRateLimited(key);
// on RequeueAfter forget(key) then addAfter(key, d); on success forget(key).
#include <memory>
#include <string>

#include "waterline/workqueue/queue.h"
#include "waterline/workqueue/rate_limiter.h"

namespace waterline::workqueue {

class RateLimitingInterface : public DelayingInterface {
 public:
  // addAfter(key, rateLimiter.when(key)).
  virtual void addRateLimited(const std::string& key) = 0;
  // The key succeeded: reset its backoff. Does not remove it from the queue.
  virtual void forget(const std::string& key) = 0;
  virtual int numRequeues(const std::string& key) = 0;
};

class RateLimitingQueue final : public RateLimitingInterface {
 public:
  // A null limiter means defaultControllerRateLimiter(opts.clock).
  explicit RateLimitingQueue(RateLimiterPtr limiter = nullptr, QueueOptions opts = {});

  void addRateLimited(const std::string& key) override;
  void forget(const std::string& key) override { limiter_->forget(key); }
  int numRequeues(const std::string& key) override { return limiter_->numRequeues(key); }

  void addAfter(const std::string& key, Duration d) override { queue_.addAfter(key, d); }
  void add(const std::string& key) override { queue_.add(key); }
  std::size_t len() override { return queue_.len(); }
  std::optional<std::string> get() override { return queue_.get(); }
  std::optional<std::string> tryGet() override { return queue_.tryGet(); }
  void done(const std::string& key) override { queue_.done(key); }
  void shutDown() override { queue_.shutDown(); }
  void shutDownWithDrain() override { queue_.shutDownWithDrain(); }
  bool shuttingDown() const override { return queue_.shuttingDown(); }

  Queue& queue() { return queue_; }
  RateLimiter& rateLimiter() { return *limiter_; }

 private:
  Queue queue_;
  RateLimiterPtr limiter_;
};

}  // namespace waterline::workqueue
