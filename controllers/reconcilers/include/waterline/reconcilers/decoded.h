#pragma once
// Decoded views of cached objects, decoded once per object version. The informer caches
// hold JSON; at fleet size a reconcile that decoded every Node and worker pod each time
// spent most of its time in fromJson and in freeing what it decoded (docs/performance.md,
// "Fleet").
//
// An informer's store never changes an object in place: a new version is a new
// shared_ptr. So entries are keyed by the object's address, pinned by holding the
// shared_ptr: the same address is the same version, found without building a key, and a
// new version (or an object rebuilt by a relist) is decoded again.
//
// Thread-safe. Each call passes the whole current list: entries whose object is not in
// it are dropped, so one DecodedByVersion serves one kind of list (all Nodes, all
// worker pods), never a subset of it.
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <type_traits>
#include <unordered_map>
#include <vector>

#include "waterline/kube/client.h"

namespace waterline::reconcilers {

template <class T>
class DecodedByVersion {
 public:
  using Decode = std::function<std::optional<T>(const kube::Json&)>;
  explicit DecodedByVersion(Decode decode) : decode_(std::move(decode)) {}
  // Decodes with T::fromJson, which may return T, std::optional<T> or std::expected<T, E>
  // (an error or nullopt: the object is left out).
  DecodedByVersion() : decode_(&fromJson) {}

  // The decoded objects of `objects`, in its order; objects that do not decode are left out.
  std::vector<std::shared_ptr<const T>> decode(const std::vector<std::shared_ptr<const kube::Json>>& objects) {
    std::vector<std::shared_ptr<const T>> out;
    out.reserve(objects.size());
    std::lock_guard g(mu_);
    ++generation_;
    for (const auto& o : objects) {
      if (!o) continue;
      auto [it, fresh] = entries_.try_emplace(o.get());
      Entry& e = it->second;
      if (fresh) {
        ++decodes_;
        e.src = o;  // pins the address for as long as the entry lives
        auto d = decode_(*o);
        if (d) e.value = std::make_shared<const T>(std::move(*d));
      }
      e.generation = generation_;
      if (e.value) out.push_back(e.value);
    }
    std::erase_if(entries_, [this](const auto& kv) { return kv.second.generation != generation_; });
    return out;
  }

  // Objects decoded since construction (tests, metrics).
  size_t decodes() const {
    std::lock_guard g(mu_);
    return decodes_;
  }

 private:
  static std::optional<T> fromJson(const kube::Json& j) {
    auto r = T::fromJson(j);
    if constexpr (std::is_same_v<decltype(r), T>) {
      return std::optional<T>(std::move(r));
    } else {
      if (!r) return std::nullopt;
      return std::optional<T>(std::move(*r));
    }
  }

  struct Entry {
    std::shared_ptr<const kube::Json> src;
    std::shared_ptr<const T> value;  // null: did not decode (kept, so not retried each call)
    uint64_t generation = 0;         // the last call that listed it
  };
  Decode decode_;
  mutable std::mutex mu_;
  std::unordered_map<const kube::Json*, Entry> entries_;
  size_t decodes_ = 0;
  uint64_t generation_ = 0;
};

}  // namespace waterline::reconcilers
