#pragma once
// A second listener that serves only GET /metrics (the router's --metrics-listen), so
// that the scrape port can be kept apart from the data port (NetworkPolicy, Service).
// One io thread; a connection that sends no complete request head within 10 s is
// closed. Anything but /metrics: 404; anything but GET or HEAD: 405.
#include <atomic>
#include <expected>
#include <memory>
#include <string>
#include <thread>

#include "waterline/common/metrics.h"

namespace waterline::router {

class MetricsListener {
 public:
  explicit MetricsListener(metrics::Registry& registry);
  ~MetricsListener();
  MetricsListener(const MetricsListener&) = delete;
  MetricsListener& operator=(const MetricsListener&) = delete;

  // Binds address:port (port 0: any free port) and starts the thread.
  std::expected<void, std::string> start(const std::string& address, int port);
  void stop();  // idempotent
  int port() const { return port_.load(); }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::atomic<int> port_{0};
};

}  // namespace waterline::router
