#pragma once
// Plain value types of the scheduler's inventory model. This library does not depend on
// the CRD types in operator/api: a planner converts CapacityPool / ModelDeployment /
// Node objects into these structs.
#include <compare>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace waterline::scheduling {

enum class SharingMode : std::uint8_t { Exclusive, MIG, TimeSlicing, MPS };
enum class Strategy : std::uint8_t { BinPack, Spread };
enum class DeploymentType : std::uint8_t { Standard, DataZone, Global };
enum class TaintEffect : std::uint8_t { NoSchedule, PreferNoSchedule, NoExecute };
enum class TolerationOperator : std::uint8_t { Equal, Exists };

std::string_view toString(SharingMode m);
std::string_view toString(Strategy s);
std::string_view toString(DeploymentType t);
std::string_view toString(TaintEffect e);
// Accept the CRD spellings ("Exclusive", "MIG", "TimeSlicing", "MPS"; "BinPack", "Spread"
// and the kube-scheduler aliases "MostAllocated" / "LeastAllocated"; "Standard",
// "DataZone", "Global"; "NoSchedule", ...).
std::optional<SharingMode> parseSharingMode(std::string_view s);
std::optional<Strategy> parseStrategy(std::string_view s);
std::optional<DeploymentType> parseDeploymentType(std::string_view s);
std::optional<TaintEffect> parseTaintEffect(std::string_view s);

struct Taint {
  std::string key;
  std::string value;
  TaintEffect effect = TaintEffect::NoSchedule;
  auto operator<=>(const Taint&) const = default;
};

struct Toleration {
  std::string key;  // empty with Exists: tolerates every taint
  TolerationOperator op = TolerationOperator::Equal;
  std::string value;
  std::optional<TaintEffect> effect;  // empty: all effects
  bool tolerates(const Taint& t) const;
  auto operator<=>(const Toleration&) const = default;
};

// True when every NoSchedule / NoExecute taint is tolerated (PreferNoSchedule is a soft
// preference and never filters).
bool toleratesAll(const std::vector<Taint>& taints, const std::vector<Toleration>& tolerations);

// GFD label keys read by nodeFromLabels.
inline constexpr std::string_view kLabelGpuProduct = "nvidia.com/gpu.product";
inline constexpr std::string_view kLabelGpuCount = "nvidia.com/gpu.count";
inline constexpr std::string_view kLabelGpuMemory = "nvidia.com/gpu.memory";  // MiB

struct PoolSpec {
  std::string name;
  std::string region;
  std::string zone;         // data zone (EU, US, ...)
  std::string gpu_product;  // GFD nvidia.com/gpu.product; empty: any
  std::map<std::string, std::string> node_selector;
  SharingMode sharing = SharingMode::Exclusive;
  std::vector<std::string> mig_profiles;  // allowed MIG profiles; empty: all of the product
  int slices_per_gpu = 1;                 // TimeSlicing / MPS: slices (device-plugin replicas) per GPU
  Strategy strategy = Strategy::BinPack;
  double reservable_fraction = 0.0;  // share of the pool's GPUs reservations may hold
};

struct NodeSpec {
  std::string name;
  // Pool membership. Empty: the first pool (by name) whose node_selector matches the
  // labels and whose gpu_product matches the node's product.
  std::string pool;
  std::map<std::string, std::string> labels;
  bool ready = true;
  bool unschedulable = false;  // cordoned
  std::vector<Taint> taints;
  std::string gpu_product;          // empty: labels[nvidia.com/gpu.product]
  int gpu_count = -1;               // < 0: labels[nvidia.com/gpu.count] (0 without it); 0: no GPUs
  std::int64_t gpu_memory_mib = 0;  // 0: labels[nvidia.com/gpu.memory]
  std::vector<int> unhealthy_gpus;  // indices reported unhealthy (DCGM / device plugin)
};

// Fills gpu_product / gpu_count / gpu_memory_mib from GFD labels where they are unset.
NodeSpec withGfdDefaults(NodeSpec n);

enum class ShapeKind : std::uint8_t { Whole, Mig, Share };
std::string_view toString(ShapeKind k);

// The GPU request of one worker.
struct GpuShape {
  ShapeKind kind = ShapeKind::Whole;
  int count = 1;                // Whole: GPUs on one node (1..8)
  std::string mig_profile;      // Mig: e.g. "3g.40gb"
  int shares_per_gpu = 0;       // Share: a 1/k share of a time-sliced / MPS GPU; takes
                                // slicesPerGpu / k slices of one GPU (k must divide it)
  // Minimum memory of each GPU, MIG instance or share the worker uses (0: any). A share
  // has the GPU's memory / k, a MIG instance its memory slices' part of the GPU's.
  std::int64_t memory_mib = 0;

  static GpuShape whole(int n);
  static GpuShape mig(std::string profile);
  static GpuShape share(int k, std::int64_t memory_mib = 0);
  GpuShape withMemory(std::int64_t mib) const {
    GpuShape s = *this;
    s.memory_mib = mib;
    return s;
  }
  std::string describe() const;  // "2 GPUs", "MIG 3g.40gb", "1/4 GPU share"
  bool operator==(const GpuShape&) const = default;
};

// One worker (pod) to place.
struct Request {
  std::string worker;      // unique worker id, e.g. "ns/deploy-abc12"
  std::string deployment;  // owner key, e.g. "ns/deploy"
  DeploymentType type = DeploymentType::Standard;
  std::string region;   // Standard: pools of this region only
  std::string zone;     // DataZone: pools of this data zone only
  std::string product;            // hard requirement: only nodes of this GPU product
  std::string preferred_product;  // soft: pools of this product score higher
  GpuShape shape;
  std::vector<Toleration> tolerations;
};

// The bind decision: where a worker's GPU capacity sits.
struct Assignment {
  std::string node;
  ShapeKind kind = ShapeKind::Whole;
  std::vector<int> gpus;     // Whole: ascending indices; Mig / Share: exactly one index
  std::string mig_profile;   // Mig
  int mig_slot = -1;         // Mig: placement start (memory-slice index)
  std::vector<int> share_slots;  // Share: ascending slices 0..slicesPerGpu-1 of the GPU
  int shares_per_gpu = 0;        // Share: the pool's slicesPerGpu
  std::int64_t memory_mib = 0;   // Share: the share's memory (GPU memory / k; 0: unknown)
  bool operator==(const Assignment&) const = default;
};

// Whole GPUs held for one deployment (a PTU reservation). Nobody else may use them.
struct GpuRef {
  std::string node;
  int index = 0;
  auto operator<=>(const GpuRef&) const = default;
};
struct ReservationRecord {
  std::string name;
  std::string deployment;
  std::vector<GpuRef> gpus;
  bool operator==(const ReservationRecord&) const = default;
};

}  // namespace waterline::scheduling
