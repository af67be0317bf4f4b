#include <gtest/gtest.h>

#include "waterline/api/conditions.h"
#include "waterline/api/keys.h"
#include "waterline/api/meta.h"

namespace waterline::api {
namespace {

using std::chrono::seconds;

TEST(Conditions, TransitionTimeChangesOnlyWithStatus) {
  SystemTime t0 = parseTime("2025-05-01T00:00:00Z").value();
  std::vector<Condition> cs;
  // New condition: lastTransitionTime = now.
  EXPECT_TRUE(setCondition(cs, {"Ready", ConditionStatus::False, "NoNodes", "no nodes", {}, 1}, t0));
  ASSERT_EQ(cs.size(), 1u);
  EXPECT_EQ(cs[0].lastTransitionTime, t0);
  // Same status, new reason/message/generation: updated, time kept.
  EXPECT_TRUE(setCondition(cs, {"Ready", ConditionStatus::False, "NodesNotReady", "0/2 ready", {}, 2}, t0 + seconds(10)));
  EXPECT_EQ(cs[0].lastTransitionTime, t0);
  EXPECT_EQ(cs[0].reason, "NodesNotReady");
  EXPECT_EQ(cs[0].message, "0/2 ready");
  EXPECT_EQ(cs[0].observedGeneration, 2);
  // Nothing changed: false, time kept.
  EXPECT_FALSE(setCondition(cs, {"Ready", ConditionStatus::False, "NodesNotReady", "0/2 ready", {}, 2}, t0 + seconds(20)));
  EXPECT_EQ(cs[0].lastTransitionTime, t0);
  // Status flips: time moves to now.
  EXPECT_TRUE(setCondition(cs, {"Ready", ConditionStatus::True, "NodesReady", "2/2", {}, 2}, t0 + seconds(30)));
  EXPECT_EQ(cs[0].lastTransitionTime, t0 + seconds(30));
  // A given non-zero lastTransitionTime is used when the status flips.
  EXPECT_TRUE(setCondition(cs, {"Ready", ConditionStatus::Unknown, "R", "", t0 + seconds(35), 2}, t0 + seconds(40)));
  EXPECT_EQ(cs[0].lastTransitionTime, t0 + seconds(35));
  // ... but ignored when it does not.
  EXPECT_FALSE(setCondition(cs, {"Ready", ConditionStatus::Unknown, "R", "", t0 + seconds(99), 2}, t0 + seconds(50)));
  EXPECT_EQ(cs[0].lastTransitionTime, t0 + seconds(35));
}

TEST(Conditions, FindAndPredicates) {
  SystemTime t0 = parseTime("2025-05-01T00:00:00Z").value();
  std::vector<Condition> cs;
  setCondition(cs, {std::string(conditions::kAvailable), ConditionStatus::True, "MinimumReplicasAvailable", "", {}, 3}, t0);
  setCondition(cs, {std::string(conditions::kDegraded), ConditionStatus::False, "ReplicasHealthy", "", {}, 3}, t0);
  EXPECT_EQ(cs.size(), 2u);
  EXPECT_TRUE(isTrue(cs, "Available"));
  EXPECT_FALSE(isFalse(cs, "Available"));
  EXPECT_TRUE(isFalse(cs, "Degraded"));
  EXPECT_FALSE(isTrue(cs, "Scheduled"));
  EXPECT_FALSE(isFalse(cs, "Scheduled"));
  EXPECT_TRUE(isTrueFor(cs, "Available", 3));
  EXPECT_FALSE(isTrueFor(cs, "Available", 4));
  ASSERT_NE(findCondition(cs, "Degraded"), nullptr);
  EXPECT_EQ(findCondition(cs, "Degraded")->reason, "ReplicasHealthy");
  EXPECT_EQ(findCondition(cs, "Nope"), nullptr);
  findCondition(cs, "Degraded")->message = "x";
  EXPECT_EQ(cs[1].message, "x");
  EXPECT_TRUE(removeCondition(cs, "Degraded"));
  EXPECT_FALSE(removeCondition(cs, "Degraded"));
  EXPECT_EQ(cs.size(), 1u);
}

TEST(Conditions, Json) {
  Condition c{"Ready", ConditionStatus::True, "NodesReady", "ok", parseTime("2025-05-01T00:00:00Z").value(), 5};
  nlohmann::json j = c.toJson();
  EXPECT_EQ(j, nlohmann::json({{"type", "Ready"},
                               {"status", "True"},
                               {"reason", "NodesReady"},
                               {"message", "ok"},
                               {"lastTransitionTime", "2025-05-01T00:00:00Z"},
                               {"observedGeneration", 5}}));
  EXPECT_EQ(Condition::fromJson(j).value(), c);
  EXPECT_EQ(parseConditionStatus("False"), ConditionStatus::False);
  EXPECT_FALSE(parseConditionStatus("false"));
  EXPECT_EQ(toString(ConditionStatus::Unknown), "Unknown");
}

}  // namespace
}  // namespace waterline::api
