#pragma once
// Routing entries and the routing table: what the operator publishes about where a
// ModelDeployment's replicas are and how loaded each pool is, and what the router reads.
//
// One DeploymentRoutes per ModelDeployment. It becomes
//   - a cluster-scoped `RoutingTable` object (apiVersion waterline.dev/v1alpha1) named
//     resourceName(deployment), written with server-side apply, and
//   - one item of the operator's `GET /v1/routes` document (a RoutingTableList) served
//     with an ETag.
// Both use the same JSON shape; docs/routing.md documents it field by field.
//
// Within a DeploymentRoutes there is one RoutingEntry per (cluster, pool) holding
// replicas of the deployment. The deployment-level fields (deployment, model,
// deploymentType) are stored once in JSON and copied into every entry on decode, so
// that an entry is self-describing in C++.
#include <compare>
#include <cstdint>
#include <expected>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "waterline/api/capacity_pool.h"
#include "waterline/api/model_deployment.h"
#include "waterline/api/ptu_reservation.h"
#include "waterline/common/time.h"

namespace waterline::routing {

inline constexpr std::string_view kRoutingTableKind = "RoutingTable";
inline constexpr std::string_view kRoutingTableListKind = "RoutingTableList";
inline constexpr std::string_view kRoutingTablePlural = "routingtables";

// A ModelDeployment's namespace and name.
struct DeploymentKey {
  std::string namespace_;
  std::string name;

  // "namespace/name" (or "name" when the namespace is empty).
  std::string str() const;
  // Parses "namespace/name" or "name" (namespace empty).
  static DeploymentKey parse(std::string_view s);
  auto operator<=>(const DeploymentKey&) const = default;
  bool operator==(const DeploymentKey&) const = default;
};

// One (ModelDeployment, pool) pair.
struct RoutingEntry {
  DeploymentKey deployment;
  std::string model;  // spec.model.name
  api::DeploymentType deploymentType = api::DeploymentType::Standard;
  std::string cluster;  // the cluster whose operator published the entry ("" = local)
  std::string pool;     // CapacityPool name
  std::string region;   // the pool's spec.region
  std::string dataZone; // the pool's spec.dataZone
  std::vector<std::string> endpoints;          // ready replicas, "ip:port" ("[v6]:port")
  std::vector<std::string> drainingEndpoints;  // leaving routing; no new requests
  double capacityTokensPerMinute = 0;  // ready replicas x tokensPerMinutePerReplica
  double loadTokensPerMinute = 0;      // observed weighted tokens/min of this deployment here
  double utilization = 0;              // load / capacity (1 when capacity is 0)
  double maxUtilization = api::kDefaultMaxUtilization;  // the pool's spec.routing.maxUtilization
  // Work waiting in the pool's replicas for a first scheduling (vLLM
  // num_requests_waiting, summed over the pool's replicas), published when known (0:
  // none or unknown). queuedTokens: those requests' weighted tokens (prompt x input
  // weight + expected output x output weight), the unit of capacityTokensPerMinute.
  double queuedRequests = 0;
  double queuedTokens = 0;
  // One replica's prefill speed in prompt tokens/s (0: unknown; the router's
  // LatencyModel::prefillTokensPerSecond is used).
  double prefillTokensPerSecond = 0;
  bool healthy = false;                // at least one ready endpoint and the pool is usable
  double weight = 1;                   // relative share among near-equal pools; 0 = no new traffic
  SystemTime heartbeatTime{};          // when the publishing operator last refreshed the entry

  bool operator==(const RoutingEntry&) const = default;
};

// A PTUReservation as the router needs it.
struct ReservationInfo {
  DeploymentKey reservation;  // the PTUReservation's namespace/name
  int64_t tokensPerMinute = 0;  // units x tokensPerMinutePerUnit (weighted tokens)
  int32_t burstPercent = 0;
  api::ReservationScope scope;
  bool operator==(const ReservationInfo&) const = default;
};

// A ModelDeployment's spec.rateLimit as the router needs it (requestsPerMinute already
// derived when the spec leaves it out).
struct RateLimitInfo {
  int64_t tokensPerMinute = 0;    // weighted tokens
  int64_t requestsPerMinute = 0;
  bool operator==(const RateLimitInfo&) const = default;
};

// A ModelDeployment's spec.cache as the router needs it, defaults applied
// (docs/routing.md, "Cache").
struct CacheVaryInfo {
  std::string header;  // a request header (lower-case), or
  std::string field;   // a body field ("user")
  bool operator==(const CacheVaryInfo&) const = default;
};
struct CacheInfo {
  api::CacheMode mode = api::CacheMode::Exact;
  double similarityThreshold = api::kDefaultCacheSimilarityThreshold;
  int32_t ttlSeconds = api::kDefaultCacheTtlSeconds;
  int64_t maxEntries = api::kDefaultCacheMaxEntries;
  std::vector<CacheVaryInfo> varyBy;
  std::string embeddingsDeployment;  // Semantic: a ModelDeployment of the same namespace
  std::string modelVersion;          // spec.model.version: entries of another version are dropped
  bool operator==(const CacheInfo&) const = default;
};

// Everything the router needs about one ModelDeployment: a RoutingTable object's spec.
struct DeploymentRoutes {
  DeploymentKey deployment;
  std::string model;
  api::DeploymentType deploymentType = api::DeploymentType::Standard;
  std::string region;    // Standard: spec.region; empty otherwise
  std::string dataZone;  // DataZone: spec.dataZone; empty otherwise
  std::optional<std::string> spillover;  // spec.spillover.deploymentRef.name (same namespace)
  double inputTokenWeight = 1;   // spec.throughput weights (1 when absent)
  double outputTokenWeight = 1;
  std::vector<ReservationInfo> reservations;  // active reservations, sorted by name
  std::optional<RateLimitInfo> rateLimit;     // spec.rateLimit (pay-as-you-go quota)
  std::optional<CacheInfo> cache;             // spec.cache (response cache)
  std::vector<RoutingEntry> entries;          // sorted by (cluster, pool)

  // Weighted tokens of a request/response.
  double weightedTokens(double promptTokens, double completionTokens) const {
    return promptTokens * inputTokenWeight + completionTokens * outputTokenWeight;
  }

  // The RoutingTable spec (see docs/routing.md).
  nlohmann::json toJson() const;
  static std::expected<DeploymentRoutes, std::string> fromJson(const nlohmann::json& spec);

  // The whole cluster-scoped RoutingTable object: apiVersion, kind, metadata.name
  // (resourceName), metadata.labels (deployment namespace/name), spec.
  nlohmann::json toResource() const;
  // Accepts a RoutingTable object (reads .spec; metadata is ignored).
  static std::expected<DeploymentRoutes, std::string> fromResource(const nlohmann::json& obj);

  // Copies the deployment-level fields into every entry and sorts entries/reservations.
  void normalize();
  bool operator==(const DeploymentRoutes&) const = default;
};

// The RoutingTable object name for a deployment: "<namespace>.<name>" (namespaces have
// no dots, so this is unambiguous), or, when that exceeds 253 characters, its first 236
// characters, '-' and 16 hex digits of a hash of the full key.
std::string resourceName(const DeploymentKey& d);

// The GET /v1/routes document: a RoutingTableList of RoutingTable objects.
struct RoutingTable {
  std::vector<DeploymentRoutes> deployments;  // sorted by deployment key
  std::optional<SystemTime> generatedAt;

  const DeploymentRoutes* find(const DeploymentKey& key) const;

  nlohmann::json toJson() const;
  // Accepts a RoutingTableList ({"items": [...]}), a bare JSON array of RoutingTable
  // objects, or a single RoutingTable object. Items with errors fail the whole decode
  // (the error names the item).
  static std::expected<RoutingTable, std::string> fromJson(const nlohmann::json& j);
  // Parses text (JSON); errors from the parser are reported, never thrown.
  static std::expected<RoutingTable, std::string> parse(std::string_view text);

  // A strong ETag ("\"<16 hex digits>\"") over the canonical serialization of items
  // (generatedAt excluded, so an unchanged table keeps its ETag).
  std::string etag() const;

  void normalize();
  bool operator==(const RoutingTable&) const = default;
};

// RFC 3339 with microseconds in UTC ("2025-03-01T08:00:00.123456Z"), as metav1.MicroTime.
std::string formatMicroTime(SystemTime t);

// Field manager of one cluster's writes to the routing hub (its RoutingTable entries and
// its heartbeat Lease): "waterline-operator/<cluster>" ("waterline-operator/local" for
// the empty name).
std::string routingFieldManager(const std::string& cluster);

// A JSON value's type as error messages name it: null, object, array, string, boolean,
// integer, number.
const char* jsonTypeName(const nlohmann::json& j);

// FNV-1a 64-bit (stable across runs and platforms).
std::uint64_t fnv1a64(std::string_view s);

}  // namespace waterline::routing
