#include "validation.h"

#include <map>
#include <memory>
#include <mutex>

namespace waterline::api::detail {

bool matchesPattern(const std::string& value, const char* pattern) {
  static std::mutex mu;
  static std::map<const char*, std::unique_ptr<std::regex>> cache;
  const std::regex* re;
  {
    std::lock_guard lk(mu);
    auto& slot = cache[pattern];
    if (!slot) slot = std::make_unique<std::regex>(pattern, std::regex::ECMAScript);
    re = slot.get();
  }
  return std::regex_match(value, *re);
}

void Errors::string(const std::string& path, const std::string& v, size_t minLen, size_t maxLen,
                    const char* pattern) {
  if (v.size() < minLen) {
    add(path, "Invalid value: \"" + v + "\": should be at least " + std::to_string(minLen) + " chars long");
    return;
  }
  if (v.size() > maxLen) {
    add(path, "Too long: may not be more than " + std::to_string(maxLen) + " bytes");
    return;
  }
  if (pattern && !matchesPattern(v, pattern))
    add(path, "Invalid value: \"" + v + "\": should match '" + pattern + "'");
}

void Errors::range(const std::string& path, int64_t v, int64_t min, int64_t max) {
  if (v < min)
    add(path, "Invalid value: " + std::to_string(v) + ": should be greater than or equal to " + std::to_string(min));
  else if (v > max)
    add(path, "Invalid value: " + std::to_string(v) + ": should be less than or equal to " + std::to_string(max));
}

void Errors::rangeD(const std::string& path, double v, double min, double max, bool exclusiveMin) {
  if (exclusiveMin ? v <= min : v < min)
    add(path, "Invalid value: " + std::to_string(v) + ": should be greater than " +
                  std::string(exclusiveMin ? "" : "or equal to ") + std::to_string(min));
  else if (v > max)
    add(path, "Invalid value: " + std::to_string(v) + ": should be less than or equal to " + std::to_string(max));
}

}  // namespace waterline::api::detail
