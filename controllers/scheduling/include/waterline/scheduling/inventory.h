#pragma once
// GPU inventory: pools, nodes, every physical GPU with its health and occupancy (whole
// owner, MIG instances at placement slots, time-slice / MPS share slots), reservations,
// and the per-class indexes the scheduler searches instead of scanning every node.
//
// Nodes of a pool are grouped into node classes: nodes with the same pool, GPU product,
// GPU count, GPU memory and taints. Every class-level filter (pool rule, product,
// sharing mode, taints) has one answer for the whole class. Inside a class each
// schedulable node sits in one bucket per "shape index" keyed by its resource summary
// (used units, usable GPUs, whether a fractional request fits on an already-partitioned
// GPU); buckets are updated incrementally on every change of the node. See
// docs/scheduling.md.
#include <algorithm>
#include <array>
#include <cstdint>
#include <expected>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "waterline/scheduling/detail/node_set.h"
#include "waterline/scheduling/mig.h"
#include "waterline/scheduling/model.h"

namespace waterline::scheduling {

using NodeId = std::uint32_t;
using ClassId = std::uint32_t;
using PoolId = std::uint32_t;
using WorkerId = std::uint32_t;
using DeploymentId = std::uint32_t;
inline constexpr std::uint32_t kNone = 0xffffffffu;

// A request the inventory refused, or a recorded assignment that clashes with another.
struct Conflict {
  enum class Kind {
    UnknownNode,
    UnknownGpu,
    DuplicateWorker,
    Occupied,          // the GPU / slice / slot is held by another worker
    InvalidPlacement,  // MIG profile or slot not valid for the GPU's product
    ModeMismatch,      // assignment kind does not match the pool's sharing mode
    ReservedForOther,  // the GPU is held by a reservation of another deployment
    Malformed,         // annotation could not be decoded
  };
  Kind kind = Kind::Occupied;
  std::string worker;  // the worker whose claim was refused
  std::string holder;  // the worker (or reservation) already holding it, if any
  std::string node;
  std::string message;
};
std::string_view toString(Conflict::Kind k);

// A worker recorded on a pod: its request (rebuilt by the planner from the deployment)
// and the annotation value written at bind time.
struct RecordedAssignment {
  Request request;
  std::string annotation;
  std::int64_t order = 0;  // e.g. pod creation time; lower wins a conflict, then worker name
};

// Request shape resolved against one node class.
struct ResolvedShape {
  ShapeKind kind = ShapeKind::Whole;
  int count = 1;         // Whole
  int mig_profile = -1;  // Mig: index into the class geometry
  int shape_index = 0;   // index into NodeClass::shapes
  int units = 1;         // units of the class's resource this request takes
  int k = 0;             // Share: the pool's slices per GPU
  int slots = 1;         // Share: slices one worker takes (k / sharesPerGpu)
  std::int64_t memory_mib = 0;  // Share: memory of the share
};

// Which GPUs of a node a search or allocation may use.
struct GpuScope {
  DeploymentId reserved_for = kNone;  // kNone: unreserved GPUs only; else that deployment's
};

struct MigInstance {
  WorkerId worker = kNone;
  std::uint8_t profile = 0;
  std::uint8_t slot = 0;
};
struct ShareEntry {
  WorkerId worker = kNone;
  std::uint8_t slot = 0;
};

struct GpuState {
  bool healthy = true;
  DeploymentId reserved_for = kNone;
  std::uint32_t reservation = kNone;
  WorkerId whole_owner = kNone;
  MigState mig = 0;
  std::uint64_t share_mask = 0;
  std::vector<MigInstance> mig_instances;
  std::vector<ShareEntry> shares;
  bool idle() const { return whole_owner == kNone && mig == 0 && share_mask == 0; }
};

// The resource summary that buckets are keyed by (and that packing scores read).
struct ResourceSummary {
  int used = 0;      // used units on usable GPUs
  int capacity = 0;  // units of usable GPUs
  int usable_gpus = 0;
  bool partial_fit = false;  // fractional request fits on an already-partitioned GPU
  // How full the fullest already-partitioned GPU that takes the request is, in ninths
  // (1..8; 0: only idle GPUs would take it). Quantised so that buckets stay few.
  int best_fill = 0;
  int units_per_gpu = 1;
};

struct NodeState {
  NodeSpec spec;  // GFD defaults applied
  PoolId pool = kNone;
  ClassId cls = kNone;
  std::uint32_t local = 0;  // id inside the class, in node-name order
  std::vector<GpuState> gpus;
  std::vector<std::pair<DeploymentId, std::uint32_t>> replicas;  // sorted by deployment id
  std::vector<std::int32_t> keys;  // bucket key per class shape index; -1: not indexed
  std::uint32_t reserved_gpus = 0;
  std::uint32_t workers = 0;
  std::int32_t pool_used = 0;      // this node's contribution to PoolState::used_units
  std::int32_t pool_capacity = 0;  // ... and to PoolState::capacity_units
  bool schedulable() const { return spec.ready && !spec.unschedulable && pool != kNone; }
  std::uint32_t replicasOf(DeploymentId d) const;
};

struct ShapeIndex {
  int mig_profile = -1;  // Mig classes: geometry profile index
  // Bucket key -> position in `sets` (-1: never used). Keys are sparse (a node's used
  // units x usable GPUs x fill level), so node sets exist only for keys ever seen.
  std::vector<std::int32_t> slot_of_key;
  std::vector<detail::NodeSet> sets;
  std::vector<std::uint64_t> nonempty;  // bitmap of non-empty bucket keys
  void insert(int key, std::uint32_t local);
  void erase(int key, std::uint32_t local);
  const detail::NodeSet* bucket(int key) const {
    const auto k = static_cast<std::size_t>(key);
    if (k >= slot_of_key.size() || slot_of_key[k] < 0) return nullptr;
    return &sets[static_cast<std::size_t>(slot_of_key[k])];
  }
  std::size_t keyCount() const { return slot_of_key.size(); }
  void clear() {
    slot_of_key.clear();
    sets.clear();
    nonempty.clear();
  }
};

struct NodeClass {
  PoolId pool = kNone;
  std::string product;
  int gpu_count = 0;
  std::int64_t gpu_memory_mib = 0;
  std::vector<Taint> taints;  // sorted
  SharingMode mode = SharingMode::Exclusive;
  const MigGeometry* mig = nullptr;
  std::vector<int> mig_profiles;  // allowed geometry profiles, one shape index each
  std::vector<int> share_sizes;   // TimeSlicing / MPS: slices per worker, one shape index each
  const std::vector<std::array<std::int8_t, 16>>* best_slot = nullptr;  // [state][profile]
  int units_per_gpu = 1;
  std::vector<NodeId> members;  // sorted by node name unless dirty
  bool dirty = false;
  std::vector<ShapeIndex> shapes;
  static constexpr int kFillLevels = 9;
  // Quantised fill level of a GPU with `used` of units_per_gpu units in use: 0 only when
  // idle, otherwise 1..8.
  int fillLevel(int used) const {
    return used <= 0 ? 0 : std::min(8, (used * 8 + units_per_gpu - 1) / units_per_gpu);
  }
  int keyOf(int used, int usable, int fill) const {
    return ((used * (gpu_count + 1)) + usable) * kFillLevels + fill;
  }
  ResourceSummary decode(int key) const {
    ResourceSummary s;
    s.best_fill = key % kFillLevels;
    s.partial_fit = s.best_fill > 0;
    key /= kFillLevels;
    s.usable_gpus = key % (gpu_count + 1);
    s.used = key / (gpu_count + 1);
    s.capacity = s.usable_gpus * units_per_gpu;
    s.units_per_gpu = units_per_gpu;
    return s;
  }
};

struct PoolState {
  PoolSpec spec;
  std::vector<ClassId> classes;
  std::unordered_map<DeploymentId, std::uint32_t> replicas;
  std::uint32_t gpus = 0;           // physical GPUs of member nodes
  std::uint32_t reserved_gpus = 0;  // held by reservations
  // Units (GPUs, MIG slices or shares) in use / usable on schedulable nodes, healthy and
  // unreserved GPUs only. Maintained incrementally; read by the PoolBalance score.
  std::int64_t used_units = 0;
  std::int64_t capacity_units = 0;
  std::uint32_t replicasOf(DeploymentId d) const {
    auto it = replicas.find(d);
    return it == replicas.end() ? 0 : it->second;
  }
};

struct WorkerRecord {
  std::string name;
  Request request;
  Assignment assignment;
  NodeId node = kNone;
  DeploymentId deployment = kNone;
  bool live = false;
};

struct ReservationState {
  std::string name;
  DeploymentId deployment = kNone;
  std::vector<std::pair<NodeId, int>> gpus;
  bool live = false;
};

struct RebuildResult;

class Inventory {
 public:
  Inventory() = default;

  // Pools first, then nodes. Updating a pool re-classifies its nodes; occupancy stays.
  std::expected<void, std::string> upsertPool(PoolSpec pool);
  // Adds or updates a node (labels, taints, readiness, GPU health). GPUs that would
  // disappear must be idle.
  std::expected<void, std::string> upsertNode(NodeSpec node);
  // Removes a node; its workers are forgotten and returned (sorted), its reserved GPUs
  // dropped from their reservations.
  std::vector<std::string> removeNode(std::string_view name);
  bool setNodeReady(std::string_view name, bool ready);
  bool setNodeUnschedulable(std::string_view name, bool unschedulable);
  bool setGpuHealthy(std::string_view node, int index, bool healthy);

  // Reserve (kube-scheduler "assume"): records a worker at an assignment after checking
  // that nothing is over-committed and no other deployment's reservation is touched.
  std::expected<void, Conflict> assume(const Request& request, const Assignment& a);
  // Unreserve / release: forgets a worker. False if unknown.
  bool forget(std::string_view worker);

  // Reservations of whole GPUs for one deployment. createReservation picks idle GPUs of
  // the pool (nodes with the most idle GPUs first, then by name), within the pool's
  // reservable_fraction.
  std::expected<ReservationRecord, std::string> createReservation(
      std::string_view name, std::string_view deployment, std::string_view pool, int gpus);
  // Restores a recorded reservation; GPUs that are missing, reserved already or used by
  // another deployment are skipped and reported.
  std::vector<Conflict> restoreReservation(const ReservationRecord& r);
  bool releaseReservation(std::string_view name);
  std::optional<ReservationRecord> reservation(std::string_view name) const;
  std::vector<ReservationRecord> reservations() const;  // sorted by name

  // Rebuild from the cluster: pools, nodes, reservations (from their status) and the
  // assignments recorded on pods. Assignments apply in (order, worker) order; a claim on
  // something already held is reported as a conflict and not applied.
  static RebuildResult rebuild(std::vector<PoolSpec> pools, std::vector<NodeSpec> nodes,
                               std::vector<RecordedAssignment> assignments,
                               std::vector<ReservationRecord> reservations = {});

  // Canonical text of all occupancy and reservations (node-name order).
  std::string fingerprint() const;
  // Recomputes every counter and index from the GPU states; returns the discrepancies.
  std::vector<std::string> checkInvariants() const;

  // Sorts classes touched by node additions. Called by the scheduler before a cycle.
  void prepare();

  // Changes whenever the inventory does (any mutating call), unique in the process: two
  // inventories, or one before and after a change, never share a version; a copy has its
  // original's. For callers that derive something costly from the whole inventory
  // (pool fragmentation) and want to compute it once per state.
  std::uint64_t version() const { return version_; }

  // Reads.
  NodeId findNode(std::string_view name) const;
  PoolId findPool(std::string_view name) const;
  DeploymentId findDeployment(std::string_view name) const;
  const NodeState& node(NodeId id) const { return nodes_[id]; }
  const PoolState& pool(PoolId id) const { return pools_[id]; }
  const NodeClass& nodeClass(ClassId id) const { return classes_[id]; }
  std::size_t nodeCount() const { return nodes_.size(); }
  std::size_t poolCount() const { return pools_.size(); }
  std::size_t classCount() const { return classes_.size(); }
  const WorkerRecord* worker(std::string_view name) const;
  std::size_t workerCount() const { return live_workers_; }
  std::vector<std::string> workerNames() const;  // sorted
  std::vector<std::string> workersOf(std::string_view deployment) const;  // sorted
  std::vector<std::string> workersOnNode(std::string_view node) const;    // sorted
  const WorkerRecord& workerRecord(WorkerId id) const { return workers_[id]; }
  std::vector<PoolId> poolsByName() const;

  // Resource summary of a node for a shape (usable GPUs per scope).
  ResourceSummary summarize(NodeId n, const ResolvedShape& s, GpuScope scope) const;
  bool usable(const GpuState& g, GpuScope scope) const {
    return g.healthy && g.reserved_for == scope.reserved_for;
  }
  // Resolve a request shape against a class; nullopt when the class cannot serve it.
  std::optional<ResolvedShape> resolve(ClassId c, const GpuShape& shape) const;
  // In-node allocation: the GPUs / slot a shape would take on a node, or nullopt.
  std::optional<Assignment> allocateOnNode(NodeId n, const ResolvedShape& s,
                                           GpuScope scope) const;
  // Number of `s` workers that still fit on a node (ignoring other requests).
  int fittingWorkers(NodeId n, const ResolvedShape& s, GpuScope scope) const;

 private:
  friend class Scheduler;

  PoolId poolForNode(const NodeSpec& n) const;
  ClassId classFor(PoolId pool, const NodeSpec& n);
  static std::uint64_t nextVersion();
  void touch() { version_ = nextVersion(); }
  std::uint64_t version_ = nextVersion();
  void attach(NodeId n);  // into class membership + index
  void detach(NodeId n);
  void reindex(NodeId n);
  void unindex(NodeId n);
  void flushClass(ClassId c);
  DeploymentId internDeployment(std::string_view name);
  void addReplica(NodeId n, DeploymentId d, int delta);
  std::expected<void, Conflict> checkAssignment(const Request& r, const Assignment& a,
                                                NodeId n, DeploymentId d) const;
  std::string describeHolder(const GpuState& g, const Assignment& a) const;

  std::vector<PoolState> pools_;
  std::unordered_map<std::string, PoolId> pool_ids_;
  std::vector<NodeClass> classes_;
  std::vector<NodeState> nodes_;
  std::unordered_map<std::string, NodeId> node_ids_;
  std::vector<NodeId> free_node_slots_;
  std::vector<WorkerRecord> workers_;
  std::unordered_map<std::string, WorkerId> worker_ids_;
  std::vector<WorkerId> free_worker_slots_;
  std::size_t live_workers_ = 0;
  std::vector<std::string> deployments_;
  std::unordered_map<std::string, DeploymentId> deployment_ids_;
  std::vector<ReservationState> reservations_;
  std::unordered_map<std::string, std::uint32_t> reservation_ids_;
  // Nodes holding GPUs reserved for a deployment, with the count.
  std::map<DeploymentId, std::map<NodeId, std::uint32_t>> reserved_nodes_;
  bool any_dirty_ = false;
};

struct RebuildResult {
  Inventory inventory;
  std::vector<Conflict> conflicts;
};

}  // namespace waterline::scheduling
