#pragma once
// Demand-aware PTU shares across router replicas through Redis (--ptu-share-store).
//
// Once per interval (1 s) a background thread, per reservation the AdmissionController
// knows: writes this replica's report (window usage, smoothed demand, largest recent
// request; routing/ptu_shares.h) into the Redis hash waterline:ptu:<reservation> under
// its identity, reads the whole hash back, and sets the reservation's share from the
// fresh reports (AdmissionController::setReservationShare). All commands of a round go
// in one pipeline: one round trip per interval, none per request. Reports older than
// staleAfter are ignored (and deleted from the hash after a minute); the hash expires
// when no replica writes it for a minute. When the store cannot be reached for longer
// than staleAfter, every reservation goes back to the static split (setShare, 1/N).
// The client is hiredis (Debian's libhiredis-dev), synchronous, with connect and I/O
// timeouts; it runs on its own thread only.
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "waterline/common/time.h"
#include "waterline/routing/admission.h"
#include "waterline/routing/ptu_shares.h"

namespace waterline::router {

struct PtuShareStoreAddress {
  std::string host;
  int port = 6379;
};
// "redis://HOST:PORT" or "redis://HOST" (port 6379). Error text when malformed.
std::string parsePtuShareStore(const std::string& url, PtuShareStoreAddress* out);

class PtuShareExchange {
 public:
  struct Options {
    PtuShareStoreAddress address;
    std::string identity;                                  // unique per replica
    Duration interval = std::chrono::seconds(1);
    Duration ioTimeout = std::chrono::milliseconds(500);  // connect and each reply
    routing::ShareParams params;                           // staleAfterMs: default 5 intervals
    std::string keyPrefix = "waterline:ptu:";
  };
  PtuShareExchange(Options o, routing::AdmissionController& admission, TimeSourcePtr clock = nullptr);
  ~PtuShareExchange();
  PtuShareExchange(const PtuShareExchange&) = delete;
  PtuShareExchange& operator=(const PtuShareExchange&) = delete;

  // One round (publish, read, set the shares); "" on success, else why not. The
  // background thread calls it every interval; tests may call it directly.
  std::string exchangeOnce();
  void start();
  // Stops the thread; with `remove`, deletes this replica's reports, so that the others
  // stop counting it at their next round instead of after staleAfter.
  void stop(bool remove);

  std::uint64_t rounds() const { return rounds_.load(); }
  std::uint64_t failures() const { return failures_.load(); }

 private:
  struct Redis;
  bool connect(std::string* err);
  void run();

  Options o_;
  routing::AdmissionController& admission_;
  TimeSourcePtr clock_;
  std::unique_ptr<Redis> redis_;
  std::map<std::string, routing::DemandRate> rates_;
  std::map<std::string, std::deque<double>> largest_;
  MonotonicTime lastSuccess_{};
  bool everSucceeded_ = false;
  bool overridden_ = false;
  std::atomic<std::uint64_t> rounds_{0}, failures_{0};
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace waterline::router
