#include "waterline/sim/embeddings_api.h"

#include <bit>
#include <cstdint>
#include <optional>

#include <nlohmann/json.hpp>

#include "waterline/sim/embedding.h"

namespace waterline::sim {

using json = nlohmann::json;

namespace {

EmbeddingsAnswer error(std::string message, std::string param, std::string code) {
  json e = {{"message", std::move(message)},
            {"type", "invalid_request_error"},
            {"param", param.empty() ? json(nullptr) : json(std::move(param))},
            {"code", std::move(code)}};
  return {400, json{{"error", std::move(e)}}.dump(-1, ' ', false, json::error_handler_t::replace)};
}

bool isTokenId(const json& v) { return v.is_number_unsigned() || (v.is_number_integer() && v.get<int64_t>() >= 0); }

// Token ids as the text the sim embeds: "12 7 3".
std::optional<std::string> idsText(const json& arr) {
  std::string out;
  for (const auto& v : arr) {
    if (!isTokenId(v)) return std::nullopt;
    if (!out.empty()) out.push_back(' ');
    out += v.dump();
  }
  return out;
}

struct Input {
  std::string text;
  int tokens = 0;
};

}  // namespace

int embeddingTokens(std::string_view text) {
  const std::size_t t = (text.size() + 3) / 4;
  return t < 1 ? 1 : t > 1'000'000'000 ? 1'000'000'000 : static_cast<int>(t);
}

std::string base64Encode(std::string_view in) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 3 <= in.size(); i += 3) {
    const std::uint32_t n = (std::uint32_t{static_cast<unsigned char>(in[i])} << 16) |
                            (std::uint32_t{static_cast<unsigned char>(in[i + 1])} << 8) |
                            std::uint32_t{static_cast<unsigned char>(in[i + 2])};
    out.push_back(kAlphabet[(n >> 18) & 63]);
    out.push_back(kAlphabet[(n >> 12) & 63]);
    out.push_back(kAlphabet[(n >> 6) & 63]);
    out.push_back(kAlphabet[n & 63]);
  }
  if (const std::size_t rest = in.size() - i; rest > 0) {
    std::uint32_t n = std::uint32_t{static_cast<unsigned char>(in[i])} << 16;
    if (rest == 2) n |= std::uint32_t{static_cast<unsigned char>(in[i + 1])} << 8;
    out.push_back(kAlphabet[(n >> 18) & 63]);
    out.push_back(kAlphabet[(n >> 12) & 63]);
    out.push_back(rest == 2 ? kAlphabet[(n >> 6) & 63] : '=');
    out.push_back('=');
  }
  return out;
}

std::string embeddingToBase64(const std::vector<float>& v) {
  std::string bytes;
  bytes.reserve(v.size() * 4);
  for (float f : v) {
    const auto u = std::bit_cast<std::uint32_t>(f);
    for (int k = 0; k < 4; ++k) bytes.push_back(static_cast<char>((u >> (8 * k)) & 0xFF));  // little-endian
  }
  return base64Encode(bytes);
}

EmbeddingsAnswer answerEmbeddings(std::string_view requestBody, std::string_view defaultModel) {
  const json body = json::parse(requestBody.begin(), requestBody.end(), nullptr, false);
  if (body.is_discarded() || !body.is_object())
    return error("The request body must be a JSON object.", "", "invalid_json");

  std::vector<Input> inputs;
  auto in = body.find("input");
  if (in == body.end() || in->is_null()) return error("Missing required parameter: 'input'.", "input", "missing_required_parameter");
  if (in->is_string()) {
    const auto& s = in->get_ref<const std::string&>();
    if (s.empty()) return error("Invalid 'input': empty string.", "input", "empty_string");
    inputs.push_back({s, embeddingTokens(s)});
  } else if (in->is_array()) {
    if (in->empty()) return error("Invalid 'input': empty array.", "input", "empty_array");
    if ((*in)[0].is_number()) {  // one input given as token ids
      auto text = idsText(*in);
      if (!text) return error("Invalid 'input': expected an array of non-negative integer token ids.", "input", "invalid_type");
      inputs.push_back({*text, static_cast<int>(in->size())});
    } else {
      for (std::size_t i = 0; i < in->size(); ++i) {
        const json& v = (*in)[i];
        const std::string p = "input[" + std::to_string(i) + "]";
        if (v.is_string()) {
          const auto& s = v.get_ref<const std::string&>();
          if (s.empty()) return error("Invalid '" + p + "': empty string.", p, "empty_string");
          inputs.push_back({s, embeddingTokens(s)});
        } else if (v.is_array()) {
          auto text = v.empty() ? std::nullopt : idsText(v);
          if (!text) return error("Invalid '" + p + "': expected a non-empty array of token ids.", p, "invalid_type");
          inputs.push_back({*text, static_cast<int>(v.size())});
        } else {
          return error("Invalid type for '" + p + "': expected a string or an array of token ids.", p, "invalid_type");
        }
      }
    }
  } else {
    return error("Invalid type for 'input': expected a string or array.", "input", "invalid_type");
  }

  bool base64 = false;
  if (auto f = body.find("encoding_format"); f != body.end() && !f->is_null()) {
    if (!f->is_string() || (*f != "float" && *f != "base64"))
      return error("Invalid 'encoding_format': expected 'float' or 'base64'.", "encoding_format", "invalid_value");
    base64 = *f == "base64";
  }
  int dims = kEmbeddingDimensions;
  if (auto d = body.find("dimensions"); d != body.end() && !d->is_null()) {
    const bool ok = d->is_number_integer() && !d->is_number_unsigned() ? d->get<int64_t>() > 0 && d->get<int64_t>() <= kMaxEmbeddingDimensions
                    : d->is_number_unsigned() ? d->get<std::uint64_t>() > 0 && d->get<std::uint64_t>() <= kMaxEmbeddingDimensions
                                              : false;
    if (!ok)
      return error("Invalid 'dimensions': expected an integer from 1 to " + std::to_string(kMaxEmbeddingDimensions) + ".",
                   "dimensions", "invalid_value");
    dims = d->get<int>();
  }
  std::string model(defaultModel);
  if (auto m = body.find("model"); m != body.end() && m->is_string() && !m->get_ref<const std::string&>().empty())
    model = m->get<std::string>();

  json data = json::array();
  std::int64_t tokens = 0;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    const auto v = embedText(inputs[i].text, dims);
    json item = {{"object", "embedding"}, {"index", i}};
    item["embedding"] = base64 ? json(embeddingToBase64(v)) : json(v);
    data.push_back(std::move(item));
    tokens += inputs[i].tokens;
  }
  json out = {{"object", "list"},
              {"data", std::move(data)},
              {"model", model},
              {"usage", {{"prompt_tokens", tokens}, {"total_tokens", tokens}}}};
  return {200, out.dump(-1, ' ', false, json::error_handler_t::replace)};
}

}  // namespace waterline::sim
