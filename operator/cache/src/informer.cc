#include "waterline/cache/informer.h"

namespace waterline::cache {

namespace {
ReflectorOptions reflectorOptions(const InformerOptions& o) {
  ReflectorOptions r;
  r.ns = o.ns;
  r.labelSelector = o.labelSelector;
  r.fieldSelector = o.fieldSelector;
  r.minWatchTimeout = o.minWatchTimeout;
  const bool drop = o.dropManagedFields;
  auto user = o.transform;
  r.transform = [drop, user](Json& obj) {
    if (drop) {
      auto md = obj.find("metadata");
      if (md != obj.end() && md->is_object()) md->erase("managedFields");
    }
    if (user) user(obj);
  };
  return r;
}
}  // namespace

Informer::Informer(kube::ClientPtr client, kube::ResourceKind kind, InformerOptions opts,
                   TimeSourcePtr time)
    : kind_(kind),
      opts_(std::move(opts)),
      time_(std::move(time)),
      reflector_(std::move(client), std::move(kind), reflectorOptions(opts_), *this, time_) {
  store_.addIndexer(kNamespaceIndex, namespaceIndexFunc);
}

Informer::~Informer() { stop(); }

void Informer::addIndexer(const std::string& name, IndexFunc fn) {
  store_.addIndexer(name, std::move(fn));
}

uint64_t Informer::addEventHandler(EventHandler h) {
  std::lock_guard g(dispatchMu_);
  if (h.onAdd) {
    for (const auto& obj : store_.list()) h.onAdd(obj);
  }
  handlers_.push_back(std::move(h));
  handlerIds_.push_back(nextHandlerId_);
  return nextHandlerId_++;
}

void Informer::removeEventHandler(uint64_t id) {
  std::lock_guard g(dispatchMu_);  // waits for a dispatch in progress
  for (size_t i = 0; i < handlerIds_.size(); ++i) {
    if (handlerIds_[i] != id) continue;
    handlers_.erase(handlers_.begin() + static_cast<std::ptrdiff_t>(i));
    handlerIds_.erase(handlerIds_.begin() + static_cast<std::ptrdiff_t>(i));
    return;
  }
}

std::shared_ptr<void> Informer::attachment(std::type_index type,
                                          const std::function<std::shared_ptr<void>()>& make) {
  std::lock_guard g(attachmentsMu_);
  auto& slot = attachments_[type];
  if (!slot) slot = make();
  return slot;
}

void Informer::start() {
  std::lock_guard g(mu_);
  if (started_) return;
  started_ = true;
  reflectorThread_ = std::thread([this] { reflector_.run(); });
  if (opts_.resyncPeriod > Duration{0}) resyncThread_ = std::thread([this] { resyncLoop(); });
}

void Informer::stop() {
  stopped_ = true;
  reflector_.stop();
  {
    std::lock_guard g(mu_);
    cv_.notify_all();
  }
  if (reflectorThread_.joinable()) reflectorThread_.join();
  if (resyncThread_.joinable()) resyncThread_.join();
}

bool Informer::waitForSync(Duration timeout) {
  std::unique_lock lk(mu_);
  return time_->waitUntil(lk, cv_, time_->monotonicTime() + timeout,
                          [&] { return synced_.load() || stopped_.load(); }) &&
         synced_.load();
}

void Informer::replace(std::vector<ObjectPtr> objs, const std::string&) {
  std::lock_guard g(dispatchMu_);
  // Compute adds/updates against the current content before swapping it.
  std::vector<std::pair<ObjectPtr, ObjectPtr>> changes;  // (old, new); old null = add
  changes.reserve(objs.size());
  for (const auto& o : objs) {
    ObjectPtr old = store_.get(objectKey(*o));
    if (!old || resourceVersionOf(*old) != resourceVersionOf(*o)) changes.emplace_back(old, o);
  }
  auto dropped = store_.replace(std::move(objs));
  for (const auto& [oldObj, newObj] : changes) {
    for (const auto& h : handlers_) {
      if (!oldObj) {
        if (h.onAdd) h.onAdd(newObj);
      } else if (h.onUpdate) {
        h.onUpdate(oldObj, newObj);
      }
    }
  }
  for (const auto& d : dropped) {
    for (const auto& h : handlers_)
      if (h.onDelete) h.onDelete(d, true);
  }
  if (!synced_.exchange(true)) {
    std::lock_guard g2(mu_);
    cv_.notify_all();
  }
}

void Informer::added(ObjectPtr obj) {
  std::lock_guard g(dispatchMu_);
  ObjectPtr old = store_.upsert(obj);
  for (const auto& h : handlers_) {
    if (old) {
      if (h.onUpdate) h.onUpdate(old, obj);
    } else if (h.onAdd) {
      h.onAdd(obj);
    }
  }
}

void Informer::modified(ObjectPtr obj) {
  std::lock_guard g(dispatchMu_);
  ObjectPtr old = store_.upsert(obj);
  for (const auto& h : handlers_) {
    if (!old) {
      if (h.onAdd) h.onAdd(obj);
    } else if (h.onUpdate) {
      h.onUpdate(old, obj);
    }
  }
}

void Informer::deleted(ObjectPtr obj) {
  std::lock_guard g(dispatchMu_);
  ObjectPtr old = store_.erase(objectKey(*obj));
  for (const auto& h : handlers_)
    if (h.onDelete) h.onDelete(obj, false);
}

void Informer::resyncLoop() {
  while (!stopped_) {
    {
      std::unique_lock lk(mu_);
      time_->waitUntil(lk, cv_, time_->monotonicTime() + opts_.resyncPeriod,
                       [&] { return stopped_.load(); });
    }
    if (stopped_) return;
    if (!synced_) continue;
    std::lock_guard g(dispatchMu_);
    for (const auto& obj : store_.list())
      for (const auto& h : handlers_)
        if (h.onUpdate) h.onUpdate(obj, obj);
  }
}

InformerFactory::InformerFactory(kube::ClientPtr client, TimeSourcePtr time, Duration defaultResync)
    : client_(std::move(client)), time_(std::move(time)), defaultResync_(defaultResync) {}

InformerFactory::~InformerFactory() { stop(); }

InformerPtr InformerFactory::informerFor(const kube::ResourceKind& kind, InformerOptions opts) {
  const std::string id = kind.apiVersion() + "/" + kind.resource + "|" + opts.ns + "|" +
                         opts.labelSelector + "|" + opts.fieldSelector;
  std::lock_guard g(mu_);
  for (const auto& [k, inf] : informers_)
    if (k == id) return inf;
  if (opts.resyncPeriod == Duration{0}) opts.resyncPeriod = defaultResync_;
  auto inf = std::make_shared<Informer>(client_, kind, std::move(opts), time_);
  informers_.emplace_back(id, inf);
  if (started_) inf->start();
  return inf;
}

void InformerFactory::start() {
  std::lock_guard g(mu_);
  started_ = true;
  for (const auto& [k, inf] : informers_) inf->start();
}

void InformerFactory::stop() {
  std::vector<InformerPtr> all = informers();
  for (const auto& inf : all) inf->stop();
}

bool InformerFactory::waitForSync(Duration timeout) {
  const auto deadline = time_->monotonicTime() + timeout;
  for (const auto& inf : informers()) {
    auto left = deadline - time_->monotonicTime();
    if (left < Duration{0} || !inf->waitForSync(left)) return false;
  }
  return true;
}

std::vector<InformerPtr> InformerFactory::informers() const {
  std::lock_guard g(mu_);
  std::vector<InformerPtr> out;
  for (const auto& [k, inf] : informers_) out.push_back(inf);
  return out;
}

}  // namespace waterline::cache
