#pragma once
// Repairs of ModelDeployment workers: why a worker is replaced, and the per-deployment
// backoff that keeps a crash-looping worker from being replaced in a hot loop.
//
// RepairBackoff is plain state driven by the caller's clock (TimeSource in the
// reconciler, a fixed time in tests): after the n-th worker-caused repair in a row the
// next one waits min(initial * 2^(n-1), max); a deployment without such a repair for
// `reset` starts again at zero. Only repairs caused by the worker itself (a Failed pod,
// an unhealthy health probe) count; node and GPU faults do not. Not thread-safe.
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "waterline/common/time.h"

namespace waterline::planners {

// Reasons of repairs: the `reason` label of waterline_repairs_total and the tail of the
// Event message (the Event reason is WorkerReplaced or WorkerMoved).
namespace repair_reasons {
inline constexpr std::string_view kWorkerFailed = "WorkerFailed";    // pod phase Failed
inline constexpr std::string_view kProbeFailed = "ProbeFailed";      // active health probe
inline constexpr std::string_view kNodeNotReady = "NodeNotReady";    // node Ready != True
inline constexpr std::string_view kNodeGone = "NodeGone";            // node deleted
inline constexpr std::string_view kNodeEvicting = "NodeEvicting";    // NoExecute taint
inline constexpr std::string_view kGpuUnhealthy = "GpuUnhealthy";    // GPU-fault taint / annotation
}  // namespace repair_reasons

// True for reasons caused by the worker itself (they count towards the backoff).
bool workerCaused(std::string_view reason);

struct RepairBackoffPolicy {
  Duration initial = std::chrono::seconds(10);
  Duration max = std::chrono::minutes(5);
  Duration reset = std::chrono::minutes(10);
};

class RepairBackoff {
 public:
  explicit RepairBackoff(RepairBackoffPolicy policy = {}) : policy_(policy) {}

  // When the next worker-caused repair of `key` may run; nullopt: now.
  std::optional<SystemTime> holdUntil(const std::string& key, SystemTime now) const;
  // A worker-caused repair of `key` ran at `now`.
  void record(const std::string& key, SystemTime now);
  // The deployment is gone.
  void forget(const std::string& key) { state_.erase(key); }
  // Consecutive repairs counted for `key` (0 after a reset).
  int failures(const std::string& key, SystemTime now) const;

  const RepairBackoffPolicy& policy() const { return policy_; }

 private:
  struct State {
    int failures = 0;
    SystemTime last{};
  };
  RepairBackoffPolicy policy_;
  std::map<std::string, State> state_;
};

}  // namespace waterline::planners
