#pragma once
// ModelDeployment reconciler: reads the deployment from its cache and its workers, the
// nodes they run on and the GPU inventory from the capacity cache (capacity::CapacityCache,
// the ONE scheduler state of the process); plans with planners::planDeployment inside one
// capacity Txn and assumes the pods it is about to create before letting go; then
// creates, drains and deletes worker pods, tells the cache what it expects of them
// (assume / forget / expected deletions and drains), writes status with server-side apply
// to the status subresource and records Events. Two reconciles (on two workers, for two
// deployments) therefore never pick the same GPU, and a reconcile that runs before the
// watch delivers the pods it created does not create them again.
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <mutex>
#include <string>
#include <vector>

#include "waterline/api/capacity_pool.h"
#include "waterline/cache/informer.h"
#include "waterline/cache/lister.h"
#include "waterline/capacity/capacity_cache.h"
#include "waterline/common/metrics.h"
#include "waterline/common/time.h"
#include "waterline/kube/client.h"
#include "waterline/runtime/controller.h"
#include "waterline/planners/deployment.h"
#include "waterline/planners/repair.h"
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

struct ModelDeploymentDeps {
  kube::WriterPtr writer;  // its reads come from listers (and apiReader below)
  cache::InformerPtr deployments;
  cache::InformerPtr pools;  // watched: capacity changes wake waiting deployments
  cache::InformerPtr nodes;
  capacity::CapacityCachePtr capacity;  // holds the worker-pod informer
  runtime::EventRecorderPtr recorder;
  TimeSourcePtr time;
  // Optional: repairs (backoff and metric); default: one on metrics::defaultRegistry().
  RepairTrackerPtr repairs = nullptr;
  UnhealthyWorkersFn unhealthyWorkers = nullptr;
  // Optional: PTUReservations. Their Active placements hold GPUs for their deployment
  // (planners::PoolHold) and, without autoscaling, raise its replicas to their floor.
  cache::InformerPtr reservations = nullptr;
  // Optional: a read past the cache, for the one case the cache cannot answer: a create
  // refused as AlreadyExists (a pod of a previous process the watch has not shown yet)
  // is read from the API so the real pod's assignment is assumed, not the planned one.
  // Null: the planned assumption stands until the watch shows the pod.
  kube::ReaderPtr apiReader = nullptr;
};

class ModelDeploymentReconciler final : public runtime::Reconciler {
 public:
  explicit ModelDeploymentReconciler(ModelDeploymentDeps deps);
  runtime::ReconcileResult reconcile(const runtime::Request& req) override;
  // DRA: the deployment's worker claims whose pod does not exist (read in the reconcile's
  // own Txn; none when DRA is off), and their deletion ("" or an error).
  std::vector<capacity::OrphanClaim> orphanClaimsOf(const capacity::CapacityCache::Txn& txn,
                                                    const runtime::Request& req) const;
  std::string deleteOrphanClaims(const std::vector<capacity::OrphanClaim>& orphans);
  // Called (with the deployment's request) after creates failed and their assumed GPUs
  // were released; newModelDeploymentController enqueues the deployments waiting for
  // capacity. Set before the controller starts.
  void onCapacityReleased(std::function<void(const runtime::Request&)> f) { capacityReleased_ = std::move(f); }

 private:
  ModelDeploymentDeps d_;
  std::shared_ptr<cache::Lister<api::ModelDeployment>> deployments_;  // decoded once per version
  std::function<void(const runtime::Request&)> capacityReleased_;
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
