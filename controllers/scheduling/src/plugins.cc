#include "waterline/scheduling/plugins.h"

#include <algorithm>

namespace waterline::scheduling {

std::int64_t mostAllocatedScore(std::int64_t requested, std::int64_t capacity) {
  if (capacity <= 0) return 0;
  if (requested > capacity) requested = capacity;
  if (requested < 0) requested = 0;
  return requested * kMaxNodeScore / capacity;
}

std::int64_t leastAllocatedScore(std::int64_t requested, std::int64_t capacity) {
  if (capacity <= 0) return 0;
  if (requested > capacity) return 0;
  if (requested < 0) requested = 0;
  return (capacity - requested) * kMaxNodeScore / capacity;
}

StrategyFn strategyFunction(Strategy s) {
  return s == Strategy::Spread ? &leastAllocatedScore : &mostAllocatedScore;
}

bool poolMatchesLocation(const Request& r, const PoolSpec& p) {
  switch (r.type) {
    case DeploymentType::Standard: return p.region == r.region;
    case DeploymentType::DataZone: return p.zone == r.zone;
    case DeploymentType::Global: return true;
  }
  return false;
}

std::string locationText(const Request& r) {
  switch (r.type) {
    case DeploymentType::Standard: return "in region " + r.region;
    case DeploymentType::DataZone: return "in zone " + r.zone;
    case DeploymentType::Global: return "in any region";
  }
  return {};
}

bool PoolMembershipFilter::filterClass(const Request& r, const ClassInfo& c) const {
  return poolMatchesLocation(r, c.pool);
}

std::string PoolMembershipFilter::explainClass(const Request& r, const ClassInfo& c) const {
  switch (r.type) {
    case DeploymentType::Standard:
      return "region " + c.pool.region + " is not " + r.region + " (Standard deployment)";
    case DeploymentType::DataZone:
      return "zone " + c.pool.zone + " is not " + r.zone + " (DataZone deployment)";
    case DeploymentType::Global: return {};
  }
  return {};
}

bool GpuProductFilter::filterClass(const Request& r, const ClassInfo& c) const {
  return r.product.empty() || c.cls.product == r.product;
}

std::string GpuProductFilter::explainClass(const Request& r, const ClassInfo& c) const {
  return "GPU product " + (c.cls.product.empty() ? std::string("unknown") : c.cls.product) +
         ", not " + r.product;
}

bool SharingModeFilter::filterClass(const Request& r, const ClassInfo& c) const {
  return c.inventory.resolve(c.id, r.shape).has_value();
}

std::string SharingModeFilter::explainClass(const Request& r, const ClassInfo& c) const {
  const NodeClass& cl = c.cls;
  const std::string mode(toString(cl.mode));
  const std::string mem = std::to_string(r.shape.memory_mib) + " MiB";
  switch (r.shape.kind) {
    case ShapeKind::Whole:
      if (cl.mode != SharingMode::Exclusive) return "sharing mode " + mode + " does not hand out whole GPUs";
      if (r.shape.count > cl.gpu_count) {
        return "nodes have " + std::to_string(cl.gpu_count) + " GPUs, request needs " +
               std::to_string(r.shape.count) + " on one node";
      }
      return "GPUs have " + std::to_string(cl.gpu_memory_mib) + " MiB, request needs " + mem;
    case ShapeKind::Mig: {
      if (cl.mode != SharingMode::MIG) return "sharing mode " + mode + " does not offer MIG instances";
      if (!cl.mig) return "no MIG geometry known for " + cl.product;
      const int p = cl.mig->profileIndex(r.shape.mig_profile);
      if (p < 0) return "MIG profile " + r.shape.mig_profile + " does not exist on " + cl.product;
      if (r.shape.memory_mib > 0 && cl.mig->memoryMib(p, cl.gpu_memory_mib) < r.shape.memory_mib) {
        return "MIG " + r.shape.mig_profile + " has " +
               std::to_string(cl.mig->memoryMib(p, cl.gpu_memory_mib)) + " MiB, request needs " + mem;
      }
      return "MIG profile " + r.shape.mig_profile + " is not allowed in the pool";
    }
    case ShapeKind::Share:
      if (cl.mode != SharingMode::TimeSlicing && cl.mode != SharingMode::MPS) {
        return "sharing mode " + mode + " does not offer GPU shares";
      }
      if (r.shape.shares_per_gpu < 1 || cl.units_per_gpu % r.shape.shares_per_gpu != 0) {
        return "pool slices GPUs in " + std::to_string(cl.units_per_gpu) + ", not a multiple of " +
               std::to_string(r.shape.shares_per_gpu);
      }
      return "a 1/" + std::to_string(r.shape.shares_per_gpu) + " share has " +
             std::to_string(cl.gpu_memory_mib / r.shape.shares_per_gpu) + " MiB, request needs " + mem;
  }
  return {};
}

bool TaintTolerationFilter::filterClass(const Request& r, const ClassInfo& c) const {
  return toleratesAll(c.cls.taints, r.tolerations);
}

std::string TaintTolerationFilter::explainClass(const Request& r, const ClassInfo& c) const {
  for (const Taint& t : c.cls.taints) {
    if (t.effect == TaintEffect::PreferNoSchedule) continue;
    if (!toleratesAll({t}, r.tolerations)) {
      return "taint " + t.key + (t.value.empty() ? "" : "=" + t.value) + ":" +
             std::string(toString(t.effect)) + " not tolerated";
    }
  }
  return {};
}

bool NodeHealthFilter::filterNode(const Request&, const Inventory& inv, NodeId n,
                                  const ResolvedShape&, GpuScope) const {
  return inv.node(n).schedulable();
}

std::string NodeHealthFilter::explainNode(const Request&, const Inventory& inv, NodeId n) const {
  const NodeState& ns = inv.node(n);
  if (!ns.spec.ready) return "node not ready";
  if (ns.spec.unschedulable) return "node cordoned";
  return {};
}

bool ResourceFitFilter::filterNode(const Request&, const Inventory& inv, NodeId n,
                                   const ResolvedShape& s, GpuScope scope) const {
  return inv.fittingWorkers(n, s, scope) > 0;
}

std::string ResourceFitFilter::explainNode(const Request& r, const Inventory&, NodeId) const {
  return "not enough free capacity for " + r.shape.describe();
}

std::int64_t NodeResourcesFitScore::score(const Request&, const PackingInput& in) const {
  const Strategy s = override_.value_or(in.pool.strategy);
  return strategyFunction(s)(in.node.used + in.requested_units, in.node.capacity);
}

std::int64_t KeepWholeGpusFreeScore::score(const Request&, const PackingInput& in) const {
  if (in.kind == ShapeKind::Whole) return 0;
  if (override_.value_or(in.pool.strategy) != Strategy::BinPack) return 0;
  // Half the scale for fitting on a partitioned GPU at all, the other half by how full
  // the fullest such GPU is (best fit between GPUs).
  if (!in.node.partial_fit) return 0;
  return kMaxNodeScore / 2 + kMaxNodeScore / 2 * in.node.best_fill / 8;
}

std::int64_t PoolBalanceScore::score(const Request&, const PackingInput& in) const {
  return leastAllocatedScore(in.pool_used + in.requested_units, in.pool_capacity);
}

std::int64_t ProductPreferenceScore::score(const Request& r, const PackingInput& in) const {
  return !r.preferred_product.empty() && in.product == r.preferred_product ? kMaxNodeScore : 0;
}

std::int64_t ReplicaSpreadScore::score(const Request&, const SpreadInput& in) const {
  // Node replicas dominate; pool replicas order nodes with equal node counts.
  const std::int64_t node = std::min<std::int64_t>(in.node_replicas, 999);
  const std::int64_t pool = std::min<std::int64_t>(in.pool_replicas, 999);
  return kMaxNodeScore - node * 1000 - pool;
}

Profile Profile::defaults(std::optional<Strategy> strategy) {
  Profile p;
  p.filters = {
      std::make_shared<PoolMembershipFilter>(), std::make_shared<GpuProductFilter>(),
      std::make_shared<SharingModeFilter>(),    std::make_shared<TaintTolerationFilter>(),
      std::make_shared<NodeHealthFilter>(),     std::make_shared<ResourceFitFilter>(),
  };
  p.packing = {
      {std::make_shared<NodeResourcesFitScore>(strategy), 1},
      {std::make_shared<KeepWholeGpusFreeScore>(strategy), 1},
      {std::make_shared<PoolBalanceScore>(), 1},
      {std::make_shared<ProductPreferenceScore>(), 3},
  };
  p.tie_breaks = {{std::make_shared<ReplicaSpreadScore>(), 1}};
  return p;
}

}  // namespace waterline::scheduling
