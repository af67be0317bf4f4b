#include "waterline/reconcilers/routing_publisher.h"

#include <cmath>
#include <cstdio>
#include <map>
#include <set>

#include "waterline/api/capacity_pool.h"
#include "waterline/api/conditions.h"
#include "waterline/api/keys.h"
#include "waterline/api/ptu_reservation.h"
#include "waterline/common/log.h"
#include "waterline/routing/planner.h"
#include "waterline/runtime/objects.h"
#include "typed_watches.h"

namespace waterline::reconcilers {

using runtime::ReconcileError;
using runtime::Result;

std::vector<std::string> workerDeploymentIndexFunc(const kube::Json& pod) {
  if (!pod.contains("metadata") || !pod["metadata"].contains("labels") || !pod["metadata"]["labels"].is_object())
    return {};
  const auto& l = pod["metadata"]["labels"];
  auto it = l.find(std::string(api::labels::kDeployment));
  if (it == l.end() || !it->is_string()) return {};
  return {runtime::namespaceOf(pod) + "/" + it->get<std::string>()};
}


namespace {

// What we applied, with heartbeats masked and load to 1 % of capacity: equal means
// "nothing a router would act on changed" (load moves a little at every refresh under
// traffic; a write for each wobble would be a write per deployment per refresh).
std::string canonical(const kube::Json& spec) {
  kube::Json s = spec;
  if (auto it = s.find("entries"); it != s.end() && it->is_array())
    for (auto& e : *it) {
      e.erase("heartbeatTime");
      e.erase("loadTokensPerMinute");
      if (auto u = e.find("utilization"); u != e.end() && u->is_number())
        *u = std::round(u->get<double>() * 100.0) / 100.0;
    }
  return s.dump();
}

// Whether the spec `next` only adds to `prev` (the canonical JSON last written): the same
// deployment-level fields, every entry of `prev` still there, as healthy, with every
// endpoint it had still taking traffic. Such a change can wait a little; anything else
// cannot.
bool onlyGains(const std::string& prev, kube::Json b) {
  auto a = kube::Json::parse(prev, nullptr, false);
  if (!a.is_object() || !b.is_object()) return false;
  auto ea = a.contains("entries") ? a["entries"] : kube::Json::array();
  auto eb = b.contains("entries") ? b["entries"] : kube::Json::array();
  a.erase("entries");
  b.erase("entries");
  if (a != b || !ea.is_array() || !eb.is_array()) return false;
  auto id = [](const kube::Json& e) { return e.value("cluster", "") + "/" + e.value("pool", ""); };
  std::map<std::string, const kube::Json*> after;
  for (const auto& e : eb) after[id(e)] = &e;
  for (const auto& e : ea) {
    auto it = after.find(id(e));
    if (it == after.end()) return false;
    const auto& n = *it->second;
    if (e.value("healthy", false) && !n.value("healthy", false)) return false;
    std::set<std::string> now;
    if (n.contains("endpoints"))
      for (const auto& ep : n["endpoints"]) now.insert(ep.get<std::string>());
    if (e.contains("endpoints"))
      for (const auto& ep : e["endpoints"])
        if (!now.count(ep.get<std::string>())) return false;
  }
  return true;
}

// True when the RoutingTable holds at least one entry of `cluster`.
bool hasEntriesOf(const cache::ObjectPtr& table, const std::string& cluster) {
  if (!table) return false;
  auto spec = table->find("spec");
  if (spec == table->end() || !spec->is_object()) return false;
  auto ents = spec->find("entries");
  if (ents == spec->end() || !ents->is_array()) return false;
  for (const auto& e : *ents)
    if (e.is_object() && e.value("cluster", "") == cluster) return true;
  return false;
}

}  // namespace

runtime::ReconcileResult RoutingPublisher::removeOurs(const routing::DeploymentKey& key) {
  bool wrote = false;
  {
    std::lock_guard g(mu_);
    wrote = written_.erase(key.str()) > 0;
    if (absent_.count(key.str())) return Result::done();
  }
  auto r = removeOursFromHub(key, wrote);
  if (r) {
    std::lock_guard g(mu_);
    absent_.insert(key.str());
  }
  return r;
}

runtime::ReconcileResult RoutingPublisher::removeOursFromHub(const routing::DeploymentKey& key, bool wrote) {
  const std::string name = routing::resourceName(key);
  // Read from the hub's cache when it can be trusted to have what there is: synced, and
  // no write of ours it may not have seen yet. Otherwise (or when it has the object, so
  // the precondition below is on the newest version) ask the hub.
  if (d_.hubTables && d_.hubTables->hasSynced() && !wrote && !d_.hubTables->store().get(name))
    return Result::done();
  auto cur = d_.hubReader->get(kube::kinds::RoutingTable, "", name);
  if (!cur) {
    if (cur.error().isNotFound()) return Result::done();
    return std::unexpected(ReconcileError{"get RoutingTable: " + cur.error().describe()});
  }
  bool others = false, ours = false;
  if (auto spec = cur->find("spec"); spec != cur->end())
    if (auto ents = spec->find("entries"); ents != spec->end() && ents->is_array())
      for (const auto& e : *ents) (e.value("cluster", "") == d_.cluster ? ours : others) = true;
  if (!others) {
    // Nobody else publishes this deployment: the object goes (only if unchanged since
    // we read it, so a cluster that just added entries is not wiped out).
    kube::DeleteOptions del;
    del.preconditions.resourceVersion = (*cur)["metadata"].value("resourceVersion", "");
    auto r = d_.hub->remove(kube::kinds::RoutingTable, "", name, del);
    if (!r && !r.error().isNotFound())
      return std::unexpected(ReconcileError{"delete RoutingTable: " + r.error().describe()});
    return Result::done();
  }
  if (!ours) return Result::done();
  // Others still publish it: give up our entries only (an empty list under our manager).
  kube::Json obj = {{"apiVersion", kube::kinds::RoutingTable.apiVersion()},
                    {"kind", std::string(routing::kRoutingTableKind)},
                    {"metadata", {{"name", name}}},
                    {"spec", {{"entries", kube::Json::array()}}}};
  kube::PatchOptions po{routingFieldManager(d_.cluster), true, ""};
  auto r = d_.hub->apply(kube::kinds::RoutingTable, "", obj, po);
  if (!r && !r.error().isNotFound())
    return std::unexpected(ReconcileError{"apply RoutingTable: " + r.error().describe()});
  return Result::done();
}

runtime::ReconcileResult RoutingPublisher::reconcile(const runtime::Request& req) {
  const routing::DeploymentKey key{req.ns, req.name};
  const auto item = deployments_->item(req.key());
  if (!item.object) return removeOurs(key);
  const auto& md = item.value;  // decoded once per version (cache/lister.h)
  if (!md) return Result::done();  // the ModelDeployment controller reports it
  if (md->metadata.deletionTimestamp) return removeOurs(key);

  const auto pools = pools_->list();
  std::vector<std::shared_ptr<const api::PTUReservation>> reservations;
  if (reservations_) reservations = reservations_->list();

  routing::RoutingSnapshot s;
  s.deployment = &*md;
  for (const auto& p : pools) s.pools.push_back(p.get());
  for (const auto& r : reservations)
    if (r->metadata.namespace_ == req.ns) s.reservations.push_back(r.get());
  if (d_.workerPods->store().hasIndex(kWorkerDeploymentIndex)) {
    for (const auto& p : d_.workerPods->store().byIndex(kWorkerDeploymentIndex, req.key()))
      s.pods.push_back(routing::workerPodFromJson(*p));
  } else {
    for (const auto& p : d_.workerPods->store().list()) {
      if (runtime::namespaceOf(*p) != req.ns) continue;
      const auto& labels = (*p)["metadata"].value("labels", kube::Json::object());
      if (labels.value(std::string(api::labels::kDeployment), "") != req.name) continue;
      s.pods.push_back(routing::workerPodFromJson(*p));
    }
  }
  if (d_.load) s.loadTokensPerMinute = d_.load(*md);
  s.cluster = d_.cluster;
  s.now = d_.time->systemTime();
  auto routes = routing::planRoutes(s);

  if (routes.entries.empty()) {
    // No replicas here (yet, or any more): publish nothing for this cluster.
    auto r = removeOurs(key);
    if (!r) return r;
    return Result::after(d_.heartbeat);
  }

  kube::Json resource = routes.toResource();
  const std::string canon = canonical(resource["spec"]);
  const auto nowMono = d_.time->monotonicTime();
  // With the cluster's heartbeat Lease renewed, an unchanged entry is never rewritten
  // (routers get its freshness from the Lease through /v1/routes); without it, at most
  // once per heartbeat, to refresh heartbeatTime. Either way the key comes back after a
  // heartbeat to re-read the load.
  const bool covered = d_.clusterHeartbeatLive && d_.clusterHeartbeatLive();
  {
    std::lock_guard g(mu_);
    auto it = written_.find(key.str());
    if (it != written_.end() && it->second.spec == canon) {
      // Level-based, not "remembered": unless just written (the cache may lag), the hub's
      // cache must still hold our entries, or they are applied again (someone deleted
      // the object or removed them).
      const bool inHub = !d_.hubTables || !d_.hubTables->hasSynced() ||
                         nowMono - it->second.at < std::chrono::seconds(2) ||
                         hasEntriesOf(d_.hubTables->store().get(routing::resourceName(key)), d_.cluster);
      if (covered && inHub) return Result::after(d_.heartbeat);
      if (nowMono - it->second.at < d_.heartbeat) return Result::after(d_.heartbeat - (nowMono - it->second.at));
    } else if (it != written_.end() && nowMono - it->second.at < d_.gainWriteInterval &&
               onlyGains(it->second.spec, resource["spec"])) {
      return Result::after(d_.gainWriteInterval - (nowMono - it->second.at));  // then the latest entries
    }
  }
  kube::PatchOptions po{routingFieldManager(d_.cluster), true, ""};
  auto r = d_.hub->apply(kube::kinds::RoutingTable, "", resource, po);
  if (!r) return std::unexpected(ReconcileError{"apply RoutingTable: " + r.error().describe()});
  {
    std::lock_guard g(mu_);
    written_[key.str()] = {canon, nowMono};
    absent_.erase(key.str());
  }
  return Result::after(d_.heartbeat);
}

runtime::ControllerPtr newRoutingPublisherController(RoutingPublisherDeps deps,
                                                     runtime::ControllerOptions opts) {
  auto deployments = deps.deployments;
  auto pools = deps.pools;
  auto pods = deps.workerPods;
  auto reservations = deps.reservations;
  if (!deps.time) deps.time = RealTimeSource::instance();
  auto c = std::make_unique<runtime::Controller>(
      "routingpublisher", std::make_unique<RoutingPublisher>(std::move(deps)), std::move(opts));
  c->watchFor(deployments);
  // A worker's readiness, IP, drain mark or deletion changes its deployment's entries.
  c->watchMapped(pods, [](const cache::Json& pod) {
    const auto& labels = pod["metadata"].value("labels", kube::Json::object());
    auto name = labels.value(std::string(api::labels::kDeployment), "");
    if (name.empty()) return std::vector<runtime::Request>{};
    return std::vector<runtime::Request>{{runtime::namespaceOf(pod), name}};
  });
  // A pool's region, zone, maxUtilization or health (Ready) is in every entry it holds;
  // its GPU counts are not, so status updates after each placement enqueue nothing.
  auto poolRouting = watches::onUpdate<api::CapacityPool>([](const api::CapacityPool& o, const api::CapacityPool& n) {
    auto ready = [](const api::CapacityPool& p) {
      const auto* c = api::findCondition(p.status.conditions, api::conditions::kReady);
      return c ? std::optional(c->status) : std::nullopt;
    };
    return o.spec != n.spec || ready(o) != ready(n);
  });
  c->watchMapped(pools, [deployments](const cache::Json&) {
    std::vector<runtime::Request> out;
    for (const auto& d : deployments->store().list())
      out.push_back({runtime::namespaceOf(*d), runtime::nameOf(*d)});
    return out;
  }, {poolRouting});
  if (reservations)
    c->watchMapped(reservations, watches::mapTyped<api::PTUReservation>(watches::reservedDeployment));
  return c;
}

}  // namespace waterline::reconcilers
