#include "waterline/reconcilers/routing_publisher.h"

#include <gtest/gtest.h>

#include <cmath>

#include "common.h"

namespace waterline::reconcilers {
namespace {

using namespace std::chrono_literals;
using testing::FakeClient;
using testsupport::deploymentJson;
using testsupport::eventually;
using testsupport::podJson;
using testsupport::poolJson;
using Json = kube::Json;

struct PublisherTest : ::testing::Test {
  std::shared_ptr<FakeClient> client = std::make_shared<FakeClient>();
  std::shared_ptr<SimulatedTimeSource> sim = std::make_shared<SimulatedTimeSource>();
  cache::InformerPtr deployments, pools, pods;
  std::unique_ptr<RoutingPublisher> pub;

  void SetUp() override {
    auto mk = [&](const kube::ResourceKind& k) {
      auto i = std::make_shared<cache::Informer>(client, k, cache::InformerOptions{}, sim);
      i->start();
      return i;
    };
    deployments = mk(kube::kinds::ModelDeployment);
    pools = mk(kube::kinds::CapacityPool);
    pods = mk(kube::kinds::Pod);
    ASSERT_TRUE(eventually([&] { return deployments->hasSynced() && pools->hasSynced() && pods->hasSynced(); }));
    pub = std::make_unique<RoutingPublisher>(deps());

    create(kube::kinds::CapacityPool, "", poolJson("p-eu", "eu-west", "EU"));
    create(kube::kinds::ModelDeployment, "team", deploymentJson("team", "llama"));
    create(kube::kinds::Pod, "team", podJson("team", "w1", "llama", "p-eu", "10.1.0.1", true));
    create(kube::kinds::Pod, "team", podJson("team", "w2", "llama", "p-eu", "10.1.0.2", false));
    create(kube::kinds::Pod, "team", podJson("team", "other", "phi", "p-eu", "10.1.0.9", true));
    ASSERT_TRUE(eventually([&] {
      return deployments->store().list().size() == 1 && pools->store().list().size() == 1 &&
             pods->store().list().size() == 3;
    }));
  }
  void TearDown() override {
    for (auto& i : {deployments, pools, pods}) i->stop();
  }
  // A publisher's dependencies on the fixture's informers (cluster eu-1, heartbeat 10 s).
  RoutingPublisherDeps deps() {
    RoutingPublisherDeps d;
    d.hub = client;
    d.hubReader = client;
    d.deployments = deployments;
    d.pools = pools;
    d.workerPods = pods;
    d.cluster = "eu-1";
    d.heartbeat = 10s;
    d.time = sim;
    return d;
  }
  // A started, synced informer of the hub's RoutingTables (the caller stops it).
  cache::InformerPtr hubTables() {
    auto t = std::make_shared<cache::Informer>(client, kube::kinds::RoutingTable, cache::InformerOptions{}, sim);
    t->start();
    EXPECT_TRUE(eventually([&] { return t->hasSynced(); }));
    return t;
  }
  void create(const kube::ResourceKind& k, const std::string& ns, const Json& o) {
    ASSERT_TRUE(client->create(k, ns, o, {})) << o.dump();
  }
  std::optional<Json> table() {
    auto r = client->get(kube::kinds::RoutingTable, "", "team.llama");
    if (!r) return std::nullopt;
    return *r;
  }
  std::string rv() { return table().value_or(Json::object())["metadata"].value("resourceVersion", ""); }
  runtime::Result reconcile() {
    auto r = pub->reconcile({"team", "llama"});
    EXPECT_TRUE(r.has_value()) << (r ? "" : r.error().message);
    return r.value_or(runtime::Result{});
  }
};

TEST_F(PublisherTest, PublishesThisClustersEntryFromReadyWorkers) {
  auto res = reconcile();
  EXPECT_EQ(res.requeueAfter, 10s) << "the heartbeat requeues the key";
  auto t = table();
  ASSERT_TRUE(t);
  EXPECT_EQ((*t)["metadata"]["labels"]["waterline.dev/deployment"], "llama");
  auto routes = routing::DeploymentRoutes::fromResource(*t);
  ASSERT_TRUE(routes) << routes.error();
  EXPECT_EQ(routes->model, "meta-llama/Llama-3.1-8B-Instruct");
  ASSERT_EQ(routes->entries.size(), 1u);
  const auto& e = routes->entries[0];
  EXPECT_EQ(e.cluster, "eu-1");
  EXPECT_EQ(e.pool, "p-eu");
  EXPECT_EQ(e.region, "eu-west");
  EXPECT_EQ(e.dataZone, "EU");
  EXPECT_EQ(e.endpoints, (std::vector<std::string>{"10.1.0.1:8000"})) << "only the Ready worker, only llama's";
  EXPECT_DOUBLE_EQ(e.capacityTokensPerMinute, 60000);
  EXPECT_DOUBLE_EQ(e.maxUtilization, 0.8);
  EXPECT_EQ(e.heartbeatTime, sim->systemTime());
}

TEST_F(PublisherTest, UnchangedRoutesAreRewrittenOnlyForTheHeartbeat) {
  reconcile();
  const std::string rv1 = rv();
  sim->advance(3s);
  auto res = reconcile();
  EXPECT_EQ(rv(), rv1) << "nothing changed and the heartbeat is fresh: no write";
  EXPECT_EQ(res.requeueAfter, 7s) << "requeued for the rest of the heartbeat";
  sim->advance(7s);
  reconcile();
  EXPECT_NE(rv(), rv1) << "heartbeat due: rewritten";
  auto routes = routing::DeploymentRoutes::fromResource(*table());
  EXPECT_EQ(routes->entries[0].heartbeatTime, sim->systemTime());
}

TEST_F(PublisherTest, AChangeIsWrittenAtOnce) {
  reconcile();
  const std::string rv1 = rv();
  ASSERT_TRUE(client->apply(kube::kinds::Pod, "team", podJson("team", "w2", "llama", "p-eu", "10.1.0.2", true),
                            {"test", true, ""}));
  ASSERT_TRUE(eventually([&] {
    auto p = pods->store().get("team/w2");
    return p && (*p)["status"]["conditions"][0]["status"] == "True";
  }));
  sim->advance(1s);
  reconcile();
  EXPECT_NE(rv(), rv1);
  auto routes = routing::DeploymentRoutes::fromResource(*table());
  EXPECT_EQ(routes->entries[0].endpoints, (std::vector<std::string>{"10.1.0.1:8000", "10.1.0.2:8000"}));
  EXPECT_DOUBLE_EQ(routes->entries[0].capacityTokensPerMinute, 120000);
}

TEST_F(PublisherTest, AGainWithinTheIntervalWaitsALossIsWrittenAtOnce) {
  reconcile();
  const std::string rv1 = rv();
  auto setReady = [&](const std::string& name, const std::string& ip, bool ready) {
    ASSERT_TRUE(client->apply(kube::kinds::Pod, "team", podJson("team", name, "llama", "p-eu", ip, ready),
                              {"test", true, ""}));
    ASSERT_TRUE(eventually([&] {
      auto p = pods->store().get("team/" + name);
      return p && (*p)["status"]["conditions"][0]["status"] == (ready ? "True" : "False");
    }));
  };
  // w2 becomes ready 300 ms after the last write: a gain, written when the second is up.
  setReady("w2", "10.1.0.2", true);
  sim->advance(300ms);
  auto res = reconcile();
  EXPECT_EQ(rv(), rv1) << "only a gain, within gainWriteInterval: not yet";
  EXPECT_EQ(res.requeueAfter, 700ms);
  sim->advance(700ms);
  reconcile();
  ASSERT_NE(rv(), rv1);
  auto routes = routing::DeploymentRoutes::fromResource(*table());
  EXPECT_EQ(routes->entries[0].endpoints, (std::vector<std::string>{"10.1.0.1:8000", "10.1.0.2:8000"}));
  const std::string rv2 = rv();
  // w1 stops being ready 100 ms later: a loss, written at once.
  setReady("w1", "10.1.0.1", false);
  sim->advance(100ms);
  reconcile();
  EXPECT_NE(rv(), rv2) << "an endpoint that goes is never held back";
  routes = routing::DeploymentRoutes::fromResource(*table());
  EXPECT_EQ(routes->entries[0].endpoints, (std::vector<std::string>{"10.1.0.2:8000"}));
}

TEST_F(PublisherTest, ADeletedDeploymentTakesItsTableWithIt) {
  reconcile();
  ASSERT_TRUE(table());
  ASSERT_TRUE(client->remove(kube::kinds::ModelDeployment, "team", "llama"));
  ASSERT_TRUE(eventually([&] { return deployments->store().list().empty(); }));
  reconcile();
  EXPECT_FALSE(table()) << "no cluster has entries left: the object is deleted";
  reconcile();  // idempotent
  EXPECT_FALSE(table());
}

TEST_F(PublisherTest, NoWorkersHereMeansNoEntries) {
  for (auto n : {"w1", "w2"}) ASSERT_TRUE(client->remove(kube::kinds::Pod, "team", n));
  ASSERT_TRUE(eventually([&] { return pods->store().list().size() == 1; }));
  auto res = reconcile();
  EXPECT_FALSE(table());
  EXPECT_EQ(res.requeueAfter, 10s);
  // Known empty: later heartbeats ask the hub nothing (no hot loop at fleet size).
  const int gets = client->getCalls();
  for (int i = 0; i < 3; ++i) {
    sim->advance(10s);
    reconcile();
  }
  EXPECT_EQ(client->getCalls(), gets);
  // A worker again: published at once, and removed again when it goes.
  create(kube::kinds::Pod, "team", podJson("team", "w3", "llama", "p-eu", "10.1.0.3", true));
  ASSERT_TRUE(eventually([&] { return pods->store().list().size() == 2; }));
  reconcile();
  ASSERT_TRUE(table());
  ASSERT_TRUE(client->remove(kube::kinds::Pod, "team", "w3"));
  ASSERT_TRUE(eventually([&] { return pods->store().list().size() == 1; }));
  reconcile();
  EXPECT_FALSE(table());
}

TEST_F(PublisherTest, WorkersAreFoundThroughTheDeploymentIndexToo) {
  auto idx = std::make_shared<cache::Informer>(client, kube::kinds::Pod, cache::InformerOptions{}, sim);
  idx->addIndexer(kWorkerDeploymentIndex, workerDeploymentIndexFunc);
  idx->start();
  ASSERT_TRUE(eventually([&] { return idx->hasSynced() && idx->store().list().size() == 3; }));
  EXPECT_EQ(idx->store().byIndex(kWorkerDeploymentIndex, "team/llama").size(), 2u);
  RoutingPublisherDeps d = deps();
  d.workerPods = idx;
  RoutingPublisher p(std::move(d));
  ASSERT_TRUE(p.reconcile({"team", "llama"}));
  auto routes = routing::DeploymentRoutes::fromResource(*table());
  ASSERT_TRUE(routes);
  EXPECT_EQ(routes->entries[0].endpoints, (std::vector<std::string>{"10.1.0.1:8000"}));
  idx->stop();
}

TEST(RoutingFieldManager, NamesTheCluster) {
  EXPECT_EQ(routingFieldManager("eu-1"), "waterline-operator/eu-1");
  EXPECT_EQ(routingFieldManager(""), "waterline-operator/local");
}


struct RecordingProm : sources::PrometheusClient {
  std::vector<std::string> queries;
  std::optional<sources::PromResult> answer;
  sources::PromResultOr query(std::string_view q, std::optional<SystemTime>) override {
    queries.emplace_back(q);
    if (!answer) return std::unexpected(sources::PromError{sources::PromErrorKind::Timeout, "", "slow", 0, 1});
    return *answer;
  }
};

TEST(PrometheusLoad, PerPoolWeightedTokensFromTheWorkersCounters) {
  auto prom = std::make_shared<RecordingProm>();
  sources::PromResult r;
  r.samples = {{{{"pool", "p-eu"}}, 30000, 0},
               {{{"pool", "p-us"}}, 12000.5, 0},
               {{{"pool", "p-bad"}}, std::nan(""), 0},
               {{}, 99, 0}};
  prom->answer = r;
  auto load = makePrometheusLoad(prom);
  auto md = api::ModelDeployment::fromJson(testsupport::deploymentJson("team", "llama"));
  ASSERT_TRUE(md) << md.error();
  md->spec.throughput->inputTokenWeight = 0.25;
  md->spec.throughput->outputTokenWeight = 4;
  auto m = load(*md);
  EXPECT_EQ(m, (std::map<std::string, double>{{"p-eu", 30000}, {"p-us", 12000.5}}));
  ASSERT_EQ(prom->queries.size(), 1u);
  const auto& q = prom->queries[0];
  EXPECT_NE(q.find(R"(vllm:prompt_tokens_total{namespace="team",deployment="llama"})"), std::string::npos) << q;
  EXPECT_NE(q.find("[1m])) * 0.25"), std::string::npos) << q;
  EXPECT_NE(q.find("[1m])) * 4)"), std::string::npos) << q;
  prom->answer.reset();
  EXPECT_TRUE(load(*md).empty()) << "a failed query is unknown load, not zero";
}

TEST_F(PublisherTest, ObservedLoadSetsUtilization) {
  RoutingPublisherDeps d = deps();
  d.load = [](const api::ModelDeployment&) { return std::map<std::string, double>{{"p-eu", 15000}}; };
  RoutingPublisher p(std::move(d));
  ASSERT_TRUE(p.reconcile({"team", "llama"}));
  auto routes = routing::DeploymentRoutes::fromResource(*table());
  ASSERT_TRUE(routes);
  EXPECT_DOUBLE_EQ(routes->entries[0].loadTokensPerMinute, 15000);
  EXPECT_DOUBLE_EQ(routes->entries[0].utilization, 0.25) << "15k of one ready replica's 60k tokens/min";
}


// A publisher whose cluster heartbeat Lease is (or is not) being renewed, with a load
// the test sets.
struct CoveredPublisherTest : PublisherTest {
  std::atomic<bool> leaseLive{true};
  std::atomic<double> loadEu{15000};
  std::unique_ptr<RoutingPublisher> covered;
  void SetUp() override {
    PublisherTest::SetUp();
    RoutingPublisherDeps d = deps();
    d.load = [this](const api::ModelDeployment&) { return std::map<std::string, double>{{"p-eu", loadEu.load()}}; };
    d.clusterHeartbeatLive = [this] { return leaseLive.load(); };
    covered = std::make_unique<RoutingPublisher>(std::move(d));
  }
  runtime::Result run() {
    auto r = covered->reconcile({"team", "llama"});
    EXPECT_TRUE(r.has_value()) << (r ? "" : r.error().message);
    return r.value_or(runtime::Result{});
  }
  double utilization() { return routing::DeploymentRoutes::fromResource(*table())->entries[0].utilization; }
};

TEST_F(CoveredPublisherTest, WhileTheClusterLeaseIsRenewedUnchangedEntriesAreNeverRewritten) {
  run();
  const std::string rv1 = rv();
  ASSERT_FALSE(rv1.empty());
  for (int i = 0; i < 6; ++i) {  // a minute of heartbeats
    sim->advance(10s);
    auto res = run();
    EXPECT_EQ(res.requeueAfter, 10s) << "still re-read every heartbeat (load)";
  }
  EXPECT_EQ(rv(), rv1) << "nothing changed: no write at all";
  // The Lease stops being renewed (namespace gone, RBAC): back to a write per heartbeat.
  leaseLive = false;
  run();
  EXPECT_NE(rv(), rv1) << "heartbeat overdue without the Lease: rewritten";
  EXPECT_EQ(routing::DeploymentRoutes::fromResource(*table())->entries[0].heartbeatTime, sim->systemTime());
}

TEST_F(CoveredPublisherTest, LoadIsRewrittenWhenUtilizationMovesByAPercentPoint) {
  run();
  const std::string rv1 = rv();
  EXPECT_DOUBLE_EQ(utilization(), 0.25);
  loadEu = 15000 + 120;  // +0.2 points of 60k: a router would not act on it
  sim->advance(10s);
  run();
  EXPECT_EQ(rv(), rv1);
  loadEu = 15000 + 1800;  // +3 points
  sim->advance(10s);
  run();
  EXPECT_NE(rv(), rv1);
  EXPECT_DOUBLE_EQ(utilization(), 0.28);
}

TEST_F(CoveredPublisherTest, AChangeIsWrittenAtOnceEvenWhileCovered) {
  run();
  const std::string rv1 = rv();
  ASSERT_TRUE(client->apply(kube::kinds::Pod, "team", podJson("team", "w2", "llama", "p-eu", "10.1.0.2", true),
                            {"test", true, ""}));
  ASSERT_TRUE(eventually([&] {
    auto p = pods->store().get("team/w2");
    return p && (*p)["status"]["conditions"][0]["status"] == "True";
  }));
  sim->advance(1s);  // a gain: written once gainWriteInterval has passed since the last write
  run();
  EXPECT_NE(rv(), rv1);
  EXPECT_EQ(routing::DeploymentRoutes::fromResource(*table())->entries[0].endpoints.size(), 2u);
}


// With the hub's RoutingTable cache, a deployment with nothing to publish costs no GET;
// one whose table this publisher wrote is still removed from the hub itself.
TEST_F(PublisherTest, TheHubCacheAnswersForDeploymentsWithNothingToPublish) {
  auto tables = hubTables();
  RoutingPublisherDeps d = deps();
  d.hubTables = tables;
  RoutingPublisher p(std::move(d));
  // "phi" has a Ready worker but no ModelDeployment: nothing to publish, nothing in the hub.
  const int gets = client->getCalls();
  ASSERT_TRUE(p.reconcile({"team", "phi"}));
  EXPECT_EQ(client->getCalls(), gets) << "the synced cache says there is no table: no GET";
  // llama's table is written, then its workers go: removed from the hub although the
  // cache may not have seen the write (it asks the hub).
  ASSERT_TRUE(p.reconcile({"team", "llama"}));
  ASSERT_TRUE(table());
  for (auto n : {"w1", "w2"}) ASSERT_TRUE(client->remove(kube::kinds::Pod, "team", n));
  ASSERT_TRUE(eventually([&] { return pods->store().list().size() == 1; }));
  ASSERT_TRUE(p.reconcile({"team", "llama"}));
  EXPECT_FALSE(table()) << "our only entries: the object is deleted";
  tables->stop();
}


// Covered by the cluster Lease, an unchanged deployment is not rewritten, unless its
// entries are gone from the hub (a deleted RoutingTable comes back at the next pass).
TEST_F(PublisherTest, ADeletedTableIsWrittenAgainEvenWhileTheLeaseCoversIt) {
  auto tables = hubTables();
  RoutingPublisherDeps d = deps();
  d.hubTables = tables;
  d.clusterHeartbeatLive = [] { return true; };
  RoutingPublisher p(std::move(d));
  ASSERT_TRUE(p.reconcile({"team", "llama"}));
  ASSERT_TRUE(eventually([&] { return tables->store().get("team.llama") != nullptr; }));
  const std::string rv1 = rv();
  sim->advance(10s);
  ASSERT_TRUE(p.reconcile({"team", "llama"}));
  EXPECT_EQ(rv(), rv1) << "in the hub and unchanged: no write";
  ASSERT_TRUE(client->remove(kube::kinds::RoutingTable, "", "team.llama"));
  ASSERT_TRUE(eventually([&] { return tables->store().get("team.llama") == nullptr; }));
  sim->advance(10s);
  ASSERT_TRUE(p.reconcile({"team", "llama"}));
  ASSERT_TRUE(table()) << "gone from the hub: applied again";
  EXPECT_EQ(routing::DeploymentRoutes::fromResource(*table())->entries[0].cluster, "eu-1");
  tables->stop();
}

}  // namespace
}  // namespace waterline::reconcilers
