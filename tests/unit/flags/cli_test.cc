// operator/cli: the duration and size syntax both binaries share, and how parse() reports.
#include "waterline/cli/flags.h"

#include <CLI/CLI.hpp>
#include <gtest/gtest.h>

namespace waterline::cli {
namespace {

using namespace std::chrono_literals;

TEST(Durations, NumberWithUnit) {
  EXPECT_EQ(*parseDuration("15s"), 15s);
  EXPECT_EQ(*parseDuration("500ms"), 500ms);
  EXPECT_EQ(*parseDuration("2m"), 2min);
  EXPECT_EQ(*parseDuration("1h"), 1h);
  EXPECT_EQ(*parseDuration("1.5s"), 1500ms);
  EXPECT_EQ(*parseDuration("50us"), 50us);
  EXPECT_EQ(*parseDuration("50µs"), 50us);
  EXPECT_EQ(*parseDuration("7ns"), 7ns);
  EXPECT_EQ(*parseDuration("0"), Duration::zero());
  EXPECT_EQ(*parseDuration("0s"), Duration::zero());
}

TEST(Durations, BareNumbersAndJunkAreErrors) {
  auto bare = parseDuration("15");
  ASSERT_FALSE(bare);
  EXPECT_NE(bare.error().find("bare number \"15\""), std::string::npos) << bare.error();
  EXPECT_NE(bare.error().find("15s"), std::string::npos) << bare.error();  // says what to write
  for (const char* bad : {"", "s", "-1s", "1d", "1.s", ".5s", "1..2s", "1 s", "15S", "1e3s", "soon", "9999999999h"})
    EXPECT_FALSE(parseDuration(bad)) << bad;
}

TEST(Durations, FormatRoundTrips) {
  for (Duration d : {Duration(15s), Duration(500ms), Duration(2min), Duration(1h), Duration(50us), Duration(7ns),
                     Duration(1500ms), Duration(90s)}) {
    auto back = parseDuration(formatDuration(d));
    ASSERT_TRUE(back) << formatDuration(d);
    EXPECT_EQ(*back, d) << formatDuration(d);
  }
  EXPECT_EQ(formatDuration(15s), "15s");
  EXPECT_EQ(formatDuration(120s), "2m");
  EXPECT_EQ(formatDuration(Duration::zero()), "0");
}

TEST(Sizes, UnitsAndErrors) {
  EXPECT_EQ(*parseBytes("2M"), 2000000u);
  EXPECT_EQ(*parseBytes("3Gi"), 3ull << 30);
  EXPECT_EQ(*parseBytes("4096"), 4096u);
  EXPECT_EQ(formatBytes(4u << 20), "4Mi");
  EXPECT_EQ(formatBytes(1000), "1000");
  for (const char* bad : {"", "Mi", "-1", "4MB", "1.5Mi", "99999999999Gi"}) EXPECT_FALSE(parseBytes(bad)) << bad;
}

// parse(): errors name the flag; repeated flags take the last value; -name=value works.
TEST(Parse, ErrorsNameTheFlag) {
  Duration d = 10s;
  bool b = false;
  std::size_t n = 1;
  auto run = [&](std::vector<std::string> args) {
    CLI::App app("test", "test");
    addDuration(app, "period", d, "a period", {.min = 1s, .max = 1h});
    addBool(app, "on", b, "a switch");
    addBytes(app, "size", n, "a size");
    return parse(app, std::move(args));
  };
  auto expectError = [&](std::vector<std::string> args, const std::string& want) {
    auto e = run(args);
    ASSERT_TRUE(e) << "accepted " << args.front();
    EXPECT_EQ(e->code, 2);
    EXPECT_NE(e->text.find(want), std::string::npos) << e->text;
  };
  expectError({"--period=15"}, "--period: want a duration with a unit");
  expectError({"--period=0"}, "--period: want a duration in [1s, 1h]");
  expectError({"--period=2h"}, "--period: want a duration in [1s, 1h]");
  expectError({"--on=maybe"}, "--on");
  expectError({"--on=yes"}, "--on");
  expectError({"--size=4MB"}, "--size");
  expectError({"--nope=1"}, "unknown flag --nope");
  expectError({"--period"}, "--period");
  expectError({"stray"}, "unexpected argument \"stray\"");

  EXPECT_FALSE(run({"--period=2s", "--period", "3s", "--on", "--size=2Ki"}));
  EXPECT_EQ(d, 3s);
  EXPECT_TRUE(b);
  EXPECT_EQ(n, 2048u);
  EXPECT_FALSE(run({"--on=false"}));
  EXPECT_FALSE(b);
  EXPECT_FALSE(run({"-on=true"}));  // klog-style single dash
  EXPECT_TRUE(b);
  auto help = run({"--help"});
  ASSERT_TRUE(help);
  EXPECT_EQ(help->code, 0);
  EXPECT_NE(help->text.find("--period DURATION"), std::string::npos) << help->text;
}

}  // namespace
}  // namespace waterline::cli
