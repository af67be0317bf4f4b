// What the response cache adds to a miss in the real router: waterline-router in-process
// in front of one loopback upstream that answers a fixed chat completion at once, two
// deployments on that upstream, one without spec.cache and one with an Exact cache.
// A keep-alive client sends distinct prompts (every one a miss, stored, the cache full
// after maxEntries and evicting from then on) to each, one at a time, in rotating blocks,
// and the difference of their latency percentiles is the cache's added time on the
// router's path: canonicalisation and hashing, the exact lookup, keeping the answer, and
// storing it (after the answer went out, on the router's thread; the similarity index
// insert runs on the cache's indexer thread).
// (The semantic index's own cost at 1M entries is cache_bench's cache_lookup_* and
// cache_1m_miss_work_*; the embedding call is the embeddings deployment's latency.)
//
// A third deployment has a Semantic cache whose embeddings deployment is the same
// upstream answering /v1/embeddings at once (waterline-sim's 256-dimension embedder): its
// misses add the embedding call's loopback round trip too, so its figure is an upper
// bound on what the cache adds beyond the embedding call, at up to maxEntries (10,000)
// entries in one partition.
//
// The router reports each lookup's embedding call in the `Server-Timing` header
// (cache-embedding;dur=…), so each Semantic request's time less its own embedding call
// is what the cache adds beyond that call.
//
// Ends with RESULT lines: cache_router_miss_added_p50_us, cache_router_miss_added_p99_us
// (Exact), cache_router_semantic_miss_added_p50_us, ..._p99_us (Semantic, embedding call
// included), cache_router_semantic_beyond_embedding_p50_us, ..._p99_us (each Semantic
// request less its embedding call), cache_miss_added_p50_us / _p99_us (the worse of
// Exact and Semantic beyond the embedding call, less the plain deployment's percentile)
// and each deployment's p50/p99 (us).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "support.h"  // tests/integration/router: TestUpstream, Client
#include "waterline/sim/embedding.h"
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

enum class Cache { None, Exact, Semantic };

routing::DeploymentRoutes deployment(const std::string& name, const std::string& endpoint, Cache cache) {
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
  if (cache != Cache::None) {
    routing::CacheInfo c;
    c.mode = cache == Cache::Semantic ? api::CacheMode::Semantic : api::CacheMode::Exact;
    if (cache == Cache::Semantic) c.embeddingsDeployment = "embed";
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
  TestUpstream up{[&](const SeenRequest& r) {
    if (r.target != "/v1/embeddings") return TestUpstream::completion(300, 100, words);
    const json in = json::parse(r.body);
    Reply rep;
    rep.body = json{{"object", "list"},
                    {"data", json::array({{{"object", "embedding"}, {"index", 0},
                                           {"embedding", sim::embedText(in["input"].get<std::string>())}}})},
                    {"model", in["model"]},
                    {"usage", {{"prompt_tokens", 10}, {"total_tokens", 10}}}}
                   .dump();
    return rep;
  }};

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
  t.deployments = {deployment("plain", up.endpoint(), Cache::None), deployment("cached", up.endpoint(), Cache::Exact),
                   deployment("semantic", up.endpoint(), Cache::Semantic), deployment("embed", up.endpoint(), Cache::None)};
  t.normalize();
  srv.setRoutes(std::move(t));

  Client client(srv.port());
  // A ~1,200-character conversation: system prompt and a user turn that differs each time.
  const std::string system(1000, 's');
  // Each user turn: 20 random words of random letters, so that no two requests are near
  // duplicates either (every request to a cached deployment is a miss, checked below).
  std::mt19937_64 rng(7);
  auto randomText = [&] {
    std::string t;
    for (int w = 0; w < 20; ++w) {
      const int len = 4 + static_cast<int>(rng() % 6);
      for (int c = 0; c < len; ++c) t.push_back(static_cast<char>('a' + rng() % 26));
      t.push_back(' ');
    }
    return t;
  };
  auto body = [&](const char* model) {
    json b = {{"model", model},
              {"max_tokens", 100},
              {"messages", json::array({{{"role", "system"}, {"content", system}},
                                        {{"role", "user"}, {"content", randomText()}}})}};
    return b.dump();
  };
  const char* models[3] = {"bench/plain", "bench/cached", "bench/semantic"};
  std::vector<double> lat[3];
  std::vector<double> beyond;  // Semantic: each request's time less its embedding call
  std::vector<double> lookupWork;  // Semantic: the router's own time in the lookups (Server-Timing)
  for (auto& l : lat) l.reserve(static_cast<std::size_t>(n));
  const int warm = std::min(2000, n / 5);
  // In blocks of 200 requests per deployment, rotating: a miss is stored after its answer
  // went out, on the router's thread, so it delays the next request; within a block that
  // is a request of the same deployment, so each deployment's figures carry its own
  // stores (and blocks spread any drift of the machine over all three).
  constexpr int kBlock = 200;
  for (int base = 0; base < n + warm; base += kBlock) {
    for (int which = 0; which < 3; ++which) {
      for (int i = base; i < std::min(n + warm, base + kBlock); ++i) {
        const std::string b = body(models[which]);
        const auto t0 = std::chrono::steady_clock::now();
        Response r = client.post("/v1/chat/completions", b);
        const double us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
        if (r.status != 200) {
          std::fprintf(stderr, "request %d: HTTP %d %s\n", i, r.status, r.body.c_str());
          return 1;
        }
        if (which > 0 && r.header("x-waterline-cache") != "miss") {
          std::fprintf(stderr, "request %d to %s: x-waterline-cache=%s, expected miss\n", i, models[which],
                       r.header("x-waterline-cache").c_str());
          return 1;
        }
        double embedUs = 0;
        if (which == 2) {
          // The router's own measure of the embedding call (Server-Timing): what the
          // cache adds is this request's time without it.
          const std::string st = r.header("server-timing");
          const auto at = st.find("cache-embedding;dur=");
          if (at == std::string::npos) {
            std::fprintf(stderr, "request %d to %s: no cache-embedding in server-timing '%s'\n", i, models[which],
                         st.c_str());
            return 1;
          }
          embedUs = 1000.0 * std::strtod(st.c_str() + at + std::strlen("cache-embedding;dur="), nullptr);
          const auto lk = st.find("cache-lookup;dur=");
          if (lk != std::string::npos && i >= warm)
            lookupWork.push_back(1000.0 * std::strtod(st.c_str() + lk + std::strlen("cache-lookup;dur="), nullptr));
        }
        if (i >= warm) {
          lat[which].push_back(us);
          if (which == 2) beyond.push_back(us - embedUs);
        }
      }
    }
  }
  srv.stop();
  up.stop();
  const double p50p = pct(lat[0], 0.5), p99p = pct(lat[0], 0.99), p50c = pct(lat[1], 0.5), p99c = pct(lat[1], 0.99);
  const double p50s = pct(lat[2], 0.5), p99s = pct(lat[2], 0.99);
  const double p50b = pct(beyond, 0.5), p99b = pct(beyond, 0.99);
  std::printf("router miss path: %d requests each, 1 router thread, loopback upstream\n", n);
  std::printf("RESULT cache_router_plain_p50_us %.1f us\n", p50p);
  std::printf("RESULT cache_router_plain_p99_us %.1f us\n", p99p);
  std::printf("RESULT cache_router_miss_p50_us %.1f us\n", p50c);
  std::printf("RESULT cache_router_miss_p99_us %.1f us\n", p99c);
  std::printf("RESULT cache_router_miss_added_p50_us %.1f us\n", p50c - p50p);
  std::printf("RESULT cache_router_miss_added_p99_us %.1f us\n", p99c - p99p);
  std::printf("RESULT cache_router_semantic_miss_p50_us %.1f us\n", p50s);
  std::printf("RESULT cache_router_semantic_miss_p99_us %.1f us\n", p99s);
  std::printf("RESULT cache_router_semantic_miss_added_p50_us %.1f us\n", p50s - p50p);
  std::printf("RESULT cache_router_semantic_miss_added_p99_us %.1f us\n", p99s - p99p);
  std::printf("RESULT cache_router_semantic_lookup_p50_us %.1f us\n", pct(lookupWork, 0.5));
  std::printf("RESULT cache_router_semantic_lookup_p99_us %.1f us\n", pct(lookupWork, 0.99));
  std::printf("RESULT cache_router_semantic_beyond_embedding_p50_us %.1f us\n", p50b);
  std::printf("RESULT cache_router_semantic_beyond_embedding_p99_us %.1f us\n", p99b);
  // The figure: the router's added latency on a miss beyond the embedding call,
  // the worse of the two modes.
  std::printf("RESULT cache_miss_added_p50_us %.1f us\n", std::max(p50c - p50p, p50b - p50p));
  std::printf("RESULT cache_miss_added_p99_us %.1f us\n", std::max(p99c - p99p, p99b - p99p));
  return 0;
}
