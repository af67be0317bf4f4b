// Lease-based router membership against the fixture's kube-apiserver: waterline-router
// processes in one --membership-group count each other from their Leases, and N (the
// replicas sharing each PTU reservation) feeds the limit gauge. Short lease durations
// via flags; every wait is bounded polling.
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "it_support.h"
#include "support.h"
#include "waterline/api/meta.h"
#include "waterline/router/membership.h"
#include "waterline/routing/table.h"

namespace waterline::router {
namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr const char* kReservation = "team/contoso";
constexpr double kTokensPerMinute = 60000;

// waterline-router as a child process; its stderr (logs) goes to a file.
struct RouterProc {
  pid_t pid = -1;
  int port = 0;
  std::string logPath;

  ~RouterProc() { kill(SIGKILL); }

  bool start(const std::vector<std::string>& flags) {
    logPath = "/tmp/" + it::uniqueName("wl-router-membership") + ".log";
    // No shutdown delay: a SIGTERM drains (nothing is in flight) and exits at once.
    std::vector<std::string> args = {WATERLINE_ROUTER_BIN, "--listen=127.0.0.1:0", "--threads=1",
                                     "--routes-poll-interval=100ms", "--shutdown-delay=0"};
    args.insert(args.end(), flags.begin(), flags.end());
    int out[2];
    if (pipe(out) != 0) return false;
    pid = fork();
    if (pid < 0) return false;
    if (pid == 0) {
      dup2(out[1], 1);
      int fd = ::open(logPath.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (fd >= 0) dup2(fd, 2);
      close(out[0]);
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
    close(out[1]);
    // "listening on 127.0.0.1:PORT" once the first membership round and routes are in.
    std::string line;
    char c;
    while (read(out[0], &c, 1) == 1 && c != '\n') line += c;
    close(out[0]);
    auto colon = line.rfind(':');
    if (line.rfind("listening on", 0) != 0 || colon == std::string::npos) return false;
    port = std::stoi(line.substr(colon + 1));
    return true;
  }

  // Sends `sig` and waits for the exit; the exit status (waitpid) or -1.
  int kill(int sig) {
    if (pid <= 0) return -1;
    ::kill(pid, sig);
    int st = 0;
    waitpid(pid, &st, 0);
    pid = -1;
    return st;
  }

  // The value of the /metrics sample `series` (name plus labels, exactly); NaN when the
  // router cannot be reached or has no such sample.
  double metric(const std::string& series) const {
    std::string body;
    try {
      body = testing::get(port, "/metrics").body;
    } catch (const std::exception&) {
      return NAN;
    }
    std::istringstream in(body);
    std::string l;
    while (std::getline(in, l))
      if (l.size() > series.size() && l.rfind(series, 0) == 0 && l[series.size()] == ' ')
        return std::stod(l.substr(series.size() + 1));
    return NAN;
  }
  double members() const { return metric("waterline_router_members"); }
  double limit() const { return metric(std::string("waterline_router_ptu_limit_tokens{reservation=\"") + kReservation + "\"}"); }
  double errors(const std::string& op) const {
    double v = metric("waterline_router_membership_errors_total{operation=\"" + op + "\"}");
    return std::isnan(v) ? 0 : v;
  }
  std::string logText() const {
    std::ifstream f(logPath);
    std::stringstream ss;
    ss << f.rdbuf();
    std::string s = ss.str();
    return s.size() > 6000 ? s.substr(s.size() - 6000) : s;
  }
};

// A TCP forwarder in front of the apiserver that a test can cut (connections reset,
// new ones refused: a network partition) and restore on the same port.
class TcpProxy {
 public:
  explicit TcpProxy(int targetPort) : target_(targetPort) { listen(); }
  ~TcpProxy() { cut(); }
  int port() const { return port_; }

  void cut() {
    std::vector<std::thread> threads;
    {
      std::lock_guard g(mu_);
      cut_ = true;
      if (lfd_ >= 0) {
        ::shutdown(lfd_, SHUT_RDWR);  // wakes the accept()
      }
      for (int fd : conns_) ::shutdown(fd, SHUT_RDWR);
      threads.swap(threads_);
    }
    for (auto& t : threads)
      if (t.joinable()) t.join();
    std::lock_guard g(mu_);
    if (lfd_ >= 0) ::close(lfd_);
    lfd_ = -1;
    for (int fd : conns_) ::close(fd);
    conns_.clear();
  }
  void restore() { listen(); }

 private:
  static sockaddr_in loopback(int port) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(static_cast<uint16_t>(port));
    return a;
  }
  void listen() {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a = loopback(port_);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd, 64) != 0)
      throw std::runtime_error("proxy: cannot listen");
    socklen_t len = sizeof a;
    getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    std::lock_guard g(mu_);
    port_ = ntohs(a.sin_port);
    lfd_ = fd;
    cut_ = false;
    threads_.emplace_back([this, fd] { acceptLoop(fd); });
  }
  void acceptLoop(int lfd) {
    for (;;) {
      int c = ::accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) return;
      int u = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_in a = loopback(target_);
      if (::connect(u, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        ::close(c);
        ::close(u);
        continue;
      }
      std::lock_guard g(mu_);
      if (cut_) {  // cut() between accept() and here: it joins this thread, not these
        ::close(c);
        ::close(u);
        return;
      }
      conns_.push_back(c);
      conns_.push_back(u);
      threads_.emplace_back([c, u] { pump(c, u); });
      threads_.emplace_back([c, u] { pump(u, c); });
    }
  }
  static void pump(int from, int to) {
    char buf[16384];
    for (;;) {
      ssize_t n = ::read(from, buf, sizeof buf);
      if (n <= 0) break;
      for (ssize_t off = 0; off < n;) {
        ssize_t w = ::send(to, buf + off, static_cast<size_t>(n - off), MSG_NOSIGNAL);
        if (w <= 0) {
          ::shutdown(from, SHUT_RDWR);
          return;
        }
        off += w;
      }
    }
    ::shutdown(to, SHUT_RDWR);
  }

  int target_;
  int port_ = 0;
  std::mutex mu_;
  int lfd_ = -1;
  bool cut_ = false;
  std::vector<int> conns_;
  std::vector<std::thread> threads_;
};

class RouterMembershipIT : public ::testing::Test {
 protected:
  void SetUp() override {
    client = it::clientOrSkip();
    if (!client) GTEST_SKIP() << "WATERLINE_TEST_KUBECONFIG is not set";
    kubeconfig = it::env("WATERLINE_TEST_KUBECONFIG");
    ns = it::uniqueName("router-members");
    group = it::uniqueName("routers");
    ASSERT_TRUE(client->create(kube::kinds::Namespace, "",
                               {{"apiVersion", "v1"}, {"kind", "Namespace"}, {"metadata", {{"name", ns}}}}));
    dir = std::filesystem::temp_directory_path() / it::uniqueName("wl-router-membership");
    std::filesystem::create_directories(dir);
    routes = (dir / "routes.json").string();
    std::ofstream(routes) << table().toJson().dump();
  }
  void TearDown() override {
    for (auto& r : routers) {
      r->kill(SIGKILL);
      if (HasFailure()) std::cerr << "--- router log " << r->logPath << ":\n" << r->logText() << "\n";
      else if (!r->logPath.empty()) std::filesystem::remove(r->logPath);
    }
    if (client) (void)client->remove(kube::kinds::Namespace, "", ns);
    if (!dir.empty()) std::filesystem::remove_all(dir);
  }

  // One deployment with a 60,000 tokens/min reservation: each router's limit gauge is
  // 60,000 / N.
  static routing::RoutingTable table() {
    routing::DeploymentRoutes d;
    d.deployment = {"team", "llama"};
    d.model = "meta-llama/Llama-3.1-8B-Instruct";
    d.deploymentType = api::DeploymentType::Global;
    routing::RoutingEntry e;
    e.pool = "pool-a";
    e.endpoints = {"127.0.0.1:1"};
    e.healthy = true;
    e.heartbeatTime = std::chrono::system_clock::now();
    d.entries = {e};
    routing::ReservationInfo r;
    r.reservation = {"team", "contoso"};
    r.tokensPerMinute = static_cast<int64_t>(kTokensPerMinute);
    d.reservations = {r};
    routing::RoutingTable t;
    t.deployments = {d};
    t.normalize();
    return t;
  }

  std::vector<std::string> flags(const std::string& identity, const std::string& leaseDuration,
                                 const std::string& kc = "") {
    return {"--routes-file=" + routes,
            "--replicas=1",
            "--log-level=info",
            "--membership-kubeconfig=" + (kc.empty() ? kubeconfig : kc),
            "--membership-namespace=" + ns,
            "--membership-group=" + group,
            "--identity=" + identity,
            "--membership-lease-duration=" + leaseDuration,
            "--membership-clock-skew=1s"};
  }
  // A router owned by the fixture (its log is printed on failure, after the test body).
  RouterProc& start(const std::vector<std::string>& f) {
    routers.push_back(std::make_unique<RouterProc>());
    RouterProc& r = *routers.back();
    EXPECT_TRUE(r.start(f)) << r.logText();
    return r;
  }
  // N is n, and the reservation's limit on r is 1/n of it.
  static bool sees(const RouterProc& r, int n) {
    return r.members() == n && std::abs(r.limit() - kTokensPerMinute / n) < 0.01;
  }
  kube::Result<json> leaseOf(const std::string& identity) {
    return client->get(kube::kinds::Lease, ns, memberLeaseName(group, identity));
  }
  static double seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

  std::shared_ptr<kube::RestClient> client;
  std::string kubeconfig, ns, group, routes;
  std::filesystem::path dir;
  std::vector<std::unique_ptr<RouterProc>> routers;
};

TEST_F(RouterMembershipIT, TwoRoutersSplitTheReservationAndACleanStopDropsAtTheNextRenewal) {
  // 6 s leases, renewed every 2 s: a clean stop is seen within a renewal (~2 s), well
  // before the Lease could have expired (renewTime + 6 s + 1 s skew).
  RouterProc& a = start(flags("router-a", "6s"));
  RouterProc& b = start(flags("router-b", "6s"));
  ASSERT_FALSE(HasFailure());
  ASSERT_TRUE(it::eventually([&] { return sees(a, 2) && sees(b, 2); }, 20s))
      << "a: " << a.members() << " / " << a.limit() << ", b: " << b.members() << " / " << b.limit();

  // The Leases as the routers write them.
  kube::ListOptions lo;
  lo.labelSelector = std::string(kRouterGroupLabel) + "=" + group;
  auto leases = client->list(kube::kinds::Lease, ns, lo);
  ASSERT_TRUE(leases) << leases.error().describe();
  ASSERT_EQ(leases->items.size(), 2u);
  std::set<std::string> holders;
  for (const auto& l : leases->items) {
    holders.insert(l["spec"]["holderIdentity"].get<std::string>());
    EXPECT_EQ(l["spec"]["leaseDurationSeconds"], 6);
    EXPECT_TRUE(l["spec"]["renewTime"].is_string());
    EXPECT_EQ(l["metadata"]["name"], memberLeaseName(group, l["spec"]["holderIdentity"].get<std::string>()));
  }
  EXPECT_EQ(holders, (std::set<std::string>{"router-a", "router-b"}));

  // SIGTERM: b exits cleanly and deletes its Lease on the way out.
  const int st = b.kill(SIGTERM);
  const auto stopped = Clock::now();
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
  auto gone = leaseOf("router-b");
  ASSERT_FALSE(gone) << "router-b's Lease survived a clean stop";
  EXPECT_TRUE(gone.error().isNotFound()) << gone.error().describe();
  ASSERT_TRUE(it::eventually([&] { return sees(a, 1); }, 5s))
      << "a: " << a.members() << " members, limit " << a.limit();
  const double after = seconds(Clock::now() - stopped);
  std::cout << "router-a counted 1 member " << after << " s after router-b stopped\n";
  EXPECT_LT(after, 5.0);
  EXPECT_TRUE(leaseOf("router-a"));
}

TEST_F(RouterMembershipIT, AKilledRouterIsDroppedAfterTheLeaseDuration) {
  // 3 s leases renewed every second, 1 s skew allowance: a router killed with -9 leaves
  // its Lease behind and is counted until renewTime + 4 s, i.e. 3 to 4 s after the kill.
  RouterProc& a = start(flags("router-a", "3s"));
  RouterProc& c = start(flags("router-c", "3s"));
  ASSERT_FALSE(HasFailure());
  ASSERT_TRUE(it::eventually([&] { return sees(a, 2) && sees(c, 2); }, 20s))
      << "a: " << a.members() << ", c: " << c.members();
  c.kill(SIGKILL);
  const auto killed = Clock::now();
  auto left = leaseOf("router-c");
  ASSERT_TRUE(left) << "a killed router cannot delete its Lease";
  auto renewed = api::parseTime((*left)["spec"]["renewTime"].get<std::string>());
  ASSERT_TRUE(renewed) << left->dump();
  ASSERT_TRUE(it::eventually([&] { return sees(a, 1); }, 20s)) << "a: " << a.members();
  const double after = seconds(Clock::now() - killed);
  std::cout << "router-a counted 1 member " << after << " s after router-c was killed, "
            << seconds(std::chrono::system_clock::now() - *renewed) << " s after its last renewTime\n";
  // Not before the Lease expired: renewTime + 3 s + 1 s skew (one clock: same machine)...
  EXPECT_GE(std::chrono::system_clock::now(), *renewed + 4s);
  // ... and soon after (a renews and recounts every second; plus polling).
  EXPECT_LE(after, 10.0);
  EXPECT_TRUE(leaseOf("router-c")) << "the survivors do not delete other members' Leases";
}

TEST_F(RouterMembershipIT, APartitionedRouterKeepsItsLastCountAndRejoins) {
  // a reaches the apiserver through a proxy that the test cuts; b directly.
  auto cfg = kube::loadKubeconfig(kubeconfig);
  ASSERT_TRUE(cfg) << cfg.error();
  const auto colon = cfg->server.rfind(':');
  const int apiPort = std::stoi(cfg->server.substr(colon + 1));
  TcpProxy proxy(apiPort);
  std::string text;
  {
    std::ifstream f(kubeconfig);
    std::stringstream ss;
    ss << f.rdbuf();
    text = ss.str();
  }
  const std::string from = "server: " + cfg->server, to = "server: https://127.0.0.1:" + std::to_string(proxy.port());
  const auto at = text.find(from);
  ASSERT_NE(at, std::string::npos) << text;
  text.replace(at, from.size(), to);
  const std::string proxied = (dir / "kubeconfig-proxied").string();
  std::ofstream(proxied) << text;

  RouterProc& a = start(flags("router-a", "3s", proxied));
  RouterProc& b = start(flags("router-b", "3s"));
  ASSERT_FALSE(HasFailure());
  ASSERT_TRUE(it::eventually([&] { return sees(a, 2) && sees(b, 2); }, 20s))
      << "a: " << a.members() << ", b: " << b.members();

  proxy.cut();
  // a cannot renew or list: it counts the failures and keeps N = 2 (it never goes to 1,
  // which would admit the whole reservation on a besides b's share).
  ASSERT_TRUE(it::eventually([&] { return a.errors("renew") >= 2 && a.errors("list") >= 2; }, 15s))
      << a.logText();
  // b no longer sees a renew and drops it once a's Lease expires.
  ASSERT_TRUE(it::eventually([&] { return sees(b, 1); }, 15s)) << "b: " << b.members();
  // By now a's own Lease has expired too, and a still enforces 1/2.
  EXPECT_TRUE(sees(a, 2)) << "a: " << a.members() << " / " << a.limit();
  EXPECT_NE(a.logText().find("keeping the last member count"), std::string::npos) << a.logText();

  proxy.restore();
  ASSERT_TRUE(it::eventually([&] { return sees(a, 2) && sees(b, 2); }, 20s))
      << "a: " << a.members() << ", b: " << b.members() << "\n" << a.logText();
  // (b may count a's renewed Lease a moment before a has logged its recovery.)
  EXPECT_TRUE(it::eventually([&] { return a.logText().find("apiserver reachable again") != std::string::npos; }, 5s))
      << a.logText();
}

TEST_F(RouterMembershipIT, WithoutTheApiserverAtStartTheStaticReplicasHold) {
  // An apiserver that is not there: the router still starts, enforces 1/--replicas and
  // says why.
  const std::string dead = (dir / "kubeconfig-dead").string();
  std::ofstream(dead) << "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:"
                      << testing::closedPort()
                      << "\n    insecure-skip-tls-verify: true\ncontexts:\n- name: c\n  context:\n    cluster: c\n"
                         "    user: u\ncurrent-context: c\nusers:\n- name: u\n  user:\n    token: x\n";
  auto f = flags("router-a", "3s", dead);
  f[1] = "--replicas=3";
  RouterProc& a = start(f);
  ASSERT_FALSE(HasFailure());
  EXPECT_EQ(a.members(), 3);
  EXPECT_NEAR(a.limit(), kTokensPerMinute / 3, 0.01);
  ASSERT_TRUE(it::eventually([&] { return a.errors("list") >= 2; }, 15s)) << a.logText();
  EXPECT_EQ(a.members(), 3);
  EXPECT_NE(a.logText().find("keeping the last member count"), std::string::npos) << a.logText();
}

}  // namespace
}  // namespace waterline::router
