#pragma once
// Routing publisher: for each ModelDeployment, computes this cluster's routing entries
// (routing::planRoutes over the cached deployment, pools, worker pods and
// PTUReservations) and writes them into the deployment's cluster-scoped RoutingTable
// on the routing hub (its own cluster unless --routing-kubeconfig names another) with
// server-side apply under the field manager "waterline-operator/<cluster>". Each
// operator owns only its own (cluster, pool) entries, so the operators of many clusters
// share one object without overwriting each other; the union is the global table.
//
// Writes: at once on any change a router would act on (endpoints, health, capacity,
// reservations, deployment fields, utilization by 1 % or more). Freshness: the entries
// carry heartbeatTime, and routers drop the entries of a cluster whose operator is gone
// (router --stale-after). While the cluster's heartbeat Lease is renewed
// (ClusterHeartbeat, routing_heartbeat.h; `clusterHeartbeatLive`), /v1/routes takes
// freshness from the Lease and an unchanged deployment costs no write at all; without
// it, the publisher rewrites each deployment's entries once per `heartbeat`. Each key
// is requeued after `heartbeat` to re-read the load.
//
// Deleted deployment: our entries are removed; the object is deleted once no cluster
// has entries left in it.
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>

#include "waterline/api/capacity_pool.h"
#include "waterline/api/model_deployment.h"
#include "waterline/api/ptu_reservation.h"
#include "waterline/cache/informer.h"
#include "waterline/kube/client.h"
#include "waterline/cache/lister.h"
#include "waterline/reconcilers/observations.h"
#include "waterline/routing/table.h"
#include "waterline/runtime/controller.h"
#include "waterline/sources/prometheus.h"

namespace waterline::reconcilers {

// Index of worker pods by "namespace/<waterline.dev/deployment label>" (add it to the
// worker-pod informer before start; readers fall back to a scan without it).
inline constexpr const char* kWorkerDeploymentIndex = "waterline.dev/worker-deployment";
std::vector<std::string> workerDeploymentIndexFunc(const kube::Json& pod);

struct RoutingPublisherDeps {
  kube::WriterPtr hub;        // where RoutingTables are written
  kube::ReaderPtr hubReader;  // reads past the hub's cache before a table is removed
  cache::InformerPtr deployments;
  cache::InformerPtr pools;
  cache::InformerPtr workerPods;
  cache::InformerPtr reservations = nullptr;  // PTUReservations (optional)
  std::string cluster;                        // this cluster's name in entries ("" = single)
  Duration heartbeat = std::chrono::seconds(10);
  // A change that only adds to a deployment's entries (a replica became ready, capacity
  // grew) is written at most this often per deployment; one that takes anything away (an
  // endpoint, an entry, health) is written at once. While a deployment's replicas start,
  // each one used to be a write.
  Duration gainWriteInterval = std::chrono::seconds(1);
  LoadFunc load = nullptr;
  TimeSourcePtr time;
  // True while this cluster's heartbeat Lease is being renewed (ClusterHeartbeat::live);
  // unset: never, so every entry is rewritten once per heartbeat.
  std::function<bool()> clusterHeartbeatLive = nullptr;
  // Optional: the hub's RoutingTables (the informer /v1/routes serves). A deployment
  // with nothing to publish is looked up there instead of with a GET on the hub.
  cache::InformerPtr hubTables = nullptr;
};

using routing::routingFieldManager;  // routing/table.h (the heartbeat writes with it too)

class RoutingPublisher final : public runtime::Reconciler {
 public:
  explicit RoutingPublisher(RoutingPublisherDeps deps)
      : d_(std::move(deps)),
        deployments_(cache::Lister<api::ModelDeployment>::of(d_.deployments)),
        pools_(cache::Lister<api::CapacityPool>::of(d_.pools)),
        reservations_(d_.reservations ? cache::Lister<api::PTUReservation>::of(d_.reservations) : nullptr) {}
  runtime::ReconcileResult reconcile(const runtime::Request& req) override;

 private:
  runtime::ReconcileResult removeOurs(const routing::DeploymentKey& key);
  runtime::ReconcileResult removeOursFromHub(const routing::DeploymentKey& key, bool wrote);

  struct Written {
    std::string spec;  // canonical JSON of what we applied, heartbeats masked
    MonotonicTime at;
  };
  RoutingPublisherDeps d_;
  // Typed listers: pools and reservations decoded once per version (every key comes back
  // each heartbeat: decoding them all each time was most of the quiet-time CPU at fleet size).
  std::shared_ptr<cache::Lister<api::ModelDeployment>> deployments_;
  std::shared_ptr<cache::Lister<api::CapacityPool>> pools_;
  std::shared_ptr<cache::Lister<api::PTUReservation>> reservations_;
  std::mutex mu_;
  std::map<std::string, Written> written_;  // by deployment key
  // Deployments known to have no entries of ours in the hub (removeOurs succeeded, nothing
  // applied since): an empty deployment costs no request per heartbeat.
  std::set<std::string> absent_;
};

runtime::ControllerPtr newRoutingPublisherController(RoutingPublisherDeps deps,
                                                     runtime::ControllerOptions opts = {});

}  // namespace waterline::reconcilers
