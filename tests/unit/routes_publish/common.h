#pragma once
// Objects and helpers shared by the routes_publish tests.
#include <chrono>
#include <functional>
#include <thread>

#include "fake_client.h"
#include "waterline/cache/informer.h"
#include "waterline/kube/resource.h"

namespace waterline::reconcilers::testsupport {

using kube::Json;

inline Json deploymentJson(const std::string& ns, const std::string& name, int tpmPerReplica = 60000) {
  return Json::parse(R"({
    "apiVersion": "waterline.dev/v1alpha1", "kind": "ModelDeployment",
    "metadata": {"name": ")" + name + R"(", "namespace": ")" + ns + R"(", "generation": 1},
    "spec": {
      "model": {"name": "meta-llama/Llama-3.1-8B-Instruct", "version": "v1"},
      "deploymentType": "Global",
      "template": {"spec": {"image": "vllm/vllm-openai:v0.6.3",
                            "ports": [{"name": "http", "containerPort": 8000}]}},
      "gpu": {"count": 1}, "replicas": 2,
      "throughput": {"tokensPerMinutePerReplica": )" + std::to_string(tpmPerReplica) + R"(}
    }})");
}

inline Json poolJson(const std::string& name, const std::string& region, const std::string& zone) {
  return Json::parse(R"({
    "apiVersion": "waterline.dev/v1alpha1", "kind": "CapacityPool",
    "metadata": {"name": ")" + name + R"(", "generation": 1},
    "spec": {"region": ")" + region + R"(", "dataZone": ")" + zone + R"(",
             "gpuProduct": "NVIDIA-H100-80GB-HBM3",
             "nodeSelector": {"matchLabels": {"waterline.dev/pool": ")" + name + R"("}},
             "sharing": {"mode": "Exclusive"}, "routing": {"maxUtilization": 0.8}}})");
}

inline Json podJson(const std::string& ns, const std::string& name, const std::string& deployment,
                    const std::string& pool, const std::string& ip, bool ready) {
  return {{"apiVersion", "v1"},
          {"kind", "Pod"},
          {"metadata",
           {{"name", name},
            {"namespace", ns},
            {"labels",
             {{"waterline.dev/deployment", deployment},
              {"waterline.dev/pool", pool},
              {"app.kubernetes.io/managed-by", "waterline"}}}}},
          {"status",
           {{"podIP", ip},
            {"conditions", Json::array({{{"type", "Ready"}, {"status", ready ? "True" : "False"}}})}}}};
}

// Polls `pred` (real time) for up to 5 s.
inline bool eventually(const std::function<bool()>& pred) {
  for (int i = 0; i < 500; ++i) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return pred();
}

}  // namespace waterline::reconcilers::testsupport
