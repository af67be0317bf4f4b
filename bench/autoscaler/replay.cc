#include "replay.h"

#include <algorithm>
#include <cmath>
#include <deque>
#include <limits>
#include <map>
#include <set>
#include <string>
#include <numbers>

namespace waterline::bench {

double profileAt(Profile p, double t) {
  if (p == Profile::Flat) return 1.0;
  if (p == Profile::FlashCrowd) {
    const double len = 120, ramp = 10, peak = 2.2;
    for (double start : {450.0, 1350.0, 2250.0, 3150.0}) {
      if (t < start || t > start + len) continue;
      const double x = t - start;
      double frac = 1.0;
      if (x < ramp) frac = x / ramp;
      else if (x > len - ramp) frac = (len - x) / ramp;
      return 1.0 + (peak - 1.0) * frac;
    }
    return 1.0;
  }
  double f = 1.0 + 0.5 * std::sin(2 * std::numbers::pi * t / 1800.0 - std::numbers::pi / 2);
  auto surge = [&](double start) {
    const double len = 150, ramp = 30, peak = 1.6;
    if (t < start || t > start + len) return 1.0;
    const double x = t - start;
    double frac = 1.0;
    if (x < ramp) frac = x / ramp;
    else if (x > len - ramp) frac = (len - x) / ramp;
    return 1.0 + (peak - 1.0) * frac;
  };
  return f * surge(1200) * surge(2820);
}

std::vector<sim::SimRequest> warpTrace(const std::vector<sim::SimRequest>& trace, const LoadConfig& cfg) {
  std::vector<sim::SimRequest> out;
  if (trace.empty()) return out;
  const double last = trace.back().arrival;
  const double period = last + (trace.size() > 1 ? last / double(trace.size() - 1) : 1.0);
  double tau = std::max(0.0, cfg.traceOffset);  // trace position (trace seconds, unlooped)
  int loop = static_cast<int>(tau / period);
  size_t idx = 0;
  while (idx < trace.size() && trace[idx].arrival + loop * period < tau) ++idx;
  const int steps = static_cast<int>(std::ceil(cfg.duration));
  for (int k = 0; k < steps; ++k) {
    const double speed = cfg.baseSpeed * profileAt(cfg.profile, k + 0.5);
    const double tau1 = tau + speed;
    for (;;) {
      if (idx >= trace.size()) {
        idx = 0;
        ++loop;
      }
      const double at = trace[idx].arrival + loop * period;
      if (at >= tau1) break;
      sim::SimRequest r = trace[idx];
      r.arrival = k + (at - tau) / speed;
      r.id = out.size();
      out.push_back(r);
      ++idx;
    }
    tau = tau1;
  }
  return out;
}

std::vector<double> workPerSecond(const std::vector<sim::SimRequest>& reqs, const LoadConfig& cfg) {
  std::vector<double> w(static_cast<size_t>(std::ceil(cfg.duration)), 0.0);
  for (const auto& r : reqs) {
    const auto k = static_cast<size_t>(r.arrival);
    if (k < w.size()) w[k] += r.inputTokens + cfg.outputWeight * r.outputTokens;
  }
  return w;
}

std::vector<double> trailingDemand(const std::vector<double>& work, int window) {
  std::vector<double> d(work.size(), 0.0);
  double sum = 0;
  window = std::max(1, window);
  for (size_t k = 0; k < work.size(); ++k) {
    sum += work[k];
    if (k >= static_cast<size_t>(window)) sum -= work[k - window];
    const double span = std::min<double>(window, double(k + 1));
    d[k] = sum / span;
  }
  return d;
}

namespace {

void countEvent(ReplayResult& res, int& lastDir, int32_t from, int32_t to) {
  if (to == from) return;
  ++res.scaleEvents;
  const int dir = to > from ? 1 : -1;
  if (dir > 0) ++res.scaleUps;
  else ++res.scaleDowns;
  if (lastDir != 0 && dir != lastDir) ++res.reversals;
  lastDir = dir;
}

}  // namespace

ReplayResult combine(const std::vector<ReplayResult>& runs) {
  ReplayResult out;
  if (runs.empty()) return out;
  out.name = runs.front().name;
  const double n = double(runs.size());
  for (const auto& r : runs) {
    out.gpuHours += r.gpuHours;
    out.scaleEvents += r.scaleEvents;
    out.scaleUps += r.scaleUps;
    out.scaleDowns += r.scaleDowns;
    out.reversals += r.reversals;
    out.completed += r.completed;
    out.failed += r.failed;
    out.maxReplicasSeen = std::max(out.maxReplicasSeen, r.maxReplicasSeen);
    out.maxBacklogSeconds = std::max(out.maxBacklogSeconds, r.maxBacklogSeconds);
    out.underprovisionedPct += r.underprovisionedPct / n;
    out.backlogOverSlaPct += r.backlogOverSlaPct / n;
    out.meanReplicas += r.meanReplicas / n;
    out.ttftP50 += r.ttftP50 / n;
    out.ttftP99 += r.ttftP99 / n;
    out.slowTtftPct += r.slowTtftPct / n;
  }
  return out;
}

ReplayResult replay(const std::string& name, const std::vector<double>& work, const ReplayConfig& cfg,
                    int32_t initialReplicas, const Rule& rule) {
  ReplayResult res;
  res.name = name;
  const size_t n = work.size();
  const auto demand = trailingDemand(work, cfg.demandWindow);
  // Prometheus: a counter of weighted tokens, scraped every scrapeInterval.
  std::vector<std::pair<int, double>> scrapes;  // (time, counter)
  double counter = 0;
  std::deque<double> readyAt;  // one per existing replica (creation order)
  for (int i = 0; i < initialReplicas; ++i) readyAt.push_back(0);
  int32_t desired = initialReplicas;
  double gpuSeconds = 0, backlog = 0;
  long under = 0, overSla = 0;
  double replicaSeconds = 0;
  int lastDir = 0;
  double lastMetric = std::numeric_limits<double>::quiet_NaN();
  for (size_t k = 0; k < n; ++k) {
    const double t = double(k);
    // The metric pipeline sees the counter at scrape times.
    if (static_cast<int>(k) % cfg.scrapeInterval == 0) scrapes.push_back({static_cast<int>(k), counter});
    int32_t ready = 0;
    for (double r : readyAt)
      if (r <= t) ++ready;
    if (k > 0 && static_cast<int>(k) % cfg.queryPeriod == 0) {
      Observation o;
      o.now = t;
      o.current = desired;
      o.ready = ready;
      o.existing = static_cast<int32_t>(readyAt.size());
      // rate(counter[rateWindow]) at the last scrape: first and last scrapes inside the
      // window, extrapolated to the window (Prometheus' rate() roughly).
      const int s1 = scrapes.back().first;
      const double c1 = scrapes.back().second;
      std::optional<std::pair<int, double>> first;
      for (const auto& s : scrapes)
        if (s.first > s1 - cfg.rateWindow) {
          first = s;
          break;
        }
      if (first && first->first < s1) o.total = (c1 - first->second) / double(s1 - first->first);
      o.podsWithMetrics = ready;
      o.podsTotal = o.total;
      lastMetric = o.total ? *o.total : std::numeric_limits<double>::quiet_NaN();
      const int32_t want = std::clamp(rule(o), 0, cfg.maxReplicas);
      countEvent(res, lastDir, desired, want);
      desired = want;
      // Converge the fleet: create new replicas (ready after the startup delay) or
      // delete: not-ready ones first (as a ReplicaSet does), then the newest.
      while (static_cast<int32_t>(readyAt.size()) < desired) readyAt.push_back(t + cfg.startupSeconds);
      while (static_cast<int32_t>(readyAt.size()) > desired) {
        auto it = std::find_if(readyAt.rbegin(), readyAt.rend(), [&](double r) { return r > t; });
        if (it != readyAt.rend()) readyAt.erase(std::next(it).base());
        else readyAt.pop_back();
      }
      ready = 0;
      for (double r : readyAt)
        if (r <= t) ++ready;
    }
    counter += work[k];
    // Accounting for second k.
    gpuSeconds += double(readyAt.size()) * cfg.gpusPerReplica;
    replicaSeconds += double(readyAt.size());
    res.maxReplicasSeen = std::max<int>(res.maxReplicasSeen, static_cast<int>(readyAt.size()));
    const double cap = ready * cfg.capacityPerReplica;
    if (demand[k] > cap) ++under;
    backlog = std::max(0.0, backlog + work[k] - cap);
    const double delay = cap > 0 ? backlog / cap : (backlog > 0 ? 1e9 : 0);
    if (delay > cfg.backlogSlaSeconds) ++overSla;
    res.maxBacklogSeconds = std::max(res.maxBacklogSeconds, std::min(delay, 1e6));
    res.desiredTrace.push_back(desired);
    res.readyTrace.push_back(ready);
    res.metricTrace.push_back(lastMetric);
  }
  res.gpuHours = gpuSeconds / 3600.0;
  res.underprovisionedPct = n ? 100.0 * double(under) / double(n) : 0;
  res.backlogOverSlaPct = n ? 100.0 * double(overSla) / double(n) : 0;
  res.meanReplicas = n ? replicaSeconds / double(n) : 0;
  return res;
}

ReplayResult replayFleet(const std::string& name, const std::vector<sim::SimRequest>& reqs,
                         const std::vector<double>& work, const sim::PerfModel& perf, const FleetConfig& fc,
                         const ReplayConfig& cfg, int32_t initialReplicas, const Rule& rule) {
  ReplayResult res;
  res.name = name;
  const size_t n = work.size();
  const auto demand = trailingDemand(work, cfg.demandWindow);
  sim::FleetOptions fo;
  fo.startupSeconds = cfg.startupSeconds;
  fo.worker = fc.params;
  sim::Fleet fleet(perf, fo, nullptr);

  std::vector<std::string> pods;  // creation order
  int nextPod = 0;
  auto specs = [&] {
    std::vector<sim::WorkerSpec> out;
    for (const auto& p : pods) {
      sim::WorkerSpec w = fc.worker;
      w.pod = p;
      out.push_back(std::move(w));
    }
    return out;
  };
  auto addPod = [&] { pods.push_back(name + "-" + std::to_string(nextPod++)); };
  for (int i = 0; i < initialReplicas; ++i) addPod();
  fleet.sync(specs(), -cfg.startupSeconds);  // created a startup ago: ready at t = 0

  std::vector<double> ttfts;
  ttfts.reserve(reqs.size());
  uint64_t slow = 0;
  auto done = [&](const sim::Completion& c) {
    if (c.failed) {
      ++res.failed;
      return;
    }
    ++res.completed;
    const double ttft = c.firstToken - c.arrival;
    ttfts.push_back(ttft);
    if (ttft > fc.ttftSlo) ++slow;
  };

  int32_t desired = initialReplicas;
  std::optional<double> lastScrape;
  std::map<std::string, double> podScrape;  // per-pod values of the last scrape
  double gpuSeconds = 0, replicaSeconds = 0, backlog = 0;
  long under = 0, overSla = 0;
  int lastDir = 0;
  double lastMetric = std::numeric_limits<double>::quiet_NaN();
  size_t next = 0;
  for (size_t k = 0; k < n; ++k) {
    const double t = double(k);
    fleet.advanceTo(t);
    if (static_cast<int>(k) % cfg.scrapeInterval == 0) {
      double inflight = 0;
      podScrape.clear();
      for (const auto& s : fleet.status()) {
        inflight += s.running + s.waiting;
        // a worker serves /metrics once it is up (ready); a deleted one is being drained
        if (s.ready && !s.draining) podScrape[s.spec.pod] = s.running + s.waiting;
      }
      lastScrape = inflight;
    }
    if (k > 0 && static_cast<int>(k) % cfg.queryPeriod == 0) {
      Observation o;
      o.now = t;
      o.current = desired;
      o.total = lastScrape;
      o.ready = static_cast<int32_t>(fleet.readyWorkers());
      o.existing = static_cast<int32_t>(pods.size());
      if (lastScrape) {
        double sum = 0;
        for (const auto& p : pods)
          if (auto it = podScrape.find(p); it != podScrape.end()) {
            sum += it->second;
            ++o.podsWithMetrics;
          }
        o.podsTotal = sum;
      }
      lastMetric = o.total ? *o.total : std::numeric_limits<double>::quiet_NaN();
      const int32_t want = std::clamp(rule(o), 0, cfg.maxReplicas);
      countEvent(res, lastDir, desired, want);
      desired = want;
      if (static_cast<int32_t>(pods.size()) != desired) {
        while (static_cast<int32_t>(pods.size()) < desired) addPod();
        // not-ready first (as a ReplicaSet does), then the newest; the fleet's status is
        // read once (reading it per candidate made a large scale-down cubic)
        std::set<std::string> notReady;
        if (static_cast<int32_t>(pods.size()) > desired)
          for (const auto& s : fleet.status())
            if (!s.ready) notReady.insert(s.spec.pod);
        while (static_cast<int32_t>(pods.size()) > desired) {
          auto it = std::find_if(pods.rbegin(), pods.rend(), [&](const std::string& p) { return notReady.count(p) > 0; });
          if (it != pods.rend()) {
            notReady.erase(*it);
            pods.erase(std::next(it).base());
          } else {
            pods.pop_back();
          }
        }
        fleet.sync(specs(), t);
      }
    }
    // Arrivals of this second, in order.
    while (next < reqs.size() && reqs[next].arrival < t + 1) {
      const auto& r = reqs[next++];
      if (!fleet.submit(r, std::max(r.arrival, fleet.now()), {}, {}, done)) ++res.failed;
    }
    fleet.advanceTo(t + 1);
    // Accounting for second k (draining replicas still hold their GPUs).
    const auto st = fleet.status();
    int32_t ready = 0;
    for (const auto& s : st)
      if (s.ready) ++ready;
    gpuSeconds += double(st.size()) * cfg.gpusPerReplica;
    replicaSeconds += double(st.size());
    res.maxReplicasSeen = std::max<int>(res.maxReplicasSeen, static_cast<int>(st.size()));
    const double cap = ready * cfg.capacityPerReplica;
    if (demand[k] > cap) ++under;
    backlog = std::max(0.0, backlog + work[k] - cap);
    const double delay = cap > 0 ? backlog / cap : (backlog > 0 ? 1e9 : 0);
    if (delay > cfg.backlogSlaSeconds) ++overSla;
    res.maxBacklogSeconds = std::max(res.maxBacklogSeconds, std::min(delay, 1e6));
    res.desiredTrace.push_back(desired);
    res.readyTrace.push_back(ready);
    res.metricTrace.push_back(lastMetric);
  }
  res.gpuHours = gpuSeconds / 3600.0;
  res.underprovisionedPct = n ? 100.0 * double(under) / double(n) : 0;
  res.backlogOverSlaPct = n ? 100.0 * double(overSla) / double(n) : 0;
  res.meanReplicas = n ? replicaSeconds / double(n) : 0;
  if (!ttfts.empty()) {
    std::sort(ttfts.begin(), ttfts.end());
    res.ttftP50 = ttfts[ttfts.size() / 2];
    res.ttftP99 = ttfts[std::min(ttfts.size() - 1, ttfts.size() * 99 / 100)];
  }
  res.slowTtftPct = res.completed ? 100.0 * double(slow) / double(res.completed) : 0;
  return res;
}

}  // namespace waterline::bench
