#include "waterline/runtime/controller.h"

#include <algorithm>
#include <map>

#include "waterline/common/log.h"

namespace waterline::runtime {

Request Request::fromKey(const std::string& key) {
  auto [ns, name] = cache::splitKey(key);
  return Request{ns, name};
}

ControllerMetrics::ControllerMetrics(metrics::Registry& reg)
    : reconcileTotal(reg.counter("waterline_controller_reconcile_total",
                                 "Reconciles per controller and result (success, error, requeue, "
                                 "requeue_after).",
                                 {"controller", "result"})),
      reconcileErrors(reg.counter("waterline_controller_reconcile_errors_total",
                                  "Reconciles that returned an error.", {"controller"})),
      reconcileTime(reg.histogram("waterline_controller_reconcile_duration_seconds",
                                  "Time spent in one reconcile.", {"controller"},
                                  {0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
                                   30, 60})),
      activeWorkers(reg.gauge("waterline_controller_active_workers",
                              "Workers currently inside reconcile.", {"controller"})) {}

std::shared_ptr<ControllerMetrics> ControllerMetrics::forDefaultRegistry() {
  static std::shared_ptr<ControllerMetrics> m =
      std::make_shared<ControllerMetrics>(metrics::defaultRegistry());
  return m;
}

Controller::Controller(std::string name, ReconcilerPtr reconciler, ControllerOptions opts)
    : name_(std::move(name)), reconciler_(std::move(reconciler)), opts_(std::move(opts)) {
  if (!opts_.time) opts_.time = RealTimeSource::instance();
  if (!opts_.registry) opts_.registry = &metrics::defaultRegistry();
  if (!opts_.queueMetrics && opts_.registry == &metrics::defaultRegistry())
    opts_.queueMetrics = workqueue::MetricsProvider::forDefaultRegistry();
  if (opts_.metrics) metrics_ = opts_.metrics;
  else if (opts_.registry == &metrics::defaultRegistry()) metrics_ = ControllerMetrics::forDefaultRegistry();
  else metrics_ = std::make_shared<ControllerMetrics>(*opts_.registry);
  if (!opts_.rateLimiter) opts_.rateLimiter = workqueue::defaultControllerRateLimiter(opts_.time);
  workqueue::QueueOptions qo;
  qo.name = name_;
  qo.clock = opts_.time;
  qo.metrics = opts_.queueMetrics;
  queue_ = std::make_unique<workqueue::RateLimitingQueue>(opts_.rateLimiter, qo);
}

Controller::~Controller() {
  stop();
  for (const auto& [inf, id] : registrations_) inf->removeEventHandler(id);
}

void Controller::addHandler(const cache::InformerPtr& inf, MapFunc map,
                            std::vector<Predicate> preds) {
  informers_.push_back(inf);
  auto enqueueAll = [this, map](const cache::Json& obj) {
    for (const auto& r : map(obj)) queue_->add(r.key());
  };
  cache::EventHandler h;
  h.onAdd = [preds, enqueueAll](const cache::ObjectPtr& o) {
    for (const auto& p : preds)
      if (p.create && !p.create(*o)) return;
    enqueueAll(*o);
  };
  h.onUpdate = [this, preds, map](const cache::ObjectPtr& a, const cache::ObjectPtr& b) {
    // A periodic resync (same object) always passes: it is how level-based
    // reconcilers catch up.
    if (a != b) {
      for (const auto& p : preds)
        if (p.update && !p.update(*a, *b)) return;
    }
    // The old object's keys too (an owner or label change must reconcile what the
    // object left), each key once.
    std::vector<std::string> keys;
    for (const auto& r : map(*a)) keys.push_back(r.key());
    for (const auto& r : map(*b)) keys.push_back(r.key());
    std::sort(keys.begin(), keys.end());
    keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
    for (const auto& k : keys) queue_->add(k);
  };
  h.onDelete = [preds, enqueueAll](const cache::ObjectPtr& o, bool) {
    for (const auto& p : preds)
      if (p.remove && !p.remove(*o)) return;
    enqueueAll(*o);
  };
  registrations_.emplace_back(inf, inf->addEventHandler(std::move(h)));
}

Controller& Controller::watchFor(const cache::InformerPtr& inf, std::vector<Predicate> preds) {
  addHandler(inf, [](const cache::Json& o) {
    return std::vector<Request>{Request{namespaceOf(o), nameOf(o)}};
  }, std::move(preds));
  return *this;
}

Controller& Controller::watchOwned(const cache::InformerPtr& inf, const std::string& ownerKind,
                                   std::vector<Predicate> preds) {
  addHandler(inf, [ownerKind](const cache::Json& o) {
    std::vector<Request> out;
    auto ref = controllerOf(o);
    if (ref && ref->value("kind", "") == ownerKind) out.push_back(Request{namespaceOf(o), ref->value("name", "")});
    return out;
  }, std::move(preds));
  return *this;
}

Controller& Controller::watchMapped(const cache::InformerPtr& inf, MapFunc map,
                                    std::vector<Predicate> preds) {
  addHandler(inf, std::move(map), std::move(preds));
  return *this;
}

void Controller::enqueue(const Request& r) { queue_->add(r.key()); }
void Controller::enqueueAfter(const Request& r, Duration d) { queue_->addAfter(r.key(), d); }

bool Controller::processOne(const std::string& key) {
  const auto log = log::logger("controller").withValues({{"controller", name_}, {"key", key}});
  metrics_->activeWorkers.withLabels({name_}).inc();
  const auto t0 = std::chrono::steady_clock::now();
  ReconcileResult res = std::unexpected(ReconcileError{"unknown"});
  try {
    res = reconciler_->reconcile(Request::fromKey(key));
  } catch (const std::exception& e) {
    res = std::unexpected(ReconcileError{std::string("panic: ") + e.what()});
  } catch (...) {
    res = std::unexpected(ReconcileError{"panic: an exception that is not a std::exception"});
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  metrics_->activeWorkers.withLabels({name_}).dec();
  metrics_->reconcileTime.withLabels({name_}).observe(secs);
  ++reconciles_;

  if (!res) {
    metrics_->reconcileTotal.withLabels({name_, "error"}).inc();
    metrics_->reconcileErrors.withLabels({name_}).inc();
    log.error("reconcile failed",
              {{"err", res.error().message}, {"requeues", queue_->numRequeues(key)}});
    queue_->addRateLimited(key);
  } else if (res->requeueAfter > Duration{0}) {
    metrics_->reconcileTotal.withLabels({name_, "requeue_after"}).inc();
    queue_->forget(key);
    queue_->addAfter(key, res->requeueAfter);
  } else if (res->requeue) {
    metrics_->reconcileTotal.withLabels({name_, "requeue"}).inc();
    queue_->addRateLimited(key);
  } else {
    metrics_->reconcileTotal.withLabels({name_, "success"}).inc();
    queue_->forget(key);
  }
  queue_->done(key);
  return true;
}

bool Controller::processNextForTest() {
  auto key = queue_->tryGet();
  if (!key) return false;
  return processOne(*key);
}

void Controller::worker() {
  while (true) {
    auto key = queue_->get();
    if (!key) return;  // shut down
    processOne(*key);
  }
}

bool Controller::start() {
  if (started_.exchange(true)) return true;
  const auto log = log::logger("controller").withValues({{"controller", name_}});
  log.info("waiting for caches to sync");
  const auto deadline = opts_.time->monotonicTime() + opts_.cacheSyncTimeout;
  for (const auto& inf : informers_) {
    auto left = deadline - opts_.time->monotonicTime();
    if (left <= Duration{0} || !inf->waitForSync(left)) {
      log.error("caches did not sync", {{"kind", inf->kind().kind}});
      started_ = false;
      return false;
    }
  }
  log.info("starting workers", {{"workers", opts_.workers}});
  for (int i = 0; i < opts_.workers; ++i) workers_.emplace_back([this] { worker(); });
  return true;
}

void Controller::stop() {
  queue_->shutDownWithDrain();
  for (auto& t : workers_)
    if (t.joinable()) t.join();
  workers_.clear();
}

}  // namespace waterline::runtime
