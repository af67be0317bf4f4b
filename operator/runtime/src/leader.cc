#include "waterline/runtime/leader.h"

#include <cstdio>
#include <ctime>

#include "waterline/common/log.h"

namespace waterline::runtime {

namespace {
const log::Logger& lg() {
  static const log::Logger l = log::logger("leader-election");
  return l;
}
}  // namespace

std::string formatMicroTime(SystemTime t) {
  using namespace std::chrono;
  auto us = duration_cast<microseconds>(t.time_since_epoch()).count();
  std::time_t secs = us / 1000000;
  int frac = int(us % 1000000);
  if (frac < 0) {
    frac += 1000000;
    --secs;
  }
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
  return buf;
}

std::optional<SystemTime> parseMicroTime(const std::string& s) {
  std::tm tm{};
  int y, mo, d, h, mi, sec;
  if (std::sscanf(s.c_str(), "%d-%d-%dT%d:%d:%d", &y, &mo, &d, &h, &mi, &sec) != 6)
    return std::nullopt;
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = sec;
  int64_t micros = 0;
  auto dot = s.find('.');
  if (dot != std::string::npos) {
    std::string frac;
    for (size_t i = dot + 1; i < s.size() && isdigit(static_cast<unsigned char>(s[i])); ++i)
      frac += s[i];
    while (frac.size() < 6) frac += '0';
    micros = std::stoll(frac.substr(0, 6));
  }
  return SystemTime{std::chrono::seconds(timegm(&tm)) + std::chrono::microseconds(micros)};
}

LeaseRecord leaseRecordFromJson(const kube::Json& lease) {
  LeaseRecord r;
  if (!lease.contains("spec")) return r;
  const auto& s = lease["spec"];
  r.holderIdentity = s.value("holderIdentity", "");
  r.leaseDurationSeconds = s.value("leaseDurationSeconds", 0);
  r.leaseTransitions = s.value("leaseTransitions", 0);
  if (s.contains("acquireTime") && s["acquireTime"].is_string())
    r.acquireTime = parseMicroTime(s["acquireTime"]);
  if (s.contains("renewTime") && s["renewTime"].is_string())
    r.renewTime = parseMicroTime(s["renewTime"]);
  return r;
}

kube::Json leaseSpecJson(const LeaseRecord& r) {
  kube::Json s = {{"holderIdentity", r.holderIdentity},
                  {"leaseDurationSeconds", r.leaseDurationSeconds},
                  {"leaseTransitions", r.leaseTransitions}};
  if (r.acquireTime) s["acquireTime"] = formatMicroTime(*r.acquireTime);
  if (r.renewTime) s["renewTime"] = formatMicroTime(*r.renewTime);
  return s;
}

LeaderElector::LeaderElector(kube::ClientPtr client, LeaderElectionConfig cfg, TimeSourcePtr time)
    : client_(std::move(client)), cfg_(std::move(cfg)), time_(std::move(time)) {}

std::string LeaderElector::observedLeader() const {
  std::lock_guard g(mu_);
  return observed_ ? observed_->holderIdentity : "";
}

bool LeaderElector::tryAcquireOrRenew() {
  using namespace std::chrono;
  const SystemTime now = time_->systemTime();
  LeaseRecord desired;
  desired.holderIdentity = cfg_.identity;
  desired.leaseDurationSeconds = int(duration_cast<seconds>(cfg_.leaseDuration).count());
  desired.acquireTime = now;
  desired.renewTime = now;

  // Fast path, as client-go's: the holder renews by updating the Lease it last wrote,
  // without reading it first (one request per renewal, not two). The update carries that
  // resourceVersion, so if anyone changed the Lease since, it fails with a conflict and
  // the slow path below reads the Lease and decides again.
  {
    kube::Json raw;
    LeaseRecord last;
    {
      std::lock_guard g(mu_);
      if (observed_ && observed_->holderIdentity == cfg_.identity && observedRaw_.is_object() &&
          observedRaw_.contains("metadata") && observedRaw_["metadata"].contains("resourceVersion")) {
        raw = observedRaw_;
        last = *observed_;
      }
    }
    if (!raw.is_null()) {
      LeaseRecord renewed = desired;
      renewed.acquireTime = last.acquireTime;
      renewed.leaseTransitions = last.leaseTransitions;
      raw["spec"] = leaseSpecJson(renewed);
      auto res = client_->update(kube::kinds::Lease, cfg_.ns, raw);
      if (res) {
        std::lock_guard g(mu_);
        observed_ = renewed;
        observedRaw_ = *res;
        observedTime_ = time_->monotonicTime();
        return true;
      }
      if (!res.error().isConflict())
        lg().debug("optimistic lease renewal failed; reading the lease", {{"err", res.error().describe()}});
    }
  }

  auto got = client_->get(kube::kinds::Lease, cfg_.ns, cfg_.name);
  if (!got) {
    if (!got.error().isNotFound()) {
      lg().warn("error retrieving lease", {{"lease", cfg_.ns + "/" + cfg_.name},
                                           {"err", got.error().describe()}});
      return false;
    }
    kube::Json lease = {{"apiVersion", "coordination.k8s.io/v1"},
                        {"kind", "Lease"},
                        {"metadata", {{"name", cfg_.name}, {"namespace", cfg_.ns}}},
                        {"spec", leaseSpecJson(desired)}};
    auto created = client_->create(kube::kinds::Lease, cfg_.ns, lease);
    if (!created) return false;  // someone else created it first
    std::lock_guard g(mu_);
    observed_ = desired;
    observedRaw_ = *created;
    observedTime_ = time_->monotonicTime();
    return true;
  }

  LeaseRecord current = leaseRecordFromJson(*got);
  {
    std::lock_guard g(mu_);
    if (!observed_ || !(*observed_ == current)) {
      observed_ = current;
      observedTime_ = time_->monotonicTime();
    }
    observedRaw_ = *got;
    const bool heldByOther = !current.holderIdentity.empty() &&
                             current.holderIdentity != cfg_.identity;
    const Duration leaseDur = seconds(current.leaseDurationSeconds);
    if (heldByOther && observedTime_ + leaseDur > time_->monotonicTime()) {
      return false;  // held and not expired
    }
  }

  if (current.holderIdentity == cfg_.identity) {
    desired.acquireTime = current.acquireTime;
    desired.leaseTransitions = current.leaseTransitions;
  } else {
    desired.leaseTransitions = current.leaseTransitions + 1;
  }
  kube::Json updated = *got;
  updated["spec"] = leaseSpecJson(desired);
  auto res = client_->update(kube::kinds::Lease, cfg_.ns, updated);
  if (!res) {
    if (!res.error().isConflict())
      lg().warn("failed to update lease", {{"err", res.error().describe()}});
    return false;
  }
  std::lock_guard g(mu_);
  observed_ = desired;
  observedRaw_ = *res;
  observedTime_ = time_->monotonicTime();
  return true;
}

bool LeaderElector::release() {
  kube::Json raw;
  {
    std::lock_guard g(mu_);
    if (!observed_ || observed_->holderIdentity != cfg_.identity) return true;
    raw = observedRaw_;
  }
  LeaseRecord r;
  r.leaseDurationSeconds = 1;
  r.leaseTransitions = leaseRecordFromJson(raw).leaseTransitions;
  r.renewTime = time_->systemTime();
  r.acquireTime = r.renewTime;
  raw["spec"] = leaseSpecJson(r);
  auto res = client_->update(kube::kinds::Lease, cfg_.ns, raw);
  if (!res) {
    lg().warn("failed to release lease", {{"err", res.error().describe()}});
    return false;
  }
  std::lock_guard g(mu_);
  observed_ = r;
  observedRaw_ = *res;
  return true;
}

bool LeaderElector::sleepFor(Duration d) {
  std::unique_lock lk(mu_);
  time_->waitUntil(lk, cv_, time_->monotonicTime() + d, [&] { return stopped_.load(); });
  return !stopped_;
}

void LeaderElector::stop() {
  stopped_ = true;
  std::lock_guard g(mu_);
  cv_.notify_all();
}

void LeaderElector::run() {
  auto reportLeader = [&] {
    std::string who = observedLeader();
    if (!who.empty() && who != reportedLeader_) {
      reportedLeader_ = who;
      lg().info("new leader observed", {{"leader", who}});
      if (cfg_.onNewLeader) cfg_.onNewLeader(who);
    }
  };
  // Acquire.
  lg().info("attempting to acquire leader lease",
            {{"lease", cfg_.ns + "/" + cfg_.name}, {"identity", cfg_.identity}});
  while (!stopped_) {
    bool ok = tryAcquireOrRenew();
    reportLeader();
    if (ok) break;
    if (!sleepFor(cfg_.retryPeriod)) return;
  }
  if (stopped_) return;
  leading_ = true;
  lg().info("acquired lease", {{"identity", cfg_.identity}});
  if (cfg_.onStartedLeading) cfg_.onStartedLeading();

  // Renew until we cannot within renewDeadline, or we are stopped.
  MonotonicTime lastRenew = time_->monotonicTime();
  while (!stopped_) {
    if (!sleepFor(cfg_.retryPeriod)) break;
    if (tryAcquireOrRenew()) {
      lastRenew = time_->monotonicTime();
      continue;
    }
    const std::string holder = observedLeader();
    const bool takenOver = !holder.empty() && holder != cfg_.identity;
    if (takenOver || time_->monotonicTime() - lastRenew >= cfg_.renewDeadline) {
      lg().error(takenOver ? "lease taken over by another replica; stepping down"
                           : "failed to renew lease within the renew deadline; stepping down",
                 {{"identity", cfg_.identity}, {"holder", holder}});
      leading_ = false;
      if (cfg_.onStoppedLeading) cfg_.onStoppedLeading();
      return;
    }
  }
  if (cfg_.releaseOnCancel) release();
  leading_ = false;
  if (cfg_.onStoppedLeading) cfg_.onStoppedLeading();
}

}  // namespace waterline::runtime
