// Active health probing end to end (docs/workers.md, "Active health probing"): a control
// plane of its own whose kwok pod IPs are loopback addresses (WL_CP_POD_CIDR), so a test
// HTTP server bound to a worker pod's IP stands in for the worker. A worker whose health
// check fails failureThreshold (3) times in a row is replaced (Event, metric); its
// replacement, failing too, waits for the repair backoff.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <atomic>
#include <thread>

#include "md_world.h"

namespace waterline::mdit {
namespace {

// etcd + kube-apiserver + kwok with loopback pod IPs, CRDs and the small GPU fixture.
struct LoopbackPlane {
  std::string dir, kubeconfig;
  std::shared_ptr<kube::RestClient> c;
  explicit LoopbackPlane(const std::string& cidr) {
    dir = it::env("WATERLINE_BINARY_DIR") + "/controlplane-probe";
    kubeconfig = dir + "/kubeconfig";
    const std::string up = "WL_CP_POD_CIDR=" + cidr + " bash " + sourceDir() + "/tests/integration/env.sh up " + dir +
                           " >" + dir + ".log 2>&1";
    if (it::run(up) != 0) throw std::runtime_error("control plane did not start: see " + dir + ".log");
    auto cfg = kube::loadKubeconfig(kubeconfig);
    if (!cfg) throw std::runtime_error(cfg.error());
    auto cl = kube::RestClient::create(*cfg);
    if (!cl) throw std::runtime_error(cl.error());
    c = *cl;
  }
  ~LoopbackPlane() { (void)it::run("bash " + sourceDir() + "/tests/integration/env.sh down " + dir + " >/dev/null 2>&1"); }
};

// Answers every HTTP request on ip:port with `status`.
struct WorkerStandIn {
  int fd = -1;
  std::atomic<int> status{200};
  std::atomic<int> requests{0};
  std::atomic<bool> stop{false};
  std::thread th;
  bool listen(const std::string& ip, int port) {
    fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(uint16_t(port));
    if (inet_pton(AF_INET, ip.c_str(), &a.sin_addr) != 1) return false;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd, 16) != 0) return false;
    th = std::thread([this] {
      while (!stop) {
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, 100) != 1) continue;
        int cfd = ::accept(fd, nullptr, nullptr);
        if (cfd < 0) continue;
        char buf[2048];
        (void)::recv(cfd, buf, sizeof buf, 0);
        ++requests;
        std::string r = "HTTP/1.1 " + std::to_string(status.load()) + " X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
        (void)::send(cfd, r.data(), r.size(), MSG_NOSIGNAL);
        ::close(cfd);
      }
    });
    return true;
  }
  ~WorkerStandIn() {
    stop = true;
    if (th.joinable()) th.join();
    if (fd >= 0) ::close(fd);
  }
};

bool hasText(const std::string& s, const std::string& t) { return s.find(t) != std::string::npos; }

std::string podIP(const Json& p) { return p.contains("status") ? p["status"].value("podIP", "") : ""; }

TEST(ProbeIT, FailingHealthCheckReplacesTheWorkerAfterTheThresholdThenBacksOff) {
  WL_CLIENT_OR_SKIP(fixtureClient);
  std::unique_ptr<LoopbackPlane> cp;
  try {
    cp = std::make_unique<LoopbackPlane>("127.75.0.0/16");
  } catch (const std::exception& e) {
    FAIL() << e.what();
  }
  auto c = cp->c;
  const std::string ns = it::uniqueName("probe");
  const int port = it::freeLoopbackPort();
  ASSERT_TRUE(c->create(kube::kinds::Namespace, "", {{"apiVersion", "v1"}, {"kind", "Namespace"}, {"metadata", {{"name", ns}}}}));
  Json pool = {{"apiVersion", "waterline.dev/v1alpha1"},
               {"kind", "CapacityPool"},
               {"metadata", {{"name", "h100-euw"}}},
               {"spec",
                {{"region", "eu-west"},
                 {"dataZone", "EU"},
                 {"gpuProduct", "NVIDIA-H100-80GB-HBM3"},
                 {"nodeSelector", {{"matchLabels", {{"topology.kubernetes.io/region", "eu-west"}}}}}}}};
  ASSERT_TRUE(c->apply(kube::kinds::CapacityPool, "", pool, {"it-test", true, ""}));
  Json md = {{"apiVersion", "waterline.dev/v1alpha1"},
             {"kind", "ModelDeployment"},
             {"metadata", {{"name", "llama"}, {"namespace", ns}}},
             {"spec",
              {{"model", {{"name", "meta-llama/Llama-3.1-8B-Instruct"}, {"version", "v1"}}},
               {"region", "eu-west"},
               {"template", {{"spec", {{"image", "vllm/vllm-openai:v0.6.3"}, {"ports", {{{"containerPort", port}}}}}}}},
               {"gpu", {{"count", 1}}},
               {"healthCheck", {{"path", "/health"}, {"periodSeconds", 1}, {"timeoutSeconds", 1},
                                {"failureThreshold", 3}, {"successThreshold", 1}}},
               {"drainSeconds", 1},
               {"replicas", 1}}}};
  ASSERT_TRUE(c->apply(kube::kinds::ModelDeployment, ns, md, {"it-test", true, ""}));
  auto pods = [&] {
    std::vector<Json> out;
    if (auto l = c->list(kube::kinds::Pod, ns))
      for (const auto& p : l->items)
        if (!p["metadata"].contains("deletionTimestamp")) out.push_back(p);
    return out;
  };
  auto events = [&](const std::string& text) {
    if (auto l = c->list(kube::kinds::CoreEvent, ns))
      for (const auto& e : l->items)
        if (e.value("message", "").find(text) != std::string::npos) return true;
    return false;
  };
  auto degradedMessage = [&] {
    auto g = c->get(kube::kinds::ModelDeployment, ns, "llama");
    if (g && g->contains("status") && (*g)["status"].contains("conditions"))
      for (const auto& cd : (*g)["status"]["conditions"])
        if (cd.value("type", "") == "Degraded") return cd.value("message", "");
    return std::string();
  };

  it::OperatorProcess op;
  op.kubeconfig = cp->kubeconfig;
  op.start({"--leader-elect=false", "--active-health-probes=true"});

  // The worker runs, with a loopback pod IP; the stand-in answers for it.
  ASSERT_TRUE(it::eventually([&] {
    auto ps = pods();
    return ps.size() == 1 && isReady(ps[0]) && podIP(ps[0]).rfind("127.75.", 0) == 0;
  }, 90s)) << op.logText();
  const Json first = pods()[0];
  const std::string firstName = first["metadata"]["name"];
  WorkerStandIn worker;
  ASSERT_TRUE(worker.listen(podIP(first), port)) << podIP(first) << ":" << port;
  // Probed and healthy: successes are counted and the worker stays.
  ASSERT_TRUE(it::eventually([&] { return op.metric("waterline_health_probes_total{result=\"success\"}") >= 3; }, 30s))
      << op.logText();
  EXPECT_GE(worker.requests.load(), 3);
  EXPECT_EQ(pods().size(), 1u);
  EXPECT_EQ(pods()[0]["metadata"]["name"], firstName);
  EXPECT_EQ(op.metric("waterline_repairs_total{reason=\"ProbeFailed\"}"), 0);

  // The worker starts failing its health check: replaced after three failures in a row.
  worker.status = 503;
  ASSERT_TRUE(it::eventually([&] {
    auto ps = pods();
    return ps.size() == 1 && ps[0]["metadata"]["name"] != firstName;
  }, 30s)) << op.logText();
  const auto firstRepairSeen = std::chrono::steady_clock::now();
  EXPECT_TRUE(it::eventually([&] { return events("ProbeFailed"); }, 30s));
  EXPECT_TRUE(it::eventually([&] { return op.metric("waterline_repairs_total{reason=\"ProbeFailed\"}") == 1; }, 10s));
  EXPECT_GE(op.metric("waterline_health_transitions_total{to=\"unhealthy\"}"), 1);

  // Its replacement has nothing serving its IP (or the same failing stand-in) and turns
  // unhealthy within seconds, but its repair waits for the backoff: 10 s after the first.
  // (Without the backoff it would be replaced about 3 s after it became Ready.)
  ASSERT_TRUE(it::eventually([&] { return op.metric("waterline_repairs_total{reason=\"ProbeFailed\"}") == 2; }, 60s))
      << degradedMessage() << "\n" << op.logText();
  EXPECT_GE(std::chrono::steady_clock::now() - firstRepairSeen, 9s);
  EXPECT_TRUE(hasText(op.logText(200000), "reason=ProbeFailed"));

  op.kill(SIGTERM);
  (void)c->remove(kube::kinds::ModelDeployment, ns, "llama");
  kube::DeleteOptions now;
  now.gracePeriodSeconds = 0;
  if (auto l = c->list(kube::kinds::Pod, ns))
    for (const auto& p : l->items) (void)c->remove(kube::kinds::Pod, ns, p["metadata"]["name"], now);
}

}  // namespace
}  // namespace waterline::mdit
