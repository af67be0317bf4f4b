#pragma once
// What the reconcilers observe besides the cluster, as functions they are given (so
// that tests pass fakes): a deployment's load by pool and a reservation's router
// counters, with their Prometheus implementations. Not a reconciler: the routing
// publisher and the PTUReservation reconciler both use it, and neither includes the other.
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "waterline/api/model_deployment.h"
#include "waterline/common/time.h"
#include "waterline/sources/prometheus.h"

namespace waterline::reconcilers {

// Observed load of a deployment, weighted tokens/min by pool (empty: unknown).
using LoadFunc = std::function<std::map<std::string, double>(const api::ModelDeployment&)>;

// The default per-pool load query: weighted tokens/min from the workers' vLLM counters,
// with {{namespace}}, {{deployment}} and the weights {{in}}/{{out}} filled in.
inline constexpr std::string_view kDefaultLoadQuery =
    "60 * (sum by (pool) (rate(vllm:prompt_tokens_total{namespace=\"{{namespace}}\",deployment=\"{{deployment}}\"}[1m])) * {{in}}"
    " + sum by (pool) (rate(vllm:generation_tokens_total{namespace=\"{{namespace}}\",deployment=\"{{deployment}}\"}[1m])) * {{out}})";

// Pool -> value of a per-pool vector (label `pool`); NaN, infinite or negative samples and
// samples without the label are left out.
std::map<std::string, double> loadByPool(const sources::PromResult& r);

// A LoadFunc asking Prometheus (kDefaultLoadQuery unless `queryTemplate` is given). A
// failed query is unknown load (an empty map), never zero-filled.
LoadFunc makePrometheusLoad(sources::PrometheusClientPtr prometheus,
                            std::string queryTemplate = std::string(kDefaultLoadQuery));

// Router counters of one reservation over the status window (PtuCountersFunc).
struct PtuRouterCounts {
  int64_t throttled = 0;
  int64_t spilled = 0;
};
// Throttled (429) and spilled requests of a reservation ("namespace/name") summed over
// every router replica; nullopt when unknown (the status keeps what it had).
using PtuCountersFunc = std::function<std::optional<PtuRouterCounts>(const std::string& reservation)>;
// From Prometheus: round(sum(increase(waterline_router_ptu_{throttled,spilled}_total
// {reservation="ns/name"}[window]))), so router restarts (counter resets) do not matter.
PtuCountersFunc makePrometheusPtuCounters(sources::PrometheusClientPtr prometheus,
                                          Duration window = std::chrono::hours(1));

}  // namespace waterline::reconcilers
