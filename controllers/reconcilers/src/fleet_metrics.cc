#include "waterline/reconcilers/fleet_metrics.h"

#include <array>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

namespace waterline::reconcilers {

namespace {

using cache::Json;
using metrics::Sample;
using Collect = std::function<void(const Json&, std::vector<Sample>&)>;

// Lenient field access: nullptr when any step is missing or not an object.
const Json* at(const Json& j, std::initializer_list<std::string_view> path) {
  const Json* cur = &j;
  for (auto k : path) {
    if (!cur->is_object()) return nullptr;
    auto it = cur->find(k);
    if (it == cur->end()) return nullptr;
    cur = &*it;
  }
  return cur;
}

double num(const Json& j, std::initializer_list<std::string_view> path, double def = 0) {
  const Json* v = at(j, path);
  return v && v->is_number() ? v->get<double>() : def;
}

std::string str(const Json& j, std::initializer_list<std::string_view> path) {
  const Json* v = at(j, path);
  return v && v->is_string() ? v->get<std::string>() : std::string();
}

std::string name(const Json& o) { return str(o, {"metadata", "name"}); }
std::string ns(const Json& o) { return str(o, {"metadata", "namespace"}); }

// The six counts of status.gpus / status.slices.
constexpr std::array<std::string_view, 6> kCountStates = {"total",     "allocatable", "allocated",
                                                          "free",      "unhealthy",   "reserved"};

void counts(const Json& o, std::string_view field, std::vector<Sample>& out) {
  const Json* c = at(o, {"status", field});
  if (!c || !c->is_object()) return;
  for (auto s : kCountStates) out.push_back({{name(o), std::string(s)}, num(*c, {s})});
}

// One sample per condition, labelled with the object's labels plus type, status, reason.
void conditions(const Json& o, const metrics::LabelValues& who, std::vector<Sample>& out) {
  const Json* cs = at(o, {"status", "conditions"});
  if (!cs || !cs->is_array()) return;
  for (const auto& c : *cs) {
    std::string type = str(c, {"type"});
    if (type.empty()) continue;
    std::string status = str(c, {"status"});
    if (status.empty()) status = "Unknown";
    metrics::LabelValues lv = who;
    lv.push_back(std::move(type));
    lv.push_back(std::move(status));
    lv.push_back(str(c, {"reason"}));
    out.push_back({std::move(lv), 1});
  }
}

enum class Src { Pools, Deployments, Reservations };

struct Def {
  const char* name;
  const char* help;
  std::vector<std::string> labels;
  Src src;
  Collect collect;
};

std::vector<Def> defs() {
  std::vector<Def> d;
  // --- CapacityPools (cluster-scoped)
  d.push_back({"waterline_pool_info",
               "Static facts of a CapacityPool (value 1): region, data zone, GPU product, sharing mode.",
               {"pool", "region", "data_zone", "gpu_product", "sharing_mode"}, Src::Pools,
               [](const Json& o, std::vector<Sample>& out) {
                 std::string mode = str(o, {"spec", "sharing", "mode"});
                 out.push_back({{name(o), str(o, {"spec", "region"}), str(o, {"spec", "dataZone"}),
                                 str(o, {"spec", "gpuProduct"}), mode.empty() ? "Exclusive" : mode},
                                1});
               }});
  d.push_back({"waterline_pool_nodes", "Nodes of a CapacityPool (status.nodes, status.readyNodes).",
               {"pool", "state"}, Src::Pools, [](const Json& o, std::vector<Sample>& out) {
                 if (!at(o, {"status"})) return;
                 out.push_back({{name(o), "total"}, num(o, {"status", "nodes"})});
                 out.push_back({{name(o), "ready"}, num(o, {"status", "readyNodes"})});
               }});
  d.push_back({"waterline_pool_gpus",
               "Whole GPUs of a CapacityPool by state (status.gpus); states overlap, do not sum them.",
               {"pool", "state"}, Src::Pools,
               [](const Json& o, std::vector<Sample>& out) { counts(o, "gpus", out); }});
  d.push_back({"waterline_pool_gpu_slices",
               "GPU slices (MIG instances, shares) of a CapacityPool by state (status.slices); "
               "absent for Exclusive pools.",
               {"pool", "state"}, Src::Pools,
               [](const Json& o, std::vector<Sample>& out) { counts(o, "slices", out); }});
  d.push_back({"waterline_pool_allocation_ratio",
               "Allocated over allocatable capacity of a CapacityPool (status.utilization).", {"pool"},
               Src::Pools, [](const Json& o, std::vector<Sample>& out) {
                 if (at(o, {"status"})) out.push_back({{name(o)}, num(o, {"status", "utilization"})});
               }});
  d.push_back({"waterline_pool_fragmentation_ratio",
               "Share of a CapacityPool's free capacity on partly allocated GPUs (status.fragmentation).",
               {"pool"}, Src::Pools, [](const Json& o, std::vector<Sample>& out) {
                 if (at(o, {"status"})) out.push_back({{name(o)}, num(o, {"status", "fragmentation"})});
               }});
  d.push_back({"waterline_pool_condition",
               "Conditions of a CapacityPool (value 1 for the current status and reason of each type).",
               {"pool", "condition", "status", "reason"}, Src::Pools,
               [](const Json& o, std::vector<Sample>& out) { conditions(o, {name(o)}, out); }});

  // --- ModelDeployments
  d.push_back({"waterline_deployment_info",
               "Static facts of a ModelDeployment (value 1): spec.deploymentType, model name and version.",
               {"namespace", "deployment", "type", "model", "model_version"}, Src::Deployments,
               [](const Json& o, std::vector<Sample>& out) {
                 out.push_back({{ns(o), name(o), str(o, {"spec", "deploymentType"}), str(o, {"spec", "model", "name"}),
                                 str(o, {"spec", "model", "version"})},
                                1});
               }});
  d.push_back({"waterline_deployment_replicas",
               "Replicas of a ModelDeployment: spec (spec.replicas), desired, current, scheduled, ready, "
               "updated (status).",
               {"namespace", "deployment", "state"}, Src::Deployments,
               [](const Json& o, std::vector<Sample>& out) {
                 const std::string n = ns(o), m = name(o);
                 out.push_back({{n, m, "spec"}, num(o, {"spec", "replicas"}, 1)});  // CRD default 1
                 if (!at(o, {"status"})) return;
                 out.push_back({{n, m, "desired"}, num(o, {"status", "desiredReplicas"})});
                 out.push_back({{n, m, "current"}, num(o, {"status", "replicas"})});
                 out.push_back({{n, m, "scheduled"}, num(o, {"status", "scheduledReplicas"})});
                 out.push_back({{n, m, "ready"}, num(o, {"status", "readyReplicas"})});
                 out.push_back({{n, m, "updated"}, num(o, {"status", "updatedReplicas"})});
               }});
  d.push_back({"waterline_deployment_pool_replicas",
               "Replicas of a ModelDeployment in one CapacityPool (status.placements): current, ready.",
               {"namespace", "deployment", "pool", "state"}, Src::Deployments,
               [](const Json& o, std::vector<Sample>& out) {
                 const Json* ps = at(o, {"status", "placements"});
                 if (!ps || !ps->is_array()) return;
                 for (const auto& p : *ps) {
                   std::string pool = str(p, {"pool"});
                   if (pool.empty()) continue;
                   out.push_back({{ns(o), name(o), pool, "current"}, num(p, {"replicas"})});
                   out.push_back({{ns(o), name(o), pool, "ready"}, num(p, {"readyReplicas"})});
                 }
               }});
  d.push_back({"waterline_deployment_condition",
               "Conditions of a ModelDeployment (value 1 for the current status and reason of each type).",
               {"namespace", "deployment", "condition", "status", "reason"}, Src::Deployments,
               [](const Json& o, std::vector<Sample>& out) { conditions(o, {ns(o), name(o)}, out); }});

  // --- PTUReservations
  d.push_back({"waterline_reservation_info",
               "Static facts of a PTUReservation (value 1): its ModelDeployment and scope type.",
               {"namespace", "reservation", "deployment", "scope"}, Src::Reservations,
               [](const Json& o, std::vector<Sample>& out) {
                 out.push_back({{ns(o), name(o), str(o, {"spec", "deploymentRef", "name"}),
                                 str(o, {"spec", "scope", "type"})},
                                1});
               }});
  d.push_back({"waterline_reservation_phase",
               "Phase of a PTUReservation: 1 for the current one (status.phase), 0 for the others.",
               {"namespace", "reservation", "phase"}, Src::Reservations,
               [](const Json& o, std::vector<Sample>& out) {
                 const std::string cur = str(o, {"status", "phase"});
                 for (const char* p : {"Pending", "Active", "Insufficient", "Expired"})
                   out.push_back({{ns(o), name(o), p}, cur == p ? 1.0 : 0.0});
               }});
  d.push_back({"waterline_reservation_units", "Provisioned throughput units of a PTUReservation (spec.units).",
               {"namespace", "reservation"}, Src::Reservations, [](const Json& o, std::vector<Sample>& out) {
                 out.push_back({{ns(o), name(o)}, num(o, {"spec", "units"})});
               }});
  d.push_back({"waterline_reservation_provisioned_tokens_per_minute",
               "Weighted tokens per minute a PTUReservation provides while Active "
               "(status.provisionedTokensPerMinute).",
               {"namespace", "reservation"}, Src::Reservations, [](const Json& o, std::vector<Sample>& out) {
                 out.push_back({{ns(o), name(o)}, num(o, {"status", "provisionedTokensPerMinute"})});
               }});
  d.push_back({"waterline_reservation_used_tokens_per_minute",
               "Weighted tokens served against a PTUReservation over the last minute "
               "(status.usedTokensPerMinute).",
               {"namespace", "reservation"}, Src::Reservations, [](const Json& o, std::vector<Sample>& out) {
                 out.push_back({{ns(o), name(o)}, num(o, {"status", "usedTokensPerMinute"})});
               }});
  d.push_back({"waterline_reservation_utilization_ratio",
               "Used over provisioned tokens of a PTUReservation (status.utilization; above 1 while bursting).",
               {"namespace", "reservation"}, Src::Reservations, [](const Json& o, std::vector<Sample>& out) {
                 out.push_back({{ns(o), name(o)}, num(o, {"status", "utilization"})});
               }});
  d.push_back({"waterline_reservation_reserved_replicas",
               "Replicas of the deployment held for a PTUReservation (status.reservedReplicas).",
               {"namespace", "reservation"}, Src::Reservations, [](const Json& o, std::vector<Sample>& out) {
                 out.push_back({{ns(o), name(o)}, num(o, {"status", "reservedReplicas"})});
               }});
  d.push_back({"waterline_reservation_condition",
               "Conditions of a PTUReservation (value 1 for the current status and reason of each type).",
               {"namespace", "reservation", "condition", "status", "reason"}, Src::Reservations,
               [](const Json& o, std::vector<Sample>& out) { conditions(o, {ns(o), name(o)}, out); }});
  return d;
}

}  // namespace

FleetSources FleetSources::fromInformers(cache::InformerPtr pools, cache::InformerPtr deployments,
                                         cache::InformerPtr reservations) {
  auto lister = [](cache::InformerPtr inf) -> Lister {
    if (!inf) return {};
    return [inf] { return inf->store().list(); };
  };
  return {lister(std::move(pools)), lister(std::move(deployments)), lister(std::move(reservations))};
}

void registerFleetMetrics(metrics::Registry& reg, FleetSources sources) {
  auto src = std::make_shared<const FleetSources>(std::move(sources));
  for (auto& def : defs()) {
    const FleetSources::Lister* lister = def.src == Src::Pools         ? &src->pools
                                         : def.src == Src::Deployments ? &src->deployments
                                                                       : &src->reservations;
    reg.gaugeFunc(def.name, def.help, def.labels,
                  [src, lister, collect = std::move(def.collect)] {
                    std::vector<Sample> out;
                    if (!*lister) return out;
                    for (const auto& obj : (*lister)())
                      if (obj) collect(*obj, out);
                    return out;
                  });
  }
}

std::vector<std::string> fleetMetricNames() {
  std::vector<std::string> names;
  for (const auto& d : defs()) names.emplace_back(d.name);
  return names;
}

}  // namespace waterline::reconcilers
