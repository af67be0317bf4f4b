#include "waterline/router/upstreams.h"

#include <algorithm>
#include <utility>

namespace waterline::router {

const char* toString(AttemptFailure f) {
  switch (f) {
    case AttemptFailure::ConnectError: return "connect_error";
    case AttemptFailure::WriteError: return "write_error";
    case AttemptFailure::HeaderError: return "header_error";
    case AttemptFailure::Status5xx: return "status_5xx";
    case AttemptFailure::BodyError: return "body_error";
  }
  return "unknown";
}

WorkerUpstreams::WorkerUpstreams(Options opts, RandomFn rand) : opts_(std::move(opts)), rand_(std::move(rand)) {}

std::string WorkerUpstreams::loadKey(const routing::RoutingEntry& e) {
  std::string k = e.deployment.str();
  k.push_back('\x1f');
  k += e.cluster;
  k.push_back('\x1f');
  k += e.pool;
  return k;
}

routing::PoolChoice WorkerUpstreams::choosePools(const routing::DeploymentRoutes& d,
                                                 const std::optional<api::ReservationScope>& scope, SystemTime now,
                                                 double promptTokens) {
  return routing::choosePools(
      d, now, opts_.selection, rand_, scope,
      [this](const routing::RoutingEntry& e) {
        return localLoad_.extraUtilization(loadKey(e), e.heartbeatTime, e.capacityTokensPerMinute);
      },
      promptTokens);
}

std::optional<std::size_t> WorkerUpstreams::pickReplica(const routing::RoutingEntry& e,
                                                        std::span<const std::string* const> tried, MonotonicTime now) {
  struct SkipCtx {
    const WorkerUpstreams* self;
    std::span<const std::string* const> tried;
    MonotonicTime now;
  };
  const SkipCtx skipCtx{this, tried, now};
  return routing::pickEndpoint(
      e,
      [this](std::string_view ep) {
        auto it = inflight_.find(ep);
        return it == inflight_.end() ? 0 : it->second;
      },
      rand_,
      // One reference captured: small enough for std::function's inline buffer (no
      // allocation per pick).
      [&skip = std::as_const(skipCtx)](std::string_view ep) {
        for (const std::string* t : skip.tried)
          if (*t == ep) return true;
        return skip.self->ejected(ep, skip.now);
      });
}

void WorkerUpstreams::onAttempt(const routing::RoutingEntry& e, std::size_t, double charge) {
  localLoad_.add(loadKey(e), e.heartbeatTime, charge);
}

void WorkerUpstreams::onFailure(const routing::RoutingEntry& e, std::size_t replica, AttemptFailure f,
                                MonotonicTime now) {
  if (f != AttemptFailure::ConnectError || replica >= e.endpoints.size()) return;
  const std::string& ep = e.endpoints[replica];
  auto it = ejectedUntil_.find(ep);
  if (it == ejectedUntil_.end()) ejectedUntil_.emplace(ep, now + opts_.ejectAfterConnectFailure);
  else it->second = now + opts_.ejectAfterConnectFailure;
}

bool WorkerUpstreams::ejected(std::string_view endpoint, MonotonicTime now) const {
  auto it = ejectedUntil_.find(endpoint);
  return it != ejectedUntil_.end() && it->second > now;
}

void WorkerUpstreams::prune(const std::unordered_set<std::string>& live, SystemTime before) {
  std::erase_if(ejectedUntil_, [&](const auto& kv) { return !live.count(kv.first); });
  localLoad_.prune(before);
}

}  // namespace waterline::router
