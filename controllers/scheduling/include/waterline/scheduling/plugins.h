#pragma once
// The built-in plugins and the strategy functions.
#include <optional>

#include "waterline/scheduling/framework.h"

namespace waterline::scheduling {

// Strategy functions, after kube-scheduler NodeResourcesFit (most_allocated.go,
// least_allocated.go): `requested` is what the node would have in use after placing the
// request, `capacity` what it has; both in the same units. Result in [0, kMaxNodeScore].
std::int64_t mostAllocatedScore(std::int64_t requested, std::int64_t capacity);
std::int64_t leastAllocatedScore(std::int64_t requested, std::int64_t capacity);
using StrategyFn = std::int64_t (*)(std::int64_t requested, std::int64_t capacity);
StrategyFn strategyFunction(Strategy s);  // BinPack: mostAllocated, Spread: leastAllocated

// Pool rule by deployment type: Standard needs pool.region == request.region, DataZone
// pool.zone == request.zone, Global takes any pool.
bool poolMatchesLocation(const Request& r, const PoolSpec& p);
std::string locationText(const Request& r);  // "in region eu-west-1", "in zone EU", ...

class PoolMembershipFilter final : public FilterPlugin {
 public:
  std::string_view name() const override { return "PoolMembership"; }
  bool filterClass(const Request&, const ClassInfo&) const override;
  std::string explainClass(const Request&, const ClassInfo&) const override;
};

class GpuProductFilter final : public FilterPlugin {
 public:
  std::string_view name() const override { return "GpuProduct"; }
  bool filterClass(const Request&, const ClassInfo&) const override;
  std::string explainClass(const Request&, const ClassInfo&) const override;
};

// Request shape vs pool sharing mode: whole GPUs on Exclusive pools; a MIG profile on MIG
// pools whose product offers it and whose allowed list has it; a 1/k share on
// TimeSlicing/MPS pools with k slices per GPU and enough memory per share.
class SharingModeFilter final : public FilterPlugin {
 public:
  std::string_view name() const override { return "SharingMode"; }
  bool filterClass(const Request&, const ClassInfo&) const override;
  std::string explainClass(const Request&, const ClassInfo&) const override;
};

// NoSchedule and NoExecute taints must be tolerated; PreferNoSchedule never filters.
class TaintTolerationFilter final : public FilterPlugin {
 public:
  std::string_view name() const override { return "TaintToleration"; }
  bool filterClass(const Request&, const ClassInfo&) const override;
  std::string explainClass(const Request&, const ClassInfo&) const override;
};

// Node ready and not cordoned. GPU health is part of ResourceFit (unhealthy GPUs are not
// usable).
class NodeHealthFilter final : public FilterPlugin {
 public:
  std::string_view name() const override { return "NodeHealth"; }
  bool filterNode(const Request&, const Inventory&, NodeId, const ResolvedShape&,
                  GpuScope) const override;
  std::string explainNode(const Request&, const Inventory&, NodeId) const override;
};

// The shape fits on the node's usable (healthy, in-scope) GPUs.
class ResourceFitFilter final : public FilterPlugin {
 public:
  std::string_view name() const override { return "ResourceFit"; }
  bool filterNode(const Request&, const Inventory&, NodeId, const ResolvedShape&,
                  GpuScope) const override;
  std::string explainNode(const Request&, const Inventory&, NodeId) const override;
};

class NodeResourcesFitScore final : public PackingScorePlugin {
 public:
  explicit NodeResourcesFitScore(std::optional<Strategy> override_strategy = std::nullopt)
      : override_(override_strategy) {}
  std::string_view name() const override { return "NodeResourcesFit"; }
  std::int64_t score(const Request&, const PackingInput&) const override;

 private:
  std::optional<Strategy> override_;
};

// Fractional requests (MIG, shares) on BinPack pools: 0 when the request would open an
// idle GPU; when it fits on an already-partitioned GPU of the node, half the scale plus
// up to half more by how full the fullest such GPU is (best fit between GPUs). In Spread
// pools the preference applies inside the node only (GPU choice), not between nodes.
class KeepWholeGpusFreeScore final : public PackingScorePlugin {
 public:
  explicit KeepWholeGpusFreeScore(std::optional<Strategy> override_strategy = std::nullopt)
      : override_(override_strategy) {}
  std::string_view name() const override { return "KeepWholeGpusFree"; }
  std::int64_t score(const Request&, const PackingInput&) const override;

 private:
  std::optional<Strategy> override_;
};

// Requests that may land in several pools (DataZone, Global) go to the pool with the
// most headroom, so pools that pinned (Standard) deployments depend on are not filled by
// flexible work first: LeastAllocated over the pool's used / usable units. Constant
// inside a pool, so it never changes which node of a pool wins.
class PoolBalanceScore final : public PackingScorePlugin {
 public:
  std::string_view name() const override { return "PoolBalance"; }
  std::int64_t score(const Request&, const PackingInput&) const override;
};

// Request::preferred_product: full score on nodes of that product, 0 elsewhere (and 0
// for every node when no preference is set). With weight 3 (the default) it outweighs the
// other packing scores together: preferred pools first, others as a fallback.
class ProductPreferenceScore final : public PackingScorePlugin {
 public:
  std::string_view name() const override { return "ProductPreference"; }
  std::int64_t score(const Request&, const PackingInput&) const override;
};

// Spreads one deployment's workers: fewer of its replicas on the node first, then fewer
// in the pool.
class ReplicaSpreadScore final : public TieBreakScorePlugin {
 public:
  std::string_view name() const override { return "ReplicaSpread"; }
  std::int64_t score(const Request&, const SpreadInput&) const override;
};

}  // namespace waterline::scheduling
