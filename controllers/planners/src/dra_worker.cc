#include "waterline/planners/dra_worker.h"

#include "waterline/api/keys.h"

namespace waterline::planners {

using json = nlohmann::json;

std::string draClaimName(const std::string& podName) { return podName + "-gpu"; }

json draWorkerPod(json pod, const std::string& claimName) {
  json& spec = pod["spec"];
  if (spec.contains("containers") && spec["containers"].is_array())
    for (auto& c : spec["containers"]) {
      if (!c.is_object()) continue;
      bool hadGpus = false;
      if (c.contains("resources") && c["resources"].is_object())
        for (const char* part : {"requests", "limits"}) {
          auto it = c["resources"].find(part);
          if (it == c["resources"].end() || !it->is_object()) continue;
          for (auto r = it->begin(); r != it->end();) {
            if (r.key().starts_with("nvidia.com/")) {
              hadGpus = true;
              r = it->erase(r);
            } else {
              ++r;
            }
          }
        }
      if (c.contains("env") && c["env"].is_array()) {
        json env = json::array();
        for (const auto& e : c["env"]) {
          const std::string n = e.is_object() ? e.value("name", "") : "";
          if (n != "NVIDIA_VISIBLE_DEVICES" && n != "CUDA_VISIBLE_DEVICES") env.push_back(e);
        }
        c["env"] = std::move(env);
      }
      if (hadGpus) c["resources"]["claims"] = json::array({{{"name", kDraPodClaimName}}});
    }
  spec["resourceClaims"] = json::array({{{"name", kDraPodClaimName}, {"resourceClaimName", claimName}}});
  return pod;
}

json draWorkerClaim(const json& pod, const std::string& claimName, int gpus) {
  const auto& md = pod.at("metadata");
  const json& podLabels = md.value("labels", json::object());
  json labels = {{std::string(api::labels::kManagedBy), std::string(api::labels::kManagedByValue)},
                 {std::string(api::labels::kWorker), md.value("name", "")}};
  for (auto k : {api::labels::kDeployment, api::labels::kPool})
    if (podLabels.contains(std::string(k))) labels[std::string(k)] = podLabels[std::string(k)];
  json meta = {{"name", claimName}, {"namespace", md.value("namespace", "")}, {"labels", labels}};
  if (md.contains("ownerReferences")) {  // the ModelDeployment, as controller, until the pod owns it
    json owners = md["ownerReferences"];
    for (auto& o : owners) o["blockOwnerDeletion"] = false;
    meta["ownerReferences"] = owners;
  }
  return {{"apiVersion", "resource.k8s.io/v1"},
          {"kind", "ResourceClaim"},
          {"metadata", meta},
          {"spec",
           {{"devices",
             {{"requests", json::array({{{"name", kDraPodClaimName},
                                         {"exactly",
                                          {{"deviceClassName", kDraDeviceClass},
                                           {"allocationMode", "ExactCount"},
                                           {"count", gpus}}}}})}}}}}};
}

json draClaimOwnerPatch(const std::string& podName, const std::string& podUid) {
  return {{"metadata",
           {{"ownerReferences", json::array({{{"apiVersion", "v1"},
                                              {"kind", "Pod"},
                                              {"name", podName},
                                              {"uid", podUid},
                                              {"controller", true},
                                              {"blockOwnerDeletion", true}}})}}}};
}

json draClaimReservedForPatch(const std::string& podName, const std::string& podUid) {
  return {{"status", {{"reservedFor", json::array({{{"resource", "pods"}, {"name", podName}, {"uid", podUid}}})}}}};
}

}  // namespace waterline::planners
