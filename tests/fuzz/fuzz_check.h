#pragma once
// Invariant checks for fuzz harnesses: a broken invariant prints what broke and aborts,
// which libFuzzer reports as a crash (and the corpus replay as a failed test).
#include <cstdio>
#include <cstdlib>
#include <string_view>

#define WL_FUZZ_CHECK(cond, ...)                                                      \
  do {                                                                                \
    if (!(cond)) {                                                                    \
      std::fprintf(stderr, "%s:%d: invariant broken: %s\n  ", __FILE__, __LINE__, #cond); \
      std::fprintf(stderr, __VA_ARGS__);                                              \
      std::fprintf(stderr, "\n");                                                     \
      std::abort();                                                                   \
    }                                                                                 \
  } while (0)

namespace waterline::fuzz {
inline std::string_view asText(const unsigned char* data, std::size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}
}  // namespace waterline::fuzz
