#pragma once
// ModelDeployment (namespaced): inference workers for one model version.
// Schema: crds/waterline.dev_modeldeployments.yaml; reference: docs/api.md.
#include <cstdint>
#include <expected>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "waterline/api/conditions.h"
#include "waterline/api/meta.h"
#include "waterline/api/quantity.h"

namespace waterline::api {

enum class DeploymentType { Standard, DataZone, Global };
std::string_view toString(DeploymentType t);
std::optional<DeploymentType> parseDeploymentType(std::string_view s);

enum class Protocol { TCP, UDP, SCTP };
std::string_view toString(Protocol p);
std::optional<Protocol> parseProtocol(std::string_view s);

enum class ScalingPolicyType { Pods, Percent };
std::string_view toString(ScalingPolicyType t);
std::optional<ScalingPolicyType> parseScalingPolicyType(std::string_view s);

enum class SelectPolicy { Max, Min, Disabled };
std::string_view toString(SelectPolicy p);
std::optional<SelectPolicy> parseSelectPolicy(std::string_view s);

enum class CacheMode { Exact, Semantic };
std::string_view toString(CacheMode m);
std::optional<CacheMode> parseCacheMode(std::string_view s);

inline constexpr std::string_view kDefaultAutoscalingQuery =
    R"(sum(rate(vllm:generation_tokens_total{namespace="{{namespace}}",deployment="{{deployment}}"}[1m])))";
inline constexpr int32_t kDefaultReplicas = 1;
inline constexpr int64_t kDefaultMaxUnavailable = 1;
inline constexpr int32_t kDefaultDrainSeconds = 30;
inline constexpr double kDefaultTolerance = 0.1;
inline constexpr int32_t kDefaultScaleUpWindowSeconds = 0;
inline constexpr int32_t kDefaultScaleDownWindowSeconds = 300;
inline constexpr std::string_view kDefaultHealthPath = "/health";
inline constexpr int32_t kDefaultHealthPeriodSeconds = 10;
inline constexpr int32_t kDefaultHealthTimeoutSeconds = 2;
inline constexpr int32_t kDefaultHealthFailureThreshold = 3;
inline constexpr int32_t kDefaultHealthSuccessThreshold = 1;
// spec.startupTimeoutSeconds: how long a worker may take to answer its first health check.
inline constexpr int32_t kDefaultStartupTimeoutSeconds = 1800;

struct ModelRef {
  std::string name;
  std::string version;
  bool operator==(const ModelRef&) const = default;
};

struct EnvVar {
  std::string name;
  std::string value;  // empty = absent
  bool operator==(const EnvVar&) const = default;
};

struct ContainerPort {
  std::string name;  // empty = absent
  int32_t containerPort = 0;
  Protocol protocol = Protocol::TCP;
  bool operator==(const ContainerPort&) const = default;
};

struct ResourceList {
  std::optional<Quantity> cpu;
  std::optional<Quantity> memory;
  bool operator==(const ResourceList&) const = default;
};

struct ResourceRequirements {
  ResourceList requests;
  ResourceList limits;
  bool operator==(const ResourceRequirements&) const = default;
};

// The deprecated flat shorthand of spec.template.spec (image, imagePullPolicy, command,
// args, env with name/value, ports, cpu/memory resources, serviceAccountName): the shape
// before spec.template became a PodTemplateSpec. Only used to keep the template hash of
// such templates what it was (legacyTemplateJson), so an operator upgrade rolls nothing.
struct WorkerPodSpec {
  std::string image;
  std::string imagePullPolicy;  // "", Always, IfNotPresent, Never
  std::vector<std::string> command;
  std::vector<std::string> args;
  std::vector<EnvVar> env;
  std::vector<ContainerPort> ports;
  ResourceRequirements resources;
  std::string serviceAccountName;  // empty = absent
  bool operator==(const WorkerPodSpec&) const = default;
};

// Container name of the shorthand's one container.
inline constexpr std::string_view kShorthandContainerName = "worker";

// spec.template: a core/v1 PodTemplateSpec, kept as the JSON it was given (the CRD's
// schema prunes and checks it; the operator passes it through to the worker pods and
// merges its own fields on top, planners::renderWorkerPod). spec.template.spec either has
// `containers`, or is the deprecated shorthand: `image` (+ imagePullPolicy, command, args,
// env, ports, resources) describing one container named "worker".
struct WorkerTemplate {
  nlohmann::json raw = nlohmann::json::object();

  // metadata.labels / metadata.annotations (string values only).
  std::map<std::string, std::string> labels() const;
  std::map<std::string, std::string> annotations() const;
  // spec.image is set (the shorthand).
  bool shorthand() const;
  // The PodSpec with the shorthand expanded: its flat fields become containers[0], named
  // "worker" (resources included: in the shorthand they are the container's). A copy.
  nlohmann::json podSpec() const;
  bool operator==(const WorkerTemplate&) const = default;
};

// The shorthand template's encoding before spec.template became a PodTemplateSpec, or
// nullopt when the template uses anything beyond the old shape. The template hash of such
// a template is computed from it, so workers made by an older operator are not rolled.
std::optional<nlohmann::json> legacyTemplateJson(const WorkerTemplate& t);

enum class GpuRequestKind { Count, MigProfile, Shares };

// Exactly one of count, migProfile, sharesPerGpu (checked by the CRD and validate()).
struct GpuRequest {
  std::optional<int32_t> count;           // whole GPUs (1..8)
  std::optional<std::string> migProfile;  // one MIG instance
  std::optional<int32_t> sharesPerGpu;    // a 1/k share of a time-sliced/MPS GPU
  std::optional<Quantity> memory;         // minimum memory per GPU / instance / share
  std::optional<std::string> product;     // preferred nvidia.com/gpu.product

  // Which of the three is set (Count when none is, which validation rejects).
  GpuRequestKind kind() const;
  // GPUs one replica occupies: count, 1/sharesPerGpu, or computeSlices/7 for MIG.
  double gpuFraction() const;
  bool operator==(const GpuRequest&) const = default;
};

struct ScalingPolicy {
  ScalingPolicyType type = ScalingPolicyType::Pods;
  int32_t value = 0;
  int32_t periodSeconds = 0;
  bool operator==(const ScalingPolicy&) const = default;
};

struct ScalingRules {
  int32_t stabilizationWindowSeconds = 0;
  SelectPolicy selectPolicy = SelectPolicy::Max;
  std::vector<ScalingPolicy> policies;
  bool operator==(const ScalingRules&) const = default;
};

struct AutoscalingSpec {
  bool enabled = false;
  std::string query{kDefaultAutoscalingQuery};
  std::optional<Quantity> targetPerReplica;  // required when enabled; > 0
  double tolerance = kDefaultTolerance;
  ScalingRules scaleUp{kDefaultScaleUpWindowSeconds, SelectPolicy::Max, {}};
  ScalingRules scaleDown{kDefaultScaleDownWindowSeconds, SelectPolicy::Max, {}};

  // The query with {{deployment}}, {{namespace}} and {{pool}} replaced.
  std::string renderQuery(std::string_view deployment, std::string_view ns,
                          std::string_view pool) const;
  bool operator==(const AutoscalingSpec&) const = default;
};

// A path that can go into an HTTP request line as is: starts with '/', and has no
// whitespace or control characters (bytes 0x00-0x20 and 0x7F), which would end or split
// the request line (CR/LF: header injection). spec.healthCheck.path must be one (the CRD's
// CEL rule and validate()); the prober refuses to send any other.
inline bool isValidHttpPath(std::string_view path) {
  if (path.empty() || path.front() != '/') return false;
  for (unsigned char c : path)
    if (c <= 0x20 || c == 0x7F) return false;
  return true;
}

struct HealthCheckSpec {
  std::string path{kDefaultHealthPath};
  std::optional<int32_t> port;  // default: the worker container's first port
  int32_t periodSeconds = kDefaultHealthPeriodSeconds;
  int32_t timeoutSeconds = kDefaultHealthTimeoutSeconds;
  int32_t failureThreshold = kDefaultHealthFailureThreshold;
  int32_t successThreshold = kDefaultHealthSuccessThreshold;
  bool operator==(const HealthCheckSpec&) const = default;
};

struct ThroughputSpec {
  int64_t tokensPerMinutePerReplica = 0;
  double inputTokenWeight = 1;
  double outputTokenWeight = 1;

  // Weighted tokens: input * inputTokenWeight + output * outputTokenWeight.
  double weightedTokens(double inputTokens, double outputTokens) const {
    return inputTokens * inputTokenWeight + outputTokens * outputTokenWeight;
  }
  bool operator==(const ThroughputSpec&) const = default;
};

struct SpilloverSpec {
  LocalObjectReference deploymentRef;
  bool operator==(const SpilloverSpec&) const = default;
};

// Requests per minute a pay-as-you-go quota allows per 1000 tokens per minute when
// spec.rateLimit.requestsPerMinute is not set: Azure OpenAI's ratio ("6 RPM per 1000
// TPM", learn.microsoft.com/azure/ai-services/openai/how-to/quota).
inline constexpr int64_t kRequestsPerMinutePerThousandTokens = 6;

// A pay-as-you-go quota: the router admits at most tokensPerMinute weighted tokens and
// requestsPerMinute requests to the deployment in any 60 s (docs/routing.md, "Quotas").
struct RateLimitSpec {
  int64_t tokensPerMinute = 0;
  std::optional<int64_t> requestsPerMinute;  // default: derived, see effectiveRequestsPerMinute
  // requestsPerMinute, else tokensPerMinute x 6 / 1000 rounded down, at least 1.
  int64_t effectiveRequestsPerMinute() const {
    if (requestsPerMinute) return *requestsPerMinute;
    if (tokensPerMinute <= 0) return 0;
    const int64_t per = kRequestsPerMinutePerThousandTokens;
    const int64_t r = tokensPerMinute / 1000 * per + (tokensPerMinute % 1000) * per / 1000;
    return r < 1 ? 1 : r;
  }
  bool operator==(const RateLimitSpec&) const = default;
};

// spec.cache (docs/routing.md, "Cache"): the router answers repeated (Exact) or
// near-identical (Semantic) eligible requests from a per-router cache. Defaults below.
inline constexpr double kDefaultCacheSimilarityThreshold = 0.95;
inline constexpr int32_t kDefaultCacheTtlSeconds = 3600;
inline constexpr int64_t kDefaultCacheMaxEntries = 10000;

// One thing that partitions the cache beside the namespace: a request header (lower-cased
// name, e.g. an API key header) or a body field (`user`). Exactly one is set.
struct CacheVaryBy {
  std::optional<std::string> header;
  std::optional<std::string> field;
  bool operator==(const CacheVaryBy&) const = default;
};

struct CacheSpec {
  CacheMode mode = CacheMode::Exact;
  std::optional<double> similarityThreshold;  // Semantic: cosine similarity a hit needs
  std::optional<int32_t> ttlSeconds;
  std::optional<int64_t> maxEntries;         // per router replica
  std::vector<CacheVaryBy> varyBy;
  std::optional<LocalObjectReference> embeddingsDeploymentRef;  // required for Semantic
  double effectiveSimilarityThreshold() const { return similarityThreshold.value_or(kDefaultCacheSimilarityThreshold); }
  int32_t effectiveTtlSeconds() const { return ttlSeconds.value_or(kDefaultCacheTtlSeconds); }
  int64_t effectiveMaxEntries() const { return maxEntries.value_or(kDefaultCacheMaxEntries); }
  bool operator==(const CacheSpec&) const = default;
};

struct ModelDeploymentSpec {
  ModelRef model;
  WorkerTemplate template_;  // JSON "template"
  std::optional<std::string> workerContainer;  // default: the first container
  int32_t startupTimeoutSeconds = kDefaultStartupTimeoutSeconds;
  DeploymentType deploymentType = DeploymentType::Standard;
  std::optional<std::string> region;    // Standard only (required there)
  std::optional<std::string> dataZone;  // DataZone only (required there)
  GpuRequest gpu;
  int32_t replicas = kDefaultReplicas;
  std::optional<int32_t> minReplicas;
  std::optional<int32_t> maxReplicas;
  IntOrString maxUnavailable = IntOrString::fromInt(kDefaultMaxUnavailable);
  int32_t drainSeconds = kDefaultDrainSeconds;
  int32_t priority = 0;
  std::optional<AutoscalingSpec> autoscaling;
  HealthCheckSpec healthCheck;
  std::optional<ThroughputSpec> throughput;
  std::optional<SpilloverSpec> spillover;
  std::optional<RateLimitSpec> rateLimit;
  std::optional<CacheSpec> cache;

  bool autoscalingEnabled() const { return autoscaling && autoscaling->enabled; }
  // healthCheck.port, else the worker container's first port, else 0.
  int32_t healthPort() const;
  // Name of the worker container: workerContainer, else the first container's ("worker"
  // with the shorthand; "" when the template has no container).
  std::string workerContainerName() const;
  // Index of the worker container in template_.podSpec()["containers"], or -1.
  int workerContainerIndex(const nlohmann::json& podSpec) const;
  // The worker container (of template_.podSpec()); an empty object when there is none.
  nlohmann::json workerContainerJson() const;
  // Typed views of the worker container the operator needs.
  std::string workerImage() const;
  std::vector<ContainerPort> workerPorts() const;
  bool operator==(const ModelDeploymentSpec&) const = default;
};

struct DeploymentPlacement {
  std::string pool;
  int32_t replicas = 0;
  int32_t readyReplicas = 0;
  bool operator==(const DeploymentPlacement&) const = default;
};

struct AutoscalingStatus {
  std::optional<std::string> currentValue;
  std::optional<SystemTime> lastScaleTime;
  bool operator==(const AutoscalingStatus&) const = default;
};

struct ModelDeploymentStatus {
  int64_t observedGeneration = 0;
  int32_t replicas = 0;
  int32_t desiredReplicas = 0;
  int32_t scheduledReplicas = 0;
  int32_t readyReplicas = 0;
  int32_t updatedReplicas = 0;
  std::string selector;
  std::vector<DeploymentPlacement> placements;
  std::string insufficientCapacity;  // empty = absent
  std::optional<AutoscalingStatus> autoscaling;
  std::vector<Condition> conditions;
  bool operator==(const ModelDeploymentStatus&) const = default;
};

struct ModelDeployment {
  static constexpr std::string_view kKind = "ModelDeployment";
  static constexpr std::string_view kPlural = "modeldeployments";

  ObjectMeta metadata;
  ModelDeploymentSpec spec;
  ModelDeploymentStatus status;

  // See CapacityPool::fromJson: CRD defaults applied, errors name the field.
  static std::expected<ModelDeployment, std::string> fromJson(const nlohmann::json& j);
  nlohmann::json toJson(bool withStatus = true) const;
  // The labels that select this deployment's worker pods (waterline.dev/deployment and
  // app.kubernetes.io/managed-by); status.selector is their string form. Worker pods also
  // carry waterline.dev/model, waterline.dev/model-version and waterline.dev/pool.
  Labels workerSelectorLabels() const;
  bool operator==(const ModelDeployment&) const = default;
};

nlohmann::json toJson(const ModelDeploymentSpec& spec);
nlohmann::json toJson(const ModelDeploymentStatus& status);

// The CRD's value and cross-field rules, checked client-side. Each error is
// "<field path>: <message>"; empty when valid.
std::vector<std::string> validate(const ModelDeployment& d);

}  // namespace waterline::api
