// The manager's stop paths: a termination signal on its signalfd (no handler, no watcher
// thread) stops it gracefully with status 0; a fatal error stops it with a non-zero one.
#include "waterline/runtime/manager.h"

#include <gtest/gtest.h>
#include <pthread.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
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

}  // namespace
}  // namespace waterline::runtime
