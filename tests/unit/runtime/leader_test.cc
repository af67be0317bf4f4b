#include "waterline/runtime/leader.h"

#include <gtest/gtest.h>

#include "fake_client.h"

namespace waterline::runtime {
namespace {

using namespace std::chrono_literals;
using testing::FakeClient;

// FakeClient keys objects by kind name; Lease objects need kind "Lease" so that
// resource "leases" matches.
struct LeaderTest : ::testing::Test {
  std::shared_ptr<FakeClient> client = std::make_shared<FakeClient>();
  std::shared_ptr<SimulatedTimeSource> sim = std::make_shared<SimulatedTimeSource>();

  LeaderElectionConfig cfg(const std::string& id) {
    LeaderElectionConfig c;
    c.ns = "waterline-system";
    c.name = "waterline-operator";
    c.identity = id;
    c.leaseDuration = 15s;
    c.renewDeadline = 10s;
    c.retryPeriod = 2s;
    return c;
  }
  LeaseRecord lease() {
    auto l = client->get(kube::kinds::Lease, "waterline-system", "waterline-operator");
    EXPECT_TRUE(l);
    return leaseRecordFromJson(*l);
  }
};

TEST_F(LeaderTest, FirstCandidateCreatesTheLease) {
  LeaderElector a(client, cfg("a"), sim);
  ASSERT_TRUE(a.tryAcquireOrRenew());
  auto r = lease();
  EXPECT_EQ(r.holderIdentity, "a");
  EXPECT_EQ(r.leaseDurationSeconds, 15);
  EXPECT_EQ(r.leaseTransitions, 0);
}

TEST_F(LeaderTest, StandbyWaitsForLeaseDurationOnItsOwnClock) {
  LeaderElector a(client, cfg("a"), sim);
  LeaderElector b(client, cfg("b"), sim);
  ASSERT_TRUE(a.tryAcquireOrRenew());
  EXPECT_FALSE(b.tryAcquireOrRenew());  // b first observes the record now
  EXPECT_EQ(b.observedLeader(), "a");
  sim->advance(14s);
  EXPECT_FALSE(b.tryAcquireOrRenew());  // not expired yet
  // a renews: the record changes, so b's observation clock restarts.
  ASSERT_TRUE(a.tryAcquireOrRenew());
  sim->advance(1s);
  EXPECT_FALSE(b.tryAcquireOrRenew());
  sim->advance(14s);
  EXPECT_FALSE(b.tryAcquireOrRenew());  // 14s since b saw the renewal
  sim->advance(1s);
  ASSERT_TRUE(b.tryAcquireOrRenew());  // 15s without renewal: b takes over
  auto r = lease();
  EXPECT_EQ(r.holderIdentity, "b");
  EXPECT_EQ(r.leaseTransitions, 1);
  // a cannot renew any more.
  EXPECT_FALSE(a.tryAcquireOrRenew());
  EXPECT_EQ(a.observedLeader(), "b");
}

TEST_F(LeaderTest, RenewKeepsAcquireTimeAndTransitions) {
  LeaderElector a(client, cfg("a"), sim);
  ASSERT_TRUE(a.tryAcquireOrRenew());
  auto first = lease();
  sim->advance(2s);
  ASSERT_TRUE(a.tryAcquireOrRenew());
  auto second = lease();
  EXPECT_EQ(second.acquireTime, first.acquireTime);
  EXPECT_GT(*second.renewTime, *first.renewTime);
  EXPECT_EQ(second.leaseTransitions, 0);
}

TEST_F(LeaderTest, ReleaseLetsStandbyTakeOverImmediately) {
  LeaderElector a(client, cfg("a"), sim);
  LeaderElector b(client, cfg("b"), sim);
  ASSERT_TRUE(a.tryAcquireOrRenew());
  EXPECT_FALSE(b.tryAcquireOrRenew());
  ASSERT_TRUE(a.release());
  EXPECT_EQ(lease().holderIdentity, "");
  EXPECT_TRUE(b.tryAcquireOrRenew());  // empty holder: no need to wait
}

TEST_F(LeaderTest, RunStepsDownWhenAnotherReplicaTakesOver) {
  std::atomic<int> started{0}, stopped{0};
  auto c = cfg("a");
  c.onStartedLeading = [&] { ++started; };
  c.onStoppedLeading = [&] { ++stopped; };
  LeaderElector a(client, c, sim);
  std::thread t([&] { a.run(); });
  for (int i = 0; i < 5000 && !started; ++i) std::this_thread::sleep_for(1ms);
  ASSERT_EQ(started, 1);
  EXPECT_TRUE(a.isLeader());
  // Another replica overwrites the lease (e.g. after a partition).
  auto l = client->get(kube::kinds::Lease, "waterline-system", "waterline-operator");
  kube::Json stolen = *l;
  stolen["spec"]["holderIdentity"] = "b";
  ASSERT_TRUE(client->update(kube::kinds::Lease, "waterline-system", stolen));
  for (int i = 0; i < 5000 && !stopped; ++i) {
    sim->advance(2s);
    std::this_thread::sleep_for(1ms);
  }
  t.join();
  EXPECT_EQ(stopped, 1);
  EXPECT_FALSE(a.isLeader());
}

TEST(LeaseCodec, MicroTimeRoundTrip) {
  auto t = parseMicroTime("2026-11-23T18:33:40.123456Z");
  ASSERT_TRUE(t);
  EXPECT_EQ(formatMicroTime(*t), "2026-11-23T18:33:40.123456Z");
  EXPECT_FALSE(parseMicroTime("yesterday"));
}

}  // namespace
}  // namespace waterline::runtime

namespace waterline::runtime {
namespace {

using namespace std::chrono_literals;

// The holder renews with one update and no read; a Lease changed behind its back
// (another holder) makes that update conflict, and the elector reads and steps aside.
TEST(LeaderFastPath, TheHolderRenewsWithoutReadingAndStillSeesATakeover) {
  auto client = std::make_shared<testing::FakeClient>();
  auto sim = std::make_shared<SimulatedTimeSource>();
  LeaderElectionConfig c;
  c.ns = "ns";
  c.name = "lease";
  c.identity = "a";
  c.leaseDuration = 15s;
  c.renewDeadline = 10s;
  c.retryPeriod = 2s;
  LeaderElector a(client, c, sim);
  ASSERT_TRUE(a.tryAcquireOrRenew());
  const int gets = client->getCalls();
  for (int i = 0; i < 5; ++i) {
    sim->advance(2s);
    ASSERT_TRUE(a.tryAcquireOrRenew());
  }
  EXPECT_EQ(client->getCalls(), gets) << "renewals by the holder read nothing";
  auto l = client->get(kube::kinds::Lease, "ns", "lease");
  ASSERT_TRUE(l);
  EXPECT_EQ(*leaseRecordFromJson(*l).renewTime, sim->systemTime());
  EXPECT_EQ(leaseRecordFromJson(*l).leaseTransitions, 0);
  // Someone else writes the Lease (a takeover after a partition, say).
  auto taken = *l;
  taken["spec"]["holderIdentity"] = "b";
  taken["spec"]["renewTime"] = formatMicroTime(sim->systemTime());
  ASSERT_TRUE(client->update(kube::kinds::Lease, "ns", taken));
  sim->advance(2s);
  EXPECT_FALSE(a.tryAcquireOrRenew()) << "the optimistic update conflicts; the read shows b holding it";
  EXPECT_EQ(a.observedLeader(), "b");
  EXPECT_EQ(leaseRecordFromJson(*client->get(kube::kinds::Lease, "ns", "lease")).holderIdentity, "b");
}

}  // namespace
}  // namespace waterline::runtime
