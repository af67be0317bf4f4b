// Trace replay of the scheduler benchmark: the CSV formats (good and bad rows, with the
// file:line:column of each error), the pod -> request mapping, the first-fit baseline,
// and the refused / stranded metrics on workloads small enough to check by hand.
#include <gtest/gtest.h>

#include <string>

#include "first_fit.h"
#include "trace.h"
#include "waterline/scheduling/scheduler.h"

namespace waterline::scheduling::bench {
namespace {

constexpr const char* kH100 = "NVIDIA-H100-80GB-HBM3";
constexpr const char* kA100 = "NVIDIA-A100-SXM4-80GB";

std::vector<TraceNode> nodesOf(const std::string& text) {
  auto n = parseNodes(text, "nodes.csv");
  EXPECT_TRUE(n.has_value()) << n.error();
  return n ? *n : std::vector<TraceNode>{};
}

std::vector<TracePod> podsOf(const std::string& text) {
  auto p = parsePods(text, "pods.csv");
  EXPECT_TRUE(p.has_value()) << p.error();
  return p ? *p : std::vector<TracePod>{};
}

std::string nodeError(const std::string& text) {
  auto n = parseNodes(text, "nodes.csv");
  return n ? std::string("(parsed)") : n.error();
}

std::string podError(const std::string& text) {
  auto p = parsePods(text, "pods.csv");
  return p ? std::string("(parsed)") : p.error();
}

// ---- nodes file ----

TEST(TraceNodes, ParsesEveryModeWithHeaderCommentsBlankLinesAndCrlf) {
  const auto n = nodesOf(
      "# a comment\n"
      "name,gpu_model,gpus,sharing,layout\r\n"
      "\n"
      "  h1 , NVIDIA-H100-80GB-HBM3 , 8 , exclusive\n"
      "h2,NVIDIA-H100-80GB-HBM3,4,exclusive,-\n"
      "   # indented comment\n"
      "m1,NVIDIA-A100-SXM4-80GB,8,mig,mig=3g.40gb+1g.10gb+3g.40gb\n"
      "m2,NVIDIA-A100-SXM4-80GB,2,mig,mig=all\n"
      "t1,NVIDIA-L4,4,timeslicing,slices=4\r\n"
      "p1,NVIDIA-H100-80GB-HBM3,8,mps,slices=8\n");
  ASSERT_EQ(n.size(), 6u);
  EXPECT_EQ(n[0].name, "h1");
  EXPECT_EQ(n[0].gpu_model, kH100);
  EXPECT_EQ(n[0].gpus, 8);
  EXPECT_EQ(n[0].sharing, SharingMode::Exclusive);
  EXPECT_EQ(n[0].line, 4);
  EXPECT_EQ(n[1].gpus, 4);
  EXPECT_EQ(n[2].sharing, SharingMode::MIG);
  EXPECT_EQ(n[2].mig_profiles, (std::vector<std::string>{"1g.10gb", "3g.40gb"}));  // sorted, once
  EXPECT_TRUE(n[3].mig_profiles.empty());                                          // all
  EXPECT_EQ(n[4].sharing, SharingMode::TimeSlicing);
  EXPECT_EQ(n[4].slices, 4);
  EXPECT_EQ(n[5].sharing, SharingMode::MPS);
  EXPECT_EQ(n[5].slices, 8);
}

TEST(TraceNodes, HeaderIsOptional) {
  const auto n = nodesOf("a,NVIDIA-L4,1,timeslicing,slices=2\n");
  ASSERT_EQ(n.size(), 1u);
  EXPECT_EQ(n[0].slices, 2);
}

TEST(TraceNodes, BadRowsNameFileLineAndColumn) {
  const std::string h = "name,gpu_model,gpus,sharing,layout\n";
  EXPECT_EQ(nodeError(h + "n1,NVIDIA-H100-80GB-HBM3,8x,exclusive\n"),
            "nodes.csv:2:26: GPUs must be a whole number 1..64, got '8x'");
  EXPECT_EQ(nodeError(h + "n1,NVIDIA-H100-80GB-HBM3,0,exclusive\n"),
            "nodes.csv:2:26: GPUs must be a whole number 1..64, got '0'");
  EXPECT_EQ(nodeError(h + "n1,NVIDIA-H100-80GB-HBM3,8,shared\n"),
            "nodes.csv:2:28: sharing must be exclusive, mig, timeslicing or mps, got 'shared'");
  EXPECT_EQ(nodeError(h + "n1,X,8\n"),
            "nodes.csv:2:7: expected 4 or 5 columns (name,gpu_model,gpus,sharing[,layout]), got 3");
  EXPECT_EQ(nodeError(h + "n1,X,8,exclusive,-,extra\n"),
            "nodes.csv:2:20: expected 4 or 5 columns (name,gpu_model,gpus,sharing[,layout]), got 6");
  EXPECT_EQ(nodeError(h + "n1,X,8,exclusive,slices=4\n"),
            "nodes.csv:2:18: an exclusive node takes no layout ('-' or empty), got 'slices=4'");
  EXPECT_EQ(nodeError(h + "n1,NVIDIA-L4,8,mig,mig=all\n"),
            "nodes.csv:2:4: no MIG geometry known for GPU model 'NVIDIA-L4'");
  // The column points at the bad profile inside the layout.
  EXPECT_EQ(nodeError(h + "n1,NVIDIA-A100-SXM4-80GB,8,mig,mig=1g.10gb+9g.90gb\n"),
            "nodes.csv:2:44: MIG profile '9g.90gb' does not exist on NVIDIA-A100-SXM4-80GB "
            "(A100/H100-80GB)");
  EXPECT_EQ(nodeError(h + "n1,NVIDIA-A100-SXM4-80GB,8,mig\n"),
            "nodes.csv:2:31: a mig node needs layout mig=all or mig=<profile>+<profile>..., got ''");
  EXPECT_EQ(nodeError(h + "n1,NVIDIA-L4,4,timeslicing,slices=0\n"),
            "nodes.csv:2:35: slices must be a whole number 1..64, got '0'");
  EXPECT_EQ(nodeError(h + "n1,NVIDIA-L4,4,mps,4\n"),
            "nodes.csv:2:20: a mps node needs layout slices=<1..64>, got '4'");
  EXPECT_EQ(nodeError(h + "n1,X,8,exclusive\n\nn1,X,4,exclusive\n"),
            "nodes.csv:4:1: duplicate node name 'n1' (first on line 2)");
  EXPECT_EQ(nodeError("name,gpu_model,gpus,mode\n"),
            "nodes.csv:1:21: header column 4 is 'mode'; expected 'sharing'");
  EXPECT_EQ(nodeError("# nothing\n\n"), "nodes.csv: no nodes");
  EXPECT_EQ(nodeError(",X,8,exclusive\n"), "nodes.csv:1:1: node name is empty");
}

// ---- pods file ----

TEST(TracePods, ParsesWholeFractionModelAndMig) {
  const auto p = podsOf(
      "arrival_s,duration_s,gpu,gpu_model,mig_profile\n"
      "0,60,2\n"
      "1.5,0.25,250m,NVIDIA-L4\n"
      "# comment\n"
      "2,10,143m,NVIDIA-A100-SXM4-80GB,1g.10gb\n"
      "3,10,500m,,\n");
  ASSERT_EQ(p.size(), 4u);
  EXPECT_EQ(p[0].arrival_ms, 0);
  EXPECT_EQ(p[0].duration_ms, 60000);
  EXPECT_EQ(p[0].whole_gpus, 2);
  EXPECT_EQ(p[0].gpu_milli, 0);
  EXPECT_EQ(p[1].arrival_ms, 1500);
  EXPECT_EQ(p[1].duration_ms, 250);
  EXPECT_EQ(p[1].gpu_milli, 250);
  EXPECT_EQ(p[1].gpu_model, "NVIDIA-L4");
  EXPECT_EQ(p[2].mig_profile, "1g.10gb");
  EXPECT_EQ(p[2].line, 5);
  EXPECT_TRUE(p[3].gpu_model.empty());
  EXPECT_TRUE(p[3].mig_profile.empty());
}

TEST(TracePods, BadRowsNameFileLineAndColumn) {
  const std::string h = "arrival_s,duration_s,gpu,gpu_model,mig_profile\n";
  EXPECT_EQ(podError(h + "-1,10,1\n"),
            "pods.csv:2:1: arrival must be seconds >= 0 (at most 3 decimals), got '-1'");
  EXPECT_EQ(podError(h + "1e3,10,1\n"),
            "pods.csv:2:1: arrival must be seconds >= 0 (at most 3 decimals), got '1e3'");
  EXPECT_EQ(podError(h + "1.2345,10,1\n"),
            "pods.csv:2:1: arrival must be seconds >= 0 (at most 3 decimals), got '1.2345'");
  EXPECT_EQ(podError(h + "5, 0 ,1\n"),
            "pods.csv:2:4: duration must be seconds > 0 (at most 3 decimals), got '0'");
  EXPECT_EQ(podError(h + "5,10,1000m\n"),
            "pods.csv:2:6: a GPU fraction is 1m..999m (thousandths of one GPU), got '1000m'; "
            "write whole GPUs as a count");
  EXPECT_EQ(podError(h + "5,10,0.5\n"),
            "pods.csv:2:6: gpu must be a whole count 1..64 or a fraction 1m..999m, got '0.5'");
  EXPECT_EQ(podError(h + "5,10,0\n"),
            "pods.csv:2:6: gpu must be a whole count 1..64 or a fraction 1m..999m, got '0'");
  EXPECT_EQ(podError(h + "5,10,1,NVIDIA-A100-SXM4-80GB,1g.10gb\n"),
            "pods.csv:2:6: a pod with a MIG profile gives its fraction as <n>m, got '1'");
  EXPECT_EQ(podError(h + "5,10,143m,NVIDIA-A100-SXM4-80GB,1g.11gb\n"),
            "pods.csv:2:33: unknown MIG profile '1g.11gb'");
  EXPECT_EQ(podError(h + "5,10,1,,,x\n"),
            "pods.csv:2:10: expected 3 to 5 columns (arrival_s,duration_s,gpu[,gpu_model[,"
            "mig_profile]]), got 6");
  EXPECT_EQ(podError(h + "5,10\n"),
            "pods.csv:2:5: expected 3 to 5 columns (arrival_s,duration_s,gpu[,gpu_model[,"
            "mig_profile]]), got 2");
  EXPECT_EQ(podError("arrival_s,duration,gpu\n"),
            "pods.csv:1:11: header column 2 is 'duration'; expected 'duration_s'");
  EXPECT_EQ(podError(h), "pods.csv: no pods");
}

// ---- mapping to scheduler requests ----

TEST(TraceRequest, MapsWholeMigAndFractionsAsDocumented) {
  const auto c = buildCluster(nodesOf(
      "e,NVIDIA-H100-80GB-HBM3,8,exclusive\n"
      "l4a,NVIDIA-L4,4,timeslicing,slices=4\n"
      "l4b,NVIDIA-L4,4,timeslicing,slices=8\n"
      "h,NVIDIA-H100-80GB-HBM3,8,mps,slices=8\n"));
  ASSERT_EQ(c.pools.size(), 4u);  // one per (model, mode, layout)
  auto req = [&](const std::string& row) { return toRequest(podsOf(row + "\n").at(0), c); };
  const Request whole = req("0,1,2,NVIDIA-H100-80GB-HBM3");
  EXPECT_EQ(whole.shape, GpuShape::whole(2));
  EXPECT_EQ(whole.product, kH100);
  EXPECT_EQ(whole.type, DeploymentType::Global);
  EXPECT_EQ(whole.worker, "pod-1");
  EXPECT_EQ(req("0,1,143m,NVIDIA-A100-SXM4-80GB,1g.10gb").shape, GpuShape::mig("1g.10gb"));
  // Without a model: gcd(4, 8, 8) = 4, so shares of 1/1, 1/2 or 1/4.
  EXPECT_EQ(req("0,1,100m").shape, GpuShape::share(4));
  EXPECT_EQ(req("0,1,250m").shape, GpuShape::share(4));
  EXPECT_EQ(req("0,1,251m").shape, GpuShape::share(2));
  EXPECT_EQ(req("0,1,500m").shape, GpuShape::share(2));
  EXPECT_EQ(req("0,1,501m").shape, GpuShape::share(1));
  // H100 shared pools: only slices=8, so 1/8 and 1/5 -> 1/4 (3 and 5 do not divide 8).
  EXPECT_EQ(req("0,1,125m,NVIDIA-H100-80GB-HBM3").shape, GpuShape::share(8));
  EXPECT_EQ(req("0,1,200m,NVIDIA-H100-80GB-HBM3").shape, GpuShape::share(4));
  EXPECT_EQ(req("0,1,300m,NVIDIA-H100-80GB-HBM3").shape, GpuShape::share(2));
  // A model with no shared pool: 1/1 (and no node will take it).
  EXPECT_EQ(req("0,1,100m,NVIDIA-A100-SXM4-80GB").shape, GpuShape::share(1));
}

// ---- first fit ----

TEST(TraceFirstFit, TakesFirstNodeInNameOrderWithRoomThenLowestGpu) {
  // File order b, a: first fit goes by name.
  const auto c = buildCluster(nodesOf(
      "b,NVIDIA-H100-80GB-HBM3,2,exclusive\n"
      "a,NVIDIA-H100-80GB-HBM3,2,exclusive\n"
      "ts,NVIDIA-L4,2,timeslicing,slices=4\n"));
  auto inv = makeInventory(c);
  ASSERT_TRUE(inv) << inv.error();
  const Profile prof = Profile::defaults();
  FirstFit ff(*inv, prof);
  auto place = [&](const std::string& row, int line) {
    TracePod p = podsOf(row + "\n").at(0);
    p.line = line;
    const Request r = toRequest(p, c);
    auto a = ff.schedule(r);
    if (a) {
      EXPECT_TRUE(inv->assume(r, *a).has_value());
    }
    return a;
  };
  auto a1 = place("0,1,1", 1);
  ASSERT_TRUE(a1);
  EXPECT_EQ(a1->node, "a");
  EXPECT_EQ(a1->gpus, std::vector<int>{0});
  auto a2 = place("0,1,2", 2);  // a has one GPU left: b
  ASSERT_TRUE(a2);
  EXPECT_EQ(a2->node, "b");
  EXPECT_EQ(a2->gpus, (std::vector<int>{0, 1}));
  auto a3 = place("0,1,1", 3);
  ASSERT_TRUE(a3);
  EXPECT_EQ(a3->node, "a");
  EXPECT_EQ(a3->gpus, std::vector<int>{1});
  EXPECT_FALSE(place("0,1,1", 4));  // exclusive GPUs all taken
  // Shares: lowest GPU with room, lowest free slices.
  auto s1 = place("0,1,500m", 5);
  ASSERT_TRUE(s1);
  EXPECT_EQ(s1->node, "ts");
  EXPECT_EQ(s1->gpus, std::vector<int>{0});
  EXPECT_EQ(s1->share_slots, (std::vector<int>{0, 1}));
  auto s2 = place("0,1,250m", 6);
  ASSERT_TRUE(s2);
  EXPECT_EQ(s2->gpus, std::vector<int>{0});
  EXPECT_EQ(s2->share_slots, std::vector<int>{2});
  auto s3 = place("0,1,500m", 7);  // GPU 0 has one slice left
  ASSERT_TRUE(s3);
  EXPECT_EQ(s3->gpus, std::vector<int>{1});
}

// ---- metrics ----

TEST(TraceMetrics, DepartureBeforeArrivalAtTheSameInstantAndRefusalWithoutQueue) {
  const auto c = buildCluster(nodesOf("n,NVIDIA-H100-80GB-HBM3,1,exclusive\n"));
  const auto pods = podsOf(
      "0,10,1\n"    // [0, 10)
      "5,1,1\n"     // GPU busy: refused, never retried
      "10,5,1\n");  // the first left at 10: placed
  for (auto run : {&replayOurs, &replayFirstFit}) {
    std::vector<ReplaySample> samples;
    auto s = (*run)(c, pods, &samples);
    ASSERT_TRUE(s) << s.error();
    EXPECT_EQ(s->pods, 3);
    EXPECT_EQ(s->placed, 2);
    EXPECT_EQ(s->refused, 1);
    EXPECT_EQ(s->refused_whole, 1);
    EXPECT_NEAR(s->refusedPct(), 100.0 / 3, 1e-9);
    EXPECT_DOUBLE_EQ(s->window_s, 10);  // first to last arrival
    EXPECT_DOUBLE_EQ(s->used_gpu_s, 10);  // one GPU held all the time
    EXPECT_DOUBLE_EQ(s->bound_gpu_s, 10);
    EXPECT_DOUBLE_EQ(s->strandedVsBoundPct(), 0);
    ASSERT_EQ(samples.size(), 3u);  // at 0, 5, 10
    EXPECT_DOUBLE_EQ(samples[1].t_s, 5);
    EXPECT_EQ(samples[1].live, 1);
    EXPECT_DOUBLE_EQ(samples[2].t_s, 10);
    EXPECT_EQ(samples[2].used, 1);
    EXPECT_EQ(samples[2].live, 1);
  }
}

TEST(TraceMetrics, StrandedIsTimeIntegralOfUsedMinusBoundOverIntegralOfBound) {
  // Two time-sliced GPUs cut in halves. First fit:
  //   t=0   p1 -> GPU0, p2 -> GPU0, p3 -> GPU1          used 2, bound ceil(3/2) = 2
  //   t=5   p4 wants a whole shared GPU (750m -> 1/1): refused
  //   t=10  p2 leaves: p1 on GPU0, p3 on GPU1           used 2, bound ceil(2/2) = 1
  //   t=20  p5 -> GPU0 (lowest GPU with room)           used 2, bound 2
  //   t=30  p5 leaves                                   used 2, bound 1
  //   t=40  p6 -> GPU0; the window ends (last arrival).
  // used = 2 x 40 = 80 GPU-s; bound = 2x10 + 1x10 + 2x10 + 1x10 = 60 GPU-s;
  // stranded = (80 - 60) / 60 = 33.33%; refused 1 of 6.
  const auto c = buildCluster(nodesOf("ts,NVIDIA-L4,2,timeslicing,slices=2\n"));
  const auto pods = podsOf(
      "0,100,500m\n"
      "0,10,500m\n"
      "0,100,500m\n"
      "5,50,750m\n"
      "20,10,500m\n"
      "40,10,500m\n");
  auto ff = replayFirstFit(c, pods);
  ASSERT_TRUE(ff) << ff.error();
  EXPECT_EQ(ff->refused, 1);
  EXPECT_EQ(ff->refused_share, 1);
  EXPECT_NEAR(ff->refusedPct(), 100.0 / 6, 1e-9);
  EXPECT_DOUBLE_EQ(ff->window_s, 40);
  EXPECT_DOUBLE_EQ(ff->used_gpu_s, 80);
  EXPECT_DOUBLE_EQ(ff->bound_gpu_s, 60);
  EXPECT_NEAR(ff->strandedVsBoundPct(), 100.0 / 3, 1e-9);
  EXPECT_EQ(ff->peak_stranded, 1);
  EXPECT_DOUBLE_EQ(ff->meanUsed(), 2);
  EXPECT_DOUBLE_EQ(ff->meanBound(), 1.5);
}

TEST(TraceMetrics, MigInstancesCountTowardTheBoundBySlices) {
  // One A100 in MIG mode: two 3g.40gb fit (slots 0 and 4), the third is refused.
  // Bound: compute 6/7 -> 1, memory 8/8 -> 1: one GPU, so nothing is stranded.
  const auto c = buildCluster(nodesOf("m,NVIDIA-A100-SXM4-80GB,1,mig,mig=3g.40gb\n"));
  const auto pods = podsOf(
      "0,10,429m,NVIDIA-A100-SXM4-80GB,3g.40gb\n"
      "0,10,429m,NVIDIA-A100-SXM4-80GB,3g.40gb\n"
      "1,10,429m,NVIDIA-A100-SXM4-80GB,3g.40gb\n");
  for (auto run : {&replayOurs, &replayFirstFit}) {
    auto s = (*run)(c, pods, nullptr);
    ASSERT_TRUE(s) << s.error();
    EXPECT_EQ(s->refused, 1);
    EXPECT_EQ(s->refused_mig, 1);
    EXPECT_DOUBLE_EQ(s->used_gpu_s, 1);  // window [0, 1]
    EXPECT_DOUBLE_EQ(s->bound_gpu_s, 1);
    EXPECT_DOUBLE_EQ(s->strandedVsBoundPct(), 0);
  }
}

TEST(TraceMetrics, BestFitAvoidsTheRefusalFirstFitCauses) {
  // Node a has 4 GPUs, b has 2. First fit puts the 2-GPU pod on a (first by name), so the
  // 4-GPU pod that follows finds no node; our BinPack scoring (MostAllocated) fills b.
  const auto c = buildCluster(nodesOf(
      "a,NVIDIA-H100-80GB-HBM3,4,exclusive\n"
      "b,NVIDIA-H100-80GB-HBM3,2,exclusive\n"));
  const auto pods = podsOf(
      "0,10,2\n"
      "1,10,4\n");
  auto ours = replayOurs(c, pods);
  auto ff = replayFirstFit(c, pods);
  ASSERT_TRUE(ours && ff);
  EXPECT_EQ(ours->refused, 0);
  EXPECT_EQ(ff->refused, 1);
  EXPECT_DOUBLE_EQ(ff->refusedPct(), 50);
  // Whole GPUs are never stranded: each used GPU is all held.
  EXPECT_DOUBLE_EQ(ours->strandedVsBoundPct(), 0);
  EXPECT_DOUBLE_EQ(ff->strandedVsBoundPct(), 0);
}

TEST(TraceMetrics, UnservablePodsAreThoseNoNodeClassTakes) {
  const auto c = buildCluster(nodesOf(
      "a,NVIDIA-H100-80GB-HBM3,4,exclusive\n"
      "t,NVIDIA-L4,4,timeslicing,slices=4\n"));
  const auto pods = podsOf(
      "0,10,8\n"                                       // more GPUs than any node
      "0,10,4\n"                                       // fits a
      "0,10,2,NVIDIA-A100-SXM4-80GB\n"                 // no A100 node
      "0,10,250m\n"                                    // fits t
      "0,10,143m,NVIDIA-A100-SXM4-80GB,1g.10gb\n");    // no MIG node
  auto u = unservablePods(c, pods);
  ASSERT_TRUE(u) << u.error();
  EXPECT_EQ(*u, 3);
}

}  // namespace
}  // namespace waterline::scheduling::bench
