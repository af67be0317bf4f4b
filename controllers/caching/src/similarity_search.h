#pragma once
// A k-nearest search over an hnswlib index that may run beside the same index's
// addPoint. hnswlib's own searchKnn reads link lists without locks: upstream documents
// that searching and inserting are not safe together (nmslib/hnswlib#100, #562; "purely
// performance-based", #590). This is the same algorithm (greedy descent through the
// upper levels, then a beam search of width ef at level 0, skipping deleted elements in
// the results but not in the walk) with each element's links copied under the
// per-element lock addPoint takes to write them, and the entry point read under the
// lock addPoint updates it under. Vectors and deletion marks are read without locks:
// addPoint writes an element's vector before any link to it exists, and the caller
// changes a vector or a mark only while no search runs (response_cache.cc).
#include <hnswlib/hnswlib.h>
#if defined(__SSE__)
#include <xmmintrin.h>
#endif

#include <cstring>
#include <functional>
#include <limits>
#include <mutex>
#include <queue>
#include <utility>
#include <vector>

namespace waterline::caching::detail {

using Hnsw = hnswlib::HierarchicalNSW<float>;

// The links of `id` at `level`, copied under the element's lock.
inline void copyLinks(Hnsw& h, hnswlib::tableint id, int level, std::vector<hnswlib::tableint>& out) {
  std::lock_guard g(h.link_list_locks_[id]);
  const hnswlib::linklistsizeint* ll = level == 0 ? h.get_linklist0(id) : h.get_linklist(id, level);
  const auto n = h.getListCount(const_cast<hnswlib::linklistsizeint*>(ll));
  const auto* first = reinterpret_cast<const hnswlib::tableint*>(ll + 1);
  out.assign(first, first + n);
}

// Greedy descent from `cur` (at distance `curDist` from q) through levels `from` down to
// `to` + 1, each element's links copied under its lock; `cur`/`curDist` end at the
// nearest element found.
inline void descend(Hnsw& h, const void* q, hnswlib::tableint& cur, float& curDist, int from, int to) {
  std::vector<hnswlib::tableint> links;
  for (int level = from; level > to; --level) {
    for (bool changed = true; changed;) {
      changed = false;
      copyLinks(h, cur, level, links);
      for (hnswlib::tableint c : links) {
        const float d = h.fstdistfunc_(q, h.getDataByInternalId(c), h.dist_func_param_);
        if (d < curDist) {
          curDist = d;
          cur = c;
          changed = true;
        }
      }
    }
  }
}

// Up to k nearest non-deleted elements of `q`, nearest first: (distance, internal id).
inline std::vector<std::pair<float, hnswlib::tableint>> searchLocked(Hnsw& h, const void* q, std::size_t k,
                                                                      std::size_t ef) {
  using Id = hnswlib::tableint;
  using Pair = std::pair<float, Id>;
  std::vector<Pair> out;
  Id ep;
  int maxLevel;
  {
    std::lock_guard g(h.global);
    ep = h.enterpoint_node_;
    maxLevel = h.maxlevel_;
  }
  if (maxLevel < 0 || static_cast<int>(ep) == -1) return out;
  auto dist = [&h, q](Id id) { return h.fstdistfunc_(q, h.getDataByInternalId(id), h.dist_func_param_); };

  Id cur = ep;
  float curDist = dist(cur);
  descend(h, q, cur, curDist, maxLevel, 0);

  std::vector<Id> links;

  ef = std::max(ef, k);
  hnswlib::VisitedList* vl = h.visited_list_pool_->getFreeVisitedList();
  hnswlib::vl_type* visited = vl->mass;
  const hnswlib::vl_type tag = vl->curV;
  // top: the best ef non-deleted so far (furthest on top); candidates: to expand (nearest on top).
  std::priority_queue<Pair> top;
  std::priority_queue<Pair, std::vector<Pair>, std::greater<Pair>> candidates;
  float lowerBound = std::numeric_limits<float>::max();
  if (!h.isMarkedDeleted(cur)) {
    top.emplace(curDist, cur);
    lowerBound = curDist;
  }
  candidates.emplace(curDist, cur);
  visited[cur] = tag;
  while (!candidates.empty()) {
    const auto [d0, id] = candidates.top();
    if (d0 > lowerBound && top.size() == ef) break;
    candidates.pop();
    copyLinks(h, id, 0, links);
    for (std::size_t i = 0; i < links.size(); ++i) {
      const Id c = links[i];
#if defined(__SSE__)
      if (i + 1 < links.size()) _mm_prefetch(h.getDataByInternalId(links[i + 1]), _MM_HINT_T0);
#endif
      if (visited[c] == tag) continue;
      visited[c] = tag;
      const float d = dist(c);
      if (top.size() < ef || d < lowerBound) {
        candidates.emplace(d, c);
        if (!h.isMarkedDeleted(c)) top.emplace(d, c);
        if (top.size() > ef) top.pop();
        if (!top.empty()) lowerBound = top.top().first;
      }
    }
  }
  h.visited_list_pool_->releaseVisitedList(vl);

  while (top.size() > k) top.pop();
  out.resize(top.size());
  for (std::size_t i = out.size(); i-- > 0; top.pop()) out[i] = top.top();
  return out;
}

}  // namespace waterline::caching::detail
