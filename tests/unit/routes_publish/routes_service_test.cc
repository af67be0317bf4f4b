#include "waterline/reconcilers/routes_service.h"
#include "waterline/reconcilers/routing_heartbeat.h"

#include <gtest/gtest.h>

#include <optional>

#include "common.h"

namespace waterline::reconcilers {
namespace {

using namespace std::chrono_literals;
using testing::FakeClient;
using testsupport::eventually;
using Json = kube::Json;

Json routingTable(const std::string& ns, const std::string& name, const std::string& pool, double util) {
  routing::DeploymentRoutes d;
  d.deployment = {ns, name};
  d.model = "m";
  d.deploymentType = api::DeploymentType::Global;
  routing::RoutingEntry e;
  e.cluster = "c1";
  e.pool = pool;
  e.region = "eu-west";
  e.dataZone = "EU";
  e.endpoints = {"10.0.0.1:8000", "10.0.0.2:8000"};
  e.drainingEndpoints = {"10.0.0.3:8000"};
  e.capacityTokensPerMinute = 100;
  e.loadTokensPerMinute = 100 * util;
  e.utilization = util;
  e.healthy = true;
  e.heartbeatTime = SystemTime{std::chrono::seconds(1'750'000'000)};
  d.entries = {e};
  d.normalize();
  return d.toResource();
}

// Collects the (single) answer of an async handler.
struct Answer {
  std::mutex mu;
  std::optional<runtime::HttpResponse> r;
  int calls = 0;
  runtime::HttpResponder responder() {
    return [this](runtime::HttpResponse x) {
      std::lock_guard g(mu);
      r = std::move(x);
      ++calls;
    };
  }
  bool answered() {
    std::lock_guard g(mu);
    return r.has_value();
  }
};

struct ServiceTest : ::testing::Test {
  std::shared_ptr<FakeClient> client = std::make_shared<FakeClient>();
  std::shared_ptr<SimulatedTimeSource> sim = std::make_shared<SimulatedTimeSource>();
  cache::InformerPtr inf;
  std::unique_ptr<RoutesService> svc;

  void SetUp() override {
    inf = std::make_shared<cache::Informer>(client, kube::kinds::RoutingTable, cache::InformerOptions{}, sim);
    svc = std::make_unique<RoutesService>(inf, sim);
    inf->start();
    ASSERT_TRUE(eventually([&] { return inf->hasSynced(); }));
    svc->start();
  }
  void TearDown() override {
    svc->stop();
    inf->stop();
  }

  runtime::HttpRequest get(std::string query = "", std::string inm = "") {
    runtime::HttpRequest r;
    r.method = "GET";
    r.path = "/v1/routes";
    r.query = std::move(query);
    if (!inm.empty()) r.headers["if-none-match"] = inm;
    return r;
  }
  runtime::HttpResponse call(const runtime::HttpRequest& req) {
    Answer a;
    svc->serve(req, a.responder());
    EXPECT_TRUE(a.answered());
    return a.r.value_or(runtime::HttpResponse{});
  }
  void add(const Json& obj) { ASSERT_TRUE(client->create(kube::kinds::RoutingTable, "", obj, {})); }
  // Waits until the served table holds n deployments.
  bool serving(size_t n) {
    return eventually([&] { return svc->current()->table.deployments.size() == n; });
  }
};

TEST_F(ServiceTest, ServesTheTableWithAStrongEtagAnd304WhenUnchanged) {
  auto empty = call(get());
  EXPECT_EQ(empty.status, 200);
  const std::string etag0 = empty.headers["ETag"];
  ASSERT_FALSE(etag0.empty());
  EXPECT_EQ(etag0.front(), '"');
  EXPECT_EQ(Json::parse(empty.body)["items"].size(), 0u);

  add(routingTable("team", "llama", "p1", 0.25));
  ASSERT_TRUE(serving(1));
  auto full = call(get("", etag0));  // a stale ETag gets the new table
  EXPECT_EQ(full.status, 200);
  const std::string etag1 = full.headers["ETag"];
  EXPECT_NE(etag1, etag0);
  auto body = Json::parse(full.body);
  EXPECT_EQ(body["kind"], "RoutingTableList");
  ASSERT_EQ(body["items"].size(), 1u);
  EXPECT_EQ(body["items"][0]["spec"]["entries"][0]["pool"], "p1");

  auto same = call(get("", etag1));
  EXPECT_EQ(same.status, 304);
  EXPECT_TRUE(same.body.empty());
  EXPECT_EQ(same.headers["ETag"], etag1);
}

TEST_F(ServiceTest, AnUpdatedObjectIsServedAsUpdatedAndOthersStay) {
  add(routingTable("team", "llama", "p1", 0.25));
  add(routingTable("team", "phi", "p2", 0.5));
  ASSERT_TRUE(serving(2));
  // The same object with a new resourceVersion: decoded again, not served from before.
  ASSERT_TRUE(client->apply(kube::kinds::RoutingTable, "", routingTable("team", "llama", "p1", 0.75), {"t", true, ""}));
  auto util = [&](const std::string& dep) {
    for (const auto& d : svc->current()->table.deployments)
      if (d.deployment.name == dep && !d.entries.empty()) return d.entries[0].utilization;
    return -1.0;
  };
  ASSERT_TRUE(eventually([&] { return util("llama") == 0.75; }));
  EXPECT_EQ(util("phi"), 0.5);
  // Deleted: gone from the table (and from the decoded cache).
  ASSERT_TRUE(client->remove(kube::kinds::RoutingTable, "", "team.phi"));
  ASSERT_TRUE(serving(1));
  EXPECT_EQ(util("phi"), -1.0);
}

TEST_F(ServiceTest, LongPollIsHeldUntilTheTableChanges) {
  const std::string etag0 = call(get()).headers["ETag"];
  Answer a;
  svc->serve(get("waitSeconds=30", etag0), a.responder());
  std::this_thread::sleep_for(100ms);
  EXPECT_FALSE(a.answered()) << "a long-poll on the current ETag must wait";

  add(routingTable("team", "llama", "p1", 0.5));
  ASSERT_TRUE(eventually([&] { return a.answered(); }));
  std::lock_guard g(a.mu);
  EXPECT_EQ(a.r->status, 200);
  EXPECT_NE(a.r->headers["ETag"], etag0);
  EXPECT_EQ(Json::parse(a.r->body)["items"].size(), 1u);
  EXPECT_EQ(a.calls, 1);
}

TEST_F(ServiceTest, LongPollTimesOutWith304) {
  const std::string etag0 = call(get()).headers["ETag"];
  Answer a;
  svc->serve(get("waitSeconds=5", etag0), a.responder());
  sim->advance(4s);
  std::this_thread::sleep_for(100ms);
  EXPECT_FALSE(a.answered());
  sim->advance(2s);
  ASSERT_TRUE(eventually([&] { return a.answered(); }));
  std::lock_guard g(a.mu);
  EXPECT_EQ(a.r->status, 304);
  EXPECT_EQ(a.r->headers["ETag"], etag0);
}

TEST_F(ServiceTest, StopAnswersHeldPolls) {
  const std::string etag0 = call(get()).headers["ETag"];
  Answer a;
  svc->serve(get("waitSeconds=300", etag0), a.responder());
  svc->stop();
  ASSERT_TRUE(a.answered());
  EXPECT_EQ(a.r->status, 304);
}

TEST_F(ServiceTest, BadRequests) {
  EXPECT_EQ(call(get("waitSeconds=abc")).status, 400);
  EXPECT_EQ(call(get("waitSeconds=301")).status, 400);
  EXPECT_EQ(call(get("waitSeconds=-1")).status, 400);
  auto post = get();
  post.method = "POST";
  auto r = call(post);
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(r.headers["Allow"], "GET");
}

TEST_F(ServiceTest, ObjectsThatDoNotDecodeAreSkippedAndCounted) {
  metrics::Registry reg;
  svc->registerMetrics(reg);
  Json bad = routingTable("team", "broken", "p1", 0.1);
  bad["spec"]["entries"][0]["utilization"] = "high";
  add(bad);
  add(routingTable("team", "llama", "p1", 0.25));
  ASSERT_TRUE(serving(1));
  EXPECT_EQ(svc->current()->table.deployments[0].deployment.name, "llama");
  EXPECT_NE(reg.serialize().find("waterline_routing_table_invalid_objects 1"), std::string::npos)
      << reg.serialize();
}

TEST_F(ServiceTest, GaugesFollowTheTable) {
  metrics::Registry reg;
  svc->registerMetrics(reg);
  add(routingTable("team", "llama", "p1", 0.25));
  ASSERT_TRUE(serving(1));
  sim->advance(30s);
  const std::string text = reg.serialize();
  EXPECT_NE(text.find(R"(waterline_pool_utilization_ratio{pool="p1",region="eu-west",zone="EU",deployment="team/llama",cluster="c1"} 0.25)"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find(R"(waterline_routing_endpoints{pool="p1",deployment="team/llama",cluster="c1",state="ready"} 2)"),
            std::string::npos);
  EXPECT_NE(text.find(R"(waterline_routing_endpoints{pool="p1",deployment="team/llama",cluster="c1",state="draining"} 1)"),
            std::string::npos);
  EXPECT_NE(text.find("waterline_routing_table_objects 1"), std::string::npos);
  // Deleted: its series go with it (no stale labels).
  ASSERT_TRUE(client->remove(kube::kinds::RoutingTable, "", "team.llama"));
  ASSERT_TRUE(serving(0));
  EXPECT_EQ(reg.serialize().find("team/llama"), std::string::npos);
}

}  // namespace
}  // namespace waterline::reconcilers

namespace waterline::reconcilers {
namespace {

// RoutingTables plus the hub's routing heartbeat Leases.
TEST(RoutesServiceHeartbeat, EntriesTakeTheirClustersLeaseRenewTimeWhenNewer) {
  auto client = std::make_shared<FakeClient>();
  auto sim = std::make_shared<SimulatedTimeSource>();
  auto tables = std::make_shared<cache::Informer>(client, kube::kinds::RoutingTable, cache::InformerOptions{}, sim);
  auto leases = std::make_shared<cache::Informer>(client, kube::kinds::Lease, cache::InformerOptions{}, sim);
  RoutesService svc(tables, sim, leases);
  tables->start();
  leases->start();
  ASSERT_TRUE(eventually([&] { return tables->hasSynced() && leases->hasSynced(); }));
  svc.start();
  const SystemTime written{std::chrono::seconds(1'750'000'000)};  // routingTable()'s heartbeat
  auto otherCluster = routingTable("team", "phi", "p2", 0.5);
  otherCluster["spec"]["entries"][0]["cluster"] = "c2";
  ASSERT_TRUE(client->create(kube::kinds::RoutingTable, "", routingTable("team", "llama", "p1", 0.25), {}));
  ASSERT_TRUE(client->create(kube::kinds::RoutingTable, "", otherCluster, {}));
  auto heartbeatOf = [&](const std::string& dep) {
    for (const auto& d : svc.current()->table.deployments)
      if (d.deployment.name == dep && !d.entries.empty()) return d.entries[0].heartbeatTime;
    return SystemTime{};
  };
  ASSERT_TRUE(eventually([&] { return svc.current()->table.deployments.size() == 2; }));
  EXPECT_EQ(heartbeatOf("llama"), written);

  // c1 renews its Lease: its entry is served as fresh, c2's is not touched.
  ASSERT_TRUE(client->create(kube::kinds::Lease, "wl", routingHeartbeatLease("wl", "c1", 10s, written + 40s), {}));
  ASSERT_TRUE(eventually([&] { return heartbeatOf("llama") == written + 40s; }));
  EXPECT_EQ(heartbeatOf("phi"), written);
  const std::string etag = svc.current()->etag;
  // The next renewal moves it (and the ETag, so long-polling routers get it).
  ASSERT_TRUE(client->apply(kube::kinds::Lease, "wl", routingHeartbeatLease("wl", "c1", 10s, written + 50s), {"t", true, ""}));
  ASSERT_TRUE(eventually([&] { return heartbeatOf("llama") == written + 50s; }));
  EXPECT_NE(svc.current()->etag, etag);
  // A Lease older than the entry's own heartbeat never makes it look older.
  ASSERT_TRUE(client->create(kube::kinds::Lease, "wl", routingHeartbeatLease("wl", "c2", 10s, written - 60s), {}));
  sim->advance(1s);
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(heartbeatOf("phi"), written);
  // A Lease without the heartbeat label is ignored.
  auto plain = routingHeartbeatLease("wl", "c2", 10s, written + 100s);
  plain["metadata"]["name"] = "not-a-heartbeat";
  plain["metadata"].erase("labels");
  ASSERT_TRUE(client->create(kube::kinds::Lease, "wl", plain, {}));
  sim->advance(1s);
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(heartbeatOf("phi"), written);
  // The dead cluster's Lease stops moving: nothing refreshes its entry any more.
  ASSERT_TRUE(client->remove(kube::kinds::Lease, "wl", "waterline-routing-c1"));
  ASSERT_TRUE(eventually([&] { return heartbeatOf("llama") == written; }));
  svc.stop();
  tables->stop();
  leases->stop();
}

}  // namespace
}  // namespace waterline::reconcilers

namespace waterline::reconcilers {
namespace {

TEST(RoutesServiceCoalescing, EventsWithinTheMinimumIntervalBecomeOneRebuild) {
  auto client = std::make_shared<FakeClient>();
  auto sim = std::make_shared<SimulatedTimeSource>();
  auto tables = std::make_shared<cache::Informer>(client, kube::kinds::RoutingTable, cache::InformerOptions{}, sim);
  RoutesService svc(tables, sim);
  svc.setMinRebuildInterval(1s);
  tables->start();
  ASSERT_TRUE(eventually([&] { return tables->hasSynced(); }));
  ASSERT_TRUE(client->create(kube::kinds::RoutingTable, "", routingTable("team", "a", "p1", 0.1), {}));
  ASSERT_TRUE(eventually([&] { return tables->store().list().size() == 1; }));
  svc.start();
  ASSERT_TRUE(eventually([&] { return svc.current()->table.deployments.size() == 1; })) << "built at start";
  ASSERT_TRUE(client->create(kube::kinds::RoutingTable, "", routingTable("team", "b", "p1", 0.1), {}));
  ASSERT_TRUE(client->create(kube::kinds::RoutingTable, "", routingTable("team", "c", "p1", 0.1), {}));
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(svc.current()->table.deployments.size(), 1u) << "within the interval: not rebuilt yet";
  sim->advance(1s);
  ASSERT_TRUE(eventually([&] { return svc.current()->table.deployments.size() == 3; }))
      << "both changes in the next rebuild";
  sim->advance(1s);  // a quiet interval: the next change is served at once
  ASSERT_TRUE(client->create(kube::kinds::RoutingTable, "", routingTable("team", "d", "p1", 0.1), {}));
  ASSERT_TRUE(eventually([&] { return svc.current()->table.deployments.size() == 4; }));
  svc.stop();
  tables->stop();
}

}  // namespace
}  // namespace waterline::reconcilers
