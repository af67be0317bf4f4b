#include "waterline/reconcilers/routing_heartbeat.h"

#include <gtest/gtest.h>

#include "common.h"
#include "waterline/runtime/leader.h"

namespace waterline::reconcilers {
namespace {

using namespace std::chrono_literals;
using testing::FakeClient;
using Json = kube::Json;

TEST(RoutingHeartbeatLease, NamesTheClusterAndRoundTrips) {
  EXPECT_EQ(routingHeartbeatLeaseName("eu-1"), "waterline-routing-eu-1");
  EXPECT_EQ(routingHeartbeatLeaseName(""), "waterline-routing-local");
  const SystemTime t{std::chrono::microseconds(1'750'000'000'123'456)};
  auto l = routingHeartbeatLease("wl", "eu-1", 10s, t);
  EXPECT_EQ(l["metadata"]["namespace"], "wl");
  EXPECT_EQ(l["metadata"]["labels"]["waterline.dev/routing-heartbeat"], "true");
  EXPECT_EQ(l["spec"]["holderIdentity"], "eu-1");
  EXPECT_EQ(l["spec"]["leaseDurationSeconds"], 30);
  auto back = clusterHeartbeatFromLease(l);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->cluster, "eu-1");
  EXPECT_EQ(back->renewTime, t);
  // The single-cluster case keeps its empty name (entries carry cluster "").
  auto local = clusterHeartbeatFromLease(routingHeartbeatLease("wl", "", 10s, t));
  ASSERT_TRUE(local);
  EXPECT_EQ(local->cluster, "");
}

TEST(RoutingHeartbeatLease, OtherLeasesAreNotHeartbeats) {
  const SystemTime t{std::chrono::seconds(1'750'000'000)};
  auto l = routingHeartbeatLease("wl", "eu-1", 10s, t);
  auto noLabel = l;
  noLabel["metadata"].erase("labels");
  EXPECT_FALSE(clusterHeartbeatFromLease(noLabel)) << "a leader-election Lease, say";
  auto noCluster = l;
  noCluster["metadata"].erase("annotations");
  EXPECT_FALSE(clusterHeartbeatFromLease(noCluster));
  auto badTime = l;
  badTime["spec"]["renewTime"] = "yesterday";
  EXPECT_FALSE(clusterHeartbeatFromLease(badTime));
}

TEST(ClusterHeartbeat, RenewsTheLeaseAndIsLiveOnlyWhileRenewalsSucceed) {
  auto client = std::make_shared<FakeClient>();
  auto sim = std::make_shared<SimulatedTimeSource>();
  ClusterHeartbeat hb(client, "wl", "eu-1", 10s, sim);
  EXPECT_FALSE(hb.live()) << "never renewed";
  ASSERT_TRUE(hb.renew());
  EXPECT_TRUE(hb.live());
  auto l = client->get(kube::kinds::Lease, "wl", "waterline-routing-eu-1");
  ASSERT_TRUE(l);
  auto first = clusterHeartbeatFromLease(*l);
  ASSERT_TRUE(first);
  EXPECT_EQ(first->renewTime, sim->systemTime());
  sim->advance(10s);
  ASSERT_TRUE(hb.renew());
  auto second = clusterHeartbeatFromLease(*client->get(kube::kinds::Lease, "wl", "waterline-routing-eu-1"));
  EXPECT_EQ(second->renewTime, first->renewTime + 10s);
  // No renewal for two intervals: not live (the publisher then rewrites entries itself).
  sim->advance(19s);
  EXPECT_TRUE(hb.live());
  sim->advance(1s);
  EXPECT_FALSE(hb.live());
}

}  // namespace
}  // namespace waterline::reconcilers
