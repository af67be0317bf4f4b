#pragma once
// Rate limiters for requeues (client-go util/workqueue/default_rate_limiters.go).
// All are thread-safe.
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "waterline/common/backoff.h"
#include "waterline/common/time.h"

namespace waterline::workqueue {

class RateLimiter {
 public:
  virtual ~RateLimiter() = default;
  // How long to wait before processing `key` again; records one more failure.
  virtual Duration when(const std::string& key) = 0;
  // Stop tracking `key` (it succeeded): its backoff starts over.
  virtual void forget(const std::string& key) = 0;
  // Failures recorded for `key` since the last forget().
  virtual int numRequeues(const std::string& key) = 0;
};

using RateLimiterPtr = std::shared_ptr<RateLimiter>;

// Per-key exponential backoff: base * 2^failures, capped (5ms, 10ms, 20ms, ... 1000s).
class ItemExponentialFailureRateLimiter final : public RateLimiter {
 public:
  explicit ItemExponentialFailureRateLimiter(Duration base = std::chrono::milliseconds(5),
                                             Duration cap = std::chrono::seconds(1000));
  Duration when(const std::string& key) override;
  void forget(const std::string& key) override;
  int numRequeues(const std::string& key) override;

 private:
  ExponentialBackoff backoff_;
  std::mutex mu_;
  std::unordered_map<std::string, int> failures_;
};

// `fast` for the first `maxFastAttempts` failures of a key, then `slow`.
class ItemFastSlowRateLimiter final : public RateLimiter {
 public:
  ItemFastSlowRateLimiter(Duration fast, Duration slow, int maxFastAttempts);
  Duration when(const std::string& key) override;
  void forget(const std::string& key) override;
  int numRequeues(const std::string& key) override;

 private:
  Duration fast_, slow_;
  int maxFast_;
  std::mutex mu_;
  std::unordered_map<std::string, int> failures_;
};

// One token bucket for all keys (overall retry rate): when() reserves a token and
// returns the wait. Keys are not tracked: forget() does nothing, numRequeues() is 0.
class BucketRateLimiter final : public RateLimiter {
 public:
  explicit BucketRateLimiter(TimeSourcePtr clock, double qps = 10, double burst = 100);
  Duration when(const std::string& key) override;
  void forget(const std::string&) override {}
  int numRequeues(const std::string&) override { return 0; }

  TokenBucket& bucket() { return bucket_; }

 private:
  TokenBucket bucket_;
};

// The longest delay of several limiters (each one's when() is called every time);
// numRequeues is the max, forget() forgets in all.
class MaxOfRateLimiter final : public RateLimiter {
 public:
  explicit MaxOfRateLimiter(std::vector<RateLimiterPtr> limiters);
  Duration when(const std::string& key) override;
  void forget(const std::string& key) override;
  int numRequeues(const std::string& key) override;

 private:
  std::vector<RateLimiterPtr> limiters_;
};

// client-go's DefaultControllerRateLimiter: max(per-key 5ms..1000s, 10 qps / 100 burst).
RateLimiterPtr defaultControllerRateLimiter(TimeSourcePtr clock = RealTimeSource::instance());

}  // namespace waterline::workqueue
