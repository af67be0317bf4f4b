#include "waterline/api/model_deployment.h"

#include <algorithm>
#include <array>

#include "codec.h"
#include "validation.h"
#include "waterline/api/gpu.h"
#include "waterline/api/keys.h"
#include "waterline/api/selector.h"

namespace waterline::api {

namespace detail {
template <>
struct EnumNames<DeploymentType> {
  static constexpr std::array<std::string_view, 3> names{"Standard", "DataZone", "Global"};
};
template <>
struct EnumNames<Protocol> {
  static constexpr std::array<std::string_view, 3> names{"TCP", "UDP", "SCTP"};
};
template <>
struct EnumNames<ScalingPolicyType> {
  static constexpr std::array<std::string_view, 2> names{"Pods", "Percent"};
};
template <>
struct EnumNames<SelectPolicy> {
  static constexpr std::array<std::string_view, 3> names{"Max", "Min", "Disabled"};
};
template <>
struct EnumNames<CacheMode> {
  static constexpr std::array<std::string_view, 2> names{"Exact", "Semantic"};
};

bool read(Decoder& d, const json& v, const std::string& path, ModelRef& out) {
  if (!expectObject(d, v, path)) return false;
  req(d, v, path, "name", out.name);
  req(d, v, path, "version", out.version);
  return d.ok();
}

bool read(Decoder& d, const json& v, const std::string& path, EnvVar& out) {
  if (!expectObject(d, v, path)) return false;
  req(d, v, path, "name", out.name);
  opt(d, v, path, "value", out.value);
  return d.ok();
}

bool read(Decoder& d, const json& v, const std::string& path, ContainerPort& out) {
  if (!expectObject(d, v, path)) return false;
  opt(d, v, path, "name", out.name);
  req(d, v, path, "containerPort", out.containerPort);
  opt(d, v, path, "protocol", out.protocol);
  return d.ok();
}

bool read(Decoder& d, const json& v, const std::string& path, ResourceList& out) {
  if (!expectObject(d, v, path)) return false;
  opt(d, v, path, "cpu", out.cpu);
  opt(d, v, path, "memory", out.memory);
  return d.ok();
}

bool read(Decoder& d, const json& v, const std::string& path, ResourceRequirements& out) {
  if (!expectObject(d, v, path)) return false;
  opt(d, v, path, "requests", out.requests);
  opt(d, v, path, "limits", out.limits);
  return d.ok();
}

bool read(Decoder& d, const json& v, const std::string& path, WorkerPodSpec& out) {
  if (!expectObject(d, v, path)) return false;
  req(d, v, path, "image", out.image);
  opt(d, v, path, "imagePullPolicy", out.imagePullPolicy);
  opt(d, v, path, "command", out.command);
  opt(d, v, path, "args", out.args);
  opt(d, v, path, "env", out.env);
  opt(d, v, path, "ports", out.ports);
  opt(d, v, path, "resources", out.resources);
  opt(d, v, path, "serviceAccountName", out.serviceAccountName);
  return d.ok();
}

// spec.template is kept as given; only the parts the operator reads are type-checked
// here (the CRD checks the rest), so that a malformed stored object fails to decode with
// the field named rather than later, in the middle of a reconcile.
bool read(Decoder& d, const json& v, const std::string& path, WorkerTemplate& out) {
  if (!expectObject(d, v, path)) return false;
  if (const json* m = member(d, v, path, "metadata")) {
    const std::string mp = join(path, "metadata");
    if (!expectObject(d, *m, mp)) return false;
    std::map<std::string, std::string> kv;
    opt(d, *m, mp, "labels", kv);
    opt(d, *m, mp, "annotations", kv);
  }
  const json* s = member(d, v, path, "spec");
  const std::string sp = join(path, "spec");
  if (!s) return d.fail(sp, "Required value"), false;
  if (!expectObject(d, *s, sp)) return false;
  std::string str;
  if (!s->contains("containers")) {
    // The shorthand: typed as the original flat shape was (image required).
    WorkerPodSpec w;
    if (!read(d, *s, sp, w)) return false;
  } else if (const json* cs = member(d, *s, sp, "containers")) {
    const std::string cp = join(sp, "containers");
    if (!cs->is_array()) return typeError(d, cp, "array", *cs), false;
    for (size_t i = 0; i < cs->size(); ++i) {
      const std::string ip = indexed(cp, i);
      if (!expectObject(d, (*cs)[i], ip)) return false;
      opt(d, (*cs)[i], ip, "name", str);
      opt(d, (*cs)[i], ip, "image", str);
      std::vector<ContainerPort> ports;
      opt(d, (*cs)[i], ip, "ports", ports);
    }
  }
  if (!d.ok()) return false;
  out.raw = v;
  return true;
}

bool read(Decoder& d, const json& v, const std::string& path, GpuRequest& out) {
  if (!expectObject(d, v, path)) return false;
  opt(d, v, path, "count", out.count);
  opt(d, v, path, "migProfile", out.migProfile);
  opt(d, v, path, "sharesPerGpu", out.sharesPerGpu);
  opt(d, v, path, "memory", out.memory);
  opt(d, v, path, "product", out.product);
  return d.ok();
}

bool read(Decoder& d, const json& v, const std::string& path, ScalingPolicy& out) {
  if (!expectObject(d, v, path)) return false;
  req(d, v, path, "type", out.type);
  req(d, v, path, "value", out.value);
  req(d, v, path, "periodSeconds", out.periodSeconds);
  return d.ok();
}

bool read(Decoder& d, const json& v, const std::string& path, ScalingRules& out) {
  if (!expectObject(d, v, path)) return false;
  opt(d, v, path, "stabilizationWindowSeconds", out.stabilizationWindowSeconds);
  opt(d, v, path, "selectPolicy", out.selectPolicy);
  opt(d, v, path, "policies", out.policies);
  return d.ok();
}

bool read(Decoder& d, const json& v, const std::string& path, AutoscalingSpec& out) {
  if (!expectObject(d, v, path)) return false;
  opt(d, v, path, "enabled", out.enabled);
  opt(d, v, path, "query", out.query);
  opt(d, v, path, "targetPerReplica", out.targetPerReplica);
  opt(d, v, path, "tolerance", out.tolerance);
  opt(d, v, path, "scaleUp", out.scaleUp);
  opt(d, v, path, "scaleDown", out.scaleDown);
  return d.ok();
}

bool read(Decoder& d, const json& v, const std::string& path, HealthCheckSpec& out) {
  if (!expectObject(d, v, path)) return false;
  opt(d, v, path, "path", out.path);
  opt(d, v, path, "port", out.port);
  opt(d, v, path, "periodSeconds", out.periodSeconds);
  opt(d, v, path, "timeoutSeconds", out.timeoutSeconds);
  opt(d, v, path, "failureThreshold", out.failureThreshold);
  opt(d, v, path, "successThreshold", out.successThreshold);
  return d.ok();
}

bool read(Decoder& d, const json& v, const std::string& path, ThroughputSpec& out) {
  if (!expectObject(d, v, path)) return false;
  req(d, v, path, "tokensPerMinutePerReplica", out.tokensPerMinutePerReplica);
  opt(d, v, path, "inputTokenWeight", out.inputTokenWeight);
  opt(d, v, path, "outputTokenWeight", out.outputTokenWeight);
  return d.ok();
}

bool read(Decoder& d, const json& v, const std::string& path, SpilloverSpec& out) {
  if (!expectObject(d, v, path)) return false;
  req(d, v, path, "deploymentRef", out.deploymentRef);
  return d.ok();
}

bool read(Decoder& d, const json& v, const std::string& path, RateLimitSpec& out) {
  if (!expectObject(d, v, path)) return false;
  req(d, v, path, "tokensPerMinute", out.tokensPerMinute);
  opt(d, v, path, "requestsPerMinute", out.requestsPerMinute);
  return d.ok();
}

bool read(Decoder& d, const json& v, const std::string& path, CacheVaryBy& out) {
  if (!expectObject(d, v, path)) return false;
  opt(d, v, path, "header", out.header);
  opt(d, v, path, "field", out.field);
  return d.ok();
}

bool read(Decoder& d, const json& v, const std::string& path, CacheSpec& out) {
  if (!expectObject(d, v, path)) return false;
  req(d, v, path, "mode", out.mode);
  opt(d, v, path, "similarityThreshold", out.similarityThreshold);
  opt(d, v, path, "ttlSeconds", out.ttlSeconds);
  opt(d, v, path, "maxEntries", out.maxEntries);
  opt(d, v, path, "varyBy", out.varyBy);
  opt(d, v, path, "embeddingsDeploymentRef", out.embeddingsDeploymentRef);
  return d.ok();
}

bool read(Decoder& d, const json& v, const std::string& path, ModelDeploymentSpec& out) {
  if (!expectObject(d, v, path)) return false;
  req(d, v, path, "model", out.model);
  req(d, v, path, "template", out.template_);
  opt(d, v, path, "workerContainer", out.workerContainer);
  opt(d, v, path, "startupTimeoutSeconds", out.startupTimeoutSeconds);
  opt(d, v, path, "deploymentType", out.deploymentType);
  opt(d, v, path, "region", out.region);
  opt(d, v, path, "dataZone", out.dataZone);
  req(d, v, path, "gpu", out.gpu);
  opt(d, v, path, "replicas", out.replicas);
  opt(d, v, path, "minReplicas", out.minReplicas);
  opt(d, v, path, "maxReplicas", out.maxReplicas);
  opt(d, v, path, "maxUnavailable", out.maxUnavailable);
  opt(d, v, path, "drainSeconds", out.drainSeconds);
  opt(d, v, path, "priority", out.priority);
  opt(d, v, path, "autoscaling", out.autoscaling);
  opt(d, v, path, "healthCheck", out.healthCheck);
  opt(d, v, path, "throughput", out.throughput);
  opt(d, v, path, "spillover", out.spillover);
  opt(d, v, path, "rateLimit", out.rateLimit);
  opt(d, v, path, "cache", out.cache);
  return d.ok();
}

bool read(Decoder& d, const json& v, const std::string& path, DeploymentPlacement& out) {
  if (!expectObject(d, v, path)) return false;
  req(d, v, path, "pool", out.pool);
  opt(d, v, path, "replicas", out.replicas);
  opt(d, v, path, "readyReplicas", out.readyReplicas);
  return d.ok();
}

bool read(Decoder& d, const json& v, const std::string& path, AutoscalingStatus& out) {
  if (!expectObject(d, v, path)) return false;
  opt(d, v, path, "currentValue", out.currentValue);
  opt(d, v, path, "lastScaleTime", out.lastScaleTime);
  return d.ok();
}

bool read(Decoder& d, const json& v, const std::string& path, ModelDeploymentStatus& out) {
  if (!expectObject(d, v, path)) return false;
  opt(d, v, path, "observedGeneration", out.observedGeneration);
  opt(d, v, path, "replicas", out.replicas);
  opt(d, v, path, "desiredReplicas", out.desiredReplicas);
  opt(d, v, path, "scheduledReplicas", out.scheduledReplicas);
  opt(d, v, path, "readyReplicas", out.readyReplicas);
  opt(d, v, path, "updatedReplicas", out.updatedReplicas);
  opt(d, v, path, "selector", out.selector);
  opt(d, v, path, "placements", out.placements);
  opt(d, v, path, "insufficientCapacity", out.insufficientCapacity);
  opt(d, v, path, "autoscaling", out.autoscaling);
  opt(d, v, path, "conditions", out.conditions);
  return d.ok();
}
}  // namespace detail

std::string_view toString(DeploymentType t) { return detail::enumName(t); }
std::optional<DeploymentType> parseDeploymentType(std::string_view s) { return detail::enumParse<DeploymentType>(s); }
std::string_view toString(Protocol p) { return detail::enumName(p); }
std::optional<Protocol> parseProtocol(std::string_view s) { return detail::enumParse<Protocol>(s); }
std::string_view toString(ScalingPolicyType t) { return detail::enumName(t); }
std::optional<ScalingPolicyType> parseScalingPolicyType(std::string_view s) {
  return detail::enumParse<ScalingPolicyType>(s);
}
std::string_view toString(SelectPolicy p) { return detail::enumName(p); }
std::optional<SelectPolicy> parseSelectPolicy(std::string_view s) { return detail::enumParse<SelectPolicy>(s); }
std::string_view toString(CacheMode m) { return detail::enumName(m); }
std::optional<CacheMode> parseCacheMode(std::string_view s) { return detail::enumParse<CacheMode>(s); }

GpuRequestKind GpuRequest::kind() const {
  if (migProfile) return GpuRequestKind::MigProfile;
  if (sharesPerGpu) return GpuRequestKind::Shares;
  return GpuRequestKind::Count;
}

double GpuRequest::gpuFraction() const {
  switch (kind()) {
    case GpuRequestKind::Count:
      return count ? *count : 0;
    case GpuRequestKind::Shares:
      return *sharesPerGpu > 0 ? 1.0 / *sharesPerGpu : 0;
    case GpuRequestKind::MigProfile: {
      auto p = MigProfile::parse(*migProfile);
      return p ? p->computeSlices / 7.0 : 0;
    }
  }
  return 0;
}

std::string AutoscalingSpec::renderQuery(std::string_view deployment, std::string_view ns,
                                         std::string_view pool) const {
  std::string out;
  out.reserve(query.size());
  for (size_t i = 0; i < query.size();) {
    auto tryReplace = [&](std::string_view placeholder, std::string_view value) {
      if (query.compare(i, placeholder.size(), placeholder) != 0) return false;
      out += value;
      i += placeholder.size();
      return true;
    };
    if (tryReplace("{{deployment}}", deployment) || tryReplace("{{namespace}}", ns) || tryReplace("{{pool}}", pool))
      continue;
    out += query[i++];
  }
  return out;
}

namespace {
// The shorthand's flat container fields (resources too: in the shorthand they are the
// worker container's).
constexpr std::array<std::string_view, 7> kShorthandFields{"image", "imagePullPolicy", "command", "args",
                                                           "env",   "ports",           "resources"};

std::map<std::string, std::string> stringMap(const nlohmann::json& raw, const char* key) {
  std::map<std::string, std::string> out;
  auto m = raw.find("metadata");
  if (m == raw.end() || !m->is_object()) return out;
  auto kv = m->find(key);
  if (kv == m->end() || !kv->is_object()) return out;
  for (auto it = kv->begin(); it != kv->end(); ++it)
    if (it.value().is_string()) out.emplace(it.key(), it.value().get<std::string>());
  return out;
}
}  // namespace

std::map<std::string, std::string> WorkerTemplate::labels() const { return stringMap(raw, "labels"); }
std::map<std::string, std::string> WorkerTemplate::annotations() const { return stringMap(raw, "annotations"); }

bool WorkerTemplate::shorthand() const {
  auto s = raw.find("spec");
  return s != raw.end() && s->is_object() && s->contains("image") && !s->contains("containers");
}

nlohmann::json WorkerTemplate::podSpec() const {
  auto s = raw.find("spec");
  nlohmann::json spec = s != raw.end() && s->is_object() ? *s : nlohmann::json::object();
  if (!shorthand()) return spec;
  nlohmann::json c = {{"name", std::string(kShorthandContainerName)}};
  for (auto f : kShorthandFields) {
    const std::string k(f);
    if (spec.contains(k)) {
      c[k] = spec[k];
      spec.erase(k);
    }
  }
  spec["containers"] = nlohmann::json::array({std::move(c)});
  return spec;
}

std::string ModelDeploymentSpec::workerContainerName() const {
  if (workerContainer) return *workerContainer;
  const auto spec = template_.podSpec();
  auto cs = spec.find("containers");
  if (cs == spec.end() || !cs->is_array() || cs->empty() || !(*cs)[0].is_object()) return "";
  return (*cs)[0].value("name", "");
}

int ModelDeploymentSpec::workerContainerIndex(const nlohmann::json& podSpec) const {
  auto cs = podSpec.find("containers");
  if (cs == podSpec.end() || !cs->is_array() || cs->empty()) return -1;
  if (!workerContainer) return 0;
  for (size_t i = 0; i < cs->size(); ++i)
    if ((*cs)[i].is_object() && (*cs)[i].value("name", "") == *workerContainer) return int(i);
  return -1;
}

nlohmann::json ModelDeploymentSpec::workerContainerJson() const {
  const auto spec = template_.podSpec();
  const int i = workerContainerIndex(spec);
  if (i < 0 || !spec["containers"][size_t(i)].is_object()) return nlohmann::json::object();
  return spec["containers"][size_t(i)];
}

namespace {
// The worker container within the raw template (no copy: healthPort() runs per probe), or
// with the shorthand the template's spec, whose image and ports are the container's;
// nullptr when there is none.
const nlohmann::json* workerContainerIn(const ModelDeploymentSpec& s) {
  const auto& raw = s.template_.raw;
  auto sp = raw.find("spec");
  if (sp == raw.end() || !sp->is_object()) return nullptr;
  if (s.template_.shorthand()) return &*sp;
  auto cs = sp->find("containers");
  if (cs == sp->end() || !cs->is_array() || cs->empty()) return nullptr;
  for (const auto& c : *cs)
    if (c.is_object() && (!s.workerContainer || c.value("name", "") == *s.workerContainer)) return &c;
  return nullptr;
}
}  // namespace

std::string ModelDeploymentSpec::workerImage() const {
  const auto* c = workerContainerIn(*this);
  if (!c) return "";
  auto it = c->find("image");
  return it != c->end() && it->is_string() ? it->get<std::string>() : "";
}

std::vector<ContainerPort> ModelDeploymentSpec::workerPorts() const {
  std::vector<ContainerPort> out;
  const auto* c = workerContainerIn(*this);
  if (!c) return out;
  auto it = c->find("ports");
  if (it == c->end() || !it->is_array()) return out;
  for (const auto& p : *it) {
    if (!p.is_object() || !p.contains("containerPort") || !p["containerPort"].is_number_integer()) continue;
    ContainerPort cp;
    cp.containerPort = p["containerPort"].get<int32_t>();
    if (auto n = p.find("name"); n != p.end() && n->is_string()) cp.name = n->get<std::string>();
    if (auto pr = p.find("protocol"); pr != p.end() && pr->is_string())
      cp.protocol = parseProtocol(pr->get<std::string>()).value_or(Protocol::TCP);
    out.push_back(std::move(cp));
  }
  return out;
}

int32_t ModelDeploymentSpec::healthPort() const {
  if (healthCheck.port) return *healthCheck.port;
  auto ports = workerPorts();
  if (!ports.empty()) return ports.front().containerPort;
  return 0;
}

Labels ModelDeployment::workerSelectorLabels() const {
  return Labels{{std::string(labels::kDeployment), metadata.name},
                {std::string(labels::kManagedBy), std::string(labels::kManagedByValue)}};
}

namespace {
using detail::json;

json toJ(const ResourceList& r) {
  json o = json::object();
  detail::putOpt(o, "cpu", r.cpu);
  detail::putOpt(o, "memory", r.memory);
  return o;
}

// The encoding of the template before it became a PodTemplateSpec (legacyTemplateJson).
json legacyToJ(const std::map<std::string, std::string>& labels, const std::map<std::string, std::string>& annotations,
               const WorkerPodSpec& s) {
  using namespace detail;
  json meta = json::object();
  putNonEmpty(meta, "labels", labels);
  putNonEmpty(meta, "annotations", annotations);
  json spec = json::object();
  put(spec, "image", s.image);
  putNonEmpty(spec, "imagePullPolicy", s.imagePullPolicy);
  putNonEmpty(spec, "command", s.command);
  putNonEmpty(spec, "args", s.args);
  if (!s.env.empty()) {
    json a = json::array();
    for (const auto& e : s.env) {
      json x{{"name", e.name}};
      if (!e.value.empty()) x["value"] = e.value;
      a.push_back(std::move(x));
    }
    spec["env"] = std::move(a);
  }
  if (!s.ports.empty()) {
    json a = json::array();
    for (const auto& p : s.ports) {
      json x = json::object();
      if (!p.name.empty()) x["name"] = p.name;
      x["containerPort"] = p.containerPort;
      x["protocol"] = std::string(enumName(p.protocol));
      a.push_back(std::move(x));
    }
    spec["ports"] = std::move(a);
  }
  json res = json::object();
  if (json r = toJ(s.resources.requests); !r.empty()) res["requests"] = r;
  if (json l = toJ(s.resources.limits); !l.empty()) res["limits"] = l;
  if (!res.empty()) spec["resources"] = std::move(res);
  putNonEmpty(spec, "serviceAccountName", s.serviceAccountName);
  json o = json::object();
  if (!meta.empty()) o["metadata"] = std::move(meta);
  o["spec"] = std::move(spec);
  return o;
}

json toJ(const ScalingRules& r) {
  using namespace detail;
  json o{{"stabilizationWindowSeconds", r.stabilizationWindowSeconds},
         {"selectPolicy", std::string(enumName(r.selectPolicy))}};
  if (!r.policies.empty()) {
    json a = json::array();
    for (const auto& p : r.policies)
      a.push_back(json{{"type", std::string(enumName(p.type))}, {"value", p.value}, {"periodSeconds", p.periodSeconds}});
    o["policies"] = std::move(a);
  }
  return o;
}

json toJ(const GpuRequest& g) {
  using namespace detail;
  json o = json::object();
  putOpt(o, "count", g.count);
  putOpt(o, "migProfile", g.migProfile);
  putOpt(o, "sharesPerGpu", g.sharesPerGpu);
  putOpt(o, "memory", g.memory);
  putOpt(o, "product", g.product);
  return o;
}
}  // namespace

namespace {
bool keysWithin(const json& o, std::initializer_list<std::string_view> allowed) {
  if (!o.is_object()) return false;
  for (auto it = o.begin(); it != o.end(); ++it)
    if (std::find(allowed.begin(), allowed.end(), it.key()) == allowed.end()) return false;
  return true;
}
bool itemsWithin(const json& spec, const char* key, std::initializer_list<std::string_view> allowed) {
  auto it = spec.find(key);
  if (it == spec.end()) return true;
  if (!it->is_array()) return false;
  for (const auto& x : *it)
    if (!keysWithin(x, allowed)) return false;
  return true;
}
}  // namespace

std::optional<nlohmann::json> legacyTemplateJson(const WorkerTemplate& t) {
  const json& raw = t.raw;
  if (!keysWithin(raw, {"metadata", "spec"})) return std::nullopt;
  if (raw.contains("metadata") && !keysWithin(raw["metadata"], {"labels", "annotations"})) return std::nullopt;
  const json spec = raw.value("spec", json::object());
  if (!spec.contains("image") ||
      !keysWithin(spec, {"image", "imagePullPolicy", "command", "args", "env", "ports", "resources",
                         "serviceAccountName"}) ||
      !itemsWithin(spec, "env", {"name", "value"}) || !itemsWithin(spec, "ports", {"name", "containerPort", "protocol"}))
    return std::nullopt;
  if (spec.contains("resources")) {
    const json& r = spec["resources"];
    if (!keysWithin(r, {"requests", "limits"})) return std::nullopt;
    for (const char* k : {"requests", "limits"})
      if (r.contains(k) && !keysWithin(r[k], {"cpu", "memory"})) return std::nullopt;
  }
  detail::Decoder d;
  WorkerPodSpec s;
  if (!detail::read(d, spec, "spec", s)) return std::nullopt;
  return legacyToJ(t.labels(), t.annotations(), s);
}

nlohmann::json toJson(const ModelDeploymentSpec& s) {
  using namespace detail;
  json o = json::object();
  o["model"] = json{{"name", s.model.name}, {"version", s.model.version}};
  o["template"] = s.template_.raw;
  putOpt(o, "workerContainer", s.workerContainer);
  put(o, "startupTimeoutSeconds", s.startupTimeoutSeconds);
  put(o, "deploymentType", s.deploymentType);
  putOpt(o, "region", s.region);
  putOpt(o, "dataZone", s.dataZone);
  o["gpu"] = toJ(s.gpu);
  put(o, "replicas", s.replicas);
  putOpt(o, "minReplicas", s.minReplicas);
  putOpt(o, "maxReplicas", s.maxReplicas);
  put(o, "maxUnavailable", s.maxUnavailable);
  put(o, "drainSeconds", s.drainSeconds);
  put(o, "priority", s.priority);
  if (s.autoscaling) {
    const auto& a = *s.autoscaling;
    json x{{"enabled", a.enabled}, {"query", a.query}, {"tolerance", a.tolerance}};
    putOpt(x, "targetPerReplica", a.targetPerReplica);
    x["scaleUp"] = toJ(a.scaleUp);
    x["scaleDown"] = toJ(a.scaleDown);
    o["autoscaling"] = std::move(x);
  }
  {
    const auto& h = s.healthCheck;
    json x{{"path", h.path},
           {"periodSeconds", h.periodSeconds},
           {"timeoutSeconds", h.timeoutSeconds},
           {"failureThreshold", h.failureThreshold},
           {"successThreshold", h.successThreshold}};
    putOpt(x, "port", h.port);
    o["healthCheck"] = std::move(x);
  }
  if (s.throughput)
    o["throughput"] = json{{"tokensPerMinutePerReplica", s.throughput->tokensPerMinutePerReplica},
                           {"inputTokenWeight", s.throughput->inputTokenWeight},
                           {"outputTokenWeight", s.throughput->outputTokenWeight}};
  if (s.spillover) o["spillover"] = json{{"deploymentRef", toJ(s.spillover->deploymentRef)}};
  if (s.rateLimit) {
    json rl{{"tokensPerMinute", s.rateLimit->tokensPerMinute}};
    if (s.rateLimit->requestsPerMinute) rl["requestsPerMinute"] = *s.rateLimit->requestsPerMinute;
    o["rateLimit"] = std::move(rl);
  }
  if (s.cache) {
    json c{{"mode", std::string(toString(s.cache->mode))}};
    if (s.cache->similarityThreshold) c["similarityThreshold"] = *s.cache->similarityThreshold;
    if (s.cache->ttlSeconds) c["ttlSeconds"] = *s.cache->ttlSeconds;
    if (s.cache->maxEntries) c["maxEntries"] = *s.cache->maxEntries;
    if (!s.cache->varyBy.empty()) {
      json vb = json::array();
      for (const auto& v : s.cache->varyBy) {
        json one = json::object();
        if (v.header) one["header"] = *v.header;
        if (v.field) one["field"] = *v.field;
        vb.push_back(std::move(one));
      }
      c["varyBy"] = std::move(vb);
    }
    if (s.cache->embeddingsDeploymentRef) c["embeddingsDeploymentRef"] = toJ(*s.cache->embeddingsDeploymentRef);
    o["cache"] = std::move(c);
  }
  return o;
}

nlohmann::json toJson(const ModelDeploymentStatus& s) {
  using namespace detail;
  json o = json::object();
  put(o, "observedGeneration", s.observedGeneration);
  put(o, "replicas", s.replicas);
  put(o, "desiredReplicas", s.desiredReplicas);
  put(o, "scheduledReplicas", s.scheduledReplicas);
  put(o, "readyReplicas", s.readyReplicas);
  put(o, "updatedReplicas", s.updatedReplicas);
  putNonEmpty(o, "selector", s.selector);
  if (!s.placements.empty()) {
    json a = json::array();
    for (const auto& p : s.placements)
      a.push_back(json{{"pool", p.pool}, {"replicas", p.replicas}, {"readyReplicas", p.readyReplicas}});
    o["placements"] = std::move(a);
  }
  putNonEmpty(o, "insufficientCapacity", s.insufficientCapacity);
  if (s.autoscaling) {
    json x = json::object();
    putOpt(x, "currentValue", s.autoscaling->currentValue);
    putOpt(x, "lastScaleTime", s.autoscaling->lastScaleTime);
    o["autoscaling"] = std::move(x);
  }
  putNonEmpty(o, "conditions", s.conditions);
  return o;
}

std::expected<ModelDeployment, std::string> ModelDeployment::fromJson(const nlohmann::json& j) {
  return detail::decodeResource<ModelDeployment>(j);
}

nlohmann::json ModelDeployment::toJson(bool withStatus) const { return detail::encodeResource(*this, withStatus); }

namespace {
void validateQuantity(detail::Errors& e, const std::string& path, const std::optional<Quantity>& q) {
  if (q && (q->milli < 0 || q->text.starts_with('-')))
    e.invalid(path, "\"" + q->text + "\": must not be negative");
}

// A label or annotation key as the apiserver accepts it on a Pod: [prefix/]name, the
// prefix a DNS subdomain of at most 253 characters, the name at most 63 characters of
// [-A-Za-z0-9_.], starting and ending alphanumeric.
bool isQualifiedName(const std::string& k) {
  const auto slash = k.find('/');
  std::string name = k;
  if (slash != std::string::npos) {
    const std::string prefix = k.substr(0, slash);
    if (prefix.empty() || prefix.size() > 253 || !detail::matchesPattern(prefix, detail::kDnsSubdomainPattern))
      return false;
    name = k.substr(slash + 1);
  }
  return !name.empty() && name.size() <= 63 && detail::matchesPattern(name, detail::kLabelValuePattern);
}

std::string kQualifiedNameMessage(std::string_view what) {
  return std::string(what) +
         " keys must be qualified names: an optional DNS subdomain prefix (at most 253 characters) and '/', then "
         "at most 63 alphanumerics, '-', '_' or '.', starting and ending alphanumeric";
}

// User input quoted in an error: at most 64 bytes of it.
std::string boundedQuote(const std::string& s) { return s.size() <= 64 ? s : s.substr(0, 64) + "..."; }

void validateRules(detail::Errors& e, const std::string& path, const ScalingRules& r) {
  e.range(path + ".stabilizationWindowSeconds", r.stabilizationWindowSeconds, 0, 3600);
  if (r.policies.size() > 10) e.add(path + ".policies", "Too many: must have at most 10 items");
  for (size_t i = 0; i < r.policies.size(); ++i) {
    std::string p = detail::indexed(path + ".policies", i);
    e.range(p + ".value", r.policies[i].value, 1, INT32_MAX);
    e.range(p + ".periodSeconds", r.policies[i].periodSeconds, 1, 1800);
  }
}
// Fields of the pod the operator owns (the CRD's rules on spec.template.spec, generated
// by hack/gen-podtemplate.py: keep the two in step).
constexpr std::array<std::pair<std::string_view, std::string_view>, 7> kOwnedPodFields{{
    {"nodeName", "the operator binds each worker to the node of its GPUs"},
    {"schedulerName", "the operator is the scheduler of worker pods"},
    {"nodeSelector", "placement belongs to the CapacityPools (spec.nodeSelector of a pool)"},
    {"affinity", "placement belongs to the CapacityPools (spec.nodeSelector of a pool)"},
    {"topologySpreadConstraints", "the operator places workers, not the kube-scheduler"},
    {"schedulingGates", "the operator binds workers itself (a gated pod cannot have a node)"},
    {"ephemeralContainers", "a pod cannot be created with ephemeral containers"},
}};

// No nvidia.com/ resource in requests or limits of `res` (a ResourceRequirements).
void validateNoGpuResources(detail::Errors& e, const std::string& path, const json& res) {
  if (!res.is_object()) return;
  for (const char* part : {"limits", "requests"}) {
    auto m = res.find(part);
    if (m == res.end() || !m->is_object()) continue;
    const std::string p = path + "." + part;
    if (m->size() > 32) e.add(p, "Too many: must have at most 32 items");
    for (auto it = m->begin(); it != m->end(); ++it)
      if (it.key().starts_with("nvidia.com/"))
        e.forbidden(p, "resources under nvidia.com/ are set by the operator from spec.gpu: remove them from " + p);
  }
}

void validateTemplate(detail::Errors& e, const ModelDeploymentSpec& s) {
  using namespace detail;
  const auto& t = s.template_;
  const auto labels = t.labels();
  const auto annotations = t.annotations();
  if (labels.size() > 64) e.add("spec.template.metadata.labels", "Too many: must have at most 64 items");
  for (const auto& [k, v] : labels) {
    const std::string p = "spec.template.metadata.labels";
    if (!isQualifiedName(k)) e.invalid(p, "\"" + boundedQuote(k) + "\": " + kQualifiedNameMessage("label"));
    if (!v.empty()) e.string(p + "." + boundedQuote(k), v, 0, 63, kLabelValuePattern);
  }
  if (annotations.size() > 64) e.add("spec.template.metadata.annotations", "Too many: must have at most 64 items");
  for (const auto& [k, v] : annotations)
    if (!isQualifiedName(k))
      e.invalid("spec.template.metadata.annotations", "\"" + boundedQuote(k) + "\": " + kQualifiedNameMessage("annotation"));
  for (const auto* keys : {&labels, &annotations})
    for (const auto& [k, v] : *keys)
      if (isReservedKey(k))
        e.forbidden(std::string(keys == &labels ? "spec.template.metadata.labels" : "spec.template.metadata.annotations") +
                        "[" + boundedQuote(k) + "]",
                    "keys under waterline.dev/ are reserved for the operator");

  const json spec = t.raw.value("spec", json::object());
  const std::string sp = "spec.template.spec";
  if (!spec.is_object()) {
    e.invalid(sp, "must be an object");
    return;
  }
  const bool hasImage = spec.contains("image"), hasContainers = spec.contains("containers");
  if (hasImage == hasContainers)
    e.invalid(sp, "exactly one of spec.template.spec.image (the deprecated shorthand) or spec.template.spec.containers "
                  "must be set");
  for (const auto& [f, why] : kOwnedPodFields)
    if (spec.contains(std::string(f)))
      e.forbidden(sp + "." + std::string(f), sp + "." + std::string(f) + " must not be set: " + std::string(why));
  if (spec.contains("restartPolicy") && spec["restartPolicy"] != "Always")
    e.forbidden(sp + ".restartPolicy",
                "spec.template.spec.restartPolicy must be Always (or unset): workers are restarted in place");
  validateNoGpuResources(e, sp + ".resources", spec.value("resources", json::object()));
  for (const char* list : {"containers", "initContainers"}) {
    auto cs = spec.find(list);
    if (cs == spec.end() || !cs->is_array()) continue;
    const std::string lp = sp + "." + list;
    if (cs->size() > 32) e.add(lp, "Too many: must have at most 32 items");
    if (cs->empty() && std::string_view(list) == "containers") e.invalid(lp, "must have at least 1 item");
    for (size_t i = 0; i < cs->size(); ++i) {
      const json& c = (*cs)[i];
      if (!c.is_object()) continue;
      const std::string cp = indexed(lp, i);
      if (auto n = c.find("name"); n != c.end() && n->is_string()) e.string(cp + ".name", *n, 1, 63, nullptr);
      else e.required(cp + ".name", "container name is required");
      validateNoGpuResources(e, cp + ".resources", c.value("resources", json::object()));
    }
  }
  if (s.workerContainer) {
    e.string("spec.workerContainer", *s.workerContainer, 1, 63, kPortNamePattern);
    const json full = t.podSpec();
    if (s.workerContainerIndex(full) < 0)
      e.invalid("spec.workerContainer",
                "spec.workerContainer must name a container of spec.template.spec.containers (with the shorthand "
                "spec.template.spec.image the container is named worker)");
  }

  if (hasContainers) {
    for (const char* f : {"imagePullPolicy", "command", "args", "env", "ports"})
      if (spec.contains(f))
        e.forbidden(sp + "." + f,
                    "spec.template.spec.imagePullPolicy, command, args, env and ports belong to the shorthand "
                    "(spec.template.spec.image); with spec.template.spec.containers set them on the container");
    return;
  }
  if (!hasImage) return;

  // The shorthand: the checks of the original flat shape.
  Decoder d;
  WorkerPodSpec w;
  if (!read(d, spec, sp, w)) {
    e.invalid(sp, d.error());
    return;
  }
  e.string(sp + ".image", w.image, 1, 1024, nullptr);
  if (w.image.find_first_of(" \t\n\r\f") != std::string::npos)
    e.invalid(sp + ".image", "spec.template.spec.image must not contain whitespace");
  validateQuantity(e, sp + ".resources.requests.cpu", w.resources.requests.cpu);
  validateQuantity(e, sp + ".resources.requests.memory", w.resources.requests.memory);
  validateQuantity(e, sp + ".resources.limits.cpu", w.resources.limits.cpu);
  validateQuantity(e, sp + ".resources.limits.memory", w.resources.limits.memory);
  if (!w.imagePullPolicy.empty() && w.imagePullPolicy != "Always" && w.imagePullPolicy != "IfNotPresent" &&
      w.imagePullPolicy != "Never")
    e.add(sp + ".imagePullPolicy", "Unsupported value: \"" + w.imagePullPolicy + "\"");
  if (w.command.size() > 64) e.add(sp + ".command", "Too many: must have at most 64 items");
  if (w.args.size() > 256) e.add(sp + ".args", "Too many: must have at most 256 items");
  if (w.env.size() > 128) e.add(sp + ".env", "Too many: must have at most 128 items");
  for (size_t i = 0; i < w.env.size(); ++i) {
    std::string p = indexed(sp + ".env", i);
    e.string(p + ".name", w.env[i].name, 1, 256, kEnvNamePattern);
    for (size_t j = 0; j < i; ++j)
      if (w.env[j].name == w.env[i].name) e.add(p, "Duplicate value: {\"name\":\"" + w.env[i].name + "\"}");
  }
  if (w.ports.size() > 16) e.add(sp + ".ports", "Too many: must have at most 16 items");
  for (size_t i = 0; i < w.ports.size(); ++i) {
    std::string p = indexed(sp + ".ports", i);
    const auto& port = w.ports[i];
    if (!port.name.empty()) e.string(p + ".name", port.name, 1, 15, kPortNamePattern);
    e.range(p + ".containerPort", port.containerPort, 1, 65535);
    for (size_t j = 0; j < i; ++j)
      if (w.ports[j].containerPort == port.containerPort && w.ports[j].protocol == port.protocol)
        e.add(p, "Duplicate value: containerPort " + std::to_string(port.containerPort));
  }
  if (!w.serviceAccountName.empty())
    e.string(sp + ".serviceAccountName", w.serviceAccountName, 1, 253, kDnsSubdomainPattern);
}
}  // namespace

std::vector<std::string> validate(const ModelDeployment& d) {
  using namespace detail;
  Errors e;
  const auto& s = d.spec;
  e.string("spec.model.name", s.model.name, 1, 253, kModelNamePattern);
  e.string("spec.model.version", s.model.version, 1, 63, kLabelValuePattern);

  // Worker pods carry the name as a label value (the CRD's rule; objects stored before it
  // are caught here).
  if (d.metadata.name.size() > 63)
    e.invalid("metadata.name", "metadata.name must be at most 63 characters: worker pods carry it as a label value");

  validateTemplate(e, s);

  if (s.region) e.string("spec.region", *s.region, 1, 63, kRegionPattern);
  if (s.dataZone) e.string("spec.dataZone", *s.dataZone, 2, 16, kDataZonePattern);
  bool standard = s.deploymentType == DeploymentType::Standard;
  bool dataZone = s.deploymentType == DeploymentType::DataZone;
  if (standard && !s.region) e.required("spec.region", "spec.region is required when deploymentType is Standard");
  if (!standard && s.region) e.forbidden("spec.region", "spec.region is allowed only when deploymentType is Standard");
  if (dataZone && !s.dataZone) e.required("spec.dataZone", "spec.dataZone is required when deploymentType is DataZone");
  if (!dataZone && s.dataZone)
    e.forbidden("spec.dataZone", "spec.dataZone is allowed only when deploymentType is DataZone");

  const auto& g = s.gpu;
  int kinds = (g.count ? 1 : 0) + (g.migProfile ? 1 : 0) + (g.sharesPerGpu ? 1 : 0);
  if (kinds != 1)
    e.invalid("spec.gpu", "exactly one of spec.gpu.count, spec.gpu.migProfile or spec.gpu.sharesPerGpu must be set");
  if (g.count) e.range("spec.gpu.count", *g.count, 1, 8);
  if (g.migProfile) e.string("spec.gpu.migProfile", *g.migProfile, 1, 16, kMigProfilePattern);
  if (g.sharesPerGpu) e.range("spec.gpu.sharesPerGpu", *g.sharesPerGpu, 2, 64);
  validateQuantity(e, "spec.gpu.memory", g.memory);
  if (g.product) e.string("spec.gpu.product", *g.product, 1, 63, kLabelValuePattern);

  e.range("spec.replicas", s.replicas, 0, 1000);
  if (s.minReplicas) e.range("spec.minReplicas", *s.minReplicas, 0, 1000);
  if (s.maxReplicas) e.range("spec.maxReplicas", *s.maxReplicas, 1, 1000);
  if (s.minReplicas && s.maxReplicas && *s.minReplicas > *s.maxReplicas)
    e.invalid("spec.minReplicas", "spec.minReplicas must be less than or equal to spec.maxReplicas");
  if (s.minReplicas && s.replicas < *s.minReplicas)
    e.invalid("spec.replicas", "spec.replicas must be greater than or equal to spec.minReplicas");
  if (s.maxReplicas && s.replicas > *s.maxReplicas)
    e.invalid("spec.replicas", "spec.replicas must be less than or equal to spec.maxReplicas");
  if (s.maxUnavailable.isInt())
    e.range("spec.maxUnavailable", s.maxUnavailable.intValue(), 0, INT32_MAX);
  else if (!matchesPattern(s.maxUnavailable.strValue(), kPercentPattern))
    e.invalid("spec.maxUnavailable", "\"" + s.maxUnavailable.strValue() + "\": should match '" + kPercentPattern + "'");
  e.range("spec.drainSeconds", s.drainSeconds, 0, 3600);
  e.range("spec.priority", s.priority, -1000, 1000);

  if (s.autoscaling) {
    const auto& a = *s.autoscaling;
    if (a.enabled && !s.maxReplicas)
      e.required("spec.maxReplicas", "spec.maxReplicas is required when spec.autoscaling.enabled is true");
    if (a.enabled && !a.targetPerReplica)
      e.required("spec.autoscaling.targetPerReplica",
                 "spec.autoscaling.targetPerReplica is required when spec.autoscaling.enabled is true");
    if (a.targetPerReplica && a.targetPerReplica->milli <= 0)
      e.invalid("spec.autoscaling.targetPerReplica", "\"" + a.targetPerReplica->text + "\": must be greater than 0");
    e.string("spec.autoscaling.query", a.query, 1, 4096, nullptr);
    e.rangeD("spec.autoscaling.tolerance", a.tolerance, 0, 1);
    validateRules(e, "spec.autoscaling.scaleUp", a.scaleUp);
    validateRules(e, "spec.autoscaling.scaleDown", a.scaleDown);
  }

  const auto& h = s.healthCheck;
  if (!h.port && s.workerPorts().empty())
    e.required("spec.healthCheck",
               "spec.healthCheck.port is required when the worker container has no ports (spec.template.spec.ports, "
               "or the ports of the container spec.workerContainer names)");
  e.range("spec.startupTimeoutSeconds", s.startupTimeoutSeconds, 1, 86400);
  e.string("spec.healthCheck.path", h.path, 1, 1024, "^/[\\s\\S]*$");
  if (!h.path.empty() && h.path.front() == '/' && !isValidHttpPath(h.path))
    e.invalid("spec.healthCheck.path", "must not contain whitespace or control characters");
  if (h.port) e.range("spec.healthCheck.port", *h.port, 1, 65535);
  e.range("spec.healthCheck.periodSeconds", h.periodSeconds, 1, 3600);
  e.range("spec.healthCheck.timeoutSeconds", h.timeoutSeconds, 1, 60);
  e.range("spec.healthCheck.failureThreshold", h.failureThreshold, 1, 100);
  e.range("spec.healthCheck.successThreshold", h.successThreshold, 1, 100);
  if (h.timeoutSeconds > h.periodSeconds)
    e.invalid("spec.healthCheck.timeoutSeconds",
              "spec.healthCheck.timeoutSeconds must not exceed spec.healthCheck.periodSeconds");

  if (s.throughput) {
    const auto& tp = *s.throughput;
    e.range("spec.throughput.tokensPerMinutePerReplica", tp.tokensPerMinutePerReplica, 1, INT64_MAX);
    e.rangeD("spec.throughput.inputTokenWeight", tp.inputTokenWeight, 0, 100);
    e.rangeD("spec.throughput.outputTokenWeight", tp.outputTokenWeight, 0, 100);
    if (!(tp.inputTokenWeight + tp.outputTokenWeight > 0))
      e.invalid("spec.throughput",
                "spec.throughput.inputTokenWeight and spec.throughput.outputTokenWeight must not both be 0");
  }
  if (s.spillover) {
    e.string("spec.spillover.deploymentRef.name", s.spillover->deploymentRef.name, 1, 253, kDnsSubdomainPattern);
    if (s.spillover->deploymentRef.name == d.metadata.name)
      e.invalid("spec.spillover.deploymentRef.name",
                "spec.spillover.deploymentRef.name must not name the ModelDeployment itself");
  }
  if (s.rateLimit) {
    e.range("spec.rateLimit.tokensPerMinute", s.rateLimit->tokensPerMinute, 1, INT64_MAX);
    if (s.rateLimit->requestsPerMinute)
      e.range("spec.rateLimit.requestsPerMinute", *s.rateLimit->requestsPerMinute, 1, INT64_MAX);
  }
  if (s.cache) {
    const CacheSpec& c = *s.cache;
    if (c.similarityThreshold) e.rangeD("spec.cache.similarityThreshold", *c.similarityThreshold, 0.5, 1);
    if (c.ttlSeconds) e.range("spec.cache.ttlSeconds", *c.ttlSeconds, 1, 604800);
    if (c.maxEntries) e.range("spec.cache.maxEntries", *c.maxEntries, 1, 10000000);
    for (std::size_t i = 0; i < c.varyBy.size(); ++i) {
      const std::string p = "spec.cache.varyBy[" + std::to_string(i) + "]";
      if (c.varyBy[i].header.has_value() == c.varyBy[i].field.has_value())
        e.invalid(p, p + " must set exactly one of header and field");
      if (c.varyBy[i].field && *c.varyBy[i].field != "user")
        e.invalid(p + ".field", p + ".field must be \"user\"");
    }
    if (c.mode == CacheMode::Semantic && !c.embeddingsDeploymentRef)
      e.invalid("spec.cache.embeddingsDeploymentRef",
                "spec.cache.embeddingsDeploymentRef is required when spec.cache.mode is Semantic");
    if (c.embeddingsDeploymentRef && c.embeddingsDeploymentRef->name == d.metadata.name)
      e.invalid("spec.cache.embeddingsDeploymentRef.name",
                "spec.cache.embeddingsDeploymentRef.name must not name the ModelDeployment itself");
  }
  return e.take();
}

}  // namespace waterline::api
