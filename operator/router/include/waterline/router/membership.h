#pragma once
// Lease-based router membership: how many router replicas share each PTU reservation.
//
// Each replica of a group (--membership-group: the routers that share reservations)
// keeps its own coordination.k8s.io/v1 Lease in --membership-namespace:
//
//   metadata.name    memberLeaseName(group, identity)
//   metadata.labels  waterline.dev/router-group=<group>
//   spec             holderIdentity=<identity>, leaseDurationSeconds, acquireTime,
//                    renewTime (renewed every leaseDuration/3)
//
// and, on every renewal, lists the group's Leases (label selector) and counts the live
// ones (countLiveMembers). N = max(1, live members) feeds the PTU limiters
// (RouterServer::setReplicaCount: each replica enforces 1/N of every reservation).
// A clean stop deletes the replica's own Lease, so the others see N drop at their next
// renewal; a crashed replica's Lease expires after leaseDuration.
// When the apiserver cannot be reached (renew or list fails) the last N is kept, never
// reset to 1 (which would let a replica admit N times its share); the failure is logged
// and counted in waterline_router_membership_errors_total. docs/routing.md has the
// error bounds.
#include <atomic>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "waterline/common/metrics.h"
#include "waterline/common/time.h"
#include "waterline/kube/client.h"
#include "waterline/router/config.h"

namespace waterline::router {

// The label that puts a Lease into a membership group.
inline constexpr const char* kRouterGroupLabel = "waterline.dev/router-group";
// The field manager / managed-by value of the router's Leases.
inline constexpr const char* kRouterManager = "waterline-router";

// ------------------------------------------------------------------ pure functions

// The Lease name of `identity` in `group`: a DNS-1123 label (at most 63 characters of
// [a-z0-9-], alphanumeric at both ends) of the form
//     <group>-<identity>-<8 hex digits>
// where group and identity are lower-cased, every other character becomes '-', runs of
// '-' collapse, and the readable part is cut so that the whole fits in 63 characters.
// The 8 hex digits are an FNV-1a hash of the exact (group, identity) pair, so two pairs
// never share a name because sanitising or cutting made their text equal ("a-b"/"c" and
// "a"/"b-c"). Deterministic: a restarted replica with the same identity reuses its Lease.
std::string memberLeaseName(std::string_view group, std::string_view identity);

// Kubernetes name rules, for flag validation.
bool isDns1123Label(std::string_view s);  // [a-z0-9]([-a-z0-9]*[a-z0-9])?, <= 63
bool isLabelValue(std::string_view s);    // non-empty; ([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9], <= 63

// Why a Lease did or did not count.
enum class LeaseVerdict {
  Live,        // renewTime + leaseDurationSeconds + clockSkew > now
  Expired,     // not renewed in time, released (empty holderIdentity) or being deleted
  OtherGroup,  // not labelled waterline.dev/router-group=<group>
  Malformed,   // not an object, or spec.renewTime / leaseDurationSeconds / holderIdentity
               // missing or of the wrong type (a renewTime that does not parse, a
               // duration <= 0)
};
const char* toString(LeaseVerdict v);

LeaseVerdict classifyLease(const nlohmann::json& lease, std::string_view group, SystemTime now,
                           Duration clockSkew);

struct MemberCount {
  std::vector<std::string> live;  // distinct holder identities of live Leases, sorted
  int expired = 0;
  int otherGroups = 0;
  int malformed = 0;
  bool selfAdded = false;  // `self` had no live Lease and was counted anyway

  // N: the live members, at least 1.
  int replicas() const { return live.empty() ? 1 : static_cast<int>(live.size()); }
  bool operator==(const MemberCount&) const = default;
};

// Counts the live members of `group` among `leases` (the items of a Lease list) at `now`.
// A Lease is live while now < renewTime + leaseDurationSeconds + clockSkew: renewTime is
// the holder's clock, so `clockSkew` (how far the replicas' clocks may disagree) keeps a
// replica whose clock runs behind from being dropped early. Counting a member too long
// only lowers every share (under-admission); dropping one early over-admits. A renewTime
// in the future (a clock ahead) counts as live.
// Leases of other groups and malformed ones are ignored (and counted in the result);
// two live Leases with the same holderIdentity count once. `self` (this replica's
// identity; empty: none) is always a member: a replica that is running but whose own
// Lease is missing or stale (its renewal failed) still takes its share.
MemberCount countLiveMembers(const std::vector<nlohmann::json>& leases, std::string_view group,
                             SystemTime now, Duration clockSkew, std::string_view self = {});

// The Lease object this replica writes (create/update body).
nlohmann::json memberLease(const std::string& ns, const std::string& group, const std::string& identity,
                           Duration leaseDuration, SystemTime acquireTime, SystemTime renewTime);

// ------------------------------------------------------------------ the loop

// Keeps this replica's Lease and recounts the group. Thread-safe; sync() may also be
// called directly (tests, or once before the router opens its port).
class LeaseMembership {
 public:
  // Called with the new N whenever it changes (and after the first successful count),
  // from the thread that ran sync().
  using Listener = std::function<void(int replicas)>;

  // `cfg.ns`, `cfg.group` and `cfg.identity` must be set (main.cc fills the defaults).
  // `initialReplicas`: N until the first successful count (the --replicas flag).
  // `registry` (may be null) gets waterline_router_membership_errors_total.
  LeaseMembership(kube::ClientPtr client, MembershipConfig cfg, TimeSourcePtr time,
                  metrics::Registry* registry, Listener onChange, int initialReplicas = 1);
  ~LeaseMembership();  // stop(false): no Lease deletion from a destructor
  LeaseMembership(const LeaseMembership&) = delete;
  LeaseMembership& operator=(const LeaseMembership&) = delete;

  // One round: create or renew the own Lease, list the group, recount. Returns true when
  // the list succeeded and N was recomputed; false keeps the last N.
  bool sync();
  // Runs sync() every renewPeriod() on a thread (the first one right away unless sync()
  // ran less than a period ago).
  void start();
  // Stops the thread; with deleteLease, deletes the own Lease (one attempt, with the
  // uid it was written with as a precondition). Idempotent.
  void stop(bool deleteLease = true);

  int replicas() const { return replicas_.load(); }
  // The last count (empty before the first successful list).
  std::optional<MemberCount> lastCount() const;
  const std::string& leaseName() const { return leaseName_; }
  Duration renewPeriod() const;
  const MembershipConfig& config() const { return cfg_; }

 private:
  bool renew(SystemTime now);
  void fail(const char* operation, const std::string& err);
  void run();

  kube::ClientPtr client_;
  MembershipConfig cfg_;
  TimeSourcePtr time_;
  Listener onChange_;
  std::string leaseName_;
  metrics::CounterFamily* errors_ = nullptr;

  std::mutex syncMu_;  // one sync() at a time; guards own_, acquireTime_, last_, failing_
  std::optional<nlohmann::json> own_;  // the own Lease as last written (resourceVersion, uid)
  std::optional<SystemTime> acquireTime_;
  std::optional<MemberCount> last_;
  bool failing_ = false;
  MonotonicTime lastFailureLog_{};
  bool notified_ = false;

  std::atomic<int> replicas_;
  mutable std::mutex mu_;  // last_ copies for readers, thread control
  std::optional<MemberCount> lastPublic_;
  std::condition_variable cv_;
  std::atomic<bool> stopping_{false};
  MonotonicTime nextSync_{};
  std::thread thread_;
  bool stopped_ = false;
};

}  // namespace waterline::router
