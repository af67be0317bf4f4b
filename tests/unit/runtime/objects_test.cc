#include "waterline/runtime/objects.h"

#include <gtest/gtest.h>

#include <expected>

#include "waterline/runtime/controller.h"

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

// A decoded view for the typed predicate tests: spec.replicas defaults to 3 (as a CRD
// default would), spec.note is ignored by the comparisons, and a non-integer
// spec.replicas does not decode.
struct Thing {
  std::string name;
  int replicas = 3;
  std::string ref;
};
std::expected<Thing, std::string> decodeThing(const Json& j) {
  Thing t;
  t.name = j["metadata"].value("name", "");
  if (!j.contains("spec")) return t;
  const auto& s = j["spec"];
  if (s.contains("replicas")) {
    if (!s["replicas"].is_number_integer()) return std::unexpected("spec.replicas: not an integer");
    t.replicas = s["replicas"].get<int>();
  }
  t.ref = s.value("ref", "");
  return t;
}

Predicate replicasChanged() {
  return typedUpdatePredicate<Thing>(&decodeThing, [](const Thing& o, const Thing& n) { return o.replicas != n.replicas; });
}

bool passes(const std::function<bool(const Json&)>& f, const Json& o) { return !f || f(o); }

TEST(TypedPredicates, CreatesAndDeletesPass) {
  auto p = replicasChanged();
  Json bad = obj("a", "u1");
  bad["spec"] = {{"replicas", "three"}};
  EXPECT_TRUE(passes(p.create, obj("a", "u1")));
  EXPECT_TRUE(passes(p.create, bad));
  EXPECT_TRUE(passes(p.remove, obj("a", "u1")));
  EXPECT_TRUE(passes(p.remove, bad));
}

TEST(TypedPredicates, UpdatePassesOnlyWhenTheComparedFieldChanged) {
  auto p = replicasChanged();
  Json a = obj("a", "u1");
  a["spec"] = {{"replicas", 2}, {"note", "x"}};
  Json b = a;
  b["spec"]["note"] = "y";
  EXPECT_FALSE(p.update(a, b)) << "only an ignored field changed";
  b["spec"]["replicas"] = 4;
  EXPECT_TRUE(p.update(a, b));
}

TEST(TypedPredicates, AnAbsentFieldEqualsItsDefault) {
  auto p = replicasChanged();
  Json a = obj("a", "u1");
  Json b = a;
  b["spec"] = {{"replicas", 3}};
  EXPECT_FALSE(p.update(a, b)) << "absent -> its default: the decoded objects are equal";
  EXPECT_FALSE(p.update(b, a));
  b["spec"]["replicas"] = 5;
  EXPECT_TRUE(p.update(a, b));
}

TEST(TypedPredicates, AnUpdateWhereEitherSideDoesNotDecodePasses) {
  auto p = replicasChanged();
  Json good = obj("a", "u1");
  Json bad = good;
  bad["spec"] = {{"replicas", "three"}};
  EXPECT_TRUE(p.update(good, bad)) << "broken: the reconciler reports it";
  EXPECT_TRUE(p.update(bad, good)) << "fixed";
  Json bad2 = bad;
  bad2["spec"]["note"] = "z";
  EXPECT_TRUE(p.update(bad, bad2));
}

TEST(TypedMap, MapsDecodedObjectsAndNothingForOneThatDoesNotDecode) {
  auto map = typedMap<Thing>(&decodeThing, [](const Thing& t) {
    return t.ref.empty() ? std::vector<Request>{} : std::vector<Request>{{"ns", t.ref}};
  });
  Json a = obj("a", "u1");
  a["spec"] = {{"ref", "parent"}};
  auto out = map(a);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].key(), "ns/parent");
  EXPECT_TRUE(map(obj("b", "u2")).empty());
  a["spec"]["replicas"] = "three";
  EXPECT_TRUE(map(a).empty());
}

}  // namespace
}  // namespace waterline::runtime
