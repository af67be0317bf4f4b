#include "waterline/router/drain.h"

#include <algorithm>

namespace waterline::router {

const char* toString(DrainPhase p) {
  switch (p) {
    case DrainPhase::Serving: return "serving";
    case DrainPhase::Delay: return "delay";
    case DrainPhase::Draining: return "draining";
    case DrainPhase::Drained: return "drained";
    case DrainPhase::Cut: return "cut";
    case DrainPhase::Abort: return "abort";
  }
  return "unknown";
}

DrainState::DrainState(DrainOptions o) : opts_(o) {
  opts_.delay = std::max(opts_.delay, Duration::zero());
  opts_.grace = std::max(opts_.grace, opts_.delay);
}

DrainPhase DrainState::onSignal(MonotonicTime now, int signo) {
  if (phase_ == DrainPhase::Serving) {
    phase_ = DrainPhase::Delay;
    signalledAt_ = now;
  } else if (phase_ != DrainPhase::Abort) {
    phase_ = DrainPhase::Abort;
    abortSignal_ = signo;
  }
  return phase_;
}

DrainPhase DrainState::update(MonotonicTime now, std::int64_t openConnections) {
  if (phase_ == DrainPhase::Delay && now >= drainAt()) phase_ = DrainPhase::Draining;
  if (phase_ == DrainPhase::Draining) {
    if (openConnections <= 0) phase_ = DrainPhase::Drained;
    else if (now >= deadline()) phase_ = DrainPhase::Cut;
  }
  return phase_;
}

std::optional<MonotonicTime> DrainState::wakeAt() const {
  switch (phase_) {
    case DrainPhase::Delay: return drainAt();
    case DrainPhase::Draining: return deadline();
    default: return std::nullopt;
  }
}

int DrainState::exitCode() const {
  switch (phase_) {
    case DrainPhase::Drained: return 0;
    case DrainPhase::Cut: return 1;
    case DrainPhase::Abort: return 128 + abortSignal_;
    default: return -1;
  }
}

}  // namespace waterline::router
