// waterline-router against hostile clients and upstreams, over raw loopback sockets:
// request smuggling / framing errors (each answered once, then the connection closed),
// slowloris heads, the connection, in-flight and body-bytes caps, a huge model name in
// the 404, and an upstream reporting usage INT64_MAX (docs/security.md, "Router").
#include "support.h"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <nlohmann/json.hpp>

#include "waterline/router/server.h"
#include "waterline/routing/table.h"

namespace waterline::router {
namespace {

using namespace testing;
using json = nlohmann::json;
using api::DeploymentType;
using namespace std::chrono_literals;

const std::string kModel = "meta-llama/Llama-3.1-8B-Instruct";

std::string chat(const std::string& model, int maxTokens = 16) {
  json b = {{"model", model},
            {"messages", json::array({{{"role", "user"}, {"content", "Say hello in one word."}}})},
            {"max_tokens", maxTokens}};
  return b.dump();
}

// A plain blocking loopback socket; every read gives up after 10 s (a test that would
// otherwise hang fails instead).
class Raw {
 public:
  explicit Raw(int port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    timeval tv{10, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    ok_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  }
  ~Raw() { close(); }
  Raw(const Raw&) = delete;
  Raw& operator=(const Raw&) = delete;

  bool connected() const { return ok_; }
  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  // False once the peer has closed (EPIPE/ECONNRESET).
  bool send(std::string_view bytes) {
    while (!bytes.empty()) {
      ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      bytes.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }
  // Everything until the peer closes (or the 10 s receive timeout: `eof` tells which).
  std::string readToEof(bool* eof = nullptr) {
    std::string out;
    char b[65536];
    for (;;) {
      ssize_t n = ::recv(fd_, b, sizeof b, 0);
      if (n > 0) {
        out.append(b, static_cast<size_t>(n));
        continue;
      }
      if (eof) *eof = n == 0 || errno == ECONNRESET;
      return out;
    }
  }
  // One whole response (head + Content-Length body).
  std::string readResponse() {
    std::string out;
    char b[65536];
    for (;;) {
      auto he = out.find("\r\n\r\n");
      if (he != std::string::npos) {
        auto cl = lower(out.substr(0, he)).find("content-length:");
        size_t len = cl == std::string::npos ? 0 : std::stoul(out.substr(cl + 15));
        if (out.size() >= he + 4 + len) return out;
      }
      ssize_t n = ::recv(fd_, b, sizeof b, 0);
      if (n <= 0) return out;
      out.append(b, static_cast<size_t>(n));
    }
  }
  // The peer has closed: a non-blocking read sees EOF or a reset.
  bool peerClosed() {
    char c;
    ssize_t n = ::recv(fd_, &c, 1, MSG_DONTWAIT | MSG_PEEK);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
  }

  static std::string lower(std::string s) {
    for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
  }

 private:
  int fd_ = -1;
  bool ok_ = false;
};

// Status codes of the responses in `bytes`, in order (parsed one after the other; a
// response cut short ends the list).
std::vector<int> statuses(const std::string& bytes) {
  std::vector<int> out;
  std::size_t off = 0;
  while (off < bytes.size()) {
    http::response_parser<http::string_body> p;
    p.eager(true);
    p.body_limit(64u << 20);
    beast::error_code ec;
    const std::size_t n = p.put(asio::buffer(bytes.data() + off, bytes.size() - off), ec);
    if (ec || !p.is_done() || n == 0) break;
    out.push_back(static_cast<int>(p.get().result_int()));
    off += n;
  }
  return out;
}

routing::RoutingEntry entry(std::string pool, std::vector<std::string> endpoints) {
  routing::RoutingEntry e;
  e.pool = std::move(pool);
  e.region = "eu-west";
  e.dataZone = "EU";
  e.utilization = 0.1;
  e.capacityTokensPerMinute = 1e6;
  e.loadTokensPerMinute = 1e5;
  e.endpoints = std::move(endpoints);
  e.healthy = true;
  e.weight = 1;
  e.heartbeatTime = std::chrono::system_clock::now();
  return e;
}

class RouterHardeningIT : public ::testing::Test {
 protected:
  std::atomic<bool> hold{false};  // the upstream holds each request while true
  TestUpstream up{[this](const SeenRequest&) {
    for (int i = 0; i < 2000 && hold.load(); ++i) std::this_thread::sleep_for(5ms);
    return TestUpstream::completion(10, 5);
  }};
  std::unique_ptr<RouterServer> router;

  void start(RouterConfig cfg = {}) {
    cfg.listenAddress = "127.0.0.1";
    cfg.port = 0;
    cfg.threads = 2;
    cfg.seed = 1;
    router = std::make_unique<RouterServer>(cfg);
    auto ok = router->start();
    ASSERT_TRUE(ok) << ok.error();
    routing::DeploymentRoutes d;
    d.deployment = {"team", "dz"};
    d.model = kModel;
    d.deploymentType = DeploymentType::DataZone;
    d.dataZone = "EU";
    d.entries = {entry("eu-west", {up.endpoint()})};
    routes(d);
  }
  void routes(routing::DeploymentRoutes d) {
    routing::RoutingTable t;
    t.deployments = {std::move(d)};
    t.normalize();
    router->setRoutes(std::move(t));
  }
  int port() const { return router->port(); }

  // A metric's value from the registry (in-process: no connection needed).
  double metric(const std::string& series) { return metricValue(router->registry().serialize(), series, -1); }
  static bool eventually(const std::function<bool()>& pred, std::chrono::milliseconds limit = 10s) {
    const auto end = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < end) {
      if (pred()) return true;
      std::this_thread::sleep_for(5ms);
    }
    return pred();
  }

  void TearDown() override {
    hold = false;
    if (router) router->stop();
  }
};

const std::string kDebug = "GET /debug/routes HTTP/1.1\r\nHost: x\r\n\r\n";

std::string post(const std::string& fields, const std::string& body = "") {
  return "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" + fields + "\r\n" + body;
}

TEST_F(RouterHardeningIT, FramingErrorsAreAnsweredOnceAndCloseTheConnection) {
  start();
  const std::string body = chat("team/dz");
  const std::string cl = "Content-Length: " + std::to_string(body.size()) + "\r\n";
  const std::string chunkedBody = [&] {
    char size[16];
    std::snprintf(size, sizeof size, "%zx", body.size());
    return std::string(size) + "\r\n" + body + "\r\n0\r\n\r\n";
  }();
  struct Case {
    const char* name;
    std::string bytes;  // a request whose framing is ambiguous or malformed, then a smuggled GET
    int status;
  };
  const std::vector<Case> cases = {
      {"te-chunked-identity", post("Transfer-Encoding: chunked, identity\r\n") + kDebug, 400},
      {"te-chunked-identity-with-body", post("Transfer-Encoding: chunked, identity\r\n", chunkedBody) + kDebug, 400},
      {"te-xchunked-with-cl", post("Transfer-Encoding: xchunked\r\n" + cl, body) + kDebug, 400},
      {"cl-with-te-xchunked", post(cl + "Transfer-Encoding: xchunked\r\n", body) + kDebug, 400},
      {"te-chunked-with-cl", post("Transfer-Encoding: chunked\r\n" + cl, chunkedBody) + kDebug, 400},
      {"te-chunked-chunked", post("Transfer-Encoding: chunked, chunked\r\n", chunkedBody) + kDebug, 400},
      {"te-gzip-chunked", post("Transfer-Encoding: gzip, chunked\r\n", chunkedBody) + kDebug, 501},
      {"te-two-fields", post("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", chunkedBody) + kDebug, 400},
      {"te-empty", post("Transfer-Encoding:\r\n", body) + kDebug, 400},
      {"te-http10",
       "POST /v1/chat/completions HTTP/1.0\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n" +
           chunkedBody + kDebug,
       400},
      {"cl-two-equal", post(cl + cl, body) + kDebug, 400},
      {"cl-two-different", post(cl + "Content-Length: 1\r\n", body) + kDebug, 400},
      {"cl-list", post("Content-Length: " + std::to_string(body.size()) + ", " + std::to_string(body.size()) + "\r\n", body) +
                      kDebug,
       400},
      {"cl-plus", post("Content-Length: +" + std::to_string(body.size()) + "\r\n", body) + kDebug, 400},
      {"obs-fold", post("X-A: a\r\n b\r\n" + cl, body) + kDebug, 400},
      {"obs-fold-te", post("Transfer-Encoding:\r\n chunked\r\n", chunkedBody) + kDebug, 400},
      {"bare-cr", post("X-A: a\rb\r\n" + cl, body) + kDebug, 400},
      {"bare-lf", "POST /v1/chat/completions HTTP/1.1\nHost: x\nContent-Length: 0\n\n" + kDebug, 400},
      {"ws-before-colon", post("Transfer-Encoding : chunked\r\n" + cl, body) + kDebug, 400},
      {"two-host", post("Host: y\r\n" + cl, body) + kDebug, 400},
      {"http2-version", "GET /healthz HTTP/2.0\r\nHost: x\r\n\r\n" + kDebug, 400},
      {"garbage", std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 15) + kDebug, 400},
  };
  for (const auto& c : cases) {
    Raw s(port());
    ASSERT_TRUE(s.connected());
    ASSERT_TRUE(s.send(c.bytes)) << c.name;
    bool eof = false;
    const std::string got = s.readToEof(&eof);
    EXPECT_TRUE(eof) << c.name << ": the connection stayed open";
    const auto st = statuses(got);
    EXPECT_EQ(st.size(), 1u) << c.name << ": " << got;  // the smuggled GET is never answered
    if (!st.empty()) EXPECT_EQ(st[0], c.status) << c.name << ": " << got;
    EXPECT_NE(Raw::lower(got).find("connection: close"), std::string::npos) << c.name;
    EXPECT_EQ(got.find("\"deployments\""), std::string::npos) << c.name << ": the routing table leaked";
  }
  EXPECT_EQ(up.requestCount(), 0u);
  EXPECT_GE(metric(R"(waterline_router_rejected_total{reason="framing"})"), static_cast<double>(cases.size()));
  // Valid chunked and Content-Length requests, pipelined on one connection, are served.
  Raw ok(port());
  ASSERT_TRUE(ok.send(post("Transfer-Encoding: chunked\r\n", chunkedBody) + post(cl, body) +
                      "GET /debug/routes HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
  bool eof = false;
  const std::string all = ok.readToEof(&eof);
  EXPECT_TRUE(eof);
  EXPECT_EQ(statuses(all), (std::vector<int>{200, 200, 200})) << all;
}

TEST_F(RouterHardeningIT, SlowHeadsAreClosedAfterTheHeaderTimeoutWhileGoodRequestsAreServed) {
  RouterConfig cfg;
  cfg.headerTimeout = 300ms;
  cfg.clientIdleTimeout = 60s;  // longer than the test: only the header timeout can close them
  start(cfg);
  constexpr int kSlow = 20;
  std::vector<std::unique_ptr<Raw>> slow;
  for (int i = 0; i < kSlow; ++i) {
    slow.push_back(std::make_unique<Raw>(port()));
    ASSERT_TRUE(slow.back()->connected());
    ASSERT_TRUE(slow.back()->send("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nX-Slow: "));
  }
  // Trickle one byte per connection per round while a good client keeps being answered.
  Client good(port());
  int closed = 0, goodOk = 0, goodSent = 0;
  std::vector<bool> isClosed(kSlow, false);
  const auto end = std::chrono::steady_clock::now() + 20s;
  while (closed < kSlow && std::chrono::steady_clock::now() < end) {
    for (int i = 0; i < kSlow; ++i) {
      if (isClosed[i]) continue;
      if (slow[i]->peerClosed() || !slow[i]->send("a")) {
        isClosed[i] = true;
        ++closed;
      }
    }
    ++goodSent;
    if (good.post("/v1/chat/completions", chat("team/dz")).status == 200) ++goodOk;
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_EQ(closed, kSlow);
  EXPECT_EQ(goodOk, goodSent);
  EXPECT_GE(metric(R"(waterline_router_rejected_total{reason="header_timeout"})"), kSlow);
  // An idle keep-alive connection is not a slow head: it outlives the header timeout.
  Client idle(port());
  ASSERT_EQ(idle.post("/v1/chat/completions", chat("team/dz")).status, 200);
  Raw probe(port());
  ASSERT_TRUE(probe.connected());
  // Wait until well past the header timeout, measured by the router closing a slow head.
  ASSERT_TRUE(probe.send("GET /healthz HTTP/1.1\r\n"));
  ASSERT_TRUE(eventually([&] { return probe.peerClosed(); }));
  EXPECT_EQ(idle.post("/v1/chat/completions", chat("team/dz")).status, 200);
}

TEST_F(RouterHardeningIT, ConnectionsOverTheCapGet503AndAreCounted) {
  RouterConfig cfg;
  cfg.maxConnections = 4;
  start(cfg);
  std::vector<std::unique_ptr<Raw>> held;
  for (int i = 0; i < 4; ++i) held.push_back(std::make_unique<Raw>(port()));
  ASSERT_TRUE(eventually([&] { return metric("waterline_router_connections") == 4; }))
      << metric("waterline_router_connections");
  Raw over(port());
  ASSERT_TRUE(over.connected());
  bool eof = false;
  const std::string got = over.readToEof(&eof);
  EXPECT_TRUE(eof);
  EXPECT_EQ(statuses(got), (std::vector<int>{503})) << got;
  EXPECT_NE(got.find("too_many_connections"), std::string::npos) << got;
  EXPECT_NE(Raw::lower(got).find("retry-after: 1"), std::string::npos) << got;
  EXPECT_EQ(metric(R"(waterline_router_rejected_total{reason="connections"})"), 1);
  EXPECT_EQ(metric("waterline_router_connections"), 4);
  // Room again once one closes.
  held.pop_back();
  ASSERT_TRUE(eventually([&] { return metric("waterline_router_connections") == 3; }));
  EXPECT_EQ(testing::post(port(), "/v1/chat/completions", chat("team/dz")).status, 200);
}

TEST_F(RouterHardeningIT, RequestsOverTheInflightCapGet503WithRetryAfter) {
  RouterConfig cfg;
  cfg.maxInflight = 2;
  start(cfg);
  hold = true;
  std::vector<std::thread> held;
  std::atomic<int> heldOk{0};
  for (int i = 0; i < 2; ++i)
    held.emplace_back([&] {
      if (testing::post(port(), "/v1/chat/completions", chat("team/dz")).status == 200) heldOk++;
    });
  ASSERT_TRUE(eventually([&] { return up.requestCount() == 2; }));
  EXPECT_EQ(metric("waterline_router_inflight_requests"), 2);
  Client c(port());
  auto r = c.post("/v1/chat/completions", chat("team/dz"));
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.header("retry-after"), "1");
  EXPECT_EQ(json::parse(r.body)["error"]["code"], "router_overloaded");
  // Not a proxied request: health and metrics are still served on the same connection.
  EXPECT_EQ(c.request(http::verb::get, "/healthz").status, 200);
  EXPECT_EQ(metric(R"(waterline_router_rejected_total{reason="inflight"})"), 1);
  hold = false;
  for (auto& t : held) t.join();
  EXPECT_EQ(heldOk.load(), 2);
  EXPECT_EQ(c.post("/v1/chat/completions", chat("team/dz")).status, 200);
}

TEST_F(RouterHardeningIT, BodyBytesInFlightAreCapped) {
  RouterConfig cfg;
  cfg.maxBodyBytes = 64 << 10;
  cfg.maxBodyBytesInFlight = 128 << 10;
  start(cfg);
  std::string body = chat("team/dz");
  body.resize(64 << 10, ' ');
  const std::string head = post("Content-Length: " + std::to_string(body.size()) + "\r\n");
  // Two requests whose bodies are still arriving hold the whole cap.
  Raw a(port()), b(port());
  ASSERT_TRUE(a.send(head + body.substr(0, 1000)));
  ASSERT_TRUE(b.send(head + body.substr(0, 1000)));
  ASSERT_TRUE(eventually([&] { return metric("waterline_router_body_bytes_in_flight") == 128 << 10; }))
      << metric("waterline_router_body_bytes_in_flight");
  // A third (Content-Length) is refused before its body is read, and closed.
  {
    Raw c(port());
    const std::string small = chat("team/dz");
    ASSERT_TRUE(c.send(post("Content-Length: " + std::to_string(small.size()) + "\r\n", small) + kDebug));
    bool eof = false;
    const std::string got = c.readToEof(&eof);
    EXPECT_TRUE(eof);
    EXPECT_EQ(statuses(got), (std::vector<int>{503})) << got;
    EXPECT_NE(got.find("router_overloaded"), std::string::npos) << got;
  }
  // A chunked one too, once its body grows past what is left.
  {
    Raw c(port());
    ASSERT_TRUE(c.send(post("Transfer-Encoding: chunked\r\n", "10\r\n{\"model\":\"x\"    \r\n")));
    bool eof = false;
    const std::string got = c.readToEof(&eof);
    EXPECT_TRUE(eof);
    EXPECT_EQ(statuses(got), (std::vector<int>{503})) << got;
  }
  EXPECT_EQ(metric(R"(waterline_router_rejected_total{reason="body_bytes"})"), 2);
  // The held requests complete and are answered; the bytes are given back.
  ASSERT_TRUE(a.send(body.substr(1000)));
  ASSERT_TRUE(b.send(body.substr(1000)));
  EXPECT_EQ(statuses(a.readResponse()), (std::vector<int>{200}));
  EXPECT_EQ(statuses(b.readResponse()), (std::vector<int>{200}));
  ASSERT_TRUE(eventually([&] { return metric("waterline_router_body_bytes_in_flight") == 0; }));
  EXPECT_EQ(testing::post(port(), "/v1/chat/completions", chat("team/dz")).status, 200);
}

TEST_F(RouterHardeningIT, LargeBodiesLeaveRoomForSmallRequests) {
  RouterConfig cfg;
  cfg.maxBodyBytes = 128 << 10;
  cfg.maxBodyBytesInFlight = 256 << 10;  // large bodies (> 64 KiB) may hold 192 KiB of it
  start(cfg);
  std::string body = chat("team/dz");
  body.resize(96 << 10, ' ');
  const std::string head = post("Content-Length: " + std::to_string(body.size()) + "\r\n");
  Raw a(port()), b(port());
  ASSERT_TRUE(a.send(head + body.substr(0, 100)));
  ASSERT_TRUE(b.send(head + body.substr(0, 100)));
  ASSERT_TRUE(eventually([&] { return metric("waterline_router_body_bytes_in_flight") == 192 << 10; }))
      << metric("waterline_router_body_bytes_in_flight");
  // A third large body is refused although 64 KiB are free...
  {
    Raw c(port());
    ASSERT_TRUE(c.send(head + body));
    EXPECT_EQ(statuses(c.readToEof()), (std::vector<int>{503}));
  }
  // ...and ordinary requests still get through.
  Client good(port());
  for (int i = 0; i < 5; ++i) EXPECT_EQ(good.post("/v1/chat/completions", chat("team/dz")).status, 200);
  ASSERT_TRUE(a.send(body.substr(100)));
  ASSERT_TRUE(b.send(body.substr(100)));
  EXPECT_EQ(statuses(a.readResponse()), (std::vector<int>{200}));
  EXPECT_EQ(statuses(b.readResponse()), (std::vector<int>{200}));
}

TEST_F(RouterHardeningIT, ErrorsQuoteABoundedPrefixOfRequestData) {
  RouterConfig cfg;
  cfg.maxBodyBytes = 8 << 20;
  start(cfg);
  Client c(port());
  const std::string model(4 << 20, 'm');
  auto r = c.post("/v1/chat/completions", chat(model));
  EXPECT_EQ(r.status, 404);
  EXPECT_LT(r.body.size(), 1024u);
  auto msg = json::parse(r.body)["error"]["message"].get<std::string>();
  EXPECT_NE(msg.find(std::string(256, 'm') + "\u2026`"), std::string::npos) << msg;
  // A long Azure deployment name, a long path and a long method.
  const std::string name(30000, 'd');
  auto az = c.post("/openai/deployments/" + name + "/chat/completions", R"({"messages":[{"role":"user","content":"x"}]})");
  EXPECT_EQ(az.status, 404);
  EXPECT_LT(az.body.size(), 1024u);
  auto path = c.request(http::verb::get, "/" + std::string(30000, 'p'));
  EXPECT_EQ(path.status, 404);
  EXPECT_LT(path.body.size(), 1024u);
  Raw m(port());
  ASSERT_TRUE(m.send(std::string(20000, 'M') + " /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"));
  const std::string got = m.readResponse();
  EXPECT_EQ(statuses(got), (std::vector<int>{405})) << got.substr(0, 200);
  EXPECT_LT(got.size(), 1024u);
  // A path that is not UTF-8 still gets a JSON answer.
  Raw u(port());
  ASSERT_TRUE(u.send("GET /\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n"));
  const std::string gu = u.readResponse();
  ASSERT_EQ(statuses(gu).size(), 1u) << gu;  // 404, or 400 where Beast refuses the target
  EXPECT_FALSE(json::parse(gu.substr(gu.find("\r\n\r\n") + 4), nullptr, false).is_discarded());
}

TEST_F(RouterHardeningIT, UpstreamUsageOfInt64MaxDoesNotLockTheReservation) {
  start();
  routing::DeploymentRoutes d;
  d.deployment = {"team", "dz"};
  d.model = kModel;
  d.deploymentType = DeploymentType::DataZone;
  d.dataZone = "EU";
  d.entries = {entry("eu-west", {up.endpoint()})};
  routing::ReservationInfo res;
  res.reservation = {"team", "ptu"};
  res.tokensPerMinute = 1000;
  d.reservations = {res};
  routes(d);
  up.setHandler([](const SeenRequest&) {
    Reply r;
    r.body = R"({"id":"x","object":"chat.completion","choices":[],"usage":{"prompt_tokens":9223372036854775807,)"
             R"("completion_tokens":9223372036854775807,"total_tokens":9223372036854775807}})";
    return r;
  });
  Client c(port());
  ASSERT_EQ(c.post("/v1/chat/completions", chat("team/dz", 16)).status, 200);
  ASSERT_TRUE(eventually([&] { return metric("waterline_router_usage_clamped_total") == 1; }));
  const double used = router->admission().stats(std::chrono::steady_clock::now())["team/ptu"].used;
  EXPECT_LE(used, 1000) << "settled beyond what the request could produce";
  EXPECT_TRUE(std::isfinite(used));
  // The next ordinary request is admitted.
  up.setHandler([](const SeenRequest&) { return TestUpstream::completion(10, 5); });
  auto next = c.post("/v1/chat/completions", chat("team/dz", 16));
  EXPECT_EQ(next.status, 200) << next.body;
}

}  // namespace
}  // namespace waterline::router
