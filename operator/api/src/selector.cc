#include "waterline/api/selector.h"

#include <algorithm>

#include "codec.h"

namespace waterline::api {

namespace detail {
template <>
struct EnumNames<SelectorOperator> {
  static constexpr std::array<std::string_view, 4> names{"In", "NotIn", "Exists", "DoesNotExist"};
};

bool read(Decoder& d, const json& v, const std::string& path, LabelSelectorRequirement& out) {
  if (!expectObject(d, v, path)) return false;
  req(d, v, path, "key", out.key);
  req(d, v, path, "operator", out.op);
  opt(d, v, path, "values", out.values);
  return d.ok();
}

bool read(Decoder& d, const json& v, const std::string& path, LabelSelector& out) {
  if (!expectObject(d, v, path)) return false;
  opt(d, v, path, "matchLabels", out.matchLabels);
  opt(d, v, path, "matchExpressions", out.matchExpressions);
  return d.ok();
}
}  // namespace detail

std::string_view toString(SelectorOperator op) { return detail::enumName(op); }
std::optional<SelectorOperator> parseSelectorOperator(std::string_view s) {
  return detail::enumParse<SelectorOperator>(s);
}

bool LabelSelectorRequirement::matches(const Labels& labels) const {
  auto it = labels.find(key);
  bool has = it != labels.end();
  auto in = [&] { return has && std::find(values.begin(), values.end(), it->second) != values.end(); };
  switch (op) {
    case SelectorOperator::In:
      return in();
    case SelectorOperator::NotIn:
      return !in();
    case SelectorOperator::Exists:
      return has;
    case SelectorOperator::DoesNotExist:
      return !has;
  }
  return false;
}

bool LabelSelector::matches(const Labels& labels) const {
  for (const auto& [k, v] : matchLabels) {
    auto it = labels.find(k);
    if (it == labels.end() || it->second != v) return false;
  }
  for (const auto& r : matchExpressions)
    if (!r.matches(labels)) return false;
  return true;
}

std::string LabelSelector::toString() const {
  // (key, rendered requirement); stable sort by key keeps matchLabels before expressions.
  std::vector<std::pair<std::string, std::string>> reqs;
  for (const auto& [k, v] : matchLabels) reqs.emplace_back(k, k + "=" + v);
  for (const auto& r : matchExpressions) {
    std::vector<std::string> vals = r.values;
    std::sort(vals.begin(), vals.end());
    vals.erase(std::unique(vals.begin(), vals.end()), vals.end());
    std::string list;
    for (size_t i = 0; i < vals.size(); ++i) list += (i ? "," : "") + vals[i];
    switch (r.op) {
      case SelectorOperator::In:
        reqs.emplace_back(r.key, r.key + " in (" + list + ")");
        break;
      case SelectorOperator::NotIn:
        reqs.emplace_back(r.key, r.key + " notin (" + list + ")");
        break;
      case SelectorOperator::Exists:
        reqs.emplace_back(r.key, r.key);
        break;
      case SelectorOperator::DoesNotExist:
        reqs.emplace_back(r.key, "!" + r.key);
        break;
    }
  }
  std::stable_sort(reqs.begin(), reqs.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  std::string out;
  for (size_t i = 0; i < reqs.size(); ++i) out += (i ? "," : "") + reqs[i].second;
  return out;
}

std::expected<LabelSelector, std::string> LabelSelector::fromJson(const nlohmann::json& j) {
  detail::Decoder d;
  LabelSelector s;
  if (!read(d, j, "", s)) return std::unexpected(d.error());
  return s;
}

nlohmann::json LabelSelector::toJson() const {
  nlohmann::json o = nlohmann::json::object();
  if (!matchLabels.empty()) o["matchLabels"] = detail::toJ(matchLabels);
  if (!matchExpressions.empty()) {
    auto a = nlohmann::json::array();
    for (const auto& r : matchExpressions) {
      nlohmann::json e{{"key", r.key}, {"operator", std::string(api::toString(r.op))}};
      if (!r.values.empty()) e["values"] = r.values;
      a.push_back(std::move(e));
    }
    o["matchExpressions"] = std::move(a);
  }
  return o;
}

std::string selectorStringFromLabels(const Labels& labels) {
  std::string out;
  for (const auto& [k, v] : labels) out += (out.empty() ? "" : ",") + k + "=" + v;
  return out;
}

}  // namespace waterline::api
