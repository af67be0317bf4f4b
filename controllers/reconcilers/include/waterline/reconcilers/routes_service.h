#pragma once
// The operator's view of the global routing table, served to routers.
//
// Source: the RoutingTable objects of the routing hub (its own cluster, or the cluster
// of --routing-kubeconfig), through an informer. Every replica of the operator serves
// it, leader or not: what it serves comes from the hub, not from its own reconciles.
//
//   GET /v1/routes            the RoutingTableList (docs/routing.md), with a strong ETag
//                             (RoutingTable::etag(): generatedAt excluded).
//                             If-None-Match equal to the current ETag: 304, no body.
//   GET /v1/routes?waitSeconds=N
//                             long-poll: with If-None-Match equal to the current ETag,
//                             the answer is held until the table changes (200 with the
//                             new table) or N seconds pass (304). N <= 300.
//
// It also exposes, from the same table, per (pool, deployment) gauges:
//   waterline_pool_utilization_ratio{pool,region,zone,deployment,cluster}
//   waterline_routing_endpoints{pool,deployment,cluster,state=ready|draining}
//   waterline_routing_entry_age_seconds{pool,deployment,cluster}   (now - heartbeatTime,
//                             the cluster's Lease included)
//   waterline_routing_table_objects, waterline_routing_table_invalid_objects (skipped:
//   they do not decode)
// Labels are bounded by the number of (deployment, pool) pairs that exist.
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "waterline/cache/informer.h"
#include "waterline/common/metrics.h"
#include "waterline/common/time.h"
#include "waterline/cache/lister.h"
#include "waterline/routing/table.h"
#include "waterline/runtime/http_server.h"

namespace waterline::reconcilers {

class RoutesService {
 public:
  // routingTables: an informer of RoutingTable objects (on the hub's client).
  // clusterHeartbeats (optional): an informer of the hub's routing heartbeat Leases
  // (routing_heartbeat.h); each entry is served with heartbeatTime = max(its own, its
  // cluster's Lease renewTime).
  RoutesService(cache::InformerPtr routingTables, TimeSourcePtr time,
                cache::InformerPtr clusterHeartbeats = nullptr);
  ~RoutesService();
  RoutesService(const RoutesService&) = delete;
  RoutesService& operator=(const RoutesService&) = delete;

  // Registers /v1/routes (before the server starts).
  void install(runtime::HttpServer& server);
  // Registers the gauges above.
  void registerMetrics(metrics::Registry& reg);

  // Rebuilds (after the first) at most once per `d`; events in between are coalesced
  // into the next one. 0 (the default): after every event. Call before start().
  void setMinRebuildInterval(Duration d) { minRebuildInterval_ = d; }

  // Starts the rebuild thread (the informer is started by its factory).
  void start();
  void stop();

  struct Snapshot {
    routing::RoutingTable table;
    std::string etag;
    std::string body;  // JSON of table.toJson()
    int invalid = 0;   // RoutingTable objects skipped because they do not decode
  };
  std::shared_ptr<const Snapshot> current() const;

  // The handler, exposed for tests: answers now or later through `respond`.
  void serve(const runtime::HttpRequest& req, runtime::HttpResponder respond);

  // Rebuilds from the informer's store now (the thread does this after each event).
  void rebuild();

 private:
  struct Waiter {
    std::string etag;
    MonotonicTime deadline;
    runtime::HttpResponder respond;
  };
  void loop();
  static runtime::HttpResponse okResponse(const Snapshot& s);
  static runtime::HttpResponse notModified(const Snapshot& s);

  cache::InformerPtr informer_;
  cache::InformerPtr heartbeats_;
  TimeSourcePtr time_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool dirty_ = true, stopping_ = false, started_ = false;
  Duration minRebuildInterval_{0};
  MonotonicTime lastRebuild_{};
  std::shared_ptr<const Snapshot> snap_;
  // Typed lister of the RoutingTables: a rebuild decodes only what changed (cache/lister.h).
  std::shared_ptr<cache::Lister<routing::DeploymentRoutes>> decoded_;
  std::vector<Waiter> waiters_;
  std::thread thread_;
};

}  // namespace waterline::reconcilers
