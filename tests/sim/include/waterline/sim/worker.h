#pragma once
// One simulated inference replica with continuous batching (vLLM-style scheduling,
// discrete-event, in simulated seconds):
//   - each iteration is either a PREFILL of newly admitted prompts (FIFO, while the
//     batch has room, the KV cache can hold their prompt + output, and the iteration's
//     prompt tokens stay within maxPrefillTokens; a single longer prompt is still
//     admitted alone), taking ServiceModel::prefillSeconds(sum of prompt tokens) and
//     yielding each admitted request's first token;
//   - or, when nothing can be admitted, a DECODE step of every running request, taking
//     ServiceModel::decodeStepSeconds(batch) and yielding one token each.
//   Prefill has priority (vLLM's default scheduler without chunked prefill).
// KV cache is reserved for prompt + output at admission (no preemption); a request that
// could never fit is cut to fit (prompt first).
#include <cstdint>
#include <deque>
#include <functional>
#include <string>
#include <vector>

#include "waterline/sim/perf_model.h"
#include "waterline/sim/trace.h"

namespace waterline::sim {

struct WorkerParams {
  int maxBatch = 64;               // concurrent sequences (vLLM max_num_seqs)
  int maxPrefillTokens = 16384;    // prompt tokens per prefill iteration
  double kvCapacityTokens = 0;     // 0: from the ServiceModel
};

struct ActiveRequest {
  uint64_t id = 0;
  double arrival = 0;      // when the worker received it
  int32_t input = 0;
  int32_t output = 0;
  int32_t generated = 0;
  double firstTokenAt = -1;
  double admittedAt = -1;
};

// Callbacks from SimWorker::advanceTo (any may be empty).
struct WorkerEvents {
  std::function<void(const ActiveRequest&, double t)> firstToken;  // prefill done
  std::function<void(const ActiveRequest&, double t)> tokens;      // after each iteration that produced tokens
  std::function<void(const ActiveRequest&, double t)> done;        // last token
  std::function<void(double seconds, int batch, bool prefill, int64_t promptTokens)> iteration;
};

class SimWorker {
 public:
  SimWorker(ServiceModel model, WorkerParams params);

  // Queues a request received at `now` (>= the last advance). Starts an iteration at
  // `now` if the worker was idle.
  void submit(const SimRequest& r, double now);
  // Runs every iteration that ends at or before `t`.
  void advanceTo(double t, const WorkerEvents& ev);
  // Fails every queued and running request (they are returned) and goes idle.
  std::vector<ActiveRequest> failAll();

  // Prefilling requests count as running (as in vLLM).
  int running() const { return static_cast<int>(running_.size() + admitted_.size()); }
  int waiting() const { return static_cast<int>(waiting_.size()); }
  int outstanding() const { return running() + waiting(); }
  // Reserved KV tokens / capacity, in [0, 1].
  double kvUsage() const;
  double kvCapacityTokens() const { return kvCap_; }
  // Busy (iterating) seconds accumulated up to `t` (the current iteration counted up to t).
  double busySecondsUntil(double t) const;
  bool busy() const { return busy_; }
  const ServiceModel& model() const { return model_; }

 private:
  bool startIteration(double at);
  void finishIteration(const WorkerEvents& ev);

  ServiceModel model_;
  WorkerParams params_;
  double kvCap_ = 0;
  double kvUsed_ = 0;
  std::deque<ActiveRequest> waiting_;
  std::vector<ActiveRequest> running_;
  std::vector<ActiveRequest> admitted_;  // being prefilled
  bool busy_ = false;
  bool prefill_ = false;
  double iterStart_ = 0;
  double iterEnd_ = 0;
  double busyDone_ = 0;  // seconds of finished iterations
  double now_ = 0;
};

}  // namespace waterline::sim
