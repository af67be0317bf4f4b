// RestClient against an in-process fake HTTP(S) server: request shape, error mapping,
// retries, rate limiting, token files, TLS, and watch streaming / cancel / timeouts.
#include "waterline/kube/rest_client.h"

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <random>
#include <thread>

#include "support/fake_server.h"
#include "support/test_pki.h"

namespace waterline::kube {
namespace {

using namespace std::chrono_literals;
using testing::FakeServer;
using testing::HttpRequest;
using testing::Responder;
using Clock = std::chrono::steady_clock;

std::string statusBody(int code, const std::string& reason, const std::string& message) {
  return Json{{"kind", "Status"}, {"apiVersion", "v1"}, {"status", "Failure"},
              {"reason", reason}, {"message", message}, {"code", code}}
      .dump();
}

RestConfig plainConfig(const FakeServer& s) {
  RestConfig c;
  c.server = s.url();
  c.bearerToken = "tok-1";
  c.qps = 0;  // no limiter unless a test wants one
  c.requestTimeout = 5s;
  return c;
}

std::shared_ptr<RestClient> mustCreate(RestConfig c, RequestObserverPtr obs = nullptr) {
  auto client = RestClient::create(std::move(c), nullptr, std::move(obs));
  if (!client) throw std::runtime_error(client.error());
  return *client;
}

Json cm(const std::string& name, const std::string& rv = "") {
  Json j = {{"apiVersion", "v1"}, {"kind", "ConfigMap"}, {"metadata", {{"name", name}, {"namespace", "ns"}}}};
  if (!rv.empty()) j["metadata"]["resourceVersion"] = rv;
  return j;
}

TEST(RestClient, GetSendsHeadersAndDecodes) {
  FakeServer srv([](const HttpRequest& r, Responder& w) { w.respond(200, cm("a", "5").dump()); });
  auto c = mustCreate(plainConfig(srv));
  auto got = c->get(kinds::ConfigMap, "ns", "a");
  ASSERT_TRUE(got) << got.error().describe();
  EXPECT_EQ((*got)["metadata"]["resourceVersion"], "5");
  auto reqs = srv.requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].method, "GET");
  EXPECT_EQ(reqs[0].path, "/api/v1/namespaces/ns/configmaps/a");
  EXPECT_EQ(reqs[0].header("authorization"), "Bearer tok-1");
  EXPECT_EQ(reqs[0].header("accept"), "application/json");
  EXPECT_EQ(reqs[0].header("user-agent"), "waterline-operator/0.1");
}

TEST(RestClient, ServerPathPrefixIsKept) {
  FakeServer srv([](const HttpRequest& r, Responder& w) { w.respond(200, "{}"); });
  auto cfg = plainConfig(srv);
  cfg.server += "/k8s/clusters/c-1/";
  auto c = mustCreate(cfg);
  ASSERT_TRUE(c->get(kinds::Namespace, "", "x"));
  EXPECT_EQ(srv.requests().at(0).path, "/k8s/clusters/c-1/api/v1/namespaces/x");
}

TEST(RestClient, ListQueryAndItems) {
  FakeServer srv([](const HttpRequest& r, Responder& w) {
    w.respond(200, R"({"kind":"ConfigMapList","apiVersion":"v1","metadata":{"resourceVersion":"10","continue":"c2"},
                      "items":[{"metadata":{"name":"a"}}]})");
  });
  auto c = mustCreate(plainConfig(srv));
  ListOptions o;
  o.labelSelector = "app in (a,b)";
  o.limit = 1;
  auto l = c->list(kinds::ConfigMap, "ns", o);
  ASSERT_TRUE(l) << l.error().describe();
  EXPECT_EQ(l->resourceVersion, "10");
  EXPECT_EQ(l->continueToken, "c2");
  ASSERT_EQ(l->items.size(), 1u);
  EXPECT_EQ(l->items[0]["kind"], "ConfigMap");
  auto r = srv.requests().at(0);
  EXPECT_EQ(r.param("labelSelector"), "app in (a,b)");
  EXPECT_EQ(r.param("limit"), "1");
  EXPECT_EQ(r.query, "labelSelector=app%20in%20%28a%2Cb%29&limit=1");
}

TEST(RestClient, ListAllFollowsContinue) {
  FakeServer srv([](const HttpRequest& r, Responder& w) {
    const std::string cont = r.param("continue");
    const int page = cont.empty() ? 0 : std::stoi(cont);
    Json list = {{"kind", "ConfigMapList"}, {"apiVersion", "v1"},
                 {"metadata", {{"resourceVersion", "77"}}}, {"items", Json::array()}};
    for (int i = 0; i < 2; ++i) list["items"].push_back(cm("cm-" + std::to_string(page * 2 + i)));
    if (page < 2) list["metadata"]["continue"] = std::to_string(page + 1);
    w.respond(200, list.dump());
  });
  auto c = mustCreate(plainConfig(srv));
  ListOptions o;
  o.limit = 2;
  o.resourceVersion = "0";
  auto all = listAll(*c, kinds::ConfigMap, "ns", o);
  ASSERT_TRUE(all) << all.error().describe();
  ASSERT_EQ(all->items.size(), 6u);
  EXPECT_EQ(all->items[5]["metadata"]["name"], "cm-5");
  EXPECT_EQ(all->resourceVersion, "77");
  EXPECT_TRUE(all->continueToken.empty());
  auto reqs = srv.requests();
  ASSERT_EQ(reqs.size(), 3u);
  EXPECT_EQ(reqs[0].param("resourceVersion"), "0");
  EXPECT_FALSE(reqs[1].hasParam("resourceVersion"));  // not allowed with continue
  EXPECT_EQ(reqs[2].param("continue"), "2");
}

TEST(RestClient, ListAllRelistsWhenContinueExpires) {
  FakeServer srv([](const HttpRequest& r, Responder& w) {
    if (r.hasParam("continue")) {
      w.respond(410, statusBody(410, "Expired", "The provided continue parameter is too old"));
      return;
    }
    Json list = {{"kind", "ConfigMapList"}, {"metadata", {{"resourceVersion", "9"}}},
                 {"items", {cm("a")}}};
    if (r.hasParam("limit")) list["metadata"]["continue"] = "x";
    else list["items"].push_back(cm("b"));
    w.respond(200, list.dump());
  });
  auto c = mustCreate(plainConfig(srv));
  ListOptions o;
  o.limit = 1;
  auto all = listAll(*c, kinds::ConfigMap, "ns", o);
  ASSERT_TRUE(all) << all.error().describe();
  EXPECT_EQ(all->items.size(), 2u);
  EXPECT_EQ(srv.requestCount(), 3);
}

TEST(RestClient, WritesShapeRequests) {
  FakeServer srv([](const HttpRequest& r, Responder& w) { w.respond(r.method == "POST" ? 201 : 200, "{}"); });
  auto c = mustCreate(plainConfig(srv));
  WriteOptions wo;
  wo.fieldManager = "waterline";
  wo.dryRun = true;
  ASSERT_TRUE(c->create(kinds::ConfigMap, "", cm("a"), wo));  // ns from the object
  ASSERT_TRUE(c->update(kinds::ConfigMap, "ns", cm("a", "7")));
  WriteOptions st;
  st.subresource = "status";
  ASSERT_TRUE(c->update(kinds::CapacityPool, "", Json{{"metadata", {{"name", "p"}}}}, st));
  ASSERT_TRUE(c->patch(kinds::ConfigMap, "ns", "a", PatchType::Merge, R"({"data":{"k":"v"}})"));
  ASSERT_TRUE(c->patch(kinds::ConfigMap, "ns", "a", PatchType::JsonPatch, R"([{"op":"remove","path":"/data/k"}])"));
  ASSERT_TRUE(c->patch(kinds::Deployment, "ns", "d", PatchType::StrategicMerge, R"({})",
                       PatchOptions{"", false, "scale"}));
  PatchOptions po;
  po.fieldManager = "waterline";
  po.force = true;
  ASSERT_TRUE(c->apply(kinds::ConfigMap, "ns", cm("a"), po));
  DeleteOptions d;
  d.preconditions.uid = "uid-1";
  d.propagationPolicy = "Background";
  ASSERT_TRUE(c->remove(kinds::ConfigMap, "ns", "a", d));

  auto reqs = srv.requests();
  ASSERT_EQ(reqs.size(), 8u);
  EXPECT_EQ(reqs[0].method, "POST");
  EXPECT_EQ(reqs[0].path, "/api/v1/namespaces/ns/configmaps");
  EXPECT_EQ(reqs[0].param("fieldManager"), "waterline");
  EXPECT_EQ(reqs[0].param("dryRun"), "All");
  EXPECT_EQ(Json::parse(reqs[0].body)["metadata"]["name"], "a");
  EXPECT_EQ(reqs[0].header("content-type").rfind("application/json", 0), 0u);

  EXPECT_EQ(reqs[1].method, "PUT");
  EXPECT_EQ(reqs[1].path, "/api/v1/namespaces/ns/configmaps/a");
  EXPECT_EQ(Json::parse(reqs[1].body)["metadata"]["resourceVersion"], "7");

  EXPECT_EQ(reqs[2].path, "/apis/waterline.dev/v1alpha1/capacitypools/p/status");

  EXPECT_EQ(reqs[3].method, "PATCH");
  EXPECT_EQ(reqs[3].header("content-type").rfind("application/merge-patch+json", 0), 0u);
  EXPECT_EQ(reqs[4].header("content-type").rfind("application/json-patch+json", 0), 0u);
  EXPECT_EQ(reqs[5].header("content-type").rfind("application/strategic-merge-patch+json", 0), 0u);
  EXPECT_EQ(reqs[5].path, "/apis/apps/v1/namespaces/ns/deployments/d/scale");

  EXPECT_EQ(reqs[6].header("content-type").rfind("application/apply-patch+yaml", 0), 0u);
  EXPECT_EQ(reqs[6].param("fieldManager"), "waterline");
  EXPECT_EQ(reqs[6].param("force"), "true");

  EXPECT_EQ(reqs[7].method, "DELETE");
  Json body = Json::parse(reqs[7].body);
  EXPECT_EQ(body["kind"], "DeleteOptions");
  EXPECT_EQ(body["preconditions"]["uid"], "uid-1");
  EXPECT_EQ(body["propagationPolicy"], "Background");
}

TEST(RestClient, ClientSideValidation) {
  FakeServer srv([](const HttpRequest& r, Responder& w) { w.respond(200, "{}"); });
  auto c = mustCreate(plainConfig(srv));
  EXPECT_EQ(c->apply(kinds::ConfigMap, "ns", cm("a"), PatchOptions{}).error().reason,
            ApiError::Reason::BadRequest);
  EXPECT_EQ(c->update(kinds::ConfigMap, "ns", Json::object()).error().reason, ApiError::Reason::BadRequest);
  EXPECT_EQ(c->create(kinds::ConfigMap, "", Json{{"metadata", {{"name", "x"}}}}).error().reason,
            ApiError::Reason::BadRequest);
  EXPECT_EQ(c->get(kinds::ConfigMap, "ns", "").error().reason, ApiError::Reason::BadRequest);
  EXPECT_EQ(srv.requestCount(), 0);
}

TEST(RestClient, StatusErrorsAreMapped) {
  FakeServer srv([](const HttpRequest& r, Responder& w) {
    if (r.path.ends_with("/missing")) w.respond(404, statusBody(404, "NotFound", "configmaps \"missing\" not found"));
    else if (r.path.ends_with("/plain")) w.respond(404, "404 page not found", {}, "text/plain");
    else w.respond(409, statusBody(409, "Conflict", "the object has been modified"));
  });
  auto c = mustCreate(plainConfig(srv));
  auto nf = c->get(kinds::ConfigMap, "ns", "missing");
  ASSERT_FALSE(nf);
  EXPECT_TRUE(nf.error().isNotFound());
  EXPECT_EQ(nf.error().message, "configmaps \"missing\" not found");
  auto plain = c->get(kinds::ConfigMap, "ns", "plain");
  ASSERT_FALSE(plain);
  EXPECT_TRUE(plain.error().isNotFound());
  auto conflict = c->update(kinds::ConfigMap, "ns", cm("a", "1"));
  ASSERT_FALSE(conflict);
  EXPECT_TRUE(conflict.error().isConflict());
}

TEST(RestClient, NonJsonSuccessIsDecodeError) {
  FakeServer srv([](const HttpRequest& r, Responder& w) { w.respond(200, "<html>", {}, "text/html"); });
  auto c = mustCreate(plainConfig(srv));
  auto got = c->get(kinds::ConfigMap, "ns", "a");
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().reason, ApiError::Reason::Decode);
}

TEST(RestClient, RetriesIdempotentReadsOn429) {
  std::atomic<int> calls{0};
  FakeServer srv([&](const HttpRequest& r, Responder& w) {
    if (calls++ < 2) {
      w.respond(429, statusBody(429, "TooManyRequests", "slow down"), {{"Retry-After", "0"}});
      return;
    }
    w.respond(200, cm("a").dump());
  });
  auto c = mustCreate(plainConfig(srv));
  auto got = c->get(kinds::ConfigMap, "ns", "a");
  ASSERT_TRUE(got) << got.error().describe();
  EXPECT_EQ(calls.load(), 3);
}

TEST(RestClient, RetryAfterIsHonouredAndBounded) {
  std::atomic<int> calls{0};
  FakeServer srv([&](const HttpRequest& r, Responder& w) {
    ++calls;
    w.respond(429, statusBody(429, "TooManyRequests", "slow down"), {{"Retry-After", "1"}});
  });
  auto cfg = plainConfig(srv);
  cfg.maxRetries = 2;
  auto c = mustCreate(cfg);
  const auto t0 = Clock::now();
  auto got = c->list(kinds::ConfigMap, "ns");
  const auto took = Clock::now() - t0;
  ASSERT_FALSE(got);
  EXPECT_TRUE(got.error().isTooManyRequests());
  ASSERT_TRUE(got.error().retryAfter);
  EXPECT_EQ(calls.load(), 3);  // 1 + 2 retries
  EXPECT_GE(took, 1900ms);     // waited Retry-After twice
}

TEST(RestClient, WritesAreNotRetriedOn429) {
  std::atomic<int> calls{0};
  FakeServer srv([&](const HttpRequest& r, Responder& w) {
    ++calls;
    w.respond(429, statusBody(429, "TooManyRequests", "slow down"), {{"Retry-After", "0"}});
  });
  auto c = mustCreate(plainConfig(srv));
  auto got = c->create(kinds::ConfigMap, "ns", cm("a"));
  ASSERT_FALSE(got);
  EXPECT_TRUE(got.error().isTooManyRequests());
  EXPECT_EQ(calls.load(), 1);
}

TEST(RestClient, ClientSideRateLimit) {
  FakeServer srv([](const HttpRequest& r, Responder& w) { w.respond(200, "{}"); });
  auto cfg = plainConfig(srv);
  cfg.qps = 20;
  cfg.burst = 2;
  struct Obs : RequestObserver {
    std::atomic<int64_t> throttledNs{0};
    void onRequest(const RequestInfo& i) noexcept override { throttledNs += i.throttled.count(); }
  };
  auto obs = std::make_shared<Obs>();
  auto c = mustCreate(cfg, obs);
  const auto t0 = Clock::now();
  for (int i = 0; i < 6; ++i) ASSERT_TRUE(c->get(kinds::ConfigMap, "ns", "a"));
  // 2 from the burst, then 4 at 20/s = 200 ms.
  EXPECT_GE(Clock::now() - t0, 180ms);
  // The waits are reported (how much depends on how long the requests themselves took).
  EXPECT_GT(obs->throttledNs.load(), 0);
}

TEST(RestClient, ObserverSeesVerbResourceAndCode) {
  FakeServer srv([](const HttpRequest& r, Responder& w) {
    if (r.method == "DELETE") w.respond(404, statusBody(404, "NotFound", "gone"));
    else w.respond(200, R"({"items":[]})");
  });
  struct Obs : RequestObserver {
    std::mutex mu;
    std::vector<RequestInfo> seen;
    void onRequest(const RequestInfo& i) noexcept override {
      std::lock_guard g(mu);
      seen.push_back(i);
    }
  };
  auto obs = std::make_shared<Obs>();
  auto c = mustCreate(plainConfig(srv), obs);
  ASSERT_TRUE(c->list(kinds::Pod, "ns"));
  ASSERT_FALSE(c->remove(kinds::Pod, "ns", "p"));
  PatchOptions po;
  po.fieldManager = "m";
  po.subresource = "status";
  ASSERT_TRUE(c->patch(kinds::Pod, "ns", "p", PatchType::Apply, "{}", po));
  std::lock_guard g(obs->mu);
  ASSERT_EQ(obs->seen.size(), 3u);
  EXPECT_EQ(obs->seen[0].verb, "LIST");
  EXPECT_EQ(obs->seen[0].resource, "pods");
  EXPECT_EQ(obs->seen[0].code, 200);
  EXPECT_EQ(obs->seen[1].verb, "DELETE");
  EXPECT_EQ(obs->seen[1].code, 404);
  EXPECT_EQ(obs->seen[1].reason, ApiError::Reason::NotFound);
  EXPECT_EQ(obs->seen[2].verb, "APPLY");
  EXPECT_EQ(obs->seen[2].resource, "pods/status");
  EXPECT_GT(obs->seen[0].latency.count(), 0);
}

TEST(RestClient, TokenFileIsReread) {
  auto dir = std::filesystem::temp_directory_path() / ("wl-kube-tok-" + std::to_string(std::random_device{}()));
  std::filesystem::create_directories(dir);
  auto file = (dir / "token").string();
  std::ofstream(file) << "first\n";
  FakeServer srv([](const HttpRequest& r, Responder& w) { w.respond(200, "{}"); });
  auto cfg = plainConfig(srv);
  cfg.bearerToken = "static-ignored";
  cfg.bearerTokenFile = file;
  cfg.tokenRefresh = 0s;
  auto c = mustCreate(cfg);
  ASSERT_TRUE(c->get(kinds::ConfigMap, "ns", "a"));
  std::ofstream(file) << "second";
  ASSERT_TRUE(c->get(kinds::ConfigMap, "ns", "a"));
  std::filesystem::remove(file);  // unreadable: the last token is kept
  ASSERT_TRUE(c->get(kinds::ConfigMap, "ns", "a"));
  auto reqs = srv.requests();
  EXPECT_EQ(reqs[0].header("authorization"), "Bearer first");
  EXPECT_EQ(reqs[1].header("authorization"), "Bearer second");
  EXPECT_EQ(reqs[2].header("authorization"), "Bearer second");
  std::filesystem::remove_all(dir);
}

TEST(RestClient, ConnectionRefusedIsTransport) {
  int port;
  {
    FakeServer srv([](const HttpRequest&, Responder& w) { w.respond(200, "{}"); });
    port = srv.port();
  }
  RestConfig cfg;
  cfg.server = "http://127.0.0.1:" + std::to_string(port);
  cfg.qps = 0;
  auto c = mustCreate(cfg);
  auto got = c->get(kinds::ConfigMap, "ns", "a");
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().reason, ApiError::Reason::Transport) << got.error().describe();
  EXPECT_TRUE(got.error().isRetryable());
}

TEST(RestClient, StalledAnswerIsTimeout) {
  FakeServer srv([](const HttpRequest& r, Responder& w) {
    w.sleepMs(4000);
    w.respond(200, "{}");
  });
  auto cfg = plainConfig(srv);
  cfg.requestTimeout = 1s;
  auto c = mustCreate(cfg);
  const auto t0 = Clock::now();
  auto got = c->get(kinds::ConfigMap, "ns", "a");
  ASSERT_FALSE(got);
  EXPECT_TRUE(got.error().isTimeout()) << got.error().describe();
  EXPECT_LT(Clock::now() - t0, 3s);
}

TEST(RestClient, CreateRejectsBadConfig) {
  RestConfig c;
  EXPECT_FALSE(RestClient::create(c));
  c.server = "ftp://x";
  EXPECT_FALSE(RestClient::create(c));
  c.server = "https://127.0.0.1:1";
  c.caData = "-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n";
  auto bad = RestClient::create(c);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().find("CA data"), std::string::npos) << bad.error();

  auto pki = testing::makeTestPki();
  auto other = testing::makeTestPki();
  c.caData = pki.ca.certPem;
  c.clientCertData = pki.client.certPem;
  c.clientKeyData = other.client.keyPem;
  auto mismatch = RestClient::create(c);
  ASSERT_FALSE(mismatch);
  EXPECT_NE(mismatch.error().find("does not match"), std::string::npos) << mismatch.error();

  c.clientKeyData = pki.client.keyPem;
  EXPECT_TRUE(RestClient::create(c));
}

// ---------------------------------------------------------------------------- TLS

class TlsTest : public ::testing::Test {
 protected:
  testing::TestPki pki = testing::makeTestPki("unit-admin", "system:masters");
};

TEST_F(TlsTest, ClientCertificateIsPresented) {
  FakeServer srv([](const HttpRequest& r, Responder& w) { w.respond(200, "{}"); },
                 testing::ServerTls{pki.server.certPem, pki.server.keyPem, pki.ca.certPem, true});
  RestConfig cfg;
  cfg.server = srv.url();
  cfg.caData = pki.ca.certPem;
  cfg.clientCertData = pki.client.certPem;
  cfg.clientKeyData = pki.client.keyPem;
  auto c = mustCreate(cfg);
  auto got = c->get(kinds::Namespace, "", "default");
  ASSERT_TRUE(got) << got.error().describe();
  auto reqs = srv.requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_NE(reqs[0].clientCertSubject.find("CN=unit-admin"), std::string::npos) << reqs[0].clientCertSubject;
  EXPECT_EQ(reqs[0].header("authorization"), "");
}

TEST_F(TlsTest, BearerTokenOverTls) {
  FakeServer srv([](const HttpRequest& r, Responder& w) { w.respond(200, "{}"); },
                 testing::ServerTls{pki.server.certPem, pki.server.keyPem, "", false});
  RestConfig cfg;
  cfg.server = srv.url();
  cfg.caData = pki.ca.certPem;
  cfg.bearerToken = "abc";
  auto c = mustCreate(cfg);
  ASSERT_TRUE(c->get(kinds::Namespace, "", "default"));
  EXPECT_EQ(srv.requests().at(0).header("authorization"), "Bearer abc");
}

TEST_F(TlsTest, WrongCaIsTransportErrorUnlessInsecure) {
  FakeServer srv([](const HttpRequest& r, Responder& w) { w.respond(200, "{}"); },
                 testing::ServerTls{pki.server.certPem, pki.server.keyPem, "", false});
  auto other = testing::makeTestPki();
  RestConfig cfg;
  cfg.server = srv.url();
  cfg.caData = other.ca.certPem;
  auto c = mustCreate(cfg);
  auto got = c->get(kinds::Namespace, "", "default");
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().reason, ApiError::Reason::Transport) << got.error().describe();
  EXPECT_EQ(srv.requestCount(), 0);

  cfg.insecureSkipTLSVerify = true;
  auto insecure = mustCreate(cfg);
  auto ok = insecure->get(kinds::Namespace, "", "default");
  EXPECT_TRUE(ok) << ok.error().describe();
}

TEST_F(TlsTest, HostnameMustMatch) {
  // The server certificate is for 127.0.0.1/localhost; "127.0.0.2" is not in it.
  FakeServer srv([](const HttpRequest& r, Responder& w) { w.respond(200, "{}"); },
                 testing::ServerTls{pki.server.certPem, pki.server.keyPem, "", false});
  RestConfig cfg;
  cfg.server = "https://localhost:" + std::to_string(srv.port());
  cfg.caData = pki.ca.certPem;
  auto byName = mustCreate(cfg);
  auto ok = byName->get(kinds::Namespace, "", "default");
  EXPECT_TRUE(ok) << ok.error().describe();
}

// -------------------------------------------------------------------------- watch

std::string eventLine(const std::string& type, const std::string& name, const std::string& rv) {
  return Json{{"type", type},
              {"object", {{"kind", "ConfigMap"}, {"metadata", {{"name", name}, {"resourceVersion", rv}}}}}}
             .dump() +
         "\n";
}

TEST(Watch, EventsArriveOneByOneWithoutWaitingForTheBody) {
  FakeServer srv([](const HttpRequest& r, Responder& w) {
    w.beginChunked(200);
    w.chunk(eventLine("ADDED", "a", "1"));
    w.sleepMs(1500);
    // One chunk with two lines, then a line split across chunks.
    w.chunk(eventLine("MODIFIED", "a", "2") + eventLine("BOOKMARK", "", "3"));
    std::string del = eventLine("DELETED", "a", "4");
    w.chunk(del.substr(0, 10));
    w.sleepMs(100);
    w.chunk(del.substr(10));
    w.sleepMs(3000);
    w.endChunked();
  });
  auto c = mustCreate(plainConfig(srv));
  ListOptions o;
  o.resourceVersion = "0";
  o.allowWatchBookmarks = true;
  o.timeoutSeconds = 30;
  const auto t0 = Clock::now();
  auto w = c->watch(kinds::ConfigMap, "ns", o);
  ASSERT_TRUE(w) << w.error().describe();
  auto e1 = (*w)->next();
  ASSERT_TRUE(e1 && *e1);
  EXPECT_EQ((*e1)->type, WatchEventType::Added);
  EXPECT_LT(Clock::now() - t0, 1000ms);  // not held back until the 1.5 s pause ends
  auto e2 = (*w)->next();
  ASSERT_TRUE(e2 && *e2);
  EXPECT_EQ((*e2)->type, WatchEventType::Modified);
  auto e3 = (*w)->next();
  ASSERT_TRUE(e3 && *e3);
  EXPECT_EQ((*e3)->type, WatchEventType::Bookmark);
  EXPECT_EQ((*e3)->object["metadata"]["resourceVersion"], "3");
  auto e4 = (*w)->next();
  ASSERT_TRUE(e4 && *e4);
  EXPECT_EQ((*e4)->type, WatchEventType::Deleted);
  EXPECT_LT(Clock::now() - t0, 2500ms);  // before the final 3 s pause
  auto end = (*w)->next();
  ASSERT_TRUE(end) << end.error().describe();
  EXPECT_FALSE(*end);
  auto again = (*w)->next();
  ASSERT_TRUE(again);
  EXPECT_FALSE(*again);

  auto req = srv.requests().at(0);
  EXPECT_EQ(req.param("watch"), "1");
  EXPECT_EQ(req.param("resourceVersion"), "0");
  EXPECT_EQ(req.param("allowWatchBookmarks"), "true");
  EXPECT_EQ(req.param("timeoutSeconds"), "30");
}

TEST(Watch, LargeEventsSplitAcrossManyChunks) {
  const std::string big(300 * 1024, 'x');
  FakeServer srv([&](const HttpRequest& r, Responder& w) {
    w.beginChunked(200);
    for (int n = 0; n < 3; ++n) {
      std::string line = Json{{"type", "ADDED"},
                              {"object", {{"metadata", {{"name", "big-" + std::to_string(n)}}},
                                          {"data", {{"blob", big}}}}}}
                             .dump() +
                         "\n";
      for (size_t off = 0; off < line.size(); off += 7000) w.chunk(line.substr(off, 7000));
    }
    w.endChunked();
  });
  auto c = mustCreate(plainConfig(srv));
  auto w = c->watch(kinds::ConfigMap, "ns", ListOptions{});
  ASSERT_TRUE(w);
  for (int n = 0; n < 3; ++n) {
    auto ev = (*w)->next();
    ASSERT_TRUE(ev && *ev) << (ev ? "end" : ev.error().describe());
    EXPECT_EQ((*ev)->object["metadata"]["name"], "big-" + std::to_string(n));
    EXPECT_EQ((*ev)->object["data"]["blob"].get<std::string>().size(), big.size());
  }
  auto end = (*w)->next();
  ASSERT_TRUE(end);
  EXPECT_FALSE(*end);
}

TEST(Watch, MalformedLineIsDecodeError) {
  FakeServer srv([](const HttpRequest& r, Responder& w) {
    w.beginChunked(200);
    w.chunk("\n" + eventLine("ADDED", "a", "1") + "{not json}\n");
    w.endChunked();
  });
  auto c = mustCreate(plainConfig(srv));
  auto w = c->watch(kinds::ConfigMap, "ns", ListOptions{});
  ASSERT_TRUE(w);
  auto first = (*w)->next();  // the blank line is skipped
  ASSERT_TRUE(first && *first);
  auto bad = (*w)->next();
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().reason, ApiError::Reason::Decode);
}

TEST(Watch, DefaultTimeoutSecondsIsSent) {
  FakeServer srv([](const HttpRequest& r, Responder& w) {
    w.beginChunked(200);
    w.endChunked();
  });
  auto cfg = plainConfig(srv);
  cfg.defaultWatchTimeout = 123s;
  auto c = mustCreate(cfg);
  auto w = c->watch(kinds::ConfigMap, "", ListOptions{});
  ASSERT_TRUE(w);
  EXPECT_EQ(srv.requests().at(0).param("timeoutSeconds"), "123");
  EXPECT_EQ(srv.requests().at(0).path, "/api/v1/configmaps");
}

TEST(Watch, Error410IsGoneAndEndsTheStream) {
  FakeServer srv([](const HttpRequest& r, Responder& w) {
    w.beginChunked(200);
    w.chunk(Json{{"type", "ERROR"},
                 {"object", {{"kind", "Status"}, {"status", "Failure"}, {"reason", "Expired"},
                             {"message", "too old resource version: 1 (50)"}, {"code", 410}}}}
                .dump() +
            "\n");
    w.sleepMs(200);
    w.endChunked();
  });
  auto c = mustCreate(plainConfig(srv));
  ListOptions o;
  o.resourceVersion = "1";
  auto w = c->watch(kinds::ConfigMap, "ns", o);
  ASSERT_TRUE(w);
  auto ev = (*w)->next();
  ASSERT_FALSE(ev);
  EXPECT_TRUE(ev.error().isGone());
  auto after = (*w)->next();
  ASSERT_TRUE(after);
  EXPECT_FALSE(*after);
}

TEST(Watch, NonSuccessAnswerIsAnError) {
  FakeServer srv([](const HttpRequest& r, Responder& w) {
    w.respond(403, statusBody(403, "Forbidden", "configmaps is forbidden"));
  });
  auto c = mustCreate(plainConfig(srv));
  auto w = c->watch(kinds::ConfigMap, "ns", ListOptions{});
  ASSERT_FALSE(w);
  EXPECT_EQ(w.error().reason, ApiError::Reason::Forbidden);
}

TEST(Watch, CancelUnblocksNextPromptlyAndClosesTheConnection) {
  FakeServer srv([](const HttpRequest& r, Responder& w) {
    w.beginChunked(200);
    w.chunk(eventLine("ADDED", "a", "1"));
    // Keep the stream open (a quiet watch) until the client goes away.
    for (int i = 0; i < 300 && !w.stopping(); ++i) {
      if (!w.sleepMs(100)) break;
      if (!w.chunk(" ")) break;  // whitespace keeps probing the connection
    }
  });
  auto c = mustCreate(plainConfig(srv));
  auto w = c->watch(kinds::ConfigMap, "ns", ListOptions{});
  ASSERT_TRUE(w);
  auto first = (*w)->next();
  ASSERT_TRUE(first && *first);
  auto fut = std::async(std::launch::async, [&] { return (*w)->next(); });
  EXPECT_EQ(fut.wait_for(300ms), std::future_status::timeout);  // blocked
  const auto t0 = Clock::now();
  (*w)->cancel();
  ASSERT_EQ(fut.wait_for(1s), std::future_status::ready);
  EXPECT_LT(Clock::now() - t0, 1s);
  auto r = fut.get();
  ASSERT_TRUE(r);
  EXPECT_FALSE(*r);
  // The connection is closed, so the server's writes start failing.
  const auto deadline = Clock::now() + 5s;
  while (srv.finishedConnections() < 1 && Clock::now() < deadline) std::this_thread::sleep_for(20ms);
  EXPECT_EQ(srv.finishedConnections(), 1);
}

TEST(Watch, DestroyingABlockedStreamIsSafe) {
  // The server streams keep-alive blanks and never an event, so next() blocks; cancel()
  // must make it return the end (not an error, not an event), later next() calls keep
  // returning the end, and destroying the stream closes its connection.
  std::atomic<int> streaming{0};
  FakeServer srv([&](const HttpRequest&, Responder& w) {
    w.beginChunked(200);
    ++streaming;
    while (w.sleepMs(20) && w.chunk(" ")) {
    }
  });
  auto c = mustCreate(plainConfig(srv));
  auto waitFor = [](const std::function<bool()>& cond) {
    const auto deadline = Clock::now() + 10s;
    while (!cond() && Clock::now() < deadline) std::this_thread::sleep_for(5ms);
    return cond();
  };
  for (int i = 0; i < 3; ++i) {
    auto w = c->watch(kinds::ConfigMap, "ns", ListOptions{});
    ASSERT_TRUE(w);
    std::promise<Result<std::optional<WatchEvent>>> got;
    auto result = got.get_future();
    std::thread t([&] { got.set_value((*w)->next()); });
    ASSERT_TRUE(waitFor([&] { return streaming.load() == i + 1; })) << "the stream is open";
    EXPECT_EQ(result.wait_for(0s), std::future_status::timeout) << "next() is blocked (no event was sent)";
    (*w)->cancel();
    // A broken cancel() leaves next() blocked: fail (and abort on the joinable thread)
    // rather than hang.
    ASSERT_EQ(result.wait_for(30s), std::future_status::ready) << "cancel() unblocks next()";
    t.join();
    auto r = result.get();
    ASSERT_TRUE(r) << r.error().describe();
    EXPECT_FALSE(r->has_value()) << "a cancelled stream ends; it yields no event";
    auto again = (*w)->next();
    ASSERT_TRUE(again);
    EXPECT_FALSE(again->has_value()) << "and keeps returning the end";
    w->reset();  // destroy it
    EXPECT_TRUE(waitFor([&] { return srv.finishedConnections() == i + 1; }))
        << "the server sees the connection closed: " << srv.finishedConnections();
  }
}

TEST(Watch, StalledConnectionTimesOut) {
  FakeServer srv([](const HttpRequest& r, Responder& w) {
    w.beginChunked(200);
    w.chunk(eventLine("ADDED", "a", "1"));
    w.sleepMs(10000);  // silence past timeoutSeconds + slack
  });
  auto cfg = plainConfig(srv);
  cfg.watchInactivitySlack = 1s;
  auto c = mustCreate(cfg);
  ListOptions o;
  o.timeoutSeconds = 1;
  auto w = c->watch(kinds::ConfigMap, "ns", o);
  ASSERT_TRUE(w);
  ASSERT_TRUE((*w)->next());
  const auto t0 = Clock::now();
  auto ev = (*w)->next();
  const auto took = Clock::now() - t0;
  ASSERT_FALSE(ev);
  EXPECT_TRUE(ev.error().isTimeout()) << ev.error().describe();
  EXPECT_LT(took, 5s);
}

TEST(Watch, ManyConcurrentWatchesAndRequests) {
  FakeServer srv([](const HttpRequest& r, Responder& w) {
    if (r.hasParam("watch")) {
      w.beginChunked(200);
      for (int i = 0; i < 20; ++i) w.chunk(eventLine("ADDED", "o" + std::to_string(i), std::to_string(i + 1)));
      w.endChunked();
      return;
    }
    w.respond(200, "{}");
  });
  auto c = mustCreate(plainConfig(srv));
  std::vector<std::thread> threads;
  std::atomic<int> events{0}, gets{0};
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      auto w = c->watch(kinds::ConfigMap, "ns", ListOptions{});
      if (!w) return;
      while (true) {
        auto ev = (*w)->next();
        if (!ev || !*ev) break;
        ++events;
      }
      for (int i = 0; i < 5; ++i)
        if (c->get(kinds::ConfigMap, "ns", "x")) ++gets;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(events.load(), 8 * 20);
  EXPECT_EQ(gets.load(), 8 * 5);
}

}  // namespace
}  // namespace waterline::kube
