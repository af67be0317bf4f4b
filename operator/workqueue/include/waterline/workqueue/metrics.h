#pragma once
// Workqueue metrics, named as client-go's workqueue metrics with a waterline_ prefix,
// one series per queue (label `name`):
//
//   waterline_workqueue_depth{name}                              gauge (ready items)
//   waterline_workqueue_adds_total{name}                         counter
//   waterline_workqueue_retries_total{name}                      counter (every addAfter,
//                                                                 incl. addRateLimited)
//   waterline_workqueue_queue_duration_seconds{name}             histogram (ready -> get)
//   waterline_workqueue_work_duration_seconds{name}              histogram (get -> done)
//   waterline_workqueue_unfinished_work_seconds{name}            gauge (sum of in-flight ages)
//   waterline_workqueue_longest_running_processor_seconds{name}  gauge (oldest in-flight age)
//
// The gauges are computed at scrape time from the live queues (callback families), so
// they are exact and need no update loop. Durations are measured on each queue's
// TimeSource. A delayed item counts as an add when it is moved into the queue (the
// first queue call or scrape after it is due). Histogram buckets: 1e-08 .. 10 seconds by powers of 10, as client-go.
//
// One MetricsProvider per registry (it registers the families; a second provider on
// the same registry throws std::invalid_argument). Pass it to queues through
// QueueOptions::metrics; queues sharing a name share counters and histograms, and
// their gauges add up (longest running: the max).
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "waterline/common/metrics.h"

namespace waterline::workqueue {

namespace detail {
struct QueueMetricsState;
}

// What a live queue reports at scrape time.
struct QueueStats {
  std::size_t depth = 0;
  double unfinishedWorkSeconds = 0;
  double longestRunningProcessorSeconds = 0;
};

class MetricsProvider {
 public:
  // Registers the families on `registry`, which must outlive the provider (queues keep
  // their provider alive through a shared_ptr).
  explicit MetricsProvider(metrics::Registry& registry, std::string prefix = "waterline_workqueue_");
  // Unregisters the families.
  ~MetricsProvider();
  MetricsProvider(const MetricsProvider&) = delete;
  MetricsProvider& operator=(const MetricsProvider&) = delete;

  // The provider on metrics::defaultRegistry(), created on first use.
  static std::shared_ptr<MetricsProvider> forDefaultRegistry();

  // A queue's handle: its counters and histograms, and its registration for the
  // scrape-time gauges (dropped when the handle is destroyed; the destructor waits for
  // a scrape that is reading this queue).
  class QueueMetrics {
   public:
    ~QueueMetrics();
    QueueMetrics(const QueueMetrics&) = delete;
    QueueMetrics& operator=(const QueueMetrics&) = delete;

    metrics::Counter& adds;
    metrics::Counter& retries;
    metrics::Histogram& queueDuration;
    metrics::Histogram& workDuration;

   private:
    friend class MetricsProvider;
    using State = detail::QueueMetricsState;
    QueueMetrics(std::shared_ptr<State> st, std::uint64_t id, metrics::Counter& a, metrics::Counter& r,
                 metrics::Histogram& q, metrics::Histogram& w);
    std::shared_ptr<State> state_;
    std::uint64_t id_;
  };

  // `stats` is called at scrape time (from the scraping thread) until the handle dies.
  std::unique_ptr<QueueMetrics> attach(const std::string& name, std::function<QueueStats()> stats);

  const std::string& prefix() const { return prefix_; }

 private:
  metrics::Registry& registry_;
  std::string prefix_;
  std::shared_ptr<detail::QueueMetricsState> state_;
  metrics::CounterFamily* adds_;
  metrics::CounterFamily* retries_;
  metrics::HistogramFamily* queueDuration_;
  metrics::HistogramFamily* workDuration_;
};

using MetricsProviderPtr = std::shared_ptr<MetricsProvider>;

}  // namespace waterline::workqueue
