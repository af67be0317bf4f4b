// PtuShareExchange (router/ptu_share_exchange.h) against a real redis-server.
#include <gtest/gtest.h>
#include <hiredis/hiredis.h>

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "waterline/router/ptu_share_exchange.h"
#include "waterline/routing/admission.h"
#include "waterline/routing/table.h"

namespace waterline::router {
namespace {

using namespace std::chrono_literals;

std::string findRedisServer() {
  for (const char* p : {"/usr/bin/redis-server", "/usr/local/bin/redis-server", "/usr/sbin/redis-server"})
    if (access(p, X_OK) == 0) return p;
  return "";
}

int freePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  int port = -1;
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 && getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0)
    port = ntohs(a.sin_port);
  close(fd);
  return port;
}

// A redis-server on a free loopback port, no persistence, killed with the test.
class RedisServer {
 public:
  bool start() {
    bin_ = findRedisServer();
    if (bin_.empty()) return false;
    port_ = freePort();
    dir_ = std::filesystem::temp_directory_path() / ("ptu-shares-redis-" + std::to_string(getpid()) + "-" + std::to_string(port_));
    std::filesystem::create_directories(dir_);
    pid_ = fork();
    if (pid_ == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      std::string port = std::to_string(port_);
      execl(bin_.c_str(), bin_.c_str(), "--port", port.c_str(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", dir_.c_str(), "--logfile", "", "--loglevel", "warning", (char*)nullptr);
      _exit(127);
    }
    for (int i = 0; i < 200; ++i) {
      if (auto* c = redisConnect("127.0.0.1", port_)) {
        bool ok = !c->err;
        redisFree(c);
        if (ok) return true;
      }
      std::this_thread::sleep_for(25ms);
    }
    return false;
  }
  void stop() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
      pid_ = -1;
    }
  }
  ~RedisServer() {
    stop();
    std::error_code ec;
    if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
  }
  int port() const { return port_; }

 private:
  std::string bin_;
  int port_ = -1;
  pid_t pid_ = -1;
  std::filesystem::path dir_;
};

routing::DeploymentRoutes deployment() {
  routing::DeploymentRoutes d;
  d.deployment = {"team", "llama"};
  d.model = "llama";
  d.deploymentType = api::DeploymentType::Global;
  routing::ReservationInfo r;
  r.reservation = {"team", "ptu"};
  r.tokensPerMinute = 600'000;
  d.reservations = {r};
  return d;
}

routing::RoutingTable table() {
  routing::RoutingTable t;
  t.deployments.push_back(deployment());
  t.normalize();
  return t;
}

class PtuSharesRedis : public ::testing::Test {
 protected:
  void SetUp() override {
    if (findRedisServer().empty())
      GTEST_SKIP() << "redis-server is not installed (Debian package redis-server; hack/deps.sh installs it): skipping";
    ASSERT_TRUE(redis_.start()) << "redis-server did not start";
  }
  PtuShareExchange::Options options(std::string id) {
    PtuShareExchange::Options o;
    o.address = {"127.0.0.1", redis_.port()};
    o.identity = std::move(id);
    o.interval = 100ms;  // staleAfter: 5 intervals, but at least 2 s
    return o;
  }
  double limitOf(routing::AdmissionController& ac) {
    return ac.stats(RealTimeSource::instance()->monotonicTime()).at("team/ptu").limit;
  }
  RedisServer redis_;
};

TEST_F(PtuSharesRedis, SharesFollowDemandAcrossTwoReplicas) {
  auto now = [] { return RealTimeSource::instance()->monotonicTime(); };
  routing::AdmissionController a(routing::LimiterMode::SlidingWindow, 0.5), b(routing::LimiterMode::SlidingWindow, 0.5);
  a.sync(table(), now());
  b.sync(table(), now());
  PtuShareExchange xa(options("a"), a), xb(options("b"), b);
  auto d = deployment();
  // All demand on a: 300 requests of 4,000 tokens (1.2M), twice the reservation; its
  // static half would admit 75 of them.
  int admitted = 0;
  for (int round = 0; round < 30; ++round) {
    for (int k = 0; k < 10; ++k)
      if (a.admit(d, 4000, now()).outcome == routing::AdmitOutcome::Admitted) ++admitted;
    ASSERT_EQ(xa.exchangeOnce(), "");
    ASSERT_EQ(xb.exchangeOnce(), "");
    std::this_thread::sleep_for(20ms);
  }
  const double la = limitOf(a), lb = limitOf(b);
  EXPECT_NEAR(la + lb, 600'000, 600'000 * 0.02) << "the shares sum to the reservation";
  EXPECT_GT(la, 400'000) << "the busy replica holds most of it";
  EXPECT_GE(admitted, 140) << "nearly the whole reservation (150 requests) admitted on the busy replica";
  EXPECT_LE(admitted, 150) << "never more than the reservation";
}

TEST_F(PtuSharesRedis, AStoppedPeerIsDroppedAndTheStoreGoingAwayRestoresTheStaticSplit) {
  auto now = [] { return RealTimeSource::instance()->monotonicTime(); };
  routing::AdmissionController a(routing::LimiterMode::SlidingWindow, 0.5), b(routing::LimiterMode::SlidingWindow, 0.5);
  a.sync(table(), now());
  b.sync(table(), now());
  PtuShareExchange xa(options("a"), a);
  auto xb = std::make_unique<PtuShareExchange>(options("b"), b);
  ASSERT_EQ(xa.exchangeOnce(), "");
  ASSERT_EQ(xb->exchangeOnce(), "");
  ASSERT_EQ(xa.exchangeOnce(), "");
  EXPECT_NEAR(limitOf(a), 300'000, 1000) << "two idle replicas: an even split";
  // b leaves cleanly: its report is deleted, a has the whole reservation at once.
  xb->stop(true);
  xb.reset();
  ASSERT_EQ(xa.exchangeOnce(), "");
  EXPECT_NEAR(limitOf(a), 600'000, 1000);
  // A peer that stops reporting (no clean stop) counts until its report is stale (2 s).
  routing::AdmissionController c(routing::LimiterMode::SlidingWindow, 0.5);
  c.sync(table(), now());
  {
    PtuShareExchange xc(options("c"), c);
    ASSERT_EQ(xc.exchangeOnce(), "");
  }  // destroyed without removing its report
  ASSERT_EQ(xa.exchangeOnce(), "");
  EXPECT_NEAR(limitOf(a), 300'000, 1000);
  std::this_thread::sleep_for(2100ms);
  ASSERT_EQ(xa.exchangeOnce(), "");
  EXPECT_NEAR(limitOf(a), 600'000, 1000) << "the stale peer was dropped";
  // The store goes away: a keeps its last share while reports would still be fresh,
  // then goes back to the static split (its common share, 0.5).
  redis_.stop();
  EXPECT_NE(xa.exchangeOnce(), "");
  EXPECT_NEAR(limitOf(a), 600'000, 1000);
  std::this_thread::sleep_for(2100ms);
  EXPECT_NE(xa.exchangeOnce(), "");
  EXPECT_NEAR(limitOf(a), 300'000, 1000);
  EXPECT_GE(xa.failures(), 2u);
}

TEST_F(PtuSharesRedis, TheRouterBinaryPublishesItsReportWithTheFlag) {
  const auto dir = std::filesystem::temp_directory_path() / ("ptu-shares-router-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  const auto routes = dir / "routes.json";
  {
    std::ofstream f(routes);
    f << R"({"apiVersion":"waterline.dev/v1alpha1","kind":"RoutingTableList","items":[{"apiVersion":"waterline.dev/v1alpha1",)"
      << R"("kind":"RoutingTable","metadata":{"name":"team.llama"},"spec":{"deployment":{"namespace":"team","name":"llama"},)"
      << R"("model":"llama","deploymentType":"Global","reservations":[{"name":"ptu","tokensPerMinute":600000}],)"
      << R"("entries":[{"pool":"p","region":"r","endpoints":["127.0.0.1:9"],"capacityTokensPerMinute":1000,"healthy":true,"weight":1,)"
      << R"("heartbeatTime":"2026-01-01T00:00:00Z"}]}}]})";
  }
  const std::string store = "--ptu-share-store=redis://127.0.0.1:" + std::to_string(redis_.port());
  const std::string routesFlag = "--routes-file=" + routes.string();
  pid_t pid = fork();
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    int null = ::open("/dev/null", O_WRONLY);
    if (null >= 0) dup2(null, 1);
    execl(WATERLINE_ROUTER_BIN, WATERLINE_ROUTER_BIN, "--listen=127.0.0.1:0", "--threads=1", "--log-level=warn",
          "--ptu-share-interval=200ms", "--shutdown-delay=0", "--stale-after=0", store.c_str(), routesFlag.c_str(), (char*)nullptr);
    _exit(127);
  }
  redisContext* c = redisConnect("127.0.0.1", redis_.port());
  ASSERT_TRUE(c && !c->err);
  size_t fields = 0;
  std::string value;
  for (int i = 0; i < 100 && fields == 0; ++i) {
    std::this_thread::sleep_for(50ms);
    auto* r = static_cast<redisReply*>(redisCommand(c, "HGETALL waterline:ptu:team/ptu"));
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements >= 2) {
      fields = r->elements / 2;
      value.assign(r->element[1]->str, r->element[1]->len);
    }
    if (r) freeReplyObject(r);
  }
  kill(pid, SIGTERM);
  // waterline-router drains for --shutdown-delay (5 s by default) before it stops.
  int st = 0;
  waitpid(pid, &st, 0);
  EXPECT_EQ(fields, 1u) << "the router wrote its report into waterline:ptu:team/ptu";
  auto rep = routing::decodeReport("x", value);
  ASSERT_TRUE(rep) << value;
  // And it removed it when it stopped.
  auto* r = static_cast<redisReply*>(redisCommand(c, "HLEN waterline:ptu:team/ptu"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->integer, 0);
  freeReplyObject(r);
  redisFree(c);
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

}  // namespace
}  // namespace waterline::router
