#include "waterline/cache/store.h"

#include <algorithm>
#include <stdexcept>

namespace waterline::cache {

std::string makeKey(const std::string& ns, const std::string& name) {
  return ns.empty() ? name : ns + "/" + name;
}

std::string objectKey(const Json& obj) {
  const auto& md = obj.at("metadata");
  std::string ns = md.value("namespace", "");
  return makeKey(ns, md.value("name", ""));
}

std::pair<std::string, std::string> splitKey(const std::string& key) {
  auto pos = key.find('/');
  if (pos == std::string::npos) return {"", key};
  return {key.substr(0, pos), key.substr(pos + 1)};
}

std::string resourceVersionOf(const Json& obj) {
  auto md = obj.find("metadata");
  if (md == obj.end() || !md->is_object()) return "";
  return md->value("resourceVersion", "");
}

std::vector<std::string> namespaceIndexFunc(const Json& obj) {
  return {obj.at("metadata").value("namespace", "")};
}

void Store::addIndexer(const std::string& name, IndexFunc fn) {
  std::unique_lock g(mu_);
  if (!items_.empty()) throw std::logic_error("cache::Store: indexer added after objects");
  indexers_[name] = std::move(fn);
  indices_[name];
}

void Store::indexLocked(const std::string& key, const Json& obj) {
  for (const auto& [name, fn] : indexers_) {
    auto& idx = indices_[name];
    for (const auto& v : fn(obj)) idx[v].insert(key);
  }
}

void Store::unindexLocked(const std::string& key, const Json& obj) {
  for (const auto& [name, fn] : indexers_) {
    auto& idx = indices_[name];
    for (const auto& v : fn(obj)) {
      auto it = idx.find(v);
      if (it == idx.end()) continue;
      it->second.erase(key);
      if (it->second.empty()) idx.erase(it);
    }
  }
}

ObjectPtr Store::upsert(ObjectPtr obj) {
  const std::string key = objectKey(*obj);
  std::unique_lock g(mu_);
  ObjectPtr old;
  auto it = items_.find(key);
  if (it != items_.end()) {
    old = it->second;
    unindexLocked(key, *old);
    it->second = obj;
  } else {
    items_.emplace(key, obj);
  }
  indexLocked(key, *obj);
  return old;
}

ObjectPtr Store::erase(const std::string& key) {
  std::unique_lock g(mu_);
  auto it = items_.find(key);
  if (it == items_.end()) return nullptr;
  ObjectPtr old = it->second;
  unindexLocked(key, *old);
  items_.erase(it);
  return old;
}

std::vector<ObjectPtr> Store::replace(std::vector<ObjectPtr> objs) {
  std::map<std::string, ObjectPtr> next;
  for (auto& o : objs) next[objectKey(*o)] = std::move(o);
  std::unique_lock g(mu_);
  std::vector<ObjectPtr> dropped;
  for (const auto& [k, v] : items_) {
    if (!next.contains(k)) dropped.push_back(v);
  }
  items_ = std::move(next);
  for (auto& [name, idx] : indices_) idx.clear();
  for (const auto& [k, v] : items_) indexLocked(k, *v);
  return dropped;
}

ObjectPtr Store::get(const std::string& key) const {
  std::shared_lock g(mu_);
  auto it = items_.find(key);
  return it == items_.end() ? nullptr : it->second;
}

std::vector<ObjectPtr> Store::list() const {
  std::shared_lock g(mu_);
  std::vector<ObjectPtr> out;
  out.reserve(items_.size());
  for (const auto& [k, v] : items_) out.push_back(v);
  return out;
}

std::vector<std::string> Store::listKeys() const {
  std::shared_lock g(mu_);
  std::vector<std::string> out;
  out.reserve(items_.size());
  for (const auto& [k, v] : items_) out.push_back(k);
  return out;
}

bool Store::hasIndex(const std::string& index) const {
  std::shared_lock g(mu_);
  return indexers_.count(index) > 0;
}

std::vector<ObjectPtr> Store::byIndex(const std::string& index, const std::string& value) const {
  std::shared_lock g(mu_);
  auto it = indices_.find(index);
  if (it == indices_.end()) throw std::invalid_argument("cache::Store: no index " + index);
  auto vit = it->second.find(value);
  std::vector<ObjectPtr> out;
  if (vit == it->second.end()) return out;
  std::vector<std::string> keys(vit->second.begin(), vit->second.end());
  std::sort(keys.begin(), keys.end());
  for (const auto& k : keys) out.push_back(items_.at(k));
  return out;
}

size_t Store::size() const {
  std::shared_lock g(mu_);
  return items_.size();
}

}  // namespace waterline::cache
