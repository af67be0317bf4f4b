#include "waterline/routing/table.h"

#include <gtest/gtest.h>

#include "fixtures.h"

namespace waterline::routing {
namespace {

using namespace testing;
using json = nlohmann::json;

DeploymentRoutes sample() {
  auto d = deployment("llama-8b-eu", api::DeploymentType::DataZone, threePools(0.25, 0.5, 0.1), "", "EU");
  d.spillover = "llama-8b-global";
  d.inputTokenWeight = 1;
  d.outputTokenWeight = 3;
  ReservationInfo r;
  r.reservation = {"team", "contoso"};
  r.tokensPerMinute = 125000;
  r.burstPercent = 20;
  r.scope.type = api::ScopeType::Regional;
  r.scope.region = "eu-west";
  d.reservations.push_back(r);
  d.entries[0].drainingEndpoints = {"10.0.1.9:8000"};
  d.entries[0].cluster = "c1";
  d.entries[0].heartbeatTime = t0() + std::chrono::microseconds(123456);
  d.normalize();
  return d;
}

TEST(RoutingTable, DeploymentRoundTrip) {
  auto d = sample();
  auto back = DeploymentRoutes::fromJson(d.toJson());
  ASSERT_TRUE(back) << back.error();
  EXPECT_EQ(*back, d);
  // Deployment-level fields are copied into every entry.
  for (const auto& e : back->entries) {
    EXPECT_EQ(e.deployment, d.deployment);
    EXPECT_EQ(e.model, d.model);
    EXPECT_EQ(e.deploymentType, api::DeploymentType::DataZone);
  }
}

TEST(RoutingTable, DocumentedShape) {
  json j = sample().toResource();
  EXPECT_EQ(j["apiVersion"], "waterline.dev/v1alpha1");
  EXPECT_EQ(j["kind"], "RoutingTable");
  EXPECT_EQ(j["metadata"]["name"], "team.llama-8b-eu");
  const json& s = j["spec"];
  EXPECT_EQ(s["deployment"], (json{{"namespace", "team"}, {"name", "llama-8b-eu"}}));
  EXPECT_EQ(s["deploymentType"], "DataZone");
  EXPECT_EQ(s["dataZone"], "EU");
  EXPECT_FALSE(s.contains("region"));
  EXPECT_EQ(s["spillover"]["deploymentRef"]["name"], "llama-8b-global");
  EXPECT_EQ(s["tokenWeights"]["output"], 3.0);
  EXPECT_EQ(s["reservations"][0]["name"], "contoso");
  EXPECT_EQ(s["reservations"][0]["tokensPerMinute"], 125000);
  EXPECT_EQ(s["reservations"][0]["scope"]["region"], "eu-west");
  ASSERT_EQ(s["entries"].size(), 3u);
  // Entries sorted by (cluster, pool): "" < "c1".
  EXPECT_EQ(s["entries"][0]["pool"], "eu-west-h100");
  EXPECT_EQ(s["entries"][0]["cluster"], "") << "a map-list key: always written, for server-side apply";
  const json& e = s["entries"][2];
  EXPECT_EQ(e["cluster"], "c1");
  EXPECT_EQ(e["pool"], "eu-north-h100");
  EXPECT_EQ(e["endpoints"], json::array({"10.0.2.1:8000"}));
  EXPECT_EQ(e["drainingEndpoints"], json::array({"10.0.1.9:8000"}));
  EXPECT_EQ(e["utilization"], 0.5);
  EXPECT_EQ(e["maxUtilization"], 0.9);
  EXPECT_EQ(e["healthy"], true);
  EXPECT_EQ(e["weight"], 1.0);
  EXPECT_EQ(e["heartbeatTime"], "2025-06-15T15:06:40.123456Z");
  for (const char* k : {"capacityTokensPerMinute", "loadTokensPerMinute"}) EXPECT_TRUE(e.contains(k)) << k;
}

TEST(RoutingTable, ListRoundTripAndVariants) {
  RoutingTable t;
  t.deployments.push_back(sample());
  auto g = deployment("llama-8b-global", api::DeploymentType::Global, threePools(0.1, 0.1, 0.1));
  t.deployments.push_back(g);
  t.generatedAt = t0();
  t.normalize();
  json j = t.toJson();
  EXPECT_EQ(j["kind"], "RoutingTableList");
  auto back = RoutingTable::fromJson(j);
  ASSERT_TRUE(back) << back.error();
  EXPECT_EQ(*back, t);
  ASSERT_NE(back->find({"team", "llama-8b-global"}), nullptr);
  EXPECT_EQ(back->find({"team", "nope"}), nullptr);
  // A bare array and a single object are accepted too.
  auto arr = RoutingTable::fromJson(j["items"]);
  ASSERT_TRUE(arr);
  EXPECT_EQ(arr->deployments.size(), 2u);
  auto one = RoutingTable::fromJson(j["items"][0]);
  ASSERT_TRUE(one);
  EXPECT_EQ(one->deployments.size(), 1u);
}

TEST(RoutingTable, ETagIgnoresGeneratedAtAndTracksContent) {
  RoutingTable a;
  a.deployments.push_back(sample());
  RoutingTable b = a;
  b.generatedAt = t0() + std::chrono::hours(1);
  EXPECT_EQ(a.etag(), b.etag());
  EXPECT_EQ(a.etag().front(), '"');
  EXPECT_EQ(a.etag().size(), 18u);
  b.deployments[0].entries[0].utilization = 0.9;
  EXPECT_NE(a.etag(), b.etag());
}

TEST(RoutingTable, DecodeErrorsNameTheField) {
  json s = sample().toJson();
  auto check = [&](json spec, const std::string& want) {
    auto r = DeploymentRoutes::fromJson(spec);
    ASSERT_FALSE(r) << spec.dump();
    EXPECT_NE(r.error().find(want), std::string::npos) << r.error();
  };
  json a = s; a.erase("model"); check(a, "spec.model: Required value");
  json b = s; b["deploymentType"] = "Planet"; check(b, "spec.deploymentType: unsupported value");
  json c = s; c["entries"][1]["utilization"] = "high"; check(c, "spec.entries[1].utilization: expected number");
  json d = s; d["entries"][0].erase("heartbeatTime"); check(d, "spec.entries[0].heartbeatTime: Required value");
  json e = s; e["entries"][0]["heartbeatTime"] = "yesterday"; check(e, "spec.entries[0].heartbeatTime");
  json f = s; f["entries"][0]["endpoints"] = json::array({1}); check(f, "spec.entries[0].endpoints[0]");
  json g = s; g["reservations"][0]["tokensPerMinute"] = -5; check(g, "spec.reservations[0].tokensPerMinute");
  json h = s; h["deploymentType"] = "Standard"; check(h, "spec.region: Required value");
  json i = s; i.erase("deployment"); check(i, "spec.deployment: Required value");
  json k = s; k["entries"][0]["capacityTokensPerMinute"] = -1; check(k, "out of range");
  EXPECT_FALSE(RoutingTable::parse("{not json"));
  EXPECT_FALSE(RoutingTable::parse("42"));
  auto dup = RoutingTable::fromJson(json::array({sample().toResource(), sample().toResource()}));
  ASSERT_FALSE(dup);
  EXPECT_NE(dup.error().find("duplicate"), std::string::npos);
  auto bad = RoutingTable::fromJson(json{{"items", json::array({sample().toResource(), 7})}});
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().find("items[1]"), std::string::npos) << bad.error();
}

TEST(RoutingTable, DefaultsWhenOptionalFieldsAreAbsent) {
  json spec = {{"deployment", {{"namespace", "ns"}, {"name", "d"}}},
               {"model", "m"},
               {"deploymentType", "Global"},
               {"entries", json::array({{{"pool", "p"},
                                         {"endpoints", {"1.2.3.4:80"}},
                                         {"capacityTokensPerMinute", 1000},
                                         {"loadTokensPerMinute", 250},
                                         {"heartbeatTime", "2025-01-01T00:00:00Z"}}})}};
  auto d = DeploymentRoutes::fromJson(spec);
  ASSERT_TRUE(d) << d.error();
  const auto& e = d->entries[0];
  EXPECT_DOUBLE_EQ(e.utilization, 0.25);  // computed from load / capacity
  EXPECT_TRUE(e.healthy);                  // has an endpoint
  EXPECT_DOUBLE_EQ(e.maxUtilization, 0.9);
  EXPECT_DOUBLE_EQ(e.weight, 1);
  EXPECT_DOUBLE_EQ(d->inputTokenWeight, 1);
  EXPECT_FALSE(d->spillover);
}

TEST(RoutingTable, ResourceNames) {
  EXPECT_EQ(resourceName({"team-a", "llama"}), "team-a.llama");
  EXPECT_EQ(resourceName({"", "llama"}), "llama");
  std::string longName(250, 'x');
  auto n = resourceName({"team", longName});
  EXPECT_LE(n.size(), 253u);
  EXPECT_NE(n, resourceName({"team", longName + "y"}));
  EXPECT_EQ(DeploymentKey::parse("a/b"), (DeploymentKey{"a", "b"}));
  EXPECT_EQ(DeploymentKey::parse("b"), (DeploymentKey{"", "b"}));
  EXPECT_EQ((DeploymentKey{"a", "b"}).str(), "a/b");
}

TEST(RoutingTable, MicroTime) {
  EXPECT_EQ(formatMicroTime(SystemTime{}), "1970-01-01T00:00:00.000000Z");
  EXPECT_EQ(formatMicroTime(t0() + std::chrono::milliseconds(5)), "2025-06-15T15:06:40.005000Z");
}

}  // namespace
}  // namespace waterline::routing
