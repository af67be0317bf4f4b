#pragma once
// Decoded views of cached objects, decoded again only when an object's resourceVersion
// changes. The informer caches hold JSON; at fleet size a reconcile that decoded every
// Node and worker pod each time spent most of its time in fromJson and in freeing what
// it decoded (docs/performance.md, "Fleet"). Objects without a resourceVersion (assumed
// pods not yet created) are decoded on every call and never kept.
//
// Thread-safe. Each call passes the whole current list: entries whose object is not in
// it are dropped, so one DecodedByVersion serves one kind of list (all Nodes, all
// worker pods), never a subset of it.
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "waterline/kube/client.h"

namespace waterline::reconcilers {

template <class T>
class DecodedByVersion {
 public:
  using Decode = std::function<std::optional<T>(const kube::Json&)>;
  explicit DecodedByVersion(Decode decode) : decode_(std::move(decode)) {}

  // The decoded objects of `objects`, in its order; objects that do not decode are left out.
  std::vector<std::shared_ptr<const T>> decode(const std::vector<std::shared_ptr<const kube::Json>>& objects) {
    std::vector<std::shared_ptr<const T>> out;
    out.reserve(objects.size());
    std::lock_guard g(mu_);
    ++generation_;
    for (const auto& o : objects) {
      if (!o) continue;
      static const kube::Json kNoMeta = kube::Json::object();
      auto mit = o->find("metadata");
      const kube::Json& meta = mit != o->end() && mit->is_object() ? *mit : kNoMeta;  // no copy
      const std::string rv = meta.value("resourceVersion", "");
      if (rv.empty()) {  // not created yet: decoded, never kept
        ++decodes_;
        if (auto d = decode_(*o)) out.push_back(std::make_shared<const T>(std::move(*d)));
        continue;
      }
      auto& e = entries_[meta.value("namespace", "") + "/" + meta.value("name", "")];
      if (e.rv != rv) {
        ++decodes_;
        auto d = decode_(*o);
        e.value = d ? std::make_shared<const T>(std::move(*d)) : nullptr;
        e.rv = rv;
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
  struct Entry {
    std::string rv;
    std::shared_ptr<const T> value;  // null: did not decode (kept, so not retried each call)
    uint64_t generation = 0;         // the last call that listed it
  };
  Decode decode_;
  mutable std::mutex mu_;
  std::map<std::string, Entry> entries_;
  size_t decodes_ = 0;
  uint64_t generation_ = 0;
};

}  // namespace waterline::reconcilers
