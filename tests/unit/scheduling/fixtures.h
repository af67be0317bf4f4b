#pragma once
// Small builders for scheduler tests.
#include <string>
#include <vector>

#include "waterline/scheduling/inventory.h"
#include "waterline/scheduling/model.h"

namespace waterline::scheduling::testing {

inline constexpr const char* kH100 = "NVIDIA-H100-80GB-HBM3";
inline constexpr const char* kA100 = "NVIDIA-A100-SXM4-80GB";

inline PoolSpec pool(std::string name, std::string region, std::string zone,
                     SharingMode mode = SharingMode::Exclusive,
                     Strategy strategy = Strategy::BinPack, std::string product = kH100) {
  PoolSpec p;
  p.name = std::move(name);
  p.region = std::move(region);
  p.zone = std::move(zone);
  p.gpu_product = std::move(product);
  p.sharing = mode;
  p.strategy = strategy;
  if (mode == SharingMode::TimeSlicing || mode == SharingMode::MPS) p.slices_per_gpu = 4;
  return p;
}

inline NodeSpec node(std::string name, std::string pool, int gpus = 8,
                     std::string product = kH100) {
  NodeSpec n;
  n.name = std::move(name);
  n.pool = std::move(pool);
  n.gpu_product = std::move(product);
  n.gpu_count = gpus;
  n.gpu_memory_mib = 81559;
  return n;
}

inline Request whole(std::string worker, std::string deployment, int n,
                     std::string region = "eu-west", std::string zone = "EU",
                     DeploymentType type = DeploymentType::Standard) {
  Request r;
  r.worker = std::move(worker);
  r.deployment = std::move(deployment);
  r.type = type;
  r.region = std::move(region);
  r.zone = std::move(zone);
  r.shape = GpuShape::whole(n);
  return r;
}

inline Request migReq(std::string worker, std::string deployment, std::string profile,
                      std::string region = "eu-west", std::string zone = "EU",
                      DeploymentType type = DeploymentType::Standard) {
  Request r = whole(std::move(worker), std::move(deployment), 1, std::move(region),
                    std::move(zone), type);
  r.shape = GpuShape::mig(std::move(profile));
  return r;
}

inline Request shareReq(std::string worker, std::string deployment, int k,
                        std::string region = "eu-west", std::string zone = "EU",
                        DeploymentType type = DeploymentType::Standard) {
  Request r = whole(std::move(worker), std::move(deployment), 1, std::move(region),
                    std::move(zone), type);
  r.shape = GpuShape::share(k);
  return r;
}

inline Assignment wholeAt(std::string node, std::vector<int> gpus) {
  Assignment a;
  a.node = std::move(node);
  a.kind = ShapeKind::Whole;
  a.gpus = std::move(gpus);
  return a;
}

inline Assignment migAt(std::string node, int gpu, std::string profile, int slot) {
  Assignment a;
  a.node = std::move(node);
  a.kind = ShapeKind::Mig;
  a.gpus = {gpu};
  a.mig_profile = std::move(profile);
  a.mig_slot = slot;
  return a;
}

inline Assignment shareAt(std::string node, int gpu, int slot, int k) {
  Assignment a;
  a.node = std::move(node);
  a.kind = ShapeKind::Share;
  a.gpus = {gpu};
  a.share_slots = {slot};
  a.shares_per_gpu = k;
  return a;
}

}  // namespace waterline::scheduling::testing
