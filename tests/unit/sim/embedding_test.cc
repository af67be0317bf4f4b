// waterline-sim's embeddings: the hashed-trigram embedder (sim/embedding.h) and the
// POST /v1/embeddings answer built on it (sim/embeddings_api.h).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "waterline/sim/embedding.h"
#include "waterline/sim/embeddings_api.h"

namespace waterline::sim {
namespace {

using json = nlohmann::json;

double dot(const std::vector<float>& a, const std::vector<float>& b) {
  double s = 0;
  for (std::size_t i = 0; i < a.size() && i < b.size(); ++i) s += static_cast<double>(a[i]) * b[i];
  return s;
}

double cosine(std::string_view a, std::string_view b) {
  const auto x = embedText(a), y = embedText(b);
  return dot(x, y) / std::sqrt(dot(x, x) * dot(y, y));
}

// A test's own base64 decoder (RFC 4648), so the encoder is checked against another
// implementation, and a float32 little-endian reader.
std::string base64Decode(std::string_view in) {
  auto val = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  std::string out;
  std::uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    if (c == '=') break;
    const int v = val(c);
    if (v < 0) ADD_FAILURE() << "not base64: " << c;
    acc = (acc << 6) | static_cast<std::uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xFF));
    }
  }
  return out;
}

std::vector<float> floatsLE(std::string_view bytes) {
  std::vector<float> v;
  for (std::size_t i = 0; i + 4 <= bytes.size(); i += 4) {
    std::uint32_t u = 0;
    for (int k = 0; k < 4; ++k) u |= std::uint32_t{static_cast<unsigned char>(bytes[i + k])} << (8 * k);
    float f;
    std::memcpy(&f, &u, 4);
    v.push_back(f);
  }
  return v;
}

const char* kSentence = "The quarterly report shows that revenue from the cloud division grew faster than expected";

TEST(Embedder, DeterministicUnitLengthAndDimensions) {
  const auto a = embedText(kSentence), b = embedText(kSentence);
  EXPECT_EQ(a, b);
  ASSERT_EQ(a.size(), static_cast<std::size_t>(kEmbeddingDimensions));
  EXPECT_NEAR(dot(a, a), 1.0, 1e-5);
  for (int dims : {1, 8, 64, 1536}) {
    const auto v = embedText(kSentence, dims);
    EXPECT_EQ(v.size(), static_cast<std::size_t>(dims));
    EXPECT_NEAR(dot(v, v), 1.0, 1e-5) << dims;
  }
  EXPECT_EQ(embedText("", 16).size(), 16u);
  EXPECT_NEAR(dot(embedText("", 16), embedText("", 16)), 1.0, 1e-6);
}

TEST(Embedder, SimilarTextsLandCloseAndUnrelatedOnesApart) {
  // Case and whitespace are normalised away: the very same vector.
  EXPECT_NEAR(cosine(kSentence, "  the QUARTERLY report   shows that revenue\tfrom the cloud division grew faster "
                                "than EXPECTED\n"),
              1.0, 1e-6);
  EXPECT_EQ(embedText("Hello   World"), embedText("hello world"));
  // One word added: a near duplicate.
  const double near = cosine(kSentence, "The quarterly report shows that revenue from the cloud division grew much "
                                        "faster than expected");
  EXPECT_GE(near, 0.9);
  EXPECT_LT(near, 1.0 - 1e-6);
  // Unrelated sentences.
  EXPECT_LT(cosine(kSentence, "Preheat the oven and whisk two eggs with sugar until pale and fluffy"), 0.5);
  EXPECT_LT(cosine("How do I reset my password?", "Penguins huddle together to survive antarctic winters"), 0.5);
}

TEST(EmbeddingsApi, FloatAnswerWithUsage) {
  auto a = answerEmbeddings(R"({"model":"embedder","input":["Hello world","abc"]})", "default");
  ASSERT_EQ(a.status, 200) << a.body;
  const json j = json::parse(a.body);
  EXPECT_EQ(j["object"], "list");
  EXPECT_EQ(j["model"], "embedder");
  ASSERT_EQ(j["data"].size(), 2u);
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(j["data"][i]["object"], "embedding");
    EXPECT_EQ(j["data"][i]["index"], i);
    ASSERT_EQ(j["data"][i]["embedding"].size(), static_cast<std::size_t>(kEmbeddingDimensions));
  }
  const auto v0 = j["data"][0]["embedding"].get<std::vector<float>>();
  EXPECT_EQ(v0, embedText("Hello world"));
  // 11 characters: 3 tokens; 3 characters: 1.
  EXPECT_EQ(j["usage"], (json{{"prompt_tokens", 4}, {"total_tokens", 4}}));
  // The default model when the body names none; a single string is one input.
  auto b = json::parse(answerEmbeddings(R"({"input":"x"})", "sim-embed").body);
  EXPECT_EQ(b["model"], "sim-embed");
  EXPECT_EQ(b["data"].size(), 1u);
  EXPECT_EQ(b["usage"]["prompt_tokens"], 1);
}

TEST(EmbeddingsApi, Base64IsLittleEndianFloat32AndDimensionsAreHonoured) {
  auto a = answerEmbeddings(R"({"input":"Hello world","encoding_format":"base64","dimensions":64})", "m");
  ASSERT_EQ(a.status, 200) << a.body;
  const json j = json::parse(a.body);
  const std::string b64 = j["data"][0]["embedding"].get<std::string>();
  EXPECT_EQ(b64.size(), (64u * 4 + 2) / 3 * 4);  // 256 bytes: 344 characters
  const auto decoded = floatsLE(base64Decode(b64));
  EXPECT_EQ(decoded, embedText("Hello world", 64));
  // Known vectors of the encoder.
  EXPECT_EQ(base64Encode(""), "");
  EXPECT_EQ(base64Encode("f"), "Zg==");
  EXPECT_EQ(base64Encode("fo"), "Zm8=");
  EXPECT_EQ(base64Encode("foo"), "Zm9v");
  EXPECT_EQ(base64Encode("foobar"), "Zm9vYmFy");
  EXPECT_EQ(embeddingToBase64({1.0f}), "AACAPw==");  // 0x3f800000, little-endian
  // Float answers honour dimensions too.
  auto f = json::parse(answerEmbeddings(R"({"input":"Hello world","dimensions":3,"encoding_format":"float"})", "m").body);
  EXPECT_EQ(f["data"][0]["embedding"].size(), 3u);
}

TEST(EmbeddingsApi, TokenIdInputsEmbedTheirDecimalText) {
  auto one = json::parse(answerEmbeddings(R"({"input":[101,2023,7]})", "m").body);
  ASSERT_EQ(one["data"].size(), 1u);  // an array of ids is one input
  EXPECT_EQ(one["data"][0]["embedding"].get<std::vector<float>>(), embedText("101 2023 7"));
  EXPECT_EQ(one["usage"]["prompt_tokens"], 3);
  auto two = json::parse(answerEmbeddings(R"({"input":[[1,2],[3]]})", "m").body);
  ASSERT_EQ(two["data"].size(), 2u);
  EXPECT_EQ(two["data"][1]["embedding"].get<std::vector<float>>(), embedText("3"));
  EXPECT_EQ(two["usage"]["total_tokens"], 3);
}

TEST(EmbeddingsApi, BadInputIsAnOpenAiShaped400WithParam) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"not json", ""},
      {"[1]", ""},
      {R"({"model":"m"})", "input"},
      {R"({"input":null})", "input"},
      {R"({"input":""})", "input"},
      {R"({"input":[]})", "input"},
      {R"({"input":7})", "input"},
      {R"({"input":["a",""]})", "input[1]"},
      {R"({"input":["a",{}]})", "input[1]"},
      {R"({"input":[["1"]]})", "input[0]"},
      {R"({"input":[[]]})", "input[0]"},
      {R"({"input":[1,-1]})", "input"},
      {R"({"input":"a","encoding_format":"int8"})", "encoding_format"},
      {R"({"input":"a","encoding_format":3})", "encoding_format"},
      {R"({"input":"a","dimensions":0})", "dimensions"},
      {R"({"input":"a","dimensions":-2})", "dimensions"},
      {R"({"input":"a","dimensions":2.5})", "dimensions"},
      {R"({"input":"a","dimensions":100000})", "dimensions"},
  };
  for (const auto& [body, param] : cases) {
    auto a = answerEmbeddings(body, "m");
    EXPECT_EQ(a.status, 400) << body;
    const json j = json::parse(a.body, nullptr, false);
    ASSERT_TRUE(j.is_object()) << a.body;
    EXPECT_EQ(j["error"]["type"], "invalid_request_error") << body;
    EXPECT_FALSE(j["error"]["message"].get<std::string>().empty());
    if (param.empty()) EXPECT_TRUE(j["error"]["param"].is_null()) << body;
    else EXPECT_EQ(j["error"]["param"], param) << body;
  }
}

}  // namespace
}  // namespace waterline::sim
