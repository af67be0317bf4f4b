#include "waterline/routing/tokens.h"

#include <algorithm>
#include <charconv>
#include <cmath>

#include "waterline/common/saturating.h"

namespace waterline::routing {

using json = nlohmann::json;

std::size_t countCodePoints(std::string_view s) {
  std::size_t n = 0;
  for (unsigned char c : s)
    if ((c & 0xC0) != 0x80) ++n;
  return n;
}

namespace {

int64_t tokensOf(std::size_t chars, double charsPerToken) {
  if (chars == 0) return 0;
  double cpt = charsPerToken > 0 && std::isfinite(charsPerToken) ? charsPerToken : 4.0;
  const double t = std::ceil(static_cast<double>(chars) / cpt);
  return t >= 9.2e18 ? kInt64Max : static_cast<int64_t>(t);
}

// Every count below is summed with saturation: the estimate is an upper bound that
// admission charges, so it may stick at INT64_MAX but must never wrap to a small or
// negative number (a wrapped estimate was clamped to a zero charge and admitted).
void add(int64_t& total, int64_t t) { total = saturatingAdd(total, std::max<int64_t>(0, t)); }

// Text of a chat message content: a string, or an array of parts.
int64_t contentTokens(const json& content, const EstimatorOptions& o) {
  if (content.is_string()) return tokensOf(countCodePoints(content.get_ref<const std::string&>()), o.charsPerToken);
  int64_t t = 0;
  if (content.is_array()) {
    for (const auto& part : content) {
      if (part.is_string()) {
        add(t, tokensOf(countCodePoints(part.get_ref<const std::string&>()), o.charsPerToken));
      } else if (part.is_object()) {
        auto text = part.find("text");
        if (text != part.end() && text->is_string())
          add(t, tokensOf(countCodePoints(text->get_ref<const std::string&>()), o.charsPerToken));
        auto type = part.find("type");
        if (type != part.end() && type->is_string()) {
          const auto& ty = type->get_ref<const std::string&>();
          if (ty == "image_url" || ty == "image" || ty == "input_image") add(t, o.tokensPerImage);
        }
      }
    }
  }
  return t;
}

int64_t promptTokensCompletions(const json& prompt, const EstimatorOptions& o) {
  if (prompt.is_string()) return tokensOf(countCodePoints(prompt.get_ref<const std::string&>()), o.charsPerToken);
  if (!prompt.is_array()) return 0;
  int64_t t = 0;
  for (const auto& p : prompt) {
    if (p.is_string()) add(t, tokensOf(countCodePoints(p.get_ref<const std::string&>()), o.charsPerToken));
    else if (p.is_number_integer()) add(t, 1);  // token id
    else if (p.is_array()) add(t, static_cast<int64_t>(p.size()));  // a list of token ids
  }
  return t;
}

// An embeddings `input`: a string, or an array of strings, of token ids, or of arrays
// of token ids (each id one token).
int64_t embeddingInputTokens(const json& input, const EstimatorOptions& o) {
  if (input.is_string()) return tokensOf(countCodePoints(input.get_ref<const std::string&>()), o.charsPerToken);
  if (!input.is_array()) return 0;
  int64_t t = 0;
  for (const auto& p : input) {
    if (p.is_string()) add(t, tokensOf(countCodePoints(p.get_ref<const std::string&>()), o.charsPerToken));
    else if (p.is_number()) add(t, 1);
    else if (p.is_array()) add(t, static_cast<int64_t>(p.size()));
  }
  return t;
}

std::optional<int64_t> nonNegativeInt(const json& body, const char* key) {
  auto it = body.find(key);
  if (it == body.end() || !it->is_number_integer()) return std::nullopt;
  if (it->is_number_unsigned()) return static_cast<int64_t>(std::min<std::uint64_t>(it->get<std::uint64_t>(), kInt64Max));
  auto v = it->get<int64_t>();
  if (v < 0) return std::nullopt;
  return v;
}

}  // namespace

TokenEstimate estimateTokens(const json& body, ApiKind kind, const EstimatorOptions& o) {
  TokenEstimate e;
  if (!body.is_object()) return e;
  if (kind == ApiKind::Embeddings) {
    // No output: max_tokens and n mean nothing here, the charge is the input alone.
    if (auto in = body.find("input"); in != body.end()) add(e.promptTokens, embeddingInputTokens(*in, o));
    return e;
  }
  if (kind == ApiKind::ChatCompletions) {
    auto msgs = body.find("messages");
    if (msgs != body.end() && msgs->is_array()) {
      for (const auto& m : *msgs) {
        add(e.promptTokens, o.tokensPerMessage);
        if (!m.is_object()) continue;
        if (auto c = m.find("content"); c != m.end()) add(e.promptTokens, contentTokens(*c, o));
        if (auto n = m.find("name"); n != m.end() && n->is_string())
          add(e.promptTokens, tokensOf(countCodePoints(n->get_ref<const std::string&>()), o.charsPerToken));
      }
    }
  } else {
    if (auto p = body.find("prompt"); p != body.end()) add(e.promptTokens, promptTokensCompletions(*p, o));
    if (auto s = body.find("suffix"); s != body.end() && s->is_string())
      add(e.promptTokens, tokensOf(countCodePoints(s->get_ref<const std::string&>()), o.charsPerToken));
  }
  int64_t maxOut = std::max<int64_t>(0, o.defaultMaxTokens);
  if (auto v = nonNegativeInt(body, "max_completion_tokens")) maxOut = *v;
  else if (auto w = nonNegativeInt(body, "max_tokens")) maxOut = *w;
  int64_t n = 1;
  if (auto c = nonNegativeInt(body, "n"); c && *c > 0) n = std::min<int64_t>(*c, 128);
  e.maxOutputTokens = saturatingMul(maxOut, n);  // max_tokens x n: each side alone may be huge
  return e;
}

std::optional<Usage> usageFromJson(const json& body) {
  if (!body.is_object()) return std::nullopt;
  auto u = body.find("usage");
  if (u == body.end() || !u->is_object()) return std::nullopt;
  Usage out;
  auto get = [&](const char* k, int64_t& dst) {
    auto it = u->find(k);
    if (it != u->end() && it->is_number_integer()) {
      auto v = it->get<int64_t>();
      if (v >= 0) dst = v;
      return true;
    }
    return false;
  };
  bool any = get("prompt_tokens", out.promptTokens);
  any = get("completion_tokens", out.completionTokens) || any;
  if (!any) return std::nullopt;
  return out;
}

namespace {

bool isJsonSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

// Reads prompt_tokens and completion_tokens from the JSON object that starts `o` (findUsage's
// usage object; whatever follows its closing brace is not read) without building a DOM: a response's usage is read on every
// proxied request, and parsing it with nlohmann cost more than the rest of findUsage.
// Members are walked at the top level; nested values are skipped. Same answer as
// usageFromJson on {"usage": <object>}: an integer member counts, a negative one is not
// stored, and a malformed object gives nothing.
std::optional<Usage> usageFromObjectText(std::string_view o) {
  // Per field, what the DOM would hold: nlohmann keeps the LAST of duplicate keys, and
  // usageFromJson counts a member only when that last value is an integer.
  struct Field {
    bool integer = false;  // the last value seen is a JSON integer (nlohmann's is_number_integer)
    int64_t value = 0;     // stored when that integer is non-negative and fits int64
  };
  Field prompt, completion;
  size_t i = 1;  // past '{'
  auto ws = [&] {
    while (i < o.size() && isJsonSpace(o[i])) ++i;
  };
  auto skipString = [&]() -> bool {  // at '"'; leaves i past the closing quote
    bool escape = false;
    for (++i; i < o.size(); ++i) {
      if (escape) escape = false;
      else if (o[i] == '\\') escape = true;
      else if (o[i] == '"') {
        ++i;
        return true;
      }
    }
    return false;
  };
  for (;;) {
    ws();
    if (i >= o.size()) return std::nullopt;
    if (o[i] == '}') break;
    if (o[i] != '"') return std::nullopt;
    const size_t keyStart = i + 1;
    if (!skipString()) return std::nullopt;
    const std::string_view key = o.substr(keyStart, i - 1 - keyStart);
    Field* dst = key == "prompt_tokens" ? &prompt : key == "completion_tokens" ? &completion : nullptr;
    ws();
    if (i >= o.size() || o[i] != ':') return std::nullopt;
    ++i;
    ws();
    if (i >= o.size()) return std::nullopt;
    const size_t valueStart = i;
    Field seen;  // what this member's value makes of the field: not an integer unless shown below
    if (o[i] == '"') {
      if (!skipString()) return std::nullopt;
    } else if (o[i] == '{' || o[i] == '[') {
      int depth = 0;  // skip the nested value
      do {
        if (i >= o.size()) return std::nullopt;
        if (o[i] == '"') {
          if (!skipString()) return std::nullopt;
          continue;
        }
        if (o[i] == '{' || o[i] == '[') ++depth;
        else if (o[i] == '}' || o[i] == ']') --depth;
        ++i;
      } while (depth > 0);
    } else {
      while (i < o.size() && o[i] != ',' && o[i] != '}' && !isJsonSpace(o[i])) ++i;
      const std::string_view v = o.substr(valueStart, i - valueStart);
      if (dst && !v.empty()) {
        const bool negative = v.front() == '-';
        const std::string_view digits = negative ? v.substr(1) : v;
        if (!digits.empty() && std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
          // nlohmann reads digits as an integer only when they fit: int64 for a negative
          // number, uint64 otherwise; a longer one becomes a float (not counted).
          if (negative) {
            int64_t n = 0;
            auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
            seen.integer = ec == std::errc{} && end == v.data() + v.size();
          } else {
            std::uint64_t n = 0;
            auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), n);
            seen.integer = ec == std::errc{} && end == digits.data() + digits.size();
            if (seen.integer && n <= static_cast<std::uint64_t>(kInt64Max)) seen.value = static_cast<int64_t>(n);
          }
        }
      }
    }
    if (dst) *dst = seen;
    ws();
    if (i < o.size() && o[i] == ',') {
      ++i;
      continue;
    }
    if (i < o.size() && o[i] == '}') break;
    return std::nullopt;
  }
  if (!prompt.integer && !completion.integer) return std::nullopt;
  return Usage{prompt.value, completion.value};
}

}  // namespace

std::optional<Usage> findUsage(std::string_view text) {
  // Walk the text once, outside strings, remembering where the last `"usage": {` starts.
  size_t lastStart = std::string_view::npos;
  bool inString = false, escape = false;
  size_t stringStart = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (inString) {
      if (escape) escape = false;
      else if (c == '\\') escape = true;
      else if (c == '"') {
        inString = false;
        if (i - stringStart == 5 && text.compare(stringStart, 5, "usage") == 0) {
          size_t j = i + 1;
          while (j < text.size() && isJsonSpace(text[j])) ++j;
          if (j < text.size() && text[j] == ':') {
            ++j;
            while (j < text.size() && isJsonSpace(text[j])) ++j;
            if (j < text.size() && text[j] == '{') lastStart = j;
          }
        }
      }
      continue;
    }
    if (c == '"') {
      inString = true;
      stringStart = i + 1;
    }
  }
  if (lastStart == std::string_view::npos) return std::nullopt;
  return usageFromObjectText(text.substr(lastStart));  // reads up to the object's closing brace
}

// ---------------------------------------------------------------------------------

namespace {
constexpr std::size_t kMaxLine = 1 << 20;

// True when the line has "usage" followed by ':' and an object.
bool hasUsageObject(std::string_view l) {
  size_t pos = 0;
  while ((pos = l.find("\"usage\"", pos)) != std::string_view::npos) {
    size_t i = pos + 7;
    while (i < l.size() && (l[i] == ' ' || l[i] == '\t')) ++i;
    if (i < l.size() && l[i] == ':') {
      ++i;
      while (i < l.size() && (l[i] == ' ' || l[i] == '\t')) ++i;
      if (i < l.size() && l[i] == '{') return true;
    }
    pos += 7;
  }
  return false;
}
}  // namespace

void SseUsageScanner::line(std::string_view l) {
  if (!l.empty() && l.back() == '\r') l.remove_suffix(1);
  if (l.substr(0, 5) != "data:") return;
  std::string_view payload = l.substr(5);
  while (!payload.empty() && payload.front() == ' ') payload.remove_prefix(1);
  if (payload == "[DONE]") return;
  ++events_;
  if (!hasUsageObject(payload)) return;
  json j = json::parse(payload.begin(), payload.end(), nullptr, false);
  if (j.is_discarded()) return;
  if (auto u = usageFromJson(j)) usage_ = u;
}

void SseUsageScanner::feed(std::string_view bytes) {
  while (!bytes.empty()) {
    auto nl = bytes.find('\n');
    if (nl == std::string_view::npos) {
      if (!overflow_) {
        if (partial_.size() + bytes.size() > kMaxLine) {
          overflow_ = true;
          partial_.clear();
        } else {
          partial_.append(bytes);
        }
      }
      return;
    }
    if (overflow_) {
      overflow_ = false;  // the over-long line ends here; skip it
    } else if (partial_.size() + nl > kMaxLine) {
      partial_.clear();  // over-long however it was split: skipped, as above
    } else if (partial_.empty()) {
      line(bytes.substr(0, nl));
    } else {
      partial_.append(bytes.substr(0, nl));
      line(partial_);
      partial_.clear();
    }
    bytes.remove_prefix(nl + 1);
  }
}

}  // namespace waterline::routing
