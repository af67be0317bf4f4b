#include "waterline/routing/planner.h"

#include <gtest/gtest.h>

#include "fixtures.h"

namespace waterline::routing {
namespace {

using json = nlohmann::json;
using namespace testing;

api::CapacityPool pool(std::string name, std::string region, std::string zone, double maxUtil = 0.9, bool ready = true) {
  api::CapacityPool p;
  p.metadata.name = std::move(name);
  p.spec.region = std::move(region);
  p.spec.dataZone = std::move(zone);
  p.spec.routing.maxUtilization = maxUtil;
  api::Condition c;
  c.type = "Ready";
  c.status = ready ? api::ConditionStatus::True : api::ConditionStatus::False;
  p.status.conditions.push_back(c);
  return p;
}

json pod(std::string name, std::string pool, std::string ip, bool ready, const char* drainingSince = nullptr,
         bool deleting = false) {
  json p = {{"metadata", {{"name", name}, {"labels", {{"waterline.dev/pool", pool}}}}},
            {"status", {{"podIP", ip}, {"conditions", json::array({{{"type", "Ready"}, {"status", ready ? "True" : "False"}}})}}}};
  if (drainingSince) p["metadata"]["annotations"]["waterline.dev/draining-since"] = drainingSince;
  if (deleting) p["metadata"]["deletionTimestamp"] = "2025-01-01T00:00:00Z";
  return p;
}

TEST(WorkerPod, FromJson) {
  auto p = workerPodFromJson(pod("w1", "eu", "10.0.0.1", true, "2025-01-01T00:00:00Z"));
  EXPECT_EQ(p.name, "w1");
  EXPECT_EQ(p.pool, "eu");
  EXPECT_EQ(p.ip, "10.0.0.1");
  EXPECT_TRUE(p.ready);
  ASSERT_TRUE(p.drainingSince);
  auto q = workerPodFromJson(pod("w2", "eu", "", false, "garbage", true));
  EXPECT_FALSE(q.ready);
  EXPECT_TRUE(q.terminating);
  EXPECT_TRUE(q.drainingSince);  // unparsable still means draining
  EXPECT_EQ(workerPodFromJson(json(5)).name, "");
}

TEST(Planner, EntriesFromSnapshot) {
  api::ModelDeployment d;
  d.metadata.namespace_ = "team";
  d.metadata.name = "llama";
  d.spec.model.name = "meta-llama/Llama-3.1-8B-Instruct";
  d.spec.deploymentType = api::DeploymentType::DataZone;
  d.spec.dataZone = "EU";
  d.spec.throughput = api::ThroughputSpec{600000, 1, 2};
  d.spec.spillover = api::SpilloverSpec{{"llama-global"}};
  d.spec.template_.raw["spec"] = {{"image", "img"}, {"ports", {{{"name", "http"}, {"containerPort", 9000}, {"protocol", "TCP"}}}}};
  auto west = pool("eu-west", "eu-west", "EU", 0.8);
  auto north = pool("eu-north", "eu-north", "EU", 0.9, /*ready=*/false);
  RoutingSnapshot s;
  s.deployment = &d;
  s.pools = {&west, &north};
  s.pods = {workerPodFromJson(pod("a", "eu-west", "10.0.0.2", true)),
            workerPodFromJson(pod("b", "eu-west", "10.0.0.1", true)),
            workerPodFromJson(pod("c", "eu-west", "10.0.0.3", false)),
            workerPodFromJson(pod("d", "eu-west", "10.0.0.4", true, "2025-01-01T00:00:00Z")),
            workerPodFromJson(pod("e", "eu-west", "10.0.0.5", true, nullptr, true)),
            workerPodFromJson(pod("f", "eu-north", "fd00::1", true)),
            workerPodFromJson(pod("g", "gone-pool", "10.9.9.9", true)),
            workerPodFromJson(pod("h", "", "10.9.9.8", true))};
  s.loadTokensPerMinute = {{"eu-west", 300000}};
  api::PTUReservation r;
  r.metadata.namespace_ = "team";
  r.metadata.name = "contoso";
  r.spec.deploymentRef.name = "llama";
  r.spec.units = 10;
  r.spec.tokensPerMinutePerUnit = 1000;
  r.spec.burstPercent = 20;
  api::PTUReservation other = r;
  other.metadata.name = "other";
  other.spec.deploymentRef.name = "someone-else";
  api::PTUReservation expired = r;
  expired.metadata.name = "expired";
  expired.spec.endTime = t0() - std::chrono::hours(1);
  s.reservations = {&r, &other, &expired};
  s.cluster = "c1";
  s.now = t0();

  auto routes = planRoutes(s);
  EXPECT_EQ(routes.deployment.str(), "team/llama");
  EXPECT_EQ(routes.dataZone, "EU");
  EXPECT_EQ(routes.region, "");
  EXPECT_EQ(routes.spillover, "llama-global");
  EXPECT_DOUBLE_EQ(routes.outputTokenWeight, 2);
  ASSERT_EQ(routes.entries.size(), 3u);  // eu-north, eu-west, gone-pool (sorted)
  const auto& n = routes.entries[0];
  EXPECT_EQ(n.pool, "eu-north");
  EXPECT_EQ(n.endpoints, (std::vector<std::string>{"[fd00::1]:9000"}));
  EXPECT_FALSE(n.healthy);  // pool Ready=False
  const auto& w = routes.entries[1];
  EXPECT_EQ(w.pool, "eu-west");
  EXPECT_EQ(w.endpoints, (std::vector<std::string>{"10.0.0.1:9000", "10.0.0.2:9000"}));
  EXPECT_EQ(w.drainingEndpoints, (std::vector<std::string>{"10.0.0.4:9000", "10.0.0.5:9000"}));
  EXPECT_DOUBLE_EQ(w.capacityTokensPerMinute, 1200000);
  EXPECT_DOUBLE_EQ(w.loadTokensPerMinute, 300000);
  EXPECT_DOUBLE_EQ(w.utilization, 0.25);
  EXPECT_DOUBLE_EQ(w.maxUtilization, 0.8);
  EXPECT_TRUE(w.healthy);
  EXPECT_DOUBLE_EQ(w.weight, 2);
  EXPECT_EQ(w.cluster, "c1");
  EXPECT_EQ(w.heartbeatTime, t0());
  EXPECT_EQ(w.region, "eu-west");
  EXPECT_EQ(w.deployment.str(), "team/llama");
  const auto& g = routes.entries[2];
  EXPECT_EQ(g.pool, "gone-pool");
  EXPECT_FALSE(g.healthy);  // pool unknown
  ASSERT_EQ(routes.reservations.size(), 1u);
  EXPECT_EQ(routes.reservations[0].reservation.str(), "team/contoso");
  EXPECT_EQ(routes.reservations[0].tokensPerMinute, 10000);
  EXPECT_EQ(routes.reservations[0].burstPercent, 20);
  // The plan is a pure function of the snapshot and round-trips through JSON.
  EXPECT_EQ(planRoutes(s), routes);
  auto back = DeploymentRoutes::fromJson(routes.toJson());
  ASSERT_TRUE(back) << back.error();
  EXPECT_EQ(*back, routes);
}

TEST(Planner, NoThroughputMeansUnknownCapacityAndDefaultPort) {
  api::ModelDeployment d;
  d.metadata.namespace_ = "team";
  d.metadata.name = "x";
  d.spec.model.name = "m";
  d.spec.deploymentType = api::DeploymentType::Global;
  auto p = pool("p", "r", "Z");
  RoutingSnapshot s;
  s.deployment = &d;
  s.pools = {&p};
  s.pods = {workerPodFromJson(pod("a", "p", "10.0.0.1", true)), workerPodFromJson(pod("b", "p", "", true))};
  s.now = t0();
  auto r = planRoutes(s);
  ASSERT_EQ(r.entries.size(), 1u);
  EXPECT_EQ(r.entries[0].endpoints, (std::vector<std::string>{"10.0.0.1:8000"}));
  EXPECT_DOUBLE_EQ(r.entries[0].capacityTokensPerMinute, 0);
  EXPECT_DOUBLE_EQ(r.entries[0].utilization, 0);
  EXPECT_TRUE(r.entries[0].healthy);
  // A pool whose replicas are all unready is fully "utilised" and unhealthy.
  s.pods = {workerPodFromJson(pod("a", "p", "10.0.0.1", false))};
  auto r2 = planRoutes(s);
  EXPECT_DOUBLE_EQ(r2.entries[0].utilization, 1);
  EXPECT_FALSE(r2.entries[0].healthy);
  EXPECT_TRUE(planRoutes(RoutingSnapshot{}).entries.empty());
}

}  // namespace
// spec.rateLimit reaches the router with requestsPerMinute derived (6 per 1000 TPM) when
// the spec leaves it out, and as written otherwise.
TEST(Planner, RateLimitIsCarriedWithDerivedRequestsPerMinute) {
  api::ModelDeployment d;
  d.metadata.namespace_ = "team";
  d.metadata.name = "x";
  d.spec.model.name = "m";
  d.spec.deploymentType = api::DeploymentType::Global;
  RoutingSnapshot s;
  s.deployment = &d;
  s.now = t0();
  EXPECT_FALSE(planRoutes(s).rateLimit);
  d.spec.rateLimit = api::RateLimitSpec{.tokensPerMinute = 120000, .requestsPerMinute = std::nullopt};
  auto r = planRoutes(s);
  ASSERT_TRUE(r.rateLimit);
  EXPECT_EQ(r.rateLimit->tokensPerMinute, 120000);
  EXPECT_EQ(r.rateLimit->requestsPerMinute, 720);
  d.spec.rateLimit->requestsPerMinute = 5;
  EXPECT_EQ(planRoutes(s).rateLimit->requestsPerMinute, 5);
  auto back = DeploymentRoutes::fromJson(planRoutes(s).toJson());
  ASSERT_TRUE(back) << back.error();
  ASSERT_TRUE(back->rateLimit);
  EXPECT_EQ(*back->rateLimit, (RateLimitInfo{120000, 5}));
  EXPECT_EQ(planRoutes(s).toJson()["rateLimit"], (nlohmann::json{{"tokensPerMinute", 120000}, {"requestsPerMinute", 5}}));
}

// spec.cache reaches the router with its defaults applied, lower-case header names and
// the model version its entries belong to; it survives the RoutingTable's JSON.
TEST(Planner, CacheIsCarriedWithDefaultsAndModelVersion) {
  api::ModelDeployment d;
  d.metadata.namespace_ = "team";
  d.metadata.name = "chat";
  d.spec.model.name = "m";
  d.spec.model.version = "v7";
  d.spec.deploymentType = api::DeploymentType::Global;
  RoutingSnapshot s;
  s.deployment = &d;
  s.now = t0();
  EXPECT_FALSE(planRoutes(s).cache);
  api::CacheSpec c;
  c.mode = api::CacheMode::Semantic;
  c.varyBy = {api::CacheVaryBy{.header = "X-Api-Key", .field = std::nullopt},
              api::CacheVaryBy{.header = std::nullopt, .field = "user"}};
  c.embeddingsDeploymentRef = api::LocalObjectReference{"embed"};
  d.spec.cache = c;
  auto r = planRoutes(s);
  ASSERT_TRUE(r.cache);
  EXPECT_EQ(r.cache->mode, api::CacheMode::Semantic);
  EXPECT_DOUBLE_EQ(r.cache->similarityThreshold, 0.95);
  EXPECT_EQ(r.cache->ttlSeconds, 3600);
  EXPECT_EQ(r.cache->maxEntries, 10000);
  ASSERT_EQ(r.cache->varyBy.size(), 2u);
  EXPECT_EQ(r.cache->varyBy[0].header, "x-api-key");
  EXPECT_EQ(r.cache->varyBy[1].field, "user");
  EXPECT_EQ(r.cache->embeddingsDeployment, "embed");
  EXPECT_EQ(r.cache->modelVersion, "v7");
  d.spec.cache->similarityThreshold = 0.9;
  d.spec.cache->ttlSeconds = 60;
  d.spec.cache->maxEntries = 5;
  r = planRoutes(s);
  EXPECT_DOUBLE_EQ(r.cache->similarityThreshold, 0.9);
  EXPECT_EQ(r.cache->ttlSeconds, 60);
  EXPECT_EQ(r.cache->maxEntries, 5);
  auto back = DeploymentRoutes::fromJson(r.toJson());
  ASSERT_TRUE(back) << back.error();
  ASSERT_TRUE(back->cache);
  EXPECT_EQ(*back->cache, *r.cache);
  // A Semantic cache without its embeddings deployment is refused by the decoder.
  auto j = r.toJson();
  j["cache"].erase("embeddingsDeploymentRef");
  auto bad = DeploymentRoutes::fromJson(j);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().find("spec.cache.embeddingsDeploymentRef"), std::string::npos) << bad.error();
  j = r.toJson();
  j["cache"]["varyBy"] = nlohmann::json::array({nlohmann::json{{"header", "a"}, {"field", "user"}}});
  EXPECT_FALSE(DeploymentRoutes::fromJson(j));
}

}  // namespace waterline::routing
