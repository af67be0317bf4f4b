#include "waterline/sim/embedding.h"

#include <cmath>
#include <cstdint>

namespace waterline::sim {

std::string normalizeForEmbedding(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  bool space = false;
  for (unsigned char c : text) {
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v') {
      space = !out.empty();
      continue;
    }
    if (space) out.push_back(' ');
    space = false;
    out.push_back(c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : static_cast<char>(c));
  }
  return out;
}

std::vector<float> embedText(std::string_view text, int dims) {
  if (dims < 1) dims = 1;
  std::vector<float> v(static_cast<std::size_t>(dims), 0.0f);
  const std::string t = " " + normalizeForEmbedding(text) + " ";
  if (t.size() < 3 || t == "  ") {
    v[0] = 1.0f;
    return v;
  }
  for (std::size_t i = 0; i + 3 <= t.size(); ++i) {
    std::uint64_t h = 1469598103934665603ULL;
    for (std::size_t k = i; k < i + 3; ++k) {
      h ^= static_cast<unsigned char>(t[k]);
      h *= 1099511628211ULL;
    }
    h ^= h >> 29;  // mix the high bits into the bucket
    const std::size_t bucket = static_cast<std::size_t>(h % static_cast<std::uint64_t>(dims));
    v[bucket] += (h >> 63) ? -1.0f : 1.0f;
  }
  double norm = 0;
  for (float x : v) norm += static_cast<double>(x) * x;
  if (norm == 0) {
    v[0] = 1.0f;
    return v;
  }
  const float inv = static_cast<float>(1.0 / std::sqrt(norm));
  for (float& x : v) x *= inv;
  return v;
}

}  // namespace waterline::sim
