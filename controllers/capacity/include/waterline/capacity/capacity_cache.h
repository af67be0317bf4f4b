#pragma once
// CapacityCache: the one GPU capacity state of the process.
//
// It subscribes to the CapacityPool, Node, worker-Pod and PTUReservation informers,
// decodes each object once when its event arrives, and keeps a scheduling::Inventory
// (planners::Snapshot) up to date from those events: a worker pod that appears, changes
// its assignment, ends or goes is applied to the inventory on its own; a node whose
// capacity-relevant fields change is upserted. Only structural changes (a pool's spec, a
// node changing pool, a node going away with workers on it) rebuild the inventory, from
// the decoded objects the cache already holds (planners::buildSnapshot): never from JSON.
//
// It also owns every expectation the reconcilers have about their own writes, in the
// manner of kube-scheduler's cache (assume / forget / expire) and kueue's workload
// assumptions:
//   - assumed creates: a worker pod about to be created is recorded with its assignment,
//     so the next plan (on any reconciler) sees its GPUs taken before the watch delivers
//     it; forgotten when its create fails, dropped when the watch shows it, expired after
//     assumeTimeout (the create never happened and nothing said so);
//   - expected deletions (evictions, deletes): a pod the process asked to go counts as
//     being deleted until the watch shows it deleting or gone, or deletionTimeout passes;
//   - expected drains: a pod marked draining counts as draining until the watch shows it.
//
// Reconcilers take a Txn: exclusive access to the snapshot for one read-plan-assume cycle.
// The inventory is not copied: plans serialize on the cache, as kube-scheduler's
// scheduling cycles do, and each one is short (no decoding, no rebuild). While a Txn is
// open the Active reservations' holds are applied (planners::applyHolds); they are
// withdrawn when it closes, so events between Txns apply to the inventory of workers only.
//
// Event handlers are registered in the constructor: construct the cache before the
// controllers that read it, so that a reconcile triggered by an event sees that event.
#include <cstdint>
#include <expected>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "waterline/api/capacity_pool.h"
#include "waterline/cache/informer.h"
#include "waterline/common/time.h"
#include "waterline/dra/allocator.h"
#include "waterline/dra/inventory.h"
#include "waterline/kube/client.h"
#include "waterline/planners/inventory_snapshot.h"
#include "waterline/planners/nodes.h"

namespace waterline::capacity {

struct CapacityCacheSources {
  cache::InformerPtr pools;
  cache::InformerPtr nodes;
  cache::InformerPtr workerPods;    // label app.kubernetes.io/managed-by=waterline
  cache::InformerPtr reservations;  // optional: PTUReservations (holds)
  // Optional, together: DRA (resource.k8s.io/v1), when the cluster serves it. Every
  // ResourceSlice and every ResourceClaim of every namespace (claims of pods Waterline
  // does not manage included: what they hold is never offered).
  cache::InformerPtr resourceSlices;
  cache::InformerPtr resourceClaims;
};

// A Waterline claim whose worker pod does not exist (the process stopped between the
// claim's create and the pod's): its devices are held until it is deleted.
struct OrphanClaim {
  std::string ns, name, uid, deployment, worker;
};
// A Waterline claim whose worker pod exists but that is not reserved for it yet (the
// process stopped between the pod's create and the claim's update).
struct UnreservedClaim {
  std::string ns, name, deployment, worker, podUid;
};

struct CapacityCacheOptions {
  Duration assumeTimeout = std::chrono::minutes(5);    // assumed create never seen
  Duration deletionTimeout = std::chrono::minutes(2);  // expected deletion / drain never seen
};

struct CapacityCacheStats {
  uint64_t rebuilds = 0;       // full rebuilds from the decoded objects
  uint64_t podEvents = 0;      // worker-pod events applied incrementally
  uint64_t nodeUpserts = 0;    // node capacity changes applied incrementally
  uint64_t expiredAssumed = 0;
  size_t assumed = 0;          // assumed creates not yet seen
  size_t expectedDeletions = 0;
  size_t conflicts = 0;
  uint64_t draRefreshes = 0;   // DRA inventory rebuilds (slice / claim changes)
  size_t resourceSlices = 0;
  size_t resourceClaims = 0;
};

// Which holds a Txn applies.
struct TxnOptions {
  bool holds = true;  // apply the Active reservations' holds for the Txn
  // Replaces the holds of one reservation ("ns/name") by these (its just-decided
  // placements; the cache may lag behind the reconciler's own status write).
  std::optional<std::pair<std::string, std::vector<planners::PoolHold>>> holdOverride;

  static TxnOptions withoutHolds() {
    TxnOptions o;
    o.holds = false;
    return o;
  }
};

class CapacityCache {
 public:
  CapacityCache(CapacityCacheSources sources, TimeSourcePtr time, CapacityCacheOptions opts = {});
  ~CapacityCache();
  CapacityCache(const CapacityCache&) = delete;
  CapacityCache& operator=(const CapacityCache&) = delete;

  class Txn {
   public:
    Txn(Txn&&) noexcept;
    ~Txn();
    // The inventory with every observed and assumed worker (and the holds, per
    // TxnOptions), the conflicting claims, node -> pool, hold shortfalls.
    planners::Snapshot& snapshot();
    scheduling::Inventory& inventory() { return snapshot().inventory; }
    // Worker pods as this process expects them: observed ones, plus assumed creates not
    // yet seen; expected deletions read as deleting, expected drains as draining.
    std::vector<planners::WorkerPod> workersOf(const std::string& ns, const std::string& deployment) const;
    std::vector<planners::WorkerPod> workers() const;  // all, in key order
    const planners::NodeView* node(const std::string& name) const;
    std::vector<const api::CapacityPool*> pools() const;  // name order
    // Records a worker pod about to be created (or found to exist) with its assignment:
    // applied to the inventory unless it is there already with that assignment.
    void assume(const kube::Json& pod);
    // The holds applied for this Txn (empty with TxnOptions::holds false).
    const std::vector<planners::PoolHold>& holds() const { return holds_; }
    // DRA: whether the node's GPUs come from DRA (its pool's allocation mode resolves to
    // DRA), and the claim status.allocation for whole GPUs of an assignment there.
    bool draNode(const std::string& node) const;
    std::expected<dra::Allocation, std::string> draAllocation(const std::string& node,
                                                              const std::vector<int>& gpus) const;
    // Waterline claims (label managed-by) of the namespace whose worker pod is neither
    // observed nor assumed.
    std::vector<OrphanClaim> orphanClaims(const std::string& ns) const;
    std::vector<UnreservedClaim> unreservedClaims(const std::string& ns) const;

   private:
    friend class CapacityCache;
    Txn(CapacityCache& c, TxnOptions opts);
    CapacityCache* c_;
    std::unique_lock<std::mutex> lk_;
    bool holdsApplied_ = false;
    std::vector<planners::PoolHold> holds_;
  };

  Txn begin(TxnOptions opts = {});

  // The create of an assumed pod failed: its GPUs go back (unless the watch shows it).
  void forget(const std::string& key);
  // Records a pod found to exist (AlreadyExists), with its real assignment.
  void assume(const kube::Json& pod);
  // The process asked for this pod (uid) to go: it counts as deleting until seen so.
  void expectDeletion(const std::string& uid);
  // The process marked this pod ("ns/name") draining since `since`.
  void expectDrain(const std::string& key, SystemTime since);

  CapacityCacheStats stats() const;
  const CapacityCacheSources& sources() const { return src_; }

 private:
  struct Assumed {
    planners::WorkerPod pod;
    MonotonicTime at;
  };

  // Event handlers (informer threads).
  void onPool(const cache::ObjectPtr& o, bool deleted);
  void onNode(const cache::ObjectPtr& o, bool deleted);
  void onPod(const cache::ObjectPtr& o, bool deleted);
  void onReservation(const cache::ObjectPtr& o, bool deleted);
  void onSlice(const cache::ObjectPtr& o, bool deleted);
  void onClaim(const cache::ObjectPtr& o, bool deleted);

  // Caller holds mu_.
  void rebuildLocked();
  void applyNodeLocked(const planners::NodeView& n);
  void applyWorkerLocked(const planners::WorkerPod& w);
  void releaseWorkerLocked(const std::string& key);
  void retryConflictsLocked();
  void expireLocked();
  std::vector<planners::PoolHold> holdsLocked(const TxnOptions& opts) const;
  planners::WorkerPod expectedLocked(const planners::WorkerPod& w) const;
  // The pool a node belongs to ("" none) and whether several select it.
  std::pair<const api::CapacityPool*, int> ownerLocked(const planners::NodeView& n) const;
  // DRA: rebuilds the device inventory when slices or claims changed and re-derives the
  // nodes of DRA pools from it; overlay of one raw node view.
  void refreshDraLocked();
  planners::NodeView effectiveLocked(const planners::NodeView& raw) const;
  bool draPoolLocked(const api::CapacityPool& p) const;
  bool ourClaimLocked(const std::string& claimKey) const;
  void workerClaimChangedLocked(const std::string& podKey);  // its claim's devices: re-derive their nodes
  void storeNodeLocked(planners::NodeView raw);

  CapacityCacheSources src_;
  TimeSourcePtr time_;
  CapacityCacheOptions opts_;
  std::vector<std::pair<cache::InformerPtr, uint64_t>> handlers_;

  mutable std::mutex mu_;
  bool dirty_ = true;  // rebuild before the next Txn
  std::map<std::string, std::shared_ptr<const api::CapacityPool>> pools_;  // by name
  std::map<std::string, std::shared_ptr<const planners::NodeView>> nodes_;     // effective (DRA applied)
  std::map<std::string, std::shared_ptr<const planners::NodeView>> rawNodes_;  // as the Node says
  std::map<std::string, std::shared_ptr<const planners::WorkerPod>> pods_;  // observed, "ns/name"
  std::map<std::string, Assumed> assumed_;                                  // not yet observed
  std::map<std::string, std::vector<planners::PoolHold>> holds_;            // reservation -> holds
  std::map<std::string, MonotonicTime> expectedDeletions_;                  // uid -> when asked
  std::map<std::string, std::pair<SystemTime, MonotonicTime>> expectedDrains_;  // key -> (since, asked)

  planners::Snapshot snap_;                                 // workers only between Txns
  std::unordered_map<std::string, std::string> applied_;    // worker key -> assignment in the inventory
  std::map<std::string, scheduling::Conflict> conflicts_;   // worker key -> refused claim
  CapacityCacheStats stats_;

  // DRA state.
  struct ClaimInfo {
    dra::ResourceClaim claim;
    bool waterline = false;  // managed-by waterline
    std::string deployment, worker;
  };
  std::map<std::string, dra::ResourceSlice> slices_;  // by name
  std::map<std::string, ClaimInfo> claims_;           // "ns/name"
  std::map<std::string, std::string> claimOfWorker_;  // "ns/pod" -> its Waterline claim
  bool draDirty_ = false;
  // What a refresh must re-derive: every node (pool changes, first refresh), the nodes
  // of changed slices, and the nodes of devices whose claims changed.
  bool draAll_ = true;
  std::set<std::string> draDirtyNodes_;
  std::set<dra::DeviceId> draDirtyDevices_;
  bool slicesChanged_ = true;
  // Claim changes since the last refresh (before, after; nullopt: absent), applied one
  // by one (dra::Inventory::replaceClaim) unless the slices changed too.
  std::vector<std::pair<std::optional<dra::ResourceClaim>, std::optional<dra::ResourceClaim>>> claimDeltas_;
  dra::Inventory draInv_;
  std::set<std::string> autoDraPools_;  // pools with unset allocation whose nodes publish slices
};

using CapacityCachePtr = std::shared_ptr<CapacityCache>;

}  // namespace waterline::capacity
