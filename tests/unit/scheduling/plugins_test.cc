// Table tests of the strategy functions and the filter / score plugins.
#include <gtest/gtest.h>

#include <set>

#include "fixtures.h"
#include "waterline/scheduling/plugins.h"
#include "waterline/scheduling/scheduler.h"

namespace waterline::scheduling {
namespace {

using namespace testing;

struct StrategyRow {
  std::int64_t requested, capacity, most, least;
};

TEST(StrategyFunctions, MostAndLeastAllocated) {
  const StrategyRow rows[] = {
      {0, 8, 0, kMaxNodeScore},
      {2, 8, kMaxNodeScore / 4, kMaxNodeScore * 3 / 4},
      {8, 8, kMaxNodeScore, 0},
      {9, 8, kMaxNodeScore, 0},  // over capacity: most clamps, least gives 0
      {3, 0, 0, 0},              // no capacity
  };
  for (const auto& r : rows) {
    EXPECT_EQ(mostAllocatedScore(r.requested, r.capacity), r.most) << r.requested << "/" << r.capacity;
    EXPECT_EQ(leastAllocatedScore(r.requested, r.capacity), r.least) << r.requested << "/" << r.capacity;
  }
  EXPECT_EQ(strategyFunction(Strategy::BinPack), &mostAllocatedScore);
  EXPECT_EQ(strategyFunction(Strategy::Spread), &leastAllocatedScore);
  EXPECT_EQ(parseStrategy("MostAllocated"), Strategy::BinPack);
  EXPECT_EQ(parseStrategy("LeastAllocated"), Strategy::Spread);
  EXPECT_EQ(parseStrategy("Random"), std::nullopt);
}

struct TolRow {
  Taint taint;
  std::vector<Toleration> tolerations;
  bool ok;
};

TEST(TaintToleration, Table) {
  const Taint gpu{"nvidia.com/gpu", "present", TaintEffect::NoSchedule};
  const Taint exec{"maintenance", "", TaintEffect::NoExecute};
  const Taint soft{"spot", "true", TaintEffect::PreferNoSchedule};
  const TolRow rows[] = {
      {gpu, {}, false},
      {gpu, {{"nvidia.com/gpu", TolerationOperator::Exists, "", std::nullopt}}, true},
      {gpu, {{"nvidia.com/gpu", TolerationOperator::Equal, "present", TaintEffect::NoSchedule}}, true},
      {gpu, {{"nvidia.com/gpu", TolerationOperator::Equal, "absent", std::nullopt}}, false},
      {gpu, {{"nvidia.com/gpu", TolerationOperator::Exists, "", TaintEffect::NoExecute}}, false},
      {gpu, {{"", TolerationOperator::Exists, "", std::nullopt}}, true},  // tolerate everything
      {exec, {}, false},
      {exec, {{"maintenance", TolerationOperator::Exists, "", TaintEffect::NoExecute}}, true},
      {soft, {}, true},  // PreferNoSchedule never filters
  };
  for (const auto& r : rows) {
    EXPECT_EQ(toleratesAll({r.taint}, r.tolerations), r.ok) << r.taint.key;
  }
}

class PluginFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(inv.upsertPool(pool("eu-west", "eu-west", "EU")));
    ASSERT_TRUE(inv.upsertPool(pool("eu-north", "eu-north", "EU")));
    ASSERT_TRUE(inv.upsertPool(pool("us-east", "us-east", "US")));
    ASSERT_TRUE(inv.upsertNode(node("w1", "eu-west")));
    ASSERT_TRUE(inv.upsertNode(node("n1", "eu-north")));
    ASSERT_TRUE(inv.upsertNode(node("u1", "us-east")));
  }
  Inventory inv;
};

struct LocationRow {
  DeploymentType type;
  std::string region, zone;
  std::vector<std::string> pools;  // pools where the worker may land
};

TEST_F(PluginFixture, DeploymentTypePoolRule) {
  const LocationRow rows[] = {
      {DeploymentType::Standard, "eu-west", "", {"eu-west"}},
      {DeploymentType::Standard, "us-east", "", {"us-east"}},
      {DeploymentType::DataZone, "", "EU", {"eu-north", "eu-west"}},
      {DeploymentType::DataZone, "", "US", {"us-east"}},
      {DeploymentType::Global, "", "", {"eu-north", "eu-west", "us-east"}},
  };
  for (const auto& row : rows) {
    Inventory copy = inv;
    Scheduler s(copy);
    std::set<std::string> seen;
    for (int i = 0; i < 24; ++i) {  // 3 nodes x 8 GPUs at most
      Request r = whole("w" + std::to_string(i), "d", 1, row.region, row.zone, row.type);
      auto d = s.place(r);
      if (!d) break;
      seen.insert(d->pool);
    }
    std::set<std::string> want(row.pools.begin(), row.pools.end());
    EXPECT_EQ(seen, want) << toString(row.type) << " " << row.region << row.zone;
  }
}

TEST_F(PluginFixture, ProductFilter) {
  ASSERT_TRUE(inv.upsertPool(pool("eu-a100", "eu-west", "EU", SharingMode::Exclusive,
                                  Strategy::BinPack, kA100)));
  ASSERT_TRUE(inv.upsertNode(node("a1", "eu-a100", 8, kA100)));
  Scheduler s(inv);
  Request r = whole("x", "d", 1);
  r.product = kA100;
  auto d = s.schedule(r);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->assignment.node, "a1");
  r.product = "NVIDIA-B200";
  auto f = s.schedule(r);
  ASSERT_FALSE(f);
  EXPECT_EQ(f.error().reason, "NoEligiblePool");
  EXPECT_NE(f.error().message.find("GPU product"), std::string::npos) << f.error().message;
}

TEST_F(PluginFixture, TaintsFilterNodes) {
  NodeSpec t = node("w0-tainted", "eu-west");
  t.taints = {{"dedicated", "llm", TaintEffect::NoSchedule}};
  ASSERT_TRUE(inv.upsertNode(t));
  // Fill w1 partly so BinPack would prefer it... the tainted node is emptier, so give it
  // load instead to make it the BinPack favourite.
  Scheduler s(inv);
  Request tol = whole("t0", "tolerant", 4);
  tol.tolerations = {{"dedicated", TolerationOperator::Equal, "llm", std::nullopt}};
  auto d0 = s.place(tol);
  ASSERT_TRUE(d0);
  // Both nodes are empty: tie on score, the tolerant request sees both; take w0 by name.
  EXPECT_EQ(d0->assignment.node, "w0-tainted");
  // An intolerant request never goes to the tainted node even though it is fuller.
  auto d1 = s.place(whole("p0", "plain", 1));
  ASSERT_TRUE(d1);
  EXPECT_EQ(d1->assignment.node, "w1");
  // PreferNoSchedule does not filter.
  t.taints = {{"spot", "true", TaintEffect::PreferNoSchedule}};
  ASSERT_TRUE(inv.upsertNode(t));
  auto d2 = s.schedule(whole("p1", "plain", 1));
  ASSERT_TRUE(d2);
  EXPECT_EQ(d2->assignment.node, "w0-tainted");  // fuller node (4 used) wins BinPack
}

TEST_F(PluginFixture, HealthFilters) {
  ASSERT_TRUE(inv.upsertNode(node("w2", "eu-west")));
  Scheduler s(inv);
  ASSERT_TRUE(s.place(whole("a", "d", 2)));  // lands on w1 (name order on a tie)
  EXPECT_EQ(inv.worker("a")->assignment.node, "w1");
  // Not ready: skipped, even though it is the fullest.
  inv.setNodeReady("w1", false);
  auto d = s.schedule(whole("b", "d", 1));
  ASSERT_TRUE(d);
  EXPECT_EQ(d->assignment.node, "w2");
  inv.setNodeReady("w1", true);
  inv.setNodeUnschedulable("w1", true);
  EXPECT_EQ(s.schedule(whole("b", "d", 1))->assignment.node, "w2");
  inv.setNodeUnschedulable("w1", false);
  // Unhealthy GPUs are never handed out.
  for (int g = 2; g < 8; ++g) inv.setGpuHealthy("w1", g, g != 2);
  auto e = s.schedule(whole("b", "d", 1));
  ASSERT_TRUE(e);
  EXPECT_EQ(e->assignment.node, "w1");
  EXPECT_EQ(e->assignment.gpus, std::vector<int>{3});
  auto six = s.schedule(whole("c", "d", 6));
  ASSERT_TRUE(six);
  EXPECT_EQ(six->assignment.node, "w2");  // w1 has only 5 healthy idle GPUs
}

TEST(BinPackSpread, FullestAndEmptiest) {
  for (Strategy strat : {Strategy::BinPack, Strategy::Spread}) {
    Inventory inv;
    ASSERT_TRUE(inv.upsertPool(pool("p", "eu-west", "EU", SharingMode::Exclusive, strat)));
    for (const char* n : {"n1", "n2", "n3", "n4"}) ASSERT_TRUE(inv.upsertNode(node(n, "p")));
    // n1: 3 used, n2: 6 used, n3: 7 used, n4: idle.
    ASSERT_TRUE(inv.assume(whole("f1", "fill", 3), wholeAt("n1", {0, 1, 2})));
    ASSERT_TRUE(inv.assume(whole("f2", "fill", 6), wholeAt("n2", {0, 1, 2, 3, 4, 5})));
    ASSERT_TRUE(inv.assume(whole("f3", "fill", 7), wholeAt("n3", {0, 1, 2, 3, 4, 5, 6})));
    Scheduler s(inv);
    struct Row {
      int gpus;
      const char* binpack;
      const char* spread;
    } rows[] = {{1, "n3", "n4"}, {2, "n2", "n4"}, {3, "n1", "n4"}, {5, "n1", "n4"}, {8, "n4", "n4"}};
    for (const auto& row : rows) {
      auto d = s.schedule(whole("x", "d", row.gpus));
      ASSERT_TRUE(d);
      EXPECT_EQ(d->assignment.node, strat == Strategy::BinPack ? row.binpack : row.spread)
          << toString(strat) << " " << row.gpus;
      auto ex = s.scheduleExhaustive(whole("x", "d", row.gpus));
      ASSERT_TRUE(ex);
      EXPECT_EQ(ex->assignment, d->assignment);
    }
    // Profile-level override beats the pool's strategy.
    Scheduler forced(inv, Profile::defaults(Strategy::Spread));
    EXPECT_EQ(forced.schedule(whole("x", "d", 1))->assignment.node, "n4");
  }
}

TEST(ReplicaSpread, TieBreakAcrossNodesAndPools) {
  // Spread pools: equal scores are common, the tie-break spreads one deployment.
  Inventory inv;
  ASSERT_TRUE(inv.upsertPool(pool("a", "eu-west", "EU", SharingMode::Exclusive, Strategy::Spread)));
  ASSERT_TRUE(inv.upsertPool(pool("b", "eu-north", "EU", SharingMode::Exclusive, Strategy::Spread)));
  for (const char* n : {"a1", "a2"}) ASSERT_TRUE(inv.upsertNode(node(n, "a")));
  for (const char* n : {"b1", "b2"}) ASSERT_TRUE(inv.upsertNode(node(n, "b")));
  Scheduler s(inv);
  std::vector<std::string> nodes;
  for (int i = 0; i < 4; ++i) {
    auto d = s.place(whole("r" + std::to_string(i), "llama", 1, "", "EU", DeploymentType::DataZone));
    ASSERT_TRUE(d);
    nodes.push_back(d->assignment.node);
  }
  // r0: all empty -> a1 by name. r1: pool b has more headroom -> b1. r2: a2 and b2 tie
  // (pools equally used, one replica in each) -> a2 by name. r3: b2 is the last empty node.
  EXPECT_EQ(nodes, (std::vector<std::string>{"a1", "b1", "a2", "b2"}));
}

TEST(ReplicaSpread, OnlyBreaksPackingTies) {
  Inventory inv;
  ASSERT_TRUE(inv.upsertPool(pool("a", "eu-west", "EU")));
  ASSERT_TRUE(inv.upsertPool(pool("b", "eu-north", "EU")));
  for (const char* n : {"a1", "a2"}) ASSERT_TRUE(inv.upsertNode(node(n, "a")));
  for (const char* n : {"b1", "b2"}) ASSERT_TRUE(inv.upsertNode(node(n, "b")));
  ASSERT_TRUE(inv.assume(whole("f1", "fill", 4), wholeAt("a1", {0, 1, 2, 3})));
  ASSERT_TRUE(inv.assume(whole("l0", "llama", 1, "", "EU", DeploymentType::DataZone), wholeAt("a1", {4})));
  ASSERT_TRUE(inv.assume(whole("f2", "fill", 5), wholeAt("a2", {0, 1, 2, 3, 4})));
  ASSERT_TRUE(inv.assume(whole("f3", "fill", 5), wholeAt("b1", {0, 1, 2, 3, 4})));
  ASSERT_TRUE(inv.assume(whole("f5", "fill", 5), wholeAt("b2", {0, 1, 2, 3, 4})));
  Scheduler s(inv);
  // Every node has 5 GPUs in use and both pools 10 of 16: a1 holds a llama replica and
  // pool a holds one -> b1.
  auto d = s.place(whole("l1", "llama", 1, "", "EU", DeploymentType::DataZone));
  ASSERT_TRUE(d);
  EXPECT_EQ(d->assignment.node, "b1");
  // Now b1 is fuller: BinPack takes it even though it holds a llama replica.
  EXPECT_EQ(s.schedule(whole("l2", "llama", 1, "", "EU", DeploymentType::DataZone))->assignment.node, "b1");
  // Another deployment ignores llama's replicas; with b1 full, pool a has more headroom
  // and a1 / a2 tie -> name order.
  ASSERT_TRUE(inv.assume(whole("f4", "fill", 2), wholeAt("b1", {6, 7})));
  EXPECT_EQ(s.schedule(whole("o", "other", 1, "", "EU", DeploymentType::DataZone))->assignment.node, "a1");
  EXPECT_EQ(s.schedule(whole("l3", "llama", 1, "", "EU", DeploymentType::DataZone))->assignment.node, "a2");
}

TEST(PoolBalance, FlexibleWorkLeavesPinnedPoolsRoom) {
  Inventory inv;
  ASSERT_TRUE(inv.upsertPool(pool("a", "eu-west", "EU")));
  ASSERT_TRUE(inv.upsertPool(pool("b", "eu-north", "EU")));
  ASSERT_TRUE(inv.upsertNode(node("a1", "a")));
  ASSERT_TRUE(inv.upsertNode(node("b1", "b")));
  ASSERT_TRUE(inv.upsertNode(node("b2", "b")));
  ASSERT_TRUE(inv.assume(whole("f", "fill", 6), wholeAt("a1", {0, 1, 2, 3, 4, 5})));
  Scheduler s(inv);
  // MostAllocated alone sends a DataZone worker to a1 (fullest node, 7/8); pool a is 75%
  // used and pool b empty, so PoolBalance sends it to b.
  auto d = s.schedule(whole("x", "flex", 1, "", "EU", DeploymentType::DataZone));
  ASSERT_TRUE(d);
  EXPECT_EQ(d->pool, "b");
  Profile p = Profile::defaults();
  std::erase_if(p.packing, [](const WeightedPacking& w) { return w.plugin->name() == "PoolBalance"; });
  Scheduler nobal(inv, p);
  EXPECT_EQ(nobal.schedule(whole("x", "flex", 1, "", "EU", DeploymentType::DataZone))->assignment.node, "a1");
  // A Standard eu-west worker still packs a1.
  EXPECT_EQ(s.schedule(whole("y", "pinned", 1))->assignment.node, "a1");
}

TEST(SharingMode, ShapeMustMatchPool) {
  Inventory inv;
  ASSERT_TRUE(inv.upsertPool(pool("ex", "eu-west", "EU", SharingMode::Exclusive)));
  ASSERT_TRUE(inv.upsertPool(pool("mig", "eu-west", "EU", SharingMode::MIG)));
  PoolSpec ts = pool("ts", "eu-west", "EU", SharingMode::TimeSlicing);
  ts.slices_per_gpu = 4;
  ASSERT_TRUE(inv.upsertPool(ts));
  PoolSpec mps = pool("mps", "eu-west", "EU", SharingMode::MPS);
  mps.slices_per_gpu = 8;
  ASSERT_TRUE(inv.upsertPool(mps));
  PoolSpec migsmall = pool("mig-small", "eu-west", "EU", SharingMode::MIG);
  migsmall.mig_profiles = {"1g.10gb"};
  ASSERT_TRUE(inv.upsertPool(migsmall));
  for (const char* p : {"ex", "mig", "ts", "mps", "mig-small"}) {
    ASSERT_TRUE(inv.upsertNode(node(std::string(p) + "-n", p)));
  }
  Scheduler s(inv);
  struct Row {
    Request r;
    const char* pool;  // nullptr: no pool can serve it
  };
  auto withMem = [](Request r, std::int64_t mib) {
    r.shape.memory_mib = mib;
    return r;
  };
  // GPUs have 81559 MiB: a 1/8 share 10194, 1/4 20389, a 3g.40gb instance 40779.
  std::vector<Row> rows = {
      {whole("w", "d", 2), "ex"},
      {withMem(whole("w", "d", 1), 81559), "ex"},
      {withMem(whole("w", "d", 1), 81560), nullptr},
      {migReq("m", "d", "3g.40gb"), "mig"},
      {withMem(migReq("m", "d", "3g.40gb"), 40000), "mig"},
      {withMem(migReq("m", "d", "1g.10gb"), 20000), nullptr},
      // Both MIG pools offer 1g.10gb and are empty: equal scores, node name mig-n first.
      {migReq("m", "d", "1g.10gb"), "mig"},
      {migReq("m", "d", "9g.90gb"), nullptr},
      // 1/4 fits ts (one of 4 slices) and mps (two of 8): equal scores, mps-n first.
      {shareReq("s", "d", 4), "mps"},
      {shareReq("s", "d", 8), "mps"},  // 8 does not divide 4
      {shareReq("s", "d", 3), nullptr},
      {withMem(shareReq("s", "d", 8), 10194), "mps"},
      {withMem(shareReq("s", "d", 8), 10195), nullptr},
      {withMem(shareReq("s", "d", 4), 20000), "mps"},
      {whole("w", "d", 9), nullptr},  // more than a node has
  };
  for (const auto& row : rows) {
    auto d = s.schedule(row.r);
    if (row.pool == nullptr) {
      EXPECT_FALSE(d) << row.r.shape.describe();
      if (!d) {
        EXPECT_EQ(d.error().reason, "NoEligiblePool") << d.error().message;
      }
    } else {
      ASSERT_TRUE(d) << row.r.shape.describe() << ": " << d.error().message;
      EXPECT_EQ(d->pool, row.pool) << row.r.shape.describe();
    }
  }
  auto d = s.schedule(withMem(shareReq("s", "d", 8), 10000));
  EXPECT_EQ(d->assignment.memory_mib, 81559 / 8);
  auto e = s.schedule(withMem(shareReq("s", "d", 8), 10195));
  EXPECT_EQ(e.error().message,
            "no pool can serve 1/8 GPU share of at least 10195 MiB in region eu-west: pool ex "
            "sharing mode Exclusive does not offer GPU shares; pool mig sharing mode MIG does "
            "not offer GPU shares; pool mig-small sharing mode MIG does not offer GPU shares; "
            "pool mps a 1/8 share has 10194 MiB, request needs 10195 MiB; pool ts pool slices "
            "GPUs in 4, not a multiple of 8");
}

TEST(ProductPreference, PreferredPoolsFirst) {
  Inventory inv;
  ASSERT_TRUE(inv.upsertPool(pool("h", "eu-west", "EU")));
  ASSERT_TRUE(inv.upsertPool(pool("a", "eu-west", "EU", SharingMode::Exclusive, Strategy::BinPack, kA100)));
  ASSERT_TRUE(inv.upsertNode(node("h1", "h")));
  ASSERT_TRUE(inv.upsertNode(node("a1", "a", 8, kA100)));
  ASSERT_TRUE(inv.assume(whole("f", "fill", 7), wholeAt("h1", {0, 1, 2, 3, 4, 5, 6})));
  Scheduler s(inv);
  Request r = whole("x", "d", 1);
  r.preferred_product = kA100;
  // h1 is far fuller, but the preferred product wins...
  EXPECT_EQ(s.schedule(r)->assignment.node, "a1");
  // ... and is only a preference: when it is full the other product is used.
  ASSERT_TRUE(inv.assume(whole("g", "fill", 8), wholeAt("a1", {0, 1, 2, 3, 4, 5, 6, 7})));
  EXPECT_EQ(s.schedule(r)->assignment.node, "h1");
  r.product = kA100;  // a hard requirement fails instead
  EXPECT_FALSE(s.schedule(r));
}

}  // namespace
}  // namespace waterline::scheduling
