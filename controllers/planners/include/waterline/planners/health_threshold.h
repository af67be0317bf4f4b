#pragma once
// Envoy-style health-check thresholds (active health checking, "unhealthy_threshold" /
// "healthy_threshold"): a target turns unhealthy only after `failureThreshold`
// consecutive failed probes and healthy again only after `successThreshold` consecutive
// successes; a single result against the current state resets the opposite streak, so
// an alternating target never flaps. A new target starts healthy (as a worker that just
// became Ready) unless `startHealthy` is false. Pure and not thread-safe; the prober
// keeps one per worker and enqueues the deployment when observe() reports a transition.
#include <cstdint>

namespace waterline::planners {

class HealthThreshold {
 public:
  HealthThreshold(int32_t failureThreshold, int32_t successThreshold, bool startHealthy = true);

  enum class Transition { None, BecameUnhealthy, BecameHealthy };
  // Feeds one probe result; returns the transition it caused, if any.
  Transition observe(bool success);

  bool healthy() const { return healthy_; }
  int32_t consecutiveFailures() const { return failures_; }
  int32_t consecutiveSuccesses() const { return successes_; }

 private:
  int32_t failureThreshold_;
  int32_t successThreshold_;
  bool healthy_;
  int32_t failures_ = 0;
  int32_t successes_ = 0;
};

}  // namespace waterline::planners
