#pragma once
// Ordered set of small integers (class-local node ids) as a two-level bitmap:
// insert/erase O(1), iteration in ascending order with find-next in O(1) amortised per
// element. Iteration order is the id order, which the inventory keeps equal to node-name
// order inside a node class, so scans are deterministic.
#include <bit>
#include <cstdint>
#include <vector>

namespace waterline::scheduling::detail {

class NodeSet {
 public:
  static constexpr std::uint32_t npos = 0xffffffffu;

  void insert(std::uint32_t i) {
    const std::uint32_t w = i >> 6;
    if (w >= words_.size()) grow(w + 1);
    const std::uint64_t bit = std::uint64_t{1} << (i & 63);
    if (words_[w] & bit) return;
    if (words_[w] == 0) summary_[w >> 6] |= std::uint64_t{1} << (w & 63);
    words_[w] |= bit;
    ++size_;
  }

  void erase(std::uint32_t i) {
    const std::uint32_t w = i >> 6;
    if (w >= words_.size()) return;
    const std::uint64_t bit = std::uint64_t{1} << (i & 63);
    if (!(words_[w] & bit)) return;
    words_[w] &= ~bit;
    if (words_[w] == 0) summary_[w >> 6] &= ~(std::uint64_t{1} << (w & 63));
    --size_;
  }

  bool contains(std::uint32_t i) const {
    const std::uint32_t w = i >> 6;
    return w < words_.size() && (words_[w] >> (i & 63)) & 1u;
  }

  // Smallest element >= from, or npos.
  std::uint32_t findNext(std::uint32_t from) const {
    std::uint32_t w = from >> 6;
    if (w >= words_.size()) return npos;
    std::uint64_t cur = words_[w] & (~std::uint64_t{0} << (from & 63));
    if (cur) return (w << 6) | static_cast<std::uint32_t>(std::countr_zero(cur));
    // Next non-empty word through the summary.
    const std::uint32_t nw = w + 1;
    std::uint32_t sw = nw >> 6;
    if (sw >= summary_.size()) return npos;
    std::uint64_t s = summary_[sw] & (~std::uint64_t{0} << (nw & 63));
    while (true) {
      if (s) {
        const std::uint32_t word = (sw << 6) | static_cast<std::uint32_t>(std::countr_zero(s));
        return (word << 6) | static_cast<std::uint32_t>(std::countr_zero(words_[word]));
      }
      if (++sw >= summary_.size()) return npos;
      s = summary_[sw];
    }
  }

  std::uint32_t first() const { return findNext(0); }
  std::uint32_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  void clear() {
    words_.clear();
    summary_.clear();
    size_ = 0;
  }

 private:
  void grow(std::uint32_t nwords) {
    words_.resize(nwords, 0);
    summary_.resize((nwords + 63) >> 6, 0);
  }

  std::vector<std::uint64_t> words_;
  std::vector<std::uint64_t> summary_;
  std::uint32_t size_ = 0;
};

}  // namespace waterline::scheduling::detail
