#include "waterline/planners/reservations.h"

#include <algorithm>
#include <climits>
#include <cmath>

#include "waterline/planners/autoscaler.h"

namespace waterline::planners {

namespace {
std::string namespaceOf(const nlohmann::json& o) {
  auto m = o.find("metadata");
  if (m == o.end() || !m->is_object()) return "";
  auto n = m->find("namespace");
  return n != m->end() && n->is_string() ? n->get<std::string>() : "";
}
}  // namespace

int32_t ptuFloorFor(const std::vector<std::shared_ptr<const nlohmann::json>>& reservations, const std::string& ns,
                    const std::string& deployment) {
  int64_t sum = 0;
  for (const auto& r : reservations) {
    if (namespaceOf(*r) != ns) continue;
    const auto& j = *r;
    if (!j.contains("spec") || !j["spec"].contains("deploymentRef")) continue;
    if (j["spec"]["deploymentRef"].value("name", "") != deployment) continue;
    if (!j.contains("status") || j["status"].value("phase", "") != "Active") continue;
    if (j.contains("metadata") && j["metadata"].contains("deletionTimestamp")) continue;
    const auto& rr = j["status"].value("reservedReplicas", nlohmann::json(0));
    if (rr.is_number_integer()) sum += std::max<int64_t>(0, rr.get<int64_t>());
  }
  return int32_t(std::min<int64_t>(sum, INT32_MAX));
}

int32_t reservedGpusInPool(const std::vector<std::shared_ptr<const nlohmann::json>>& reservations,
                           const std::string& pool) {
  double sum = 0;
  for (const auto& r : reservations) {
    if (!r->contains("status") || (*r)["status"].value("phase", "") != "Active") continue;
    const auto& st = (*r)["status"];
    if (!st.contains("placements") || !st["placements"].is_array()) continue;
    for (const auto& p : st["placements"])
      if (p.value("pool", "") == pool && p.contains("gpus") && p["gpus"].is_number()) sum += p["gpus"].get<double>();
  }
  return int32_t(std::ceil(sum - 1e-9));
}


void stripAutoscalerStatus(nlohmann::json& status) {
  if (!status.is_object()) return;
  status.erase("autoscaling");
  if (!status.contains("conditions") || !status["conditions"].is_array()) return;
  nlohmann::json kept = nlohmann::json::array();
  for (const auto& c : status["conditions"]) {
    const std::string t = c.value("type", "");
    if (t == autoscaling::kScalingActive || t == autoscaling::kScalingLimited) continue;
    kept.push_back(c);
  }
  status["conditions"] = std::move(kept);
}

}  // namespace waterline::planners
