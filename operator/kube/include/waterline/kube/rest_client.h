#pragma once
// The Client over HTTP(S): cpprestsdk underneath (kept out of this header), TLS with
// CA / client certificate / key from memory, bearer token, a client-side token bucket
// in front of every request, bounded retries of idempotent reads on 429, and watch
// streams read line by line.
//
// Thread-safe: one RestClient is meant to be shared by every worker thread. All calls
// block the calling thread (never call them from a cpprestsdk/pplx continuation).
#include <expected>
#include <memory>
#include <string>

#include "waterline/common/time.h"
#include "waterline/kube/client.h"
#include "waterline/kube/config.h"

namespace waterline::kube {

// One finished HTTP request (each retry attempt is reported on its own).
struct RequestInfo {
  std::string verb;         // GET LIST WATCH POST PUT PATCH DELETE
  std::string resource;     // plural resource, "/<subresource>" appended when there is one
  int code = 0;             // HTTP status; 0 when there was no answer
  ApiError::Reason reason = ApiError::Reason::Unknown;  // Unknown on success
  Duration latency{0};      // request sent -> answer read (watch: -> headers)
  Duration throttled{0};    // time spent waiting in the client-side rate limiter
  int attempt = 0;          // 0 for the first try, 1.. for retries
};

// Hooks for metrics (request count by verb/code, latency). Called on the requesting
// thread after each attempt; must be cheap and thread-safe, must not throw.
class RequestObserver {
 public:
  virtual ~RequestObserver() = default;
  virtual void onRequest(const RequestInfo& info) noexcept = 0;
};
using RequestObserverPtr = std::shared_ptr<RequestObserver>;

class RestClient final : public Client {
 public:
  // Validates the config (server URL, PEM material) up front so that bad
  // certificates fail here rather than on the first request. `time` drives the rate
  // limiter and retry waits (RealTimeSource when null).
  static std::expected<std::shared_ptr<RestClient>, std::string> create(
      RestConfig config, TimeSourcePtr time = nullptr, RequestObserverPtr observer = nullptr);

  ~RestClient() override;
  RestClient(const RestClient&) = delete;
  RestClient& operator=(const RestClient&) = delete;

  Result<Json> get(const ResourceKind& kind, const std::string& ns,
                   const std::string& name) override;
  Result<ObjectList> list(const ResourceKind& kind, const std::string& ns,
                          const ListOptions& opts = {}) override;

  // ns "" for a namespaced kind takes obj.metadata.namespace.
  Result<Json> create(const ResourceKind& kind, const std::string& ns, const Json& obj,
                      const WriteOptions& opts = {}) override;
  Result<Json> update(const ResourceKind& kind, const std::string& ns, const Json& obj,
                      const WriteOptions& opts = {}) override;
  Result<Json> patch(const ResourceKind& kind, const std::string& ns, const std::string& name,
                     PatchType type, const std::string& body,
                     const PatchOptions& opts = {}) override;
  // Requires opts.fieldManager (client-side BadRequest otherwise).
  Result<Json> apply(const ResourceKind& kind, const std::string& ns, const Json& obj,
                     const PatchOptions& opts) override;
  Result<Json> remove(const ResourceKind& kind, const std::string& ns, const std::string& name,
                      const DeleteOptions& opts = {}) override;

  // timeoutSeconds defaults to config().defaultWatchTimeout; the connection's
  // inactivity timeout is timeoutSeconds + config().watchInactivitySlack. Returns once
  // the answer's headers are in (a non-2xx answer is an error here).
  Result<WatchStreamPtr> watch(const ResourceKind& kind, const std::string& ns,
                               const ListOptions& opts) override;

  Result<Json> getSubresource(const ResourceKind& kind, const std::string& ns,
                              const std::string& name, const std::string& subresource) override;

  // GET of an arbitrary server path ("/version", "/readyz"): the raw body of a 2xx
  // answer. Rate-limited and observed like every other request.
  Result<std::string> getRaw(const std::string& pathAndQuery);

  const RestConfig& config() const;

 private:
  struct Impl;
  explicit RestClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace waterline::kube
