// Fuzzes api::LabelSelector (metav1.LabelSelector): decoding and matching.
//
// Input: JSON. Either a selector, or {"selector": <selector>, "labels": [<label map>...]}.
// Invariants, for every selector that decodes:
//   - toJson -> fromJson gives an equal selector with the same string form and the same
//     answer on every label set;
//   - an empty selector matches everything; an equality-only selector matches its own
//     matchLabels and its string form is selectorStringFromLabels(matchLabels);
//   - In and NotIn on the same key and values are complements, as are Exists and
//     DoesNotExist;
//   - matches() is the conjunction of matchLabels and every requirement.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "fuzz_check.h"
#include "waterline/api/selector.h"

using nlohmann::json;
using namespace waterline::api;

namespace {

Labels labelsOf(const json& j) {
  Labels l;
  if (!j.is_object()) return l;
  for (auto it = j.begin(); it != j.end(); ++it)
    if (it.value().is_string()) l[it.key()] = it.value().get<std::string>();
  return l;
}

LabelSelectorRequirement withOp(LabelSelectorRequirement r, SelectorOperator op) {
  r.op = op;
  return r;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const json doc = json::parse(data, data + size, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return 0;
  const bool wrapped = doc.is_object() && doc.contains("selector");
  auto sel = LabelSelector::fromJson(wrapped ? doc["selector"] : doc);
  if (!sel) {
    WL_FUZZ_CHECK(!sel.error().empty(), "an error without a message");
    return 0;
  }

  std::vector<Labels> sets{Labels{}, sel->matchLabels};
  if (wrapped && doc.contains("labels") && doc["labels"].is_array())
    for (const auto& l : doc["labels"]) sets.push_back(labelsOf(l));
  // Label sets built from the requirements: each key with its first value, and without.
  Labels firstValues = sel->matchLabels;
  for (const auto& r : sel->matchExpressions)
    if (!r.values.empty()) firstValues[r.key] = r.values.front();
  sets.push_back(firstValues);

  auto back = LabelSelector::fromJson(sel->toJson());
  WL_FUZZ_CHECK(back.has_value(), "toJson does not decode: %s", back.error().c_str());
  WL_FUZZ_CHECK(*back == *sel, "toJson/fromJson changed the selector: %s", sel->toJson().dump().c_str());
  const std::string str = sel->toString();
  WL_FUZZ_CHECK(back->toString() == str, "string form changed: %s vs %s", str.c_str(), back->toString().c_str());
  if (sel->empty()) WL_FUZZ_CHECK(str.empty(), "empty selector renders as %s", str.c_str());
  if (sel->matchExpressions.empty()) {
    WL_FUZZ_CHECK(sel->matches(sel->matchLabels), "an equality selector does not match its own labels");
    WL_FUZZ_CHECK(str == selectorStringFromLabels(sel->matchLabels), "%s vs %s", str.c_str(),
                  selectorStringFromLabels(sel->matchLabels).c_str());
  }

  for (const Labels& l : sets) {
    const bool m = sel->matches(l);
    WL_FUZZ_CHECK(back->matches(l) == m, "round trip changed matching");
    if (sel->empty()) WL_FUZZ_CHECK(m, "an empty selector did not match");
    bool all = true;
    for (const auto& [k, v] : sel->matchLabels) {
      auto it = l.find(k);
      all = all && it != l.end() && it->second == v;
    }
    for (const auto& r : sel->matchExpressions) {
      const bool rm = r.matches(l);
      all = all && rm;
      switch (r.op) {
        case SelectorOperator::In:
        case SelectorOperator::NotIn:
          WL_FUZZ_CHECK(withOp(r, SelectorOperator::In).matches(l) != withOp(r, SelectorOperator::NotIn).matches(l),
                        "In and NotIn on %s agree", r.key.c_str());
          break;
        case SelectorOperator::Exists:
        case SelectorOperator::DoesNotExist:
          WL_FUZZ_CHECK(withOp(r, SelectorOperator::Exists).matches(l) !=
                            withOp(r, SelectorOperator::DoesNotExist).matches(l),
                        "Exists and DoesNotExist on %s agree", r.key.c_str());
          WL_FUZZ_CHECK(rm == (r.op == SelectorOperator::Exists ? l.count(r.key) == 1 : l.count(r.key) == 0),
                        "Exists/DoesNotExist on %s", r.key.c_str());
          break;
      }
    }
    WL_FUZZ_CHECK(m == all, "matches() is not the conjunction of its requirements");
  }
  return 0;
}
