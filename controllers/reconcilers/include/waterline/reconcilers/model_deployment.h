#pragma once
// ModelDeployment reconciler: reads the deployment, its worker pods, the pools and nodes
// from the caches; plans with planners::planDeployment against the shared PlacementCache;
// creates, drains and deletes worker pods; writes status with server-side apply to the
// status subresource; records Events.
//
// PlacementCache is the ONE scheduler state of the process: every reconciler that places
// pods takes its lock, rebuilds the inventory from the informer snapshot plus the pods it
// has created that the informer has not delivered yet (kube-scheduler's "assumed" pods),
// plans, and assumes the new pods before letting go. Two reconciles (on two workers, for
// two deployments) therefore never pick the same GPU, and a reconcile that runs before
// the watch delivers the pods it created does not create them again.
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <mutex>
#include <string>
#include <vector>

#include "waterline/api/capacity_pool.h"
#include "waterline/cache/informer.h"
#include "waterline/common/metrics.h"
#include "waterline/common/time.h"
#include "waterline/kube/client.h"
#include "waterline/runtime/controller.h"
#include "waterline/planners/deployment.h"
#include "waterline/planners/repair.h"
#include "waterline/reconcilers/decoded.h"
#include "waterline/runtime/events.h"

namespace waterline::reconcilers {

// Repairs of the process: the per-deployment backoff (planners::RepairBackoff on the
// injected clock) and waterline_repairs_total{reason}. A pod's repair is counted once
// (by uid) even when a stale cache shows it to a second reconcile. Thread-safe. The
// backoff lives in memory: a restarted operator starts every deployment at zero.
class RepairTracker {
 public:
  explicit RepairTracker(metrics::Registry& reg, planners::RepairBackoffPolicy policy = {});

  std::optional<SystemTime> holdUntil(const std::string& key, SystemTime now);
  // Counts the repairs of `key`'s plan that were not counted before and feeds the
  // worker-caused ones to the backoff; returns those new repairs.
  std::vector<planners::Repair> record(const std::string& key, const std::vector<planners::Repair>& repairs,
                                       SystemTime now);
  void forget(const std::string& key);
  double count(std::string_view reason);  // the metric's value (tests)

 private:
  std::mutex mu_;
  planners::RepairBackoff backoff_;
  std::map<std::string, SystemTime> seen_;  // pod uid (or key/name) -> when counted
  metrics::CounterFamily& counter_;
};
using RepairTrackerPtr = std::shared_ptr<RepairTracker>;

// Workers that active health probing finds unhealthy, for one deployment ("ns", "name"):
// pod names. Empty function: no probing.
using UnhealthyWorkersFn = std::function<std::set<std::string>(const std::string& ns, const std::string& name)>;

class PlacementCache {
 public:
  // `pods`: the worker-pod informer (label app.kubernetes.io/managed-by=waterline).
  PlacementCache(cache::InformerPtr pods, TimeSourcePtr time,
                 Duration assumeTimeout = std::chrono::minutes(5));

  std::mutex& mutex() { return mu_; }
  // Caller holds mutex(). Worker pods of the cache plus assumed pods the cache has not
  // seen yet; assumed pods the cache has seen, or older than the timeout, are dropped.
  // Shared, not copied: a fleet has thousands of worker pods and every reconcile reads them.
  std::vector<std::shared_ptr<const kube::Json>> workerPodsLocked();
  // Caller holds mutex(). Records a pod about to be created (or just found to exist).
  void assumeLocked(const kube::Json& pod);
  // Takes the lock. Forgets an assumed pod (its create failed).
  void forget(const std::string& key);
  size_t assumedCount();

  const cache::InformerPtr& pods() const { return pods_; }

 private:
  cache::InformerPtr pods_;
  TimeSourcePtr time_;
  Duration timeout_;
  std::mutex mu_;
  struct Assumed {
    std::shared_ptr<const kube::Json> pod;
    SystemTime at;
  };
  std::map<std::string, Assumed> assumed_;  // "ns/name" -> pod
};
using PlacementCachePtr = std::shared_ptr<PlacementCache>;

struct ModelDeploymentDeps {
  kube::ClientPtr client;  // writes (and a GET after AlreadyExists)
  cache::InformerPtr deployments;
  cache::InformerPtr pools;
  cache::InformerPtr nodes;
  PlacementCachePtr placement;  // holds the pods informer
  runtime::EventRecorderPtr recorder;
  TimeSourcePtr time;
  // Optional: repairs (backoff and metric); default: one on metrics::defaultRegistry().
  RepairTrackerPtr repairs = nullptr;
  UnhealthyWorkersFn unhealthyWorkers = nullptr;
  // Optional: PTUReservations. Their Active placements hold GPUs for their deployment
  // (planners::PoolHold) and, without autoscaling, raise its replicas to their floor.
  cache::InformerPtr reservations = nullptr;
};

class ModelDeploymentReconciler final : public runtime::Reconciler {
 public:
  explicit ModelDeploymentReconciler(ModelDeploymentDeps deps);
  runtime::ReconcileResult reconcile(const runtime::Request& req) override;
  // Called (with the deployment's request) after creates failed and their assumed GPUs
  // were released; newModelDeploymentController enqueues the deployments waiting for
  // capacity. Set before the controller starts.
  void onCapacityReleased(std::function<void(const runtime::Request&)> f) { capacityReleased_ = std::move(f); }

 private:
  ModelDeploymentDeps d_;
  std::function<void(const runtime::Request&)> capacityReleased_;
  // Every pool, node and worker pod, decoded once per resourceVersion (decoded.h).
  DecodedByVersion<api::CapacityPool> pools_;
  DecodedByVersion<planners::NodeView> nodes_;
  DecodedByVersion<planners::WorkerPod> workers_;
};

// Watches: deployments (generation changes), owned worker pods, and capacity changes
// (nodes, pools, worker pods going away, deployments deleted, worker creates that failed)
// mapped to the deployments waiting for capacity (Scheduled=False, InsufficientCapacity or
// NoMatchingPool), and node breakage mapped to deployments with pods on the node. A
// deployment whose creates fail (Scheduled=False, WorkerCreateFailed) retries on the
// controller's rate limiter (per-key exponential backoff), not on capacity events.
runtime::ControllerPtr newModelDeploymentController(ModelDeploymentDeps deps,
                                                    runtime::ControllerOptions opts = {});

}  // namespace waterline::reconcilers
