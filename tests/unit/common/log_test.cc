#include "waterline/common/log.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <mutex>
#include <regex>
#include <thread>
#include <vector>

namespace waterline::log {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

// 2024-05-01T12:00:00.123456Z
SystemTime fixedTime() {
  return SystemTime{std::chrono::seconds(1714564800)} + std::chrono::microseconds(123456);
}

class LogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    sim_ = std::make_shared<SimulatedTimeSource>(fixedTime());
    setTimeSource(sim_);
    setSink([this](std::string_view line) {
      std::lock_guard g(mu_);
      lines_.emplace_back(line);
    });
    setLevel(Level::Info);
    setVerbosity(0);
  }
  void TearDown() override {
    setSink({});
    setTimeSource(nullptr);
    setLevel(Level::Info);
    setVerbosity(0);
  }
  std::vector<std::string> lines() {
    std::lock_guard g(mu_);
    return lines_;
  }

  std::shared_ptr<SimulatedTimeSource> sim_;
  std::mutex mu_;
  std::vector<std::string> lines_;
};

TEST(LogFormat, RecordLayout) {
  EXPECT_EQ(formatRecord(fixedTime(), Level::Info, "workqueue", "item done", nullptr,
                         {{"key", "ns/a"}, {"n", 3}, {"ok", true}, {"took", milliseconds(1500)},
                          {"ratio", 0.25}, {"big", std::uint64_t{18446744073709551615ULL}}}),
            "ts=2024-05-01T12:00:00.123456Z level=info logger=workqueue msg=\"item done\" "
            "key=ns/a n=3 ok=true took=1.5s ratio=0.25 big=18446744073709551615");
  EXPECT_EQ(formatRecord(fixedTime(), Level::Error, "", "boom", nullptr, {}),
            "ts=2024-05-01T12:00:00.123456Z level=error msg=boom");
}

TEST(LogFormat, QuotingAndEscapes) {
  EXPECT_EQ(formatRecord(fixedTime(), Level::Warn, "", "x", nullptr,
                         {{"empty", ""},
                          {"q", "say \"hi\""},
                          {"nl", "a\nb\tc\r"},
                          {"bs", "C:\\dir"},
                          {"eq", "a=b"},
                          {"ctl", std::string("\x01", 1)},
                          {"utf8", "gpu\xc2\xb5"},
                          {"bad key", 1}}),
            "ts=2024-05-01T12:00:00.123456Z level=warn msg=x empty=\"\" q=\"say \\\"hi\\\"\" "
            "nl=\"a\\nb\\tc\\r\" bs=\"C:\\\\dir\" eq=\"a=b\" ctl=\"\\x01\" utf8=gpu\xc2\xb5 bad_key=1");
}

TEST(LogFormat, Durations) {
  auto fmt = [](Duration d) { return Value(d).str(); };
  EXPECT_EQ(fmt(Duration::zero()), "0s");
  EXPECT_EQ(fmt(std::chrono::nanoseconds(999)), "999ns");
  EXPECT_EQ(fmt(std::chrono::nanoseconds(1500)), "1.5us");
  EXPECT_EQ(fmt(milliseconds(250)), "250ms");
  EXPECT_EQ(fmt(milliseconds(5)), "5ms");
  EXPECT_EQ(fmt(seconds(90)), "1m30s");
  EXPECT_EQ(fmt(std::chrono::hours(1) + std::chrono::minutes(2) + milliseconds(3500)), "1h2m3.5s");
  EXPECT_EQ(fmt(-milliseconds(1500)), "-1.5s");
  EXPECT_EQ(Value(std::numeric_limits<double>::quiet_NaN()).str(), "NaN");
  EXPECT_EQ(Value(-std::numeric_limits<double>::infinity()).str(), "-Inf");
}

TEST(LogLevel, Parse) {
  EXPECT_EQ(parseLevel("DEBUG"), Level::Debug);
  EXPECT_EQ(parseLevel("warning"), Level::Warn);
  EXPECT_EQ(parseLevel("warn"), Level::Warn);
  EXPECT_EQ(parseLevel("Error"), Level::Error);
  EXPECT_EQ(parseLevel("info"), Level::Info);
  EXPECT_EQ(parseLevel("verbose"), std::nullopt);
}

TEST_F(LogTest, LevelThresholdAtRuntime) {
  auto l = logger("t");
  l.debug("d1");
  l.info("i1");
  l.warn("w1");
  l.error("e1");
  setLevel(Level::Warn);
  l.info("i2");
  l.warn("w2");
  setLevel(Level::Debug);
  l.debug("d3");
  setLevel(Level::Error);
  l.warn("w4");
  l.error("e4");
  auto out = lines();
  ASSERT_EQ(out.size(), 6u);
  EXPECT_THAT(out[0], ::testing::HasSubstr("level=info logger=t msg=i1"));
  EXPECT_THAT(out[1], ::testing::HasSubstr("level=warn logger=t msg=w1"));
  EXPECT_THAT(out[2], ::testing::HasSubstr("level=error logger=t msg=e1"));
  EXPECT_THAT(out[3], ::testing::HasSubstr("msg=w2"));
  EXPECT_THAT(out[4], ::testing::HasSubstr("level=debug logger=t msg=d3"));
  EXPECT_THAT(out[5], ::testing::HasSubstr("msg=e4"));
}

TEST_F(LogTest, Verbosity) {
  auto l = logger("t");
  l.v(0, "v0");
  l.v(1, "v1");
  setVerbosity(2);
  l.v(2, "v2");
  l.v(3, "v3");
  setLevel(Level::Warn);  // V records are info records
  l.v(1, "v1-warn");
  auto out = lines();
  ASSERT_EQ(out.size(), 2u);
  EXPECT_THAT(out[0], ::testing::HasSubstr("level=info logger=t msg=v0"));
  EXPECT_THAT(out[1], ::testing::HasSubstr("msg=v2"));
  EXPECT_TRUE(enabled(Level::Error));
  EXPECT_FALSE(enabled(Level::Info));
}

TEST_F(LogTest, MacrosSkipFieldEvaluationWhenDisabled) {
  auto l = logger("t");
  int evaluated = 0;
  auto expensive = [&] {
    ++evaluated;
    return std::string("x");
  };
  WL_LOG_DEBUG(l, "dbg", {{"v", expensive()}});
  WL_LOG_V(l, 3, "v3", {{"v", expensive()}});
  EXPECT_EQ(evaluated, 0);
  WL_LOG_INFO(l, "inf", {{"v", expensive()}});
  WL_LOG_WARN(l, "no fields");
  EXPECT_EQ(evaluated, 1);
  auto out = lines();
  ASSERT_EQ(out.size(), 2u);
  EXPECT_THAT(out[0], ::testing::EndsWith("msg=inf v=x"));
  EXPECT_THAT(out[1], ::testing::EndsWith("level=warn logger=t msg=\"no fields\""));
}

TEST_F(LogTest, NamesValuesAndTimestampFromClock) {
  auto l = logger("runtime").withName("capacitypool").withValues({{"controller", "cp"}});
  sim_->advance(seconds(1));
  l.info("reconciled", {{"key", "ns/a"}});
  auto out = lines();
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0],
            "ts=2024-05-01T12:00:01.123456Z level=info logger=runtime/capacitypool msg=reconciled "
            "controller=cp key=ns/a");
}

TEST_F(LogTest, ConcurrentRecordsStayWhole) {
  constexpr int kThreads = 8, kPerThread = 300;
  std::vector<std::thread> ts;
  for (int t = 0; t < kThreads; ++t) {
    ts.emplace_back([t] {
      auto l = logger("w");
      for (int i = 0; i < kPerThread; ++i) l.info("tick", {{"thread", t}, {"i", i}});
    });
  }
  for (auto& t : ts) t.join();
  auto out = lines();
  ASSERT_EQ(out.size(), size_t(kThreads * kPerThread));
  const std::regex re(R"(ts=\S+ level=info logger=w msg=tick thread=\d+ i=\d+)");
  for (const auto& line : out) ASSERT_TRUE(std::regex_match(line, re)) << line;
}

}  // namespace
}  // namespace waterline::log
