#include <gtest/gtest.h>

#include "waterline/api/quantity.h"

namespace waterline::api {
namespace {

TEST(Quantity, ParseTable) {
  struct Case {
    const char* text;
    int64_t milli;
    int64_t value;
  };
  constexpr int64_t Ki = 1024, Mi = Ki * 1024, Gi = Mi * 1024, Ti = Gi * 1024;
  const std::vector<Case> cases = {
      {"0", 0, 0},
      {"1", 1000, 1},
      {"1.5", 1500, 2},
      {"+2", 2000, 2},
      {"500m", 500, 1},
      {"1500m", 1500, 2},
      {"0.1", 100, 1},
      {".5", 500, 1},
      {"1.", 1000, 1},
      {"20Gi", 20 * Gi * 1000, 20 * Gi},
      {"80Gi", 80 * Gi * 1000, 80 * Gi},
      {"1.5Gi", 1536 * Mi * 1000, 1536 * Mi},
      {"512Mi", 512 * Mi * 1000, 512 * Mi},
      {"1Ki", 1024 * 1000, 1024},
      {"2Ti", 2 * Ti * 1000, 2 * Ti},
      {"1k", 1'000'000, 1000},
      {"1.5k", 1'500'000, 1500},
      {"2M", 2'000'000'000, 2'000'000},
      {"1G", 1'000'000'000'000, 1'000'000'000},
      {"1e3", 1'000'000, 1000},
      {"1E3", 1'000'000, 1000},
      {"2.5e-3", 3, 1},  // 2.5 milli rounds up
      {"1n", 1, 1},
      {"1u", 1, 1},
      {"100u", 1, 1},
      {"1000u", 1, 1},
      {"1001u", 2, 1},
      {"-1", -1000, -1},
      {"-1.5", -1500, -1},
      {"-1n", 0, 0},
      {"007", 7000, 7},
      {"0.000", 0, 0},
      {"549755813888", 549755813888000, 549755813888},
  };
  for (const auto& c : cases) {
    auto q = Quantity::parse(c.text);
    ASSERT_TRUE(q) << c.text << ": " << q.error();
    EXPECT_EQ(q->milli, c.milli) << c.text;
    EXPECT_EQ(q->value(), c.value) << c.text;
    EXPECT_EQ(q->text, c.text);
  }
}

TEST(Quantity, Rejects) {
  for (const char* bad : {"", "-", "+", ".", "abc", "1x", "1Gb", "1gi", "1 Gi", "1..5", "1.5.", "Gi", "1e", "1e+",
                          "1ei", "10Ei", "1e30", "99999999999999999999", "1.2.3", "--1", "1KiB"})
    EXPECT_FALSE(Quantity::parse(bad)) << bad;
}

// Found by the quantity fuzz harness: fromMilli wrote 19-digit values (8.191Pi is
// 9222246136947933184m) that parse rejected as "too many significant digits".
TEST(Quantity, EveryMilliValueFormatsAndParsesBack) {
  for (int64_t milli : {INT64_MAX, -INT64_MAX, int64_t{9222246136947933184}, int64_t{1'000'000'000'000'000'001},
                        int64_t{-1'000'000'000'000'000'001}, int64_t{1500}, int64_t{0}}) {
    const Quantity q = Quantity::fromMilli(milli);
    auto back = Quantity::parse(q.text);
    ASSERT_TRUE(back) << q.text << ": " << back.error();
    EXPECT_EQ(back->milli, milli) << q.text;
  }
  EXPECT_EQ(Quantity::parse("8.191Pi").value().milli, 9222246136947933184);
  EXPECT_EQ(Quantity::parse("9223372036854775807m").value().milli, INT64_MAX);
  EXPECT_FALSE(Quantity::parse("9223372036854775808m"));  // one past the range
  EXPECT_FALSE(Quantity::parse("10000000000000000000m"));  // 20 significant digits
  EXPECT_FALSE(Quantity::parse("9999999999999999999E"));   // 19 digits, far out of range
  EXPECT_FALSE(Quantity::parse("9999999999999999999Ei"));
}

TEST(Quantity, Json) {
  EXPECT_EQ(Quantity::fromJson(nlohmann::json(64)).value().milli, 64000);
  EXPECT_EQ(Quantity::fromJson(nlohmann::json(0.25)).value().milli, 250);
  EXPECT_EQ(Quantity::fromJson(nlohmann::json("20Gi")).value().toJson(), nlohmann::json("20Gi"));
  EXPECT_FALSE(Quantity::fromJson(nlohmann::json(true)));
  EXPECT_EQ(Quantity::fromMilli(1500).text, "1500m");
  EXPECT_EQ(Quantity::fromMilli(3000).text, "3");
  EXPECT_EQ(Quantity::fromInt(7).milli, 7000);
  EXPECT_DOUBLE_EQ(Quantity::parse("1.25").value().asDouble(), 1.25);
}

TEST(IntOrString, ScaledValue) {
  EXPECT_EQ(IntOrString::fromInt(2).scaledValue(10, true).value(), 2);
  EXPECT_EQ(IntOrString::fromString("25%").scaledValue(10, false).value(), 2);
  EXPECT_EQ(IntOrString::fromString("25%").scaledValue(10, true).value(), 3);
  EXPECT_EQ(IntOrString::fromString("100%").scaledValue(7, false).value(), 7);
  EXPECT_EQ(IntOrString::fromString("0%").scaledValue(7, true).value(), 0);
  EXPECT_FALSE(IntOrString::fromString("25").scaledValue(10, true));
  EXPECT_FALSE(IntOrString::fromString("x%").scaledValue(10, true));
  EXPECT_FALSE(IntOrString::fromString("%").scaledValue(10, true));
  EXPECT_EQ(IntOrString::fromJson(nlohmann::json(3)).value(), IntOrString::fromInt(3));
  EXPECT_EQ(IntOrString::fromJson(nlohmann::json("5%")).value().toJson(), nlohmann::json("5%"));
  EXPECT_FALSE(IntOrString::fromJson(nlohmann::json(1.5)));
  EXPECT_FALSE(IntOrString::fromJson(nlohmann::json::array()));
}

TEST(DecimalMicros, ParseAndFormat) {
  EXPECT_EQ(parseDecimalMicros("0").value(), 0);
  EXPECT_EQ(parseDecimalMicros("12.5").value(), 12'500'000);
  EXPECT_EQ(parseDecimalMicros("0.000001").value(), 1);
  EXPECT_EQ(parseDecimalMicros("0.0000019").value(), 1);  // truncated past 6 digits
  EXPECT_EQ(parseDecimalMicros("1234567.25").value(), 1'234'567'250'000);
  for (const char* bad : {"", "-1", "1.", ".5", "1e3", "abc", "1.2.3", "99999999999999999999"})
    EXPECT_FALSE(parseDecimalMicros(bad)) << bad;
  EXPECT_EQ(formatDecimalMicros(0), "0");
  EXPECT_EQ(formatDecimalMicros(12'500'000), "12.5");
  EXPECT_EQ(formatDecimalMicros(1), "0.000001");
  EXPECT_EQ(formatDecimalMicros(3'000'000), "3");
  for (int64_t v : {int64_t{0}, int64_t{1}, int64_t{999'999}, int64_t{1'000'001}, int64_t{123'456'789'012}})
    EXPECT_EQ(parseDecimalMicros(formatDecimalMicros(v)).value(), v);
}

}  // namespace
}  // namespace waterline::api
