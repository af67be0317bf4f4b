#include "waterline/routing/admission.h"

#include <algorithm>
#include <cmath>

namespace waterline::routing {

const char* toString(LimiterMode m) {
  return m == LimiterMode::SlidingWindow ? "SlidingWindow" : "TokenBucket";
}

const char* toString(AdmitOutcome o) {
  switch (o) {
    case AdmitOutcome::NoReservation: return "NoReservation";
    case AdmitOutcome::Admitted: return "Admitted";
    case AdmitOutcome::Spill: return "Spill";
    case AdmitOutcome::Throttle: return "Throttle";
  }
  return "?";
}

double LimiterConfig::limit() const {
  using namespace std::chrono;
  double minutes = duration<double>(window).count() / 60.0;
  double s = std::clamp(share, 0.0, 1.0);
  return std::max(0.0, tokensPerMinute) * (1.0 + std::max(0, burstPercent) / 100.0) * s * minutes;
}

namespace {
LimiterConfig sanitize(LimiterConfig c) {
  if (c.slots < 1) c.slots = 1;
  if (c.window <= Duration::zero()) c.window = std::chrono::seconds(60);
  return c;
}
}  // namespace

ReservationLimiter::ReservationLimiter(LimiterConfig cfg) : cfg_(sanitize(cfg)) {
  slotWidth_ = cfg_.window / cfg_.slots;
  if (slotWidth_ <= Duration::zero()) slotWidth_ = Duration(1);
  tokens_.assign(static_cast<size_t>(cfg_.slots) + 1, 0.0);
  requests_.assign(static_cast<size_t>(cfg_.slots) + 1, 0);
  level_ = cfg_.limit();
}

int64_t ReservationLimiter::slotOf(MonotonicTime t) const {
  auto ns = t.time_since_epoch().count();
  auto w = slotWidth_.count();
  return ns >= 0 ? ns / w : -((-ns + w - 1) / w);
}

void ReservationLimiter::advanceLocked(MonotonicTime now) {
  if (cfg_.mode == LimiterMode::TokenBucket) {
    if (!last_) {
      last_ = now;
      return;
    }
    if (now > *last_) {
      double perNs = cfg_.limit() / (1.0 + std::max(0, cfg_.burstPercent) / 100.0) /
                     static_cast<double>(cfg_.window.count());
      level_ = std::min(cfg_.limit(), level_ + perNs * static_cast<double>((now - *last_).count()));
      last_ = now;
    }
    return;
  }
  const int64_t c = slotOf(now);
  const int64_t ring = static_cast<int64_t>(tokens_.size());
  if (head_ == INT64_MIN || c - head_ >= ring) {
    std::fill(tokens_.begin(), tokens_.end(), 0.0);
    std::fill(requests_.begin(), requests_.end(), 0);
    sum_ = 0;
    count_ = 0;
    head_ = c;
    return;
  }
  for (int64_t k = head_ + 1; k <= c; ++k) {
    size_t i = static_cast<size_t>(((k % ring) + ring) % ring);
    sum_ -= tokens_[i];
    count_ -= requests_[i];
    tokens_[i] = 0;
    requests_[i] = 0;
  }
  if (c > head_) head_ = c;
  if (sum_ < 1e-9) sum_ = std::max(0.0, sum_);
}

double ReservationLimiter::usedLocked(MonotonicTime now) {
  advanceLocked(now);
  if (cfg_.mode == LimiterMode::TokenBucket) return cfg_.limit() - level_;
  return sum_;
}

std::optional<ReservationLimiter::Ticket> ReservationLimiter::tryAdmit(double tokens, MonotonicTime now) {
  std::lock_guard lk(mu_);
  if (!std::isfinite(tokens) && !(tokens < 0)) return std::nullopt;  // NaN or +inf: never admitted
  tokens = std::max(0.0, tokens);
  advanceLocked(now);
  const double lim = cfg_.limit();
  if (cfg_.mode == LimiterMode::TokenBucket) {
    if (tokens > level_) return std::nullopt;
    level_ -= tokens;
    return Ticket{0, tokens};
  }
  if (sum_ + tokens > lim * (1 + 1e-12)) return std::nullopt;
  const int64_t ring = static_cast<int64_t>(tokens_.size());
  size_t i = static_cast<size_t>(((head_ % ring) + ring) % ring);
  tokens_[i] += tokens;
  requests_[i] += 1;
  sum_ += tokens;
  count_ += 1;
  return Ticket{head_, tokens};
}

void ReservationLimiter::settle(const Ticket& t, double actualTokens, MonotonicTime now) {
  std::lock_guard lk(mu_);
  // A non-finite actual (a broken upstream usage) keeps the charge as it was: +inf would
  // fill the window for good, NaN would poison the sum.
  if (!std::isfinite(actualTokens)) actualTokens = t.charged;
  actualTokens = std::max(0.0, actualTokens);
  const double delta = actualTokens - t.charged;
  advanceLocked(now);
  if (cfg_.mode == LimiterMode::TokenBucket) {
    level_ = std::min(cfg_.limit(), level_ - delta);
    return;
  }
  const int64_t ring = static_cast<int64_t>(tokens_.size());
  if (t.slot <= head_ - ring || t.slot > head_) return;  // already left the window
  size_t i = static_cast<size_t>(((t.slot % ring) + ring) % ring);
  double before = tokens_[i];
  tokens_[i] = std::max(0.0, tokens_[i] + delta);
  sum_ = std::max(0.0, sum_ + (tokens_[i] - before));
}

double ReservationLimiter::limit() const {
  std::lock_guard lk(mu_);
  return cfg_.limit();
}

double ReservationLimiter::used(MonotonicTime now) {
  std::lock_guard lk(mu_);
  return usedLocked(now);
}

double ReservationLimiter::remaining(MonotonicTime now) {
  std::lock_guard lk(mu_);
  return std::max(0.0, cfg_.limit() - usedLocked(now));
}

double ReservationLimiter::remainingRequests(MonotonicTime now, double fallbackCharge) {
  std::lock_guard lk(mu_);
  double rem = std::max(0.0, cfg_.limit() - usedLocked(now));
  double avg = fallbackCharge;
  if (cfg_.mode == LimiterMode::SlidingWindow && count_ > 0 && sum_ > 0) avg = sum_ / static_cast<double>(count_);
  if (!(avg > 0)) return rem > 0 ? 1.0 : 0.0;
  return std::floor(rem / avg);
}

Duration ReservationLimiter::retryAfter(double tokens, MonotonicTime now) {
  std::lock_guard lk(mu_);
  if (std::isnan(tokens)) return Duration::max();
  tokens = std::max(0.0, tokens);
  advanceLocked(now);
  const double lim = cfg_.limit();
  if (tokens > lim) return Duration::max();
  if (cfg_.mode == LimiterMode::TokenBucket) {
    if (tokens <= level_) return Duration::zero();
    double perNs = lim / (1.0 + std::max(0, cfg_.burstPercent) / 100.0) / static_cast<double>(cfg_.window.count());
    if (!(perNs > 0)) return Duration::max();
    return Duration(static_cast<int64_t>(std::ceil((tokens - level_) / perNs)));
  }
  double need = sum_ + tokens - lim;
  if (need <= 0) return Duration::zero();
  const int64_t ring = static_cast<int64_t>(tokens_.size());
  double freed = 0;
  for (int64_t k = head_ - ring + 1; k <= head_; ++k) {
    size_t i = static_cast<size_t>(((k % ring) + ring) % ring);
    freed += tokens_[i];
    if (freed >= need) {
      // Slot k leaves the window when the current slot becomes k + ring.
      auto leaveAt = MonotonicTime(Duration((k + ring) * slotWidth_.count()));
      return std::max(Duration::zero(), leaveAt - now);
    }
  }
  return cfg_.window;
}

void ReservationLimiter::reconfigure(const LimiterConfig& cfgIn, MonotonicTime now) {
  LimiterConfig cfg = sanitize(cfgIn);
  std::lock_guard lk(mu_);
  if (cfg == cfg_) return;
  const bool layoutChanged = cfg.mode != cfg_.mode || cfg.slots != cfg_.slots || cfg.window != cfg_.window;
  if (layoutChanged) {
    double usedBefore = usedLocked(now);
    cfg_ = cfg;
    slotWidth_ = cfg_.window / cfg_.slots;
    if (slotWidth_ <= Duration::zero()) slotWidth_ = Duration(1);
    tokens_.assign(static_cast<size_t>(cfg_.slots) + 1, 0.0);
    requests_.assign(static_cast<size_t>(cfg_.slots) + 1, 0);
    head_ = INT64_MIN;
    sum_ = 0;
    count_ = 0;
    last_.reset();
    advanceLocked(now);
    // Carry the usage over as one charge in the current slot / a lower level.
    if (cfg_.mode == LimiterMode::TokenBucket) {
      level_ = std::max(0.0, cfg_.limit() - usedBefore);
    } else {
      const int64_t ring = static_cast<int64_t>(tokens_.size());
      size_t i = static_cast<size_t>(((head_ % ring) + ring) % ring);
      tokens_[i] = usedBefore;
      sum_ = usedBefore;
    }
    return;
  }
  // Same layout: usage (SlidingWindow) or consumption (TokenBucket) carries over.
  double consumed = cfg_.mode == LimiterMode::TokenBucket ? usedLocked(now) : 0;
  cfg_ = cfg;
  if (cfg_.mode == LimiterMode::TokenBucket) level_ = std::max(0.0, cfg_.limit() - consumed);
}

LimiterConfig ReservationLimiter::config() const {
  std::lock_guard lk(mu_);
  return cfg_;
}

// ---------------------------------------------------------------------------------

AdmissionController::AdmissionController(LimiterMode mode, double share)
    : mode_(mode), share_(std::clamp(share, 1e-9, 1.0)) {}

LimiterConfig AdmissionController::configFor(const ReservationInfo& r) const {
  LimiterConfig c;
  c.tokensPerMinute = static_cast<double>(r.tokensPerMinute);
  c.burstPercent = r.burstPercent;
  auto o = shareOverrides_.find(r.reservation.str());
  c.share = o != shareOverrides_.end() ? o->second : share_;
  c.mode = mode_;
  return c;
}

QuotaLimits quotaLimits(const RateLimitInfo& rl, double share) {
  share = std::clamp(share, 1e-9, 1.0);
  return {static_cast<double>(rl.tokensPerMinute) * share, static_cast<double>(rl.requestsPerMinute) * share};
}

std::pair<LimiterConfig, LimiterConfig> AdmissionController::quotaConfigs(const RateLimitInfo& rl) const {
  LimiterConfig t;
  t.tokensPerMinute = static_cast<double>(rl.tokensPerMinute);
  t.share = share_;
  t.mode = mode_;
  LimiterConfig r = t;
  r.tokensPerMinute = static_cast<double>(rl.requestsPerMinute);
  return {t, r};
}

void AdmissionController::sync(const RoutingTable& t, MonotonicTime now) {
  std::unique_lock lk(mu_);
  {
    std::map<std::string, RateLimitInfo, std::less<>> limited;
    for (const auto& d : t.deployments)
      if (d.rateLimit) limited.emplace(d.deployment.str(), *d.rateLimit);
    for (auto it = quotas_.begin(); it != quotas_.end();) {
      if (!limited.count(it->first)) it = quotas_.erase(it);
      else ++it;
    }
    for (const auto& [key, rl] : limited) {
      auto [tc, rc] = quotaConfigs(rl);
      auto it = quotas_.find(key);
      if (it == quotas_.end()) {
        auto q = std::make_shared<QuotaState>();
        q->tokens = std::make_shared<ReservationLimiter>(tc);
        q->requests = std::make_shared<ReservationLimiter>(rc);
        q->info = rl;
        quotas_.emplace(key, std::move(q));
      } else {
        it->second->tokens->reconfigure(tc, now);
        it->second->requests->reconfigure(rc, now);
        it->second->info = rl;
      }
    }
  }
  std::map<std::string, ReservationInfo, std::less<>> seen;
  for (const auto& d : t.deployments)
    for (const auto& r : d.reservations) seen.emplace(r.reservation.str(), r);
  for (auto it = states_.begin(); it != states_.end();) {
    if (!seen.count(it->first)) it = states_.erase(it);
    else ++it;
  }
  for (auto it = shareOverrides_.begin(); it != shareOverrides_.end();) {
    if (!seen.count(it->first)) it = shareOverrides_.erase(it);
    else ++it;
  }
  for (const auto& [key, info] : seen) {
    auto cfg = configFor(info);
    auto it = states_.find(key);
    if (it == states_.end()) {
      auto s = std::make_shared<State>();
      s->limiter = std::make_shared<ReservationLimiter>(cfg);
      states_.emplace(key, std::move(s));
    } else {
      it->second->limiter->reconfigure(cfg, now);
    }
  }
  infos_ = std::move(seen);
}

void AdmissionController::setShare(double share, MonotonicTime now) {
  std::unique_lock lk(mu_);
  share_ = std::clamp(share, 1e-9, 1.0);
  for (auto& [key, s] : states_) {
    auto it = infos_.find(key);
    if (it != infos_.end()) s->limiter->reconfigure(configFor(it->second), now);
  }
  for (auto& [key, q] : quotas_) {
    auto [tc, rc] = quotaConfigs(q->info);
    q->tokens->reconfigure(tc, now);
    q->requests->reconfigure(rc, now);
  }
}

void AdmissionController::setReservationShare(const std::string& key, std::optional<double> share, MonotonicTime now) {
  std::unique_lock lk(mu_);
  if (share) shareOverrides_[key] = std::clamp(*share, 1e-9, 1.0);
  else shareOverrides_.erase(key);
  auto s = states_.find(key);
  auto it = infos_.find(key);
  if (s != states_.end() && it != infos_.end()) s->second->limiter->reconfigure(configFor(it->second), now);
}

double AdmissionController::takeLargest(const std::string& key) {
  std::shared_lock lk(mu_);
  auto it = states_.find(key);
  return it == states_.end() ? 0.0 : it->second->largest.exchange(0, std::memory_order_relaxed);
}

void AdmissionController::noteDemand(State& st, double tokens) {
  if (!std::isfinite(tokens) || !(tokens > 0)) return;
  st.demanded.fetch_add(tokens, std::memory_order_relaxed);
  double cur = st.largest.load(std::memory_order_relaxed);
  while (tokens > cur && !st.largest.compare_exchange_weak(cur, tokens, std::memory_order_relaxed)) {
  }
}

double AdmissionController::share() const {
  std::shared_lock lk(mu_);
  return share_;
}

Admission AdmissionController::admitQuota(const DeploymentRoutes& d, QuotaState& q, double tokens,
                                          MonotonicTime now) {
  Admission a;
  a.charged = tokens;
  a.by = AdmitLimiter::Quota;
  a.reservation = d.deployment;
  a.limitTokens = q.tokens->limit();
  a.limitRequests = q.requests->limit();
  std::optional<ReservationLimiter::Ticket> tt = q.tokens->tryAdmit(tokens, now);
  std::optional<ReservationLimiter::Ticket> rt;
  if (tt) {
    rt = q.requests->tryAdmit(1, now);
    if (!rt) q.tokens->settle(*tt, 0, now);  // both or nothing
  }
  a.remainingTokens = q.tokens->remaining(now);
  a.remainingRequests = std::floor(q.requests->remaining(now) + 1e-9);
  if (tt && rt) {
    a.outcome = AdmitOutcome::Admitted;
    a.limiter = q.tokens;
    a.ticket = *tt;
    q.admitted.fetch_add(1, std::memory_order_relaxed);
    return a;
  }
  // Both must have room: wait for the later of the two.
  Duration rtok = q.tokens->retryAfter(tokens, now);
  Duration rreq = q.requests->retryAfter(1, now);
  a.retryAfter = std::max(rtok, rreq);
  if (d.spillover) {
    a.outcome = AdmitOutcome::Spill;
    q.spilled.fetch_add(1, std::memory_order_relaxed);
  } else {
    a.outcome = AdmitOutcome::Throttle;
    q.throttled.fetch_add(1, std::memory_order_relaxed);
  }
  return a;
}

Admission AdmissionController::admit(const DeploymentRoutes& d, double tokens, MonotonicTime now) {
  std::shared_ptr<QuotaState> quota;
  if (d.rateLimit) {
    std::shared_lock lk(mu_);
    auto it = quotas_.find(d.deployment.str());
    if (it != quotas_.end()) quota = it->second;
  }
  Admission a;
  a.charged = tokens;
  if (d.reservations.empty()) return quota ? admitQuota(d, *quota, tokens, now) : a;
  std::vector<std::pair<const ReservationInfo*, std::shared_ptr<State>>> states;
  {
    std::shared_lock lk(mu_);
    for (const auto& r : d.reservations) {
      auto it = states_.find(r.reservation.str());
      if (it != states_.end()) states.emplace_back(&r, it->second);
    }
  }
  if (states.empty()) return quota ? admitQuota(d, *quota, tokens, now) : a;  // not synced yet
  for (auto& [info, st] : states) {
    if (auto t = st->limiter->tryAdmit(tokens, now)) {
      a.outcome = AdmitOutcome::Admitted;
      a.reservation = info->reservation;
      a.limiter = st->limiter;
      a.ticket = *t;
      a.scope = info->scope;
      st->admitted.fetch_add(1, std::memory_order_relaxed);
      noteDemand(*st, tokens);
      break;
    }
  }
  double remaining = 0, remainingReq = 0;
  Duration retry = Duration::max();
  for (auto& [info, st] : states) {
    remaining += st->limiter->remaining(now);
    remainingReq += st->limiter->remainingRequests(now, tokens);
    if (a.outcome != AdmitOutcome::Admitted) retry = std::min(retry, st->limiter->retryAfter(tokens, now));
  }
  a.remainingTokens = remaining;
  a.remainingRequests = remainingReq;
  if (a.outcome == AdmitOutcome::Admitted) return a;
  if (quota) {
    // Reservations full: the pay-as-you-go quota takes what it has room for.
    Admission q = admitQuota(d, *quota, tokens, now);
    noteDemand(*states.front().second, tokens);
    if (q.outcome == AdmitOutcome::Admitted) return q;
    q.retryAfter = std::min(q.retryAfter, retry);
    return q;
  }
  a.reservation = states.front().first->reservation;
  a.retryAfter = retry;
  noteDemand(*states.front().second, tokens);
  if (d.spillover) {
    a.outcome = AdmitOutcome::Spill;
    states.front().second->spilled.fetch_add(1, std::memory_order_relaxed);
  } else {
    a.outcome = AdmitOutcome::Throttle;
    states.front().second->throttled.fetch_add(1, std::memory_order_relaxed);
  }
  return a;
}

void AdmissionController::settle(const Admission& a, double actualTokens, MonotonicTime now) {
  if (a.outcome != AdmitOutcome::Admitted || !a.limiter) return;
  a.limiter->settle(a.ticket, actualTokens, now);
}

std::map<std::string, QuotaStats> AdmissionController::quotaStats(MonotonicTime now) const {
  std::map<std::string, QuotaStats> out;
  std::shared_lock lk(mu_);
  for (const auto& [key, q] : quotas_) {
    QuotaStats qs;
    qs.counters.admitted = q->admitted.load(std::memory_order_relaxed);
    qs.counters.throttled = q->throttled.load(std::memory_order_relaxed);
    qs.counters.spilled = q->spilled.load(std::memory_order_relaxed);
    qs.limitTokens = q->tokens->limit();
    qs.limitRequests = q->requests->limit();
    qs.usedTokens = q->tokens->used(now);
    qs.usedRequests = q->requests->used(now);
    out.emplace(key, qs);
  }
  return out;
}

std::map<std::string, ReservationStats> AdmissionController::stats(MonotonicTime now) const {
  std::map<std::string, ReservationStats> out;
  std::shared_lock lk(mu_);
  for (const auto& [key, s] : states_) {
    ReservationStats rs;
    rs.counters.admitted = s->admitted.load(std::memory_order_relaxed);
    rs.counters.throttled = s->throttled.load(std::memory_order_relaxed);
    rs.counters.spilled = s->spilled.load(std::memory_order_relaxed);
    rs.limit = s->limiter->limit();
    rs.used = s->limiter->used(now);
    rs.demanded = s->demanded.load(std::memory_order_relaxed);
    rs.largest = s->largest.load(std::memory_order_relaxed);
    auto cfg = s->limiter->config();
    rs.share = cfg.share;
    cfg.share = 1.0;
    rs.reservationLimit = cfg.limit();
    out.emplace(key, rs);
  }
  return out;
}

}  // namespace waterline::routing
