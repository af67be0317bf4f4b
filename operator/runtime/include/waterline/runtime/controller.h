#pragma once
// controller-runtime's Controller in C++: informers map events to keys, keys go through
// a deduplicating, rate-limited workqueue, and N workers call Reconciler::reconcile(key).
//
// Requeue rules (pkg/internal/controller/controller.go):
//   error                 -> addRateLimited(key)   (per-key exponential backoff)
//   result.requeueAfter>0 -> forget(key); addAfter(key, requeueAfter)
//   result.requeue        -> addRateLimited(key)
//   otherwise             -> forget(key)
// Reconciles are level-based: they get a key, never an event payload, and read the
// current state from the cache.
#include <atomic>
#include <expected>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "waterline/cache/informer.h"
#include "waterline/common/metrics.h"
#include "waterline/common/time.h"
#include "waterline/runtime/objects.h"
#include "waterline/workqueue/rate_limiting_queue.h"

namespace waterline::runtime {

struct Request {
  std::string ns;
  std::string name;
  std::string key() const { return ns.empty() ? name : ns + "/" + name; }
  static Request fromKey(const std::string& key);
  bool operator==(const Request&) const = default;
};

struct Result {
  bool requeue = false;
  Duration requeueAfter{0};
  static Result done() { return {}; }
  static Result after(Duration d) { return {false, d}; }
  static Result again() { return {true, Duration{0}}; }
};

struct ReconcileError {
  std::string message;
};

using ReconcileResult = std::expected<Result, ReconcileError>;

class Reconciler {
 public:
  virtual ~Reconciler() = default;
  virtual ReconcileResult reconcile(const Request& req) = 0;
};
using ReconcilerPtr = std::unique_ptr<Reconciler>;

// Adapts a lambda.
class FuncReconciler final : public Reconciler {
 public:
  explicit FuncReconciler(std::function<ReconcileResult(const Request&)> fn) : fn_(std::move(fn)) {}
  ReconcileResult reconcile(const Request& req) override { return fn_(req); }

 private:
  std::function<ReconcileResult(const Request&)> fn_;
};

// Metric families shared by every controller of one registry.
struct ControllerMetrics {
  explicit ControllerMetrics(metrics::Registry& reg);
  metrics::CounterFamily& reconcileTotal;     // {controller, result}
  metrics::CounterFamily& reconcileErrors;    // {controller}
  metrics::HistogramFamily& reconcileTime;    // {controller}
  metrics::GaugeFamily& activeWorkers;        // {controller}
  // The families of the process-wide default registry, created on first use.
  static std::shared_ptr<ControllerMetrics> forDefaultRegistry();
};

struct ControllerOptions {
  int workers = 2;
  TimeSourcePtr time;                          // default: real time
  workqueue::RateLimiterPtr rateLimiter;       // default: client-go's default limiter
  metrics::Registry* registry = nullptr;       // default: metrics::defaultRegistry()
  // Families to record into. Default: those of the default registry, or new families
  // in `registry` (so controllers sharing a private registry must share this too).
  std::shared_ptr<ControllerMetrics> metrics;
  workqueue::MetricsProviderPtr queueMetrics;  // default: for `registry`
  // How long start() waits for the caches to sync before giving up.
  Duration cacheSyncTimeout = std::chrono::minutes(2);
};

// Maps an object (of a watched kind) to the keys to reconcile.
using MapFunc = std::function<std::vector<Request>(const cache::Json&)>;

// A MapFunc over decoded objects (`decode` as for typedUpdatePredicate in objects.h).
// An object that does not decode maps to nothing (for an update the other side is
// still mapped: watchMapped maps the old and the new object).
template <class T, class Decode>
MapFunc typedMap(Decode decode, std::function<std::vector<Request>(const T&)> map) {
  return [decode = std::move(decode), map = std::move(map)](const cache::Json& obj) {
    auto v = decode(obj);
    return v ? map(*v) : std::vector<Request>{};
  };
}

class Controller {
 public:
  Controller(std::string name, ReconcilerPtr reconciler, ControllerOptions opts = {});
  ~Controller();
  Controller(const Controller&) = delete;
  Controller& operator=(const Controller&) = delete;

  // The primary kind: its own key is enqueued.
  Controller& watchFor(const cache::InformerPtr& inf, std::vector<Predicate> preds = {});
  // Owned children: the key of the controller owner of `ownerKind` is enqueued.
  Controller& watchOwned(const cache::InformerPtr& inf, const std::string& ownerKind,
                         std::vector<Predicate> preds = {});
  // Anything else: `map` decides.
  Controller& watchMapped(const cache::InformerPtr& inf, MapFunc map,
                          std::vector<Predicate> preds = {});

  void enqueue(const Request& r);
  void enqueueAfter(const Request& r, Duration d);

  // Waits for every watched informer to sync, then starts the workers. Returns false
  // (and starts nothing) if the caches did not sync within cacheSyncTimeout.
  bool start();
  // Stops taking new keys, waits for in-flight reconciles, joins the workers.
  void stop();

  // Processes at most one key without blocking; for deterministic unit tests.
  // Returns false when no key was ready.
  bool processNextForTest();

  const std::string& name() const { return name_; }
  workqueue::RateLimitingQueue& queue() { return *queue_; }
  uint64_t reconciles() const { return reconciles_.load(); }

 private:
  void addHandler(const cache::InformerPtr& inf, MapFunc map, std::vector<Predicate> preds);
  bool processOne(const std::string& key);
  void worker();

  std::string name_;
  ReconcilerPtr reconciler_;
  ControllerOptions opts_;
  std::shared_ptr<ControllerMetrics> metrics_;
  std::unique_ptr<workqueue::RateLimitingQueue> queue_;
  std::vector<cache::InformerPtr> informers_;
  // The handlers this controller registered (they call into it): removed by ~Controller,
  // so an informer that outlives the controller never calls a dead one, and a map
  // function that holds informers does not keep them alive through a cycle.
  std::vector<std::pair<cache::InformerPtr, uint64_t>> registrations_;
  std::vector<std::thread> workers_;
  std::atomic<bool> started_{false};
  std::atomic<uint64_t> reconciles_{0};
};

using ControllerPtr = std::unique_ptr<Controller>;

}  // namespace waterline::runtime
