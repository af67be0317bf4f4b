#include "waterline/kube/wire.h"

#include <gtest/gtest.h>

namespace waterline::kube {
namespace {

TEST(Wire, PercentEncode) {
  EXPECT_EQ(percentEncode("abc-._~XYZ09"), "abc-._~XYZ09");
  EXPECT_EQ(percentEncode("app=web,tier in (a,b)"), "app%3Dweb%2Ctier%20in%20%28a%2Cb%29");
  EXPECT_EQ(percentEncode("a/b?c&d#e+f"), "a%2Fb%3Fc%26d%23e%2Bf");
  EXPECT_EQ(percentEncode("\xc3\xa9"), "%C3%A9");
  EXPECT_EQ(percentEncode(""), "");
}

TEST(Wire, BuildQuery) {
  EXPECT_EQ(buildQuery({}), "");
  EXPECT_EQ(buildQuery({{"a", "1"}, {"labelSelector", "x!=y"}}), "?a=1&labelSelector=x%21%3Dy");
}

TEST(Wire, ListQuery) {
  ListOptions o;
  o.labelSelector = "app=web";
  o.fieldSelector = "metadata.name=x";
  o.limit = 25;
  o.continueToken = "eyJ2Ijoi+/=";
  o.resourceVersion = "123";
  o.resourceVersionMatch = "NotOlderThan";
  EXPECT_EQ(buildQuery(listQuery(o, false)),
            "?labelSelector=app%3Dweb&fieldSelector=metadata.name%3Dx&limit=25&continue=eyJ2Ijoi%2B%2F%3D"
            "&resourceVersion=123&resourceVersionMatch=NotOlderThan");

  ListOptions w;
  w.resourceVersion = "77";
  w.allowWatchBookmarks = true;
  w.timeoutSeconds = 300;
  w.limit = 10;  // dropped for watches
  EXPECT_EQ(buildQuery(listQuery(w, true)),
            "?resourceVersion=77&timeoutSeconds=300&watch=1&allowWatchBookmarks=true");

  ListOptions none;
  EXPECT_EQ(buildQuery(listQuery(none, false)), "");
  none.limit = 0;  // 0 = no limit
  EXPECT_EQ(buildQuery(listQuery(none, false)), "");
}

TEST(Wire, ResourcePath) {
  EXPECT_EQ(resourcePath(kinds::ConfigMap, "default"), "/api/v1/namespaces/default/configmaps");
  EXPECT_EQ(resourcePath(kinds::ConfigMap, ""), "/api/v1/configmaps");
  EXPECT_EQ(resourcePath(kinds::ConfigMap, "ns", "cm"), "/api/v1/namespaces/ns/configmaps/cm");
  EXPECT_EQ(resourcePath(kinds::Namespace, "ignored", "team-a"), "/api/v1/namespaces/team-a");
  EXPECT_EQ(resourcePath(kinds::Deployment, "ns", "web", "scale"),
            "/apis/apps/v1/namespaces/ns/deployments/web/scale");
  EXPECT_EQ(resourcePath(kinds::CapacityPool, "", "pool", "status"),
            "/apis/waterline.dev/v1alpha1/capacitypools/pool/status");
  EXPECT_EQ(resourcePath(kinds::Namespace, "", "system:weird"), "/api/v1/namespaces/system%3Aweird");
}

TEST(Wire, ContentTypes) {
  EXPECT_STREQ(contentType(PatchType::Merge), "application/merge-patch+json");
  EXPECT_STREQ(contentType(PatchType::JsonPatch), "application/json-patch+json");
  EXPECT_STREQ(contentType(PatchType::StrategicMerge), "application/strategic-merge-patch+json");
  EXPECT_STREQ(contentType(PatchType::Apply), "application/apply-patch+yaml");
}

TEST(Wire, DeleteOptionsBody) {
  DeleteOptions d;
  EXPECT_EQ(deleteOptionsBody(d), (Json{{"apiVersion", "v1"}, {"kind", "DeleteOptions"}}));
  d.preconditions.uid = "u-1";
  d.preconditions.resourceVersion = "9";
  d.propagationPolicy = "Foreground";
  d.gracePeriodSeconds = 0;
  Json b = deleteOptionsBody(d);
  EXPECT_EQ(b["preconditions"]["uid"], "u-1");
  EXPECT_EQ(b["preconditions"]["resourceVersion"], "9");
  EXPECT_EQ(b["propagationPolicy"], "Foreground");
  EXPECT_EQ(b["gracePeriodSeconds"], 0);
}

TEST(Wire, DecodeObjectList) {
  Json list = Json::parse(R"({
    "kind": "ConfigMapList", "apiVersion": "v1",
    "metadata": {"resourceVersion": "42", "continue": "tok", "remainingItemCount": 7},
    "items": [{"metadata": {"name": "a"}}, {"kind": "Other", "apiVersion": "x/v1", "metadata": {"name": "b"}}]
  })");
  auto l = decodeObjectList(list);
  ASSERT_TRUE(l);
  EXPECT_EQ(l->resourceVersion, "42");
  EXPECT_EQ(l->continueToken, "tok");
  EXPECT_EQ(l->remainingItemCount, 7);
  ASSERT_EQ(l->items.size(), 2u);
  EXPECT_EQ(l->items[0]["kind"], "ConfigMap");
  EXPECT_EQ(l->items[0]["apiVersion"], "v1");
  EXPECT_EQ(l->items[1]["kind"], "Other");

  auto empty = decodeObjectList(Json::parse(R"({"kind":"PodList","metadata":{"resourceVersion":"1"},"items":null})"));
  ASSERT_TRUE(empty);
  EXPECT_TRUE(empty->items.empty());
  EXPECT_FALSE(empty->remainingItemCount);

  EXPECT_FALSE(decodeObjectList(Json::array()));
  EXPECT_FALSE(decodeObjectList(Json::parse(R"({"items": 3})")));
}

struct WatchRow {
  std::string line;
  WatchEventType type;
  std::string name;
};

class WatchLines : public ::testing::TestWithParam<WatchRow> {};

TEST_P(WatchLines, Decodes) {
  auto ev = decodeWatchLine(GetParam().line);
  ASSERT_TRUE(ev) << ev.error().describe();
  ASSERT_TRUE(*ev);
  EXPECT_EQ((*ev)->type, GetParam().type);
  EXPECT_EQ((*ev)->object["metadata"]["name"], GetParam().name);
}

INSTANTIATE_TEST_SUITE_P(
    Types, WatchLines,
    ::testing::Values(
        WatchRow{R"({"type":"ADDED","object":{"kind":"ConfigMap","metadata":{"name":"a","resourceVersion":"5"}}})",
                 WatchEventType::Added, "a"},
        WatchRow{R"({"type":"MODIFIED","object":{"metadata":{"name":"b"}}})" "\r",
                 WatchEventType::Modified, "b"},
        WatchRow{"  {\"type\":\"DELETED\",\"object\":{\"metadata\":{\"name\":\"c\"}}}\n",
                 WatchEventType::Deleted, "c"},
        WatchRow{R"({"type":"BOOKMARK","object":{"kind":"ConfigMap","metadata":{"name":"","resourceVersion":"99","annotations":{"k8s.io/initial-events-end":"true"}}}})",
                 WatchEventType::Bookmark, ""}));

TEST(WatchLine, BlankIsNothing) {
  for (std::string_view s : {"", "\n", "\r\n", "   \t"}) {
    auto ev = decodeWatchLine(s);
    ASSERT_TRUE(ev);
    EXPECT_FALSE(*ev);
  }
}

TEST(WatchLine, Error410IsGone) {
  auto ev = decodeWatchLine(
      R"J({"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"too old resource version: 1 (20)","reason":"Expired","code":410}})J");
  ASSERT_FALSE(ev);
  EXPECT_TRUE(ev.error().isGone());
  EXPECT_EQ(ev.error().httpCode, 410);
  EXPECT_EQ(ev.error().message, "too old resource version: 1 (20)");

  auto codeOnly = decodeWatchLine(R"({"type":"ERROR","object":{"kind":"Status","code":410}})");
  ASSERT_FALSE(codeOnly);
  EXPECT_TRUE(codeOnly.error().isGone());
}

TEST(WatchLine, OtherErrorEvents) {
  auto ev = decodeWatchLine(
      R"({"type":"ERROR","object":{"kind":"Status","status":"Failure","message":"boom","reason":"InternalError","code":500}})");
  ASSERT_FALSE(ev);
  EXPECT_EQ(ev.error().reason, ApiError::Reason::InternalError);

  auto bare = decodeWatchLine(R"({"type":"ERROR","object":{}})");
  ASSERT_FALSE(bare);
  EXPECT_EQ(bare.error().reason, ApiError::Reason::Unknown);
  EXPECT_FALSE(bare.error().message.empty());
}

TEST(WatchLine, Malformed) {
  for (std::string_view s : {"not json", "[1,2]", R"({"type":"ADDED"})", R"({"object":{}})",
                             R"({"type":"RENAMED","object":{}})", R"({"type":"ADDED","object":{)"}) {
    auto ev = decodeWatchLine(s);
    ASSERT_FALSE(ev) << s;
    EXPECT_EQ(ev.error().reason, ApiError::Reason::Decode) << s;
  }
}

}  // namespace
}  // namespace waterline::kube
