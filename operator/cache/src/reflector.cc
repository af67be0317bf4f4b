#include "waterline/cache/reflector.h"

#include <algorithm>
#include <iostream>

namespace waterline::cache {

using kube::ApiError;
using kube::WatchEventType;

Reflector::Reflector(kube::ClientPtr client, kube::ResourceKind kind, ReflectorOptions opts,
                     ReflectorSink& sink, TimeSourcePtr time)
    : client_(std::move(client)),
      kind_(std::move(kind)),
      opts_(std::move(opts)),
      sink_(sink),
      time_(std::move(time)),
      rng_(opts_.seed ? opts_.seed : std::random_device{}()) {}

Reflector::~Reflector() { stop(); }

void Reflector::stop() {
  stopped_ = true;
  std::lock_guard g(mu_);
  if (active_) active_->cancel();
  cv_.notify_all();
}

std::string Reflector::lastSyncResourceVersion() const {
  std::lock_guard g(mu_);
  return lastRV_;
}

ReflectorStats Reflector::stats() const {
  std::lock_guard g(mu_);
  return stats_;
}

ObjectPtr Reflector::prepare(Json obj) {
  if (opts_.transform) opts_.transform(obj);
  return std::make_shared<const Json>(std::move(obj));
}

void Reflector::backoffWait() {
  // Exponential with full jitter in [d/2, d], capped.
  double d = std::chrono::duration<double>(opts_.backoffInitial).count();
  for (int i = 1; i < failures_ && d < std::chrono::duration<double>(opts_.backoffMax).count(); ++i)
    d *= 2;
  d = std::min(d, std::chrono::duration<double>(opts_.backoffMax).count());
  std::uniform_real_distribution<double> jitter(0.5, 1.0);
  auto wait = std::chrono::duration_cast<Duration>(std::chrono::duration<double>(d * jitter(rng_)));
  std::unique_lock lk(mu_);
  time_->waitUntil(lk, cv_, time_->monotonicTime() + wait, [&] { return stopped_.load(); });
}

bool Reflector::listAndReplace() {
  kube::ListOptions lo;
  lo.labelSelector = opts_.labelSelector;
  lo.fieldSelector = opts_.fieldSelector;
  // The first list may be served from the apiserver's watch cache (RV "0"); after a
  // 410 the list must be consistent (RV ""), paginated.
  lo.resourceVersion = consistentList_ ? "" : "0";
  if (consistentList_) lo.limit = opts_.pageSize;

  std::vector<ObjectPtr> objs;
  std::string listRV;
  while (true) {
    auto page = client_->list(kind_, opts_.ns, lo);
    if (!page) {
      if (page.error().isGone() && !lo.continueToken.empty()) {
        // The continue token expired mid-way: start over with one unpaginated list.
        objs.clear();
        lo.continueToken.clear();
        lo.limit.reset();
        lo.resourceVersion = "";
        continue;
      }
      if (page.error().isGone()) consistentList_ = true;
      std::cerr << "reflector " << kind_.resource << ": list failed: " << page.error().describe()
                << "\n";
      return false;
    }
    for (auto& item : page->items) {
      if (!item.contains("kind")) {
        item["kind"] = kind_.kind;
        item["apiVersion"] = kind_.apiVersion();
      }
      objs.push_back(prepare(std::move(item)));
    }
    listRV = page->resourceVersion;
    if (page->continueToken.empty()) break;
    lo.continueToken = page->continueToken;
    lo.resourceVersion.clear();
  }
  if (stopped_) return false;
  {
    // Counted before the sink sees the objects, so whoever observes the relist's
    // events also sees it in stats().
    std::lock_guard g(mu_);
    lastRV_ = listRV;
    if (stats_.lists > 0) ++stats_.relists;
    ++stats_.lists;
  }
  sink_.replace(std::move(objs), listRV);
  needList_ = false;
  consistentList_ = false;
  return true;
}

void Reflector::watchOnce() {
  kube::ListOptions lo;
  lo.labelSelector = opts_.labelSelector;
  lo.fieldSelector = opts_.fieldSelector;
  lo.allowWatchBookmarks = true;
  const auto minT = opts_.minWatchTimeout.count();
  std::uniform_int_distribution<int64_t> dist(minT, std::max<int64_t>(minT, 2 * minT - 1));
  lo.timeoutSeconds = dist(rng_);
  {
    std::lock_guard g(mu_);
    lo.resourceVersion = lastRV_;
    ++stats_.watches;
  }
  auto stream = client_->watch(kind_, opts_.ns, lo);
  if (!stream) {
    if (stream.error().isGone()) {
      needList_ = true;
      consistentList_ = true;
      return;
    }
    std::cerr << "reflector " << kind_.resource << ": watch failed: " << stream.error().describe()
              << "\n";
    ++failures_;
    // As client-go: anything but an unreachable server means the next attempt starts
    // with a (consistent) list, so an error we cannot resume from never loops.
    if (stream.error().reason != ApiError::Reason::Transport) {
      needList_ = true;
      consistentList_ = true;
    }
    backoffWait();
    return;
  }
  kube::WatchStreamPtr w = std::move(*stream);
  {
    std::lock_guard g(mu_);
    if (stopped_) return;
    active_ = w.get();
  }
  auto clearActive = [&] {
    std::lock_guard g(mu_);
    active_ = nullptr;
  };

  while (!stopped_) {
    auto ev = w->next();
    if (!ev) {
      clearActive();
      if (stopped_) return;
      std::lock_guard g(mu_);
      ++stats_.watchErrors;
      if (ev.error().isGone()) {
        needList_ = true;
        consistentList_ = true;
        return;
      }
      ++failures_;
      if (ev.error().reason != ApiError::Reason::Transport &&
          ev.error().reason != ApiError::Reason::Timeout) {
        needList_ = true;
        consistentList_ = true;
      }
      std::cerr << "reflector " << kind_.resource << ": watch error: " << ev.error().describe()
                << "\n";
      // fall out and back off (outside the lock)
      break;
    }
    if (!ev->has_value()) {  // server closed the stream normally: resume
      clearActive();
      failures_ = 0;
      return;
    }
    kube::WatchEvent& e = **ev;
    failures_ = 0;
    const std::string rv = resourceVersionOf(e.object);
    switch (e.type) {
      case WatchEventType::Bookmark: {
        std::lock_guard g(mu_);
        if (!rv.empty()) lastRV_ = rv;
        ++stats_.bookmarks;
        continue;
      }
      case WatchEventType::Error: {
        // A Status that the client did not map (410 is mapped to an ApiError above).
        clearActive();
        int code = e.object.value("code", 0);
        std::lock_guard g(mu_);
        ++stats_.watchErrors;
        needList_ = true;
        consistentList_ = true;
        if (code == 410) return;
        ++failures_;
        break;
      }
      case WatchEventType::Added:
      case WatchEventType::Modified:
      case WatchEventType::Deleted: {
        if (!e.object.contains("kind")) {
          e.object["kind"] = kind_.kind;
          e.object["apiVersion"] = kind_.apiVersion();
        }
        auto obj = prepare(std::move(e.object));
        if (e.type == WatchEventType::Added) sink_.added(obj);
        else if (e.type == WatchEventType::Modified) sink_.modified(obj);
        else sink_.deleted(obj);
        std::lock_guard g(mu_);
        if (!rv.empty()) lastRV_ = rv;
        ++stats_.events;
        continue;
      }
    }
    break;  // Error event: back off
  }
  clearActive();
  if (!stopped_) backoffWait();
}

void Reflector::run() {
  while (!stopped_) {
    if (needList_) {
      if (!listAndReplace()) {
        if (stopped_) return;
        ++failures_;
        backoffWait();
        continue;
      }
      failures_ = 0;
    }
    watchOnce();
  }
}

}  // namespace waterline::cache
