// The simulator's load model (trace, perf model, continuous batching, fleet, metrics)
// and, end to end, the waterline-sim binary's HTTP endpoints.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include "waterline/common/metrics.h"
#include "waterline/sim/fleet.h"
#include "waterline/sim/perf_model.h"
#include "waterline/sim/trace.h"
#include "waterline/sim/worker.h"

namespace waterline::sim {
namespace {

namespace fs = std::filesystem;

bool haveData() { return fs::exists(defaultPerfModelPath()) && fs::exists(defaultMooncakeTracePath()); }

// ---- perf model

TEST(PerfModel, SplitwiseTable) {
  if (!haveData()) GTEST_SKIP() << "shared data not found";
  auto pm = PerfModel::loadCsv(defaultPerfModelPath());
  ASSERT_TRUE(pm) << pm.error();
  EXPECT_GE(pm->keys().size(), 12u);
  auto h100 = pm->service("llama2-70b", "H100", 4);
  ASSERT_TRUE(h100) << h100.error();
  // Table means (ms): prompt 8192 → 943.3; batch 16 → 32.84, 32 → 36.92.
  EXPECT_NEAR(h100->prefillSeconds(8192), 0.9433, 0.002);
  EXPECT_NEAR(h100->decodeStepSeconds(32), 0.03692, 0.0002);
  EXPECT_NEAR(h100->decodeStepSeconds(24), (0.03284 + 0.03692) / 2, 0.0003);  // interpolated
  EXPECT_GT(h100->prefillSeconds(16384), h100->prefillSeconds(8192) * 1.9);  // extrapolated
  EXPECT_GT(h100->kvCapacityTokens(), 100000);
  EXPECT_NEAR(h100->capacityWeightedTokensPerSecond(), 8192 / 0.9433, 20);
  // The A100 is slower; TP2's anomalous batch-64 point is flattened to the batch-32 value.
  auto a100 = pm->service("llama2-70b", "a100-80gb", 4);
  ASSERT_TRUE(a100);
  EXPECT_GT(a100->prefillSeconds(4096), h100->prefillSeconds(4096));
  auto tp2 = pm->service("llama2-70b", "H100", 2);
  ASSERT_TRUE(tp2);
  EXPECT_GE(tp2->decodeStepSeconds(64), tp2->decodeStepSeconds(32));
  auto missing = pm->service("llama2-70b", "H100", 3);
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().find("have:"), std::string::npos);
}

TEST(PerfModel, HardwareNames) {
  EXPECT_EQ(normalizeHardware("H100"), "h100-80gb");
  EXPECT_EQ(normalizeHardware("a100"), "a100-80gb");
  EXPECT_EQ(normalizeHardware("H100-80GB-PCAP"), "h100-80gb-pcap");
  EXPECT_TRUE(modelShape("llama2-70b"));
  EXPECT_FALSE(modelShape("gpt-9"));
}

// ---- trace

TEST(Trace, MooncakeFormatAndSpeed) {
  const fs::path p = fs::temp_directory_path() / ("wl-trace-" + std::to_string(::getpid()) + ".jsonl");
  {
    std::ofstream f(p);
    f << R"({"timestamp": 0, "input_length": 100, "output_length": 10, "hash_ids": [1]})" << "\n\n"
      << R"({"timestamp": 2000, "input_length": 50, "output_length": 5})" << "\n";
  }
  auto t = loadMooncakeTrace(p.string(), 10);
  ASSERT_TRUE(t) << t.error();
  ASSERT_EQ(t->size(), 2u);
  EXPECT_DOUBLE_EQ((*t)[1].arrival, 0.2);
  EXPECT_EQ((*t)[1].inputTokens, 50);
  auto looped = loopTrace(*t, 3);
  ASSERT_EQ(looped.size(), 6u);
  EXPECT_DOUBLE_EQ(looped[2].arrival, 0.4);  // period = last + mean gap
  EXPECT_EQ(looped[5].id, 5u);
  {
    std::ofstream f(p, std::ios::app);
    f << R"({"timestamp": "x"})" << "\n";
  }
  auto bad = loadMooncakeTrace(p.string());
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().find(":4:"), std::string::npos) << bad.error();
  fs::remove(p);
  if (haveData()) {
    auto real = loadMooncakeTrace(defaultMooncakeTracePath());
    ASSERT_TRUE(real) << real.error();
    EXPECT_EQ(real->size(), 12031u);
  }
}

TEST(Trace, PoissonRateAndBursts) {
  PoissonConfig c;
  c.ratePerSecond = 20;
  c.duration = 500;
  c.meanInputTokens = 1000;
  c.meanOutputTokens = 100;
  auto r = generatePoisson(c);
  const auto s = summarize(r, 0, 500);
  EXPECT_NEAR(s.requestsPerSecond, 20, 1.0);
  EXPECT_NEAR(s.meanInput, 1000, 60);
  EXPECT_NEAR(s.meanOutput, 100, 8);
  c.burstEvery = 100;
  c.burstDuration = 20;
  c.burstFactor = 4;
  auto b = generatePoisson(c);
  EXPECT_GT(summarize(b, 0, 20).requestsPerSecond, 2.5 * summarize(b, 20, 100).requestsPerSecond);
  EXPECT_EQ(generatePoisson(c).size(), b.size());  // seeded: deterministic
}

// ---- continuous batching

// prefill: 1 ms per prompt token; decode: 10 ms per step at any batch.
ServiceModel toyModel(double kv = 1e9) {
  return ServiceModel({{100, 100}, {200, 200}}, {{1, 10}, {64, 10}}, kv);
}

SimRequest req(uint64_t id, int in, int out) {
  SimRequest r;
  r.id = id;
  r.inputTokens = in;
  r.outputTokens = out;
  return r;
}

TEST(SimWorker, PrefillThenDecode) {
  SimWorker w(toyModel(), {});
  std::vector<std::pair<uint64_t, double>> first, done;
  WorkerEvents ev;
  ev.firstToken = [&](const ActiveRequest& a, double t) { first.push_back({a.id, t}); };
  ev.done = [&](const ActiveRequest& a, double t) { done.push_back({a.id, t}); };
  w.submit(req(1, 100, 3), 0);
  w.submit(req(2, 100, 1), 0);  // queued: the first prefill already started
  EXPECT_EQ(w.waiting(), 1);
  w.advanceTo(1.0, ev);
  // r1: prefill 0.1 → first token 0.1; r2 prefills next (prefill priority) 0.1 → 0.2
  // (done: one token); r1 decodes 2 steps: 0.21, 0.22.
  ASSERT_EQ(first.size(), 2u);
  EXPECT_NEAR(first[0].second, 0.1, 1e-9);
  EXPECT_NEAR(first[1].second, 0.2, 1e-9);
  ASSERT_EQ(done.size(), 2u);
  EXPECT_EQ(done[0].first, 2u);
  EXPECT_NEAR(done[0].second, 0.2, 1e-9);
  EXPECT_EQ(done[1].first, 1u);
  EXPECT_NEAR(done[1].second, 0.22, 1e-9);
  EXPECT_NEAR(w.busySecondsUntil(1.0), 0.22, 1e-9);
  EXPECT_EQ(w.outstanding(), 0);
}

TEST(SimWorker, BatchesPromptsAndRespectsTheKvCache) {
  SimWorker w(toyModel(/*kv=*/300), {});
  WorkerEvents ev;
  int prefills = 0;
  std::vector<int64_t> prompts;
  ev.iteration = [&](double, int, bool prefill, int64_t tokens) {
    if (prefill) prompts.push_back(tokens);
  };
  w.advanceTo(0, ev);
  // Idle worker: the first request starts alone; the next two arrive while it prefills.
  w.submit(req(1, 100, 10), 0);
  w.submit(req(2, 100, 10), 0.05);
  w.submit(req(3, 100, 10), 0.05);
  w.advanceTo(0.1, ev);  // prefill of r1 done; r2 fits the cache (220 of 300), r3 does not
  EXPECT_EQ(w.running(), 2);  // r1 decoding, r2 prefilling
  EXPECT_EQ(w.waiting(), 1);
  w.advanceTo(0.2, ev);
  EXPECT_EQ(prompts, (std::vector<int64_t>{100, 100}));
  EXPECT_EQ(w.waiting(), 1);
  EXPECT_GT(w.kvUsage(), 0.7);
  w.advanceTo(5, ev);
  EXPECT_EQ(w.outstanding(), 0);
  EXPECT_EQ(prompts.size(), 3u);
  (void)prefills;
}

// ---- fleet

std::string scrape(metrics::Registry& reg) { return reg.serialize(); }

TEST(Fleet, RoutesStartsDrainsAndExportsMetrics) {
  if (!haveData()) GTEST_SKIP() << "shared data not found";
  auto pm = PerfModel::loadCsv(defaultPerfModelPath());
  ASSERT_TRUE(pm);
  metrics::Registry reg;
  FleetOptions fo;
  fo.startupSeconds = 30;
  Fleet fleet(*pm, fo, &reg);
  std::vector<WorkerSpec> specs;
  for (int i = 0; i < 3; ++i)
    specs.push_back(*parseWorkerSpec("pod=w" + std::to_string(i) + ",namespace=ml,deployment=llama,pool=p1,gpu=H100,tp=4"));
  auto bad = parseWorkerSpec("pod=x,gpu=H100,tp=3");
  ASSERT_TRUE(bad);
  specs.push_back(*bad);
  auto errors = fleet.sync(specs, 0);
  ASSERT_EQ(errors.size(), 1u);  // no perf data for tp3
  EXPECT_EQ(fleet.status().size(), 3u);
  EXPECT_EQ(fleet.readyWorkers(), 0u);
  EXPECT_FALSE(fleet.submit(req(1, 1000, 10), 1));  // still loading the model
  fleet.advanceTo(30);
  EXPECT_EQ(fleet.readyWorkers("llama"), 3u);

  // Least outstanding: three requests land on three workers.
  std::set<std::string> used;
  int done = 0;
  for (uint64_t i = 0; i < 3; ++i) {
    auto pod = fleet.submit(req(10 + i, 2000, 20), 30, "llama", {}, [&](const Completion& c) {
      EXPECT_FALSE(c.failed);
      EXPECT_GT(c.firstToken, c.arrival);
      ++done;
    });
    ASSERT_TRUE(pod);
    used.insert(*pod);
  }
  EXPECT_EQ(used.size(), 3u);
  fleet.advanceTo(40);
  EXPECT_EQ(done, 3);
  fleet.refreshGauges(40);

  const std::string text = scrape(reg);
  for (const char* name :
       {"vllm:prompt_tokens_total{pod=\"w0\",namespace=\"ml\",deployment=\"llama\",pool=\"p1\",model_name=\"llama2-70b\"} 2000",
        "vllm:generation_tokens_total{pod=\"w1\"", "vllm:request_success_total{pod=\"w2\"",
        "vllm:num_requests_running{", "vllm:num_requests_waiting{", "vllm:gpu_cache_usage_perc{",
        "vllm:time_to_first_token_seconds_bucket{", "vllm:time_per_output_token_seconds_count{",
        "vllm:e2e_request_latency_seconds_sum{", "DCGM_FI_DEV_GPU_UTIL{gpu=\"0\",UUID=\"GPU-",
        "Hostname=\"sim-node-0\",pod=\"w0\",namespace=\"ml\",container=\"vllm\"} ", "DCGM_FI_DEV_FB_USED{",
        "DCGM_FI_DEV_XID_ERRORS{gpu=\"7\""})
    EXPECT_NE(text.find(name), std::string::npos) << name;

  // A fatal XID fails the worker that holds the GPU, and its requests.
  int failed = 0;
  auto pod = fleet.submit(req(99, 4000, 500), 40, {}, "w1", [&](const Completion& c) { failed += c.failed; });
  ASSERT_TRUE(pod);
  EXPECT_TRUE(fleet.injectXid("sim-node-0", 5, 79, 40.5));  // w1 holds GPUs 4..7 of node 0
  EXPECT_EQ(failed, 1);
  EXPECT_TRUE(fleet.status("w1")->failed);
  EXPECT_EQ(fleet.readyWorkers(), 2u);
  EXPECT_NE(scrape(reg).find("DCGM_FI_DEV_XID_ERRORS{gpu=\"5\""), std::string::npos);
  EXPECT_FALSE(fleet.injectXid("nope", 0, 79, 41));
  EXPECT_TRUE(fleet.clearXid("sim-node-0", 5));
  EXPECT_FALSE(fleet.status("w1")->failed);

  // Dropping a worker from the set drains it; its metrics go.
  specs.pop_back();
  specs.erase(specs.begin());
  fleet.sync(specs, 50);
  EXPECT_FALSE(fleet.status("w0"));
  EXPECT_EQ(scrape(reg).find("pod=\"w0\""), std::string::npos);
}

TEST(Fleet, WorkerConfigJson) {
  auto w = parseWorkerConfig(R"({"workers":[{"pod":"a","namespace":"ml","deployment":"d","pool":"p","gpu":"A100","tp":8,
                                 "node":"n1","gpus":[0,1,2,3,4,5,6,7]}]})");
  ASSERT_TRUE(w) << w.error();
  ASSERT_EQ(w->size(), 1u);
  EXPECT_EQ((*w)[0].gpuType, "A100");
  EXPECT_EQ((*w)[0].tp, 8);
  EXPECT_EQ((*w)[0].gpus.size(), 8u);
  EXPECT_FALSE(parseWorkerConfig(R"({"workers":[{"namespace":"x"}]})"));
  EXPECT_FALSE(parseWorkerSpec("namespace=x"));
  EXPECT_FALSE(parseWorkerSpec("pod=a,color=red"));
}

// ---- the binary, end to end

#ifdef WATERLINE_SIM_BINARY
namespace net = boost::asio;
namespace bhttp = boost::beast::http;

struct Reply {
  int status = 0;
  std::string body;
};

Reply http(uint16_t port, bhttp::verb verb, const std::string& target, const std::string& body = {}) {
  net::io_context io;
  net::ip::tcp::socket sock(io);
  sock.connect({net::ip::make_address("127.0.0.1"), port});
  bhttp::request<bhttp::string_body> req{verb, target, 11};
  req.set(bhttp::field::host, "127.0.0.1");
  req.set(bhttp::field::content_type, "application/json");
  req.body() = body;
  req.prepare_payload();
  bhttp::write(sock, req);
  boost::beast::flat_buffer buf;
  bhttp::response<bhttp::string_body> res;
  bhttp::read(sock, buf, res);
  return {static_cast<int>(res.result_int()), res.body()};
}

class SimBinary : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!haveData()) GTEST_SKIP() << "shared data not found";
    int fds[2];
    ASSERT_EQ(::pipe(fds), 0);
    pid_ = ::fork();
    if (pid_ == 0) {
      ::dup2(fds[1], STDOUT_FILENO);
      ::close(fds[0]);
      ::execl(WATERLINE_SIM_BINARY, WATERLINE_SIM_BINARY, "--listen", "127.0.0.1:0", "--worker",
              "pod=llama-0,namespace=ml,deployment=llama,pool=h100,gpu=H100,tp=4,node=n1", "--worker",
              "pod=llama-1,namespace=ml,deployment=llama,pool=h100,gpu=H100,tp=4,node=n1", "--time-scale", "20",
              static_cast<char*>(nullptr));
      std::_Exit(127);
    }
    ::close(fds[1]);
    FILE* out = ::fdopen(fds[0], "r");
    char line[256] = {};
    ASSERT_NE(std::fgets(line, sizeof line, out), nullptr);
    std::string s = line;
    ASSERT_EQ(s.rfind("listening on 127.0.0.1:", 0), 0u) << s;
    port_ = static_cast<uint16_t>(std::stoi(s.substr(23)));
    out_ = out;
  }
  void TearDown() override {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      int st = 0;
      ::waitpid(pid_, &st, 0);
    }
    if (out_) std::fclose(out_);
  }
  pid_t pid_ = -1;
  FILE* out_ = nullptr;
  uint16_t port_ = 0;
};

TEST_F(SimBinary, ServesMetricsCompletionsAndXidInjection) {
  auto m = http(port_, bhttp::verb::get, "/metrics");
  EXPECT_EQ(m.status, 200);
  EXPECT_NE(m.body.find("# TYPE vllm:num_requests_running gauge"), std::string::npos);
  EXPECT_NE(m.body.find("DCGM_FI_DEV_XID_ERRORS{gpu=\"3\""), std::string::npos);

  auto c = http(port_, bhttp::verb::post, "/v1/chat/completions",
                R"({"model":"llama","messages":[{"role":"user","content":"Say hello in twenty words please."}],"max_tokens":20})");
  ASSERT_EQ(c.status, 200) << c.body;
  auto j = nlohmann::json::parse(c.body);
  EXPECT_EQ(j["object"], "chat.completion");
  EXPECT_EQ(j["usage"]["completion_tokens"], 20);
  EXPECT_EQ(j["usage"]["prompt_tokens"], 9);
  EXPECT_GT(j["waterline_sim"]["ttft_seconds"].get<double>(), 0);

  auto s = http(port_, bhttp::verb::post, "/workers/llama-1/v1/chat/completions",
                R"({"messages":[{"role":"user","content":"hi"}],"max_tokens":5,"stream":true,
                    "stream_options":{"include_usage":true}})");
  ASSERT_EQ(s.status, 200);
  EXPECT_NE(s.body.find("\"role\":\"assistant\""), std::string::npos) << s.body;
  EXPECT_NE(s.body.find("\"finish_reason\":\"length\""), std::string::npos);
  EXPECT_NE(s.body.find("\"completion_tokens\":5"), std::string::npos);
  EXPECT_NE(s.body.rfind("data: [DONE]\n\n"), std::string::npos);

  EXPECT_EQ(http(port_, bhttp::verb::get, "/workers/llama-0/health").status, 200);
  EXPECT_EQ(http(port_, bhttp::verb::post, "/inject/xid?node=n1&gpu=2&xid=79").status, 200);
  EXPECT_EQ(http(port_, bhttp::verb::post, "/inject/xid?node=n9&gpu=2&xid=79").status, 404);
  EXPECT_EQ(http(port_, bhttp::verb::post, "/inject/xid?node=n1").status, 400);
  EXPECT_EQ(http(port_, bhttp::verb::get, "/workers/llama-0/health").status, 503);
  m = http(port_, bhttp::verb::get, "/metrics");
  EXPECT_NE(m.body.find("DCGM_FI_DEV_XID_ERRORS{gpu=\"2\",UUID=\"GPU-"), std::string::npos);
  EXPECT_NE(m.body.find("Hostname=\"n1\",pod=\"llama-0\",namespace=\"ml\",container=\"vllm\"} 79"), std::string::npos);
  auto w = nlohmann::json::parse(http(port_, bhttp::verb::get, "/workers").body);
  EXPECT_TRUE(w["workers"][0]["failed"].get<bool>());
  // Requests now go to the healthy worker.
  c = http(port_, bhttp::verb::post, "/v1/chat/completions", R"({"messages":[{"role":"user","content":"x"}],"max_tokens":2})");
  ASSERT_EQ(c.status, 200);
  EXPECT_EQ(nlohmann::json::parse(c.body)["waterline_sim"]["pod"], "llama-1");
  EXPECT_EQ(http(port_, bhttp::verb::get, "/nope").status, 404);
}

TEST_F(SimBinary, ServesEmbeddingsAtOnce) {
  auto e = http(port_, bhttp::verb::post, "/v1/embeddings",
                R"({"model":"embed","input":["Hello world","hello   WORLD"],"dimensions":32})");
  ASSERT_EQ(e.status, 200) << e.body;
  auto j = nlohmann::json::parse(e.body);
  EXPECT_EQ(j["object"], "list");
  EXPECT_EQ(j["model"], "embed");
  ASSERT_EQ(j["data"].size(), 2u);
  EXPECT_EQ(j["data"][0]["embedding"].size(), 32u);
  EXPECT_EQ(j["data"][0]["embedding"], j["data"][1]["embedding"]);  // case and spacing normalised
  EXPECT_EQ(j["usage"]["prompt_tokens"], 3 + 4);  // 11 and 13 bytes, ~4 a token
  EXPECT_EQ(j["usage"]["total_tokens"], 7);
  auto w = http(port_, bhttp::verb::post, "/workers/llama-1/v1/embeddings", R"({"input":"x","encoding_format":"base64"})");
  ASSERT_EQ(w.status, 200) << w.body;
  EXPECT_TRUE(nlohmann::json::parse(w.body)["data"][0]["embedding"].is_string());
  EXPECT_EQ(http(port_, bhttp::verb::post, "/workers/nobody/v1/embeddings", R"({"input":"x"})").status, 404);
  auto bad = http(port_, bhttp::verb::post, "/v1/embeddings", R"({"input":[]})");
  EXPECT_EQ(bad.status, 400);
  EXPECT_EQ(nlohmann::json::parse(bad.body)["error"]["param"], "input");
}
#endif

}  // namespace
}  // namespace waterline::sim
