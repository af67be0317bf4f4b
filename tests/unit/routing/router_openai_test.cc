#include "waterline/router/openai.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>

#include "fixtures.h"

namespace waterline::router {
namespace {

using json = nlohmann::json;
using routing::ApiKind;

TEST(Targets, Classify) {
  EXPECT_EQ(classifyTarget("/v1/chat/completions").kind, RouteKind::ChatCompletions);
  EXPECT_EQ(classifyTarget("/v1/chat/completions/").kind, RouteKind::ChatCompletions);
  EXPECT_EQ(classifyTarget("/v1/completions?x=1").kind, RouteKind::Completions);
  auto az = classifyTarget("/openai/deployments/llama%2D8b/chat/completions?api-version=2024-06-01");
  EXPECT_EQ(az.kind, RouteKind::AzureChat);
  EXPECT_EQ(az.deployment, "llama-8b");
  EXPECT_EQ(az.upstreamPath(), "/v1/chat/completions");
  auto azc = classifyTarget("/openai/deployments/d/completions");
  EXPECT_EQ(azc.kind, RouteKind::AzureCompletions);
  EXPECT_EQ(azc.upstreamPath(), "/v1/completions");
  EXPECT_TRUE(azc.proxied());
  EXPECT_EQ(classifyTarget("/openai/deployments//chat/completions").kind, RouteKind::NotFound);
  EXPECT_EQ(classifyTarget("/openai/deployments/d/embeddingsx").kind, RouteKind::NotFound);
  EXPECT_EQ(classifyTarget("/v1/embedding").kind, RouteKind::NotFound);
  EXPECT_EQ(classifyTarget("/metrics").kind, RouteKind::Metrics);
  EXPECT_EQ(classifyTarget("/healthz").kind, RouteKind::Healthz);
  EXPECT_EQ(classifyTarget("/readyz").kind, RouteKind::Readyz);
  EXPECT_EQ(classifyTarget("/v1/models").kind, RouteKind::Models);
  EXPECT_FALSE(classifyTarget("/v1/models").proxied());
  EXPECT_EQ(classifyTarget("").kind, RouteKind::NotFound);
}

TEST(Targets, ClassifiesEmbeddings) {
  for (const char* path : {"/v1/embeddings", "/v1/embeddings/", "/v1/embeddings?x=1"}) {
    auto t = classifyTarget(path);
    EXPECT_EQ(t.kind, RouteKind::Embeddings) << path;
    EXPECT_TRUE(t.proxied());
    EXPECT_TRUE(t.post);
    EXPECT_TRUE(t.modelInBody());
    EXPECT_EQ(t.apiKind(), ApiKind::Embeddings);
    EXPECT_EQ(t.upstreamPath(), "/v1/embeddings");
    EXPECT_TRUE(t.deployment.empty());
  }
  auto az = classifyTarget("/openai/deployments/text%2Dembed/embeddings?api-version=2024-10-21");
  EXPECT_EQ(az.kind, RouteKind::AzureEmbeddings);
  EXPECT_EQ(az.deployment, "text-embed");
  EXPECT_TRUE(az.proxied());
  EXPECT_TRUE(az.post);
  EXPECT_FALSE(az.modelInBody());
  EXPECT_EQ(az.apiKind(), ApiKind::Embeddings);
  EXPECT_EQ(az.upstreamPath(), "/v1/embeddings");
  EXPECT_EQ(classifyTarget("/openai/deployments//embeddings").kind, RouteKind::NotFound);
  // The chat and completions kinds keep their APIs and paths.
  EXPECT_TRUE(classifyTarget("/v1/chat/completions").modelInBody());
  EXPECT_TRUE(classifyTarget("/v1/completions").modelInBody());
  EXPECT_FALSE(classifyTarget("/openai/deployments/d/chat/completions").modelInBody());
  EXPECT_EQ(classifyTarget("/v1/chat/completions").apiKind(), ApiKind::ChatCompletions);
  EXPECT_EQ(classifyTarget("/openai/deployments/d/completions").apiKind(), ApiKind::Completions);
}

TEST(ApiErrors, OpenAiShape) {
  auto e = makeError(400, "bad", "invalid_request_error", "invalid_json", "model");
  json j = json::parse(e.body());
  EXPECT_EQ(j, (json{{"error", {{"message", "bad"}, {"type", "invalid_request_error"}, {"param", "model"}, {"code", "invalid_json"}}}}));
  json k = json::parse(makeError(404, "x").body());
  EXPECT_TRUE(k["error"]["param"].is_null());
  EXPECT_TRUE(k["error"]["code"].is_null());
}

void expectBad(std::string_view body, ApiKind kind, bool requireModel, const std::string& param, const std::string& msgPart) {
  auto r = parseRequestBody(body, kind, requireModel);
  ASSERT_FALSE(r) << body;
  EXPECT_EQ(r.error().status, 400);
  EXPECT_EQ(r.error().type, "invalid_request_error");
  if (param.empty()) EXPECT_FALSE(r.error().param) << body;
  else EXPECT_EQ(r.error().param.value_or(""), param) << body;
  EXPECT_NE(r.error().message.find(msgPart), std::string::npos) << r.error().message;
}

TEST(RequestBody, EveryBadInput) {
  auto chat = ApiKind::ChatCompletions;
  expectBad("", chat, true, "", "empty");
  expectBad("{\"model\":", chat, true, "", "could not parse");
  expectBad("not json", chat, true, "", "could not parse");
  expectBad("{\"model\":\"m\",\"messages\":[]} trailing", chat, true, "", "could not parse");
  expectBad("\"a string\"", chat, true, "", "must be a JSON object");
  expectBad("[1,2]", chat, true, "", "must be a JSON object");
  expectBad(std::string(100, '[') + std::string(100, ']'), chat, true, "", "nests deeper");
  expectBad(R"({"messages":[{"role":"user","content":"hi"}]})", chat, true, "model", "must provide a model");
  expectBad(R"({"model":null,"messages":[{"role":"user","content":"hi"}]})", chat, true, "model", "must provide a model");
  expectBad(R"({"model":"","messages":[{"role":"user","content":"hi"}]})", chat, true, "model", "must provide a model");
  expectBad(R"({"model":42,"messages":[{"role":"user","content":"hi"}]})", chat, true, "model", "expected a string");
  expectBad(R"({"model":"m"})", chat, true, "messages", "Missing required parameter");
  expectBad(R"({"model":"m","messages":"hi"})", chat, true, "messages", "expected an array");
  expectBad(R"({"model":"m","messages":[]})", chat, true, "messages", "empty array");
  expectBad(R"({"model":"m","messages":["hi"]})", chat, true, "messages[0]", "expected an object");
  expectBad(R"({"model":"m","messages":[{"content":"hi"}]})", chat, true, "messages[0].role", "Missing required");
  expectBad(R"({"model":"m","messages":[{"role":"user"}],"stream":"yes"})", chat, true, "stream", "boolean");
  expectBad(R"({"model":"m","messages":[{"role":"user"}],"max_tokens":-1})", chat, true, "max_tokens", "non-negative");
  expectBad(R"({"model":"m","messages":[{"role":"user"}],"max_tokens":1.5})", chat, true, "max_tokens", "non-negative");
  expectBad(R"({"model":"m","messages":[{"role":"user"}],"n":"2"})", chat, true, "n", "non-negative");
  expectBad(R"({"model":"m"})", ApiKind::Completions, true, "prompt", "Missing required");
  expectBad(R"({"model":"m","prompt":{}})", ApiKind::Completions, true, "prompt", "string or array");
  expectBad("{\"model\":\"m\",\"prompt\":\"\xff\"}", ApiKind::Completions, true, "", "could not parse");  // invalid UTF-8
}

TEST(RequestBody, EveryBadEmbeddingsInput) {
  auto emb = ApiKind::Embeddings;
  expectBad("", emb, true, "", "empty");
  expectBad("[1]", emb, true, "", "must be a JSON object");
  expectBad(R"({"input":"hi"})", emb, true, "model", "must provide a model");
  expectBad(R"({"model":7,"input":"hi"})", emb, true, "model", "expected a string");
  expectBad(R"({"model":"m"})", emb, true, "input", "Missing required parameter: 'input'");
  expectBad(R"({"model":"m","input":null})", emb, true, "input", "Missing required parameter");
  expectBad(R"({"input":null})", emb, false, "input", "Missing required parameter");  // Azure path too
  expectBad(R"({"model":"m","input":""})", emb, true, "input", "empty string");
  expectBad(R"({"model":"m","input":[]})", emb, true, "input", "empty array");
  expectBad(R"({"model":"m","input":42})", emb, true, "input", "expected a string or array");
  expectBad(R"({"model":"m","input":{"text":"hi"}})", emb, true, "input", "expected a string or array");
  expectBad(R"({"model":"m","input":["a",""]})", emb, true, "input[1]", "empty string");
  expectBad(R"({"model":"m","input":["a",3]})", emb, true, "input[1]", "expected a string");
  expectBad(R"({"model":"m","input":["a",["b"]]})", emb, true, "input[1]", "expected a string");
  expectBad(R"({"model":"m","input":[1,-2]})", emb, true, "input[1]", "non-negative integer token id");
  expectBad(R"({"model":"m","input":[1,2.5]})", emb, true, "input[1]", "non-negative integer token id");
  expectBad(R"({"model":"m","input":[1,"a"]})", emb, true, "input[1]", "non-negative integer token id");
  expectBad(R"({"model":"m","input":[true]})", emb, true, "input[0]", "non-negative integer token id");
  expectBad(R"({"model":"m","input":[null]})", emb, true, "input[0]", "non-negative integer token id");
  expectBad(R"({"model":"m","input":[[1,2],[]]})", emb, true, "input[1]", "empty array");
  expectBad(R"({"model":"m","input":[[1,2],3]})", emb, true, "input[1]", "an array of token ids");
  expectBad(R"({"model":"m","input":[[1,2],[3,"x"]]})", emb, true, "input[1][1]", "non-negative integer token id");
  expectBad(R"({"model":"m","input":[[1,2],[3,-1]]})", emb, true, "input[1][1]", "non-negative integer token id");
  expectBad(R"({"model":"m","input":"hi","encoding_format":"int8"})", emb, true, "encoding_format", "'float' and 'base64'");
  expectBad(R"({"model":"m","input":"hi","encoding_format":1})", emb, true, "encoding_format", "expected a string");
  expectBad(R"({"model":"m","input":"hi","dimensions":0})", emb, true, "dimensions", "positive integer");
  expectBad(R"({"model":"m","input":"hi","dimensions":-3})", emb, true, "dimensions", "positive integer");
  expectBad(R"({"model":"m","input":"hi","dimensions":1.5})", emb, true, "dimensions", "positive integer");
  expectBad(R"({"model":"m","input":"hi","dimensions":"8"})", emb, true, "dimensions", "positive integer");
  // The chat fields are not required (nor read) for embeddings, and embeddings' are not for chat.
  expectBad(R"({"model":"m","input":"hi"})", ApiKind::ChatCompletions, true, "messages", "Missing required");
}

TEST(RequestBody, GoodEmbeddingsInputs) {
  auto emb = ApiKind::Embeddings;
  for (const char* body : {R"({"model":"m","input":"hi"})",
                           R"({"model":"m","input":["a","b c"]})",
                           R"({"model":"m","input":[1,2,3]})",
                           R"({"model":"m","input":[[1,2],[3]]})",
                           R"({"model":"m","input":"hi","encoding_format":"float","dimensions":256,"user":"u"})",
                           R"({"model":"m","input":"hi","encoding_format":"base64"})",
                           R"({"model":"m","input":"hi","encoding_format":null,"dimensions":null})"}) {
    auto r = parseRequestBody(body, emb, true);
    EXPECT_TRUE(r) << body << ": " << (r ? "" : r.error().message);
  }
  // Azure: the path names the deployment.
  EXPECT_TRUE(parseRequestBody(R"({"input":"hi"})", emb, false));
}

TEST(RequestBody, GoodInputs) {
  auto r = parseRequestBody(R"({"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true,"max_tokens":5})",
                            ApiKind::ChatCompletions, true);
  ASSERT_TRUE(r);
  EXPECT_EQ((*r)["model"], "m");
  // Azure paths need no model.
  EXPECT_TRUE(parseRequestBody(R"({"messages":[{"role":"user","content":"hi"}]})", ApiKind::ChatCompletions, false));
  EXPECT_TRUE(parseRequestBody(R"({"model":"m","prompt":[1,2,3],"stream":null})", ApiKind::Completions, true));
  // Strings with brackets do not count towards the depth.
  EXPECT_TRUE(parseRequestBody(R"({"model":"m","prompt":")" + std::string(200, '[') + R"("})", ApiKind::Completions, true));
}

TEST(JsonDepth, Counts) {
  EXPECT_EQ(jsonDepth("{}"), 1);
  EXPECT_EQ(jsonDepth(R"({"a":[{"b":"[[["}]})"), 3);
  EXPECT_EQ(jsonDepth(R"("\"[")"), 0);
  EXPECT_EQ(jsonDepth(std::string(1000, '['), 10), 11);
}

TEST(DeploymentIndex, ResolvesKeyNameThenModel) {
  using namespace routing::testing;
  routing::RoutingTable t;
  auto eu = deployment("llama-eu", api::DeploymentType::DataZone, threePools(0, 0, 0), "", "EU");
  eu.spillover = "llama-global";
  auto global = deployment("llama-global", api::DeploymentType::Global, threePools(0, 0, 0));
  auto other = deployment("llama-eu", api::DeploymentType::Global, threePools(0, 0, 0));
  other.deployment.namespace_ = "zz-other";
  other.model = "other-model";
  t.deployments = {eu, global, other};
  t.normalize();
  DeploymentIndex idx(t);
  EXPECT_EQ(idx.resolve("team/llama-global")->deployment.str(), "team/llama-global");
  EXPECT_EQ(idx.resolve("zz-other/llama-eu")->deployment.str(), "zz-other/llama-eu");
  // The name is shared by two namespaces: the first by namespace/name.
  EXPECT_EQ(idx.resolve("llama-eu")->deployment.str(), "team/llama-eu");
  // The model is served by llama-eu and llama-global; llama-global is llama-eu's spillover.
  EXPECT_EQ(idx.resolve("meta-llama/Llama-3.1-8B-Instruct")->deployment.str(), "team/llama-eu");
  EXPECT_EQ(idx.resolve("other-model")->deployment.str(), "zz-other/llama-eu");
  EXPECT_EQ(idx.resolve("nope"), nullptr);
  EXPECT_EQ(idx.resolve(""), nullptr);
  EXPECT_EQ(idx.spilloverOf(*idx.resolve("team/llama-eu"))->deployment.name, "llama-global");
  EXPECT_EQ(idx.spilloverOf(*idx.resolve("team/llama-global")), nullptr);
}

// The OpenAI Model type requires id, object, created (Unix seconds) and owned_by; the
// openai SDK's models.list() gave `created=None` (and failed strict validation) without
// `created` (tests/integration/sdk, OpenAISdkIT.test_models).
TEST(ModelsList, EveryItemHasTheFieldsOfAnOpenAIModel) {
  using namespace routing::testing;
  routing::RoutingTable t;
  auto global = deployment("llama-global", api::DeploymentType::Global, threePools(0, 0, 0));
  auto eu = deployment("llama-eu", api::DeploymentType::DataZone, threePools(0, 0, 0), "", "EU");
  eu.model = "other-model";
  t.deployments = {global, eu};
  t.normalize();
  json j = json::parse(modelsListBody(t, 1'750'000'123));
  EXPECT_EQ(j["object"], "list");
  ASSERT_EQ(j["data"].size(), 2u);
  EXPECT_EQ(j["data"][0], (json{{"id", "team/llama-eu"},
                                {"object", "model"},
                                {"created", 1'750'000'123},
                                {"owned_by", "waterline"},
                                {"root", "other-model"},
                                {"deployment_type", "DataZone"}}));
  for (const auto& m : j["data"]) {
    EXPECT_TRUE(m["id"].is_string());
    EXPECT_EQ(m["object"], "model");
    EXPECT_TRUE(m["created"].is_number_integer()) << m.dump();
    EXPECT_TRUE(m["owned_by"].is_string());
  }
  EXPECT_EQ(json::parse(modelsListBody(routing::RoutingTable{}, 0)), (json{{"object", "list"}, {"data", json::array()}}));
}

TEST(QuoteBounded, CutsAtACharacterBoundary) {
  EXPECT_EQ(quoteBounded("short"), "short");
  EXPECT_EQ(quoteBounded(std::string(256, 'a')), std::string(256, 'a'));
  const std::string cut = quoteBounded(std::string(4 << 20, 'm'));
  EXPECT_EQ(cut, std::string(256, 'm') + "\u2026");
  // 255 ASCII bytes then a 2-byte character straddling the limit: the character goes whole.
  const std::string s = std::string(255, 'a') + "\xc3\xa9" + "tail";
  EXPECT_EQ(quoteBounded(s), std::string(255, 'a') + "\u2026");
  // A 4-byte character at the limit.
  const std::string e = std::string(254, 'a') + "\xf0\x9f\x98\x80" + "x";
  EXPECT_EQ(quoteBounded(e), std::string(254, 'a') + "\u2026");
  EXPECT_EQ(quoteBounded("abcdef", 3), "abc\u2026");
  // Invalid UTF-8 quoted into an error still makes valid JSON.
  auto body = json::parse(makeError(404, "x " + quoteBounded("\xff\xfe") + " y").body(), nullptr, false);
  ASSERT_FALSE(body.is_discarded());
}

TEST(ClampUsage, BoundsWhatAnUpstreamReports) {
  routing::TokenEstimate est;
  est.promptTokens = 10;
  est.maxOutputTokens = 100;
  const std::size_t bytes = 200;
  EXPECT_EQ(promptTokenBound(est, bytes), 200 + 16 * 10);
  // Honest figures pass unchanged.
  EXPECT_EQ(clampUsage({12, 80}, est, bytes), (routing::Usage{12, 80}));
  // INT64_MAX, negatives.
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  EXPECT_EQ(clampUsage({kMax, kMax}, est, bytes), (routing::Usage{360, 100}));
  EXPECT_EQ(clampUsage({-5, std::numeric_limits<int64_t>::min()}, est, bytes), (routing::Usage{0, 0}));
  // A bound that would overflow saturates.
  routing::TokenEstimate huge;
  huge.promptTokens = kMax / 2;
  huge.maxOutputTokens = -1;  // a broken estimate bounds completions at 0, never negative
  EXPECT_EQ(promptTokenBound(huge, SIZE_MAX), kMax);
  EXPECT_EQ(clampUsage({5, 5}, huge, 10).completionTokens, 0);
}

}  // namespace
}  // namespace waterline::router
