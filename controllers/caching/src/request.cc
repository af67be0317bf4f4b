#include "waterline/caching/request.h"

#include <openssl/evp.h>

#include <array>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <stdexcept>

#include "canonical.h"

namespace waterline::caching {

using json = nlohmann::json;

namespace detail {

namespace {

void writeNumber(std::string& out, double d) {
  if (!std::isfinite(d)) {  // not representable in JSON; keep it distinct anyway
    out += std::isnan(d) ? "NaN" : (d > 0 ? "Infinity" : "-Infinity");
    return;
  }
  if (d == 0) d = 0;  // -0 == 0
  // Integral values below 2^63 print as integers, so 1 == 1.0 and large integers (seeds)
  // stay exact; everything else in the shortest round-trip form.
  if (std::trunc(d) == d && std::fabs(d) < 9.2e18) {
    out += std::to_string(static_cast<std::int64_t>(d));
    return;
  }
  std::array<char, 64> buf{};
  auto r = std::to_chars(buf.data(), buf.data() + buf.size(), d);
  out.append(buf.data(), r.ptr);
}

}  // namespace

void canonicalJson(const json& j, std::string& out) {
  switch (j.type()) {
    case json::value_t::null:
    case json::value_t::discarded:
      out += "null";
      return;
    case json::value_t::boolean:
      out += j.get<bool>() ? "true" : "false";
      return;
    case json::value_t::number_integer:
      out += std::to_string(j.get<std::int64_t>());
      return;
    case json::value_t::number_unsigned:
      out += std::to_string(j.get<std::uint64_t>());
      return;
    case json::value_t::number_float:
      writeNumber(out, j.get<double>());
      return;
    case json::value_t::string:
      out += json(j.get_ref<const std::string&>()).dump(-1, ' ', false, json::error_handler_t::replace);
      return;
    case json::value_t::binary:
      out += json(j).dump(-1, ' ', false, json::error_handler_t::replace);
      return;
    case json::value_t::array: {
      out += '[';
      bool first = true;
      for (const auto& e : j) {
        if (!first) out += ',';
        first = false;
        canonicalJson(e, out);
      }
      out += ']';
      return;
    }
    case json::value_t::object: {  // nlohmann::json keeps object keys sorted (std::map)
      out += '{';
      bool first = true;
      for (auto it = j.begin(); it != j.end(); ++it) {
        if (!first) out += ',';
        first = false;
        out += json(it.key()).dump(-1, ' ', false, json::error_handler_t::replace);
        out += ':';
        canonicalJson(it.value(), out);
      }
      out += '}';
      return;
    }
  }
}

std::string sha256Hex(std::string_view data) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), md.data(), &len, EVP_sha256(), nullptr) != 1) {
    throw std::runtime_error("caching: EVP_Digest(SHA-256) failed");
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(len * 2);
  for (unsigned int i = 0; i < len; ++i) {
    out += kHex[md[i] >> 4];
    out += kHex[md[i] & 0xf];
  }
  return out;
}

}  // namespace detail

namespace {

bool present(const json& body, const char* key) {
  auto it = body.find(key);
  return it != body.end() && !it->is_null();
}

bool isNumberEqual(const json& v, double x) { return v.is_number() && v.get<double>() == x; }

// Fields that cannot change the answer: not part of either key (the body's `model` is
// replaced by the one the caller binds the key to).
constexpr const char* kIgnored[] = {"stream", "stream_options", "user", "metadata", "store", "service_tier",
                                    "parallel_tool_calls", "model"};

std::optional<Ineligible> checkEligible(const json& body, Api api) {
  for (const char* k : {"tools", "functions", "tool_choice", "function_call"}) {
    if (present(body, k)) return Ineligible{"tools"};
  }
  if (present(body, "temperature") && !isNumberEqual(body["temperature"], 0)) return Ineligible{"temperature"};
  if (present(body, "n") && !isNumberEqual(body["n"], 1)) return Ineligible{"n"};
  if (present(body, "logprobs")) {
    const json& l = body["logprobs"];
    // chat: a boolean (false is the default); completions: an integer, any of which
    // returns log probabilities.
    if (!(l.is_boolean() && !l.get<bool>())) return Ineligible{"logprobs"};
  }
  if (present(body, "top_logprobs")) return Ineligible{"logprobs"};
  if (present(body, "audio") || present(body, "modalities")) return Ineligible{"modalities"};
  return std::nullopt;
}

// The message's text content: a string as is, an array of text parts concatenated,
// null kept; anything else (images, audio, files, ...) is not eligible.
std::optional<json> canonicalContent(const json& content) {
  if (content.is_null() || content.is_string()) return content;
  if (!content.is_array()) return std::nullopt;
  std::string text;
  for (const auto& part : content) {
    if (!part.is_object()) return std::nullopt;
    auto t = part.find("type");
    auto x = part.find("text");
    if (t == part.end() || !t->is_string() || t->get_ref<const std::string&>() != "text") return std::nullopt;
    if (x == part.end() || !x->is_string()) return std::nullopt;
    if (part.size() != 2) return std::nullopt;  // e.g. cache_control: not plain text
    text += x->get_ref<const std::string&>();
  }
  return json(std::move(text));
}

// Drops nulls and fields equal to the default OpenAI documents for them, so a missing
// optional field and its explicit default key the same.
void dropDefaults(json& c, Api api) {
  for (auto it = c.begin(); it != c.end();) {
    if (it->is_null()) {
      it = c.erase(it);
    } else {
      ++it;
    }
  }
  auto dropIf = [&](const char* key, auto pred) {
    auto it = c.find(key);
    if (it != c.end() && pred(*it)) c.erase(it);
  };
  dropIf("n", [](const json& v) { return isNumberEqual(v, 1); });
  dropIf("top_p", [](const json& v) { return isNumberEqual(v, 1); });
  dropIf("presence_penalty", [](const json& v) { return isNumberEqual(v, 0); });
  dropIf("frequency_penalty", [](const json& v) { return isNumberEqual(v, 0); });
  dropIf("logprobs", [](const json& v) { return v.is_boolean() && !v.get<bool>(); });
  dropIf("logit_bias", [](const json& v) { return v.is_object() && v.empty(); });
  dropIf("response_format", [](const json& v) { return v == json{{"type", "text"}}; });
  if (api == Api::Completions) {
    dropIf("echo", [](const json& v) { return v.is_boolean() && !v.get<bool>(); });
    dropIf("best_of", [](const json& v) { return isNumberEqual(v, 1); });
  }
}

}  // namespace

std::expected<CanonicalRequest, Ineligible> canonicalize(const json& body, Api api, std::string_view model) {
  if (!body.is_object()) return std::unexpected(Ineligible{api == Api::Chat ? "content" : "prompt"});
  if (auto bad = checkEligible(body, api)) return std::unexpected(std::move(*bad));

  CanonicalRequest out;
  if (auto it = body.find("stream"); it != body.end() && it->is_boolean()) out.stream = it->get<bool>();
  if (auto it = body.find("stream_options"); it != body.end() && it->is_object()) {
    if (auto u = it->find("include_usage"); u != it->end() && u->is_boolean()) out.includeUsage = u->get<bool>();
  }

  json c = json::object();
  for (auto it = body.begin(); it != body.end(); ++it) {
    bool ignored = false;
    for (const char* k : kIgnored) ignored = ignored || it.key() == k;
    if (!ignored) c[it.key()] = it.value();
  }
  // max_tokens and max_completion_tokens are the same field (when only one is given).
  if (c.contains("max_completion_tokens") && !c.contains("max_tokens")) {
    c["max_tokens"] = std::move(c["max_completion_tokens"]);
    c.erase("max_completion_tokens");
  }
  dropDefaults(c, api);

  // The placeholder of the prompt in paramsKey: an empty object, which no canonical
  // content or prompt can be.
  json* promptSlot = nullptr;
  if (api == Api::Chat) {
    auto it = c.find("messages");
    if (it == c.end() || !it->is_array() || it->empty()) return std::unexpected(Ineligible{"content"});
    for (auto& m : *it) {
      if (!m.is_object()) return std::unexpected(Ineligible{"content"});
      auto ct = m.find("content");
      if (ct != m.end()) {
        auto canon = canonicalContent(*ct);
        if (!canon) return std::unexpected(Ineligible{"content"});
        *ct = std::move(*canon);
      }
      for (auto f = m.begin(); f != m.end();) {  // null fields the same as missing
        if (f->is_null() && f.key() != "content") {
          f = m.erase(f);
        } else {
          ++f;
        }
      }
    }
    for (auto m = it->rbegin(); m != it->rend(); ++m) {
      auto role = m->find("role");
      if (role != m->end() && role->is_string() && role->get_ref<const std::string&>() == "user") {
        auto ct = m->find("content");
        if (ct != m->end() && ct->is_string()) {
          out.promptText = ct->get<std::string>();
          promptSlot = &*ct;
        }
        break;
      }
    }
  } else {
    auto it = c.find("prompt");
    if (it == c.end() || !it->is_string()) return std::unexpected(Ineligible{"prompt"});
    out.promptText = it->get<std::string>();
    promptSlot = &*it;
  }

  const std::string prefix = std::string(api == Api::Chat ? "chat" : "completions") + '\n' +
                             std::to_string(model.size()) + ':' + std::string(model) + '\n';
  std::string s = prefix;
  detail::canonicalJson(c, s);
  out.exactKey = detail::sha256Hex(s);
  if (promptSlot != nullptr) *promptSlot = json::object();
  s = "params\n" + prefix;
  detail::canonicalJson(c, s);
  out.paramsKey = detail::sha256Hex(s);
  return out;
}

}  // namespace waterline::caching
