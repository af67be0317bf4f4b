#pragma once
// An hnswlib space over 8-bit scalar-quantised unit vectors: each element is stored as
// `dim` signed bytes (round(x / scale), |code| <= 127) followed by its float scale, and
// the distance is 1 - inner product of the decoded vectors. A 256-dimension vector takes
// 260 bytes instead of 1,024, so a search (whose cost at a few thousand distance
// computations is the memory it reads) reads a quarter of the bytes. The graph is built
// and searched on these codes; the caller re-ranks the few nearest by the exact float
// vectors it keeps, so a similarity it reports or compares with the threshold is exact.
#include <hnswlib/hnswlib.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <span>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace waterline::caching::detail {

inline std::int32_t dotI8(const std::int8_t* a, const std::int8_t* b, std::size_t n) {
  std::int32_t sum = 0;
  std::size_t i = 0;
#if defined(__SSE2__)
  __m128i acc = _mm_setzero_si128();
  for (; i + 16 <= n; i += 16) {
    const __m128i va = _mm_loadu_si128(reinterpret_cast<const __m128i*>(a + i));
    const __m128i vb = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b + i));
    // Sign-extend each half to 16 bits (unpack a byte with itself, shift right by 8),
    // multiply pairwise and add neighbours into 32 bits.
    const __m128i alo = _mm_srai_epi16(_mm_unpacklo_epi8(va, va), 8);
    const __m128i ahi = _mm_srai_epi16(_mm_unpackhi_epi8(va, va), 8);
    const __m128i blo = _mm_srai_epi16(_mm_unpacklo_epi8(vb, vb), 8);
    const __m128i bhi = _mm_srai_epi16(_mm_unpackhi_epi8(vb, vb), 8);
    acc = _mm_add_epi32(acc, _mm_madd_epi16(alo, blo));
    acc = _mm_add_epi32(acc, _mm_madd_epi16(ahi, bhi));
  }
  alignas(16) std::int32_t lanes[4];
  _mm_store_si128(reinterpret_cast<__m128i*>(lanes), acc);
  sum = lanes[0] + lanes[1] + lanes[2] + lanes[3];
#endif
  for (; i < n; ++i) sum += static_cast<std::int32_t>(a[i]) * b[i];
  return sum;
}

class Sq8Space : public hnswlib::SpaceInterface<float> {
 public:
  explicit Sq8Space(std::size_t dim) : dim_(dim) {}

  std::size_t get_data_size() override { return dim_ + sizeof(float); }
  hnswlib::DISTFUNC<float> get_dist_func() override { return &distance; }
  void* get_dist_func_param() override { return &dim_; }

  std::size_t dim() const { return dim_; }
  std::size_t codeSize() const { return dim_ + sizeof(float); }

  // Encodes a (normalised) vector of dim() floats into codeSize() bytes.
  void encode(std::span<const float> v, unsigned char* out) const {
    float maxAbs = 0;
    for (float x : v) maxAbs = std::max(maxAbs, std::fabs(x));
    const float scale = maxAbs > 0 ? maxAbs / 127.0f : 1.0f;
    const float inv = 1.0f / scale;
    auto* codes = reinterpret_cast<std::int8_t*>(out);
    for (std::size_t i = 0; i < dim_; ++i) {
      const long q = std::lround(v[i] * inv);
      codes[i] = static_cast<std::int8_t>(std::clamp<long>(q, -127, 127));
    }
    std::memcpy(out + dim_, &scale, sizeof scale);
  }

  static float distance(const void* a, const void* b, const void* param) {
    const std::size_t dim = *static_cast<const std::size_t*>(param);
    const auto* ca = static_cast<const std::int8_t*>(a);
    const auto* cb = static_cast<const std::int8_t*>(b);
    float sa, sb;
    std::memcpy(&sa, ca + dim, sizeof sa);
    std::memcpy(&sb, cb + dim, sizeof sb);
    return 1.0f - sa * sb * static_cast<float>(dotI8(ca, cb, dim));
  }

 private:
  std::size_t dim_;
};

}  // namespace waterline::caching::detail
