#include "waterline/cache/store.h"

#include <gtest/gtest.h>

namespace waterline::cache {
namespace {

ObjectPtr obj(const std::string& ns, const std::string& name, const std::string& rv,
              const std::string& node = "") {
  Json o = {{"metadata", {{"name", name}, {"resourceVersion", rv}}}};
  if (!ns.empty()) o["metadata"]["namespace"] = ns;
  if (!node.empty()) o["spec"]["nodeName"] = node;
  return std::make_shared<const Json>(o);
}

TEST(Store, KeysFollowMetaNamespaceKeyFunc) {
  EXPECT_EQ(objectKey(*obj("ns1", "a", "1")), "ns1/a");
  EXPECT_EQ(objectKey(*obj("", "pool-a", "1")), "pool-a");
  EXPECT_EQ(splitKey("ns1/a"), std::make_pair(std::string("ns1"), std::string("a")));
  EXPECT_EQ(splitKey("pool-a"), std::make_pair(std::string(""), std::string("pool-a")));
}

TEST(Store, UpsertEraseAndIndexStayConsistent) {
  Store s;
  s.addIndexer("node", [](const Json& o) {
    std::vector<std::string> v;
    if (o.contains("spec")) v.push_back(o["spec"].value("nodeName", ""));
    return v;
  });
  s.upsert(obj("ns", "p1", "1", "n1"));
  s.upsert(obj("ns", "p2", "2", "n1"));
  s.upsert(obj("ns", "p3", "3", "n2"));
  ASSERT_EQ(s.byIndex("node", "n1").size(), 2u);
  // Moving p2 to n2 must remove it from n1's index entry.
  auto old = s.upsert(obj("ns", "p2", "4", "n2"));
  ASSERT_TRUE(old);
  EXPECT_EQ(resourceVersionOf(*old), "2");
  ASSERT_EQ(s.byIndex("node", "n1").size(), 1u);
  ASSERT_EQ(s.byIndex("node", "n2").size(), 2u);
  EXPECT_EQ(objectKey(*s.byIndex("node", "n2")[0]), "ns/p2");  // sorted by key
  s.erase("ns/p3");
  ASSERT_EQ(s.byIndex("node", "n2").size(), 1u);
  EXPECT_THROW(s.byIndex(kNamespaceIndex, "ns"), std::invalid_argument);  // not added here
  EXPECT_THROW(s.byIndex("nope", "x"), std::invalid_argument);
}

TEST(Store, ReplaceReturnsDroppedObjects) {
  Store s;
  s.upsert(obj("ns", "a", "1"));
  s.upsert(obj("ns", "b", "2"));
  auto dropped = s.replace({obj("ns", "b", "3"), obj("ns", "c", "4")});
  ASSERT_EQ(dropped.size(), 1u);
  EXPECT_EQ(objectKey(*dropped[0]), "ns/a");
  EXPECT_EQ(s.listKeys(), (std::vector<std::string>{"ns/b", "ns/c"}));
  EXPECT_EQ(resourceVersionOf(*s.get("ns/b")), "3");
}

TEST(Store, IndexerAfterObjectsIsAnError) {
  Store s;
  s.upsert(obj("ns", "a", "1"));
  EXPECT_THROW(s.addIndexer("late", [](const Json&) { return std::vector<std::string>{}; }),
               std::logic_error);
}

}  // namespace
}  // namespace waterline::cache
