#include "waterline/routing/planner.h"

#include <algorithm>

#include "waterline/api/conditions.h"
#include "waterline/api/keys.h"
#include "waterline/api/meta.h"

namespace waterline::routing {

using json = nlohmann::json;

WorkerPod workerPodFromJson(const json& pod) {
  WorkerPod p;
  if (!pod.is_object()) return p;
  auto str = [](const json& obj, const char* key) -> std::string {
    auto it = obj.find(key);
    return it != obj.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  if (auto m = pod.find("metadata"); m != pod.end() && m->is_object()) {
    p.name = str(*m, "name");
    if (auto dt = m->find("deletionTimestamp"); dt != m->end() && dt->is_string()) p.terminating = true;
    if (auto l = m->find("labels"); l != m->end() && l->is_object()) p.pool = str(*l, std::string(api::labels::kPool).c_str());
    if (auto a = m->find("annotations"); a != m->end() && a->is_object()) {
      auto it = a->find(std::string(api::annotations::kDrainingSince));
      if (it != a->end() && it->is_string()) {
        auto t = api::parseTime(it->get<std::string>());
        p.drainingSince = t ? *t : SystemTime{};
      }
    }
  }
  if (auto s = pod.find("status"); s != pod.end() && s->is_object()) {
    p.ip = str(*s, "podIP");
    if (auto cs = s->find("conditions"); cs != s->end() && cs->is_array()) {
      for (const auto& c : *cs) {
        if (c.is_object() && str(c, "type") == "Ready") p.ready = str(c, "status") == "True";
      }
    }
  }
  return p;
}

int32_t servingPort(const api::ModelDeployment& d) {
  const auto ports = d.spec.workerPorts();
  if (!ports.empty() && ports.front().containerPort > 0) return ports.front().containerPort;
  return kDefaultServingPort;
}

namespace {
std::string endpointOf(const std::string& ip, int32_t port) {
  if (ip.find(':') != std::string::npos) return "[" + ip + "]:" + std::to_string(port);
  return ip + ":" + std::to_string(port);
}
}  // namespace

DeploymentRoutes planRoutes(const RoutingSnapshot& s) {
  DeploymentRoutes r;
  if (!s.deployment) return r;
  const auto& d = *s.deployment;
  r.deployment = {d.metadata.namespace_, d.metadata.name};
  r.model = d.spec.model.name;
  r.deploymentType = d.spec.deploymentType;
  if (d.spec.deploymentType == api::DeploymentType::Standard && d.spec.region) r.region = *d.spec.region;
  if (d.spec.deploymentType == api::DeploymentType::DataZone && d.spec.dataZone) r.dataZone = *d.spec.dataZone;
  if (d.spec.spillover && !d.spec.spillover->deploymentRef.name.empty())
    r.spillover = d.spec.spillover->deploymentRef.name;
  const double perReplica = d.spec.throughput ? static_cast<double>(d.spec.throughput->tokensPerMinutePerReplica) : 0;
  if (d.spec.throughput) {
    r.inputTokenWeight = d.spec.throughput->inputTokenWeight;
    r.outputTokenWeight = d.spec.throughput->outputTokenWeight;
  }
  if (d.spec.rateLimit)
    r.rateLimit = RateLimitInfo{d.spec.rateLimit->tokensPerMinute, d.spec.rateLimit->effectiveRequestsPerMinute()};
  if (d.spec.cache) {
    const api::CacheSpec& c = *d.spec.cache;
    CacheInfo info;
    info.mode = c.mode;
    info.similarityThreshold = c.effectiveSimilarityThreshold();
    info.ttlSeconds = c.effectiveTtlSeconds();
    info.maxEntries = c.effectiveMaxEntries();
    for (const auto& v : c.varyBy) {
      CacheVaryInfo vi;
      if (v.header) {
        vi.header = *v.header;
        for (auto& ch : vi.header) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      } else if (v.field) {
        vi.field = *v.field;
      }
      info.varyBy.push_back(std::move(vi));
    }
    if (c.embeddingsDeploymentRef) info.embeddingsDeployment = c.embeddingsDeploymentRef->name;
    info.modelVersion = d.spec.model.version;
    r.cache = std::move(info);
  }
  const int32_t port = servingPort(d);

  std::map<std::string, const api::CapacityPool*> pools;
  for (const auto* p : s.pools)
    if (p) pools[p->metadata.name] = p;

  std::map<std::string, RoutingEntry> byPool;
  for (const auto& pod : s.pods) {
    if (pod.pool.empty()) continue;
    auto& e = byPool[pod.pool];
    e.pool = pod.pool;
    if (pod.ip.empty()) continue;
    const bool draining = pod.drainingSince.has_value() || pod.terminating;
    if (draining) e.drainingEndpoints.push_back(endpointOf(pod.ip, port));
    else if (pod.ready) e.endpoints.push_back(endpointOf(pod.ip, port));
  }
  for (auto& [name, e] : byPool) {
    std::sort(e.endpoints.begin(), e.endpoints.end());
    std::sort(e.drainingEndpoints.begin(), e.drainingEndpoints.end());
    e.cluster = s.cluster;
    e.heartbeatTime = s.now;
    auto pit = pools.find(name);
    const api::CapacityPool* pool = pit == pools.end() ? nullptr : pit->second;
    if (pool) {
      e.region = pool->spec.region;
      e.dataZone = pool->spec.dataZone;
      e.maxUtilization = pool->spec.routing.maxUtilization;
    }
    const double ready = static_cast<double>(e.endpoints.size());
    e.capacityTokensPerMinute = ready * perReplica;
    auto lit = s.loadTokensPerMinute.find(name);
    e.loadTokensPerMinute = lit == s.loadTokensPerMinute.end() ? 0 : std::max(0.0, lit->second);
    if (e.endpoints.empty()) e.utilization = 1;
    else if (e.capacityTokensPerMinute > 0) e.utilization = e.loadTokensPerMinute / e.capacityTokensPerMinute;
    else e.utilization = 0;
    const bool poolUsable = pool && !api::isFalse(pool->status.conditions, api::conditions::kReady);
    e.healthy = !e.endpoints.empty() && poolUsable;
    e.weight = ready;
    r.entries.push_back(std::move(e));
  }

  for (const auto* res : s.reservations) {
    if (!res) continue;
    if (res->spec.deploymentRef.name != d.metadata.name) continue;
    if (res->metadata.namespace_ != d.metadata.namespace_) continue;
    if (!res->spec.activeAt(s.now)) continue;
    if (res->status.phase && *res->status.phase == api::ReservationPhase::Expired) continue;
    if (res->metadata.deletionTimestamp) continue;
    ReservationInfo info;
    info.reservation = {res->metadata.namespace_, res->metadata.name};
    info.tokensPerMinute = res->spec.tokensPerMinute();
    info.burstPercent = res->spec.burstPercent;
    info.scope = res->spec.scope;
    r.reservations.push_back(std::move(info));
  }
  r.normalize();
  return r;
}

}  // namespace waterline::routing
