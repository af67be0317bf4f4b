#pragma once
// ResourceSlice and ResourceClaim JSON in the shape NVIDIA's DRA driver
// (k8s-dra-driver-gpu, cmd/gpu-kubelet-plugin) publishes through resource.k8s.io/v1.
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "waterline/dra/resource.h"

namespace waterline::dra::testing {

using Json = nlohmann::json;

inline Json str(const std::string& s) { return {{"string", s}}; }
inline Json ver(const std::string& s) { return {{"version", s}}; }
inline Json qty(const std::string& s) { return {{"value", s}}; }

inline Json slice(const std::string& name, const std::string& node, const std::string& pool, int64_t generation,
                  Json devices, Json sharedCounters = nullptr, int64_t sliceCount = 1) {
  Json spec = {{"driver", "gpu.nvidia.com"},
               {"pool", {{"name", pool}, {"generation", generation}, {"resourceSliceCount", sliceCount}}},
               {"nodeName", node},
               {"devices", std::move(devices)}};
  if (!sharedCounters.is_null()) spec["sharedCounters"] = std::move(sharedCounters);
  return {{"apiVersion", "resource.k8s.io/v1"},
          {"kind", "ResourceSlice"},
          {"metadata", {{"name", name}}},
          {"spec", std::move(spec)}};
}

inline Json gpuDevice(int minor, const std::string& product, const std::string& arch, const std::string& cc,
                      const std::string& memory) {
  return {{"name", "gpu-" + std::to_string(minor)},
          {"attributes",
           {{"type", str("gpu")},
            {"uuid", str("GPU-" + product.substr(7, 4) + "-0000-0000-0000-00000000000" + std::to_string(minor))},
            {"productName", str(product)},
            {"brand", str("Nvidia")},
            {"architecture", str(arch)},
            {"cudaComputeCapability", ver(cc)},
            {"driverVersion", ver("570.124.6")},
            {"cudaDriverVersion", ver("12.8.0")},
            {"pcieBusID", str("0000:" + std::to_string(10 + minor) + ":00.0")}}},
          {"capacity", {{"memory", qty(memory)}}}};
}

inline const char* kH100 = "NVIDIA H100 80GB HBM3";
inline const char* kA100 = "NVIDIA A100-SXM4-40GB";
inline const char* kL4 = "NVIDIA L4";

// 8 whole H100 GPUs.
inline Json h100Slice(const std::string& node, int64_t generation = 1, int gpus = 8) {
  Json devs = Json::array();
  for (int i = 0; i < gpus; ++i) devs.push_back(gpuDevice(i, kH100, "Hopper", "9.0.0", "81559Mi"));
  return slice(node + "-gpu.nvidia.com-abcde", node, node, generation, devs);
}

// A pre-created (static) MIG device: gpu-<minor>-mig-<profileId>-<start>-<size>.
inline Json migDevice(int minor, const std::string& product, const std::string& profile, int profileId, int start,
                      int size, const std::string& memory, int sms) {
  Json cap = {{"memory", qty(memory)}, {"multiprocessors", qty(std::to_string(sms))}, {"copyEngines", qty("1")},
              {"decoders", qty("0")}, {"encoders", qty("0")}, {"jpegEngines", qty("0")}, {"ofaEngines", qty("0")}};
  for (int s = start; s < start + size; ++s) cap["memorySlice" + std::to_string(s)] = qty("1");
  std::string name = "gpu-" + std::to_string(minor) + "-mig-" + std::to_string(profileId) + "-" +
                     std::to_string(start) + "-" + std::to_string(size);
  return {{"name", name},
          {"attributes",
           {{"type", str("mig")},
            {"uuid", str("MIG-" + std::to_string(minor) + "-" + std::to_string(start))},
            {"parentUUID", str("GPU-a100-" + std::to_string(minor))},
            {"profile", str(profile)},
            {"productName", str(product)},
            {"brand", str("Nvidia")},
            {"architecture", str("Ampere")},
            {"cudaComputeCapability", ver("8.0.0")},
            {"driverVersion", ver("570.124.6")},
            {"cudaDriverVersion", ver("12.8.0")}}},
          {"capacity", cap}};
}

// One A100-40GB with pre-created MIG instances: 3g.20gb at 0 and three 1g.5gb at 4, 5, 6.
inline Json a100MigSlice(const std::string& node, int64_t generation = 1) {
  Json devs = Json::array();
  devs.push_back(migDevice(0, kA100, "3g.20gb", 9, 0, 4, "19968Mi", 42));
  for (int s : {4, 5, 6}) devs.push_back(migDevice(0, kA100, "1g.5gb", 19, s, 1, "4864Mi", 14));
  return slice(node + "-gpu.nvidia.com-mig", node, node, generation, devs);
}

// Partitionable H100s (KEP-4815): per GPU one counter set "gpu-<minor>-counter-set" with
// memory, multiprocessors and memory-slice-0..7; the full GPU consumes all of it; MIG
// devices 1g.10gb (7 placements), 3g.40gb (starts 0, 4) and 7g.80gb consume parts.
inline Json partitionCounters(int minor) {
  Json c = {{"memory", qty("80Gi")}, {"multiprocessors", qty("132")}};
  for (int s = 0; s < 8; ++s) c["memory-slice-" + std::to_string(s)] = qty("1");
  return {{"name", "gpu-" + std::to_string(minor) + "-counter-set"}, {"counters", c}};
}

inline Json partMig(int minor, const std::string& profile, int profileId, int start, int size,
                    const std::string& memory, int sms) {
  Json counters = {{"memory", qty(memory)}, {"multiprocessors", qty(std::to_string(sms))}};
  for (int s = start; s < start + size; ++s) counters["memory-slice-" + std::to_string(s)] = qty("1");
  std::string name = "gpu-" + std::to_string(minor) + "-mig-" + std::to_string(profileId) + "-" +
                     std::to_string(start) + "-" + std::to_string(size);
  return {{"name", name},
          {"attributes",
           {{"type", str("mig")},
            {"parentUUID", str("GPU-h100-" + std::to_string(minor))},
            {"profile", str(profile)},
            {"productName", str(kH100)},
            {"architecture", str("Hopper")},
            {"cudaComputeCapability", ver("9.0.0")}}},
          {"capacity", {{"memory", qty(memory)}, {"multiprocessors", qty(std::to_string(sms))}}},
          {"consumesCounters",
           Json::array({{{"counterSet", "gpu-" + std::to_string(minor) + "-counter-set"}, {"counters", counters}}})}};
}

inline Json partitionableH100Slice(const std::string& node, int64_t generation = 1, int gpus = 2) {
  Json devs = Json::array(), sets = Json::array();
  for (int g = 0; g < gpus; ++g) {
    Json full = gpuDevice(g, kH100, "Hopper", "9.0.0", "80Gi");
    full["consumesCounters"] =
        Json::array({{{"counterSet", "gpu-" + std::to_string(g) + "-counter-set"},
                      {"counters", partitionCounters(g)["counters"]}}});
    devs.push_back(full);
    for (int s = 0; s < 7; ++s) devs.push_back(partMig(g, "1g.10gb", 19, s, 1, "10Gi", 16));
    for (int s : {0, 4}) devs.push_back(partMig(g, "3g.40gb", 9, s, 4, "40Gi", 60));
    devs.push_back(partMig(g, "7g.80gb", 0, 0, 8, "80Gi", 132));
    sets.push_back(partitionCounters(g));
  }
  return slice(node + "-gpu.nvidia.com-part", node, node, generation, devs, sets);
}

// Four L4 GPUs; time-slicing is the claim's config, the slice shows whole GPUs.
inline Json l4Slice(const std::string& node, int64_t generation = 1) {
  Json devs = Json::array();
  for (int i = 0; i < 4; ++i) devs.push_back(gpuDevice(i, kL4, "Ada Lovelace", "8.9.0", "23034Mi"));
  return slice(node + "-gpu.nvidia.com-l4", node, node, generation, devs);
}

// A claim allocated by someone (kube-scheduler for a foreign pod, or Waterline).
inline Json allocatedClaim(const std::string& ns, const std::string& name, const std::string& node,
                           const std::vector<std::pair<std::string, std::string>>& poolDevices,
                           const std::string& podName = "other-pod") {
  Json results = Json::array();
  for (const auto& [pool, dev] : poolDevices)
    results.push_back({{"request", "gpu"}, {"driver", "gpu.nvidia.com"}, {"pool", pool}, {"device", dev}});
  return {{"apiVersion", "resource.k8s.io/v1"},
          {"kind", "ResourceClaim"},
          {"metadata", {{"namespace", ns}, {"name", name}, {"uid", "uid-" + name}}},
          {"spec",
           {{"devices",
             {{"requests",
               Json::array({{{"name", "gpu"},
                             {"exactly",
                              {{"deviceClassName", "gpu.nvidia.com"},
                               {"allocationMode", "ExactCount"},
                               {"count", poolDevices.size()}}}}})}}}}},
          {"status",
           {{"allocation",
             {{"devices", {{"results", results}}},
              {"nodeSelector",
               {{"nodeSelectorTerms",
                 Json::array({{{"matchFields",
                                Json::array({{{"key", "metadata.name"}, {"operator", "In"},
                                              {"values", Json::array({node})}}})}}})}}}}},
            {"reservedFor",
             Json::array({{{"resource", "pods"}, {"name", podName}, {"uid", "uid-" + podName}}})}}}};
}

inline ResourceSlice decodeSlice(const Json& j) {
  auto s = decodeResourceSlice(j);
  if (!s) throw std::runtime_error(s.error());
  return *s;
}

inline ResourceClaim decodeClaim(const Json& j) {
  auto c = decodeResourceClaim(j);
  if (!c) throw std::runtime_error(c.error());
  return *c;
}

}  // namespace waterline::dra::testing
