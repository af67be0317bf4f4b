#include "waterline/dra/resource.h"

#include <gtest/gtest.h>

#include "fixtures.h"

namespace waterline::dra {
namespace {
using namespace testing;

TEST(DraQuantity, ParsesBinaryDecimalAndRoundsUp) {
  EXPECT_EQ(parseQuantity("80Gi").value(), int64_t{80} << 30);
  EXPECT_EQ(parseQuantity("81559Mi").value(), int64_t{81559} << 20);
  EXPECT_EQ(parseQuantity("1").value(), 1);
  EXPECT_EQ(parseQuantity("132").value(), 132);
  EXPECT_EQ(parseQuantity("2k").value(), 2000);
  EXPECT_EQ(parseQuantity("1e3").value(), 1000);
  EXPECT_EQ(parseQuantity("1.5").value(), 2);  // Quantity.Value() rounds up
  EXPECT_EQ(parseQuantity("500m").value(), 1);
  EXPECT_EQ(parseQuantity("0").value(), 0);
  EXPECT_FALSE(parseQuantity("").has_value());
  EXPECT_FALSE(parseQuantity("-1").has_value());
  EXPECT_FALSE(parseQuantity("12Qi").has_value());
  EXPECT_FALSE(parseQuantity("Gi").has_value());
  // The project's Quantity range (operator/api): about 9.2e15 units, 8 PiB of bytes.
  EXPECT_EQ(parseQuantity("8Pi").value(), int64_t{8} << 50);
  EXPECT_FALSE(parseQuantity("9E").has_value());
}

// A slice as the API server returns it for NVIDIA's driver, written out by hand.
TEST(DraDecode, WholeGpuSliceAsServed) {
  auto j = Json::parse(R"({
    "apiVersion": "resource.k8s.io/v1", "kind": "ResourceSlice",
    "metadata": {"name": "node-a-gpu.nvidia.com-xk2pq", "resourceVersion": "812"},
    "spec": {
      "driver": "gpu.nvidia.com",
      "nodeName": "node-a",
      "pool": {"name": "node-a", "generation": 3, "resourceSliceCount": 1},
      "devices": [{
        "name": "gpu-0",
        "attributes": {
          "architecture": {"string": "Hopper"},
          "brand": {"string": "Nvidia"},
          "cudaComputeCapability": {"version": "9.0.0"},
          "cudaDriverVersion": {"version": "12.8.0"},
          "driverVersion": {"version": "570.124.6"},
          "productName": {"string": "NVIDIA H100 80GB HBM3"},
          "type": {"string": "gpu"},
          "uuid": {"string": "GPU-4f8e1b64-3c1a-2f9d-8c39-0a8d36e2c0b1"},
          "gpu.nvidia.com/index": {"int": 0},
          "resource.kubernetes.io/pcieRoot": {"string": "pci0000:00"}
        },
        "capacity": {"memory": {"value": "81559Mi"}},
        "taints": [{"key": "gpu.nvidia.com/xid", "value": "79", "effect": "NoExecute",
                    "timeAdded": "2026-12-07T10:00:00Z"}]
      }]
    }
  })");
  auto s = decodeResourceSlice(j);
  ASSERT_TRUE(s.has_value()) << s.error();
  EXPECT_EQ(s->name, "node-a-gpu.nvidia.com-xk2pq");
  EXPECT_EQ(s->driver, kNvidiaGpuDriver);
  EXPECT_EQ(s->pool, "node-a");
  EXPECT_EQ(s->generation, 3);
  EXPECT_EQ(s->resource_slice_count, 1);
  EXPECT_EQ(s->node_name, "node-a");
  EXPECT_FALSE(s->all_nodes);
  ASSERT_EQ(s->devices.size(), 1u);
  const Device& d = s->devices[0];
  EXPECT_EQ(d.name, "gpu-0");
  EXPECT_EQ(*d.stringAttr(nvidia::kType), "gpu");
  EXPECT_EQ(*d.stringAttr(nvidia::kProductName), "NVIDIA H100 80GB HBM3");
  EXPECT_EQ(*d.stringAttr(nvidia::kArchitecture), "Hopper");
  EXPECT_EQ(d.attributes.at("cudaComputeCapability").kind, Attribute::Kind::Version);
  EXPECT_EQ(*d.stringAttr(nvidia::kCudaComputeCapability), "9.0.0");
  EXPECT_EQ(*d.stringAttr(nvidia::kUuid), "GPU-4f8e1b64-3c1a-2f9d-8c39-0a8d36e2c0b1");
  // The driver's own domain is stripped; another domain keeps its name.
  EXPECT_EQ(d.intAttr(nvidia::kIndex), 0);
  EXPECT_EQ(*d.stringAttr("resource.kubernetes.io/pcieRoot"), "pci0000:00");
  EXPECT_EQ(d.capacityOf(nvidia::kMemory), int64_t{81559} << 20);
  ASSERT_EQ(d.taints.size(), 1u);
  EXPECT_EQ(d.taints[0].effect, "NoExecute");
  EXPECT_TRUE(d.tainted());
}

TEST(DraDecode, PreCreatedMigDevices) {
  ResourceSlice s = decodeSlice(a100MigSlice("node-m"));
  ASSERT_EQ(s.devices.size(), 4u);
  const Device& d = s.devices[0];
  EXPECT_EQ(d.name, "gpu-0-mig-9-0-4");
  EXPECT_EQ(*d.stringAttr(nvidia::kType), "mig");
  EXPECT_EQ(*d.stringAttr(nvidia::kProfile), "3g.20gb");
  EXPECT_EQ(*d.stringAttr(nvidia::kParentUuid), "GPU-a100-0");
  EXPECT_EQ(d.capacityOf("memory"), int64_t{19968} << 20);
  EXPECT_EQ(d.capacityOf("multiprocessors"), 42);
  EXPECT_EQ(d.capacityOf("memorySlice3"), 1);
  EXPECT_FALSE(d.capacityOf("memorySlice4").has_value());
  EXPECT_TRUE(d.consumes_counters.empty());
}

TEST(DraDecode, PartitionableDevicesAndSharedCounters) {
  ResourceSlice s = decodeSlice(partitionableH100Slice("node-p", 1, 1));
  ASSERT_EQ(s.shared_counters.size(), 1u);
  EXPECT_EQ(s.shared_counters[0].name, "gpu-0-counter-set");
  EXPECT_EQ(s.shared_counters[0].counters.at("memory"), int64_t{80} << 30);
  EXPECT_EQ(s.shared_counters[0].counters.at("multiprocessors"), 132);
  EXPECT_EQ(s.shared_counters[0].counters.at("memory-slice-7"), 1);
  ASSERT_EQ(s.devices.size(), 1u + 7 + 2 + 1);
  const Device& full = s.devices[0];
  ASSERT_EQ(full.consumes_counters.size(), 1u);
  EXPECT_EQ(full.consumes_counters[0].counter_set, "gpu-0-counter-set");
  EXPECT_EQ(full.consumes_counters[0].counters.size(), 10u);
  const Device& mig = s.devices[1];
  EXPECT_EQ(mig.name, "gpu-0-mig-19-0-1");
  EXPECT_EQ(mig.consumes_counters[0].counters.at("memory-slice-0"), 1);
  EXPECT_EQ(mig.consumes_counters[0].counters.at("multiprocessors"), 16);
}

TEST(DraDecode, TimeSlicedL4IsWholeGpus) {
  ResourceSlice s = decodeSlice(l4Slice("node-l"));
  ASSERT_EQ(s.devices.size(), 4u);
  EXPECT_EQ(*s.devices[3].stringAttr(nvidia::kProductName), "NVIDIA L4");
  EXPECT_EQ(*s.devices[3].stringAttr(nvidia::kCudaComputeCapability), "8.9.0");
}

TEST(DraDecode, RejectsWrongShapes) {
  Json j = h100Slice("n");
  j["apiVersion"] = "resource.k8s.io/v1beta1";
  EXPECT_FALSE(decodeResourceSlice(j).has_value());
  j = h100Slice("n");
  j["spec"].erase("pool");
  EXPECT_FALSE(decodeResourceSlice(j).has_value());
  j = h100Slice("n");
  j["spec"]["devices"][0]["attributes"]["type"] = {{"string", "gpu"}, {"int", 1}};
  EXPECT_FALSE(decodeResourceSlice(j).has_value());
  j = h100Slice("n");
  j["spec"]["devices"][0]["capacity"]["memory"] = {{"value", "lots"}};
  EXPECT_FALSE(decodeResourceSlice(j).has_value());
  j = h100Slice("n");  // v1beta1 nested its device fields under "basic"
  j["spec"]["devices"][0] = {{"name", "gpu-0"}, {"basic", {{"attributes", Json::object()}}}};
  EXPECT_FALSE(decodeResourceSlice(j).has_value());
}

TEST(DraDecode, ClaimRequestsAllocationAndReservedFor) {
  Json j = allocatedClaim("team-a", "train-0-gpu", "node-a", {{"node-a", "gpu-3"}, {"node-a", "gpu-4"}}, "train-0");
  j["spec"]["devices"]["requests"][0]["exactly"]["selectors"] =
      Json::array({{{"cel", {{"expression", "device.attributes['gpu.nvidia.com'].productName == 'NVIDIA H100 80GB HBM3'"}}}}});
  auto c = decodeResourceClaim(j);
  ASSERT_TRUE(c.has_value()) << c.error();
  EXPECT_EQ(c->key(), "team-a/train-0-gpu");
  EXPECT_EQ(c->uid, "uid-train-0-gpu");
  ASSERT_EQ(c->requests.size(), 1u);
  EXPECT_EQ(c->requests[0].name, "gpu");
  EXPECT_EQ(c->requests[0].device_class_name, "gpu.nvidia.com");
  EXPECT_EQ(c->requests[0].allocation_mode, "ExactCount");
  EXPECT_EQ(c->requests[0].count, 2);
  ASSERT_EQ(c->requests[0].selectors.size(), 1u);
  EXPECT_TRUE(c->allocated);
  ASSERT_EQ(c->results.size(), 2u);
  EXPECT_EQ(c->results[1].id(), (DeviceId{"gpu.nvidia.com", "node-a", "gpu-4"}));
  EXPECT_EQ(c->node_selector["nodeSelectorTerms"][0]["matchFields"][0]["values"][0], "node-a");
  ASSERT_EQ(c->reserved_for.size(), 1u);
  EXPECT_EQ(c->reserved_for[0].resource, "pods");
  EXPECT_EQ(c->reserved_for[0].name, "train-0");

  j.erase("status");
  auto pending = decodeResourceClaim(j);
  ASSERT_TRUE(pending.has_value());
  EXPECT_FALSE(pending->allocated);
  EXPECT_TRUE(pending->results.empty());
}

}  // namespace
}  // namespace waterline::dra
