#include "waterline/caching/request.h"

#include <gtest/gtest.h>

#include <set>

namespace waterline::caching {
namespace {

using json = nlohmann::json;

json chat(std::string last = "What is the capital of France?") {
  return json{{"model", "gpt-4o"},
              {"messages", json::array({{{"role", "system"}, {"content", "Be brief."}},
                                        {{"role", "user"}, {"content", "hello"}},
                                        {{"role", "assistant"}, {"content", "Hi! How can I help?"}},
                                        {{"role", "user"}, {"content", last}}})},
              {"max_tokens", 100}};
}

CanonicalRequest canon(const json& body, Api api = Api::Chat, std::string_view model = "gpt-4o@2024-08-06") {
  auto r = canonicalize(body, api, model);
  EXPECT_TRUE(r.has_value()) << body.dump() << " -> " << (r ? "" : r.error().reason);
  return r.value_or(CanonicalRequest{});
}

std::string key(const json& body, Api api = Api::Chat) { return canon(body, api).exactKey; }

std::string reason(const json& body, Api api = Api::Chat) {
  auto r = canonicalize(body, api, "m");
  return r ? std::string("eligible") : r.error().reason;
}

TEST(Canonicalize, KeysAreLowerHexSha256) {
  auto c = canon(chat());
  ASSERT_EQ(c.exactKey.size(), 64u);
  ASSERT_EQ(c.paramsKey.size(), 64u);
  for (char ch : c.exactKey + c.paramsKey) EXPECT_TRUE((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f')) << ch;
  EXPECT_NE(c.exactKey, c.paramsKey);
  EXPECT_EQ(c.promptText, "What is the capital of France?");
  EXPECT_FALSE(c.stream);
  EXPECT_FALSE(c.includeUsage);
}

TEST(Canonicalize, Deterministic) { EXPECT_EQ(key(chat()), key(chat())); }

TEST(Canonicalize, ModelChangesKey) {
  const auto base = chat();
  EXPECT_NE(canonicalize(base, Api::Chat, "gpt-4o@1")->exactKey, canonicalize(base, Api::Chat, "gpt-4o@2")->exactKey);
  EXPECT_NE(canonicalize(base, Api::Chat, "gpt-4o@1")->paramsKey, canonicalize(base, Api::Chat, "gpt-4o@2")->paramsKey);
  // The model bound by the caller counts, not the body's alias.
  auto other = base;
  other["model"] = "alias";
  EXPECT_EQ(key(base), key(other));
}

TEST(Canonicalize, EachMessageRoleAndContentChangesKey) {
  const auto base = chat();
  const auto k = key(base);
  std::set<std::string> keys{k};
  for (std::size_t i = 0; i < base["messages"].size(); ++i) {
    auto role = base;
    role["messages"][i]["role"] = role["messages"][i]["role"] == "user" ? "assistant" : "user";
    auto content = base;
    content["messages"][i]["content"] = content["messages"][i]["content"].get<std::string>() + ".";
    auto name = base;
    name["messages"][i]["name"] = "bob";
    EXPECT_TRUE(keys.insert(key(role)).second) << "role of message " << i;
    EXPECT_TRUE(keys.insert(key(content)).second) << "content of message " << i;
    EXPECT_TRUE(keys.insert(key(name)).second) << "name of message " << i;
  }
  auto dropped = base;
  dropped["messages"].erase(1);
  EXPECT_TRUE(keys.insert(key(dropped)).second);
}

TEST(Canonicalize, ParametersChangeKey) {
  const auto base = chat();
  std::set<std::string> keys{key(base)};
  auto add = [&](const char* what, json b) { EXPECT_TRUE(keys.insert(key(b)).second) << what; };
  auto t0 = base;
  t0["temperature"] = 0;
  add("temperature 0 vs unset", t0);
  auto mt = base;
  mt["max_tokens"] = 101;
  add("max_tokens", mt);
  auto stop = base;
  stop["stop"] = json::array({"\n"});
  add("stop", stop);
  auto seed = base;
  seed["seed"] = 42;
  add("seed", seed);
  auto seed2 = base;
  seed2["seed"] = 43;
  add("seed value", seed2);
  auto rf = base;
  rf["response_format"] = {{"type", "json_object"}};
  add("response_format", rf);
  auto unknown = base;
  unknown["x_vendor_knob"] = true;
  add("unknown field", unknown);
  auto topp = base;
  topp["top_p"] = 0.5;
  add("top_p", topp);
}

TEST(Canonicalize, WhatDoesNotChangeKey) {
  const auto base = chat();
  const auto k = key(base);
  // Key order.
  json reordered = json::parse(R"({"max_tokens":100,"messages":[{"content":"Be brief.","role":"system"},
     {"content":"hello","role":"user"},{"content":"Hi! How can I help?","role":"assistant"},
     {"content":"What is the capital of France?","role":"user"}],"model":"gpt-4o"})");
  EXPECT_EQ(key(reordered), k);
  // 1 vs 1.0 (and 100 vs 100.0).
  auto f = base;
  f["max_tokens"] = 100.0;
  EXPECT_EQ(key(f), k);
  auto t1 = base;
  t1["temperature"] = 0;
  auto t2 = base;
  t2["temperature"] = 0.0;
  EXPECT_EQ(key(t1), key(t2));
  EXPECT_EQ(key(json::parse(R"({"messages":[{"role":"user","content":"x"}],"seed":1})")),
            key(json::parse(R"({"messages":[{"role":"user","content":"x"}],"seed":1.0})")));
  // Fields that cannot change the answer.
  auto s = base;
  s["stream"] = true;
  s["stream_options"] = {{"include_usage", true}};
  s["user"] = "u-123";
  s["metadata"] = {{"a", "b"}};
  s["store"] = false;
  s["service_tier"] = "auto";
  s["parallel_tool_calls"] = true;
  auto cs = canon(s);
  EXPECT_EQ(cs.exactKey, k);
  EXPECT_TRUE(cs.stream);
  EXPECT_TRUE(cs.includeUsage);
  // max_tokens vs max_completion_tokens.
  auto mct = base;
  mct.erase("max_tokens");
  mct["max_completion_tokens"] = 100;
  EXPECT_EQ(key(mct), k);
  // A string content vs text parts.
  auto parts = base;
  parts["messages"][3]["content"] = json::array({{{"type", "text"}, {"text", "What is the capital "}},
                                                  {{"type", "text"}, {"text", "of France?"}}});
  auto cp = canon(parts);
  EXPECT_EQ(cp.exactKey, k);
  EXPECT_EQ(cp.promptText, "What is the capital of France?");
  auto one = json::parse(R"({"messages":[{"role":"user","content":"hi"}]})");
  auto onePart = json::parse(R"({"messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}]})");
  EXPECT_EQ(key(one), key(onePart));
  // Explicit documented defaults and nulls vs missing.
  auto d = base;
  d["n"] = 1;
  d["top_p"] = 1;
  d["presence_penalty"] = 0;
  d["frequency_penalty"] = 0.0;
  d["logprobs"] = false;
  d["stop"] = nullptr;
  d["seed"] = nullptr;
  d["response_format"] = {{"type", "text"}};
  EXPECT_EQ(key(d), k);
}

TEST(Canonicalize, LargeIntegersStayExact) {
  auto a = chat();
  a["seed"] = 9007199254740993LL;  // 2^53 + 1: not a double
  auto b = chat();
  b["seed"] = 9007199254740992LL;
  EXPECT_NE(key(a), key(b));
}

TEST(Canonicalize, ParamsKeyIgnoresOnlyTheLastUserMessage) {
  auto a = canon(chat("What is the capital of France?"));
  auto b = canon(chat("what's the capital of france"));
  EXPECT_NE(a.exactKey, b.exactKey);
  EXPECT_EQ(a.paramsKey, b.paramsKey);
  EXPECT_EQ(b.promptText, "what's the capital of france");

  auto earlier = chat("What is the capital of France?");
  earlier["messages"][1]["content"] = "hello there";
  EXPECT_NE(canon(earlier).paramsKey, a.paramsKey);
  auto sys = chat();
  sys["messages"][0]["content"] = "Be verbose.";
  EXPECT_NE(canon(sys).paramsKey, a.paramsKey);
  auto param = chat();
  param["max_tokens"] = 50;
  EXPECT_NE(canon(param).paramsKey, a.paramsKey);
  auto t0 = chat();
  t0["temperature"] = 0;
  EXPECT_NE(canon(t0).paramsKey, a.paramsKey);
  auto role = chat();  // the last user message's name is a parameter, not the prompt
  role["messages"][3]["name"] = "bob";
  EXPECT_NE(canon(role).paramsKey, a.paramsKey);
  auto model = canonicalize(chat(), Api::Chat, "other-model");
  EXPECT_NE(model->paramsKey, a.paramsKey);
}

TEST(Canonicalize, PromptIsTheLastUserMessageEvenWithAnAssistantAfterIt) {
  auto b = chat("Q");
  b["messages"].push_back({{"role", "assistant"}, {"content", "prefill"}});
  auto c = canon(b);
  EXPECT_EQ(c.promptText, "Q");
}

TEST(Canonicalize, Completions) {
  json a = {{"model", "m"}, {"prompt", "Once upon a time"}, {"max_tokens", 16}};
  json b = a;
  b["prompt"] = "Once upon a time,";
  auto ca = canon(a, Api::Completions);
  auto cb = canon(b, Api::Completions);
  EXPECT_EQ(ca.promptText, "Once upon a time");
  EXPECT_NE(ca.exactKey, cb.exactKey);
  EXPECT_EQ(ca.paramsKey, cb.paramsKey);
  json c = a;
  c["echo"] = false;
  c["best_of"] = 1;
  EXPECT_EQ(canon(c, Api::Completions).exactKey, ca.exactKey);
  json e = a;
  e["suffix"] = "The end.";
  EXPECT_NE(canon(e, Api::Completions).exactKey, ca.exactKey);
  EXPECT_NE(canon(e, Api::Completions).paramsKey, ca.paramsKey);
  // The same fields under the other API never share a key.
  json asChat = {{"messages", json::array({{{"role", "user"}, {"content", "Once upon a time"}}})}, {"max_tokens", 16}};
  json asPrompt = {{"prompt", "Once upon a time"}, {"max_tokens", 16}};
  EXPECT_NE(canon(asChat).exactKey, canon(asPrompt, Api::Completions).exactKey);
}

TEST(Eligibility, EveryReason) {
  auto with = [](const char* k, json v) {
    auto b = chat();
    b[k] = std::move(v);
    return b;
  };
  EXPECT_EQ(reason(chat()), "eligible");
  EXPECT_EQ(reason(with("tools", json::array({{{"type", "function"}}}))), "tools");
  EXPECT_EQ(reason(with("functions", json::array({{{"name", "f"}}}))), "tools");
  EXPECT_EQ(reason(with("tool_choice", "auto")), "tools");
  EXPECT_EQ(reason(with("function_call", "auto")), "tools");
  EXPECT_EQ(reason(with("temperature", 0.7)), "temperature");
  EXPECT_EQ(reason(with("temperature", 1)), "temperature");
  EXPECT_EQ(reason(with("temperature", 0)), "eligible");
  EXPECT_EQ(reason(with("n", 2)), "n");
  EXPECT_EQ(reason(with("n", 1)), "eligible");
  EXPECT_EQ(reason(with("logprobs", true)), "logprobs");
  EXPECT_EQ(reason(with("logprobs", false)), "eligible");
  EXPECT_EQ(reason(with("top_logprobs", 2)), "logprobs");
  EXPECT_EQ(reason(with("audio", {{"voice", "alloy"}})), "modalities");
  EXPECT_EQ(reason(with("modalities", json::array({"text", "audio"}))), "modalities");
  auto image = chat();
  image["messages"][3]["content"] =
      json::array({{{"type", "text"}, {"text", "what is this"}}, {{"type", "image_url"}, {"image_url", {{"url", "u"}}}}});
  EXPECT_EQ(reason(image), "content");
  auto number = chat();
  number["messages"][3]["content"] = 5;
  EXPECT_EQ(reason(number), "content");
  EXPECT_EQ(reason(json{{"model", "m"}}), "content");
  EXPECT_EQ(reason(json{{"messages", json::array()}}), "content");
  EXPECT_EQ(reason(json{{"prompt", json::array({"a", "b"})}}, Api::Completions), "prompt");
  EXPECT_EQ(reason(json{{"prompt", json::array({1, 2, 3})}}, Api::Completions), "prompt");
  EXPECT_EQ(reason(json{{"max_tokens", 5}}, Api::Completions), "prompt");
  EXPECT_EQ(reason(json{{"prompt", "x"}, {"logprobs", 0}}, Api::Completions), "logprobs");
  EXPECT_EQ(reason(json{{"prompt", "x"}}, Api::Completions), "eligible");
}

}  // namespace
}  // namespace waterline::caching
