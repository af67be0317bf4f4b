// The response cache (ModelDeployment spec.cache, docs/routing.md "Cache") through a
// real router in front of waterline-sim, which serves the chat completions (after its
// modelled latency) and the embeddings (hashed character trigrams, so near-identical
// prompts land close).
#include "support.h"

#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "operator_process.h"  // tests/support: it::spawnLogged
#include "waterline/router/server.h"
#include "waterline/routing/table.h"

namespace waterline::router {
namespace {

using namespace testing;
using json = nlohmann::json;

// waterline-sim on a free port, one worker per chat deployment.
class SimProcess {
 public:
  SimProcess() {
    log_ = (std::filesystem::temp_directory_path() / ("wl-cache-sim-" + std::to_string(::getpid()) + ".log")).string();
    std::vector<std::string> args = {WATERLINE_SIM_BIN, "--listen", "127.0.0.1:0", "--load", "none",
                                     "--time-scale", "50", "--startup-seconds", "0",
                                     "--worker", "pod=chat-0,namespace=team,deployment=chat,pool=p,gpu=H100,tp=2",
                                     "--worker", "pod=other-0,namespace=other,deployment=other-chat,pool=p,gpu=H100,tp=2"};
    pid_ = it::spawnLogged(args, log_);
    for (int i = 0; i < 300 && port_ == 0; ++i) {
      std::ifstream f(log_);
      std::stringstream ss;
      ss << f.rdbuf();
      const std::string s = ss.str();
      const auto p = s.find("listening on 127.0.0.1:");
      if (p != std::string::npos) port_ = std::stoi(s.substr(p + 23));
      else std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  ~SimProcess() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      int st;
      ::waitpid(pid_, &st, 0);
    }
  }
  int port() const { return port_; }
  std::string endpoint() const { return "127.0.0.1:" + std::to_string(port_); }

 private:
  std::string log_;
  pid_t pid_ = -1;
  int port_ = 0;
};

routing::RoutingEntry entryAt(const std::string& endpoint) {
  routing::RoutingEntry e;
  e.pool = "p";
  e.region = "eu-west";
  e.dataZone = "EU";
  e.utilization = 0.1;
  e.capacityTokensPerMinute = 1e9;
  e.loadTokensPerMinute = 0;
  e.endpoints = {endpoint};
  e.healthy = true;
  e.weight = 1;
  e.heartbeatTime = std::chrono::system_clock::now();
  return e;
}

class CacheIT : public ::testing::Test {
 protected:
  static inline std::unique_ptr<SimProcess> sim;
  std::unique_ptr<RouterServer> router;

  static void SetUpTestSuite() { sim = std::make_unique<SimProcess>(); }
  static void TearDownTestSuite() { sim.reset(); }

  void SetUp() override {
    ASSERT_GT(sim->port(), 0) << "waterline-sim did not start";
    RouterConfig cfg;
    cfg.listenAddress = "127.0.0.1";
    cfg.port = 0;
    cfg.threads = 2;
    cfg.seed = 1;
    router = std::make_unique<RouterServer>(cfg);
    auto ok = router->start();
    ASSERT_TRUE(ok) << ok.error();
  }
  void TearDown() override {
    if (router) router->stop();
  }

  // team/chat (model "chat", served by the sim's chat deployment) with `cache`, and
  // team/embed (the sim's embeddings).
  routing::DeploymentRoutes chatDeployment(std::optional<routing::CacheInfo> cache, const std::string& ns = "team",
                                           const std::string& name = "chat", const std::string& model = "chat") {
    routing::DeploymentRoutes d;
    d.deployment = {ns, name};
    d.model = model;
    d.deploymentType = api::DeploymentType::Global;
    d.cache = std::move(cache);
    d.entries = {entryAt(sim->endpoint())};
    return d;
  }
  routing::DeploymentRoutes embedDeployment(const std::string& ns = "team") {
    routing::DeploymentRoutes d;
    d.deployment = {ns, "embed"};
    d.model = "sim-embed";
    d.deploymentType = api::DeploymentType::Global;
    d.entries = {entryAt(sim->endpoint())};
    return d;
  }
  static routing::CacheInfo exact() {
    routing::CacheInfo c;
    c.mode = api::CacheMode::Exact;
    c.modelVersion = "v1";
    return c;
  }
  static routing::CacheInfo semantic(double threshold = 0.95) {
    routing::CacheInfo c;
    c.mode = api::CacheMode::Semantic;
    c.similarityThreshold = threshold;
    c.embeddingsDeployment = "embed";
    c.modelVersion = "v1";
    return c;
  }
  void routes(std::vector<routing::DeploymentRoutes> ds) {
    routing::RoutingTable t;
    t.deployments = std::move(ds);
    t.normalize();
    router->setRoutes(std::move(t));
  }

  static std::string chat(const std::string& model, const std::string& prompt, bool stream = false,
                          json extra = json::object()) {
    json b = {{"model", model}, {"messages", json::array({{{"role", "user"}, {"content", prompt}}})}, {"max_tokens", 8}};
    if (stream) b["stream"] = true;
    for (auto& [k, v] : extra.items()) b[k] = v;
    return b.dump();
  }
  Response ask(const std::string& body, std::map<std::string, std::string> headers = {}) {
    return post(router->port(), "/v1/chat/completions", body, std::move(headers));
  }
  double metric(const std::string& series) { return metricValue(router->registry().serialize(), series); }
  // Attempts the router counted as relayed; it counts after the response's last byte, so
  // a test that just got its answer waits (up to 2 s) for the count to reach `atLeast`.
  double upstreamOk(const std::string& deployment, double atLeast = 0) {
    const std::string series =
        R"(waterline_router_upstream_attempts_total{deployment=")" + deployment + R"(",pool="p",result="ok"})";
    double v = metric(series);
    for (int i = 0; i < 200 && v < atLeast; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      v = metric(series);
    }
    return v;
  }
  // Polls until `f` gives the same value twice 50 ms apart (the router settles a
  // reservation after the response's last byte).
  static double settled(const std::function<double()>& f) {
    double v = f();
    for (int i = 0; i < 40; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      const double w = f();
      if (w == v) return w;
      v = w;
    }
    return v;
  }

  // The text of an SSE chat stream's content deltas, and whether it ended with [DONE].
  static std::pair<std::string, bool> sseText(const std::string& body) {
    std::string text;
    bool done = false;
    std::istringstream in(body);
    for (std::string line; std::getline(in, line);) {
      if (line.rfind("data: ", 0) != 0) continue;
      const std::string data = line.substr(6);
      if (data == "[DONE]") {
        done = true;
        continue;
      }
      const json j = json::parse(data);
      for (const auto& c : j["choices"])
        if (c.contains("delta") && c["delta"].contains("content") && c["delta"]["content"].is_string())
          text += c["delta"]["content"].get<std::string>();
    }
    return {text, done};
  }
};

TEST_F(CacheIT, ExactRepeatIsAnsweredFromTheCacheWithoutTheUpstream) {
  routes({chatDeployment(exact())});
  const std::string body = chat("chat", "Name three rivers in Europe.");
  auto first = ask(body);
  ASSERT_EQ(first.status, 200) << first.body;
  EXPECT_EQ(first.header("x-waterline-cache"), "miss");
  EXPECT_EQ(upstreamOk("team/chat", 1), 1);
  // Server-Timing: the lookup, and no embedding call in Exact mode.
  EXPECT_EQ(first.header("server-timing").rfind("cache-lookup;dur=", 0), 0u) << first.header("server-timing");
  EXPECT_EQ(first.header("server-timing").find("cache-embedding"), std::string::npos);

  // Key order, spelling of max_tokens and `user` do not change the key.
  json same = json::parse(body);
  same.erase("max_tokens");
  same["max_completion_tokens"] = 8;
  same["user"] = "someone";
  auto second = ask(same.dump());
  ASSERT_EQ(second.status, 200) << second.body;
  EXPECT_EQ(second.header("x-waterline-cache"), "hit");
  EXPECT_EQ(second.header("x-waterline-cache-similarity"), "1.0000");
  EXPECT_EQ(second.header("x-waterline-deployment"), "team/chat");
  EXPECT_EQ(upstreamOk("team/chat"), 1) << "a hit reached the upstream";
  const json a = json::parse(first.body), b = json::parse(second.body);
  EXPECT_EQ(b["object"], "chat.completion");
  ASSERT_EQ(b["choices"].size(), 1u);
  EXPECT_EQ(b["choices"][0]["index"], 0);
  EXPECT_EQ(b["choices"][0]["message"], (json{{"role", "assistant"}, {"content", a["choices"][0]["message"]["content"]}}));
  EXPECT_EQ(b["choices"][0]["finish_reason"], a["choices"][0]["finish_reason"]);
  EXPECT_EQ(b["usage"]["completion_tokens"], a["usage"]["completion_tokens"]);
  EXPECT_NE(b["id"], a["id"]);
  EXPECT_EQ(b["id"].get<std::string>().rfind("chatcmpl-", 0), 0u);

  // Another max_tokens is another request.
  auto other = ask(chat("chat", "Name three rivers in Europe.", false, {{"max_tokens", 9}}));
  EXPECT_EQ(other.header("x-waterline-cache"), "miss");
  EXPECT_EQ(upstreamOk("team/chat", 2), 2);

  EXPECT_EQ(metric(R"(waterline_router_cache_lookups_total{deployment="team/chat",result="hit"})"), 1);
  EXPECT_EQ(metric(R"(waterline_router_cache_lookups_total{deployment="team/chat",result="miss"})"), 2);
  EXPECT_EQ(metric(R"(waterline_router_cache_hits_total{deployment="team/chat",kind="exact"})"), 1);
  EXPECT_EQ(metric(R"(waterline_router_cache_tokens_saved_total{deployment="team/chat"})"),
            a["usage"]["total_tokens"].get<double>());
  EXPECT_EQ(metric(R"(waterline_router_cache_entries{deployment="team/chat"})"), 2);
}

TEST_F(CacheIT, StreamedAnswerIsStoredAndReplayedBothWays) {
  routes({chatDeployment(exact())});
  auto first = ask(chat("chat", "Count to four.", true));
  ASSERT_EQ(first.status, 200);
  EXPECT_EQ(first.header("x-waterline-cache"), "miss");
  const auto [text, done] = sseText(first.body);
  ASSERT_TRUE(done);
  ASSERT_FALSE(text.empty());

  auto again = ask(chat("chat", "Count to four.", true, {{"stream_options", {{"include_usage", true}}}}));
  ASSERT_EQ(again.status, 200);
  EXPECT_EQ(again.header("x-waterline-cache"), "hit");
  EXPECT_EQ(again.header("content-type"), "text/event-stream");
  const auto [text2, done2] = sseText(again.body);
  EXPECT_TRUE(done2);
  EXPECT_EQ(text2, text);
  EXPECT_NE(again.body.find(R"("usage":{"prompt_tokens")"), std::string::npos) << again.body;

  auto plain = ask(chat("chat", "Count to four."));
  ASSERT_EQ(plain.status, 200);
  EXPECT_EQ(plain.header("x-waterline-cache"), "hit");
  EXPECT_EQ(json::parse(plain.body)["choices"][0]["message"]["content"], text);
  EXPECT_EQ(upstreamOk("team/chat", 1), 1);
}

TEST_F(CacheIT, SemanticNearDuplicateHitsAndTheThresholdHolds) {
  routes({chatDeployment(semantic(0.95)), embedDeployment()});
  auto first = ask(chat("chat", "What is the capital of France?"));
  ASSERT_EQ(first.status, 200) << first.body;
  EXPECT_EQ(first.header("x-waterline-cache"), "miss");
  EXPECT_EQ(upstreamOk("team/embed", 1), 1) << "the embedding went through the embeddings deployment";
  // Server-Timing names the embedding call, so its share of the latency can be told apart.
  EXPECT_NE(first.header("server-timing").find("cache-embedding;dur="), std::string::npos)
      << first.header("server-timing");

  // Case and spacing: the sim's embedder reads them as the same text.
  auto near = ask(chat("chat", "  what is the capital of   FRANCE?"));
  ASSERT_EQ(near.status, 200) << near.body;
  EXPECT_EQ(near.header("x-waterline-cache"), "hit");
  EXPECT_NE(near.header("server-timing").find("cache-embedding;dur="), std::string::npos);
  EXPECT_EQ(json::parse(near.body)["choices"][0]["message"]["content"],
            json::parse(first.body)["choices"][0]["message"]["content"]);
  EXPECT_EQ(metric(R"(waterline_router_cache_hits_total{deployment="team/chat",kind="semantic"})"), 1);

  // An unrelated prompt misses.
  auto unrelated = ask(chat("chat", "Write a haiku about autumn leaves falling."));
  EXPECT_EQ(unrelated.header("x-waterline-cache"), "miss");
  EXPECT_EQ(upstreamOk("team/chat", 2), 2);

  // A small edit scores below 1: at a threshold below its score it hits ...
  auto edited = ask(chat("chat", "What is the capital of France, please?"));
  ASSERT_EQ(edited.status, 200);
  double score = 0;
  if (edited.header("x-waterline-cache") == "hit") {
    score = std::stod(edited.header("x-waterline-cache-similarity"));
  } else {
    routes({chatDeployment(semantic(0.5)), embedDeployment()});  // new settings: a fresh cache
    ASSERT_EQ(ask(chat("chat", "What is the capital of France?")).header("x-waterline-cache"), "miss");
    auto low = ask(chat("chat", "What is the capital of France, please?"));
    ASSERT_EQ(low.header("x-waterline-cache"), "hit") << "similarity below 0.5";
    score = std::stod(low.header("x-waterline-cache-similarity"));
  }
  ASSERT_GT(score, 0.5);
  ASSERT_LT(score, 1.0);
  // ... and at a threshold just above it, it misses.
  routes({chatDeployment(semantic(std::min(1.0, score + 0.005))), embedDeployment()});
  ASSERT_EQ(ask(chat("chat", "What is the capital of France?")).header("x-waterline-cache"), "miss");
  EXPECT_EQ(ask(chat("chat", "What is the capital of France, please?")).header("x-waterline-cache"), "miss");
  EXPECT_EQ(ask(chat("chat", "What is the capital of France?")).header("x-waterline-cache"), "hit");
}

TEST_F(CacheIT, NeverAcrossNamespacesOrKeys) {
  auto keyed = exact();
  keyed.varyBy = {routing::CacheVaryInfo{.header = "x-api-key", .field = ""}};
  routes({chatDeployment(keyed), chatDeployment(exact(), "other", "chat", "other-chat")});
  const std::string body = chat("team/chat", "Tell me a secret.");
  ASSERT_EQ(ask(body, {{"x-api-key", "alice"}}).header("x-waterline-cache"), "miss");
  EXPECT_EQ(ask(body, {{"x-api-key", "alice"}}).header("x-waterline-cache"), "hit");
  EXPECT_EQ(ask(body, {{"x-api-key", "bob"}}).header("x-waterline-cache"), "miss");
  EXPECT_EQ(ask(body).header("x-waterline-cache"), "miss");
  EXPECT_EQ(ask(body, {{"x-api-key", "bob"}}).header("x-waterline-cache"), "hit");
  // The same prompt to another namespace's deployment: its own cache.
  auto other = ask(chat("other/chat", "Tell me a secret."), {{"x-api-key", "alice"}});
  ASSERT_EQ(other.status, 200) << other.body;
  EXPECT_EQ(other.header("x-waterline-deployment"), "other/chat");
  EXPECT_EQ(other.header("x-waterline-cache"), "miss");
}

TEST_F(CacheIT, CacheControlAndEligibilityBypass) {
  routes({chatDeployment(exact())});
  const std::string body = chat("chat", "Spell 'cache'.");
  // no-store: looked up, not stored.
  EXPECT_EQ(ask(body, {{"cache-control", "no-store"}}).header("x-waterline-cache"), "miss");
  EXPECT_EQ(ask(body, {{"cache-control", "no-store"}}).header("x-waterline-cache"), "miss");
  EXPECT_EQ(ask(body).header("x-waterline-cache"), "miss");  // stored now
  EXPECT_EQ(ask(body).header("x-waterline-cache"), "hit");
  // no-cache: not looked up.
  EXPECT_EQ(ask(body, {{"Cache-Control", "max-age=0, No-Cache"}}).header("x-waterline-cache"), "bypass");
  const double before = upstreamOk("team/chat", 4);
  EXPECT_EQ(before, 4);
  // Sampling, tools: never cached.
  EXPECT_EQ(ask(chat("chat", "Spell 'cache'.", false, {{"temperature", 0.7}})).header("x-waterline-cache"), "bypass");
  EXPECT_EQ(ask(chat("chat", "Spell 'cache'.", false, {{"temperature", 0.7}})).header("x-waterline-cache"), "bypass");
  EXPECT_EQ(upstreamOk("team/chat", before + 2), before + 2);
  EXPECT_EQ(ask(chat("chat", "Spell 'cache'.", false, {{"temperature", 0}})).header("x-waterline-cache"), "miss");
  EXPECT_EQ(metric(R"(waterline_router_cache_lookups_total{deployment="team/chat",result="bypass"})"), 3);
}

TEST_F(CacheIT, EntriesGoWithTheDeploymentAndItsModelVersion) {
  routes({chatDeployment(exact())});
  const std::string body = chat("chat", "Which entries survive?");
  ASSERT_EQ(ask(body).header("x-waterline-cache"), "miss");
  ASSERT_EQ(ask(body).header("x-waterline-cache"), "hit");
  // A new model version: old answers are not served.
  auto v2 = exact();
  v2.modelVersion = "v2";
  routes({chatDeployment(v2)});
  EXPECT_EQ(ask(body).header("x-waterline-cache"), "miss");
  EXPECT_EQ(ask(body).header("x-waterline-cache"), "hit");
  // Deleted, then created again: empty.
  routes({});
  EXPECT_EQ(ask(body).status, 404);
  routes({chatDeployment(v2)});
  EXPECT_EQ(ask(body).header("x-waterline-cache"), "miss");
  // Without spec.cache: no cache header at all.
  routes({chatDeployment(std::nullopt)});
  auto off = ask(body);
  EXPECT_EQ(off.status, 200);
  EXPECT_EQ(off.header("x-waterline-cache"), "");
}

TEST_F(CacheIT, HitsAreNotChargedToTheReservation) {
  auto d = chatDeployment(exact());
  routing::ReservationInfo res;
  res.reservation = {"team", "ptu"};
  res.tokensPerMinute = 100000;
  d.reservations = {res};
  routes({d});
  const std::string body = chat("chat", "How much does this cost?");
  ASSERT_EQ(ask(body).header("x-waterline-cache"), "miss");
  auto used = [&] { return router->admission().stats(std::chrono::steady_clock::now())["team/ptu"].used; };
  const double charged = settled(used);
  EXPECT_GT(charged, 0);
  for (int i = 0; i < 5; ++i) ASSERT_EQ(ask(body).header("x-waterline-cache"), "hit");
  EXPECT_EQ(settled(used), charged);
  // A miss is charged as usual.
  ASSERT_EQ(ask(chat("chat", "And this one?")).header("x-waterline-cache"), "miss");
  EXPECT_GT(settled(used), charged);
}

}  // namespace
}  // namespace waterline::router
