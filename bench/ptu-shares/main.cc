// PTU admission accuracy with several router replicas (simulated time, bounded).
//
// One PTU reservation (2,000,000 tokens/min, 10 % burst), 60 minutes of demand phases
// from 0.4x to 3x the reservation (the phases of bench/routing-sim part 2), request sizes
// from the Mooncake trace (or synthetic ones when it is missing), the router's estimate
// (prompt +-10 %, max_tokens rounded up to a power of two) settled with actual usage
// when the request ends. Each router replica runs the real AdmissionController. The load
// is uneven: replica k of N gets a Zipf(1.2) fraction of the requests, and the ranking
// rotates every phase, so the busiest replica changes every 5 minutes. Two splits:
//   static:  each replica enforces 1/N of the reservation (today's default);
//   shares:  every replica, once per --exchange-seconds (1 s, each at its own offset
//            within the second), publishes its window usage and smoothed demand to a
//            simulated store (the last report of each replica) and sets its share from
//            all the fresh reports with the real computeShares (ptu_shares.h).
// Errors, as in bench/routing-sim: over-admission is the worst 60 s window (ending
// every 100 ms) of admitted actual tokens over the limit; under-admission, at every
// refusal after the first minute, the limit minus the tokens admitted in the minute
// before minus the refused request; a 429 is false when the last minute's actual usage
// plus the request stays within the provisioned rate (without burst). With PTU_DEBUG set
// in the environment it prints every refusal whose gap exceeds 3 %. Ends with RESULT
// lines.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fstream>
#include <map>
#include <memory>
#include <queue>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ptu_sim.h"
#include "waterline/routing/admission.h"
#include "waterline/routing/ptu_shares.h"
#include "waterline/routing/table.h"

using namespace waterline;
using json = nlohmann::json;

namespace {

struct Req {
  int input = 0;
  int output = 0;
};

std::vector<Req> loadTrace(const std::string& path, bool& synthetic) {
  std::vector<Req> out;
  std::ifstream in(path);
  std::string line;
  while (in && std::getline(in, line)) {
    if (line.empty()) continue;
    json j = json::parse(line, nullptr, false);
    if (j.is_discarded()) continue;
    out.push_back({j.value("input_length", 0), j.value("output_length", 0)});
  }
  synthetic = out.empty();
  if (synthetic) {  // lognormal prompts (median ~4k), outputs (median ~200)
    std::mt19937_64 rng(7);
    std::lognormal_distribution<double> in(std::log(4000.0), 0.9), outd(std::log(200.0), 0.8);
    for (int i = 0; i < 20000; ++i)
      out.push_back({std::max(16, static_cast<int>(in(rng))), std::max(1, static_cast<int>(outd(rng)))});
  }
  return out;
}

struct Config {
  int replicas = 3;
  bool exchange = true;
  double tpm = 2'000'000;
  int burstPercent = 10;
  double estimatorError = 0.10;
  std::vector<double> phases = {0.5, 0.8, 1.5, 0.9, 2.0, 0.6, 1.2, 0.95, 3.0, 0.7, 1.1, 0.4};
  double phaseMinutes = 5;
  double exchangeSeconds = 1.0;
  double tauSeconds = 3.0;
  double zipf = 1.2;
  routing::ShareParams params;
};

struct Result {
  double maxOverPct = 0, maxUnderPct = 0, maxErrorPct = 0, meanGapPct = 0;
  size_t requests = 0, admitted = 0, throttled = 0, false429 = 0, binding = 0;
};

Result simulate(const Config& c, const std::vector<Req>& trace, std::uint64_t seed) {
  Result out;
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(0, 1);
  const double meanTokens = bench::meanRequestTokens(trace);
  const routing::RoutingTable table = bench::ptuReservationTable(c.tpm, c.burstPercent);
  const routing::DeploymentRoutes& d = table.deployments[0];
  const auto& r = d.reservations[0];
  const std::string key = r.reservation.str();
  const int n = c.replicas;
  const auto epoch = MonotonicTime(std::chrono::hours(10000));
  auto at = [&](double t) { return epoch + std::chrono::duration_cast<Duration>(std::chrono::duration<double>(t)); };
  std::vector<std::unique_ptr<routing::AdmissionController>> routers;
  for (int i = 0; i < n; ++i) {
    routers.push_back(std::make_unique<routing::AdmissionController>(routing::LimiterMode::SlidingWindow, 1.0 / n));
    routers.back()->sync(table, at(0));
  }
  const double limit = c.tpm * (1 + c.burstPercent / 100.0);

  // Uneven load: Zipf weights, rotated by one replica per phase.
  std::vector<double> zipf(static_cast<size_t>(n));
  double zs = 0;
  for (int k = 0; k < n; ++k) zs += zipf[static_cast<size_t>(k)] = 1.0 / std::pow(k + 1, c.zipf);
  for (auto& w : zipf) w /= zs;

  struct Settle {
    double t;
    int router;
    routing::Admission adm;
    double actual;
  };
  auto later = [](const Settle& a, const Settle& b) { return a.t > b.t; };
  std::priority_queue<Settle, std::vector<Settle>, decltype(later)> settles(later);
  std::vector<std::pair<double, double>> admittedEv, throttledEv;
  struct Refusal {
    int router;
    double est, share, used;
  };
  std::vector<Refusal> refusals;

  // The simulated store: each replica's last report.
  std::map<std::string, routing::ShareReport> store;
  std::vector<routing::DemandRate> rates(static_cast<size_t>(n), routing::DemandRate(c.tauSeconds));
  std::vector<std::deque<double>> largest(static_cast<size_t>(n));  // per exchange, the last minute
  std::vector<double> nextTick(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) nextTick[static_cast<size_t>(i)] = c.exchangeSeconds * (i + 0.5) / n;
  auto exchange = [&](int i, double t) {
    const auto now = at(t);
    const auto ms = static_cast<int64_t>(std::llround(t * 1000));
    auto st = routers[static_cast<size_t>(i)]->stats(now).at(key);
    const std::string id = "router-" + std::to_string(i);
    auto& lg = largest[static_cast<size_t>(i)];
    lg.push_back(routers[static_cast<size_t>(i)]->takeLargest(key));
    while (static_cast<double>(lg.size()) * c.exchangeSeconds > 60.0) lg.pop_front();
    store[id] = {id, st.used, rates[static_cast<size_t>(i)].update(st.demanded, ms), ms,
                 *std::max_element(lg.begin(), lg.end())};
    std::vector<routing::ShareReport> reports;
    for (const auto& [k, v] : store) reports.push_back(v);
    auto sh = routing::shareOf(id, st.reservationLimit, reports, ms, c.params);
    routers[static_cast<size_t>(i)]->setReservationShare(key, sh, now);
  };
  // Runs the settles and exchange ticks due up to t, in time order.
  auto advance = [&](double t) {
    while (true) {
      double ts = settles.empty() ? 1e300 : settles.top().t;
      int ti = -1;
      double tt = 1e300;
      if (c.exchange)
        for (int i = 0; i < n; ++i)
          if (nextTick[static_cast<size_t>(i)] < tt) tt = nextTick[static_cast<size_t>(i)], ti = i;
      if (std::min(ts, tt) > t) return;
      if (ts <= tt) {
        auto s = settles.top();
        settles.pop();
        routers[static_cast<size_t>(s.router)]->settle(s.adm, s.actual, at(s.t));
      } else {
        exchange(ti, tt);
        nextTick[static_cast<size_t>(ti)] += c.exchangeSeconds;
      }
    }
  };

  const double total = static_cast<double>(c.phases.size()) * c.phaseMinutes * 60.0;
  double t = 0;
  size_t ti = static_cast<size_t>(u(rng) * static_cast<double>(trace.size()));
  std::exponential_distribution<double> expo(1.0);
  while (true) {
    size_t phase = std::min(c.phases.size() - 1, static_cast<size_t>(t / (c.phaseMinutes * 60.0)));
    double ratePerSec = c.phases[phase] * c.tpm / meanTokens / 60.0;
    t += expo(rng) / ratePerSec;
    if (t >= total) break;
    advance(t);
    const auto& q = trace[ti];
    ti = (ti + 1) % trace.size();
    const double actual = q.input + std::max(1, q.output);
    int maxTokens = 256;
    while (maxTokens < q.output) maxTokens *= 2;
    const double est = std::round(q.input * (1 + c.estimatorError * (2 * u(rng) - 1))) + maxTokens;
    // Pick the replica: Zipf rank, rotated by the phase.
    double x = u(rng);
    int rank = 0;
    while (rank < n - 1 && x > zipf[static_cast<size_t>(rank)]) x -= zipf[static_cast<size_t>(rank++)];
    const int router = static_cast<int>((static_cast<size_t>(rank) + phase) % static_cast<size_t>(n));
    auto adm = routers[static_cast<size_t>(router)]->admit(d, est, at(t));
    out.requests++;
    if (adm.outcome == routing::AdmitOutcome::Admitted) {
      out.admitted++;
      admittedEv.emplace_back(t, actual);
      // Service time (only when the settlement lands): ~8k prompt tokens/s, 35 ms/token.
      const double service = 0.05 + q.input / 8000.0 + std::max(1, q.output) * 0.035;
      settles.push({t + service, router, adm, actual});
    } else {
      out.throttled++;
      throttledEv.emplace_back(t, actual);
      auto st = routers[static_cast<size_t>(router)]->stats(at(t)).at(key);
      refusals.push_back({router, est, st.share, st.used});
    }
  }
  std::vector<double> prefix(admittedEv.size() + 1, 0);
  for (size_t i = 0; i < admittedEv.size(); ++i) prefix[i + 1] = prefix[i] + admittedEv[i].second;
  auto sumIn = [&](double lo, double hi) {
    auto cmp = [](double v, const auto& e) { return v < e.first; };
    auto first = std::upper_bound(admittedEv.begin(), admittedEv.end(), lo, cmp);
    auto last = std::upper_bound(admittedEv.begin(), admittedEv.end(), hi, cmp);
    return prefix[static_cast<size_t>(last - admittedEv.begin())] - prefix[static_cast<size_t>(first - admittedEv.begin())];
  };
  for (double end = 60.0; end <= total + 1e-9; end += 0.1)
    out.maxOverPct = std::max(out.maxOverPct, (sumIn(end - 60, end) - limit) / limit * 100.0);
  double sumGap = 0;
  static const bool debug = std::getenv("PTU_DEBUG") != nullptr;
  for (size_t k = 0; k < throttledEv.size(); ++k) {
    const auto& [tt, tokens] = throttledEv[k];
    const double used = sumIn(tt - 60, tt);
    if (used + tokens <= c.tpm) out.false429++;
    if (tt < 60) continue;
    const double gap = (limit - used - tokens) / limit * 100.0;
    if (debug && gap > 3)
      std::printf("    refusal t=%.1f s replica %d est %.0f share %.4f (limit %.0f) local used %.0f global used %.0f gap %.2f %%\n", tt,
                  refusals[k].router, refusals[k].est, refusals[k].share, refusals[k].share * limit, refusals[k].used, used, gap);
    out.maxUnderPct = std::max(out.maxUnderPct, gap);
    sumGap += std::max(0.0, (limit - used) / limit * 100.0);
    out.binding++;
  }
  out.meanGapPct = out.binding ? sumGap / static_cast<double>(out.binding) : 0;
  out.maxErrorPct = std::max(out.maxOverPct, out.maxUnderPct);
  return out;
}

void print(const char* label, const Result& r) {
  std::printf("  %-34s worst error %6.2f %% (over %6.2f %%, under %6.2f %%), false 429 %5zu, refusals %6zu of %zu, "
              "mean gap at refusals %.2f %%\n",
              label, r.maxErrorPct, r.maxOverPct, r.maxUnderPct, r.false429, r.throttled, r.requests, r.meanGapPct);
}

}  // namespace

int main(int argc, char** argv) {
  std::string dataDir = "/work/shared/data";
  std::uint64_t seed = 1;
  Config base;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto val = [&](const char* name) -> const char* {
      size_t k = std::strlen(name);
      if (a.compare(0, k, name) == 0 && a.size() > k && a[k] == '=') return argv[i] + k + 1;
      return nullptr;
    };
    if (auto v = val("--data-dir")) dataDir = v;
    else if (auto v2 = val("--seed")) seed = std::strtoull(v2, nullptr, 10);
    else if (auto v3 = val("--floor")) base.params.floor = std::clamp(std::atof(v3), 0.0, 1.0);
    else if (auto v4 = val("--tau")) base.tauSeconds = std::clamp(std::atof(v4), 0.0, 60.0);
    else if (auto v5 = val("--exchange-seconds")) base.exchangeSeconds = std::clamp(std::atof(v5), 0.1, 30.0);
    else if (auto v6 = val("--zipf")) base.zipf = std::clamp(std::atof(v6), 0.0, 4.0);
    else if (auto v8 = val("--headroom")) base.params.headroom = std::clamp(std::atof(v8), 0.0, 1000.0);
    else if (auto v9 = val("--largest-cap")) base.params.largestCap = std::clamp(std::atof(v9), 0.0, 1.0);
    else if (auto v10 = val("--spare-overcommit")) base.params.spareOvercommit = std::clamp(std::atof(v10), 0.0, 1.0);
    else if (auto v7 = val("--tpm")) base.tpm = std::clamp(std::atof(v7), 100'000.0, 100'000'000.0);
    else {
      std::fprintf(stderr, "usage: ptu_shares_bench [--data-dir=DIR] [--seed=N] [--floor=F] [--tau=S] "
                           "[--exchange-seconds=S] [--zipf=S] [--tpm=TOKENS_PER_MIN]\n");
      return 2;
    }
  }
  bool synthetic = false;
  auto trace = loadTrace(dataDir + "/mooncake_conversation_trace.jsonl", synthetic);
  std::printf("ptu-shares: %zu request sizes (%s), reservation %.0f tokens/min + %d %% burst, %zu phases x %.0f min, "
              "exchange every %.1f s, demand time constant %.1f s, floor %.2f, headroom %.1f, Zipf %.1f across "
              "replicas (rotating every phase)\n",
              trace.size(), synthetic ? "synthetic: no Mooncake trace in --data-dir" : "Mooncake trace", base.tpm,
              base.burstPercent, base.phases.size(), base.phaseMinutes, base.exchangeSeconds, base.tauSeconds,
              base.params.floor, base.params.headroom, base.zipf);
  base.params.intervalSec = base.exchangeSeconds;
  std::map<int, Result> shares;
  for (int n : {1, 3, 10}) {
    Config s = base;
    s.replicas = n;
    s.exchange = false;
    auto st = simulate(s, trace, seed + 11);
    s.exchange = true;
    auto ex = simulate(s, trace, seed + 11);
    shares[n] = ex;
    std::printf("%d replica%s:\n", n, n > 1 ? "s" : "");
    print("static 1/N split:", st);
    print("demand-aware shares (1 s exchange):", ex);
  }
  // The experimental spare overcommit (--ptu-share-overcommit), for comparison.
  std::map<int, Result> over;
  if (base.params.spareOvercommit == 0) {
    std::printf("with --spare-overcommit=0.5 (experimental; the shares may sum to more than 1 while the room exceeds "
                "twice the demand of an interval):\n");
    for (int n : {3, 10}) {
      Config s = base;
      s.replicas = n;
      s.params.spareOvercommit = 0.5;
      over[n] = simulate(s, trace, seed + 11);
      std::printf("%d replicas:\n", n);
      print("demand-aware shares, overcommit 0.5:", over[n]);
    }
  }
  std::printf("RESULT ptu_admitted_error_pct_3_replicas %.2f %%\n", shares[3].maxErrorPct);
  std::printf("RESULT ptu_admitted_error_pct_10_replicas %.2f %%\n", shares[10].maxErrorPct);
  std::printf("RESULT ptu_false_429_3_replicas %zu count\n", shares[3].false429);
  std::printf("RESULT ptu_false_429_10_replicas %zu count\n", shares[10].false429);
  if (!over.empty()) {
    std::printf("RESULT ptu_admitted_error_pct_3_replicas_overcommit %.2f %%\n", over[3].maxErrorPct);
    std::printf("RESULT ptu_admitted_error_pct_10_replicas_overcommit %.2f %%\n", over[10].maxErrorPct);
    std::printf("RESULT ptu_false_429_3_replicas_overcommit %zu count\n", over[3].false429);
    std::printf("RESULT ptu_over_admission_pct_10_replicas_overcommit %.2f %%\n", over[10].maxOverPct);
  }
  return 0;
}
