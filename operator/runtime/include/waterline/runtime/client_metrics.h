#pragma once
// Prometheus metrics for the API client (requests by verb/resource class/code, latency,
// client-side throttling) and for informers (lists, relists, watch restarts, events).
#include <memory>

#include "waterline/cache/informer.h"
#include "waterline/common/metrics.h"
#include "waterline/kube/rest_client.h"

namespace waterline::runtime {

class ClientMetrics final : public kube::RequestObserver {
 public:
  explicit ClientMetrics(metrics::Registry& reg);
  void onRequest(const kube::RequestInfo& info) noexcept override;

 private:
  metrics::CounterFamily& requests_;    // {verb, code}
  metrics::HistogramFamily& latency_;   // {verb}
  metrics::HistogramFamily& throttled_;  // {}
};

// Registers callback gauges/counters over the factory's informers:
// waterline_informer_lists_total{resource}, _relists_total, _watches_total,
// _watch_errors_total, _events_total, and waterline_informer_synced{resource}.
void registerInformerMetrics(metrics::Registry& reg, cache::InformerFactory& factory);

}  // namespace waterline::runtime
