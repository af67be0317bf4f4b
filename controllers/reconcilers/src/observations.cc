#include "waterline/reconcilers/observations.h"

#include <cctype>
#include <cmath>
#include <cstdio>

#include "waterline/common/log.h"

namespace waterline::reconcilers {

std::map<std::string, double> loadByPool(const sources::PromResult& r) {
  std::map<std::string, double> out;
  for (const auto& s : r.samples) {
    auto pool = s.labels.find("pool");
    if (pool == s.labels.end() || pool->second.empty()) continue;
    if (!std::isfinite(s.value) || s.value < 0) continue;
    out[pool->second] += s.value;
  }
  return out;
}

LoadFunc makePrometheusLoad(sources::PrometheusClientPtr prometheus, std::string queryTemplate) {
  return [prometheus, tmpl = std::move(queryTemplate)](const api::ModelDeployment& d) {
    static const auto log = log::logger("routing.load");
    const double in = d.spec.throughput ? d.spec.throughput->inputTokenWeight : 1.0;
    const double out = d.spec.throughput ? d.spec.throughput->outputTokenWeight : 1.0;
    std::string t = tmpl;
    for (auto [key, v] : {std::pair{std::string("{{in}}"), in}, std::pair{std::string("{{out}}"), out}}) {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.6g", v);
      for (size_t p; (p = t.find(key)) != std::string::npos;) t.replace(p, key.size(), buf);
    }
    auto q = sources::renderQuery(t, {d.metadata.name, d.metadata.namespace_, ""});
    if (!q) {
      log.warn("load query does not render", {{"deployment", d.metadata.name}, {"err", q.error()}});
      return std::map<std::string, double>{};
    }
    auto r = prometheus->query(*q);
    if (!r) {
      log.debug("load query failed; load unknown", {{"deployment", d.metadata.name}, {"err", r.error().toString()}});
      return std::map<std::string, double>{};
    }
    return loadByPool(*r);
  };
}

PtuCountersFunc makePrometheusPtuCounters(sources::PrometheusClientPtr prometheus, Duration window) {
  const auto secs = std::max<int64_t>(60, std::chrono::duration_cast<std::chrono::seconds>(window).count());
  return [prometheus, secs](const std::string& reservation) -> std::optional<PtuRouterCounts> {
    static const auto log = log::logger("ptureservation");
    // Reservation keys are namespace/name of DNS labels: nothing to escape, but refuse
    // anything else rather than build a query from it.
    for (char c : reservation)
      if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '/')) return std::nullopt;
    auto count = [&](const char* metric) -> std::optional<int64_t> {
      const std::string q = "round(sum(increase(" + std::string(metric) + "{reservation=\"" + reservation + "\"}[" +
                            std::to_string(secs) + "s])))";
      auto v = sources::queryTotal(*prometheus, q);
      if (!v) {
        log.debug("router counter query failed", {{"reservation", reservation}, {"err", v.error().toString()}});
        return std::nullopt;
      }
      if (!std::isfinite(*v) || *v < 0) return std::nullopt;
      return int64_t(std::llround(*v));
    };
    auto t = count("waterline_router_ptu_throttled_total");
    auto sp = count("waterline_router_ptu_spilled_total");
    if (!t || !sp) return std::nullopt;
    return PtuRouterCounts{*t, *sp};
  };
}

}  // namespace waterline::reconcilers
