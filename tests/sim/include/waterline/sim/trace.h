#pragma once
// Arrivals for simulated load: the Mooncake conversation trace (Apache-2.0,
// kvcache-ai/Mooncake FAST25-release/traces/conversation_trace.jsonl: one JSON object per
// line with `timestamp` (ms from start), `input_length`, `output_length`), or a synthetic
// Poisson process with optional bursts. Times are simulated seconds (doubles).
#include <cstdint>
#include <expected>
#include <string>
#include <vector>

namespace waterline::sim {

struct SimRequest {
  uint64_t id = 0;
  double arrival = 0;  // simulated seconds
  int32_t inputTokens = 0;
  int32_t outputTokens = 0;
};

// The default location of the shared data set (WATERLINE_DATA_DIR overrides the folder).
std::string defaultMooncakeTracePath();
std::string defaultPerfModelPath();

// Loads the trace; arrival = timestamp / 1000 / speed (speed 10: ten times the request
// rate). limit > 0 keeps the first `limit` requests. Lines that are not objects with the
// three numeric fields are an error (with the line number); blank lines are skipped.
std::expected<std::vector<SimRequest>, std::string> loadMooncakeTrace(const std::string& path, double speed = 1.0,
                                                                     size_t limit = 0);

// The trace played `loops` times back to back, each copy shifted by `period` seconds
// (period <= 0: the trace's last arrival plus its mean gap). Ids stay unique.
std::vector<SimRequest> loopTrace(const std::vector<SimRequest>& trace, int loops, double period = 0);

struct PoissonConfig {
  double ratePerSecond = 1;    // mean arrivals per simulated second
  double duration = 60;        // seconds of arrivals
  double meanInputTokens = 1024;
  double meanOutputTokens = 256;
  int32_t maxInputTokens = 32768;
  int32_t maxOutputTokens = 4096;
  // Bursts: every `burstEvery` seconds the rate is multiplied by `burstFactor` for
  // `burstDuration` seconds (burstEvery <= 0: none).
  double burstEvery = 0;
  double burstDuration = 0;
  double burstFactor = 1;
  uint64_t seed = 1;
};

// Token counts are exponential around their means (at least 1), clipped to the maxima.
std::vector<SimRequest> generatePoisson(const PoissonConfig& cfg);

// Offered load of a request list: requests, input and output tokens per second, over
// [from, to).
struct LoadSummary {
  double requestsPerSecond = 0;
  double inputTokensPerSecond = 0;
  double outputTokensPerSecond = 0;
  double meanInput = 0;
  double meanOutput = 0;
};
LoadSummary summarize(const std::vector<SimRequest>& reqs, double from, double to);

}  // namespace waterline::sim
