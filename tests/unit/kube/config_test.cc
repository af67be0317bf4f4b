#include "waterline/kube/config.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <random>

namespace waterline::kube {
namespace {

namespace fs = std::filesystem;

std::string b64(const std::string& in) {
  static const char* tbl = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  unsigned val = 0;
  int bits = -6;
  for (unsigned char c : in) {
    val = (val << 8) + c;
    bits += 8;
    while (bits >= 0) {
      out.push_back(tbl[(val >> bits) & 0x3F]);
      bits -= 6;
    }
  }
  if (bits > -6) out.push_back(tbl[((val << 8) >> (bits + 8)) & 0x3F]);
  while (out.size() % 4) out.push_back('=');
  return out;
}

class TempDir {
 public:
  TempDir() {
    std::random_device rd;
    path_ = fs::temp_directory_path() / ("wl-kube-cfg-" + std::to_string(rd()));
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string write(const std::string& rel, const std::string& content) const {
    fs::path p = path_ / rel;
    fs::create_directories(p.parent_path());
    std::ofstream(p) << content;
    return p.string();
  }
  std::string path() const { return path_.string(); }

 private:
  fs::path path_;
};

ConfigEnv envOf(std::map<std::string, std::string> vars, std::string saDir = "/nonexistent") {
  ConfigEnv env;
  env.getenv = [vars](const std::string& k) -> std::optional<std::string> {
    auto it = vars.find(k);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
  env.serviceAccountDir = std::move(saDir);
  return env;
}

const std::string kCa = "-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n";
const std::string kCert = "-----BEGIN CERTIFICATE-----\nCERT\n-----END CERTIFICATE-----\n";
const std::string kKey = "-----BEGIN PRIVATE KEY-----\nKEY\n-----END PRIVATE KEY-----\n";

std::string embeddedKubeconfig() {
  return R"(apiVersion: v1
kind: Config
clusters:
- name: c1
  cluster:
    server: https://10.0.0.1:6443/
    certificate-authority-data: )" +
         b64(kCa) + R"(
- name: c2
  cluster:
    server: https://10.0.0.2:6443
    insecure-skip-tls-verify: true
users:
- name: cert-user
  user:
    client-certificate-data: )" +
         b64(kCert) + R"(
    client-key-data: )" +
         b64(kKey) + R"(
- name: token-user
  user:
    token: s3cr3t
- name: exec-user
  user:
    exec:
      command: aws
contexts:
- name: ctx-cert
  context: {cluster: c1, user: cert-user, namespace: team-a}
- name: ctx-token
  context: {cluster: c2, user: token-user}
- name: ctx-exec
  context: {cluster: c1, user: exec-user}
- name: ctx-nocluster
  context: {cluster: missing, user: token-user}
current-context: ctx-cert
)";
}

TEST(Kubeconfig, EmbeddedDataCurrentContext) {
  auto cfg = parseKubeconfig(embeddedKubeconfig(), "/tmp");
  ASSERT_TRUE(cfg) << cfg.error();
  EXPECT_EQ(cfg->server, "https://10.0.0.1:6443");  // trailing slash dropped
  EXPECT_EQ(cfg->caData, kCa);
  EXPECT_EQ(cfg->clientCertData, kCert);
  EXPECT_EQ(cfg->clientKeyData, kKey);
  EXPECT_TRUE(cfg->bearerToken.empty());
  EXPECT_FALSE(cfg->insecureSkipTLSVerify);
  EXPECT_EQ(cfg->defaultNamespace, "team-a");
  EXPECT_EQ(cfg->qps, 50);
  EXPECT_EQ(cfg->burst, 100);
}

TEST(Kubeconfig, ContextOverrideTokenAndInsecure) {
  auto cfg = parseKubeconfig(embeddedKubeconfig(), "/tmp", "ctx-token");
  ASSERT_TRUE(cfg) << cfg.error();
  EXPECT_EQ(cfg->server, "https://10.0.0.2:6443");
  EXPECT_TRUE(cfg->insecureSkipTLSVerify);
  EXPECT_EQ(cfg->bearerToken, "s3cr3t");
  EXPECT_TRUE(cfg->clientCertData.empty());
  EXPECT_TRUE(cfg->caData.empty());
  EXPECT_TRUE(cfg->defaultNamespace.empty());
}

TEST(Kubeconfig, Errors) {
  auto missingCtx = parseKubeconfig(embeddedKubeconfig(), "/tmp", "nope");
  ASSERT_FALSE(missingCtx);
  EXPECT_NE(missingCtx.error().find("no context named \"nope\""), std::string::npos);

  auto missingCluster = parseKubeconfig(embeddedKubeconfig(), "/tmp", "ctx-nocluster");
  ASSERT_FALSE(missingCluster);
  EXPECT_NE(missingCluster.error().find("no cluster named \"missing\""), std::string::npos);

  auto exec = parseKubeconfig(embeddedKubeconfig(), "/tmp", "ctx-exec");
  ASSERT_FALSE(exec);
  EXPECT_NE(exec.error().find("exec credential plugin"), std::string::npos);

  auto notYaml = parseKubeconfig("clusters: [unclosed", "/tmp");
  ASSERT_FALSE(notYaml);
  EXPECT_NE(notYaml.error().find("not valid YAML"), std::string::npos);

  auto empty = parseKubeconfig("", "/tmp");
  ASSERT_FALSE(empty);

  auto noCurrent = parseKubeconfig("apiVersion: v1\nkind: Config\ncontexts: []\n", "/tmp");
  ASSERT_FALSE(noCurrent);
  EXPECT_NE(noCurrent.error().find("no current-context"), std::string::npos);

  auto badB64 = parseKubeconfig(R"(
clusters:
- name: c
  cluster: {server: "https://x:1", certificate-authority-data: "!!!notbase64"}
contexts:
- name: x
  context: {cluster: c}
current-context: x
)",
                                "/tmp");
  ASSERT_FALSE(badB64);
  EXPECT_NE(badB64.error().find("not valid base64"), std::string::npos);

  auto noServer = parseKubeconfig(R"(
clusters:
- name: c
  cluster: {}
contexts:
- name: x
  context: {cluster: c}
current-context: x
)",
                                  "/tmp");
  ASSERT_FALSE(noServer);
  EXPECT_NE(noServer.error().find("has no server"), std::string::npos);

  auto badScheme = parseKubeconfig(R"(
clusters:
- name: c
  cluster: {server: "10.0.0.1:6443"}
contexts:
- name: x
  context: {cluster: c}
current-context: x
)",
                                   "/tmp");
  ASSERT_FALSE(badScheme);
  EXPECT_NE(badScheme.error().find("https://"), std::string::npos);

  auto certNoKey = parseKubeconfig(R"(
clusters:
- name: c
  cluster: {server: "https://x:1"}
users:
- name: u
  user: {client-certificate-data: )" + b64(kCert) + R"(}
contexts:
- name: x
  context: {cluster: c, user: u}
current-context: x
)",
                                   "/tmp");
  ASSERT_FALSE(certNoKey);
  EXPECT_NE(certNoKey.error().find("without a key"), std::string::npos);
}

TEST(Kubeconfig, FilePathsRelativeToKubeconfigDir) {
  TempDir dir;
  dir.write("pki/ca.crt", kCa);
  dir.write("pki/admin.crt", kCert);
  const std::string keyAbs = dir.write("abs/admin.key", kKey);
  dir.write("tok/token", "file-token\n");
  const std::string path = dir.write("conf/kubeconfig", R"(
apiVersion: v1
kind: Config
clusters:
- name: c
  cluster:
    server: https://127.0.0.1:6443
    certificate-authority: ../pki/ca.crt
users:
- name: u
  user:
    client-certificate: ../pki/admin.crt
    client-key: )" + keyAbs + R"(
    tokenFile: ../tok/token
contexts:
- name: x
  context: {cluster: c, user: u}
current-context: x
)");
  auto cfg = loadKubeconfig(path);
  ASSERT_TRUE(cfg) << cfg.error();
  EXPECT_EQ(cfg->caData, kCa);
  EXPECT_EQ(cfg->clientCertData, kCert);
  EXPECT_EQ(cfg->clientKeyData, kKey);
  EXPECT_EQ(cfg->bearerTokenFile, (fs::path(dir.path()) / "tok/token").lexically_normal().string());
  EXPECT_NE(cfg->source.find(path), std::string::npos);
}

TEST(Kubeconfig, MissingReferencedFileIsAnError) {
  TempDir dir;
  const std::string path = dir.write("kubeconfig", R"(
clusters:
- name: c
  cluster: {server: "https://x:1", certificate-authority: nothere.crt}
contexts:
- name: x
  context: {cluster: c}
current-context: x
)");
  auto cfg = loadKubeconfig(path);
  ASSERT_FALSE(cfg);
  EXPECT_NE(cfg.error().find("nothere.crt"), std::string::npos) << cfg.error();
  EXPECT_NE(cfg.error().find(path), std::string::npos) << cfg.error();

  auto missing = loadKubeconfig(dir.path() + "/does-not-exist");
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().find("cannot read kubeconfig"), std::string::npos);
}

TEST(InCluster, FromServiceAccountDir) {
  TempDir sa;
  sa.write("token", "sa-token\n");
  sa.write("ca.crt", kCa);
  sa.write("namespace", "waterline-system\n");
  auto cfg = loadInCluster(envOf({{"KUBERNETES_SERVICE_HOST", "10.96.0.1"},
                                  {"KUBERNETES_SERVICE_PORT", "443"}},
                                 sa.path()));
  ASSERT_TRUE(cfg) << cfg.error();
  EXPECT_EQ(cfg->server, "https://10.96.0.1:443");
  EXPECT_EQ(cfg->caData, kCa);
  EXPECT_EQ(cfg->bearerTokenFile, sa.path() + "/token");
  EXPECT_EQ(cfg->defaultNamespace, "waterline-system");
  EXPECT_EQ(cfg->source, "in-cluster");
}

TEST(InCluster, Ipv6HostIsBracketed) {
  TempDir sa;
  sa.write("token", "t");
  sa.write("ca.crt", kCa);
  auto cfg = loadInCluster(
      envOf({{"KUBERNETES_SERVICE_HOST", "fd00::1"}, {"KUBERNETES_SERVICE_PORT", "6443"}}, sa.path()));
  ASSERT_TRUE(cfg) << cfg.error();
  EXPECT_EQ(cfg->server, "https://[fd00::1]:6443");
  EXPECT_EQ(cfg->defaultNamespace, "");
}

TEST(InCluster, Errors) {
  auto notInCluster = loadInCluster(envOf({}));
  ASSERT_FALSE(notInCluster);
  EXPECT_NE(notInCluster.error().find("KUBERNETES_SERVICE_HOST"), std::string::npos);

  TempDir sa;
  sa.write("ca.crt", kCa);
  auto noToken = loadInCluster(
      envOf({{"KUBERNETES_SERVICE_HOST", "h"}, {"KUBERNETES_SERVICE_PORT", "1"}}, sa.path()));
  ASSERT_FALSE(noToken);
  EXPECT_NE(noToken.error().find("token"), std::string::npos);
}

class LoadDefaultTest : public ::testing::Test {
 protected:
  std::string kubeconfigFor(const std::string& server) {
    return R"(
clusters:
- name: c
  cluster: {server: ")" +
           server + R"("}
users:
- name: u
  user: {token: t}
contexts:
- name: x
  context: {cluster: c, user: u}
- name: y
  context: {cluster: c, user: u, namespace: why}
current-context: x
)";
  }
  TempDir dir;
};

TEST_F(LoadDefaultTest, ExplicitPathWins) {
  auto explicitPath = dir.write("explicit", kubeconfigFor("https://explicit:1"));
  auto envPath = dir.write("env", kubeconfigFor("https://env:1"));
  auto cfg = loadDefault(explicitPath, "", envOf({{"KUBECONFIG", envPath}}));
  ASSERT_TRUE(cfg) << cfg.error();
  EXPECT_EQ(cfg->server, "https://explicit:1");
}

TEST_F(LoadDefaultTest, KubeconfigEnvFirstExistingFileAndContext) {
  auto envPath = dir.write("env2", kubeconfigFor("https://env:1"));
  auto cfg = loadDefault("", "y",
                         envOf({{"KUBECONFIG", dir.path() + "/missing1:" + envPath + ":/x"},
                                {"KUBERNETES_SERVICE_HOST", "10.0.0.1"}}));
  ASSERT_TRUE(cfg) << cfg.error();
  EXPECT_EQ(cfg->server, "https://env:1");
  EXPECT_EQ(cfg->defaultNamespace, "why");
}

TEST_F(LoadDefaultTest, InClusterBeforeHome) {
  TempDir sa;
  sa.write("token", "t");
  sa.write("ca.crt", kCa);
  dir.write("home/.kube/config", kubeconfigFor("https://home:1"));
  auto cfg = loadDefault("", "",
                         envOf({{"KUBERNETES_SERVICE_HOST", "10.0.0.9"},
                                {"KUBERNETES_SERVICE_PORT", "443"},
                                {"HOME", dir.path() + "/home"}},
                               sa.path()));
  ASSERT_TRUE(cfg) << cfg.error();
  EXPECT_EQ(cfg->server, "https://10.0.0.9:443");
}

TEST_F(LoadDefaultTest, HomeLast) {
  dir.write("home/.kube/config", kubeconfigFor("https://home:1"));
  auto cfg = loadDefault("", "", envOf({{"HOME", dir.path() + "/home"}, {"KUBECONFIG", "/none"}}));
  ASSERT_TRUE(cfg) << cfg.error();
  EXPECT_EQ(cfg->server, "https://home:1");
}

TEST_F(LoadDefaultTest, NothingFound) {
  auto cfg = loadDefault("", "", envOf({{"HOME", dir.path()}}));
  ASSERT_FALSE(cfg);
  EXPECT_NE(cfg.error().find("no Kubernetes configuration"), std::string::npos);
}

TEST_F(LoadDefaultTest, ExplicitPathThatFailsIsAnError) {
  auto cfg = loadDefault(dir.path() + "/nope", "", envOf({{"HOME", dir.path()}}));
  ASSERT_FALSE(cfg);
  EXPECT_NE(cfg.error().find("cannot read kubeconfig"), std::string::npos);
}

}  // namespace
}  // namespace waterline::kube
