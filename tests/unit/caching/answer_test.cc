#include "waterline/caching/answer.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace waterline::caching {
namespace {

using json = nlohmann::json;

const char* kChatBody = R"({
  "id": "chatcmpl-abc", "object": "chat.completion", "created": 1700000000, "model": "gpt-4o-2024-08-06",
  "system_fingerprint": "fp_123",
  "choices": [{"index": 0, "message": {"role": "assistant", "content": "Paris.", "refusal": null},
               "logprobs": null, "finish_reason": "stop"}],
  "usage": {"prompt_tokens": 12, "completion_tokens": 2, "total_tokens": 14}})";

StoredAnswer chatAnswer() {
  StoredAnswer a;
  a.api = Api::Chat;
  a.model = "gpt-4o-2024-08-06";
  a.systemFingerprint = "fp_123";
  a.choices = {{0, "Paris.", "stop"}};
  a.promptTokens = 12;
  a.completionTokens = 2;
  return a;
}

TEST(AnswerFromJson, PlainChatCompletion) {
  auto a = answerFromJson(kChatBody, Api::Chat);
  ASSERT_TRUE(a);
  EXPECT_EQ(*a, chatAnswer());
  EXPECT_GT(a->bytes(), sizeof(StoredAnswer));
}

TEST(AnswerFromJson, PlainCompletionAndChoicesSortedByIndex) {
  auto a = answerFromJson(R"({"id":"cmpl-1","object":"text_completion","created":1,"model":"m",
    "choices":[{"text":" two","index":1,"logprobs":null,"finish_reason":"length"},
               {"text":" one","index":0,"logprobs":null,"finish_reason":"stop"}],
    "usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}})",
                          Api::Completions);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->api, Api::Completions);
  ASSERT_EQ(a->choices.size(), 2u);
  EXPECT_EQ(a->choices[0], (StoredChoice{0, " one", "stop"}));
  EXPECT_EQ(a->choices[1], (StoredChoice{1, " two", "length"}));
  EXPECT_FALSE(a->systemFingerprint);
  EXPECT_EQ(a->promptTokens, 3);
  EXPECT_EQ(a->completionTokens, 4);
}

TEST(AnswerFromJson, RefusesUnsafeShapes) {
  auto mutate = [](auto f) {
    json j = json::parse(kChatBody);
    f(j);
    return j.dump();
  };
  auto& c = "choices";
  const std::vector<std::pair<const char*, std::string>> bad = {
      {"not json", "{nope"},
      {"not an object", "[1,2]"},
      {"no choices", mutate([&](json& j) { j.erase(c); })},
      {"empty choices", mutate([&](json& j) { j[c] = json::array(); })},
      {"tool_calls", mutate([&](json& j) {
         j[c][0]["message"]["tool_calls"] = json::array({{{"id", "t"}, {"type", "function"}}});
       })},
      {"function_call", mutate([&](json& j) { j[c][0]["message"]["function_call"] = {{"name", "f"}}; })},
      {"refusal", mutate([&](json& j) { j[c][0]["message"]["refusal"] = "I can't."; })},
      {"logprobs", mutate([&](json& j) { j[c][0]["logprobs"] = {{"content", json::array()}}; })},
      {"audio", mutate([&](json& j) { j[c][0]["message"]["audio"] = {{"id", "a"}}; })},
      {"null content", mutate([&](json& j) { j[c][0]["message"]["content"] = nullptr; })},
      {"array content", mutate([&](json& j) { j[c][0]["message"]["content"] = json::array({"x"}); })},
      {"no finish_reason", mutate([&](json& j) { j[c][0].erase("finish_reason"); })},
      {"null finish_reason", mutate([&](json& j) { j[c][0]["finish_reason"] = nullptr; })},
      {"no message", mutate([&](json& j) { j[c][0].erase("message"); })},
      {"duplicate index", mutate([&](json& j) { j[c].push_back(j[c][0]); })},
  };
  for (const auto& [what, body] : bad) EXPECT_FALSE(answerFromJson(body, Api::Chat)) << what;
  EXPECT_FALSE(answerFromJson(R"({"choices":[{"text":"x","index":0,"logprobs":{"tokens":[]},"finish_reason":"stop"}]})",
                              Api::Completions));
  EXPECT_FALSE(answerFromJson(R"({"choices":[{"index":0,"finish_reason":"stop"}]})", Api::Completions));
}

// What renderSse(chatAnswer(), "chatcmpl-x", 1700000000, ...) must produce.
const std::string kChatSse =
    R"(data: {"id":"chatcmpl-x","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-2024-08-06","system_fingerprint":"fp_123","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]})"
    "\n\n"
    R"(data: {"id":"chatcmpl-x","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-2024-08-06","system_fingerprint":"fp_123","choices":[{"index":0,"delta":{"content":"Paris."},"logprobs":null,"finish_reason":null}]})"
    "\n\n"
    R"(data: {"id":"chatcmpl-x","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-2024-08-06","system_fingerprint":"fp_123","choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}]})"
    "\n\n"
    "data: [DONE]\n\n";

const std::string kChatSseUsage =
    R"(data: {"id":"chatcmpl-x","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-2024-08-06","system_fingerprint":"fp_123","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}],"usage":null})"
    "\n\n"
    R"(data: {"id":"chatcmpl-x","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-2024-08-06","system_fingerprint":"fp_123","choices":[{"index":0,"delta":{"content":"Paris."},"logprobs":null,"finish_reason":null}],"usage":null})"
    "\n\n"
    R"(data: {"id":"chatcmpl-x","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-2024-08-06","system_fingerprint":"fp_123","choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}],"usage":null})"
    "\n\n"
    R"(data: {"id":"chatcmpl-x","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-2024-08-06","system_fingerprint":"fp_123","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":2,"total_tokens":14}})"
    "\n\n"
    "data: [DONE]\n\n";

TEST(RenderSse, ChatByteForByte) {
  EXPECT_EQ(renderSse(chatAnswer(), "chatcmpl-x", 1700000000, false), kChatSse);
  EXPECT_EQ(renderSse(chatAnswer(), "chatcmpl-x", 1700000000, true), kChatSseUsage);
}

TEST(RenderSse, CompletionsByteForByte) {
  StoredAnswer a;
  a.api = Api::Completions;
  a.model = "davinci-002";
  a.choices = {{0, " \"quoted\"\n", "length"}};
  a.promptTokens = 5;
  a.completionTokens = 3;
  const std::string expected =
      R"(data: {"id":"cmpl-1","object":"text_completion","created":42,"model":"davinci-002","choices":[{"text":" \"quoted\"\n","index":0,"logprobs":null,"finish_reason":null}]})"
      "\n\n"
      R"(data: {"id":"cmpl-1","object":"text_completion","created":42,"model":"davinci-002","choices":[{"text":"","index":0,"logprobs":null,"finish_reason":"length"}]})"
      "\n\n"
      "data: [DONE]\n\n";
  EXPECT_EQ(renderSse(a, "cmpl-1", 42, false), expected);
  // Collected back, it is the same answer.
  SseAnswerCollector col(Api::Completions);
  col.feed(expected);
  auto back = col.finish();
  ASSERT_TRUE(back);
  a.promptTokens = a.completionTokens = 0;  // no usage chunk without include_usage
  EXPECT_EQ(*back, a);
}

TEST(RenderJson, ExactShapeAndRoundTrips) {
  const auto a = chatAnswer();
  const std::string j = renderJson(a, "chatcmpl-x", 1700000000);
  EXPECT_EQ(j,
            R"({"id":"chatcmpl-x","object":"chat.completion","created":1700000000,"model":"gpt-4o-2024-08-06","system_fingerprint":"fp_123","choices":[{"index":0,"message":{"role":"assistant","content":"Paris."},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":2,"total_tokens":14}})");
  auto back = answerFromJson(j, Api::Chat);
  ASSERT_TRUE(back);
  EXPECT_EQ(*back, a);

  StoredAnswer c;
  c.api = Api::Completions;
  c.model = "m";
  c.choices = {{0, "a", "stop"}, {1, "ünïcödé ✓", "length"}};
  c.promptTokens = 7;
  c.completionTokens = 9;
  auto cb = answerFromJson(renderJson(c, "cmpl", 1), Api::Completions);
  ASSERT_TRUE(cb);
  EXPECT_EQ(*cb, c);
  EXPECT_EQ(json::parse(renderJson(c, "cmpl", 1))["usage"]["total_tokens"], 16);
}

TEST(SseAnswerCollector, EveryByteSplitGivesTheSameAnswer) {
  // An upstream-like stream: CRLF line ends, a comment, several content deltas, two
  // choices interleaved and a usage chunk.
  const std::string stream =
      ": keep-alive\r\n\r\n"
      R"(data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"gpt-4o","system_fingerprint":"fp_9","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null},{"index":1,"delta":{"role":"assistant","content":""},"finish_reason":null}]})"
      "\r\n\r\n"
      R"(data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[{"index":1,"delta":{"content":"Bon"},"finish_reason":null}]})"
      "\r\n\r\n"
      R"(data:{"id":"c","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[{"index":0,"delta":{"content":"Hel"},"finish_reason":null}]})"
      "\n\n"
      R"(data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[{"index":0,"delta":{"content":"lo\n"},"finish_reason":null}]})"
      "\r\r"
      R"(data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[{"index":1,"delta":{"content":"jour"},"finish_reason":"stop"},{"index":0,"delta":{},"finish_reason":"length"}]})"
      "\n\n"
      R"(data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[],"usage":{"prompt_tokens":8,"completion_tokens":5,"total_tokens":13}})"
      "\r\n\r\n"
      "data: [DONE]\r\n\r\n";
  StoredAnswer want;
  want.api = Api::Chat;
  want.model = "gpt-4o";
  want.systemFingerprint = "fp_9";
  want.choices = {{0, "Hello\n", "length"}, {1, "Bonjour", "stop"}};
  want.promptTokens = 8;
  want.completionTokens = 5;
  {
    SseAnswerCollector whole(Api::Chat);
    whole.feed(stream);
    auto got = whole.finish();
    ASSERT_TRUE(got);
    EXPECT_EQ(*got, want);
  }
  for (std::size_t i = 0; i <= stream.size(); ++i) {
    SseAnswerCollector c(Api::Chat);
    c.feed(std::string_view(stream).substr(0, i));
    c.feed(std::string_view(stream).substr(i));
    auto got = c.finish();
    ASSERT_TRUE(got) << "split at " << i;
    ASSERT_EQ(*got, want) << "split at " << i;
  }
  SseAnswerCollector bytes(Api::Chat);
  for (char ch : stream) bytes.feed(std::string_view(&ch, 1));
  ASSERT_TRUE(bytes.finish());
  EXPECT_EQ(*bytes.finish(), want);
  // And what renderSse produces, split anywhere, collects back to the answer.
  for (std::size_t i = 0; i <= kChatSseUsage.size(); i += 7) {
    SseAnswerCollector c(Api::Chat);
    c.feed(std::string_view(kChatSseUsage).substr(0, i));
    c.feed(std::string_view(kChatSseUsage).substr(i));
    auto got = c.finish();
    ASSERT_TRUE(got);
    ASSERT_EQ(*got, chatAnswer());
  }
}

TEST(SseAnswerCollector, Refusals) {
  auto collect = [](const std::string& s, std::size_t maxBytes = 1 << 20) {
    SseAnswerCollector c(Api::Chat, maxBytes);
    c.feed(s);
    return c.finish();
  };
  ASSERT_TRUE(collect(kChatSse));
  EXPECT_FALSE(collect(kChatSse.substr(0, kChatSse.size() - std::string("data: [DONE]\n\n").size()))) << "no [DONE]";
  EXPECT_FALSE(collect(kChatSse.substr(0, kChatSse.size() - 2))) << "[DONE] event not terminated";
  EXPECT_FALSE(collect(kChatSse.substr(0, kChatSse.size() / 2))) << "cut";
  EXPECT_FALSE(collect("")) << "empty";
  EXPECT_FALSE(collect("data: [DONE]\n\n")) << "no choices";
  EXPECT_FALSE(collect(R"(data: {"error":{"message":"overloaded","type":"server_error"}})"
                       "\n\n" +
                       kChatSse))
      << "error object";
  EXPECT_FALSE(collect("event: error\ndata: {\"message\":\"x\"}\n\n" + kChatSse)) << "error event";
  EXPECT_FALSE(collect(kChatSse, kChatSse.size() - 1)) << "over maxBytes";
  EXPECT_TRUE(collect(kChatSse, kChatSse.size())) << "exactly maxBytes";
  const std::string head =
      R"(data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":)";
  const std::string tail = R"(,"finish_reason":"stop"}]})"
                           "\n\ndata: [DONE]\n\n";
  EXPECT_TRUE(collect(head + R"({"content":"ok"})" + tail));
  EXPECT_FALSE(collect(head + R"({"tool_calls":[{"index":0,"id":"t","function":{"name":"f"}}]})" + tail)) << "tool_calls";
  EXPECT_FALSE(collect(head + R"({"refusal":"no"})" + tail)) << "refusal";
  EXPECT_FALSE(collect(head + R"({"content":"x"},"logprobs":{"content":[]})" + tail)) << "logprobs";
  EXPECT_FALSE(collect(head + R"({"content":"x"})" + R"(,"finish_reason":null}]})"
                                                        "\n\ndata: [DONE]\n\n"))
      << "no finish_reason";
  EXPECT_FALSE(collect("data: {not json\n\n" + kChatSse)) << "bad json";
}

}  // namespace
}  // namespace waterline::caching
