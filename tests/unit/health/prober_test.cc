// The active health prober's pieces: which workers are probed (probeTargets), the
// per-worker threshold state with a fake probe on a simulated clock (ProbeSet), and the
// HTTP probe itself against a real loopback server.
#include <gtest/gtest.h>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "waterline/common/log.h"
#include "waterline/reconcilers/health_prober.h"

namespace waterline::reconcilers {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

const SystemTime kNow = SystemTime{} + std::chrono::hours(24 * 365 * 55);

json deployment(const std::string& name, json health = json::object(), bool withPort = true) {
  json tmpl = {{"spec", {{"image", "vllm/vllm-openai:v0.6.3"}}}};
  if (withPort) tmpl["spec"]["ports"] = json::array({{{"containerPort", 8000}}});
  json spec = {{"model", {{"name", "m"}, {"version", "v1"}}},
               {"region", "eu-west"},
               {"template", tmpl},
               {"gpu", {{"count", 1}}},
               {"replicas", 1}};
  if (!health.empty()) spec["healthCheck"] = health;
  return {{"apiVersion", "waterline.dev/v1alpha1"},
          {"kind", "ModelDeployment"},
          {"metadata", {{"name", name}, {"namespace", "llm"}, {"generation", 1}}},
          {"spec", spec}};
}

json pod(const std::string& name, const std::string& dep, const std::string& ip, bool ready = true,
         const std::string& phase = "Running") {
  return {{"metadata",
           {{"name", name},
            {"namespace", "llm"},
            {"uid", "uid-" + name},
            {"labels", {{"waterline.dev/deployment", dep}}}}},
          {"status",
           {{"phase", phase},
            {"podIP", ip},
            {"conditions", json::array({{{"type", "Ready"}, {"status", ready ? "True" : "False"}}})}}}};
}

TEST(ProbeTargets, SelectsServingWorkersOfDeploymentsWithAHealthPort) {
  auto d = deployment("llama", {{"path", "/healthz"}, {"port", 9000}, {"periodSeconds", 3},
                                {"timeoutSeconds", 2}, {"failureThreshold", 4}, {"successThreshold", 2}});
  auto draining = pod("llama-2", "llama", "10.0.0.3");
  draining["metadata"]["annotations"] = {{"waterline.dev/draining-since", "2026-01-01T00:00:00Z"}};
  auto deleting = pod("llama-3", "llama", "10.0.0.4");
  deleting["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z";
  std::vector<json> pods = {pod("llama-1", "llama", "10.0.0.2", false), pod("llama-0", "llama", "10.0.0.1"),
                            draining, deleting,
                            pod("llama-4", "llama", "", true),                   // no IP yet
                            pod("llama-5", "llama", "10.0.0.6", false, "Pending"),
                            pod("other-0", "other", "10.0.0.7"),                 // no such deployment
                            pod("noport-0", "noport", "10.0.0.8")};
  auto t = probeTargets({d, deployment("noport", {}, /*withPort=*/false)}, pods);
  ASSERT_EQ(t.size(), 2u);
  EXPECT_EQ(t[0].pod, "llama-0");
  EXPECT_EQ(t[0].ip, "10.0.0.1");
  EXPECT_EQ(t[0].port, 9000);
  EXPECT_EQ(t[0].path, "/healthz");
  EXPECT_EQ(t[0].period, 3s);
  EXPECT_EQ(t[0].timeout, 2s);
  EXPECT_EQ(t[0].failureThreshold, 4);
  EXPECT_EQ(t[0].successThreshold, 2);
  EXPECT_TRUE(t[0].ready);
  EXPECT_EQ(t[1].pod, "llama-1");
  EXPECT_FALSE(t[1].ready);
  // Default port: the first template port.
  auto t2 = probeTargets({deployment("llama")}, {pod("llama-0", "llama", "10.0.0.1")});
  ASSERT_EQ(t2.size(), 1u);
  EXPECT_EQ(t2[0].port, 8000);
}

struct FakeProbe {
  std::map<std::string, bool> up;  // ip -> result
  std::atomic<int> calls{0};
  ProbeFn fn() {
    return [this](const std::string& ip, int32_t, const std::string&, Duration) {
      ++calls;
      return up.count(ip) ? up.at(ip) : false;
    };
  }
};

ProbeTarget target(const std::string& podName, const std::string& ip, bool ready = true) {
  ProbeTarget t;
  t.ns = "llm";
  t.deployment = "llama";
  t.pod = podName;
  t.uid = "uid-" + podName;
  t.ip = ip;
  t.port = 8000;
  t.path = "/health";
  t.period = 5s;
  t.failureThreshold = 2;
  t.successThreshold = 2;
  t.ready = ready;
  return t;
}

TEST(ProbeSet, ThresholdsPeriodsAndTransitions) {
  ProbeSet s;
  FakeProbe f;
  f.up = {{"10.0.0.1", true}, {"10.0.0.2", true}};
  std::vector<ProbeTarget> ts = {target("a", "10.0.0.1"), target("b", "10.0.0.2")};
  SystemTime next;
  EXPECT_TRUE(s.tick(ts, kNow, f.fn(), 4, &next).empty());
  EXPECT_EQ(f.calls, 2);
  EXPECT_EQ(next, kNow + 5s);
  // Not due before the period: no probes.
  EXPECT_TRUE(s.tick(ts, kNow + 4s, f.fn(), 4).empty());
  EXPECT_EQ(f.calls, 2);
  // b fails once: still healthy; twice: unhealthy (one transition).
  f.up["10.0.0.2"] = false;
  EXPECT_TRUE(s.tick(ts, kNow + 5s, f.fn(), 4).empty());
  EXPECT_TRUE(s.unhealthy("llm", "llama").empty());
  auto tr = s.tick(ts, kNow + 10s, f.fn(), 4);
  ASSERT_EQ(tr.size(), 1u);
  EXPECT_EQ(tr[0].pod, "b");
  EXPECT_FALSE(tr[0].healthy);
  EXPECT_EQ(s.unhealthy("llm", "llama"), std::set<std::string>{"b"});
  EXPECT_TRUE(s.unhealthy("llm", "other").empty());
  EXPECT_TRUE(s.tick(ts, kNow + 15s, f.fn(), 4).empty());  // no repeated transition
  // Back: healthy after two successes.
  f.up["10.0.0.2"] = true;
  EXPECT_TRUE(s.tick(ts, kNow + 20s, f.fn(), 4).empty());
  tr = s.tick(ts, kNow + 25s, f.fn(), 4);
  ASSERT_EQ(tr.size(), 1u);
  EXPECT_TRUE(tr[0].healthy);
  EXPECT_TRUE(s.unhealthy("llm", "llama").empty());
  // Workers that are no longer targets are forgotten.
  EXPECT_EQ(s.tracked(), 2u);
  s.tick({ts[0]}, kNow + 30s, f.fn(), 4);
  EXPECT_EQ(s.tracked(), 1u);
  // Two targets at 0, 5, 10, 15, 20 and 25 s, one at 30 s; every result is reported once.
  EXPECT_EQ(f.calls, 13);
  EXPECT_EQ(s.takeResults().size(), 13u);
  EXPECT_TRUE(s.takeResults().empty());
}

TEST(ProbeSet, WorkersAreProbedOnlyOnceTheyHaveBeenReady) {
  ProbeSet s;
  FakeProbe f;  // every probe fails
  std::vector<ProbeTarget> ts = {target("a", "10.0.0.1", /*ready=*/false)};
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(s.tick(ts, kNow + i * 5s, f.fn(), 1).empty());
  EXPECT_EQ(f.calls, 0);
  ts[0].ready = true;
  EXPECT_TRUE(s.tick(ts, kNow + 30s, f.fn(), 1).empty());
  // Armed: probed even when the kubelet marks it unready later.
  ts[0].ready = false;
  auto tr = s.tick(ts, kNow + 35s, f.fn(), 1);
  EXPECT_EQ(f.calls, 2);
  ASSERT_EQ(tr.size(), 1u);
  EXPECT_FALSE(tr[0].healthy);
}

TEST(ProbeSet, ManyTargetsProbedInParallelEachOnce) {
  // Each probe blocks until `kParallel` probes are in flight at once; a serial ProbeSet
  // never gets there (the wait gives up after a long bound and the peak stays 1). The
  // peak must be exactly kParallel (no more threads than asked), and every target probed
  // exactly once.
  constexpr int kParallel = 8;
  ProbeSet s;
  std::mutex mu;
  std::condition_variable cv;
  int inFlight = 0, peak = 0;
  bool released = false;
  std::map<std::string, int> perIp;
  ProbeFn gate = [&](const std::string& ip, int32_t, const std::string&, Duration) {
    std::unique_lock lk(mu);
    ++perIp[ip];
    peak = std::max(peak, ++inFlight);
    if (inFlight >= kParallel) released = true;
    cv.notify_all();
    if (!cv.wait_for(lk, 30s, [&] { return released; })) released = true;  // serial: give up, fail below
    --inFlight;
    return ip != "10.0.1.7";
  };
  std::vector<ProbeTarget> ts;
  for (int i = 0; i < 40; ++i) ts.push_back(target("p" + std::to_string(i), "10.0.1." + std::to_string(i)));
  s.tick(ts, kNow, gate, kParallel);
  EXPECT_EQ(peak, kParallel) << "probes in flight at once";
  ASSERT_EQ(perIp.size(), 40u);
  for (const auto& [ip, n] : perIp) EXPECT_EQ(n, 1) << ip;
  // Results land on the right targets: only 10.0.1.7 failed.
  const auto results = s.takeResults();
  EXPECT_EQ(std::count(results.begin(), results.end(), false), 1);
  EXPECT_EQ(results.size(), 40u);
}

// A loopback HTTP server answering every request with `status` (or never answering).
struct TestServer {
  int fd = -1;
  int port = 0;
  std::atomic<int> status{200};
  std::atomic<bool> silent{false};
  std::atomic<bool> stop{false};
  std::mutex mu;
  std::vector<std::string> requests;  // what each connection sent (its first read)
  std::thread th;
  TestServer() {
    fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    socklen_t len = sizeof a;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    port = ntohs(a.sin_port);
    EXPECT_EQ(::listen(fd, 16), 0);
    th = std::thread([this] {
      while (!stop) {
        int c = ::accept(fd, nullptr, nullptr);
        if (c < 0) continue;
        char buf[1024];
        const auto got = ::recv(c, buf, sizeof buf, 0);
        if (got > 0) {
          std::lock_guard g(mu);
          requests.emplace_back(buf, size_t(got));
        }
        if (!silent) {
          std::string r = "HTTP/1.1 " + std::to_string(status.load()) + " X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
          (void)::send(c, r.data(), r.size(), MSG_NOSIGNAL);
        } else {
          std::this_thread::sleep_for(1500ms);
        }
        ::close(c);
      }
    });
  }
  ~TestServer() {
    stop = true;
    ::shutdown(fd, SHUT_RDWR);
    ::close(fd);
    // Unblock accept() by connecting once.
    int c = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(uint16_t(port));
    (void)::connect(c, reinterpret_cast<sockaddr*>(&a), sizeof a);
    ::close(c);
    th.join();
  }
};

TEST(HttpProbe, StatusCodesTimeoutsAndRefusals) {
  TestServer srv;
  EXPECT_TRUE(httpProbe("127.0.0.1", srv.port, "/health", 2s));
  srv.status = 302;
  EXPECT_TRUE(httpProbe("127.0.0.1", srv.port, "/health", 2s));
  srv.status = 500;
  EXPECT_FALSE(httpProbe("127.0.0.1", srv.port, "/health", 2s));
  srv.status = 404;
  EXPECT_FALSE(httpProbe("127.0.0.1", srv.port, "health", 2s));
  // No answer within the timeout.
  srv.silent = true;
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_FALSE(httpProbe("127.0.0.1", srv.port, "/health", 300ms));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 1200ms);
  srv.silent = false;
  // Not an IP literal, or nothing listening.
  EXPECT_FALSE(httpProbe("not-an-ip", srv.port, "/", 1s));
  EXPECT_FALSE(httpProbe("127.0.0.1", 1, "/", 1s));
}

TEST(HttpProbe, RefusesAPathThatWouldSplitTheRequestLine) {
  TestServer srv;
  const std::vector<std::string> bad{"/health HTTP/1.1\r\nX-Injected: 1", "/a b", "/a\tb", "/\r", "/\n",
                                     std::string("/a\0b", 4), "/\x7f"};
  for (const auto& b : bad) EXPECT_THROW(httpProbe("127.0.0.1", srv.port, b, 2s), std::invalid_argument) << b;
  // Refused before connecting: the first request the server sees is the good one.
  EXPECT_TRUE(httpProbe("127.0.0.1", srv.port, "/ok?x=%20&y=1", 2s));
  std::lock_guard g(srv.mu);
  ASSERT_FALSE(srv.requests.empty());
  EXPECT_EQ(srv.requests.front().substr(0, srv.requests.front().find("\r\n")), "GET /ok?x=%20&y=1 HTTP/1.1");
}

TEST(ProbeSet, AThrowingProbeFailsAndItsCauseIsLoggedOnce) {
  std::mutex mu;
  std::vector<std::string> lines;
  log::setSink([&](std::string_view l) {
    std::lock_guard g(mu);
    lines.emplace_back(l);
  });
  auto logged = [&](const std::string& what) {
    std::lock_guard g(mu);
    return std::count_if(lines.begin(), lines.end(),
                         [&](const std::string& l) { return l.find(what) != std::string::npos; });
  };
  ProbeSet s;
  std::string mode = "throw";
  ProbeFn probe = [&](const std::string&, int32_t, const std::string&, Duration) -> bool {
    if (mode == "throw") throw std::runtime_error("resolver exploded");
    return true;
  };
  const std::vector<ProbeTarget> ts{target("w-0", "10.0.0.1")};
  auto t = kNow;
  s.tick(ts, t, probe, 1);
  s.tick(ts, t += 5s, probe, 1);
  EXPECT_EQ(s.unhealthy("llm", "llama"), (std::set<std::string>{"w-0"})) << "a throwing probe is a failed probe";
  EXPECT_EQ(logged("resolver exploded"), 1) << "logged once with its cause, not on every probe";
  EXPECT_EQ(logged("w-0"), 1);
  mode = "ok";
  s.tick(ts, t += 5s, probe, 1);
  mode = "throw";
  s.tick(ts, t += 5s, probe, 1);
  EXPECT_EQ(logged("resolver exploded"), 2) << "logged again after a probe that did not throw";
  log::setSink({});
}

}  // namespace
}  // namespace waterline::reconcilers
