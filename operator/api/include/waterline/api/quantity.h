#pragma once
// Kubernetes resource quantities, int-or-string values and fixed-point decimals.
#include <cstdint>
#include <expected>
#include <string>
#include <string_view>
#include <variant>

#include <nlohmann/json.hpp>

namespace waterline::api {

// A resource.Quantity: "20Gi", "500m", "1.5", "80Gi", "1e3", "2k".
// Held as thousandths of the unit (milli), rounded up towards +infinity like
// Quantity.MilliValue(); the text is kept as written so that it round-trips.
// Range: |value| up to about 9.2e15 units (8 PiB of bytes), written with at most 19
// significant digits (enough for every milli value: fromMilli's text always parses back).
struct Quantity {
  int64_t milli = 0;
  std::string text;

  static std::expected<Quantity, std::string> parse(std::string_view s);
  static Quantity fromMilli(int64_t milli);  // text: "<n>m" or "<n>" when whole
  static Quantity fromInt(int64_t value);

  // Whole units, rounded up (Quantity.Value()): bytes for memory, cores for CPU.
  int64_t value() const;
  double asDouble() const { return static_cast<double>(milli) / 1000.0; }

  // JSON: accepts a string or a number; encodes as the string text.
  static std::expected<Quantity, std::string> fromJson(const nlohmann::json& j);
  nlohmann::json toJson() const { return text; }

  bool operator==(const Quantity& o) const { return milli == o.milli && text == o.text; }
};

// intstr.IntOrString: an integer or a string such as "25%".
struct IntOrString {
  std::variant<int64_t, std::string> v{int64_t{0}};

  static IntOrString fromInt(int64_t i) { return IntOrString{i}; }
  static IntOrString fromString(std::string s) { return IntOrString{std::move(s)}; }
  bool isInt() const { return std::holds_alternative<int64_t>(v); }
  int64_t intValue() const { return isInt() ? std::get<int64_t>(v) : 0; }
  const std::string& strValue() const;

  // intstr.GetScaledValueFromIntOrPercent: an int as is; "N%" as N% of total, rounded
  // up or down. Error for a string that is not a percentage.
  std::expected<int64_t, std::string> scaledValue(int64_t total, bool roundUp) const;

  static std::expected<IntOrString, std::string> fromJson(const nlohmann::json& j);
  nlohmann::json toJson() const;
  bool operator==(const IntOrString&) const = default;
};

// Non-negative fixed-point decimals with 6 fractional digits, held as millionths:
// "12.5" <-> 12500000. Used for status.unitHoursConsumed so that accrual is exact.
std::expected<int64_t, std::string> parseDecimalMicros(std::string_view s);
std::string formatDecimalMicros(int64_t micros);  // trailing zeros trimmed: "12.5", "0", "3"

}  // namespace waterline::api
