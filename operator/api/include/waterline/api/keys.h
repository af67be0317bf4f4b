#pragma once
// Well-known keys: Waterline labels, annotations and finalizer; condition types and
// reasons; NVIDIA GPU Feature Discovery / device-plugin names; Kubernetes topology labels.
#include <string>
#include <string_view>

namespace waterline::api {

// ---- Waterline labels (on worker pods and the objects the operator creates) ----
namespace labels {
inline constexpr std::string_view kDeployment = "waterline.dev/deployment";      // ModelDeployment name
inline constexpr std::string_view kPool = "waterline.dev/pool";                  // CapacityPool name
inline constexpr std::string_view kModel = "waterline.dev/model";                // modelLabelValue(spec.model.name)
inline constexpr std::string_view kModelVersion = "waterline.dev/model-version";  // spec.model.version
inline constexpr std::string_view kTemplateHash = "waterline.dev/template-hash";  // hash of the worker template
inline constexpr std::string_view kManagedBy = "app.kubernetes.io/managed-by";
inline constexpr std::string_view kManagedByValue = "waterline";
inline constexpr std::string_view kPartOf = "app.kubernetes.io/part-of";
inline constexpr std::string_view kWorker = "waterline.dev/worker";  // on a worker's ResourceClaim: the pod's name
}  // namespace labels

// ---- Waterline annotations ----
namespace annotations {
// On a worker pod: the GPUs/slices it was given on its node, so that a restarted operator
// rebuilds the inventory without double allocation. Format: see docs/api.md.
inline constexpr std::string_view kGpuAssignment = "waterline.dev/gpu-assignment";
// On a worker pod: RFC 3339 time the replica left routing before deletion.
inline constexpr std::string_view kDrainingSince = "waterline.dev/draining-since";
// On a ModelDeployment: autoscaler recommendation history (JSON), safe to lose.
inline constexpr std::string_view kAutoscalerState = "waterline.dev/autoscaler-state";
// On a node: "true" keeps the operator from placing new replicas there.
}  // namespace annotations

inline constexpr std::string_view kFinalizer = "waterline.dev/finalizer";
inline constexpr std::string_view kFieldManager = "waterline-operator";

// ---- Condition types ----
namespace conditions {
// CapacityPool
inline constexpr std::string_view kReady = "Ready";        // also PTUReservation
inline constexpr std::string_view kDegraded = "Degraded";  // also ModelDeployment
// ModelDeployment
inline constexpr std::string_view kAvailable = "Available";
inline constexpr std::string_view kProgressing = "Progressing";
inline constexpr std::string_view kScheduled = "Scheduled";
inline constexpr std::string_view kScalingActive = "ScalingActive";
inline constexpr std::string_view kScalingLimited = "ScalingLimited";
inline constexpr std::string_view kCacheReady = "CacheReady";  // spec.cache set
// PTUReservation
inline constexpr std::string_view kInsufficient = "Insufficient";
}  // namespace conditions

// ---- Condition reasons (CamelCase, as metav1.Condition requires) ----
namespace reasons {
// generic
inline constexpr std::string_view kReconciled = "Reconciled";
inline constexpr std::string_view kReconcileError = "ReconcileError";
inline constexpr std::string_view kInvalidSpec = "InvalidSpec";
// CapacityPool Ready / Degraded
inline constexpr std::string_view kNodesReady = "NodesReady";
inline constexpr std::string_view kNoNodes = "NoNodes";
inline constexpr std::string_view kNodesNotReady = "NodesNotReady";
inline constexpr std::string_view kGpusUnhealthy = "GPUsUnhealthy";
inline constexpr std::string_view kAllHealthy = "AllHealthy";
// a node's topology.kubernetes.io/region (or /zone, waterline.dev/data-zone) label
// contradicts the pool's spec.region / spec.dataZone: the node is not used
inline constexpr std::string_view kTopologyMismatch = "TopologyMismatch";
// spec.sharing.migProfiles lists a profile the pool's GPU product does not have
inline constexpr std::string_view kUnsupportedMigProfile = "UnsupportedMigProfile";
// ModelDeployment Available / Progressing / Degraded / Scheduled
inline constexpr std::string_view kMinimumReplicasAvailable = "MinimumReplicasAvailable";
inline constexpr std::string_view kMinimumReplicasUnavailable = "MinimumReplicasUnavailable";
inline constexpr std::string_view kRollingOut = "RollingOut";
inline constexpr std::string_view kScaling = "Scaling";
inline constexpr std::string_view kRolloutComplete = "RolloutComplete";
inline constexpr std::string_view kReplicasUnhealthy = "ReplicasUnhealthy";
inline constexpr std::string_view kReplicasHealthy = "ReplicasHealthy";
inline constexpr std::string_view kAllReplicasScheduled = "AllReplicasScheduled";
inline constexpr std::string_view kInsufficientCapacity = "InsufficientCapacity";  // also PTUReservation
inline constexpr std::string_view kNoMatchingPool = "NoMatchingPool";
// ModelDeployment CacheReady
inline constexpr std::string_view kCacheConfigured = "CacheConfigured";
inline constexpr std::string_view kEmbeddingsDeploymentNotFound = "EmbeddingsDeploymentNotFound";
// the apiserver refused a worker pod (or the create failed): Scheduled=False, Degraded=True
inline constexpr std::string_view kWorkerCreateFailed = "WorkerCreateFailed";
// ModelDeployment ScalingActive / ScalingLimited
inline constexpr std::string_view kValidMetric = "ValidMetric";
inline constexpr std::string_view kFailedGetMetric = "FailedGetMetric";
inline constexpr std::string_view kAutoscalingDisabled = "AutoscalingDisabled";
inline constexpr std::string_view kTooFewReplicas = "TooFewReplicas";
inline constexpr std::string_view kTooManyReplicas = "TooManyReplicas";
inline constexpr std::string_view kDesiredWithinRange = "DesiredWithinRange";
// PTUReservation Ready / Insufficient
inline constexpr std::string_view kProvisioned = "Provisioned";
inline constexpr std::string_view kNotStarted = "NotStarted";
inline constexpr std::string_view kExpired = "Expired";
inline constexpr std::string_view kCapacityAvailable = "CapacityAvailable";
inline constexpr std::string_view kDeploymentNotFound = "DeploymentNotFound";
inline constexpr std::string_view kThroughputUnknown = "ThroughputUnknown";
}  // namespace reasons

// ---- NVIDIA GPU Feature Discovery node labels and device-plugin resources ----
namespace gfd {
inline constexpr std::string_view kGpuProduct = "nvidia.com/gpu.product";
inline constexpr std::string_view kGpuCount = "nvidia.com/gpu.count";
inline constexpr std::string_view kGpuMemory = "nvidia.com/gpu.memory";  // MiB per GPU
inline constexpr std::string_view kGpuReplicas = "nvidia.com/gpu.replicas";  // time-slicing/MPS shares
inline constexpr std::string_view kGpuSharingStrategy = "nvidia.com/gpu.sharing-strategy";
inline constexpr std::string_view kMigCapable = "nvidia.com/mig.capable";
inline constexpr std::string_view kMigStrategy = "nvidia.com/mig.strategy";  // none|single|mixed
inline constexpr std::string_view kGpuResource = "nvidia.com/gpu";  // allocatable whole (or shared) GPUs
// "nvidia.com/mig-1g.10gb.count"
std::string migCountLabel(std::string_view profile);
// "nvidia.com/mig-1g.10gb": the device-plugin resource of a MIG profile (mixed strategy).
std::string migResource(std::string_view profile);
}  // namespace gfd

// ---- Kubernetes well-known labels ----
namespace k8s {
inline constexpr std::string_view kRegion = "topology.kubernetes.io/region";
inline constexpr std::string_view kZone = "topology.kubernetes.io/zone";
inline constexpr std::string_view kHostname = "kubernetes.io/hostname";
}  // namespace k8s

// True for a label or annotation key under the operator's own prefix: "waterline.dev/..."
// or a subdomain of it ("x.waterline.dev/..."), compared without regard to case. Worker
// templates may not set these: the operator reads them back from its pods (draining-since,
// gpu-assignment, ...), so a template that set one would steer the operator (a template
// annotation draining-since drained and recreated every worker, about 600 pods a minute).
bool isReservedKey(std::string_view key);

// True for a valid label value: at most 63 characters, alphanumerics with '-', '_', '.'
// inside, beginning and ending alphanumeric (or empty).
bool isValidLabelValue(std::string_view v);
// A label value for any string: characters outside [-A-Za-z0-9_.] become '.', ("/"
// included: "meta-llama/Llama-3.1-8B" -> "meta-llama.Llama-3.1-8B"), cut to 63 characters
// and trimmed to alphanumeric ends. Used for waterline.dev/model.
std::string modelLabelValue(std::string_view modelName);

}  // namespace waterline::api
