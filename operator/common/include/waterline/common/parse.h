#pragma once
// Strict integer parsing for label and annotation values: the whole string must be a
// decimal integer (optional leading '-', no spaces, no '+', no suffix) within [lo, hi].
// Anything else is nullopt, so that "8abc", "4294967304" (no wrap-around) and "-4" for a
// count are rejected rather than read as 8, 8 or -4.
#include <charconv>
#include <cstdint>
#include <optional>
#include <string_view>
#include <system_error>

namespace waterline {

template <typename T>
std::optional<T> parseIntegerInRange(std::string_view s, T lo, T hi) {
  T v{};
  const char* end = s.data() + s.size();
  auto [p, ec] = std::from_chars(s.data(), end, v);
  if (s.empty() || ec != std::errc() || p != end || v < lo || v > hi) return std::nullopt;
  return v;
}

// Ranges of the GPU labels GPU Feature Discovery sets (nvidia.com/gpu.count, .memory in
// MiB, .replicas) and of GPU indices.
inline constexpr int32_t kMaxGpusPerNode = 64;
inline constexpr int64_t kMaxGpuMemoryMiB = int64_t{16} * 1024 * 1024;  // 16 TiB: far above any GPU
inline constexpr int32_t kMaxGpuReplicas = 1024;  // time-slicing/MPS shares per GPU

}  // namespace waterline
