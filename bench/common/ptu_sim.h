#pragma once
// Shared by the PTU simulations of bench/routing-sim (one router, part 2) and
// bench/ptu-shares (several routers): the routing table they admit against and the mean
// request size of their trace.
#include <cstdint>
#include <vector>

#include "waterline/routing/table.h"

namespace waterline::bench {

// One Global deployment "sim/llama" (llama2-70b) with one reservation "sim/contoso" of
// `tpm` tokens per minute and `burstPercent` burst.
inline routing::RoutingTable ptuReservationTable(double tpm, double burstPercent) {
  routing::DeploymentRoutes d;
  d.deployment = {"sim", "llama"};
  d.model = "llama2-70b";
  d.deploymentType = api::DeploymentType::Global;
  routing::ReservationInfo r;
  r.reservation = {"sim", "contoso"};
  r.tokensPerMinute = static_cast<int64_t>(tpm);
  r.burstPercent = burstPercent;
  d.reservations = {r};
  routing::RoutingTable table;
  table.deployments = {d};
  return table;
}

// Mean input + output tokens of a trace whose entries have `input` and `output`.
template <class Req>
double meanRequestTokens(const std::vector<Req>& trace) {
  double sum = 0;
  for (const auto& t : trace) sum += t.input + t.output;
  return trace.empty() ? 0 : sum / static_cast<double>(trace.size());
}

}  // namespace waterline::bench
