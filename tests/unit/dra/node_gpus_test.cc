#include "waterline/dra/node_gpus.h"

#include <gtest/gtest.h>

#include "fixtures.h"

namespace waterline::dra {
namespace {
using namespace testing;

Inventory inventory(const std::vector<Json>& slices, const std::vector<Json>& claims = {}) {
  std::vector<ResourceSlice> s;
  for (const auto& j : slices) s.push_back(decodeSlice(j));
  std::vector<ResourceClaim> c;
  for (const auto& j : claims) c.push_back(decodeClaim(j));
  return Inventory::build(s, c);
}

auto none = [](const std::string&) { return false; };

TEST(DraNodeGpus, WholeGpusNumberedByMinorWithProductAndMemory) {
  auto inv = inventory({h100Slice("n1", 1, 4)});
  auto g = nodeGpus(inv, "n1", none);
  EXPECT_TRUE(g.published);
  EXPECT_EQ(g.count, 4);
  EXPECT_EQ(g.product, "NVIDIA-H100-80GB-HBM3");
  EXPECT_EQ(g.memoryMiB, 81559);
  EXPECT_TRUE(g.unhealthy.empty());
  EXPECT_TRUE(g.heldByOthers.empty());
  ASSERT_EQ(g.devices.size(), 4u);
  EXPECT_EQ(g.devices.at(3).device, "gpu-3");
  EXPECT_EQ(g.devices.at(3).pool, "n1");
  // Another node, or a node without slices, publishes nothing.
  EXPECT_FALSE(nodeGpus(inv, "n2", none).published);
  EXPECT_EQ(nodeGpus(inv, "n2", none).count, 0);
}

TEST(DraNodeGpus, AMissingDeviceIsAHoleNotARenumbering) {
  Json s = h100Slice("n1", 1, 4);
  s["spec"]["devices"].erase(1);  // gpu-1 went away
  auto g = nodeGpus(inventory({s}), "n1", none);
  EXPECT_EQ(g.count, 4);
  EXPECT_EQ(g.unhealthy, std::vector<int>{1});
  EXPECT_EQ(g.devices.at(2).device, "gpu-2");
}

TEST(DraNodeGpus, TaintedDeviceIsUnhealthy) {
  Json s = h100Slice("n1", 1, 2);
  s["spec"]["devices"][0]["taints"] = Json::array({{{"key", "gpu.nvidia.com/xid"}, {"value", "79"}, {"effect", "NoExecute"}}});
  auto g = nodeGpus(inventory({s}), "n1", none);
  EXPECT_EQ(g.unhealthy, std::vector<int>{0});
}

TEST(DraNodeGpus, ForeignClaimsHoldTheirGpusOwnClaimsDoNot) {
  auto inv = inventory({h100Slice("n1", 1, 4)}, {allocatedClaim("team-a", "trainer", "n1", {{"n1", "gpu-2"}}),
                                                  allocatedClaim("llm", "w-1-gpu", "n1", {{"n1", "gpu-0"}})});
  auto ours = [](const std::string& k) { return k == "llm/w-1-gpu"; };
  auto g = nodeGpus(inv, "n1", ours);
  ASSERT_EQ(g.heldByOthers.size(), 1u);
  EXPECT_EQ(g.heldByOthers.at(2), "team-a/trainer");
  // Without knowing the worker's claim, it counts as someone else's too.
  EXPECT_EQ(nodeGpus(inv, "n1", none).heldByOthers.size(), 2u);
}

TEST(DraNodeGpus, ForeignMigDeviceHoldsItsParentGpu) {
  Json s = partitionableH100Slice("n1", 1, 2);
  auto inv = inventory({s}, {allocatedClaim("team-a", "small", "n1", {{"n1", "gpu-1-mig-19-3-1"}})});
  auto g = nodeGpus(inv, "n1", none);
  EXPECT_EQ(g.count, 2);
  ASSERT_EQ(g.heldByOthers.size(), 1u);
  EXPECT_TRUE(g.heldByOthers.count(1));
  // ... and the whole GPU's device cannot be allocated (its counters are taken).
  EXPECT_FALSE(allocateGpus(inv, "n1", {1}).has_value());
  EXPECT_TRUE(allocateGpus(inv, "n1", {0}).has_value());
}

TEST(DraNodeGpus, AllocateGpusNamesTheDevicesAndRefusesTakenOnes) {
  auto inv = inventory({h100Slice("n1", 1, 4)}, {allocatedClaim("team-a", "trainer", "n1", {{"n1", "gpu-2"}})});
  auto a = allocateGpus(inv, "n1", {0, 3});
  ASSERT_TRUE(a.has_value()) << a.error();
  ASSERT_EQ(a->results.size(), 2u);
  EXPECT_EQ(a->results[0].device, "gpu-0");
  EXPECT_EQ(a->results[1].device, "gpu-3");
  EXPECT_EQ(a->results[1].request, "gpu");
  EXPECT_EQ(a->results[1].pool, "n1");
  EXPECT_EQ(a->toJson()["nodeSelector"]["nodeSelectorTerms"][0]["matchFields"][0]["values"][0], "n1");
  auto taken = allocateGpus(inv, "n1", {1, 2});
  ASSERT_FALSE(taken.has_value());
  EXPECT_NE(taken.error().find("team-a/trainer"), std::string::npos);
  EXPECT_FALSE(allocateGpus(inv, "n1", {7}).has_value());
  EXPECT_FALSE(allocateGpus(inv, "n2", {0}).has_value());
}

TEST(DraNodeGpus, GfdProductSpelling) {
  EXPECT_EQ(gfdProduct("NVIDIA H100 80GB HBM3"), "NVIDIA-H100-80GB-HBM3");
  EXPECT_EQ(gfdProduct("NVIDIA A100-SXM4-40GB"), "NVIDIA-A100-SXM4-40GB");
}

}  // namespace
}  // namespace waterline::dra
