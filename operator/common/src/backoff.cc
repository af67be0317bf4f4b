#include "waterline/common/backoff.h"

#include <cmath>
#include <limits>
#include <memory>
#include <random>
#include <stdexcept>

namespace waterline {

RandomFn seededRandom(std::uint64_t seed) {
  struct State {
    std::mutex mu;
    std::mt19937_64 rng;
    std::uniform_real_distribution<double> dist{0.0, 1.0};
  };
  auto st = std::make_shared<State>();
  st->rng.seed(seed);
  return [st] {
    std::lock_guard g(st->mu);
    double v = st->dist(st->rng);
    return v >= 1.0 ? std::nextafter(1.0, 0.0) : v;
  };
}

RandomFn defaultRandom() {
  std::random_device rd;
  return seededRandom((static_cast<std::uint64_t>(rd()) << 32) ^ rd());
}

Duration scaleDuration(Duration d, double f) {
  const double v = static_cast<double>(d.count()) * f;
  if (std::isnan(v)) return Duration::max();
  if (v <= 0) return Duration::zero();
  // 2^63 is not representable as int64; anything at or above it saturates.
  if (v >= 9.2233720368547758e18) return Duration::max();
  return Duration(static_cast<Duration::rep>(v));
}

ExponentialBackoff::ExponentialBackoff(Duration base, Duration cap, double factor)
    : base_(base), cap_(cap), factor_(factor) {
  if (base < Duration::zero() || cap < Duration::zero()) {
    throw std::invalid_argument("ExponentialBackoff: negative base or cap");
  }
  if (!(factor >= 1.0)) throw std::invalid_argument("ExponentialBackoff: factor must be >= 1");
}

ExponentialBackoff ExponentialBackoff::withJitter(double jitter, RandomFn rand) const {
  ExponentialBackoff b = *this;
  b.jitter_ = jitter > 0 ? jitter : 0;
  b.rand_ = std::move(rand);
  if (b.jitter_ > 0 && !b.rand_) b.rand_ = defaultRandom();
  return b;
}

Duration ExponentialBackoff::next(int attempt) const {
  if (attempt < 0) attempt = 0;
  const double mult = std::pow(factor_, static_cast<double>(attempt));
  Duration d = std::min(cap_, scaleDuration(base_, mult));
  if (jitter_ > 0 && rand_) d = scaleDuration(d, 1.0 + jitter_ * rand_());
  return d;
}

JitteredBackoff::JitteredBackoff(Params p, RandomFn rand)
    : params_(p), rand_(std::move(rand)), duration_(p.duration), steps_(p.steps) {
  if (params_.jitter > 0 && !rand_) rand_ = defaultRandom();
}

Duration JitteredBackoff::jitter(Duration d) {
  if (params_.jitter <= 0 || !rand_) return d;
  return scaleDuration(d, 1.0 + params_.jitter * rand_());
}

Duration JitteredBackoff::step() {
  if (steps_ < 1) return jitter(duration_);
  --steps_;
  const Duration d = duration_;
  if (params_.factor != 0) {
    duration_ = scaleDuration(duration_, params_.factor);
    if (params_.cap > Duration::zero() && duration_ > params_.cap) {
      duration_ = params_.cap;
      steps_ = 0;
    }
  }
  return jitter(d);
}

void JitteredBackoff::reset() {
  duration_ = params_.duration;
  steps_ = params_.steps;
}

TokenBucket::TokenBucket(TimeSourcePtr clock, double ratePerSecond, double burst)
    : clock_(std::move(clock)), rate_(ratePerSecond), burst_(burst), tokens_(burst) {
  if (!clock_) throw std::invalid_argument("TokenBucket: null clock");
  if (std::isnan(ratePerSecond) || ratePerSecond < 0) {
    throw std::invalid_argument("TokenBucket: rate must be >= 0");
  }
  if (std::isnan(burst) || burst < 0) throw std::invalid_argument("TokenBucket: burst must be >= 0");
  last_ = clock_->monotonicTime();
}

void TokenBucket::advanceLocked(MonotonicTime now) const {
  if (now <= last_) return;
  const double elapsed = std::chrono::duration<double>(now - last_).count();
  tokens_ = std::min(burst_, tokens_ + elapsed * rate_);
  last_ = now;
}

bool TokenBucket::tryTake(double n) {
  if (std::isinf(rate_)) return true;
  std::lock_guard g(mu_);
  advanceLocked(clock_->monotonicTime());
  if (tokens_ < n) return false;
  tokens_ -= n;
  return true;
}

Duration TokenBucket::reserve(double n) {
  if (std::isinf(rate_)) return Duration::zero();
  std::lock_guard g(mu_);
  if (n > burst_) return Duration::max();
  advanceLocked(clock_->monotonicTime());
  const double after = tokens_ - n;
  if (after >= 0) {
    tokens_ = after;
    return Duration::zero();
  }
  if (rate_ == 0) return Duration::max();
  tokens_ = after;
  // Rounded to the nearest nanosecond so that 3 tokens at 10/s is exactly 300ms.
  const double ns = std::round(-after / rate_ * 1e9);
  if (ns >= 9.2233720368547758e18) return Duration::max();
  return Duration(static_cast<Duration::rep>(ns));
}

double TokenBucket::tokens() const {
  std::lock_guard g(mu_);
  advanceLocked(clock_->monotonicTime());
  return tokens_;
}

}  // namespace waterline
