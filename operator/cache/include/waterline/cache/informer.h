#pragma once
// A shared informer: one reflector feeding one indexed store, fanning events out to
// handlers. Handlers run on the informer's thread, in event order, and must be cheap
// (map the object to keys and enqueue them).
#include <cstdint>
#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <typeindex>
#include <unordered_map>
#include <vector>

#include "waterline/cache/reflector.h"
#include "waterline/cache/store.h"
#include "waterline/common/time.h"
#include "waterline/kube/client.h"

namespace waterline::cache {

struct EventHandler {
  std::function<void(const ObjectPtr&)> onAdd;
  std::function<void(const ObjectPtr& oldObj, const ObjectPtr& newObj)> onUpdate;
  // finalStateUnknown: the delete was observed by a relist, not a watch event, so
  // `obj` is the last state the cache had (client-go's DeletedFinalStateUnknown).
  std::function<void(const ObjectPtr& obj, bool finalStateUnknown)> onDelete;
};

struct InformerOptions {
  std::string ns;
  std::string labelSelector;
  std::string fieldSelector;
  // When non-zero, every object is re-delivered as onUpdate(obj, obj) this often.
  Duration resyncPeriod{0};
  // Drop metadata.managedFields by default: they are large and no controller reads them.
  bool dropManagedFields = true;
  std::function<void(Json&)> transform;  // applied after dropManagedFields
  std::chrono::seconds minWatchTimeout{300};
};

class Informer final : private ReflectorSink {
 public:
  Informer(kube::ClientPtr client, kube::ResourceKind kind, InformerOptions opts,
           TimeSourcePtr time);
  ~Informer() override;
  Informer(const Informer&) = delete;
  Informer& operator=(const Informer&) = delete;

  // Must be called before start().
  void addIndexer(const std::string& name, IndexFunc fn);
  // Registers a handler. If the informer already holds objects, the handler first
  // receives onAdd for each of them (so late handlers see the same world). Returns an id
  // for removeEventHandler.
  uint64_t addEventHandler(EventHandler h);
  // Unregisters a handler (client-go's RemoveEventHandler): once this returns, it is not
  // running and is never called again. Whoever registered a handler that refers to
  // itself (a controller's enqueue) removes it before it goes away.
  void removeEventHandler(uint64_t id);

  // Objects that live as long as the informer, one per type (cache::Lister<T>, lister.h):
  // returns the one stored under `type`, creating it with `make` the first time. Not to be
  // called from an event handler (`make` may register one).
  std::shared_ptr<void> attachment(std::type_index type, const std::function<std::shared_ptr<void>()>& make);

  void start();
  void stop();

  bool hasSynced() const { return synced_.load(); }
  // Blocks until synced, stop(), or timeout (on the informer's TimeSource).
  bool waitForSync(Duration timeout);

  const Store& store() const { return store_; }
  const kube::ResourceKind& kind() const { return kind_; }
  ReflectorStats stats() const { return reflector_.stats(); }
  std::string lastSyncResourceVersion() const { return reflector_.lastSyncResourceVersion(); }

 private:
  void replace(std::vector<ObjectPtr> objs, const std::string& resourceVersion) override;
  void added(ObjectPtr obj) override;
  void modified(ObjectPtr obj) override;
  void deleted(ObjectPtr obj) override;
  void resyncLoop();

  kube::ResourceKind kind_;
  InformerOptions opts_;
  TimeSourcePtr time_;
  Store store_;
  Reflector reflector_;

  std::mutex dispatchMu_;  // serialises handler calls and registration
  std::vector<EventHandler> handlers_;
  std::vector<uint64_t> handlerIds_;  // parallel to handlers_
  uint64_t nextHandlerId_ = 1;

  std::mutex attachmentsMu_;
  std::unordered_map<std::type_index, std::shared_ptr<void>> attachments_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::atomic<bool> synced_{false};
  std::atomic<bool> stopped_{false};
  bool started_ = false;
  std::thread reflectorThread_;
  std::thread resyncThread_;
};

using InformerPtr = std::shared_ptr<Informer>;

// Hands out one informer per (kind, namespace, selectors), so that controllers share
// caches, and starts them together.
class InformerFactory {
 public:
  InformerFactory(kube::ClientPtr client, TimeSourcePtr time, Duration defaultResync = Duration{0});
  ~InformerFactory();

  InformerPtr informerFor(const kube::ResourceKind& kind, InformerOptions opts = {});
  void start();  // starts every informer not yet started
  void stop();
  bool waitForSync(Duration timeout);
  std::vector<InformerPtr> informers() const;

 private:
  kube::ClientPtr client_;
  TimeSourcePtr time_;
  Duration defaultResync_;
  mutable std::mutex mu_;
  std::vector<std::pair<std::string, InformerPtr>> informers_;
  bool started_ = false;
};

}  // namespace waterline::cache
