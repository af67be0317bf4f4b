#pragma once
// The router's side of the response cache (docs/routing.md, "Cache"): one
// caching::ResponseCache per ModelDeployment with spec.cache, kept in step with the
// routing table, and per request the decision the wire code (server.cc) acts on: off
// (no cache configured), bypass (not eligible, or Cache-Control: no-cache), or lookup,
// with the partition the request belongs to. No I/O: the embedding call is server.cc's.
//
// Partitions: the deployment (namespace/name) always, then each spec.cache.varyBy value
// in order (a header's value, or the body's `user`), then the request's parameters key.
// A request is only ever answered from its own partition. A deployment that leaves the
// table, or whose model, version or cache settings change, loses its entries at once.
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "waterline/caching/answer.h"
#include "waterline/caching/request.h"
#include "waterline/caching/response_cache.h"
#include "waterline/common/metrics.h"
#include "waterline/common/time.h"
#include "waterline/routing/table.h"

namespace waterline::router {

struct CacheRequest {
  enum class State { Off, Bypass, Lookup };
  State state = State::Off;
  std::string reason;  // Bypass: why ("no-cache", or caching::Ineligible::reason)
  bool store = false;  // store the answer once relayed (eligible, no Cache-Control: no-store)
  std::shared_ptr<caching::ResponseCache> cache;
  std::string deployment;  // namespace/name (the metrics' label)
  std::string partition;
  caching::Api api = caching::Api::Chat;
  caching::CanonicalRequest canon;
  bool semantic = false;             // Semantic mode: an embedding is wanted
  std::string embeddingsDeployment;  // its name (the deployment's namespace)

  // What the lookup took (Server-Timing, in milliseconds): the lookups themselves, and
  // the embedding call (Semantic mode, when one was made; < 0 otherwise).
  double lookupMs = 0;
  double embeddingMs = -1;

  const char* header() const { return state == State::Bypass ? "bypass" : "miss"; }
  // The `Server-Timing` response header (W3C Server Timing): `cache-lookup;dur=…` and,
  // when an embedding was fetched, `cache-embedding;dur=…`. Empty when no lookup ran.
  std::string serverTiming() const;
};

// Cache-Control request directives the cache honours.
struct CacheControl {
  bool noCache = false;  // skip the lookup (the answer is still stored)
  bool noStore = false;  // do not store the answer
};
CacheControl parseCacheControl(std::string_view value);

class RouterCache {
 public:
  explicit RouterCache(metrics::Registry& registry);

  // The routing table changed: caches for new deployments, none for those gone, fresh
  // (empty) ones where model, version or settings changed.
  void sync(const routing::RoutingTable& table);

  // What to do with one request to `d` (its resolved deployment). `header(name)` gives a
  // request header's value (lower-case name; empty when absent).
  CacheRequest plan(const routing::DeploymentRoutes& d, const nlohmann::json& body, caching::Api api,
                    const std::function<std::string(std::string_view)>& header) const;

  std::optional<caching::CacheHit> lookupExact(const CacheRequest& r, MonotonicTime now) const;
  std::optional<caching::CacheHit> lookupSemantic(const CacheRequest& r, std::span<const float> embedding,
                                                  MonotonicTime now) const;
  void store(const CacheRequest& r, std::optional<std::span<const float>> embedding, caching::StoredAnswer answer,
             MonotonicTime now) const;

  // Metrics: the lookup's result ("hit", "miss", "bypass"), a hit's kind and the tokens
  // it saved, an embedding call's duration and outcome.
  void recordLookup(const CacheRequest& r, const char* result) const;
  void recordHit(const CacheRequest& r, const caching::CacheHit& h) const;
  void recordEmbedding(const CacheRequest& r, double seconds, bool ok) const;

  // The response a hit sends: body and content type (SSE when the request streams).
  struct Rendered {
    std::string body;
    std::string contentType;
  };
  static Rendered render(const caching::StoredAnswer& a, const CacheRequest& r, std::string_view id,
                         std::int64_t created);
  // "chatcmpl-…"/"cmpl-…" with 24 random alphanumerics from `random` (0..1).
  static std::string newId(caching::Api api, const std::function<double()>& random);

 private:
  struct Slot {
    routing::CacheInfo info;
    std::string model;
    std::shared_ptr<caching::ResponseCache> cache;
  };
  mutable std::mutex mu_;
  std::unordered_map<std::string, Slot> slots_;
  metrics::CounterFamily* lookups_ = nullptr;
  metrics::CounterFamily* hits_ = nullptr;
  metrics::CounterFamily* saved_ = nullptr;
  metrics::HistogramFamily* embedSeconds_ = nullptr;
  metrics::CounterFamily* embedErrors_ = nullptr;
};

// The embedding in an OpenAI /v1/embeddings response (data[0].embedding: floats, or a
// base64 string of little-endian float32). nullopt when absent or malformed.
std::optional<std::vector<float>> parseEmbedding(std::string_view body);

}  // namespace waterline::router
