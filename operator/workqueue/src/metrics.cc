#include "waterline/workqueue/metrics.h"

#include <algorithm>
#include <map>
#include <mutex>
#include <vector>

namespace waterline::workqueue {

namespace detail {
struct QueueMetricsState {
  struct Source {
    std::string name;
    std::function<QueueStats()> stats;
  };
  // Held while a scrape reads the sources, so detaching waits for it.
  std::mutex mu;
  std::uint64_t nextId = 0;
  std::map<std::uint64_t, Source> sources;

  // Stats per queue name (queues sharing a name are aggregated).
  std::map<std::string, QueueStats> collect() {
    std::lock_guard g(mu);
    std::map<std::string, QueueStats> out;
    for (const auto& [id, src] : sources) {
      const QueueStats s = src.stats();
      auto& agg = out[src.name];
      agg.depth += s.depth;
      agg.unfinishedWorkSeconds += s.unfinishedWorkSeconds;
      agg.longestRunningProcessorSeconds =
          std::max(agg.longestRunningProcessorSeconds, s.longestRunningProcessorSeconds);
    }
    return out;
  }
};
}  // namespace detail

namespace {

std::vector<double> durationBuckets() {
  // client-go: ExponentialBuckets(10e-9, 10, 10), written out so that they print cleanly.
  return {1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1, 10};
}

template <class F>
metrics::CollectFn collector(std::shared_ptr<detail::QueueMetricsState> st, F pick) {
  return [st = std::move(st), pick] {
    std::vector<metrics::Sample> out;
    for (const auto& [name, s] : st->collect()) out.push_back({{name}, pick(s)});
    return out;
  };
}

}  // namespace

MetricsProvider::MetricsProvider(metrics::Registry& registry, std::string prefix)
    : registry_(registry),
      prefix_(std::move(prefix)),
      state_(std::make_shared<detail::QueueMetricsState>()) {
  const std::vector<std::string> labels{"name"};
  adds_ = &registry_.counter(prefix_ + "adds_total", "Total number of adds handled by workqueue.",
                             labels);
  retries_ = &registry_.counter(prefix_ + "retries_total",
                                "Total number of retries (delayed adds) handled by workqueue.", labels);
  queueDuration_ = &registry_.histogram(
      prefix_ + "queue_duration_seconds",
      "How long in seconds an item stays in workqueue before being requested.", labels,
      durationBuckets());
  workDuration_ = &registry_.histogram(prefix_ + "work_duration_seconds",
                                       "How long in seconds processing an item from workqueue takes.",
                                       labels, durationBuckets());
  registry_.gaugeFunc(prefix_ + "depth", "Current depth of workqueue.", labels,
                      collector(state_, [](const QueueStats& s) { return double(s.depth); }));
  registry_.gaugeFunc(
      prefix_ + "unfinished_work_seconds",
      "How many seconds of work has been done that is in progress and hasn't been observed by "
      "work_duration. Large values indicate stuck threads.",
      labels, collector(state_, [](const QueueStats& s) { return s.unfinishedWorkSeconds; }));
  registry_.gaugeFunc(
      prefix_ + "longest_running_processor_seconds",
      "How many seconds has the longest running processor for workqueue been running.", labels,
      collector(state_, [](const QueueStats& s) { return s.longestRunningProcessorSeconds; }));
}

MetricsProvider::~MetricsProvider() {
  for (const char* n : {"adds_total", "retries_total", "queue_duration_seconds",
                        "work_duration_seconds", "depth", "unfinished_work_seconds",
                        "longest_running_processor_seconds"}) {
    registry_.unregister(prefix_ + n);
  }
}

std::shared_ptr<MetricsProvider> MetricsProvider::forDefaultRegistry() {
  // Never destroyed: queues in other static objects may outlive ordinary statics.
  static auto* p = new std::shared_ptr<MetricsProvider>(
      std::make_shared<MetricsProvider>(metrics::defaultRegistry()));
  return *p;
}

MetricsProvider::QueueMetrics::QueueMetrics(std::shared_ptr<State> st, std::uint64_t id,
                                            metrics::Counter& a, metrics::Counter& r,
                                            metrics::Histogram& q, metrics::Histogram& w)
    : adds(a), retries(r), queueDuration(q), workDuration(w), state_(std::move(st)), id_(id) {}

MetricsProvider::QueueMetrics::~QueueMetrics() {
  std::lock_guard g(state_->mu);
  state_->sources.erase(id_);
}

std::unique_ptr<MetricsProvider::QueueMetrics> MetricsProvider::attach(
    const std::string& name, std::function<QueueStats()> stats) {
  auto& a = adds_->withLabels({name});
  auto& r = retries_->withLabels({name});
  auto& q = queueDuration_->withLabels({name});
  auto& w = workDuration_->withLabels({name});
  std::uint64_t id;
  {
    std::lock_guard g(state_->mu);
    id = state_->nextId++;
    state_->sources.emplace(id, detail::QueueMetricsState::Source{name, std::move(stats)});
  }
  return std::unique_ptr<QueueMetrics>(new QueueMetrics(state_, id, a, r, q, w));
}

}  // namespace waterline::workqueue
