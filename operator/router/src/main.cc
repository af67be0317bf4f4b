// waterline-router: the composition root of the router binary. Flags -> RouterConfig,
// routes sources -> RouterServer::setRoutes, signals -> stop.
#include <csignal>
#include <cstdio>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "waterline/common/log.h"
#include "waterline/router/config.h"
#include "waterline/router/routes_source.h"
#include "waterline/router/server.h"

namespace {
volatile std::sig_atomic_t g_stop = 0;
void onSignal(int) { g_stop = 1; }
}  // namespace

int main(int argc, char** argv) {
  using namespace waterline;
  std::vector<std::string> args(argv + 1, argv + argc);
  auto cfg = router::parseFlags(args);
  if (!cfg) {
    if (cfg.error() == "help") {
      std::cout << router::helpText();
      return 0;
    }
    std::cerr << "waterline-router: " << cfg.error() << "\n";
    return 2;
  }
  if (auto lvl = log::parseLevel(cfg->logLevel)) log::setLevel(*lvl);
  auto logger = log::logger("router.main");
  if (cfg->routesFile.empty() && cfg->routesUrl.empty()) {
    std::cerr << "waterline-router: one of --routes-file or --routes-url is required (see --help)\n";
    return 2;
  }

  router::RouterServer server(*cfg);
  std::vector<router::RoutesSourcePtr> sources;
  if (!cfg->routesFile.empty()) sources.push_back(std::make_unique<router::FileRoutesSource>(cfg->routesFile));
  if (!cfg->routesUrl.empty()) sources.push_back(std::make_unique<router::HttpRoutesSource>(cfg->routesUrl, std::chrono::seconds(5),
                                                                     cfg->routesLongPoll));
  router::RoutesMerger merger(sources.size());
  // A first synchronous poll so that a good file is in place before the port opens.
  for (size_t i = 0; i < sources.size(); ++i) {
    auto* src = sources[i].get();
    src->start(
        [&server, &merger, i](routing::RoutingTable t) { server.setRoutes(merger.update(i, std::move(t))); },
        cfg->routesPollInterval);
  }

  auto started = server.start();
  if (!started) {
    std::cerr << "waterline-router: " << started.error() << "\n";
    return 1;
  }
  std::signal(SIGINT, onSignal);
  std::signal(SIGTERM, onSignal);
  std::signal(SIGPIPE, SIG_IGN);
  // Print the port for scripts that start the router with --port=0.
  std::printf("listening on %s:%d\n", cfg->listenAddress.c_str(), server.port());
  std::fflush(stdout);
  while (!g_stop) {
    struct timespec ts{0, 100 * 1000 * 1000};
    nanosleep(&ts, nullptr);
  }
  logger.info("stopping");
  for (auto& s : sources) s->stop();
  server.stop();
  return 0;
}
