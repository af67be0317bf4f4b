#include "waterline/runtime/manager.h"

#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <system_error>

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
  wakeFd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wakeFd_ < 0) throw std::system_error(errno, std::generic_category(), "eventfd");
  auto& fam = opts_.registry->gauge("waterline_leader_is_leader",
                                    "1 when this replica holds the leader lease, else 0.");
  isLeaderGauge_ = &fam.get();
}

Manager::~Manager() {
  stop();
  opts_.metricsAuthorizer.reset();  // before the servers go (see run())
  if (electorThread_.joinable()) electorThread_.join();
  if (leaderWorkThread_.joinable()) leaderWorkThread_.join();
  ::close(wakeFd_);
}

int Manager::metricsPort() const {
  if (opts_.metricsBindAddress == "0") return 0;
  return opts_.metricsBindAddress.empty() ? server_.port() : metricsServer_.port();
}

void Manager::wake() {
  const uint64_t one = 1;
  [[maybe_unused]] auto n = ::write(wakeFd_, &one, sizeof one);  // EAGAIN: already awake
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
  wake();
}

void Manager::fail(const std::string& why) {
  std::lock_guard g(mu_);
  if (fatal_.empty()) fatal_ = why;
  stopRequested_ = true;
  wake();
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
  const bool metricsApart = !opts_.metricsBindAddress.empty() && opts_.metricsBindAddress != "0";
  const bool metricsOff = opts_.metricsBindAddress == "0";
  if (!metricsOff) {
    HttpServer& target = metricsApart ? metricsServer_ : server_;
    metrics::Registry* reg = opts_.registry;
    auto scrape = [reg] {
      HttpResponse res;
      res.contentType = metrics::kContentType;
      res.body = reg->serialize();
      return res;
    };
    if (opts_.metricsAuthorizer) {
      // Weak: ~Manager destroys the authorizer (answering what it still holds) while the
      // servers' I/O contexts are still alive.
      std::weak_ptr<MetricsAuthorizer> weak = opts_.metricsAuthorizer;
      target.handleAsync("/metrics", [weak, scrape](const HttpRequest& req, HttpResponder respond) {
        auto auth = weak.lock();
        if (!auth) {
          HttpResponse r;
          r.status = 503;
          r.body = "shutting down\n";
          respond(std::move(r));
          return;
        }
        auth->authorize(req, [scrape, respond](std::optional<HttpResponse> denied) {
          respond(denied ? std::move(*denied) : scrape());
        });
      });
    } else {
      target.handle("/metrics", [scrape](const HttpRequest&) { return scrape(); });
    }
  }
  if (!opts_.bindAddress.empty() && opts_.bindAddress != "0") {
    if (auto err = server_.start(opts_.bindAddress); !err.empty()) {
      lg().error("cannot serve health and metrics", {{"err", err}});
      return 1;
    }
    lg().info(metricsApart || metricsOff ? "serving /healthz /readyz" : "serving /healthz /readyz /metrics",
              {{"port", server_.port()}});
  }
  if (metricsApart) {
    if (auto err = metricsServer_.start(opts_.metricsBindAddress); !err.empty()) {
      lg().error("cannot serve metrics", {{"err", err}});
      server_.stop();
      return 1;
    }
    lg().info("serving /metrics", {{"port", metricsServer_.port()},
                                   {"auth", std::string(opts_.metricsAuthorizer ? "kubernetes" : "none")}});
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
        wake();
      }
    };
    elector_ = std::make_unique<LeaderElector>(opts_.client, cfg, opts_.time);
    electorThread_ = std::thread([this] { elector_->run(); });
  } else {
    leading_ = true;
    isLeaderGauge_->set(1);
    leaderWorkThread_ = std::thread([this] { startLeaderWork(); });
  }

  // Wait for stop(), a fatal error or a termination signal, in this thread.
  for (;;) {
    {
      std::lock_guard g(mu_);
      if (stopRequested_) break;
    }
    pollfd fds[2] = {{wakeFd_, POLLIN, 0}, {opts_.stopSignalFd, POLLIN, 0}};
    const int n = ::poll(fds, opts_.stopSignalFd >= 0 ? 2 : 1, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail(std::string("waiting for a stop: poll: ") + std::strerror(errno));
      continue;
    }
    if (fds[0].revents & POLLIN) {
      uint64_t v = 0;
      [[maybe_unused]] auto r = ::read(wakeFd_, &v, sizeof v);
    }
    if (opts_.stopSignalFd >= 0 && (fds[1].revents & (POLLIN | POLLERR | POLLHUP | POLLNVAL))) {
      const int sig = readSignal(opts_.stopSignalFd);
      if (sig > 0) {
        lg().info("signal received, shutting down", {{"signal", sig}});
        stop();
      } else if (fds[1].revents & (POLLERR | POLLHUP | POLLNVAL)) {
        fail("the signal fd failed");
      }
    }
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
  metricsServer_.stop();
  std::lock_guard g(mu_);
  return fatal_.empty() ? 0 : 1;
}

int blockSignalsToFd(std::initializer_list<int> signals) {
  sigset_t set;
  sigemptyset(&set);
  for (int sig : signals) sigaddset(&set, sig);
  if (int err = pthread_sigmask(SIG_BLOCK, &set, nullptr); err != 0) {
    errno = err;
    return -1;
  }
  return ::signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
}

int readSignal(int fd) {
  signalfd_siginfo si{};
  const auto n = ::read(fd, &si, sizeof si);
  return n == static_cast<ssize_t>(sizeof si) ? static_cast<int>(si.ssi_signo) : 0;
}

}  // namespace waterline::runtime
