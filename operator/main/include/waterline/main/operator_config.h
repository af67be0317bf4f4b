#pragma once
// waterline-operator's command-line configuration (docs/flags.md), parsed with CLI11
// (operator/cli): typed values, one duration syntax shared with the router, and errors
// that name the flag.
#include <chrono>
#include <expected>
#include <string>
#include <vector>

#include "waterline/cli/flags.h"
#include "waterline/common/log.h"
#include "waterline/common/time.h"

namespace waterline::cmd {

struct OperatorConfig {
  // The cluster: kubeconfig ("": $KUBECONFIG, in-cluster, ~/.kube/config) and context.
  std::string kubeconfig, context;
  std::string bindAddress = ":8080";  // /healthz, /readyz, /metrics ("0" disables)
  std::string metricsBindAddress;     // "": /metrics on bindAddress; "0": off; else its own port
  std::string metricsAuth = "none";   // none | kubernetes (TokenReview + SubjectAccessReview)

  // Leader election (a Lease); lease > renew deadline > retry period.
  bool leaderElect = true;
  std::string leaderElectionNamespace = "waterline-system";
  std::string leaderElectionId = "waterline-operator";
  std::string identity;  // "": hostname_pid
  Duration leaseDuration = std::chrono::seconds(15);
  Duration renewDeadline = std::chrono::seconds(10);
  Duration retryPeriod = std::chrono::seconds(2);

  int workers = 4;           // concurrent reconciles per controller
  double kubeApiQps = 0;     // 0: no client-side limit (the API server's Priority and Fairness)
  int kubeApiBurst = 100;
  Duration resyncPeriod = std::chrono::minutes(10);  // 0: no periodic resync

  bool activeHealthProbes = false;
  bool dra = true;  // read ResourceSlices / ResourceClaims when resource.k8s.io/v1 is served
  std::string prometheusUrl;  // "": $WATERLINE_PROMETHEUS_URL (read by main)
  Duration prometheusTimeout = std::chrono::seconds(5);
  Duration xidPollPeriod = std::chrono::seconds(30);
  Duration autoscalerSyncPeriod = std::chrono::seconds(15);

  std::string clusterName;
  std::string routingKubeconfig;  // "": $WATERLINE_HUB_KUBECONFIG (read by main), else this cluster
  Duration routingHeartbeat = std::chrono::seconds(10);
  std::string routingHeartbeatNamespace;  // "": leaderElectionNamespace

  log::Level logLevel = log::Level::Info;
  log::Format logFormat = log::Format::Text;  // --log-format
  int verbosity = 0;  // --v / -v
};

// Parses argv (argv[0] excluded). --help and --version come back as an Exit with code 0
// and the text for stdout; a bad flag as code 2 and a message that names it.
std::expected<OperatorConfig, cli::Exit> parseOperatorConfig(const std::vector<std::string>& args);
std::expected<OperatorConfig, cli::Exit> parseOperatorConfig(int argc, const char* const* argv);

// Every flag and its default, for docs/flags.md (tests/unit/flags compares them).
std::vector<cli::FlagDoc> operatorFlags();

}  // namespace waterline::cmd
