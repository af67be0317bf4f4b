#pragma once
// Leader election through a coordination.k8s.io/v1 Lease, with client-go's semantics:
// a candidate takes the lease when it is free or when the holder has not renewed it
// for leaseDuration (measured on the candidate's own clock from when it last saw the
// record change, so clock skew between replicas does not matter); the leader renews
// every retryPeriod and steps down if it cannot renew within renewDeadline.
#include <atomic>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <string>

#include "waterline/common/time.h"
#include "waterline/kube/client.h"

namespace waterline::runtime {

struct LeaderElectionConfig {
  std::string ns = "waterline-system";
  std::string name = "waterline-operator";
  std::string identity;  // unique per replica (hostname_pid by default in main)
  Duration leaseDuration = std::chrono::seconds(15);
  Duration renewDeadline = std::chrono::seconds(10);
  Duration retryPeriod = std::chrono::seconds(2);
  bool releaseOnCancel = true;  // give the lease up on a graceful stop
  std::function<void()> onStartedLeading;
  std::function<void()> onStoppedLeading;  // also called after a graceful release
  std::function<void(const std::string& identity)> onNewLeader;
};

// The lease record we read and write (spec of the Lease).
struct LeaseRecord {
  std::string holderIdentity;
  int leaseDurationSeconds = 0;
  std::optional<SystemTime> acquireTime;
  std::optional<SystemTime> renewTime;
  int leaseTransitions = 0;
  bool operator==(const LeaseRecord&) const = default;
};

class LeaderElector {
 public:
  LeaderElector(kube::ClientPtr client, LeaderElectionConfig cfg, TimeSourcePtr time);

  // Blocks: acquires, then renews until it loses the lease or stop() is called.
  // Returns true if it was leading when it returned because of stop().
  void run();
  void stop();

  bool isLeader() const { return leading_.load(); }
  std::string observedLeader() const;

  // One acquire-or-renew attempt (exposed for deterministic unit tests).
  bool tryAcquireOrRenew();
  // Gives the lease up if held (writes an empty holder), as on a graceful stop.
  bool release();

  const LeaderElectionConfig& config() const { return cfg_; }

 private:
  bool sleepFor(Duration d);  // false when stopped

  kube::ClientPtr client_;
  LeaderElectionConfig cfg_;
  TimeSourcePtr time_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::atomic<bool> stopped_{false};
  std::atomic<bool> leading_{false};
  std::optional<LeaseRecord> observed_;  // last record seen
  kube::Json observedRaw_;               // last object (for updates with its RV)
  MonotonicTime observedTime_{};         // when observed_ last changed, on our clock
  std::string reportedLeader_;
};

// Lease <-> record codec (pure, for tests).
LeaseRecord leaseRecordFromJson(const kube::Json& lease);
kube::Json leaseSpecJson(const LeaseRecord& r);
std::string formatMicroTime(SystemTime t);
std::optional<SystemTime> parseMicroTime(const std::string& s);

}  // namespace waterline::runtime
