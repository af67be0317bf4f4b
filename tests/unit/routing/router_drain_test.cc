// The router's shutdown state machine (router/drain.h) on simulated time: no sockets, no
// signals; the test reports signals and open connections as RouterServer::drain does.
#include "waterline/router/drain.h"

#include <gtest/gtest.h>

#include <csignal>

namespace waterline::router {
namespace {

using namespace std::chrono_literals;

class DrainTest : public ::testing::Test {
 protected:
  SimulatedTimeSource clock;
  MonotonicTime now() const { return clock.monotonicTime(); }
};

TEST_F(DrainTest, ServesUntilTheFirstSignal) {
  DrainState d({.delay = 5s, .grace = 30s});
  EXPECT_EQ(d.phase(), DrainPhase::Serving);
  EXPECT_TRUE(d.ready());
  EXPECT_TRUE(d.accepting());
  EXPECT_TRUE(d.keepAlive());
  EXPECT_FALSE(d.finished());
  EXPECT_FALSE(d.wakeAt().has_value());
  clock.advance(1h);
  EXPECT_EQ(d.update(now(), 0), DrainPhase::Serving);  // time alone changes nothing
  EXPECT_EQ(d.exitCode(), -1);
}

TEST_F(DrainTest, DelayThenDrainThenDrained) {
  DrainState d({.delay = 5s, .grace = 30s});
  const MonotonicTime t0 = now();
  EXPECT_EQ(d.onSignal(t0, SIGTERM), DrainPhase::Delay);
  // The delay: /readyz 503 at once, still accepting, no keep-alive.
  EXPECT_FALSE(d.ready());
  EXPECT_TRUE(d.accepting());
  EXPECT_FALSE(d.keepAlive());
  EXPECT_EQ(d.wakeAt(), t0 + 5s);
  // No connection open does not end the delay: load balancers need it to see the 503.
  clock.advance(4999ms);
  EXPECT_EQ(d.update(now(), 0), DrainPhase::Delay);
  EXPECT_TRUE(d.accepting());
  clock.advance(1ms);
  EXPECT_EQ(d.update(now(), 2), DrainPhase::Draining);
  EXPECT_FALSE(d.accepting());
  EXPECT_FALSE(d.ready());
  EXPECT_EQ(d.wakeAt(), t0 + 30s);  // the grace counts from the signal
  clock.advance(10s);
  EXPECT_EQ(d.update(now(), 1), DrainPhase::Draining);
  EXPECT_EQ(d.update(now(), 0), DrainPhase::Drained);
  EXPECT_TRUE(d.finished());
  EXPECT_EQ(d.exitCode(), 0);
  EXPECT_FALSE(d.wakeAt().has_value());
  // Final: later updates and connections change nothing.
  clock.advance(1h);
  EXPECT_EQ(d.update(now(), 5), DrainPhase::Drained);
}

TEST_F(DrainTest, GraceRunsOutWithConnectionsOpen) {
  DrainState d({.delay = 2s, .grace = 10s});
  const MonotonicTime t0 = now();
  d.onSignal(t0, SIGTERM);
  clock.advance(2s);
  EXPECT_EQ(d.update(now(), 1), DrainPhase::Draining);
  clock.advance(7999ms);  // 9.999s since the signal
  EXPECT_EQ(d.update(now(), 1), DrainPhase::Draining);
  clock.advance(1ms);
  EXPECT_EQ(d.update(now(), 1), DrainPhase::Cut);
  EXPECT_TRUE(d.finished());
  EXPECT_EQ(d.exitCode(), 1);
  EXPECT_EQ(d.deadline(), t0 + 10s);
}

TEST_F(DrainTest, ConnectionsClosingAtTheDeadlineDrain) {
  // Open connections are checked before the deadline: none open is Drained even late.
  DrainState d({.delay = 1s, .grace = 3s});
  d.onSignal(now(), SIGINT);
  clock.advance(1h);  // the driver woke late
  EXPECT_EQ(d.update(now(), 0), DrainPhase::Drained);
  EXPECT_EQ(d.exitCode(), 0);
}

TEST_F(DrainTest, ZeroDelayDrainsAtOnce) {
  DrainState d({.delay = 0s, .grace = 30s});
  EXPECT_EQ(d.onSignal(now(), SIGTERM), DrainPhase::Delay);
  EXPECT_EQ(d.update(now(), 1), DrainPhase::Draining);
  EXPECT_FALSE(d.accepting());
  EXPECT_EQ(d.update(now(), 0), DrainPhase::Drained);
}

TEST_F(DrainTest, ZeroGraceCutsWhenTheDelayEnds) {
  DrainState d({.delay = 0s, .grace = 0s});
  d.onSignal(now(), SIGTERM);
  EXPECT_EQ(d.update(now(), 3), DrainPhase::Cut);
}

TEST_F(DrainTest, GraceShorterThanTheDelayIsRaisedToIt) {
  DrainState d({.delay = 5s, .grace = 1s});
  EXPECT_EQ(d.options().grace, 5s);
  const MonotonicTime t0 = now();
  d.onSignal(t0, SIGTERM);
  clock.advance(5s);
  // The delay is served whole; the grace ends with it.
  EXPECT_EQ(d.update(now(), 1), DrainPhase::Cut);
  EXPECT_EQ(d.deadline(), t0 + 5s);
}

TEST_F(DrainTest, SecondSignalAbortsInAnyPhase) {
  {
    DrainState d({.delay = 5s, .grace = 30s});
    d.onSignal(now(), SIGTERM);
    EXPECT_EQ(d.onSignal(now(), SIGINT), DrainPhase::Abort);
    EXPECT_TRUE(d.finished());
    EXPECT_EQ(d.exitCode(), 128 + SIGINT);
    EXPECT_FALSE(d.wakeAt().has_value());
    clock.advance(1h);
    EXPECT_EQ(d.update(now(), 0), DrainPhase::Abort);  // stays
    EXPECT_EQ(d.onSignal(now(), SIGTERM), DrainPhase::Abort);
    EXPECT_EQ(d.exitCode(), 128 + SIGINT);  // the signal that aborted
  }
  {
    DrainState d({.delay = 0s, .grace = 30s});
    d.onSignal(now(), SIGTERM);
    EXPECT_EQ(d.update(now(), 1), DrainPhase::Draining);
    EXPECT_EQ(d.onSignal(now(), SIGTERM), DrainPhase::Abort);
    EXPECT_EQ(d.exitCode(), 128 + SIGTERM);
  }
  {
    // After a drain has ended (the process is tearing down), a signal still means "now".
    DrainState d({.delay = 0s, .grace = 30s});
    d.onSignal(now(), SIGTERM);
    EXPECT_EQ(d.update(now(), 0), DrainPhase::Drained);
    EXPECT_EQ(d.onSignal(now(), SIGTERM), DrainPhase::Abort);
  }
}

TEST(DrainPhaseNames, AreStable) {
  EXPECT_STREQ(toString(DrainPhase::Serving), "serving");
  EXPECT_STREQ(toString(DrainPhase::Delay), "delay");
  EXPECT_STREQ(toString(DrainPhase::Draining), "draining");
  EXPECT_STREQ(toString(DrainPhase::Drained), "drained");
  EXPECT_STREQ(toString(DrainPhase::Cut), "cut");
  EXPECT_STREQ(toString(DrainPhase::Abort), "abort");
}

}  // namespace
}  // namespace waterline::router
