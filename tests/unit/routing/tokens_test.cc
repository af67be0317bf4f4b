#include "waterline/routing/tokens.h"

#include <gtest/gtest.h>

#include <limits>

namespace waterline::routing {
namespace {

using json = nlohmann::json;

TEST(Estimator, ChatCountsCharsOverFourPlusPerMessageOverhead) {
  json body = {{"model", "m"},
               {"messages", json::array({{{"role", "system"}, {"content", std::string(40, 'a')}},
                                         {{"role", "user"}, {"content", std::string(10, 'b')}}})},
               {"max_tokens", 100}};
  auto e = estimateTokens(body, ApiKind::ChatCompletions);
  EXPECT_EQ(e.promptTokens, 4 + 10 + 4 + 3);  // ceil(10/4) = 3
  EXPECT_EQ(e.maxOutputTokens, 100);
}

TEST(Estimator, ContentPartsNamesAndImages) {
  json body = {{"messages", json::array({{{"role", "user"},
                                          {"name", "abcd"},
                                          {"content", json::array({{{"type", "text"}, {"text", "12345678"}},
                                                                   {{"type", "image_url"}, {"image_url", {{"url", "x"}}}}})}}})}};
  EstimatorOptions o;
  auto e = estimateTokens(body, ApiKind::ChatCompletions, o);
  EXPECT_EQ(e.promptTokens, 4 + 1 + 2 + 85);
  EXPECT_EQ(e.maxOutputTokens, o.defaultMaxTokens);
}

TEST(Estimator, CountsCodePointsNotBytes) {
  json body = {{"messages", json::array({{{"role", "user"}, {"content", "\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9"}}})}};  // 4 x é
  EXPECT_EQ(estimateTokens(body, ApiKind::ChatCompletions).promptTokens, 4 + 1);
  EXPECT_EQ(countCodePoints("\xE2\x82\xAC" "a"), 2u);
}

TEST(Estimator, CompletionsPromptForms) {
  EXPECT_EQ(estimateTokens(json{{"prompt", std::string(8, 'x')}}, ApiKind::Completions).promptTokens, 2);
  EXPECT_EQ(estimateTokens(json{{"prompt", json::array({"abcd", "abcdefgh"})}}, ApiKind::Completions).promptTokens, 3);
  EXPECT_EQ(estimateTokens(json{{"prompt", json::array({1, 2, 3})}}, ApiKind::Completions).promptTokens, 3);
  EXPECT_EQ(estimateTokens(json{{"prompt", json::array({json::array({1, 2}), json::array({3})})}}, ApiKind::Completions).promptTokens, 3);
  EXPECT_EQ(estimateTokens(json{{"prompt", "abcd"}, {"suffix", "abcd"}}, ApiKind::Completions).promptTokens, 2);
}

TEST(Estimator, EmbeddingsInputFormsAndNoOutput) {
  auto est = [](json input) { return estimateTokens(json{{"model", "m"}, {"input", std::move(input)}}, ApiKind::Embeddings); };
  EXPECT_EQ(est(std::string(9, 'x')).promptTokens, 3);                          // ceil(9 / 4)
  EXPECT_EQ(est(json::array({"abcd", "abcdefgh", "x"})).promptTokens, 1 + 2 + 1);  // strings, each rounded up
  EXPECT_EQ(est(json::array({101, 102, 103, 104, 105})).promptTokens, 5);         // token ids: one each
  EXPECT_EQ(est(json::array({json::array({1, 2}), json::array({3, 4, 5})})).promptTokens, 5);
  EXPECT_EQ(est("\u00e9\u00e9\u00e9\u00e9\u00e9").promptTokens, 2);  // 5 code points (10 bytes): ceil(5 / 4)
  // No output tokens, whatever max_tokens or n say: a reservation is charged the input only.
  for (const auto& body : {json{{"input", "abcd"}}, json{{"input", "abcd"}, {"max_tokens", 500}, {"n", 4}},
                           json{{"input", "abcd"}, {"max_completion_tokens", 9}}}) {
    auto e = estimateTokens(body, ApiKind::Embeddings);
    EXPECT_EQ(e.promptTokens, 1) << body;
    EXPECT_EQ(e.maxOutputTokens, 0) << body;
  }
  // Read as chat, the same body would charge --default-max-tokens of output.
  EXPECT_GT(estimateTokens(json{{"input", "abcd"}}, ApiKind::ChatCompletions).maxOutputTokens, 0);
  EXPECT_EQ(estimateTokens(json{{"model", "m"}}, ApiKind::Embeddings).promptTokens, 0);
  EXPECT_EQ(estimateTokens(json{{"input", 42}}, ApiKind::Embeddings).promptTokens, 0);  // wrong type: ignored
}

TEST(Usage, EmbeddingsUsageReadsAsCompletionZero) {
  const std::string body =
      R"({"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.1,-0.2]}],"model":"m",)"
      R"("usage":{"prompt_tokens":12,"total_tokens":12}})";
  EXPECT_EQ(findUsage(body), (Usage{12, 0}));
  EXPECT_EQ(usageFromJson(json::parse(body)), (Usage{12, 0}));
  // base64 vectors are strings: a "usage" inside one is not read.
  const std::string b64 = R"({"data":[{"embedding":"AAAA"usage":{"prompt_tokens":99}"}],"usage":{"total_tokens":3,"prompt_tokens":3}})";
  EXPECT_EQ(findUsage(b64), (Usage{3, 0}));
}

TEST(Estimator, MaxTokensVariantsAndN) {
  EXPECT_EQ(estimateTokens(json{{"max_completion_tokens", 50}, {"max_tokens", 70}}, ApiKind::ChatCompletions).maxOutputTokens, 50);
  EXPECT_EQ(estimateTokens(json{{"max_tokens", 70}, {"n", 3}}, ApiKind::ChatCompletions).maxOutputTokens, 210);
  EXPECT_EQ(estimateTokens(json{{"max_tokens", -1}}, ApiKind::ChatCompletions).maxOutputTokens, 1024);
  EXPECT_EQ(estimateTokens(json{{"max_tokens", "9"}}, ApiKind::ChatCompletions).maxOutputTokens, 1024);
  EstimatorOptions o;
  o.defaultMaxTokens = 16;
  o.charsPerToken = 2;
  auto e = estimateTokens(json{{"prompt", "abcdef"}}, ApiKind::Completions, o);
  EXPECT_EQ(e.promptTokens, 3);
  EXPECT_EQ(e.maxOutputTokens, 16);
  // Wrong shapes never throw.
  EXPECT_EQ(estimateTokens(json::array(), ApiKind::ChatCompletions).promptTokens, 0);
  EXPECT_EQ(estimateTokens(json{{"messages", 5}}, ApiKind::ChatCompletions).promptTokens, 0);
  EXPECT_EQ(estimateTokens(json{{"messages", json::array({1, "x"})}}, ApiKind::ChatCompletions).promptTokens, 8);
}

TEST(Usage, FromJson) {
  auto u = usageFromJson(json::parse(R"({"id":"x","usage":{"prompt_tokens":12,"completion_tokens":34,"total_tokens":46}})"));
  ASSERT_TRUE(u);
  EXPECT_EQ(*u, (Usage{12, 34}));
  EXPECT_FALSE(usageFromJson(json::parse(R"({"usage":null})")));
  EXPECT_FALSE(usageFromJson(json::parse(R"({"usage":{}})")));
  EXPECT_FALSE(usageFromJson(json::parse(R"([1])")));
}

TEST(SseScanner, CountsEventsAndFindsTheUsageChunkAcrossSplits) {
  std::string stream =
      "data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"}}],\"usage\":null}\n\n"
      "data: {\"choices\":[{\"delta\":{\"content\":\"lo\"}}],\"usage\":null}\n\n"
      "data: {\"choices\":[],\"usage\": {\"prompt_tokens\":7,\"completion_tokens\":2}}\r\n\r\n"
      "data: [DONE]\n\n";
  for (size_t split = 1; split < stream.size(); split += 7) {
    SseUsageScanner s;
    for (size_t i = 0; i < stream.size(); i += split) s.feed(std::string_view(stream).substr(i, split));
    EXPECT_EQ(s.events(), 3) << split;
    ASSERT_TRUE(s.usage()) << split;
    EXPECT_EQ(*s.usage(), (Usage{7, 2}));
  }
  SseUsageScanner none;
  none.feed("data: {\"choices\":[]}\n\nevent: ping\n: comment\ndata: [DONE]\n\n");
  EXPECT_EQ(none.events(), 1);
  EXPECT_FALSE(none.usage());
  SseUsageScanner garbage;
  garbage.feed("data: {\"usage\": {not json\n\n");
  EXPECT_FALSE(garbage.usage());
}

}  // namespace
}  // namespace waterline::routing

namespace waterline::routing {
namespace {

TEST(Usage, FindUsageScansText) {
  EXPECT_EQ(findUsage(R"({"id":"x","choices":[{"message":{"content":"the \"usage\": {\"prompt_tokens\":99}"}}],"usage":{"prompt_tokens":12,"completion_tokens":34,"prompt_tokens_details":{"cached_tokens":0}}})"),
            (Usage{12, 34}));
  EXPECT_EQ(findUsage(R"({"usage" : { "prompt_tokens" : 1 , "completion_tokens" : 2 } })"), (Usage{1, 2}));
  EXPECT_FALSE(findUsage(R"({"usage":null})"));
  EXPECT_FALSE(findUsage(R"({"choices":[]})"));
  EXPECT_FALSE(findUsage(R"({"usage":{"prompt_tokens":1,)"));  // truncated
  EXPECT_FALSE(findUsage(""));
  // Only text inside strings mentions usage: nothing found.
  EXPECT_FALSE(findUsage(R"({"content":"\"usage\":{\"prompt_tokens\":5}"})"));
}

TEST(Usage, FindUsageReadsTheObjectAsUsageFromJsonDoes) {
  // findUsage reads the usage object without a DOM; each case must agree with
  // usageFromJson on the parsed document.
  for (const char* doc : {
           R"({"usage":{"prompt_tokens":12,"completion_tokens":34,"total_tokens":46}})",
           R"({"usage":{"completion_tokens":7}})",
           R"({"usage":{"prompt_tokens":-3,"completion_tokens":4}})",
           R"({"usage":{"prompt_tokens":1.5,"completion_tokens":2}})",
           R"({"usage":{"prompt_tokens":"12","completion_tokens":2e1}})",
           R"({"usage":{"prompt_tokens_details":{"cached_tokens":9,"x":[1,{"y":"}"}]},"prompt_tokens":5,"completion_tokens":6}})",
           R"({"usage":{"note":"a \"quoted\" } brace","prompt_tokens":8,"completion_tokens":0}})",
           R"({"usage":{"prompt_tokens":1,"prompt_tokens":2,"completion_tokens":3}})",
           R"({"usage":{ "prompt_tokens" : 10 , "completion_tokens" : 20 }})",
           R"({"usage":{"prompt_tokens":true,"completion_tokens":null}})",
           R"({"usage":{}})",
           R"({"usage":{"total_tokens":3}})",
       }) {
    EXPECT_EQ(findUsage(doc), usageFromJson(json::parse(doc))) << doc;
  }
  // Malformed objects give nothing.
  EXPECT_FALSE(findUsage(R"({"usage":{"prompt_tokens" 1}})"));
  EXPECT_FALSE(findUsage(R"({"usage":{prompt_tokens:1}})"));
  EXPECT_FALSE(findUsage(R"({"usage":{"prompt_tokens":1 "completion_tokens":2}})"));
}

// Found by the usage fuzz harness: findUsage counted digit strings that nlohmann reads as
// floats (beyond uint64, or below INT64_MIN) as integers, and read the first of duplicate
// keys where the DOM keeps the last. Each case must agree with usageFromJson.
TEST(Usage, FindUsageAgreesOnHugeNumbersAndDuplicateKeys) {
  for (const char* doc : {
           R"({"usage":{"prompt_tokens":92223372036854775808}})",
           R"({"usage":{"prompt_tokens":18446744073709551616,"completion_tokens":1e2}})",
           R"({"usage":{"prompt_tokens":18446744073709551615,"completion_tokens":2}})",
           R"({"usage":{"completion_tokens":-9223372036854775809}})",
           R"({"usage":{"completion_tokens":-9223372036854775808,"prompt_tokens":3}})",
           R"({"usage":{"prompt_tokens":1,"prompt_tokens":"x"}})",
           R"({"usage":{"prompt_tokens":1,"prompt_tokens":{"n":2}}})",
           R"({"usage":{"completion_tokens":5,"completion_tokens":null,"prompt_tokens":2}})",
           R"({"usage":{"completion_tokens":[],"completion_tokens":7}})",
       }) {
    EXPECT_EQ(findUsage(doc), usageFromJson(json::parse(doc))) << doc;
  }
}

// A line over the 1 MiB limit was skipped when it came in pieces but read when it came
// in one piece (or when its last piece pushed it over): the usage and event count of a
// stream depended on how TCP split it.
TEST(SseUsageScanner, OverlongLineIsSkippedHoweverItIsSplit) {
  const std::string pad(1 << 20, 'x');
  const std::string stream = "data: {\"pad\":\"" + pad + "\",\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":1}}\n" +
                             "data: {\"choices\":[]}\n";
  SseUsageScanner whole;
  whole.feed(stream);
  for (size_t chunk : {size_t{1} << 16, size_t{1} << 20, (size_t{1} << 20) + 3, size_t{4096}}) {
    SseUsageScanner s;
    for (size_t pos = 0; pos < stream.size(); pos += chunk) s.feed(std::string_view(stream).substr(pos, chunk));
    EXPECT_EQ(s.usage(), whole.usage()) << "chunk " << chunk;
    EXPECT_EQ(s.events(), whole.events()) << "chunk " << chunk;
  }
  EXPECT_FALSE(whole.usage());
  EXPECT_EQ(whole.events(), 1);
  // Just under the limit, the line is read whole or in pieces.
  const std::string fits = "data: {\"usage\":{\"prompt_tokens\":3},\"pad\":\"" +
                           std::string((1 << 20) - 64, 'y') + "\"}\n";
  SseUsageScanner a, b;
  a.feed(fits);
  for (size_t pos = 0; pos < fits.size(); pos += 1000) b.feed(std::string_view(fits).substr(pos, 1000));
  ASSERT_TRUE(a.usage());
  EXPECT_EQ(a.usage()->promptTokens, 3);
  EXPECT_EQ(b.usage(), a.usage());
}

// Finding 1 of the hardening issue: max_tokens x n with each side capped separately
// overflowed to a negative estimate, which admission clamped to a zero charge.
TEST(Estimator, HugeMaxTokensTimesNSaturatesInsteadOfWrapping) {
  for (const char* key : {"max_tokens", "max_completion_tokens"}) {
    for (json huge : {json(INT64_MAX), json(UINT64_MAX), json(INT64_MAX / 4), json(int64_t{1} << 57)}) {
      json body = {{"messages", json::array({{{"role", "user"}, {"content", "hi"}}})}, {key, huge}, {"n", 128}};
      auto e = estimateTokens(body, ApiKind::ChatCompletions);
      EXPECT_EQ(e.maxOutputTokens, INT64_MAX) << key << "=" << huge.dump();
      EXPECT_GT(e.promptTokens, 0);
    }
  }
  // Below the limit the product is exact.
  json body = {{"prompt", "x"}, {"max_tokens", 1'000'000}, {"n", 128}};
  EXPECT_EQ(estimateTokens(body, ApiKind::Completions).maxOutputTokens, 128'000'000);
}

TEST(Estimator, HostileOptionsAndCountsNeverGoNegative) {
  EstimatorOptions o;
  o.tokensPerMessage = INT64_MAX;
  o.tokensPerImage = INT64_MAX;
  o.defaultMaxTokens = -5;
  o.charsPerToken = std::numeric_limits<double>::quiet_NaN();
  json parts = json::array();
  for (int i = 0; i < 4; ++i) parts.push_back({{"type", "image_url"}, {"image_url", {{"url", "x"}}}});
  json body = {{"messages", json::array({{{"role", "user"}, {"content", parts}}, {{"role", "user"}, {"content", "abcd"}}})}};
  auto e = estimateTokens(body, ApiKind::ChatCompletions, o);
  EXPECT_EQ(e.promptTokens, INT64_MAX);
  EXPECT_EQ(e.maxOutputTokens, 0);
}

}  // namespace
}  // namespace waterline::routing
