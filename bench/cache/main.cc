// bench/cache: the response cache (controllers/caching) at scale and on a replayed
// request stream. Run with `make bench-cache` or bench/cache/run.sh <builddir> [flags].
//
//   1. Lookup latency: ResponseCache in Semantic mode with --entries (default 1,000,000)
//      entries in ONE partition, embedded with waterline-sim's hashed-trigram embedder
//      (256 dims) from distinct synthetic prompts; p50/p99 of lookupSemantic over
//      --lookups fresh near-duplicate and unrelated prompts (the index only: the
//      embeddings are computed beforehand). Also the cache's own bytes per entry and the
//      process RSS growth per entry.
//   2. The cache's work on a miss at that size (cache_1m_miss_work_*): canonicalize +
//      lookupExact + lookupSemantic + collecting a typical streamed answer (per-token SSE
//      chunks) + store, without the embedding call, the cache full (so each store also
//      evicts the oldest entry); the index insert runs on the cache's indexer thread
//      beside it. The lookup at 1M dominates it; the router's added latency on a miss at
//      the default maxEntries is cache_router_bench's cache_miss_added_p99_us.
//   3. Replay: a seeded stream of chat requests over several tenant partitions with known
//      shares of exact repeats, near repeats (case/whitespace/"please"/punctuation edits)
//      and new prompts (random word sequences), identical prompts across tenants
//      included, through the real path canonicalize -> lookupExact -> embedText ->
//      lookupSemantic -> store. Stored answers are tagged with their tenant, so a hit
//      from another tenant's answer is counted.
// Ends with `RESULT <name> <value> <unit>` lines.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <string>
#include <unordered_set>
#include <vector>

#include <nlohmann/json.hpp>

#include "waterline/caching/answer.h"
#include "waterline/caching/request.h"
#include "waterline/caching/response_cache.h"
#include "waterline/sim/embedding.h"

namespace {

using namespace waterline::caching;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

struct Flags {
  std::size_t entries = 1'000'000;
  std::size_t lookups = 20'000;
  std::size_t misses = 5'000;
  std::size_t replay = 24'000;
  int tenants = 5;
  std::uint64_t seed = 42;
  double exactShare = 0.20;   // replay: exact repeats of the tenant's earlier prompts
  double nearShare = 0.20;    // replay: near repeats of the tenant's earlier prompts
  double crossShare = 0.05;   // replay: another tenant's prompt, new to this tenant
  CacheOptions defaults;      // hnswM, hnswEfConstruction, hnswEfSearch (flags)
};

double seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }
double micros(Clock::duration d) { return std::chrono::duration<double, std::micro>(d).count(); }

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  std::size_t i = static_cast<std::size_t>(std::ceil(p * v.size()));
  return v[std::min(v.size() - 1, i == 0 ? 0 : i - 1)];
}

long rssBytes() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6)) * 1024;
  }
  return 0;
}

double cosine(const std::vector<float>& a, const std::vector<float>& b) {
  double d = 0;
  for (std::size_t i = 0; i < a.size(); ++i) d += static_cast<double>(a[i]) * b[i];
  return d;  // embedText vectors are unit length
}

// ---------------------------------------------------------------------------------------
// Synthetic text

class Text {
 public:
  explicit Text(std::uint64_t seed, std::size_t vocabSize = 2500) {
    std::mt19937_64 rng(seed);
    std::uniform_int_distribution<int> len(2, 9), letter(0, 25);
    std::unordered_set<std::string> seen;
    while (vocab_.size() < vocabSize) {
      std::string w;
      for (int i = len(rng); i > 0; --i) w += static_cast<char>('a' + letter(rng));
      if (seen.insert(w).second) vocab_.push_back(w);
    }
  }
  std::size_t vocabSize() const { return vocab_.size(); }

  // A random word sequence of [minWords, maxWords] words, the same for the same (id, salt).
  std::string prompt(std::uint64_t id, std::uint64_t salt = 0, int minWords = 15, int maxWords = 60) const {
    std::mt19937_64 rng(id * 0x9E3779B97F4A7C15ULL ^ (salt + 0x51ED2701ULL));
    std::uniform_int_distribution<int> n(minWords, maxWords);
    std::uniform_int_distribution<std::size_t> w(0, vocab_.size() - 1);
    std::string s;
    for (int i = n(rng); i > 0; --i) {
      if (!s.empty()) s += ' ';
      s += vocab_[w(rng)];
    }
    return s;
  }

  // A near repeat: one or two of case change, whitespace change, an added "please",
  // punctuation. None changes the meaning of the prompt.
  static std::string perturb(const std::string& p, std::mt19937_64& rng) {
    std::uniform_int_distribution<int> kind(0, 4);
    std::string s = p;
    const int edits = std::uniform_int_distribution<int>(1, 2)(rng);
    for (int e = 0; e < edits; ++e) {
      switch (kind(rng)) {
        case 0: {  // case
          const int how = std::uniform_int_distribution<int>(0, 2)(rng);
          if (how == 0 && !s.empty()) s[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(s[0])));
          if (how == 1) for (auto& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
          if (how == 2) {
            bool start = true;
            for (auto& c : s) {
              if (start) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
              start = c == ' ';
            }
          }
          break;
        }
        case 1: {  // whitespace
          std::string out;
          std::bernoulli_distribution dbl(0.15);
          for (char c : s) {
            out += c;
            if (c == ' ' && dbl(rng)) out += rng() % 2 ? " " : "\n";
          }
          s = "  " + out + " \n";
          break;
        }
        case 2:  // please
          s = rng() % 2 ? "Please " + s : s + ", please";
          break;
        case 3: {  // punctuation at the end
          static const char* kEnd[] = {"?", ".", "!", "??"};
          s += kEnd[rng() % 4];
          break;
        }
        case 4: {  // a comma after a word
          auto sp = s.find(' ', std::uniform_int_distribution<std::size_t>(0, s.size() - 1)(rng));
          if (sp != std::string::npos) s.insert(sp, ",");
          break;
        }
      }
    }
    return s;
  }

  // An answer-like text of `words` words.
  std::string answer(std::mt19937_64& rng, int words) const {
    std::uniform_int_distribution<std::size_t> w(0, vocab_.size() - 1);
    std::string s;
    for (int i = 0; i < words; ++i) {
      if (!s.empty()) s += ' ';
      s += vocab_[w(rng)];
    }
    return s;
  }

 private:
  std::vector<std::string> vocab_;
};

std::string hexKey(std::uint64_t i) {
  char buf[65];
  std::snprintf(buf, sizeof buf, "%064llx", static_cast<unsigned long long>(i));
  return buf;
}

StoredAnswer makeAnswer(std::string content, std::int64_t promptTokens, std::int64_t completionTokens) {
  StoredAnswer a;
  a.api = Api::Chat;
  a.model = "gpt-4o-2024-08-06";
  a.systemFingerprint = "fp_bench";
  a.choices = {{0, std::move(content), "stop"}};
  a.promptTokens = promptTokens;
  a.completionTokens = completionTokens;
  return a;
}

// An upstream-like stream: one chunk per ~token (word), then finish, usage, [DONE].
std::string upstreamSse(const StoredAnswer& a) {
  std::string out;
  const std::string head = R"(data: {"id":"chatcmpl-up","object":"chat.completion.chunk","created":1700000000,"model":")" +
                           a.model + R"(","system_fingerprint":"fp_bench","choices":[{"index":0,"delta":)";
  out += head + R"({"role":"assistant","content":""},"logprobs":null,"finish_reason":null}],"usage":null})" "\n\n";
  const std::string& c = a.choices[0].content;
  std::size_t pos = 0;
  while (pos < c.size()) {
    std::size_t next = c.find(' ', pos + 1);
    if (next == std::string::npos) next = c.size();
    out += head + R"({"content":)" + json(c.substr(pos, next - pos)).dump() +
           R"(},"logprobs":null,"finish_reason":null}],"usage":null})" "\n\n";
    pos = next;
  }
  out += head + R"({},"logprobs":null,"finish_reason":"stop"}],"usage":null})" "\n\n";
  out += R"(data: {"id":"chatcmpl-up","object":"chat.completion.chunk","created":1700000000,"model":")" + a.model +
         R"(","choices":[],"usage":{"prompt_tokens":)" + std::to_string(a.promptTokens) +
         R"(,"completion_tokens":)" + std::to_string(a.completionTokens) + R"(,"total_tokens":)" +
         std::to_string(a.promptTokens + a.completionTokens) + "}}\n\n";
  out += "data: [DONE]\n\n";
  return out;
}

json chatBody(const std::string& prompt, bool stream) {
  json b = {{"model", "gpt-4o"},
            {"messages", json::array({{{"role", "system"}, {"content", "You are a helpful assistant."}},
                                      {{"role", "user"}, {"content", prompt}}})},
            {"temperature", 0},
            {"max_tokens", 512}};
  if (stream) {
    b["stream"] = true;
    b["stream_options"] = {{"include_usage", true}};
  }
  return b;
}

void printDistribution(const char* what, std::vector<double> v, double threshold) {
  if (v.empty()) return;
  std::size_t below = std::count_if(v.begin(), v.end(), [&](double x) { return x < threshold; });
  std::printf("%s similarity (n=%zu): min %.4f p1 %.4f p5 %.4f p50 %.4f p95 %.4f p99 %.4f max %.4f; %.2f%% below %.2f\n",
              what, v.size(), percentile(v, 0.0), percentile(v, 0.01), percentile(v, 0.05), percentile(v, 0.5),
              percentile(v, 0.95), percentile(v, 0.99), percentile(v, 1.0), 100.0 * below / v.size(), threshold);
}

// ---------------------------------------------------------------------------------------

void scale(const Flags& f, const Text& text) {
  const std::string kModel = "gpt-4o@2024-08-06";
  CacheOptions o = f.defaults;
  o.mode = Mode::Semantic;
  o.maxEntries = f.entries;
  o.ttl = std::chrono::hours(24);
  const auto now = CacheClock::time_point{} + std::chrono::hours(1);

  // The params key every entry shares (one partition, one parameter set).
  const auto base = canonicalize(chatBody("x", false), Api::Chat, kModel);
  const std::string partition = "bench/deployment";
  const std::string params = base->paramsKey;

  const long rss0 = rssBytes();
  ResponseCache cache(o);
  std::mt19937_64 rng(f.seed);
  Clock::duration embedT{}, storeT{};
  const auto b0 = Clock::now();
  for (std::size_t i = 0; i < f.entries; ++i) {
    const std::string p = text.prompt(i);
    auto e0 = Clock::now();
    auto v = waterline::sim::embedText(p);
    auto e1 = Clock::now();
    embedT += e1 - e0;
    auto a = makeAnswer(text.answer(rng, 60), 40, 80);
    auto s0 = Clock::now();
    cache.store(partition, hexKey(i), params, std::span<const float>(v), std::move(a), now);
    // The indexer inserts beside this loop; keep its queue short of the cap past which
    // stores stay exact-only (this loop embeds faster than the index inserts at scale).
    if ((i + 1) % 1024 == 0) cache.flush();
    storeT += Clock::now() - s0;
    if ((i + 1) % 100000 == 0) {
      std::printf("  built %zu entries (%.1f s)\n", i + 1, seconds(Clock::now() - b0));
      std::fflush(stdout);
    }
  }
  cache.flush();
  const double buildS = seconds(Clock::now() - b0);
  const long rss1 = rssBytes();
  const auto st = cache.stats();
  std::printf("build: %zu entries in %.1f s (embedding %.1f s on this thread; store and waiting for the indexer "
              "thread %.1f s: %.1f us/store; the index is built by the cache's one indexer thread); %zu stores "
              "not indexed\n",
              st.entries, buildS, seconds(embedT), seconds(storeT), micros(storeT) / f.entries, st.notIndexed);
  if (st.notIndexed != 0) {
    std::fprintf(stderr, "cache_bench: %zu stores were not indexed (indexer queue full)\n", st.notIndexed);
    std::exit(1);
  }
  std::printf("stats: entries %zu partitions %zu bytes %zu (%.1f MiB; index memory approximate: hnswlib level-0 "
              "blocks by capacity, upper levels by expected count); RSS growth %.1f MiB\n",
              st.entries, st.partitions, st.bytes, st.bytes / 1048576.0, (rss1 - rss0) / 1048576.0);

  // Lookups: half near duplicates of stored prompts, half unrelated new prompts.
  std::vector<std::vector<float>> queries;
  std::vector<bool> isNear;
  std::uniform_int_distribution<std::size_t> pick(0, f.entries - 1);
  for (std::size_t j = 0; j < f.lookups; ++j) {
    const bool near = j % 2 == 0;
    const std::string p = near ? Text::perturb(text.prompt(pick(rng)), rng) : text.prompt(f.entries + j, 1);
    queries.push_back(waterline::sim::embedText(p));
    isNear.push_back(near);
  }
  std::vector<double> lat;
  lat.reserve(queries.size());
  std::size_t nearHits = 0, otherHits = 0;
  for (std::size_t j = 0; j < queries.size(); ++j) {
    auto t0 = Clock::now();
    auto h = cache.lookupSemantic(partition, params, queries[j], now);
    lat.push_back(micros(Clock::now() - t0));
    if (h) (isNear[j] ? nearHits : otherHits)++;
  }
  std::printf("lookups: %zu (near duplicates hit %.2f%%, unrelated hit %.2f%%); p50 %.1f us p90 %.1f us p99 %.1f us "
              "max %.1f us\n",
              lat.size(), 100.0 * nearHits / (f.lookups - f.lookups / 2), 100.0 * otherHits / (f.lookups / 2),
              percentile(lat, 0.5), percentile(lat, 0.9), percentile(lat, 0.99), percentile(lat, 1.0));

  // The cache's own work on a miss, cache full (each store evicts the oldest entry).
  std::vector<json> bodies;
  std::vector<std::vector<float>> embs;
  std::vector<std::string> streams;  // even j: an SSE stream (~150 token chunks); odd j: a JSON body
  for (std::size_t j = 0; j < f.misses; ++j) {
    const std::string p = text.prompt(f.entries + f.lookups + j, 2);
    bodies.push_back(chatBody(p, j % 2 == 0));
    embs.push_back(waterline::sim::embedText(p));
    auto a = makeAnswer(text.answer(rng, 150), 60, 200);
    streams.push_back(j % 2 == 0 ? upstreamSse(a) : renderJson(a, "chatcmpl-up", 1700000000));
  }
  std::vector<double> added, storeOnly, beforeStore, addedSse, addedJson;
  std::size_t unexpected = 0;
  for (std::size_t j = 0; j < f.misses; ++j) {
    auto t0 = Clock::now();
    auto c = canonicalize(bodies[j], Api::Chat, kModel);
    auto ex = cache.lookupExact(partition, c->exactKey, now);
    auto se = cache.lookupSemantic(partition, c->paramsKey, embs[j], now);
    std::optional<StoredAnswer> ans;
    if (c->stream) {
      SseAnswerCollector col(Api::Chat);
      col.feed(streams[j]);
      ans = col.finish();
    } else {
      ans = answerFromJson(streams[j], Api::Chat);
    }
    auto t1 = Clock::now();
    if (ex || se || !ans) {
      ++unexpected;
      continue;
    }
    cache.store(partition, c->exactKey, c->paramsKey, std::span<const float>(embs[j]), std::move(*ans), now);
    auto t2 = Clock::now();
    added.push_back(micros(t2 - t0));
    (j % 2 == 0 ? addedSse : addedJson).push_back(micros(t2 - t0));
    beforeStore.push_back(micros(t1 - t0));
    storeOnly.push_back(micros(t2 - t1));
  }
  const auto f0 = Clock::now();
  const std::size_t backlog = cache.stats().queued;
  cache.flush();
  const double flushUs = micros(Clock::now() - f0);
  std::printf("miss path (%zu misses, %zu unexpected hits/refusals; half streamed: SSE of %zu bytes in ~150 chunks, half "
              "JSON of %zu bytes): total p50 %.1f us p99 %.1f us (streamed p99 %.1f us, JSON p99 %.1f us); "
              "before store p50 %.1f p99 %.1f us; store (exact map, eviction, queueing the index insert) p50 %.1f "
              "p99 %.1f us\n",
              added.size(), unexpected, streams.empty() ? 0 : streams[0].size(),
              streams.size() < 2 ? 0 : streams[1].size(), percentile(added, 0.5), percentile(added, 0.99),
              percentile(addedSse, 0.99), percentile(addedJson, 0.99), percentile(beforeStore, 0.5),
              percentile(beforeStore, 0.99), percentile(storeOnly, 0.5), percentile(storeOnly, 0.99));
  std::printf("indexer: %zu index jobs still queued after the misses, applied in %.0f us\n", backlog, flushUs);

  std::printf("RESULT cache_build_s %.1f s\n", buildS);
  std::printf("RESULT cache_lookup_p50_us %.1f us\n", percentile(lat, 0.5));
  std::printf("RESULT cache_lookup_p99_us %.1f us\n", percentile(lat, 0.99));
  std::printf("RESULT cache_bytes_per_entry %.0f bytes\n", static_cast<double>(st.bytes) / st.entries);
  std::printf("RESULT cache_rss_bytes_per_entry %.0f bytes\n", static_cast<double>(rss1 - rss0) / st.entries);
  std::printf("RESULT cache_1m_miss_work_p99_us %.1f us\n", percentile(added, 0.99));
  std::printf("RESULT cache_1m_miss_work_sse_p99_us %.1f us\n", percentile(addedSse, 0.99));
  std::printf("RESULT cache_1m_miss_work_json_p99_us %.1f us\n", percentile(addedJson, 0.99));
  std::printf("RESULT cache_1m_miss_store_p99_us %.1f us\n", percentile(storeOnly, 0.99));
  std::fflush(stdout);
}

void replay(const Flags& f, const Text& text) {
  const std::string kModel = "gpt-4o@2024-08-06";
  CacheOptions o = f.defaults;
  o.mode = Mode::Semantic;
  o.maxEntries = f.replay + 1;  // no eviction: the expected rate counts every repeat
  o.ttl = std::chrono::hours(24);
  ResponseCache cache(o);
  const auto now = CacheClock::time_point{} + std::chrono::hours(1);

  std::mt19937_64 rng(f.seed ^ 0xC0FFEE);
  std::uniform_int_distribution<int> tenantOf(0, f.tenants - 1);
  std::uniform_real_distribution<double> u(0, 1);
  std::vector<std::vector<std::string>> originals(f.tenants);  // prompts stored by each tenant (were misses)
  std::vector<std::set<std::string>> issued(f.tenants);        // every text each tenant sent
  std::uint64_t nextNew = 0;

  std::size_t expectedHits = 0, hits = 0, exactHits = 0, semanticHits = 0, crossTenant = 0, refused = 0;
  std::int64_t tokensSaved = 0;
  std::size_t nExact = 0, nNear = 0, nNew = 0, nCross = 0;
  std::vector<double> nearSim, newSim;
  std::size_t nearMissed = 0, newHit = 0;

  for (std::size_t r = 0; r < f.replay; ++r) {
    const int t = tenantOf(rng);
    const std::string tag = "[tenant-" + std::to_string(t) + "] ";
    const double x = u(rng);
    std::string prompt;
    bool expectHit = false;
    enum { kNew, kExact, kNear, kCross } kind = kNew;
    std::string source;
    if (x < f.exactShare && !originals[t].empty()) {
      kind = kExact;
      prompt = originals[t][rng() % originals[t].size()];
      expectHit = true;
    } else if (x < f.exactShare + f.nearShare && !originals[t].empty()) {
      kind = kNear;
      source = originals[t][rng() % originals[t].size()];
      prompt = Text::perturb(source, rng);
      expectHit = true;
    } else if (x < f.exactShare + f.nearShare + f.crossShare) {
      // Another tenant's prompt, verbatim: new to this tenant unless it sent it before.
      const int other = (t + 1 + static_cast<int>(rng() % (f.tenants - 1))) % f.tenants;
      if (!originals[other].empty()) {
        kind = kCross;
        prompt = originals[other][rng() % originals[other].size()];
        expectHit = issued[t].count(prompt) > 0;
      }
    }
    if (prompt.empty()) {
      kind = kNew;
      prompt = text.prompt(1'000'000'000ULL + nextNew++, 3);
    }
    nExact += kind == kExact;
    nNear += kind == kNear;
    nNew += kind == kNew;
    nCross += kind == kCross;
    expectedHits += expectHit;
    issued[t].insert(prompt);

    const std::string partition = "ns/deployment/tenant-" + std::to_string(t);
    const bool stream = rng() % 2;
    auto c = canonicalize(chatBody(prompt, stream), Api::Chat, kModel);
    if (!c) {
      ++refused;
      continue;
    }
    std::optional<CacheHit> hit = cache.lookupExact(partition, c->exactKey, now);
    std::vector<float> emb;
    if (!hit) {
      emb = waterline::sim::embedText(c->promptText);
      hit = cache.lookupSemantic(partition, c->paramsKey, emb, now);
    }
    if (kind == kNear) nearSim.push_back(cosine(waterline::sim::embedText(source), emb.empty() ? waterline::sim::embedText(prompt) : emb));
    if (hit) {
      ++hits;
      (hit->exact ? exactHits : semanticHits)++;
      tokensSaved += hit->answer->promptTokens + hit->answer->completionTokens;
      if (hit->answer->choices.at(0).content.rfind(tag, 0) != 0) ++crossTenant;
      if (!expectHit) ++newHit;
      continue;
    }
    if (kind == kNear) ++nearMissed;
    if (kind == kNew && !originals[t].empty()) {
      // How close a new prompt comes to one of this tenant's stored prompts (a sample).
      const auto& other = originals[t][rng() % originals[t].size()];
      newSim.push_back(cosine(emb, waterline::sim::embedText(other)));
    }
    // The upstream's answer, through the collector or the JSON parser like the router.
    const int words = 20 + static_cast<int>(rng() % 200);
    StoredAnswer up = makeAnswer(tag + text.answer(rng, words), 20 + static_cast<std::int64_t>(prompt.size() / 4),
                                 words * 4 / 3);
    std::optional<StoredAnswer> got;
    if (stream) {
      SseAnswerCollector col(Api::Chat);
      col.feed(upstreamSse(up));
      got = col.finish();
    } else {
      got = answerFromJson(renderJson(up, "chatcmpl-up", 1700000000), Api::Chat);
    }
    if (!got) {
      ++refused;
      continue;
    }
    cache.store(partition, c->exactKey, c->paramsKey, std::span<const float>(emb), std::move(*got), now);
    if (kind != kExact && kind != kNear) originals[t].push_back(prompt);
  }

  std::printf("replay: %zu requests over %d tenants (seed %llu): %zu new, %zu exact repeats, %zu near repeats, "
              "%zu other tenants' prompts; vocabulary %zu words, new prompts 15-60 words\n",
              f.replay, f.tenants, static_cast<unsigned long long>(f.seed), nNew, nExact, nNear, nCross,
              text.vocabSize());
  printDistribution("near repeats vs their source:", nearSim, o.similarityThreshold);
  printDistribution("new prompts vs a random stored prompt of the tenant:", newSim, o.similarityThreshold);
  std::printf("replay: hits %zu (exact %zu, semantic %zu), near repeats missed %zu, unexpected hits %zu, refused %zu; "
              "cache %zu entries\n",
              hits, exactHits, semanticHits, nearMissed, newHit, refused, cache.stats().entries);
  std::printf("RESULT cache_replay_expected_hit_pct %.2f %%\n", 100.0 * expectedHits / f.replay);
  std::printf("RESULT cache_hit_rate_pct %.2f %%\n", 100.0 * hits / f.replay);
  std::printf("RESULT cache_tokens_saved %lld tokens\n", static_cast<long long>(tokensSaved));
  std::printf("RESULT cache_cross_tenant_hits %zu count\n", crossTenant);
}

bool flag(const char* arg, const char* name, const char* next, std::string& value, int& i) {
  const std::size_t n = std::strlen(name);
  if (std::strncmp(arg, name, n) != 0) return false;
  if (arg[n] == '=') {
    value = arg + n + 1;
    return true;
  }
  if (arg[n] == '\0' && next != nullptr) {
    value = next;
    ++i;
    return true;
  }
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  Flags f;
  for (int i = 1; i < argc; ++i) {
    std::string v;
    const char* next = i + 1 < argc ? argv[i + 1] : nullptr;
    if (flag(argv[i], "--entries", next, v, i)) {
      f.entries = std::stoull(v);
    } else if (flag(argv[i], "--lookups", next, v, i)) {
      f.lookups = std::stoull(v);
    } else if (flag(argv[i], "--misses", next, v, i)) {
      f.misses = std::stoull(v);
    } else if (flag(argv[i], "--replay", next, v, i)) {
      f.replay = std::stoull(v);
    } else if (flag(argv[i], "--tenants", next, v, i)) {
      f.tenants = std::max(2, std::stoi(v));
    } else if (flag(argv[i], "--seed", next, v, i)) {
      f.seed = std::stoull(v);
    } else if (flag(argv[i], "--ef-search", next, v, i)) {
      f.defaults.hnswEfSearch = std::stoull(v);
    } else if (flag(argv[i], "--ef-construction", next, v, i)) {
      f.defaults.hnswEfConstruction = std::stoull(v);
    } else if (flag(argv[i], "--m", next, v, i)) {
      f.defaults.hnswM = std::stoull(v);
    } else {
      std::fprintf(stderr,
                   "usage: cache_bench [--entries N] [--lookups N] [--misses N] [--replay N] [--tenants N] [--seed N]\n"
                   "                   [--ef-search N] [--ef-construction N] [--m N]\n");
      return 2;
    }
  }
  if (f.entries == 0) f.entries = 1;
  Text text(f.seed);
  std::printf("cache bench: %zu entries, %zu lookups, %zu misses, replay %zu requests; hnsw M %zu efConstruction %zu "
              "efSearch %zu\n",
              f.entries, f.lookups, f.misses, f.replay, f.defaults.hnswM, f.defaults.hnswEfConstruction,
              f.defaults.hnswEfSearch);
  scale(f, text);  // first: its RSS growth is measured from a fresh process
  replay(f, text);
  return 0;
}
