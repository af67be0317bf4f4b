#include "waterline/router/cache_layer.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstring>

#include <openssl/evp.h>

namespace waterline::router {

using nlohmann::json;

namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// A partition component: its length, then its bytes (so no value can imitate a boundary).
void appendPart(std::string& out, std::string_view part) {
  out += std::to_string(part.size());
  out.push_back(':');
  out.append(part);
}

caching::CacheOptions optionsOf(const routing::CacheInfo& c) {
  caching::CacheOptions o;
  o.mode = c.mode == api::CacheMode::Semantic ? caching::Mode::Semantic : caching::Mode::Exact;
  o.similarityThreshold = c.similarityThreshold;
  o.ttl = std::chrono::seconds(c.ttlSeconds);
  o.maxEntries = static_cast<std::size_t>(std::max<int64_t>(1, c.maxEntries));
  return o;
}

}  // namespace

CacheControl parseCacheControl(std::string_view value) {
  CacheControl cc;
  while (!value.empty()) {
    const auto comma = value.find(',');
    std::string_view item = trim(value.substr(0, comma));
    value = comma == std::string_view::npos ? std::string_view{} : value.substr(comma + 1);
    if (const auto eq = item.find('='); eq != std::string_view::npos) item = trim(item.substr(0, eq));
    const std::string d = lower(item);
    if (d == "no-cache") cc.noCache = true;
    else if (d == "no-store") cc.noStore = true;
  }
  return cc;
}

std::string CacheRequest::serverTiming() const {
  if (state != State::Lookup) return {};
  char buf[96];
  int n = std::snprintf(buf, sizeof buf, "cache-lookup;dur=%.3f", lookupMs);
  if (embeddingMs >= 0 && n > 0 && static_cast<std::size_t>(n) < sizeof buf)
    std::snprintf(buf + n, sizeof buf - static_cast<std::size_t>(n), ", cache-embedding;dur=%.3f", embeddingMs);
  return buf;
}

RouterCache::RouterCache(metrics::Registry& r) {
  lookups_ = &r.counter("waterline_router_cache_lookups_total",
                        "Requests to a deployment with spec.cache, by result: hit (answered from the cache), miss "
                        "(looked up, sent on), bypass (not eligible, or Cache-Control: no-cache).",
                        {"deployment", "result"});
  hits_ = &r.counter("waterline_router_cache_hits_total", "Cache hits by kind (exact, semantic).",
                     {"deployment", "kind"});
  saved_ = &r.counter("waterline_router_cache_tokens_saved_total",
                      "Tokens (prompt and completion) of answers served from the cache: not sent to a GPU and "
                      "not charged to a reservation or quota.",
                      {"deployment"});
  embedSeconds_ = &r.histogram("waterline_router_cache_embedding_duration_seconds",
                               "Time to get a prompt's embedding from the embeddings deployment (Semantic mode).",
                               {"deployment"}, metrics::exponentialBuckets(0.0001, 2, 18));
  embedErrors_ = &r.counter("waterline_router_cache_embedding_errors_total",
                            "Embedding calls that gave no embedding (the request then only uses the exact path).",
                            {"deployment"});
  auto statFn = [this](int which) {
    return [this, which] {
      std::vector<std::pair<std::string, std::shared_ptr<caching::ResponseCache>>> all;
      {
        std::lock_guard lk(mu_);
        for (const auto& [k, s] : slots_) all.emplace_back(k, s.cache);
      }
      std::vector<metrics::Sample> out;
      for (const auto& [k, c] : all) {
        const auto st = c->stats();
        const std::size_t v = which == 0 ? st.entries : which == 1 ? st.bytes : which == 2 ? st.partitions : st.queued;
        out.push_back({{k}, static_cast<double>(v)});
      }
      return out;
    };
  };
  r.gaugeFunc("waterline_router_cache_entries", "Answers in a deployment's cache on this router replica.",
              {"deployment"}, statFn(0));
  r.gaugeFunc("waterline_router_cache_bytes",
              "Memory of a deployment's cache on this replica: answers, keys and the similarity index.",
              {"deployment"}, statFn(1));
  r.gaugeFunc("waterline_router_cache_partitions",
              "Similarity indexes (partition and request parameters) of a deployment's cache on this replica.",
              {"deployment"}, statFn(2));
  r.gaugeFunc("waterline_router_cache_index_backlog",
              "Similarity-index inserts and removals a deployment's cache has queued for its indexer thread on this "
              "replica (stores are searchable meanwhile; past 4096 queued inserts new stores stay exact-only).",
              {"deployment"}, statFn(3));
}

void RouterCache::sync(const routing::RoutingTable& table) {
  std::unordered_map<std::string, Slot> next;
  std::lock_guard lk(mu_);
  for (const auto& d : table.deployments) {
    if (!d.cache) continue;
    const std::string key = d.deployment.str();
    auto it = slots_.find(key);
    if (it != slots_.end() && it->second.info == *d.cache && it->second.model == d.model) {
      next.emplace(key, std::move(it->second));
      continue;
    }
    Slot s;
    s.info = *d.cache;
    s.model = d.model;
    s.cache = std::make_shared<caching::ResponseCache>(optionsOf(*d.cache));
    next.emplace(key, std::move(s));
  }
  slots_ = std::move(next);  // dropped caches go with their last in-flight request
}

CacheRequest RouterCache::plan(const routing::DeploymentRoutes& d, const json& body, caching::Api api,
                               const std::function<std::string(std::string_view)>& header) const {
  CacheRequest r;
  if (!d.cache) return r;
  r.deployment = d.deployment.str();
  {
    std::lock_guard lk(mu_);
    auto it = slots_.find(r.deployment);
    if (it == slots_.end()) return r;  // the table and the caches are between two syncs
    r.cache = it->second.cache;
  }
  r.api = api;
  const CacheControl cc = parseCacheControl(header("cache-control"));
  auto canon = caching::canonicalize(body, api, d.model + "@" + d.cache->modelVersion);
  if (!canon) {
    r.state = CacheRequest::State::Bypass;
    r.reason = canon.error().reason;
    return r;
  }
  r.canon = std::move(*canon);
  r.store = !cc.noStore;
  r.semantic = d.cache->mode == api::CacheMode::Semantic && !d.cache->embeddingsDeployment.empty();
  r.embeddingsDeployment = d.cache->embeddingsDeployment;
  appendPart(r.partition, r.deployment);
  for (const auto& v : d.cache->varyBy) {
    if (!v.header.empty()) {
      appendPart(r.partition, "h");
      appendPart(r.partition, header(v.header));
    } else {
      appendPart(r.partition, "f");
      const auto it = body.find(v.field);
      std::string value;
      if (it != body.end() && !it->is_null()) value = it->is_string() ? it->get<std::string>() : it->dump();
      appendPart(r.partition, value);
    }
  }
  if (cc.noCache) {
    r.state = CacheRequest::State::Bypass;
    r.reason = "no-cache";
    return r;
  }
  r.state = CacheRequest::State::Lookup;
  return r;
}

std::optional<caching::CacheHit> RouterCache::lookupExact(const CacheRequest& r, MonotonicTime now) const {
  if (r.state != CacheRequest::State::Lookup || !r.cache) return std::nullopt;
  return r.cache->lookupExact(r.partition, r.canon.exactKey, now);
}

std::optional<caching::CacheHit> RouterCache::lookupSemantic(const CacheRequest& r, std::span<const float> embedding,
                                                             MonotonicTime now) const {
  if (r.state != CacheRequest::State::Lookup || !r.cache || !r.semantic) return std::nullopt;
  return r.cache->lookupSemantic(r.partition, r.canon.paramsKey, embedding, now);
}

void RouterCache::store(const CacheRequest& r, std::optional<std::span<const float>> embedding,
                        caching::StoredAnswer answer, MonotonicTime now) const {
  if (r.state == CacheRequest::State::Off || !r.store || !r.cache) return;
  r.cache->store(r.partition, r.canon.exactKey, r.canon.paramsKey, r.semantic ? embedding : std::nullopt,
                 std::move(answer), now);
}

void RouterCache::recordLookup(const CacheRequest& r, const char* result) const {
  if (r.state == CacheRequest::State::Off) return;
  lookups_->withLabels({r.deployment, result}).inc();
}

void RouterCache::recordHit(const CacheRequest& r, const caching::CacheHit& h) const {
  hits_->withLabels({r.deployment, h.exact ? "exact" : "semantic"}).inc();
  if (h.answer)
    saved_->withLabels({r.deployment}).inc(static_cast<double>(h.answer->promptTokens + h.answer->completionTokens));
}

void RouterCache::recordEmbedding(const CacheRequest& r, double seconds, bool ok) const {
  embedSeconds_->withLabels({r.deployment}).observe(seconds);
  if (!ok) embedErrors_->withLabels({r.deployment}).inc();
}

RouterCache::Rendered RouterCache::render(const caching::StoredAnswer& a, const CacheRequest& r, std::string_view id,
                                          std::int64_t created) {
  if (r.canon.stream) return {caching::renderSse(a, id, created, r.canon.includeUsage), "text/event-stream"};
  return {caching::renderJson(a, id, created), "application/json"};
}

std::string RouterCache::newId(caching::Api api, const std::function<double()>& random) {
  static constexpr char kAlnum[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  std::string id = api == caching::Api::Chat ? "chatcmpl-" : "cmpl-";
  for (int i = 0; i < 24; ++i) {
    const auto k = static_cast<std::size_t>(random() * (sizeof(kAlnum) - 1));
    id.push_back(kAlnum[std::min<std::size_t>(k, sizeof(kAlnum) - 2)]);
  }
  return id;
}

std::optional<std::vector<float>> parseEmbedding(std::string_view body) {
  const json j = json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return std::nullopt;
  const auto data = j.find("data");
  if (data == j.end() || !data->is_array() || data->empty() || !(*data)[0].is_object()) return std::nullopt;
  const auto e = (*data)[0].find("embedding");
  if (e == (*data)[0].end()) return std::nullopt;
  std::vector<float> v;
  if (e->is_array()) {
    v.reserve(e->size());
    for (const auto& x : *e) {
      if (!x.is_number()) return std::nullopt;
      v.push_back(x.get<float>());
    }
  } else if (e->is_string()) {
    const std::string& b64 = e->get_ref<const std::string&>();
    std::string raw(b64.size() / 4 * 3 + 3, '\0');
    const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(raw.data()),
                                  reinterpret_cast<const unsigned char*>(b64.data()), static_cast<int>(b64.size()));
    if (n < 0) return std::nullopt;
    std::size_t len = static_cast<std::size_t>(n);
    // EVP_DecodeBlock counts the padding's zero bytes too.
    if (!b64.empty() && b64.back() == '=') --len;
    if (b64.size() >= 2 && b64[b64.size() - 2] == '=') --len;
    if (len % 4 != 0) return std::nullopt;
    v.resize(len / 4);
    std::memcpy(v.data(), raw.data(), len);  // little-endian float32, as x86 and arm64 are
  } else {
    return std::nullopt;
  }
  if (v.empty()) return std::nullopt;
  return v;
}

}  // namespace waterline::router
