// waterline-plan reading its series from Prometheus range queries (a fake client).
#include <gtest/gtest.h>

#include <sstream>

#include "waterline/plan/plan_cli.h"

namespace waterline::plan {
namespace {

using namespace std::chrono_literals;

struct Call {
  std::string promql;
  int64_t start = 0, end = 0, step = 0;
};

// Answers every step of a range with `in` (prompt) or `out` (generation) tokens, except
// the minutes in `quiet`, which have no point.
class FakeProm final : public sources::PrometheusClient {
 public:
  sources::PromResultOr query(std::string_view, std::optional<SystemTime>) override {
    return std::unexpected(sources::PromError{});
  }
  std::expected<std::vector<sources::PromSeries>, sources::PromError> queryRange(std::string_view promql,
                                                                                 SystemTime start, SystemTime end,
                                                                                 Duration step) override {
    using namespace std::chrono;
    Call c{std::string(promql), duration_cast<seconds>(start.time_since_epoch()).count(),
           duration_cast<seconds>(end.time_since_epoch()).count(), duration_cast<seconds>(step).count()};
    calls.push_back(c);
    const bool prompt = promql.find("prompt_tokens") != std::string_view::npos;
    sources::PromSeries s;
    for (int64_t t = c.start; t <= c.end; t += c.step) {
      if (t == spikeAt) s.points.push_back({double(t), prompt ? 50000.0 : 10000.0});
      else s.points.push_back({double(t), prompt ? 1000.0 : 200.0});
    }
    return std::vector<sources::PromSeries>{s};
  }
  std::vector<Call> calls;
  int64_t spikeAt = -1;
};

const SystemTime kNow = SystemTime{} + 1'764'583'230s;  // 2025-12-01T10:00:30Z
constexpr int64_t kEnd = 1'764'583'200;                  // minute-aligned

TEST(PlanPrometheus, QueriesTheCountersOverTheWindow) {
  FakeProm prom;
  prom.spikeAt = kEnd - 600;
  auto s = prometheusSeries(prom, "team-a", "llama-8b", 1h, kNow);
  ASSERT_TRUE(s) << s.error();
  ASSERT_EQ(prom.calls.size(), 2u);
  EXPECT_EQ(prom.calls[0].promql,
            R"(sum(increase(vllm:prompt_tokens_total{namespace="team-a",deployment="llama-8b"}[1m])))");
  EXPECT_EQ(prom.calls[1].promql,
            R"(sum(increase(vllm:generation_tokens_total{namespace="team-a",deployment="llama-8b"}[1m])))");
  EXPECT_EQ(prom.calls[0].start, kEnd - 3600 + 60);
  EXPECT_EQ(prom.calls[0].end, kEnd);
  EXPECT_EQ(prom.calls[0].step, 60);
  EXPECT_EQ(s->startUnixMinute, (kEnd - 3600) / 60);
  ASSERT_EQ(s->minutes.size(), 60u);
  EXPECT_DOUBLE_EQ(s->minutes[0].inputTokens, 1000);
  EXPECT_DOUBLE_EQ(s->minutes[0].outputTokens, 200);
  // The step at kEnd - 600 counts the minute before it: index 60 - 10 - 1.
  EXPECT_DOUBLE_EQ(s->minutes[49].inputTokens, 50000);
  EXPECT_DOUBLE_EQ(s->minutes[49].outputTokens, 10000);
}

TEST(PlanPrometheus, LongWindowsAreSplit) {
  FakeProm prom;
  auto s = prometheusSeries(prom, "ns", "d", 24h * 10, kNow);  // 14,400 steps
  ASSERT_TRUE(s) << s.error();
  ASSERT_EQ(prom.calls.size(), 4u);  // two per counter
  EXPECT_EQ((prom.calls[0].end - prom.calls[0].start) / 60 + 1, 10000);
  EXPECT_EQ(prom.calls[1].start, prom.calls[0].end + 60);
  EXPECT_EQ(prom.calls[1].end, kEnd);
  EXPECT_EQ(s->minutes.size(), 14400u);
}

TEST(PlanPrometheus, RunPrintsThePlan) {
  FakeProm prom;
  prom.spikeAt = kEnd - 600;
  auto c = parsePlanConfig({"--prometheus-url", "http://prometheus:9090", "--deployment", "team-a/llama-8b",
                            "--since", "1h", "--units-per-minute", "1000", "--max-units", "70", "--step", "1",
                            "--output", "yaml", "--target", "no-429"});
  ASSERT_TRUE(c) << c.error().text;
  std::ostringstream out, err;
  ASSERT_EQ(run(*c, out, err, &prom, kNow), 0) << err.str();
  // Peak 60,000 weighted tokens a minute -> 60 units.
  EXPECT_NE(out.str().find("  units: 60\n"), std::string::npos) << out.str();
  auto d = parsePlanConfig({"--prometheus-url", "http://p", "--deployment", "a/b", "--units-per-minute", "1", "--since", "7d"});
  ASSERT_TRUE(d);
  EXPECT_EQ(d->since, 24h * 7);
  EXPECT_FALSE(parsePlanConfig({"--prometheus-url", "http://p", "--units-per-minute", "1"}));  // no --deployment
  EXPECT_FALSE(parsePlanConfig({"--prometheus-url", "http://p", "--series", "x.csv", "--deployment", "a/b",
                                "--units-per-minute", "1"}));  // both sources
  EXPECT_FALSE(parsePlanConfig({"--prometheus-url", "http://p", "--deployment", "a/b", "--units-per-minute", "1",
                                "--since", "0d"}));
}

}  // namespace
}  // namespace waterline::plan
