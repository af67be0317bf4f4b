#include "waterline/router/routes_source.h"

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>

#include "fixtures.h"
#include "waterline/runtime/http_server.h"

namespace waterline::router {
namespace {

using namespace routing::testing;

struct TempFile {
  std::filesystem::path path;
  TempFile() {
    path = std::filesystem::temp_directory_path() /
           ("wl-routes-" + std::to_string(::getpid()) + "-" + std::to_string(counter++) + ".json");
  }
  ~TempFile() { std::filesystem::remove(path); }
  void write(const std::string& s) {
    auto tmp = path;
    tmp += ".tmp";
    std::ofstream(tmp) << s;
    std::filesystem::rename(tmp, path);  // atomic replace, as kubelet's ConfigMap updates do
  }
  static inline int counter = 0;
};

// threePools sorts its entries by pool name: eu-north, eu-west, us-east; `util` is eu-west's.
routing::RoutingTable table(double util) {
  routing::RoutingTable t;
  t.deployments.push_back(deployment("d", api::DeploymentType::Global, threePools(util, 0, 0)));
  t.normalize();
  return t;
}

TEST(FileRoutesSource, LoadsReloadsOnChangeAndKeepsLastGoodTable) {
  TempFile f;
  FileRoutesSource src(f.path.string());
  std::vector<routing::RoutingTable> got;
  EXPECT_EQ(src.pollOnce(), RoutesSource::PollResult::Error);  // no file yet
  EXPECT_FALSE(src.lastError().empty());
  src.start([&](routing::RoutingTable t) { got.push_back(std::move(t)); }, std::chrono::hours(1));
  src.stop();  // the thread polled once; drive the rest by hand
  got.clear();
  f.write(table(0.1).toJson().dump());
  EXPECT_EQ(src.pollOnce(), RoutesSource::PollResult::Updated);
  EXPECT_EQ(src.pollOnce(), RoutesSource::PollResult::Unchanged);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0], table(0.1));
  f.write("{broken");
  EXPECT_EQ(src.pollOnce(), RoutesSource::PollResult::Error);
  EXPECT_EQ(got.size(), 1u);
  f.write(table(0.7).toJson().dump(2));
  EXPECT_EQ(src.pollOnce(), RoutesSource::PollResult::Updated);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_DOUBLE_EQ(got[1].deployments[0].entries[1].utilization, 0.7);
  EXPECT_TRUE(src.lastError().empty());
}

TEST(FileRoutesSource, BackgroundThreadPicksUpChanges) {
  TempFile f;
  f.write(table(0.1).toJson().dump());
  FileRoutesSource src(f.path.string());
  std::atomic<int> n{0};
  src.start([&](routing::RoutingTable) { n++; }, std::chrono::milliseconds(20));
  for (int i = 0; i < 200 && n.load() < 1; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(n.load(), 1);
  f.write(table(0.2).toJson().dump());
  for (int i = 0; i < 200 && n.load() < 2; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(n.load(), 2);
  src.stop();
}

TEST(FileRoutesSource, StartDeliversTheFirstTableBeforeItReturns) {
  // The router opens its port right after start(): a request must not find it without the
  // table that was already on disk.
  TempFile f;
  f.write(table(0.3).toJson().dump());
  FileRoutesSource src(f.path.string());
  std::atomic<int> n{0};
  src.start([&](routing::RoutingTable) { n++; }, std::chrono::hours(1));
  EXPECT_EQ(n.load(), 1);
  src.stop();
  EXPECT_EQ(n.load(), 1);
}

TEST(RoutesMerger, EarlierSourcesWin) {
  RoutesMerger m(2);
  auto a = table(0.1);
  auto b = table(0.9);
  b.deployments.push_back(deployment("only-b", api::DeploymentType::Global, threePools(0, 0, 0)));
  b.normalize();
  auto merged = m.update(1, b);
  EXPECT_EQ(merged.deployments.size(), 2u);
  merged = m.update(0, a);
  ASSERT_EQ(merged.deployments.size(), 2u);
  EXPECT_DOUBLE_EQ(merged.find({"team", "d"})->entries[1].utilization, 0.1);
  EXPECT_NE(merged.find({"team", "only-b"}), nullptr);
}

}  // namespace
}  // namespace waterline::router

namespace waterline::router {
namespace {

// An operator stand-in: GET /v1/routes with ETag; a poll carrying the current ETag and
// waitSeconds is held until the test publishes a new table.
struct FakeRoutesServer {
  runtime::HttpServer server;
  std::mutex mu;
  routing::RoutingTable table;
  std::vector<std::string> queries;
  std::vector<runtime::HttpResponder> held;

  runtime::HttpResponse ok() {
    runtime::HttpResponse r;
    r.contentType = "application/json";
    r.body = table.toJson().dump();
    r.headers["ETag"] = table.etag();
    return r;
  }
  FakeRoutesServer(routing::RoutingTable t) : table(std::move(t)) {
    server.handleAsync("/v1/routes", [this](const runtime::HttpRequest& req, runtime::HttpResponder respond) {
      std::lock_guard g(mu);
      queries.push_back(req.query);
      auto inm = req.headers.find("if-none-match");
      if (inm != req.headers.end() && inm->second == table.etag()) {
        if (req.query.find("waitSeconds=") != std::string::npos) return held.push_back(std::move(respond));
        return respond({304, "application/json", "", {}});
      }
      respond(ok());
    });
    EXPECT_EQ(server.start("127.0.0.1:0"), "");
  }
  void publish(routing::RoutingTable t) {
    std::vector<runtime::HttpResponder> wake;
    runtime::HttpResponse r;
    {
      std::lock_guard g(mu);
      table = std::move(t);
      wake.swap(held);
      r = ok();
    }
    for (auto& w : wake) w(r);
  }
  size_t heldCount() {
    std::lock_guard g(mu);
    return held.size();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(server.port()) + "/v1/routes"; }
};

TEST(HttpRoutesSource, LongPollsAndSeesAChangeAtOnceAndStopsPromptly) {
  FakeRoutesServer op(table(0.1));
  HttpRoutesSource src(op.url(), std::chrono::seconds(5), std::chrono::seconds(30));
  std::mutex mu;
  std::vector<double> seen;  // eu-west utilisation of each delivered table
  auto utilOf = [](const routing::RoutingTable& t) { return t.deployments.at(0).entries.at(1).utilization; };
  src.start(
      [&](routing::RoutingTable t) {
        std::lock_guard g(mu);
        seen.push_back(utilOf(t));
      },
      std::chrono::milliseconds(20));
  auto seenCount = [&] {
    std::lock_guard g(mu);
    return seen.size();
  };
  for (int i = 0; i < 300 && (seenCount() < 1 || op.heldCount() < 1); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ASSERT_EQ(seenCount(), 1u) << "the first poll (no ETag yet) is answered at once";
  ASSERT_EQ(op.heldCount(), 1u) << "the next poll waits on the server";
  {
    std::lock_guard g(op.mu);
    EXPECT_EQ(op.queries.front(), "") << "no waitSeconds before a table is held";
    EXPECT_EQ(op.queries.back(), "waitSeconds=30");
  }
  const auto published = std::chrono::steady_clock::now();
  op.publish(table(0.7));
  for (int i = 0; i < 300 && seenCount() < 2; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_EQ(seenCount(), 2u);
  EXPECT_LT(std::chrono::steady_clock::now() - published, std::chrono::seconds(1))
      << "a held poll delivers the change immediately, not at the next interval";
  EXPECT_DOUBLE_EQ(seen.back(), 0.7);
  for (int i = 0; i < 300 && op.heldCount() < 1; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ASSERT_EQ(op.heldCount(), 1u);
  const auto stopping = std::chrono::steady_clock::now();
  src.stop();  // a poll is held on the server: stop() must not wait for it
  EXPECT_LT(std::chrono::steady_clock::now() - stopping, std::chrono::seconds(2));
  EXPECT_TRUE(src.lastError().empty()) << src.lastError();
}

}  // namespace
}  // namespace waterline::router
