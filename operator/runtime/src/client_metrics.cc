#include "waterline/runtime/client_metrics.h"

#include <string>

namespace waterline::runtime {

ClientMetrics::ClientMetrics(metrics::Registry& reg)
    : requests_(reg.counter("waterline_rest_client_requests_total",
                            "Kubernetes API requests by verb and HTTP code (0: no answer).",
                            {"verb", "code"})),
      latency_(reg.histogram("waterline_rest_client_request_duration_seconds",
                             "Kubernetes API request latency (watches: until headers).", {"verb"},
                             {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30})),
      throttled_(reg.histogram("waterline_rest_client_rate_limiter_wait_seconds",
                               "Time requests waited in the client-side rate limiter.", {},
                               {0.001, 0.01, 0.1, 0.5, 1, 5, 10})) {}

void ClientMetrics::onRequest(const kube::RequestInfo& info) noexcept {
  try {
    requests_.withLabels({info.verb, std::to_string(info.code)}).inc();
    latency_.withLabels({info.verb}).observe(std::chrono::duration<double>(info.latency).count());
    throttled_.get().observe(std::chrono::duration<double>(info.throttled).count());
  } catch (...) {
  }
}

void registerInformerMetrics(metrics::Registry& reg, cache::InformerFactory& factory) {
  auto stat = [&factory](uint64_t cache::ReflectorStats::*field) {
    return [&factory, field] {
      std::vector<metrics::Sample> out;
      for (const auto& inf : factory.informers())
        out.push_back({{inf->kind().resource}, double(inf->stats().*field)});
      return out;
    };
  };
  reg.counterFunc("waterline_informer_lists_total", "Successful lists (first and relists).",
                  {"resource"}, stat(&cache::ReflectorStats::lists));
  reg.counterFunc("waterline_informer_relists_total",
                  "Relists after the first (410 Gone, errors).", {"resource"},
                  stat(&cache::ReflectorStats::relists));
  reg.counterFunc("waterline_informer_watches_total", "Watch requests started (restarts included).",
                  {"resource"}, stat(&cache::ReflectorStats::watches));
  reg.counterFunc("waterline_informer_watch_errors_total", "Watch streams that ended in an error.",
                  {"resource"}, stat(&cache::ReflectorStats::watchErrors));
  reg.counterFunc("waterline_informer_events_total", "Watch events delivered.", {"resource"},
                  stat(&cache::ReflectorStats::events));
  reg.gaugeFunc("waterline_informer_synced", "1 when the informer's cache has synced.",
                {"resource"}, [&factory] {
                  std::vector<metrics::Sample> out;
                  for (const auto& inf : factory.informers())
                    out.push_back({{inf->kind().resource}, inf->hasSynced() ? 1.0 : 0.0});
                  return out;
                });
}

}  // namespace waterline::runtime
