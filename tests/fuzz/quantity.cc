// Fuzzes api::Quantity (resource.Quantity), IntOrString percentages and the fixed-point
// decimals of status.unitHoursConsumed.
//
// Invariants, for every input that parses:
//   - the text is kept as written, and toJson -> fromJson gives an equal quantity;
//   - the sign is kept (a negative quantity is never positive and vice versa);
//   - formatting the value (fromMilli) and parsing that gives the same milli value;
//   - value() is the ceiling of milli / 1000;
//   - decimals: formatDecimalMicros -> parseDecimalMicros gives the same micros;
//   - percentages: scaledValue rounded up >= rounded down >= 0 for a non-negative total.
// Huge exponents and long digit strings must be rejected without undefined behaviour
// (the harness runs under UBSan in `make fuzz` and `make test-sanitize`).
#include <cstddef>
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "fuzz_check.h"
#include "waterline/api/quantity.h"

using namespace waterline::api;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text = waterline::fuzz::asText(data, size);
  const std::string s(text);

  if (auto q = Quantity::parse(text)) {
    WL_FUZZ_CHECK(q->text == s, "text not kept");
    auto back = Quantity::fromJson(q->toJson());
    WL_FUZZ_CHECK(back && *back == *q, "toJson/fromJson changed %s", s.c_str());
    const bool neg = !text.empty() && text[0] == '-';
    WL_FUZZ_CHECK(neg ? q->milli <= 0 : q->milli >= 0, "%s: sign lost, milli %lld", s.c_str(),
                  static_cast<long long>(q->milli));
    const Quantity formatted = Quantity::fromMilli(q->milli);
    auto reparsed = Quantity::parse(formatted.text);
    WL_FUZZ_CHECK(reparsed.has_value(), "%s: milli %lld formats as \"%s\", which does not parse: %s", s.c_str(),
                  static_cast<long long>(q->milli), formatted.text.c_str(), reparsed.error().c_str());
    WL_FUZZ_CHECK(reparsed->milli == q->milli, "%s: \"%s\" re-parses as %lld, not %lld", s.c_str(),
                  formatted.text.c_str(), static_cast<long long>(reparsed->milli), static_cast<long long>(q->milli));
    const __int128 v = q->value();
    WL_FUZZ_CHECK(v * 1000 >= q->milli && (v - 1) * 1000 < q->milli, "%s: value() %lld is not ceil(%lld / 1000)",
                  s.c_str(), static_cast<long long>(q->value()), static_cast<long long>(q->milli));
  }

  // The same text as a JSON value (numbers take Quantity::fromJson's number path).
  const auto j = nlohmann::json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (!j.is_discarded()) {
    if (auto q = Quantity::fromJson(j)) {
      auto again = Quantity::parse(q->text);
      WL_FUZZ_CHECK(again && again->milli == q->milli, "fromJson(%s) text does not re-parse", s.c_str());
    }
    if (auto i = IntOrString::fromJson(j)) {
      auto back = IntOrString::fromJson(i->toJson());
      WL_FUZZ_CHECK(back && *back == *i, "IntOrString round trip changed %s", s.c_str());
    }
  }

  if (auto micros = parseDecimalMicros(text)) {
    WL_FUZZ_CHECK(*micros >= 0, "%s: negative decimal %lld", s.c_str(), static_cast<long long>(*micros));
    const std::string f = formatDecimalMicros(*micros);
    auto again = parseDecimalMicros(f);
    WL_FUZZ_CHECK(again && *again == *micros, "%s: %lld formats as %s, which re-parses differently", s.c_str(),
                  static_cast<long long>(*micros), f.c_str());
  }

  const IntOrString pct = IntOrString::fromString(s);
  for (int64_t total : {int64_t{0}, int64_t{1}, int64_t{3}, int64_t{100}, int64_t{2'147'483'647}}) {
    auto up = pct.scaledValue(total, true);
    auto down = pct.scaledValue(total, false);
    WL_FUZZ_CHECK(up.has_value() == down.has_value(), "%s: rounding changes validity", s.c_str());
    if (up) WL_FUZZ_CHECK(*up >= *down && *down >= 0, "%s of %lld: up %lld, down %lld", s.c_str(),
                          static_cast<long long>(total), static_cast<long long>(*up), static_cast<long long>(*down));
  }
  return 0;
}
