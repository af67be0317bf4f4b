#pragma once
// Typed listers: an informer's objects decoded once per version into a value type
// (client-go's typed listers over a shared informer). The informer's store keeps the
// JSON the API server sent (indexes, events and patches work on it); a Lister<T> keeps,
// for each object in that store, its decoded T, so that reconcilers read typed values
// instead of decoding (or indexing into) JSON each time.
//
//   auto pools = cache::Lister<api::CapacityPool>::of(poolInformer);
//   for (const auto& p : pools->list()) ... p->spec ...
//
// One Lister per (informer, T), shared by everyone who asks (`of`); the first caller's
// decode function is the one used. It decodes on the informer's thread as events arrive,
// and every read is checked against the store's current object (the store never changes
// an object in place: a new version is a new pointer), so a read never returns a value
// older than what the store holds, whatever order the informer's handlers run in. An
// object that does not decode is left out of list() and reported by item() with its error;
// it is not decoded again until a new version replaces it.
//
// The decode function maps JSON to std::expected<T, std::string> (an error string for
// objects that do not decode). The default calls T::fromJson, which may return T,
// std::optional<T> or std::expected<T, E>.
#include <cstddef>
#include <expected>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <type_traits>
#include <typeindex>
#include <unordered_map>
#include <vector>

#include "waterline/cache/informer.h"

namespace waterline::cache {

template <class T>
class Lister {
 public:
  using Decode = std::function<std::expected<T, std::string>(const Json&)>;
  using ValuePtr = std::shared_ptr<const T>;

  struct Item {
    ObjectPtr object;    // the informer's object (for Events, owner references, raw fields)
    ValuePtr value;      // null when it did not decode
    std::string error;   // why it did not decode
  };

  // The Lister of T over `informer` (created, and subscribed to its events, on first use).
  static std::shared_ptr<Lister> of(const InformerPtr& informer, Decode decode = defaultDecode) {
    auto p = informer->attachment(std::type_index(typeid(Lister<T>)), [&]() -> std::shared_ptr<void> {
      auto l = std::shared_ptr<Lister>(new Lister(informer.get(), std::move(decode)));
      l->subscribe();
      return l;
    });
    return std::static_pointer_cast<Lister>(p);
  }

  ~Lister() = default;
  Lister(const Lister&) = delete;
  Lister& operator=(const Lister&) = delete;

  // The decoded object under `key` ("namespace/name" or "name"); null when absent or not decodable.
  ValuePtr get(const std::string& key) const { return item(key).value; }
  ValuePtr get(const std::string& ns, const std::string& name) const { return get(makeKey(ns, name)); }

  // The object under `key` with its decoded value or decode error; object null when absent.
  Item item(const std::string& key) const {
    ObjectPtr obj = informer_->store().get(key);
    if (!obj) return {};
    return lookup(obj);
  }

  // Every decodable object, in the store's (key) order.
  std::vector<ValuePtr> list() const { return values(informer_->store().list()); }
  // Every object, decodable or not, in key order.
  std::vector<Item> items() const {
    std::vector<Item> out;
    const auto objs = informer_->store().list();
    out.reserve(objs.size());
    std::lock_guard g(mu_);
    for (const auto& o : objs) {
      const Entry& e = lookupLocked(o);
      out.push_back({e.object, e.value, e.error});
    }
    pruneLocked();
    return out;
  }
  // The decodable objects of one index value (the informer's indexers).
  std::vector<ValuePtr> byIndex(const std::string& index, const std::string& value) const {
    return values(informer_->store().byIndex(index, value));
  }

  // Objects decoded since creation (tests and metrics: each version once).
  std::size_t decodes() const {
    std::lock_guard g(mu_);
    return decodes_;
  }

  static std::expected<T, std::string> defaultDecode(const Json& j) {
    auto r = T::fromJson(j);
    using R = decltype(r);
    if constexpr (std::is_same_v<R, T>) {
      return std::expected<T, std::string>(std::move(r));
    } else if constexpr (std::is_same_v<R, std::optional<T>>) {
      if (!r) return std::unexpected(std::string("does not decode"));
      return std::expected<T, std::string>(std::move(*r));
    } else {
      if (!r) {
        if constexpr (std::is_convertible_v<decltype(r.error()), std::string>)
          return std::unexpected(std::string(r.error()));
        else
          return std::unexpected(std::string("does not decode"));
      }
      return std::expected<T, std::string>(std::move(*r));
    }
  }

 private:
  struct Entry {
    ObjectPtr object;
    ValuePtr value;
    std::string error;
  };

  Lister(Informer* informer, Decode decode) : informer_(informer), decode_(std::move(decode)) {}

  // Decodes as the informer stores (runs on its thread, before the read that needs it in
  // the common case). The handler is removed by the informer's destructor with the rest;
  // the Lister lives as long as the informer (it is one of its attachments).
  void subscribe() {
    EventHandler h;
    h.onAdd = [this](const ObjectPtr& o) {
      std::lock_guard g(mu_);
      lookupLocked(o);
    };
    h.onUpdate = [this](const ObjectPtr& old, const ObjectPtr& n) {
      std::lock_guard g(mu_);
      if (old != n) entries_.erase(old.get());
      lookupLocked(n);
    };
    h.onDelete = [this](const ObjectPtr& o, bool) {
      std::lock_guard g(mu_);
      entries_.erase(o.get());
    };
    informer_->addEventHandler(std::move(h));
  }

  // Entries are keyed by the object's address: the store never changes an object in
  // place, so the same address is the same version (pinned by the entry holding it),
  // found without building a key from the JSON.
  const Entry& lookupLocked(const ObjectPtr& obj) const {
    auto [it, fresh] = entries_.try_emplace(obj.get());
    Entry& e = it->second;
    if (fresh) {
      ++decodes_;
      e.object = obj;
      auto d = decode_(*obj);
      if (d) e.value = std::make_shared<const T>(std::move(*d));
      else e.error = d.error();
    }
    return e;
  }

  Item lookup(const ObjectPtr& obj) const {
    std::lock_guard g(mu_);
    const Entry& e = lookupLocked(obj);
    return {e.object, e.value, e.error};
  }

  std::vector<ValuePtr> values(const std::vector<ObjectPtr>& objs) const {
    std::vector<ValuePtr> out;
    out.reserve(objs.size());
    std::lock_guard g(mu_);
    for (const auto& o : objs)
      if (const Entry& e = lookupLocked(o); e.value) out.push_back(e.value);
    pruneLocked();
    return out;
  }

  // Entries of versions the store no longer holds: a read raced an update or delete (its
  // event came first). Dropped when there are more entries than objects.
  void pruneLocked() const {
    const auto& store = informer_->store();
    if (entries_.size() <= store.size()) return;
    std::unordered_map<const Json*, bool> live;
    for (const auto& o : store.list()) live.emplace(o.get(), true);
    std::erase_if(entries_, [&](const auto& kv) { return !live.count(kv.first); });
  }

  Informer* informer_;
  Decode decode_;
  mutable std::mutex mu_;
  mutable std::unordered_map<const Json*, Entry> entries_;
  mutable std::size_t decodes_ = 0;
};

}  // namespace waterline::cache
