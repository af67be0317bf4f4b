#pragma once
// waterline-plan (docs/waterline.md, docs/flags.md): reads a per-minute token series,
// evaluates a range of unit counts with the waterline planner and prints the table and
// the recommendations, or (--output yaml) the PTUReservation for one target.
#include <expected>
#include <iosfwd>
#include <string>
#include <vector>

#include "waterline/cli/flags.h"
#include "waterline/common/time.h"
#include "waterline/planners/token_series.h"
#include "waterline/sources/prometheus.h"

namespace waterline::plan {

struct PlanConfig {
  std::string series;                // file
  std::string prometheusUrl;         // or: range queries over the workers' token counters
  Duration since = std::chrono::hours(24 * 7);  // the window that ends now (Prometheus)
  std::string seriesFormat = "auto";  // auto (by extension: .jsonl/.json -> jsonl), csv, jsonl, mooncake
  int64_t unitsPerMinute = 0;        // tokensPerMinutePerUnit
  int32_t burstPercent = 0;
  bool spillover = false;
  std::string prices;                // JSON price file; none: every price 0
  double inputTokenWeight = 1;
  double outputTokenWeight = 1;
  int64_t minUnits = 0;
  int64_t maxUnits = 100;
  int64_t step = 1;
  double coverage = 95;
  std::string output = "table";      // table, yaml
  std::string target = "coverage=95";
  std::string deployment;            // namespace/name: the YAML's, and the Prometheus labels
  std::string scope = "Global";      // Global, Regional:<region>, DataZone:<zone>
};

std::vector<cli::FlagDoc> planFlags();
std::expected<PlanConfig, cli::Exit> parsePlanConfig(const std::vector<std::string>& args);

// Runs the plan: the table / YAML to `out`, errors to `err`; the exit code (0, 1 on a bad
// input file, 2 on bad flags).
int run(const PlanConfig& c, std::ostream& out, std::ostream& err);
// The same with the Prometheus client and the time given (tests).
int run(const PlanConfig& c, std::ostream& out, std::ostream& err, sources::PrometheusClient* prom, SystemTime now);

// The two range queries (sum over the deployment's workers of increase(...[1m]) of
// vllm:prompt_tokens_total and vllm:generation_tokens_total, labels namespace and
// deployment, as the autoscaler's default query) every 60 s over [now − since, now],
// minute-aligned, split into requests of at most 10,000 steps.
std::expected<planners::TokenSeries, std::string> prometheusSeries(sources::PrometheusClient& prom,
                                                                    const std::string& ns, const std::string& name,
                                                                    Duration since, SystemTime now);
int main(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace waterline::plan
