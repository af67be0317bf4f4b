#pragma once
// The DRA device inventory: which devices exist, on which node, which are allocated and
// how much of each shared counter is left, built from ResourceSlices and ResourceClaims.
//
// Rules (after k8s.io/dynamic-resource-allocation/structured: pools.go GatherPools and
// the allocator's allocated-device and counter bookkeeping):
// - A pool is (driver, pool name). Only slices of the pool's newest generation count;
//   older ones are being replaced by the driver. A pool that names a device or a
//   counter set twice in that generation (poolIsInvalid), or whose slices of that
//   generation disagree on resourceSliceCount, is invalid and offers nothing.
// - A pool whose newest generation has fewer slices than spec.pool.resourceSliceCount
//   is incomplete and offers nothing until the rest arrives. This is stricter than
//   the structured allocator, which refuses incomplete pools only for allocationMode
//   All and otherwise allocates from the slices already there: a missing slice may
//   hold the counter sets that the present devices consume, so Waterline waits.
//   Allocations that others made from an incomplete pool still count (next rule).
// - A device is allocated when ANY claim's status.allocation names it: Waterline's
//   claims and those of kube-scheduler, KAI or anyone else. The allocated set is kept
//   by (driver, pool, device) even for devices no current slice publishes, so a device
//   that comes back is not offered twice.
// - Shared counters (spec.sharedCounters, KEP-4815 partitionable devices): a counter
//   set's remaining value is its published value minus what every allocated device of
//   the pool consumes (spec.devices[].consumesCounters). A device is allocatable only
//   while every counter it consumes is still left in full.
// - A device with a NoSchedule or NoExecute taint takes no new allocation (its current
//   allocations stay: they are still counted).
// Not covered: slices with spec.nodeSelector or perDeviceNodeSelection (they are kept
// out of every node's list), adminAccess (such results are counted as allocations),
// consumable capacity (KEP-5075, shared allocations of one device) and binding
// conditions.
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "waterline/dra/resource.h"

namespace waterline::dra {

struct PoolKey {
  std::string driver, pool;
  auto operator<=>(const PoolKey&) const = default;
  bool operator==(const PoolKey&) const = default;
};

struct PoolState {
  int64_t generation = 0;      // newest generation seen
  int64_t slice_count = 0;     // resourceSliceCount of that generation
  int64_t slices_seen = 0;     // slices of that generation
  bool incomplete = false;     // slices_seen < slice_count
  bool invalid = false;        // duplicate device or counter set, disagreeing slice counts
  std::string problem;         // why invalid
  bool usable() const { return !incomplete && !invalid; }
};

// (driver, pool, counter set, counter)
struct CounterKey {
  std::string driver, pool, counter_set, counter;
  auto operator<=>(const CounterKey&) const = default;
  bool operator==(const CounterKey&) const = default;
};

struct CounterState {
  int64_t total = 0;
  int64_t consumed = 0;
  int64_t remaining() const { return total - consumed; }
};

struct DeviceEntry {
  DeviceId id;
  Device device;
  std::string node;        // slice's nodeName; empty for allNodes
  bool all_nodes = false;
  std::string allocated_by;  // claim key (ns/name); empty when free
  bool allocated() const { return !allocated_by.empty(); }
};

// Something in the cluster's state that is wrong: a device named by two claims, or a
// counter that allocated devices over-consume (a driver that shrank its counters).
struct InventoryProblem {
  std::string message;
};

class Inventory {
 public:
  static Inventory build(std::span<const ResourceSlice> slices, std::span<const ResourceClaim> claims);
  // The same in two steps, for a caller whose claims change far more often than its
  // slices: the devices, pools and counter totals of the slices, then (again on every
  // claim change) the allocations. build(s, c) == fromSlices(s) + setClaims(c).
  static Inventory fromSlices(std::span<const ResourceSlice> slices);
  void setClaims(std::span<const ResourceClaim* const> claims);
  // One claim changed (old or now null: created or deleted): its allocations are taken
  // back and applied again, without touching the others. False (nothing changed) when
  // that cannot be done exactly: a device of either is allocated by another claim too
  // (who keeps it depends on every claim), or a counter problem; then call setClaims.
  bool replaceClaim(const ResourceClaim* old, const ResourceClaim* now);
  Inventory() = default;
  Inventory(const Inventory& o) { *this = o; }
  Inventory& operator=(const Inventory& o);
  Inventory(Inventory&&) = default;  // map nodes move with their map: pointers stay valid
  Inventory& operator=(Inventory&&) = default;

  const std::map<PoolKey, PoolState>& pools() const { return pools_; }
  // Devices of usable pools, by id.
  const std::map<DeviceId, DeviceEntry>& devices() const { return devices_; }
  const DeviceEntry* device(const DeviceId& id) const;
  // Devices of usable pools that the node can use: its own (nodeName) and allNodes ones,
  // sorted by (driver, pool, device name in natural order: gpu-2 before gpu-10).
  std::vector<const DeviceEntry*> devicesOn(std::string_view node) const;
  // Allocated by some claim, whether or not a current slice publishes it.
  bool isAllocated(const DeviceId& id) const { return allocated_.contains(id); }
  const std::map<DeviceId, std::string>& allocatedDevices() const { return allocated_; }
  const std::map<CounterKey, CounterState>& counters() const { return counters_; }
  std::optional<CounterState> counter(const CounterKey& k) const;
  const std::vector<InventoryProblem>& problems() const { return problems_; }

  // Counters a device would consume, keyed as above. Error when it names a counter set
  // or counter its pool does not publish (the device is then never allocatable).
  std::expected<std::map<CounterKey, int64_t>, std::string> consumption(const DeviceEntry& d) const;
  // The device fits the counters left after `extra` (tentative consumption of devices
  // picked in the same allocation) is also taken.
  bool countersFit(const DeviceEntry& d, const std::map<CounterKey, int64_t>& extra = {}) const;
  // Free, untainted, in a usable pool and its counters fit.
  bool available(const DeviceEntry& d, const std::map<CounterKey, int64_t>& extra = {}) const;

 private:
  void index();
  std::map<PoolKey, PoolState> pools_;
  std::map<DeviceId, DeviceEntry> devices_;
  std::map<DeviceId, std::string> allocated_;
  std::map<std::string, std::vector<const DeviceEntry*>, std::less<>> by_node_;  // sorted per node
  std::vector<const DeviceEntry*> all_nodes_;
  std::map<CounterKey, CounterState> counters_;
  std::vector<InventoryProblem> problems_;
};

// "gpu-2" < "gpu-10": digit runs compare as numbers.
bool naturalLess(std::string_view a, std::string_view b);

}  // namespace waterline::dra
