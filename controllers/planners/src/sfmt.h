#pragma once
// printf into a std::string (libstdc++ 12 has no <format>), for the planners' messages
// and tables. Truncates at 511 characters.
#include <cstdarg>
#include <cstdio>
#include <string>

namespace waterline::planners::detail {

[[gnu::format(printf, 1, 2)]] inline std::string sfmt(const char* f, ...) {
  va_list a;
  va_start(a, f);
  char buf[512];
  std::vsnprintf(buf, sizeof buf, f, a);
  va_end(a);
  return buf;
}

}  // namespace waterline::planners::detail
