// A fatal XID error reported by DCGM (here: waterline-sim's DCGM gauges, scraped by a real
// Prometheus) marks the GPU unhealthy on its node, and the worker on it moves.
#include "md_world.h"
#include "procs.h"

namespace waterline::mdit {
namespace {

std::string xidAnnotation(kube::Client& c, const std::string& node) {
  auto n = c.get(kube::kinds::Node, "", node);
  if (!n) return "?";
  return (*n)["metadata"].value("annotations", Json::object()).value("waterline.dev/xid-unhealthy-gpus", "");
}

TEST(XidIT, AFatalXidMarksTheGpuUnhealthyAndItsWorkerMoves) {
  WL_CLIENT_OR_SKIP(c);
  if (it::findBinary("WATERLINE_PROMETHEUS", "prometheus").empty())
    GTEST_SKIP() << "no prometheus binary (Debian's prometheus, or set WATERLINE_PROMETHEUS)";
  World w(c);
  // 1. Place one 1-GPU worker (an operator without Prometheus), then stop that operator.
  {
    OperatorProcess first;
    first.start();
    w.apply(w.deployment("llama", 1, 1));
    ASSERT_TRUE(it::eventually([&] { return w.statusInt("llama", "readyReplicas") == 1; }, 90s)) << first.logText();
  }
  auto pods = w.pods("llama");
  ASSERT_EQ(pods.size(), 1u);
  const std::string oldPod = pods[0]["metadata"]["name"];
  auto a = scheduling::decodeAssignment(pods[0]["metadata"]["annotations"].value("waterline.dev/gpu-assignment", ""));
  ASSERT_TRUE(a && a->gpus.size() == 1);
  const std::string node = a->node;
  const int gpu = a->gpus[0];

  // 2. DCGM for that node (all 8 GPUs, through a simulated 8-GPU worker), Prometheus
  //    scraping it, and the operator querying Prometheus for XIDs every second.
  it::Sim sim;
  ASSERT_TRUE(sim.start({"--worker", "pod=dcgm-" + node + ",namespace=" + w.ns + ",deployment=dcgm,pool=p,gpu=H100,tp=8,node=" + node}))
      << sim.logText();
  it::Prometheus prom({sim.listenPort});
  prom.start();
  it::OperatorProcess op;
  op.start({"--leader-elect=false", "--prometheus-url=" + prom.url(), "--xid-poll-period=1s", "--prometheus-timeout=2s"});
  // Healthy DCGM: nothing is marked.
  std::this_thread::sleep_for(5s);
  EXPECT_EQ(xidAnnotation(*c, node), "");

  // 3. XID 79 (fallen off the bus) on the worker's GPU.
  const std::string inject = "curl -s -m 5 -X POST 'http://127.0.0.1:" + std::to_string(sim.listenPort) +
                             "/inject/xid?node=" + node + "&gpu=" + std::to_string(gpu) + "&xid=79' >/dev/null";
  ASSERT_EQ(it::run(inject), 0);
  ASSERT_TRUE(it::eventually([&] { return xidAnnotation(*c, node) == std::to_string(gpu); }, 60s))
      << "operator:\n" << op.logText() << "\nprometheus:\n" << prom.logText();
  // The worker moves off it: a ready replacement elsewhere, the old pod gone.
  ASSERT_TRUE(it::eventually([&] {
    auto now = w.pods("llama");
    bool oldGone = true, movedReady = false;
    for (const auto& p : now) {
      if (p["metadata"]["name"] == oldPod) oldGone = false;
      auto b = scheduling::decodeAssignment(p["metadata"]["annotations"].value("waterline.dev/gpu-assignment", ""));
      if (b && !(b->node == node && b->gpus == std::vector<int>{gpu}) && isReady(p)) movedReady = true;
    }
    return oldGone && movedReady;
  }, 90s)) << op.logText();
  expectNoDoubleBooking(w.pods("llama"));
  // Counted in the pool and as an Event on the node.
  ASSERT_TRUE(it::eventually([&] {
    auto p = c->get(kube::kinds::CapacityPool, "", w.pool);
    return p && (*p)["status"]["gpus"].value("unhealthy", 0) >= 1;
  }, 30s));
  bool event = false;
  if (auto evs = c->list(kube::kinds::CoreEvent, "default"))
    for (const auto& e : evs->items)
      event |= e.value("reason", "") == "GpuXidError" && e["involvedObject"].value("name", "") == node;
  EXPECT_TRUE(event) << "a GpuXidError Event on the node";
  EXPECT_GE(op.metric("waterline_xid_gpus_marked_total{xid=\"79\"}"), 1) << op.logText();

  // 4. A reset clears the gauge: the GPU comes back.
  ASSERT_EQ(it::run("curl -s -m 5 -X POST 'http://127.0.0.1:" + std::to_string(sim.listenPort) + "/clear/xid?node=" +
                    node + "&gpu=" + std::to_string(gpu) + "' >/dev/null"),
            0);
  EXPECT_TRUE(it::eventually([&] { return xidAnnotation(*c, node).empty(); }, 60s)) << op.logText();
}

}  // namespace
}  // namespace waterline::mdit
