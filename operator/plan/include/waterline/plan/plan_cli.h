#pragma once
// waterline-plan (docs/waterline.md, docs/flags.md): reads a per-minute token series,
// evaluates a range of unit counts with the waterline planner and prints the table and
// the recommendations, or (--output yaml) the PTUReservation for one target.
#include <expected>
#include <iosfwd>
#include <string>
#include <vector>

#include "waterline/cli/flags.h"

namespace waterline::plan {

struct PlanConfig {
  std::string series;                // file
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
  std::string deployment;            // namespace/name, for the YAML
  std::string scope = "Global";      // Global, Regional:<region>, DataZone:<zone>
};

std::vector<cli::FlagDoc> planFlags();
std::expected<PlanConfig, cli::Exit> parsePlanConfig(const std::vector<std::string>& args);

// Runs the plan: the table / YAML to `out`, errors to `err`; the exit code (0, 1 on a bad
// input file, 2 on bad flags).
int run(const PlanConfig& c, std::ostream& out, std::ostream& err);
int main(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace waterline::plan
