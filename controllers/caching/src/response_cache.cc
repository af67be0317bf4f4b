#include "waterline/caching/response_cache.h"

#include <hnswlib/hnswlib.h>

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <list>
#include <mutex>
#include <shared_mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include "similarity_search.h"
#include "sq8_space.h"

namespace waterline::caching {

namespace {

constexpr std::size_t kInitialCapacity = 16;
// Nearest candidates by the 8-bit codes, re-ranked by their exact float vectors.
constexpr std::size_t kSearchK = 8;
// Expired entries store() removes before it inserts (expire() removes all of them).
constexpr std::size_t kExpireBatch = 64;
// Index inserts waiting for the indexer beyond which a store stays exact-only (lookups
// scan the queue, so it must stay short; a backlog this long means the indexer cannot
// keep up with the store rate).
constexpr std::size_t kMaxQueuedInserts = 4096;
// The indexer thread's nice value (Linux; per thread).
constexpr int kIndexerNice = 10;

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

float dot(const std::vector<float>& a, const std::vector<float>& b) {
  float s = 0;
  for (std::size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

// A shared mutex that lets a waiting writer in. libstdc++'s std::shared_mutex is a
// glibc rwlock that prefers readers: a steady stream of overlapping lookups could keep
// the indexer's short exclusive sections waiting indefinitely. A writer closes the gate
// first, so only readers already past it are waited for.
class GatedSharedMutex {
 public:
  void lock() {
    std::lock_guard g(gate_);
    rw_.lock();
  }
  void unlock() { rw_.unlock(); }
  void lock_shared() {
    { std::lock_guard g(gate_); }
    rw_.lock_shared();
  }
  void unlock_shared() { rw_.unlock_shared(); }

 private:
  std::mutex gate_;
  std::shared_mutex rw_;
};

}  // namespace

struct ResponseCache::Impl {
  using Hnsw = hnswlib::HierarchicalNSW<float>;
  using Id = hnswlib::tableint;

  // What a lookup needs of an indexed answer; by internal id (= hnswlib label). The
  // index holds 8-bit codes (sq8_space.h); `vec` is the exact normalised vector the
  // similarity is computed from.
  struct Slot {
    std::shared_ptr<const StoredAnswer> answer;  // null: deleted (or not yet written)
    CacheClock::time_point expires{};
    std::vector<float> vec;
  };

  // One partition's similarity index. `mu` is shared by searches and by the indexer's
  // inserts (hnswlib's per-element locks order those); the indexer takes it alone to
  // mark a deletion, to overwrite a reused slot's vector and to grow the index.
  struct SemIndex {
    std::string key;  // partition '\x1f' paramsKey
    std::size_t dim;
    std::size_t efSearch;
    mutable GatedSharedMutex mu;
    std::unique_ptr<detail::Sq8Space> space;
    std::unique_ptr<Hnsw> hnsw;
    std::vector<Slot> slots;  // sized to the index's capacity
    // The indexer's alone (no lock): deleted ids reused by the next insert, live count.
    std::vector<Id> free;
    std::size_t live = 0;
    std::atomic<std::size_t> bytes{0};

    SemIndex(std::string k, std::size_t d, const CacheOptions& o)
        : key(std::move(k)), dim(d), efSearch(o.hnswEfSearch), space(std::make_unique<detail::Sq8Space>(d)) {
      hnsw = std::make_unique<Hnsw>(space.get(), kInitialCapacity, o.hnswM, o.hnswEfConstruction);
      slots.resize(kInitialCapacity);
      updateBytes();
    }

    // Approximate bytes: level-0 blocks (links, vector, label) and the per-element
    // arrays for the whole capacity, upper-level link lists by their expected count
    // (1/(M-1) per element), hnswlib's label map and our slot table. The indexer's only.
    void updateBytes() {
      const auto& h = *hnsw;
      const std::size_t cap = h.max_elements_;
      std::size_t n = sizeof(*this) + key.capacity();
      n += cap * (h.size_data_per_element_ + sizeof(void*) + sizeof(int) + sizeof(std::mutex));
      n += h.cur_element_count * h.size_links_per_element_ / std::max<std::size_t>(1, h.M_ - 1);
      n += h.label_lookup_.size() * (sizeof(void*) * 2 + sizeof(std::pair<hnswlib::labeltype, unsigned>)) +
           h.label_lookup_.bucket_count() * sizeof(void*);
      n += slots.capacity() * sizeof(Slot) + free.capacity() * sizeof(Id);
      n += live * dim * sizeof(float);  // the exact vectors the slots keep
      bytes.store(n, std::memory_order_relaxed);
    }
  };

  // A semantic partition's dimension, fixed by its first indexed store while it has
  // entries (one of another dimension stays exact-only), and its indexed entries.
  struct Partition {
    std::size_t dim = 0;
    std::size_t entries = 0;
  };

  struct Entry {
    std::string key;  // partition '\x1f' exactKey (the exact map's key views it)
    std::shared_ptr<const StoredAnswer> answer;
    CacheClock::time_point expires;
    std::uint64_t id = 0;
    // Its partition in `partitions` (element pointers survive rehashing); set when an
    // index insert was queued.
    std::pair<const std::string, Partition>* partition = nullptr;
    std::size_t bytes = 0;  // what this entry adds to stats().bytes (not the index)
  };
  using List = std::list<Entry>;

  // The indexer's queue. An Insert stays in the queue (and is found by lookups there)
  // until its insert has landed in the index.
  struct Job {
    enum class Kind { Insert, Remove } kind;
    std::uint64_t id;
    std::string indexKey;
    std::vector<float> v;  // normalised
    std::shared_ptr<const StoredAnswer> answer;
    CacheClock::time_point expires{};
    bool dead = false;  // removed before the indexer got to it (under qmu)
  };

  explicit Impl(const CacheOptions& o) : opts(o) {
    if (opts.mode == Mode::Semantic) indexer = std::thread([this] { runIndexer(); });
  }

  ~Impl() {
    {
      std::lock_guard lk(qmu);
      stopping = true;
    }
    qcv.notify_all();
    if (indexer.joinable()) indexer.join();
  }

  const CacheOptions& opts;

  // Entries, the exact map and the partition → index map.
  mutable GatedSharedMutex mu;
  List fifo;  // insertion order: the oldest (and first to expire) first
  std::unordered_map<std::string_view, List::iterator, StringHash, std::equal_to<>> exact;
  std::unordered_map<std::string, std::shared_ptr<SemIndex>, StringHash, std::equal_to<>> indexes;
  std::unordered_map<std::string, Partition, StringHash, std::equal_to<>> partitions;
  std::size_t entryBytes = 0;
  std::uint64_t nextId = 1;

  // The indexer's queue (lock order: mu before qmu).
  mutable std::mutex qmu;
  mutable std::condition_variable qcv;    // work queued, or stopping
  mutable std::condition_variable idlecv; // the queue ran empty
  std::deque<Job> queue;
  std::size_t queuedInserts = 0;
  std::size_t notIndexed = 0;
  bool stopping = false;
  bool busy = false;  // the indexer is applying queue.front()
  std::thread indexer;

  // The indexer's own: where each indexed entry lives.
  std::unordered_map<std::uint64_t, std::pair<std::shared_ptr<SemIndex>, Id>> located;

  static bool expired(const Entry& e, CacheClock::time_point now) { return now >= e.expires; }

  // Under mu (exclusive).
  void erase(List::iterator it) {
    Entry& e = *it;
    if (e.partition != nullptr) {
      {
        std::lock_guard lk(qmu);
        for (auto& j : queue) {
          if (j.kind == Job::Kind::Insert && j.id == e.id) j.dead = true;
        }
        queue.push_back(Job{Job::Kind::Remove, e.id, {}, {}, {}, {}, false});
      }
      qcv.notify_one();
      if (--e.partition->second.entries == 0) partitions.erase(partitions.find(e.partition->first));
    }
    exact.erase(std::string_view(e.key));
    entryBytes -= e.bytes;
    fifo.erase(it);
  }

  void expireFront(CacheClock::time_point now, std::size_t limit) {
    while (limit-- > 0 && !fifo.empty() && expired(fifo.front(), now)) erase(fifo.begin());
  }

  // ---- the indexer thread ----

  void runIndexer() {
    // Index upkeep is background work: niced, it yields CPU to request-serving threads
    // on a busy machine, yet still runs (not SCHED_IDLE, which could leave it preempted
    // for long while holding a lock a lookup needs). Short of CPU, its queue fills and
    // stores stay exact-only (stats().notIndexed) rather than slowing requests.
#if defined(__linux__)
    setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()), kIndexerNice);
#endif
    std::unique_lock lk(qmu);
    for (;;) {
      qcv.wait(lk, [this] { return stopping || !queue.empty(); });
      if (stopping) return;
      Job& j = queue.front();  // a deque's push_back leaves references to it valid
      const bool dead = j.dead;
      busy = true;
      lk.unlock();
      try {
        if (j.kind == Job::Kind::Remove) remove(j.id);
        else if (!dead) insert(j);
      } catch (const std::exception&) {
        // An allocation failure inside hnswlib: the entry stays exact-only.
      }
      lk.lock();
      if (queue.front().kind == Job::Kind::Insert) --queuedInserts;
      queue.pop_front();
      busy = false;
      if (queue.empty()) idlecv.notify_all();
    }
  }

  std::shared_ptr<SemIndex> indexFor(const std::string& key, std::size_t dim) {
    std::unique_lock lk(mu);
    auto found = indexes.find(key);
    if (found != indexes.end()) return found->second->dim == dim ? found->second : nullptr;
    return indexes.emplace(key, std::make_shared<SemIndex>(key, dim, opts)).first->second;
  }

  void insert(const Job& j) {
    // Another dimension than the partition's index: the entry stays exact-only.
    std::shared_ptr<SemIndex> ixp = indexFor(j.indexKey, j.v.size());
    if (!ixp) return;
    SemIndex& ix = *ixp;
    Hnsw& h = *ix.hnsw;
    std::vector<unsigned char> code(ix.space->codeSize());
    ix.space->encode(j.v, code.data());
    Id id;
    if (!ix.free.empty()) {
      // hnswlib 0.6.2 has no replace_deleted. A deleted slot is reused in place: its
      // code is overwritten and the deletion mark cleared with the index held alone
      // (searches read codes and marks without locks), then its links are rebuilt
      // beside searches (relink). Neighbours that linked to the old vector keep those
      // links as extra long-range edges, as with hnswlib's updatePoint.
      id = ix.free.back();
      {
        std::unique_lock x(ix.mu);
        std::memcpy(h.getDataByInternalId(id), code.data(), h.data_size_);
        h.unmarkDeletedInternal(id);
        ix.slots[id] = Slot{j.answer, j.expires, j.v};
      }
      ix.free.pop_back();
      try {
        std::shared_lock s(ix.mu);
        relink(h, code.data(), id);
      } catch (...) {
        // Deleted again and free, so that no untracked answer stays findable.
        {
          std::unique_lock x(ix.mu);
          h.markDeletedInternal(id);
          ix.slots[id] = Slot{};
        }
        ix.free.push_back(id);
        throw;
      }
    } else {
      id = static_cast<Id>(h.cur_element_count);
      if (h.cur_element_count >= h.max_elements_) {
        const std::size_t cap = std::max<std::size_t>(kInitialCapacity, h.max_elements_ * 2);
        std::unique_lock x(ix.mu);
        h.resizeIndex(cap);
        ix.slots.resize(cap);
      }
      // Not reachable by any search until addPoint links it, so written beside them.
      ix.slots[id] = Slot{j.answer, j.expires, j.v};
      try {
        std::shared_lock s(ix.mu);
        h.addPoint(code.data(), id);
      } catch (...) {
        ix.slots[id] = Slot{};
        if (ix.live == 0) dropIfEmpty(ixp);
        throw;
      }
    }
    ++ix.live;
    located[j.id] = {ixp, id};
    ix.updateBytes();
  }

  // hnswlib's repairConnectionsForUpdate for a reused slot, with the slot's own link
  // lists written under its element lock (hnswlib writes them unlocked on the update
  // path, which a concurrent search would race with).
  static void relink(Hnsw& h, const void* v, Id id) {
    Id ep;
    int maxLevel;
    {
      std::lock_guard g(h.global);
      ep = h.enterpoint_node_;
      maxLevel = h.maxlevel_;
    }
    if (ep == id && h.cur_element_count == 1) return;
    const int level = h.element_levels_[id];
    Id cur = ep;
    if (level < maxLevel) {
      float curDist = h.fstdistfunc_(v, h.getDataByInternalId(cur), h.dist_func_param_);
      detail::descend(h, v, cur, curDist, maxLevel, level);
    }
    for (int l = level; l >= 0; --l) {
      auto top = h.searchBaseLayer(cur, v, l);
      decltype(top) filtered;
      for (; !top.empty(); top.pop()) {
        if (top.top().second != id) filtered.push(top.top());
      }
      if (filtered.empty()) continue;
      if (h.isMarkedDeleted(ep)) {
        filtered.emplace(h.fstdistfunc_(v, h.getDataByInternalId(ep), h.dist_func_param_), ep);
        if (filtered.size() > h.ef_construction_) filtered.pop();
      }
      std::lock_guard g(h.link_list_locks_[id]);
      cur = h.mutuallyConnectNewElement(v, id, filtered, l, true);
    }
  }

  void remove(std::uint64_t entryId) {
    auto it = located.find(entryId);
    if (it == located.end()) return;  // never indexed
    std::shared_ptr<SemIndex> ixp = std::move(it->second.first);
    const Id id = it->second.second;
    located.erase(it);
    SemIndex& ix = *ixp;
    {
      std::unique_lock x(ix.mu);
      ix.hnsw->markDeletedInternal(id);
      ix.slots[id] = Slot{};
    }
    ix.free.push_back(id);
    --ix.live;
    ix.updateBytes();
    dropIfEmpty(ixp);
  }

  void dropIfEmpty(const std::shared_ptr<SemIndex>& ixp) {
    if (ixp->live != 0) return;
    std::unique_lock lk(mu);
    auto found = indexes.find(ixp->key);
    if (found != indexes.end() && found->second == ixp) indexes.erase(found);
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
  auto& im = *impl_;
  std::optional<CacheHit> best;
  auto consider = [&](double sim, const std::shared_ptr<const StoredAnswer>& a, CacheClock::time_point expires) {
    if (!a || now >= expires || sim < opts_.similarityThreshold) return;
    if (!best || sim > best->similarity) best = CacheHit{a, std::min(sim, 1.0), false};
  };
  // The queue first, then the index: an insert leaves the queue only after it landed in
  // the index, so an answer is in one or the other when this lookup looks.
  {
    std::lock_guard lk(im.qmu);
    for (const auto& j : im.queue) {
      if (j.kind != Impl::Job::Kind::Insert || j.dead || j.v.size() != v.size() || j.indexKey != key) continue;
      consider(static_cast<double>(dot(j.v, v)), j.answer, j.expires);
    }
  }
  std::shared_ptr<Impl::SemIndex> ixp;
  {
    std::shared_lock lock(im.mu);
    auto found = im.indexes.find(key);
    if (found != im.indexes.end()) ixp = found->second;
  }
  if (!ixp || ixp->dim != v.size()) return best;
  const Impl::SemIndex& ix = *ixp;
  thread_local std::vector<unsigned char> code;
  code.resize(ix.space->codeSize());
  ix.space->encode(v, code.data());
  std::shared_lock lock(ix.mu);
  for (const auto& [dist, id] : detail::searchLocked(*ix.hnsw, code.data(), kSearchK, ix.efSearch)) {
    const Impl::Slot& s = ix.slots[id];
    if (s.vec.size() == v.size()) consider(static_cast<double>(dot(s.vec, v)), s.answer, s.expires);
  }
  return best;
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
  e.id = im.nextId++;
  if (indexIt) {
    std::string indexKey = joinKey(partition, paramsKey);
    auto part = im.partitions.find(indexKey);
    if (part == im.partitions.end()) part = im.partitions.emplace(indexKey, Impl::Partition{v.size(), 0}).first;
    if (part->second.dim == v.size()) {
      std::unique_lock lk(im.qmu);
      if (im.queuedInserts < kMaxQueuedInserts) {
        im.queue.push_back(Impl::Job{Impl::Job::Kind::Insert, e.id, std::move(indexKey), std::move(v), e.answer,
                                     e.expires, false});
        ++im.queuedInserts;
        e.partition = &*part;
        ++part->second.entries;
        lk.unlock();
        im.qcv.notify_one();
      } else {
        ++im.notIndexed;
      }
    }
    if (part->second.entries == 0) im.partitions.erase(part);
  }
  im.entryBytes += e.bytes;
  im.fifo.push_back(std::move(e));
  auto it = std::prev(im.fifo.end());
  im.exact.emplace(std::string_view(it->key), it);
}

void ResponseCache::expire(CacheClock::time_point now) {
  std::unique_lock lock(impl_->mu);
  impl_->expireFront(now, static_cast<std::size_t>(-1));
}

void ResponseCache::clear() {
  std::unique_lock lock(impl_->mu);
  while (!impl_->fifo.empty()) impl_->erase(impl_->fifo.begin());
}

void ResponseCache::flush() const {
  auto& im = *impl_;
  std::unique_lock lk(im.qmu);
  im.idlecv.wait(lk, [&im] { return im.stopping || (im.queue.empty() && !im.busy); });
}

CacheStats ResponseCache::stats() const {
  auto& im = *impl_;
  CacheStats s;
  std::vector<std::shared_ptr<Impl::SemIndex>> ixs;
  {
    std::shared_lock lock(im.mu);
    s.entries = im.fifo.size();
    s.partitions = im.indexes.size();
    s.bytes = im.entryBytes + im.exact.bucket_count() * sizeof(void*);
    for (const auto& [k, ix] : im.indexes) s.bytes += ix->bytes.load(std::memory_order_relaxed);
  }
  std::lock_guard lk(im.qmu);
  s.queued = im.queue.size();
  s.notIndexed = im.notIndexed;
  for (const auto& j : im.queue) s.bytes += sizeof(Impl::Job) + j.indexKey.capacity() + j.v.capacity() * sizeof(float);
  return s;
}

}  // namespace waterline::caching
