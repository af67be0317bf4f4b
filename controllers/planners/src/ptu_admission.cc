#include "waterline/planners/ptu_admission.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "waterline/api/keys.h"
#include "waterline/planners/ptu_sizing.h"

namespace waterline::planners {

namespace {

std::string fmtGpus(double g) {
  char buf[32];
  if (std::fabs(g - std::round(g)) < 1e-9) std::snprintf(buf, sizeof buf, "%.0f", g);
  else std::snprintf(buf, sizeof buf, "%.2f", g);
  return buf;
}

std::string scopeText(const api::ReservationScope& s) {
  switch (s.type) {
    case api::ScopeType::Regional: return "Regional " + s.region.value_or("");
    case api::ScopeType::DataZone: return "DataZone " + s.dataZone.value_or("");
    case api::ScopeType::Global: return "Global";
  }
  return "";
}

std::string keyOf(const api::ObjectMeta& m) { return m.namespace_ + "/" + m.name; }

}  // namespace

bool poolFitsRequest(const api::CapacityPoolSpec& pool, const api::GpuRequest& gpu) {
  switch (gpu.kind()) {
    case api::GpuRequestKind::Count:
      return pool.sharing.mode == api::SharingMode::Exclusive;
    case api::GpuRequestKind::MigProfile:
      return pool.sharing.mode == api::SharingMode::MIG &&
             std::find(pool.sharing.migProfiles.begin(), pool.sharing.migProfiles.end(), *gpu.migProfile) !=
                 pool.sharing.migProfiles.end();
    case api::GpuRequestKind::Shares:
      return (pool.sharing.mode == api::SharingMode::TimeSlicing || pool.sharing.mode == api::SharingMode::MPS) &&
             pool.sharing.slicesPerGpu && *gpu.sharesPerGpu > 0 && *pool.sharing.slicesPerGpu % *gpu.sharesPerGpu == 0;
  }
  return false;
}

bool poolInScope(const api::CapacityPoolSpec& pool, const api::ReservationScope& scope,
                 const api::ModelDeploymentSpec& d) {
  switch (scope.type) {
    case api::ScopeType::Regional:
      if (!scope.region || pool.region != *scope.region) return false;
      break;
    case api::ScopeType::DataZone:
      if (!scope.dataZone || pool.dataZone != *scope.dataZone) return false;
      break;
    case api::ScopeType::Global:
      break;
  }
  switch (d.deploymentType) {
    case api::DeploymentType::Standard: return d.region && pool.region == *d.region;
    case api::DeploymentType::DataZone: return d.dataZone && pool.dataZone == *d.dataZone;
    case api::DeploymentType::Global: return true;
  }
  return false;
}

PtuAdmissionPlan planPtuAdmission(const PtuAdmissionInput& in) {
  PtuAdmissionPlan plan;
  // Reservable GPUs left per pool.
  std::map<std::string, double> left;
  std::map<std::string, double> reservable;
  std::map<std::string, const api::CapacityPool*> pools;
  for (const auto& p : in.pools) {
    const double r = std::floor(std::clamp(p.spec.reservableFraction, 0.0, 1.0) * p.status.gpus.allocatable + 1e-9);
    reservable[p.metadata.name] = r;
    left[p.metadata.name] = r;
    pools[p.metadata.name] = &p;
  }

  std::vector<const api::PTUReservation*> order;
  for (const auto& r : in.reservations) order.push_back(&r);
  std::sort(order.begin(), order.end(), [](const api::PTUReservation* a, const api::PTUReservation* b) {
    const bool aa = a->status.phase == api::ReservationPhase::Active;
    const bool ba = b->status.phase == api::ReservationPhase::Active;
    if (aa != ba) return aa;
    const auto at = a->metadata.creationTimestamp.value_or(SystemTime{});
    const auto bt = b->metadata.creationTimestamp.value_or(SystemTime{});
    if (at != bt) return at < bt;
    return keyOf(a->metadata) < keyOf(b->metadata);
  });

  for (const auto* r : order) {
    PtuAdmission a;
    const auto& s = r->spec;
    auto tpm = provisionedTokensPerMinute(s.units, s.tokensPerMinutePerUnit);
    a.provisionedTokensPerMinute = tpm ? *tpm : 0;
    bool outside = false;
    if (s.startTime && in.now < *s.startTime) {
      outside = true;
      a.phase = api::ReservationPhase::Pending;
      a.reason = ptu::kNotStarted;
      a.message = "starts at " + api::formatTime(*s.startTime);
      a.nextChange = *s.startTime;
    } else if (s.endTime && in.now >= *s.endTime) {
      outside = true;
      a.phase = api::ReservationPhase::Expired;
      a.reason = ptu::kExpired;
      a.message = "ended at " + api::formatTime(*s.endTime) + "; capacity released";
    }
    if (r->metadata.deletionTimestamp || outside) {
      plan.byReservation[keyOf(r->metadata)] = std::move(a);
      continue;
    }
    if (s.endTime) a.nextChange = *s.endTime;

    auto dit = in.deployments.find(r->metadata.namespace_ + "/" + s.deploymentRef.name);
    if (dit == in.deployments.end()) {
      a.phase = api::ReservationPhase::Insufficient;
      a.reason = ptu::kDeploymentNotFound;
      a.message = "ModelDeployment " + s.deploymentRef.name + " not found in namespace " + r->metadata.namespace_;
      plan.byReservation[keyOf(r->metadata)] = std::move(a);
      continue;
    }
    const auto& d = dit->second.spec;
    if (!d.throughput || d.throughput->tokensPerMinutePerReplica <= 0) {
      a.phase = api::ReservationPhase::Insufficient;
      a.reason = ptu::kThroughputUnknown;
      a.message = "ModelDeployment " + s.deploymentRef.name +
                  " has no spec.throughput.tokensPerMinutePerReplica to size the reservation";
      plan.byReservation[keyOf(r->metadata)] = std::move(a);
      continue;
    }
    auto replicas = tpm ? replicasForThroughput(*tpm, d.throughput->tokensPerMinutePerReplica)
                        : std::expected<int32_t, std::string>(std::unexpected(tpm.error()));
    if (!replicas) {
      a.phase = api::ReservationPhase::Insufficient;
      a.reason = ptu::kInsufficientCapacity;
      a.message = "cannot size the reservation: " + replicas.error();
      plan.byReservation[keyOf(r->metadata)] = std::move(a);
      continue;
    }
    a.replicas = *replicas;
    const double perReplica = d.gpu.gpuFraction();

    // Eligible pools, most room first.
    std::vector<std::string> eligible;
    for (const auto& [name, p] : pools)
      if (poolInScope(p->spec, s.scope, d) && poolFitsRequest(p->spec, d.gpu)) eligible.push_back(name);
    std::stable_sort(eligible.begin(), eligible.end(),
                     [&](const std::string& x, const std::string& y) { return left[x] > left[y]; });
    int32_t need = a.replicas;
    std::vector<api::ReservationPlacement> placed;
    int64_t fits = 0;
    for (const auto& name : eligible) {
      const int64_t n = perReplica > 0 ? int64_t(std::floor(left[name] / perReplica + 1e-9)) : need;
      fits += n;
      if (need <= 0 || n <= 0) continue;
      const int32_t take = int32_t(std::min<int64_t>(n, need));
      placed.push_back({name, take, take * perReplica});
      need -= take;
    }
    if (need <= 0) {
      a.phase = api::ReservationPhase::Active;
      a.reason = ptu::kProvisioned;
      for (const auto& pl : placed) {
        left[pl.pool] -= pl.gpus;
        plan.reservedGpus[pl.pool] += pl.gpus;
      }
      std::sort(placed.begin(), placed.end(), [](const auto& x, const auto& y) { return x.pool < y.pool; });
      a.placements = std::move(placed);
      a.message = std::to_string(a.replicas) + " replicas (" + fmtGpus(a.replicas * perReplica) + " GPUs) held for " +
                  std::to_string(a.provisionedTokensPerMinute) + " tokens/min";
    } else {
      a.phase = api::ReservationPhase::Insufficient;
      a.reason = ptu::kInsufficientCapacity;
      const int64_t missing = a.replicas - std::min<int64_t>(fits, a.replicas);
      std::string m = "needs " + std::to_string(a.replicas) + " replicas (" + fmtGpus(a.replicas * perReplica) +
                      " GPUs) in scope " + scopeText(s.scope) + "; the reservable capacity left holds " +
                      std::to_string(std::min<int64_t>(fits, a.replicas)) + ": missing " + std::to_string(missing) +
                      " replicas (" + fmtGpus(missing * perReplica) + " GPUs)";
      if (eligible.empty()) {
        m += "; no pool of the scope and the deployment's type fits its GPU request";
      } else {
        m += "; pools:";
        std::vector<std::string> byName = eligible;
        std::sort(byName.begin(), byName.end());
        for (size_t i = 0; i < byName.size(); ++i)
          m += std::string(i ? "," : "") + " " + byName[i] + " " + fmtGpus(left[byName[i]]) + " of " +
               fmtGpus(reservable[byName[i]]) + " reservable GPUs free";
      }
      a.message = std::move(m);
    }
    plan.byReservation[keyOf(r->metadata)] = std::move(a);
  }
  return plan;
}

api::PTUReservationStatus planPtuStatus(const api::PTUReservation& r, const PtuAdmission& a, SystemTime now) {
  api::PTUReservationStatus st = r.status;
  const int64_t gen = r.metadata.generation;
  st.observedGeneration = gen;
  st.phase = a.phase;
  const bool active = a.phase == api::ReservationPhase::Active;
  st.provisionedTokensPerMinute = active ? a.provisionedTokensPerMinute : 0;
  st.reservedReplicas = active ? a.replicas : 0;
  st.placements = active ? a.placements : std::vector<api::ReservationPlacement>{};
  if (!active) st.utilization = 0;
  else st.utilization = ptuUtilization(double(st.usedTokensPerMinute), st.provisionedTokensPerMinute);

  // Accrual: billed minutes while Active; time not Active moves lastAccrualTime on.
  const SystemTime nowS = std::chrono::time_point_cast<std::chrono::seconds>(now);
  if (active) {
    const SystemTime start = r.spec.startTime.value_or(r.metadata.creationTimestamp.value_or(nowS));
    // The first accrual ever bills the minute in progress (per started minute), not the
    // minutes between startTime and the activation.
    std::optional<SystemTime> last = st.lastAccrualTime;
    if (!last) {
      const auto minutes = (nowS - start) / std::chrono::minutes(1);
      last = start + std::chrono::minutes(std::max<int64_t>(0, minutes)) - std::chrono::seconds(1);
    }
    auto next = accrueUnitHoursDecimal(st.unitHoursConsumed, r.spec.units, start, r.spec.endTime, last, nowS);
    if (next) {
      st.unitHoursConsumed = *next;
      if (nowS > *last) st.lastAccrualTime = nowS;
      else st.lastAccrualTime = last;
    }
  } else if (st.lastAccrualTime && nowS > *st.lastAccrualTime) {
    // Not Active: nothing is billed for this time. Expired accrues up to endTime first.
    if (a.phase == api::ReservationPhase::Expired && r.spec.endTime && *st.lastAccrualTime < *r.spec.endTime &&
        r.status.phase == api::ReservationPhase::Active) {
      const SystemTime start = r.spec.startTime.value_or(r.metadata.creationTimestamp.value_or(nowS));
      if (auto next = accrueUnitHoursDecimal(st.unitHoursConsumed, r.spec.units, start, r.spec.endTime,
                                             st.lastAccrualTime, nowS))
        st.unitHoursConsumed = *next;
    }
    st.lastAccrualTime = nowS;
  }

  using api::ConditionStatus;
  const std::string ready(api::conditions::kReady), insufficient(api::conditions::kInsufficient);
  api::setCondition(st.conditions,
                    {ready, active ? ConditionStatus::True : ConditionStatus::False, a.reason, a.message, {}, gen}, now);
  if (a.phase == api::ReservationPhase::Insufficient)
    api::setCondition(st.conditions, {insufficient, ConditionStatus::True, a.reason, a.message, {}, gen}, now);
  else
    api::setCondition(st.conditions,
                      {insufficient, ConditionStatus::False, std::string(ptu::kCapacityAvailable),
                       active ? "all replicas are held" : "nothing to hold now (" + a.reason + ")", {}, gen},
                      now);
  return st;
}

}  // namespace waterline::planners
