#pragma once
// Where the API server is and how to talk to it: a RestConfig, and the loaders that
// build one from a kubeconfig file, from the in-cluster service account, or by the
// usual resolution order (loadDefault).
#include <chrono>
#include <expected>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace waterline::kube {

inline constexpr const char* kServiceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount";

struct RestConfig {
  // Base URL, e.g. "https://127.0.0.1:6443" (a path prefix is kept: requests are
  // appended to it). No trailing slash.
  std::string server;

  // TLS. PEM text, not file names (the loaders read the files).
  std::string caData;          // empty: the system trust store
  std::string clientCertData;  // certificate chain, leaf first
  std::string clientKeyData;
  bool insecureSkipTLSVerify = false;

  // Bearer token. When bearerTokenFile is set it wins over bearerToken and is re-read
  // every tokenRefresh (projected service-account tokens rotate).
  std::string bearerToken;
  std::string bearerTokenFile;
  std::chrono::seconds tokenRefresh{60};

  // Client-side rate limit in front of every request (token bucket).
  double qps = 50;
  int burst = 100;  // qps <= 0 disables the limiter

  std::string userAgent = "waterline-operator/0.1";

  // Inactivity timeout of ordinary requests (no byte for this long fails the request
  // with Reason::Timeout).
  std::chrono::seconds requestTimeout{30};
  // Watches: timeoutSeconds sent when ListOptions leaves it unset, and the slack
  // added on top of timeoutSeconds for the connection's inactivity timeout (so a
  // stalled watch connection fails instead of hanging a worker).
  std::chrono::seconds defaultWatchTimeout{300};
  std::chrono::seconds watchInactivitySlack{30};

  // Idempotent reads (GET, LIST) answered 429 (or 5xx with Retry-After) are retried
  // this many times, waiting Retry-After (default 1 s, capped at maxRetryWait).
  int maxRetries = 5;
  std::chrono::seconds maxRetryWait{10};

  // Informational: the namespace of the current context (kubeconfig) or of the pod
  // (in-cluster); "" when unknown.
  std::string defaultNamespace;
  // Informational: where this config came from ("kubeconfig /path context=x",
  // "in-cluster").
  std::string source;
};

// The environment the loaders read; injectable for tests.
struct ConfigEnv {
  // getenv replacement; unset -> ::getenv.
  std::function<std::optional<std::string>(const std::string&)> getenv;
  // The service-account directory (token, ca.crt, namespace).
  std::string serviceAccountDir = kServiceAccountDir;

  std::optional<std::string> get(const std::string& name) const;
};

// Parses kubeconfig YAML. `baseDir` resolves relative file paths (the kubeconfig's own
// directory). `context` overrides current-context. Supported per user:
// client-certificate(-data), client-key(-data), token, tokenFile; per cluster: server,
// certificate-authority(-data), insecure-skip-tls-verify. exec / auth-provider users
// are not supported (an error unless the user also has a token or certificate).
std::expected<RestConfig, std::string> parseKubeconfig(std::string_view yaml,
                                                       const std::string& baseDir,
                                                       const std::string& context = "");

// Reads and parses a kubeconfig file.
std::expected<RestConfig, std::string> loadKubeconfig(const std::string& path,
                                                      const std::string& context = "");

// The in-cluster config: KUBERNETES_SERVICE_HOST / KUBERNETES_SERVICE_PORT and the
// service-account token (as bearerTokenFile, re-read periodically), ca.crt and
// namespace under env.serviceAccountDir.
std::expected<RestConfig, std::string> loadInCluster(const ConfigEnv& env = {});

// Resolution order (the first that applies wins; a source that applies but fails is an
// error, not a fall-through):
//   1. explicitPath (--kubeconfig), when non-empty;
//   2. $KUBECONFIG: the first existing file of its colon-separated list (files are not
//      merged as kubectl does);
//   3. in-cluster, when KUBERNETES_SERVICE_HOST is set;
//   4. $HOME/.kube/config.
// `context` (--context) applies to kubeconfig sources.
std::expected<RestConfig, std::string> loadDefault(const std::string& explicitPath = "",
                                                   const std::string& context = "",
                                                   const ConfigEnv& env = {});

}  // namespace waterline::kube
