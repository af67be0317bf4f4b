#include "waterline/routing/selection.h"

#include <algorithm>
#include <cmath>
#include <tuple>

namespace waterline::routing {

bool poolAllowed(const DeploymentRoutes& d, const RoutingEntry& e) {
  switch (d.deploymentType) {
    case api::DeploymentType::Standard: return !d.region.empty() && e.region == d.region;
    case api::DeploymentType::DataZone: return !d.dataZone.empty() && e.dataZone == d.dataZone;
    case api::DeploymentType::Global: return true;
  }
  return false;
}

bool isFresh(const RoutingEntry& e, SystemTime now, Duration staleAfter) {
  if (staleAfter <= Duration::zero()) return true;
  return now - e.heartbeatTime <= staleAfter;
}

bool inScope(const api::ReservationScope& scope, const RoutingEntry& e) {
  switch (scope.type) {
    case api::ScopeType::Regional: return scope.region && e.region == *scope.region;
    case api::ScopeType::DataZone: return scope.dataZone && e.dataZone == *scope.dataZone;
    case api::ScopeType::Global: return true;
  }
  return false;
}

namespace {

double draw(const RandomFn& rand) {
  if (!rand) return 0.0;
  double r = rand();
  if (!(r >= 0.0)) r = 0.0;  // NaN and negatives
  if (r >= 1.0) r = std::nextafter(1.0, 0.0);
  return r;
}

// An entry with its effective utilization (published + the caller's adjustment) and,
// in latency mode, its TTFT estimate.
struct Cand {
  const RoutingEntry* e;
  double u;
  double est = 0;
};

bool lowerEstimate(const Cand& a, const Cand& b) {
  return std::tie(a.est, a.u, a.e->cluster, a.e->pool) < std::tie(b.est, b.u, b.e->cluster, b.e->pool);
}

bool lessUtilised(const Cand& a, const Cand& b) {
  return std::tie(a.u, a.e->cluster, a.e->pool) < std::tie(b.u, b.e->cluster, b.e->pool);
}

// Weighted pick of one index in `group` (by entry weight).
size_t weightedTake(const std::vector<Cand>& group, const RandomFn& rand) {
  double total = 0;
  for (const auto& c : group) total += c.e->weight;
  double r = draw(rand) * total;
  size_t pick = group.size() - 1;
  double acc = 0;
  for (size_t i = 0; i < group.size(); ++i) {
    acc += group[i].e->weight;
    if (r < acc) {
      pick = i;
      break;
    }
  }
  return pick;
}

// Orders `eligible` (sorted by utilization) so that the P2C primary comes first.
void orderWithP2C(std::vector<Cand>& eligible, double epsilon, const RandomFn& rand) {
  if (eligible.size() < 2) return;
  const double floor = eligible.front().u;
  size_t n = 0;
  while (n < eligible.size() && eligible[n].u <= floor + epsilon) ++n;
  if (n < 2) return;
  std::vector<Cand> group(eligible.begin(), eligible.begin() + static_cast<long>(n));
  size_t i = weightedTake(group, rand);
  const Cand a = group[i];
  group.erase(group.begin() + static_cast<long>(i));
  size_t j = weightedTake(group, rand);
  const Cand b = group[j];
  const RoutingEntry* primary = b.u < a.u ? b.e : a.e;
  auto it = std::find_if(eligible.begin(), eligible.end(), [&](const Cand& c) { return c.e == primary; });
  std::rotate(eligible.begin(), it, it + 1);
}

// Latency mode: orders `c` (sorted by estimate) so that the primary comes first: the
// locality group (client region, else zone, else all) within the tolerance of the best,
// then power-of-two choices among that group's near-equals.
void orderByLatency(std::vector<Cand>& c, const LatencyModel& m, const RandomFn& rand) {
  if (c.size() < 2) return;
  const double best = c.front().est;
  auto groupOf = [&](auto pred) {
    std::vector<Cand> g;
    for (const auto& x : c)
      if (x.est <= best + m.localToleranceMs && pred(*x.e)) g.push_back(x);
    return g;
  };
  std::vector<Cand> group;
  if (!m.clientRegion.empty()) group = groupOf([&](const RoutingEntry& e) { return e.region == m.clientRegion; });
  if (group.empty() && !m.clientZone.empty())
    group = groupOf([&](const RoutingEntry& e) { return e.dataZone == m.clientZone; });
  if (group.empty()) group = c;
  // group is sorted by estimate (c was)
  const double floor = group.front().est;
  size_t n = 0;
  while (n < group.size() && group[n].est <= floor + m.nearEqualMs) ++n;
  group.resize(n);
  const RoutingEntry* primary = group.front().e;
  if (n >= 2) {
    size_t i = weightedTake(group, rand);
    const Cand a = group[i];
    group.erase(group.begin() + static_cast<long>(i));
    size_t j = weightedTake(group, rand);
    const Cand b = group[j];
    primary = b.est < a.est ? b.e : a.e;
  }
  auto it = std::find_if(c.begin(), c.end(), [&](const Cand& x) { return x.e == primary; });
  std::rotate(c.begin(), it, it + 1);
}

}  // namespace

double rttMs(const LatencyModel& m, const std::string& clientRegion, const std::string& clientZone,
             const RoutingEntry& e) {
  if (auto it = m.rttMs.find({clientRegion, e.region}); it != m.rttMs.end()) return it->second;
  if (auto it = m.rttMs.find({e.region, clientRegion}); it != m.rttMs.end()) return it->second;
  if (!clientRegion.empty() && e.region == clientRegion) return m.sameRegionRttMs;
  if (!clientZone.empty() && e.dataZone == clientZone) return m.sameZoneRttMs;
  return m.crossZoneRttMs;
}

TtftEstimate estimateTtft(const LatencyModel& m, const RoutingEntry& e, double promptTokens, double extraQueuedTokens,
                          Duration sinceHeartbeat) {
  TtftEstimate out;
  out.networkMs = rttMs(m, m.clientRegion, m.clientZone, e);
  const double prefillRate = e.prefillTokensPerSecond > 0 ? e.prefillTokensPerSecond : m.prefillTokensPerSecond;
  if (prefillRate > 0 && promptTokens > 0 && std::isfinite(promptTokens)) out.prefillMs = promptTokens / prefillRate * 1000.0;
  const double perSecond = e.capacityTokensPerMinute / 60.0;
  if (perSecond > 0 && std::isfinite(perSecond)) {
    double queued = e.queuedTokens > 0 ? e.queuedTokens : e.queuedRequests * m.meanRequestTokens;
    if (std::isfinite(extraQueuedTokens) && extraQueuedTokens > 0) queued += extraQueuedTokens;
    const double dt = std::max(0.0, std::chrono::duration<double>(sinceHeartbeat).count());
    const double spare = std::max(0.0, perSecond - e.loadTokensPerMinute / 60.0);
    queued = std::max(0.0, queued - spare * dt);
    if (std::isfinite(queued)) out.queueMs = queued / perSecond * 1000.0;
  }
  return out;
}

PoolChoice choosePools(const DeploymentRoutes& d, SystemTime now, const SelectionOptions& opts,
                       const RandomFn& rand, const std::optional<api::ReservationScope>& preferred,
                       const UtilizationAdjustFn& adjust, double promptTokens) {
  PoolChoice out;
  const bool byLatency = opts.latency.enabled;
  std::vector<const RoutingEntry*> allowed;
  allowed.reserve(d.entries.size());
  for (const auto& e : d.entries)
    if (poolAllowed(d, e)) allowed.push_back(&e);
  out.allowed = allowed.size();

  std::vector<const RoutingEntry*> fresh;
  fresh.reserve(allowed.size());
  for (auto* e : allowed)
    if (isFresh(*e, now, opts.staleAfter)) fresh.push_back(e);
  out.fresh = fresh.size();
  if (fresh.empty() && opts.panicWhenAllStale && !allowed.empty()) {
    fresh = allowed;
    out.usedStale = true;
  }

  std::vector<Cand> inPref, outPref, saturated;
  for (auto* e : fresh) {
    if (!e->healthy || e->endpoints.empty()) continue;
    const double extra = adjust ? std::max(0.0, adjust(*e)) : 0.0;  // an infinite one saturates
    const double u = e->utilization + extra;
    const bool under = u < e->maxUtilization && e->weight > 0 && std::isfinite(u);
    if (!under) {
      saturated.push_back({e, u});
      continue;
    }
    Cand c{e, u};
    if (byLatency) {
      const auto est =
          estimateTtft(opts.latency, *e, promptTokens, std::isfinite(extra) ? extra * e->capacityTokensPerMinute : 0.0,
                       now - e->heartbeatTime);
      c.est = est.totalMs();
      const bool remote = e->region != opts.latency.clientRegion || opts.latency.clientRegion.empty();
      if ((opts.latency.maxQueueMs > 0 && est.queueMs > opts.latency.maxQueueMs) ||
          (remote && opts.latency.maxRemoteQueueMs > 0 && est.queueMs > opts.latency.maxRemoteQueueMs)) {
        saturated.push_back(c);
        continue;
      }
    }
    if (preferred && !inScope(*preferred, *e)) outPref.push_back(c);
    else inPref.push_back(c);
  }
  const auto order = byLatency ? lowerEstimate : lessUtilised;
  std::sort(inPref.begin(), inPref.end(), order);
  std::sort(outPref.begin(), outPref.end(), order);
  std::sort(saturated.begin(), saturated.end(), [](const Cand& a, const Cand& b) {
    // Usable (weight > 0) before drained, then least utilised.
    if ((a.e->weight > 0) != (b.e->weight > 0)) return a.e->weight > 0;
    return lessUtilised(a, b);
  });
  auto& first = !inPref.empty() ? inPref : outPref;
  if (byLatency) orderByLatency(first, opts.latency, rand);
  else orderWithP2C(first, opts.epsilon, rand);
  out.order.reserve(inPref.size() + outPref.size());
  for (const auto& c : inPref) out.order.push_back(c.e);
  for (const auto& c : outPref) out.order.push_back(c.e);
  for (const auto& c : saturated) out.saturated.push_back(c.e);
  return out;
}

void LocalLoad::add(const std::string& key, SystemTime heartbeat, double tokens) {
  auto& s = sent_[key];
  if (s.heartbeat != heartbeat) {
    s.heartbeat = heartbeat;
    s.tokens = 0;
  }
  s.tokens += std::max(0.0, tokens);
}

double LocalLoad::extraUtilization(const std::string& key, SystemTime heartbeat, double capacityTokensPerMinute) const {
  auto it = sent_.find(key);
  if (it == sent_.end() || it->second.heartbeat != heartbeat || !(capacityTokensPerMinute > 0)) return 0;
  return it->second.tokens / capacityTokensPerMinute;
}

void LocalLoad::prune(SystemTime before) {
  std::erase_if(sent_, [&](const auto& kv) { return kv.second.heartbeat < before; });
}

std::optional<std::size_t> pickEndpoint(const RoutingEntry& e, const InflightFn& inflight,
                                        const RandomFn& rand, const SkipFn& skip) {
  const size_t n = e.endpoints.size();
  if (n == 0) return std::nullopt;
  std::vector<size_t> usable;
  usable.reserve(n);
  for (size_t i = 0; i < n; ++i)
    if (!skip || !skip(e.endpoints[i])) usable.push_back(i);
  if (usable.empty())
    for (size_t i = 0; i < n; ++i) usable.push_back(i);
  if (usable.size() == 1) return usable.front();
  size_t a = static_cast<size_t>(draw(rand) * static_cast<double>(usable.size()));
  size_t b = static_cast<size_t>(draw(rand) * static_cast<double>(usable.size() - 1));
  if (b >= a) ++b;
  a = usable[std::min(a, usable.size() - 1)];
  b = usable[std::min(b, usable.size() - 1)];
  if (!inflight) return a;
  return inflight(e.endpoints[b]) < inflight(e.endpoints[a]) ? b : a;
}

}  // namespace waterline::routing
