#pragma once
// An in-memory kube::Client for unit tests of the cache and runtime. It keeps objects
// with a global resourceVersion counter like etcd, serves list (optionally paginated)
// and watch streams fed by every write, and lets a test inject the failures that a
// real apiserver produces (410 Gone on watch, closed streams, list errors).
// Integration tests use the real kube-apiserver instead.
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "waterline/kube/client.h"

namespace waterline::testing {

using kube::ApiError;
using kube::Json;
using kube::ResourceKind;
using kube::Result;
using kube::WatchEvent;
using kube::WatchEventType;

class FakeClient : public kube::Client {
 public:
  struct Stream;

  // --- test controls -------------------------------------------------------------
  // The next watch() call fails with 410 Gone.
  void failNextWatchWithGone() {
    std::lock_guard g(mu_);
    goneNextWatch_ = true;
  }
  // Ends every open watch with an ERROR event carrying a 410 Status (as the apiserver
  // does when a watch falls behind a compaction).
  void expireOpenWatches() {
    std::lock_guard g(mu_);
    for (auto& s : streams_) s->push(WatchEventType::Error, statusJson(410, "Expired"));
  }
  // Closes every open watch normally (as a server-side timeout does).
  void closeOpenWatches() {
    std::lock_guard g(mu_);
    for (auto& s : streams_) s->close();
    streams_.clear();
  }
  // While paused, writes are stored but not sent to watchers (a network partition).
  void setPartitioned(bool p) {
    std::lock_guard g(mu_);
    partitioned_ = p;
  }
  void sendBookmarks() {
    std::lock_guard g(mu_);
    Json bm = {{"kind", "Bookmark"}, {"metadata", {{"resourceVersion", std::to_string(rv_)}}}};
    for (auto& s : streams_) s->push(WatchEventType::Bookmark, bm);
  }
  int listCalls() const {
    std::lock_guard g(mu_);
    return listCalls_;
  }
  int watchCalls() const {
    std::lock_guard g(mu_);
    return watchCalls_;
  }
  int getCalls() const {
    std::lock_guard g(mu_);
    return getCalls_;
  }
  std::vector<std::string> watchResourceVersions() const {
    std::lock_guard g(mu_);
    return watchRVs_;
  }
  int64_t pageSizeSeen() const {
    std::lock_guard g(mu_);
    return lastLimit_;
  }

  // Convenience: create a ConfigMap-like object.
  static Json object(const std::string& ns, const std::string& name, Json data = Json::object()) {
    Json md = {{"name", name}};
    if (!ns.empty()) md["namespace"] = ns;
    return {{"apiVersion", "v1"}, {"kind", "ConfigMap"}, {"metadata", md}, {"data", data}};
  }

  // --- kube::Client ---------------------------------------------------------------
  Result<Json> get(const ResourceKind& kind, const std::string& ns,
                   const std::string& name) override {
    std::lock_guard g(mu_);
    ++getCalls_;
    auto it = objects_.find(key(kind, ns, name));
    if (it == objects_.end()) return std::unexpected(notFound(name));
    return it->second;
  }

  Result<kube::ObjectList> list(const ResourceKind& kind, const std::string& ns,
                                const kube::ListOptions& opts) override {
    std::lock_guard g(mu_);
    ++listCalls_;
    lastLimit_ = opts.limit.value_or(0);
    std::vector<Json> all;
    const std::string prefix = kind.resource + "|" + (ns.empty() ? "" : ns + "/");
    for (const auto& [k, v] : objects_)
      if (k.rfind(prefix, 0) == 0) all.push_back(v);
    kube::ObjectList out;
    out.resourceVersion = std::to_string(rv_);
    size_t start = opts.continueToken.empty() ? 0 : std::stoul(opts.continueToken);
    size_t end = all.size();
    if (opts.limit && *opts.limit > 0) end = std::min(all.size(), start + size_t(*opts.limit));
    for (size_t i = start; i < end; ++i) out.items.push_back(all[i]);
    if (end < all.size()) out.continueToken = std::to_string(end);
    return out;
  }

  Result<Json> create(const ResourceKind& kind, const std::string& ns, const Json& obj,
                      const kube::WriteOptions& = {}) override {
    std::lock_guard g(mu_);
    std::string name = obj["metadata"]["name"];
    auto k = key(kind, ns, name);
    if (objects_.contains(k)) {
      ApiError e;
      e.reason = ApiError::Reason::AlreadyExists;
      e.httpCode = 409;
      return std::unexpected(e);
    }
    Json o = obj;
    if (!ns.empty()) o["metadata"]["namespace"] = ns;
    o["metadata"]["resourceVersion"] = std::to_string(++rv_);
    o["metadata"]["uid"] = "uid-" + std::to_string(rv_);
    o["metadata"]["generation"] = 1;
    objects_[k] = o;
    broadcast(WatchEventType::Added, o);
    return o;
  }

  Result<Json> update(const ResourceKind& kind, const std::string& ns, const Json& obj,
                      const kube::WriteOptions& = {}) override {
    std::lock_guard g(mu_);
    std::string name = obj["metadata"]["name"];
    auto it = objects_.find(key(kind, ns, name));
    if (it == objects_.end()) return std::unexpected(notFound(name));
    if (obj["metadata"].value("resourceVersion", "") != it->second["metadata"]["resourceVersion"]) {
      ApiError e;
      e.reason = ApiError::Reason::Conflict;
      e.httpCode = 409;
      return std::unexpected(e);
    }
    Json o = obj;
    o["metadata"]["resourceVersion"] = std::to_string(++rv_);
    it->second = o;
    broadcast(WatchEventType::Modified, o);
    return o;
  }

  Result<Json> patch(const ResourceKind& kind, const std::string& ns, const std::string& name,
                     kube::PatchType, const std::string& body,
                     const kube::PatchOptions& = {}) override {
    std::lock_guard g(mu_);
    auto it = objects_.find(key(kind, ns, name));
    if (it == objects_.end()) return std::unexpected(notFound(name));
    it->second.merge_patch(Json::parse(body));
    it->second["metadata"]["resourceVersion"] = std::to_string(++rv_);
    broadcast(WatchEventType::Modified, it->second);
    return it->second;
  }

  Result<Json> apply(const ResourceKind& kind, const std::string& ns, const Json& obj,
                     const kube::PatchOptions& opts) override {
    std::string name = obj["metadata"]["name"];
    {
      std::lock_guard g(mu_);
      if (!objects_.contains(key(kind, ns, name))) {
        // fall through to create below
      } else {
        auto it = objects_.find(key(kind, ns, name));
        it->second.merge_patch(obj);
        it->second["metadata"]["resourceVersion"] = std::to_string(++rv_);
        broadcast(WatchEventType::Modified, it->second);
        return it->second;
      }
    }
    return create(kind, ns, obj);
  }

  Result<Json> remove(const ResourceKind& kind, const std::string& ns, const std::string& name,
                      const kube::DeleteOptions& = {}) override {
    std::lock_guard g(mu_);
    auto it = objects_.find(key(kind, ns, name));
    if (it == objects_.end()) return std::unexpected(notFound(name));
    Json o = it->second;
    objects_.erase(it);
    o["metadata"]["resourceVersion"] = std::to_string(++rv_);
    broadcast(WatchEventType::Deleted, o);
    return o;
  }

  Result<kube::WatchStreamPtr> watch(const ResourceKind& kind, const std::string& ns,
                                     const kube::ListOptions& opts) override {
    std::lock_guard g(mu_);
    ++watchCalls_;
    watchRVs_.push_back(opts.resourceVersion);
    if (goneNextWatch_) {
      goneNextWatch_ = false;
      ApiError e;
      e.reason = ApiError::Reason::Gone;
      e.httpCode = 410;
      e.message = "too old resource version";
      return std::unexpected(e);
    }
    auto s = std::make_shared<Stream>();
    s->resource = kind.resource;
    // Replay history after the requested RV (like etcd's watch from a revision).
    uint64_t from = opts.resourceVersion.empty() ? rv_ : std::stoull(opts.resourceVersion);
    for (const auto& [rv, ev] : history_)
      if (rv > from && ev.first.resource == kind.resource)
        s->push(ev.second.type, ev.second.object);
    streams_.push_back(s);
    return std::make_unique<Handle>(s);
  }

  struct Stream {
    std::mutex mu;
    std::condition_variable cv;
    std::deque<WatchEvent> q;
    bool closed = false;
    std::string resource;
    void push(WatchEventType t, Json o) {
      std::lock_guard g(mu);
      q.push_back({t, std::move(o)});
      cv.notify_all();
    }
    void close() {
      std::lock_guard g(mu);
      closed = true;
      cv.notify_all();
    }
  };

 private:
  struct Handle : kube::WatchStream {
    explicit Handle(std::shared_ptr<Stream> s) : s(std::move(s)) {}
    Result<std::optional<WatchEvent>> next() override {
      std::unique_lock lk(s->mu);
      s->cv.wait(lk, [&] { return !s->q.empty() || s->closed; });
      if (!s->q.empty()) {
        WatchEvent e = std::move(s->q.front());
        s->q.pop_front();
        if (e.type == WatchEventType::Error && e.object.value("code", 0) == 410) {
          s->closed = true;
          ApiError err;
          err.reason = ApiError::Reason::Gone;
          err.httpCode = 410;
          err.statusReason = "Expired";
          return std::unexpected(err);
        }
        return std::optional<WatchEvent>(std::move(e));
      }
      return std::optional<WatchEvent>{};
    }
    void cancel() override { s->close(); }
    std::shared_ptr<Stream> s;
  };

  static Json statusJson(int code, const std::string& reason) {
    return {{"kind", "Status"}, {"code", code}, {"reason", reason}};
  }
  static ApiError notFound(const std::string& name) {
    ApiError e;
    e.reason = ApiError::Reason::NotFound;
    e.httpCode = 404;
    e.message = name + " not found";
    return e;
  }
  static std::string key(const ResourceKind& kind, const std::string& ns, const std::string& name) {
    return kind.resource + "|" + (ns.empty() ? "" : ns + "/") + name;
  }
  void broadcast(WatchEventType t, const Json& o) {
    history_.emplace_back(rv_, std::make_pair(ResourceKind{"", "", currentResource(o), "", true},
                                              WatchEvent{t, o}));
    if (partitioned_) return;
    for (auto& s : streams_)
      if (s->resource == currentResource(o)) s->push(t, o);
  }
  // Objects carry their resource in a hidden annotation-free way: we track by kind.
  static std::string currentResource(const Json& o) {
    std::string k = o.value("kind", "ConfigMap");
    std::string r = k;
    for (auto& c : r) c = char(std::tolower(c));
    return r + "s";
  }

  mutable std::mutex mu_;
  std::map<std::string, Json> objects_;
  std::vector<std::pair<uint64_t, std::pair<ResourceKind, WatchEvent>>> history_;
  std::vector<std::shared_ptr<Stream>> streams_;
  uint64_t rv_ = 100;
  bool goneNextWatch_ = false;
  bool partitioned_ = false;
  int listCalls_ = 0;
  int watchCalls_ = 0;
  int getCalls_ = 0;
  int64_t lastLimit_ = 0;
  std::vector<std::string> watchRVs_;
};

}  // namespace waterline::testing
