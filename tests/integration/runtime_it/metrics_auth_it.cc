// The operator's metrics port and --metrics-auth=kubernetes against the fixture's
// kube-apiserver (RBAC on, ServiceAccount tokens from the TokenRequest API): a token whose
// ServiceAccount is bound to get /metrics gets 200, one without that right 403, none and
// a bogus one 401; the probes stay on --bind-address without authentication.
#include <signal.h>

#include <cstdio>
#include <fstream>

#include "it_support.h"
#include "operator_process.h"

namespace waterline {
namespace {

using namespace std::chrono_literals;
using kube::Json;

const kube::ResourceKind kClusterRoles{"rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", false};
const kube::ResourceKind kClusterRoleBindings{"rbac.authorization.k8s.io", "v1", "clusterrolebindings",
                                              "ClusterRoleBinding", false};

// curl's answer: "<status>\n<body>" ("000" when nothing answered).
struct Answer {
  int status = 0;
  std::string body;
};
Answer httpGet(int port, const std::string& path, const std::string& token = "") {
  std::string cmd = "curl -s --max-time 10 -w '\\n%{http_code}' ";
  if (!token.empty()) cmd += "-H 'Authorization: Bearer " + token + "' ";
  cmd += "http://127.0.0.1:" + std::to_string(port) + path;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return {};
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  pclose(p);
  const auto nl = out.rfind('\n');
  Answer a;
  if (nl == std::string::npos) return a;
  a.status = std::atoi(out.c_str() + nl + 1);
  a.body = out.substr(0, nl);
  return a;
}

// A namespace with two ServiceAccounts: `reader` (bound to a ClusterRole allowing get on
// /metrics) and `nobody`; deleted again at the end.
struct Accounts {
  std::shared_ptr<kube::RestClient> c;
  std::string ns = it::uniqueName("wl-metrics");
  std::string role = it::uniqueName("wl-metrics-reader");
  std::string readerToken, nobodyToken;

  explicit Accounts(std::shared_ptr<kube::RestClient> client) : c(std::move(client)) {}
  void setUp() {
    ASSERT_TRUE(c->create(kube::kinds::Namespace, "", {{"apiVersion", "v1"}, {"kind", "Namespace"}, {"metadata", {{"name", ns}}}}));
    for (const char* sa : {"reader", "nobody"}) {
      ASSERT_TRUE(c->create(kube::kinds::ServiceAccount, ns,
                            {{"apiVersion", "v1"}, {"kind", "ServiceAccount"}, {"metadata", {{"name", sa}, {"namespace", ns}}}}));
    }
    ASSERT_TRUE(c->create(kClusterRoles, "",
                          {{"apiVersion", "rbac.authorization.k8s.io/v1"},
                           {"kind", "ClusterRole"},
                           {"metadata", {{"name", role}}},
                           {"rules", Json::array({{{"nonResourceURLs", {"/metrics"}}, {"verbs", {"get"}}}})}}));
    ASSERT_TRUE(c->create(kClusterRoleBindings, "",
                          {{"apiVersion", "rbac.authorization.k8s.io/v1"},
                           {"kind", "ClusterRoleBinding"},
                           {"metadata", {{"name", role}}},
                           {"roleRef", {{"apiGroup", "rbac.authorization.k8s.io"}, {"kind", "ClusterRole"}, {"name", role}}},
                           {"subjects", Json::array({{{"kind", "ServiceAccount"}, {"name", "reader"}, {"namespace", ns}}})}}));
    readerToken = token("reader");
    nobodyToken = token("nobody");
    ASSERT_FALSE(readerToken.empty());
    ASSERT_FALSE(nobodyToken.empty());
  }
  std::string token(const std::string& sa) {
    kube::WriteOptions o;
    o.subresource = "token";
    auto r = c->create(kube::kinds::ServiceAccount, ns,
                       {{"apiVersion", "authentication.k8s.io/v1"},
                        {"kind", "TokenRequest"},
                        {"metadata", {{"name", sa}, {"namespace", ns}}},
                        {"spec", {{"expirationSeconds", 3600}}}},
                       o);
    EXPECT_TRUE(r) << (r ? "" : r.error().describe());
    return r ? (*r)["status"].value("token", "") : "";
  }
  ~Accounts() {
    (void)c->remove(kClusterRoleBindings, "", role);
    (void)c->remove(kClusterRoles, "", role);
    (void)c->remove(kube::kinds::Namespace, "", ns);
  }
};

TEST(MetricsAuthIT, AllowedTokenGets200DeniedGets403NoneGets401) {
  WL_CLIENT_OR_SKIP(client);
  Accounts acc(client);
  ASSERT_NO_FATAL_FAILURE(acc.setUp());

  const int metricsPort = it::freeLoopbackPort();
  it::OperatorProcess op;
  op.start({"--leader-elect=false", "--metrics-bind-address=127.0.0.1:" + std::to_string(metricsPort),
            "--metrics-auth=kubernetes"});
  ASSERT_TRUE(it::eventually([&] { return op.get("/healthz") == "ok\n"; }, 30s)) << op.logText();
  // The probes stay on --bind-address, unauthenticated; /metrics is not there.
  EXPECT_EQ(httpGet(op.port, "/metrics").status, 404);
  EXPECT_EQ(httpGet(metricsPort, "/healthz").status, 404);

  const Answer none = httpGet(metricsPort, "/metrics");
  EXPECT_EQ(none.status, 401) << none.body;
  EXPECT_EQ(httpGet(metricsPort, "/metrics", "not-a-token").status, 401);
  const Answer denied = httpGet(metricsPort, "/metrics", acc.nobodyToken);
  EXPECT_EQ(denied.status, 403) << denied.body << "\n" << op.logText();
  EXPECT_NE(denied.body.find("system:serviceaccount:" + acc.ns + ":nobody"), std::string::npos) << denied.body;
  const Answer allowed = httpGet(metricsPort, "/metrics", acc.readerToken);
  ASSERT_EQ(allowed.status, 200) << allowed.body << "\n" << op.logText();
  EXPECT_NE(allowed.body.find("# TYPE waterline_leader_is_leader gauge"), std::string::npos);
  EXPECT_NE(allowed.body.find("\nprocess_open_fds "), std::string::npos);
  // Cached answers are the same answers.
  EXPECT_EQ(httpGet(metricsPort, "/metrics", acc.readerToken).status, 200);
  EXPECT_EQ(httpGet(metricsPort, "/metrics", acc.nobodyToken).status, 403);
  op.kill(SIGTERM);
}

TEST(MetricsAuthIT, SeparateMetricsPortWithoutAuthPassesPromtool) {
  WL_CLIENT_OR_SKIP(client);
  const int metricsPort = it::freeLoopbackPort();
  it::OperatorProcess op;
  op.start({"--leader-elect=false", "--metrics-bind-address=127.0.0.1:" + std::to_string(metricsPort)});
  ASSERT_TRUE(it::eventually([&] { return httpGet(metricsPort, "/metrics").status == 200; }, 30s)) << op.logText();
  EXPECT_EQ(httpGet(op.port, "/metrics").status, 404);
  EXPECT_EQ(op.get("/healthz"), "ok\n");
  const Answer m = httpGet(metricsPort, "/metrics");
  for (const char* name : {"process_cpu_seconds_total", "process_resident_memory_bytes", "process_virtual_memory_bytes",
                           "process_start_time_seconds", "process_open_fds", "process_max_fds"})
    EXPECT_NE(m.body.find(std::string("\n") + name + " "), std::string::npos) << name;
  const std::string file = "/tmp/" + it::uniqueName("metrics") + ".txt";
  std::ofstream(file) << m.body;
  EXPECT_EQ(it::run("promtool check metrics < " + file), 0) << m.body;
  std::remove(file.c_str());
  op.kill(SIGTERM);
}

TEST(MetricsAuthIT, MetricsBindAddressZeroDisablesMetrics) {
  WL_CLIENT_OR_SKIP(client);
  it::OperatorProcess op;
  op.start({"--leader-elect=false", "--metrics-bind-address=0"});
  ASSERT_TRUE(it::eventually([&] { return op.get("/healthz") == "ok\n"; }, 30s)) << op.logText();
  EXPECT_EQ(httpGet(op.port, "/metrics").status, 404);
  op.kill(SIGTERM);
}

}  // namespace
}  // namespace waterline
