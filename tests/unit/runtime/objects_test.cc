#include "waterline/runtime/objects.h"

#include <gtest/gtest.h>

namespace waterline::runtime {
namespace {

Json obj(const std::string& name, const std::string& uid) {
  return {{"apiVersion", "waterline.dev/v1alpha1"},
          {"kind", "ModelDeployment"},
          {"metadata", {{"name", name}, {"namespace", "ns"}, {"uid", uid}, {"resourceVersion", "7"}}}};
}

TEST(Finalizers, AddRemoveAreIdempotent) {
  Json o = obj("a", "u1");
  EXPECT_FALSE(hasFinalizer(o, "waterline.dev/finalizer"));
  EXPECT_TRUE(addFinalizer(o, "waterline.dev/finalizer"));
  EXPECT_FALSE(addFinalizer(o, "waterline.dev/finalizer"));
  EXPECT_TRUE(hasFinalizer(o, "waterline.dev/finalizer"));
  addFinalizer(o, "other");
  EXPECT_TRUE(removeFinalizer(o, "waterline.dev/finalizer"));
  EXPECT_FALSE(removeFinalizer(o, "waterline.dev/finalizer"));
  EXPECT_EQ(o["metadata"]["finalizers"], Json::array({"other"}));
  // The patch carries the resourceVersion as an optimistic-concurrency guard.
  auto p = Json::parse(finalizersPatch(o));
  EXPECT_EQ(p["metadata"]["resourceVersion"], "7");
  EXPECT_EQ(p["metadata"]["finalizers"], Json::array({"other"}));
}

TEST(OwnerReferences, OnlyOneController) {
  Json owner = obj("owner", "u1");
  Json other = obj("other", "u2");
  Json child = {{"metadata", {{"name", "c"}}}};
  ASSERT_TRUE(setControllerReference(owner, child));
  EXPECT_TRUE(isControlledBy(child, owner));
  EXPECT_FALSE(setControllerReference(other, child));
  EXPECT_TRUE(setControllerReference(owner, child));  // same owner: fine, no duplicate
  EXPECT_EQ(child["metadata"]["ownerReferences"].size(), 1u);
  auto ref = controllerOf(child);
  ASSERT_TRUE(ref);
  EXPECT_EQ((*ref)["kind"], "ModelDeployment");
  EXPECT_EQ((*ref)["blockOwnerDeletion"], true);
}

TEST(Predicates, GenerationChangedSkipsStatusOnlyUpdates) {
  Json a = obj("a", "u1");
  a["metadata"]["generation"] = 1;
  Json b = a;
  b["status"] = {{"ready", 1}};
  auto p = generationChangedPredicate();
  EXPECT_FALSE(p.update(a, b));
  b["metadata"]["generation"] = 2;
  EXPECT_TRUE(p.update(a, b));
}

TEST(Predicates, MetadataChangesPass) {
  Json a = obj("a", "u1");
  Json b = a;
  auto p = metadataOrGenerationChangedPredicate();
  EXPECT_FALSE(p.update(a, b));
  b["metadata"]["labels"] = {{"x", "y"}};
  EXPECT_TRUE(p.update(a, b));
  Json c = a;
  c["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z";
  EXPECT_TRUE(p.update(a, c));
}

TEST(Predicates, LabelPredicate) {
  Json a = obj("a", "u1");
  auto p = labelPredicate("app", "w");
  EXPECT_FALSE(p.create(a));
  a["metadata"]["labels"] = {{"app", "w"}};
  EXPECT_TRUE(p.create(a));
}

}  // namespace
}  // namespace waterline::runtime
