#pragma once
// The autoscaler bench's replay: a load (weighted tokens arriving each simulated second),
// a metric pipeline (Prometheus-style: scrapes every scrapeInterval, rate over
// rateWindow, a query every queryPeriod) and a replica fleet with a provisioning delay,
// driven by a pluggable scaling rule. Everything runs in simulated time, one-second
// steps, no sleeping.
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "waterline/sim/fleet.h"
#include "waterline/sim/perf_model.h"
#include "waterline/sim/trace.h"

namespace waterline::bench {

// Speed profile of the trace replay: speed(t) = baseSpeed × profile(t).
enum class Profile { Flat, Diurnal, FlashCrowd };

struct LoadConfig {
  double baseSpeed = 10;        // mean replay speed of the trace
  Profile profile = Profile::Diurnal;
  double duration = 3600;       // simulated seconds
  double outputWeight = 10;     // weight of an output token (input tokens weigh 1)
  double traceOffset = 0;       // trace seconds to start from (phases of the same trace)
};

// profile(t): Flat = 1; Diurnal = 1 + 0.5 sin(2π t / 1800 − π/2) (0.5 → 1.5 → 0.5 every
// 30 min) times two flash crowds (×1.6 for 150 s from t = 1200 s and t = 2820 s, with
// 30 s ramps); FlashCrowd = 1 with four flash crowds (×2.2 for 120 s from t = 450, 1350,
// 2250 and 3150 s, with 10 s ramps): a flat load hit by sudden surges.
double profileAt(Profile p, double t);

// The trace replayed with a time-varying speed: trace position advances by
// baseSpeed × profile(t) seconds per simulated second, looping over the trace.
std::vector<sim::SimRequest> warpTrace(const std::vector<sim::SimRequest>& trace, const LoadConfig& cfg);

// Weighted tokens (input + outputWeight × output) arriving in each second [k, k+1).
std::vector<double> workPerSecond(const std::vector<sim::SimRequest>& reqs, const LoadConfig& cfg);

struct ReplayConfig {
  double capacityPerReplica = 1;   // weighted tokens/s one ready replica serves
  int gpusPerReplica = 4;
  double startupSeconds = 60;      // created → ready (model load)
  int scrapeInterval = 15;
  int rateWindow = 60;             // rate(...[rateWindow])
  int queryPeriod = 15;            // autoscaler evaluation period
  int demandWindow = 60;           // under-provisioning: demand over this trailing window
  double backlogSlaSeconds = 10;   // "queueing" share: backlog / capacity above this
  int maxReplicas = 1000;
  std::optional<int> maxSchedulable;  // placeable replicas (both rules see the same pool)
};

// What the rule sees at an evaluation.
struct Observation {
  double now = 0;                  // simulated seconds
  int32_t current = 0;             // the desired count set last time
  std::optional<double> total;     // the metric (nullopt: missing)
  int32_t ready = 0;
  int32_t existing = 0;
  // The per-pod view a Kubernetes HPA gets for a Pods metric: the pods (not being deleted)
  // that reported the metric at the last scrape, and the sum of what they reported. Fleet
  // mode; in fluid mode the ready replicas and the total.
  int32_t podsWithMetrics = 0;
  std::optional<double> podsTotal;
};
using Rule = std::function<int32_t(const Observation&)>;

struct ReplayResult {
  std::string name;
  double gpuHours = 0;
  double underprovisionedPct = 0;   // seconds with demand(window) > ready × capacity
  double backlogOverSlaPct = 0;     // seconds with fluid backlog > backlogSla × ready capacity
  double maxBacklogSeconds = 0;
  int scaleEvents = 0;              // evaluations that changed the desired count
  int scaleUps = 0;
  int scaleDowns = 0;
  double meanReplicas = 0;
  int maxReplicasSeen = 0;
  int reversals = 0;                // scale-up followed by scale-down or the reverse
  std::vector<int32_t> desiredTrace;  // desired count per second
  std::vector<int32_t> readyTrace;    // ready count per second
  std::vector<double> metricTrace;    // last query result per second (NaN: none yet)
  // Fleet mode only: request latencies.
  double ttftP50 = 0, ttftP99 = 0;
  double slowTtftPct = 0;           // requests whose first token took longer than ttftSlo
  uint64_t completed = 0, failed = 0;
};

// Sums (gpuHours, events, completed/failed) and averages (percentages, latencies, mean
// replicas) results of several runs; traces are dropped.
ReplayResult combine(const std::vector<ReplayResult>& runs);

// Runs one rule over the load. initialReplicas start ready at t = 0.
ReplayResult replay(const std::string& name, const std::vector<double>& work, const ReplayConfig& cfg,
                    int32_t initialReplicas, const Rule& rule);

// The same, with the load served by a simulated fleet (sim::Fleet: continuous batching on
// the perf model, least-outstanding routing, replicas ready after startupSeconds, deleted
// ones draining their requests). The metric is the fleet's in-flight requests
// (vLLM num_requests_running + num_requests_waiting summed over workers) sampled at each
// scrape; the query reads the latest scrape.
struct FleetConfig {
  sim::WorkerSpec worker;       // template (pod names are generated)
  sim::WorkerParams params;
  double ttftSlo = 10;          // seconds
};
ReplayResult replayFleet(const std::string& name, const std::vector<sim::SimRequest>& reqs,
                         const std::vector<double>& work, const sim::PerfModel& perf, const FleetConfig& fc,
                         const ReplayConfig& cfg, int32_t initialReplicas, const Rule& rule);

// Demand over the trailing window ending at each second (weighted tokens/s).
std::vector<double> trailingDemand(const std::vector<double>& work, int window);

}  // namespace waterline::bench
