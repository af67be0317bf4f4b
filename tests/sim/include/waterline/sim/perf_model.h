#pragma once
// Service times of one model replica, from the Splitwise performance model (MIT,
// Mutinifni/splitwise-sim data/perf_model.csv): measured prompt_time and token_time (ms)
// by model, hardware, prompt size, batch size and tensor-parallel degree.
//
// The table sweeps each factor separately (five repetitions per point, averaged here):
//   - prompt_size 128..8192 at batch 1  → prefill time as a function of prompt tokens,
//     interpolated linearly and extrapolated with the last segment's slope;
//   - batch_size 1..64 at prompt 512    → the decode iteration time (token_time) as a
//     function of the running batch, interpolated linearly between batch sizes, made
//     non-decreasing (a few large-batch points of the table are anomalous: lower than the
//     smaller batch before them).
// A prefill of several prompts costs the prefill time of their summed tokens (the table's
// prompt_time grows linearly with batch × prompt size).
#include <cstdint>
#include <expected>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace waterline::sim {

// Weights and KV-cache size per token of the models in the table.
struct ModelShape {
  double weightsGiB = 0;        // fp16 weights
  double kvBytesPerToken = 0;   // K and V, all layers, fp16
};
// llama2-70b (80 layers, 8 KV heads × 128, GQA) and bloom-176b (70 layers, 14336 wide).
std::expected<ModelShape, std::string> modelShape(const std::string& model);

// "H100"/"h100"/"h100-80gb" → "h100-80gb"; "A100"... → "a100-80gb"; others unchanged
// (lower-cased).
std::string normalizeHardware(const std::string& gpuType);

class ServiceModel {
 public:
  ServiceModel() = default;
  ServiceModel(std::vector<std::pair<double, double>> prefillMs, std::vector<std::pair<double, double>> decodeMs,
               double kvCapacityTokens);

  // Seconds to prefill `tokens` prompt tokens (summed over the prompts of one iteration).
  double prefillSeconds(double tokens) const;
  // Seconds of one decode iteration with `batch` running sequences (>= 1).
  double decodeStepSeconds(int batch) const;
  // Largest batch in the table (the decode curve is extrapolated beyond it).
  int tableMaxBatch() const;
  // Tokens of KV cache the replica holds (GPU memory × tp − weights, 90 % usable).
  double kvCapacityTokens() const { return kvCapacityTokens_; }

  // Steady-state cost model at an operating decode batch:
  //   seconds per input token  = prefillSeconds(8192) / 8192 (the large-prompt slope)
  //   seconds per output token = decodeStepSeconds(batch) / batch
  // One replica then serves 1 / secondsPerInputToken input-token-equivalents per second,
  // with an output token weighing outputWeight() input tokens.
  double secondsPerInputToken() const;
  double secondsPerOutputToken(int operatingBatch) const;
  double outputWeight(int operatingBatch) const { return secondsPerOutputToken(operatingBatch) / secondsPerInputToken(); }
  // Weighted tokens (input + outputWeight × output) per second one replica sustains.
  double capacityWeightedTokensPerSecond() const { return 1.0 / secondsPerInputToken(); }

 private:
  std::vector<std::pair<double, double>> prefill_;  // (prompt tokens, ms)
  std::vector<std::pair<double, double>> decode_;   // (batch, ms), non-decreasing
  double kvCapacityTokens_ = 0;
};

class PerfModel {
 public:
  struct Key {
    std::string model;
    std::string hardware;
    int tp = 0;
    auto operator<=>(const Key&) const = default;
  };

  static std::expected<PerfModel, std::string> loadCsv(const std::string& path);

  std::vector<Key> keys() const;
  // The service model of a replica; error names the available combinations.
  std::expected<ServiceModel, std::string> service(const std::string& model, const std::string& hardware,
                                                   int tp) const;

 private:
  struct Curves {
    std::map<int, std::pair<double, int>> prefill;  // prompt → (sum ms, n) at batch 1, token_size 128
    std::map<int, std::pair<double, int>> decode;   // batch → (sum ms, n) at prompt 512, token_size 128
  };
  std::map<Key, Curves> curves_;
};

}  // namespace waterline::sim
