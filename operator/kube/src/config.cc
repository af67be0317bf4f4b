#include "waterline/kube/config.h"

#include <yaml-cpp/yaml.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "internal.h"

namespace waterline::kube {

namespace fs = std::filesystem;

std::optional<std::string> ConfigEnv::get(const std::string& name) const {
  if (getenv) return getenv(name);
  const char* v = ::getenv(name.c_str());
  if (v == nullptr) return std::nullopt;
  return std::string(v);
}

namespace {

using Error = std::unexpected<std::string>;

std::string resolvePath(const std::string& p, const std::string& baseDir) {
  if (p.empty()) return p;
  fs::path path(p);
  if (path.is_absolute() || baseDir.empty()) return p;
  return (fs::path(baseDir) / path).lexically_normal().string();
}

// A named entry of clusters/contexts/users: returns the inner map (`cluster`,
// `context` or `user`) of the item whose name is `name`.
std::optional<YAML::Node> findNamed(const YAML::Node& list, const std::string& name,
                                    const char* inner) {
  if (!list || !list.IsSequence()) return std::nullopt;
  for (const auto& item : list) {
    if (!item.IsMap()) continue;
    auto n = item["name"];
    if (n && n.IsScalar() && n.as<std::string>() == name) {
      auto in = item[inner];
      if (!in || in.IsNull()) return YAML::Node(YAML::NodeType::Map);
      return in;
    }
  }
  return std::nullopt;
}

std::string scalar(const YAML::Node& map, const char* key) {
  if (!map || !map.IsMap()) return {};
  auto v = map[key];
  if (!v || !v.IsScalar()) return {};
  return v.as<std::string>();
}

bool boolean(const YAML::Node& map, const char* key) {
  if (!map || !map.IsMap()) return false;
  auto v = map[key];
  if (!v || !v.IsScalar()) return false;
  try {
    return v.as<bool>();
  } catch (const YAML::Exception&) {
    return false;
  }
}

// Either `<key>-data` (base64) or `<key>` (a file path) of `map`.
std::expected<std::string, std::string> dataOrFile(const YAML::Node& map, const std::string& key,
                                                   const std::string& baseDir,
                                                   const std::string& what) {
  std::string data = scalar(map, (key + "-data").c_str());
  if (!data.empty()) {
    auto decoded = detail::base64Decode(data);
    if (!decoded) return Error(what + ": " + key + "-data is not valid base64");
    return *decoded;
  }
  std::string file = scalar(map, key.c_str());
  if (!file.empty()) {
    std::string path = resolvePath(file, baseDir);
    auto content = detail::readFile(path);
    if (!content) return Error(what + ": cannot read " + key + " file " + path + ": " + content.error());
    return *content;
  }
  return std::string();
}

std::string trimSlash(std::string s) {
  while (!s.empty() && s.back() == '/') s.pop_back();
  return s;
}

}  // namespace

std::expected<RestConfig, std::string> parseKubeconfig(std::string_view yaml,
                                                       const std::string& baseDir,
                                                       const std::string& context) {
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yaml));
  } catch (const YAML::Exception& e) {
    return Error(std::string("kubeconfig is not valid YAML: ") + e.what());
  }
  if (!root || !root.IsMap()) return Error("kubeconfig is empty or not a YAML map");

  std::string ctxName = context.empty() ? scalar(root, "current-context") : context;
  if (ctxName.empty()) return Error("kubeconfig has no current-context and none was given");

  auto ctx = findNamed(root["contexts"], ctxName, "context");
  if (!ctx) return Error("kubeconfig has no context named \"" + ctxName + "\"");
  std::string clusterName = scalar(*ctx, "cluster");
  std::string userName = scalar(*ctx, "user");
  if (clusterName.empty()) return Error("context \"" + ctxName + "\" names no cluster");

  auto cluster = findNamed(root["clusters"], clusterName, "cluster");
  if (!cluster) return Error("kubeconfig has no cluster named \"" + clusterName + "\" (context \"" + ctxName + "\")");

  RestConfig cfg;
  cfg.server = trimSlash(scalar(*cluster, "server"));
  if (cfg.server.empty()) return Error("cluster \"" + clusterName + "\" has no server");
  if (!cfg.server.starts_with("https://") && !cfg.server.starts_with("http://"))
    return Error("cluster \"" + clusterName + "\" server \"" + cfg.server +
                 "\" must start with https:// or http://");
  cfg.insecureSkipTLSVerify = boolean(*cluster, "insecure-skip-tls-verify");
  auto ca = dataOrFile(*cluster, "certificate-authority", baseDir, "cluster \"" + clusterName + "\"");
  if (!ca) return Error(ca.error());
  cfg.caData = *ca;
  cfg.defaultNamespace = scalar(*ctx, "namespace");

  if (!userName.empty()) {
    auto user = findNamed(root["users"], userName, "user");
    if (!user) return Error("kubeconfig has no user named \"" + userName + "\" (context \"" + ctxName + "\")");
    const std::string what = "user \"" + userName + "\"";
    auto cert = dataOrFile(*user, "client-certificate", baseDir, what);
    if (!cert) return Error(cert.error());
    auto key = dataOrFile(*user, "client-key", baseDir, what);
    if (!key) return Error(key.error());
    cfg.clientCertData = *cert;
    cfg.clientKeyData = *key;
    if (cfg.clientCertData.empty() != cfg.clientKeyData.empty())
      return Error(what + " has a client certificate without a key or a key without a certificate");
    cfg.bearerToken = scalar(*user, "token");
    std::string tokenFile = scalar(*user, "tokenFile");
    if (!tokenFile.empty()) {
      cfg.bearerTokenFile = resolvePath(tokenFile, baseDir);
      auto t = detail::readFile(cfg.bearerTokenFile);
      if (!t) return Error(what + ": cannot read tokenFile " + cfg.bearerTokenFile + ": " + t.error());
    }
    const bool hasCreds = !cfg.clientCertData.empty() || !cfg.bearerToken.empty() ||
                          !cfg.bearerTokenFile.empty();
    if (!hasCreds) {
      if ((*user)["exec"]) return Error(what + " uses an exec credential plugin, which is not supported");
      if ((*user)["auth-provider"])
        return Error(what + " uses an auth-provider, which is not supported");
      if (!scalar(*user, "username").empty())
        return Error(what + " uses basic auth (username/password), which is not supported");
    }
  }

  cfg.source = "kubeconfig context=" + ctxName;
  return cfg;
}

std::expected<RestConfig, std::string> loadKubeconfig(const std::string& path,
                                                      const std::string& context) {
  auto content = detail::readFile(path);
  if (!content) return Error("cannot read kubeconfig " + path + ": " + content.error());
  std::string base = fs::path(path).parent_path().string();
  auto cfg = parseKubeconfig(*content, base, context);
  if (!cfg) return Error("kubeconfig " + path + ": " + cfg.error());
  cfg->source = "kubeconfig " + path + " " + cfg->source.substr(std::string("kubeconfig ").size());
  return cfg;
}

std::expected<RestConfig, std::string> loadInCluster(const ConfigEnv& env) {
  auto host = env.get("KUBERNETES_SERVICE_HOST");
  auto port = env.get("KUBERNETES_SERVICE_PORT");
  if (!host || host->empty() || !port || port->empty())
    return Error("not running in a cluster: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be set");
  const fs::path dir(env.serviceAccountDir);
  RestConfig cfg;
  std::string h = *host;
  if (h.find(':') != std::string::npos && h.front() != '[') h = "[" + h + "]";  // IPv6
  cfg.server = "https://" + h + ":" + *port;
  const std::string tokenPath = (dir / "token").string();
  auto token = detail::readFile(tokenPath);
  if (!token) return Error("in-cluster: cannot read service-account token " + tokenPath + ": " + token.error());
  cfg.bearerTokenFile = tokenPath;
  const std::string caPath = (dir / "ca.crt").string();
  auto ca = detail::readFile(caPath);
  if (!ca) return Error("in-cluster: cannot read service-account CA " + caPath + ": " + ca.error());
  cfg.caData = *ca;
  if (auto ns = detail::readFile((dir / "namespace").string())) {
    std::string n = *ns;
    while (!n.empty() && (n.back() == '\n' || n.back() == ' ' || n.back() == '\r')) n.pop_back();
    cfg.defaultNamespace = n;
  }
  cfg.source = "in-cluster";
  return cfg;
}

std::expected<RestConfig, std::string> loadDefault(const std::string& explicitPath,
                                                   const std::string& context,
                                                   const ConfigEnv& env) {
  if (!explicitPath.empty()) return loadKubeconfig(explicitPath, context);
  if (auto kc = env.get("KUBECONFIG"); kc && !kc->empty()) {
    std::stringstream ss(*kc);
    std::string item;
    while (std::getline(ss, item, ':')) {
      if (item.empty()) continue;
      std::error_code ec;
      if (fs::is_regular_file(item, ec)) return loadKubeconfig(item, context);
    }
    // KUBECONFIG set but none of its files exists: fall through like kubectl does.
  }
  if (auto host = env.get("KUBERNETES_SERVICE_HOST"); host && !host->empty()) return loadInCluster(env);
  if (auto home = env.get("HOME"); home && !home->empty()) {
    std::string p = (fs::path(*home) / ".kube" / "config").string();
    std::error_code ec;
    if (fs::is_regular_file(p, ec)) return loadKubeconfig(p, context);
  }
  return Error(
      "no Kubernetes configuration found: pass --kubeconfig, set KUBECONFIG, run in a cluster, "
      "or create ~/.kube/config");
}

}  // namespace waterline::kube
