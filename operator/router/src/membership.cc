#include "waterline/router/membership.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <set>

#include "waterline/api/meta.h"
#include "waterline/common/log.h"
#include "waterline/routing/table.h"

namespace waterline::router {

namespace {

using nlohmann::json;

const log::Logger& lg() {
  static const log::Logger l = log::logger("router.membership");
  return l;
}

bool isAlnumLower(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
bool isAlnum(char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; }

// Lower-case, [^a-z0-9] -> '-', runs of '-' collapsed, no '-' at either end.
std::string sanitize(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    char l = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (isAlnumLower(l)) {
      out.push_back(l);
    } else if (!out.empty() && out.back() != '-') {
      out.push_back('-');
    }
  }
  while (!out.empty() && out.back() == '-') out.pop_back();
  return out;
}

}  // namespace

// ---------------------------------------------------------------------------------

std::string memberLeaseName(std::string_view group, std::string_view identity) {
  std::string key;
  key.reserve(group.size() + identity.size() + 1);
  key.append(group);
  key.push_back('\0');  // no (group, identity) pair shares the key with another
  key.append(identity);
  char hash[9];
  std::snprintf(hash, sizeof hash, "%08x", static_cast<unsigned>(routing::fnv1a64(key) & 0xffffffffu));
  std::string readable = sanitize(std::string(group) + "-" + std::string(identity));
  constexpr size_t kMax = 63 - 9;  // room for "-" and the 8 hex digits
  if (readable.size() > kMax) readable.resize(kMax);
  while (!readable.empty() && readable.back() == '-') readable.pop_back();
  return readable.empty() ? std::string("router-") + hash : readable + "-" + hash;
}

bool isDns1123Label(std::string_view s) {
  if (s.empty() || s.size() > 63) return false;
  if (!isAlnumLower(s.front()) || !isAlnumLower(s.back())) return false;
  return std::all_of(s.begin(), s.end(), [](char c) { return isAlnumLower(c) || c == '-'; });
}

bool isLabelValue(std::string_view s) {
  if (s.empty() || s.size() > 63) return false;
  if (!isAlnum(s.front()) || !isAlnum(s.back())) return false;
  return std::all_of(s.begin(), s.end(), [](char c) { return isAlnum(c) || c == '-' || c == '_' || c == '.'; });
}

const char* toString(LeaseVerdict v) {
  switch (v) {
    case LeaseVerdict::Live: return "live";
    case LeaseVerdict::Expired: return "expired";
    case LeaseVerdict::OtherGroup: return "other-group";
    case LeaseVerdict::Malformed: return "malformed";
  }
  return "unknown";
}

LeaseVerdict classifyLease(const json& lease, std::string_view group, SystemTime now, Duration clockSkew) {
  if (!lease.is_object()) return LeaseVerdict::Malformed;
  auto md = lease.find("metadata");
  if (md == lease.end() || !md->is_object()) return LeaseVerdict::Malformed;
  auto labels = md->find("labels");
  if (labels == md->end() || !labels->is_object()) return LeaseVerdict::OtherGroup;
  auto g = labels->find(kRouterGroupLabel);
  if (g == labels->end() || !g->is_string() || g->get_ref<const std::string&>() != group)
    return LeaseVerdict::OtherGroup;

  auto spec = lease.find("spec");
  if (spec == lease.end() || !spec->is_object()) return LeaseVerdict::Malformed;
  auto holder = spec->find("holderIdentity");
  auto dur = spec->find("leaseDurationSeconds");
  auto renew = spec->find("renewTime");
  // A released Lease (holderIdentity empty or null, as leader election leaves it) has
  // no member behind it.
  if (holder == spec->end() || holder->is_null()) return LeaseVerdict::Expired;
  if (!holder->is_string()) return LeaseVerdict::Malformed;
  if (holder->get_ref<const std::string&>().empty()) return LeaseVerdict::Expired;
  if (dur == spec->end() || !dur->is_number_integer()) return LeaseVerdict::Malformed;
  const int64_t seconds = dur->get<int64_t>();
  if (seconds <= 0) return LeaseVerdict::Malformed;
  if (renew == spec->end() || !renew->is_string()) return LeaseVerdict::Malformed;
  auto renewed = api::parseTime(renew->get_ref<const std::string&>());
  if (!renewed) return LeaseVerdict::Malformed;
  // Being deleted: its holder is leaving.
  if (auto del = md->find("deletionTimestamp"); del != md->end() && !del->is_null()) return LeaseVerdict::Expired;
  const Duration skew = std::max(clockSkew, Duration::zero());
  // Saturate instead of overflowing for absurd durations.
  const int64_t capped = std::min<int64_t>(seconds, int64_t(100) * 365 * 24 * 3600);
  if (*renewed + std::chrono::seconds(capped) + skew > now) return LeaseVerdict::Live;
  return LeaseVerdict::Expired;
}

MemberCount countLiveMembers(const std::vector<json>& leases, std::string_view group, SystemTime now,
                             Duration clockSkew, std::string_view self) {
  MemberCount c;
  std::set<std::string> live;
  for (const auto& l : leases) {
    switch (classifyLease(l, group, now, clockSkew)) {
      case LeaseVerdict::Live: live.insert(l["spec"]["holderIdentity"].get<std::string>()); break;
      case LeaseVerdict::Expired: ++c.expired; break;
      case LeaseVerdict::OtherGroup: ++c.otherGroups; break;
      case LeaseVerdict::Malformed: ++c.malformed; break;
    }
  }
  if (!self.empty() && !live.count(std::string(self))) {
    live.insert(std::string(self));
    c.selfAdded = true;
  }
  c.live.assign(live.begin(), live.end());
  return c;
}

json memberLease(const std::string& ns, const std::string& group, const std::string& identity,
                 Duration leaseDuration, SystemTime acquireTime, SystemTime renewTime) {
  const auto secs = std::chrono::ceil<std::chrono::seconds>(leaseDuration).count();
  return {{"apiVersion", "coordination.k8s.io/v1"},
          {"kind", "Lease"},
          {"metadata",
           {{"name", memberLeaseName(group, identity)},
            {"namespace", ns},
            {"labels", {{kRouterGroupLabel, group}, {"app.kubernetes.io/managed-by", kRouterManager}}}}},
          {"spec",
           {{"holderIdentity", identity},
            {"leaseDurationSeconds", std::max<int64_t>(1, secs)},
            {"acquireTime", routing::formatMicroTime(acquireTime)},
            {"renewTime", routing::formatMicroTime(renewTime)}}}};
}

// ---------------------------------------------------------------------------------

LeaseMembership::LeaseMembership(kube::ClientPtr client, MembershipConfig cfg, TimeSourcePtr time,
                                 metrics::Registry* registry, Listener onChange, int initialReplicas)
    : client_(std::move(client)),
      cfg_(std::move(cfg)),
      time_(time ? std::move(time) : RealTimeSource::instance()),
      onChange_(std::move(onChange)),
      leaseName_(memberLeaseName(cfg_.group, cfg_.identity)),
      replicas_(std::max(1, initialReplicas)) {
  if (registry) {
    errors_ = &registry->counter("waterline_router_membership_errors_total",
                                 "Failed Lease operations of router membership, by operation (renew, list, "
                                 "delete); while renew or list fail the router keeps its last member count.",
                                 {"operation"});
  }
}

LeaseMembership::~LeaseMembership() { stop(false); }

Duration LeaseMembership::renewPeriod() const {
  return std::max<Duration>(cfg_.leaseDuration / 3, std::chrono::milliseconds(100));
}

std::optional<MemberCount> LeaseMembership::lastCount() const {
  std::lock_guard g(mu_);
  return lastPublic_;
}

void LeaseMembership::fail(const char* operation, const std::string& err) {
  if (errors_) errors_->withLabels({operation}).inc();
  // One warning when failures start, then one a minute while they last.
  const auto now = time_->monotonicTime();
  if (!failing_ || now - lastFailureLog_ >= std::chrono::minutes(1)) {
    lg().warn("membership: cannot reach the apiserver; keeping the last member count",
              {{"operation", operation}, {"err", err}, {"members", replicas_.load()},
               {"lease", cfg_.ns + "/" + leaseName_}});
    lastFailureLog_ = now;
  }
  failing_ = true;
}

// Creates or renews the own Lease: an update of the object last written (one request per
// renewal), a get when it is unknown or stale (409), a create when it is gone (404).
bool LeaseMembership::renew(SystemTime now) {
  if (!acquireTime_) acquireTime_ = now;
  const json desired = memberLease(cfg_.ns, cfg_.group, cfg_.identity, cfg_.leaseDuration, *acquireTime_, now);
  std::string lastErr;
  for (int attempt = 0; attempt < 3; ++attempt) {
    if (!own_) {
      auto got = client_->get(kube::kinds::Lease, cfg_.ns, leaseName_);
      if (got) {
        own_ = *got;
      } else if (got.error().isNotFound()) {
        auto created = client_->create(kube::kinds::Lease, cfg_.ns, desired);
        if (created) {
          own_ = *created;
          return true;
        }
        lastErr = created.error().describe();
        if (created.error().isAlreadyExists()) continue;  // raced with ourselves: get it
        break;
      } else {
        lastErr = got.error().describe();
        break;
      }
    }
    json updated = *own_;
    updated["metadata"]["labels"][kRouterGroupLabel] = cfg_.group;
    updated["metadata"]["labels"]["app.kubernetes.io/managed-by"] = kRouterManager;
    // A Lease left by an earlier process with the same identity is taken over as is
    // (acquireTime: when this process first wrote it).
    updated["spec"] = desired["spec"];
    auto res = client_->update(kube::kinds::Lease, cfg_.ns, updated);
    if (res) {
      own_ = *res;
      return true;
    }
    lastErr = res.error().describe();
    if (res.error().isConflict() || res.error().isNotFound()) {
      own_.reset();  // re-read (or re-create) it
      continue;
    }
    break;
  }
  fail("renew", lastErr);
  return false;
}

bool LeaseMembership::sync() {
  std::lock_guard sg(syncMu_);
  {
    std::lock_guard g(mu_);
    nextSync_ = time_->monotonicTime() + renewPeriod();
  }
  const bool renewed = renew(time_->systemTime());
  kube::ListOptions lo;
  lo.labelSelector = std::string(kRouterGroupLabel) + "=" + cfg_.group;
  auto list = client_->list(kube::kinds::Lease, cfg_.ns, lo);
  if (!list) {
    fail("list", list.error().describe());
    return false;
  }
  MemberCount count = countLiveMembers(list->items, cfg_.group, time_->systemTime(), cfg_.clockSkew, cfg_.identity);
  if (count.malformed > 0 && (!last_ || last_->malformed != count.malformed))
    lg().warn("membership: ignoring malformed Leases in the group", {{"count", count.malformed}});
  if (failing_ && renewed) {
    lg().info("membership: apiserver reachable again", {{"members", count.replicas()}});
    failing_ = false;
  }
  const int before = replicas_.exchange(count.replicas());
  const bool changed = before != count.replicas() || !notified_;
  if (!last_ || last_->live != count.live)
    lg().info("membership: members", {{"members", count.replicas()}, {"previous", before},
                                      {"group", cfg_.group}, {"expired", count.expired}});
  last_ = count;
  {
    std::lock_guard g(mu_);
    lastPublic_ = count;
  }
  if (changed) {
    notified_ = true;
    if (onChange_) onChange_(count.replicas());
  }
  return true;
}

void LeaseMembership::start() {
  std::lock_guard g(mu_);
  if (thread_.joinable() || stopped_) return;
  thread_ = std::thread([this] { run(); });
}

void LeaseMembership::run() {
  while (!stopping_.load()) {
    {
      std::unique_lock lk(mu_);
      time_->waitUntil(lk, cv_, nextSync_, [&] { return stopping_.load(); });
      if (stopping_.load()) return;
    }
    try {
      sync();
    } catch (const std::exception& e) {
      std::lock_guard sg(syncMu_);
      fail("list", e.what());
      std::lock_guard g(mu_);
      nextSync_ = time_->monotonicTime() + renewPeriod();
    }
  }
}

void LeaseMembership::stop(bool deleteLease) {
  {
    std::lock_guard g(mu_);
    if (stopped_) return;
    stopped_ = true;
    stopping_ = true;
    cv_.notify_all();
  }
  if (thread_.joinable()) thread_.join();
  if (!deleteLease) return;
  std::lock_guard sg(syncMu_);
  if (!own_) return;  // never written
  kube::DeleteOptions opts;
  if (auto uid = (*own_)["metadata"].find("uid"); uid != (*own_)["metadata"].end() && uid->is_string())
    opts.preconditions.uid = uid->get<std::string>();
  auto res = client_->remove(kube::kinds::Lease, cfg_.ns, leaseName_, opts);
  if (!res && !res.error().isNotFound()) {
    if (errors_) errors_->withLabels({"delete"}).inc();
    lg().warn("membership: cannot delete the own Lease; the others drop this replica when it expires",
              {{"lease", cfg_.ns + "/" + leaseName_}, {"err", res.error().describe()},
               {"expires_in", std::chrono::duration_cast<std::chrono::seconds>(cfg_.leaseDuration)}});
    return;
  }
  own_.reset();
  lg().info("membership: left the group", {{"lease", cfg_.ns + "/" + leaseName_}});
}

}  // namespace waterline::router
