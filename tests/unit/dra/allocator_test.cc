#include "waterline/dra/allocator.h"

#include <gtest/gtest.h>

#include "fixtures.h"

namespace waterline::dra {
namespace {
using namespace testing;

std::vector<std::string> devices(const Allocation& a) {
  std::vector<std::string> out;
  for (const auto& r : a.results) out.push_back(r.device);
  return out;
}

Need whole(int n, std::string product = "") {
  Need need;
  need.kind = Need::Kind::WholeGpus;
  need.count = n;
  need.product = std::move(product);
  return need;
}

Need mig(std::string profile) {
  Need need;
  need.kind = Need::Kind::Mig;
  need.mig_profile = std::move(profile);
  return need;
}

TEST(DraAllocator, WholeGpusLowestFreeAndTheClaimStatus) {
  std::vector<ResourceSlice> slices = {decodeSlice(h100Slice("node-a", 1, 8))};
  std::vector<ResourceClaim> claims = {decodeClaim(allocatedClaim("ml", "other", "node-a", {{"node-a", "gpu-0"}}))};
  Inventory inv = Inventory::build(slices, claims);
  auto a = allocate(inv, "node-a", whole(2, kH100));
  ASSERT_TRUE(a.has_value()) << a.error();
  EXPECT_EQ(devices(*a), (std::vector<std::string>{"gpu-1", "gpu-2"}));
  Json expected = Json::parse(R"({
    "devices": {"results": [
      {"request": "gpu", "driver": "gpu.nvidia.com", "pool": "node-a", "device": "gpu-1"},
      {"request": "gpu", "driver": "gpu.nvidia.com", "pool": "node-a", "device": "gpu-2"}]},
    "nodeSelector": {"nodeSelectorTerms": [{"matchFields": [
      {"key": "metadata.name", "operator": "In", "values": ["node-a"]}]}]}
  })");
  EXPECT_EQ(a->toJson(), expected);
  // The JSON round-trips through the claim decoder.
  Json claim = allocatedClaim("wl", "w-0", "node-a", {});
  claim["status"]["allocation"] = a->toJson();
  auto back = decodeResourceClaim(claim);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->results, a->results);
}

TEST(DraAllocator, WrongProductOtherNodeOrTooFewIsRefused) {
  std::vector<ResourceSlice> slices = {decodeSlice(h100Slice("node-a", 1, 2)), decodeSlice(l4Slice("node-b"))};
  Inventory inv = Inventory::build(slices, {});
  EXPECT_FALSE(allocate(inv, "node-a", whole(1, kL4)).has_value());
  auto refused = allocate(inv, "node-a", whole(3, kH100));
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error(), "node node-a: need 3 whole GPUs of NVIDIA H100 80GB HBM3; 2 free of 2 matching devices");
  EXPECT_FALSE(allocate(inv, "node-c", whole(1)).has_value());
  auto l4 = allocate(inv, "node-b", whole(4, kL4));
  ASSERT_TRUE(l4.has_value());
  EXPECT_EQ(devices(*l4), (std::vector<std::string>{"gpu-0", "gpu-1", "gpu-2", "gpu-3"}));
}

TEST(DraAllocator, PreCreatedMig) {
  std::vector<ResourceSlice> slices = {decodeSlice(a100MigSlice("node-m"))};
  std::vector<ResourceClaim> claims = {
      decodeClaim(allocatedClaim("ml", "other", "node-m", {{"node-m", "gpu-0-mig-19-4-1"}}))};
  Inventory inv = Inventory::build(slices, claims);
  auto a = allocate(inv, "node-m", mig("1g.5gb"));
  ASSERT_TRUE(a.has_value()) << a.error();
  EXPECT_EQ(devices(*a), (std::vector<std::string>{"gpu-0-mig-19-5-1"}));
  auto big = allocate(inv, "node-m", mig("3g.20gb"));
  ASSERT_TRUE(big.has_value());
  EXPECT_EQ(devices(*big), (std::vector<std::string>{"gpu-0-mig-9-0-4"}));
  EXPECT_FALSE(allocate(inv, "node-m", mig("7g.40gb")).has_value());  // not pre-created
  EXPECT_FALSE(allocate(inv, "node-m", whole(1)).has_value());         // only MIG devices published
}

TEST(DraAllocator, PartitionableMigGoesToTheFullestGpu) {
  std::vector<ResourceSlice> slices = {decodeSlice(partitionableH100Slice("node-p", 1, 2))};
  // gpu-1 already has a 3g.40gb; gpu-0 is idle.
  std::vector<ResourceClaim> claims = {
      decodeClaim(allocatedClaim("a", "m", "node-p", {{"node-p", "gpu-1-mig-9-0-4"}}))};
  Inventory inv = Inventory::build(slices, claims);
  auto a = allocate(inv, "node-p", mig("1g.10gb"));
  ASSERT_TRUE(a.has_value()) << a.error();
  EXPECT_EQ(devices(*a), (std::vector<std::string>{"gpu-1-mig-19-4-1"}));  // keeps gpu-0 whole
  auto full = allocate(inv, "node-p", whole(1));
  ASSERT_TRUE(full.has_value());
  EXPECT_EQ(devices(*full), (std::vector<std::string>{"gpu-0"}));
  EXPECT_FALSE(allocate(inv, "node-p", whole(2)).has_value());  // gpu-1 is partitioned
  auto g3 = allocate(inv, "node-p", mig("3g.40gb"));
  ASSERT_TRUE(g3.has_value());
  EXPECT_EQ(devices(*g3), (std::vector<std::string>{"gpu-1-mig-9-4-4"}));
}

TEST(DraAllocator, PreCreatedMigBeforePartitionable) {
  Json mixed = partitionableH100Slice("node-x", 1, 1);
  mixed["spec"]["devices"].push_back(migDevice(1, kH100, "1g.10gb", 19, 0, 1, "10Gi", 16));
  std::vector<ResourceSlice> slices = {decodeSlice(mixed)};
  Inventory inv = Inventory::build(slices, {});
  auto a = allocate(inv, "node-x", mig("1g.10gb"));
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(devices(*a), (std::vector<std::string>{"gpu-1-mig-19-0-1"}));
}

TEST(DraAllocator, CountersOfOneAllocationAddUp) {
  // A counter set shared by two "gpu" devices that each need 60 of 100 units: only one
  // of them fits in one allocation, though each fits alone.
  Json devs = Json::array();
  for (int i = 0; i < 2; ++i) {
    Json d = gpuDevice(i, kH100, "Hopper", "9.0.0", "80Gi");
    d["consumesCounters"] = Json::array({{{"counterSet", "shared"}, {"counters", {{"units", qty("60")}}}}});
    devs.push_back(d);
  }
  Json sets = Json::array({{{"name", "shared"}, {"counters", {{"units", qty("100")}}}}});
  std::vector<ResourceSlice> slices = {decodeSlice(slice("s", "node-a", "node-a", 1, devs, sets))};
  Inventory inv = Inventory::build(slices, {});
  EXPECT_TRUE(allocate(inv, "node-a", whole(1)).has_value());
  EXPECT_FALSE(allocate(inv, "node-a", whole(2)).has_value());
}

TEST(DraAllocator, SharedGpuCarriesTheDriversSharingConfig) {
  std::vector<ResourceSlice> slices = {decodeSlice(l4Slice("node-l"))};
  std::vector<ResourceClaim> claims = {decodeClaim(allocatedClaim("x", "y", "node-l", {{"node-l", "gpu-0"}}))};
  Inventory inv = Inventory::build(slices, claims);
  Need need;
  need.kind = Need::Kind::SharedGpu;
  need.product = kL4;
  auto a = allocate(inv, "node-l", need);
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(devices(*a), (std::vector<std::string>{"gpu-1"}));
  Json cfg = a->toJson()["devices"]["config"];
  ASSERT_EQ(cfg.size(), 1u);
  EXPECT_EQ(cfg[0]["source"], "FromClaim");
  EXPECT_EQ(cfg[0]["requests"], Json::array({"gpu"}));
  EXPECT_EQ(cfg[0]["opaque"]["driver"], "gpu.nvidia.com");
  EXPECT_EQ(cfg[0]["opaque"]["parameters"]["kind"], "GpuConfig");
  EXPECT_EQ(cfg[0]["opaque"]["parameters"]["sharing"]["strategy"], "TimeSlicing");
  need.sharing = "MPS";
  EXPECT_EQ(allocate(inv, "node-l", need)->toJson()["devices"]["config"][0]["opaque"]["parameters"]["sharing"]["strategy"],
            "MPS");
  need.sharing = "Magic";
  EXPECT_FALSE(allocate(inv, "node-l", need).has_value());
}

TEST(DraAllocator, TaintedAndForeignDevicesAreSkipped) {
  Json j = h100Slice("node-a", 1, 4);
  j["spec"]["devices"][0]["taints"] = Json::array({{{"key", "gpu.nvidia.com/xid"}, {"effect", "NoExecute"}}});
  std::vector<ResourceSlice> slices = {decodeSlice(j)};
  std::vector<ResourceClaim> claims = {decodeClaim(allocatedClaim("ml", "ks", "node-a", {{"node-a", "gpu-1"}}))};
  Inventory inv = Inventory::build(slices, claims);
  auto a = allocate(inv, "node-a", whole(2));
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(devices(*a), (std::vector<std::string>{"gpu-2", "gpu-3"}));
  EXPECT_FALSE(allocate(inv, "node-a", whole(3)).has_value());
}

}  // namespace
}  // namespace waterline::dra
