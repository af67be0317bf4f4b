#include "waterline/caching/response_cache.h"

#include <hnswlib/hnswlib.h>

#include <algorithm>
#include <cmath>
#include <list>
#include <mutex>
#include <shared_mutex>
#include <unordered_map>
#include <vector>

namespace waterline::caching {

namespace {

constexpr std::size_t kInitialCapacity = 16;
constexpr std::size_t kSearchK = 4;
// Expired entries store() removes before it inserts (expire() removes all of them).
constexpr std::size_t kExpireBatch = 64;

struct StringHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};

std::string joinKey(std::string_view a, std::string_view b) {
  std::string k;
  k.reserve(a.size() + 1 + b.size());
  k.append(a);
  k.push_back('\x1f');
  k.append(b);
  return k;
}

// L2-normalised copy; false for a zero (or non-finite) vector.
bool normalise(std::span<const float> in, std::vector<float>& out) {
  double sum = 0;
  for (float x : in) sum += static_cast<double>(x) * x;
  if (!(sum > 0) || !std::isfinite(sum)) return false;
  const float inv = static_cast<float>(1.0 / std::sqrt(sum));
  out.resize(in.size());
  for (std::size_t i = 0; i < in.size(); ++i) out[i] = in[i] * inv;
  return true;
}

}  // namespace

struct ResponseCache::Impl {
  struct SemIndex;

  struct Entry {
    std::string key;  // partition '\x1f' exactKey (the exact map's key views it)
    std::shared_ptr<const StoredAnswer> answer;
    CacheClock::time_point expires;
    SemIndex* index = nullptr;  // the semantic index holding this entry, if any
    hnswlib::labeltype label = 0;
    std::size_t bytes = 0;  // what this entry adds to stats().bytes (not the index)
  };
  using List = std::list<Entry>;

  struct SemIndex {
    std::string key;  // partition '\x1f' paramsKey
    std::size_t dim;
    std::unique_ptr<hnswlib::InnerProductSpace> space;
    std::unique_ptr<hnswlib::HierarchicalNSW<float>> hnsw;
    std::vector<List::iterator> slots;        // by label; end() for a deleted slot
    std::vector<hnswlib::labeltype> free;     // deleted labels, reused by the next insert
    std::size_t live = 0;

    SemIndex(std::string k, std::size_t d, const CacheOptions& o)
        : key(std::move(k)), dim(d), space(std::make_unique<hnswlib::InnerProductSpace>(d)) {
      hnsw = std::make_unique<hnswlib::HierarchicalNSW<float>>(space.get(), kInitialCapacity, o.hnswM,
                                                               o.hnswEfConstruction);
      hnsw->setEf(o.hnswEfSearch);  // here only: setEf must not race with searches
    }

    // Approximate bytes: level-0 blocks (links, vector, label) and the per-element
    // arrays for the whole capacity, upper-level link lists by their expected count
    // (1/(M-1) per element), hnswlib's label map and our slot table.
    std::size_t bytes() const {
      const auto& h = *hnsw;
      const std::size_t cap = h.max_elements_;
      std::size_t n = sizeof(*this) + key.capacity();
      n += cap * (h.size_data_per_element_ + sizeof(void*) + sizeof(int) + sizeof(std::mutex));
      n += h.cur_element_count * h.size_links_per_element_ / std::max<std::size_t>(1, h.M_ - 1);
      n += h.label_lookup_.size() * (sizeof(void*) * 2 + sizeof(std::pair<hnswlib::labeltype, unsigned>)) +
           h.label_lookup_.bucket_count() * sizeof(void*);
      n += slots.capacity() * sizeof(List::iterator) + free.capacity() * sizeof(hnswlib::labeltype);
      return n;
    }
  };

  explicit Impl(const CacheOptions& o) : opts(o) {}

  const CacheOptions& opts;
  mutable std::shared_mutex mu;
  List fifo;  // insertion order: the oldest (and first to expire) first
  std::unordered_map<std::string_view, List::iterator, StringHash, std::equal_to<>> exact;
  std::unordered_map<std::string, std::unique_ptr<SemIndex>, StringHash, std::equal_to<>> indexes;
  std::size_t entryBytes = 0;

  static bool expired(const Entry& e, CacheClock::time_point now) { return now >= e.expires; }

  void erase(List::iterator it) {
    Entry& e = *it;
    if (e.index != nullptr) {
      SemIndex* ix = e.index;
      ix->hnsw->markDelete(e.label);
      ix->slots[e.label] = fifo.end();
      ix->free.push_back(e.label);
      if (--ix->live == 0) indexes.erase(ix->key);
    }
    exact.erase(std::string_view(e.key));
    entryBytes -= e.bytes;
    fifo.erase(it);
  }

  void expireFront(CacheClock::time_point now, std::size_t limit) {
    while (limit-- > 0 && !fifo.empty() && expired(fifo.front(), now)) erase(fifo.begin());
  }

  // Adds v to ix under a free label (reused in place) or a new one; strong guarantee.
  void insert(SemIndex& ix, List::iterator it, const std::vector<float>& v) {
    hnswlib::labeltype label;
    if (!ix.free.empty()) {
      // hnswlib 0.6.2 has no allow_replace_deleted/replace_deleted. A deleted slot is
      // reused in place: unmarked, its vector overwritten and its own links rebuilt by
      // updatePoint. With an update-neighbour probability of 0 the old neighbours' lists
      // are not recomputed (what addPoint on an existing label does, at ~10x the cost of
      // an insert); their links to the slot then act as extra long-range edges, and the
      // new element is connected both ways by the repair like a fresh insert.
      label = ix.free.back();
      const auto internal = ix.hnsw->label_lookup_.at(label);
      ix.hnsw->unmarkDeletedInternal(internal);
      try {
        ix.hnsw->updatePoint(v.data(), internal, 0.0f);
      } catch (...) {
        ix.hnsw->markDeletedInternal(internal);
        throw;
      }
      ix.free.pop_back();
      ix.slots[label] = it;
    } else {
      label = ix.slots.size();
      if (ix.hnsw->cur_element_count >= ix.hnsw->max_elements_) {
        ix.hnsw->resizeIndex(std::max<std::size_t>(kInitialCapacity, ix.hnsw->max_elements_ * 2));
      }
      if (ix.slots.size() == ix.slots.capacity()) {
        ix.slots.reserve(std::max<std::size_t>(kInitialCapacity, 2 * ix.slots.capacity()));
      }
      ix.hnsw->addPoint(v.data(), label);
      ix.slots.push_back(it);
    }
    ++ix.live;
    it->index = &ix;
    it->label = label;
  }

  void index(List::iterator it, std::string_view partition, std::string_view paramsKey,
             const std::vector<float>& v) {
    const std::string key = joinKey(partition, paramsKey);
    auto found = indexes.find(key);
    if (found != indexes.end() && found->second->dim != v.size()) {
      return;  // another dimension than this partition's index: kept exact-only
    }
    if (found == indexes.end()) {
      found = indexes.emplace(key, std::make_unique<SemIndex>(key, v.size(), opts)).first;
    }
    SemIndex& ix = *found->second;
    // On a failure inside hnswlib (allocation), the entry stays exact-only.
    try {
      insert(ix, it, v);
    } catch (const std::exception&) {
      if (ix.live == 0) indexes.erase(found);
      return;
    }
  }
};

ResponseCache::ResponseCache(CacheOptions o) : opts_(std::move(o)), impl_(std::make_unique<Impl>(opts_)) {}

ResponseCache::~ResponseCache() = default;

std::optional<CacheHit> ResponseCache::lookupExact(std::string_view partition, std::string_view exactKey,
                                                   CacheClock::time_point now) const {
  const std::string key = joinKey(partition, exactKey);
  std::shared_lock lock(impl_->mu);
  auto it = impl_->exact.find(std::string_view(key));
  if (it == impl_->exact.end() || Impl::expired(*it->second, now)) return std::nullopt;
  return CacheHit{it->second->answer, 1.0, true};
}

std::optional<CacheHit> ResponseCache::lookupSemantic(std::string_view partition, std::string_view paramsKey,
                                                      std::span<const float> embedding,
                                                      CacheClock::time_point now) const {
  if (opts_.mode != Mode::Semantic) return std::nullopt;
  thread_local std::vector<float> v;
  if (!normalise(embedding, v)) return std::nullopt;
  const std::string key = joinKey(partition, paramsKey);
  std::shared_lock lock(impl_->mu);
  auto found = impl_->indexes.find(key);
  if (found == impl_->indexes.end()) return std::nullopt;
  const Impl::SemIndex& ix = *found->second;
  if (ix.dim != v.size()) return std::nullopt;
  auto results = ix.hnsw->searchKnn(v.data(), kSearchK);  // the furthest on top
  std::optional<CacheHit> best;
  while (!results.empty()) {
    const auto [dist, label] = results.top();
    results.pop();
    if (label >= ix.slots.size()) continue;
    auto it = ix.slots[label];
    if (it == impl_->fifo.end() || Impl::expired(*it, now)) continue;
    const double sim = 1.0 - static_cast<double>(dist);
    if (sim >= opts_.similarityThreshold) best = CacheHit{it->answer, std::min(sim, 1.0), false};
  }
  return best;  // the last one set is the nearest
}

void ResponseCache::store(std::string_view partition, std::string_view exactKey, std::string_view paramsKey,
                          std::optional<std::span<const float>> embedding, StoredAnswer answer,
                          CacheClock::time_point now) {
  if (opts_.maxEntries == 0) return;
  std::vector<float> v;
  const bool indexIt = opts_.mode == Mode::Semantic && embedding && normalise(*embedding, v);
  Impl::Entry e;
  e.key = joinKey(partition, exactKey);
  e.expires = now + opts_.ttl;
  e.bytes = answer.bytes() + sizeof(std::shared_ptr<void>) * 2 /* control block */ + sizeof(Impl::Entry) +
            sizeof(void*) * 2 /* list node */ + (e.key.capacity() > 15 ? e.key.capacity() + 1 : 0) +
            sizeof(std::string_view) + sizeof(void*) * 3 /* exact map node and bucket */;
  e.answer = std::make_shared<const StoredAnswer>(std::move(answer));

  auto& im = *impl_;
  std::unique_lock lock(im.mu);
  im.expireFront(now, kExpireBatch);
  if (auto old = im.exact.find(std::string_view(e.key)); old != im.exact.end()) im.erase(old->second);
  while (im.fifo.size() >= opts_.maxEntries) im.erase(im.fifo.begin());
  im.entryBytes += e.bytes;
  im.fifo.push_back(std::move(e));
  auto it = std::prev(im.fifo.end());
  im.exact.emplace(std::string_view(it->key), it);
  if (indexIt) im.index(it, partition, paramsKey, v);
}

void ResponseCache::expire(CacheClock::time_point now) {
  std::unique_lock lock(impl_->mu);
  impl_->expireFront(now, static_cast<std::size_t>(-1));
}

void ResponseCache::clear() {
  std::unique_lock lock(impl_->mu);
  impl_->exact.clear();
  impl_->indexes.clear();
  impl_->fifo.clear();
  impl_->entryBytes = 0;
}

CacheStats ResponseCache::stats() const {
  std::shared_lock lock(impl_->mu);
  CacheStats s;
  s.entries = impl_->fifo.size();
  s.partitions = impl_->indexes.size();
  s.bytes = impl_->entryBytes + impl_->exact.bucket_count() * sizeof(void*);
  for (const auto& [k, ix] : impl_->indexes) s.bytes += ix->bytes();
  return s;
}

}  // namespace waterline::caching
