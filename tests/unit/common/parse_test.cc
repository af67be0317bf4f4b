// Strict integer parsing of label values (common/parse.h).
#include "waterline/common/parse.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <optional>

namespace waterline {
namespace {

TEST(ParseIntegerInRange, AcceptsOnlyAWholeDecimalIntegerInRange) {
  EXPECT_EQ(parseIntegerInRange<int32_t>("8", 0, 64), 8);
  EXPECT_EQ(parseIntegerInRange<int32_t>("0", 0, 64), 0);
  EXPECT_EQ(parseIntegerInRange<int32_t>("64", 0, 64), 64);
  EXPECT_EQ(parseIntegerInRange<int64_t>("-3", -5, 5), -3);
  // a suffix, a sign, spaces, nothing, another base
  for (const char* bad : {"8abc", "8 ", " 8", "+8", "", "0x8", "8.0", "1e1", "--1"})
    EXPECT_EQ(parseIntegerInRange<int32_t>(bad, 0, 64), std::nullopt) << bad;
  // out of range, never wrapped or truncated: 4294967304 = 2^32 + 8
  EXPECT_EQ(parseIntegerInRange<int32_t>("4294967304", 0, 64), std::nullopt);
  EXPECT_EQ(parseIntegerInRange<int64_t>("4294967304", 0, 64), std::nullopt);
  EXPECT_EQ(parseIntegerInRange<int64_t>("99999999999999999999999", 0, INT64_MAX), std::nullopt);
  EXPECT_EQ(parseIntegerInRange<int32_t>("65", 0, 64), std::nullopt);
  EXPECT_EQ(parseIntegerInRange<int32_t>("-4", 0, 64), std::nullopt);
}

}  // namespace
}  // namespace waterline
