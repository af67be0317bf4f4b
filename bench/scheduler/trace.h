#pragma once
// Trace replay for the scheduler benchmark: a cluster and a pod workload read from two CSV
// files (format in docs/performance.md, "Scheduler: replaying a workload trace"),
// replayed as an event simulation (arrivals and departures in time order) through our
// scheduler and through the first-fit baseline, with refused arrivals and time-averaged
// stranded GPUs over the lower bound for each.
#include <cstdint>
#include <expected>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "waterline/scheduling/inventory.h"
#include "waterline/scheduling/model.h"

namespace waterline::scheduling::bench {

// One row of the nodes file.
struct TraceNode {
  std::string name;
  std::string gpu_model;  // GFD nvidia.com/gpu.product
  int gpus = 0;
  SharingMode sharing = SharingMode::Exclusive;
  std::vector<std::string> mig_profiles;  // MIG: allowed profiles; empty = all of the product
  int slices = 1;                         // TimeSlicing / MPS: slices per GPU
  int line = 0;                           // where it was read
};

// One row of the pods file.
struct TracePod {
  std::int64_t arrival_ms = 0;
  std::int64_t duration_ms = 0;
  int whole_gpus = 0;       // > 0: that many whole GPUs
  int gpu_milli = 0;        // > 0: a fraction of one GPU in thousandths (1..999)
  std::string gpu_model;    // empty: any
  std::string mig_profile;  // set: one MIG instance of this profile (gpu_milli > 0)
  int line = 0;
};

// `text` is the file's content; `file` names it in errors ("file:line:column: message").
std::expected<std::vector<TraceNode>, std::string> parseNodes(std::string_view text,
                                                              std::string_view file);
std::expected<std::vector<TracePod>, std::string> parsePods(std::string_view text,
                                                            std::string_view file);
// Reads a file and parses it.
std::expected<std::vector<TraceNode>, std::string> loadNodes(const std::string& path);
std::expected<std::vector<TracePod>, std::string> loadPods(const std::string& path);

// The cluster as the operator would hold it: one BinPack pool per distinct (GPU model,
// sharing mode, MIG profiles / slices), in one region and zone, and the nodes in them.
struct TraceCluster {
  std::vector<PoolSpec> pools;  // sorted by name
  std::vector<NodeSpec> nodes;  // file order
};
TraceCluster buildCluster(const std::vector<TraceNode>& nodes);
// A fresh inventory holding the cluster (nothing placed).
std::expected<Inventory, std::string> makeInventory(const TraceCluster& c);

// The scheduler request for a pod (worker "pod-<line>", its own deployment, Global):
//   N whole GPUs          -> GpuShape::whole(N)          (Exclusive pools only);
//   mig_profile P         -> GpuShape::mig(P)            (MIG pools allowing P);
//   a fraction m/1000     -> GpuShape::share(k)          (TimeSlicing / MPS pools), where k
//                            is the largest divisor of G with 1/k >= m/1000, G being the
//                            gcd of slicesPerGpu over the shared pools of the pod's GPU
//                            model (of all shared pools when it names none; G = 1 when
//                            there are none): the pod gets at least what it asked for
//                            and the same share fits every such pool;
//   gpu_model             -> Request::product, a hard requirement (GpuProduct filter).
Request toRequest(const TracePod& p, const TraceCluster& c);

// Placement policy under test: place the request (schedule and assume) or return false.
using PlaceFn = std::function<bool(const Request&)>;

struct ReplayStats {
  std::int64_t pods = 0;
  std::int64_t placed = 0;
  std::int64_t refused = 0;
  std::int64_t refused_whole = 0, refused_mig = 0, refused_share = 0;
  // Integrals over the replay window [first arrival, last arrival], in GPU-seconds, of
  // packingStats(inventory) between events: GPUs with at least one occupant, and the
  // lower bound for the demand placed at that time. (A trace whose arrivals all fall at
  // one instant has an empty window: both are 0.)
  double used_gpu_s = 0;
  double bound_gpu_s = 0;
  double window_s = 0;
  // Peak of (used - bound) and the bound at that moment.
  std::int64_t peak_stranded = 0;
  double refusedPct() const {
    return pods > 0 ? 100.0 * static_cast<double>(refused) / static_cast<double>(pods) : 0.0;
  }
  // 100 x integral(used - bound) / integral(bound).
  double strandedVsBoundPct() const {
    return bound_gpu_s > 0 ? 100.0 * (used_gpu_s - bound_gpu_s) / bound_gpu_s : 0.0;
  }
  double meanUsed() const { return window_s > 0 ? used_gpu_s / window_s : 0.0; }
  double meanBound() const { return window_s > 0 ? bound_gpu_s / window_s : 0.0; }
};

// One point of the time series: the state from `t_s` until the next sample.
struct ReplaySample {
  double t_s = 0;
  std::int64_t used = 0;
  std::int64_t bound = 0;
  std::int64_t live = 0;
};

// Replays `pods` against `inv` (holding the cluster `c`): events in time order,
// departures before arrivals at the same instant, arrivals at the same instant in file
// order. An arrival that `place` refuses is dropped (no queue). The replay stops after
// the last arrival. `samples`, when given, receives the state after every instant with
// events.
ReplayStats replay(const TraceCluster& c, const std::vector<TracePod>& pods, Inventory& inv,
                   const PlaceFn& place, std::vector<ReplaySample>* samples = nullptr);

// The two policies on fresh inventories: our Scheduler (default profile, place() as the
// deployment planner calls it) and FirstFit.
std::expected<ReplayStats, std::string> replayOurs(const TraceCluster& c,
                                                  const std::vector<TracePod>& pods,
                                                  std::vector<ReplaySample>* samples = nullptr);
std::expected<ReplayStats, std::string> replayFirstFit(const TraceCluster& c,
                                                      const std::vector<TracePod>& pods,
                                                      std::vector<ReplaySample>* samples = nullptr);

// Pods that no node class can serve at all (checked on the empty cluster).
std::expected<std::int64_t, std::string> unservablePods(const TraceCluster& c,
                                                       const std::vector<TracePod>& pods);

}  // namespace waterline::scheduling::bench
