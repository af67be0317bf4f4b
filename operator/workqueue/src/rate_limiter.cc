#include "waterline/workqueue/rate_limiter.h"

#include <algorithm>
#include <stdexcept>

namespace waterline::workqueue {

ItemExponentialFailureRateLimiter::ItemExponentialFailureRateLimiter(Duration base, Duration cap)
    : backoff_(base, cap, 2.0) {}

Duration ItemExponentialFailureRateLimiter::when(const std::string& key) {
  int attempt;
  {
    std::lock_guard g(mu_);
    attempt = failures_[key]++;
  }
  return backoff_.next(attempt);
}

void ItemExponentialFailureRateLimiter::forget(const std::string& key) {
  std::lock_guard g(mu_);
  failures_.erase(key);
}

int ItemExponentialFailureRateLimiter::numRequeues(const std::string& key) {
  std::lock_guard g(mu_);
  auto it = failures_.find(key);
  return it == failures_.end() ? 0 : it->second;
}

ItemFastSlowRateLimiter::ItemFastSlowRateLimiter(Duration fast, Duration slow, int maxFastAttempts)
    : fast_(fast), slow_(slow), maxFast_(maxFastAttempts) {}

Duration ItemFastSlowRateLimiter::when(const std::string& key) {
  std::lock_guard g(mu_);
  const int n = ++failures_[key];
  return n <= maxFast_ ? fast_ : slow_;
}

void ItemFastSlowRateLimiter::forget(const std::string& key) {
  std::lock_guard g(mu_);
  failures_.erase(key);
}

int ItemFastSlowRateLimiter::numRequeues(const std::string& key) {
  std::lock_guard g(mu_);
  auto it = failures_.find(key);
  return it == failures_.end() ? 0 : it->second;
}

BucketRateLimiter::BucketRateLimiter(TimeSourcePtr clock, double qps, double burst)
    : bucket_(std::move(clock), qps, burst) {}

Duration BucketRateLimiter::when(const std::string&) { return bucket_.reserve(); }

MaxOfRateLimiter::MaxOfRateLimiter(std::vector<RateLimiterPtr> limiters) : limiters_(std::move(limiters)) {
  for (const auto& l : limiters_) {
    if (!l) throw std::invalid_argument("MaxOfRateLimiter: null limiter");
  }
}

Duration MaxOfRateLimiter::when(const std::string& key) {
  Duration d = Duration::zero();
  for (const auto& l : limiters_) d = std::max(d, l->when(key));
  return d;
}

void MaxOfRateLimiter::forget(const std::string& key) {
  for (const auto& l : limiters_) l->forget(key);
}

int MaxOfRateLimiter::numRequeues(const std::string& key) {
  int n = 0;
  for (const auto& l : limiters_) n = std::max(n, l->numRequeues(key));
  return n;
}

RateLimiterPtr defaultControllerRateLimiter(TimeSourcePtr clock) {
  if (!clock) clock = RealTimeSource::instance();
  return std::make_shared<MaxOfRateLimiter>(std::vector<RateLimiterPtr>{
      std::make_shared<ItemExponentialFailureRateLimiter>(std::chrono::milliseconds(5),
                                                          std::chrono::seconds(1000)),
      std::make_shared<BucketRateLimiter>(std::move(clock), 10, 100),
  });
}

}  // namespace waterline::workqueue
