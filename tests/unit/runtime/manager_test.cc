// The manager's stop paths: a termination signal on its signalfd (no handler, no watcher
// thread) stops it gracefully with status 0; a fatal error stops it with a non-zero one.
#include "waterline/runtime/manager.h"

#include <gtest/gtest.h>
#include <pthread.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "fake_client.h"

namespace waterline::runtime {
namespace {

using namespace std::chrono_literals;
using testing::FakeClient;

ManagerOptions options(metrics::Registry& reg) {
  ManagerOptions mo;
  mo.client = std::make_shared<FakeClient>();
  mo.registry = &reg;
  mo.bindAddress = "";
  mo.leaderElection = false;
  return mo;
}

TEST(Manager, ASignalOnItsFdStopsItGracefullyEvenOneSentBeforeRun) {
  // Blocked in this thread before the manager starts any (they inherit the mask); the
  // signal is sent to this thread, so it stays pending for the fd whatever other threads
  // the test process has.
  const int fd = blockSignalsToFd({SIGUSR1});
  ASSERT_GE(fd, 0);
  metrics::Registry reg;
  auto mo = options(reg);
  mo.stopSignalFd = fd;
  Manager m(mo);
  std::atomic<bool> started{false}, stopped{false};
  m.addRunnable({"r", true, [&] { started = true; }, [&] { stopped = true; }});
  ASSERT_EQ(::pthread_kill(::pthread_self(), SIGUSR1), 0);  // before run(): must not be lost
  EXPECT_EQ(m.run(), 0) << "a signal is a graceful stop";
  EXPECT_TRUE(started);
  EXPECT_TRUE(stopped) << "leader work was stopped before run() returned";
  EXPECT_EQ(readSignal(fd), 0) << "the manager consumed the signal";
  ::close(fd);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGUSR1);
  pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
}

TEST(Manager, StoppingOnAnErrorReturnsNonZero) {
  metrics::Registry reg;
  Manager m(options(reg));
  // A controller whose informer never starts: its caches never sync, a fatal error.
  ControllerOptions co;
  co.registry = &reg;
  co.cacheSyncTimeout = 50ms;
  auto c = std::make_unique<Controller>(
      "nosync", std::make_unique<FuncReconciler>([](const Request&) -> ReconcileResult { return Result::done(); }),
      co);
  c->watchFor(std::make_shared<cache::Informer>(std::make_shared<FakeClient>(), kube::kinds::ConfigMap,
                                                cache::InformerOptions{}, RealTimeSource::instance()));
  m.add(std::move(c));
  EXPECT_EQ(m.run(), 1);
}

TEST(Manager, StopFromAnotherThreadReturnsZero) {
  metrics::Registry reg;
  Manager m(options(reg));
  std::atomic<bool> started{false};
  m.addRunnable({"r", true, [&] { started = true; }, {}});
  std::thread t([&] {
    while (!started) std::this_thread::yield();
    m.stop();
  });
  EXPECT_EQ(m.run(), 0);
  t.join();
}

// GET http://127.0.0.1:port/path with curl: the HTTP status (0 when nothing answered).
int statusOf(int port, const std::string& path, const std::string& header = "") {
  std::string cmd = "curl -s -o /dev/null --max-time 10 -w '%{http_code}' ";
  if (!header.empty()) cmd += "-H '" + header + "' ";
  cmd += "http://127.0.0.1:" + std::to_string(port) + path;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return 0;
  char buf[16] = {0};
  const size_t n = std::fread(buf, 1, sizeof buf - 1, p);
  ::pclose(p);
  return n ? std::atoi(buf) : 0;
}

// Runs the manager on a thread until the test ends; waits until its ports are bound.
struct Running {
  Manager& m;
  std::thread t;
  explicit Running(Manager& mgr) : m(mgr), t([this] { (void)m.run(); }) {
    for (int i = 0; i < 1000 && m.boundPort() == 0; ++i) std::this_thread::sleep_for(10ms);
  }
  ~Running() {
    m.stop();
    t.join();
  }
};

TEST(Manager, MetricsOnTheirOwnPortTheProbesStay) {
  if (std::system("command -v curl >/dev/null 2>&1") != 0) GTEST_SKIP() << "curl not installed";
  metrics::Registry reg;
  auto mo = options(reg);
  mo.bindAddress = "127.0.0.1:0";
  mo.metricsBindAddress = "127.0.0.1:0";
  Manager m(mo);
  Running r(m);
  for (int i = 0; i < 1000 && m.metricsPort() == 0; ++i) std::this_thread::sleep_for(10ms);
  ASSERT_NE(m.boundPort(), 0);
  ASSERT_NE(m.metricsPort(), 0);
  ASSERT_NE(m.metricsPort(), m.boundPort());
  EXPECT_EQ(statusOf(m.metricsPort(), "/metrics"), 200);
  EXPECT_EQ(statusOf(m.metricsPort(), "/healthz"), 404);
  EXPECT_EQ(statusOf(m.boundPort(), "/metrics"), 404);
  EXPECT_EQ(statusOf(m.boundPort(), "/healthz"), 200);
}

TEST(Manager, MetricsOnTheProbePortByDefaultAndNowhereWithZero) {
  if (std::system("command -v curl >/dev/null 2>&1") != 0) GTEST_SKIP() << "curl not installed";
  {
    metrics::Registry reg;
    auto mo = options(reg);
    mo.bindAddress = "127.0.0.1:0";
    Manager m(mo);
    Running r(m);
    ASSERT_NE(m.boundPort(), 0);
    EXPECT_EQ(m.metricsPort(), m.boundPort());
    EXPECT_EQ(statusOf(m.boundPort(), "/metrics"), 200);
  }
  {
    metrics::Registry reg;
    auto mo = options(reg);
    mo.bindAddress = "127.0.0.1:0";
    mo.metricsBindAddress = "0";
    Manager m(mo);
    Running r(m);
    ASSERT_NE(m.boundPort(), 0);
    EXPECT_EQ(m.metricsPort(), 0);
    EXPECT_EQ(statusOf(m.boundPort(), "/metrics"), 404);
    EXPECT_EQ(statusOf(m.boundPort(), "/healthz"), 200);
  }
}

// Lets "Bearer good" through, answers 403 otherwise (on another thread, as the real one).
class FakeAuthorizer : public MetricsAuthorizer {
 public:
  void authorize(const HttpRequest& req, std::function<void(std::optional<HttpResponse>)> done) override {
    auto it = req.headers.find("authorization");
    const bool ok = it != req.headers.end() && it->second == "Bearer good";
    std::thread([ok, done = std::move(done)] {
      if (ok) {
        done(std::nullopt);
      } else {
        HttpResponse r;
        r.status = 403;
        done(r);
      }
    }).detach();
  }
};

TEST(Manager, TheAuthorizerGuardsMetricsOnly) {
  if (std::system("command -v curl >/dev/null 2>&1") != 0) GTEST_SKIP() << "curl not installed";
  metrics::Registry reg;
  auto mo = options(reg);
  mo.bindAddress = "127.0.0.1:0";
  mo.metricsAuthorizer = std::make_shared<FakeAuthorizer>();
  Manager m(mo);
  Running r(m);
  ASSERT_NE(m.boundPort(), 0);
  EXPECT_EQ(statusOf(m.boundPort(), "/metrics"), 403);
  EXPECT_EQ(statusOf(m.boundPort(), "/metrics", "Authorization: Bearer bad"), 403);
  EXPECT_EQ(statusOf(m.boundPort(), "/metrics", "Authorization: Bearer good"), 200);
  EXPECT_EQ(statusOf(m.boundPort(), "/healthz"), 200);
}

}  // namespace
}  // namespace waterline::runtime
