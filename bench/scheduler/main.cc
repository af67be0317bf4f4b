// Scheduler benchmark: a plain timed driver (single thread).
//
// 1. Throughput: clusters of 100, 1,000 and 10,000 nodes x 8 GPUs in six pools
//    (Exclusive, MIG, TimeSlicing, MPS), filled to ~75% of capacity with a mixed workload
//    (whole 1/2/4/8 GPUs, MIG 1g..7g, 1/4 and 1/8 shares), then a steady churn of one
//    departure per arrival. placements/s = successful placements / CPU time of the churn
//    loop (scheduling cycles, reserves, failed attempts with their explanations and the
//    releases all included); the wall-clock rate is printed too.
// 2. Packing quality: the same deterministic sequence of arrivals and departures replayed
//    with our scheduler and with a first-fit baseline; at the end GPUs in use are
//    compared with the lower bound for the placed demand (see analysis.h PackingStats).
// 3. With --nodes FILE --pods FILE: instead of 1 and 2, a workload trace (CSV, format in
//    docs/performance.md) replayed through our scheduler and first fit (trace.h).
#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <queue>
#include <random>
#include <string>
#include <vector>

#include "waterline/scheduling/analysis.h"
#include "waterline/scheduling/plugins.h"
#include "waterline/scheduling/scheduler.h"
#include "trace.h"
#include "workload.h"

using namespace waterline::scheduling;
using namespace waterline::scheduling::bench;
using Clock = std::chrono::steady_clock;

namespace {

// CPU seconds used by this (single-threaded) process: the machine the benchmark runs on
// may be shared, and the target is placements per second on one core.
double cpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

void buildCluster(Inventory& inv, int nodes) {
  auto pools = benchPools();
  for (const auto& p : pools) {
    if (!inv.upsertPool(p.spec)) std::abort();
  }
  for (auto& n : benchNodes(pools, nodes)) {
    if (!inv.upsertNode(std::move(n))) std::abort();
  }
  inv.prepare();
}

struct Throughput {
  int nodes = 0;
  long fill_placements = 0;
  double fill_seconds = 0;
  long placements = 0;
  long failed = 0;
  long releases = 0;
  double seconds = 0;      // wall
  double cpu_seconds = 0;  // CPU time of the process
  double utilization = 0;
  double indexed_us = 0;     // schedule() per call, CPU
  double exhaustive_us = 0;  // scheduleExhaustive() per call, CPU (scans every node)
  double rate() const { return cpu_seconds > 0 ? static_cast<double>(placements) / cpu_seconds : 0; }
  double wallRate() const { return seconds > 0 ? static_cast<double>(placements) / seconds : 0; }
};

Throughput throughput(int nodes, long measured, std::uint64_t seed) {
  Throughput t;
  t.nodes = nodes;
  Inventory inv;
  buildCluster(inv, nodes);
  std::mt19937_64 rng(seed);
  auto pools = benchPools();
  const auto deps = benchDeployments(pools, 400, rng);
  Scheduler s(inv);
  const double capacity = nodes * 8.0;
  const double target = 0.75 * capacity;
  struct Live {
    std::string worker;
    double size;
  };
  std::vector<Live> live;
  live.reserve(static_cast<std::size_t>(capacity * 2));
  double live_eq = 0;
  long counter = 0;
  std::uniform_int_distribution<std::size_t> pick_dep(0, deps.size() - 1);
  auto arrive = [&]() -> bool {
    const Deployment& d = deps[pick_dep(rng)];
    Request r = d.base;
    r.worker = "w" + std::to_string(counter++);
    auto dec = s.place(r);
    if (!dec) return false;
    live.push_back({std::move(r.worker), d.gpu_equivalents});
    live_eq += d.gpu_equivalents;
    return true;
  };
  auto depart = [&]() {
    const std::size_t i = std::uniform_int_distribution<std::size_t>(0, live.size() - 1)(rng);
    inv.forget(live[i].worker);
    live_eq -= live[i].size;
    live[i] = std::move(live.back());
    live.pop_back();
  };
  // Fill.
  auto t0 = Clock::now();
  long consecutive_fail = 0;
  while (live_eq < target && consecutive_fail < 5000) {
    if (arrive()) {
      ++t.fill_placements;
      consecutive_fail = 0;
    } else {
      ++consecutive_fail;
    }
  }
  t.fill_seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  // Steady churn: keep occupancy around the target.
  t0 = Clock::now();
  const double c0 = cpuSeconds();
  while (t.placements < measured) {
    if (live_eq >= target && !live.empty()) {
      depart();
      ++t.releases;
    }
    if (arrive()) {
      ++t.placements;
    } else {
      ++t.failed;
      if (!live.empty()) {
        depart();
        ++t.releases;
      }
    }
  }
  t.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  t.cpu_seconds = cpuSeconds() - c0;
  t.utilization = live_eq / capacity;
  // The same decisions without the index: cost of one scheduling cycle both ways, on the
  // same requests against the same state (nothing is reserved).
  {
    const int samples = 2000;
    std::vector<Request> reqs;
    for (int i = 0; i < samples; ++i) {
      Request r = deps[pick_dep(rng)].base;
      r.worker = "probe";
      reqs.push_back(std::move(r));
    }
    long same = 0;
    std::vector<Assignment> a1;
    double c = cpuSeconds();
    for (const auto& r : reqs) {
      auto d = s.schedule(r);
      a1.push_back(d ? d->assignment : Assignment{});
    }
    t.indexed_us = (cpuSeconds() - c) * 1e6 / samples;
    c = cpuSeconds();
    for (std::size_t i = 0; i < reqs.size(); ++i) {
      auto d = s.scheduleExhaustive(reqs[i]);
      same += (d ? d->assignment : Assignment{}) == a1[i] ? 1 : 0;
    }
    t.exhaustive_us = (cpuSeconds() - c) * 1e6 / samples;
    if (same != samples) std::fprintf(stderr, "indexed and exhaustive differ on %ld of %d\n", samples - same, samples);
  }
  if (!inv.checkInvariants().empty()) {
    std::fprintf(stderr, "invariants broken after throughput run\n");
    std::abort();
  }
  return t;
}

struct Packing {
  long arrivals = 0;
  long failed = 0;
  PackingStats stats;
  FragmentationReport frag;
  double seconds = 0;
};

struct Event {
  std::size_t dep;
  long lifetime;
};

std::vector<Event> makeEvents(const std::vector<Deployment>& deps, int nodes, long& arrivals,
                              std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  double mean_size = 0;
  for (const auto& d : deps) mean_size += d.gpu_equivalents;
  mean_size /= static_cast<double>(deps.size());
  // Little's law: live demand = arrival rate (1 per step) x mean lifetime.
  const double mean_life = 0.8 * nodes * 8.0 / mean_size;
  arrivals = static_cast<long>(4 * mean_life);
  std::exponential_distribution<double> life(1.0 / mean_life);
  std::uniform_int_distribution<std::size_t> pick(0, deps.size() - 1);
  std::vector<Event> ev;
  for (long i = 0; i < arrivals; ++i) {
    ev.push_back({pick(rng), 1 + static_cast<long>(life(rng))});
  }
  return ev;
}

template <typename PlaceFn>
Packing replay(int nodes, const std::vector<Deployment>& deps, const std::vector<Event>& ev,
               Inventory& inv, PlaceFn place) {
  Packing p;
  p.arrivals = static_cast<long>(ev.size());
  std::vector<std::vector<long>> leaving(ev.size() + 1);
  std::vector<bool> placed(ev.size(), false);
  auto t0 = Clock::now();
  for (long t = 0; t < static_cast<long>(ev.size()); ++t) {
    for (long id : leaving[t]) {
      if (placed[id]) inv.forget("a" + std::to_string(id));
    }
    Request r = deps[ev[t].dep].base;
    r.worker = "a" + std::to_string(t);
    if (place(r)) {
      placed[t] = true;
      const long end = t + ev[t].lifetime;
      if (end < static_cast<long>(ev.size())) leaving[end].push_back(t);
    } else {
      ++p.failed;
    }
  }
  p.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  (void)nodes;
  return p;
}

void printPacking(const char* name, const Packing& p) {
  std::printf(
      "packing %-9s arrivals=%ld failed=%ld gpus_used=%lld lower_bound=%lld stranded=%lld "
      "(%.2f%% of bound) partial_gpus=%lld nodes_used=%lld idle_nodes=%lld "
      "free_stranded_for_mix=%.2f/%.2f GPU-eq (%.2f%%) replay_s=%.2f\n",
      name, p.arrivals, p.failed, static_cast<long long>(p.stats.gpus_used),
      static_cast<long long>(p.stats.lower_bound_gpus), static_cast<long long>(p.stats.stranded()),
      p.stats.strandedVsBoundPct(), static_cast<long long>(p.stats.gpus_partial),
      static_cast<long long>(p.stats.nodes_used), static_cast<long long>(p.stats.idle_nodes),
      p.frag.stranded_gpus, p.frag.free_gpus, p.frag.strandedPct(), p.seconds);
}

void printTrace(const char* name, const ReplayStats& s) {
  std::printf(
      "trace %-9s pods=%lld placed=%lld refused=%lld (%.2f%%; whole=%lld mig=%lld share=%lld) "
      "window_s=%.0f mean_gpus_used=%.2f mean_lower_bound=%.2f stranded=%.2f%% of bound "
      "peak_stranded=%lld\n",
      name, static_cast<long long>(s.pods), static_cast<long long>(s.placed),
      static_cast<long long>(s.refused), s.refusedPct(), static_cast<long long>(s.refused_whole),
      static_cast<long long>(s.refused_mig), static_cast<long long>(s.refused_share), s.window_s,
      s.meanUsed(), s.meanBound(), s.strandedVsBoundPct(), static_cast<long long>(s.peak_stranded));
}

int runTrace(const std::string& nodes_path, const std::string& pods_path,
             const std::string& samples_path) {
  auto nodes = loadNodes(nodes_path);
  if (!nodes) {
    std::fprintf(stderr, "scheduler_bench: %s\n", nodes.error().c_str());
    return 2;
  }
  auto pods = loadPods(pods_path);
  if (!pods) {
    std::fprintf(stderr, "scheduler_bench: %s\n", pods.error().c_str());
    return 2;
  }
  const TraceCluster cluster = buildCluster(*nodes);
  long long gpus = 0;
  for (const auto& n : *nodes) gpus += n.gpus;
  auto unservable = unservablePods(cluster, *pods);
  if (!unservable) {
    std::fprintf(stderr, "scheduler_bench: %s\n", unservable.error().c_str());
    return 2;
  }
  std::printf("trace nodes=%zu gpus=%lld pools=%zu pods=%zu unservable=%lld (no node class can take them)\n",
              nodes->size(), gpus, cluster.pools.size(), pods->size(),
              static_cast<long long>(*unservable));
  std::vector<ReplaySample> s_ours, s_ff;
  const bool keep = !samples_path.empty();
  const double c0 = cpuSeconds();
  auto ours = replayOurs(cluster, *pods, keep ? &s_ours : nullptr);
  const double c1 = cpuSeconds();
  auto ff = replayFirstFit(cluster, *pods, keep ? &s_ff : nullptr);
  const double c2 = cpuSeconds();
  if (!ours || !ff) {
    std::fprintf(stderr, "scheduler_bench: %s\n", (!ours ? ours.error() : ff.error()).c_str());
    return 2;
  }
  printTrace("ours", *ours);
  printTrace("firstfit", *ff);
  std::printf("trace replay_cpu_s ours=%.2f firstfit=%.2f\n", c1 - c0, c2 - c1);
  if (keep) {
    std::FILE* f = std::fopen(samples_path.c_str(), "w");
    if (f == nullptr) {
      std::fprintf(stderr, "scheduler_bench: cannot write %s\n", samples_path.c_str());
      return 2;
    }
    std::fprintf(f, "scheduler,t_s,gpus_used,lower_bound,live_pods\n");
    for (const auto& [name, v] : {std::pair{"ours", &s_ours}, std::pair{"firstfit", &s_ff}}) {
      for (const auto& x : *v) {
        std::fprintf(f, "%s,%.3f,%lld,%lld,%lld\n", name, x.t_s, static_cast<long long>(x.used),
                     static_cast<long long>(x.bound), static_cast<long long>(x.live));
      }
    }
    std::fclose(f);
  }
  std::printf("RESULT trace_stranded_vs_bound_pct %.2f pct\n", ours->strandedVsBoundPct());
  std::printf("RESULT trace_stranded_firstfit_vs_bound_pct %.2f pct\n", ff->strandedVsBoundPct());
  std::printf("RESULT trace_refused_pct %.2f pct\n", ours->refusedPct());
  std::printf("RESULT trace_refused_firstfit_pct %.2f pct\n", ff->refusedPct());
  return 0;
}

int usage(const char* msg) {
  std::fprintf(stderr,
               "scheduler_bench: %s\n"
               "usage: scheduler_bench [--quick] [--packing-nodes N]\n"
               "       scheduler_bench --nodes NODES.csv --pods PODS.csv [--samples OUT.csv]\n",
               msg);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  bool quick = false;
  int packing_nodes = 1000;
  std::string nodes_path, pods_path, samples_path;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&](std::string& out) {
      if (i + 1 >= argc) return false;
      out = argv[++i];
      return true;
    };
    if (a == "--quick") {
      quick = true;
    } else if (a == "--packing-nodes") {
      std::string v;
      if (!value(v)) return usage("--packing-nodes needs a value");
      auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), packing_nodes);
      if (ec != std::errc() || end != v.data() + v.size() || packing_nodes < 1) {
        return usage("--packing-nodes must be a positive whole number");
      }
    } else if (a == "--nodes") {
      if (!value(nodes_path)) return usage("--nodes needs a file");
    } else if (a == "--pods") {
      if (!value(pods_path)) return usage("--pods needs a file");
    } else if (a == "--samples") {
      if (!value(samples_path)) return usage("--samples needs a file");
    } else {
      return usage(("unknown argument " + a).c_str());
    }
  }
  if (nodes_path.empty() != pods_path.empty()) return usage("--nodes and --pods go together");
  if (!samples_path.empty() && nodes_path.empty()) return usage("--samples needs --nodes and --pods");
  if (!nodes_path.empty()) return runTrace(nodes_path, pods_path, samples_path);
  const std::uint64_t seed = 20240611;

  // 1. Throughput.
  double rate10k = 0;
  for (int nodes : {100, 1000, 10000}) {
    const long measured = quick ? 20000 : (nodes >= 10000 ? 300000 : 100000);
    Throughput t = throughput(nodes, measured, seed);
    std::printf(
        "throughput nodes=%d gpus=%d fill_placements=%ld fill_s=%.2f placements=%ld failed=%ld "
        "releases=%ld cpu_s=%.3f wall_s=%.3f placements_per_sec=%.0f (per CPU second; %.0f per "
        "wall second) utilization=%.2f schedule_us=%.2f exhaustive_scan_us=%.1f\n",
        t.nodes, t.nodes * 8, t.fill_placements, t.fill_seconds, t.placements, t.failed,
        t.releases, t.cpu_seconds, t.seconds, t.rate(), t.wallRate(), t.utilization,
        t.indexed_us, t.exhaustive_us);
    std::fflush(stdout);
    if (nodes == 10000) rate10k = t.rate();
  }

  // 2. Packing quality: identical arrival/departure sequence for both schedulers.
  if (quick) packing_nodes = std::min(packing_nodes, 200);
  std::mt19937_64 rng(seed + 1);
  auto pools = benchPools();
  const auto deps = benchDeployments(pools, 400, rng);
  long arrivals = 0;
  const auto events = makeEvents(deps, packing_nodes, arrivals, seed + 2);
  std::vector<Request> mix;
  for (const auto& d : deps) mix.push_back(d.base);
  Profile prof = Profile::defaults();

  Inventory ours_inv;
  buildCluster(ours_inv, packing_nodes);
  Scheduler sched(ours_inv, prof);
  Packing ours = replay(packing_nodes, deps, events, ours_inv,
                        [&](const Request& r) { return sched.place(r).has_value(); });
  ours.stats = packingStats(ours_inv);
  ours.frag = fragmentation(ours_inv, prof, mix);

  Inventory ff_inv;
  buildCluster(ff_inv, packing_nodes);
  FirstFit ff(ff_inv, prof);
  Packing first = replay(packing_nodes, deps, events, ff_inv, [&](const Request& r) {
    auto a = ff.schedule(r);
    return a && ff_inv.assume(r, *a).has_value();
  });
  first.stats = packingStats(ff_inv);
  first.frag = fragmentation(ff_inv, prof, mix);

  std::printf("packing nodes=%d gpus=%d events=%ld\n", packing_nodes, packing_nodes * 8, arrivals);
  printPacking("ours", ours);
  printPacking("firstfit", first);
  if (!ours_inv.checkInvariants().empty() || !ff_inv.checkInvariants().empty()) {
    std::fprintf(stderr, "invariants broken after packing replay\n");
    return 1;
  }

  std::printf("RESULT placements_per_sec_10k_nodes %.0f 1/s\n", rate10k);
  std::printf("RESULT stranded_vs_bound_pct %.2f %%\n", ours.stats.strandedVsBoundPct());
  std::printf("RESULT stranded_firstfit_vs_bound_pct %.2f %%\n", first.stats.strandedVsBoundPct());
  return 0;
}
