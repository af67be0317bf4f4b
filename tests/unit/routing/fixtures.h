#pragma once
// Small builders for routing tests.
#include <string>
#include <vector>

#include <memory>

#include "waterline/common/backoff.h"
#include "waterline/routing/table.h"

namespace waterline::routing::testing {

inline SystemTime t0() { return SystemTime{std::chrono::seconds(1'750'000'000)}; }

inline RoutingEntry entry(std::string pool, std::string region, std::string zone, double util,
                          std::vector<std::string> endpoints = {"10.0.0.1:8000"}, SystemTime hb = t0()) {
  RoutingEntry e;
  e.pool = std::move(pool);
  e.region = std::move(region);
  e.dataZone = std::move(zone);
  e.utilization = util;
  e.capacityTokensPerMinute = 1'000'000;
  e.loadTokensPerMinute = util * 1'000'000;
  e.endpoints = std::move(endpoints);
  e.healthy = !e.endpoints.empty();
  e.weight = static_cast<double>(e.endpoints.size());
  e.heartbeatTime = hb;
  return e;
}

inline DeploymentRoutes deployment(std::string name, api::DeploymentType type, std::vector<RoutingEntry> entries,
                                   std::string region = "", std::string zone = "") {
  DeploymentRoutes d;
  d.deployment = {"team", std::move(name)};
  d.model = "meta-llama/Llama-3.1-8B-Instruct";
  d.deploymentType = type;
  d.region = std::move(region);
  d.dataZone = std::move(zone);
  d.entries = std::move(entries);
  d.normalize();
  return d;
}

// Three pools in two zones: eu-west and eu-north (EU), us-east (US).
inline std::vector<RoutingEntry> threePools(double euWest, double euNorth, double usEast, SystemTime hb = t0()) {
  return {entry("eu-west-h100", "eu-west", "EU", euWest, {"10.0.1.1:8000"}, hb),
          entry("eu-north-h100", "eu-north", "EU", euNorth, {"10.0.2.1:8000"}, hb),
          entry("us-east-h100", "us-east", "US", usEast, {"10.0.3.1:8000"}, hb)};
}

// A RandomFn replaying fixed values (cycling).
inline RandomFn fixedRandom(std::vector<double> values) {
  auto i = std::make_shared<size_t>(0);
  return [values = std::move(values), i] { return values[(*i)++ % values.size()]; };
}

}  // namespace waterline::routing::testing
