#include "waterline/api/capacity_pool.h"

#include <set>

#include "codec.h"
#include "validation.h"
#include "waterline/api/keys.h"

namespace waterline::api {

namespace detail {
template <>
struct EnumNames<SharingMode> {
  static constexpr std::array<std::string_view, 4> names{"Exclusive", "MIG", "TimeSlicing", "MPS"};
};
template <>
struct EnumNames<SchedulingStrategy> {
  static constexpr std::array<std::string_view, 2> names{"BinPack", "Spread"};
};

bool read(Decoder& d, const json& v, const std::string& path, SharingSpec& out) {
  if (!expectObject(d, v, path)) return false;
  opt(d, v, path, "mode", out.mode);
  opt(d, v, path, "migProfiles", out.migProfiles);
  opt(d, v, path, "slicesPerGpu", out.slicesPerGpu);
  return d.ok();
}

bool read(Decoder& d, const json& v, const std::string& path, PoolRoutingSpec& out) {
  if (!expectObject(d, v, path)) return false;
  opt(d, v, path, "maxUtilization", out.maxUtilization);
  return d.ok();
}

bool read(Decoder& d, const json& v, const std::string& path, CapacityPoolSpec& out) {
  if (!expectObject(d, v, path)) return false;
  req(d, v, path, "region", out.region);
  req(d, v, path, "dataZone", out.dataZone);
  req(d, v, path, "nodeSelector", out.nodeSelector);
  req(d, v, path, "gpuProduct", out.gpuProduct);
  opt(d, v, path, "sharing", out.sharing);
  opt(d, v, path, "schedulingStrategy", out.schedulingStrategy);
  opt(d, v, path, "reservableFraction", out.reservableFraction);
  opt(d, v, path, "routing", out.routing);
  opt(d, v, path, "allocation", out.allocation);
  return d.ok();
}

bool read(Decoder& d, const json& v, const std::string& path, CapacityCounts& out) {
  if (!expectObject(d, v, path)) return false;
  opt(d, v, path, "total", out.total);
  opt(d, v, path, "allocatable", out.allocatable);
  opt(d, v, path, "allocated", out.allocated);
  opt(d, v, path, "unhealthy", out.unhealthy);
  opt(d, v, path, "reserved", out.reserved);
  opt(d, v, path, "free", out.free);
  return d.ok();
}

bool read(Decoder& d, const json& v, const std::string& path, CapacityPoolStatus& out) {
  if (!expectObject(d, v, path)) return false;
  opt(d, v, path, "observedGeneration", out.observedGeneration);
  opt(d, v, path, "nodes", out.nodes);
  opt(d, v, path, "readyNodes", out.readyNodes);
  opt(d, v, path, "nodeNames", out.nodeNames);
  opt(d, v, path, "gpus", out.gpus);
  opt(d, v, path, "slices", out.slices);
  opt(d, v, path, "fragmentation", out.fragmentation);
  opt(d, v, path, "utilization", out.utilization);
  opt(d, v, path, "conditions", out.conditions);
  return d.ok();
}
}  // namespace detail

std::string_view toString(SharingMode m) { return detail::enumName(m); }
std::optional<SharingMode> parseSharingMode(std::string_view s) { return detail::enumParse<SharingMode>(s); }
std::string_view toString(SchedulingStrategy s) { return detail::enumName(s); }
std::optional<SchedulingStrategy> parseSchedulingStrategy(std::string_view s) {
  return detail::enumParse<SchedulingStrategy>(s);
}

int32_t SharingSpec::sharesPerGpu() const {
  if ((mode == SharingMode::TimeSlicing || mode == SharingMode::MPS) && slicesPerGpu) return *slicesPerGpu;
  return 1;
}

bool CapacityPoolSpec::selectsNode(const Labels& nodeLabels) const {
  auto it = nodeLabels.find(std::string(gfd::kGpuProduct));
  if (it == nodeLabels.end() || it->second != gpuProduct) return false;
  return nodeSelector.matches(nodeLabels);
}

namespace {
using detail::json;

json toJ(const SharingSpec& s) {
  using namespace detail;
  json o = json::object();
  put(o, "mode", s.mode);
  putNonEmpty(o, "migProfiles", s.migProfiles);
  putOpt(o, "slicesPerGpu", s.slicesPerGpu);
  return o;
}

json toJ(const CapacityCounts& c) {
  return json{{"total", c.total},         {"allocatable", c.allocatable}, {"allocated", c.allocated},
              {"unhealthy", c.unhealthy}, {"reserved", c.reserved},       {"free", c.free}};
}
}  // namespace

nlohmann::json toJson(const CapacityPoolSpec& s) {
  using namespace detail;
  json o = json::object();
  put(o, "region", s.region);
  put(o, "dataZone", s.dataZone);
  put(o, "nodeSelector", s.nodeSelector);
  put(o, "gpuProduct", s.gpuProduct);
  o["sharing"] = toJ(s.sharing);
  put(o, "schedulingStrategy", s.schedulingStrategy);
  put(o, "reservableFraction", s.reservableFraction);
  o["routing"] = json{{"maxUtilization", s.routing.maxUtilization}};
  if (!s.allocation.empty()) put(o, "allocation", s.allocation);
  return o;
}

nlohmann::json toJson(const CapacityPoolStatus& s) {
  using namespace detail;
  json o = json::object();
  put(o, "observedGeneration", s.observedGeneration);
  put(o, "nodes", s.nodes);
  put(o, "readyNodes", s.readyNodes);
  putNonEmpty(o, "nodeNames", s.nodeNames);
  o["gpus"] = toJ(s.gpus);
  if (s.slices) o["slices"] = toJ(*s.slices);
  put(o, "fragmentation", s.fragmentation);
  put(o, "utilization", s.utilization);
  putNonEmpty(o, "conditions", s.conditions);
  return o;
}

std::expected<CapacityPool, std::string> CapacityPool::fromJson(const nlohmann::json& j) {
  return detail::decodeResource<CapacityPool>(j);
}

nlohmann::json CapacityPool::toJson(bool withStatus) const { return detail::encodeResource(*this, withStatus); }

std::vector<std::string> validate(const CapacityPool& pool) {
  detail::Errors e;
  const auto& s = pool.spec;
  e.string("spec.region", s.region, 1, 63, detail::kRegionPattern);
  e.string("spec.dataZone", s.dataZone, 2, 16, detail::kDataZonePattern);
  e.string("spec.gpuProduct", s.gpuProduct, 1, 63, detail::kLabelValuePattern);
  if (s.nodeSelector.matchLabels.size() > 64)
    e.add("spec.nodeSelector.matchLabels", "Too many: must have at most 64 items");
  if (s.nodeSelector.matchExpressions.size() > 32)
    e.add("spec.nodeSelector.matchExpressions", "Too many: must have at most 32 items");
  for (const auto& [k, v] : s.nodeSelector.matchLabels)
    e.string("spec.nodeSelector.matchLabels." + k, v, 0, 63, nullptr);
  for (size_t i = 0; i < s.nodeSelector.matchExpressions.size(); ++i) {
    const auto& r = s.nodeSelector.matchExpressions[i];
    std::string p = detail::indexed("spec.nodeSelector.matchExpressions", i);
    e.string(p + ".key", r.key, 1, 317, nullptr);
    bool inOp = r.op == SelectorOperator::In || r.op == SelectorOperator::NotIn;
    if (inOp && r.values.empty())
      e.required(p + ".values", "spec.nodeSelector.matchExpressions[].values must be non-empty when operator is In or NotIn");
    if (!inOp && !r.values.empty())
      e.forbidden(p + ".values", "spec.nodeSelector.matchExpressions[].values must be empty when operator is Exists or DoesNotExist");
  }
  const auto& sh = s.sharing;
  bool sliced = sh.mode == SharingMode::TimeSlicing || sh.mode == SharingMode::MPS;
  if (sh.mode == SharingMode::MIG && sh.migProfiles.empty())
    e.required("spec.sharing.migProfiles", "spec.sharing.migProfiles is required when spec.sharing.mode is MIG");
  if (sh.mode != SharingMode::MIG && !sh.migProfiles.empty())
    e.forbidden("spec.sharing.migProfiles", "spec.sharing.migProfiles is allowed only when spec.sharing.mode is MIG");
  if (sliced && !sh.slicesPerGpu)
    e.required("spec.sharing.slicesPerGpu", "spec.sharing.slicesPerGpu is required when spec.sharing.mode is TimeSlicing or MPS");
  if (!sliced && sh.slicesPerGpu)
    e.forbidden("spec.sharing.slicesPerGpu", "spec.sharing.slicesPerGpu is allowed only when spec.sharing.mode is TimeSlicing or MPS");
  if (sh.slicesPerGpu) e.range("spec.sharing.slicesPerGpu", *sh.slicesPerGpu, 2, 64);
  if (sh.migProfiles.size() > 16) e.add("spec.sharing.migProfiles", "Too many: must have at most 16 items");
  std::set<std::string> seen;
  for (size_t i = 0; i < sh.migProfiles.size(); ++i) {
    std::string p = detail::indexed("spec.sharing.migProfiles", i);
    e.string(p, sh.migProfiles[i], 1, 16, detail::kMigProfilePattern);
    if (!seen.insert(sh.migProfiles[i]).second) e.add(p, "Duplicate value: \"" + sh.migProfiles[i] + "\"");
  }
  e.rangeD("spec.reservableFraction", s.reservableFraction, 0, 1);
  e.rangeD("spec.routing.maxUtilization", s.routing.maxUtilization, 0, 1, /*exclusiveMin=*/true);
  if (!s.allocation.empty() && s.allocation != "DRA" && s.allocation != "DevicePlugin")
    e.add("spec.allocation", "Unsupported value: \"" + s.allocation + "\": supported values: \"DRA\", \"DevicePlugin\"");
  if (s.allocation == "DRA" && sh.mode != SharingMode::Exclusive)
    e.forbidden("spec.allocation", "spec.allocation DRA places whole GPUs only so far: spec.sharing.mode must be Exclusive (use DevicePlugin for MIG, TimeSlicing and MPS pools)");
  return e.take();
}

}  // namespace waterline::api
