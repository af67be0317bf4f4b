#pragma once
// A simulated fleet of inference workers: the worker set (an interface, so that the
// set can come from a static config now and from pods in the apiserver later), a
// least-outstanding-requests router, per-worker continuous batching (SimWorker), and
// the metrics a real fleet would expose:
//   vLLM (labels pod, namespace, deployment, pool, model_name):
//     vllm:prompt_tokens_total, vllm:generation_tokens_total, vllm:request_success_total,
//     vllm:num_requests_running, vllm:num_requests_waiting, vllm:gpu_cache_usage_perc,
//     vllm:time_to_first_token_seconds, vllm:time_per_output_token_seconds,
//     vllm:e2e_request_latency_seconds (histograms);
//   DCGM exporter (labels gpu, UUID, device, modelName, Hostname, plus the worker's pod,
//     namespace and container when a worker holds the GPU):
//     DCGM_FI_DEV_GPU_UTIL (%), DCGM_FI_DEV_FB_USED (MiB), DCGM_FI_DEV_XID_ERRORS (last XID).
// Single-threaded: call everything from one thread (the simulator's io_context).
#include <cstdint>
#include <expected>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "waterline/common/metrics.h"
#include "waterline/sim/perf_model.h"
#include "waterline/sim/trace.h"
#include "waterline/sim/worker.h"

namespace waterline::sim {

struct WorkerSpec {
  std::string pod;
  std::string ns = "default";
  std::string deployment;
  std::string pool;
  std::string node;             // empty: assigned (sim-node-0, sim-node-1, ... gpusPerNode each)
  std::string gpuType = "H100";  // H100 or A100 (80 GB)
  int tp = 4;                    // tensor-parallel degree = GPUs of the replica
  std::string model = "llama2-70b";
  std::vector<int> gpus;         // GPU indices on the node; empty: assigned
  bool operator==(const WorkerSpec&) const = default;
};

// Where the worker set comes from. The fleet polls it and converges (sync()).
class WorkerSet {
 public:
  virtual ~WorkerSet() = default;
  virtual std::vector<WorkerSpec> workers() = 0;
};
using WorkerSetPtr = std::shared_ptr<WorkerSet>;

class StaticWorkerSet final : public WorkerSet {
 public:
  explicit StaticWorkerSet(std::vector<WorkerSpec> w) : workers_(std::move(w)) {}
  std::vector<WorkerSpec> workers() override { return workers_; }
  void set(std::vector<WorkerSpec> w) { workers_ = std::move(w); }

 private:
  std::vector<WorkerSpec> workers_;
};

// "pod=a,namespace=ns,deployment=d,pool=p,gpu=H100,tp=4,node=n,model=llama2-70b"
std::expected<WorkerSpec, std::string> parseWorkerSpec(std::string_view s);
// {"workers":[{"pod":..., "namespace":..., "deployment":..., "pool":..., "gpu":"H100", "tp":4, "node":...}]}
std::expected<std::vector<WorkerSpec>, std::string> parseWorkerConfig(std::string_view json);

struct FleetOptions {
  WorkerParams worker;
  double startupSeconds = 0;  // model load: a new worker is ready this long after it appears
  int gpusPerNode = 8;
  double utilTimeConstant = 1.0;  // seconds (simulated) of the GPU utilisation average
};

struct Completion {
  uint64_t id = 0;
  std::string pod;
  double arrival = 0;
  double firstToken = -1;
  double finish = 0;
  int32_t input = 0;
  int32_t output = 0;
  bool failed = false;
  std::string error;
};

struct WorkerStatus {
  WorkerSpec spec;
  bool ready = false;
  bool draining = false;
  bool failed = false;
  int running = 0;
  int waiting = 0;
  double kvUsage = 0;
};

class Fleet {
 public:
  using DoneFn = std::function<void(const Completion&)>;
  using ProgressFn = std::function<void(uint64_t id, int generated, double t)>;

  // registry may be null (no metrics, e.g. in the bench).
  Fleet(const PerfModel& perf, FleetOptions opts, metrics::Registry* registry);
  ~Fleet();
  Fleet(const Fleet&) = delete;
  Fleet& operator=(const Fleet&) = delete;

  // Converges on `specs` at `now`: new pods start (ready after startupSeconds), pods no
  // longer listed drain (take no new requests, disappear when empty). Returns one error
  // per spec that cannot be simulated (unknown GPU/model/tp; those are skipped).
  std::vector<std::string> sync(const std::vector<WorkerSpec>& specs, double now);

  // Routes a request arriving at `now` (>= the last advance) to a ready worker: the named
  // pod, else the deployment's (any deployment when empty) with the fewest outstanding
  // requests. Returns the pod, or an error when no worker can take it.
  std::expected<std::string, std::string> submit(const SimRequest& r, double now, std::string_view deployment = {},
                                                 std::string_view pod = {}, DoneFn done = {},
                                                 ProgressFn progress = {});

  // Runs every worker up to `t`; callbacks fire in between.
  void advanceTo(double t);
  double now() const { return now_; }

  // DCGM_FI_DEV_XID_ERRORS := xid on that GPU. XIDs 48, 62, 64, 74, 79, 92, 94, 95 (fatal
  // ones) also fail the worker on that GPU: its requests fail, it is no longer ready.
  // False when the node/GPU is unknown.
  bool injectXid(const std::string& node, int gpu, int xid, double now);
  // Clears a failure (e.g. after the pod was replaced): the XID gauge goes to 0.
  bool clearXid(const std::string& node, int gpu);

  // Updates the gauges (running/waiting/kv, GPU util/memory) for a scrape at `now`.
  void refreshGauges(double now);

  std::vector<WorkerStatus> status() const;
  std::optional<WorkerStatus> status(std::string_view pod) const;
  size_t readyWorkers(std::string_view deployment = {}) const;

  // Totals since start.
  uint64_t completed() const { return completed_; }
  uint64_t failed() const { return failed_; }
  uint64_t rejected() const { return rejected_; }

 private:
  struct Worker;
  struct Gpu;
  struct Metrics;

  Worker* find(std::string_view pod);
  void finishRequest(Worker& w, const ActiveRequest& a, double t, bool failed, const std::string& error);
  void removeWorker(const std::string& pod);
  void stepWorker(Worker& w, double t);

  const PerfModel& perf_;
  FleetOptions opts_;
  std::unique_ptr<Metrics> metrics_;
  std::map<std::string, std::unique_ptr<Worker>, std::less<>> workers_;
  std::map<std::pair<std::string, int>, Gpu> gpus_;  // (node, index)
  std::map<std::string, int> nodeCursor_;            // auto-assigned node → next free index
  int autoNode_ = 0;
  double now_ = 0;
  uint64_t completed_ = 0;
  uint64_t failed_ = 0;
  uint64_t rejected_ = 0;
};

}  // namespace waterline::sim
