#pragma once
// Group/version constants, ObjectMeta and metav1.Time helpers.
#include <chrono>
#include <cstdint>
#include <expected>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "waterline/common/time.h"

namespace waterline::api {

inline constexpr std::string_view kGroup = "waterline.dev";
inline constexpr std::string_view kVersion = "v1alpha1";
inline constexpr std::string_view kApiVersion = "waterline.dev/v1alpha1";

using Labels = std::map<std::string, std::string>;

// metav1.Time: RFC 3339. Parsing accepts fractional seconds and numeric offsets
// ("2025-03-01T09:00:00.5+01:00"); formatting writes whole seconds in UTC
// ("2025-03-01T08:00:00Z"), as the apiserver does.
//
// Any valid RFC 3339 time parses, but a time outside [kEarliestTime, kLatestTime] is read
// as the nearer bound: SystemTime counts int64 nanoseconds, and the window keeps every
// difference and every sum with a duration of up to decades clear of overflow.
// "9999-12-31T23:59:59Z" (the usual "no end") therefore means 2200-01-01T00:00:00Z, and
// Go's zero time "0001-01-01T00:00:00Z" means the Unix epoch.
inline constexpr std::chrono::sys_seconds kEarliestTime{std::chrono::seconds(0)};             // 1970-01-01T00:00:00Z
inline constexpr std::chrono::sys_seconds kLatestTime{std::chrono::seconds(7'258'118'400)};  // 2200-01-01T00:00:00Z
std::expected<SystemTime, std::string> parseTime(std::string_view rfc3339);
std::string formatTime(SystemTime t);

struct OwnerReference {
  std::string apiVersion;
  std::string kind;
  std::string name;
  std::string uid;
  bool controller = false;
  bool blockOwnerDeletion = false;

  static std::expected<OwnerReference, std::string> fromJson(const nlohmann::json& j);
  nlohmann::json toJson() const;
  bool operator==(const OwnerReference&) const = default;
};

struct ObjectMeta {
  std::string name;
  std::string generateName;
  std::string namespace_;  // JSON "namespace"; empty for cluster-scoped objects
  std::string uid;
  std::string resourceVersion;
  int64_t generation = 0;
  Labels labels;
  std::map<std::string, std::string> annotations;
  std::vector<OwnerReference> ownerReferences;
  std::vector<std::string> finalizers;
  std::optional<SystemTime> creationTimestamp;
  std::optional<SystemTime> deletionTimestamp;

  bool hasFinalizer(std::string_view f) const;
  // The controller owner reference (controller: true), if any.
  const OwnerReference* controllerRef() const;
  // "namespace/name", or "name" when cluster-scoped: the workqueue key form.
  std::string key() const;

  // Decodes metadata (unknown fields such as managedFields are dropped). An error names
  // the field, e.g. "metadata.labels.team: expected string, got number".
  static std::expected<ObjectMeta, std::string> fromJson(const nlohmann::json& j);
  // Encodes set fields only (empty strings, zero generation and empty maps are omitted).
  nlohmann::json toJson() const;
  bool operator==(const ObjectMeta&) const = default;
};

// A reference to an object by name in the same namespace.
struct LocalObjectReference {
  std::string name;
  bool operator==(const LocalObjectReference&) const = default;
};

}  // namespace waterline::api
