#include "waterline/cache/lister.h"

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "fake_client.h"

namespace waterline::cache {
namespace {

using namespace std::chrono_literals;
using testing::FakeClient;
const kube::ResourceKind& CM = kube::kinds::ConfigMap;

// A value type as the api types are: decoded from JSON, or an error.
struct Setting {
  std::string name;
  int value = 0;
  static std::expected<Setting, std::string> fromJson(const Json& j) {
    if (!j.contains("data") || !j["data"].contains("v")) return std::unexpected(std::string("data.v missing"));
    const auto& v = j["data"]["v"];
    if (!v.is_string()) return std::unexpected(std::string("data.v is not a string"));
    try {
      return Setting{j["metadata"].value("name", ""), std::stoi(v.get<std::string>())};
    } catch (const std::exception&) {
      return std::unexpected("data.v is not a number: " + v.get<std::string>());
    }
  }
};

Json cm(const std::string& name, const std::string& v) {
  Json o = FakeClient::object("ns", name);
  if (!v.empty()) o["data"]["v"] = v;
  return o;
}

// Polls (the informer runs on its own thread); the bound is generous, never the assertion.
bool eventually(const std::function<bool()>& pred) {
  for (int i = 0; i < 2000; ++i) {
    if (pred()) return true;
    std::this_thread::sleep_for(10ms);
  }
  return pred();
}

class ListerTest : public ::testing::Test {
 protected:
  std::shared_ptr<FakeClient> client = std::make_shared<FakeClient>();
  InformerPtr inf = std::make_shared<Informer>(client, CM, InformerOptions{}, RealTimeSource::instance());
  void TearDown() override { inf->stop(); }
};

TEST_F(ListerTest, DecodesEachVersionOnceAndFollowsTheStore) {
  ASSERT_TRUE(client->create(CM, "ns", cm("a", "1")));
  ASSERT_TRUE(client->create(CM, "ns", cm("b", "2")));
  auto lister = Lister<Setting>::of(inf);
  inf->start();
  ASSERT_TRUE(inf->waitForSync(20s));
  ASSERT_TRUE(eventually([&] { return lister->list().size() == 2; }));
  EXPECT_EQ(lister->get("ns", "a")->value, 1);
  EXPECT_EQ(lister->get("ns/b")->value, 2);
  const auto decodes = lister->decodes();
  EXPECT_EQ(decodes, 2u);
  const auto held = lister->get("ns/a");
  // Reading again decodes nothing, and hands out the same value.
  for (int i = 0; i < 5; ++i) lister->list();
  EXPECT_EQ(lister->decodes(), decodes);
  EXPECT_EQ(lister->get("ns/a").get(), held.get());

  // A new version is decoded again; what a caller holds never changes under it.
  auto a = client->get(CM, "ns", "a");
  ASSERT_TRUE(a);
  Json a2 = *a;
  a2["data"]["v"] = "7";
  ASSERT_TRUE(client->update(CM, "ns", a2));
  ASSERT_TRUE(eventually([&] { return lister->get("ns/a") && lister->get("ns/a")->value == 7; }));
  EXPECT_EQ(held->value, 1);
  EXPECT_EQ(lister->decodes(), decodes + 1);

  // Deleted: gone from every read.
  ASSERT_TRUE(client->remove(CM, "ns", "b"));
  ASSERT_TRUE(eventually([&] { return lister->list().size() == 1; }));
  EXPECT_EQ(lister->get("ns/b"), nullptr);
  EXPECT_EQ(lister->item("ns/b").object, nullptr);
}

TEST_F(ListerTest, ObjectsThatDoNotDecodeAreReportedNotListedAndNotRetriedUntilTheyChange) {
  ASSERT_TRUE(client->create(CM, "ns", cm("good", "3")));
  ASSERT_TRUE(client->create(CM, "ns", cm("bad", "x")));
  auto lister = Lister<Setting>::of(inf);
  inf->start();
  ASSERT_TRUE(inf->waitForSync(20s));
  ASSERT_TRUE(eventually([&] { return lister->items().size() == 2; }));
  ASSERT_EQ(lister->list().size(), 1u);
  EXPECT_EQ(lister->list()[0]->name, "good");
  auto bad = lister->item("ns/bad");
  ASSERT_NE(bad.object, nullptr);
  EXPECT_EQ(bad.value, nullptr);
  EXPECT_EQ(bad.error, "data.v is not a number: x");
  const auto decodes = lister->decodes();
  lister->items();
  lister->item("ns/bad");
  EXPECT_EQ(lister->decodes(), decodes) << "a failure is kept for its version";
  // Fixed: decoded and listed.
  Json fixed = *bad.object;
  fixed["data"]["v"] = "4";
  ASSERT_TRUE(client->update(CM, "ns", fixed));
  ASSERT_TRUE(eventually([&] { return lister->list().size() == 2; }));
  EXPECT_EQ(lister->get("ns/bad")->value, 4);
}

TEST_F(ListerTest, OneListerPerInformerAndTypeAndReadsAreNeverOlderThanTheStore) {
  ASSERT_TRUE(client->create(CM, "ns", cm("a", "1")));
  // A handler registered before the lister's runs first: when it reads the lister for the
  // object its event carries, it must get that version, not the one before.
  std::shared_ptr<Lister<Setting>> first;
  std::atomic<int> stale = 0, seen = 0;
  EventHandler h;
  h.onUpdate = [&](const ObjectPtr&, const ObjectPtr& n) {
    auto v = first->get(objectKey(*n));
    if (!v || std::to_string(v->value) != (*n)["data"]["v"].get<std::string>()) ++stale;
    ++seen;
  };
  inf->addEventHandler(h);
  first = Lister<Setting>::of(inf);
  auto second = Lister<Setting>::of(inf, [](const Json&) -> std::expected<Setting, std::string> {
    return std::unexpected(std::string("never used: the first caller's decode stays"));
  });
  EXPECT_EQ(first.get(), second.get());
  inf->start();
  ASSERT_TRUE(inf->waitForSync(20s));
  for (int i = 2; i <= 20; ++i) {
    auto cur = client->get(CM, "ns", "a");
    ASSERT_TRUE(cur);
    Json next = *cur;
    next["data"]["v"] = std::to_string(i);
    ASSERT_TRUE(client->update(CM, "ns", next));
  }
  ASSERT_TRUE(eventually([&] { return seen.load() == 19; }));
  EXPECT_EQ(stale.load(), 0);
  EXPECT_EQ(first->get("ns/a")->value, 20);
}

}  // namespace
}  // namespace waterline::cache
