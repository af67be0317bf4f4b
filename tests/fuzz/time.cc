// Fuzzes api::parseTime / formatTime (metav1.Time, RFC 3339).
//
// Invariants (hardening finding 4: int64 nanosecond sums overflowed past 2262):
//   - every parsed time lies in [kEarliestTime, kLatestTime] (out-of-window times saturate);
//   - formatTime of a parsed time re-parses to the same second, and formatting that again
//     gives the same text;
//   - formatTime of ANY SystemTime (the first 8 bytes as int64 nanoseconds) parses, to
//     that second clamped to the window.
#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "fuzz_check.h"
#include "waterline/api/meta.h"

using namespace std::chrono;
using namespace waterline::api;
using waterline::SystemTime;

namespace {
long long secondsOf(SystemTime t) { return static_cast<long long>(floor<seconds>(t).time_since_epoch().count()); }
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text = waterline::fuzz::asText(data, size);
  const std::string s(text);

  if (auto t = parseTime(text)) {
    WL_FUZZ_CHECK(*t >= SystemTime{kEarliestTime} && *t <= SystemTime{kLatestTime}, "%s parsed outside the window: %lld s",
                  s.c_str(), secondsOf(*t));
    const std::string f = formatTime(*t);
    auto again = parseTime(f);
    WL_FUZZ_CHECK(again.has_value(), "%s formats as %s, which does not parse", s.c_str(), f.c_str());
    WL_FUZZ_CHECK(floor<seconds>(*again) == floor<seconds>(*t), "%s formats as %s, which re-parses to another second",
                  s.c_str(), f.c_str());
    WL_FUZZ_CHECK(formatTime(*again) == f, "%s: format is not stable: %s then %s", s.c_str(), f.c_str(),
                  formatTime(*again).c_str());
  } else {
    WL_FUZZ_CHECK(!t.error().empty(), "an error without a message");
  }

  if (size >= 8) {
    int64_t ns = 0;
    std::memcpy(&ns, data, 8);
    const SystemTime any{nanoseconds{ns}};
    const std::string f = formatTime(any);
    auto parsed = parseTime(f);
    WL_FUZZ_CHECK(parsed.has_value(), "formatTime(%lld ns) = %s does not parse: %s", static_cast<long long>(ns), f.c_str(),
                  parsed.error().c_str());
    const auto want = std::clamp(floor<seconds>(any), sys_seconds{kEarliestTime}, sys_seconds{kLatestTime});
    WL_FUZZ_CHECK(floor<seconds>(*parsed) == want, "formatTime(%lld ns) = %s re-parses to %lld s, want %lld s",
                  static_cast<long long>(ns), f.c_str(), secondsOf(*parsed),
                  static_cast<long long>(want.time_since_epoch().count()));
  }
  return 0;
}
