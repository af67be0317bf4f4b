#pragma once
// Injectable clock, after Envoy's TimeSource. Everything that waits, backs off or
// schedules (workqueue delays, requeueAfter, lease timing, autoscaler windows) reads
// time through a TimeSource so that tests drive it with SimulatedTimeSource instead
// of sleeping.
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>

namespace waterline {

using MonotonicTime = std::chrono::steady_clock::time_point;
using SystemTime = std::chrono::system_clock::time_point;
using Duration = std::chrono::nanoseconds;

class TimeSource {
 public:
  virtual ~TimeSource() = default;
  virtual SystemTime systemTime() const = 0;
  virtual MonotonicTime monotonicTime() const = 0;

  // Waits on `cv` (whose mutex `lk` holds) until `pred()` is true or the monotonic
  // `deadline` has passed on this time source. Returns pred(). A simulated source
  // wakes such waiters when it is advanced.
  virtual bool waitUntil(std::unique_lock<std::mutex>& lk, std::condition_variable& cv,
                         MonotonicTime deadline, const std::function<bool()>& pred) = 0;

  // Sleeps for `d` of this source's time.
  virtual void sleepFor(Duration d) = 0;
};

using TimeSourcePtr = std::shared_ptr<TimeSource>;

class RealTimeSource final : public TimeSource {
 public:
  SystemTime systemTime() const override { return std::chrono::system_clock::now(); }
  MonotonicTime monotonicTime() const override { return std::chrono::steady_clock::now(); }
  bool waitUntil(std::unique_lock<std::mutex>& lk, std::condition_variable& cv,
                 MonotonicTime deadline, const std::function<bool()>& pred) override;
  void sleepFor(Duration d) override;

  // The process-wide real clock.
  static TimeSourcePtr instance();
};

// A clock that moves only when advanced. Waiters re-check their predicate every
// millisecond of real time (so a missed notification can never hang a test) and are
// also notified on every advance.
class SimulatedTimeSource final : public TimeSource {
 public:
  explicit SimulatedTimeSource(SystemTime start = SystemTime{std::chrono::hours(24 * 365 * 56)});
  SystemTime systemTime() const override;
  MonotonicTime monotonicTime() const override;
  bool waitUntil(std::unique_lock<std::mutex>& lk, std::condition_variable& cv,
                 MonotonicTime deadline, const std::function<bool()>& pred) override;
  void sleepFor(Duration d) override;

  void advance(Duration d);
  void setMonotonic(MonotonicTime t);

 private:
  mutable std::mutex mu_;
  std::condition_variable advanced_;
  SystemTime system_;
  MonotonicTime monotonic_;
};

}  // namespace waterline
