#pragma once
// PTU sizing and billing arithmetic (pure): how many replicas a PTUReservation needs,
// and the unit-hours it accrues. See docs/autoscaling.md ("PTU floors").
//
//   provisioned TPM  = units × tokensPerMinutePerUnit
//   replicas         = ceil(provisioned TPM / tokensPerMinutePerReplica)
//   burst TPM        = provisioned × (1 + burstPercent / 100)   (the throttle threshold)
//
// Billing accrues per STARTED minute of the reservation's active interval, prorated:
// each started minute costs units / 60 unit-hours. Minutes are counted from startTime
// (from the first accrual when there is none) and stop at endTime: the minute
// [start + 60k s, start + 60(k+1) s) is billed once `now` reaches its start and that
// start is before endTime. unitHoursConsumed is a decimal string with 6 fractional
// digits (api::parseDecimalMicros); to keep it exact across any number of accruals, a
// step adds billed(now) − billed(last) where billed(t) = floor(units × minutes(t) × 10^6
// / 60) micro-unit-hours, a difference of cumulative values, so accruing every second or
// once a day gives the same total (to the micro-unit-hour, with constant units).
#include <cstdint>
#include <expected>
#include <optional>
#include <string>

#include "waterline/common/time.h"

namespace waterline::planners {

// units × tokensPerMinutePerUnit; error on negative inputs or int64 overflow.
std::expected<int64_t, std::string> provisionedTokensPerMinute(int64_t units, int64_t tokensPerMinutePerUnit);

// ceil(provisionedTpm / tokensPerMinutePerReplica); 0 for provisionedTpm <= 0. Error when
// tokensPerMinutePerReplica <= 0 or the result exceeds INT32_MAX.
std::expected<int32_t, std::string> replicasForThroughput(int64_t provisionedTpm, int64_t tokensPerMinutePerReplica);

// Both steps: the replica floor a reservation puts under its deployment.
std::expected<int32_t, std::string> ptuReplicas(int64_t units, int64_t tokensPerMinutePerUnit,
                                                int64_t tokensPerMinutePerReplica);

// provisioned × (1 + burstPercent/100), rounded down; saturates at INT64_MAX.
int64_t burstTokensPerMinute(int64_t provisionedTpm, int32_t burstPercent);

// used / provisioned (0 when provisioned is 0).
double ptuUtilization(double usedTpm, int64_t provisionedTpm);

// Minutes started in [start, min(t, end)): 0 before start; counting starts at start
// itself (a minute is billed as soon as it begins); none at or after end.
int64_t billedMinutes(SystemTime start, std::optional<SystemTime> end, SystemTime t);

// Micro-unit-hours for `minutes` started minutes: floor(units × minutes × 10^6 / 60).
int64_t unitMicroHoursForMinutes(int64_t units, int64_t minutes);

struct Accrual {
  int64_t consumedMicros = 0;  // new unitHoursConsumed, in millionths
  int64_t addedMicros = 0;     // what this step added
  int64_t minutesBilled = 0;   // minutes billed by this step
  SystemTime accruedTo{};      // the new lastAccrualTime (= now)
};

// One accrual step from `lastAccrual` (or, when absent, from `start`) to `now`:
// adds unitMicroHours(billedMinutes(now)) − unitMicroHours(billedMinutes(lastAccrual)).
// `start` is spec.startTime, or the time the reservation became Active when it has none.
// A `now` before lastAccrual adds nothing (clock skew) and keeps lastAccrual.
Accrual accrueUnitHours(int64_t consumedMicros, int64_t units, SystemTime start, std::optional<SystemTime> end,
                        std::optional<SystemTime> lastAccrual, SystemTime now);

// accrueUnitHours over the decimal status field: parses `consumed` (api::parseDecimalMicros
// format) and returns the new decimal string.
std::expected<std::string, std::string> accrueUnitHoursDecimal(const std::string& consumed, int64_t units,
                                                               SystemTime start, std::optional<SystemTime> end,
                                                               std::optional<SystemTime> lastAccrual, SystemTime now);

}  // namespace waterline::planners
