// waterline-router in-process against loopback upstreams.
#include "support.h"

#include <gtest/gtest.h>

#include <csignal>
#include <future>

#include <nlohmann/json.hpp>

#include "waterline/router/server.h"
#include "waterline/routing/table.h"

namespace waterline::router {
namespace {

using namespace testing;
using json = nlohmann::json;
using api::DeploymentType;

const std::string kModel = "meta-llama/Llama-3.1-8B-Instruct";

routing::RoutingEntry entryFor(std::string pool, std::string region, std::string zone, double util,
                               std::vector<std::string> endpoints) {
  routing::RoutingEntry e;
  e.pool = std::move(pool);
  e.region = std::move(region);
  e.dataZone = std::move(zone);
  e.utilization = util;
  e.capacityTokensPerMinute = 1e6;
  e.loadTokensPerMinute = util * 1e6;
  e.endpoints = std::move(endpoints);
  e.healthy = true;
  e.weight = 1;
  e.heartbeatTime = std::chrono::system_clock::now();
  return e;
}

routing::DeploymentRoutes dep(std::string name, DeploymentType type, std::vector<routing::RoutingEntry> entries,
                              std::string region = "", std::string zone = "", std::string model = kModel) {
  routing::DeploymentRoutes d;
  d.deployment = {"team", std::move(name)};
  d.model = std::move(model);
  d.deploymentType = type;
  d.region = std::move(region);
  d.dataZone = std::move(zone);
  d.entries = std::move(entries);
  return d;
}

std::string chat(const std::string& model, bool stream = false, int maxTokens = 16) {
  json b = {{"model", model},
            {"messages", json::array({{{"role", "user"}, {"content", "Say hello in one word."}}})},
            {"max_tokens", maxTokens}};
  if (stream) b["stream"] = true;
  return b.dump();
}

class RouterIT : public ::testing::Test {
 protected:
  // Three pools in two zones, each with its own upstream.
  TestUpstream west{[](const SeenRequest&) { return TestUpstream::completion(10, 5, "west"); }};
  TestUpstream north{[](const SeenRequest&) { return TestUpstream::completion(10, 5, "north"); }};
  TestUpstream east{[](const SeenRequest&) { return TestUpstream::completion(10, 5, "east"); }};
  std::unique_ptr<RouterServer> router;

  void start(RouterConfig cfg = {}, TimeSourcePtr clock = nullptr, int threads = 2) {
    cfg.listenAddress = "127.0.0.1";
    cfg.port = 0;
    cfg.threads = threads;
    cfg.seed = 1;
    cfg.connectTimeout = std::chrono::seconds(2);
    router = std::make_unique<RouterServer>(cfg, std::move(clock));
    auto ok = router->start();
    ASSERT_TRUE(ok) << ok.error();
  }

  std::vector<routing::RoutingEntry> pools(double w, double n, double e) {
    return {entryFor("eu-west", "eu-west", "EU", w, {west.endpoint()}),
            entryFor("eu-north", "eu-north", "EU", n, {north.endpoint()}),
            entryFor("us-east", "us-east", "US", e, {east.endpoint()})};
  }

  void routes(std::vector<routing::DeploymentRoutes> ds) {
    routing::RoutingTable t;
    t.deployments = std::move(ds);
    t.normalize();
    router->setRoutes(std::move(t));
  }

  int port() const { return router->port(); }

  double usedTokens(const std::string& reservation) {
    return router->admission().stats(std::chrono::steady_clock::now())[reservation].used;
  }

  // A counter's value from the registry (0 when the series does not exist yet).
  double metric(const std::string& series) { return metricValue(router->registry().serialize(), series); }

  // Polls `pred` for up to 2 s (the router settles after the response's last byte).
  static bool eventually(const std::function<bool()>& pred) {
    for (int i = 0; i < 200; ++i) {
      if (pred()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return pred();
  }

  void TearDown() override {
    if (router) router->stop();
  }
};

TEST_F(RouterIT, RoutesToTheLeastUtilisedAllowedPool) {
  start();
  routes({dep("std", DeploymentType::Standard, pools(0.5, 0.1, 0.0), "eu-west"),
          dep("dz", DeploymentType::DataZone, pools(0.5, 0.1, 0.0), "", "EU"),
          dep("glob", DeploymentType::Global, pools(0.5, 0.1, 0.0))});
  auto r1 = post(port(), "/v1/chat/completions", chat("team/std"));
  EXPECT_EQ(r1.status, 200) << r1.body;
  EXPECT_EQ(r1.header("x-waterline-pool"), "eu-west");
  EXPECT_NE(r1.body.find("west"), std::string::npos);
  auto r2 = post(port(), "/v1/chat/completions", chat("team/dz"));
  EXPECT_EQ(r2.header("x-waterline-pool"), "eu-north");
  EXPECT_EQ(r2.header("x-waterline-deployment"), "team/dz");
  auto r3 = post(port(), "/v1/chat/completions", chat("glob"));  // bare deployment name
  EXPECT_EQ(r3.header("x-waterline-pool"), "us-east");
  EXPECT_EQ(west.requestCount(), 1u);
  EXPECT_EQ(north.requestCount(), 1u);
  EXPECT_EQ(east.requestCount(), 1u);
  // The upstream saw the OpenAI path, the worker's model name and no hop-by-hop fields.
  auto seen = north.requests().at(0);
  EXPECT_EQ(seen.target, "/v1/chat/completions");
  EXPECT_EQ(json::parse(seen.body)["model"], kModel);
  EXPECT_EQ(seen.headers.count("accept-encoding"), 0u);
}

TEST_F(RouterIT, ModelNameResolvesAndAzurePathRoutesByDeployment) {
  start();
  routes({dep("dz", DeploymentType::DataZone, pools(0.5, 0.1, 0.0), "", "EU")});
  auto r = post(port(), "/v1/chat/completions", chat(kModel));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.header("x-waterline-deployment"), "team/dz");
  json azureBody = {{"messages", json::array({{{"role", "user"}, {"content", "hi"}}})}};
  auto a = post(port(), "/openai/deployments/dz/chat/completions?api-version=2024-06-01", azureBody.dump(),
                {{"api-key", "secret"}});
  EXPECT_EQ(a.status, 200) << a.body;
  auto seen = north.requests().back();
  EXPECT_EQ(seen.target, "/v1/chat/completions");
  EXPECT_EQ(json::parse(seen.body)["model"], kModel);  // inserted for the worker
  EXPECT_EQ(seen.headers["api-key"], "secret");
  auto c = post(port(), "/openai/deployments/dz/completions", R"({"prompt":"hi","max_tokens":3})");
  EXPECT_EQ(c.status, 200);
  EXPECT_EQ(north.requests().back().target, "/v1/completions");
}

// An OpenAI embeddings answer; usage {"prompt_tokens":N,"total_tokens":N} when N >= 0.
Reply embeddingsReply(int promptTokens) {
  Reply r;
  r.body = R"({"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.6,-0.8]}],"model":"e")";
  if (promptTokens >= 0)
    r.body += R"(,"usage":{"prompt_tokens":)" + std::to_string(promptTokens) + R"(,"total_tokens":)" +
              std::to_string(promptTokens) + "}";
  r.body += "}";
  return r;
}

TEST_F(RouterIT, EmbeddingsReachTheUpstreamsEmbeddingsPathWithTheWorkersModel) {
  north.setHandler([](const SeenRequest&) { return embeddingsReply(5); });
  start();
  routes({dep("dz", DeploymentType::DataZone, pools(0.5, 0.1, 0.0), "", "EU")});
  auto r = post(port(), "/v1/embeddings", json{{"model", "team/dz"}, {"input", "Hello world"}}.dump());
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.header("x-waterline-deployment"), "team/dz");
  EXPECT_EQ(json::parse(r.body)["data"][0]["embedding"], json::array({0.6, -0.8}));
  ASSERT_EQ(north.requestCount(), 1u);
  auto seen = north.requests().back();
  EXPECT_EQ(seen.target, "/v1/embeddings");
  EXPECT_EQ(json::parse(seen.body)["model"], kModel);
  EXPECT_EQ(json::parse(seen.body)["input"], "Hello world");
  // Azure: the deployment from the path, the api-version query ignored.
  json az = {{"input", json::array({"a", "b"})}, {"encoding_format", "base64"}};
  auto a = post(port(), "/openai/deployments/dz/embeddings?api-version=2024-10-21", az.dump(), {{"api-key", "k"}});
  ASSERT_EQ(a.status, 200) << a.body;
  ASSERT_EQ(north.requestCount(), 2u);
  seen = north.requests().back();
  EXPECT_EQ(seen.target, "/v1/embeddings");
  EXPECT_EQ(json::parse(seen.body)["model"], kModel);  // inserted for the worker
  EXPECT_EQ(json::parse(seen.body)["encoding_format"], "base64");
  EXPECT_EQ(seen.headers["api-key"], "k");
  // Embeddings' own validation, before anything is forwarded.
  auto bad = post(port(), "/v1/embeddings", R"({"model":"team/dz","input":["ok",""]})");
  EXPECT_EQ(bad.status, 400);
  EXPECT_EQ(json::parse(bad.body)["error"]["param"], "input[1]");
  auto noModel = post(port(), "/v1/embeddings", R"({"input":"x"})");
  EXPECT_EQ(noModel.status, 400);
  EXPECT_EQ(json::parse(noModel.body)["error"]["param"], "model");
  auto unknown = post(port(), "/openai/deployments/nope/embeddings", R"({"input":"x"})");
  EXPECT_EQ(unknown.status, 404);
  Client c(port());
  EXPECT_EQ(c.request(http::verb::get, "/v1/embeddings").status, 405);
  EXPECT_EQ(north.requestCount(), 2u);
}

TEST_F(RouterIT, EmbeddingsChargeAPtuReservationThePromptOnly) {
  start();
  auto d = dep("dz", DeploymentType::DataZone, pools(0.5, 0.1, 0.0), "", "EU");
  d.outputTokenWeight = 4;  // would dominate any charge that counted output
  routing::ReservationInfo res;
  res.reservation = {"team", "small"};
  res.tokensPerMinute = 100;  // far below --default-max-tokens: a chat request without max_tokens is refused
  d.reservations = {res};
  routes({d});
  // No usage in the answer: settled at the admission charge, the input estimate alone
  // (12 characters: 3 tokens), no output.
  north.setHandler([](const SeenRequest&) { return embeddingsReply(-1); });
  auto r = post(port(), "/v1/embeddings", json{{"model", "team/dz"}, {"input", "abcdefghijkl"}, {"max_tokens", 500}}.dump());
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.header("x-ratelimit-remaining-tokens"), "97");  // sent before settlement: 100 - 3
  ASSERT_TRUE(eventually([&] { return usedTokens("team/small") == 3; })) << usedTokens("team/small");
  // With usage: settled at prompt_tokens (completion 0), on the Azure path too.
  north.setHandler([](const SeenRequest&) { return embeddingsReply(7); });
  auto a = post(port(), "/openai/deployments/dz/embeddings", json{{"input", json::array({1, 2, 3, 4})}}.dump());
  ASSERT_EQ(a.status, 200) << a.body;
  EXPECT_EQ(a.header("x-ratelimit-remaining-tokens"), "93");  // 97 - 4 token ids
  ASSERT_TRUE(eventually([&] { return usedTokens("team/small") == 3 + 7; })) << usedTokens("team/small");
  // The same reservation refuses a chat request, whose charge includes its output bound.
  auto chatReq = json{{"model", "team/dz"}, {"messages", json::array({{{"role", "user"}, {"content", "abcdefghijkl"}}})}};
  EXPECT_EQ(post(port(), "/v1/chat/completions", chatReq.dump()).status, 429);
  EXPECT_EQ(north.requestCount(), 2u);
}

TEST_F(RouterIT, FailsOverOnUpstream5xx) {
  west.setHandler([](const SeenRequest&) {
    Reply r;
    r.status = 500;
    r.body = R"({"error":"boom"})";
    return r;
  });
  start();
  routes({dep("dz", DeploymentType::DataZone, pools(0.0, 0.4, 0.0), "", "EU")});
  auto r = post(port(), "/v1/chat/completions", chat("team/dz"));
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.header("x-waterline-pool"), "eu-north");
  EXPECT_EQ(west.requestCount(), 1u);
  EXPECT_EQ(north.requestCount(), 1u);
  auto m = get(port(), "/metrics").body;
  EXPECT_NE(m.find(R"(waterline_router_upstream_attempts_total{deployment="team/dz",pool="eu-west",result="status_5xx"} 1)"),
            std::string::npos)
      << m;
  EXPECT_NE(m.find(R"(waterline_router_requests_total{deployment="team/dz",pool="eu-north",code="200"} 1)"), std::string::npos);
}

TEST_F(RouterIT, FailsOverOnConnectionRefused) {
  start();
  auto ps = pools(0.0, 0.4, 0.0);
  ps[0].endpoints = {"127.0.0.1:" + std::to_string(closedPort())};
  routes({dep("dz", DeploymentType::DataZone, ps, "", "EU")});
  for (int i = 0; i < 3; ++i) {
    auto r = post(port(), "/v1/chat/completions", chat("team/dz"));
    EXPECT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.header("x-waterline-pool"), "eu-north");
  }
  EXPECT_EQ(north.requestCount(), 3u);
}

TEST_F(RouterIT, RetriesAnotherReplicaOfTheSamePoolBeforeTheNextPool) {
  start();
  // eu-west is the least utilised: one replica refuses connections, one answers. The
  // request stays in eu-west, on the replica that answers, whichever is drawn first.
  auto ps = pools(0.0, 0.4, 0.0);
  ps[0].endpoints = {"127.0.0.1:" + std::to_string(closedPort()), west.endpoint()};
  routes({dep("dz", DeploymentType::DataZone, ps, "", "EU")});
  for (int i = 0; i < 6; ++i) {
    auto r = post(port(), "/v1/chat/completions", chat("team/dz"));
    EXPECT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.header("x-waterline-pool"), "eu-west");
  }
  EXPECT_EQ(west.requestCount(), 6u);
  EXPECT_EQ(north.requestCount(), 0u);
  // Both replicas of a pool failing: each is tried once, then the next pool serves.
  west.setHandler([](const SeenRequest&) {
    Reply r;
    r.status = 503;
    r.body = R"({"error":"busy"})";
    return r;
  });
  auto r = post(port(), "/v1/chat/completions", chat("team/dz"));
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.header("x-waterline-pool"), "eu-north");
  EXPECT_EQ(west.requestCount(), 7u);
}

TEST_F(RouterIT, EjectionRunsOnTheInjectedClock) {
  // The router's clock is simulated: a replica that refused a connection stays ejected
  // however much real time passes, and comes back when the simulated clock has moved
  // ejectAfterConnectFailure (2 s) on. One io thread: ejections are per thread.
  auto clock = std::make_shared<SimulatedTimeSource>(std::chrono::system_clock::now());
  start({}, clock, 1);
  auto ps = pools(0.0, 0.4, 0.0);
  ps[0].endpoints = {"127.0.0.1:" + std::to_string(closedPort()), west.endpoint()};
  routes({dep("dz", DeploymentType::DataZone, ps, "", "EU")});
  const std::string refused =
      R"(waterline_router_upstream_attempts_total{deployment="team/dz",pool="eu-west",result="connect_error"})";
  auto sendUntilRefused = [&](int limit) {
    const double before = metric(refused);
    for (int i = 0; i < limit && metric(refused) == before; ++i) {
      auto r = post(port(), "/v1/chat/completions", chat("team/dz"));
      EXPECT_EQ(r.status, 200) << r.body;
      EXPECT_EQ(r.header("x-waterline-pool"), "eu-west");
    }
    return metric(refused) - before;
  };
  // Sooner or later the refusing replica is drawn first: one connect error, then ejected.
  ASSERT_EQ(sendUntilRefused(40), 1);
  // While the simulated clock stands still it is never tried again.
  EXPECT_EQ(sendUntilRefused(20), 0);
  clock->advance(std::chrono::milliseconds(1999));
  EXPECT_EQ(sendUntilRefused(20), 0);
  // 2 s later on the router's clock it is back in the draw.
  clock->advance(std::chrono::milliseconds(1));
  EXPECT_EQ(sendUntilRefused(40), 1);
}

TEST_F(RouterIT, Answers503JsonWhenNothingIsLeft) {
  auto fail = [](const SeenRequest&) {
    Reply r;
    r.status = 503;
    return r;
  };
  west.setHandler(fail);
  north.setHandler(fail);
  start();
  auto ps = pools(0.1, 0.2, 0.0);
  routes({dep("dz", DeploymentType::DataZone, ps, "", "EU")});
  auto r = post(port(), "/v1/chat/completions", chat("team/dz"));
  EXPECT_EQ(r.status, 503);
  auto j = json::parse(r.body);
  EXPECT_EQ(j["error"]["type"], "server_error");
  EXPECT_EQ(j["error"]["code"], "no_upstream_available");
  EXPECT_TRUE(j["error"].contains("param"));
  EXPECT_EQ(east.requestCount(), 0u);  // us-east is outside the data zone
  // No healthy replicas at all: 503 too, without touching any upstream.
  auto none = pools(0.1, 0.2, 0.0);
  for (auto& e : none) e.healthy = false;
  routes({dep("dz", DeploymentType::DataZone, none, "", "EU")});
  auto r2 = post(port(), "/v1/chat/completions", chat("team/dz"));
  EXPECT_EQ(r2.status, 503);
  EXPECT_EQ(json::parse(r2.body)["error"]["code"], "no_healthy_upstream");
}

TEST_F(RouterIT, PassesUpstream4xxThroughWithoutFailover) {
  west.setHandler([](const SeenRequest&) {
    Reply r;
    r.status = 400;
    r.body = R"({"error":{"message":"context too long","type":"invalid_request_error","param":null,"code":null}})";
    return r;
  });
  start();
  routes({dep("dz", DeploymentType::DataZone, pools(0.0, 0.5, 0.0), "", "EU")});
  auto r = post(port(), "/v1/chat/completions", chat("team/dz"));
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("context too long"), std::string::npos);
  EXPECT_EQ(north.requestCount(), 0u);
}

TEST_F(RouterIT, StreamsSseByteExactAndSettlesWithItsUsage) {
  const std::vector<std::string> chunks = {
      "data: {\"id\":\"c1\",\"choices\":[{\"delta\":{\"role\":\"assistant\"}}],\"usage\":null}\n\n",
      "data: {\"id\":\"c1\",\"choices\":[{\"delta\":{\"content\":\"Hel\"}}],\"usage\":null}\n\n",
      "data: {\"id\":\"c1\",\"choices\":[{\"delta\":{\"content\":\"lo \\u00e9\"}}],\"usage\":null}\n\n",
      "data: {\"id\":\"c1\",\"choices\":[],\"usage\":{\"prompt_tokens\":11,\"completion_tokens\":3,\"total_tokens\":14}}\n\n",
      "data: [DONE]\n\n"};
  std::string expected;
  for (auto& c : chunks) expected += c;
  north.setHandler([&](const SeenRequest&) {
    Reply r;
    r.contentType = "text/event-stream";
    r.sseChunks = chunks;
    r.chunkDelay = std::chrono::milliseconds(20);
    return r;
  });
  start();
  auto d = dep("dz", DeploymentType::DataZone, pools(0.5, 0.1, 0.0), "", "EU");
  d.outputTokenWeight = 2;
  routing::ReservationInfo res;
  res.reservation = {"team", "ptu"};
  res.tokensPerMinute = 100000;
  d.reservations = {res};
  routes({d});
  Client c(port());
  auto r = c.post("/v1/chat/completions", chat("team/dz", true, 100));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.header("content-type"), "text/event-stream");
  EXPECT_EQ(r.body, expected);
  // The keep-alive connection works for the next request.
  auto again = c.post("/v1/chat/completions", chat("team/dz", true, 100));
  EXPECT_EQ(again.body, expected);
  // Settled with the usage chunk: 2 x (11 + 3 x 2) weighted tokens. The router settles
  // right after writing the last byte, so allow it a moment.
  EXPECT_TRUE(eventually([&] { return usedTokens("team/ptu") == 2 * (11 + 3 * 2); })) << usedTokens("team/ptu");
  EXPECT_EQ(router->admission().stats(std::chrono::steady_clock::now())["team/ptu"].counters.admitted, 2u);
}

TEST_F(RouterIT, StreamsWithoutUsageSettleByEventCount) {
  north.setHandler([](const SeenRequest&) {
    Reply r;
    r.contentType = "text/event-stream";
    r.sseChunks = {"data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n",
                   "data: {\"choices\":[{\"delta\":{\"content\":\"b\"}}]}\n\n", "data: [DONE]\n\n"};
    return r;
  });
  start();
  auto d = dep("dz", DeploymentType::DataZone, pools(0.5, 0.1, 0.0), "", "EU");
  routing::ReservationInfo res;
  res.reservation = {"team", "ptu"};
  res.tokensPerMinute = 100000;
  d.reservations = {res};
  routes({d});
  auto body = chat("team/dz", true, 500);
  auto r = post(port(), "/v1/chat/completions", body);
  ASSERT_EQ(r.status, 200);
  // Prompt estimate (one message of 22 chars: 4 + 6) + 2 events.
  EXPECT_TRUE(eventually([&] { return usedTokens("team/ptu") == 10 + 2; })) << usedTokens("team/ptu");
}

TEST_F(RouterIT, ThrottlesWith429AndRateLimitHeadersWhenTheReservationIsEmpty) {
  start();
  auto d = dep("dz", DeploymentType::DataZone, pools(0.5, 0.1, 0.0), "", "EU");
  routing::ReservationInfo res;
  res.reservation = {"team", "small"};
  res.tokensPerMinute = 150;  // a 10-token prompt + max_tokens 100 fits once
  d.reservations = {res};
  routes({d});
  auto ok = post(port(), "/v1/chat/completions", chat("team/dz", false, 100));
  ASSERT_EQ(ok.status, 200) << ok.body;
  EXPECT_EQ(ok.header("x-ratelimit-remaining-tokens"), "40");  // sent before settlement: 150 - 110
  // Settled with usage 10 + 5 = 15: 135 left.
  ASSERT_TRUE(eventually([&] { return usedTokens("team/small") == 15; })) << usedTokens("team/small");
  auto r = post(port(), "/v1/chat/completions", chat("team/dz", false, 130));
  EXPECT_EQ(r.status, 429);
  auto j = json::parse(r.body);
  EXPECT_EQ(j["error"]["type"], "rate_limit_error");
  EXPECT_EQ(j["error"]["code"], "rate_limit_exceeded");
  int retry = std::stoi(r.header("retry-after"));
  EXPECT_GE(retry, 59);
  EXPECT_LE(retry, 61);
  EXPECT_EQ(r.header("x-ratelimit-remaining-tokens"), "135");
  EXPECT_EQ(r.header("x-ratelimit-remaining-requests"), "9");  // 135 / 15 average
  EXPECT_FALSE(r.header("retry-after-ms").empty());
  EXPECT_EQ(north.requestCount(), 1u);
  auto m = get(port(), "/metrics").body;
  EXPECT_NE(m.find(R"(waterline_router_ptu_throttled_total{reservation="team/small"} 1)"), std::string::npos) << m;
  EXPECT_NE(m.find(R"(waterline_router_ptu_admitted_total{reservation="team/small"} 1)"), std::string::npos);
  EXPECT_NE(m.find(R"(waterline_router_requests_total{deployment="team/dz",pool="",code="429"} 1)"), std::string::npos);
}

// spec.rateLimit through the real router: two router replicas (--replicas 2), so this one
// admits half of 600 tokens and 4 requests per minute: 300 tokens, 2 requests.
TEST_F(RouterIT, QuotaThrottlesWith429AndOpenAIRateLimitHeaders) {
  RouterConfig cfg;
  cfg.replicas = 2;
  start(cfg);
  auto d = dep("paygo", DeploymentType::DataZone, pools(0.5, 0.1, 0.0), "", "EU");
  d.rateLimit = routing::RateLimitInfo{600, 4};
  routes({d});
  auto quota = [&] { return router->admission().quotaStats(std::chrono::steady_clock::now())["team/paygo"]; };
  auto ok = post(port(), "/v1/chat/completions", chat("team/paygo", false, 100));  // charged 110
  ASSERT_EQ(ok.status, 200) << ok.body;
  EXPECT_EQ(ok.header("x-ratelimit-limit-tokens"), "300");
  EXPECT_EQ(ok.header("x-ratelimit-limit-requests"), "2");
  EXPECT_EQ(ok.header("x-ratelimit-remaining-tokens"), "190");
  EXPECT_EQ(ok.header("x-ratelimit-remaining-requests"), "1");
  ASSERT_TRUE(eventually([&] { return quota().usedTokens == 15; })) << quota().usedTokens;  // settled 10 + 5
  // 15 + 290 > 300: over the token limit.
  auto r = post(port(), "/v1/chat/completions", chat("team/paygo", false, 280));
  EXPECT_EQ(r.status, 429) << r.body;
  auto j = json::parse(r.body);
  EXPECT_EQ(j["error"]["type"], "rate_limit_error");
  EXPECT_EQ(j["error"]["code"], "rate_limit_exceeded");
  int retry = std::stoi(r.header("retry-after"));
  EXPECT_GE(retry, 59);
  EXPECT_LE(retry, 61);
  EXPECT_FALSE(r.header("retry-after-ms").empty());
  EXPECT_EQ(r.header("x-ratelimit-limit-tokens"), "300");
  EXPECT_EQ(r.header("x-ratelimit-limit-requests"), "2");
  EXPECT_EQ(r.header("x-ratelimit-remaining-tokens"), "285");
  EXPECT_EQ(r.header("x-ratelimit-remaining-requests"), "1");
  // The second request fits in tokens; the third is over the request limit.
  EXPECT_EQ(post(port(), "/v1/chat/completions", chat("team/paygo", false, 16)).status, 200);
  auto r3 = post(port(), "/v1/chat/completions", chat("team/paygo", false, 16));
  EXPECT_EQ(r3.status, 429) << r3.body;
  EXPECT_EQ(r3.header("x-ratelimit-remaining-requests"), "0");
  EXPECT_EQ(north.requestCount(), 2u);
  EXPECT_EQ(quota().counters, (routing::AdmissionCounters{2, 2, 0}));
  auto m = get(port(), "/metrics").body;
  EXPECT_NE(m.find(R"(waterline_router_quota_throttled_total{deployment="team/paygo"} 2)"), std::string::npos) << m;
  EXPECT_NE(m.find(R"(waterline_router_quota_admitted_total{deployment="team/paygo"} 2)"), std::string::npos);
  EXPECT_NE(m.find(R"(waterline_router_quota_limit_tokens{deployment="team/paygo"} 300)"), std::string::npos);
  EXPECT_NE(m.find(R"(waterline_router_requests_total{deployment="team/paygo",pool="",code="429"} 2)"),
            std::string::npos);
}

TEST_F(RouterIT, SpillsOverToTheSpilloverDeploymentWhenConfigured) {
  start();
  auto d = dep("dz", DeploymentType::DataZone, pools(0.5, 0.1, 0.0), "", "EU");
  routing::ReservationInfo res;
  res.reservation = {"team", "small"};
  res.tokensPerMinute = 150;
  d.reservations = {res};
  d.spillover = "overflow";
  auto overflow = dep("overflow", DeploymentType::Standard, pools(0.5, 0.1, 0.0), "us-east", "", "llama-8b-us");
  routes({d, overflow});
  auto first = post(port(), "/v1/chat/completions", chat("team/dz", false, 100));
  EXPECT_EQ(first.header("x-waterline-deployment"), "team/dz");
  ASSERT_TRUE(eventually([&] { return usedTokens("team/small") == 15; }));
  auto r = post(port(), "/v1/chat/completions", chat("team/dz", false, 200));
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.header("x-waterline-deployment"), "team/overflow");
  EXPECT_EQ(r.header("x-waterline-pool"), "us-east");
  EXPECT_EQ(r.header("x-waterline-spilled"), "ptu");
  ASSERT_EQ(east.requestCount(), 1u);
  EXPECT_EQ(json::parse(east.requests()[0].body)["model"], "llama-8b-us");  // the spillover's model
  auto stats = router->admission().stats(std::chrono::steady_clock::now());
  EXPECT_EQ(stats["team/small"].counters, (routing::AdmissionCounters{1, 0, 1}));
  auto m = get(port(), "/metrics").body;
  EXPECT_NE(m.find(R"(waterline_router_ptu_spilled_total{reservation="team/small"} 1)"), std::string::npos);
  EXPECT_NE(m.find(R"(waterline_router_spillovers_total{deployment="team/dz",reason="ptu"} 1)"), std::string::npos);
}

TEST_F(RouterIT, SaturatedPoolsSpillOverOrAnswer429) {
  start();
  auto hot = pools(0.95, 0.92, 0.0);  // both EU pools above maxUtilization 0.9
  auto d = dep("dz", DeploymentType::DataZone, hot, "", "EU");
  d.spillover = "glob";
  auto g = dep("glob", DeploymentType::Global, pools(0.95, 0.92, 0.1));
  routes({d, g});
  auto r = post(port(), "/v1/chat/completions", chat("team/dz"));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.header("x-waterline-spilled"), "capacity");
  EXPECT_EQ(r.header("x-waterline-pool"), "us-east");
  d.spillover.reset();
  routes({d, g});
  auto r2 = post(port(), "/v1/chat/completions", chat("team/dz"));
  EXPECT_EQ(r2.status, 429);
  EXPECT_EQ(json::parse(r2.body)["error"]["code"], "capacity_exceeded");
  EXPECT_EQ(r2.header("retry-after"), "1");
  EXPECT_EQ(west.requestCount() + north.requestCount(), 0u);
}

TEST_F(RouterIT, BestEffortOverloadUsesSaturatedPools) {
  RouterConfig cfg;
  cfg.overload = OverloadPolicy::BestEffort;
  start(cfg);
  routes({dep("dz", DeploymentType::DataZone, pools(0.95, 0.92, 0.0), "", "EU")});
  auto r = post(port(), "/v1/chat/completions", chat("team/dz"));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.header("x-waterline-pool"), "eu-north");
}

TEST_F(RouterIT, StaleEntriesAreNotUsedWhileFreshOnesExist) {
  RouterConfig cfg;
  cfg.selection.staleAfter = std::chrono::seconds(30);
  start(cfg);
  auto ps = pools(0.5, 0.1, 0.0);
  ps[1].heartbeatTime = std::chrono::system_clock::now() - std::chrono::minutes(5);  // eu-north stale
  routes({dep("dz", DeploymentType::DataZone, ps, "", "EU")});
  auto r = post(port(), "/v1/chat/completions", chat("team/dz"));
  EXPECT_EQ(r.header("x-waterline-pool"), "eu-west");
}

TEST_F(RouterIT, RejectsBadInputWithOpenAiErrorsAndNeverForwardsIt) {
  RouterConfig cfg;
  cfg.maxBodyBytes = 4096;
  start(cfg);
  routes({dep("dz", DeploymentType::DataZone, pools(0.5, 0.1, 0.0), "", "EU")});
  struct Case {
    std::string body;
    int status;
    std::string code;
  };
  std::vector<Case> cases = {
      {"{not json", 400, "invalid_json"},
      {"[]", 400, "invalid_json"},
      {R"({"messages":[{"role":"user","content":"x"}]})", 400, ""},
      {R"({"model":7,"messages":[{"role":"user","content":"x"}]})", 400, "invalid_type"},
      {R"({"model":"team/dz"})", 400, "missing_required_parameter"},
      {R"({"model":"team/dz","messages":[{"role":"user","content":"x"}],"stream":1})", 400, "invalid_type"},
      {R"({"model":"team/dz","messages":[{"role":"user","content":"x"}],"max_tokens":-3})", 400, "invalid_value"},
      {R"({"model":"nope","messages":[{"role":"user","content":"x"}]})", 404, "model_not_found"},
      {std::string(20, '[') + std::string(20, ']'), 400, "invalid_json"},
  };
  Client c(port());
  for (const auto& k : cases) {
    auto r = c.post("/v1/chat/completions", k.body);
    EXPECT_EQ(r.status, k.status) << k.body;
    auto j = json::parse(r.body, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << r.body;
    ASSERT_TRUE(j.contains("error")) << r.body;
    for (const char* f : {"message", "type", "param", "code"}) EXPECT_TRUE(j["error"].contains(f)) << f << " " << r.body;
    if (!k.code.empty()) {
      EXPECT_EQ(j["error"]["code"], k.code) << r.body;
    }
  }
  // Missing model: param names it.
  auto mm = c.post("/v1/chat/completions", R"({"messages":[{"role":"user","content":"x"}]})");
  EXPECT_EQ(json::parse(mm.body)["error"]["param"], "model");
  // Azure path with an unknown deployment.
  auto az = c.post("/openai/deployments/ghost/chat/completions", R"({"messages":[{"role":"user","content":"x"}]})");
  EXPECT_EQ(az.status, 404);
  EXPECT_EQ(json::parse(az.body)["error"]["code"], "DeploymentNotFound");
  // Unknown path and wrong method.
  EXPECT_EQ(c.post("/v1/audio/speech", "{}").status, 404);
  auto wm = c.request(http::verb::get, "/v1/chat/completions");
  EXPECT_EQ(wm.status, 405);
  EXPECT_EQ(wm.header("allow"), "POST");
  // Oversized body (Content-Length above the limit): 413, connection closed.
  auto big = post(port(), "/v1/chat/completions", chat("team/dz") + std::string(5000, ' '));
  EXPECT_EQ(big.status, 413);
  EXPECT_EQ(json::parse(big.body)["error"]["code"], "request_too_large");
  // Oversized chunked body.
  {
    Client cc(port());
    std::string chunk(3000, ' ');
    char size[16];
    std::snprintf(size, sizeof size, "%zx", chunk.size());
    std::string raw = "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
    raw += std::string(size) + "\r\n" + chunk + "\r\n" + std::string(size) + "\r\n" + chunk + "\r\n0\r\n\r\n";
    EXPECT_EQ(cc.raw(raw).status, 413);
  }
  // Garbage that is not HTTP at all.
  {
    Client g(port());
    auto r = g.raw("GARBAGE\x01\x02 NOT HTTP\r\n\r\n");
    EXPECT_EQ(r.status, 400);
    EXPECT_EQ(json::parse(r.body)["error"]["code"], "bad_request");
  }
  // Nothing reached an upstream, and the router still serves.
  EXPECT_EQ(west.requestCount() + north.requestCount() + east.requestCount(), 0u);
  EXPECT_EQ(get(port(), "/healthz").status, 200);
  EXPECT_EQ(post(port(), "/v1/chat/completions", chat("team/dz")).status, 200);
}

TEST_F(RouterIT, ExpectContinueIsHonoured) {
  start();
  routes({dep("dz", DeploymentType::DataZone, pools(0.5, 0.1, 0.0), "", "EU")});
  Client c(port());
  std::string body = chat("team/dz");
  std::string head = "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nExpect: "
                     "100-continue\r\nContent-Length: " +
                     std::to_string(body.size()) + "\r\n\r\n";
  asio::write(c.socket(), asio::buffer(head));
  auto cont = c.read();
  EXPECT_EQ(cont.status, 100);
  asio::write(c.socket(), asio::buffer(body));
  EXPECT_EQ(c.read().status, 200);
}

TEST_F(RouterIT, ReusesUpstreamConnections) {
  RouterConfig cfg;
  start(cfg);
  routes({dep("dz", DeploymentType::Standard, pools(0.1, 0.1, 0.1), "eu-west")});
  Client c(port());
  for (int i = 0; i < 50; ++i) ASSERT_EQ(c.post("/v1/chat/completions", chat("team/dz")).status, 200);
  EXPECT_EQ(west.requestCount(), 50u);
  EXPECT_LE(west.connections(), 2);  // one per router thread at most
}

TEST_F(RouterIT, RetriesOnAFreshConnectionWhenAPooledOneWasClosed) {
  RouterConfig cfg;
  start(cfg);
  routes({dep("dz", DeploymentType::Standard, pools(0.1, 0.1, 0.1), "eu-west")});
  Client c(port());
  ASSERT_EQ(c.post("/v1/chat/completions", chat("team/dz")).status, 200);
  // Restart the upstream on the same port: the router's pooled connection is now dead.
  const int p = west.port();
  west.stop();
  TestUpstream again([](const SeenRequest&) { return TestUpstream::completion(1, 1, "again"); }, p);
  auto r = c.post("/v1/chat/completions", chat("team/dz"));
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_NE(r.body.find("again"), std::string::npos);
  auto m = get(port(), "/metrics").body;
  EXPECT_EQ(m.find("result=\"header_error\""), std::string::npos) << m;  // retried, not counted as a failure
  EXPECT_EQ(m.find("result=\"write_error\""), std::string::npos) << m;
}

TEST_F(RouterIT, ServesModelsHealthReadinessMetricsAndRoutes) {
  start();
  EXPECT_EQ(get(port(), "/readyz").status, 503);
  auto noRoutes = post(port(), "/v1/chat/completions", chat("x"));
  EXPECT_EQ(noRoutes.status, 503);
  EXPECT_EQ(json::parse(noRoutes.body)["error"]["code"], "routes_unavailable");
  routes({dep("dz", DeploymentType::DataZone, pools(0.5, 0.1, 0.0), "", "EU")});
  EXPECT_EQ(get(port(), "/readyz").status, 200);
  EXPECT_EQ(get(port(), "/healthz").body, "ok\n");
  auto models = json::parse(get(port(), "/v1/models").body);
  EXPECT_EQ(models["data"][0]["id"], "team/dz");
  EXPECT_EQ(models["data"][0]["root"], kModel);
  auto table = routing::RoutingTable::parse(get(port(), "/debug/routes").body);
  ASSERT_TRUE(table) << table.error();
  EXPECT_EQ(table->deployments.size(), 1u);
  ASSERT_EQ(post(port(), "/v1/chat/completions", chat("team/dz")).status, 200);
  auto m = get(port(), "/metrics");
  EXPECT_EQ(m.header("content-type"), metrics::kContentType);
  for (const char* series : {"waterline_router_request_duration_seconds_bucket{deployment=\"team/dz\"",
                             "waterline_router_routes_deployments 1", "waterline_router_inflight_requests 0",
                             "waterline_router_routes_updates_total 1"})
    EXPECT_NE(m.body.find(series), std::string::npos) << series;
}

TEST_F(RouterIT, MetricsListenServesMetricsApartAndTheDataPortAnswers404) {
  RouterConfig cfg;
  cfg.metricsListen = "127.0.0.1:0";
  start(cfg);
  ASSERT_NE(router->metricsPort(), 0);
  ASSERT_NE(router->metricsPort(), port());
  routes({dep("dz", DeploymentType::DataZone, pools(0.5, 0.1, 0.0), "", "EU")});
  ASSERT_EQ(post(port(), "/v1/chat/completions", chat("team/dz")).status, 200);
  EXPECT_EQ(get(port(), "/metrics").status, 404);
  EXPECT_EQ(get(port(), "/healthz").body, "ok\n");
  auto m = get(router->metricsPort(), "/metrics");
  EXPECT_EQ(m.status, 200);
  EXPECT_EQ(m.header("content-type"), metrics::kContentType);
  for (const char* series : {"waterline_router_requests_total{deployment=\"team/dz\"", "\nprocess_open_fds ",
                             "\nprocess_cpu_seconds_total ", "\nprocess_start_time_seconds "})
    EXPECT_NE(m.body.find(series), std::string::npos) << series;
  EXPECT_EQ(get(router->metricsPort(), "/healthz").status, 404);
  EXPECT_EQ(get(router->metricsPort(), "/v1/models").status, 404);
  // Several scrapes on one keep-alive connection or not: each answers.
  EXPECT_EQ(get(router->metricsPort(), "/metrics?x=1").status, 200);
}

TEST_F(RouterIT, MetricsListenZeroServesNoMetrics) {
  RouterConfig cfg;
  cfg.metricsListen = "0";
  start(cfg);
  EXPECT_EQ(router->metricsPort(), 0);
  EXPECT_EQ(get(port(), "/metrics").status, 404);
  EXPECT_EQ(get(port(), "/healthz").status, 200);
}

TEST_F(RouterIT, MetricsListenOnATakenPortFailsTheStart) {
  RouterConfig first;
  first.metricsListen = "127.0.0.1:0";
  start(first);
  RouterConfig cfg;
  cfg.listenAddress = "127.0.0.1";
  cfg.port = 0;
  cfg.threads = 1;
  cfg.metricsListen = "127.0.0.1:" + std::to_string(router->metricsPort());
  RouterServer second(cfg);
  auto r = second.start();
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().find("metrics"), std::string::npos) << r.error();
}

TEST_F(RouterIT, ManyConcurrentClients) {
  start();
  routes({dep("glob", DeploymentType::Global, pools(0.1, 0.1, 0.1))});
  std::atomic<int> ok{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < 8; ++t)
    ts.emplace_back([&] {
      Client c(port());
      for (int i = 0; i < 25; ++i)
        if (c.post("/v1/chat/completions", chat("glob")).status == 200) ok++;
    });
  for (auto& t : ts) t.join();
  EXPECT_EQ(ok.load(), 200);
  // Exact ties: power-of-two-choices spreads the load over all three pools.
  EXPECT_GT(west.requestCount(), 20u);
  EXPECT_GT(north.requestCount(), 20u);
  EXPECT_GT(east.requestCount(), 20u);
}

// The drain (router/drain.h) in-process: its delay and grace run on the router's injected
// clock, so real time passing changes nothing until the simulated clock is advanced.
TEST_F(RouterIT, ShutdownDrainRunsOnTheInjectedClock) {
  auto clock = std::make_shared<SimulatedTimeSource>(std::chrono::system_clock::now());
  RouterConfig cfg;
  cfg.shutdownDelay = std::chrono::seconds(5);
  cfg.shutdownGrace = std::chrono::seconds(30);
  cfg.headerTimeout = std::chrono::hours(1);  // the partial head below stays in progress
  start(cfg, clock);
  routes({dep("std", DeploymentType::Standard, pools(0.5, 0.1, 0.0), "eu-west")});
  ASSERT_EQ(get(port(), "/readyz").status, 200);

  // An idle keep-alive connection, and one in the middle of sending a request head.
  Client idle(port());
  ASSERT_EQ(idle.request(http::verb::get, "/healthz").header("connection"), "");
  Client partial(port());
  asio::write(partial.socket(), asio::buffer(std::string("GET /healthz HTTP/1.1\r\nHost: r\r\n")));
  ASSERT_TRUE(eventually([&] { return metric("waterline_router_connections") == 2; }));

  EXPECT_EQ(router->onSignal(SIGTERM), DrainPhase::Delay);
  auto drained = std::async(std::launch::async, [&] { return router->drain(); });
  // The delay: /readyz 503 and Connection: close on new connections, which are accepted
  // for as long as the simulated clock stays before the delay's end.
  for (int i = 0; i < 3; ++i) {
    const auto r = get(port(), "/readyz");
    EXPECT_EQ(r.status, 503);
    EXPECT_EQ(r.header("connection"), "close");
  }
  clock->advance(std::chrono::milliseconds(4999));
  EXPECT_EQ(get(port(), "/healthz").status, 200);

  // The delay's end: the listener closes, the idle connection is closed; the partial head
  // keeps the drain going.
  clock->advance(std::chrono::milliseconds(1));
  ASSERT_TRUE(eventually([&] {
    asio::io_context io;
    tcp::socket s(io);
    beast::error_code ec;
    s.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port())), ec);
    return ec == asio::error::connection_refused;
  }));
  {
    char b;
    beast::error_code ec;
    idle.socket().read_some(asio::buffer(&b, 1), ec);
    EXPECT_EQ(ec, asio::error::eof) << ec.message();
  }
  ASSERT_TRUE(eventually([&] { return metric("waterline_router_connections") == 1; }));
  EXPECT_EQ(drained.wait_for(std::chrono::milliseconds(0)), std::future_status::timeout);

  // 30 s after the signal: the grace is over, the connection left is cut and counted.
  clock->advance(std::chrono::seconds(25));
  ASSERT_EQ(drained.wait_for(std::chrono::seconds(30)), std::future_status::ready);
  EXPECT_EQ(drained.get(), DrainPhase::Cut);
  EXPECT_EQ(router->drainExitCode(), 1);
  EXPECT_EQ(metric("waterline_router_shutdown_cut_connections_total"), 1);
  {
    char b;
    beast::error_code ec;
    partial.socket().read_some(asio::buffer(&b, 1), ec);
    EXPECT_TRUE(ec == asio::error::eof || ec == asio::error::connection_reset) << ec.message();
  }
}

}  // namespace
}  // namespace waterline::router
