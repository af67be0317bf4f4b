// The routing publisher's per-pool load from Prometheus: waterline-sim serves vLLM token
// counters for the deployment's worker, a real Prometheus scrapes them, and the
// RoutingTable entry's loadTokensPerMinute and utilization follow.
#include "md_world.h"
#include "procs.h"
#include "waterline/routing/table.h"

namespace waterline::mdit {
namespace {

TEST(RoutingLoadIT, PublishedUtilizationComesFromTheWorkersTokenRates) {
  WL_CLIENT_OR_SKIP(c);
  if (it::findBinary("WATERLINE_PROMETHEUS", "prometheus").empty())
    GTEST_SKIP() << "no prometheus binary (Debian's prometheus, or set WATERLINE_PROMETHEUS)";
  World w(c);
  Json d = w.deployment("llama", 1, 1);
  d["spec"]["throughput"] = {{"tokensPerMinutePerReplica", 600000}};
  // Load on the deployment's worker (a stand-in with its labels).
  it::Sim sim;
  ASSERT_TRUE(sim.start(tokenLoadSimArgs(w, "llama", 3))) << sim.logText();
  it::Prometheus prom({sim.listenPort});
  prom.start();
  it::OperatorProcess op;
  op.start({"--leader-elect=false", "--prometheus-url=" + prom.url(), "--routing-heartbeat=1s"});
  w.apply(d);
  const std::string rt = w.ns + ".llama";
  routing::DeploymentRoutes last;
  ASSERT_TRUE(it::eventually([&] {
    auto o = c->get(kube::kinds::RoutingTable, "", rt);
    if (!o) return false;
    auto r = routing::DeploymentRoutes::fromResource(*o);
    if (!r || r->entries.size() != 1) return false;
    last = *r;
    // rate() over [1m] ramps up while the series is young: wait for a settled value.
    return r->entries[0].loadTokensPerMinute > 10000 && !r->entries[0].endpoints.empty();
  }, 120s)) << "operator:\n" << op.logText() << "\nsim:\n" << sim.logText();
  const auto& e = last.entries[0];
  EXPECT_EQ(e.pool, w.pool);
  // ~4 req/s x ~208 tokens x 60 s is ~50k tokens/min: within an order of magnitude.
  EXPECT_LT(e.loadTokensPerMinute, 500000);
  EXPECT_NEAR(e.utilization, e.loadTokensPerMinute / e.capacityTokensPerMinute, 1e-9);
  (void)c->remove(kube::kinds::RoutingTable, "", rt);
}

}  // namespace
}  // namespace waterline::mdit
