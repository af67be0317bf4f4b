// Runs the waterline-plan binary on tests/unit/planner/testdata/example-series.csv (a
// made-up 30-minute series: peak 31,800 weighted tokens/min at 09:12-09:14, two empty
// minutes) and checks what it prints.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <string>
#include <sys/wait.h>

namespace {

struct Result {
  int code = -1;
  std::string out;  // stdout and stderr
};

Result runPlan(const std::string& args) {
  const std::string cmd = std::string(WL_PLAN_BIN) + " " + args + " 2>&1";
  Result r;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return r;
  std::array<char, 4096> buf{};
  for (size_t n; (n = fread(buf.data(), 1, buf.size(), p)) > 0;) r.out.append(buf.data(), n);
  int st = pclose(p);
  r.code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

const std::string kData = std::string(WL_SOURCE_DIR) + "/tests/unit/planner/testdata/";
const std::string kBase = "--series " + kData + "example-series.csv --prices " + kData +
                          "example-prices.json --units-per-minute 1000 --burst-percent 10 ";

TEST(WaterlinePlanCli, TableAndRecommendations) {
  auto r = runPlan(kBase + "--spillover --min-units 0 --max-units 40 --step 4");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("series: 30 minutes, peak 31800 weighted tokens/min; all pay-as-you-go: 8.9060/h"),
            std::string::npos) << r.out;
  EXPECT_NE(r.out.find("  units  served%  spilled%  throttled%  covered%  utilisation%   reserved/h       payg/h      total/h"),
            std::string::npos) << r.out;
  // 0 units: everything spills; two empty minutes of 30 are covered.
  EXPECT_NE(r.out.find("      0     0.00    100.00        0.00      6.67          0.00       0.0000       8.9060       8.9060"),
            std::string::npos) << r.out;
  // 32 units × 1,100 = 35,200 >= the peak: nothing over the line.
  EXPECT_NE(r.out.find("     32   100.00      0.00        0.00    100.00"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("coverage=95: 28 units"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("min-cost: 12 units"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("no-429: 12 units (with spillover"), std::string::npos) << r.out;
}

TEST(WaterlinePlanCli, WithoutSpilloverOverflowIsThrottled) {
  auto r = runPlan(kBase + "--min-units 0 --max-units 40 --step 4");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("      0     0.00      0.00      100.00      6.67          0.00       0.0000       0.0000       0.0000"),
            std::string::npos) << r.out;
  // ceil(31,800 / 1,100) = 29, but the step of 4 evaluates 28 and 32.
  EXPECT_NE(r.out.find("no-429: 32 units"), std::string::npos) << r.out;
}

TEST(WaterlinePlanCli, YamlForATarget) {
  auto r = runPlan(kBase + "--max-units 40 --output yaml --target no-429 --deployment team-a/llama-8b --scope Regional:eastus");
  ASSERT_EQ(r.code, 0) << r.out;
  const std::string want =
      "apiVersion: waterline.dev/v1alpha1\n"
      "kind: PTUReservation\n"
      "metadata:\n"
      "  name: llama-8b-ptu\n"
      "  namespace: team-a\n"
      "spec:\n"
      "  deploymentRef:\n"
      "    name: llama-8b\n"
      "  units: 29\n"
      "  tokensPerMinutePerUnit: 1000\n"
      "  burstPercent: 10\n"
      "  scope:\n"
      "    type: Regional\n"
      "    region: eastus\n";
  EXPECT_NE(r.out.find(want), std::string::npos) << r.out;
  auto c = runPlan(kBase + "--max-units 40 --output yaml --target coverage=95 --deployment team-a/llama-8b");
  ASSERT_EQ(c.code, 0) << c.out;
  // Step 1: 27 × 1,100 = 29,700 leaves only the 31,800 minute over: 29 of 30 covered.
  EXPECT_NE(c.out.find("  units: 27\n"), std::string::npos) << c.out;
  EXPECT_NE(c.out.find("    type: Global\n"), std::string::npos) << c.out;
}

TEST(WaterlinePlanCli, Errors) {
  EXPECT_EQ(runPlan("--units-per-minute 1000").code, 2);
  auto noTarget = runPlan(kBase + "--output yaml --target cheapest --deployment a/b");
  EXPECT_EQ(noTarget.code, 2);
  EXPECT_NE(noTarget.out.find("unknown target 'cheapest'"), std::string::npos) << noTarget.out;
  EXPECT_EQ(runPlan(kBase + "--output yaml").code, 2);  // no --deployment
  const std::string bad = testing::TempDir() + "bad-series.csv";
  std::ofstream(bad) << "timestamp,input_tokens,output_tokens\n1796115600,10,10\n1796115660,ten,10\n";
  auto b = runPlan("--series " + bad + " --units-per-minute 1000");
  EXPECT_EQ(b.code, 1);
  EXPECT_NE(b.out.find("line 3: input_tokens 'ten' is not a number"), std::string::npos) << b.out;
}

}  // namespace
