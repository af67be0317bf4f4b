#include "waterline/router/ptu_share_exchange.h"

#include <hiredis/hiredis.h>

#include <algorithm>
#include <charconv>

#include "waterline/common/log.h"

namespace waterline::router {

namespace {
const log::Logger& lg() {
  static const log::Logger l = log::logger("router.ptu_shares");
  return l;
}

timeval toTimeval(Duration d) {
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(d).count();
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(us / 1000000);
  tv.tv_usec = static_cast<suseconds_t>(us % 1000000);
  return tv;
}
}  // namespace

struct PtuShareExchange::Redis {
  redisContext* c = nullptr;
  ~Redis() {
    if (c) redisFree(c);
  }
};

PtuShareExchange::PtuShareExchange(Options o, routing::AdmissionController& admission, TimeSourcePtr clock)
    : o_(std::move(o)), admission_(admission), clock_(clock ? std::move(clock) : RealTimeSource::instance()) {
  o_.params.intervalSec = std::chrono::duration<double>(o_.interval).count();
  if (o_.params.staleAfterMs == routing::ShareParams{}.staleAfterMs)
    o_.params.staleAfterMs = std::max<int64_t>(
        2000, 5 * std::chrono::duration_cast<std::chrono::milliseconds>(o_.interval).count());
}

PtuShareExchange::~PtuShareExchange() { stop(false); }

bool PtuShareExchange::connect(std::string* err) {
  if (redis_ && redis_->c && !redis_->c->err) return true;
  redis_ = std::make_unique<Redis>();
  redis_->c = redisConnectWithTimeout(o_.address.host.c_str(), o_.address.port, toTimeval(o_.ioTimeout));
  if (!redis_->c || redis_->c->err) {
    *err = std::string("connect ") + o_.address.host + ":" + std::to_string(o_.address.port) + ": " +
           (redis_->c ? redis_->c->errstr : "out of memory");
    redis_.reset();
    return false;
  }
  redisSetTimeout(redis_->c, toTimeval(o_.ioTimeout));
  return true;
}

std::string PtuShareExchange::exchangeOnce() {
  const auto now = clock_->monotonicTime();
  const int64_t nowMs =
      std::chrono::duration_cast<std::chrono::milliseconds>(clock_->systemTime().time_since_epoch()).count();
  auto stats = admission_.stats(now);
  std::string err;
  auto fail = [&](std::string why) {
    failures_.fetch_add(1);
    redis_.reset();
    // Unreachable for longer than a report stays fresh: back to the static split.
    if (overridden_ && clock_->monotonicTime() - lastSuccess_ > std::chrono::milliseconds(o_.params.staleAfterMs)) {
      for (const auto& [key, st] : stats) admission_.setReservationShare(key, std::nullopt, clock_->monotonicTime());
      overridden_ = false;
      lg().warn("ptu shares: store unreachable; back to the static split", {{"err", why}});
    }
    return why;
  };
  if (stats.empty()) {
    rounds_.fetch_add(1);
    return {};
  }
  // Forget the demand history of reservations that left the table.
  std::erase_if(rates_, [&](const auto& kv) { return !stats.count(kv.first); });
  std::erase_if(largest_, [&](const auto& kv) { return !stats.count(kv.first); });
  if (!connect(&err)) return fail(err);
  // Pipeline: per reservation HSET, PEXPIRE, HGETALL.
  std::vector<std::string> keys;
  for (const auto& [key, st] : stats) {
    auto& lg_ = largest_[key];
    lg_.push_back(admission_.takeLargest(key));
    const auto keep = std::max<int64_t>(1, 60'000 / std::max<int64_t>(1, std::chrono::duration_cast<std::chrono::milliseconds>(o_.interval).count()));
    while (static_cast<int64_t>(lg_.size()) > keep) lg_.pop_front();
    routing::ShareReport r;
    r.replica = o_.identity;
    r.used = st.used;
    r.demandPerSec = rates_[key].update(st.demanded, nowMs);
    r.atMs = nowMs;
    r.largest = *std::max_element(lg_.begin(), lg_.end());
    const std::string hkey = o_.keyPrefix + key;
    const std::string value = routing::encodeReport(r);
    redisAppendCommand(redis_->c, "HSET %b %b %b", hkey.data(), hkey.size(), o_.identity.data(), o_.identity.size(),
                       value.data(), value.size());
    redisAppendCommand(redis_->c, "PEXPIRE %b 60000", hkey.data(), hkey.size());
    redisAppendCommand(redis_->c, "HGETALL %b", hkey.data(), hkey.size());
    keys.push_back(key);
  }
  std::map<std::string, std::vector<routing::ShareReport>> reports;
  std::vector<std::pair<std::string, std::string>> expired;  // (hash key, field)
  for (const auto& key : keys) {
    for (int k = 0; k < 3; ++k) {
      void* raw = nullptr;
      if (redisGetReply(redis_->c, &raw) != REDIS_OK || !raw)
        return fail(std::string("redis: ") + (redis_->c->err ? redis_->c->errstr : "no reply"));
      std::unique_ptr<redisReply, void (*)(redisReply*)> reply(static_cast<redisReply*>(raw),
                                                                [](redisReply* p) { freeReplyObject(p); });
      if (reply->type == REDIS_REPLY_ERROR) return fail("redis: " + std::string(reply->str, reply->len));
      if (k != 2) continue;
      if (reply->type != REDIS_REPLY_ARRAY) return fail("redis: HGETALL: not an array");
      for (size_t i = 0; i + 1 < reply->elements; i += 2) {
        const auto* f = reply->element[i];
        const auto* v = reply->element[i + 1];
        if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING) continue;
        std::string id(f->str, f->len);
        auto rep = routing::decodeReport(id, std::string(v->str, v->len));
        if (!rep) continue;
        if (nowMs - rep->atMs > 60'000) expired.emplace_back(o_.keyPrefix + key, id);
        reports[key].push_back(*rep);
      }
    }
  }
  // Old reports of replicas that left: removed (best effort, next round's pipeline).
  for (const auto& [hkey, field] : expired) {
    redisAppendCommand(redis_->c, "HDEL %b %b", hkey.data(), hkey.size(), field.data(), field.size());
  }
  for (size_t i = 0; i < expired.size(); ++i) {
    void* raw = nullptr;
    if (redisGetReply(redis_->c, &raw) != REDIS_OK) return fail("redis: HDEL failed");
    freeReplyObject(raw);
  }
  const auto at = clock_->monotonicTime();
  for (const auto& key : keys) {
    const auto& st = stats.at(key);
    auto share = routing::shareOf(o_.identity, st.reservationLimit, reports[key], nowMs, o_.params);
    admission_.setReservationShare(key, share, at);
  }
  overridden_ = true;
  lastSuccess_ = at;
  everSucceeded_ = true;
  rounds_.fetch_add(1);
  return {};
}

void PtuShareExchange::run() {
  std::string lastErr;
  std::unique_lock lk(mu_);
  while (!stopping_) {
    lk.unlock();
    std::string err = exchangeOnce();
    if (err != lastErr) {
      if (!err.empty()) lg().warn("ptu shares: exchange failed; retrying every interval", {{"err", err}});
      else lg().info("ptu shares: exchanging", {{"store", o_.address.host + ":" + std::to_string(o_.address.port)}});
      lastErr = err;
    }
    lk.lock();
    cv_.wait_for(lk, o_.interval, [this] { return stopping_; });
  }
}

void PtuShareExchange::start() {
  std::lock_guard lk(mu_);
  if (thread_.joinable()) return;
  stopping_ = false;
  thread_ = std::thread([this] { run(); });
}

void PtuShareExchange::stop(bool remove) {
  {
    std::lock_guard lk(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  if (!remove) return;
  std::string err;
  if (!connect(&err)) return;
  for (const auto& [key, st] : admission_.stats(clock_->monotonicTime())) {
    const std::string hkey = o_.keyPrefix + key;
    if (auto* r = static_cast<redisReply*>(redisCommand(redis_->c, "HDEL %b %b", hkey.data(), hkey.size(),
                                                         o_.identity.data(), o_.identity.size())))
      freeReplyObject(r);
  }
}

}  // namespace waterline::router
