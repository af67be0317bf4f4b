#include "waterline/runtime/manager.h"

#include <csignal>
#include <pthread.h>

#include "waterline/common/log.h"

namespace waterline::runtime {

namespace {
const log::Logger& lg() {
  static const log::Logger l = log::logger("manager");
  return l;
}
}  // namespace

Manager::Manager(ManagerOptions opts) : opts_(std::move(opts)) {
  if (!opts_.time) opts_.time = RealTimeSource::instance();
  if (!opts_.registry) opts_.registry = &metrics::defaultRegistry();
  factory_ = std::make_unique<cache::InformerFactory>(opts_.client, opts_.time, opts_.resyncPeriod);
  auto& fam = opts_.registry->gauge("waterline_leader_is_leader",
                                    "1 when this replica holds the leader lease, else 0.");
  isLeaderGauge_ = &fam.get();
}

Manager::~Manager() {
  stop();
  if (electorThread_.joinable()) electorThread_.join();
  if (leaderWorkThread_.joinable()) leaderWorkThread_.join();
}

Controller& Manager::add(ControllerPtr c) {
  controllers_.push_back(std::move(c));
  return *controllers_.back();
}

void Manager::addRunnable(Runnable r) { runnables_.push_back(std::move(r)); }
void Manager::addHealthCheck(const std::string& name, Check c) { health_.emplace_back(name, std::move(c)); }
void Manager::addReadyCheck(const std::string& name, Check c) { ready_.emplace_back(name, std::move(c)); }

void Manager::stop() {
  std::lock_guard g(mu_);
  stopRequested_ = true;
  cv_.notify_all();
}

void Manager::fail(const std::string& why) {
  std::lock_guard g(mu_);
  if (fatal_.empty()) fatal_ = why;
  stopRequested_ = true;
  cv_.notify_all();
}

void Manager::startLeaderWork() {
  leaderWorkStarted_ = true;
  for (auto& r : runnables_)
    if (r.needLeaderElection && r.start) r.start();
  for (auto& c : controllers_) {
    if (!c->start()) {
      fail("controller " + c->name() + ": caches did not sync");
      return;
    }
  }
  lg().info("controllers started", {{"count", int(controllers_.size())}});
}

void Manager::stopLeaderWork() {
  if (!leaderWorkStarted_) return;
  for (auto& c : controllers_) c->stop();
  for (auto& r : runnables_)
    if (r.needLeaderElection && r.stop) r.stop();
}

static HttpResponse runChecks(const std::vector<std::pair<std::string, Check>>& checks,
                              const HttpRequest& req) {
  std::string body;
  bool ok = true;
  for (const auto& [name, c] : checks) {
    auto err = c();
    if (err) {
      ok = false;
      body += "[-]" + name + " failed: " + *err + "\n";
    } else {
      body += "[+]" + name + " ok\n";
    }
  }
  const bool verbose = req.query.find("verbose") != std::string::npos;
  HttpResponse res;
  res.status = ok ? 200 : 500;
  res.body = ok && !verbose ? "ok\n" : body + (ok ? "ok\n" : "check failed\n");
  return res;
}

int Manager::run() {
  addHealthCheck("ping", [] { return std::nullopt; });
  addReadyCheck("informers-synced", [this]() -> std::optional<std::string> {
    for (const auto& inf : factory_->informers())
      if (!inf->hasSynced()) return inf->kind().resource + " not synced";
    return std::nullopt;
  });
  server_.handle("/healthz", [this](const HttpRequest& r) { return runChecks(health_, r); });
  server_.handle("/readyz", [this](const HttpRequest& r) { return runChecks(ready_, r); });
  server_.handle("/metrics", [this](const HttpRequest&) {
    HttpResponse res;
    res.contentType = metrics::kContentType;
    res.body = opts_.registry->serialize();
    return res;
  });
  if (!opts_.bindAddress.empty() && opts_.bindAddress != "0") {
    if (auto err = server_.start(opts_.bindAddress); !err.empty()) {
      lg().error("cannot serve health and metrics", {{"err", err}});
      return 1;
    }
    lg().info("serving /healthz /readyz /metrics", {{"port", server_.port()}});
  }

  for (auto& r : runnables_)
    if (!r.needLeaderElection && r.start) r.start();
  factory_->start();

  if (opts_.leaderElection) {
    auto cfg = opts_.leaderElectionConfig;
    cfg.onStartedLeading = [this] {
      leading_ = true;
      isLeaderGauge_->set(1);
      leaderWorkThread_ = std::thread([this] { startLeaderWork(); });
    };
    cfg.onStoppedLeading = [this] {
      const bool wasLeading = leading_.exchange(false);
      isLeaderGauge_->set(0);
      std::lock_guard g(mu_);
      if (wasLeading && !stopRequested_) {
        fatal_ = "leader election lost";
        stopRequested_ = true;
        cv_.notify_all();
      }
    };
    elector_ = std::make_unique<LeaderElector>(opts_.client, cfg, opts_.time);
    electorThread_ = std::thread([this] { elector_->run(); });
  } else {
    leading_ = true;
    isLeaderGauge_->set(1);
    leaderWorkThread_ = std::thread([this] { startLeaderWork(); });
  }

  {
    std::unique_lock lk(mu_);
    cv_.wait(lk, [&] { return stopRequested_; });
  }
  lg().info("stopping", {{"reason", fatal_.empty() ? std::string("requested") : fatal_}});
  if (leaderWorkThread_.joinable()) leaderWorkThread_.join();
  stopLeaderWork();  // drain in-flight reconciles before giving the lease up
  if (elector_) {
    elector_->stop();
    if (electorThread_.joinable()) electorThread_.join();
  }
  for (auto& r : runnables_)
    if (!r.needLeaderElection && r.stop) r.stop();
  factory_->stop();
  server_.stop();
  std::lock_guard g(mu_);
  return fatal_.empty() ? 0 : 1;
}

std::thread watchTerminationSignals(std::function<void(int)> onSignal) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  return std::thread([set, onSignal = std::move(onSignal)] {
    int sig = 0;
    if (sigwait(&set, &sig) == 0) onSignal(sig);
  });
}

}  // namespace waterline::runtime
