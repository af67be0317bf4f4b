// The waterline-operator binary end to end: it reconciles CapacityPools (status,
// observedGeneration, Ready), and with two replicas only the lease holder reconciles;
// when it is killed, the standby takes over within the lease duration.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "it_support.h"
#include "operator_process.h"
#include "waterline/api/capacity_pool.h"

namespace waterline {
namespace {

using namespace std::chrono_literals;
using kube::Json;

using it::OperatorProcess;

// Each test gets its own kwok GPU nodes (a unique name prefix and label), so pools of
// different tests never select the same nodes.
struct Nodes {
  std::string prefix = it::uniqueName("n");
  Nodes() {
    EXPECT_EQ(it::run("bash " + it::env("WATERLINE_SOURCE_DIR") + "/hack/fixtures/gpu-nodes.sh --kubeconfig " +
                      it::env("WATERLINE_TEST_KUBECONFIG") + " --profile small --prefix " + prefix +
                      " >/dev/null"),
              0);
  }
  ~Nodes() {
    (void)it::run("bash " + it::env("WATERLINE_SOURCE_DIR") + "/hack/fixtures/gpu-nodes.sh --kubeconfig " +
                  it::env("WATERLINE_TEST_KUBECONFIG") + " --profile small --prefix " + prefix +
                  " --delete >/dev/null 2>&1");
  }
};

Json pool(const std::string& name, const std::string& region, const std::string& prefix) {
  return {{"apiVersion", "waterline.dev/v1alpha1"},
          {"kind", "CapacityPool"},
          {"metadata", {{"name", name}}},
          {"spec",
           {{"region", region},
            {"dataZone", region.rfind("eu", 0) == 0 ? "EU" : "US"},
            {"gpuProduct", "NVIDIA-H100-80GB-HBM3"},
            {"nodeSelector",
             {{"matchLabels",
               {{"topology.kubernetes.io/region", region}, {"waterline.dev/fixture-prefix", prefix}}}}}}}};
}

// Waits until the pool's status reflects its current generation with Ready=True.
bool poolReconciled(kube::Client& c, const std::string& name, int64_t* generation = nullptr) {
  auto got = c.get(kube::kinds::CapacityPool, "", name);
  if (!got) return false;
  auto p = api::CapacityPool::fromJson(*got);
  if (!p) return false;
  if (generation) *generation = p->metadata.generation;
  return p->status.observedGeneration == p->metadata.generation &&
         api::isTrue(p->status.conditions, "Ready") && p->status.gpus.total > 0;
}

std::string leaseHolder(kube::Client& c, const std::string& lease) {
  auto l = c.get(kube::kinds::Lease, "waterline-system", lease);
  if (!l) return "";
  return (*l)["spec"].value("holderIdentity", "");
}

TEST(OperatorIT, ReconcilesPoolStatusAndObservedGeneration) {
  WL_CLIENT_OR_SKIP(client);
  Nodes nodes;
  const std::string name = it::uniqueName("pool");
  OperatorProcess op;
  op.start({"--leader-elect=false"});
  ASSERT_TRUE(client->apply(kube::kinds::CapacityPool, "", pool(name, "eu-west", nodes.prefix),
                            {"it-test", true, ""}));
  int64_t gen = 0;
  ASSERT_TRUE(it::eventually([&] { return poolReconciled(*client, name, &gen); }, 60s))
      << op.logText();
  auto got = client->get(kube::kinds::CapacityPool, "", name);
  auto p = api::CapacityPool::fromJson(*got);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->status.gpus.total, 16);  // small fixture: two 8x H100 nodes in eu-west
  EXPECT_GE(p->status.nodes, 2);
  // A spec change bumps the generation; the operator catches up.
  Json changed = pool(name, "eu-west", nodes.prefix);
  changed["spec"]["schedulingStrategy"] = "Spread";
  ASSERT_TRUE(client->apply(kube::kinds::CapacityPool, "", changed, {"it-test", true, ""}));
  int64_t gen2 = 0;
  ASSERT_TRUE(it::eventually([&] { return poolReconciled(*client, name, &gen2) && gen2 > gen; }, 60s));
  // A pool that selects nothing is reported not Ready with a reason, not an error loop.
  const std::string empty = it::uniqueName("pool-empty");
  ASSERT_TRUE(client->apply(kube::kinds::CapacityPool, "", pool(empty, "ap-south", nodes.prefix), {"it-test", true, ""}));
  ASSERT_TRUE(it::eventually([&] {
    auto g = client->get(kube::kinds::CapacityPool, "", empty);
    if (!g) return false;
    auto q = api::CapacityPool::fromJson(*g);
    const auto* c = q ? api::findCondition(q->status.conditions, "Ready") : nullptr;
    return c && c->status == api::ConditionStatus::False && c->reason == "NoNodes";
  }, 60s));
  // /healthz and /readyz answer on the metrics port, and /metrics has reconcile counts.
  EXPECT_EQ(op.get("/healthz"), "ok\n");
  EXPECT_EQ(op.get("/readyz"), "ok\n");
  EXPECT_GT(op.metric("waterline_controller_reconcile_total{controller=\"capacitypool\""), 0);
  // API client and informer metrics are wired, and the exposition passes promtool's lint.
  EXPECT_GT(op.metric("waterline_rest_client_requests_total{verb=\"LIST\""), 0);
  EXPECT_EQ(op.metric("waterline_informer_synced{resource=\"nodes\"}"), 1);
  {
    const std::string file = "/tmp/" + it::uniqueName("metrics") + ".txt";
    std::ofstream(file) << op.get("/metrics");
    EXPECT_EQ(it::run("promtool check metrics < " + file), 0) << op.get("/metrics");
    std::remove(file.c_str());
  }
  op.kill(SIGTERM);
  (void)client->remove(kube::kinds::CapacityPool, "", name);
  (void)client->remove(kube::kinds::CapacityPool, "", empty);
}

TEST(OperatorIT, OnlyTheLeaderReconcilesAndStandbyTakesOver) {
  WL_CLIENT_OR_SKIP(client);
  Nodes nodes;
  const std::string lease = it::uniqueName("lease");
  const std::vector<std::string> le = {"--leader-elect=true", "--leader-election-id=" + lease,
                                       "--lease-duration=6s", "--renew-deadline=4s", "--retry-period=1s"};
  OperatorProcess a, b;
  auto withId = [&](const std::string& id) {
    auto v = le;
    v.push_back("--identity=" + id);
    return v;
  };
  a.start(withId("replica-a"));
  ASSERT_TRUE(it::eventually([&] { return leaseHolder(*client, lease) == "replica-a"; }, 30s))
      << a.logText();
  b.start(withId("replica-b"));
  // b is up (healthy, caches synced) but not leading.
  ASSERT_TRUE(it::eventually([&] { return b.get("/readyz") == "ok\n"; }, 30s)) << b.logText();
  const std::string p1 = it::uniqueName("pool-le");
  ASSERT_TRUE(client->apply(kube::kinds::CapacityPool, "", pool(p1, "us-east", nodes.prefix), {"it-test", true, ""}));
  ASSERT_TRUE(it::eventually([&] { return poolReconciled(*client, p1); }, 60s));
  EXPECT_EQ(a.metric("waterline_leader_is_leader"), 1);
  EXPECT_EQ(b.metric("waterline_leader_is_leader"), 0);
  EXPECT_GT(a.metric("waterline_controller_reconcile_total{controller=\"capacitypool\""), 0);
  EXPECT_EQ(b.metric("waterline_controller_reconcile_total{controller=\"capacitypool\""), 0);

  // Kill the leader without a chance to release the lease.
  const auto killedAt = std::chrono::steady_clock::now();
  a.kill(SIGKILL);
  ASSERT_TRUE(it::eventually([&] { return leaseHolder(*client, lease) == "replica-b"; }, 30s))
      << b.logText();
  const auto tookOver = std::chrono::steady_clock::now() - killedAt;
  // Within the lease duration (6 s) plus one retry period and scheduling slack.
  EXPECT_LT(tookOver, 6s + 1s + 3s);
  // The new leader reconciles new work.
  const std::string p2 = it::uniqueName("pool-le2");
  ASSERT_TRUE(client->apply(kube::kinds::CapacityPool, "", pool(p2, "eu-west", nodes.prefix), {"it-test", true, ""}));
  ASSERT_TRUE(it::eventually([&] { return poolReconciled(*client, p2); }, 60s)) << b.logText();
  EXPECT_EQ(b.metric("waterline_leader_is_leader"), 1);
  // A graceful stop releases the lease at once.
  b.kill(SIGTERM);
  EXPECT_EQ(leaseHolder(*client, lease), "");
  (void)client->remove(kube::kinds::CapacityPool, "", p1);
  (void)client->remove(kube::kinds::CapacityPool, "", p2);
}

}  // namespace
}  // namespace waterline
