#include "waterline/planners/ptu_sizing.h"

#include <algorithm>
#include <limits>

#include "waterline/api/quantity.h"

namespace waterline::planners {

namespace {
constexpr int64_t kI64Max = std::numeric_limits<int64_t>::max();
using i128 = __int128;
constexpr auto kMinute = std::chrono::minutes(1);
}  // namespace

std::expected<int64_t, std::string> provisionedTokensPerMinute(int64_t units, int64_t tokensPerMinutePerUnit) {
  if (units < 0) return std::unexpected("units must be >= 0");
  if (tokensPerMinutePerUnit < 0) return std::unexpected("tokensPerMinutePerUnit must be >= 0");
  const i128 v = i128{units} * tokensPerMinutePerUnit;
  if (v > kI64Max) return std::unexpected("units × tokensPerMinutePerUnit overflows");
  return static_cast<int64_t>(v);
}

std::expected<int32_t, std::string> replicasForThroughput(int64_t provisionedTpm, int64_t tokensPerMinutePerReplica) {
  if (tokensPerMinutePerReplica <= 0) return std::unexpected("tokensPerMinutePerReplica must be > 0");
  if (provisionedTpm <= 0) return 0;
  const int64_t r = provisionedTpm / tokensPerMinutePerReplica + (provisionedTpm % tokensPerMinutePerReplica != 0);
  if (r > std::numeric_limits<int32_t>::max()) return std::unexpected("replica count overflows int32");
  return static_cast<int32_t>(r);
}

std::expected<int32_t, std::string> ptuReplicas(int64_t units, int64_t tokensPerMinutePerUnit,
                                                int64_t tokensPerMinutePerReplica) {
  auto tpm = provisionedTokensPerMinute(units, tokensPerMinutePerUnit);
  if (!tpm) return std::unexpected(tpm.error());
  return replicasForThroughput(*tpm, tokensPerMinutePerReplica);
}

int64_t burstTokensPerMinute(int64_t provisionedTpm, int32_t burstPercent) {
  if (provisionedTpm <= 0) return 0;
  const i128 v = i128{provisionedTpm} * (100 + std::max(0, burstPercent)) / 100;
  return v > kI64Max ? kI64Max : static_cast<int64_t>(v);
}

double ptuUtilization(double usedTpm, int64_t provisionedTpm) {
  if (provisionedTpm <= 0) return 0;
  return usedTpm / static_cast<double>(provisionedTpm);
}

int64_t billedMinutes(SystemTime start, std::optional<SystemTime> end, SystemTime t) {
  if (t < start) return 0;
  int64_t started = (t - start) / kMinute + 1;  // floor for non-negative, plus the current one
  if (end) {
    if (*end <= start) return 0;
    const auto span = *end - start;
    const int64_t cap = span / kMinute + (span % kMinute != decltype(span)::zero());
    started = std::min(started, cap);
  }
  return started;
}

int64_t unitMicroHoursForMinutes(int64_t units, int64_t minutes) {
  if (units <= 0 || minutes <= 0) return 0;
  const i128 v = i128{units} * minutes * 1'000'000 / 60;
  return v > kI64Max ? kI64Max : static_cast<int64_t>(v);
}

Accrual accrueUnitHours(int64_t consumedMicros, int64_t units, SystemTime start, std::optional<SystemTime> end,
                        std::optional<SystemTime> lastAccrual, SystemTime now) {
  Accrual a;
  a.consumedMicros = consumedMicros;
  if (lastAccrual && now < *lastAccrual) {
    a.accruedTo = *lastAccrual;
    return a;
  }
  const int64_t before = lastAccrual ? billedMinutes(start, end, *lastAccrual) : 0;
  const int64_t after = billedMinutes(start, end, now);
  a.minutesBilled = std::max<int64_t>(0, after - before);
  a.addedMicros = std::max<int64_t>(
      0, unitMicroHoursForMinutes(units, after) - unitMicroHoursForMinutes(units, before));
  const i128 sum = i128{consumedMicros} + a.addedMicros;
  a.consumedMicros = sum > kI64Max ? kI64Max : static_cast<int64_t>(sum);
  a.accruedTo = now;
  return a;
}

std::expected<std::string, std::string> accrueUnitHoursDecimal(const std::string& consumed, int64_t units,
                                                               SystemTime start, std::optional<SystemTime> end,
                                                               std::optional<SystemTime> lastAccrual, SystemTime now) {
  auto micros = api::parseDecimalMicros(consumed.empty() ? std::string_view("0") : std::string_view(consumed));
  if (!micros) return std::unexpected(micros.error());
  return api::formatDecimalMicros(accrueUnitHours(*micros, units, start, end, lastAccrual, now).consumedMicros);
}

}  // namespace waterline::planners
