#include "waterline/workqueue/rate_limiting_queue.h"

namespace waterline::workqueue {

RateLimitingQueue::RateLimitingQueue(RateLimiterPtr limiter, QueueOptions opts)
    : queue_(std::move(opts)),
      limiter_(limiter ? std::move(limiter) : defaultControllerRateLimiter(queue_.clock())) {}

void RateLimitingQueue::addRateLimited(const std::string& key) {
  queue_.addAfter(key, limiter_->when(key));
}

}  // namespace waterline::workqueue
