// PTU sizing and unit-hour proration.
#include "waterline/planners/ptu_sizing.h"

#include <gtest/gtest.h>

#include <limits>
#include <random>

namespace waterline::planners {
namespace {

using namespace std::chrono_literals;
const SystemTime kStart = SystemTime{} + std::chrono::seconds(1'700'000'000);

TEST(PtuSizing, ProvisionedAndReplicas) {
  EXPECT_EQ(provisionedTokensPerMinute(10, 2500).value(), 25000);
  EXPECT_EQ(provisionedTokensPerMinute(0, 2500).value(), 0);
  EXPECT_FALSE(provisionedTokensPerMinute(-1, 2500));
  EXPECT_FALSE(provisionedTokensPerMinute(std::numeric_limits<int64_t>::max(), 2));

  EXPECT_EQ(replicasForThroughput(25000, 10000).value(), 3);  // ceil(2.5)
  EXPECT_EQ(replicasForThroughput(30000, 10000).value(), 3);  // exact
  EXPECT_EQ(replicasForThroughput(30001, 10000).value(), 4);
  EXPECT_EQ(replicasForThroughput(0, 10000).value(), 0);
  EXPECT_EQ(replicasForThroughput(1, 10000).value(), 1);
  EXPECT_FALSE(replicasForThroughput(100, 0));
  EXPECT_FALSE(replicasForThroughput(std::numeric_limits<int64_t>::max(), 1));

  EXPECT_EQ(ptuReplicas(10, 2500, 10000).value(), 3);
  EXPECT_EQ(ptuReplicas(4, 2500, 10000).value(), 1);
  EXPECT_FALSE(ptuReplicas(4, 2500, -1));
}

TEST(PtuSizing, BurstAndUtilization) {
  EXPECT_EQ(burstTokensPerMinute(25000, 0), 25000);
  EXPECT_EQ(burstTokensPerMinute(25000, 20), 30000);
  EXPECT_EQ(burstTokensPerMinute(33, 50), 49);  // 49.5 rounded down
  EXPECT_EQ(burstTokensPerMinute(std::numeric_limits<int64_t>::max(), 100), std::numeric_limits<int64_t>::max());
  EXPECT_DOUBLE_EQ(ptuUtilization(12500, 25000), 0.5);
  EXPECT_DOUBLE_EQ(ptuUtilization(12500, 0), 0);
}

TEST(PtuSizing, BilledMinutesCountStartedMinutes) {
  EXPECT_EQ(billedMinutes(kStart, std::nullopt, kStart - 1s), 0);
  EXPECT_EQ(billedMinutes(kStart, std::nullopt, kStart), 1);  // the first minute has started
  EXPECT_EQ(billedMinutes(kStart, std::nullopt, kStart + 59s), 1);
  EXPECT_EQ(billedMinutes(kStart, std::nullopt, kStart + 60s), 2);
  EXPECT_EQ(billedMinutes(kStart, std::nullopt, kStart + 1h), 61);
  // endTime: the minute that starts at or after the end is not billed
  EXPECT_EQ(billedMinutes(kStart, kStart + 90s, kStart + 1h), 2);
  EXPECT_EQ(billedMinutes(kStart, kStart + 120s, kStart + 1h), 2);
  EXPECT_EQ(billedMinutes(kStart, kStart + 121s, kStart + 1h), 3);
  EXPECT_EQ(billedMinutes(kStart, kStart, kStart + 1h), 0);
  EXPECT_EQ(billedMinutes(kStart, kStart - 1s, kStart + 1h), 0);
}

TEST(PtuSizing, UnitHoursProrated) {
  EXPECT_EQ(unitMicroHoursForMinutes(6, 60), 6'000'000);   // 6 units × 1 h
  EXPECT_EQ(unitMicroHoursForMinutes(1, 1), 16'666);       // 1/60 h, rounded down
  EXPECT_EQ(unitMicroHoursForMinutes(3, 20), 1'000'000);   // 3 × 1/3 h
  EXPECT_EQ(unitMicroHoursForMinutes(0, 20), 0);
  EXPECT_EQ(unitMicroHoursForMinutes(std::numeric_limits<int64_t>::max(), 60), std::numeric_limits<int64_t>::max());
}

TEST(PtuSizing, AccrualSteps) {
  // First accrual (no lastAccrual) at start + 30 s: one started minute of 6 units.
  auto a = accrueUnitHours(0, 6, kStart, std::nullopt, std::nullopt, kStart + 30s);
  EXPECT_EQ(a.minutesBilled, 1);
  EXPECT_EQ(a.addedMicros, 100'000);  // 6/60 h
  EXPECT_EQ(a.accruedTo, kStart + 30s);
  // Within the same minute: nothing more.
  a = accrueUnitHours(a.consumedMicros, 6, kStart, std::nullopt, a.accruedTo, kStart + 59s);
  EXPECT_EQ(a.addedMicros, 0);
  // Next minute starts.
  a = accrueUnitHours(a.consumedMicros, 6, kStart, std::nullopt, a.accruedTo, kStart + 60s);
  EXPECT_EQ(a.minutesBilled, 1);
  EXPECT_EQ(a.consumedMicros, 200'000);
  // Clock went backwards: nothing, lastAccrual kept.
  auto b = accrueUnitHours(a.consumedMicros, 6, kStart, std::nullopt, a.accruedTo, kStart + 10s);
  EXPECT_EQ(b.addedMicros, 0);
  EXPECT_EQ(b.accruedTo, a.accruedTo);
  // Past the end: capped.
  a = accrueUnitHours(0, 6, kStart, kStart + 10min, std::nullopt, kStart + 5h);
  EXPECT_EQ(a.minutesBilled, 10);
  EXPECT_EQ(a.consumedMicros, 1'000'000);
  // Before the start: nothing.
  a = accrueUnitHours(0, 6, kStart, std::nullopt, std::nullopt, kStart - 1h);
  EXPECT_EQ(a.consumedMicros, 0);
}

TEST(PtuSizing, AccrualIsExactWhateverTheCadence) {
  // One unit for 7 h 13 min 20 s: 434 started minutes = 7.233333 unit-hours, whether
  // accrued every second, at random intervals, or once.
  const auto end = kStart + 7h + 13min + 20s;
  const int64_t once = accrueUnitHours(0, 1, kStart, end, std::nullopt, kStart + 24h).consumedMicros;
  EXPECT_EQ(once, 7'233'333);

  int64_t consumed = 0;
  std::optional<SystemTime> last;
  for (auto t = kStart - 5min; t < kStart + 8h; t += 1s) {
    auto a = accrueUnitHours(consumed, 1, kStart, end, last, t);
    consumed = a.consumedMicros;
    last = a.accruedTo;
  }
  EXPECT_EQ(consumed, once);

  std::mt19937_64 rng(7);
  consumed = 0;
  last.reset();
  for (auto t = kStart; t < kStart + 9h; t += std::chrono::milliseconds(1 + rng() % 400'000)) {
    auto a = accrueUnitHours(consumed, 1, kStart, end, last, t);
    consumed = a.consumedMicros;
    last = a.accruedTo;
  }
  consumed = accrueUnitHours(consumed, 1, kStart, end, last, kStart + 24h).consumedMicros;
  EXPECT_EQ(consumed, once);
}

TEST(PtuSizing, DecimalField) {
  auto s = accrueUnitHoursDecimal("12.5", 6, kStart, std::nullopt, std::nullopt, kStart + 30s);
  ASSERT_TRUE(s) << s.error();
  EXPECT_EQ(*s, "12.6");
  EXPECT_EQ(accrueUnitHoursDecimal("", 60, kStart, std::nullopt, std::nullopt, kStart).value(), "1");
  EXPECT_FALSE(accrueUnitHoursDecimal("abc", 6, kStart, std::nullopt, std::nullopt, kStart));
}

}  // namespace
}  // namespace waterline::planners
