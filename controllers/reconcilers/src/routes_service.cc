#include "waterline/reconcilers/routes_service.h"

#include <algorithm>
#include <charconv>

#include "waterline/common/log.h"
#include "waterline/reconcilers/routing_heartbeat.h"

namespace waterline::reconcilers {

namespace {

constexpr int kMaxWaitSeconds = 300;

// The value of `name` in a query string ("a=1&b=2"), or "".
std::string queryParam(const std::string& query, std::string_view name) {
  size_t pos = 0;
  while (pos <= query.size()) {
    size_t amp = query.find('&', pos);
    if (amp == std::string::npos) amp = query.size();
    std::string_view kv(query.data() + pos, amp - pos);
    auto eq = kv.find('=');
    if (kv.substr(0, eq) == name) return eq == std::string_view::npos ? "" : std::string(kv.substr(eq + 1));
    pos = amp + 1;
  }
  return "";
}

}  // namespace

RoutesService::RoutesService(cache::InformerPtr routingTables, TimeSourcePtr time,
                             cache::InformerPtr clusterHeartbeats)
    : informer_(std::move(routingTables)),
      heartbeats_(std::move(clusterHeartbeats)),
      time_(time ? std::move(time) : RealTimeSource::instance()),
      decoded_(cache::Lister<routing::DeploymentRoutes>::of(
          informer_, [](const kube::Json& obj) -> std::expected<routing::DeploymentRoutes, std::string> {
            auto d = routing::DeploymentRoutes::fromResource(obj);
            if (d) return std::move(*d);
            // Logged once per version of the object (the lister keeps the failure).
            log::logger("routes").warn(
                "skipping RoutingTable that does not decode",
                {{"name", obj.value("metadata", kube::Json::object()).value("name", "")}, {"err", d.error()}});
            return std::unexpected(d.error());
          })) {
  auto empty = std::make_shared<Snapshot>();
  empty->etag = empty->table.etag();
  empty->body = empty->table.toJson().dump();
  snap_ = std::move(empty);
  auto mark = [this] {
    std::lock_guard g(mu_);
    dirty_ = true;
    cv_.notify_all();
  };
  cache::EventHandler h;
  h.onAdd = [mark](const cache::ObjectPtr&) { mark(); };
  h.onUpdate = [mark](const cache::ObjectPtr&, const cache::ObjectPtr&) { mark(); };
  h.onDelete = [mark](const cache::ObjectPtr&, bool) { mark(); };
  if (heartbeats_) heartbeats_->addEventHandler(h);
  informer_->addEventHandler(std::move(h));
}

RoutesService::~RoutesService() { stop(); }

void RoutesService::install(runtime::HttpServer& server) {
  server.handleAsync("/v1/routes", [this](const runtime::HttpRequest& req, runtime::HttpResponder r) {
    serve(req, std::move(r));
  });
}

void RoutesService::registerMetrics(metrics::Registry& reg) {
  reg.gaugeFunc("waterline_routing_table_invalid_objects",
                "RoutingTable objects left out of the served table because they do not decode.", {},
                [this] { return std::vector<metrics::Sample>{{{}, double(current()->invalid)}}; });
  reg.gaugeFunc("waterline_routing_table_objects", "RoutingTable objects in the served table.", {},
                [this] {
                  return std::vector<metrics::Sample>{{{}, double(current()->table.deployments.size())}};
                });
  reg.gaugeFunc("waterline_pool_utilization_ratio",
                "Load over capacity of a deployment in a pool, as published in the routing table.",
                {"pool", "region", "zone", "deployment", "cluster"}, [this] {
                  std::vector<metrics::Sample> out;
                  const auto snap = current();  // held for the loop: a rebuild may swap it meanwhile
                  for (const auto& d : snap->table.deployments)
                    for (const auto& e : d.entries)
                      out.push_back({{e.pool, e.region, e.dataZone, d.deployment.str(), e.cluster}, e.utilization});
                  return out;
                });
  reg.gaugeFunc("waterline_routing_endpoints", "Endpoints of a deployment in a pool, by state.",
                {"pool", "deployment", "cluster", "state"}, [this] {
                  std::vector<metrics::Sample> out;
                  const auto snap = current();  // held for the loop: a rebuild may swap it meanwhile
                  for (const auto& d : snap->table.deployments)
                    for (const auto& e : d.entries) {
                      out.push_back({{e.pool, d.deployment.str(), e.cluster, "ready"}, double(e.endpoints.size())});
                      out.push_back(
                          {{e.pool, d.deployment.str(), e.cluster, "draining"}, double(e.drainingEndpoints.size())});
                    }
                  return out;
                });
  reg.gaugeFunc("waterline_routing_entry_age_seconds",
                "Seconds since the publishing operator last refreshed a routing entry (its heartbeat).",
                {"pool", "deployment", "cluster"}, [this] {
                  std::vector<metrics::Sample> out;
                  const auto now = time_->systemTime();
                  const auto snap = current();  // held for the loop: a rebuild may swap it meanwhile
                  for (const auto& d : snap->table.deployments)
                    for (const auto& e : d.entries)
                      out.push_back({{e.pool, d.deployment.str(), e.cluster},
                                     std::max(0.0, std::chrono::duration<double>(now - e.heartbeatTime).count())});
                  return out;
                });
}

void RoutesService::start() {
  std::lock_guard g(mu_);
  if (started_) return;
  started_ = true;
  stopping_ = false;
  thread_ = std::thread([this] { loop(); });
}

void RoutesService::stop() {
  std::vector<Waiter> left;
  {
    std::lock_guard g(mu_);
    stopping_ = true;
    cv_.notify_all();
    left.swap(waiters_);
  }
  if (thread_.joinable()) thread_.join();
  {
    std::lock_guard g(mu_);
    started_ = false;
  }
  auto s = current();
  for (auto& w : left) w.respond(notModified(*s));
}

std::shared_ptr<const RoutesService::Snapshot> RoutesService::current() const {
  std::lock_guard g(mu_);
  return snap_;
}

void RoutesService::rebuild() {
  auto next = std::make_shared<Snapshot>();
  const auto items = decoded_->items();
  std::vector<std::shared_ptr<const routing::DeploymentRoutes>> routes;
  for (const auto& it : items)
    if (it.value) routes.push_back(it.value);  // objects that do not decode are left out
  next->invalid = int(items.size() - routes.size());
  for (const auto& d : routes) next->table.deployments.push_back(*d);
  // A cluster's heartbeat Lease refreshes all of its entries (routing_heartbeat.h).
  if (heartbeats_) {
    std::map<std::string, SystemTime> renewed;
    for (const auto& obj : heartbeats_->store().list())
      if (auto hb = clusterHeartbeatFromLease(*obj)) {
        auto [it, fresh] = renewed.emplace(hb->cluster, hb->renewTime);
        if (!fresh) it->second = std::max(it->second, hb->renewTime);
      }
    if (!renewed.empty())
      for (auto& d : next->table.deployments)
        for (auto& e : d.entries)
          if (auto it = renewed.find(e.cluster); it != renewed.end() && it->second > e.heartbeatTime)
            e.heartbeatTime = it->second;
  }
  next->table.normalize();
  next->table.generatedAt = time_->systemTime();
  next->etag = next->table.etag();
  next->body = next->table.toJson().dump();

  std::vector<Waiter> wake;
  {
    std::lock_guard g(mu_);
    const bool changed = next->etag != snap_->etag || next->invalid != snap_->invalid;
    if (changed) {
      snap_ = next;
      // Everyone waiting on another ETag gets the new table.
      auto it = std::partition(waiters_.begin(), waiters_.end(),
                               [&](const Waiter& w) { return w.etag == next->etag; });
      std::move(it, waiters_.end(), std::back_inserter(wake));
      waiters_.erase(it, waiters_.end());
    }
  }
  for (auto& w : wake) w.respond(okResponse(*next));
}

void RoutesService::loop() {
  std::unique_lock lk(mu_);
  while (!stopping_) {
    if (dirty_) {
      // At most one rebuild per minRebuildInterval: a burst of RoutingTable events (a
      // fleet being scheduled) becomes one rebuild, not one per event.
      const auto due = lastRebuild_ + minRebuildInterval_;
      if (minRebuildInterval_ > Duration::zero() && time_->monotonicTime() < due) {
        time_->waitUntil(lk, cv_, due, [this] { return stopping_; });
        continue;
      }
      dirty_ = false;
      lk.unlock();
      rebuild();
      lk.lock();
      lastRebuild_ = time_->monotonicTime();
      continue;
    }
    // Time out long-polls whose deadline passed.
    const auto now = time_->monotonicTime();
    MonotonicTime next = now + std::chrono::seconds(1);
    std::vector<Waiter> expired;
    for (auto it = waiters_.begin(); it != waiters_.end();) {
      if (it->deadline <= now) {
        expired.push_back(std::move(*it));
        it = waiters_.erase(it);
      } else {
        next = std::min(next, it->deadline);
        ++it;
      }
    }
    if (!expired.empty()) {
      auto s = snap_;
      lk.unlock();
      for (auto& w : expired) w.respond(notModified(*s));
      lk.lock();
      continue;
    }
    time_->waitUntil(lk, cv_, next, [this] { return stopping_ || dirty_; });
  }
}

runtime::HttpResponse RoutesService::okResponse(const Snapshot& s) {
  runtime::HttpResponse r;
  r.status = 200;
  r.contentType = "application/json";
  r.body = s.body;
  r.headers["ETag"] = s.etag;
  r.headers["Cache-Control"] = "no-cache";
  return r;
}

runtime::HttpResponse RoutesService::notModified(const Snapshot& s) {
  runtime::HttpResponse r;
  r.status = 304;
  r.contentType = "application/json";
  r.headers["ETag"] = s.etag;
  return r;
}

void RoutesService::serve(const runtime::HttpRequest& req, runtime::HttpResponder respond) {
  if (req.method != "GET") {
    runtime::HttpResponse r{405, "application/json",
                            R"({"error":{"message":"only GET is allowed","type":"invalid_request_error"}})", {}};
    r.headers["Allow"] = "GET";
    return respond(std::move(r));
  }
  int wait = 0;
  if (auto w = queryParam(req.query, "waitSeconds"); !w.empty()) {
    auto [p, ec] = std::from_chars(w.data(), w.data() + w.size(), wait);
    if (ec != std::errc{} || p != w.data() + w.size() || wait < 0 || wait > kMaxWaitSeconds)
      return respond({400, "application/json",
                      R"({"error":{"message":"waitSeconds must be an integer in [0, 300]","type":"invalid_request_error"}})",
                      {}});
  }
  std::string inm;
  if (auto it = req.headers.find("if-none-match"); it != req.headers.end()) inm = it->second;
  std::unique_lock lk(mu_);
  auto s = snap_;
  if (inm.empty() || inm != s->etag) {
    lk.unlock();
    return respond(okResponse(*s));
  }
  if (wait == 0 || !started_) {
    lk.unlock();
    return respond(notModified(*s));
  }
  waiters_.push_back({inm, time_->monotonicTime() + std::chrono::seconds(wait), std::move(respond)});
  cv_.notify_all();
}

}  // namespace waterline::reconcilers
