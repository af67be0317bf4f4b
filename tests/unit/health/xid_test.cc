// GPU faults from DCGM XID errors: the pure annotation planner, and the watcher over a
// fake Prometheus and a fake API server.
#include <gtest/gtest.h>

#include <thread>

#include "fake_client.h"
#include "waterline/planners/nodes.h"
#include "waterline/planners/xid.h"
#include "waterline/reconcilers/xid_watcher.h"

namespace waterline {
namespace {

using planners::NodeXidState;
using planners::planXidAnnotations;
using planners::XidSample;

TEST(XidPlan, FatalXidMarksTheGpuAndOnlyASampleClearsIt) {
  std::vector<NodeXidState> nodes = {{"n1", "", 8}, {"n2", "", 8}};
  // 79 (fallen off the bus) on n1 GPU 3; 13 (a graphics engine exception) is not fatal.
  auto c = planXidAnnotations({{"n1", 3, 79}, {"n1", 4, 13}, {"n2", 0, 0}}, nodes);
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0].node, "n1");
  EXPECT_EQ(c[0].annotation, "3");
  EXPECT_EQ(c[0].marked, (std::vector<std::pair<int, int>>{{3, 79}}));

  nodes[0].annotation = "3";
  // Still 79: nothing to do. Series gone (exporter down): held, nothing to do.
  EXPECT_TRUE(planXidAnnotations({{"n1", 3, 79}}, nodes).empty());
  EXPECT_TRUE(planXidAnnotations({}, nodes).empty());
  // A second GPU fails: both listed, ascending.
  c = planXidAnnotations({{"n1", 0, 48}, {"n1", 3, 79}}, nodes);
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0].annotation, "0,3");
  // The XID gauge is back to 0 after a reset: the annotation goes.
  c = planXidAnnotations({{"n1", 3, 0}}, nodes);
  ASSERT_EQ(c.size(), 1u);
  EXPECT_FALSE(c[0].annotation.has_value());
  EXPECT_EQ(c[0].cleared, std::vector<int>{3});
}

TEST(XidPlan, UnknownNodesAndOutOfRangeGpusAreIgnored) {
  std::vector<NodeXidState> nodes = {{"n1", "", 4}};
  EXPECT_TRUE(planXidAnnotations({{"ghost", 0, 79}, {"n1", 4, 79}, {"n1", -1, 79}}, nodes).empty());
  EXPECT_TRUE(planXidAnnotations({{"n1", 0, 79}}, nodes, {48}).size() == 0) << "custom fatal set";
}

TEST(XidPlan, TheInventoryReadsBothAnnotations) {
  nlohmann::json node = {
      {"metadata",
       {{"name", "n1"},
        {"labels", {{"nvidia.com/gpu.count", "8"}}},
        {"annotations", {{"waterline.dev/unhealthy-gpus", "1,3"}, {"waterline.dev/xid-unhealthy-gpus", "3,5"}}}}},
      {"status", {{"conditions", {{{"type", "Ready"}, {"status", "True"}}}}}}};
  EXPECT_EQ(planners::NodeView::fromJson(node).unhealthyGpus, (std::vector<int>{1, 3, 5}));
}

struct FakeProm : sources::PrometheusClient {
  std::mutex mu;
  std::optional<sources::PromResult> next;  // nullopt: a transport error
  int calls = 0;
  sources::PromResultOr query(std::string_view promql, std::optional<SystemTime>) override {
    std::lock_guard g(mu);
    ++calls;
    EXPECT_EQ(promql, reconcilers::kDefaultXidQuery);
    if (!next) return std::unexpected(sources::PromError{sources::PromErrorKind::Transport, "", "refused", 0, 1});
    return *next;
  }
  void set(std::vector<XidSample> s) {
    std::lock_guard g(mu);
    sources::PromResult r;
    for (const auto& x : s) r.samples.push_back({{{"Hostname", x.node}, {"gpu", std::to_string(x.gpu)}}, double(x.xid), 0});
    next = r;
  }
  void fail() {
    std::lock_guard g(mu);
    next.reset();
  }
};

struct Recorder : runtime::EventRecorder {
  std::mutex mu;
  std::vector<std::string> reasons;
  void event(const kube::Json&, const std::string&, const std::string& reason, const std::string&) override {
    std::lock_guard g(mu);
    reasons.push_back(reason);
  }
};

TEST(XidWatcher, AnnotatesNodesFromPrometheusAndHoldsWhenItFails) {
  auto client = std::make_shared<testing::FakeClient>();
  auto sim = std::make_shared<SimulatedTimeSource>();
  nlohmann::json node = {{"apiVersion", "v1"},
                         {"kind", "Node"},
                         {"metadata", {{"name", "n1"}, {"labels", {{"nvidia.com/gpu.count", "8"}}}}}};
  ASSERT_TRUE(client->create(kube::kinds::Node, "", node, {}));
  auto nodes = std::make_shared<cache::Informer>(client, kube::kinds::Node, cache::InformerOptions{}, sim);
  nodes->start();
  for (int i = 0; i < 500 && nodes->store().list().size() != 1; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ASSERT_EQ(nodes->store().list().size(), 1u);
  auto prom = std::make_shared<FakeProm>();
  auto rec = std::make_shared<Recorder>();
  metrics::Registry reg;
  reconcilers::XidWatcher w({client, nodes, prom, rec, sim, std::chrono::seconds(30),
                             std::string(reconcilers::kDefaultXidQuery), {}, &reg});
  auto annotation = [&] {
    auto n = client->get(kube::kinds::Node, "", "n1");
    return n ? (*n)["metadata"].value("annotations", nlohmann::json::object()).value("waterline.dev/xid-unhealthy-gpus", "")
             : std::string("?");
  };
  auto waitCache = [&](const std::string& want) {
    for (int i = 0; i < 500; ++i) {
      auto n = nodes->store().get("n1");
      if (n && (*n)["metadata"].value("annotations", nlohmann::json::object()).value("waterline.dev/xid-unhealthy-gpus", "") == want) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  };

  prom->set({{"n1", 2, 79}});
  EXPECT_TRUE(w.syncOnce());
  EXPECT_EQ(annotation(), "2");
  ASSERT_TRUE(waitCache("2"));
  EXPECT_EQ(rec->reasons, std::vector<std::string>{"GpuXidError"});

  prom->fail();
  EXPECT_FALSE(w.syncOnce());
  EXPECT_EQ(annotation(), "2") << "a failed query changes nothing";

  prom->set({{"n1", 2, 0}});
  EXPECT_TRUE(w.syncOnce());
  EXPECT_EQ(annotation(), "") << "removed once DCGM reports the GPU clean";
  EXPECT_EQ(rec->reasons, (std::vector<std::string>{"GpuXidError", "GpuXidCleared"}));
  const std::string text = reg.serialize();
  EXPECT_NE(text.find(R"(waterline_xid_gpus_marked_total{xid="79"} 1)"), std::string::npos) << text;
  EXPECT_NE(text.find(R"(waterline_xid_syncs_total{result="query_error"} 1)"), std::string::npos) << text;
  EXPECT_NE(text.find(R"(waterline_xid_syncs_total{result="ok"} 2)"), std::string::npos) << text;
  nodes->stop();
}

}  // namespace
}  // namespace waterline
