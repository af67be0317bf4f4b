#pragma once
// CapacityPool (cluster-scoped): a pool of homogeneous GPU nodes in one region.
// Schema: crds/waterline.dev_capacitypools.yaml; reference: docs/api.md.
#include <array>
#include <cstdint>
#include <expected>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "waterline/api/conditions.h"
#include "waterline/api/meta.h"
#include "waterline/api/selector.h"

namespace waterline::api {

enum class SharingMode { Exclusive, MIG, TimeSlicing, MPS };
std::string_view toString(SharingMode m);
std::optional<SharingMode> parseSharingMode(std::string_view s);

enum class SchedulingStrategy { BinPack, Spread };
std::string_view toString(SchedulingStrategy s);
std::optional<SchedulingStrategy> parseSchedulingStrategy(std::string_view s);

inline constexpr double kDefaultReservableFraction = 0.8;
inline constexpr double kDefaultMaxUtilization = 0.9;

struct SharingSpec {
  SharingMode mode = SharingMode::Exclusive;
  std::vector<std::string> migProfiles;  // MIG only; empty = absent
  std::optional<int32_t> slicesPerGpu;   // TimeSlicing / MPS only (2..64)

  // Shares one GPU is offered as: slicesPerGpu for TimeSlicing/MPS, else 1.
  int32_t sharesPerGpu() const;
  bool operator==(const SharingSpec&) const = default;
};

struct PoolRoutingSpec {
  double maxUtilization = kDefaultMaxUtilization;  // (0, 1]
  bool operator==(const PoolRoutingSpec&) const = default;
};

struct CapacityPoolSpec {
  std::string region;
  std::string dataZone;
  LabelSelector nodeSelector;
  std::string gpuProduct;
  SharingSpec sharing;
  SchedulingStrategy schedulingStrategy = SchedulingStrategy::BinPack;
  double reservableFraction = kDefaultReservableFraction;  // [0, 1]
  PoolRoutingSpec routing;
  // How workers get their GPUs (docs/scheduling.md, "Allocation modes"): "DRA" (a
  // ResourceClaim with the exact devices, from the GPU DRA driver's ResourceSlices),
  // "DevicePlugin" (extended resources such as nvidia.com/gpu), or "" (automatic: DRA
  // when the cluster serves resource.k8s.io/v1 and the pool's nodes publish slices of the
  // driver, else DevicePlugin).
  std::string allocation;

  // True when a node with these labels belongs to the pool: nodeSelector matches and
  // nvidia.com/gpu.product equals gpuProduct.
  bool selectsNode(const Labels& nodeLabels) const;
  bool operator==(const CapacityPoolSpec&) const = default;
};

// Counts of GPUs (or slices) in each state.
struct CapacityCounts {
  int32_t total = 0;        // on matching nodes
  int32_t allocatable = 0;  // total minus unhealthy / unschedulable
  int32_t allocated = 0;    // holding at least one worker (GPUs) / held by a worker (slices)
  int32_t unhealthy = 0;
  int32_t reserved = 0;     // held for PTUReservations
  int32_t free = 0;         // allocatable and not allocated
  bool operator==(const CapacityCounts&) const = default;
};

struct CapacityPoolStatus {
  int64_t observedGeneration = 0;
  int32_t nodes = 0;
  int32_t readyNodes = 0;
  std::vector<std::string> nodeNames;  // sorted, at most kMaxStatusNodeNames
  CapacityCounts gpus;
  std::optional<CapacityCounts> slices;  // absent for Exclusive pools
  double fragmentation = 0;
  double utilization = 0;
  std::vector<Condition> conditions;

  static constexpr size_t kMaxStatusNodeNames = 1000;
  bool operator==(const CapacityPoolStatus&) const = default;
};

struct CapacityPool {
  static constexpr std::string_view kKind = "CapacityPool";
  static constexpr std::string_view kPlural = "capacitypools";

  ObjectMeta metadata;
  CapacityPoolSpec spec;
  CapacityPoolStatus status;

  // Decodes an object as the apiserver returns it, applying the CRD's defaults to absent
  // fields. Type errors, unknown enum values and missing required fields fail with a
  // message naming the field ("spec.sharing.mode: unsupported value ...").
  static std::expected<CapacityPool, std::string> fromJson(const nlohmann::json& j);
  // apiVersion, kind, metadata, spec and status (status omitted when `withStatus` is false).
  nlohmann::json toJson(bool withStatus = true) const;
  bool operator==(const CapacityPool&) const = default;
};

nlohmann::json toJson(const CapacityPoolSpec& spec);
nlohmann::json toJson(const CapacityPoolStatus& status);

// The CRD's value and cross-field rules, checked client-side (patterns, ranges, the
// sharing rules). Each error is "<field path>: <message>"; empty when valid.
std::vector<std::string> validate(const CapacityPool& pool);

}  // namespace waterline::api
