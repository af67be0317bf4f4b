// Routing against real kube-apiservers (docs/routing.md).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <future>
#include <optional>
#include <set>

#include "it_support.h"
#include "operator_process.h"
#include "support.h"
#include "waterline/routing/table.h"

namespace waterline {
namespace {

using namespace std::chrono_literals;
using kube::Json;

std::string sourceDir() { return it::env("WATERLINE_SOURCE_DIR"); }

std::shared_ptr<kube::RestClient> clientFor(const std::string& kubeconfig) {
  auto cfg = kube::loadKubeconfig(kubeconfig);
  if (!cfg) throw std::runtime_error("kubeconfig: " + cfg.error());
  auto c = kube::RestClient::create(*cfg);
  if (!c) throw std::runtime_error("client: " + c.error());
  return *c;
}

Json pool(const std::string& name, const std::string& prefix) {
  Json sel = {{"topology.kubernetes.io/region", "eu-west"}};
  if (!prefix.empty()) sel["waterline.dev/fixture-prefix"] = prefix;
  return {{"apiVersion", "waterline.dev/v1alpha1"},
          {"kind", "CapacityPool"},
          {"metadata", {{"name", name}}},
          {"spec",
           {{"region", "eu-west"},
            {"dataZone", "EU"},
            {"gpuProduct", "NVIDIA-H100-80GB-HBM3"},
            {"nodeSelector", {{"matchLabels", sel}}}}}};
}

Json deployment(const std::string& ns, const std::string& name, int replicas) {
  return {{"apiVersion", "waterline.dev/v1alpha1"},
          {"kind", "ModelDeployment"},
          {"metadata", {{"name", name}, {"namespace", ns}}},
          {"spec",
           {{"model", {{"name", "meta-llama/Llama-3.1-8B-Instruct"}, {"version", "v1"}}},
            {"deploymentType", "Global"},
            {"template", {{"spec", {{"image", "vllm/vllm-openai:v0.6.3"}, {"ports", {{{"containerPort", 8000}}}}}}}},
            {"gpu", {{"count", 1}, {"product", "NVIDIA-H100-80GB-HBM3"}}},
            {"throughput", {{"tokensPerMinutePerReplica", 60000}}},
            {"drainSeconds", 1},
            {"replicas", replicas}}}};
}

Json nsObject(const std::string& ns) {
  return {{"apiVersion", "v1"}, {"kind", "Namespace"}, {"metadata", {{"name", ns}}}};
}

std::optional<routing::DeploymentRoutes> routesIn(kube::Client& c, const std::string& name) {
  auto o = c.get(kube::kinds::RoutingTable, "", name);
  if (!o) return std::nullopt;
  auto d = routing::DeploymentRoutes::fromResource(*o);
  if (!d) return std::nullopt;
  return *d;
}

// curl's status line, headers and body of GET url (with optional If-None-Match).
// spec.renewTime of a cluster's routing heartbeat Lease in namespace default ("" when
// there is none), as written: RFC 3339 with microseconds, so strings compare as times.
std::string leaseRenewTime(kube::Client& c, const std::string& cluster) {
  auto l = c.get(kube::kinds::Lease, "default", "waterline-routing-" + cluster);
  if (!l) return "";
  const auto& m = (*l)["metadata"];
  if (m.value("labels", Json::object()).value("waterline.dev/routing-heartbeat", "") != "true") return "";
  if (m.value("annotations", Json::object()).value("waterline.dev/cluster", "") != cluster) return "";
  return (*l)["spec"].value("renewTime", "");
}

struct Fetched {
  int status = 0;
  std::string etag, body;
};
Fetched fetch(const std::string& url, const std::string& inm = "", int maxTime = 5) {
  std::string hdr = "/tmp/" + it::uniqueName("wl-rt-hdr");
  std::string cmd = "curl -s --max-time " + std::to_string(maxTime) + " -D " + hdr +
                    (inm.empty() ? "" : " -H 'If-None-Match: " + inm + "'") + " '" + url + "'";
  Fetched f;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return f;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) f.body.append(buf, n);
  pclose(p);
  std::ifstream h(hdr);
  std::string line;
  while (std::getline(h, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.rfind("HTTP/", 0) == 0) f.status = std::stoi(line.substr(line.find(' ') + 1, 3));
    std::string lower = line;
    for (auto& ch : lower) ch = char(std::tolower(static_cast<unsigned char>(ch)));
    if (lower.rfind("etag:", 0) == 0) f.etag = line.substr(line.find(':') + 2);
  }
  std::filesystem::remove(hdr);
  return f;
}

// One operator against the fixture's apiserver (hub = its own cluster): the RoutingTable
// follows the workers, /v1/routes serves it with an ETag, 304s and answers a long-poll
// when it changes, and the table goes when the deployment does.
TEST(RoutingIT, PublishesFollowsAndServesTheDeploymentsRoutes) {
  WL_CLIENT_OR_SKIP(c);
  const std::string prefix = it::uniqueName("r"), ns = it::uniqueName("rt"), poolName = it::uniqueName("rt-euw");
  const std::string fixture = "bash " + sourceDir() + "/hack/fixtures/gpu-nodes.sh --kubeconfig " +
                              it::env("WATERLINE_TEST_KUBECONFIG") + " --profile small --prefix " + prefix;
  ASSERT_EQ(it::run(fixture + " >/dev/null"), 0);
  ASSERT_TRUE(c->create(kube::kinds::Namespace, "", nsObject(ns)));
  ASSERT_TRUE(c->apply(kube::kinds::CapacityPool, "", pool(poolName, prefix), {"it-test", true, ""}));
  it::OperatorProcess op;
  op.start({"--leader-elect=false", "--routing-heartbeat=2s", "--cluster-name=fixture",
            "--routing-heartbeat-namespace=default"});
  ASSERT_TRUE(c->apply(kube::kinds::ModelDeployment, ns, deployment(ns, "llama", 2), {"it-test", true, ""}));
  const std::string rt = ns + ".llama";

  ASSERT_TRUE(it::eventually([&] {
    auto r = routesIn(*c, rt);
    return r && r->entries.size() == 1 && r->entries[0].endpoints.size() == 2;
  }, 90s)) << op.logText();
  auto routes = *routesIn(*c, rt);
  const auto& e = routes.entries[0];
  EXPECT_EQ(e.cluster, "fixture");
  EXPECT_EQ(e.pool, poolName);
  EXPECT_EQ(e.region, "eu-west");
  EXPECT_DOUBLE_EQ(e.capacityTokensPerMinute, 120000);
  EXPECT_TRUE(e.healthy);
  // Written by server-side apply under the cluster's own field manager.
  auto raw = c->get(kube::kinds::RoutingTable, "", rt);
  ASSERT_TRUE(raw);
  bool managed = false;
  for (const auto& m : (*raw)["metadata"].value("managedFields", Json::array()))
    managed |= m.value("manager", "") == "waterline-operator/fixture" && m.value("operation", "") == "Apply";
  EXPECT_TRUE(managed) << (*raw)["metadata"].dump();
  // While nothing changes, the cluster's heartbeat Lease moves and the RoutingTable is
  // not written at all; /v1/routes serves the entry with the Lease's renewTime.
  const SystemTime hb0 = e.heartbeatTime;
  const std::string rv0 = (*raw)["metadata"].value("resourceVersion", "");
  ASSERT_TRUE(it::eventually([&] { return leaseRenewTime(*c, "fixture") > routing::formatMicroTime(hb0 + 3s); }, 20s))
      << op.logText(3000);
  EXPECT_EQ(c->get(kube::kinds::RoutingTable, "", rt).value_or(Json::object())["metadata"].value("resourceVersion", ""),
            rv0)
      << "unchanged entries are not rewritten while the Lease is renewed";
  const std::string url = "http://127.0.0.1:" + std::to_string(op.port) + "/v1/routes";
  ASSERT_TRUE(it::eventually([&] {
    auto t = routing::RoutingTable::parse(fetch(url).body);
    auto d = t ? t->find({ns, "llama"}) : nullptr;
    return d && !d->entries.empty() && d->entries[0].heartbeatTime > hb0 + 3s;
  }, 10s)) << "/v1/routes serves the Lease's renewTime";

  // /v1/routes: the same deployment, an ETag, 304 on it.
  Fetched f;
  ASSERT_TRUE(it::eventually([&] {
    f = fetch(url);
    if (f.status != 200) return false;
    auto t = routing::RoutingTable::parse(f.body);
    return t && t->find({ns, "llama"}) && t->find({ns, "llama"})->entries.size() == 1 &&
           t->find({ns, "llama"})->entries[0].endpoints.size() == 2;
  }, 30s)) << f.status << " " << f.body.substr(0, 500);
  ASSERT_FALSE(f.etag.empty());
  auto same = fetch(url, f.etag);
  // The heartbeat may have moved the table in between; then a fresh 200 is right too.
  EXPECT_TRUE(same.status == 304 || (same.status == 200 && same.etag != f.etag)) << same.status;
  if (same.status == 304) {
    EXPECT_TRUE(same.body.empty());
  }

  // Long-poll: held, then answered with the new table when a third worker is ready.
  auto cur = fetch(url);
  auto poll = std::async(std::launch::async, [&] { return fetch(url + "?waitSeconds=60", cur.etag, 70); });
  ASSERT_TRUE(c->patch(kube::kinds::ModelDeployment, ns, "llama", kube::PatchType::Merge,
                       Json{{"spec", {{"replicas", 3}}}}.dump()));
  ASSERT_EQ(poll.wait_for(60s), std::future_status::ready);
  auto changed = poll.get();
  EXPECT_EQ(changed.status, 200);
  EXPECT_NE(changed.etag, cur.etag);
  ASSERT_TRUE(it::eventually([&] {
    auto t = routing::RoutingTable::parse(fetch(url).body);
    return t && t->find({ns, "llama"}) && t->find({ns, "llama"})->entries[0].endpoints.size() == 3;
  }, 60s));
  // Gauges from the same table.
  EXPECT_GE(op.metric("waterline_routing_endpoints{pool=\"" + poolName + "\",deployment=\"" + ns +
                      "/llama\",cluster=\"fixture\",state=\"ready\"}"),
            3);

  // spec.rateLimit reaches the RoutingTable (the apiserver keeps it: the routingtables
  // CRD declares it) with requestsPerMinute derived, 6 per 1000 tokens per minute.
  ASSERT_TRUE(c->patch(kube::kinds::ModelDeployment, ns, "llama", kube::PatchType::Merge,
                       Json{{"spec", {{"rateLimit", {{"tokensPerMinute", 120000}}}}}}.dump()));
  Json rl;
  ASSERT_TRUE(it::eventually([&] {
    auto o = c->get(kube::kinds::RoutingTable, "", rt);
    if (!o || !(*o)["spec"].contains("rateLimit")) return false;
    rl = (*o)["spec"]["rateLimit"];
    return true;
  }, 60s)) << op.logText(3000);
  EXPECT_EQ(rl, (Json{{"tokensPerMinute", 120000}, {"requestsPerMinute", 720}}));
  ASSERT_TRUE(it::eventually([&] {
    auto t = routing::RoutingTable::parse(fetch(url).body);
    auto d = t ? t->find({ns, "llama"}) : nullptr;
    return d && d->rateLimit && *d->rateLimit == routing::RateLimitInfo{120000, 720};
  }, 30s)) << "/v1/routes serves the rate limit";

  // Deployment gone: its RoutingTable goes too.
  ASSERT_TRUE(c->remove(kube::kinds::ModelDeployment, ns, "llama"));
  EXPECT_TRUE(it::eventually([&] { return !c->get(kube::kinds::RoutingTable, "", rt).has_value(); }, 60s))
      << op.logText();

  op.kill(SIGTERM);
  kube::DeleteOptions now;
  now.gracePeriodSeconds = 0;
  if (auto l = c->list(kube::kinds::Pod, ns))
    for (const auto& p : l->items) (void)c->remove(kube::kinds::Pod, ns, p["metadata"]["name"], now);
  (void)c->remove(kube::kinds::CapacityPool, "", poolName);
  (void)it::run(fixture + " --delete >/dev/null 2>&1");
  (void)c->remove(kube::kinds::Namespace, "", ns);
}

// An extra control plane (etcd + kube-apiserver + kwok) for one "region", with loopback
// pod IPs so that a test server can stand in for a worker pod.
struct Region {
  std::string dir, kubeconfig;
  std::shared_ptr<kube::RestClient> c;
  Region(const std::string& name, const std::string& podCidr) {
    dir = it::env("WATERLINE_BINARY_DIR") + "/controlplane-" + name;
    kubeconfig = dir + "/kubeconfig";
    const std::string up = "WL_CP_POD_CIDR=" + podCidr + " bash " + sourceDir() + "/tests/integration/env.sh up " +
                           dir + " >" + dir + ".log 2>&1";
    if (it::run(up) != 0) throw std::runtime_error("control plane " + name + " did not start: see " + dir + ".log");
    c = clientFor(kubeconfig);
  }
  ~Region() { (void)it::run("bash " + sourceDir() + "/tests/integration/env.sh down " + dir + " >/dev/null 2>&1"); }
};

// Two regions, each with its own kube-apiserver and operator, publish into one hub (the
// fixture's apiserver). The hub's RoutingTable holds both clusters' entries, each owned by
// its own field manager. When one operator dies its entries stop being refreshed, and a
// router reading the survivor's /v1/routes stops sending to them after --stale-after.
TEST(RoutingIT, TwoRegionsShareAHubAndADeadRegionGoesStale) {
  WL_CLIENT_OR_SKIP(hub);
  std::unique_ptr<Region> a, b;
  try {
    a = std::make_unique<Region>("rt-a", "127.71.0.0/16");
    b = std::make_unique<Region>("rt-b", "127.72.0.0/16");
  } catch (const std::exception& e) {
    FAIL() << e.what();
  }
  const std::string ns = it::uniqueName("mr");
  for (auto* r : {a.get(), b.get()}) {
    ASSERT_TRUE(r->c->create(kube::kinds::Namespace, "", nsObject(ns)));
    ASSERT_TRUE(r->c->apply(kube::kinds::CapacityPool, "", pool(r == a.get() ? "pool-a" : "pool-b", ""),
                            {"it-test", true, ""}));
    ASSERT_TRUE(r->c->apply(kube::kinds::ModelDeployment, ns, deployment(ns, "llama", 1), {"it-test", true, ""}));
  }
  const std::string hubKc = it::env("WATERLINE_TEST_KUBECONFIG");
  it::OperatorProcess opA, opB;
  opA.start({"--kubeconfig=" + a->kubeconfig, "--routing-kubeconfig=" + hubKc, "--cluster-name=a",
             "--routing-heartbeat=1s", "--leader-elect=false", "--routing-heartbeat-namespace=default"});
  opB.start({"--kubeconfig=" + b->kubeconfig, "--routing-kubeconfig=" + hubKc, "--cluster-name=b",
             "--routing-heartbeat=1s", "--leader-elect=false", "--routing-heartbeat-namespace=default"});
  const std::string rt = ns + ".llama";
  struct DropTable {  // the hub outlives the regions: leave nothing behind, pass or fail
    std::shared_ptr<kube::RestClient> hub;
    std::string name;
    ~DropTable() { (void)hub->remove(kube::kinds::RoutingTable, "", name); }
  } dropTable{hub, rt};
  ASSERT_TRUE(it::eventually([&] {
    auto r = routesIn(*hub, rt);
    return r && r->entries.size() == 2 && !r->entries[0].endpoints.empty() && !r->entries[1].endpoints.empty();
  }, 120s)) << "A:\n" << opA.logText(4000) << "\nB:\n" << opB.logText(4000);
  auto routes = *routesIn(*hub, rt);
  EXPECT_EQ(routes.entries[0].cluster, "a");
  EXPECT_EQ(routes.entries[0].pool, "pool-a");
  EXPECT_EQ(routes.entries[1].cluster, "b");
  EXPECT_EQ(routes.entries[1].pool, "pool-b");
  std::set<std::string> managers;
  auto hubObject = hub->get(kube::kinds::RoutingTable, "", rt);
  ASSERT_TRUE(hubObject);
  for (const auto& m : (*hubObject)["metadata"].value("managedFields", Json::array()))
    managers.insert(m.value("manager", ""));
  EXPECT_TRUE(managers.contains("waterline-operator/a") && managers.contains("waterline-operator/b"))
      << [&] {
           std::string all;
           for (const auto& m : managers) all += m + " ";
           return all;
         }();

  // Stand-ins for the two workers, on their (loopback) pod IPs.
  auto hostOf = [](const std::string& ep) { return ep.substr(0, ep.rfind(':')); };
  using router::testing::TestUpstream;
  TestUpstream wa([](const auto&) { return TestUpstream::completion(3, 2, "from-a"); }, 8000,
                  hostOf(routes.entries[0].endpoints[0]));
  TestUpstream wb([](const auto&) { return TestUpstream::completion(3, 2, "from-b"); }, 8000,
                  hostOf(routes.entries[1].endpoints[0]));

  // A router reading region B's operator (which serves the hub's whole table).
  int out[2];
  ASSERT_EQ(pipe(out), 0);
  pid_t router = fork();
  ASSERT_GE(router, 0);
  // Killed on every way out of the test: a live child would hold ctest's output pipe open.
  struct Reap {
    pid_t pid;
    int fd;
    Reap(pid_t p, int f) : pid(p), fd(f) {}
    Reap(const Reap&) = delete;
    ~Reap() {
      kill(pid, SIGTERM);
      int st = 0;
      waitpid(pid, &st, 0);
      close(fd);
    }
  };
  std::optional<Reap> reap;
  if (router > 0) reap.emplace(router, out[0]);
  const std::string routerLog = "/tmp/" + it::uniqueName("wl-rt-router") + ".log";
  if (router == 0) {
    dup2(out[1], 1);
    close(out[0]);
    if (FILE* f = std::fopen(routerLog.c_str(), "w")) dup2(fileno(f), 2);
    std::string src = "--routes-url=http://127.0.0.1:" + std::to_string(opB.port) + "/v1/routes";
    execl(WATERLINE_ROUTER_BIN, WATERLINE_ROUTER_BIN, "--listen=127.0.0.1:0", "--threads=1", "--stale-after=3s",
          "--routes-poll-interval=200ms", "--log-level=warn", "--shutdown-delay=0", src.c_str(), (char*)nullptr);
    _exit(127);
  }
  close(out[1]);
  std::string line;
  char ch;
  while (read(out[0], &ch, 1) == 1 && ch != '\n') line += ch;
  ASSERT_NE(line.rfind(':'), std::string::npos) << line << [&] {
    std::ifstream f(routerLog);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
  }();
  const int port = std::stoi(line.substr(line.rfind(':') + 1));
  const std::string body = R"({"model":")" + ns +
                           R"(/llama","max_tokens":4,"messages":[{"role":"user","content":"hello"}]})";
  auto send = [&](int n, std::map<std::string, int>& byPool) {
    for (int i = 0; i < n; ++i) {
      auto r = router::testing::post(port, "/v1/chat/completions", body);
      if (r.status == 200) ++byPool[r.header("x-waterline-pool")];
      else ++byPool["status-" + std::to_string(r.status)];
    }
  };
  std::map<std::string, int> before;
  ASSERT_TRUE(it::eventually([&] {
    before.clear();
    send(40, before);
    return before["pool-a"] > 0 && before["pool-b"] > 0;
  }, 30s)) << "both regions serve while both are fresh; B's operator:\n" << opB.logText(3000);

  // Region A's operator dies: its entry stays in the hub but is no longer refreshed.
  const SystemTime killedAt = std::chrono::system_clock::now();
  opA.kill(SIGKILL);
  // Wait for what is asserted below, not for a fixed time: B renews its Lease past the
  // point where A's last heartbeat is older than --stale-after (3 s), and B's router stops
  // sending to A.
  ASSERT_TRUE(it::eventually([&] { return leaseRenewTime(*hub, "b") > routing::formatMicroTime(killedAt + 4s); }, 30s))
      << "the live region keeps renewing; B's operator:\n" << opB.logText(3000);
  std::map<std::string, int> after;
  ASSERT_TRUE(it::eventually([&] {
    after.clear();
    send(40, after);
    return after["pool-a"] == 0;
  }, 30s)) << "stale entries are not used; the router's table at "
           << routing::formatMicroTime(std::chrono::system_clock::now()) << ":\n"
           << router::testing::get(port, "/debug/routes").body;
  EXPECT_EQ(after["pool-b"], 40);
  auto later = *routesIn(*hub, rt);
  ASSERT_EQ(later.entries.size(), 2u) << "a dead region's entries are not deleted, they go stale";
  // Each region's heartbeat is its Lease in the hub; B's /v1/routes applies them.
  EXPECT_LT(leaseRenewTime(*hub, "a"), routing::formatMicroTime(killedAt + 1s));
  EXPECT_GT(leaseRenewTime(*hub, "b"), routing::formatMicroTime(killedAt + 2s)) << "the live region keeps renewing";
  auto served = routing::RoutingTable::parse(fetch("http://127.0.0.1:" + std::to_string(opB.port) + "/v1/routes").body);
  ASSERT_TRUE(served && served->find({ns, "llama"}));
  const auto& se = served->find({ns, "llama"})->entries;
  ASSERT_EQ(se.size(), 2u);
  EXPECT_LT(se[0].heartbeatTime, killedAt + 1s) << "region a";
  EXPECT_GT(se[1].heartbeatTime, killedAt + 2s) << "region b, fresh through its Lease";

  reap.reset();
  opB.kill(SIGTERM);
}

}  // namespace
}  // namespace waterline
