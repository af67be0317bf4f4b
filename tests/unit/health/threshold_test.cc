// HealthThreshold: Envoy-style consecutive failure / success thresholds.
#include <gtest/gtest.h>

#include "waterline/planners/health_threshold.h"

namespace waterline::planners {
namespace {

using T = HealthThreshold::Transition;

TEST(HealthThreshold, UnhealthyOnlyAfterNConsecutiveFailures) {
  HealthThreshold h(3, 2);
  EXPECT_TRUE(h.healthy());
  EXPECT_EQ(h.observe(false), T::None);
  EXPECT_EQ(h.observe(false), T::None);
  EXPECT_TRUE(h.healthy());
  EXPECT_EQ(h.observe(false), T::BecameUnhealthy);
  EXPECT_FALSE(h.healthy());
  // Further failures are no new transition.
  EXPECT_EQ(h.observe(false), T::None);
  EXPECT_EQ(h.consecutiveFailures(), 3);
}

TEST(HealthThreshold, HealthyOnlyAfterMConsecutiveSuccesses) {
  HealthThreshold h(1, 3);
  EXPECT_EQ(h.observe(false), T::BecameUnhealthy);
  EXPECT_EQ(h.observe(true), T::None);
  EXPECT_EQ(h.observe(true), T::None);
  EXPECT_FALSE(h.healthy());
  EXPECT_EQ(h.observe(true), T::BecameHealthy);
  EXPECT_TRUE(h.healthy());
  EXPECT_EQ(h.observe(true), T::None);
}

TEST(HealthThreshold, AlternatingResultsNeverFlap) {
  HealthThreshold h(2, 2);
  for (int i = 0; i < 100; ++i) {
    EXPECT_EQ(h.observe(i % 2 == 0), T::None) << i;
    EXPECT_TRUE(h.healthy());
  }
  HealthThreshold u(2, 2, /*startHealthy=*/false);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(u.observe(i % 2 == 0), T::None) << i;
  EXPECT_FALSE(u.healthy());
}

TEST(HealthThreshold, StreaksResetOnTheOppositeResult) {
  HealthThreshold h(3, 1);
  h.observe(false);
  h.observe(false);
  h.observe(true);  // resets the failure streak
  EXPECT_EQ(h.consecutiveFailures(), 0);
  EXPECT_EQ(h.observe(false), T::None);
  EXPECT_EQ(h.observe(false), T::None);
  EXPECT_EQ(h.observe(false), T::BecameUnhealthy);
}

TEST(HealthThreshold, ThresholdsBelowOneActAsOne) {
  HealthThreshold h(0, -5);
  EXPECT_EQ(h.observe(false), T::BecameUnhealthy);
  EXPECT_EQ(h.observe(true), T::BecameHealthy);
}

}  // namespace
}  // namespace waterline::planners
