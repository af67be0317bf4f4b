#include "waterline/runtime/events.h"

#include <random>
#include <sstream>

#include "waterline/common/log.h"
#include "waterline/runtime/leader.h"

namespace waterline::runtime {

kube::Json objectReference(const kube::Json& obj) {
  const auto& md = obj.at("metadata");
  kube::Json ref = {{"apiVersion", obj.value("apiVersion", "")},
                    {"kind", obj.value("kind", "")},
                    {"name", md.value("name", "")},
                    {"uid", md.value("uid", "")}};
  if (md.contains("namespace")) ref["namespace"] = md["namespace"];
  if (md.contains("resourceVersion")) ref["resourceVersion"] = md["resourceVersion"];
  return ref;
}

KubeEventRecorder::KubeEventRecorder(kube::ClientPtr client, std::string component,
                                     std::string host, TimeSourcePtr time, size_t queueLimit)
    : client_(std::move(client)),
      component_(std::move(component)),
      host_(std::move(host)),
      time_(std::move(time)),
      limit_(queueLimit),
      thread_([this] { loop(); }) {}

KubeEventRecorder::~KubeEventRecorder() { stop(); }

void KubeEventRecorder::stop() {
  {
    std::lock_guard g(mu_);
    stopped_ = true;
    cv_.notify_all();
  }
  if (thread_.joinable()) thread_.join();
}

void KubeEventRecorder::event(const kube::Json& object, const std::string& type,
                              const std::string& reason, const std::string& message) {
  Pending p;
  p.involved = objectReference(object);
  // Events of cluster-scoped objects live in "default", as client-go puts them.
  p.ns = p.involved.value("namespace", "default");
  p.type = type;
  p.reason = reason;
  p.message = message.size() > 1024 ? message.substr(0, 1021) + "..." : message;
  p.when = time_->systemTime();
  std::lock_guard g(mu_);
  if (stopped_ || q_.size() >= limit_) {
    ++dropped_;
    return;
  }
  q_.push_back(std::move(p));
  cv_.notify_all();
}

bool KubeEventRecorder::flush(Duration timeout) {
  std::unique_lock lk(mu_);
  return cv_.wait_for(lk, timeout, [&] { return (q_.empty() && !busy_) || stopped_; });
}

void KubeEventRecorder::loop() {
  std::unique_lock lk(mu_);
  while (true) {
    cv_.wait(lk, [&] { return stopped_ || !q_.empty(); });
    if (q_.empty() && stopped_) return;
    Pending p = std::move(q_.front());
    q_.pop_front();
    busy_ = true;
    lk.unlock();
    write(p);
    lk.lock();
    busy_ = false;
    cv_.notify_all();
  }
}

void KubeEventRecorder::write(const Pending& p) {
  const std::string aggKey = p.involved.value("uid", "") + "|" + p.involved.value("name", "") +
                             "|" + p.type + "|" + p.reason + "|" + p.message;
  const std::string ts = formatMicroTime(p.when).substr(0, 19) + "Z";
  auto it = seen_.find(aggKey);
  if (it != seen_.end() && p.when - it->second.last < std::chrono::minutes(10)) {
    // Bump the count on the existing Event.
    kube::Json patch = {{"count", it->second.count + 1}, {"lastTimestamp", ts}};
    auto res = client_->patch(kube::kinds::CoreEvent, p.ns, it->second.name, kube::PatchType::Merge,
                              patch.dump());
    if (res) {
      ++it->second.count;
      it->second.last = p.when;
      ++written_;
      return;
    }
    seen_.erase(it);  // fall through: create a new one
  }
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  std::ostringstream name;
  name << p.involved.value("name", "obj") << "." << std::hex << rng();
  kube::Json ev = {{"apiVersion", "v1"},
                   {"kind", "Event"},
                   {"metadata", {{"name", name.str()}, {"namespace", p.ns}}},
                   {"involvedObject", p.involved},
                   {"type", p.type},
                   {"reason", p.reason},
                   {"message", p.message},
                   {"source", {{"component", component_}, {"host", host_}}},
                   {"reportingComponent", component_},
                   {"reportingInstance", host_},
                   {"firstTimestamp", ts},
                   {"lastTimestamp", ts},
                   {"count", 1}};
  auto res = client_->create(kube::kinds::CoreEvent, p.ns, ev);
  if (!res) {
    log::logger("events").warn("failed to write event",
                               {{"reason", p.reason}, {"err", res.error().describe()}});
    return;
  }
  ++written_;
  if (seen_.size() > 4096) seen_.clear();
  seen_[aggKey] = Seen{name.str(), *res, 1, p.when};
}

void FakeEventRecorder::event(const kube::Json& object, const std::string& type,
                              const std::string& reason, const std::string& message) {
  const auto& md = object.at("metadata");
  std::string ns = md.value("namespace", "");
  std::string key = ns.empty() ? md.value("name", "") : ns + "/" + md.value("name", "");
  std::lock_guard g(mu_);
  events_.push_back({key, type, reason, message});
}

std::vector<FakeEventRecorder::Recorded> FakeEventRecorder::events() const {
  std::lock_guard g(mu_);
  return events_;
}

}  // namespace waterline::runtime
