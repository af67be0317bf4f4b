#pragma once
// One heartbeat per cluster for its routing entries (docs/routing.md, "Heartbeat").
//
// The leader renews a coordination.k8s.io/v1 Lease in the routing hub every
// `interval` with server-side apply (one request):
//
//   metadata: name waterline-routing-<cluster> ("local" for the empty name),
//             namespace --routing-heartbeat-namespace,
//             labels {waterline.dev/routing-heartbeat: "true"},
//             annotations {waterline.dev/cluster: <cluster>}
//   spec:     holderIdentity <cluster or "local">, renewTime now,
//             leaseDurationSeconds 3 × interval (informational)
//
// `/v1/routes` (RoutesService) serves each entry of that cluster with
// heartbeatTime = max(the entry's own heartbeatTime, the Lease's renewTime), so a live
// cluster's unchanged entries stay fresh without being rewritten, and a dead cluster's
// go stale once its Lease stops moving. While the Lease cannot be renewed (a missing
// namespace, RBAC, the hub unreachable), `live()` turns false and the publisher falls
// back to rewriting each entry every heartbeat.
#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <optional>
#include <thread>

#include "waterline/common/time.h"
#include "waterline/kube/client.h"

namespace waterline::reconcilers {

inline constexpr std::string_view kRoutingHeartbeatLabel = "waterline.dev/routing-heartbeat";
inline constexpr std::string_view kClusterAnnotation = "waterline.dev/cluster";

// "waterline-routing-<cluster>" ("waterline-routing-local" for the empty name).
std::string routingHeartbeatLeaseName(const std::string& cluster);

// The Lease as applied at `now`.
kube::Json routingHeartbeatLease(const std::string& ns, const std::string& cluster, Duration interval,
                                 SystemTime now);

// The cluster a routing heartbeat Lease speaks for and its renewTime; nullopt when the
// object is not one (no label or annotation, no parseable renewTime).
struct ClusterHeartbeatTime {
  std::string cluster;
  SystemTime renewTime;
};
std::optional<ClusterHeartbeatTime> clusterHeartbeatFromLease(const kube::Json& lease);

class ClusterHeartbeat {
 public:
  ClusterHeartbeat(kube::WriterPtr hub, std::string ns, std::string cluster, Duration interval,
                   TimeSourcePtr time);
  ~ClusterHeartbeat();
  ClusterHeartbeat(const ClusterHeartbeat&) = delete;
  ClusterHeartbeat& operator=(const ClusterHeartbeat&) = delete;

  // One renewal now; false (and logged) when the apply fails.
  bool renew();
  // True when a renewal succeeded less than 2 × interval ago (monotonic).
  bool live() const;
  // Renews at once and then every interval on a thread, until stop() (leader only).
  void start();
  void stop();

  const std::string& ns() const { return ns_; }
  Duration interval() const { return interval_; }

 private:
  void loop();

  kube::WriterPtr hub_;
  std::string ns_, cluster_;
  Duration interval_;
  TimeSourcePtr time_;
  std::atomic<int64_t> lastOkNs_{-1};  // monotonic time of the last success, ns; -1: never
  std::atomic<bool> failing_{false};    // the last renewal failed (logged once per outage)
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false, running_ = false;
  std::thread thread_;
};
using ClusterHeartbeatPtr = std::shared_ptr<ClusterHeartbeat>;

}  // namespace waterline::reconcilers
