#include "waterline/dra/inventory.h"

#include <gtest/gtest.h>

#include <memory>

#include "fixtures.h"

namespace waterline::dra {
namespace {
using namespace testing;

const std::string kDriver(kNvidiaGpuDriver);

std::vector<std::string> names(const std::vector<const DeviceEntry*>& ds) {
  std::vector<std::string> out;
  for (auto* d : ds) out.push_back(d->id.device);
  return out;
}

std::vector<std::string> availableOn(const Inventory& inv, const std::string& node) {
  std::vector<std::string> out;
  for (auto* d : inv.devicesOn(node))
    if (inv.available(*d)) out.push_back(d->id.device);
  return out;
}

TEST(DraInventory, NaturalOrder) {
  EXPECT_TRUE(naturalLess("gpu-2", "gpu-10"));
  EXPECT_FALSE(naturalLess("gpu-10", "gpu-2"));
  EXPECT_TRUE(naturalLess("gpu-1-mig-19-6-1", "gpu-1-mig-19-10-1"));
  EXPECT_FALSE(naturalLess("gpu-1", "gpu-1"));
  EXPECT_TRUE(naturalLess("gpu-1", "gpu-1-mig"));
}

TEST(DraInventory, DevicesPerNodeInNaturalOrder) {
  std::vector<ResourceSlice> slices = {decodeSlice(h100Slice("node-a", 1, 12)), decodeSlice(l4Slice("node-b"))};
  Inventory inv = Inventory::build(slices, {});
  auto a = names(inv.devicesOn("node-a"));
  ASSERT_EQ(a.size(), 12u);
  EXPECT_EQ(a[2], "gpu-2");
  EXPECT_EQ(a[10], "gpu-10");
  EXPECT_EQ(names(inv.devicesOn("node-b")), (std::vector<std::string>{"gpu-0", "gpu-1", "gpu-2", "gpu-3"}));
  EXPECT_TRUE(inv.devicesOn("node-c").empty());
  EXPECT_TRUE(inv.problems().empty());
}

TEST(DraInventory, OnlyTheNewestGenerationCounts) {
  // Generation 1 had 8 GPUs; generation 2 (gpu-7 gone) replaces it. The API server may
  // still serve the old slice while the driver deletes it.
  Json old = h100Slice("node-a", 1, 8);
  old["metadata"]["name"] = "node-a-old";
  std::vector<ResourceSlice> slices = {decodeSlice(old), decodeSlice(h100Slice("node-a", 2, 7))};
  Inventory inv = Inventory::build(slices, {});
  EXPECT_EQ(inv.pools().at({kDriver, "node-a"}).generation, 2);
  EXPECT_EQ(inv.devicesOn("node-a").size(), 7u);
  EXPECT_EQ(inv.device({kDriver, "node-a", "gpu-7"}), nullptr);
  // Order of the slices does not matter.
  std::reverse(slices.begin(), slices.end());
  EXPECT_EQ(Inventory::build(slices, {}).devicesOn("node-a").size(), 7u);
}

TEST(DraInventory, IncompletePoolOffersNothingUntilAllSlicesArrive) {
  // The driver publishes generation 5 in two slices; only the first has arrived.
  Json first = slice("node-a-1", "node-a", "node-a", 5,
                     Json::array({gpuDevice(0, kH100, "Hopper", "9.0.0", "80Gi")}), nullptr, 2);
  Json second = slice("node-a-2", "node-a", "node-a", 5,
                      Json::array({gpuDevice(1, kH100, "Hopper", "9.0.0", "80Gi")}), nullptr, 2);
  std::vector<ResourceSlice> slices = {decodeSlice(h100Slice("node-a", 4, 8)), decodeSlice(first)};
  Inventory inv = Inventory::build(slices, {});
  const PoolState& p = inv.pools().at({kDriver, "node-a"});
  EXPECT_EQ(p.generation, 5);
  EXPECT_TRUE(p.incomplete);
  EXPECT_FALSE(p.usable());
  EXPECT_TRUE(inv.devicesOn("node-a").empty());  // not the old generation either

  slices.push_back(decodeSlice(second));
  inv = Inventory::build(slices, {});
  EXPECT_TRUE(inv.pools().at({kDriver, "node-a"}).usable());
  EXPECT_EQ(names(inv.devicesOn("node-a")), (std::vector<std::string>{"gpu-0", "gpu-1"}));
}

TEST(DraInventory, DuplicateDeviceMakesThePoolInvalid) {
  Json a = slice("s1", "node-a", "node-a", 1, Json::array({gpuDevice(0, kH100, "Hopper", "9.0.0", "80Gi")}), nullptr, 2);
  Json b = slice("s2", "node-a", "node-a", 1, Json::array({gpuDevice(0, kH100, "Hopper", "9.0.0", "80Gi")}), nullptr, 2);
  std::vector<ResourceSlice> slices = {decodeSlice(a), decodeSlice(b)};
  Inventory inv = Inventory::build(slices, {});
  EXPECT_TRUE(inv.pools().at({kDriver, "node-a"}).invalid);
  EXPECT_TRUE(inv.devicesOn("node-a").empty());
}

TEST(DraInventory, DuplicateCounterSetOrDisagreeingSliceCountIsInvalid) {
  Json a = partitionableH100Slice("node-p", 1, 1);
  a["spec"]["pool"]["resourceSliceCount"] = 2;
  Json b = slice("node-p-b", "node-p", "node-p", 1, Json::array(), Json::array({partitionCounters(0)}), 2);
  std::vector<ResourceSlice> slices = {decodeSlice(a), decodeSlice(b)};
  Inventory inv = Inventory::build(slices, {});
  EXPECT_TRUE(inv.pools().at({kDriver, "node-p"}).invalid);
  EXPECT_NE(inv.pools().at({kDriver, "node-p"}).problem.find("counter set gpu-0-counter-set"), std::string::npos);
  EXPECT_TRUE(inv.devicesOn("node-p").empty());
  EXPECT_TRUE(inv.counters().empty());

  b = slice("node-p-b", "node-p", "node-p", 1, Json::array(), nullptr, 3);
  slices = {decodeSlice(a), decodeSlice(b)};
  inv = Inventory::build(slices, {});
  EXPECT_TRUE(inv.pools().at({kDriver, "node-p"}).invalid);
  EXPECT_TRUE(inv.devicesOn("node-p").empty());
}

TEST(DraInventory, ForeignClaimsAreRespected) {
  // kube-scheduler allocated gpu-1 and gpu-2 for a pod Waterline does not manage.
  std::vector<ResourceSlice> slices = {decodeSlice(h100Slice("node-a", 1, 4))};
  std::vector<ResourceClaim> claims = {
      decodeClaim(allocatedClaim("ml", "notebook-gpu", "node-a", {{"node-a", "gpu-1"}, {"node-a", "gpu-2"}}))};
  Inventory inv = Inventory::build(slices, claims);
  EXPECT_EQ(availableOn(inv, "node-a"), (std::vector<std::string>{"gpu-0", "gpu-3"}));
  EXPECT_EQ(inv.device({kDriver, "node-a", "gpu-1"})->allocated_by, "ml/notebook-gpu");
  // A claim that names a device no slice publishes still holds it when it comes back.
  claims.push_back(decodeClaim(allocatedClaim("ml", "ghost", "node-a", {{"node-a", "gpu-9"}})));
  inv = Inventory::build(slices, claims);
  EXPECT_TRUE(inv.isAllocated({kDriver, "node-a", "gpu-9"}));
  slices = {decodeSlice(h100Slice("node-a", 2, 10))};
  inv = Inventory::build(slices, claims);
  EXPECT_FALSE(inv.available(*inv.device({kDriver, "node-a", "gpu-9"})));
  // Unallocated claims hold nothing.
  Json pending = allocatedClaim("ml", "pending", "node-a", {{"node-a", "gpu-0"}});
  pending["status"].erase("allocation");
  claims.push_back(decodeClaim(pending));
  inv = Inventory::build(slices, claims);
  EXPECT_TRUE(inv.available(*inv.device({kDriver, "node-a", "gpu-0"})));
}

TEST(DraInventory, DoubleAllocationIsReported) {
  std::vector<ResourceSlice> slices = {decodeSlice(h100Slice("node-a", 1, 2))};
  std::vector<ResourceClaim> claims = {decodeClaim(allocatedClaim("a", "x", "node-a", {{"node-a", "gpu-0"}})),
                                       decodeClaim(allocatedClaim("a", "y", "node-a", {{"node-a", "gpu-0"}}))};
  Inventory inv = Inventory::build(slices, claims);
  ASSERT_EQ(inv.problems().size(), 1u);
  EXPECT_NE(inv.problems()[0].message.find("a/x and a/y"), std::string::npos);
  EXPECT_EQ(inv.device({kDriver, "node-a", "gpu-0"})->allocated_by, "a/x");  // first by key keeps it
}

TEST(DraInventory, TaintedDevicesTakeNoNewAllocation) {
  Json j = h100Slice("node-a", 1, 3);
  j["spec"]["devices"][0]["taints"] = Json::array({{{"key", "k"}, {"effect", "NoSchedule"}}});
  j["spec"]["devices"][1]["taints"] = Json::array({{{"key", "k"}, {"effect", "NoExecute"}}});
  j["spec"]["devices"][2]["taints"] = Json::array({{{"key", "k"}, {"effect", "None"}}});
  std::vector<ResourceSlice> slices = {decodeSlice(j)};
  Inventory inv = Inventory::build(slices, {});
  EXPECT_EQ(availableOn(inv, "node-a"), (std::vector<std::string>{"gpu-2"}));
}

TEST(DraInventory, CounterArithmetic) {
  std::vector<ResourceSlice> slices = {decodeSlice(partitionableH100Slice("node-p", 1, 2))};
  const CounterKey mem{kDriver, "node-p", "gpu-0-counter-set", "memory"};
  const CounterKey sms{kDriver, "node-p", "gpu-0-counter-set", "multiprocessors"};
  const CounterKey slice4{kDriver, "node-p", "gpu-0-counter-set", "memory-slice-4"};
  {
    Inventory inv = Inventory::build(slices, {});
    EXPECT_EQ(inv.counter(mem)->total, int64_t{80} << 30);
    EXPECT_EQ(inv.counter(mem)->consumed, 0);
    EXPECT_EQ(availableOn(inv, "node-p").size(), 2u * 11);
  }
  // Two 1g.10gb at slices 0 and 5 on gpu-0.
  std::vector<ResourceClaim> claims = {
      decodeClaim(allocatedClaim("a", "m0", "node-p", {{"node-p", "gpu-0-mig-19-0-1"}})),
      decodeClaim(allocatedClaim("b", "m5", "node-p", {{"node-p", "gpu-0-mig-19-5-1"}}))};
  Inventory inv = Inventory::build(slices, claims);
  EXPECT_EQ(inv.counter(mem)->consumed, int64_t{20} << 30);
  EXPECT_EQ(inv.counter(mem)->remaining(), int64_t{60} << 30);
  EXPECT_EQ(inv.counter(sms)->consumed, 32);
  EXPECT_EQ(inv.counter(slice4)->consumed, 0);
  auto avail = availableOn(inv, "node-p");
  auto has = [&](const std::string& n) { return std::find(avail.begin(), avail.end(), n) != avail.end(); };
  EXPECT_FALSE(has("gpu-0"));             // the full GPU needs the whole set
  EXPECT_FALSE(has("gpu-0-mig-0-0-8"));   // 7g.80gb needs every slice
  EXPECT_FALSE(has("gpu-0-mig-9-0-4"));   // 3g.40gb@0 needs slice 0
  EXPECT_FALSE(has("gpu-0-mig-9-4-4"));   // 3g.40gb@4 needs slice 5
  EXPECT_FALSE(has("gpu-0-mig-19-0-1"));  // allocated
  EXPECT_TRUE(has("gpu-0-mig-19-1-1"));
  EXPECT_TRUE(has("gpu-0-mig-19-6-1"));
  EXPECT_TRUE(has("gpu-1"));              // the other GPU is untouched
  EXPECT_TRUE(inv.problems().empty());

  // The full gpu-1 taken: none of its partitions is allocatable any more.
  claims.push_back(decodeClaim(allocatedClaim("c", "full", "node-p", {{"node-p", "gpu-1"}})));
  inv = Inventory::build(slices, claims);
  for (auto* d : inv.devicesOn("node-p")) {
    if (d->id.device.starts_with("gpu-1")) {
      EXPECT_FALSE(inv.available(*d)) << d->id.device;
    }
  }

  // A driver that shrinks its counters under allocated devices is reported.
  Json shrunk = partitionableH100Slice("node-p", 2, 2);
  shrunk["spec"]["sharedCounters"][0]["counters"]["memory"] = qty("10Gi");
  std::vector<ResourceSlice> s2 = {decodeSlice(shrunk)};
  inv = Inventory::build(s2, claims);
  ASSERT_EQ(inv.problems().size(), 1u);
  EXPECT_NE(inv.problems()[0].message.find("over-consumed"), std::string::npos);
  EXPECT_FALSE(inv.available(*inv.device({kDriver, "node-p", "gpu-0-mig-19-1-1"})));
}

TEST(DraInventory, DeviceConsumingAnUnpublishedCounterIsNeverAvailable) {
  Json j = partitionableH100Slice("node-p", 1, 1);
  j["spec"].erase("sharedCounters");
  std::vector<ResourceSlice> slices = {decodeSlice(j)};
  Inventory inv = Inventory::build(slices, {});
  EXPECT_TRUE(availableOn(inv, "node-p").empty());
}

TEST(DraInventory, AllNodesDevicesAreOnEveryNode) {
  Json j = h100Slice("ignored", 1, 1);
  j["spec"].erase("nodeName");
  j["spec"]["allNodes"] = true;
  j["spec"]["pool"]["name"] = "fabric";
  std::vector<ResourceSlice> slices = {decodeSlice(j)};
  Inventory inv = Inventory::build(slices, {});
  EXPECT_EQ(inv.devicesOn("node-x").size(), 1u);
  EXPECT_EQ(inv.devicesOn("node-y").size(), 1u);
}

}  // namespace
}  // namespace waterline::dra

namespace waterline::dra {
namespace {
using namespace testing;

TEST(DraInventory, CopiesIndexTheirOwnDevices) {
  std::vector<ResourceSlice> slices = {decodeSlice(h100Slice("node-a", 1, 2))};
  auto original = std::make_unique<Inventory>(Inventory::build(slices, {}));
  Inventory copy = *original;
  Inventory assigned;
  assigned = *original;
  original.reset();
  for (const Inventory* inv : {&copy, &assigned}) {
    auto on = inv->devicesOn("node-a");
    ASSERT_EQ(on.size(), 2u);
    EXPECT_EQ(on[0], inv->device({std::string(kNvidiaGpuDriver), "node-a", "gpu-0"}));
    EXPECT_EQ(on[1], inv->device({std::string(kNvidiaGpuDriver), "node-a", "gpu-1"}));
  }
  Inventory moved = std::move(copy);
  EXPECT_EQ(moved.devicesOn("node-a")[0], moved.device({std::string(kNvidiaGpuDriver), "node-a", "gpu-0"}));
}

TEST(DraInventory, SetClaimsAgainEqualsABuild) {
  // Slices once, claims replaced: the same allocations, counters and problems as a build.
  std::vector<ResourceSlice> ss = {decodeSlice(h100Slice("n1", 1, 4)), decodeSlice(partitionableH100Slice("n2", 1, 2))};
  std::vector<ResourceClaim> first = {decodeClaim(allocatedClaim("a", "c1", "n1", {{"n1", "gpu-0"}, {"n1", "gpu-1"}})),
                                      decodeClaim(allocatedClaim("a", "c2", "n2", {{"n2", "gpu-0-mig-19-0-1"}}))};
  std::vector<ResourceClaim> second = {decodeClaim(allocatedClaim("a", "c3", "n1", {{"n1", "gpu-3"}})),
                                       decodeClaim(allocatedClaim("a", "c4", "n2", {{"n2", "gpu-1"}})),
                                       decodeClaim(allocatedClaim("a", "c5", "n1", {{"n1", "gpu-3"}}))};
  auto inc = Inventory::fromSlices(ss);
  std::vector<const ResourceClaim*> p1, p2;
  for (const auto& c : first) p1.push_back(&c);
  for (const auto& c : second) p2.push_back(&c);
  inc.setClaims(p1);
  EXPECT_TRUE(inc.isAllocated({"gpu.nvidia.com", "n1", "gpu-1"}));
  inc.setClaims(p2);
  auto full = Inventory::build(ss, second);
  EXPECT_EQ(inc.allocatedDevices(), full.allocatedDevices());
  EXPECT_FALSE(inc.isAllocated({"gpu.nvidia.com", "n1", "gpu-1"}));
  ASSERT_EQ(inc.counters().size(), full.counters().size());
  for (const auto& [k, c] : full.counters()) {
    EXPECT_EQ(inc.counters().at(k).consumed, c.consumed) << k.counter_set << "/" << k.counter;
    EXPECT_EQ(inc.counters().at(k).total, c.total);
  }
  for (const auto& [id, e] : full.devices()) EXPECT_EQ(inc.device(id)->allocated_by, e.allocated_by) << id.str();
  ASSERT_EQ(inc.problems().size(), 1u);  // gpu-3 twice
  EXPECT_EQ(inc.problems()[0].message, full.problems()[0].message);
}

TEST(DraInventory, ReplaceClaimOneAtATimeEqualsABuild) {
  std::vector<ResourceSlice> ss = {decodeSlice(h100Slice("n1", 1, 4)), decodeSlice(partitionableH100Slice("n2", 1, 2))};
  auto c1 = decodeClaim(allocatedClaim("a", "c1", "n1", {{"n1", "gpu-0"}, {"n1", "gpu-1"}}));
  auto c2 = decodeClaim(allocatedClaim("a", "c2", "n2", {{"n2", "gpu-0-mig-19-0-1"}}));
  auto c2b = decodeClaim(allocatedClaim("a", "c2", "n2", {{"n2", "gpu-1-mig-9-4-4"}}));
  auto c3 = decodeClaim(allocatedClaim("a", "c3", "n2", {{"n2", "gpu-0"}}));
  auto inc = Inventory::fromSlices(ss);
  inc.setClaims(std::vector<const ResourceClaim*>{});
  ASSERT_TRUE(inc.replaceClaim(nullptr, &c1));
  ASSERT_TRUE(inc.replaceClaim(nullptr, &c2));
  ASSERT_TRUE(inc.replaceClaim(&c2, &c2b));  // moved to the other GPU
  ASSERT_TRUE(inc.replaceClaim(nullptr, &c3));  // gpu-0's counters are whole again
  ASSERT_TRUE(inc.replaceClaim(&c1, nullptr));
  auto full = Inventory::build(ss, std::vector<ResourceClaim>{c2b, c3});
  EXPECT_EQ(inc.allocatedDevices(), full.allocatedDevices());
  for (const auto& [k, c] : full.counters()) EXPECT_EQ(inc.counters().at(k).consumed, c.consumed) << k.counter_set << "/" << k.counter;
  for (const auto& [id, e] : full.devices()) EXPECT_EQ(inc.device(id)->allocated_by, e.allocated_by) << id.str();
  // A device someone else holds, or counters that do not fit: refused, nothing changed.
  auto clash = decodeClaim(allocatedClaim("a", "c9", "n2", {{"n2", "gpu-0"}}));
  EXPECT_FALSE(inc.replaceClaim(nullptr, &clash));
  auto overlap = decodeClaim(allocatedClaim("a", "c8", "n2", {{"n2", "gpu-1-mig-9-4-4"}}));
  EXPECT_FALSE(inc.replaceClaim(nullptr, &overlap));
  auto counters = decodeClaim(allocatedClaim("a", "c7", "n2", {{"n2", "gpu-1-mig-19-5-1"}}));  // inside c2b's 3g
  EXPECT_FALSE(inc.replaceClaim(nullptr, &counters));
  EXPECT_EQ(inc.allocatedDevices(), full.allocatedDevices());
  for (const auto& [k, c] : full.counters()) EXPECT_EQ(inc.counters().at(k).consumed, c.consumed);
}

}  // namespace
}  // namespace waterline::dra
