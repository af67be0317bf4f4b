// What the response cache adds to a miss in the real router: waterline-router in-process
// in front of one loopback upstream that answers a fixed chat completion at once, two
// deployments on that upstream, one without spec.cache and one with an Exact cache.
// A keep-alive client sends distinct prompts (every one a miss, stored, the cache full
// after maxEntries and evicting from then on) alternately to the two, one at a time, and
// the difference of their latency percentiles is the cache's added time on the router's
// path: canonicalisation and hashing, the exact lookup, keeping the answer, storing it.
// (The semantic index's own cost at 1M entries is cache_bench's cache_lookup_* and
// cache_miss_added_*; the embedding call is the embeddings deployment's latency.)
//
// Ends with RESULT lines: cache_router_miss_added_p50_us, cache_router_miss_added_p99_us
// and both deployments' p50/p99 (us).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "support.h"  // tests/integration/router: TestUpstream, Client
#include "waterline/router/server.h"
#include "waterline/routing/table.h"

namespace {

using namespace waterline;
using namespace waterline::router::testing;
using json = nlohmann::json;

double pct(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[static_cast<std::size_t>(p * static_cast<double>(v.size() - 1))];
}

routing::DeploymentRoutes deployment(const std::string& name, const std::string& endpoint, bool cached) {
  routing::DeploymentRoutes d;
  d.deployment = {"bench", name};
  d.model = "m";
  d.deploymentType = api::DeploymentType::Global;
  routing::RoutingEntry e;
  e.pool = "p";
  e.region = "r";
  e.dataZone = "z";
  e.capacityTokensPerMinute = 1e12;
  e.endpoints = {endpoint};
  e.healthy = true;
  e.weight = 1;
  e.heartbeatTime = std::chrono::system_clock::now();
  d.entries = {e};
  if (cached) {
    routing::CacheInfo c;
    c.mode = api::CacheMode::Exact;
    c.maxEntries = 10000;
    c.modelVersion = "v1";
    d.cache = c;
  }
  return d;
}

}  // namespace

int main() {
  int n = 20000;  // per deployment; WL_CACHE_ROUTER_REQUESTS overrides
  if (const char* e = std::getenv("WL_CACHE_ROUTER_REQUESTS")) n = std::max(100, std::atoi(e));

  // A typical answer: ~100 words.
  std::string words;
  for (int i = 0; i < 100; ++i) words += "word" + std::to_string(i % 17) + " ";
  TestUpstream up{[&](const SeenRequest&) { return TestUpstream::completion(300, 100, words); }};

  router::RouterConfig cfg;
  cfg.listenAddress = "127.0.0.1";
  cfg.port = 0;
  cfg.threads = 1;
  cfg.seed = 1;
  router::RouterServer srv(cfg);
  if (auto ok = srv.start(); !ok) {
    std::fprintf(stderr, "router: %s\n", ok.error().c_str());
    return 1;
  }
  routing::RoutingTable t;
  t.deployments = {deployment("plain", up.endpoint(), false), deployment("cached", up.endpoint(), true)};
  t.normalize();
  srv.setRoutes(std::move(t));

  Client client(srv.port());
  // A ~1,200-character conversation: system prompt and a user turn that differs each time.
  const std::string system(1000, 's');
  auto body = [&](const char* model, int i) {
    json b = {{"model", model},
              {"max_tokens", 100},
              {"messages", json::array({{{"role", "system"}, {"content", system}},
                                        {{"role", "user"}, {"content", "Question number " + std::to_string(i) +
                                                                           ": what happened in that year?"}}})}};
    return b.dump();
  };
  std::vector<double> plain, cached;
  plain.reserve(static_cast<std::size_t>(n));
  cached.reserve(static_cast<std::size_t>(n));
  const int warm = std::min(2000, n / 5);
  for (int i = 0; i < n + warm; ++i) {
    for (int which = 0; which < 2; ++which) {
      // Alternate the order so that neither always goes first.
      const bool isCached = (which == 0) == (i % 2 == 0);
      const std::string b = body(isCached ? "bench/cached" : "bench/plain", i);
      const auto t0 = std::chrono::steady_clock::now();
      Response r = client.post("/v1/chat/completions", b);
      const double us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
      if (r.status != 200) {
        std::fprintf(stderr, "request %d: HTTP %d %s\n", i, r.status, r.body.c_str());
        return 1;
      }
      if (isCached && r.header("x-waterline-cache") != "miss") {
        std::fprintf(stderr, "request %d: x-waterline-cache=%s, expected miss\n", i, r.header("x-waterline-cache").c_str());
        return 1;
      }
      if (i < warm) continue;
      (isCached ? cached : plain).push_back(us);
    }
  }
  srv.stop();
  up.stop();
  const double p50p = pct(plain, 0.5), p99p = pct(plain, 0.99), p50c = pct(cached, 0.5), p99c = pct(cached, 0.99);
  std::printf("router miss path: %d requests each, 1 router thread, loopback upstream\n", n);
  std::printf("RESULT cache_router_plain_p50_us %.1f us\n", p50p);
  std::printf("RESULT cache_router_plain_p99_us %.1f us\n", p99p);
  std::printf("RESULT cache_router_miss_p50_us %.1f us\n", p50c);
  std::printf("RESULT cache_router_miss_p99_us %.1f us\n", p99c);
  std::printf("RESULT cache_router_miss_added_p50_us %.1f us\n", p50c - p50p);
  std::printf("RESULT cache_router_miss_added_p99_us %.1f us\n", p99c - p99p);
  return 0;
}
