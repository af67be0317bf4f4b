#include "waterline/reconcilers/routing_heartbeat.h"

#include "waterline/common/log.h"
#include "waterline/kube/resource.h"
#include "waterline/routing/table.h"
#include "waterline/runtime/leader.h"

namespace waterline::reconcilers {

namespace {
std::string clusterOrLocal(const std::string& cluster) { return cluster.empty() ? "local" : cluster; }
}  // namespace

std::string routingHeartbeatLeaseName(const std::string& cluster) {
  return "waterline-routing-" + clusterOrLocal(cluster);
}

kube::Json routingHeartbeatLease(const std::string& ns, const std::string& cluster, Duration interval,
                                 SystemTime now) {
  const auto secs = std::max<int64_t>(1, std::chrono::duration_cast<std::chrono::seconds>(interval).count());
  return {{"apiVersion", kube::kinds::Lease.apiVersion()},
          {"kind", "Lease"},
          {"metadata",
           {{"name", routingHeartbeatLeaseName(cluster)},
            {"namespace", ns},
            {"labels", {{std::string(kRoutingHeartbeatLabel), "true"}}},
            {"annotations", {{std::string(kClusterAnnotation), cluster}}}}},
          {"spec",
           {{"holderIdentity", clusterOrLocal(cluster)},
            {"leaseDurationSeconds", 3 * secs},
            {"renewTime", routing::formatMicroTime(now)}}}};
}

std::optional<ClusterHeartbeatTime> clusterHeartbeatFromLease(const kube::Json& lease) {
  if (!lease.is_object()) return std::nullopt;
  const auto& meta = lease.value("metadata", kube::Json::object());
  const auto& labels = meta.value("labels", kube::Json::object());
  if (!labels.is_object() || labels.value(std::string(kRoutingHeartbeatLabel), "") != "true") return std::nullopt;
  const auto& ann = meta.value("annotations", kube::Json::object());
  if (!ann.is_object()) return std::nullopt;
  auto c = ann.find(std::string(kClusterAnnotation));
  if (c == ann.end() || !c->is_string()) return std::nullopt;
  const auto& spec = lease.value("spec", kube::Json::object());
  auto rt = spec.find("renewTime");
  if (rt == spec.end() || !rt->is_string()) return std::nullopt;
  auto t = runtime::parseMicroTime(rt->get<std::string>());
  if (!t) return std::nullopt;
  return ClusterHeartbeatTime{c->get<std::string>(), *t};
}

ClusterHeartbeat::ClusterHeartbeat(kube::WriterPtr hub, std::string ns, std::string cluster, Duration interval,
                                   TimeSourcePtr time)
    : hub_(std::move(hub)),
      ns_(std::move(ns)),
      cluster_(std::move(cluster)),
      interval_(interval),
      time_(time ? std::move(time) : RealTimeSource::instance()) {}

ClusterHeartbeat::~ClusterHeartbeat() { stop(); }

bool ClusterHeartbeat::renew() {
  static const auto log = log::logger("routing.heartbeat");
  const auto before = time_->monotonicTime();
  kube::PatchOptions po{routing::routingFieldManager(cluster_), true, ""};
  auto r = hub_->apply(kube::kinds::Lease, ns_, routingHeartbeatLease(ns_, cluster_, interval_, time_->systemTime()), po);
  if (!r) {
    // At warn when an outage starts, then at debug until it ends.
    if (!failing_.exchange(true))
      log.warn("cannot renew the cluster's routing heartbeat Lease; entries are rewritten every heartbeat instead",
               {{"namespace", ns_}, {"name", routingHeartbeatLeaseName(cluster_)}, {"err", r.error().describe()}});
    else
      log.debug("routing heartbeat Lease renewal failed", {{"err", r.error().describe()}});
    return false;
  }
  lastOkNs_.store(std::chrono::duration_cast<std::chrono::nanoseconds>(before.time_since_epoch()).count());
  if (failing_.exchange(false)) log.info("routing heartbeat Lease renewed again", {{"name", routingHeartbeatLeaseName(cluster_)}});
  return true;
}

bool ClusterHeartbeat::live() const {
  const int64_t last = lastOkNs_.load();
  if (last < 0) return false;
  const auto now = time_->monotonicTime().time_since_epoch();
  return now - std::chrono::nanoseconds(last) < 2 * interval_;
}

void ClusterHeartbeat::start() {
  std::lock_guard g(mu_);
  if (running_) return;
  running_ = true;
  stopping_ = false;
  thread_ = std::thread([this] { loop(); });
}

void ClusterHeartbeat::stop() {
  {
    std::lock_guard g(mu_);
    stopping_ = true;
    cv_.notify_all();
  }
  if (thread_.joinable()) thread_.join();
  std::lock_guard g(mu_);
  running_ = false;
  lastOkNs_.store(-1);  // not renewing any more: the publisher must not count on it
}

void ClusterHeartbeat::loop() {
  std::unique_lock lk(mu_);
  while (!stopping_) {
    lk.unlock();
    const bool ok = renew();
    lk.lock();
    // After a failure, retry sooner (but not in a hot loop).
    const Duration wait = ok ? interval_ : std::min<Duration>(interval_, std::chrono::seconds(2));
    time_->waitUntil(lk, cv_, time_->monotonicTime() + wait, [this] { return stopping_; });
  }
}

}  // namespace waterline::reconcilers
