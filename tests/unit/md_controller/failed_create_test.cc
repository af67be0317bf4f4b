// A worker create the apiserver refuses (here: an admission rule the operator cannot
// foresee, as a 422): the deployment reports it (Scheduled=False and Degraded=True,
// reason WorkerCreateFailed, with the apiserver's message; a Warning Event), holds no
// GPU, retries on its backoff rather than on capacity events, and the deployments that
// wait for capacity are woken up at once: when the create fails and when the broken
// deployment is deleted.
#include <gtest/gtest.h>

#include <atomic>
#include <set>

#include "common.h"
#include "waterline/api/model_deployment.h"
#include "waterline/reconcilers/model_deployment.h"
#include "waterline/runtime/events.h"

namespace waterline::reconcilers {
namespace {

using namespace std::chrono_literals;
using testing::FakeClient;
using testsupport::deploymentJson;
using testsupport::eventually;
using testsupport::poolJson;
using Json = kube::Json;

// Refuses every worker pod of the deployment "broken" with 422, as an admission rule of
// the cluster would.
class RefusingClient : public FakeClient {
 public:
  kube::Result<Json> create(const kube::ResourceKind& kind, const std::string& ns, const Json& obj,
                            const kube::WriteOptions& o = {}) override {
    if (kind.resource == "pods" && obj["metadata"]["labels"].value("waterline.dev/deployment", "") == "broken") {
      ++refused;
      kube::ApiError e;
      e.reason = kube::ApiError::Reason::Invalid;
      e.httpCode = 422;
      e.message = "Pod \"" + obj["metadata"].value("name", "") + "\" is invalid: spec.containers[0].image: " +
                  "Invalid value: refused by policy";
      return std::unexpected(e);
    }
    return FakeClient::create(kind, ns, obj, o);
  }
  std::atomic<int> refused{0};
};

Json nodeJson(const std::string& name, const std::string& pool, int gpus) {
  return {{"apiVersion", "v1"},
          {"kind", "Node"},
          {"metadata",
           {{"name", name},
            {"labels",
             {{"waterline.dev/pool", pool},
              {"nvidia.com/gpu.product", "NVIDIA-H100-80GB-HBM3"},
              {"nvidia.com/gpu.count", std::to_string(gpus)}}}}},
          {"status",
           {{"conditions", Json::array({{{"type", "Ready"}, {"status", "True"}}})},
            {"allocatable", {{"nvidia.com/gpu", std::to_string(gpus)}}}}}};
}

Json md(const std::string& name) {
  auto j = deploymentJson("team", name);
  j["spec"]["replicas"] = 1;
  j["spec"]["gpu"]["count"] = 1;
  return j;
}

const Json* conditionOf(const Json& obj, const std::string& type) {
  if (!obj.contains("status") || !obj["status"].contains("conditions")) return nullptr;
  for (const auto& c : obj["status"]["conditions"])
    if (c.value("type", "") == type) return &c;
  return nullptr;
}

struct Fixture {
  metrics::Registry registry;  // first: outlives the controller
  std::shared_ptr<RefusingClient> client = std::make_shared<RefusingClient>();
  std::shared_ptr<SimulatedTimeSource> sim = std::make_shared<SimulatedTimeSource>();
  cache::InformerPtr pools, nodes, pods, mds;
  std::shared_ptr<capacity::CapacityCache> placement;
  std::shared_ptr<runtime::FakeEventRecorder> recorder = std::make_shared<runtime::FakeEventRecorder>();
  runtime::ControllerPtr c;

  Fixture() {
    auto mk = [&](const kube::ResourceKind& k) {
      return std::make_shared<cache::Informer>(client, k, cache::InformerOptions{}, sim);
    };
    pools = mk(kube::kinds::CapacityPool);
    nodes = mk(kube::kinds::Node);
    pods = mk(kube::kinds::Pod);
    mds = mk(kube::kinds::ModelDeployment);
    placement = std::make_shared<capacity::CapacityCache>(capacity::CapacityCacheSources{pools, nodes, pods, nullptr}, sim);
  }
  void start() {
    ModelDeploymentDeps deps;
    deps.writer = client;
    deps.deployments = mds;
    deps.pools = pools;
    deps.nodes = nodes;
    deps.capacity = placement;
    deps.recorder = recorder;
    deps.time = sim;
    deps.repairs = std::make_shared<RepairTracker>(registry);
    runtime::ControllerOptions opts;
    opts.time = sim;
    opts.registry = &registry;
    c = newModelDeploymentController(deps, opts);
    for (auto& i : {pools, nodes, pods, mds}) i->start();
    ASSERT_TRUE(eventually([&] {
      return pools->hasSynced() && nodes->hasSynced() && pods->hasSynced() && mds->hasSynced();
    }));
    drain();
  }
  ~Fixture() {
    for (auto& i : {pools, nodes, pods, mds})
      if (i) i->stop();
  }
  // The keys queued now (handlers run on the informers' threads: give them a moment).
  std::set<std::string> drain() {
    std::set<std::string> keys;
    std::this_thread::sleep_for(100ms);
    while (auto k = c->queue().tryGet()) {
      keys.insert(*k);
      c->queue().done(*k);
    }
    return keys;
  }
  // Reconciles one key now, whatever else is queued.
  void reconcile(const std::string& key) {
    drain();
    c->enqueue(runtime::Request::fromKey(key));
    ASSERT_TRUE(c->processNextForTest());
  }
  Json get(const std::string& name) { return *client->get(kube::kinds::ModelDeployment, "team", name); }
};

TEST(FailedCreate, IsReportedReleasesItsGpusAndWakesTheWaiting) {
  Fixture f;
  ASSERT_TRUE(f.client->create(kube::kinds::CapacityPool, "", poolJson("p1", "eu-west", "EU"), {}));
  ASSERT_TRUE(f.client->create(kube::kinds::Node, "", nodeJson("n1", "p1", 1), {}));
  ASSERT_TRUE(f.client->create(kube::kinds::ModelDeployment, "team", md("broken"), {}));
  // "waiting" asked for the same GPU and was told there is none.
  auto waiting = md("waiting");
  waiting["status"] = {{"conditions", Json::array({{{"type", "Scheduled"},
                                                    {"status", "False"},
                                                    {"reason", "InsufficientCapacity"},
                                                    {"message", "need 1 more GPU"},
                                                    {"lastTransitionTime", "2025-01-01T00:00:00Z"}}})}};
  ASSERT_TRUE(f.client->create(kube::kinds::ModelDeployment, "team", waiting, {}));
  f.start();
  if (::testing::Test::HasFatalFailure()) return;

  f.reconcile("team/broken");
  EXPECT_EQ(f.client->refused.load(), 1);
  // Reported: not "1 of 1 replicas scheduled".
  auto broken = f.get("broken");
  const auto* sched = conditionOf(broken, "Scheduled");
  ASSERT_NE(sched, nullptr) << broken.dump();
  EXPECT_EQ(sched->value("status", ""), "False");
  EXPECT_EQ(sched->value("reason", ""), "WorkerCreateFailed");
  EXPECT_NE(sched->value("message", "").find("refused by policy"), std::string::npos) << sched->dump();
  EXPECT_EQ(broken["status"].value("scheduledReplicas", -1), 0);
  const auto* degraded = conditionOf(broken, "Degraded");
  ASSERT_NE(degraded, nullptr);
  EXPECT_EQ(degraded->value("reason", ""), "WorkerCreateFailed");
  int warnings = 0;
  for (const auto& e : f.recorder->events()) warnings += e.type == "Warning" && e.reason == "WorkerCreateFailed";
  EXPECT_EQ(warnings, 1);
  // Released: nothing assumed, and the waiting deployment is queued now (not at resync).
  EXPECT_EQ(f.placement->stats().assumed, 0u);
  auto queued = f.drain();
  EXPECT_TRUE(queued.count("team/waiting")) << "the waiting deployment was not woken up";

  // A repeat of the same failure (the retry) sends no second Event, and wakes the
  // waiting deployment again.
  f.reconcile("team/broken");
  EXPECT_EQ(f.client->refused.load(), 2);
  warnings = 0;
  for (const auto& e : f.recorder->events()) warnings += e.reason == "WorkerCreateFailed";
  EXPECT_EQ(warnings, 1);
  EXPECT_EQ(f.placement->stats().assumed, 0u);
  EXPECT_TRUE(f.drain().count("team/waiting"));

  // The broken deployment retries on its backoff, never because capacity moved: a node
  // change wakes the waiting one only.
  auto n1 = *f.client->get(kube::kinds::Node, "", "n1");
  n1["metadata"]["labels"]["extra"] = "x";
  ASSERT_TRUE(f.client->update(kube::kinds::Node, "", n1, {}));
  std::set<std::string> afterNode;
  ASSERT_TRUE(eventually([&] {
    for (const auto& k : f.drain()) afterNode.insert(k);
    return afterNode.count("team/waiting") > 0;
  }));
  EXPECT_FALSE(afterNode.count("team/broken")) << "a broken deployment must not bypass its backoff";

  // The waiting deployment places on the GPU the broken one did not get.
  f.reconcile("team/waiting");
  ASSERT_TRUE(eventually([&] { return f.pods->store().list().size() == 1; }));
  auto w = f.get("waiting");
  EXPECT_EQ(conditionOf(w, "Scheduled")->value("status", ""), "True") << w.dump();
}

TEST(FailedCreate, ADeletedDeploymentWakesTheWaiting) {
  Fixture f;
  ASSERT_TRUE(f.client->create(kube::kinds::CapacityPool, "", poolJson("p1", "eu-west", "EU"), {}));
  ASSERT_TRUE(f.client->create(kube::kinds::Node, "", nodeJson("n1", "p1", 1), {}));
  ASSERT_TRUE(f.client->create(kube::kinds::ModelDeployment, "team", md("broken"), {}));
  auto waiting = md("waiting");
  waiting["status"] = {{"conditions", Json::array({{{"type", "Scheduled"},
                                                    {"status", "False"},
                                                    {"reason", "InsufficientCapacity"},
                                                    {"message", "need 1 more GPU"},
                                                    {"lastTransitionTime", "2025-01-01T00:00:00Z"}}})}};
  ASSERT_TRUE(f.client->create(kube::kinds::ModelDeployment, "team", waiting, {}));
  f.start();
  if (::testing::Test::HasFatalFailure()) return;

  ASSERT_TRUE(f.client->remove(kube::kinds::ModelDeployment, "team", "broken"));
  std::set<std::string> queued;
  ASSERT_TRUE(eventually([&] {
    for (const auto& k : f.drain()) queued.insert(k);
    return queued.count("team/broken") > 0;
  }));
  EXPECT_TRUE(queued.count("team/waiting")) << "deleting a deployment must wake the waiting ones";
}

}  // namespace
}  // namespace waterline::reconcilers
