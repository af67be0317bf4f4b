#pragma once
// Scheduler framework in the shape of kube-scheduler's: Filter plugins, Score plugins
// (packing tier + tie-break tier), Reserve/Unreserve plugins, all configured by a Profile.
//
// Filters come in two levels. A class-level filter answers for a whole node class (all
// nodes of one pool with the same product, GPU count, memory and taints): pool rule,
// product, sharing mode, taints. A node-level filter is checked on each candidate node.
//
// Packing score plugins are functions of a node's ResourceSummary (used units, capacity,
// partial fit) and the pool; that is what lets the scheduler evaluate them once per
// index bucket instead of once per node. Tie-break plugins see the deployment's replica
// counts on the node and in the pool and only order nodes whose packing score is equal.
#include <cstdint>
#include <expected>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "waterline/scheduling/inventory.h"
#include "waterline/scheduling/model.h"

namespace waterline::scheduling {

// Scores are integers in [0, kMaxNodeScore]. kube-scheduler uses 100; a finer scale keeps
// nodes with different fill levels apart (8 GPUs x 8 MIG slices = 64 levels).
inline constexpr std::int64_t kMaxNodeScore = 1'000'000;

struct ClassInfo {
  const Inventory& inventory;
  ClassId id;
  const NodeClass& cls;
  const PoolSpec& pool;
};

class FilterPlugin {
 public:
  virtual ~FilterPlugin() = default;
  virtual std::string_view name() const = 0;
  virtual bool filterClass(const Request&, const ClassInfo&) const { return true; }
  // Why filterClass said no (only called when building an explanation).
  virtual std::string explainClass(const Request&, const ClassInfo&) const { return {}; }
  virtual bool filterNode(const Request&, const Inventory&, NodeId, const ResolvedShape&,
                          GpuScope) const {
    return true;
  }
  virtual std::string explainNode(const Request&, const Inventory&, NodeId) const { return {}; }
};
using FilterPluginPtr = std::shared_ptr<const FilterPlugin>;

struct PackingInput {
  const PoolSpec& pool;
  ResourceSummary node;  // before placing the request
  int requested_units;   // units the request takes
  ShapeKind kind;
  const std::string& product;      // the node class's GPU product
  std::int64_t pool_used = 0;      // the pool's units in use (PoolState::used_units)
  std::int64_t pool_capacity = 0;  // the pool's usable units
};

class PackingScorePlugin {
 public:
  virtual ~PackingScorePlugin() = default;
  virtual std::string_view name() const = 0;
  virtual std::int64_t score(const Request&, const PackingInput&) const = 0;
};
using PackingScorePluginPtr = std::shared_ptr<const PackingScorePlugin>;

struct SpreadInput {
  std::uint32_t node_replicas;  // the deployment's workers already on the node
  std::uint32_t pool_replicas;  // ... and in the node's pool
};

class TieBreakScorePlugin {
 public:
  virtual ~TieBreakScorePlugin() = default;
  virtual std::string_view name() const = 0;
  // Must not increase with node_replicas (the scheduler stops scanning a bucket at the
  // first node without replicas).
  virtual std::int64_t score(const Request&, const SpreadInput&) const = 0;
};
using TieBreakScorePluginPtr = std::shared_ptr<const TieBreakScorePlugin>;

struct Decision;
class ReservePlugin {
 public:
  virtual ~ReservePlugin() = default;
  virtual std::string_view name() const = 0;
  // Runs after the inventory has assumed the worker; an error rolls everything back.
  virtual std::expected<void, std::string> reserve(const Request&, const Decision&) = 0;
  virtual void unreserve(const Request&, const Decision&) {}
};
using ReservePluginPtr = std::shared_ptr<ReservePlugin>;

struct WeightedPacking {
  PackingScorePluginPtr plugin;
  std::int64_t weight = 1;
};
struct WeightedTieBreak {
  TieBreakScorePluginPtr plugin;
  std::int64_t weight = 1;
};

struct Profile {
  std::string name = "default";
  std::vector<FilterPluginPtr> filters;
  std::vector<WeightedPacking> packing;
  std::vector<WeightedTieBreak> tie_breaks;
  std::vector<ReservePluginPtr> reserve;
  // Feasible nodes examined per index bucket before taking the best seen (like
  // kube-scheduler's percentageOfNodesToScore, but deterministic: buckets are scanned in
  // node-name order). Only the tie-break tier depends on it; packing is exact.
  std::uint32_t max_feasible_per_bucket = 64;
  // A deployment's workers use GPUs reserved for it before unreserved ones.
  bool prefer_reserved = true;
  // Upper bound on candidate placements tried by Scheduler::planMoves.
  int max_move_attempts = 256;

  // Filters: PoolMembership, GpuProduct, SharingMode, TaintToleration, NodeHealth,
  // ResourceFit. Packing: NodeResourcesFit (MostAllocated for BinPack pools,
  // LeastAllocated for Spread pools, or `strategy` for every pool when set) weight 1,
  // KeepWholeGpusFree weight 1, PoolBalance weight 1, ProductPreference weight 3.
  // Tie-break: ReplicaSpread.
  static Profile defaults(std::optional<Strategy> strategy = std::nullopt);
};

}  // namespace waterline::scheduling
