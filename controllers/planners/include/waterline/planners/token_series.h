#pragma once
// Per-minute token series for the waterline planner (pure: text in, series out).
//
// CSV (a header line is allowed: a first line whose first field is not a timestamp and
// that starts with "timestamp" is skipped; '#' lines and blank lines are skipped):
//     timestamp,input_tokens,output_tokens
//     2026-12-01T10:00:00Z,12000,3400
//     1764583260,9000,2100
// JSONL, one object per line:
//     {"timestamp": "2026-12-01T10:00:00Z", "input_tokens": 12000, "output_tokens": 3400}
// timestamp: RFC 3339 or unix seconds (integer or decimal). Tokens: non-negative numbers.
// Points are bucketed into the minute that contains them (several points in one minute
// add up), the series runs from the first minute to the last, minutes without a point
// are zero, and input in any order is sorted. A bad line is rejected with its number
// (1-based): "line 7: ...".
#include <cstdint>
#include <expected>
#include <string>
#include <string_view>
#include <vector>

#include "waterline/planners/waterline.h"

namespace waterline::planners {

struct TokenSeries {
  int64_t startUnixMinute = 0;   // unix seconds / 60 of the first minute
  std::vector<TokenMinute> minutes;
};

struct TokenPoint {
  int64_t unixSeconds = 0;
  double inputTokens = 0;
  double outputTokens = 0;
};

// Points (any order) into minutes; empty input gives an empty series.
TokenSeries bucketPoints(std::vector<TokenPoint> points);

enum class SeriesFormat { Csv, Jsonl };
std::expected<TokenSeries, std::string> parseTokenSeries(std::string_view text, SeriesFormat format);

// A series from Prometheus range queries of increase(counter[1m]) every 60 s (input and
// output token counters, one (unix seconds, value) pair a step): the value at t counts
// the minute (t − 60 s, t], so it lands in the minute that starts at t − 60 s. NaN,
// infinite and negative values (a counter reset that increase() did not absorb, a
// missing scrape) count as 0.
struct CounterStep {
  double unixSeconds = 0;
  double value = 0;
};
TokenSeries seriesFromIncreases(const std::vector<CounterStep>& input, const std::vector<CounterStep>& output);

// The Mooncake trace (/work/shared/data/mooncake_conversation_trace.jsonl): one request
// per line, `timestamp` in ms from the start, `input_length`, `output_length`. Each
// request counts in the minute it arrives; `startUnixSeconds` anchors ms 0.
std::expected<TokenSeries, std::string> parseMooncakeTrace(std::string_view text, int64_t startUnixSeconds = 0);

}  // namespace waterline::planners
