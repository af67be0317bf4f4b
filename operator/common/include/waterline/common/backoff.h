#pragma once
// Backoff and rate limits: pure exponential backoff (per-key requeue delays),
// client-go style stepping backoff (reconnect loops) and a token bucket over a
// TimeSource (client-side QPS limits, the workqueue's overall bucket).
#include <cstdint>
#include <functional>
#include <mutex>

#include "waterline/common/time.h"

namespace waterline {

// A source of uniform random numbers in [0, 1). Used for jitter; inject a fixed one
// in tests.
using RandomFn = std::function<double()>;

// A RandomFn over a seeded std::mt19937_64 (shared state, thread-safe). The same seed
// gives the same sequence.
RandomFn seededRandom(std::uint64_t seed);

// A RandomFn seeded from std::random_device, for production jitter.
RandomFn defaultRandom();

// Duration arithmetic that saturates instead of overflowing: d * f, clamped to
// [0, Duration::max()]. NaN gives Duration::max().
Duration scaleDuration(Duration d, double f);

// delay(attempt) = min(cap, base * factor^attempt), attempt counted from 0, then
// optionally jittered: d + d * jitter * rand() (so with jitter the result may exceed
// cap by up to the jitter fraction, as client-go's wait.Jitter does).
// next() is const and, without jitter, a pure function of `attempt`.
// Overflow (huge attempts, factor^attempt = inf) saturates at cap.
class ExponentialBackoff {
 public:
  ExponentialBackoff(Duration base, Duration cap, double factor = 2.0);

  // A copy that adds jitter: each next() adds up to `jitter` * delay, drawing from
  // `rand` (called once per next()). jitter <= 0 disables it.
  ExponentialBackoff withJitter(double jitter, RandomFn rand) const;
  ExponentialBackoff withJitter(double jitter, std::uint64_t seed) const {
    return withJitter(jitter, seededRandom(seed));
  }

  Duration next(int attempt) const;

  Duration base() const { return base_; }
  Duration cap() const { return cap_; }
  double factor() const { return factor_; }

 private:
  Duration base_;
  Duration cap_;
  double factor_;
  double jitter_ = 0;
  RandomFn rand_;
};

// client-go's wait.Backoff, for reconnect/retry loops. Stateful and NOT thread-safe:
// keep one per loop.
//   step(): returns the current duration (jittered), then multiplies it by factor;
//   when it would exceed cap it becomes cap and no further steps grow it. After
//   `steps` steps the duration stays fixed (still jittered).
class JitteredBackoff {
 public:
  struct Params {
    Duration duration{std::chrono::seconds(1)};  // first delay
    double factor = 2.0;                          // 0 or 1: constant
    double jitter = 0.0;                          // add up to jitter * delay
    int steps = 10;                               // growth steps before it stays fixed
    Duration cap{0};                              // 0: no cap
  };

  explicit JitteredBackoff(Params p, RandomFn rand = {});

  Duration step();
  // Back to the first delay (e.g. after a successful connection).
  void reset();

  // The un-jittered delay the next step() starts from.
  Duration current() const { return duration_; }
  int stepsLeft() const { return steps_; }
  const Params& params() const { return params_; }

 private:
  Duration jitter(Duration d);

  Params params_;
  RandomFn rand_;
  Duration duration_;
  int steps_;
};

// A token bucket (golang.org/x/time/rate): tokens refill at `ratePerSecond` up to
// `burst`; the bucket starts full. Thread-safe; time comes from the TimeSource so
// tests drive it with SimulatedTimeSource.
//   tryTake(n): take n tokens now if there are n; else take nothing, return false.
//   reserve(n): take n tokens now, going into debt if needed, and return how long the
//               caller must wait before acting (0 when tokens were available).
//               Returns Duration::max() (and takes nothing) when n > burst or the
//               rate is zero and there are not enough tokens.
// A rate of +infinity allows everything.
class TokenBucket {
 public:
  TokenBucket(TimeSourcePtr clock, double ratePerSecond, double burst);

  bool tryTake(double n = 1);
  Duration reserve(double n = 1);

  // Tokens available now (negative while reservations are outstanding).
  double tokens() const;
  double rate() const { return rate_; }
  double burst() const { return burst_; }

 private:
  void advanceLocked(MonotonicTime now) const;

  TimeSourcePtr clock_;
  const double rate_;
  const double burst_;
  mutable std::mutex mu_;
  mutable double tokens_;
  mutable MonotonicTime last_;
};

}  // namespace waterline
