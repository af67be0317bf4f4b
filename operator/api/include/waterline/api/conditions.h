#pragma once
// metav1.Condition and the Kubernetes condition-setting semantics.
#include <cstdint>
#include <expected>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "waterline/common/time.h"

namespace waterline::api {

enum class ConditionStatus { True, False, Unknown };
std::string_view toString(ConditionStatus s);
std::optional<ConditionStatus> parseConditionStatus(std::string_view s);

struct Condition {
  std::string type;
  ConditionStatus status = ConditionStatus::Unknown;
  std::string reason;
  std::string message;
  SystemTime lastTransitionTime{};
  int64_t observedGeneration = 0;

  static std::expected<Condition, std::string> fromJson(const nlohmann::json& j);
  nlohmann::json toJson() const;
  bool operator==(const Condition&) const = default;
};

// Adds `c` or updates the condition of the same type, as apimachinery's
// meta.SetStatusCondition does: lastTransitionTime is set (to c.lastTransitionTime when
// non-zero, else `now`) only when the condition is new or its status changes; reason,
// message and observedGeneration are always updated. Returns true when anything changed.
bool setCondition(std::vector<Condition>& conditions, Condition c, SystemTime now);
// Removes the condition of that type; true when one was removed.
bool removeCondition(std::vector<Condition>& conditions, std::string_view type);
const Condition* findCondition(const std::vector<Condition>& conditions, std::string_view type);
Condition* findCondition(std::vector<Condition>& conditions, std::string_view type);
bool isTrue(const std::vector<Condition>& conditions, std::string_view type);
bool isFalse(const std::vector<Condition>& conditions, std::string_view type);
// True when the condition exists, is True and was computed for `generation`.
bool isTrueFor(const std::vector<Condition>& conditions, std::string_view type, int64_t generation);

}  // namespace waterline::api
