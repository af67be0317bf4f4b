#include "waterline/planners/repair.h"

#include <algorithm>

namespace waterline::planners {

bool workerCaused(std::string_view reason) {
  return reason == repair_reasons::kWorkerFailed || reason == repair_reasons::kProbeFailed;
}

int RepairBackoff::failures(const std::string& key, SystemTime now) const {
  auto it = state_.find(key);
  if (it == state_.end() || now - it->second.last >= policy_.reset) return 0;
  return it->second.failures;
}

std::optional<SystemTime> RepairBackoff::holdUntil(const std::string& key, SystemTime now) const {
  const int n = failures(key, now);
  if (n == 0) return std::nullopt;
  Duration wait = policy_.initial;
  for (int i = 1; i < n && wait < policy_.max; ++i) wait *= 2;
  wait = std::min(wait, policy_.max);
  const SystemTime until = state_.at(key).last + wait;
  if (until <= now) return std::nullopt;
  return until;
}

void RepairBackoff::record(const std::string& key, SystemTime now) {
  State& s = state_[key];
  if (s.failures > 0 && now - s.last >= policy_.reset) s.failures = 0;
  ++s.failures;
  s.last = now;
}

}  // namespace waterline::planners
