#include "waterline/planners/pool_status.h"

#include <algorithm>
#include <cmath>

#include "waterline/api/keys.h"

namespace waterline::planners {

PoolStatusPlan planPoolStatus(const PoolStatusInput& in, SystemTime now) {
  const api::CapacityPool& pool = *in.pool;
  PoolStatusPlan plan;
  api::CapacityPoolStatus& st = plan.status;
  st.conditions = pool.status.conditions;
  st.observedGeneration = pool.metadata.generation;

  const int32_t shares = pool.spec.sharing.sharesPerGpu();
  for (const auto& n : in.nodes) {
    if (!pool.spec.selectsNode(n.labels)) continue;
    bool conflict = false;
    for (const auto* o : in.others)
      if (o->metadata.name != pool.metadata.name && o->spec.selectsNode(n.labels)) conflict = true;
    if (conflict) plan.conflictingNodes.push_back(n.name);
    plan.nodeNames.push_back(n.name);
    ++st.nodes;
    // Not ready, cordoned, in two pools or GPU-fault tainted: every GPU; else the GPUs
    // the node's waterline.dev/unhealthy-gpus annotation lists.
    // Whole GPUs only in an Exclusive pool (MIG-partitioned GPUs are not; NodeView::gpusFor).
    const int32_t gpus = n.gpusFor(pool.spec.sharing.mode);
    const int32_t unhealthy = conflict ? gpus : std::min(gpus, n.unhealthyGpuCount());
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
