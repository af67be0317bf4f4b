#include "waterline/api/conditions.h"

#include <algorithm>

#include "codec.h"

namespace waterline::api {

namespace detail {
template <>
struct EnumNames<ConditionStatus> {
  static constexpr std::array<std::string_view, 3> names{"True", "False", "Unknown"};
};

bool read(Decoder& d, const json& v, const std::string& path, Condition& out) {
  if (!expectObject(d, v, path)) return false;
  req(d, v, path, "type", out.type);
  req(d, v, path, "status", out.status);
  opt(d, v, path, "reason", out.reason);
  opt(d, v, path, "message", out.message);
  opt(d, v, path, "lastTransitionTime", out.lastTransitionTime);
  opt(d, v, path, "observedGeneration", out.observedGeneration);
  return d.ok();
}
}  // namespace detail

std::string_view toString(ConditionStatus s) { return detail::enumName(s); }
std::optional<ConditionStatus> parseConditionStatus(std::string_view s) {
  return detail::enumParse<ConditionStatus>(s);
}

std::expected<Condition, std::string> Condition::fromJson(const nlohmann::json& j) {
  detail::Decoder d;
  Condition c;
  if (!read(d, j, "", c)) return std::unexpected(d.error());
  return c;
}

nlohmann::json Condition::toJson() const {
  nlohmann::json o{{"type", type},
                   {"status", std::string(toString(status))},
                   {"reason", reason},
                   {"message", message},
                   {"lastTransitionTime", formatTime(lastTransitionTime)}};
  if (observedGeneration != 0) o["observedGeneration"] = observedGeneration;
  return o;
}

Condition* findCondition(std::vector<Condition>& conditions, std::string_view type) {
  for (auto& c : conditions)
    if (c.type == type) return &c;
  return nullptr;
}

const Condition* findCondition(const std::vector<Condition>& conditions, std::string_view type) {
  for (const auto& c : conditions)
    if (c.type == type) return &c;
  return nullptr;
}

bool setCondition(std::vector<Condition>& conditions, Condition c, SystemTime now) {
  Condition* existing = findCondition(conditions, c.type);
  if (!existing) {
    if (c.lastTransitionTime == SystemTime{}) c.lastTransitionTime = now;
    conditions.push_back(std::move(c));
    return true;
  }
  bool changed = false;
  if (existing->status != c.status) {
    existing->status = c.status;
    existing->lastTransitionTime = c.lastTransitionTime == SystemTime{} ? now : c.lastTransitionTime;
    changed = true;
  }
  if (existing->reason != c.reason) {
    existing->reason = std::move(c.reason);
    changed = true;
  }
  if (existing->message != c.message) {
    existing->message = std::move(c.message);
    changed = true;
  }
  if (existing->observedGeneration != c.observedGeneration) {
    existing->observedGeneration = c.observedGeneration;
    changed = true;
  }
  return changed;
}

bool removeCondition(std::vector<Condition>& conditions, std::string_view type) {
  auto it = std::remove_if(conditions.begin(), conditions.end(),
                           [&](const Condition& c) { return c.type == type; });
  bool removed = it != conditions.end();
  conditions.erase(it, conditions.end());
  return removed;
}

bool isTrue(const std::vector<Condition>& conditions, std::string_view type) {
  const Condition* c = findCondition(conditions, type);
  return c && c->status == ConditionStatus::True;
}

bool isFalse(const std::vector<Condition>& conditions, std::string_view type) {
  const Condition* c = findCondition(conditions, type);
  return c && c->status == ConditionStatus::False;
}

bool isTrueFor(const std::vector<Condition>& conditions, std::string_view type, int64_t generation) {
  const Condition* c = findCondition(conditions, type);
  return c && c->status == ConditionStatus::True && c->observedGeneration == generation;
}

}  // namespace waterline::api
