#pragma once
// Synthetic clusters and workloads for the scheduler benchmark (the first-fit
// baseline is in first_fit.h). Everything is driven by a seeded RNG, so runs are repeatable.
#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "waterline/scheduling/framework.h"
#include "waterline/scheduling/inventory.h"
#include "first_fit.h"

namespace waterline::scheduling::bench {

inline constexpr const char* kH100 = "NVIDIA-H100-80GB-HBM3";
inline constexpr const char* kA100 = "NVIDIA-A100-SXM4-80GB";

struct PoolShare {
  PoolSpec spec;
  double fraction;  // of the cluster's nodes
};

// Six pools over three regions / two zones: Exclusive H100 (BinPack and Spread),
// Exclusive A100, MIG H100, TimeSlicing A100 (k=4), MPS H100 (k=8). Every 10th node of an
// Exclusive pool carries a NoSchedule taint.
std::vector<PoolShare> benchPools();
std::vector<NodeSpec> benchNodes(const std::vector<PoolShare>& pools, int nodes);

struct Deployment {
  Request base;
  double gpu_equivalents = 0;  // size of one worker in GPU-equivalents
};

// `count` deployments; shapes drawn from a mix of whole 1/2/4/8 GPUs, MIG 1g/2g/3g/4g/7g
// and 1/4, 1/8 shares; each bound to a location (Standard / DataZone / Global) where a
// pool can serve it.
std::vector<Deployment> benchDeployments(const std::vector<PoolShare>& pools, int count,
                                         std::mt19937_64& rng);

}  // namespace waterline::scheduling::bench
