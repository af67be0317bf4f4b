#include "workload.h"

#include <algorithm>
#include <bit>
#include <cmath>

namespace waterline::scheduling::bench {

std::vector<PoolShare> benchPools() {
  auto mk = [](std::string name, std::string region, std::string zone, SharingMode mode,
               Strategy strat, std::string product, int k, double fraction) {
    PoolSpec p;
    p.name = std::move(name);
    p.region = std::move(region);
    p.zone = std::move(zone);
    p.sharing = mode;
    p.strategy = strat;
    p.gpu_product = std::move(product);
    p.slices_per_gpu = k;
    if (mode == SharingMode::MIG) p.mig_profiles = {"1g.10gb", "2g.20gb", "3g.40gb", "4g.40gb", "7g.80gb"};
    return PoolShare{p, fraction};
  };
  return {
      mk("ex-euw", "eu-west", "EU", SharingMode::Exclusive, Strategy::BinPack, kH100, 1, 0.35),
      mk("ex-eun", "eu-north", "EU", SharingMode::Exclusive, Strategy::Spread, kH100, 1, 0.15),
      mk("ex-use", "us-east", "US", SharingMode::Exclusive, Strategy::BinPack, kA100, 1, 0.20),
      mk("mig-euw", "eu-west", "EU", SharingMode::MIG, Strategy::BinPack, kH100, 1, 0.20),
      mk("ts-use", "us-east", "US", SharingMode::TimeSlicing, Strategy::BinPack, kA100, 4, 0.05),
      mk("mps-eun", "eu-north", "EU", SharingMode::MPS, Strategy::BinPack, kH100, 8, 0.05),
  };
}

std::vector<NodeSpec> benchNodes(const std::vector<PoolShare>& pools, int nodes) {
  std::vector<NodeSpec> out;
  int made = 0;
  for (std::size_t i = 0; i < pools.size(); ++i) {
    const int n = i + 1 == pools.size()
                      ? nodes - made
                      : static_cast<int>(std::lround(pools[i].fraction * nodes));
    for (int k = 0; k < n; ++k) {
      NodeSpec s;
      char buf[64];
      std::snprintf(buf, sizeof buf, "%s-%05d", pools[i].spec.name.c_str(), k);
      s.name = buf;
      s.pool = pools[i].spec.name;
      s.gpu_product = pools[i].spec.gpu_product;
      s.gpu_count = 8;
      s.gpu_memory_mib = 81559;
      if (pools[i].spec.sharing == SharingMode::Exclusive && k % 10 == 9) {
        s.taints = {{"dedicated", "batch", TaintEffect::NoSchedule}};
      }
      out.push_back(std::move(s));
    }
    made += n;
  }
  return out;
}

std::vector<Deployment> benchDeployments(const std::vector<PoolShare>& pools, int count,
                                         std::mt19937_64& rng) {
  struct ShapeMix {
    GpuShape shape;
    double weight;
    double gpu_eq;
  };
  const std::vector<ShapeMix> mix = {
      {GpuShape::whole(1), 0.12, 1},       {GpuShape::whole(2), 0.06, 2},
      {GpuShape::whole(4), 0.04, 4},       {GpuShape::whole(8), 0.02, 8},
      {GpuShape::mig("1g.10gb"), 0.15, 1.0 / 7}, {GpuShape::mig("2g.20gb"), 0.10, 2.0 / 7},
      {GpuShape::mig("3g.40gb"), 0.12, 0.5},     {GpuShape::mig("4g.40gb"), 0.04, 4.0 / 7},
      {GpuShape::mig("7g.80gb"), 0.03, 1},       {GpuShape::share(4), 0.16, 0.25},
      {GpuShape::share(8), 0.16, 0.125},
  };
  std::vector<double> w;
  for (const auto& m : mix) w.push_back(m.weight);
  std::discrete_distribution<std::size_t> pick_shape(w.begin(), w.end());
  std::uniform_real_distribution<double> u(0, 1);
  std::vector<Deployment> out;
  for (int i = 0; i < count; ++i) {
    const ShapeMix& m = mix[pick_shape(rng)];
    // Pools able to serve the shape.
    std::vector<const PoolSpec*> able;
    for (const auto& p : pools) {
      const PoolSpec& s = p.spec;
      const bool ok = (m.shape.kind == ShapeKind::Whole && s.sharing == SharingMode::Exclusive) ||
                      (m.shape.kind == ShapeKind::Mig && s.sharing == SharingMode::MIG) ||
                      (m.shape.kind == ShapeKind::Share &&
                       (s.sharing == SharingMode::TimeSlicing || s.sharing == SharingMode::MPS) &&
                       s.slices_per_gpu % m.shape.shares_per_gpu == 0);
      if (ok) able.push_back(&s);
    }
    const PoolSpec& home = *able[static_cast<std::size_t>(u(rng) * static_cast<double>(able.size())) % able.size()];
    Deployment d;
    d.base.deployment = "ns/model-" + std::to_string(i);
    d.base.shape = m.shape;
    d.gpu_equivalents = m.gpu_eq;
    const double t = u(rng);
    if (t < 0.4) {
      d.base.type = DeploymentType::Standard;
      d.base.region = home.region;
    } else if (t < 0.75) {
      d.base.type = DeploymentType::DataZone;
      d.base.zone = home.zone;
    } else {
      d.base.type = DeploymentType::Global;
    }
    if (u(rng) < 0.1) d.base.tolerations = {{"dedicated", TolerationOperator::Exists, "", std::nullopt}};
    out.push_back(std::move(d));
  }
  return out;
}

}  // namespace waterline::scheduling::bench
