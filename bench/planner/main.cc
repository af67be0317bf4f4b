// Times the waterline planner: prepareSeries + planWaterline over `days` of per-minute
// data (synthetic: a diurnal wave, a weekly dip, noise and short spikes; fixed seed) for
// `units` unit counts. Prints the best of `repeats` runs as
//   RESULT planner_seconds_30d <seconds> s
// (goal < 1 s for 30 days × 200 counts). The planner's spill/throttle error against the
// routing simulation (issue 16's planner_spill_error_pp / planner_throttle_error_pp) is
// not measured here yet.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <numbers>
#include <random>
#include <string>

#include "waterline/planners/waterline.h"

using namespace waterline::planners;

int main(int argc, char** argv) {
  int days = 30, units = 200, repeats = 5;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    int v = std::atoi(argv[i + 1]);
    if (a == "--days") days = v;
    else if (a == "--units") units = v;
    else if (a == "--repeats") repeats = v;
    else {
      std::fprintf(stderr, "unknown flag %s (--days N, --units N, --repeats N)\n", a.c_str());
      return 2;
    }
  }
  if (days < 1 || units < 1 || repeats < 1) {
    std::fprintf(stderr, "--days, --units and --repeats must be >= 1\n");
    return 2;
  }
  const size_t n = static_cast<size_t>(days) * 1440;
  std::mt19937_64 rng(42);
  std::normal_distribution<double> noise(0, 0.08);
  std::uniform_real_distribution<double> u01(0, 1);
  std::vector<TokenMinute> series(n);
  for (size_t m = 0; m < n; ++m) {
    const double day = static_cast<double>(m % 1440) / 1440.0;
    const bool weekend = (m / 1440) % 7 >= 5;
    double level = 60000 * (0.55 + 0.45 * std::sin(2 * std::numbers::pi * (day - 0.3)));
    if (weekend) level *= 0.5;
    level *= 1 + noise(rng);
    if (u01(rng) < 0.002) level *= 3;  // spikes
    level = std::max(0.0, level);
    series[m] = {level * 0.8, level * 0.2};
  }
  const PtuPrices prices{0.25, 0.01, 0.03};
  const ReservationShape shape{1000, 10, true};
  const PlanRange range{0, units - 1, 1};
  double best = 1e300;
  WaterlinePlan last;
  for (int r = 0; r < repeats; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    auto prepared = prepareSeries(series, {1, 3}, prices);
    auto plan = planWaterline(prepared, shape, prices, range, 95);
    auto t1 = std::chrono::steady_clock::now();
    if (!plan) {
      std::fprintf(stderr, "plan: %s\n", plan.error().c_str());
      return 1;
    }
    best = std::min(best, std::chrono::duration<double>(t1 - t0).count());
    last = std::move(*plan);
  }
  std::printf("series: %zu minutes (%d days, synthetic diurnal), %zu unit counts, best of %d runs\n", n, days,
              last.rows.size(), repeats);
  for (const auto& rec : last.recommendations)
    std::printf("  %-12s %s units (%s)\n", rec.target.c_str(),
                rec.units ? std::to_string(*rec.units).c_str() : "none", rec.why.c_str());
  std::printf("not measured yet: planner_spill_error_pp, planner_throttle_error_pp (replaying the series through "
              "the routing simulation)\n");
  std::printf("RESULT planner_seconds_30d %.4f s\n", best * 30.0 / days * 200.0 / units);
  return 0;
}
