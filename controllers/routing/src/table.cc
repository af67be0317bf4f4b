#include "waterline/routing/table.h"

#include "waterline/api/keys.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>
#include <tuple>

#include "waterline/api/meta.h"

namespace waterline::routing {

const char* jsonTypeName(const nlohmann::json& j) {
  switch (j.type()) {
    case nlohmann::json::value_t::null: return "null";
    case nlohmann::json::value_t::object: return "object";
    case nlohmann::json::value_t::array: return "array";
    case nlohmann::json::value_t::string: return "string";
    case nlohmann::json::value_t::boolean: return "boolean";
    case nlohmann::json::value_t::number_integer:
    case nlohmann::json::value_t::number_unsigned: return "integer";
    case nlohmann::json::value_t::number_float: return "number";
    default: return "value";
  }
}

using json = nlohmann::json;

std::string DeploymentKey::str() const {
  return namespace_.empty() ? name : namespace_ + "/" + name;
}

DeploymentKey DeploymentKey::parse(std::string_view s) {
  auto slash = s.find('/');
  if (slash == std::string_view::npos) return {"", std::string(s)};
  return {std::string(s.substr(0, slash)), std::string(s.substr(slash + 1))};
}

std::uint64_t fnv1a64(std::string_view s) {
  std::uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

namespace {
std::string hex16(std::uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}
}  // namespace

std::string resourceName(const DeploymentKey& d) {
  std::string full = d.namespace_.empty() ? d.name : d.namespace_ + "." + d.name;
  if (full.size() <= 253) return full;
  std::string cut = full.substr(0, 236);
  while (!cut.empty() && (cut.back() == '.' || cut.back() == '-')) cut.pop_back();
  return cut + "-" + hex16(fnv1a64(d.str()));
}

std::string routingFieldManager(const std::string& cluster) {
  return std::string(api::kFieldManager) + "/" + (cluster.empty() ? "local" : cluster);
}

std::string formatMicroTime(SystemTime t) {
  using namespace std::chrono;
  auto us = duration_cast<microseconds>(t.time_since_epoch()).count();
  auto secs = us / 1000000;
  auto frac = us % 1000000;
  if (frac < 0) {
    frac += 1000000;
    --secs;
  }
  sys_days day = floor<days>(sys_seconds{seconds{secs}});
  year_month_day ymd{day};
  hh_mm_ss<seconds> tod{seconds{secs} - day.time_since_epoch()};
  char buf[40];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02d:%02d:%02d.%06lldZ", int(ymd.year()),
                unsigned(ymd.month()), unsigned(ymd.day()), int(tod.hours().count()),
                int(tod.minutes().count()), int(tod.seconds().count()),
                static_cast<long long>(frac));
  return buf;
}

// ---------------------------------------------------------------------------------
// Decoding helpers: each records the first error with the field's path.
namespace {

struct Dec {
  std::string err;
  bool ok() const { return err.empty(); }
  void fail(const std::string& path, std::string_view msg) {
    if (err.empty()) err = path + ": " + std::string(msg);
  }
};

std::string kindOf(const json& j) { return jsonTypeName(j); }

const json* field(const json& obj, const char* key) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return nullptr;
  return &*it;
}

void getString(Dec& d, const json& obj, const char* key, const std::string& path, std::string& out,
               bool required) {
  const json* f = field(obj, key);
  if (!f) {
    if (required) d.fail(path + "." + key, "Required value");
    return;
  }
  if (!f->is_string()) return d.fail(path + "." + key, "expected string, got " + kindOf(*f));
  out = f->get<std::string>();
  if (required && out.empty()) d.fail(path + "." + key, "must not be empty");
}

void getNumber(Dec& d, const json& obj, const char* key, const std::string& path, double& out,
               double min = -1e300) {
  const json* f = field(obj, key);
  if (!f) return;
  if (!f->is_number()) return d.fail(path + "." + key, "expected number, got " + kindOf(*f));
  double v = f->get<double>();
  if (!std::isfinite(v) || v < min) return d.fail(path + "." + key, "out of range");
  out = v;
}

template <class Int>
void getInt(Dec& d, const json& obj, const char* key, const std::string& path, Int& out,
            bool required = false) {
  const json* f = field(obj, key);
  if (!f) {
    if (required) d.fail(path + "." + key, "Required value");
    return;
  }
  if (!f->is_number_integer()) return d.fail(path + "." + key, "expected integer, got " + kindOf(*f));
  if (f->is_number_unsigned()) {
    auto v = f->get<std::uint64_t>();
    if (v > static_cast<std::uint64_t>(std::numeric_limits<Int>::max()))
      return d.fail(path + "." + key, "out of range");
    out = static_cast<Int>(v);
    return;
  }
  auto v = f->get<std::int64_t>();
  if (v < 0 || v > static_cast<std::int64_t>(std::numeric_limits<Int>::max()))
    return d.fail(path + "." + key, "out of range");
  out = static_cast<Int>(v);
}

void getBool(Dec& d, const json& obj, const char* key, const std::string& path, bool& out) {
  const json* f = field(obj, key);
  if (!f) return;
  if (!f->is_boolean()) return d.fail(path + "." + key, "expected boolean, got " + kindOf(*f));
  out = f->get<bool>();
}

void getStrings(Dec& d, const json& obj, const char* key, const std::string& path,
                std::vector<std::string>& out) {
  const json* f = field(obj, key);
  if (!f) return;
  if (!f->is_array()) return d.fail(path + "." + key, "expected array, got " + kindOf(*f));
  for (size_t i = 0; i < f->size(); ++i) {
    const json& e = (*f)[i];
    if (!e.is_string())
      return d.fail(path + "." + key + "[" + std::to_string(i) + "]", "expected string, got " + kindOf(e));
    out.push_back(e.get<std::string>());
  }
}

void getTime(Dec& d, const json& obj, const char* key, const std::string& path, SystemTime& out) {
  std::string s;
  getString(d, obj, key, path, s, false);
  if (s.empty() || !d.ok()) return;
  auto t = api::parseTime(s);
  if (!t) return d.fail(path + "." + key, t.error());
  out = *t;
}

bool isObject(Dec& d, const json& j, const std::string& path) {
  if (!j.is_object()) {
    d.fail(path, "expected object, got " + kindOf(j));
    return false;
  }
  return true;
}

void decodeKey(Dec& d, const json& obj, const char* key, const std::string& path, DeploymentKey& out) {
  const json* f = field(obj, key);
  if (!f) return d.fail(path + "." + key, "Required value");
  std::string p = path + "." + key;
  if (!isObject(d, *f, p)) return;
  getString(d, *f, "namespace", p, out.namespace_, false);
  getString(d, *f, "name", p, out.name, true);
}

json encodeKey(const DeploymentKey& k) {
  json j = json::object();
  if (!k.namespace_.empty()) j["namespace"] = k.namespace_;
  j["name"] = k.name;
  return j;
}

json encodeScope(const api::ReservationScope& s) {
  json j = {{"type", std::string(api::toString(s.type))}};
  if (s.region) j["region"] = *s.region;
  if (s.dataZone) j["dataZone"] = *s.dataZone;
  return j;
}

void decodeScope(Dec& d, const json& obj, const std::string& path, api::ReservationScope& out) {
  const json* f = field(obj, "scope");
  if (!f) return;  // Global
  std::string p = path + ".scope";
  if (!isObject(d, *f, p)) return;
  std::string type;
  getString(d, *f, "type", p, type, true);
  if (!d.ok()) return;
  auto t = api::parseScopeType(type);
  if (!t) return d.fail(p + ".type", "unsupported value \"" + type + "\"");
  out.type = *t;
  std::string region, zone;
  getString(d, *f, "region", p, region, false);
  getString(d, *f, "dataZone", p, zone, false);
  if (!region.empty()) out.region = region;
  if (!zone.empty()) out.dataZone = zone;
}

json encodeEntry(const RoutingEntry& e) {
  json j = json::object();
  j["cluster"] = e.cluster;  // a key of the entries map list: always present for SSA
  j["pool"] = e.pool;
  j["region"] = e.region;
  j["dataZone"] = e.dataZone;
  j["endpoints"] = e.endpoints;
  j["drainingEndpoints"] = e.drainingEndpoints;
  j["capacityTokensPerMinute"] = e.capacityTokensPerMinute;
  j["loadTokensPerMinute"] = e.loadTokensPerMinute;
  j["utilization"] = e.utilization;
  j["maxUtilization"] = e.maxUtilization;
  // Optional load signals: written only when known, so tables of publishers that do not
  // know them keep their shape (and ETag).
  if (e.queuedRequests > 0) j["queuedRequests"] = e.queuedRequests;
  if (e.queuedTokens > 0) j["queuedTokens"] = e.queuedTokens;
  if (e.prefillTokensPerSecond > 0) j["prefillTokensPerSecond"] = e.prefillTokensPerSecond;
  j["healthy"] = e.healthy;
  j["weight"] = e.weight;
  j["heartbeatTime"] = formatMicroTime(e.heartbeatTime);
  return j;
}

void decodeEntry(Dec& d, const json& j, const std::string& p, RoutingEntry& e) {
  if (!isObject(d, j, p)) return;
  getString(d, j, "cluster", p, e.cluster, false);
  getString(d, j, "pool", p, e.pool, true);
  getString(d, j, "region", p, e.region, false);
  getString(d, j, "dataZone", p, e.dataZone, false);
  getStrings(d, j, "endpoints", p, e.endpoints);
  getStrings(d, j, "drainingEndpoints", p, e.drainingEndpoints);
  getNumber(d, j, "capacityTokensPerMinute", p, e.capacityTokensPerMinute, 0);
  getNumber(d, j, "loadTokensPerMinute", p, e.loadTokensPerMinute, 0);
  const bool hasUtil = field(j, "utilization") != nullptr;
  getNumber(d, j, "utilization", p, e.utilization, 0);
  if (!hasUtil && d.ok())
    e.utilization = e.capacityTokensPerMinute > 0 ? e.loadTokensPerMinute / e.capacityTokensPerMinute : 0;
  getNumber(d, j, "maxUtilization", p, e.maxUtilization, 0);
  getNumber(d, j, "queuedRequests", p, e.queuedRequests, 0);
  getNumber(d, j, "queuedTokens", p, e.queuedTokens, 0);
  getNumber(d, j, "prefillTokensPerSecond", p, e.prefillTokensPerSecond, 0);
  // Absent "healthy" means: healthy when there is a ready endpoint.
  e.healthy = !e.endpoints.empty();
  getBool(d, j, "healthy", p, e.healthy);
  getNumber(d, j, "weight", p, e.weight, 0);
  getTime(d, j, "heartbeatTime", p, e.heartbeatTime);
  if (d.ok() && !field(j, "heartbeatTime")) d.fail(p + ".heartbeatTime", "Required value");
}

}  // namespace

// ---------------------------------------------------------------------------------

void DeploymentRoutes::normalize() {
  for (auto& e : entries) {
    e.deployment = deployment;
    e.model = model;
    e.deploymentType = deploymentType;
  }
  std::stable_sort(entries.begin(), entries.end(), [](const RoutingEntry& a, const RoutingEntry& b) {
    return std::tie(a.cluster, a.pool) < std::tie(b.cluster, b.pool);
  });
  std::stable_sort(reservations.begin(), reservations.end(),
                   [](const ReservationInfo& a, const ReservationInfo& b) { return a.reservation < b.reservation; });
}

json DeploymentRoutes::toJson() const {
  json j = json::object();
  j["deployment"] = encodeKey(deployment);
  j["model"] = model;
  j["deploymentType"] = std::string(api::toString(deploymentType));
  if (!region.empty()) j["region"] = region;
  if (!dataZone.empty()) j["dataZone"] = dataZone;
  if (spillover) j["spillover"] = {{"deploymentRef", {{"name", *spillover}}}};
  j["tokenWeights"] = {{"input", inputTokenWeight}, {"output", outputTokenWeight}};
  json res = json::array();
  for (const auto& r : reservations) {
    json rj = json::object();
    rj["name"] = r.reservation.name;
    if (!r.reservation.namespace_.empty() && r.reservation.namespace_ != deployment.namespace_)
      rj["namespace"] = r.reservation.namespace_;
    rj["tokensPerMinute"] = r.tokensPerMinute;
    rj["burstPercent"] = r.burstPercent;
    rj["scope"] = encodeScope(r.scope);
    res.push_back(std::move(rj));
  }
  j["reservations"] = std::move(res);
  if (rateLimit)
    j["rateLimit"] = {{"tokensPerMinute", rateLimit->tokensPerMinute},
                      {"requestsPerMinute", rateLimit->requestsPerMinute}};
  if (cache) {
    json c = {{"mode", std::string(api::toString(cache->mode))},
              {"similarityThreshold", cache->similarityThreshold},
              {"ttlSeconds", cache->ttlSeconds},
              {"maxEntries", cache->maxEntries}};
    json vb = json::array();
    for (const auto& v : cache->varyBy) {
      if (!v.header.empty()) vb.push_back({{"header", v.header}});
      else vb.push_back({{"field", v.field}});
    }
    c["varyBy"] = std::move(vb);
    if (!cache->embeddingsDeployment.empty()) c["embeddingsDeploymentRef"] = {{"name", cache->embeddingsDeployment}};
    if (!cache->modelVersion.empty()) c["modelVersion"] = cache->modelVersion;
    j["cache"] = std::move(c);
  }
  json ents = json::array();
  for (const auto& e : entries) ents.push_back(encodeEntry(e));
  j["entries"] = std::move(ents);
  return j;
}

std::expected<DeploymentRoutes, std::string> DeploymentRoutes::fromJson(const json& j) {
  Dec d;
  DeploymentRoutes r;
  const std::string p = "spec";
  if (!isObject(d, j, p)) return std::unexpected(d.err);
  decodeKey(d, j, "deployment", p, r.deployment);
  getString(d, j, "model", p, r.model, true);
  std::string type = "Standard";
  getString(d, j, "deploymentType", p, type, false);
  if (d.ok()) {
    auto t = api::parseDeploymentType(type);
    if (!t) d.fail(p + ".deploymentType", "unsupported value \"" + type + "\"");
    else r.deploymentType = *t;
  }
  getString(d, j, "region", p, r.region, false);
  getString(d, j, "dataZone", p, r.dataZone, false);
  if (d.ok() && r.deploymentType == api::DeploymentType::Standard && r.region.empty())
    d.fail(p + ".region", "Required value: region is required when deploymentType is Standard");
  if (d.ok() && r.deploymentType == api::DeploymentType::DataZone && r.dataZone.empty())
    d.fail(p + ".dataZone", "Required value: dataZone is required when deploymentType is DataZone");
  if (const json* s = field(j, "spillover"); s && d.ok()) {
    if (isObject(d, *s, p + ".spillover")) {
      const json* ref = field(*s, "deploymentRef");
      if (!ref) {
        d.fail(p + ".spillover.deploymentRef", "Required value");
      } else if (isObject(d, *ref, p + ".spillover.deploymentRef")) {
        std::string name;
        getString(d, *ref, "name", p + ".spillover.deploymentRef", name, true);
        if (d.ok()) r.spillover = name;
      }
    }
  }
  if (const json* w = field(j, "tokenWeights"); w && d.ok()) {
    if (isObject(d, *w, p + ".tokenWeights")) {
      getNumber(d, *w, "input", p + ".tokenWeights", r.inputTokenWeight, 0);
      getNumber(d, *w, "output", p + ".tokenWeights", r.outputTokenWeight, 0);
    }
  }
  if (const json* rs = field(j, "reservations"); rs && d.ok()) {
    if (!rs->is_array()) {
      d.fail(p + ".reservations", "expected array, got " + kindOf(*rs));
    } else {
      for (size_t i = 0; i < rs->size() && d.ok(); ++i) {
        std::string rp = p + ".reservations[" + std::to_string(i) + "]";
        const json& rj = (*rs)[i];
        if (!isObject(d, rj, rp)) break;
        ReservationInfo info;
        getString(d, rj, "name", rp, info.reservation.name, true);
        info.reservation.namespace_ = r.deployment.namespace_;
        getString(d, rj, "namespace", rp, info.reservation.namespace_, false);
        getInt(d, rj, "tokensPerMinute", rp, info.tokensPerMinute, true);
        getInt(d, rj, "burstPercent", rp, info.burstPercent);
        decodeScope(d, rj, rp, info.scope);
        r.reservations.push_back(std::move(info));
      }
    }
  }
  if (const json* rl = field(j, "rateLimit"); rl && d.ok()) {
    if (isObject(d, *rl, p + ".rateLimit")) {
      RateLimitInfo info;
      getInt(d, *rl, "tokensPerMinute", p + ".rateLimit", info.tokensPerMinute, true);
      getInt(d, *rl, "requestsPerMinute", p + ".rateLimit", info.requestsPerMinute, true);
      if (d.ok()) r.rateLimit = info;
    }
  }
  if (const json* c = field(j, "cache"); c && d.ok()) {
    const std::string cp = p + ".cache";
    if (isObject(d, *c, cp)) {
      CacheInfo info;
      std::string mode;
      getString(d, *c, "mode", cp, mode, true);
      if (d.ok()) {
        auto m = api::parseCacheMode(mode);
        if (!m) d.fail(cp + ".mode", "unsupported value \"" + mode + "\"");
        else info.mode = *m;
      }
      getNumber(d, *c, "similarityThreshold", cp, info.similarityThreshold, 0);
      int64_t ttl = info.ttlSeconds;
      getInt(d, *c, "ttlSeconds", cp, ttl);
      if (d.ok() && (ttl < 1 || ttl > INT32_MAX)) d.fail(cp + ".ttlSeconds", "must be at least 1");
      info.ttlSeconds = static_cast<int32_t>(ttl);
      getInt(d, *c, "maxEntries", cp, info.maxEntries);
      if (d.ok() && info.maxEntries < 1) d.fail(cp + ".maxEntries", "must be at least 1");
      if (const json* vb = field(*c, "varyBy"); vb && d.ok()) {
        if (!vb->is_array()) {
          d.fail(cp + ".varyBy", "expected array, got " + kindOf(*vb));
        } else {
          for (size_t i = 0; i < vb->size() && d.ok(); ++i) {
            const std::string vp = cp + ".varyBy[" + std::to_string(i) + "]";
            if (!isObject(d, (*vb)[i], vp)) break;
            CacheVaryInfo v;
            getString(d, (*vb)[i], "header", vp, v.header, false);
            getString(d, (*vb)[i], "field", vp, v.field, false);
            if (d.ok() && v.header.empty() == v.field.empty()) d.fail(vp, "set exactly one of header and field");
            for (auto& ch : v.header) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
            info.varyBy.push_back(std::move(v));
          }
        }
      }
      if (const json* ref = field(*c, "embeddingsDeploymentRef"); ref && d.ok())
        if (isObject(d, *ref, cp + ".embeddingsDeploymentRef"))
          getString(d, *ref, "name", cp + ".embeddingsDeploymentRef", info.embeddingsDeployment, true);
      getString(d, *c, "modelVersion", cp, info.modelVersion, false);
      if (d.ok() && info.mode == api::CacheMode::Semantic && info.embeddingsDeployment.empty())
        d.fail(cp + ".embeddingsDeploymentRef", "Required value: required when mode is Semantic");
      if (d.ok()) r.cache = std::move(info);
    }
  }
  if (const json* es = field(j, "entries"); es && d.ok()) {
    if (!es->is_array()) {
      d.fail(p + ".entries", "expected array, got " + kindOf(*es));
    } else {
      for (size_t i = 0; i < es->size() && d.ok(); ++i) {
        RoutingEntry e;
        decodeEntry(d, (*es)[i], p + ".entries[" + std::to_string(i) + "]", e);
        r.entries.push_back(std::move(e));
      }
    }
  }
  if (!d.ok()) return std::unexpected(d.err);
  r.normalize();
  return r;
}

json DeploymentRoutes::toResource() const {
  json meta = {{"name", resourceName(deployment)}};
  meta["labels"] = {{"app.kubernetes.io/managed-by", "waterline"}};
  // Label values are at most 63 characters (a longer deployment name is left out).
  if (deployment.name.size() <= 63) meta["labels"]["waterline.dev/deployment"] = deployment.name;
  if (!deployment.namespace_.empty()) meta["labels"]["waterline.dev/deployment-namespace"] = deployment.namespace_;
  return {{"apiVersion", "waterline.dev/v1alpha1"},
          {"kind", std::string(kRoutingTableKind)},
          {"metadata", std::move(meta)},
          {"spec", toJson()}};
}

std::expected<DeploymentRoutes, std::string> DeploymentRoutes::fromResource(const json& obj) {
  if (!obj.is_object()) return std::unexpected("expected a RoutingTable object, got " + kindOf(obj));
  if (auto k = obj.find("kind"); k != obj.end() && (!k->is_string() || k->get<std::string>() != kRoutingTableKind))
    return std::unexpected("kind: expected \"RoutingTable\"");
  auto s = obj.find("spec");
  if (s == obj.end()) return std::unexpected("spec: Required value");
  return fromJson(*s);
}

// ---------------------------------------------------------------------------------

void RoutingTable::normalize() {
  for (auto& d : deployments) d.normalize();
  std::stable_sort(deployments.begin(), deployments.end(),
                   [](const DeploymentRoutes& a, const DeploymentRoutes& b) { return a.deployment < b.deployment; });
}

const DeploymentRoutes* RoutingTable::find(const DeploymentKey& key) const {
  auto it = std::lower_bound(deployments.begin(), deployments.end(), key,
                             [](const DeploymentRoutes& d, const DeploymentKey& k) { return d.deployment < k; });
  if (it != deployments.end() && it->deployment == key) return &*it;
  return nullptr;
}

json RoutingTable::toJson() const {
  json items = json::array();
  for (const auto& d : deployments) items.push_back(d.toResource());
  json j = {{"apiVersion", "waterline.dev/v1alpha1"}, {"kind", std::string(kRoutingTableListKind)}};
  if (generatedAt) j["generatedAt"] = formatMicroTime(*generatedAt);
  j["items"] = std::move(items);
  return j;
}

std::expected<RoutingTable, std::string> RoutingTable::fromJson(const json& j) {
  RoutingTable t;
  const json* items = nullptr;
  if (j.is_array()) {
    items = &j;
  } else if (j.is_object()) {
    if (auto it = j.find("items"); it != j.end()) {
      if (!it->is_array()) return std::unexpected("items: expected array, got " + kindOf(*it));
      items = &*it;
      if (auto g = j.find("generatedAt"); g != j.end() && g->is_string()) {
        auto ts = api::parseTime(g->get<std::string>());
        if (!ts) return std::unexpected("generatedAt: " + ts.error());
        t.generatedAt = *ts;
      }
    } else {
      auto one = DeploymentRoutes::fromResource(j);
      if (!one) return std::unexpected(one.error());
      t.deployments.push_back(std::move(*one));
      t.normalize();
      return t;
    }
  } else {
    return std::unexpected("expected a RoutingTableList object, got " + kindOf(j));
  }
  for (size_t i = 0; i < items->size(); ++i) {
    auto one = DeploymentRoutes::fromResource((*items)[i]);
    if (!one) return std::unexpected("items[" + std::to_string(i) + "]." + one.error());
    t.deployments.push_back(std::move(*one));
  }
  t.normalize();
  for (size_t i = 1; i < t.deployments.size(); ++i)
    if (t.deployments[i].deployment == t.deployments[i - 1].deployment)
      return std::unexpected("items: duplicate deployment " + t.deployments[i].deployment.str());
  return t;
}

std::expected<RoutingTable, std::string> RoutingTable::parse(std::string_view text) {
  json j = json::parse(text.begin(), text.end(), nullptr, false);
  if (j.is_discarded()) return std::unexpected("invalid JSON");
  return fromJson(j);
}

std::string RoutingTable::etag() const {
  json items = json::array();
  for (const auto& d : deployments) items.push_back(d.toResource());
  return "\"" + hex16(fnv1a64(items.dump())) + "\"";
}

}  // namespace waterline::routing
