// Fuzzes the response `usage` readers the router settles PTU charges with.
//
// Invariants:
//   - findUsage (a DOM-free scan) agrees with usageFromJson on the parsed document
//     whenever the text is one JSON object whose only "usage" key is at the top level
//     (the agreement rule of Usage.FindUsageReadsTheObjectAsUsageFromJsonDoes: findUsage
//     reads the last "usage": {...} anywhere, usageFromJson the top-level one);
//   - every usage read is non-negative;
//   - SseUsageScanner gives the same usage and event count however the stream is split
//     (the input is fed whole, byte by byte, and in chunks whose sizes come from the input).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "fuzz_check.h"
#include "waterline/routing/tokens.h"

using nlohmann::json;
using namespace waterline::routing;

namespace {

// Keys named "usage" anywhere in the text, duplicates included (the DOM keeps only the
// last of duplicate keys, so it cannot count them).
struct UsageKeyCounter : nlohmann::json_sax<json> {
  int n = 0;
  bool null() override { return true; }
  bool boolean(bool) override { return true; }
  bool number_integer(number_integer_t) override { return true; }
  bool number_unsigned(number_unsigned_t) override { return true; }
  bool number_float(number_float_t, const string_t&) override { return true; }
  bool string(string_t&) override { return true; }
  bool binary(binary_t&) override { return true; }
  bool start_object(std::size_t) override { return true; }
  bool key(string_t& k) override {
    if (k == "usage") ++n;
    return true;
  }
  bool end_object() override { return true; }
  bool start_array(std::size_t) override { return true; }
  bool end_array() override { return true; }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) override { return false; }
};

void nonNegative(const std::optional<Usage>& u, const char* who) {
  if (!u) return;
  WL_FUZZ_CHECK(u->promptTokens >= 0 && u->completionTokens >= 0, "%s: usage {%lld, %lld}", who,
                static_cast<long long>(u->promptTokens), static_cast<long long>(u->completionTokens));
}

std::string show(const std::optional<Usage>& u) {
  if (!u) return "none";
  return "{" + std::to_string(u->promptTokens) + ", " + std::to_string(u->completionTokens) + "}";
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text = waterline::fuzz::asText(data, size);

  // findUsage vs usageFromJson.
  const auto found = findUsage(text);
  nonNegative(found, "findUsage");
  const json doc = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (!doc.is_discarded()) {
    const auto fromDom = usageFromJson(doc);
    nonNegative(fromDom, "usageFromJson");
    // findUsage reads the last "usage": {...} at any depth, usageFromJson the top-level
    // one: they must agree when the text has exactly one "usage" key, at the top level.
    const auto top = doc.is_object() ? doc.find("usage") : doc.end();
    UsageKeyCounter keys;
    json::sax_parse(text.begin(), text.end(), &keys, nlohmann::detail::input_format_t::json, /*strict=*/true);
    const bool onlyTopLevel = top != doc.end() && top->is_object() && keys.n == 1;
    if (onlyTopLevel)
      WL_FUZZ_CHECK(found == fromDom, "findUsage %s, usageFromJson %s", show(found).c_str(), show(fromDom).c_str());
  }

  // SseUsageScanner: the same answer for every split of the same bytes.
  SseUsageScanner whole;
  whole.feed(text);
  nonNegative(whole.usage(), "SseUsageScanner");
  WL_FUZZ_CHECK(whole.events() >= 0, "events %lld", static_cast<long long>(whole.events()));

  SseUsageScanner bytes;
  for (char c : text) bytes.feed(std::string_view(&c, 1));
  WL_FUZZ_CHECK(bytes.usage() == whole.usage() && bytes.events() == whole.events(),
                "byte by byte: %s/%lld, whole: %s/%lld", show(bytes.usage()).c_str(),
                static_cast<long long>(bytes.events()), show(whole.usage()).c_str(),
                static_cast<long long>(whole.events()));

  SseUsageScanner chunks;
  size_t pos = 0;
  size_t k = 0;
  while (pos < text.size()) {
    // Chunk sizes 1..16 taken from the input itself.
    const size_t n = 1 + (static_cast<unsigned char>(text[k++ % text.size()]) % 16);
    chunks.feed(text.substr(pos, n));
    pos += n;
  }
  WL_FUZZ_CHECK(chunks.usage() == whole.usage() && chunks.events() == whole.events(),
                "chunked: %s/%lld, whole: %s/%lld", show(chunks.usage()).c_str(),
                static_cast<long long>(chunks.events()), show(whole.usage()).c_str(),
                static_cast<long long>(whole.events()));
  return 0;
}
