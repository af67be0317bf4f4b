// waterline-router: the composition root of the router binary. Flags -> RouterConfig,
// routes sources -> RouterServer::setRoutes, Lease membership ->
// RouterServer::setReplicaCount, signals -> the drain (router/drain.h) and stop.
#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <cstdio>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "waterline/common/log.h"
#include "waterline/kube/config.h"
#include "waterline/kube/rest_client.h"
#include "waterline/router/config.h"
#include "waterline/router/flags.h"
#include "waterline/router/membership.h"
#include "waterline/router/ptu_share_exchange.h"
#include "waterline/router/routes_source.h"
#include "waterline/router/server.h"

namespace {

std::string hostname() {
  char host[256] = {0};
  if (gethostname(host, sizeof host - 1) != 0) return "";
  return host;
}
}  // namespace

int main(int argc, char** argv) {
  // SIGINT/SIGTERM blocked before any thread starts (every thread inherits the mask) and
  // waited for on a signalfd below: no handler, no polling, and a signal during start-up
  // is not lost (it is handled once serving has started).
  sigset_t stopSignals;
  sigemptyset(&stopSignals);
  sigaddset(&stopSignals, SIGINT);
  sigaddset(&stopSignals, SIGTERM);
  if (pthread_sigmask(SIG_BLOCK, &stopSignals, nullptr) != 0) {
    std::cerr << "waterline-router: cannot block termination signals\n";
    return 1;
  }
  const int signalFd = ::signalfd(-1, &stopSignals, SFD_CLOEXEC);
  if (signalFd < 0) {
    std::cerr << "waterline-router: signalfd: " << std::strerror(errno) << "\n";
    return 1;
  }
  std::signal(SIGPIPE, SIG_IGN);
  using namespace waterline;
  auto cfg = router::parseRouterConfig(argc, argv);
  if (!cfg) {
    if (cfg.error().code == 0) std::cout << cfg.error().text;
    else std::cerr << "waterline-router: " << cfg.error().text << "\n";
    return cfg.error().code;
  }
  log::setLevel(cfg->logLevel);
  log::setFormat(cfg->logFormat);
  auto logger = log::logger("router.main");
  if (cfg->routesFile.empty() && cfg->routesUrl.empty()) {
    std::cerr << "waterline-router: one of --routes-file or --routes-url is required (see --help)\n";
    return 2;
  }

  // --max-connections needs as many descriptors (plus upstream connections): use the
  // hard limit, not the usual soft 1024.
  if (rlimit rl{}; getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    if (rl.rlim_cur < rl.rlim_max) {
      rlimit raised = rl;
      raised.rlim_cur = rl.rlim_max;
      if (setrlimit(RLIMIT_NOFILE, &raised) == 0) rl = raised;
    }
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < static_cast<rlim_t>(cfg->maxConnections) + 256)
      logger.warn("descriptor limit below --max-connections: connections beyond it fail to be accepted",
                  {{"fd_limit", static_cast<long long>(rl.rlim_cur)}, {"max_connections", cfg->maxConnections}});
  }

  router::RouterServer server(*cfg);

  // Lease membership: N from the group's live Leases (--membership-group).
  std::unique_ptr<router::LeaseMembership> membership;
  if (cfg->membership.enabled()) {
    auto m = cfg->membership;
    auto kc = kube::loadDefault(m.kubeconfig);
    if (!kc) {
      std::cerr << "waterline-router: membership: cannot load Kubernetes client configuration: " << kc.error() << "\n";
      return 2;
    }
    if (m.ns.empty()) m.ns = kc->defaultNamespace.empty() ? "default" : kc->defaultNamespace;
    if (m.identity.empty()) m.identity = hostname();
    if (m.identity.empty()) {
      std::cerr << "waterline-router: membership: no --identity and no hostname\n";
      return 2;
    }
    // A request that hangs must not hold the renewals up for longer than a renew period,
    // and reads are not retried for long: the next round retries anyway.
    const auto period = std::chrono::duration_cast<std::chrono::seconds>(m.leaseDuration / 3);
    kc->requestTimeout = std::max(std::chrono::seconds(1), period);
    kc->maxRetries = 0;
    kc->qps = 5;
    kc->burst = 10;
    kc->userAgent = "waterline-router/0.1";
    auto client = kube::RestClient::create(*kc);
    if (!client) {
      std::cerr << "waterline-router: membership: " << client.error() << "\n";
      return 2;
    }
    logger.info("membership on", {{"group", m.group}, {"namespace", m.ns}, {"identity", m.identity},
                                   {"lease_duration", m.leaseDuration}, {"server", kc->server}});
    membership = std::make_unique<router::LeaseMembership>(
        *client, m, nullptr, &server.registry(), [&server](int n) { server.setReplicaCount(n); }, cfg->replicas);
    // A first round before the port opens, so that N is counted (or stays --replicas
    // when the apiserver cannot be reached yet; the loop keeps trying).
    membership->sync();
    membership->start();
  }

  // Demand-aware PTU shares through Redis (--ptu-share-store); started once the routes
  // are in place, so that the first round knows the reservations.
#ifdef WATERLINE_HAVE_HIREDIS
  std::unique_ptr<router::PtuShareExchange> shares;
  if (!cfg->ptuShareStore.empty()) {
    router::PtuShareExchange::Options so;
    router::parsePtuShareStore(cfg->ptuShareStore, &so.address);
    so.identity = !cfg->membership.identity.empty() ? cfg->membership.identity
                                                     : hostname() + "-" + std::to_string(::getpid());
    so.interval = cfg->ptuShareInterval;
    so.params.spareOvercommit = cfg->ptuShareOvercommit;
    logger.info("ptu shares on", {{"store", cfg->ptuShareStore}, {"identity", so.identity},
                                  {"interval", cfg->ptuShareInterval}});
    shares = std::make_unique<router::PtuShareExchange>(so, server.admission());
  }
  auto stopShares = [&shares] {
    if (shares) shares->stop(true);
  };
#else
  if (!cfg->ptuShareStore.empty()) {
    std::cerr << "waterline-router: --ptu-share-store: this build has no Redis client (hiredis); see hack/deps.sh\n";
    if (membership) membership->stop(true);
    return 2;
  }
  auto stopShares = [] {};
#endif

  std::vector<router::RoutesSourcePtr> sources;
  if (!cfg->routesFile.empty()) sources.push_back(std::make_unique<router::FileRoutesSource>(cfg->routesFile));
  if (!cfg->routesUrl.empty()) sources.push_back(std::make_unique<router::HttpRoutesSource>(cfg->routesUrl, std::chrono::seconds(5),
                                                                     cfg->routesLongPoll));
  router::RoutesMerger merger(sources.size());
  // start() polls once on this thread, so that a good table is in place before the port
  // opens (RouterProcess.ServesFromARoutesFileAndReloadsIt used to race it).
  for (size_t i = 0; i < sources.size(); ++i) {
    auto* src = sources[i].get();
    src->start(
        [&server, &merger, i](routing::RoutingTable t) { server.setRoutes(merger.update(i, std::move(t))); },
        cfg->routesPollInterval);
  }
#ifdef WATERLINE_HAVE_HIREDIS
  if (shares) shares->start();
#endif

  auto started = server.start();
  if (!started) {
    std::cerr << "waterline-router: " << started.error() << "\n";
    stopShares();
    if (membership) membership->stop(true);
    return 1;
  }
  // Print the port for scripts that start the router with --port=0.
  std::printf("listening on %s:%d\n", cfg->listenAddress.c_str(), server.port());
  std::fflush(stdout);
  signalfd_siginfo si{};
  for (;;) {
    const auto n = ::read(signalFd, &si, sizeof si);
    if (n == static_cast<ssize_t>(sizeof si)) break;
    if (n < 0 && errno == EINTR) continue;
    logger.error("reading the signal fd failed; stopping", {{"err", std::strerror(errno)}});
    for (auto& s : sources) s->stop();
    server.stop();
    stopShares();
    if (membership) membership->stop(true);
    return 1;
  }
  // The drain (router/drain.h, docs/routing.md "Shutdown"): /readyz 503 at once, the
  // listener open for --shutdown-delay, then in-flight requests until --shutdown-grace.
  logger.info("shutting down: /readyz answers 503; the listener closes after the shutdown delay",
              {{"signal", static_cast<int>(si.ssi_signo)}, {"shutdown_delay", cfg->shutdownDelay},
               {"shutdown_grace", cfg->shutdownGrace}});
  server.onSignal(static_cast<int>(si.ssi_signo));
  // A second signal, at any time from here on: exit at once, whatever is open.
  const int quit = ::eventfd(0, EFD_CLOEXEC);
  std::thread secondSignal([&server, &logger, signalFd, quit] {
    for (;;) {
      pollfd fds[2] = {{signalFd, POLLIN, 0}, {quit, POLLIN, 0}};
      if (::poll(fds, quit >= 0 ? 2 : 1, -1) < 0) {
        if (errno == EINTR) continue;
        return;
      }
      if (quit >= 0 && (fds[1].revents & POLLIN)) return;
      signalfd_siginfo again{};
      if (::read(signalFd, &again, sizeof again) != static_cast<ssize_t>(sizeof again)) {
        if (errno == EINTR) continue;
        return;
      }
      server.onSignal(static_cast<int>(again.ssi_signo));
      const int code = server.drainExitCode();
      logger.warn("second signal: exiting at once", {{"signal", static_cast<int>(again.ssi_signo)}, {"code", code}});
      std::_Exit(code);
    }
  });
  const router::DrainPhase end = server.drain();
  const int code = server.drainExitCode();
  for (auto& s : sources) s->stop();
  server.stop();
  // After the server has stopped admitting: delete the Lease, so that the others take
  // over this replica's share at their next renewal instead of after a lease duration.
  stopShares();
  if (membership) membership->stop(true);
  if (quit >= 0) {
    const std::uint64_t one = 1;
    [[maybe_unused]] auto w = ::write(quit, &one, sizeof one);
    secondSignal.join();
  } else {
    secondSignal.detach();
  }
  logger.info("exiting", {{"drain", router::toString(end)}, {"code", code}});
  return code;
}
