#include <gtest/gtest.h>

#include "waterline/api/selector.h"

namespace waterline::api {
namespace {

using nlohmann::json;

LabelSelector sel(const json& j) {
  auto s = LabelSelector::fromJson(j);
  EXPECT_TRUE(s) << s.error();
  return s.value_or(LabelSelector{});
}

TEST(Selector, MatchesTable) {
  const Labels h100{{"nvidia.com/gpu.product", "NVIDIA-H100-80GB-HBM3"},
                    {"topology.kubernetes.io/region", "eu-west"},
                    {"nvidia.com/gpu.count", "8"}};
  const Labels bare{};
  struct Case {
    const char* name;
    json selector;
    const Labels& labels;
    bool want;
  };
  const std::vector<Case> cases = {
      {"empty selects all", json::object(), h100, true},
      {"empty selects unlabelled", json::object(), bare, true},
      {"matchLabels hit", {{"matchLabels", {{"topology.kubernetes.io/region", "eu-west"}}}}, h100, true},
      {"matchLabels wrong value", {{"matchLabels", {{"topology.kubernetes.io/region", "us-east"}}}}, h100, false},
      {"matchLabels missing key", {{"matchLabels", {{"zone", "a"}}}}, h100, false},
      {"In hit", {{"matchExpressions", {{{"key", "nvidia.com/gpu.count"}, {"operator", "In"}, {"values", {"4", "8"}}}}}}, h100, true},
      {"In miss", {{"matchExpressions", {{{"key", "nvidia.com/gpu.count"}, {"operator", "In"}, {"values", {"4"}}}}}}, h100, false},
      {"In absent key", {{"matchExpressions", {{{"key", "x"}, {"operator", "In"}, {"values", {"4"}}}}}}, h100, false},
      {"NotIn hit", {{"matchExpressions", {{{"key", "nvidia.com/gpu.count"}, {"operator", "NotIn"}, {"values", {"8"}}}}}}, h100, false},
      {"NotIn miss", {{"matchExpressions", {{{"key", "nvidia.com/gpu.count"}, {"operator", "NotIn"}, {"values", {"4"}}}}}}, h100, true},
      {"NotIn absent key", {{"matchExpressions", {{{"key", "x"}, {"operator", "NotIn"}, {"values", {"4"}}}}}}, h100, true},
      {"Exists", {{"matchExpressions", {{{"key", "nvidia.com/gpu.product"}, {"operator", "Exists"}}}}}, h100, true},
      {"Exists absent", {{"matchExpressions", {{{"key", "nvidia.com/gpu.product"}, {"operator", "Exists"}}}}}, bare, false},
      {"DoesNotExist", {{"matchExpressions", {{{"key", "waterline.dev/cordon"}, {"operator", "DoesNotExist"}}}}}, h100, true},
      {"DoesNotExist present", {{"matchExpressions", {{{"key", "nvidia.com/gpu.count"}, {"operator", "DoesNotExist"}}}}}, h100, false},
      {"labels and expressions all hold",
       {{"matchLabels", {{"topology.kubernetes.io/region", "eu-west"}}},
        {"matchExpressions", {{{"key", "nvidia.com/gpu.count"}, {"operator", "In"}, {"values", {"8"}}},
                              {{"key", "taint"}, {"operator", "DoesNotExist"}}}}},
       h100, true},
      {"one expression fails",
       {{"matchLabels", {{"topology.kubernetes.io/region", "eu-west"}}},
        {"matchExpressions", {{{"key", "nvidia.com/gpu.count"}, {"operator", "In"}, {"values", {"8"}}},
                              {{"key", "nvidia.com/gpu.product"}, {"operator", "DoesNotExist"}}}}},
       h100, false},
  };
  for (const auto& c : cases) EXPECT_EQ(sel(c.selector).matches(c.labels), c.want) << c.name;
}

TEST(Selector, StringForm) {
  EXPECT_EQ(sel(json::object()).toString(), "");
  EXPECT_EQ(sel({{"matchLabels", {{"b", "2"}, {"a", "1"}}}}).toString(), "a=1,b=2");
  EXPECT_EQ(sel({{"matchLabels", {{"app", "x"}}},
                 {"matchExpressions", {{{"key", "zone"}, {"operator", "NotIn"}, {"values", {"z2", "z1"}}},
                                       {{"key", "env"}, {"operator", "In"}, {"values", {"prod", "dev", "prod"}}},
                                       {{"key", "gpu"}, {"operator", "Exists"}},
                                       {{"key", "tainted"}, {"operator", "DoesNotExist"}}}}})
                .toString(),
            "app=x,env in (dev,prod),gpu,!tainted,zone notin (z1,z2)");
  EXPECT_EQ(selectorStringFromLabels({{"waterline.dev/deployment", "m"}, {"app.kubernetes.io/managed-by", "waterline"}}),
            "app.kubernetes.io/managed-by=waterline,waterline.dev/deployment=m");
}

TEST(Selector, JsonRoundTrip) {
  json j = {{"matchLabels", {{"a", "1"}}},
            {"matchExpressions", {{{"key", "k"}, {"operator", "In"}, {"values", {"v"}}},
                                  {{"key", "e"}, {"operator", "Exists"}}}}};
  EXPECT_EQ(sel(j).toJson(), j);
  EXPECT_EQ(sel(json::object()).toJson(), json::object());
  auto bad = LabelSelector::fromJson({{"matchExpressions", {{{"operator", "In"}}}}});
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().rfind("matchExpressions[0].key: ", 0), 0u) << bad.error();
}

}  // namespace
}  // namespace waterline::api
