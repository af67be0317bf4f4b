#pragma once
// client-go's Reflector: list, then watch from the list's resourceVersion with
// bookmarks; resume each new watch from the last resourceVersion seen; on 410
// Gone/Expired, relist (delivering the deletes that were missed); reconnect with a
// jittered exponential backoff. Level-based consumers only need the store it feeds.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <random>
#include <string>
#include <vector>

#include "waterline/cache/store.h"
#include "waterline/common/time.h"
#include "waterline/kube/client.h"

namespace waterline::cache {

// What a reflector feeds. Calls come from the reflector's thread, in order.
class ReflectorSink {
 public:
  virtual ~ReflectorSink() = default;
  // The full state as of `resourceVersion` (after a list).
  virtual void replace(std::vector<ObjectPtr> objs, const std::string& resourceVersion) = 0;
  virtual void added(ObjectPtr obj) = 0;
  virtual void modified(ObjectPtr obj) = 0;
  virtual void deleted(ObjectPtr obj) = 0;
};

struct ReflectorOptions {
  std::string ns;  // "" = all namespaces / cluster-scoped
  std::string labelSelector;
  std::string fieldSelector;
  int64_t pageSize = 500;  // for consistent relists
  // Each watch asks the server to end it after a random time in [min, 2*min), as
  // client-go does, so connections are recycled and never hang.
  std::chrono::seconds minWatchTimeout{300};
  Duration backoffInitial = std::chrono::milliseconds(800);
  Duration backoffMax = std::chrono::seconds(30);
  // Applied to every object before it is stored (e.g. drop managedFields).
  std::function<void(Json&)> transform;
  uint64_t seed = 0;  // jitter RNG seed; 0 = random
};

struct ReflectorStats {
  uint64_t lists = 0;        // successful lists (first + relists)
  uint64_t relists = 0;      // lists after the first (410 Gone, errors)
  uint64_t watches = 0;      // watch requests started
  uint64_t watchErrors = 0;  // watch streams that ended with an error
  uint64_t events = 0;       // ADDED/MODIFIED/DELETED delivered
  uint64_t bookmarks = 0;
};

class Reflector {
 public:
  Reflector(kube::ClientPtr client, kube::ResourceKind kind, ReflectorOptions opts,
            ReflectorSink& sink, TimeSourcePtr time);
  ~Reflector();

  // Runs until stop(). Call on a dedicated thread.
  void run();
  // Idempotent; makes run() return promptly.
  void stop();

  std::string lastSyncResourceVersion() const;
  ReflectorStats stats() const;
  const kube::ResourceKind& kind() const { return kind_; }

 private:
  // Lists everything; false when stopped or failed (after logging).
  bool listAndReplace();
  // Watches until the stream ends or fails.
  void watchOnce();
  void backoffWait();
  ObjectPtr prepare(Json obj);

  kube::ClientPtr client_;
  kube::ResourceKind kind_;
  ReflectorOptions opts_;
  ReflectorSink& sink_;
  TimeSourcePtr time_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::atomic<bool> stopped_{false};
  kube::WatchStream* active_ = nullptr;  // guarded by mu_
  std::string lastRV_;                   // guarded by mu_
  bool needList_ = true;
  bool consistentList_ = false;  // next list must be a consistent (RV="") one
  int failures_ = 0;
  ReflectorStats stats_;  // guarded by mu_
  std::mt19937_64 rng_;
};

}  // namespace waterline::cache
