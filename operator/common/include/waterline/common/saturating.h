#pragma once
// Integer arithmetic that saturates at the int64 limits instead of overflowing. Used
// wherever values from a request or an object (token counts, max_tokens x n, quantities)
// are summed or multiplied: an overflow there would wrap to a negative number and, for
// example, turn an enormous token estimate into a zero charge.
#include <cstdint>
#include <limits>

namespace waterline {

inline constexpr int64_t kInt64Max = std::numeric_limits<int64_t>::max();
inline constexpr int64_t kInt64Min = std::numeric_limits<int64_t>::min();

constexpr int64_t saturatingAdd(int64_t a, int64_t b) {
  int64_t r = 0;
  if (__builtin_add_overflow(a, b, &r)) return b > 0 ? kInt64Max : kInt64Min;
  return r;
}

constexpr int64_t saturatingMul(int64_t a, int64_t b) {
  int64_t r = 0;
  if (__builtin_mul_overflow(a, b, &r)) return (a < 0) != (b < 0) ? kInt64Min : kInt64Max;
  return r;
}

}  // namespace waterline
