#include "waterline/caching/response_cache.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <random>
#include <thread>
#include <vector>

namespace waterline::caching {
namespace {

using namespace std::chrono_literals;

const CacheClock::time_point t0{};  // explicit time points throughout

StoredAnswer answer(std::string content) {
  StoredAnswer a;
  a.model = "m";
  a.choices = {{0, std::move(content), "stop"}};
  a.promptTokens = 3;
  a.completionTokens = 4;
  return a;
}

std::string contentOf(const std::optional<CacheHit>& h) { return h ? h->answer->choices.at(0).content : "<miss>"; }

// A unit vector at the given cosine to e0 (in the e0/e1 plane), in `dims` dimensions.
std::vector<float> atCosine(double cosine, int dims = 8) {
  std::vector<float> v(dims, 0.0f);
  v[0] = static_cast<float>(cosine);
  v[1] = static_cast<float>(std::sqrt(1 - cosine * cosine));
  return v;
}

std::vector<float> randomVec(std::mt19937& rng, int dims) {
  std::normal_distribution<float> n;
  std::vector<float> v(dims);
  for (auto& x : v) x = n(rng);
  return v;
}

CacheOptions semantic(std::size_t maxEntries = 10000) {
  CacheOptions o;
  o.mode = Mode::Semantic;
  o.maxEntries = maxEntries;
  return o;
}

TEST(ResponseCache, ExactHitAndMiss) {
  ResponseCache c(CacheOptions{});
  EXPECT_FALSE(c.lookupExact("p", "k1", t0));
  c.store("p", "k1", "params", std::nullopt, answer("A"), t0);
  auto h = c.lookupExact("p", "k1", t0 + 1s);
  ASSERT_TRUE(h);
  EXPECT_TRUE(h->exact);
  EXPECT_EQ(h->similarity, 1.0);
  EXPECT_EQ(contentOf(h), "A");
  EXPECT_FALSE(c.lookupExact("p", "k2", t0));
  EXPECT_FALSE(c.lookupExact("q", "k1", t0));
  // Exact mode never answers semantically.
  auto e = atCosine(1.0);
  c.store("p", "k3", "params", std::span<const float>(e), answer("B"), t0);
  EXPECT_FALSE(c.lookupSemantic("p", "params", e, t0));
  EXPECT_EQ(c.stats().partitions, 0u);
}

TEST(ResponseCache, TtlExpiry) {
  CacheOptions o = semantic();
  o.ttl = 10s;
  ResponseCache c(o);
  auto e = atCosine(1.0);
  c.store("p", "k", "params", std::span<const float>(e), answer("A"), t0);
  EXPECT_TRUE(c.lookupExact("p", "k", t0 + 9s));
  EXPECT_TRUE(c.lookupSemantic("p", "params", e, t0 + 9s));
  EXPECT_FALSE(c.lookupExact("p", "k", t0 + 10s));
  EXPECT_FALSE(c.lookupSemantic("p", "params", e, t0 + 10s));
  EXPECT_EQ(c.stats().entries, 1u);  // still held until expired away
  c.expire(t0 + 9s);
  EXPECT_EQ(c.stats().entries, 1u);
  c.expire(t0 + 10s);
  EXPECT_EQ(c.stats().entries, 0u);
  c.flush();
  EXPECT_EQ(c.stats().partitions, 0u);  // the emptied index is dropped
  // store() removes expired entries too.
  c.store("p", "k1", "params", std::span<const float>(e), answer("A"), t0);
  c.store("p", "k2", "params", std::nullopt, answer("B"), t0 + 5s);
  c.store("p", "k3", "params", std::nullopt, answer("C"), t0 + 12s);
  EXPECT_EQ(c.stats().entries, 2u);
  EXPECT_FALSE(c.lookupExact("p", "k1", t0 + 12s));
  EXPECT_TRUE(c.lookupExact("p", "k2", t0 + 12s));
}

TEST(ResponseCache, FifoEvictionPastMaxEntries) {
  ResponseCache c(semantic(3));
  std::mt19937 rng(1);
  for (int i = 0; i < 5; ++i) {
    auto v = randomVec(rng, 16);
    c.store("p", "k" + std::to_string(i), "params", std::span<const float>(v), answer(std::to_string(i)), t0 + i * 1s);
    EXPECT_LE(c.stats().entries, 3u);
  }
  EXPECT_EQ(c.stats().entries, 3u);
  EXPECT_FALSE(c.lookupExact("p", "k0", t0 + 5s));
  EXPECT_FALSE(c.lookupExact("p", "k1", t0 + 5s));
  for (int i = 2; i < 5; ++i) EXPECT_EQ(contentOf(c.lookupExact("p", "k" + std::to_string(i), t0 + 5s)), std::to_string(i));
  // Replacing an entry moves it to the back: k2 is now the newest.
  c.store("p", "k2", "params", std::nullopt, answer("2b"), t0 + 6s);
  c.store("p", "k5", "params", std::nullopt, answer("5"), t0 + 7s);
  EXPECT_FALSE(c.lookupExact("p", "k3", t0 + 7s));
  EXPECT_EQ(contentOf(c.lookupExact("p", "k2", t0 + 7s)), "2b");
  EXPECT_EQ(c.stats().entries, 3u);
}

TEST(ResponseCache, ReplaceUnderTheSameKeyDoesNotDoubleCount) {
  ResponseCache c(semantic());
  auto e = atCosine(1.0);
  c.store("p", "k", "params", std::span<const float>(e), answer("A"), t0);
  c.flush();
  const auto s1 = c.stats();
  for (int i = 0; i < 100; ++i) c.store("p", "k", "params", std::span<const float>(e), answer("B"), t0 + 1s);
  c.flush();
  const auto s2 = c.stats();
  EXPECT_EQ(s2.entries, 1u);
  EXPECT_EQ(s2.partitions, 1u);
  EXPECT_EQ(s2.bytes, s1.bytes);
  EXPECT_EQ(contentOf(c.lookupExact("p", "k", t0 + 1s)), "B");
  EXPECT_EQ(contentOf(c.lookupSemantic("p", "params", e, t0 + 1s)), "B");
}

TEST(ResponseCache, SemanticThreshold) {
  ResponseCache c(semantic());
  auto stored = atCosine(1.0);
  c.store("p", "k", "params", std::span<const float>(stored), answer("A"), t0);
  auto above = atCosine(0.951);
  auto h = c.lookupSemantic("p", "params", above, t0);
  ASSERT_TRUE(h);
  EXPECT_FALSE(h->exact);
  EXPECT_NEAR(h->similarity, 0.951, 1e-5);
  EXPECT_EQ(contentOf(h), "A");
  auto below = atCosine(0.949);
  EXPECT_FALSE(c.lookupSemantic("p", "params", below, t0));
  // Not normalised: scaled vectors are normalised here.
  std::vector<float> scaled = above;
  for (auto& x : scaled) x *= 7.5f;
  EXPECT_TRUE(c.lookupSemantic("p", "params", scaled, t0));
  // A zero vector misses; another paramsKey misses.
  EXPECT_FALSE(c.lookupSemantic("p", "params", std::vector<float>(8, 0.0f), t0));
  EXPECT_FALSE(c.lookupSemantic("p", "other-params", above, t0));
  // Nearest wins among several above the threshold.
  auto near = atCosine(0.99);
  c.store("p", "k2", "params", std::span<const float>(near), answer("B"), t0);
  EXPECT_EQ(contentOf(c.lookupSemantic("p", "params", atCosine(0.985), t0)), "B");
  EXPECT_EQ(contentOf(c.lookupSemantic("p", "params", atCosine(1.0), t0)), "A");
}

TEST(ResponseCache, DimensionMismatchMisses) {
  ResponseCache c(semantic());
  auto e8 = atCosine(1.0, 8);
  c.store("p", "k", "params", std::span<const float>(e8), answer("A"), t0);
  auto e16 = atCosine(1.0, 16);
  EXPECT_FALSE(c.lookupSemantic("p", "params", e16, t0));
  // Storing one of another dimension keeps it exact-only and breaks nothing.
  c.store("p", "k16", "params", std::span<const float>(e16), answer("B"), t0);
  EXPECT_EQ(contentOf(c.lookupExact("p", "k16", t0)), "B");
  EXPECT_EQ(contentOf(c.lookupSemantic("p", "params", e8, t0)), "A");
  EXPECT_FALSE(c.lookupSemantic("p", "params", e16, t0));
}

TEST(ResponseCache, PartitionIsolation) {
  ResponseCache c(semantic());
  auto e = atCosine(1.0);
  c.store("tenant-a", "same-key", "params", std::span<const float>(e), answer("a"), t0);
  c.store("tenant-b", "same-key", "params", std::span<const float>(e), answer("b"), t0);
  EXPECT_EQ(contentOf(c.lookupExact("tenant-a", "same-key", t0)), "a");
  EXPECT_EQ(contentOf(c.lookupExact("tenant-b", "same-key", t0)), "b");
  EXPECT_EQ(contentOf(c.lookupSemantic("tenant-a", "params", e, t0)), "a");
  EXPECT_EQ(contentOf(c.lookupSemantic("tenant-b", "params", e, t0)), "b");
  EXPECT_FALSE(c.lookupSemantic("tenant-c", "params", e, t0));
  c.flush();
  EXPECT_EQ(c.stats().partitions, 2u);
  // The separator cannot be forged by moving characters between partition and key.
  c.store("x", "yz", "params", std::nullopt, answer("x|yz"), t0);
  EXPECT_FALSE(c.lookupExact("xy", "z", t0));
}

TEST(ResponseCache, RandomLookupsAcrossPartitionsSeeOnlyTheirOwn) {
  constexpr int kParts = 20, kPerPart = 100, kDims = 32;
  ResponseCache c(semantic(kParts * kPerPart));
  std::mt19937 rng(7);
  std::vector<std::vector<float>> vecs;  // the same vectors in every partition
  for (int i = 0; i < kPerPart; ++i) vecs.push_back(randomVec(rng, kDims));
  for (int p = 0; p < kParts; ++p) {
    for (int i = 0; i < kPerPart; ++i) {
      c.store("part-" + std::to_string(p), "key-" + std::to_string(i), "params", std::span<const float>(vecs[i]),
              answer(std::to_string(p) + "/" + std::to_string(i)), t0);
    }
  }
  c.flush();  // the lookups below search the indexes, not the indexer's queue
  ASSERT_EQ(c.stats().entries, static_cast<std::size_t>(kParts * kPerPart));
  ASSERT_EQ(c.stats().partitions, static_cast<std::size_t>(kParts));
  ASSERT_EQ(c.stats().queued, 0u);
  std::uniform_int_distribution<int> part(0, kParts - 1), item(0, kPerPart - 1);
  std::normal_distribution<float> noise(0, 0.01f);
  int semanticHits = 0;
  for (int n = 0; n < 10000; ++n) {
    const int p = part(rng), i = item(rng);
    const std::string ps = "part-" + std::to_string(p);
    const std::string prefix = std::to_string(p) + "/";
    auto ex = c.lookupExact(ps, "key-" + std::to_string(i), t0);
    ASSERT_TRUE(ex);
    ASSERT_EQ(contentOf(ex), prefix + std::to_string(i));
    auto q = vecs[i];
    for (auto& x : q) x += noise(rng);
    auto h = c.lookupSemantic(ps, "params", q, t0);
    if (h) {
      ++semanticHits;
      ASSERT_EQ(contentOf(h).rfind(prefix, 0), 0u) << "cross-partition answer " << contentOf(h) << " in " << ps;
    }
  }
  EXPECT_GT(semanticHits, 9900);  // near duplicates of stored vectors: almost all hit
}

TEST(ResponseCache, ChurnReusesSlotsAndStaysCorrect) {
  // Many replacements and evictions in one partition: deleted slots are reused and
  // lookups keep finding the live entries only.
  constexpr int kDims = 16, kMax = 50;
  ResponseCache c(semantic(kMax));
  std::mt19937 rng(3);
  std::vector<std::vector<float>> live;
  for (int i = 0; i < 1000; ++i) {
    auto v = randomVec(rng, kDims);
    c.store("p", "k" + std::to_string(i), "params", std::span<const float>(v), answer(std::to_string(i)), t0);
    live.push_back(v);
  }
  c.flush();
  EXPECT_EQ(c.stats().entries, static_cast<std::size_t>(kMax));
  EXPECT_EQ(c.stats().partitions, 1u);
  int hits = 0;
  for (int i = 1000 - kMax; i < 1000; ++i) {
    auto h = c.lookupSemantic("p", "params", live[i], t0);
    if (h && contentOf(h) == std::to_string(i)) ++hits;
  }
  EXPECT_GE(hits, kMax - 2);
  for (int i = 0; i < 1000 - kMax; ++i) {
    auto h = c.lookupSemantic("p", "params", live[i], t0);
    if (h) {
      EXPECT_GE(std::stoi(contentOf(h)), 1000 - kMax) << "evicted entry answered";
    }
  }
}

TEST(ResponseCache, StatsMoveAsExpected) {
  ResponseCache c(semantic());
  EXPECT_EQ(c.stats().entries, 0u);
  EXPECT_EQ(c.stats().partitions, 0u);
  const auto empty = c.stats().bytes;
  c.store("p", "k1", "params", std::nullopt, answer("short"), t0);
  const auto s1 = c.stats();
  EXPECT_EQ(s1.entries, 1u);
  EXPECT_EQ(s1.partitions, 0u);
  EXPECT_GT(s1.bytes, empty);
  c.store("p", "k2", "params", std::nullopt, answer(std::string(10000, 'x')), t0);
  const auto s2 = c.stats();
  EXPECT_EQ(s2.entries, 2u);
  EXPECT_GE(s2.bytes, s1.bytes + 10000);
  auto e = atCosine(1.0, 256);
  c.store("p", "k3", "params", std::span<const float>(e), answer("v"), t0);
  c.flush();
  const auto s3 = c.stats();
  EXPECT_EQ(s3.partitions, 1u);
  // The index holds at least its 8-bit codes for its capacity and the exact vector.
  EXPECT_GE(s3.bytes, s2.bytes + 16 * 256 + 256 * sizeof(float));
  c.clear();
  c.flush();
  const auto s4 = c.stats();
  EXPECT_EQ(s4.entries, 0u);
  EXPECT_EQ(s4.partitions, 0u);
  EXPECT_LE(s4.bytes, empty + 1024);
  EXPECT_FALSE(c.lookupExact("p", "k1", t0));
}

TEST(ResponseCache, ConcurrentLookupsAndStores) {
  constexpr int kThreads = 4, kOps = 3000, kDims = 32;
  ResponseCache c(semantic(500));
  std::atomic<int> wrong{0}, hits{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < kThreads; ++t) {
    ts.emplace_back([&, t] {
      std::mt19937 rng(100 + t);
      std::uniform_int_distribution<int> key(0, 999), part(0, 3);
      for (int i = 0; i < kOps; ++i) {
        const int k = key(rng), p = part(rng);
        const std::string ps = "p" + std::to_string(p), ks = "k" + std::to_string(k);
        // Deterministic vector per key so any hit can be checked.
        std::mt19937 vr(k);
        auto v = randomVec(vr, kDims);
        if (i % 3 == 0) {
          c.store(ps, ks, "params", std::span<const float>(v), answer(ps + "/" + ks), t0 + i * 1ms);
        } else {
          auto h = c.lookupSemantic(ps, "params", v, t0 + i * 1ms);
          if (h) {
            ++hits;
            if (contentOf(h) != ps + "/" + ks) ++wrong;
          }
          auto x = c.lookupExact(ps, ks, t0 + i * 1ms);
          if (x && contentOf(x) != ps + "/" + ks) ++wrong;
        }
        if (i % 500 == 0) {
          auto s = c.stats();
          if (s.entries > 500 || s.partitions > 4) ++wrong;
        }
      }
    });
  }
  for (auto& th : ts) th.join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_GT(hits.load(), 0);
  c.flush();
  const auto s = c.stats();
  EXPECT_EQ(s.entries, 500u);
  EXPECT_LE(s.partitions, 4u);
}

TEST(ResponseCache, AStoreIsFoundAtOnceWhileTheIndexerCatchesUp) {
  // store() returns before the index insert; the next lookup must still find the answer
  // (in the indexer's queue, or in the index once it moved there), whatever the timing.
  constexpr int kDims = 64, kN = 2000;
  ResponseCache c(semantic(kN));
  std::mt19937 rng(11);
  std::normal_distribution<float> noise(0, 0.01f);
  int missed = 0;
  std::vector<std::vector<float>> vecs;
  for (int i = 0; i < kN; ++i) {
    vecs.push_back(randomVec(rng, kDims));
    c.store("p", "k" + std::to_string(i), "params", std::span<const float>(vecs.back()), answer(std::to_string(i)),
            t0);
    auto q = vecs.back();
    for (auto& x : q) x += noise(rng);
    auto h = c.lookupSemantic("p", "params", q, t0);
    if (!h || contentOf(h) != std::to_string(i)) ++missed;
  }
  EXPECT_EQ(missed, 0);
  c.flush();
  const auto s = c.stats();
  EXPECT_EQ(s.queued, 0u);
  EXPECT_EQ(s.partitions, 1u);
  // After the flush every answer is found through the index alone.
  int found = 0;
  for (int i = 0; i < kN; ++i) {
    auto h = c.lookupSemantic("p", "params", vecs[i], t0);
    if (h && contentOf(h) == std::to_string(i)) ++found;
  }
  EXPECT_GE(found, kN - kN / 100);
}

TEST(ResponseCache, LookupsBesideIndexInsertsAndSlotReuseAreRight) {
  // One thread stores (with eviction, so deleted slots are reused in place) while
  // others look up: a hit is always the answer of a vector within the threshold, with
  // that vector's similarity (never a reused slot's old vector scored against its new
  // answer), and removed entries are never answered after their removal landed.
  constexpr int kDims = 32, kKeys = 3000, kMax = 300, kReaders = 3;
  ResponseCache c(semantic(kMax));
  std::vector<std::vector<float>> vecs;
  std::mt19937 rng(5);
  for (int i = 0; i < kKeys; ++i) {
    auto v = randomVec(rng, kDims);
    double n = 0;
    for (float x : v) n += static_cast<double>(x) * x;
    for (auto& x : v) x = static_cast<float>(x / std::sqrt(n));
    vecs.push_back(std::move(v));
  }
  auto cosine = [&](int a, const std::vector<float>& q) {
    double d = 0, nq = 0;
    for (int i = 0; i < kDims; ++i) {
      d += static_cast<double>(vecs[a][i]) * q[i];
      nq += static_cast<double>(q[i]) * q[i];
    }
    return d / std::sqrt(nq);
  };
  std::atomic<int> written{0};
  std::atomic<bool> done{false};
  std::atomic<int> wrong{0}, hits{0};
  std::vector<std::thread> readers;
  for (int r = 0; r < kReaders; ++r) {
    readers.emplace_back([&, r] {
      std::mt19937 rr(50 + r);
      std::normal_distribution<float> noise(0, 0.02f);
      while (!done.load()) {
        const int upTo = written.load();
        if (upTo == 0) continue;
        const int k = std::uniform_int_distribution<int>(std::max(0, upTo - 2 * kMax), upTo - 1)(rr);
        auto q = vecs[k];
        for (auto& x : q) x += noise(rr);
        auto h = c.lookupSemantic("p", "params", q, t0);
        if (!h) continue;
        ++hits;
        const int got = std::stoi(contentOf(h));
        const double sim = cosine(got, q);
        if (sim < 0.95 - 1e-4 || std::abs(sim - h->similarity) > 1e-3) ++wrong;
      }
    });
  }
  for (int i = 0; i < kKeys; ++i) {
    c.store("p", "k" + std::to_string(i), "params", std::span<const float>(vecs[i]), answer(std::to_string(i)), t0);
    written.store(i + 1);
    if (i % 7 == 0) std::this_thread::yield();
  }
  c.flush();
  done.store(true);
  for (auto& t : readers) t.join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_GT(hits.load(), 0);
  // Evicted entries are gone from the index once the removals landed.
  for (int i = 0; i < kKeys - kMax; i += 7) {
    auto h = c.lookupSemantic("p", "params", vecs[i], t0);
    if (h) {
      EXPECT_GE(std::stoi(contentOf(h)), kKeys - kMax) << "evicted entry " << i << " answered";
    }
  }
  EXPECT_EQ(c.stats().entries, static_cast<std::size_t>(kMax));
}

}  // namespace
}  // namespace waterline::caching
