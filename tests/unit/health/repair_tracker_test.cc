// RepairTracker: each pod's repair is counted once (metric and backoff), worker-caused
// reasons feed the per-deployment backoff, and the metric is exposed per reason.
#include <gtest/gtest.h>

#include "waterline/reconcilers/model_deployment.h"

namespace waterline::reconcilers {
namespace {

using namespace std::chrono_literals;
namespace R = planners::repair_reasons;

const SystemTime kNow = SystemTime{} + std::chrono::hours(24 * 365 * 55);

planners::Repair repair(const std::string& pod, std::string_view reason) {
  return {pod, "uid-" + pod, "node-0", std::string(reason), "worker " + pod};
}

TEST(RepairTracker, CountsEachPodOnceAndFeedsTheBackoff) {
  metrics::Registry reg;
  RepairTracker t(reg, {10s, 5min, 10min});
  const std::string k = "llm/llama";
  // Every reason is exposed from the start.
  const std::string text = reg.serialize();
  for (auto r : {R::kWorkerFailed, R::kProbeFailed, R::kNodeNotReady, R::kNodeGone, R::kNodeEvicting, R::kGpuUnhealthy})
    EXPECT_NE(text.find("waterline_repairs_total{reason=\"" + std::string(r) + "\"} 0"), std::string::npos) << r;

  EXPECT_FALSE(t.holdUntil(k, kNow));
  auto fresh = t.record(k, {repair("llama-0", R::kWorkerFailed)}, kNow);
  EXPECT_EQ(fresh.size(), 1u);
  EXPECT_EQ(t.count(R::kWorkerFailed), 1);
  EXPECT_EQ(t.holdUntil(k, kNow), kNow + 10s);
  // The same pod again (a stale cache): neither counted nor fed to the backoff.
  EXPECT_TRUE(t.record(k, {repair("llama-0", R::kWorkerFailed)}, kNow + 1s).empty());
  EXPECT_EQ(t.count(R::kWorkerFailed), 1);
  EXPECT_EQ(t.holdUntil(k, kNow + 1s), kNow + 10s);
  // Node and GPU faults are counted but never back off.
  t.record("llm/other", {repair("other-0", R::kNodeGone), repair("other-1", R::kGpuUnhealthy)}, kNow);
  EXPECT_EQ(t.count(R::kNodeGone), 1);
  EXPECT_EQ(t.count(R::kGpuUnhealthy), 1);
  EXPECT_FALSE(t.holdUntil("llm/other", kNow));
  // A second worker-caused repair doubles the hold; forget() clears it.
  t.record(k, {repair("llama-1", R::kProbeFailed)}, kNow + 10s);
  EXPECT_EQ(t.holdUntil(k, kNow + 10s), kNow + 30s);
  t.forget(k);
  EXPECT_FALSE(t.holdUntil(k, kNow + 10s));
  // Two trackers on one registry share the family (no double registration).
  RepairTracker t2(reg);
  EXPECT_EQ(t2.count(R::kProbeFailed), 1);
}

}  // namespace
}  // namespace waterline::reconcilers
