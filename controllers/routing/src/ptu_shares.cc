#include "waterline/routing/ptu_shares.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace waterline::routing {

std::map<std::string, double> computeShares(double limit, const std::vector<ShareReport>& reports, int64_t nowMs,
                                            const ShareParams& p) {
  std::map<std::string, const ShareReport*> live;  // one per replica: its newest fresh report
  for (const auto& r : reports) {
    if (r.replica.empty()) continue;
    if (nowMs - r.atMs > p.staleAfterMs) continue;
    auto& slot = live[r.replica];
    if (!slot || r.atMs > slot->atMs) slot = &r;
  }
  std::map<std::string, double> out;
  if (live.empty()) return out;
  const double n = static_cast<double>(live.size());
  auto sane = [](double v) { return std::isfinite(v) ? std::max(0.0, v) : 0.0; };
  if (!(limit > 0) || !std::isfinite(limit)) {
    for (const auto& [id, r] : live) out[id] = 1.0 / n;
    return out;
  }
  double used = 0, demand = 0, largest = 0;
  for (const auto& [id, r] : live) {
    used += sane(r->used);
    demand += sane(r->demandPerSec);
    largest = std::max(largest, sane(r->largest));
  }
  const double floor = std::clamp(p.floor, 0.0, 1.0);
  double extra = 0;  // spareOvercommit: added to every share after the normalisation
  if (used >= limit) {
    for (const auto& [id, r] : live) out[id] = used > 0 ? sane(r->used) / used : 1.0 / n;
  } else {
    const double room = 1.0 - used / limit;
    std::map<std::string, double> slice;  // of the room, as fractions of L
    double byDemand = room, spare = 0;
    if (p.headroom > 0 && demand > 0) {
      byDemand = std::min(room, p.headroom * demand * p.intervalSec / limit);
      spare = room - byDemand;
    }
    for (const auto& [id, r] : live) {
      double w = demand > 0 ? (1.0 - floor) * sane(r->demandPerSec) / demand + floor / n : 1.0 / n;
      slice[id] = w * byDemand + spare / n;
    }
    // Every slice at least m, taken from the slices above m in proportion to their excess.
    const double m = std::min(largest / limit, std::clamp(p.largestCap, 0.0, 1.0) * room / n);
    double deficit = 0, excess = 0;
    for (const auto& [id, v] : slice) {
      if (v < m) deficit += m - v;
      else excess += v - m;
    }
    if (deficit > 0 && excess > 0) {
      const double take = std::min(1.0, deficit / excess);
      for (auto& [id, v] : slice) v = v < m ? m : v - (v - m) * take;
    }
    for (const auto& [id, r] : live) out[id] = sane(r->used) / limit + slice[id];
    extra = std::clamp(p.spareOvercommit, 0.0, 1.0) * spare * (n - 1) / n;
  }
  // Floor at minShare, then renormalise so the shares sum to 1 (to 1 + the overcommit).
  double sum = 0;
  for (auto& [id, s] : out) {
    s = std::max(s, p.minShare);
    sum += s;
  }
  for (auto& [id, s] : out) s = std::min(1.0, s / sum + extra);
  return out;
}

std::optional<double> shareOf(const std::string& self, double limit, const std::vector<ShareReport>& reports,
                              int64_t nowMs, const ShareParams& p) {
  auto shares = computeShares(limit, reports, nowMs, p);
  auto it = shares.find(self);
  if (it == shares.end()) return std::nullopt;
  return it->second;
}

double DemandRate::update(double cumulativeTokens, int64_t nowMs) {
  if (!started_ || nowMs <= lastMs_ || cumulativeTokens < lastTotal_) {
    if (!started_ || cumulativeTokens < lastTotal_) {
      started_ = true;
      lastTotal_ = cumulativeTokens;
      lastMs_ = nowMs;
    }
    return rate_;
  }
  const double dt = static_cast<double>(nowMs - lastMs_) / 1000.0;
  const double inst = (cumulativeTokens - lastTotal_) / dt;
  const double a = tau_ > 0 ? 1.0 - std::exp(-dt / tau_) : 1.0;
  rate_ += a * (inst - rate_);
  lastTotal_ = cumulativeTokens;
  lastMs_ = nowMs;
  return rate_;
}

std::string encodeReport(const ShareReport& r) {
  char buf[160];
  std::snprintf(buf, sizeof buf, "%lld %.3f %.3f %.3f", static_cast<long long>(r.atMs), r.used, r.demandPerSec,
                r.largest);
  return buf;
}

std::optional<ShareReport> decodeReport(const std::string& replica, const std::string& value) {
  ShareReport r;
  r.replica = replica;
  const char* s = value.c_str();
  char* end = nullptr;
  long long at = std::strtoll(s, &end, 10);
  if (end == s) return std::nullopt;
  s = end;
  double used = std::strtod(s, &end);
  if (end == s) return std::nullopt;
  s = end;
  double demand = std::strtod(s, &end);
  if (end == s) return std::nullopt;
  s = end;
  double largest = std::strtod(s, &end);  // optional (older reports have three fields)
  if (end == s || !std::isfinite(largest) || largest < 0) largest = 0;
  r.largest = largest;
  if (!std::isfinite(used) || !std::isfinite(demand) || used < 0 || demand < 0) return std::nullopt;
  r.atMs = at;
  r.used = used;
  r.demandPerSec = demand;
  return r;
}

}  // namespace waterline::routing
