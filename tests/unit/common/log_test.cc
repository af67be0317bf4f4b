#include "waterline/common/log.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <mutex>
#include <regex>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

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
    setFormat(Format::Text);
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

// ---- --log-format=json: every line is parsed back with a JSON parser.

using nlohmann::json;

json parsed(const std::string& line) {
  EXPECT_EQ(line.find('\n'), std::string::npos) << line;  // one object per line
  json j = json::parse(line, nullptr, /*allow_exceptions=*/false);
  EXPECT_FALSE(j.is_discarded()) << "not JSON: " << line;
  return j;
}

TEST(LogFormat, ParseFormat) {
  EXPECT_EQ(parseFormat("text"), Format::Text);
  EXPECT_EQ(parseFormat("JSON"), Format::Json);
  EXPECT_EQ(parseFormat("logfmt"), std::nullopt);
  EXPECT_EQ(parseFormat(""), std::nullopt);
  EXPECT_STREQ(toString(Format::Json), "json");
  EXPECT_STREQ(toString(Format::Text), "text");
}

TEST(LogFormat, JsonRecordHasTheLogfmtKeysInOrder) {
  const Fields values{{"controller", "cp"}};
  const std::string line =
      formatRecordJson(fixedTime(), Level::Info, "workqueue", "item done", &values,
                       {{"key", "ns/a"}, {"n", 3}, {"neg", -7}, {"ok", true}, {"took", milliseconds(1500)},
                        {"ratio", 0.25}, {"big", std::uint64_t{18446744073709551615ULL}}});
  const json j = parsed(line);
  ASSERT_TRUE(j.is_object());
  std::vector<std::string> keys;
  for (auto it = j.begin(); it != j.end(); ++it) keys.push_back(it.key());
  // nlohmann::json sorts keys; the order on the line is checked on the text.
  EXPECT_THAT(keys, ::testing::UnorderedElementsAre("ts", "level", "logger", "msg", "controller", "key", "n", "neg",
                                                    "ok", "took", "ratio", "big"));
  EXPECT_EQ(line.rfind(R"({"ts":"2024-05-01T12:00:00.123456Z","level":"info","logger":"workqueue","msg":"item done","controller":"cp","key":"ns/a",)", 0), 0u)
      << line;
  EXPECT_EQ(j["ts"], "2024-05-01T12:00:00.123456Z");
  EXPECT_EQ(j["level"], "info");
  EXPECT_EQ(j["logger"], "workqueue");
  EXPECT_EQ(j["msg"], "item done");
  EXPECT_EQ(j["controller"], "cp");
  // Numbers are numbers, booleans booleans; durations read as in logfmt.
  ASSERT_TRUE(j["n"].is_number_integer());
  EXPECT_EQ(j["n"].get<int>(), 3);
  ASSERT_TRUE(j["neg"].is_number_integer());
  EXPECT_EQ(j["neg"].get<int>(), -7);
  ASSERT_TRUE(j["big"].is_number_unsigned());
  EXPECT_EQ(j["big"].get<std::uint64_t>(), 18446744073709551615ULL);
  ASSERT_TRUE(j["ratio"].is_number_float());
  EXPECT_DOUBLE_EQ(j["ratio"].get<double>(), 0.25);
  ASSERT_TRUE(j["ok"].is_boolean());
  EXPECT_TRUE(j["ok"].get<bool>());
  EXPECT_EQ(j["took"], "1.5s");

  // No logger name: no "logger" key, as logfmt leaves it out.
  const json root = parsed(formatRecordJson(fixedTime(), Level::Error, "", "boom", nullptr, {}));
  EXPECT_EQ(root, json({{"ts", "2024-05-01T12:00:00.123456Z"}, {"level", "error"}, {"msg", "boom"}}));
}

TEST(LogFormat, JsonEscapesControlCharactersQuotesAndBadUtf8) {
  const std::string ctl = std::string("a\"b\\c\nd\re\tf") + '\x01' + '\x1f' + '\x7f' + std::string(1, '\0') + "z";
  const std::string utf8 = "caf\xc3\xa9 \xe2\x9c\x93";              // café ✓: kept
  const std::string bad = std::string("x\xff\xfe") + "\xc3" + "y";  // not UTF-8
  const std::string line = formatRecordJson(fixedTime(), Level::Warn, "r\"x", ctl, nullptr,
                                            {{"ctl", ctl}, {"utf8", utf8}, {"bad", bad}, {"k\ney", "v"}, {"", "empty"}});
  // Nothing raw on the line: no control byte, no newline.
  for (unsigned char c : line) EXPECT_GE(c, 0x20) << line;
  const json j = parsed(line);
  EXPECT_EQ(j["logger"], "r\"x");
  EXPECT_EQ(j["msg"], ctl);  // round-trips exactly, NUL included
  EXPECT_EQ(j["ctl"], ctl);
  EXPECT_EQ(j["utf8"], utf8);
  // Invalid bytes become U+FFFD; the valid ones around them stay.
  const std::string fffd = "\xef\xbf\xbd";
  EXPECT_EQ(j["bad"], "x" + fffd + fffd + fffd + "y");
  EXPECT_EQ(j["k\ney"], "v");
  EXPECT_EQ(j["_"], "empty");
  // A bad key is replaced the same way.
  const json k = parsed(formatRecordJson(fixedTime(), Level::Info, "", "m", nullptr, {{"\xff", 1}}));
  EXPECT_EQ(k[fffd], 1);
}

TEST(LogFormat, JsonNonFiniteNumbersAreStrings) {
  const json j = parsed(formatRecordJson(fixedTime(), Level::Info, "", "m", nullptr,
                                         {{"nan", std::nan("")}, {"inf", HUGE_VAL}, {"minf", -HUGE_VAL}, {"x", 1.5}}));
  EXPECT_EQ(j["nan"], "NaN");
  EXPECT_EQ(j["inf"], "+Inf");
  EXPECT_EQ(j["minf"], "-Inf");
  EXPECT_EQ(j["x"], 1.5);
}

TEST(LogFormat, JsonKeysNeverCollide) {
  const Fields values{{"msg", "from values"}, {"n", 1}};
  const std::string line = formatRecordJson(fixedTime(), Level::Info, "lg", "the message", &values,
                                            {{"level", "mine"}, {"ts", 5}, {"n", 2}, {"n", 3}, {"logger", "x"}});
  const json j = parsed(line);
  EXPECT_EQ(j["msg"], "the message");
  EXPECT_EQ(j["level"], "info");
  EXPECT_EQ(j["logger"], "lg");
  EXPECT_EQ(j["_msg"], "from values");
  EXPECT_EQ(j["_level"], "mine");
  EXPECT_EQ(j["_ts"], 5);
  EXPECT_EQ(j["_logger"], "x");
  EXPECT_EQ(j["n"], 1);
  EXPECT_EQ(j["_n"], 2);
  EXPECT_EQ(j["__n"], 3);
  EXPECT_EQ(j.size(), 11u);  // nothing lost: 4 own keys + 2 values + 5 fields
}

TEST_F(LogTest, JsonFormatAtRuntime) {
  auto l = logger("runtime").withValues({{"controller", "cp"}});
  l.info("as text", {{"n", 1}});
  setFormat(Format::Json);
  EXPECT_EQ(format(), Format::Json);
  l.info("as json", {{"n", 2}, {"why", "a \"quoted\"\nline"}});
  l.debug("not written");
  setFormat(Format::Text);
  l.info("text again");
  auto out = lines();
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[0].rfind("ts=", 0), 0u) << out[0];
  const json j = parsed(out[1]);
  EXPECT_EQ(j["msg"], "as json");
  EXPECT_EQ(j["logger"], "runtime");
  EXPECT_EQ(j["controller"], "cp");
  EXPECT_EQ(j["n"], 2);
  EXPECT_EQ(j["why"], "a \"quoted\"\nline");
  EXPECT_EQ(j["ts"], "2024-05-01T12:00:00.123456Z");  // the injected clock, as in text
  EXPECT_EQ(out[2].rfind("ts=", 0), 0u) << out[2];
}

TEST_F(LogTest, ConcurrentJsonRecordsStayWhole) {
  setFormat(Format::Json);
  constexpr int kThreads = 4, kPerThread = 200;
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
  for (const auto& line : out) {
    const json j = parsed(line);
    ASSERT_TRUE(j.contains("thread") && j["thread"].is_number_integer()) << line;
    ASSERT_TRUE(j.contains("i") && j["i"].is_number_integer()) << line;
  }
}

}  // namespace
}  // namespace waterline::log
