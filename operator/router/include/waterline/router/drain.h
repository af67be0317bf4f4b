#pragma once
// Graceful shutdown of waterline-router as a state machine (docs/routing.md, "Shutdown").
//
// Pure: no I/O, no clock of its own. The caller reports the termination signals and the
// client connections still open, with the time read from the router's one injected clock
// (RouterServer::drain does, on the wire side), so tests drive it on simulated time.
//
//   Serving ──first SIGTERM/SIGINT──> Delay ──+delay──> Draining ──no connection open──> Drained (exit 0)
//                                                          └──────grace since the signal──> Cut (exit 1)
//   any phase after Serving ──second signal──> Abort (exit 128 + signal, at once)
//
//   Serving   /readyz 200, accepting, keep-alive as the client asks.
//   Delay     /readyz 503 at once; still accepting new connections (endpoints controllers
//             and load balancers see the 503 and stop sending); every response carries
//             Connection: close and its connection is closed after it.
//   Draining  the listener is closed (new connections are refused), idle keep-alive
//             connections are closed, requests and streams in flight finish.
//   Drained   every client connection has closed before the grace ran out.
//   Cut       the grace ran out with connections open: they are cut and counted.
//   Abort     a second signal: exit at once, whatever is open.
//
// The grace (--shutdown-grace) counts from the first signal and includes the delay
// (--shutdown-delay), so the process is gone at most `grace` after SIGTERM: set the pod's
// terminationGracePeriodSeconds above it (plus any preStop time). A grace shorter than
// the delay is raised to the delay (the flags refuse it).
#include <cstdint>
#include <optional>

#include "waterline/common/time.h"

namespace waterline::router {

enum class DrainPhase { Serving, Delay, Draining, Drained, Cut, Abort };

const char* toString(DrainPhase p);

struct DrainOptions {
  Duration delay = std::chrono::seconds(5);   // --shutdown-delay
  Duration grace = std::chrono::seconds(30);  // --shutdown-grace, from the first signal
};

class DrainState {
 public:
  explicit DrainState(DrainOptions o);

  // A termination signal at `now`: the first moves Serving to Delay (the delay may be
  // zero: update() then moves on at once); any later one, in whatever phase, to Abort.
  // Returns the phase after it.
  DrainPhase onSignal(MonotonicTime now, int signo);

  // The time and the client connections still open: Delay -> Draining once the delay has
  // passed; Draining -> Drained when none is open, -> Cut once the grace has passed with
  // some open. Returns the phase after it; final phases stay.
  DrainPhase update(MonotonicTime now, std::int64_t openConnections);

  DrainPhase phase() const { return phase_; }
  // When update() must run again at the latest (the end of the delay, then of the grace);
  // nullopt while serving and once final.
  std::optional<MonotonicTime> wakeAt() const;

  bool ready() const { return phase_ == DrainPhase::Serving; }       // /readyz 200
  bool accepting() const { return phase_ == DrainPhase::Serving || phase_ == DrainPhase::Delay; }
  bool keepAlive() const { return phase_ == DrainPhase::Serving; }   // else Connection: close
  bool finished() const {
    return phase_ == DrainPhase::Drained || phase_ == DrainPhase::Cut || phase_ == DrainPhase::Abort;
  }
  // The process's exit status in a final phase: Drained 0, Cut 1, Abort 128 + the second
  // signal (what a shell reports for a process killed by it); -1 before.
  int exitCode() const;

  // Valid after the first signal.
  MonotonicTime signalledAt() const { return signalledAt_; }
  MonotonicTime drainAt() const { return signalledAt_ + opts_.delay; }
  MonotonicTime deadline() const { return signalledAt_ + opts_.grace; }
  const DrainOptions& options() const { return opts_; }

 private:
  DrainOptions opts_;
  DrainPhase phase_ = DrainPhase::Serving;
  MonotonicTime signalledAt_{};
  int abortSignal_ = 0;
};

}  // namespace waterline::router
