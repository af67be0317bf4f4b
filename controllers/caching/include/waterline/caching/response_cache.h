#pragma once
// One deployment's response cache (docs/routing.md, "Cache"): an exact map and, in
// Semantic mode, an approximate-nearest-neighbour index (hnswlib over 8-bit codes of the
// normalised vectors; the nearest few re-ranked by exact cosine) per partition. A partition is a string the caller builds (namespace,
// deployment, the varyBy values) plus the request's paramsKey: a lookup never sees
// another partition's entries. Entries expire after `ttl` and the oldest go first past
// `maxEntries`. Thread-safe.
//
// Stores never wait for the similarity index: store() files the answer in the exact map
// at once and hands the index insert to the cache's own indexer thread (Semantic mode).
// Until that insert lands, lookups find the answer in the indexer's queue, which they
// scan exactly, so a store is visible to the next lookup either way. Index inserts run
// beside lookups (a search copies each element's links under hnswlib's per-element
// lock, docs/routing.md "Cache"); only deletes, the vector of a reused slot and the
// rare capacity doubling hold a partition's index alone.
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "waterline/caching/answer.h"

namespace waterline::caching {

enum class Mode { Exact, Semantic };

struct CacheOptions {
  Mode mode = Mode::Exact;
  double similarityThreshold = 0.95;     // cosine; a semantic hit needs >= this
  std::chrono::seconds ttl{3600};
  std::size_t maxEntries = 10000;        // across all partitions of this cache
  // hnswlib parameters (defaults suit up to millions of entries; docs/routing.md).
  std::size_t hnswM = 16;
  std::size_t hnswEfConstruction = 100;
  std::size_t hnswEfSearch = 64;
  bool operator==(const CacheOptions&) const = default;
};

struct CacheHit {
  std::shared_ptr<const StoredAnswer> answer;
  double similarity = 1.0;  // 1 for an exact hit
  bool exact = true;
};

struct CacheStats {
  std::size_t entries = 0;
  std::size_t partitions = 0;  // semantic indexes (partition + paramsKey) alive
  std::size_t bytes = 0;       // answers, keys and index memory (vectors and graph links)
  std::size_t queued = 0;      // index inserts and removals the indexer has not applied yet
  std::size_t notIndexed = 0;  // stores kept exact-only because the indexer's queue was full
};

using CacheClock = std::chrono::steady_clock;

class ResponseCache {
 public:
  explicit ResponseCache(CacheOptions o);
  ~ResponseCache();
  ResponseCache(const ResponseCache&) = delete;
  ResponseCache& operator=(const ResponseCache&) = delete;

  const CacheOptions& options() const { return opts_; }

  // The entry stored under (partition, exactKey), unless expired.
  std::optional<CacheHit> lookupExact(std::string_view partition, std::string_view exactKey,
                                      CacheClock::time_point now) const;
  // Semantic mode only: the nearest unexpired entry of (partition, paramsKey) whose
  // similarity is >= the threshold. `embedding` is normalised here (a zero vector misses);
  // one of another dimension than the partition's index misses.
  std::optional<CacheHit> lookupSemantic(std::string_view partition, std::string_view paramsKey,
                                         std::span<const float> embedding, CacheClock::time_point now) const;
  // Stores an answer (replacing one under the same exact key). The embedding is indexed
  // only in Semantic mode and when given. Expired entries and, past maxEntries, the
  // oldest entries are removed first.
  void store(std::string_view partition, std::string_view exactKey, std::string_view paramsKey,
             std::optional<std::span<const float>> embedding, StoredAnswer answer, CacheClock::time_point now);
  // Removes expired entries (store() also does, a bounded number at a time).
  void expire(CacheClock::time_point now);
  void clear();
  CacheStats stats() const;
  // Blocks until the indexer has applied every store and removal made before the call
  // (a no-op in Exact mode). Lookups never need it; tests and benchmarks that measure
  // the index itself do.
  void flush() const;

 private:
  struct Impl;
  CacheOptions opts_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace waterline::caching
