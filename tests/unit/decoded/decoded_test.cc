#include "waterline/reconcilers/decoded.h"

#include <gtest/gtest.h>

#include "waterline/planners/nodes.h"

namespace waterline::reconcilers {
namespace {

using Json = kube::Json;
using Obj = std::shared_ptr<const Json>;

// As an informer store holds them: one immutable shared object per version.
Obj node(const std::string& name, const std::string& rv, const std::string& product) {
  Json n = {{"metadata", {{"name", name}, {"labels", {{"nvidia.com/gpu.product", product}, {"nvidia.com/gpu.count", "8"}}}}},
            {"status", {{"conditions", Json::array({{{"type", "Ready"}, {"status", "True"}}})}}}};
  if (!rv.empty()) n["metadata"]["resourceVersion"] = rv;
  return std::make_shared<const Json>(std::move(n));
}

DecodedByVersion<planners::NodeView> nodeViews() { return {}; }

TEST(DecodedByVersion, DecodesAnObjectAgainOnlyWhenANewVersionReplacesIt) {
  auto d = nodeViews();
  Obj n1 = node("n1", "1", "H100"), n2 = node("n2", "2", "H100");
  auto first = d.decode({n1, n2});
  ASSERT_EQ(first.size(), 2u);
  EXPECT_EQ(d.decodes(), 2u);
  auto again = d.decode({n1, n2});
  EXPECT_EQ(d.decodes(), 2u) << "the same objects: nothing decoded";
  EXPECT_EQ(again[0].get(), first[0].get()) << "the same decoded object, shared";
  // n2 changes (a new object, as the store holds it): only n2 is decoded again.
  Obj n2b = node("n2", "3", "A100");
  auto changed = d.decode({n1, n2b});
  EXPECT_EQ(d.decodes(), 3u);
  EXPECT_EQ(changed[1]->gpuProduct, "A100");
  EXPECT_EQ(changed[0].get(), first[0].get());
  EXPECT_EQ(first[1]->gpuProduct, "H100") << "what a caller holds is never changed under it";
}

TEST(DecodedByVersion, ForgetsWhatIsNotListedAnyMore) {
  auto d = nodeViews();
  Obj n1 = node("n1", "1", "H100"), n2 = node("n2", "2", "H100");
  d.decode({n1, n2});
  EXPECT_EQ(d.decode({n1}).size(), 1u);
  // n2 left the list: its entry went with it, so listing it again decodes it again.
  auto back = d.decode({n1, n2});
  EXPECT_EQ(d.decodes(), 3u);
  ASSERT_EQ(back.size(), 2u);
  EXPECT_EQ(back[1]->name, "n2");
  // An object rebuilt with the same content (a relist) is a new object: decoded once more.
  d.decode({node("n1", "1", "H100"), n2});
  EXPECT_EQ(d.decodes(), 4u);
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
