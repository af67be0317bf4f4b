#pragma once
// The manager: shared caches, controllers, leader election, and one HTTP port with
// /healthz, /readyz and /metrics. Caches run on every replica (so a standby is warm);
// controllers and other leader-only runnables start only on the leader. Losing the
// lease ends run() with an error, as controller-runtime does: the process exits and
// its Deployment restarts it as a standby.
#include <atomic>
#include <condition_variable>
#include <functional>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "waterline/cache/informer.h"
#include "waterline/common/metrics.h"
#include "waterline/common/time.h"
#include "waterline/kube/client.h"
#include "waterline/runtime/controller.h"
#include "waterline/runtime/events.h"
#include "waterline/runtime/http_server.h"
#include "waterline/runtime/leader.h"
#include "waterline/runtime/metrics_auth.h"

namespace waterline::runtime {

struct ManagerOptions {
  kube::ClientPtr client;
  TimeSourcePtr time;                  // default: real time
  metrics::Registry* registry = nullptr;  // default: metrics::defaultRegistry()
  std::string bindAddress = ":8080";   // /healthz, /readyz, /metrics; "" or "0" disables
  // Where /metrics is served: "" = on bindAddress (with the probes), "0" = nowhere, else
  // host:port of a second server that serves only /metrics (bindAddress keeps the
  // probes and anything added through http()).
  std::string metricsBindAddress;
  // Checks each /metrics request first (nullptr: none); see metrics_auth.h.
  std::shared_ptr<MetricsAuthorizer> metricsAuthorizer;
  bool leaderElection = true;
  LeaderElectionConfig leaderElectionConfig;
  Duration resyncPeriod = std::chrono::minutes(10);
  Duration gracefulShutdownTimeout = std::chrono::seconds(30);
  // A signalfd (blockSignalsToFd): run() stops gracefully when a signal arrives on it,
  // including one that arrived before run() started. -1: none.
  int stopSignalFd = -1;
};

// Something to run alongside the controllers.
struct Runnable {
  std::string name;
  bool needLeaderElection = true;
  std::function<void()> start;  // must return promptly (spawn a thread if needed)
  std::function<void()> stop;
};

using Check = std::function<std::optional<std::string>()>;  // nullopt = healthy

class Manager {
 public:
  explicit Manager(ManagerOptions opts);
  ~Manager();

  cache::InformerFactory& informers() { return *factory_; }
  kube::ClientPtr client() const { return opts_.client; }
  TimeSourcePtr time() const { return opts_.time; }
  metrics::Registry& registry() { return *opts_.registry; }
  HttpServer& http() { return server_; }

  Controller& add(ControllerPtr c);
  void addRunnable(Runnable r);
  void addHealthCheck(const std::string& name, Check c);
  void addReadyCheck(const std::string& name, Check c);

  // Blocks until stop() or a fatal error (lost lease, caches that never sync).
  // Returns 0 after a graceful stop, non-zero otherwise.
  int run();
  // Requests a graceful stop; safe from any thread.
  void stop();

  bool isLeader() const { return leading_.load(); }
  int boundPort() const { return server_.port(); }
  // The port /metrics is served on (boundPort() unless metricsBindAddress is set);
  // 0 when it is not served.
  int metricsPort() const;

 private:
  void startLeaderWork();
  void stopLeaderWork();
  void fail(const std::string& why);

  ManagerOptions opts_;
  std::unique_ptr<cache::InformerFactory> factory_;
  std::vector<ControllerPtr> controllers_;
  std::vector<Runnable> runnables_;
  std::vector<std::pair<std::string, Check>> health_, ready_;
  HttpServer server_;
  HttpServer metricsServer_;  // only with metricsBindAddress
  std::unique_ptr<LeaderElector> elector_;
  std::thread electorThread_, leaderWorkThread_;

  void wake();

  std::mutex mu_;
  int wakeFd_ = -1;  // eventfd: stop() and fail() wake run()'s poll
  bool stopRequested_ = false;
  std::string fatal_;
  std::atomic<bool> leading_{false};
  std::atomic<bool> leaderWorkStarted_{false};
  metrics::Gauge* isLeaderGauge_ = nullptr;
};

// Blocks `signals` in the calling thread (call it first in main, before any thread
// starts, so that every thread inherits the mask) and returns a signalfd that is readable
// while one of them is pending: no handler, no watcher thread. -1 on failure (errno set).
int blockSignalsToFd(std::initializer_list<int> signals);
// Reads one pending signal from such an fd: its number, or 0 when none is pending
// (non-blocking).
int readSignal(int fd);

}  // namespace waterline::runtime
