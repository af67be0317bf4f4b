#include "waterline/planners/token_series.h"

#include <gtest/gtest.h>

#include <cmath>

namespace waterline::planners {
namespace {

TEST(TokenSeries, CsvSortsBucketsAndFillsGaps) {
  // 1764583200 = 2025-12-01T10:00:00Z.
  const char* csv =
      "timestamp,input_tokens,output_tokens\n"
      "# a comment\n"
      "2025-12-01T10:03:10Z,30,3\n"
      "1764583200,10,1\n"
      "\n"
      "2025-12-01T10:00:59.9Z,5,0.5\n"
      "2025-12-01T11:01:00+01:00,7,0\n";  // = 10:01:00Z
  auto s = parseTokenSeries(csv, SeriesFormat::Csv);
  ASSERT_TRUE(s) << s.error();
  EXPECT_EQ(s->startUnixMinute, 1764583200 / 60);
  ASSERT_EQ(s->minutes.size(), 4u);
  EXPECT_DOUBLE_EQ(s->minutes[0].inputTokens, 15);
  EXPECT_DOUBLE_EQ(s->minutes[0].outputTokens, 1.5);
  EXPECT_DOUBLE_EQ(s->minutes[1].inputTokens, 7);
  EXPECT_DOUBLE_EQ(s->minutes[2].inputTokens, 0);  // gap
  EXPECT_DOUBLE_EQ(s->minutes[3].inputTokens, 30);
  EXPECT_DOUBLE_EQ(s->minutes[3].outputTokens, 3);
}

TEST(TokenSeries, CsvErrorsNameTheLine) {
  struct Case {
    const char* text;
    const char* want;
  };
  for (auto c : std::vector<Case>{
           {"timestamp,input_tokens,output_tokens\n1764583200,1,2\n1764583260,x,2\n", "line 3: input_tokens 'x' is not a number"},
           {"1764583200,1\n", "line 1: want 3 fields"},
           {"1764583200,1,2\n\n2025-13-01T00:00:00Z,1,2\n", "line 3: timestamp '2025-13-01T00:00:00Z'"},
           {"1764583200,1,-2\n", "line 1: output_tokens -2 is negative"},
           {"1764583200,1,2,3\n", "line 1: want 3 fields"},
           {"1764583200,1,nan\n", "line 1: output_tokens 'nan' is not a number"},
           {"0,1,1\n1764583200,1,1\n", "spans more than 400 days"},
           {"1764583200,1,2\ntimestamp,input_tokens,output_tokens\n", "line 2: timestamp 'timestamp'"},
       }) {
    auto s = parseTokenSeries(c.text, SeriesFormat::Csv);
    ASSERT_FALSE(s) << c.text;
    EXPECT_NE(s.error().find(c.want), std::string::npos) << s.error() << " / want " << c.want;
  }
}

TEST(TokenSeries, Jsonl) {
  const char* jl =
      "{\"timestamp\": \"2025-12-01T10:01:00Z\", \"input_tokens\": 4, \"output_tokens\": 2}\n"
      "{\"timestamp\": 1764583200, \"input_tokens\": 1, \"output_tokens\": 1}\n";
  auto s = parseTokenSeries(jl, SeriesFormat::Jsonl);
  ASSERT_TRUE(s) << s.error();
  ASSERT_EQ(s->minutes.size(), 2u);
  EXPECT_DOUBLE_EQ(s->minutes[1].inputTokens, 4);
  auto bad = parseTokenSeries("{\"timestamp\": 1764583200, \"input_tokens\": 1, \"output_tokens\": 1}\n{\"timestamp\": 1}\n",
                              SeriesFormat::Jsonl);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error(), "line 2: input_tokens missing or not a number");
  auto notJson = parseTokenSeries("{oops\n", SeriesFormat::Jsonl);
  ASSERT_FALSE(notJson);
  EXPECT_EQ(notJson.error(), "line 1: not a JSON object");
}

TEST(TokenSeries, MooncakeTrace) {
  const char* t =
      "{\"timestamp\": 0, \"input_length\": 100, \"output_length\": 10, \"hash_ids\": [0]}\n"
      "{\"timestamp\": 59999, \"input_length\": 50, \"output_length\": 5, \"hash_ids\": [1]}\n"
      "{\"timestamp\": 180000, \"input_length\": 7, \"output_length\": 1, \"hash_ids\": [2]}\n";
  auto s = parseMooncakeTrace(t, 1764583200);
  ASSERT_TRUE(s) << s.error();
  EXPECT_EQ(s->startUnixMinute, 1764583200 / 60);
  ASSERT_EQ(s->minutes.size(), 4u);
  EXPECT_DOUBLE_EQ(s->minutes[0].inputTokens, 150);
  EXPECT_DOUBLE_EQ(s->minutes[0].outputTokens, 15);
  EXPECT_DOUBLE_EQ(s->minutes[3].inputTokens, 7);
  auto bad = parseMooncakeTrace("{\"timestamp\": 0}\n", 0);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().find("line 1"), std::string::npos);
}

TEST(TokenSeries, FromPrometheusIncreases) {
  // increase(...[1m]) at 10:01 counts 10:00-10:01; a step with no output value and a NaN
  // (missing scrape) count as zero.
  const double t0 = 1764583200;  // 10:00
  auto s = seriesFromIncreases({{t0 + 60, 100.5}, {t0 + 120, 200}, {t0 + 240, NAN}, {t0 + 300, 50}},
                               {{t0 + 60, 10}, {t0 + 180, -3}, {t0 + 300, 5}});
  EXPECT_EQ(s.startUnixMinute, static_cast<int64_t>(t0) / 60);
  ASSERT_EQ(s.minutes.size(), 5u);
  EXPECT_DOUBLE_EQ(s.minutes[0].inputTokens, 100.5);
  EXPECT_DOUBLE_EQ(s.minutes[0].outputTokens, 10);
  EXPECT_DOUBLE_EQ(s.minutes[1].inputTokens, 200);
  EXPECT_DOUBLE_EQ(s.minutes[2].outputTokens, 0);
  EXPECT_DOUBLE_EQ(s.minutes[3].inputTokens, 0);
  EXPECT_DOUBLE_EQ(s.minutes[4].inputTokens, 50);
  EXPECT_DOUBLE_EQ(s.minutes[4].outputTokens, 5);
}

}  // namespace
}  // namespace waterline::planners
