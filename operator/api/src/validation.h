#pragma once
// Internal: the CRDs' patterns and bounds, for the client-side validate() functions.
#include <cstdint>
#include <regex>
#include <string>
#include <string_view>
#include <vector>

namespace waterline::api::detail {

// Patterns, identical to the CRDs'.
inline constexpr const char* kRegionPattern = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";
inline constexpr const char* kDataZonePattern = "^[A-Z][A-Z0-9]{1,15}$";
inline constexpr const char* kLabelValuePattern = "^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$";
inline constexpr const char* kMigProfilePattern = "^[1-7]g\\.[1-9][0-9]*gb(\\+me)?$";
inline constexpr const char* kModelNamePattern = "^[A-Za-z0-9][-A-Za-z0-9_./:]*$";
inline constexpr const char* kEnvNamePattern = "^[-._a-zA-Z][-._a-zA-Z0-9]*$";
inline constexpr const char* kPortNamePattern = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";
inline constexpr const char* kDnsSubdomainPattern =
    "^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";
inline constexpr const char* kPercentPattern = "^(100|[1-9]?[0-9])%$";
inline constexpr const char* kDecimalPattern = "^[0-9]+(\\.[0-9]+)?$";

bool matchesPattern(const std::string& value, const char* pattern);

class Errors {
 public:
  void add(const std::string& path, const std::string& msg) { errs_.push_back(path + ": " + msg); }
  // Apiserver-style messages, so that the same substrings appear.
  void string(const std::string& path, const std::string& v, size_t minLen, size_t maxLen, const char* pattern);
  void range(const std::string& path, int64_t v, int64_t min, int64_t max);
  void rangeD(const std::string& path, double v, double min, double max, bool exclusiveMin = false);
  void required(const std::string& path, const std::string& msg) { add(path, "Required value: " + msg); }
  void forbidden(const std::string& path, const std::string& msg) { add(path, "Forbidden: " + msg); }
  void invalid(const std::string& path, const std::string& msg) { add(path, "Invalid value: " + msg); }
  std::vector<std::string> take() { return std::move(errs_); }

 private:
  std::vector<std::string> errs_;
};

}  // namespace waterline::api::detail
