#pragma once
// A thread-safe, indexed object store: client-go's cache.Indexer. Objects are immutable
// snapshots (shared_ptr<const Json>); readers never see a half-written object and a
// reconciler can hold one while the store moves on.
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <nlohmann/json.hpp>

namespace waterline::cache {

using Json = nlohmann::json;
using ObjectPtr = std::shared_ptr<const Json>;

// "namespace/name", or "name" for cluster-scoped objects (client-go's
// MetaNamespaceKeyFunc).
std::string objectKey(const Json& obj);
std::string makeKey(const std::string& ns, const std::string& name);
// Splits a key back into namespace and name.
std::pair<std::string, std::string> splitKey(const std::string& key);
std::string resourceVersionOf(const Json& obj);

// Maps an object to the index values it should be found under.
using IndexFunc = std::function<std::vector<std::string>(const Json&)>;

// Index of objects by namespace.
inline constexpr const char* kNamespaceIndex = "namespace";
std::vector<std::string> namespaceIndexFunc(const Json& obj);

class Store {
 public:
  Store() = default;
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // Indexers must be added before the first object.
  void addIndexer(const std::string& name, IndexFunc fn);

  // Insert or replace; returns the previous object, if any.
  ObjectPtr upsert(ObjectPtr obj);
  // Removes by key; returns the removed object, if any.
  ObjectPtr erase(const std::string& key);
  // Replaces the whole content; returns the objects that were dropped (present before,
  // absent from `objs`).
  std::vector<ObjectPtr> replace(std::vector<ObjectPtr> objs);

  ObjectPtr get(const std::string& key) const;
  std::vector<ObjectPtr> list() const;
  std::vector<std::string> listKeys() const;
  std::vector<ObjectPtr> byIndex(const std::string& index, const std::string& value) const;
  bool hasIndex(const std::string& index) const;
  size_t size() const;

 private:
  void indexLocked(const std::string& key, const Json& obj);
  void unindexLocked(const std::string& key, const Json& obj);

  mutable std::shared_mutex mu_;
  std::map<std::string, ObjectPtr> items_;  // ordered: deterministic listings
  std::map<std::string, IndexFunc> indexers_;
  // index name -> value -> keys
  std::map<std::string, std::unordered_map<std::string, std::unordered_set<std::string>>> indices_;
};

}  // namespace waterline::cache
