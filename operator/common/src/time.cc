#include "waterline/common/time.h"

#include <thread>

namespace waterline {

bool RealTimeSource::waitUntil(std::unique_lock<std::mutex>& lk, std::condition_variable& cv,
                               MonotonicTime deadline, const std::function<bool()>& pred) {
  return cv.wait_until(lk, deadline, pred);
}

void RealTimeSource::sleepFor(Duration d) { std::this_thread::sleep_for(d); }

TimeSourcePtr RealTimeSource::instance() {
  static TimeSourcePtr real = std::make_shared<RealTimeSource>();
  return real;
}

SimulatedTimeSource::SimulatedTimeSource(SystemTime start)
    : system_(start), monotonic_(MonotonicTime{std::chrono::hours(1)}) {}

SystemTime SimulatedTimeSource::systemTime() const {
  std::lock_guard g(mu_);
  return system_;
}

MonotonicTime SimulatedTimeSource::monotonicTime() const {
  std::lock_guard g(mu_);
  return monotonic_;
}

bool SimulatedTimeSource::waitUntil(std::unique_lock<std::mutex>& lk, std::condition_variable& cv,
                                    MonotonicTime deadline, const std::function<bool()>& pred) {
  while (!pred()) {
    if (monotonicTime() >= deadline) return pred();
    cv.wait_for(lk, std::chrono::milliseconds(1));
  }
  return true;
}

void SimulatedTimeSource::sleepFor(Duration d) {
  const MonotonicTime until = monotonicTime() + d;
  std::unique_lock lk(mu_);
  while (monotonic_ < until) advanced_.wait_for(lk, std::chrono::milliseconds(1));
}

void SimulatedTimeSource::advance(Duration d) {
  {
    std::lock_guard g(mu_);
    system_ += std::chrono::duration_cast<SystemTime::duration>(d);
    monotonic_ += d;
  }
  advanced_.notify_all();
}

void SimulatedTimeSource::setMonotonic(MonotonicTime t) {
  {
    std::lock_guard g(mu_);
    if (t > monotonic_) {
      system_ += std::chrono::duration_cast<SystemTime::duration>(t - monotonic_);
      monotonic_ = t;
    }
  }
  advanced_.notify_all();
}

}  // namespace waterline
