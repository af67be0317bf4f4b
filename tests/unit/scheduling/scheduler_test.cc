// Scheduler behaviour: MIG and share placement, reservations, explanations, move plans,
// victims, fragmentation, annotations and rebuild.
#include <gtest/gtest.h>

#include <map>

#include "fixtures.h"
#include "waterline/scheduling/analysis.h"
#include "waterline/scheduling/annotation.h"
#include "waterline/scheduling/plugins.h"
#include "waterline/scheduling/scheduler.h"

namespace waterline::scheduling {
namespace {

using namespace testing;

TEST(MigScheduling, SlotChoiceKeepsLargeProfilesPossible) {
  Inventory inv;
  ASSERT_TRUE(inv.upsertPool(pool("mig", "eu-west", "EU", SharingMode::MIG)));
  ASSERT_TRUE(inv.upsertNode(node("m1", "mig", 2)));
  Scheduler s(inv);
  // A lone 3g.40gb goes to slot 4 so that 4g.40gb (slot 0 only) still fits.
  auto a = s.place(migReq("a", "d", "3g.40gb"));
  ASSERT_TRUE(a);
  EXPECT_EQ(a->assignment.gpus, std::vector<int>{0});
  EXPECT_EQ(a->assignment.mig_slot, 4);
  // 4g.40gb fits next to it on the same (already partitioned) GPU.
  auto b = s.place(migReq("b", "d", "4g.40gb"));
  ASSERT_TRUE(b);
  EXPECT_EQ(b->assignment.gpus, std::vector<int>{0});
  EXPECT_EQ(b->assignment.mig_slot, 0);
  // GPU 0 is full: 1g.10gb opens GPU 1. Slot 6 would leave slice 7 usable by nothing
  // (1g.20gb@6 and 3g@4 need slice 6 or 4..6); slot 5 keeps 4g@0 and 1g.20gb@6.
  auto c = s.place(migReq("c", "d", "1g.10gb"));
  ASSERT_TRUE(c);
  EXPECT_EQ(c->assignment.gpus, std::vector<int>{1});
  EXPECT_EQ(c->assignment.mig_slot, 5);
  // 2g.20gb: slots 0 and 2 leave equal room; the higher wins.
  auto d = s.place(migReq("d", "d", "2g.20gb"));
  ASSERT_TRUE(d);
  EXPECT_EQ(d->assignment.gpus, std::vector<int>{1});
  EXPECT_EQ(d->assignment.mig_slot, 2);
  // 7g.80gb no longer fits anywhere.
  auto e = s.schedule(migReq("e", "d", "7g.80gb"));
  ASSERT_FALSE(e);
  EXPECT_EQ(e.error().reason, "InsufficientCapacity");
  EXPECT_TRUE(inv.checkInvariants().empty());
}

TEST(MigScheduling, SlotChoiceFollowsAllowedProfiles) {
  Inventory inv;
  PoolSpec p = pool("mig", "eu-west", "EU", SharingMode::MIG);
  p.mig_profiles = {"1g.10gb", "3g.40gb"};
  ASSERT_TRUE(inv.upsertPool(p));
  ASSERT_TRUE(inv.upsertNode(node("m1", "mig", 1)));
  Scheduler s(inv);
  // Only 1g and 3g matter here: a 1g.10gb at slots 4..6 would strand slice 7 (only 3g@4
  // could use it), so it goes to the highest of 0..3 and keeps 3g@4.
  std::vector<int> slots;
  for (int i = 0; i < 4; ++i) {
    auto d = s.place(migReq("s" + std::to_string(i), "d", "1g.10gb"));
    ASSERT_TRUE(d);
    slots.push_back(d->assignment.mig_slot);
  }
  EXPECT_EQ(slots, (std::vector<int>{3, 2, 1, 0}));
  auto big = s.place(migReq("b", "d", "3g.40gb"));
  ASSERT_TRUE(big);
  EXPECT_EQ(big->assignment.mig_slot, 4);
}

TEST(MigScheduling, KeepWholeGpusFreeAcrossNodes) {
  Inventory inv;
  ASSERT_TRUE(inv.upsertPool(pool("mig", "eu-west", "EU", SharingMode::MIG)));
  ASSERT_TRUE(inv.upsertNode(node("m1", "mig", 8)));
  ASSERT_TRUE(inv.upsertNode(node("m2", "mig", 8)));
  // m1: GPUs 0..3 fully used by 7g, GPU 4 idle...; m2: one 3g.40gb at slot 4 of GPU 0.
  for (int g = 0; g < 4; ++g) {
    ASSERT_TRUE(inv.assume(migReq("big" + std::to_string(g), "big", "7g.80gb"), migAt("m1", g, "7g.80gb", 0)));
  }
  ASSERT_TRUE(inv.assume(migReq("x", "x", "3g.40gb"), migAt("m2", 0, "3g.40gb", 4)));
  Scheduler s(inv);
  // m1 is fuller (32/64 slices) but a 1g.10gb there would open an idle GPU; m2 has room
  // on a partitioned GPU -> m2.
  auto d = s.schedule(migReq("y", "y", "1g.10gb"));
  ASSERT_TRUE(d);
  EXPECT_EQ(d->assignment.node, "m2");
  EXPECT_EQ(d->assignment.gpus, std::vector<int>{0});
  EXPECT_EQ(d->assignment.mig_slot, 3);  // slots 0..3 leave equal room: highest wins
  // Without the KeepWholeGpusFree plugin, MostAllocated alone picks the fuller m1.
  Profile p = Profile::defaults();
  std::erase_if(p.packing, [](const WeightedPacking& w) { return w.plugin->name() == "KeepWholeGpusFree"; });
  ASSERT_EQ(p.packing.size(), 3u);
  Scheduler plain(inv, p);
  EXPECT_EQ(plain.schedule(migReq("y", "y", "1g.10gb"))->assignment.node, "m1");
}

TEST(ShareScheduling, FillsSharedGpusFirst) {
  Inventory inv;
  PoolSpec ts = pool("ts", "eu-west", "EU", SharingMode::TimeSlicing);
  ts.slices_per_gpu = 4;
  ASSERT_TRUE(inv.upsertPool(ts));
  ASSERT_TRUE(inv.upsertNode(node("t1", "ts", 2)));
  Scheduler s(inv);
  std::vector<std::pair<int, int>> got;
  for (int i = 0; i < 8; ++i) {
    auto d = s.place(shareReq("w" + std::to_string(i), "d", 4));
    ASSERT_TRUE(d);
    got.emplace_back(d->assignment.gpus[0], d->assignment.share_slots.at(0));
  }
  EXPECT_EQ(got, (std::vector<std::pair<int, int>>{{0, 0}, {0, 1}, {0, 2}, {0, 3}, {1, 0}, {1, 1}, {1, 2}, {1, 3}}));
  auto full = s.schedule(shareReq("w9", "d", 4));
  ASSERT_FALSE(full);
  EXPECT_EQ(full.error().message,
            "need 1 more 1/4 GPU share in region eu-west; pool ts has 0 free");
  // Releasing a share frees exactly that slot.
  inv.forget("w5");
  auto d = s.schedule(shareReq("w9", "d", 4));
  ASSERT_TRUE(d);
  EXPECT_EQ(d->assignment.gpus[0], 1);
  EXPECT_EQ(d->assignment.share_slots, std::vector<int>{1});
  EXPECT_EQ(encodeAssignment(d->assignment), "v1;node=t1;gpu=1;share=1/4;mem=20389");
}

TEST(ShareScheduling, BiggerSharesTakeSeveralSlices) {
  Inventory inv;
  PoolSpec mps = pool("mps", "eu-west", "EU", SharingMode::MPS);
  mps.slices_per_gpu = 8;
  ASSERT_TRUE(inv.upsertPool(mps));
  ASSERT_TRUE(inv.upsertNode(node("m1", "mps", 1)));
  Scheduler s(inv);
  // 1/8 takes one slice, 1/2 takes four, 1/4 two.
  auto a = s.place(shareReq("a", "d", 8));
  auto b = s.place(shareReq("b", "d", 2));
  auto c = s.place(shareReq("c", "d", 4));
  ASSERT_TRUE(a && b && c);
  EXPECT_EQ(a->assignment.share_slots, std::vector<int>{0});
  EXPECT_EQ(b->assignment.share_slots, (std::vector<int>{1, 2, 3, 4}));
  EXPECT_EQ(c->assignment.share_slots, (std::vector<int>{5, 6}));
  EXPECT_EQ(encodeAssignment(b->assignment), "v1;node=m1;gpu=0;share=1,2,3,4/8;mem=40779");
  EXPECT_EQ(*decodeAssignment(encodeAssignment(b->assignment)), b->assignment);
  // One slice left: a 1/4 share (two slices) no longer fits, a 1/8 does.
  auto f = s.schedule(shareReq("x", "d", 4));
  ASSERT_FALSE(f);
  EXPECT_EQ(f.error().message, "need 1 more 1/4 GPU share in region eu-west; pool mps has 0 free");
  EXPECT_TRUE(s.schedule(shareReq("y", "d", 8)));
  // Releasing b frees its four slices.
  inv.forget("b");
  auto g = s.schedule(shareReq("x", "d", 4));
  ASSERT_TRUE(g);
  EXPECT_EQ(g->assignment.share_slots, (std::vector<int>{1, 2}));
  // The rebuilt inventory agrees.
  std::vector<RecordedAssignment> recs;
  for (const auto& w : inv.workerNames()) {
    recs.push_back({inv.worker(w)->request, encodeAssignment(inv.worker(w)->assignment), 0});
  }
  auto rb = Inventory::rebuild({mps}, {node("m1", "mps", 1)}, recs);
  EXPECT_TRUE(rb.conflicts.empty());
  EXPECT_EQ(rb.inventory.fingerprint(), inv.fingerprint());
  // Claiming a slice that c holds is a conflict.
  recs.push_back({shareReq("z", "d", 4), "v1;node=m1;gpu=0;share=6,7/8", 1});
  auto rb2 = Inventory::rebuild({mps}, {node("m1", "mps", 1)}, recs);
  ASSERT_EQ(rb2.conflicts.size(), 1u);
  EXPECT_EQ(rb2.conflicts[0].holder, "c");
}

TEST(Reservations, HeldForTheirDeploymentOnly) {
  Inventory inv;
  PoolSpec p = pool("p", "eu-west", "EU");
  p.reservable_fraction = 0.5;
  ASSERT_TRUE(inv.upsertPool(p));
  ASSERT_TRUE(inv.upsertNode(node("n1", "p")));
  ASSERT_TRUE(inv.upsertNode(node("n2", "p")));
  ASSERT_TRUE(inv.assume(whole("f", "fill", 2), wholeAt("n2", {0, 1})));
  // 16 GPUs x 0.5 = 8 reservable. The reservation takes the node with most idle GPUs.
  auto r = inv.createReservation("ptu-a", "ptu", "p", 6);
  ASSERT_TRUE(r) << r.error();
  EXPECT_EQ(r->gpus.size(), 6u);
  for (const auto& g : r->gpus) EXPECT_EQ(g.node, "n1");
  EXPECT_FALSE(inv.createReservation("ptu-b", "ptu", "p", 3));  // 6 + 3 > 8
  Scheduler s(inv);
  // Others cannot use the 6 reserved GPUs: 2 left on n1, 6 on n2.
  auto o = s.schedule(whole("o", "other", 3));
  ASSERT_TRUE(o);
  EXPECT_EQ(o->assignment.node, "n2");
  EXPECT_FALSE(s.schedule(whole("o", "other", 7)));
  // Assuming another deployment on a reserved GPU is refused.
  auto bad = inv.assume(whole("o", "other", 1), wholeAt("n1", {0}));
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().kind, Conflict::Kind::ReservedForOther);
  // The owner lands on its reserved GPUs first.
  auto mine = s.place(whole("m0", "ptu", 4));
  ASSERT_TRUE(mine);
  EXPECT_TRUE(mine->from_reservation);
  EXPECT_EQ(mine->assignment.node, "n1");
  // ... and on unreserved capacity once its reservation is used up.
  auto more = s.place(whole("m1", "ptu", 4));
  ASSERT_TRUE(more);
  EXPECT_FALSE(more->from_reservation);
  EXPECT_TRUE(inv.checkInvariants().empty());
  ASSERT_TRUE(inv.releaseReservation("ptu-a"));
  EXPECT_TRUE(s.schedule(whole("o", "other", 2)));
  EXPECT_TRUE(inv.checkInvariants().empty());
}

TEST(Explain, InsufficientCapacityMessage) {
  Inventory inv;
  ASSERT_TRUE(inv.upsertPool(pool("eu-west", "eu-west", "EU")));
  ASSERT_TRUE(inv.upsertPool(pool("eu-north", "eu-north", "EU")));
  ASSERT_TRUE(inv.upsertPool(pool("us-east", "us-east", "US")));
  ASSERT_TRUE(inv.upsertNode(node("w1", "eu-west")));
  ASSERT_TRUE(inv.upsertNode(node("n1", "eu-north")));
  ASSERT_TRUE(inv.upsertNode(node("u1", "us-east")));
  ASSERT_TRUE(inv.assume(whole("a", "fill", 8), wholeAt("w1", {0, 1, 2, 3, 4, 5, 6, 7})));
  ASSERT_TRUE(inv.assume(whole("b", "fill", 7), wholeAt("n1", {0, 1, 2, 3, 4, 5, 6})));
  Scheduler s(inv);
  Request r = whole("x", "llama", 2, "", "EU", DeploymentType::DataZone);
  r.product = kH100;
  auto f = s.schedule(r);
  ASSERT_FALSE(f);
  EXPECT_EQ(f.error().reason, "InsufficientCapacity");
  EXPECT_EQ(f.error().message,
            "need 2 more NVIDIA-H100-80GB-HBM3 GPUs (2 on one node) in zone EU; pool eu-north "
            "has 1 free (largest node block 1); pool eu-west has 0 free");
  EXPECT_EQ(f.error().missing_units, 2);
  ASSERT_EQ(f.error().pools.size(), 3u);
  EXPECT_EQ(f.error().pools[2].pool, "us-east");
  EXPECT_FALSE(f.error().pools[2].location_ok);
  // Scale-out view: 3 replicas of 1 GPU, one fits.
  Unschedulable u = s.explain(whole("x", "llama", 1, "", "EU", DeploymentType::DataZone), 3);
  EXPECT_EQ(u.fitting_workers, 1);
  EXPECT_EQ(u.missing_units, 2);
  EXPECT_EQ(u.message, "need 2 more GPUs in zone EU; pool eu-north has 1 free (largest node block 1); pool eu-west has 0 free");
  // Not-ready nodes are called out.
  inv.setNodeReady("n1", false);
  auto g = s.schedule(whole("x", "llama", 1, "", "EU", DeploymentType::DataZone));
  ASSERT_FALSE(g);
  EXPECT_NE(g.error().message.find("pool eu-north has 0 free (1 nodes not ready or cordoned)"),
            std::string::npos)
      << g.error().message;
}

TEST(Explain, NoEligiblePoolNamesTheReason) {
  Inventory inv;
  ASSERT_TRUE(inv.upsertPool(pool("eu-mig", "eu-west", "EU", SharingMode::MIG)));
  NodeSpec n = node("m1", "eu-mig");
  n.taints = {{"nvidia.com/gpu", "", TaintEffect::NoSchedule}};
  ASSERT_TRUE(inv.upsertNode(n));
  Scheduler s(inv);
  auto f = s.schedule(migReq("x", "d", "3g.40gb"));
  ASSERT_FALSE(f);
  EXPECT_EQ(f.error().reason, "NoEligiblePool");
  EXPECT_EQ(f.error().message, "no pool can serve MIG 3g.40gb in region eu-west: pool eu-mig "
                               "taint nvidia.com/gpu:NoSchedule not tolerated");
  auto w = s.schedule(whole("x", "d", 1));
  ASSERT_FALSE(w);
  EXPECT_EQ(w.error().message, "no pool can serve 1 GPU in region eu-west: pool eu-mig "
                               "sharing mode MIG does not hand out whole GPUs");
  Request m = migReq("x", "d", "3g.40gb");
  m.tolerations = {{"nvidia.com/gpu", TolerationOperator::Exists, "", std::nullopt}};
  EXPECT_TRUE(s.schedule(m));
  auto bad = s.schedule(whole("x", "d", 0));
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().reason, "InvalidRequest");
}

TEST(PlanMoves, MovingOneMigInstanceMakesRoom) {
  Inventory inv;
  ASSERT_TRUE(inv.upsertPool(pool("mig", "eu-west", "EU", SharingMode::MIG)));
  ASSERT_TRUE(inv.upsertNode(node("m1", "mig", 2)));
  // GPU 0: 1g at slot 1 and 1g at slot 5 -> neither 3g placement (0 or 4) is free.
  // GPU 1: 3g at 4, 4g at 0 -> full.
  ASSERT_TRUE(inv.assume(migReq("s1", "small", "1g.10gb"), migAt("m1", 0, "1g.10gb", 1)));
  ASSERT_TRUE(inv.assume(migReq("s2", "small", "1g.10gb"), migAt("m1", 0, "1g.10gb", 5)));
  ASSERT_TRUE(inv.assume(migReq("b1", "big", "3g.40gb"), migAt("m1", 1, "3g.40gb", 4)));
  ASSERT_TRUE(inv.assume(migReq("b2", "big", "4g.40gb"), migAt("m1", 1, "4g.40gb", 0)));
  Scheduler s(inv);
  Request r = migReq("new", "llama", "3g.40gb");
  ASSERT_FALSE(s.schedule(r));
  const std::string before = inv.fingerprint();
  auto plan = s.planMoves(r, 1);
  ASSERT_TRUE(plan);
  EXPECT_EQ(inv.fingerprint(), before) << "planning must not change the inventory";
  // Cheapest: move s1 (slot 1) out of [0,4) -> 3g at slot 0; s1 goes elsewhere on GPU 0.
  EXPECT_EQ(plan->target, migAt("m1", 0, "3g.40gb", 0));
  ASSERT_EQ(plan->moves.size(), 1u);
  EXPECT_EQ(plan->moves[0].worker, "s1");
  EXPECT_EQ(plan->moves[0].from, migAt("m1", 0, "1g.10gb", 1));
  EXPECT_EQ(plan->moves[0].to.gpus, std::vector<int>{0});
  EXPECT_GE(plan->moves[0].to.mig_slot, 4);
  // Executing the plan works.
  inv.forget("s1");
  ASSERT_TRUE(inv.assume(r, plan->target));
  Request s1 = migReq("s1", "small", "1g.10gb");
  ASSERT_TRUE(inv.assume(s1, plan->moves[0].to));
  EXPECT_TRUE(inv.checkInvariants().empty());
  // Nothing helps a 7g.80gb with one move.
  EXPECT_FALSE(s.planMoves(migReq("huge", "x", "7g.80gb"), 1));
}

TEST(PlanMoves, ShareMovesToAnotherPool) {
  Inventory inv;
  PoolSpec a = pool("ts-a", "eu-west", "EU", SharingMode::TimeSlicing);
  a.slices_per_gpu = 2;
  PoolSpec b = pool("ts-b", "eu-north", "EU", SharingMode::TimeSlicing);
  b.slices_per_gpu = 2;
  ASSERT_TRUE(inv.upsertPool(a));
  ASSERT_TRUE(inv.upsertPool(b));
  ASSERT_TRUE(inv.upsertNode(node("a1", "ts-a", 1)));
  ASSERT_TRUE(inv.upsertNode(node("b1", "ts-b", 1)));
  Request g1 = shareReq("g1", "global", 2, "", "", DeploymentType::Global);
  Request g2 = shareReq("g2", "global", 2, "", "", DeploymentType::Global);
  ASSERT_TRUE(inv.assume(g1, shareAt("a1", 0, 0, 2)));
  ASSERT_TRUE(inv.assume(g2, shareAt("a1", 0, 1, 2)));
  Scheduler s(inv);
  Request r = shareReq("std", "standard", 2);  // region eu-west only
  ASSERT_FALSE(s.schedule(r));
  auto plan = s.planMoves(r, 1);
  ASSERT_TRUE(plan);
  ASSERT_EQ(plan->moves.size(), 1u);
  EXPECT_EQ(plan->moves[0].worker, "g1");
  EXPECT_EQ(plan->moves[0].to.node, "b1");
  Assignment want = shareAt("a1", 0, 0, 2);
  want.memory_mib = 81559 / 2;
  EXPECT_EQ(plan->target, want);
}

TEST(Victims, ScaleDownReducesFragmentation) {
  Inventory inv;
  ASSERT_TRUE(inv.upsertPool(pool("p", "eu-west", "EU")));
  for (const char* n : {"n1", "n2", "n3"}) ASSERT_TRUE(inv.upsertNode(node(n, "p")));
  // llama: 2 replicas on n1 (with 4 GPUs of others), 1 alone on n2, 1 on n3 (with 6 others).
  ASSERT_TRUE(inv.assume(whole("o1", "other", 4), wholeAt("n1", {0, 1, 2, 3})));
  ASSERT_TRUE(inv.assume(whole("l1", "llama", 1), wholeAt("n1", {4})));
  ASSERT_TRUE(inv.assume(whole("l2", "llama", 1), wholeAt("n1", {5})));
  ASSERT_TRUE(inv.assume(whole("l3", "llama", 2), wholeAt("n2", {0, 1})));
  ASSERT_TRUE(inv.assume(whole("o2", "other", 6), wholeAt("n3", {0, 1, 2, 3, 4, 5})));
  ASSERT_TRUE(inv.assume(whole("l4", "llama", 1), wholeAt("n3", {6})));
  auto ws = inv.workersOf("llama");
  // l3 empties n2; then the emptiest node is n1 (after removal 5/8) vs n3 (6/8) -> l1,
  // and then l2 empties... n1 still has o1, so next by emptiest: n1 again (l2: 4/8).
  EXPECT_EQ(selectVictims(inv, ws, 3), (std::vector<std::string>{"l3", "l1", "l2"}));
  // A replica on a broken node goes first.
  inv.setNodeReady("n3", false);
  EXPECT_EQ(selectVictims(inv, ws, 1), (std::vector<std::string>{"l4"}));
  // Asking for more than exist returns all, unknown names are ignored.
  std::vector<std::string> extra = ws;
  extra.push_back("ghost");
  EXPECT_EQ(selectVictims(inv, extra, 10).size(), 4u);
}

TEST(Fragmentation, StrandedCapacityDefinition) {
  Inventory inv;
  ASSERT_TRUE(inv.upsertPool(pool("mig", "eu-west", "EU", SharingMode::MIG)));
  ASSERT_TRUE(inv.upsertPool(pool("ex", "eu-west", "EU")));
  ASSERT_TRUE(inv.upsertNode(node("m1", "mig", 1)));
  ASSERT_TRUE(inv.upsertNode(node("e1", "ex", 8)));
  // MIG GPU: 1g at slots 1 and 5 -> 6 free slices; pending 3g.40gb needs [0,4) or [4,8).
  ASSERT_TRUE(inv.assume(migReq("s1", "d", "1g.10gb"), migAt("m1", 0, "1g.10gb", 1)));
  ASSERT_TRUE(inv.assume(migReq("s2", "d", "1g.10gb"), migAt("m1", 0, "1g.10gb", 5)));
  // Exclusive node: 5 used, 3 idle; pending whole request of 4.
  ASSERT_TRUE(inv.assume(whole("w", "d", 5), wholeAt("e1", {0, 1, 2, 3, 4})));
  Profile prof = Profile::defaults();
  std::vector<Request> pending = {migReq("p", "p", "3g.40gb"), whole("q", "q", 4)};
  FragmentationReport f = fragmentation(inv, prof, pending);
  EXPECT_DOUBLE_EQ(f.free_gpus, 3 + 6.0 / 8);
  EXPECT_DOUBLE_EQ(f.stranded_gpus, 3 + 6.0 / 8);
  // With 1g.10gb pending, only slice 7 (not a 1g start) is stranded on the MIG GPU; with a
  // 2-GPU request the idle GPUs are usable.
  pending = {migReq("p", "p", "1g.10gb"), whole("q", "q", 2)};
  f = fragmentation(inv, prof, pending);
  EXPECT_DOUBLE_EQ(f.stranded_gpus, 1.0 / 8);
  EXPECT_NEAR(f.strandedPct(), 100.0 * (1.0 / 8) / (3.75), 1e-9);
  PackingStats ps = packingStats(inv);
  EXPECT_EQ(ps.gpus_used, 6);          // 5 whole + 1 MIG GPU
  EXPECT_EQ(ps.lower_bound_gpus, 6);   // 5 + ceil(2/8 slices, 2/7 compute)
  EXPECT_EQ(ps.gpus_partial, 1);
}

TEST(Annotations, RoundTripAndRejects) {
  const Assignment cases[] = {
      wholeAt("node-a", {0, 1, 5}),
      migAt("node-b.example", 3, "3g.40gb", 4),
      migAt("n", 0, "1g.10gb+me", 6),
      shareAt("n-1", 2, 5, 8),
  };
  for (const Assignment& a : cases) {
    const std::string s = encodeAssignment(a);
    auto back = decodeAssignment(s);
    ASSERT_TRUE(back) << s << ": " << back.error();
    EXPECT_EQ(*back, a) << s;
  }
  Assignment m = shareAt("n", 1, 0, 4);
  m.memory_mib = 20480;
  EXPECT_EQ(encodeAssignment(m), "v1;node=n;gpu=1;share=0/4;mem=20480");
  EXPECT_EQ(*decodeAssignment(encodeAssignment(m)), m);
  EXPECT_EQ(encodeAssignment(wholeAt("n1", {0, 1})), "v1;node=n1;gpus=0,1");
  EXPECT_EQ(encodeAssignment(migAt("n1", 3, "3g.40gb", 4)), "v1;node=n1;gpu=3;mig=3g.40gb@4");
  for (const char* bad : {"", "v2;node=n;gpus=0", "v1;gpus=0", "v1;node=n", "v1;node=n;gpus=1,0",
                          "v1;node=n;gpus=0,,1", "v1;node=n;gpus=01", "v1;node=n;gpu=1",
                          "v1;node=n;gpu=1;mig=3g@9", "v1;node=n;gpu=1;share=4/4",
                          "v1;node=n;gpus=0;gpus=1", "v1;node=n;gpus=0;x=1", "v1;node=a/b;gpus=0",
                          "v1;node=n;gpu=0;mig=3g.40gb@0;share=0/2", "v1;node=n;gpus=-1"}) {
    EXPECT_FALSE(decodeAssignment(bad)) << bad;
  }
  ReservationRecord r{"ptu-1", "ns/llama", {{"n2", 3}, {"n1", 0}, {"n1", 1}}};
  const std::string rs = encodeReservation(r);
  EXPECT_EQ(rs, "v1;name=ptu-1;deployment=ns/llama;at=n1:0,1;at=n2:3");
  auto rb = decodeReservation(rs);
  ASSERT_TRUE(rb);
  std::sort(r.gpus.begin(), r.gpus.end());
  EXPECT_EQ(*rb, r);
  EXPECT_FALSE(decodeReservation("v1;name=x"));
}

TEST(Rebuild, SameOccupancyAndConflictsReported) {
  std::vector<PoolSpec> pools = {pool("ex", "eu-west", "EU"),
                                 pool("mig", "eu-west", "EU", SharingMode::MIG)};
  std::vector<NodeSpec> nodes = {node("e1", "ex"), node("m1", "mig")};
  Inventory inv;
  for (const auto& p : pools) ASSERT_TRUE(inv.upsertPool(p));
  for (const auto& n : nodes) ASSERT_TRUE(inv.upsertNode(n));
  Scheduler s(inv);
  std::vector<RecordedAssignment> recs;
  for (const Request& r : {whole("a", "d1", 2), whole("b", "d2", 3), migReq("c", "d3", "3g.40gb"),
                           migReq("e", "d3", "2g.20gb")}) {
    auto d = s.place(r);
    ASSERT_TRUE(d);
    recs.push_back(RecordedAssignment{r, encodeAssignment(d->assignment), 0});
  }
  auto res = inv.createReservation("ptu", "d1", "ex", 1);
  EXPECT_FALSE(res);  // reservableFraction 0
  auto rebuilt = Inventory::rebuild(pools, nodes, recs);
  EXPECT_TRUE(rebuilt.conflicts.empty());
  EXPECT_EQ(rebuilt.inventory.fingerprint(), inv.fingerprint());
  EXPECT_TRUE(rebuilt.inventory.checkInvariants().empty());

  // Two pods claiming GPU 0 of e1, one claiming an overlapping MIG slot, one bad slot, one
  // unknown node, one garbage annotation.
  std::vector<RecordedAssignment> clash = recs;
  clash.push_back({whole("z-dup", "d9", 1), "v1;node=e1;gpus=0", 5});
  clash.push_back({migReq("z-mig", "d9", "1g.10gb"), encodeAssignment(migAt("m1", 0, "1g.10gb", 5)), 5});
  clash.push_back({migReq("z-slot", "d9", "3g.40gb"), "v1;node=m1;gpu=1;mig=3g.40gb@2", 5});
  clash.push_back({whole("z-node", "d9", 1), "v1;node=gone;gpus=0", 5});
  clash.push_back({whole("z-junk", "d9", 1), "junk", 5});
  clash.push_back({migReq("z-mode", "d9", "1g.10gb"), "v1;node=e1;gpu=7;mig=1g.10gb@0", 5});
  auto r2 = Inventory::rebuild(pools, nodes, clash);
  ASSERT_EQ(r2.conflicts.size(), 6u);
  std::map<std::string, Conflict> by;
  for (const auto& c : r2.conflicts) by[c.worker] = c;
  EXPECT_EQ(by["z-dup"].kind, Conflict::Kind::Occupied);
  EXPECT_EQ(by["z-dup"].holder, "a");
  EXPECT_EQ(by["z-mig"].kind, Conflict::Kind::Occupied);
  EXPECT_EQ(by["z-mig"].holder, "c");
  EXPECT_EQ(by["z-slot"].kind, Conflict::Kind::InvalidPlacement);
  EXPECT_EQ(by["z-node"].kind, Conflict::Kind::UnknownNode);
  EXPECT_EQ(by["z-junk"].kind, Conflict::Kind::Malformed);
  EXPECT_EQ(by["z-mode"].kind, Conflict::Kind::ModeMismatch);
  // The earlier claims keep their GPUs: the state equals the conflict-free rebuild.
  EXPECT_EQ(r2.inventory.fingerprint(), inv.fingerprint());
  // Order decides who wins, independent of input order: the lower `order` keeps the GPU.
  std::vector<RecordedAssignment> two = {{whole("late", "d", 1), "v1;node=e1;gpus=0", 9},
                                         {whole("early", "d", 1), "v1;node=e1;gpus=0", 1}};
  auto r3 = Inventory::rebuild(pools, nodes, two);
  ASSERT_EQ(r3.conflicts.size(), 1u);
  EXPECT_EQ(r3.conflicts[0].worker, "late");
  EXPECT_EQ(r3.conflicts[0].holder, "early");
}

TEST(Rebuild, ReservationsComeBack) {
  PoolSpec p = pool("ex", "eu-west", "EU");
  p.reservable_fraction = 1.0;
  std::vector<NodeSpec> nodes = {node("e1", "ex"), node("e2", "ex")};
  Inventory inv;
  ASSERT_TRUE(inv.upsertPool(p));
  for (const auto& n : nodes) ASSERT_TRUE(inv.upsertNode(n));
  auto rec = inv.createReservation("ptu", "d1", "ex", 4);
  ASSERT_TRUE(rec);
  Scheduler s(inv);
  std::vector<RecordedAssignment> recs;
  for (const Request& r : {whole("a", "d1", 2), whole("b", "d2", 3)}) {
    auto d = s.place(r);
    ASSERT_TRUE(d);
    recs.push_back({r, encodeAssignment(d->assignment), 0});
  }
  EXPECT_TRUE(inv.worker("a") && s.profile().prefer_reserved);
  auto decoded = decodeReservation(encodeReservation(*rec));
  ASSERT_TRUE(decoded);
  auto rb = Inventory::rebuild({p}, nodes, recs, {*decoded});
  EXPECT_TRUE(rb.conflicts.empty());
  EXPECT_EQ(rb.inventory.fingerprint(), inv.fingerprint());
  // A reservation over a GPU held by another deployment is reported.
  ReservationRecord bad{"other", "d3", {{inv.worker("b")->assignment.node, inv.worker("b")->assignment.gpus[0]}}};
  auto rb2 = Inventory::rebuild({p}, nodes, recs, {*decoded, bad});
  ASSERT_EQ(rb2.conflicts.size(), 1u);
  EXPECT_EQ(rb2.conflicts[0].holder, "b");
}

class FailingReserve final : public ReservePlugin {
 public:
  std::string_view name() const override { return "Failing"; }
  std::expected<void, std::string> reserve(const Request&, const Decision&) override {
    return std::unexpected(std::string("quota exceeded"));
  }
};

TEST(ReservePlugins, FailureRollsBack) {
  Inventory inv;
  ASSERT_TRUE(inv.upsertPool(pool("p", "eu-west", "EU")));
  ASSERT_TRUE(inv.upsertNode(node("n1", "p")));
  Profile prof = Profile::defaults();
  prof.reserve.push_back(std::make_shared<FailingReserve>());
  Scheduler s(inv, prof);
  const std::string before = inv.fingerprint();
  auto d = s.place(whole("a", "d", 1));
  ASSERT_FALSE(d);
  EXPECT_EQ(d.error().reason, "ReserveFailed");
  EXPECT_EQ(inv.fingerprint(), before);
  EXPECT_EQ(inv.workerCount(), 0u);
}

TEST(NodeLifecycle, GpuCountFromTheLabelOnlyWhenUnset) {
  NodeSpec n;
  n.name = "n1";
  n.labels = {{"nvidia.com/gpu.count", "8"}};
  EXPECT_EQ(withGfdDefaults(n).gpu_count, 8) << "unset: GFD's label";
  n.gpu_count = 0;  // e.g. an Exclusive pool on a node whose GPUs are all MIG-partitioned
  EXPECT_EQ(withGfdDefaults(n).gpu_count, 0) << "an explicit 0 is no GPUs, not \"unknown\"";
  n.gpu_count = 3;
  EXPECT_EQ(withGfdDefaults(n).gpu_count, 3);
  n.labels.clear();
  n.gpu_count = -1;
  EXPECT_EQ(withGfdDefaults(n).gpu_count, 0) << "unset and no label: none";
}

TEST(NodeLifecycle, UpdatesAndRemoval) {
  Inventory inv;
  PoolSpec p = pool("p", "eu-west", "EU");
  p.node_selector = {{"pool", "p"}};
  ASSERT_TRUE(inv.upsertPool(p));
  NodeSpec n;
  n.name = "n1";
  n.labels = {{"pool", "p"}, {"nvidia.com/gpu.product", kH100}, {"nvidia.com/gpu.count", "4"},
              {"nvidia.com/gpu.memory", "81559"}};
  ASSERT_TRUE(inv.upsertNode(n));  // membership and GPUs from GFD labels
  Scheduler s(inv);
  auto d = s.place(whole("a", "d", 3));
  ASSERT_TRUE(d);
  EXPECT_EQ(d->pool, "p");
  // Shrinking below a used GPU is refused.
  NodeSpec smaller = n;
  smaller.labels["nvidia.com/gpu.count"] = "2";
  EXPECT_FALSE(inv.upsertNode(smaller));
  // Relabelling out of the pool keeps occupancy but makes the node unschedulable.
  NodeSpec moved = n;
  moved.labels["pool"] = "q";
  ASSERT_TRUE(inv.upsertNode(moved));
  EXPECT_FALSE(s.schedule(whole("b", "d", 1)));
  EXPECT_TRUE(inv.checkInvariants().empty());
  ASSERT_TRUE(inv.upsertNode(n));
  EXPECT_TRUE(s.schedule(whole("b", "d", 1)));
  EXPECT_EQ(inv.removeNode("n1"), std::vector<std::string>{"a"});
  EXPECT_EQ(inv.workerCount(), 0u);
  EXPECT_TRUE(inv.checkInvariants().empty());
  EXPECT_FALSE(s.schedule(whole("b", "d", 1)));
}

}  // namespace
}  // namespace waterline::scheduling

namespace waterline::scheduling {
namespace {

TEST(InventoryVersion, EveryChangeMovesItCopiesKeepItFreshInventoriesNeverShareIt) {
  using namespace testing;
  Inventory a, b;
  EXPECT_NE(a.version(), b.version()) << "two fresh inventories";
  auto v = a.version();
  auto changed = [&] {
    const bool moved = a.version() != v;
    v = a.version();
    return moved;
  };
  auto ps = pool("p", "eu-west", "EU");
  ps.reservable_fraction = 0.5;
  ASSERT_TRUE(a.upsertPool(ps));
  EXPECT_TRUE(changed());
  ASSERT_TRUE(a.upsertNode(node("n1", "p")));
  EXPECT_TRUE(changed());
  ASSERT_TRUE(a.assume(whole("w1", "d", 2), wholeAt("n1", {0, 1})));
  EXPECT_TRUE(changed());
  Inventory copy = a;
  EXPECT_EQ(copy.version(), a.version()) << "a copy is the same state";
  EXPECT_FALSE(changed()) << "reads change nothing";
  a.fingerprint();
  EXPECT_FALSE(changed());
  EXPECT_TRUE(a.forget("w1"));
  EXPECT_TRUE(changed());
  ASSERT_TRUE(a.createReservation("r", "d", "p", 1));
  EXPECT_TRUE(changed());
  EXPECT_TRUE(a.releaseReservation("r"));
  EXPECT_TRUE(changed());
  EXPECT_TRUE(a.setNodeReady("n1", false));
  EXPECT_TRUE(changed());
  EXPECT_TRUE(a.setGpuHealthy("n1", 3, false));
  EXPECT_TRUE(changed());
  EXPECT_FALSE(a.removeNode("n1").size());
  EXPECT_TRUE(changed());
  EXPECT_NE(copy.version(), a.version());
}

}  // namespace
}  // namespace waterline::scheduling
