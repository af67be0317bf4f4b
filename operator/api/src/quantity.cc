#include "waterline/api/quantity.h"

#include <cctype>
#include <limits>

namespace waterline::api {

namespace {
using i128 = __int128;
constexpr int64_t kI64Max = std::numeric_limits<int64_t>::max();

std::unexpected<std::string> badQuantity(std::string_view s, std::string_view why) {
  return std::unexpected("invalid quantity \"" + std::string(s) + "\": " + std::string(why));
}
}  // namespace

std::expected<Quantity, std::string> Quantity::parse(std::string_view s) {
  if (s.empty()) return badQuantity(s, "empty");
  size_t pos = 0;
  bool negative = false;
  if (s[0] == '+' || s[0] == '-') {
    negative = s[0] == '-';
    ++pos;
  }
  i128 mant = 0;
  int sig = 0, frac = 0, ndigits = 0;
  bool dot = false;
  for (; pos < s.size(); ++pos) {
    char c = s[pos];
    if (c == '.') {
      if (dot) return badQuantity(s, "two decimal points");
      dot = true;
      continue;
    }
    if (!std::isdigit(static_cast<unsigned char>(c))) break;
    ++ndigits;
    if (mant == 0 && c == '0') {
      if (dot) ++frac;
      continue;
    }
    // 19 significant digits: every milli value of the int64 range (what fromMilli
    // writes, up to 9223372036854775807m) parses back; more are rejected, not rounded.
    if (++sig > 19) return badQuantity(s, "too many significant digits");
    mant = mant * 10 + (c - '0');
    if (dot) ++frac;
  }
  if (ndigits == 0) return badQuantity(s, "no digits");
  std::string_view suffix = s.substr(pos);
  int bin = 0, exp10 = 0;
  if (suffix.empty()) {
  } else if (suffix.size() == 2 && suffix[1] == 'i') {
    switch (suffix[0]) {
      case 'K': bin = 10; break;
      case 'M': bin = 20; break;
      case 'G': bin = 30; break;
      case 'T': bin = 40; break;
      case 'P': bin = 50; break;
      case 'E': bin = 60; break;
      default: return badQuantity(s, "unknown suffix");
    }
  } else if (suffix.size() == 1) {
    switch (suffix[0]) {
      case 'n': exp10 = -9; break;
      case 'u': exp10 = -6; break;
      case 'm': exp10 = -3; break;
      case 'k': exp10 = 3; break;
      case 'M': exp10 = 6; break;
      case 'G': exp10 = 9; break;
      case 'T': exp10 = 12; break;
      case 'P': exp10 = 15; break;
      case 'E': exp10 = 18; break;
      default: return badQuantity(s, "unknown suffix");
    }
  } else if (suffix[0] == 'e' || suffix[0] == 'E') {
    size_t p = 1;
    bool eneg = false;
    if (p < suffix.size() && (suffix[p] == '+' || suffix[p] == '-')) eneg = suffix[p++] == '-';
    if (p >= suffix.size()) return badQuantity(s, "empty exponent");
    int e = 0;
    for (; p < suffix.size(); ++p) {
      if (!std::isdigit(static_cast<unsigned char>(suffix[p]))) return badQuantity(s, "bad exponent");
      e = e * 10 + (suffix[p] - '0');
      if (e > 1000) return badQuantity(s, "exponent out of range");
    }
    exp10 = eneg ? -e : e;
  } else {
    return badQuantity(s, "unknown suffix");
  }

  // milli = mant * 2^bin * 10^(exp10 + 3 - frac), rounded towards +infinity.
  i128 n = mant << bin;  // mant < 1e19 < 2^64, bin <= 60: below 2^124
  int e = exp10 + 3 - frac;
  i128 mag = 0;
  bool inexact = false;
  if (n != 0) {
    if (e >= 0) {
      mag = n;
      for (int i = 0; i < e; ++i) {
        if (mag > kI64Max) return badQuantity(s, "out of range");  // before x10: no i128 overflow
        mag *= 10;
      }
    } else {
      i128 div = 1;
      int k = -e;
      for (int i = 0; i < k && div <= n; ++i) div *= 10;
      if (div > n) {
        mag = 0;
        inexact = true;
      } else {
        mag = n / div;
        inexact = n % div != 0;
      }
    }
  }
  if (mag > kI64Max) return badQuantity(s, "out of range");
  Quantity q;
  if (negative) {
    q.milli = -static_cast<int64_t>(mag);  // ceiling of a negative value truncates
  } else {
    if (inexact) ++mag;
    if (mag > kI64Max) return badQuantity(s, "out of range");
    q.milli = static_cast<int64_t>(mag);
  }
  q.text = std::string(s);
  return q;
}

Quantity Quantity::fromMilli(int64_t milli) {
  Quantity q;
  q.milli = milli;
  q.text = milli % 1000 == 0 ? std::to_string(milli / 1000) : std::to_string(milli) + "m";
  return q;
}

Quantity Quantity::fromInt(int64_t value) {
  Quantity q;
  q.milli = value * 1000;
  q.text = std::to_string(value);
  return q;
}

int64_t Quantity::value() const {
  int64_t v = milli / 1000;
  if (milli % 1000 > 0) ++v;
  return v;
}

std::expected<Quantity, std::string> Quantity::fromJson(const nlohmann::json& j) {
  if (j.is_string()) return parse(j.get_ref<const std::string&>());
  if (j.is_number_integer()) return parse(j.dump());
  if (j.is_number_float()) return parse(j.dump());
  return std::unexpected(std::string("expected quantity (string or number), got ") + j.type_name());
}

const std::string& IntOrString::strValue() const {
  static const std::string empty;
  return isInt() ? empty : std::get<std::string>(v);
}

std::expected<int64_t, std::string> IntOrString::scaledValue(int64_t total, bool roundUp) const {
  if (isInt()) return intValue();
  const std::string& s = strValue();
  if (s.size() < 2 || s.back() != '%') return std::unexpected("invalid value \"" + s + "\": must be an integer or a percentage");
  int64_t pct = 0;
  for (size_t i = 0; i + 1 < s.size(); ++i) {
    if (!std::isdigit(static_cast<unsigned char>(s[i])) || pct > 1'000'000)
      return std::unexpected("invalid value \"" + s + "\": must be an integer or a percentage");
    pct = pct * 10 + (s[i] - '0');
  }
  i128 num = static_cast<i128>(pct) * total;
  i128 r = num / 100;
  if (roundUp && num % 100 != 0) r += (num > 0 ? 1 : 0);
  return static_cast<int64_t>(r);
}

std::expected<IntOrString, std::string> IntOrString::fromJson(const nlohmann::json& j) {
  if (j.is_string()) return fromString(j.get<std::string>());
  if (j.is_number_unsigned() && j.get<uint64_t>() > static_cast<uint64_t>(kI64Max))
    return std::unexpected("integer out of range");
  if (j.is_number_integer()) return fromInt(j.get<int64_t>());
  return std::unexpected(std::string("expected integer or string, got ") +
                         (j.is_number() ? "number" : j.type_name()));
}

nlohmann::json IntOrString::toJson() const {
  if (isInt()) return intValue();
  return strValue();
}

std::expected<int64_t, std::string> parseDecimalMicros(std::string_view s) {
  auto bad = [&] { return std::unexpected("invalid decimal \"" + std::string(s) + "\""); };
  if (s.empty()) return bad();
  i128 v = 0;
  size_t pos = 0;
  size_t intDigits = 0;
  for (; pos < s.size() && std::isdigit(static_cast<unsigned char>(s[pos])); ++pos, ++intDigits) {
    v = v * 10 + (s[pos] - '0');
    if (v > kI64Max) return bad();
  }
  if (intDigits == 0) return bad();
  int frac = 0;
  if (pos < s.size()) {
    if (s[pos] != '.' || pos + 1 == s.size()) return bad();
    for (++pos; pos < s.size(); ++pos) {
      if (!std::isdigit(static_cast<unsigned char>(s[pos]))) return bad();
      if (frac < 6) {  // digits past the sixth are dropped (truncated)
        v = v * 10 + (s[pos] - '0');
        ++frac;
      }
    }
  }
  for (; frac < 6; ++frac) v *= 10;
  if (v > kI64Max) return bad();
  return static_cast<int64_t>(v);
}

std::string formatDecimalMicros(int64_t micros) {
  bool neg = micros < 0;
  uint64_t u = neg ? 0 - static_cast<uint64_t>(micros) : static_cast<uint64_t>(micros);
  std::string out = (neg ? "-" : "") + std::to_string(u / 1'000'000);
  uint64_t f = u % 1'000'000;
  if (f != 0) {
    std::string fs = std::to_string(f);
    fs.insert(0, 6 - fs.size(), '0');
    while (!fs.empty() && fs.back() == '0') fs.pop_back();
    out += "." + fs;
  }
  return out;
}

}  // namespace waterline::api
