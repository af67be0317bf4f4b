#include "waterline/sim/trace.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <random>

#include <nlohmann/json.hpp>

namespace waterline::sim {

namespace {
std::string dataDir() {
  if (const char* d = std::getenv("WATERLINE_DATA_DIR"); d && *d) return d;
  return "/work/shared/data";
}
}  // namespace

std::string defaultMooncakeTracePath() { return dataDir() + "/mooncake_conversation_trace.jsonl"; }
std::string defaultPerfModelPath() { return dataDir() + "/splitwise_perf_model.csv"; }

std::expected<std::vector<SimRequest>, std::string> loadMooncakeTrace(const std::string& path, double speed,
                                                                     size_t limit) {
  if (!(speed > 0)) return std::unexpected("trace speed must be > 0");
  std::ifstream in(path);
  if (!in) return std::unexpected("cannot open trace " + path);
  std::vector<SimRequest> out;
  std::string line;
  size_t lineNo = 0;
  while (std::getline(in, line)) {
    ++lineNo;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    auto j = nlohmann::json::parse(line, nullptr, false);
    auto num = [&](const char* k) -> const nlohmann::json* {
      if (!j.is_object()) return nullptr;
      auto it = j.find(k);
      return it != j.end() && it->is_number() ? &*it : nullptr;
    };
    const auto* ts = num("timestamp");
    const auto* il = num("input_length");
    const auto* ol = num("output_length");
    if (j.is_discarded() || !ts || !il || !ol)
      return std::unexpected(path + ":" + std::to_string(lineNo) +
                             ": expected {\"timestamp\", \"input_length\", \"output_length\"}");
    SimRequest r;
    r.id = out.size();
    r.arrival = ts->get<double>() / 1000.0 / speed;
    r.inputTokens = std::max<int32_t>(1, il->get<int32_t>());
    r.outputTokens = std::max<int32_t>(1, ol->get<int32_t>());
    out.push_back(r);
    if (limit && out.size() >= limit) break;
  }
  std::stable_sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.arrival < b.arrival; });
  return out;
}

std::vector<SimRequest> loopTrace(const std::vector<SimRequest>& trace, int loops, double period) {
  std::vector<SimRequest> out;
  if (trace.empty() || loops <= 0) return out;
  if (period <= 0) {
    const double span = trace.back().arrival - trace.front().arrival;
    period = trace.back().arrival + (trace.size() > 1 ? span / double(trace.size() - 1) : 1.0);
  }
  out.reserve(trace.size() * static_cast<size_t>(loops));
  for (int l = 0; l < loops; ++l)
    for (const auto& r : trace) {
      SimRequest c = r;
      c.arrival += l * period;
      c.id = out.size();
      out.push_back(c);
    }
  return out;
}

std::vector<SimRequest> generatePoisson(const PoissonConfig& cfg) {
  std::vector<SimRequest> out;
  if (!(cfg.ratePerSecond > 0) || !(cfg.duration > 0)) return out;
  std::mt19937_64 rng(cfg.seed);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  auto rateAt = [&](double t) {
    if (cfg.burstEvery > 0 && std::fmod(t, cfg.burstEvery) < cfg.burstDuration) return cfg.ratePerSecond * cfg.burstFactor;
    return cfg.ratePerSecond;
  };
  const double maxRate = std::max(cfg.ratePerSecond, cfg.ratePerSecond * std::max(1.0, cfg.burstFactor));
  auto expo = [&](double mean) { return -mean * std::log(1.0 - u(rng)); };
  double t = 0;
  for (;;) {
    t += expo(1.0 / maxRate);  // thinning: candidates at the peak rate
    if (t >= cfg.duration) break;
    if (u(rng) * maxRate > rateAt(t)) continue;
    SimRequest r;
    r.id = out.size();
    r.arrival = t;
    r.inputTokens = std::clamp<int32_t>(static_cast<int32_t>(std::ceil(expo(cfg.meanInputTokens))), 1, cfg.maxInputTokens);
    r.outputTokens =
        std::clamp<int32_t>(static_cast<int32_t>(std::ceil(expo(cfg.meanOutputTokens))), 1, cfg.maxOutputTokens);
    out.push_back(r);
  }
  return out;
}

LoadSummary summarize(const std::vector<SimRequest>& reqs, double from, double to) {
  LoadSummary s;
  if (!(to > from)) return s;
  double n = 0, in = 0, outTok = 0;
  for (const auto& r : reqs)
    if (r.arrival >= from && r.arrival < to) {
      n += 1;
      in += r.inputTokens;
      outTok += r.outputTokens;
    }
  const double span = to - from;
  s.requestsPerSecond = n / span;
  s.inputTokensPerSecond = in / span;
  s.outputTokensPerSecond = outTok / span;
  s.meanInput = n > 0 ? in / n : 0;
  s.meanOutput = n > 0 ? outTok / n : 0;
  return s;
}

}  // namespace waterline::sim
