#pragma once
// Demand-aware shares of a PTU reservation between router replicas (pure; time passed in).
//
// Each replica enforces its own sliding-window limiter with limit L x share (admission.h).
// A static 1/N split under-admits when the load across replicas is uneven. Instead every
// replica publishes, once per exchange interval (1 s), per reservation: the tokens its
// limiter holds in the current window (`used`, admitted tokens still in the last 60 s)
// and its recent demand (`demandPerSec`: estimated tokens of the requests it admitted
// *and* refused, per second, smoothed), then reads the others' reports and computes:
//
//     U = sum of used over live replicas, R = max(0, 1 - U/L)   (as fractions of L)
//     w_i = (1 - floor) x demand_i / sum demand + floor / N     (w_i = 1/N when nobody has demand)
//     share_i = used_i / L + w_i x R'  + (R - R') / N,   R' = min(R, headroom x demand x interval / L)
//
// (only the room the demand can use before the next exchange, with headroom, is split by
// demand; the rest, which no replica can use up within the interval at the current
// demand, is split evenly, so that a burst or a large request on any replica fits.)
// So sum share_i = 1 exactly when U <= L (the reservation is never over-committed by the
// split itself), no replica's limit falls below what its window already holds (no replica
// is stuck refusing behind its own history), the room left is handed out by demand, and
// every live replica keeps floor/N of the room so a burst landing on an idle replica is
// admitted while the room lasts, before the next exchange moves the room to it. When
// U > L (a report was stale or a peer came back), shares are used_i / U.
//
// Large requests: a request larger than a replica's slice of the room (w_i x R) would
// be refused there while the reservation as a whole has room. So every replica's slice
// is raised to at least m = min(largest request any live replica reported, R / N),
// taken from the slices above m in proportion to their excess; the slices still sum to R.
//
// A report older than `staleAfter` is dropped (its replica left or cannot reach the
// store); with no fresh report of its own the caller falls back to the static 1/N split.
// No per-request round trip: requests only touch the local limiter.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "waterline/common/time.h"

namespace waterline::routing {

struct ShareReport {
  std::string replica;       // the reporting replica's identity
  double used = 0;           // tokens in its window for this reservation
  double demandPerSec = 0;   // recent demanded (admitted + refused) tokens per second
  int64_t atMs = 0;          // wall-clock time of the report, ms since the epoch
  double largest = 0;        // the largest request estimate it saw recently (last minute)
  bool operator==(const ShareReport&) const = default;
};

struct ShareParams {
  double floor = 0.6;            // fraction of the room shared evenly among live replicas
  int64_t staleAfterMs = 5000;   // reports older than this are dropped
  double minShare = 1e-6;        // no live replica's share goes below this
  // Spare room: only `headroom` x the demand of one `intervalSec` is split by demand;
  // the room beyond it (which the demand cannot use before the next exchange) is split
  // evenly. headroom 0: the whole room is split by demand (no spare).
  double headroom = 2.0;
  double intervalSec = 1.0;
  // The slice every replica keeps for the largest request is at most this fraction of
  // an even split of the room.
  double largestCap = 1.0;
  // Experimental, off (0): each replica may also use this fraction of the others' even
  // parts of the spare room, so the shares sum to more than 1 by up to
  // spareOvercommit x (N-1)/N x spare. Trades a bounded over-admission risk (if all
  // replicas use it in the same interval) for fewer refusals of large requests.
  double spareOvercommit = 0;
};

// Shares of the live replicas (fresh reports), by replica; they sum to 1 (to rounding).
// `limit` is L, the reservation's tokens per window (LimiterConfig::limit() at share 1).
// Empty when no report is fresh.
std::map<std::string, double> computeShares(double limit, const std::vector<ShareReport>& reports, int64_t nowMs,
                                            const ShareParams& p = {});

// The share of `self`, or nullopt when its own report is not among the fresh ones.
std::optional<double> shareOf(const std::string& self, double limit, const std::vector<ShareReport>& reports,
                              int64_t nowMs, const ShareParams& p = {});

// Demand tracking of one replica for one reservation: feed it the cumulative demanded
// tokens at each exchange; it returns the smoothed rate per second (EWMA, time constant
// `tauSec`). The first call returns 0.
class DemandRate {
 public:
  explicit DemandRate(double tauSec = 3.0) : tau_(tauSec) {}
  double update(double cumulativeTokens, int64_t nowMs);
  double rate() const { return rate_; }

 private:
  double tau_;
  double rate_ = 0;
  double lastTotal_ = 0;
  int64_t lastMs_ = 0;
  bool started_ = false;
};

// Report encoding for a shared store: "<atMs> <used> <demandPerSec>".
std::string encodeReport(const ShareReport& r);
std::optional<ShareReport> decodeReport(const std::string& replica, const std::string& value);

}  // namespace waterline::routing
