#pragma once
// Active health probing of ModelDeployment workers (spec.healthCheck): an HTTP GET of
// http://<podIP>:<port><path> every periodSeconds with timeoutSeconds; a status in
// [200, 400) is a success (the kubelet's httpGet rule). Each worker has a
// planners::HealthThreshold (failureThreshold / successThreshold, Envoy-style), so a
// worker turns unhealthy only after N consecutive failures and healthy again after M
// consecutive successes. On a transition the deployment's key is handed to
// `onTransition` (main enqueues it in the ModelDeployment controller); the reconciler
// reads unhealthy(ns, name) and replaces those workers like Failed pods (reason
// ProbeFailed, with the repair backoff).
//
// A worker is probed once it has been Ready (its model is loaded; before that the
// kubelet's readiness probe governs), while it is Running with a pod IP, not draining and
// not being deleted. Probing state is in memory: a restarted operator starts every worker
// healthy again.
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "waterline/cache/informer.h"
#include "waterline/common/metrics.h"
#include "waterline/common/time.h"
#include "waterline/planners/health_threshold.h"

namespace waterline::reconcilers {

struct ProbeTarget {
  std::string ns, deployment, pod, uid;
  std::string ip;
  int32_t port = 0;
  std::string path = "/";
  Duration period = std::chrono::seconds(10);
  Duration timeout = std::chrono::seconds(1);
  int32_t failureThreshold = 3;
  int32_t successThreshold = 1;
  bool ready = false;  // pod condition Ready=True now
};

// The workers to probe: pods of deployments with a health port, Running with a pod IP,
// not being deleted nor draining. Sorted by (ns, pod).
std::vector<ProbeTarget> probeTargets(const std::vector<nlohmann::json>& deployments,
                                      const std::vector<nlohmann::json>& pods);

// One HTTP probe: true for a status in [200, 400) within `timeout`.
using ProbeFn = std::function<bool(const std::string& ip, int32_t port, const std::string& path, Duration timeout)>;
// The real probe: HTTP/1.1 GET over a plain TCP socket (IPv4 or IPv6 literal). A path
// with whitespace or control characters (which would split the request line) is refused:
// std::invalid_argument, nothing is sent.
//
// A probe that throws counts as a failed probe; ProbeSet::tick logs its cause once per
// worker (again only when the cause changes or after a probe that did not throw).
bool httpProbe(const std::string& ip, int32_t port, const std::string& path, Duration timeout);

// The probing state of every worker (by pod uid). Not thread-safe except unhealthy().
class ProbeSet {
 public:
  struct Transition {
    std::string ns, deployment, pod;
    bool healthy = false;
  };
  // Probes the targets that are due at `now` (in parallel, at most `parallelism` at a
  // time), feeds the thresholds, forgets workers that are no longer targets, and returns
  // the transitions. `nextDue` gets the earliest next probe time.
  std::vector<Transition> tick(const std::vector<ProbeTarget>& targets, SystemTime now, const ProbeFn& probe,
                               int parallelism, SystemTime* nextDue = nullptr);
  // Pod names of `ns/deployment` that are unhealthy now. Thread-safe.
  std::set<std::string> unhealthy(const std::string& ns, const std::string& deployment) const;
  size_t tracked() const;
  // The probe results since the last call (success per probe), for metrics.
  std::vector<bool> takeResults();

 private:
  struct State {
    planners::HealthThreshold threshold{3, 1};
    bool armed = false;  // has been Ready once
    SystemTime next{};
    std::string ns, deployment, pod;
    std::string lastError;  // the cause of the last probe that threw (logged once)
  };
  mutable std::mutex mu_;
  std::map<std::string, State> state_;  // uid -> state
  std::vector<bool> lastResults_;
};

struct HealthProberOptions {
  cache::InformerPtr deployments;
  cache::InformerPtr pods;  // worker pods
  TimeSourcePtr time;
  ProbeFn probe = httpProbe;
  // Called with (ns, deployment name) on every transition.
  std::function<void(const std::string&, const std::string&)> onTransition;
  int parallelism = 16;
  // The loop rereads the caches and probes what is due this often (probe periods are whole
  // seconds, so a probe is at most this late).
  Duration minInterval = std::chrono::milliseconds(500);
  metrics::Registry* registry = nullptr;  // waterline_health_probes_total{result}, _transitions_total
};

// The probing loop (a thread; add it to the Manager as a leader-only Runnable).
class HealthProber {
 public:
  explicit HealthProber(HealthProberOptions o);
  ~HealthProber();
  void start();
  void stop();
  // One round now (tests; the loop calls it too).
  void tickOnce();
  std::set<std::string> unhealthy(const std::string& ns, const std::string& deployment) const {
    return set_.unhealthy(ns, deployment);
  }

 private:
  HealthProberOptions o_;
  ProbeSet set_;
  metrics::CounterFamily* probes_ = nullptr;
  metrics::CounterFamily* transitions_ = nullptr;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread thread_;
};
using HealthProberPtr = std::shared_ptr<HealthProber>;

}  // namespace waterline::reconcilers
