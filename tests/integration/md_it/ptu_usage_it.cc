// PTUReservation status from Prometheus: usedTokensPerMinute from the deployment's vLLM
// token counters (waterline-sim), and throttledRequests from the routers' counters. A
// real waterline-router reads the operator's table (/v1/routes) and enforces the reservation;
// requests over it get 429; Prometheus scrapes the router and the sim; the operator's
// PTUReservation controller writes what Prometheus reports into the status.
#include <fstream>
#include <sstream>

#include "md_world.h"
#include "procs.h"
#include "support.h"

namespace waterline::mdit {
namespace {

std::string curlOut(const std::string& args) {
  const std::string file = "/tmp/" + it::uniqueName("curl") + ".txt";
  (void)it::run("curl -s -m 10 -o " + file + " " + args);
  std::string s = it::readFile(file, 1 << 20);
  std::remove(file.c_str());
  return s;
}

// The value of `metric{reservation="<key>"}` in a text exposition (-1: absent).
double sampleOf(const std::string& text, const std::string& metric, const std::string& key) {
  std::stringstream ss(text);
  const std::string prefix = metric + "{reservation=\"" + key + "\"}";
  for (std::string l; std::getline(ss, l);)
    if (l.rfind(prefix, 0) == 0) return std::stod(l.substr(prefix.size() + 1));
  return -1;
}

TEST(PtuUsageIT, StatusCarriesObservedTokensAndTheRoutersThrottledRequests) {
  WL_CLIENT_OR_SKIP(c);
  if (it::findBinary("WATERLINE_PROMETHEUS", "prometheus").empty())
    GTEST_SKIP() << "no prometheus binary (Debian's prometheus, or set WATERLINE_PROMETHEUS)";
  World w(c);
  ASSERT_TRUE(c->patch(kube::kinds::CapacityPool, "", w.pool, kube::PatchType::Merge,
                       R"({"spec":{"reservableFraction":0.5}})"));
  Json d = w.deployment("llama", 1, 1);
  d["spec"]["throughput"] = {{"tokensPerMinutePerReplica", 600000}};
  // Load on the deployment's worker (a stand-in with its labels).
  it::Sim sim;
  ASSERT_TRUE(sim.start(tokenLoadSimArgs(w, "llama", 5))) << sim.logText();
  it::OperatorProcess op;
  it::Child router;
  const uint16_t routerPort = it::freePort();
  it::Prometheus prom({sim.listenPort, routerPort});
  prom.start();
  op.start({"--leader-elect=false", "--prometheus-url=" + prom.url(), "--routing-heartbeat=1s"});
  w.apply(d);
  // 1 unit x 1000 tokens/min: one replica held, a tiny budget for requests.
  Json r = {{"apiVersion", "waterline.dev/v1alpha1"},
            {"kind", "PTUReservation"},
            {"metadata", {{"name", "r1"}, {"namespace", w.ns}}},
            {"spec",
             {{"deploymentRef", {{"name", "llama"}}},
              {"units", 1},
              {"tokensPerMinutePerUnit", 1000},
              {"scope", {{"type", "Regional"}, {"region", "eu-west"}}}}}};
  ASSERT_TRUE(c->apply(kube::kinds::PTUReservation, w.ns, r, {"it-test", true, ""}));
  struct Cleanup {
    std::shared_ptr<kube::RestClient> c;
    std::string ns;
    ~Cleanup() {
      (void)c->patch(kube::kinds::PTUReservation, ns, "r1", kube::PatchType::Merge, R"({"metadata":{"finalizers":null}})");
      (void)c->remove(kube::kinds::PTUReservation, ns, "r1");
    }
  } cleanup{c, w.ns};
  auto status = [&] {
    auto o = c->get(kube::kinds::PTUReservation, w.ns, "r1");
    return o && o->contains("status") ? (*o)["status"] : Json::object();
  };
  ASSERT_TRUE(it::eventually([&] { return status().value("phase", "") == "Active"; }, 60s))
      << status().dump() << op.logText();

  // The router reads the operator's table with the worker's endpoint pointed at a stand-in
  // on loopback (kwok pod IPs are not reachable), which answers with usage: admitted
  // requests are settled at what they really used.
  using router::testing::TestUpstream;
  TestUpstream upstream([](const auto&) { return TestUpstream::completion(10, 400); });
  const std::string routesFile = "/tmp/" + it::uniqueName("wl-routes") + ".json";
  ASSERT_TRUE(it::eventually([&] {
    auto t = Json::parse(curlOut("'http://127.0.0.1:" + std::to_string(op.port) + "/v1/routes'"), nullptr, false);
    if (t.is_discarded() || !t.contains("items") || !t["items"].is_array()) return false;
    // Only this test's deployment (the fixture's apiserver is shared with other tests).
    Json mine = Json::array();
    for (const auto& item : t["items"])
      if (item.value("metadata", Json::object()).value("name", "") == w.ns + ".llama") mine.push_back(item);
    if (mine.size() != 1) return false;
    auto& spec = mine[0]["spec"];
    if (!spec.contains("reservations") || spec["reservations"].empty() || spec["entries"].empty()) return false;
    // Only once the worker is ready: an entry published before that has no capacity and
    // is not healthy, and a router given it answers 503 (no usable pool), not 429.
    bool usable = false;
    for (const auto& e : spec["entries"])
      usable |= e.value("healthy", false) && e.value("capacityTokensPerMinute", 0.0) > 0;
    if (!usable) return false;
    for (auto& e : spec["entries"]) e["endpoints"] = Json::array({"127.0.0.1:" + std::to_string(upstream.port())});
    t["items"] = mine;
    std::ofstream(routesFile) << t.dump();
    return true;
  }, 60s)) << op.logText(3000);
  router.start({it::binaryDir() + "/operator/router/waterline-router", "--listen=127.0.0.1:" + std::to_string(routerPort),
                "--threads=1", "--routes-file=" + routesFile, "--log-level=warn", "--shutdown-delay=0"},
               "/tmp/" + it::uniqueName("wl-router") + ".log");
  const std::string key = w.ns + "/r1";
  const std::string routerMetrics = "http://127.0.0.1:" + std::to_string(routerPort) + "/metrics";
  ASSERT_TRUE(it::eventually([&] {
    return sampleOf(curlOut("'" + routerMetrics + "'"), "waterline_router_ptu_throttled_total", key) == 0;
  }, 60s)) << router.logText() << op.logText(3000);
  // Prometheus has the zero before any request is refused (so increase() sees them all).
  ASSERT_TRUE(it::eventually([&] {
    auto q = curlOut("-G '" + prom.url() + "/api/v1/query' --data-urlencode 'query=waterline_router_ptu_throttled_total{reservation=\"" +
                     key + "\"}'");
    return q.find("\"result\":[{") != std::string::npos;
  }, 30s)) << prom.logText();

  // 12 requests of 400 output tokens each against 1000 tokens/min (+ burst): most are 429.
  const std::string body = "{\"model\":\"" + w.ns + "/llama\",\"max_tokens\":400,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";
  int refused = 0;
  std::string answers;
  for (int i = 0; i < 12; ++i) {
    const std::string codeFile = "/tmp/" + it::uniqueName("code") + ".txt";
    auto out = curlOut("-w '%{http_code}' -H 'content-type: application/json' -d '" + body + "' 'http://127.0.0.1:" +
                       std::to_string(routerPort) + "/v1/chat/completions' > " + codeFile);
    const std::string code = it::readFile(codeFile);
    std::remove(codeFile.c_str());
    refused += code == "429" ? 1 : 0;
    answers += code + " " + out + "\n";
  }
  const double throttled = sampleOf(curlOut("'" + routerMetrics + "'"), "waterline_router_ptu_throttled_total", key);
  ASSERT_GE(refused, 8) << answers << router.logText() << "\nrouter table: "
                        << curlOut("'http://127.0.0.1:" + std::to_string(routerPort) + "/debug/routes'");
  ASSERT_EQ(throttled, refused);

  // The status follows (the controller refreshes an Active reservation every 30 s at most).
  Json st;
  ASSERT_TRUE(it::eventually([&] {
    st = status();
    return st.value("throttledRequests", 0) > 0 && st.value("usedTokensPerMinute", 0) > 1000;
  }, 120s)) << st.dump() << op.logText(3000);
  // increase() extrapolates a little at the edges of a young series: close, not exact.
  EXPECT_NEAR(double(st.value("throttledRequests", 0)), throttled, std::max(1.0, throttled / 4)) << st.dump();
  EXPECT_EQ(st.value("spilledRequests", -1), 0);
  // ~4 req/s x ~208 tokens x 60 s is ~50k tokens/min; utilization against 1000 is far over 1.
  EXPECT_LT(st.value("usedTokensPerMinute", 0), 500000);
  EXPECT_NEAR(st.value("utilization", 0.0), st.value("usedTokensPerMinute", 0) / 1000.0, 1e-6);
  router.kill(SIGTERM);
}

}  // namespace
}  // namespace waterline::mdit
