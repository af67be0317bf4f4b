#pragma once
// MIG geometry per GPU product: which GPU-instance profiles exist, their size in memory
// slices, and their valid placements (start slice). Source: NVIDIA Multi-Instance GPU
// User Guide, "Supported MIG Profiles", and `nvidia-smi mig -lgipp` on A100/H100, e.g.
//   Profile ID 19 (1g.10gb)    Placements: {0,1,2,3,4,5,6}:1
//   Profile ID 20 (1g.10gb+me) Placements: {0,1,2,3,4,5,6}:1
//   Profile ID 15 (1g.20gb)    Placements: {0,2,4,6}:2
//   Profile ID 14 (2g.20gb)    Placements: {0,2,4}:2
//   Profile ID  9 (3g.40gb)    Placements: {0,4}:4
//   Profile ID  5 (4g.40gb)    Placement : {0}:4
//   Profile ID  0 (7g.80gb)    Placement : {0}:8
// A GPU instance occupies the memory slices [start, start+size); creating one fails if it
// overlaps an occupied slice (NVML nvmlDeviceGetGpuInstancePossiblePlacements). The
// compute slices of an instance lie inside its memory range, so memory-slice overlap is
// the whole placement rule. "+me" profiles take the GPU's single set of media engines:
// at most one per GPU.
#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace waterline::scheduling {

struct MigProfile {
  std::string name;        // "3g.40gb"
  int compute_slices = 0;  // the "Ng" part
  int memory_slices = 0;   // placement size
  std::uint8_t starts = 0;  // bit i set: start slice i is a valid placement
  bool media_extensions = false;
};

// State of one MIG GPU: bits 0..7 occupied memory slices, bit 8 media engines taken.
using MigState = std::uint16_t;
inline constexpr int kMigStates = 512;
inline constexpr MigState kMigMediaBit = 0x100;

struct MigGeometry {
  std::string name;  // "A100/H100-80GB"
  int memory_slices = 8;
  int compute_slices = 7;
  std::vector<MigProfile> profiles;

  // Derived tables, filled by finalize().
  std::array<std::uint16_t, kMigStates> fits{};  // bit p: profile p has a free placement
  // Highest number of profile-p instances that still fit in a state (p < 16).
  std::vector<std::array<std::uint8_t, kMigStates>> capacity;

  int profileIndex(std::string_view profile) const;  // -1 if unknown
  // Memory of an instance: its memory slices' part of the GPU's memory when that is
  // known, else the figure in the profile name read as GiB.
  std::int64_t memoryMib(int profile, std::int64_t gpu_memory_mib) const;
  std::uint8_t placementMask(int profile, int start) const;  // memory slices of a placement
  bool canPlace(MigState s, int profile, int start) const;
  MigState place(MigState s, int profile, int start) const;
  MigState remove(MigState s, int profile, int start) const;
  void finalize();
};

// Geometry for a GFD product name (nvidia.com/gpu.product), or nullptr when the product
// has no MIG support known here. Recognised: A100 40GB (SXM4/PCIe), A100 80GB,
// H100 80GB (SXM5/PCIe/HBM3), H100 94GB (NVL), H200 141GB, A30.
const MigGeometry* migGeometryForProduct(std::string_view product);

// The built-in tables, by name ("A100-40GB", "A100/H100-80GB", "H100-94GB", "H200-141GB",
// "A30-24GB").
const MigGeometry* migGeometryByName(std::string_view name);

}  // namespace waterline::scheduling
