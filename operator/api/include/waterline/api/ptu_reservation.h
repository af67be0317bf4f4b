#pragma once
// PTUReservation (namespaced): provisioned throughput reserved for a ModelDeployment.
// Schema: crds/waterline.dev_ptureservations.yaml; reference: docs/api.md.
#include <cstdint>
#include <expected>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "waterline/api/conditions.h"
#include "waterline/api/meta.h"

namespace waterline::api {

enum class ScopeType { Regional, DataZone, Global };
std::string_view toString(ScopeType t);
std::optional<ScopeType> parseScopeType(std::string_view s);

enum class ReservationPhase { Pending, Active, Insufficient, Expired };
std::string_view toString(ReservationPhase p);
std::optional<ReservationPhase> parseReservationPhase(std::string_view s);

struct ReservationScope {
  ScopeType type = ScopeType::Global;
  std::optional<std::string> region;    // Regional only (required there)
  std::optional<std::string> dataZone;  // DataZone only (required there)
  bool operator==(const ReservationScope&) const = default;
};

struct PTUReservationSpec {
  LocalObjectReference deploymentRef;
  int32_t units = 0;
  int64_t tokensPerMinutePerUnit = 0;
  ReservationScope scope;
  std::optional<SystemTime> startTime;
  std::optional<SystemTime> endTime;
  int32_t burstPercent = 0;

  // units * tokensPerMinutePerUnit
  int64_t tokensPerMinute() const { return int64_t{units} * tokensPerMinutePerUnit; }
  // Within [startTime, endTime) (open ends when absent).
  bool activeAt(SystemTime t) const;
  bool operator==(const PTUReservationSpec&) const = default;
};

struct ReservationPlacement {
  std::string pool;
  int32_t replicas = 0;
  double gpus = 0;
  bool operator==(const ReservationPlacement&) const = default;
};

struct PTUReservationStatus {
  std::optional<ReservationPhase> phase;
  int64_t observedGeneration = 0;
  int64_t provisionedTokensPerMinute = 0;
  int32_t reservedReplicas = 0;
  std::vector<ReservationPlacement> placements;
  int64_t usedTokensPerMinute = 0;
  double utilization = 0;
  std::string unitHoursConsumed = "0";  // decimal; see parseDecimalMicros
  int64_t throttledRequests = 0;
  int64_t spilledRequests = 0;
  std::optional<SystemTime> lastAccrualTime;
  std::vector<Condition> conditions;
  bool operator==(const PTUReservationStatus&) const = default;
};

struct PTUReservation {
  static constexpr std::string_view kKind = "PTUReservation";
  static constexpr std::string_view kPlural = "ptureservations";

  ObjectMeta metadata;
  PTUReservationSpec spec;
  PTUReservationStatus status;

  // See CapacityPool::fromJson: CRD defaults applied, errors name the field.
  static std::expected<PTUReservation, std::string> fromJson(const nlohmann::json& j);
  nlohmann::json toJson(bool withStatus = true) const;
  bool operator==(const PTUReservation&) const = default;
};

nlohmann::json toJson(const PTUReservationSpec& spec);
nlohmann::json toJson(const PTUReservationStatus& status);

// The CRD's value and cross-field rules, checked client-side. Each error is
// "<field path>: <message>"; empty when valid.
std::vector<std::string> validate(const PTUReservation& r);

}  // namespace waterline::api
