#include "waterline/reconcilers/decoded.h"

#include <gtest/gtest.h>

#include "waterline/planners/nodes.h"

namespace waterline::reconcilers {
namespace {

using Json = kube::Json;

std::shared_ptr<const Json> node(const std::string& name, const std::string& rv, const std::string& product) {
  Json n = {{"metadata", {{"name", name}, {"labels", {{"nvidia.com/gpu.product", product}, {"nvidia.com/gpu.count", "8"}}}}},
            {"status", {{"conditions", Json::array({{{"type", "Ready"}, {"status", "True"}}})}}}};
  if (!rv.empty()) n["metadata"]["resourceVersion"] = rv;
  return std::make_shared<const Json>(std::move(n));
}

DecodedByVersion<planners::NodeView> nodeViews() {
  return DecodedByVersion<planners::NodeView>(
      [](const Json& j) { return std::optional(planners::NodeView::fromJson(j)); });
}

TEST(DecodedByVersion, DecodesAnObjectAgainOnlyWhenItsResourceVersionChanges) {
  auto d = nodeViews();
  auto first = d.decode({node("n1", "1", "H100"), node("n2", "2", "H100")});
  ASSERT_EQ(first.size(), 2u);
  EXPECT_EQ(d.decodes(), 2u);
  auto again = d.decode({node("n1", "1", "H100"), node("n2", "2", "H100")});
  EXPECT_EQ(d.decodes(), 2u) << "nothing changed: nothing decoded";
  EXPECT_EQ(again[0].get(), first[0].get()) << "the same decoded object, shared";
  // n2 changes: only n2 is decoded again, and the new value is served.
  auto changed = d.decode({node("n1", "1", "H100"), node("n2", "3", "A100")});
  EXPECT_EQ(d.decodes(), 3u);
  EXPECT_EQ(changed[1]->gpuProduct, "A100");
  EXPECT_EQ(changed[0].get(), first[0].get());
  EXPECT_EQ(first[1]->gpuProduct, "H100") << "what a caller holds is never changed under it";
}

TEST(DecodedByVersion, ForgetsWhatIsGoneAndNeverKeepsObjectsWithoutAVersion) {
  auto d = nodeViews();
  d.decode({node("n1", "1", "H100"), node("n2", "2", "H100")});
  // n2 is gone; coming back with the same resourceVersion it is decoded again (no stale
  // entry was kept).
  EXPECT_EQ(d.decode({node("n1", "1", "H100")}).size(), 1u);
  d.decode({node("n1", "1", "H100"), node("n2", "2", "L4")});
  EXPECT_EQ(d.decodes(), 3u);
  // No resourceVersion (an assumed pod): decoded at every call, in order.
  auto a = d.decode({node("n1", "1", "H100"), node("assumed", "", "L4")});
  auto b = d.decode({node("n1", "1", "H100"), node("assumed", "", "L4")});
  EXPECT_EQ(d.decodes(), 5u);
  ASSERT_EQ(b.size(), 2u);
  EXPECT_EQ(b[1]->name, "assumed");
  EXPECT_NE(a[1].get(), b[1].get());
}

TEST(DecodedByVersion, ObjectsThatDoNotDecodeAreLeftOutAndNotRetriedUntilTheyChange) {
  int calls = 0;
  DecodedByVersion<int> d([&](const Json& j) -> std::optional<int> {
    ++calls;
    if (!j.contains("value")) return std::nullopt;
    return j["value"].get<int>();
  });
  auto bad = std::make_shared<const Json>(Json{{"metadata", {{"name", "x"}, {"resourceVersion", "1"}}}});
  auto good = std::make_shared<const Json>(Json{{"metadata", {{"name", "y"}, {"resourceVersion", "2"}}}, {"value", 7}});
  auto out = d.decode({bad, good});
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(*out[0], 7);
  d.decode({bad, good});
  EXPECT_EQ(calls, 2);
}

}  // namespace
}  // namespace waterline::reconcilers
