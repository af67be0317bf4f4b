// runtime::kubernetesMetricsAuthorizer against a scripted API: which reviews it sends,
// what it answers (401 / 403 / 500 / allowed), and what it caches for how long.
#include "waterline/runtime/metrics_auth.h"

#include <gtest/gtest.h>

#include <future>
#include <map>
#include <mutex>
#include <set>

namespace waterline::runtime {
namespace {

using kube::Json;
using namespace std::chrono_literals;

// Answers TokenReviews and SubjectAccessReviews from tables; records what it was sent.
class ReviewClient : public kube::Client {
 public:
  std::mutex mu;
  std::map<std::string, std::string> users;  // token -> username (absent: not authenticated)
  std::set<std::string> allowed;             // usernames that may get /metrics
  bool fail = false;                         // every review fails with 503
  std::vector<Json> sent;                    // every review, in order

  int calls(const std::string& kind) {
    std::lock_guard g(mu);
    int n = 0;
    for (const auto& j : sent) n += j.value("kind", "") == kind;
    return n;
  }

  kube::Result<Json> create(const kube::ResourceKind& kind, const std::string&, const Json& obj,
                            const kube::WriteOptions& = {}) override {
    std::lock_guard g(mu);
    sent.push_back(obj);
    if (fail) {
      kube::ApiError e;
      e.reason = kube::ApiError::Reason::ServiceUnavailable;
      e.httpCode = 503;
      e.message = "apiserver down";
      return std::unexpected(e);
    }
    Json out = obj;
    if (kind.resource == "tokenreviews") {
      auto it = users.find(obj["spec"].value("token", ""));
      out["status"] = it == users.end()
                          ? Json{{"authenticated", false}}
                          : Json{{"authenticated", true},
                                 {"user", {{"username", it->second}, {"uid", "u-" + it->second}, {"groups", {"g1", "g2"}}}}};
    } else if (kind.resource == "subjectaccessreviews") {
      out["status"] = {{"allowed", allowed.count(obj["spec"].value("user", "")) > 0}};
    } else {
      return std::unexpected(kube::ApiError{});
    }
    return out;
  }
  kube::Result<Json> get(const kube::ResourceKind&, const std::string&, const std::string&) override {
    return std::unexpected(kube::ApiError{});
  }
  kube::Result<kube::ObjectList> list(const kube::ResourceKind&, const std::string&, const kube::ListOptions&) override {
    return std::unexpected(kube::ApiError{});
  }
  kube::Result<Json> update(const kube::ResourceKind&, const std::string&, const Json&, const kube::WriteOptions&) override {
    return std::unexpected(kube::ApiError{});
  }
  kube::Result<Json> patch(const kube::ResourceKind&, const std::string&, const std::string&, kube::PatchType,
                           const std::string&, const kube::PatchOptions&) override {
    return std::unexpected(kube::ApiError{});
  }
  kube::Result<Json> apply(const kube::ResourceKind&, const std::string&, const Json&, const kube::PatchOptions&) override {
    return std::unexpected(kube::ApiError{});
  }
  kube::Result<Json> remove(const kube::ResourceKind&, const std::string&, const std::string&,
                            const kube::DeleteOptions&) override {
    return std::unexpected(kube::ApiError{});
  }
  kube::Result<kube::WatchStreamPtr> watch(const kube::ResourceKind&, const std::string&, const kube::ListOptions&) override {
    return std::unexpected(kube::ApiError{});
  }
};

// The status the authorizer answers for this Authorization header (200 = allowed).
int statusFor(MetricsAuthorizer& a, const std::string& authorization) {
  HttpRequest req;
  req.method = "GET";
  req.path = "/metrics";
  if (!authorization.empty()) req.headers["authorization"] = authorization;
  std::promise<int> p;
  auto f = p.get_future();
  a.authorize(req, [&p](std::optional<HttpResponse> r) { p.set_value(r ? r->status : 200); });
  return f.get();
}

struct Fixture : ::testing::Test {
  std::shared_ptr<ReviewClient> api = std::make_shared<ReviewClient>();
  std::shared_ptr<SimulatedTimeSource> clock = std::make_shared<SimulatedTimeSource>();
  void SetUp() override {
    api->users = {{"tok-reader", "system:serviceaccount:mon:prometheus"}, {"tok-other", "alice"}};
    api->allowed = {"system:serviceaccount:mon:prometheus"};
  }
};

using MetricsAuth = Fixture;

TEST_F(MetricsAuth, NoBearerTokenIs401WithoutAnApiCall) {
  auto a = kubernetesMetricsAuthorizer(api, clock);
  EXPECT_EQ(statusFor(*a, ""), 401);
  EXPECT_EQ(statusFor(*a, "Basic dXNlcjpwdw=="), 401);
  EXPECT_EQ(statusFor(*a, "Bearer "), 401);
  EXPECT_EQ(statusFor(*a, "Bearer    "), 401);
  EXPECT_TRUE(api->sent.empty());
}

TEST_F(MetricsAuth, SendsTheUserToTheAccessReviewAndAllowsOrDenies) {
  auto a = kubernetesMetricsAuthorizer(api, clock);
  EXPECT_EQ(statusFor(*a, "Bearer tok-reader"), 200);
  EXPECT_EQ(statusFor(*a, "bearer tok-other"), 403);  // the scheme is case-insensitive
  EXPECT_EQ(statusFor(*a, "Bearer tok-unknown"), 401);
  std::lock_guard g(api->mu);
  ASSERT_EQ(api->sent.size(), 5u);  // TR+SAR, TR+SAR, TR
  EXPECT_EQ(api->sent[0]["kind"], "TokenReview");
  EXPECT_EQ(api->sent[0]["spec"]["token"], "tok-reader");
  const Json& sar = api->sent[1];
  EXPECT_EQ(sar["kind"], "SubjectAccessReview");
  EXPECT_EQ(sar["apiVersion"], "authorization.k8s.io/v1");
  EXPECT_EQ(sar["spec"]["user"], "system:serviceaccount:mon:prometheus");
  EXPECT_EQ(sar["spec"]["uid"], "u-system:serviceaccount:mon:prometheus");
  EXPECT_EQ(sar["spec"]["groups"], (Json{"g1", "g2"}));
  EXPECT_EQ(sar["spec"]["nonResourceAttributes"], (Json{{"path", "/metrics"}, {"verb", "get"}}));
  EXPECT_FALSE(sar["spec"].contains("resourceAttributes"));
  EXPECT_EQ(api->sent[4]["spec"]["token"], "tok-unknown");
}

TEST_F(MetricsAuth, AnswersAreCachedForTheTtlErrorsAreNot) {
  auto a = kubernetesMetricsAuthorizer(api, clock, {.ttl = 60s});
  EXPECT_EQ(statusFor(*a, "Bearer tok-reader"), 200);
  EXPECT_EQ(statusFor(*a, "Bearer tok-other"), 403);
  EXPECT_EQ(statusFor(*a, "Bearer tok-unknown"), 401);
  EXPECT_EQ(api->calls("TokenReview"), 3);
  clock->advance(59s);
  EXPECT_EQ(statusFor(*a, "Bearer tok-reader"), 200);
  EXPECT_EQ(statusFor(*a, "Bearer tok-other"), 403);
  EXPECT_EQ(statusFor(*a, "Bearer tok-unknown"), 401);
  EXPECT_EQ(api->calls("TokenReview"), 3);  // all cached
  // A revoked binding counts after the TTL.
  {
    std::lock_guard g(api->mu);
    api->allowed.clear();
  }
  EXPECT_EQ(statusFor(*a, "Bearer tok-reader"), 200);
  clock->advance(1s);
  EXPECT_EQ(statusFor(*a, "Bearer tok-reader"), 403);
  EXPECT_EQ(api->calls("TokenReview"), 4);

  // The apiserver failing: 500, and the next request asks again.
  {
    std::lock_guard g(api->mu);
    api->fail = true;
  }
  EXPECT_EQ(statusFor(*a, "Bearer tok-new"), 500);
  EXPECT_EQ(statusFor(*a, "Bearer tok-new"), 500);
  EXPECT_EQ(api->calls("TokenReview"), 6);
  {
    std::lock_guard g(api->mu);
    api->fail = false;
    api->users["tok-new"] = "system:serviceaccount:mon:prometheus";
    api->allowed = {"system:serviceaccount:mon:prometheus"};
  }
  EXPECT_EQ(statusFor(*a, "Bearer tok-new"), 200);
}

TEST_F(MetricsAuth, CacheIsBounded) {
  auto a = kubernetesMetricsAuthorizer(api, clock, {.ttl = 60s, .maxEntries = 2});
  EXPECT_EQ(statusFor(*a, "Bearer t1"), 401);
  clock->advance(1s);
  EXPECT_EQ(statusFor(*a, "Bearer t2"), 401);
  clock->advance(1s);
  EXPECT_EQ(statusFor(*a, "Bearer t3"), 401);  // evicts t1, the soonest to expire
  EXPECT_EQ(api->calls("TokenReview"), 3);
  EXPECT_EQ(statusFor(*a, "Bearer t3"), 401);
  EXPECT_EQ(statusFor(*a, "Bearer t2"), 401);
  EXPECT_EQ(api->calls("TokenReview"), 3);
  EXPECT_EQ(statusFor(*a, "Bearer t1"), 401);
  EXPECT_EQ(api->calls("TokenReview"), 4);
}

}  // namespace
}  // namespace waterline::runtime
