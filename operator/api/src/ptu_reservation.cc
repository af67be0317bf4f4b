#include "waterline/api/ptu_reservation.h"

#include "codec.h"
#include "validation.h"

namespace waterline::api {

namespace detail {
template <>
struct EnumNames<ScopeType> {
  static constexpr std::array<std::string_view, 3> names{"Regional", "DataZone", "Global"};
};
template <>
struct EnumNames<ReservationPhase> {
  static constexpr std::array<std::string_view, 4> names{"Pending", "Active", "Insufficient", "Expired"};
};

bool read(Decoder& d, const json& v, const std::string& path, ReservationScope& out) {
  if (!expectObject(d, v, path)) return false;
  req(d, v, path, "type", out.type);
  opt(d, v, path, "region", out.region);
  opt(d, v, path, "dataZone", out.dataZone);
  return d.ok();
}

bool read(Decoder& d, const json& v, const std::string& path, PTUReservationSpec& out) {
  if (!expectObject(d, v, path)) return false;
  req(d, v, path, "deploymentRef", out.deploymentRef);
  req(d, v, path, "units", out.units);
  req(d, v, path, "tokensPerMinutePerUnit", out.tokensPerMinutePerUnit);
  req(d, v, path, "scope", out.scope);
  opt(d, v, path, "startTime", out.startTime);
  opt(d, v, path, "endTime", out.endTime);
  opt(d, v, path, "burstPercent", out.burstPercent);
  return d.ok();
}

bool read(Decoder& d, const json& v, const std::string& path, ReservationPlacement& out) {
  if (!expectObject(d, v, path)) return false;
  req(d, v, path, "pool", out.pool);
  opt(d, v, path, "replicas", out.replicas);
  opt(d, v, path, "gpus", out.gpus);
  return d.ok();
}

bool read(Decoder& d, const json& v, const std::string& path, PTUReservationStatus& out) {
  if (!expectObject(d, v, path)) return false;
  opt(d, v, path, "phase", out.phase);
  opt(d, v, path, "observedGeneration", out.observedGeneration);
  opt(d, v, path, "provisionedTokensPerMinute", out.provisionedTokensPerMinute);
  opt(d, v, path, "reservedReplicas", out.reservedReplicas);
  opt(d, v, path, "placements", out.placements);
  opt(d, v, path, "usedTokensPerMinute", out.usedTokensPerMinute);
  opt(d, v, path, "utilization", out.utilization);
  opt(d, v, path, "unitHoursConsumed", out.unitHoursConsumed);
  if (d.ok()) {
    if (auto m = parseDecimalMicros(out.unitHoursConsumed); !m) d.fail(join(path, "unitHoursConsumed"), m.error());
  }
  opt(d, v, path, "throttledRequests", out.throttledRequests);
  opt(d, v, path, "spilledRequests", out.spilledRequests);
  opt(d, v, path, "lastAccrualTime", out.lastAccrualTime);
  opt(d, v, path, "conditions", out.conditions);
  return d.ok();
}
}  // namespace detail

std::string_view toString(ScopeType t) { return detail::enumName(t); }
std::optional<ScopeType> parseScopeType(std::string_view s) { return detail::enumParse<ScopeType>(s); }
std::string_view toString(ReservationPhase p) { return detail::enumName(p); }
std::optional<ReservationPhase> parseReservationPhase(std::string_view s) {
  return detail::enumParse<ReservationPhase>(s);
}

bool PTUReservationSpec::activeAt(SystemTime t) const {
  if (startTime && t < *startTime) return false;
  if (endTime && t >= *endTime) return false;
  return true;
}

nlohmann::json toJson(const PTUReservationSpec& s) {
  using namespace detail;
  json o = json::object();
  put(o, "deploymentRef", s.deploymentRef);
  put(o, "units", s.units);
  put(o, "tokensPerMinutePerUnit", s.tokensPerMinutePerUnit);
  json scope{{"type", std::string(enumName(s.scope.type))}};
  putOpt(scope, "region", s.scope.region);
  putOpt(scope, "dataZone", s.scope.dataZone);
  o["scope"] = std::move(scope);
  putOpt(o, "startTime", s.startTime);
  putOpt(o, "endTime", s.endTime);
  put(o, "burstPercent", s.burstPercent);
  return o;
}

nlohmann::json toJson(const PTUReservationStatus& s) {
  using namespace detail;
  json o = json::object();
  putOpt(o, "phase", s.phase);
  put(o, "observedGeneration", s.observedGeneration);
  put(o, "provisionedTokensPerMinute", s.provisionedTokensPerMinute);
  put(o, "reservedReplicas", s.reservedReplicas);
  if (!s.placements.empty()) {
    json a = json::array();
    for (const auto& p : s.placements)
      a.push_back(json{{"pool", p.pool}, {"replicas", p.replicas}, {"gpus", p.gpus}});
    o["placements"] = std::move(a);
  }
  put(o, "usedTokensPerMinute", s.usedTokensPerMinute);
  put(o, "utilization", s.utilization);
  put(o, "unitHoursConsumed", s.unitHoursConsumed);
  put(o, "throttledRequests", s.throttledRequests);
  put(o, "spilledRequests", s.spilledRequests);
  putOpt(o, "lastAccrualTime", s.lastAccrualTime);
  putNonEmpty(o, "conditions", s.conditions);
  return o;
}

std::expected<PTUReservation, std::string> PTUReservation::fromJson(const nlohmann::json& j) {
  return detail::decodeResource<PTUReservation>(j);
}

nlohmann::json PTUReservation::toJson(bool withStatus) const { return detail::encodeResource(*this, withStatus); }

std::vector<std::string> validate(const PTUReservation& r) {
  using namespace detail;
  Errors e;
  const auto& s = r.spec;
  e.string("spec.deploymentRef.name", s.deploymentRef.name, 1, 253, kDnsSubdomainPattern);
  e.range("spec.units", s.units, 1, 10000);
  e.range("spec.tokensPerMinutePerUnit", s.tokensPerMinutePerUnit, 1, 100'000'000);
  e.range("spec.burstPercent", s.burstPercent, 0, 100);
  const auto& sc = s.scope;
  if (sc.region) e.string("spec.scope.region", *sc.region, 1, 63, kRegionPattern);
  if (sc.dataZone) e.string("spec.scope.dataZone", *sc.dataZone, 2, 16, kDataZonePattern);
  bool regional = sc.type == ScopeType::Regional;
  bool dataZone = sc.type == ScopeType::DataZone;
  if (regional && !sc.region)
    e.required("spec.scope.region", "spec.scope.region is required when spec.scope.type is Regional");
  if (!regional && sc.region)
    e.forbidden("spec.scope.region", "spec.scope.region is allowed only when spec.scope.type is Regional");
  if (dataZone && !sc.dataZone)
    e.required("spec.scope.dataZone", "spec.scope.dataZone is required when spec.scope.type is DataZone");
  if (!dataZone && sc.dataZone)
    e.forbidden("spec.scope.dataZone", "spec.scope.dataZone is allowed only when spec.scope.type is DataZone");
  if (s.startTime && s.endTime && !(*s.endTime > *s.startTime))
    e.invalid("spec.endTime", "spec.endTime must be after spec.startTime");
  return e.take();
}

}  // namespace waterline::api
