#pragma once
// resource.k8s.io/v1 (DRA, GA since Kubernetes 1.34): the parts of ResourceSlice and
// ResourceClaim that Waterline reads, decoded from the API server's JSON.
//
// Field names follow k8s.io/api/resource/v1 types.go: a slice's spec.driver,
// spec.pool{name,generation,resourceSliceCount}, spec.nodeName / spec.allNodes,
// spec.devices[]{name, attributes, capacity, consumesCounters, taints} and
// spec.sharedCounters[]{name, counters}; a claim's spec.devices.requests[]{name,
// exactly{deviceClassName, allocationMode, count, selectors}} and
// status.allocation{devices.results[]{request, driver, pool, device}, nodeSelector},
// status.reservedFor[].
//
// Attribute names: the API lets a driver publish attributes without a domain
// ("productName"), which then belong to the driver's domain ("gpu.nvidia.com/productName").
// Decoding strips the driver's own domain, so both spellings are looked up as
// "productName"; attributes of other domains keep their qualified name.
//
// Quantities (capacity and counter values) are held as int64 whole units, rounded up
// like resource.Quantity.Value(): bytes for "memory", a count for the rest.
#include <compare>
#include <cstdint>
#include <expected>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace waterline::dra {

// The NVIDIA GPU DRA driver (NVIDIA/k8s-dra-driver-gpu), also its DeviceClass name.
inline constexpr std::string_view kNvidiaGpuDriver = "gpu.nvidia.com";

// Attribute names and values the NVIDIA driver publishes (cmd/gpu-kubelet-plugin,
// deviceinfo.go and partitions.go). "index" and "minor" (int) are not in the release
// read for this module (the device name "gpu-<minor>" carries the minor); they are kept
// for drivers that publish them. Partitionable GPUs publish one counter set
// "gpu-<minor>-counter-set" with "memory", "multiprocessors", ... and
// "memory-slice-0".."memory-slice-7"; the full GPU consumes all of it, a MIG device its
// share and its memory slices.
namespace nvidia {
inline constexpr std::string_view kType = "type";                  // string: "gpu" | "mig"
inline constexpr std::string_view kTypeGpu = "gpu";
inline constexpr std::string_view kTypeMig = "mig";
inline constexpr std::string_view kUuid = "uuid";                  // string
inline constexpr std::string_view kProductName = "productName";    // string
inline constexpr std::string_view kArchitecture = "architecture";  // string
inline constexpr std::string_view kCudaComputeCapability = "cudaComputeCapability";  // version
inline constexpr std::string_view kIndex = "index";                // int (where published)
inline constexpr std::string_view kMinor = "minor";                // int (where published)
inline constexpr std::string_view kProfile = "profile";            // string, MIG: "1g.10gb"
inline constexpr std::string_view kParentUuid = "parentUUID";      // string, MIG
inline constexpr std::string_view kMemory = "memory";              // capacity, bytes
}  // namespace nvidia

// Parses a resource.Quantity ("80Gi", "1", "500m", "1e3", "2k") into whole units,
// rounded up, with the project's one parser (api::Quantity). Negative values and values
// above its range (about 9.2e15 units: 8 PiB of bytes) are errors.
std::expected<int64_t, std::string> parseQuantity(std::string_view s);

struct Attribute {
  enum class Kind { String, Int, Bool, Version };
  Kind kind = Kind::String;
  std::string text;   // String and Version
  int64_t number = 0; // Int
  bool flag = false;  // Bool
  bool operator==(const Attribute&) const = default;
};

// spec.devices[].taints[] (DeviceTaint). effect: NoSchedule, NoExecute or None.
struct DeviceTaint {
  std::string key, value, effect;
  bool operator==(const DeviceTaint&) const = default;
};

// spec.devices[].consumesCounters[] (DeviceCounterConsumption).
struct CounterConsumption {
  std::string counter_set;
  std::map<std::string, int64_t> counters;
  bool operator==(const CounterConsumption&) const = default;
};

struct Device {
  std::string name;
  std::map<std::string, Attribute> attributes;  // driver-domain names unqualified
  std::map<std::string, int64_t> capacity;      // capacity[<name>].value
  std::vector<CounterConsumption> consumes_counters;
  std::vector<DeviceTaint> taints;

  const std::string* stringAttr(std::string_view name) const;  // String or Version
  std::optional<int64_t> intAttr(std::string_view name) const;
  std::optional<int64_t> capacityOf(std::string_view name) const;
  // A NoSchedule or NoExecute taint: the device takes no new allocation.
  bool tainted() const;
  bool operator==(const Device&) const = default;
};

// spec.sharedCounters[] (CounterSet).
struct CounterSet {
  std::string name;
  std::map<std::string, int64_t> counters;
  bool operator==(const CounterSet&) const = default;
};

struct ResourceSlice {
  std::string name;  // metadata.name
  std::string driver;
  std::string pool;
  int64_t generation = 0;
  int64_t resource_slice_count = 1;
  std::string node_name;   // spec.nodeName; empty when allNodes or a nodeSelector
  bool all_nodes = false;  // spec.allNodes
  bool node_selector = false;  // spec.nodeSelector set (not supported by the inventory)
  std::vector<Device> devices;
  std::vector<CounterSet> shared_counters;
};

std::expected<ResourceSlice, std::string> decodeResourceSlice(const nlohmann::json& j);

// A device in the cluster: (driver, pool, device), as allocation results name it.
struct DeviceId {
  std::string driver, pool, device;
  auto operator<=>(const DeviceId&) const = default;
  bool operator==(const DeviceId&) const = default;
  std::string str() const { return driver + "/" + pool + "/" + device; }
};

// spec.devices.requests[] with `exactly` (firstAvailable is kept as unsupported).
struct DeviceRequest {
  std::string name;
  std::string device_class_name;
  std::string allocation_mode = "ExactCount";  // ExactCount | All
  int64_t count = 1;
  std::vector<std::string> selectors;  // CEL expressions, kept as text, not evaluated
  bool first_available = false;        // spec uses firstAvailable instead of exactly
};

// status.allocation.devices.results[].
struct DeviceResult {
  std::string request, driver, pool, device;
  DeviceId id() const { return {driver, pool, device}; }
  bool operator==(const DeviceResult&) const = default;
};

// status.reservedFor[] (ResourceClaimConsumerReference).
struct ConsumerRef {
  std::string api_group, resource, name, uid;
  bool operator==(const ConsumerRef&) const = default;
};

struct ResourceClaim {
  std::string ns, name, uid;
  std::vector<DeviceRequest> requests;
  bool allocated = false;  // status.allocation present
  std::vector<DeviceResult> results;
  nlohmann::json node_selector;  // status.allocation.nodeSelector (null when absent)
  std::vector<ConsumerRef> reserved_for;
  std::string key() const { return ns + "/" + name; }
};

std::expected<ResourceClaim, std::string> decodeResourceClaim(const nlohmann::json& j);

}  // namespace waterline::dra
