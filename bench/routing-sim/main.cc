// Routing simulation (discrete events, simulated time, no sleeping).
//
// Part 1 compares Standard, DataZone and Global routing in two regimes:
//   - regions (default eu-west and eu-north in EU, us-east in US; 6/4/6 replicas of
//     llama2-70b on H100, tensor parallel 4), one CapacityPool each;
//   - each region's clients replay a trace in the shared JSONL shape (--trace; arrival
//     times and token counts), time-compressed so that the region's demand at its peak
//     hour is --peak-load x its capacity (x --region-load, relative), and thinned by a
//     daily curve peaking at the region's hour (--peak-hours);
//   - a replica's capacity is measured, not assumed: one replica of the worker model
//     below, kept saturated with the trace's own requests, gives the requests/s and
//     tokens/min it sustains (continuous batching, KV cache and batch limits included);
//   - worker model (Splitwise performance model): FCFS queue; a request starts when the
//     batch has a free slot (at most the largest measured batch size) and the KV cache
//     holds its prompt + output tokens; prefills run one at a time and pause decoding
//     (vLLM's scheduler without chunked prefill); decoding advances every request in the
//     batch one token per step, a step taking the measured token time at that batch size;
//   - prompts beyond the model's largest measured prompt size are prefilled in chunks of
//     that size, each at its measured time (--long-prompts=chunk; a lower bound, the
//     attention over earlier chunks is not charged), or dropped from the trace
//     (--long-prompts=drop); the share of such prompts is printed;
//   - the router is the real controllers/routing code: choosePools with the latency
//     model (--choice=latency, default) or least utilisation (--choice=utilization),
//     and pickEndpoint; one router per client region; the operator publishes each
//     pool's utilisation (trailing-minute routed tokens / capacity) and its queue every
//     --publish-seconds;
//   - a request that finds no allowed pool under maxUtilization gets 429;
//   - TTFT = RTT + queueing + prefill; e2e = TTFT + decode.
// Part 2 measures PTU admission accuracy: the real AdmissionController (sliding-window
// limiter), charged with an estimate (prompt with +-10% estimator error + the client's
// max_tokens) and settled with actual usage when the response completes, against a
// demand that alternates phases below and above the reservation.
//
// Ends with RESULT lines. Inputs: /work/shared/data (see its README); both are cited in
// docs/performance.md.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <deque>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <numeric>
#include <queue>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ptu_sim.h"
#include "waterline/routing/admission.h"
#include "waterline/routing/selection.h"
#include "waterline/routing/table.h"

using namespace waterline;
using json = nlohmann::json;

namespace {

// ---- inputs ----------------------------------------------------------------------

struct TraceReq {
  double tMs = 0;
  int input = 0;
  int output = 0;
};

std::vector<TraceReq> loadTrace(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    std::fprintf(stderr, "routing-sim: cannot open %s\n", path.c_str());
    std::exit(2);
  }
  std::vector<TraceReq> out;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    json j = json::parse(line, nullptr, false);
    if (j.is_discarded()) continue;
    out.push_back({j.value("timestamp", 0.0), j.value("input_length", 0), j.value("output_length", 0)});
  }
  std::sort(out.begin(), out.end(), [](const TraceReq& a, const TraceReq& b) { return a.tMs < b.tMs; });
  return out;
}

// Piecewise-linear interpolation over sorted (x, y) points, linear extrapolation beyond.
struct Curve {
  std::vector<std::pair<double, double>> pts;
  double at(double x) const {
    if (pts.empty()) return 0;
    if (pts.size() == 1) return pts[0].second;
    size_t i = 1;
    while (i + 1 < pts.size() && x > pts[i].first) ++i;
    auto [x0, y0] = pts[i - 1];
    auto [x1, y1] = pts[i];
    double y = y0 + (y1 - y0) * (x - x0) / (x1 - x0);
    return std::max(y, 0.0);
  }
};

struct PerfModel {
  Curve prefillMs;   // by prompt tokens (batch 1)
  Curve tokenMs;     // per output token, by batch size
  std::string label;
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

PerfModel loadPerf(const std::string& path, const std::string& model, const std::string& hw, const std::string& tp) {
  std::ifstream in(path);
  if (!in) {
    std::fprintf(stderr, "routing-sim: cannot open %s\n", path.c_str());
    std::exit(2);
  }
  std::string header;
  std::getline(in, header);
  std::vector<std::string> cols;
  {
    std::stringstream ss(header);
    std::string c;
    while (std::getline(ss, c, ',')) cols.push_back(c);
  }
  auto idx = [&](const char* name) {
    auto it = std::find(cols.begin(), cols.end(), name);
    if (it == cols.end()) {
      std::fprintf(stderr, "routing-sim: column %s missing in %s\n", name, path.c_str());
      std::exit(2);
    }
    return static_cast<size_t>(it - cols.begin());
  };
  size_t iModel = idx("model"), iHw = idx("hardware"), iPrompt = idx("prompt_size"), iBatch = idx("batch_size"),
         iPt = idx("prompt_time"), iTt = idx("token_time"), iTp = idx("tensor_parallel");
  std::map<int, std::vector<double>> pt, tt;
  std::string line;
  while (std::getline(in, line)) {
    std::vector<std::string> f;
    std::stringstream ss(line);
    std::string c;
    while (std::getline(ss, c, ',')) f.push_back(c);
    if (f.size() < cols.size() || f[iModel] != model || f[iHw] != hw || f[iTp] != tp) continue;
    int batch = std::stoi(f[iBatch]);
    if (batch == 1) pt[std::stoi(f[iPrompt])].push_back(std::stod(f[iPt]));
    tt[batch].push_back(std::stod(f[iTt]));
  }
  PerfModel m;
  for (auto& [k, v] : pt) m.prefillMs.pts.emplace_back(k, median(v));
  for (auto& [k, v] : tt) m.tokenMs.pts.emplace_back(k, median(v));
  if (m.prefillMs.pts.size() < 2 || m.tokenMs.pts.size() < 2) {
    std::fprintf(stderr, "routing-sim: no rows for %s/%s/tp%s in %s\n", model.c_str(), hw.c_str(), tp.c_str(), path.c_str());
    std::exit(2);
  }
  m.label = model + " on " + hw + " (tensor parallel " + tp + ")";
  return m;
}

double pct(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(std::min<double>(static_cast<double>(v.size() - 1), std::ceil(p * static_cast<double>(v.size())) - 1));
  return v[i];
}

// ---- part 1: routing modes -------------------------------------------------------

// Prompts beyond the performance model's largest measured prompt size.
enum class LongPrompts { Chunk, Drop };

// Serving times of one replica from the measured points, without extrapolation: prompt
// sizes below the smallest measured one take its time; above the largest, whole chunks
// of the largest size at its measured time plus the remainder (chunked prefill; the
// attention over earlier chunks' KV is not charged, so this is a lower bound). Batch
// sizes are capped at the largest measured one (the worker's max batch).
struct Serving {
  const PerfModel* perf = nullptr;
  double minPrompt = 0, maxPrompt = 0;
  int maxBatch = 1;
  double kvTokens = 0;  // KV cache of one replica, tokens
  double prefillMs(int prompt) const {
    const double p = std::max<double>(prompt, 1);
    if (p <= minPrompt) return perf->prefillMs.at(minPrompt);
    if (p <= maxPrompt) return perf->prefillMs.at(p);
    const double chunks = std::floor(p / maxPrompt);
    const double rest = p - chunks * maxPrompt;
    return chunks * perf->prefillMs.at(maxPrompt) + (rest > 0 ? prefillMs(static_cast<int>(rest)) : 0.0);
  }
  double tokenMs(int batch) const { return perf->tokenMs.at(std::clamp(batch, 1, maxBatch)); }
};

struct RegionSpec {
  std::string name, zone;
  int workers = 1;
  double peakHour = 0;  // UTC
  double relLoad = 1;   // peak demand relative to the busiest region's (x its own capacity)
  double scale = 1;     // time compression of the trace (derived)
};

struct Arrival {
  double t;  // seconds
  int region;
  int input, output;
};

double diurnal(double tSec, double peakHour, double floor, double sigmaHours) {
  double h = std::fmod(tSec / 3600.0, 24.0);
  if (h < 0) h += 24;
  double d = std::fabs(h - peakHour);
  d = std::min(d, 24.0 - d);
  return floor + (1.0 - floor) * std::exp(-(d * d) / (2 * sigmaHours * sigmaHours));
}

// Arrivals in [start, start + dur): each region replays the trace from its own offset,
// compressed by its scale, thinned by its daily curve.
std::vector<Arrival> makeArrivals(const std::vector<TraceReq>& trace, const std::vector<RegionSpec>& regions,
                                  double start, double dur, std::uint64_t seed) {
  std::vector<Arrival> out;
  const double baseDurMs = trace.back().tMs + 1000.0;
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(0, 1);
  for (size_t r = 0; r < regions.size(); ++r) {
    const auto& spec = regions[r];
    const double offsetMs = static_cast<double>(r) * 0.37 * baseDurMs;  // regions replay different parts
    for (int loop = 0;; ++loop) {
      bool past = false;
      for (const auto& q : trace) {
        double baseMs = loop * baseDurMs + q.tMs - offsetMs;
        if (baseMs < 0) continue;
        double t = start + baseMs / 1000.0 / spec.scale;
        if (t >= start + dur) {
          past = true;
          break;
        }
        if (u(rng) < diurnal(t, spec.peakHour, 0.25, 3.0)) out.push_back({t, static_cast<int>(r), q.input, std::max(1, q.output)});
      }
      if (past) break;
    }
  }
  std::sort(out.begin(), out.end(), [](const Arrival& a, const Arrival& b) { return a.t < b.t; });
  return out;
}

struct Req {
  int region = 0, input = 0, output = 0;
  double arrival = 0;
  int pool = -1, worker = -1;
  double ttftMs = -1;
};

// One replica: FCFS queue, continuous batching (see the file comment).
struct Worker {
  std::deque<int> queue;
  double queuedTokens = 0;  // input + output of the queue
  bool prefilling = false;
  double kvUsed = 0;
  double steps = 0, lastT = 0, busy = 0;
  std::priority_queue<std::pair<double, int>, std::vector<std::pair<double, int>>, std::greater<>> running;
  std::uint64_t version = 0;
  int outstanding = 0;
};

enum Kind { Arrive = 0, AtWorker = 1, PrefillDone = 2, DecodeDone = 3, Publish = 4 };
struct Ev {
  double t;
  std::uint64_t seq;
  int kind;
  int a, b;
  std::uint64_t v;
  bool operator>(const Ev& o) const { return t != o.t ? t > o.t : seq > o.seq; }
};

// The event engine of the workers: requests handed to a worker are served; callbacks
// report the first token and the completion.
struct Engine {
  const Serving& s;
  std::vector<Worker> workers;
  std::vector<Req>& reqs;
  std::priority_queue<Ev, std::vector<Ev>, std::greater<Ev>> q;
  std::uint64_t seq = 0;
  std::function<void(int req, double now)> onFirstToken, onDone;

  Engine(const Serving& s_, size_t n, std::vector<Req>& r) : s(s_), workers(n), reqs(r) {}
  void push(double t, int kind, int a, int b = 0, std::uint64_t v = 0) { q.push({t, seq++, kind, a, b, v}); }

  void advance(Worker& w, double now) {
    const bool decoding = !w.prefilling && !w.running.empty();
    if (w.prefilling || decoding) w.busy += now - w.lastT;
    if (decoding) w.steps += (now - w.lastT) * 1000.0 / s.tokenMs(static_cast<int>(w.running.size()));
    w.lastT = now;
  }
  void reschedule(int wi, double now) {
    Worker& w = workers[static_cast<size_t>(wi)];
    ++w.version;
    if (w.prefilling || w.running.empty()) return;
    const double left = std::max(0.0, w.running.top().first - w.steps);
    push(now + left * s.tokenMs(static_cast<int>(w.running.size())) / 1000.0, DecodeDone, wi, 0, w.version);
  }
  void tryStart(int wi, double now) {
    Worker& w = workers[static_cast<size_t>(wi)];
    if (w.prefilling || w.queue.empty()) return;
    const Req& r = reqs[static_cast<size_t>(w.queue.front())];
    const double need = r.input + r.output;
    if (static_cast<int>(w.running.size()) + 1 > s.maxBatch) return;
    if (w.kvUsed + need > s.kvTokens && !(w.running.empty() && w.kvUsed == 0)) return;  // alone: admitted anyway
    const int ri = w.queue.front();
    w.queue.pop_front();
    w.queuedTokens -= need;
    w.kvUsed += need;
    w.prefilling = true;
    push(now + s.prefillMs(r.input) / 1000.0, PrefillDone, ri, wi);
  }
  void enqueue(int ri, int wi, double now) {
    Worker& w = workers[static_cast<size_t>(wi)];
    advance(w, now);
    const Req& r = reqs[static_cast<size_t>(ri)];
    w.queue.push_back(ri);
    w.queuedTokens += r.input + r.output;
    tryStart(wi, now);
    reschedule(wi, now);
  }
  void finish(Worker& w, int ri, double now) {
    const Req& r = reqs[static_cast<size_t>(ri)];
    w.kvUsed -= r.input + r.output;
    w.outstanding--;
    if (onDone) onDone(ri, now);
  }
  // Handles a worker event; false for other kinds.
  bool handle(const Ev& ev) {
    const double now = ev.t;
    if (ev.kind == PrefillDone) {
      const int wi = ev.b;
      Worker& w = workers[static_cast<size_t>(wi)];
      advance(w, now);
      w.prefilling = false;
      if (onFirstToken) onFirstToken(ev.a, now);
      const Req& r = reqs[static_cast<size_t>(ev.a)];
      if (r.output <= 1) finish(w, ev.a, now);
      else w.running.push({w.steps + r.output - 1, ev.a});
      tryStart(wi, now);
      reschedule(wi, now);
      return true;
    }
    if (ev.kind == DecodeDone) {
      const int wi = ev.a;
      Worker& w = workers[static_cast<size_t>(wi)];
      if (ev.v != w.version) return true;
      advance(w, now);
      while (!w.running.empty() && w.running.top().first <= w.steps + 1e-6) {
        const int ri = w.running.top().second;
        w.running.pop();
        finish(w, ri, now);
      }
      tryStart(wi, now);
      reschedule(wi, now);
      return true;
    }
    return false;
  }
};

// What one replica sustains on the trace's mix: one worker kept saturated (a queue that
// never empties, fed with the trace's requests in order from a random start).
struct ReplicaCapacity {
  double requestsPerSecond = 0;
  double tokensPerMinute = 0;        // input + output
  double prefillTokensPerSecond = 0; // prompt tokens / prefill time, the trace's mix
  double meanBatch = 0;
};

ReplicaCapacity measureReplica(const Serving& s, const std::vector<TraceReq>& trace, std::uint64_t seed) {
  std::vector<Req> reqs;
  Engine eng(s, 1, reqs);
  std::mt19937_64 rng(seed);
  size_t next = std::uniform_int_distribution<size_t>(0, trace.size() - 1)(rng);
  const size_t warm = 300, measure = std::max<size_t>(3000, std::min<size_t>(trace.size(), 20000));
  size_t done = 0;
  double t0 = 0, tokens = 0, batchArea = 0, lastT = 0;
  reqs.reserve(warm + measure + 2 * static_cast<size_t>(s.maxBatch) + 16);
  auto feed = [&](double now) {
    while (eng.workers[0].queue.size() < 2) {
      const auto& q = trace[next];
      next = (next + 1) % trace.size();
      reqs.push_back({0, std::max(1, q.input), std::max(1, q.output), now});
      eng.workers[0].outstanding++;
      eng.enqueue(static_cast<int>(reqs.size() - 1), 0, now);
    }
  };
  eng.onDone = [&](int ri, double now) {
    ++done;
    if (done == warm) t0 = now;
    else if (done > warm) tokens += reqs[static_cast<size_t>(ri)].input + reqs[static_cast<size_t>(ri)].output;
  };
  feed(0);
  while (!eng.q.empty() && done < warm + measure) {
    Ev ev = eng.q.top();
    eng.q.pop();
    if (done >= warm) batchArea += static_cast<double>(eng.workers[0].running.size()) * (ev.t - lastT);
    lastT = ev.t;
    eng.handle(ev);
    feed(ev.t);
  }
  ReplicaCapacity c;
  const double span = std::max(1e-9, lastT - t0);
  c.requestsPerSecond = static_cast<double>(done - warm) / span;
  c.tokensPerMinute = tokens / span * 60.0;
  c.meanBatch = batchArea / span;
  double in = 0, ms = 0;
  for (const auto& q : trace) {
    in += std::max(1, q.input);
    ms += s.prefillMs(std::max(1, q.input));
  }
  c.prefillTokensPerSecond = in / ms * 1000.0;
  return c;
}

struct PoolState {
  std::string name, region, zone;
  size_t firstWorker = 0, nWorkers = 0;
  std::deque<std::pair<double, double>> routed;  // (time, tokens) for the trailing minute
  double routedSum = 0;
  double capacityTpm = 0;
};

struct ModeResult {
  std::string mode;
  size_t requests = 0, rejected = 0;
  std::vector<double> ttftMs, e2eMs;
  size_t good = 0;  // TTFT within the SLO
  std::vector<std::vector<double>> ttftByRegion;
  std::vector<size_t> rejectedByRegion, requestsByRegion;
  std::vector<double> gpuBusyByPool;
  double gpuBusy = 0;
  size_t crossRegion = 0, crossZone = 0;
};

struct SimParams {
  double start = 0, dur = 86400, publishSeconds = 10, sloMs = 2000;
  bool latencyChoice = true;
  bool publishQueue = true;       // false: only load and utilisation, as the operator publishes today
  routing::LatencyModel latency;  // clientRegion/zone set per region's router
  ReplicaCapacity cap;
};

ModeResult simulateMode(api::DeploymentType type, const std::vector<RegionSpec>& regions, const std::vector<Arrival>& arrivals,
                        const Serving& serving, const SimParams& sp, std::uint64_t seed) {
  ModeResult res;
  res.mode = std::string(api::toString(type));
  res.ttftByRegion.resize(regions.size());
  res.rejectedByRegion.assign(regions.size(), 0);
  res.requestsByRegion.assign(regions.size(), 0);
  std::vector<PoolState> pools;
  size_t nWorkers = 0;
  for (const auto& r : regions) {
    PoolState p;
    p.name = r.name + "-h100";
    p.region = r.name;
    p.zone = r.zone;
    p.firstWorker = nWorkers;
    p.nWorkers = static_cast<size_t>(r.workers);
    nWorkers += p.nWorkers;
    p.capacityTpm = r.workers * sp.cap.tokensPerMinute;
    pools.push_back(std::move(p));
  }
  std::vector<Req> reqs;
  reqs.reserve(arrivals.size());
  Engine eng(serving, nWorkers, reqs);
  for (auto& w : eng.workers) w.lastT = sp.start;

  // One deployment (and one router) per client region, of the mode's type.
  std::vector<routing::DeploymentRoutes> deps;
  std::vector<routing::SelectionOptions> sels;
  for (const auto& r : regions) {
    routing::DeploymentRoutes d;
    d.deployment = {"sim", "llama-" + r.name};
    d.model = "llama2-70b";
    d.deploymentType = type;
    if (type == api::DeploymentType::Standard) d.region = r.name;
    if (type == api::DeploymentType::DataZone) d.dataZone = r.zone;
    for (const auto& p : pools) {
      routing::RoutingEntry e;
      e.pool = p.name;
      e.region = p.region;
      e.dataZone = p.zone;
      for (size_t w = 0; w < p.nWorkers; ++w) e.endpoints.push_back(p.name + "/" + std::to_string(p.firstWorker + w));
      e.capacityTokensPerMinute = p.capacityTpm;
      e.prefillTokensPerSecond = sp.cap.prefillTokensPerSecond;
      e.maxUtilization = 0.9;
      e.healthy = true;
      e.weight = static_cast<double>(p.nWorkers);
      d.entries.push_back(std::move(e));
    }
    d.normalize();
    deps.push_back(std::move(d));
    routing::SelectionOptions sel;
    sel.staleAfter = std::chrono::seconds(30);
    sel.epsilon = 0.05;
    sel.latency = sp.latency;
    sel.latency.enabled = sp.latencyChoice;
    sel.latency.clientRegion = r.name;
    sel.latency.clientZone = r.zone;
    sels.push_back(sel);
  }
  std::vector<std::vector<size_t>> entryOf(deps.size(), std::vector<size_t>(pools.size()));
  for (size_t i = 0; i < deps.size(); ++i)
    for (size_t j = 0; j < pools.size(); ++j)
      for (size_t k = 0; k < deps[i].entries.size(); ++k)
        if (deps[i].entries[k].pool == pools[j].name) entryOf[i][j] = k;

  std::mt19937_64 rng(seed);
  RandomFn rand = [&rng] { return std::uniform_real_distribution<double>(0.0, 1.0)(rng); };
  // Each region's router: its own sends since each heartbeat.
  std::vector<routing::LocalLoad> local(regions.size());

  const auto epoch = SystemTime{std::chrono::hours(24 * 365 * 55)};
  auto sysAt = [&](double t) { return epoch + std::chrono::duration_cast<Duration>(std::chrono::duration<double>(t)); };
  auto rtt = [&](int region, int pool) {
    return routing::rttMs(sp.latency, regions[static_cast<size_t>(region)].name, regions[static_cast<size_t>(region)].zone,
                          deps[0].entries[entryOf[0][static_cast<size_t>(pool)]]);
  };

  eng.onFirstToken = [&](int ri, double now) {
    auto& r = reqs[static_cast<size_t>(ri)];
    r.ttftMs = (now - r.arrival) * 1000.0 + rtt(r.region, r.pool) / 2.0;
    res.ttftMs.push_back(r.ttftMs);
    res.ttftByRegion[static_cast<size_t>(r.region)].push_back(r.ttftMs);
    if (r.ttftMs <= sp.sloMs) res.good++;
  };
  eng.onDone = [&](int ri, double now) {
    auto& r = reqs[static_cast<size_t>(ri)];
    res.e2eMs.push_back((now - r.arrival) * 1000.0 + rtt(r.region, r.pool) / 2.0);
  };

  const double end = sp.start + sp.dur;
  size_t nextArrival = 0;
  if (!arrivals.empty()) eng.push(arrivals[0].t, Arrive, 0);
  eng.push(sp.start, Publish, 0);
  while (!eng.q.empty()) {
    Ev ev = eng.q.top();
    eng.q.pop();
    const double now = ev.t;
    if (eng.handle(ev)) continue;
    switch (ev.kind) {
      case Publish: {
        for (size_t j = 0; j < pools.size(); ++j) {
          auto& p = pools[j];
          while (!p.routed.empty() && p.routed.front().first <= now - 60) {
            p.routedSum -= p.routed.front().second;
            p.routed.pop_front();
          }
          const double load = std::max(0.0, p.routedSum);
          double queuedTokens = 0, queuedRequests = 0;
          for (size_t w = p.firstWorker; w < p.firstWorker + p.nWorkers; ++w) {
            queuedTokens += eng.workers[w].queuedTokens;
            queuedRequests += static_cast<double>(eng.workers[w].queue.size());
          }
          for (size_t i = 0; i < deps.size(); ++i) {
            auto& e = deps[i].entries[entryOf[i][j]];
            e.loadTokensPerMinute = load;
            e.utilization = p.capacityTpm > 0 ? load / p.capacityTpm : 1;
            e.queuedTokens = sp.publishQueue ? queuedTokens : 0;
            e.queuedRequests = sp.publishQueue ? queuedRequests : 0;
            e.heartbeatTime = sysAt(now);
          }
        }
        if (now < end) eng.push(now + sp.publishSeconds, Publish, 0);
        break;
      }
      case Arrive: {
        const auto& a = arrivals[static_cast<size_t>(ev.a)];
        const int ri = static_cast<int>(reqs.size());
        reqs.push_back({a.region, a.input, a.output, a.t});
        res.requests++;
        const size_t reg = static_cast<size_t>(a.region);
        res.requestsByRegion[reg]++;
        auto& d = deps[reg];
        auto& ll = local[reg];
        auto choice = routing::choosePools(
            d, sysAt(now), sels[reg], rand, std::nullopt,
            [&](const routing::RoutingEntry& e) { return ll.extraUtilization(e.pool, e.heartbeatTime, e.capacityTokensPerMinute); },
            a.input);
        if (choice.order.empty()) {
          res.rejected++;
          res.rejectedByRegion[reg]++;
        } else {
          const routing::RoutingEntry* e = choice.order.front();
          size_t pi = 0;
          while (pools[pi].name != e->pool) ++pi;
          auto& pool = pools[pi];
          auto idx = routing::pickEndpoint(
              *e,
              [&](std::string_view ep) {
                auto slash = ep.rfind('/');
                return eng.workers[static_cast<size_t>(std::stoi(std::string(ep.substr(slash + 1))))].outstanding;
              },
              rand);
          const int wi = static_cast<int>(pool.firstWorker + *idx);
          auto& r = reqs[static_cast<size_t>(ri)];
          r.pool = static_cast<int>(pi);
          r.worker = wi;
          eng.workers[static_cast<size_t>(wi)].outstanding++;
          const double tokens = a.input + a.output;
          ll.add(pool.name, e->heartbeatTime, tokens);
          pool.routed.emplace_back(now, tokens);
          pool.routedSum += tokens;
          const auto& region = regions[reg];
          if (region.name != pool.region) res.crossRegion++;
          if (region.zone != pool.zone) res.crossZone++;
          eng.push(now + rtt(a.region, static_cast<int>(pi)) / 2000.0, AtWorker, ri);
        }
        if (++nextArrival < arrivals.size()) eng.push(arrivals[nextArrival].t, Arrive, static_cast<int>(nextArrival));
        break;
      }
      case AtWorker: {
        auto& r = reqs[static_cast<size_t>(ev.a)];
        eng.enqueue(ev.a, r.worker, now);
        break;
      }
    }
  }
  double totalBusy = 0, totalWorkers = 0;
  const double span = std::max(1.0, sp.dur);
  for (auto& p : pools) {
    double b = 0;
    for (size_t w = p.firstWorker; w < p.firstWorker + p.nWorkers; ++w) b += std::min(eng.workers[w].busy, span);
    res.gpuBusyByPool.push_back(b / (static_cast<double>(p.nWorkers) * span));
    totalBusy += b;
    totalWorkers += static_cast<double>(p.nWorkers);
  }
  res.gpuBusy = totalBusy / (totalWorkers * span);
  return res;
}

// ---- part 2: PTU admission accuracy ----------------------------------------------

struct PtuConfig {
  double tpm = 2'000'000;
  int burstPercent = 10;
  routing::LimiterMode mode = routing::LimiterMode::SlidingWindow;
  int replicas = 1;  // router replicas, each with 1/replicas; requests spread at random
  double estimatorError = 0.10;
  std::vector<double> phases = {0.5, 0.8, 1.5, 0.9, 2.0, 0.6, 1.2, 0.95, 3.0, 0.7, 1.1, 0.4};
  double phaseMinutes = 5;
};

struct PtuResult {
  double maxErrorPct = 0;     // max(maxOverPct, maxUnderPct)
  double maxOverPct = 0;      // max over all 60 s windows of (admitted - limit) / limit
  double maxUnderPct = 0;     // max over refusals of (limit - admitted last minute - refused request) / limit
  double sumGapPct = 0;       // sum over refusals of (limit - admitted last minute) / limit
  size_t binding = 0;         // refusals after the first minute
  size_t requests = 0, admitted = 0, throttled = 0, false429 = 0;
  double limit = 0;
};

PtuResult simulatePtu(const PtuConfig& c, const std::vector<TraceReq>& trace, const PerfModel& perf, std::uint64_t seed) {
  PtuResult out;
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(0, 1);
  const double meanTokens = bench::meanRequestTokens(trace);
  const routing::RoutingTable table = bench::ptuReservationTable(c.tpm, c.burstPercent);
  const routing::DeploymentRoutes& d = table.deployments[0];
  std::vector<std::unique_ptr<routing::AdmissionController>> routers;
  const auto epoch = MonotonicTime(std::chrono::hours(10000));
  auto at = [&](double t) { return epoch + std::chrono::duration_cast<Duration>(std::chrono::duration<double>(t)); };
  for (int i = 0; i < c.replicas; ++i) {
    routers.push_back(std::make_unique<routing::AdmissionController>(c.mode, 1.0 / c.replicas));
    routers.back()->sync(table, at(0));
  }
  const double limit = c.tpm * (1 + c.burstPercent / 100.0);
  out.limit = limit;

  struct Settle {
    double t;
    int router;
    routing::Admission adm;
    double actual;
  };
  auto later = [](const Settle& a, const Settle& b) { return a.t > b.t; };
  std::priority_queue<Settle, std::vector<Settle>, decltype(later)> settles(later);
  std::vector<std::pair<double, double>> admittedEv;  // (time, actual tokens)
  std::vector<std::pair<double, double>> throttledEv;

  const double total = static_cast<double>(c.phases.size()) * c.phaseMinutes * 60.0;
  double t = 0;
  size_t ti = static_cast<size_t>(u(rng) * static_cast<double>(trace.size()));
  std::exponential_distribution<double> expo(1.0);
  while (true) {
    size_t phase = std::min(c.phases.size() - 1, static_cast<size_t>(t / (c.phaseMinutes * 60.0)));
    double ratePerSec = c.phases[phase] * c.tpm / meanTokens / 60.0;
    t += expo(rng) / ratePerSec;
    if (t >= total) break;
    while (!settles.empty() && settles.top().t <= t) {
      auto s = settles.top();
      settles.pop();
      routers[static_cast<size_t>(s.router)]->settle(s.adm, s.actual, at(s.t));
    }
    const auto& q = trace[ti];
    ti = (ti + 1) % trace.size();
    const double actual = q.input + std::max(1, q.output);
    int maxTokens = 256;
    while (maxTokens < q.output) maxTokens *= 2;
    const double estPrompt = std::round(q.input * (1 + c.estimatorError * (2 * u(rng) - 1)));
    const double est = estPrompt + maxTokens;
    int router = c.replicas > 1 ? static_cast<int>(u(rng) * c.replicas) % c.replicas : 0;
    auto adm = routers[static_cast<size_t>(router)]->admit(d, est, at(t));
    out.requests++;
    if (adm.outcome == routing::AdmitOutcome::Admitted) {
      out.admitted++;
      admittedEv.emplace_back(t, actual);
      double service = perf.prefillMs.at(q.input) / 1000.0 + std::max(1, q.output) * 0.035;
      settles.push({t + service, router, adm, actual});
    } else {
      out.throttled++;
      throttledEv.emplace_back(t, actual);
    }
  }
  // Windows (t - 60, t] ending every 100 ms, from the first full minute.
  auto windowSum = [](const std::vector<std::pair<double, double>>& ev) {
    std::vector<double> prefix(ev.size() + 1, 0);
    for (size_t i = 0; i < ev.size(); ++i) prefix[i + 1] = prefix[i] + ev[i].second;
    return prefix;
  };
  auto pa = windowSum(admittedEv);
  auto sumIn = [](const std::vector<std::pair<double, double>>& ev, const std::vector<double>& prefix, double lo, double hi) {
    auto first = std::upper_bound(ev.begin(), ev.end(), lo, [](double v, const auto& e) { return v < e.first; });
    auto last = std::upper_bound(ev.begin(), ev.end(), hi, [](double v, const auto& e) { return v < e.first; });
    return prefix[static_cast<size_t>(last - ev.begin())] - prefix[static_cast<size_t>(first - ev.begin())];
  };
  // Over-admission: the worst 60 s window (ending every 100 ms) of admitted tokens
  // against the limit. Under-admission: at every moment the limit binds (a request is
  // refused), the tokens admitted in the minute before it should be the limit minus at
  // most that request; anything further below is accounting error (estimates of
  // requests still in flight above their actual usage). Windows that merely follow a
  // burst admit less than they are offered because the limiter still counts the burst:
  // that is the limit working, so they are not counted as error.
  for (double end = 60.0; end <= total + 1e-9; end += 0.1) {
    double A = sumIn(admittedEv, pa, end - 60, end);
    out.maxOverPct = std::max(out.maxOverPct, (A - limit) / limit * 100.0);
  }
  for (const auto& [tt, tokens] : throttledEv) {
    if (tt < 60) continue;
    double A = sumIn(admittedEv, pa, tt - 60, tt);
    double gap = (limit - A - tokens) / limit * 100.0;
    out.maxUnderPct = std::max(out.maxUnderPct, gap);
    out.sumGapPct += std::max(0.0, (limit - A) / limit * 100.0);
    out.binding++;
  }
  out.maxErrorPct = std::max(out.maxOverPct, out.maxUnderPct);
  // A 429 is false when the actual usage of the last minute plus the request's own
  // tokens is still within the provisioned (not burst) rate.
  for (const auto& [tt, tokens] : throttledEv) {
    double used = sumIn(admittedEv, pa, tt - 60, tt);
    if (used + tokens <= c.tpm) out.false429++;
  }
  return out;
}


std::vector<double> parseList(const std::string& s) {
  std::vector<double> out;
  std::stringstream ss(s);
  std::string c;
  while (std::getline(ss, c, ',')) out.push_back(std::atof(c.c_str()));
  return out;
}

// A synthetic trace for a second workload shape (not real traffic): Poisson arrivals,
// log-normal prompt (median 1,200 tokens) and output (median 250) lengths.
std::vector<TraceReq> syntheticTrace(std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::exponential_distribution<double> gap(3.0);
  std::lognormal_distribution<double> in(std::log(1200.0), 1.0), out(std::log(250.0), 0.8);
  std::vector<TraceReq> t;
  double ms = 0;
  for (int i = 0; i < 12000; ++i) {
    ms += gap(rng) * 1000.0;
    t.push_back({ms, static_cast<int>(std::clamp(in(rng), 16.0, 32768.0)), static_cast<int>(std::clamp(out(rng), 1.0, 4096.0))});
  }
  return t;
}

struct Regime {
  std::string suffix, label;
  double peakLoad;
  std::vector<double> peakHours;
};

void printModes(const std::vector<RegionSpec>& regions, std::vector<ModeResult>& results) {
  std::printf("%-9s %9s %9s %9s %8s %9s %9s %8s %8s %8s %9s\n", "mode", "TTFT p50", "TTFT p99", "goodput", "429", "e2e p50",
              "e2e p99", "busy", "x-region", "x-zone", "requests");
  for (auto& r : results) {
    const double n = static_cast<double>(r.requests);
    std::printf("%-9s %6.0f ms %6.0f ms %8.2f%% %7.2f%% %6.0f ms %6.0f ms %7.1f%% %7.1f%% %7.1f%% %9zu\n", r.mode.c_str(),
                pct(r.ttftMs, 0.5), pct(r.ttftMs, 0.99), 100.0 * static_cast<double>(r.good) / n,
                100.0 * static_cast<double>(r.rejected) / n, pct(r.e2eMs, 0.5), pct(r.e2eMs, 0.99), 100 * r.gpuBusy,
                100.0 * static_cast<double>(r.crossRegion) / n, 100.0 * static_cast<double>(r.crossZone) / n, r.requests);
  }
  std::printf("per region (TTFT p99 / 429 rate / share of time its workers were prefilling or decoding):\n");
  for (size_t i = 0; i < regions.size(); ++i) {
    std::printf("  %-8s", regions[i].name.c_str());
    for (auto& r : results)
      std::printf("  %s %6.0f ms %5.2f%% %5.1f%%", r.mode.c_str(), pct(r.ttftByRegion[i], 0.99),
                  100.0 * static_cast<double>(r.rejectedByRegion[i]) / std::max<double>(1, static_cast<double>(r.requestsByRegion[i])),
                  100 * r.gpuBusyByPool[i]);
    std::printf("\n");
  }
}

int usage() {
  std::fprintf(stderr,
               "usage: routing_sim [--data-dir=DIR] [--trace=FILE|synthetic] [--hours=H] [--quick] [--publish-seconds=S]\n"
               "  [--seed=N] [--tensor-parallel=2|4|8] [--replicas=6,4,6] [--peak-load=1.3] [--peak-hours=10,12,17]\n"
               "  [--balanced-peak-load=0.8] [--balanced-peak-hours=10,18,2] [--region-load=1,1,1] [--slo-ms=2000]\n"
               "  [--long-prompts=chunk|drop] [--kv-cache-tokens=N] [--choice=latency|utilization]\n"
               "  [--local-tolerance-ms=250] [--near-equal-ms=50] [--max-queue-ms=0] [--max-remote-queue-ms=500]\n"
               "  [--publish-queue=true|false]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string dataDir = "/work/shared/data";
  std::string tracePath;
  double hours = 24;
  bool quick = false;
  double publishSeconds = 10;
  std::uint64_t seed = 1;
  std::string tp = "4";
  std::vector<double> replicas = {6, 4, 6};
  double peakLoad = 1.3, balancedPeakLoad = 0.8;
  std::vector<double> peakHours = {10, 12, 17}, balancedPeakHours = {10, 18, 2}, regionLoad = {1, 1, 1};
  double sloMs = 2000;
  LongPrompts longPrompts = LongPrompts::Chunk;
  double kvCacheTokens = 0;  // 0: derived
  bool latencyChoice = true;
  bool publishQueue = true;
  routing::LatencyModel lat;
  lat.localToleranceMs = 250;
  lat.nearEqualMs = 50;
  // Leave the region only for a pool whose estimated queue is under a quarter of the
  // default 2 s TTFT SLO (docs/performance.md shows other values).
  lat.maxRemoteQueueMs = 500;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    std::string v;
    auto flag = [&](const char* name) {
      const size_t n = std::strlen(name);
      if (a.compare(0, n, name) != 0) return false;
      if (a.size() > n && a[n] == '=') {
        v = a.substr(n + 1);
        return true;
      }
      if (a.size() == n && i + 1 < argc) {
        v = argv[++i];
        return true;
      }
      return false;
    };
    if (flag("--data-dir")) dataDir = v;
    else if (flag("--trace")) tracePath = v;
    else if (flag("--hours")) hours = std::clamp(std::atof(v.c_str()), 1.0, 48.0);
    else if (flag("--publish-seconds")) publishSeconds = std::clamp(std::atof(v.c_str()), 1.0, 300.0);
    else if (flag("--seed")) seed = std::strtoull(v.c_str(), nullptr, 10);
    else if (flag("--tensor-parallel")) tp = v;
    else if (flag("--replicas")) replicas = parseList(v);
    else if (flag("--peak-load")) peakLoad = std::atof(v.c_str());
    else if (flag("--balanced-peak-load")) balancedPeakLoad = std::atof(v.c_str());
    else if (flag("--peak-hours")) peakHours = parseList(v);
    else if (flag("--balanced-peak-hours")) balancedPeakHours = parseList(v);
    else if (flag("--region-load")) regionLoad = parseList(v);
    else if (flag("--slo-ms")) sloMs = std::atof(v.c_str());
    else if (flag("--long-prompts")) {
      if (v == "chunk") longPrompts = LongPrompts::Chunk;
      else if (v == "drop") longPrompts = LongPrompts::Drop;
      else return usage();
    } else if (flag("--kv-cache-tokens")) kvCacheTokens = std::atof(v.c_str());
    else if (flag("--choice")) {
      if (v != "latency" && v != "utilization") return usage();
      latencyChoice = v == "latency";
    } else if (flag("--local-tolerance-ms")) lat.localToleranceMs = std::atof(v.c_str());
    else if (flag("--near-equal-ms")) lat.nearEqualMs = std::atof(v.c_str());
    else if (flag("--max-queue-ms")) lat.maxQueueMs = std::atof(v.c_str());
    else if (flag("--max-remote-queue-ms")) lat.maxRemoteQueueMs = std::atof(v.c_str());
    else if (flag("--publish-queue")) {
      if (v != "true" && v != "false") return usage();
      publishQueue = v == "true";
    }
    else if (a == "--quick") quick = true;
    else return usage();
  }
  if (replicas.size() != 3 || peakHours.size() != 3 || balancedPeakHours.size() != 3 || regionLoad.size() != 3 ||
      !(peakLoad > 0) || !(balancedPeakLoad > 0) || !(sloMs > 0))
    return usage();
  if (quick) hours = 6;

  std::vector<TraceReq> trace;
  std::string traceLabel;
  if (tracePath == "synthetic") {
    trace = syntheticTrace(seed + 3);
    traceLabel = "synthetic (Poisson, log-normal prompt median 1200, output median 250; not a real trace)";
  } else {
    if (tracePath.empty()) tracePath = dataDir + "/mooncake_conversation_trace.jsonl";
    trace = loadTrace(tracePath);
    traceLabel = tracePath;
  }
  auto perf = loadPerf(dataDir + "/splitwise_perf_model.csv", "llama2-70b", "h100-80gb", tp);
  if (trace.empty()) {
    std::fprintf(stderr, "routing-sim: empty trace\n");
    return 2;
  }
  Serving serving;
  serving.perf = &perf;
  serving.minPrompt = perf.prefillMs.pts.front().first;
  serving.maxPrompt = perf.prefillMs.pts.back().first;
  serving.maxBatch = static_cast<int>(perf.tokenMs.pts.back().first);
  // KV cache of one replica: tensor-parallel H100s x 80 GB x 0.9 (vLLM's
  // gpu_memory_utilization) - 140 GB of fp16 weights, over 320 KiB per token (Llama2-70B:
  // 80 layers x 8 KV heads x 128 x 2 (K and V) x 2 bytes).
  const double tpN = std::atof(tp.c_str());
  if (!(kvCacheTokens > 0)) kvCacheTokens = std::max(0.0, (tpN * 80e9 * 0.9 - 140e9) / (80.0 * 8 * 128 * 2 * 2));
  serving.kvTokens = kvCacheTokens;

  // Prompts beyond the largest measured size.
  size_t longCount = 0;
  double longPrefill = 0, allPrefill = 0;
  for (const auto& q : trace) {
    const double ms = serving.prefillMs(q.input);
    allPrefill += ms;
    if (q.input > serving.maxPrompt) {
      ++longCount;
      longPrefill += ms;
    }
  }
  const double longShare = 100.0 * static_cast<double>(longCount) / static_cast<double>(trace.size());
  if (longPrompts == LongPrompts::Drop) {
    std::erase_if(trace, [&](const TraceReq& q) { return q.input > serving.maxPrompt; });
    if (trace.empty()) {
      std::fprintf(stderr, "routing-sim: every prompt is beyond the measured size\n");
      return 2;
    }
  }

  std::printf("routing-sim: trace %s: %zu requests over %.0f s (mean %.0f input + %.0f output tokens); %s\n",
              traceLabel.c_str(), trace.size(), trace.back().tMs / 1000.0,
              std::accumulate(trace.begin(), trace.end(), 0.0, [](double s, const TraceReq& q) { return s + q.input; }) / static_cast<double>(trace.size()),
              std::accumulate(trace.begin(), trace.end(), 0.0, [](double s, const TraceReq& q) { return s + q.output; }) / static_cast<double>(trace.size()),
              perf.label.c_str());
  std::printf("routing-sim: prompts over the largest measured size (%.0f tokens): %.1f%% of requests, %.1f%% of prefill "
              "time; %s\n",
              serving.maxPrompt, longShare, allPrefill > 0 ? 100.0 * longPrefill / allPrefill : 0.0,
              longPrompts == LongPrompts::Chunk
                  ? "prefilled in chunks of that size at its measured time (a lower bound: attention over earlier chunks not charged)"
                  : "dropped from the trace");
  const auto cap = measureReplica(serving, trace, seed + 5);
  std::printf("routing-sim: replica: prefill %.0f ms @1k, %.0f ms @%.0f tokens; decode %.1f ms/step @batch 1, %.1f @%d (max "
              "batch); KV cache %.0f tokens\n",
              serving.prefillMs(1024), serving.prefillMs(static_cast<int>(serving.maxPrompt)), serving.maxPrompt,
              serving.tokenMs(1), serving.tokenMs(serving.maxBatch), serving.maxBatch, serving.kvTokens);
  std::printf("routing-sim: measured saturated replica on this trace: %.3f req/s, %.0f tokens/min (mean batch %.1f), "
              "prefill %.0f tokens/s\n",
              cap.requestsPerSecond, cap.tokensPerMinute, cap.meanBatch, cap.prefillTokensPerSecond);

  const char* names[] = {"eu-west", "eu-north", "us-east"};
  const char* zones[] = {"EU", "EU", "US"};
  const double traceRate = static_cast<double>(trace.size()) / (trace.back().tMs / 1000.0 + 1.0);
  std::vector<Regime> regimes = {{"", "overloaded", peakLoad, peakHours}, {"_balanced", "balanced", balancedPeakLoad, balancedPeakHours}};
  const double relMax = *std::max_element(regionLoad.begin(), regionLoad.end());
  struct Out {
    Regime g;
    std::vector<ModeResult> results;
  };
  std::vector<Out> outs;
  for (const auto& g : regimes) {
    std::vector<RegionSpec> regions;
    size_t busiest = 0;
    for (size_t r = 0; r < 3; ++r) {
      RegionSpec s;
      s.name = names[r];
      s.zone = zones[r];
      s.workers = std::max(1, static_cast<int>(replicas[r]));
      s.peakHour = g.peakHours[r];
      s.relLoad = regionLoad[r] / relMax;
      const double peakReqPerSec = g.peakLoad * s.relLoad * s.workers * cap.requestsPerSecond;
      s.scale = peakReqPerSec / traceRate;
      regions.push_back(s);
    }
    for (size_t r = 0; r < regions.size(); ++r)
      if (regions[r].relLoad > regions[busiest].relLoad) busiest = r;
    // --quick (or --hours under 24): the window is centred on the busiest region's peak.
    const double start = hours >= 24 ? 0.0 : regions[busiest].peakHour * 3600.0 - hours * 1800.0;
    auto arrivals = makeArrivals(trace, regions, start, hours * 3600.0, seed);
    std::printf("\n== regime %s: peak demand %.2f x capacity in the busiest region (%s), %.0f simulated hours from "
                "%02.0f:00 UTC, %zu requests, published every %.0f s, maxUtilization 0.9, SLO %.0f ms, choice %s%s\n",
                g.label.c_str(), g.peakLoad, regions[busiest].name.c_str(), hours, std::fmod(start / 3600.0 + 24.0, 24.0),
                arrivals.size(), publishSeconds, sloMs, latencyChoice ? "latency" : "utilization",
                publishQueue ? "" : ", queues not published");
    for (const auto& r : regions)
      std::printf("  region %-8s zone %s: %d replicas (%.2f req/s), peak %.2f req/s (%.2f x) at %02.0f:00 UTC\n",
                  r.name.c_str(), r.zone.c_str(), r.workers, r.workers * cap.requestsPerSecond, traceRate * r.scale,
                  traceRate * r.scale / (r.workers * cap.requestsPerSecond), r.peakHour);
    SimParams sp;
    sp.start = start;
    sp.dur = hours * 3600.0;
    sp.publishSeconds = publishSeconds;
    sp.sloMs = sloMs;
    sp.latencyChoice = latencyChoice;
    sp.publishQueue = publishQueue;
    sp.latency = lat;
    sp.cap = cap;
    Out o{g, {}};
    for (auto type : {api::DeploymentType::Standard, api::DeploymentType::DataZone, api::DeploymentType::Global})
      o.results.push_back(simulateMode(type, regions, arrivals, serving, sp, seed + 7));
    printModes(regions, o.results);
    outs.push_back(std::move(o));
  }
  // PTU accuracy.
  PtuConfig pc;
  auto main = simulatePtu(pc, trace, perf, seed + 11);
  std::printf("\nPTU reservation %.0f tokens/min, burst %d%% (limit %.0f/min), %.0f min of phases x{", pc.tpm, pc.burstPercent,
              main.limit, static_cast<double>(pc.phases.size()) * pc.phaseMinutes);
  for (size_t i = 0; i < pc.phases.size(); ++i) std::printf("%s%.2g", i ? "," : "", pc.phases[i]);
  std::printf("}, estimator error +-%.0f%%, max_tokens = next power of two >= output (min 256):\n", pc.estimatorError * 100);
  auto line = [](const char* label, const PtuResult& r) {
    std::printf("  %-36s error %6.2f%% (worst minute over the limit %+.2f%%, under it when binding %.2f%%, "
                "mean gap when binding %.2f%%); %zu requests, %zu throttled, %zu false 429\n",
                label, r.maxErrorPct, r.maxOverPct, r.maxUnderPct, r.binding ? r.sumGapPct / static_cast<double>(r.binding) : 0.0,
                r.requests, r.throttled, r.false429);
  };
  line("sliding window (default):", main);
  PtuConfig bucket = pc;
  bucket.mode = routing::LimiterMode::TokenBucket;
  line("classic token bucket (for contrast):", simulatePtu(bucket, trace, perf, seed + 11));
  PtuConfig noBurst = pc;
  noBurst.burstPercent = 0;
  line("sliding window, burstPercent 0:", simulatePtu(noBurst, trace, perf, seed + 11));
  PtuConfig split = pc;
  split.replicas = 3;
  line("sliding window, 3 router replicas:", simulatePtu(split, trace, perf, seed + 11));

  std::printf("\n");
  std::printf("RESULT ptu_admitted_error_pct %.2f %%\n", main.maxErrorPct);
  std::printf("RESULT ptu_false_429 %zu count\n", main.false429);
  const char* modes[] = {"standard", "datazone", "global"};
  for (const auto& o : outs) {
    auto rs = o.results;
    const std::string sfx = o.g.suffix;
    for (size_t i = 0; i < rs.size(); ++i) {
      const double n = static_cast<double>(rs[i].requests);
      std::printf("RESULT ttft_p50_ms_%s%s %.0f ms\n", modes[i], sfx.c_str(), pct(rs[i].ttftMs, 0.5));
      std::printf("RESULT ttft_p99_ms_%s%s %.0f ms\n", modes[i], sfx.c_str(), pct(rs[i].ttftMs, 0.99));
      std::printf("RESULT goodput_pct_%s%s %.2f %%\n", modes[i], sfx.c_str(), 100.0 * static_cast<double>(rs[i].good) / n);
      std::printf("RESULT rate_429_pct_%s%s %.2f %%\n", modes[i], sfx.c_str(), 100.0 * static_cast<double>(rs[i].rejected) / n);
      std::printf("RESULT e2e_p50_ms_%s%s %.0f ms\n", modes[i], sfx.c_str(), pct(rs[i].e2eMs, 0.5));
      std::printf("RESULT e2e_p99_ms_%s%s %.0f ms\n", modes[i], sfx.c_str(), pct(rs[i].e2eMs, 0.99));
      std::printf("RESULT left_region_pct_%s%s %.2f %%\n", modes[i], sfx.c_str(), 100.0 * static_cast<double>(rs[i].crossRegion) / n);
      std::printf("RESULT left_zone_pct_%s%s %.2f %%\n", modes[i], sfx.c_str(), 100.0 * static_cast<double>(rs[i].crossZone) / n);
    }
  }
  return 0;
}
