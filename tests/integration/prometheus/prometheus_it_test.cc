// The Prometheus client against a REAL Prometheus (Debian's /usr/bin/prometheus, or
// $WATERLINE_PROMETHEUS): started on a free port with a temporary TSDB, scraping a tiny
// static /metrics target that this test serves. Covers a working query, a rendered
// query template, a PromQL syntax error (BadData with the server's message), an empty
// result, NaN, a scalar, and Prometheus being killed (Transport) and restarted (works
// again). Skipped when no prometheus binary is found.
#include <gtest/gtest.h>

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include "waterline/sim/http_server.h"
#include "waterline/sources/prometheus.h"

namespace waterline::sources {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

std::string findPrometheus() {
  if (const char* p = std::getenv("WATERLINE_PROMETHEUS"); p && *p) return p;
  if (const char* path = std::getenv("PATH")) {
    std::string s = path;
    size_t start = 0;
    while (start <= s.size()) {
      const size_t end = s.find(':', start);
      const std::string dir = s.substr(start, end == std::string::npos ? std::string::npos : end - start);
      const fs::path cand = fs::path(dir.empty() ? "." : dir) / "prometheus";
      if (::access(cand.c_str(), X_OK) == 0) return cand.string();
      if (end == std::string::npos) break;
      start = end + 1;
    }
  }
  return {};
}

uint16_t freePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

// The scrape target: two gauges and a counter that grows on every scrape.
class Target {
 public:
  Target() : work_(boost::asio::make_work_guard(io_)) {
    server_ = sim::HttpServer::start(io_, "127.0.0.1", 0, [this](const sim::HttpRequest& r, sim::HttpExchangePtr ex) {
      if (r.path != "/metrics") {
        ex->respond({404, "text/plain", "not found\n", {}});
        return;
      }
      tokens_ += 100;
      std::string body =
          "# HELP wl_it_load Load per deployment.\n# TYPE wl_it_load gauge\n"
          "wl_it_load{namespace=\"ml\",deployment=\"llama-70b\"} 40\n"
          "wl_it_load{namespace=\"ml\",deployment=\"other\"} 7\n"
          "wl_it_load{namespace=\"ml\",deployment=\"broken\"} NaN\n"
          "# HELP wl_it_tokens_total Tokens.\n# TYPE wl_it_tokens_total counter\n"
          "wl_it_tokens_total{deployment=\"llama-70b\"} " +
          std::to_string(tokens_) + "\n";
      ex->respond({200, "text/plain; version=0.0.4", body, {}});
    });
    thread_ = std::thread([this] { io_.run(); });
  }
  ~Target() {
    boost::asio::post(io_, [this] {
      server_->stop();
      work_.reset();
      io_.stop();
    });
    thread_.join();
  }
  uint16_t port() const { return server_->port(); }

 private:
  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_;
  std::unique_ptr<sim::HttpServer> server_;
  std::thread thread_;
  long tokens_ = 0;
};

class PrometheusProcess {
 public:
  PrometheusProcess(std::string binary, uint16_t targetPort)
      : binary_(std::move(binary)), port_(freePort()) {
    dir_ = fs::temp_directory_path() / ("waterline-prom-it-" + std::to_string(::getpid()) + "-" + std::to_string(port_));
    fs::create_directories(dir_ / "data");
    std::ofstream cfg(dir_ / "prometheus.yml");
    cfg << "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
           "scrape_configs:\n  - job_name: it\n    static_configs:\n      - targets: ['127.0.0.1:"
        << targetPort << "']\n";
  }
  ~PrometheusProcess() {
    kill();
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  void start() {
    const std::string config = "--config.file=" + (dir_ / "prometheus.yml").string();
    const std::string data = "--storage.tsdb.path=" + (dir_ / "data").string();
    const std::string listen = "--web.listen-address=127.0.0.1:" + std::to_string(port_);
    const std::string log = (dir_ / "prometheus.log").string();
    pid_ = ::fork();
    if (pid_ == 0) {
      FILE* f = std::freopen(log.c_str(), "a", stdout);
      (void)f;
      ::dup2(STDOUT_FILENO, STDERR_FILENO);
      ::execl(binary_.c_str(), binary_.c_str(), config.c_str(), data.c_str(), listen.c_str(),
              "--log.level=warn", static_cast<char*>(nullptr));
      std::_Exit(127);
    }
    ASSERT_GT(pid_, 0);
  }

  // False once the process has exited (e.g. a bad flag).
  bool alive() {
    if (pid_ <= 0) return false;
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return false;
    }
    return true;
  }

  void kill() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
  }

  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::string log() const {
    std::ifstream in(dir_ / "prometheus.log");
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

 private:
  std::string binary_;
  uint16_t port_;
  fs::path dir_;
  pid_t pid_ = -1;
};

PrometheusClientPtr client(const std::string& url, int attempts = 2) {
  PrometheusClientConfig c;
  c.baseUrl = url;
  c.timeout = 5s;
  c.maxAttempts = attempts;
  c.backoffBase = 100ms;
  c.backoffCap = 500ms;
  return makeHttpPrometheusClient(c);
}

// Polls until `up` of the target is 1 (Prometheus is up and has scraped it).
::testing::AssertionResult waitScraped(PrometheusClient& c, PrometheusProcess& p, std::chrono::seconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  std::string last;
  while (std::chrono::steady_clock::now() < deadline) {
    if (!p.alive()) return ::testing::AssertionFailure() << "prometheus exited";
    auto v = queryTotal(c, R"(sum(up{job="it"}) * count(wl_it_load))");
    if (v && *v >= 3) return ::testing::AssertionSuccess();
    last = v ? "value " + std::to_string(*v) : v.error().toString();
    std::this_thread::sleep_for(250ms);
  }
  return ::testing::AssertionFailure() << "prometheus not ready/scraped after " << limit.count() << " s: " << last;
}

class PrometheusIT : public ::testing::Test {
 protected:
  void SetUp() override {
    binary_ = findPrometheus();
    if (binary_.empty()) GTEST_SKIP() << "no prometheus binary (install Debian's prometheus or set WATERLINE_PROMETHEUS)";
    target_ = std::make_unique<Target>();
    prom_ = std::make_unique<PrometheusProcess>(binary_, target_->port());
    prom_->start();
    client_ = client(prom_->url());
    ASSERT_TRUE(waitScraped(*client_, *prom_, 120s)) << prom_->log();
  }
  void TearDown() override {
    prom_.reset();
    target_.reset();
  }

  std::string binary_;
  std::unique_ptr<Target> target_;
  std::unique_ptr<PrometheusProcess> prom_;
  PrometheusClientPtr client_;
};

TEST_F(PrometheusIT, Queries) {
  // A working query, and the rendered default-style template.
  auto v = queryTotal(*client_, R"(sum(wl_it_load{namespace="ml",deployment="llama-70b"}))");
  ASSERT_TRUE(v) << v.error().toString();
  EXPECT_DOUBLE_EQ(*v, 40);

  auto q = renderQuery(R"(sum(wl_it_load{namespace="{{namespace}}",deployment=~"{{deployment}}|other"}))",
                       {"llama-70b", "ml", "h100"});
  ASSERT_TRUE(q) << q.error();
  v = queryTotal(*client_, *q);
  ASSERT_TRUE(v) << v.error().toString();
  EXPECT_DOUBLE_EQ(*v, 47);

  // A vector of one series per deployment is summed.
  v = queryTotal(*client_, R"(wl_it_load{deployment!="broken"})");
  ASSERT_TRUE(v) << v.error().toString();
  EXPECT_DOUBLE_EQ(*v, 47);

  // A scalar, at an explicit time.
  auto r = client_->query("scalar(sum(wl_it_load{deployment=\"other\"}))", std::chrono::system_clock::now());
  ASSERT_TRUE(r) << r.error().toString();
  EXPECT_EQ(r->type, PromResultType::Scalar);
  EXPECT_DOUBLE_EQ(r->samples.at(0).value, 7);

  // A rate over the counter (it grows by 100 per scrape): positive and finite.
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  std::expected<double, PromError> rate = std::unexpected(PromError{});
  while (std::chrono::steady_clock::now() < deadline) {
    rate = queryTotal(*client_, R"(sum(rate(wl_it_tokens_total{deployment="llama-70b"}[10s])))");
    if (rate) break;
    std::this_thread::sleep_for(500ms);
  }
  ASSERT_TRUE(rate) << rate.error().toString();
  EXPECT_GT(*rate, 0);

  // A PromQL syntax error: BadData with the server's message, not retried.
  auto bad = client_->query("sum(wl_it_load");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().kind, PromErrorKind::BadData);
  EXPECT_EQ(bad.error().errorType, "bad_data");
  EXPECT_EQ(bad.error().httpStatus, 400);
  EXPECT_EQ(bad.error().attempts, 1);
  EXPECT_NE(bad.error().message.find("parse error"), std::string::npos) << bad.error().message;

  // A range vector is rejected as unsupported.
  auto matrix = client_->query("wl_it_load[5s]");
  ASSERT_FALSE(matrix);
  EXPECT_EQ(matrix.error().kind, PromErrorKind::BadData);
  EXPECT_EQ(matrix.error().errorType, "unsupported_result");

  // An empty result.
  auto empty = queryTotal(*client_, R"(sum(wl_it_load{deployment="nope"}))");
  ASSERT_FALSE(empty);
  EXPECT_EQ(empty.error().kind, PromErrorKind::EmptyResult);

  // NaN.
  auto nan = queryTotal(*client_, R"(wl_it_load{deployment="broken"})");
  ASSERT_FALSE(nan);
  EXPECT_EQ(nan.error().kind, PromErrorKind::NaN);
}

TEST_F(PrometheusIT, KilledThenRestarted) {
  ASSERT_TRUE(queryTotal(*client_, R"(sum(wl_it_load{deployment="other"}))"));
  prom_->kill();
  auto down = client_->query(R"(sum(wl_it_load{deployment="other"}))");
  ASSERT_FALSE(down);
  EXPECT_EQ(down.error().kind, PromErrorKind::Transport) << down.error().toString();
  EXPECT_EQ(down.error().attempts, 2);
  EXPECT_EQ(down.error().httpStatus, 0);

  prom_->start();
  ASSERT_TRUE(waitScraped(*client_, *prom_, 120s)) << prom_->log();
  auto v = queryTotal(*client_, R"(sum(wl_it_load{deployment="llama-70b"}))");
  ASSERT_TRUE(v) << v.error().toString();
  EXPECT_DOUBLE_EQ(*v, 40);
}

}  // namespace
}  // namespace waterline::sources
