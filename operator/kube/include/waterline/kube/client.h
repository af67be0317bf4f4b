#pragma once
// The Kubernetes API client interface. Objects travel as nlohmann::json (the wire
// form); typed views of our own resources live in operator/api. Reads and writes are
// kept apart (as in controller-runtime's client.Reader/Writer) so that reconcilers can
// be handed a cache-backed Reader and an API-backed Writer.
#include <chrono>
#include <expected>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "waterline/kube/errors.h"
#include "waterline/kube/resource.h"

namespace waterline::kube {

using Json = nlohmann::json;

template <class T>
using Result = std::expected<T, ApiError>;

struct ListOptions {
  std::string labelSelector;
  std::string fieldSelector;
  std::optional<int64_t> limit;           // page size; 0/unset = all
  std::string continueToken;              // from a previous page
  std::string resourceVersion;            // "" = most recent (quorum), "0" = any (cache)
  std::string resourceVersionMatch;       // "NotOlderThan" | "Exact" | ""
  std::optional<int64_t> timeoutSeconds;  // server-side timeout (watch)
  bool allowWatchBookmarks = false;       // watch only
  bool sendInitialEvents = false;         // watch only (streaming list), unused by default
};

struct ObjectList {
  std::vector<Json> items;
  std::string resourceVersion;  // list RV, to start a watch from
  std::string continueToken;    // non-empty when there are more pages
  std::optional<int64_t> remainingItemCount;
};

struct Preconditions {
  std::optional<std::string> uid;
  std::optional<std::string> resourceVersion;
};

struct DeleteOptions {
  Preconditions preconditions;
  std::optional<std::string> propagationPolicy;  // Orphan | Background | Foreground
  std::optional<int64_t> gracePeriodSeconds;
};

enum class PatchType {
  Merge,          // application/merge-patch+json
  JsonPatch,      // application/json-patch+json
  StrategicMerge, // application/strategic-merge-patch+json (built-in kinds only)
  Apply,          // application/apply-patch+yaml (server-side apply)
};

struct PatchOptions {
  std::string fieldManager;  // required for Apply
  bool force = false;        // Apply only: take ownership of conflicting fields
  std::string subresource;   // "" | "status" | "scale"
};

struct WriteOptions {
  std::string fieldManager;
  std::string subresource;  // "" | "status" | "scale"
  bool dryRun = false;
};

enum class WatchEventType { Added, Modified, Deleted, Bookmark, Error };

struct WatchEvent {
  WatchEventType type;
  Json object;  // the object; for Error, a metav1.Status
};

// A live watch stream. next() blocks until an event arrives, the stream ends, or the
// stream is cancelled. Implementations parse the chunked body incrementally (one JSON
// document per line) and never buffer the whole response.
// next() is for one consumer thread at a time; cancel() may come from any thread.
// After next() returned an error or the end, it keeps returning the end.
class WatchStream {
 public:
  virtual ~WatchStream() = default;
  // An event; std::nullopt when the stream ended normally (server timeout or cancel);
  // an ApiError when the transport failed or the server sent an ERROR event that
  // maps to one (410 Gone -> ApiError::Reason::Gone / Expired).
  virtual Result<std::optional<WatchEvent>> next() = 0;
  // Safe from any thread; makes a blocked next() return promptly.
  virtual void cancel() = 0;
};
using WatchStreamPtr = std::unique_ptr<WatchStream>;

class Reader {
 public:
  virtual ~Reader() = default;
  virtual Result<Json> get(const ResourceKind& kind, const std::string& ns,
                           const std::string& name) = 0;
  virtual Result<ObjectList> list(const ResourceKind& kind, const std::string& ns,
                                  const ListOptions& opts = {}) = 0;
};

class Writer {
 public:
  virtual ~Writer() = default;
  virtual Result<Json> create(const ResourceKind& kind, const std::string& ns, const Json& obj,
                              const WriteOptions& opts = {}) = 0;
  // PUT; the object's metadata.resourceVersion is the optimistic-concurrency
  // precondition (409 Conflict -> ApiError::Reason::Conflict). subresource "status"
  // writes only status.
  virtual Result<Json> update(const ResourceKind& kind, const std::string& ns, const Json& obj,
                              const WriteOptions& opts = {}) = 0;
  virtual Result<Json> patch(const ResourceKind& kind, const std::string& ns,
                             const std::string& name, PatchType type, const std::string& body,
                             const PatchOptions& opts = {}) = 0;
  // Server-side apply of `obj` (serialised as JSON, which is valid YAML).
  virtual Result<Json> apply(const ResourceKind& kind, const std::string& ns, const Json& obj,
                             const PatchOptions& opts) = 0;
  // Returns the deleted object or the Status the server sent back.
  virtual Result<Json> remove(const ResourceKind& kind, const std::string& ns,
                              const std::string& name, const DeleteOptions& opts = {}) = 0;
};

class Client : public Reader, public Writer {
 public:
  virtual Result<WatchStreamPtr> watch(const ResourceKind& kind, const std::string& ns,
                                       const ListOptions& opts) = 0;
  // GET of a subresource ("status", "scale"). Writes to subresources go through
  // update()/patch() with WriteOptions/PatchOptions::subresource. The default answers
  // MethodNotAllowed, so that fakes need not implement it.
  virtual Result<Json> getSubresource(const ResourceKind& kind, const std::string& ns,
                                      const std::string& name, const std::string& subresource);
};
using ClientPtr = std::shared_ptr<Client>;
// What a reconciler is handed: a Writer for its API writes (its reads come from typed
// listers over the informer cache), and, where it must read past the cache, a Reader.
using ReaderPtr = std::shared_ptr<Reader>;
using WriterPtr = std::shared_ptr<Writer>;

// Lists every page: follows continueToken until the server sends none. The result
// carries all items, the resourceVersion of the list (start a watch from it) and no
// continue token. When a continue token expires mid-way (410), it starts over with
// one unpaginated list, as client-go's pager does.
Result<ObjectList> listAll(Reader& reader, const ResourceKind& kind, const std::string& ns,
                           ListOptions opts = {});

}  // namespace waterline::kube
