#pragma once
// metav1.LabelSelector: matchLabels + matchExpressions.
#include <expected>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "waterline/api/meta.h"

namespace waterline::api {

enum class SelectorOperator { In, NotIn, Exists, DoesNotExist };
std::string_view toString(SelectorOperator op);
std::optional<SelectorOperator> parseSelectorOperator(std::string_view s);

struct LabelSelectorRequirement {
  std::string key;
  SelectorOperator op = SelectorOperator::Exists;  // JSON "operator"
  std::vector<std::string> values;

  bool matches(const Labels& labels) const;
  bool operator==(const LabelSelectorRequirement&) const = default;
};

struct LabelSelector {
  Labels matchLabels;
  std::vector<LabelSelectorRequirement> matchExpressions;

  // Kubernetes semantics: every matchLabels pair and every requirement must hold.
  // In needs the key present with one of the values; NotIn holds when the key is absent
  // or its value is none of the values; Exists / DoesNotExist test the key only.
  // An empty selector matches everything.
  bool matches(const Labels& labels) const;
  bool empty() const { return matchLabels.empty() && matchExpressions.empty(); }

  // The string form (as labels.Selector.String()): requirements sorted by key, values
  // sorted: "app=x,env in (a,b),gpu,!tainted,zone notin (z1)". Empty for an empty selector.
  std::string toString() const;

  static std::expected<LabelSelector, std::string> fromJson(const nlohmann::json& j);
  nlohmann::json toJson() const;
  bool operator==(const LabelSelector&) const = default;
};

// "k1=v1,k2=v2" (sorted by key) for an equality-only selector, e.g. status.selector.
std::string selectorStringFromLabels(const Labels& labels);

}  // namespace waterline::api
