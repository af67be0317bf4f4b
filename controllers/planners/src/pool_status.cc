#include "waterline/planners/pool_status.h"

#include <algorithm>
#include <cmath>

#include "waterline/api/keys.h"
#include "waterline/scheduling/mig.h"

namespace waterline::planners {

std::vector<std::string> unsupportedMigProfiles(const api::CapacityPool& pool) {
  std::vector<std::string> out;
  if (pool.spec.sharing.mode != api::SharingMode::MIG) return out;
  const auto* geo = scheduling::migGeometryForProduct(pool.spec.gpuProduct);
  for (const auto& p : pool.spec.sharing.migProfiles)
    if (!geo || geo->profileIndex(p) < 0) out.push_back(p);
  return out;
}

PoolStatusPlan planPoolStatus(const PoolStatusInput& in, SystemTime now) {
  const api::CapacityPool& pool = *in.pool;
  PoolStatusPlan plan;
  api::CapacityPoolStatus& st = plan.status;
  st.conditions = pool.status.conditions;
  st.observedGeneration = pool.metadata.generation;

  const int32_t shares = pool.spec.sharing.sharesPerGpu();
  std::string firstMismatch;
  plan.unsupportedMigProfiles = unsupportedMigProfiles(pool);
  for (const auto& n : in.nodes) {
    if (!pool.spec.selectsNode(n.labels)) continue;
    bool conflict = false;
    for (const auto* o : in.others)
      if (o->metadata.name != pool.metadata.name && o->spec.selectsNode(n.labels)) conflict = true;
    if (conflict) plan.conflictingNodes.push_back(n.name);
    std::string mismatch = topologyMismatch(pool, n);
    const bool mismatched = !mismatch.empty();
    if (mismatched) {
      if (plan.mismatchedNodes.empty()) firstMismatch = std::move(mismatch);
      plan.mismatchedNodes.push_back(n.name);
    }
    const bool unused = conflict || mismatched;
    plan.nodeNames.push_back(n.name);
    ++st.nodes;
    // Not ready, cordoned, in two pools, contradicting the pool's region or GPU-fault
    // tainted: every GPU; else the GPUs the node's waterline.dev/unhealthy-gpus annotation
    // lists. Whole GPUs only in an Exclusive pool (MIG-partitioned GPUs are not; NodeView::gpusFor).
    const int32_t gpus = n.gpusFor(pool.spec.sharing.mode);
    const int32_t unhealthy = unused ? gpus : std::min(gpus, n.unhealthyGpuCount());
    if (n.ready) ++st.readyNodes;
    st.gpus.total += gpus;
    st.gpus.allocatable += gpus - unhealthy;
    st.gpus.unhealthy += unhealthy;
  }
  std::sort(plan.nodeNames.begin(), plan.nodeNames.end());
  st.nodeNames = plan.nodeNames;
  if (st.nodeNames.size() > api::CapacityPoolStatus::kMaxStatusNodeNames)
    st.nodeNames.resize(api::CapacityPoolStatus::kMaxStatusNodeNames);
  if (in.allocated) st.gpus.allocated = std::min(in.allocated->gpus, st.gpus.allocatable);
  st.gpus.free = std::max(0, st.gpus.allocatable - st.gpus.allocated);
  if (pool.spec.sharing.mode != api::SharingMode::Exclusive) {
    api::CapacityCounts s;
    s.total = st.gpus.total * shares;
    s.allocatable = st.gpus.allocatable * shares;
    s.unhealthy = st.gpus.unhealthy * shares;
    if (in.allocated) s.allocated = std::min(in.allocated->slices, s.allocatable);
    s.free = std::max(0, s.allocatable - s.allocated);
    st.slices = s;
  }
  st.fragmentation = in.fragmentation.value_or(0.0);
  // Rounded so that tiny changes do not rewrite the status.
  st.fragmentation = std::round(st.fragmentation * 1000.0) / 1000.0;
  st.utilization = st.gpus.allocatable > 0 ? double(st.gpus.allocated) / st.gpus.allocatable : 0.0;

  const int64_t gen = pool.metadata.generation;
  using api::ConditionStatus;
  api::Condition ready{std::string(api::conditions::kReady), ConditionStatus::True,
                       std::string(api::reasons::kNodesReady), "", {}, gen};
  if (st.nodes == 0) {
    ready.status = ConditionStatus::False;
    ready.reason = std::string(api::reasons::kNoNodes);
    ready.message = "no node matches the pool's nodeSelector and gpuProduct " + pool.spec.gpuProduct;
  } else if (!plan.mismatchedNodes.empty() && plan.mismatchedNodes.size() == size_t(st.nodes)) {
    ready.status = ConditionStatus::False;
    ready.reason = std::string(api::reasons::kTopologyMismatch);
    ready.message = "every node's topology labels contradict the pool's region or data zone: " + firstMismatch;
  } else if (!plan.unsupportedMigProfiles.empty() &&
             plan.unsupportedMigProfiles.size() == pool.spec.sharing.migProfiles.size()) {
    ready.status = ConditionStatus::False;
    ready.reason = std::string(api::reasons::kUnsupportedMigProfile);
    ready.message = "GPU product " + pool.spec.gpuProduct + " has none of the MIG profiles the pool lists";
  } else if (st.gpus.allocatable == 0) {
    ready.status = ConditionStatus::False;
    ready.reason = std::string(api::reasons::kNodesNotReady);
    ready.message = "none of the pool's " + std::to_string(st.nodes) + " nodes is ready and schedulable";
  } else {
    ready.message = std::to_string(st.readyNodes) + "/" + std::to_string(st.nodes) +
                    " nodes ready, " + std::to_string(st.gpus.allocatable) + " GPUs allocatable";
  }
  api::Condition degraded{std::string(api::conditions::kDegraded), ConditionStatus::False,
                          std::string(api::reasons::kAllHealthy), "", {}, gen};
  if (!plan.conflictingNodes.empty()) {
    degraded.status = ConditionStatus::True;
    degraded.reason = "NodeInMultiplePools";
    std::string names;
    for (size_t i = 0; i < plan.conflictingNodes.size() && i < 5; ++i)
      names += (i ? ", " : "") + plan.conflictingNodes[i];
    degraded.message = std::to_string(plan.conflictingNodes.size()) +
                       " node(s) are selected by another pool too and are not used: " + names;
  } else if (!plan.mismatchedNodes.empty()) {
    degraded.status = ConditionStatus::True;
    degraded.reason = std::string(api::reasons::kTopologyMismatch);
    degraded.message = std::to_string(plan.mismatchedNodes.size()) +
                       " node(s) have topology labels that contradict the pool and are not used; " + firstMismatch;
  } else if (!plan.unsupportedMigProfiles.empty()) {
    degraded.status = ConditionStatus::True;
    degraded.reason = std::string(api::reasons::kUnsupportedMigProfile);
    std::string names;
    for (size_t i = 0; i < plan.unsupportedMigProfiles.size(); ++i)
      names += (i ? ", " : "") + plan.unsupportedMigProfiles[i];
    const auto* geo = scheduling::migGeometryForProduct(pool.spec.gpuProduct);
    degraded.message = geo ? "GPU product " + pool.spec.gpuProduct + " (MIG geometry " + geo->name +
                                 ") has no MIG profile " + names
                           : "GPU product " + pool.spec.gpuProduct + " has no MIG support known to Waterline; profiles " +
                                 names + " cannot be placed";
  } else if (st.gpus.unhealthy > 0) {
    degraded.status = ConditionStatus::True;
    degraded.reason = std::string(api::reasons::kGpusUnhealthy);
    degraded.message = std::to_string(st.gpus.unhealthy) + " GPUs are unhealthy (node not ready, cordoned or GPU fault)";
  }
  api::setCondition(st.conditions, ready, now);
  api::setCondition(st.conditions, degraded, now);
  return plan;
}

}  // namespace waterline::planners
