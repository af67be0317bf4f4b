#include "waterline/planners/health_threshold.h"

#include <algorithm>

namespace waterline::planners {

HealthThreshold::HealthThreshold(int32_t failureThreshold, int32_t successThreshold, bool startHealthy)
    : failureThreshold_(std::max<int32_t>(1, failureThreshold)),
      successThreshold_(std::max<int32_t>(1, successThreshold)),
      healthy_(startHealthy) {}

HealthThreshold::Transition HealthThreshold::observe(bool success) {
  if (success) {
    failures_ = 0;
    if (successes_ < successThreshold_) ++successes_;
    if (!healthy_ && successes_ >= successThreshold_) {
      healthy_ = true;
      return Transition::BecameHealthy;
    }
  } else {
    successes_ = 0;
    if (failures_ < failureThreshold_) ++failures_;
    if (healthy_ && failures_ >= failureThreshold_) {
      healthy_ = false;
      return Transition::BecameUnhealthy;
    }
  }
  return Transition::None;
}

}  // namespace waterline::planners
