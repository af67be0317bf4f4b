#pragma once
// Worker pods and ResourceClaims in DRA mode (docs/scheduling.md, "Allocation modes").
//
// In DRA mode a worker's GPUs are the devices of its own ResourceClaim, which Waterline
// creates with status.allocation already written (as kube-scheduler's DRA plugin does at
// PreBind) and, once the pod exists, reserves for the pod and hands to it as owner (the
// garbage collector deletes it with the pod). The pod refers to the claim in
// spec.resourceClaims, and the worker container asks for it in resources.claims; it asks
// for no nvidia.com/ extended resource and gets no device-index environment variables
// (the DRA driver gives the container exactly the claim's devices).
#include <string>

#include <nlohmann/json.hpp>

namespace waterline::planners {

// The pod claim entry's name (spec.resourceClaims[].name, resources.claims[].name).
inline constexpr const char* kDraPodClaimName = "gpu";
// The DeviceClass the request names (the NVIDIA driver's).
inline constexpr const char* kDraDeviceClass = "gpu.nvidia.com";

// "<pod>-gpu".
std::string draClaimName(const std::string& podName);

// The device-plugin worker pod (buildWorkerPod) turned into its DRA form: nvidia.com/
// resources and NVIDIA_VISIBLE_DEVICES / CUDA_VISIBLE_DEVICES removed from every
// container; the container that asked for GPUs gets resources.claims [{name: gpu}]; the
// pod gets spec.resourceClaims [{name: gpu, resourceClaimName: <claim>}].
nlohmann::json draWorkerPod(nlohmann::json pod, const std::string& claimName);

// The claim to create for a worker pod: labels (managed-by, deployment, pool, worker),
// owner the ModelDeployment (until the pod exists), one ExactCount request of `gpus`
// devices of the DeviceClass. Its status (allocation) is written after the create.
nlohmann::json draWorkerClaim(const nlohmann::json& pod, const std::string& claimName, int gpus);

// Merge patches: the claim's owner becomes the pod; the claim is reserved for it.
nlohmann::json draClaimOwnerPatch(const std::string& podName, const std::string& podUid);
nlohmann::json draClaimReservedForPatch(const std::string& podName, const std::string& podUid);

}  // namespace waterline::planners
