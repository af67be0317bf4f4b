#include "waterline/reconcilers/health_prober.h"

#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <optional>
#include <stdexcept>

#include "waterline/api/keys.h"
#include "waterline/api/model_deployment.h"
#include "waterline/common/log.h"

namespace waterline::reconcilers {

using nlohmann::json;

namespace {

std::string str(const json& j, const char* k) {
  if (!j.is_object()) return "";
  auto it = j.find(k);
  return it != j.end() && it->is_string() ? it->get<std::string>() : "";
}

}  // namespace

std::vector<ProbeTarget> probeTargets(const std::vector<json>& deployments, const std::vector<json>& pods) {
  std::map<std::string, api::ModelDeployment> byKey;  // "ns/name"
  for (const auto& d : deployments)
    if (auto md = api::ModelDeployment::fromJson(d); md && md->spec.healthPort() > 0)
      byKey.emplace(md->metadata.namespace_ + "/" + md->metadata.name, std::move(*md));
  std::vector<ProbeTarget> out;
  for (const auto& p : pods) {
    if (!p.contains("metadata")) continue;
    const auto& m = p["metadata"];
    if (m.contains("deletionTimestamp") && !m["deletionTimestamp"].is_null()) continue;
    if (m.contains("annotations") && m["annotations"].is_object() &&
        m["annotations"].contains(std::string(api::annotations::kDrainingSince)))
      continue;
    std::string dep;
    if (m.contains("labels")) dep = str(m["labels"], std::string(api::labels::kDeployment).c_str());
    auto it = byKey.find(str(m, "namespace") + "/" + dep);
    if (dep.empty() || it == byKey.end()) continue;
    const auto st = p.value("status", json::object());
    if (str(st, "phase") != "Running" || str(st, "podIP").empty()) continue;
    const auto& h = it->second.spec.healthCheck;
    ProbeTarget t;
    t.ns = str(m, "namespace");
    t.deployment = dep;
    t.pod = str(m, "name");
    t.uid = str(m, "uid");
    if (t.uid.empty()) t.uid = t.ns + "/" + t.pod;
    t.ip = str(st, "podIP");
    t.port = it->second.spec.healthPort();
    t.path = h.path.empty() ? "/" : h.path;
    t.period = std::chrono::seconds(std::max(1, h.periodSeconds));
    t.timeout = std::chrono::seconds(std::max(1, h.timeoutSeconds));
    t.failureThreshold = std::max(1, h.failureThreshold);
    t.successThreshold = std::max(1, h.successThreshold);
    if (st.contains("conditions") && st["conditions"].is_array())
      for (const auto& c : st["conditions"])
        if (str(c, "type") == "Ready") t.ready = str(c, "status") == "True";
    out.push_back(std::move(t));
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
    return std::tie(a.ns, a.pod) < std::tie(b.ns, b.pod);
  });
  return out;
}

bool httpProbe(const std::string& ip, int32_t port, const std::string& path, Duration timeout) {
  if (!api::isValidHttpPath(path.empty() || path[0] != '/' ? "/" + path : path))
    throw std::invalid_argument("health check path contains whitespace or control characters");
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  auto remainingMs = [&] {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    return int(std::max<int64_t>(0, left.count()));
  };
  addrinfo hints{};
  hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (getaddrinfo(ip.c_str(), std::to_string(port).c_str(), &hints, &res) != 0 || !res) return false;
  int fd = ::socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    freeaddrinfo(res);
    return false;
  }
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  int rc = ::connect(fd, res->ai_addr, res->ai_addrlen);
  freeaddrinfo(res);
  if (rc != 0 && errno != EINPROGRESS) return false;
  pollfd pfd{fd, POLLOUT, 0};
  if (rc != 0) {
    if (::poll(&pfd, 1, remainingMs()) != 1) return false;
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) return false;
  }
  const std::string host = ip.find(':') != std::string::npos ? "[" + ip + "]" : ip;
  const std::string req = "GET " + (path.empty() || path[0] != '/' ? "/" + path : path) + " HTTP/1.1\r\nHost: " +
                          host + ":" + std::to_string(port) +
                          "\r\nUser-Agent: waterline-health-probe\r\nAccept: */*\r\nConnection: close\r\n\r\n";
  size_t sent = 0;
  while (sent < req.size()) {
    ssize_t n = ::send(fd, req.data() + sent, req.size() - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += size_t(n);
      continue;
    }
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return false;
    pfd = {fd, POLLOUT, 0};
    if (::poll(&pfd, 1, remainingMs()) != 1) return false;
  }
  // The status line: "HTTP/1.x NNN ...".
  std::string head;
  char buf[512];
  while (head.find("\r\n") == std::string::npos && head.size() < 4096) {
    pfd = {fd, POLLIN, 0};
    if (::poll(&pfd, 1, remainingMs()) != 1) return false;
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) continue;
      return false;
    }
    head.append(buf, size_t(n));
  }
  if (head.size() < 12 || head.compare(0, 5, "HTTP/") != 0) return false;
  auto sp = head.find(' ');
  if (sp == std::string::npos || sp + 4 > head.size()) return false;
  int code = 0;
  for (size_t i = sp + 1; i < sp + 4; ++i) {
    if (head[i] < '0' || head[i] > '9') return false;
    code = code * 10 + (head[i] - '0');
  }
  return code >= 200 && code < 400;
}

// ---- ProbeSet ----------------------------------------------------------------------------

std::vector<ProbeSet::Transition> ProbeSet::tick(const std::vector<ProbeTarget>& targets, SystemTime now,
                                                 const ProbeFn& probe, int parallelism, SystemTime* nextDue) {
  std::vector<const ProbeTarget*> due;
  {
    std::lock_guard g(mu_);
    std::set<std::string> present;
    for (const auto& t : targets) {
      present.insert(t.uid);
      auto [it, fresh] = state_.try_emplace(t.uid);
      State& s = it->second;
      if (fresh) {
        s.threshold = planners::HealthThreshold(t.failureThreshold, t.successThreshold);
        s.ns = t.ns;
        s.deployment = t.deployment;
        s.pod = t.pod;
      }
      if (!s.armed && t.ready) {
        s.armed = true;
        s.next = now;
      }
      if (s.armed && now >= s.next) due.push_back(&t);
    }
    for (auto it = state_.begin(); it != state_.end();)
      it = present.count(it->first) ? std::next(it) : state_.erase(it);
  }

  // Probe in parallel (I/O bound); results by position.
  std::vector<char> ok(due.size(), 0);
  std::vector<std::optional<std::string>> errors(due.size());  // the cause when the probe threw
  if (!due.empty()) {
    std::atomic<size_t> next{0};
    auto work = [&] {
      for (size_t i = next++; i < due.size(); i = next++) {
        const auto* t = due[i];
        bool r = false;
        try {
          r = probe(t->ip, t->port, t->path, t->timeout);
        } catch (const std::exception& e) {
          errors[i] = e.what();
        } catch (...) {
          errors[i] = "unknown exception";
        }
        ok[i] = r ? 1 : 0;
      }
    };
    const size_t n = std::min<size_t>(std::max(1, parallelism), due.size());
    std::vector<std::thread> threads;
    for (size_t i = 1; i < n; ++i) threads.emplace_back(work);
    work();
    for (auto& th : threads) th.join();
  }

  std::vector<Transition> out;
  std::lock_guard g(mu_);
  for (size_t i = 0; i < due.size(); ++i) {
    const auto* t = due[i];
    auto it = state_.find(t->uid);
    if (it == state_.end()) continue;
    State& s = it->second;
    s.next = now + t->period;
    if (errors[i]) {
      if (s.lastError != *errors[i]) {
        log::logger("healthprober")
            .error("probe failed with an exception; counted as a failed probe",
                   {{"namespace", s.ns}, {"pod", s.pod}, {"path", t->path}, {"err", *errors[i]}});
        s.lastError = *errors[i];
      }
    } else {
      s.lastError.clear();
    }
    lastResults_.push_back(ok[i] != 0);
    switch (s.threshold.observe(ok[i] != 0)) {
      case planners::HealthThreshold::Transition::BecameUnhealthy:
        out.push_back({s.ns, s.deployment, s.pod, false});
        break;
      case planners::HealthThreshold::Transition::BecameHealthy:
        out.push_back({s.ns, s.deployment, s.pod, true});
        break;
      case planners::HealthThreshold::Transition::None: break;
    }
  }
  if (nextDue) {
    std::optional<SystemTime> earliest;
    for (const auto& [_, s] : state_)
      if (s.armed && (!earliest || s.next < *earliest)) earliest = s.next;
    *nextDue = earliest.value_or(now + std::chrono::seconds(1));
  }
  return out;
}

std::vector<bool> ProbeSet::takeResults() {
  std::lock_guard g(mu_);
  return std::exchange(lastResults_, {});
}

std::set<std::string> ProbeSet::unhealthy(const std::string& ns, const std::string& deployment) const {
  std::lock_guard g(mu_);
  std::set<std::string> out;
  for (const auto& [_, s] : state_)
    if (s.ns == ns && s.deployment == deployment && !s.threshold.healthy()) out.insert(s.pod);
  return out;
}

size_t ProbeSet::tracked() const {
  std::lock_guard g(mu_);
  return state_.size();
}

// ---- HealthProber --------------------------------------------------------------------------

HealthProber::HealthProber(HealthProberOptions o) : o_(std::move(o)) {
  if (!o_.time) o_.time = RealTimeSource::instance();
  if (!o_.probe) o_.probe = httpProbe;
  if (o_.registry) {
    probes_ = &o_.registry->counter("waterline_health_probes_total",
                                    "Active health probes of ModelDeployment workers, by result.", {"result"});
    transitions_ = &o_.registry->counter("waterline_health_transitions_total",
                                         "Workers turning unhealthy or healthy by active health probing.", {"to"});
  }
}

HealthProber::~HealthProber() { stop(); }

void HealthProber::tickOnce() {
  std::vector<json> ds, ps;
  for (const auto& d : o_.deployments->store().list()) ds.push_back(*d);
  for (const auto& p : o_.pods->store().list()) ps.push_back(*p);
  auto targets = probeTargets(ds, ps);
  SystemTime next;
  auto transitions = set_.tick(targets, o_.time->systemTime(), o_.probe, o_.parallelism, &next);
  auto results = set_.takeResults();
  if (probes_)
    for (bool r : results) probes_->withLabels({r ? "success" : "failure"}).inc();
  const auto lg = log::logger("healthprober");
  for (const auto& t : transitions) {
    lg.info(t.healthy ? "worker healthy again" : "worker unhealthy",
            {{"namespace", t.ns}, {"deployment", t.deployment}, {"pod", t.pod}});
    if (transitions_) transitions_->withLabels({t.healthy ? "healthy" : "unhealthy"}).inc();
    if (o_.onTransition) o_.onTransition(t.ns, t.deployment);
  }
}

void HealthProber::start() {
  std::lock_guard g(mu_);
  if (thread_.joinable()) return;
  stopping_ = false;
  thread_ = std::thread([this] {
    while (true) {
      {
        std::lock_guard g2(mu_);
        if (stopping_) return;
      }
      try {
        tickOnce();
      } catch (const std::exception& e) {
        log::logger("healthprober").error("probe round failed", {{"err", e.what()}});
      }
      std::unique_lock lk(mu_);
      cv_.wait_for(lk, o_.minInterval, [&] { return stopping_; });
      if (stopping_) return;
    }
  });
}

void HealthProber::stop() {
  std::thread t;
  {
    std::lock_guard g(mu_);
    stopping_ = true;
    t = std::move(thread_);
  }
  cv_.notify_all();
  if (t.joinable()) t.join();
}

}  // namespace waterline::reconcilers
