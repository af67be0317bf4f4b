#include <gtest/gtest.h>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "fake_client.h"
#include "waterline/runtime/events.h"
#include "waterline/runtime/http_server.h"

namespace waterline::runtime {
namespace {

using namespace std::chrono_literals;
using testing::FakeClient;
namespace http = boost::beast::http;

std::pair<int, std::string> httpGet(int port, const std::string& target) {
  boost::asio::io_context io;
  boost::asio::ip::tcp::socket s(io);
  s.connect({boost::asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port)});
  http::request<http::empty_body> req{http::verb::get, target, 11};
  req.set(http::field::host, "localhost");
  http::write(s, req);
  boost::beast::flat_buffer buf;
  http::response<http::string_body> res;
  http::read(s, buf, res);
  return {res.result_int(), res.body()};
}

TEST(HttpServer, RoutesAndNotFound) {
  HttpServer srv;
  srv.handle("/healthz", [](const HttpRequest&) { return HttpResponse{200, "text/plain", "ok\n", {}}; });
  srv.handle("/echo", [](const HttpRequest& r) { return HttpResponse{201, "text/plain", r.query, {}}; });
  ASSERT_EQ(srv.start("127.0.0.1:0"), "");
  ASSERT_GT(srv.port(), 0);
  EXPECT_EQ(httpGet(srv.port(), "/healthz"), std::make_pair(200, std::string("ok\n")));
  EXPECT_EQ(httpGet(srv.port(), "/echo?a=1"), std::make_pair(201, std::string("a=1")));
  EXPECT_EQ(httpGet(srv.port(), "/nope").first, 404);
  srv.stop();
}

TEST(HttpServer, BindErrorIsReported) {
  HttpServer a, b;
  ASSERT_EQ(a.start("127.0.0.1:0"), "");
  EXPECT_NE(b.start("127.0.0.1:" + std::to_string(a.port())), "");
}

TEST(EventRecorder, WritesCoreEventsAndAggregatesRepeats) {
  auto client = std::make_shared<FakeClient>();
  auto sim = std::make_shared<SimulatedTimeSource>();
  KubeEventRecorder rec(client, "waterline-operator", "test-host", sim);
  kube::Json pool = {{"apiVersion", "waterline.dev/v1alpha1"},
               {"kind", "CapacityPool"},
               {"metadata", {{"name", "eu-west"}, {"uid", "u1"}}}};
  rec.event(pool, "Warning", "NoNodes", "no node matches");
  rec.event(pool, "Warning", "NoNodes", "no node matches");
  rec.event(pool, "Normal", "NodesReady", "2/2 nodes ready");
  ASSERT_TRUE(rec.flush(20s));
  auto events = client->list(kube::kinds::CoreEvent, "default", {});
  ASSERT_TRUE(events);
  ASSERT_EQ(events->items.size(), 2u);
  int noNodesCount = 0;
  for (const auto& e : events->items) {
    EXPECT_EQ(e["involvedObject"]["kind"], "CapacityPool");
    EXPECT_EQ(e["source"]["component"], "waterline-operator");
    if (e["reason"] == "NoNodes") noNodesCount = e["count"];
  }
  EXPECT_EQ(noNodesCount, 2);
  EXPECT_EQ(rec.written(), 3u);
}

}  // namespace
}  // namespace waterline::runtime
