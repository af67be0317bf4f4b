#include "waterline/planners/inventory_snapshot.h"

#include <algorithm>
#include <bit>
#include <cmath>

#include "waterline/api/keys.h"
#include "waterline/api/meta.h"
#include "waterline/scheduling/analysis.h"
#include "waterline/scheduling/annotation.h"

namespace waterline::planners {

namespace {

std::string str(const nlohmann::json& j, const char* k) {
  if (!j.is_object()) return "";
  auto it = j.find(k);
  return it != j.end() && it->is_string() ? it->get<std::string>() : "";
}

std::string label(const nlohmann::json& meta, std::string_view key) {
  if (!meta.contains("labels") || !meta["labels"].is_object()) return "";
  return str(meta["labels"], std::string(key).c_str());
}

}  // namespace

WorkerPod WorkerPod::fromJson(const nlohmann::json& pod) {
  WorkerPod w;
  const auto& meta = pod.contains("metadata") ? pod["metadata"] : nlohmann::json::object();
  w.ns = str(meta, "namespace");
  w.name = str(meta, "name");
  w.uid = str(meta, "uid");
  w.deployment = label(meta, api::labels::kDeployment);
  w.pool = label(meta, api::labels::kPool);
  w.templateHash = label(meta, api::labels::kTemplateHash);
  w.deleting = meta.contains("deletionTimestamp") && !meta["deletionTimestamp"].is_null();
  if (auto t = str(meta, "creationTimestamp"); !t.empty())
    if (auto p = api::parseTime(t)) w.created = *p;
  if (meta.contains("annotations") && meta["annotations"].is_object()) {
    const auto& a = meta["annotations"];
    w.assignment = str(a, std::string(api::annotations::kGpuAssignment).c_str());
    if (auto d = str(a, std::string(api::annotations::kDrainingSince).c_str()); !d.empty())
      if (auto p = api::parseTime(d)) w.drainingSince = *p;
  }
  if (pod.contains("spec")) w.node = str(pod["spec"], "nodeName");
  if (pod.contains("status") && pod["status"].is_object()) {
    const auto& st = pod["status"];
    w.phase = str(st, "phase");
    if (st.contains("conditions") && st["conditions"].is_array())
      for (const auto& c : st["conditions"])
        if (str(c, "type") == "Ready") w.ready = str(c, "status") == "True";
  }
  return w;
}

scheduling::PoolSpec toPoolSpec(const api::CapacityPool& pool) {
  scheduling::PoolSpec p;
  p.name = pool.metadata.name;
  p.region = pool.spec.region;
  p.zone = pool.spec.dataZone;
  p.gpu_product = pool.spec.gpuProduct;
  p.node_selector = pool.spec.nodeSelector.matchLabels;  // membership is set per node
  switch (pool.spec.sharing.mode) {
    case api::SharingMode::Exclusive: p.sharing = scheduling::SharingMode::Exclusive; break;
    case api::SharingMode::MIG: p.sharing = scheduling::SharingMode::MIG; break;
    case api::SharingMode::TimeSlicing: p.sharing = scheduling::SharingMode::TimeSlicing; break;
    case api::SharingMode::MPS: p.sharing = scheduling::SharingMode::MPS; break;
  }
  p.mig_profiles = pool.spec.sharing.migProfiles;
  p.slices_per_gpu = pool.spec.sharing.sharesPerGpu();
  p.strategy = pool.spec.schedulingStrategy == api::SchedulingStrategy::Spread
                   ? scheduling::Strategy::Spread
                   : scheduling::Strategy::BinPack;
  p.reservable_fraction = pool.spec.reservableFraction;
  return p;
}

scheduling::NodeSpec toNodeSpec(const NodeView& n, const std::string& pool, api::SharingMode mode) {
  scheduling::NodeSpec s;
  s.name = n.name;
  s.pool = pool;
  s.labels = n.labels;
  s.ready = n.ready;
  s.unschedulable = n.unschedulable;
  for (const auto& t : n.taints) {
    auto eff = scheduling::parseTaintEffect(t.effect);
    s.taints.push_back({t.key, t.value, eff.value_or(scheduling::TaintEffect::NoSchedule)});
  }
  s.gpu_product = n.gpuProduct;
  s.gpu_count = n.gpusFor(mode);  // 0 when the pool can use none of them (known, not "from the label")
  s.gpu_memory_mib = n.gpuMemoryMiB;
  // GPU faults (taint or annotation): no new work on those GPUs. Workers already there
  // keep their claim until they are moved (the rebuild does not check health).
  for (int i : n.faultyGpus())
    if (i < s.gpu_count) s.unhealthy_gpus.push_back(i);
  // DRA: GPUs that others' claims hold take no new work either (in the inventory they
  // read as unusable; they are not faults, so no worker is moved off them).
  for (int i : n.heldGpus)
    if (i < s.gpu_count) s.unhealthy_gpus.push_back(i);
  std::sort(s.unhealthy_gpus.begin(), s.unhealthy_gpus.end());
  s.unhealthy_gpus.erase(std::unique(s.unhealthy_gpus.begin(), s.unhealthy_gpus.end()), s.unhealthy_gpus.end());
  return s;
}

scheduling::GpuShape toShape(const api::GpuRequest& gpu) {
  scheduling::GpuShape s;
  switch (gpu.kind()) {
    case api::GpuRequestKind::Count: s = scheduling::GpuShape::whole(gpu.count.value_or(1)); break;
    case api::GpuRequestKind::MigProfile: s = scheduling::GpuShape::mig(gpu.migProfile.value_or("")); break;
    case api::GpuRequestKind::Shares: s = scheduling::GpuShape::share(gpu.sharesPerGpu.value_or(1)); break;
  }
  if (gpu.memory) s.memory_mib = gpu.memory->value() / (1024 * 1024);
  return s;
}

std::vector<scheduling::Toleration> tolerationsOf(const api::ModelDeployment& d) {
  std::vector<scheduling::Toleration> out;
  const auto spec = d.spec.template_.podSpec();
  auto ts = spec.find("tolerations");
  if (ts == spec.end() || !ts->is_array()) return out;
  for (const auto& t : *ts) {
    if (!t.is_object()) continue;
    scheduling::Toleration tol;
    tol.key = t.value("key", "");
    tol.op = t.value("operator", "Equal") == "Exists" ? scheduling::TolerationOperator::Exists
                                                       : scheduling::TolerationOperator::Equal;
    tol.value = t.value("value", "");
    if (const std::string e = t.value("effect", ""); !e.empty()) {
      auto eff = scheduling::parseTaintEffect(e);
      if (!eff) continue;  // an effect the scheduler does not know tolerates nothing
      tol.effect = *eff;
    }
    out.push_back(std::move(tol));
  }
  return out;
}

scheduling::Request toRequest(const api::ModelDeployment& d, const std::string& podName) {
  scheduling::Request r;
  r.worker = d.metadata.namespace_ + "/" + podName;
  r.deployment = d.metadata.key();
  switch (d.spec.deploymentType) {
    case api::DeploymentType::Standard: r.type = scheduling::DeploymentType::Standard; break;
    case api::DeploymentType::DataZone: r.type = scheduling::DeploymentType::DataZone; break;
    case api::DeploymentType::Global: r.type = scheduling::DeploymentType::Global; break;
  }
  r.region = d.spec.region.value_or("");
  r.zone = d.spec.dataZone.value_or("");
  r.preferred_product = d.spec.gpu.product.value_or("");
  r.shape = toShape(d.spec.gpu);
  r.tolerations = tolerationsOf(d);
  return r;
}

scheduling::Request requestFromAssignment(const scheduling::Assignment& a, const std::string& worker,
                                          const std::string& deployment) {
  scheduling::Request r;
  r.worker = worker;
  r.deployment = deployment;
  r.type = scheduling::DeploymentType::Global;
  switch (a.kind) {
    case scheduling::ShapeKind::Whole:
      r.shape = scheduling::GpuShape::whole(std::max<int>(1, int(a.gpus.size())));
      break;
    case scheduling::ShapeKind::Mig: r.shape = scheduling::GpuShape::mig(a.mig_profile); break;
    case scheduling::ShapeKind::Share: {
      int slots = std::max<int>(1, int(a.share_slots.size()));
      int k = a.shares_per_gpu > 0 ? a.shares_per_gpu / slots : 1;
      r.shape = scheduling::GpuShape::share(std::max(1, k));
      break;
    }
  }
  return r;
}

void applyHolds(Snapshot& snap, const std::vector<PoolHold>& holds) {
  struct Sum {
    int32_t replicas = 0;
    double gpus = 0;
  };
  std::map<std::pair<std::string, std::string>, Sum> byPoolDeployment;  // (pool, deployment)
  for (const auto& h : holds) {
    auto& s = byPoolDeployment[{h.pool, h.deployment}];
    s.replicas += h.replicas;
    s.gpus += h.gpus;
  }
  auto& inv = snap.inventory;
  for (const auto& [k, s] : byPoolDeployment) {
    const auto& [pool, deployment] = k;
    const scheduling::PoolId pid = inv.findPool(pool);
    if (pid == scheduling::kNone || s.replicas <= 0) continue;
    const scheduling::DeploymentId did = inv.findDeployment(deployment);
    const int32_t have = did == scheduling::kNone ? 0 : int32_t(inv.pool(pid).replicasOf(did));
    HoldShortfall sf;
    sf.pool = pool;
    sf.deployment = deployment;
    const int32_t missingReplicas = std::max(0, s.replicas - have);
    sf.missingReplicas = missingReplicas;
    sf.gpusPerReplica = s.gpus / s.replicas;
    sf.needGpus = int32_t(std::ceil(s.gpus * missingReplicas / s.replicas - 1e-9));
    int32_t take = std::min(sf.needGpus, idleGpus(inv, pid));
    while (take > 0) {
      auto ok = inv.createReservation(std::string(kHoldReservationPrefix) + pool + ":" + deployment, deployment, pool, take);
      if (ok) break;
      --take;  // over the pool's reservableFraction (counted on physical GPUs): take less
    }
    sf.reservedGpus = std::max(0, take);
    snap.holds.push_back(std::move(sf));
  }
}

void withdrawHolds(Snapshot& snap) {
  for (const auto& r : snap.inventory.reservations())
    if (r.name.starts_with(kHoldReservationPrefix)) snap.inventory.releaseReservation(r.name);
  snap.holds.clear();
}

Snapshot buildSnapshot(const SnapshotInput& in) {
  SnapshotRefs refs;
  for (const auto& p : in.pools) refs.pools.push_back(&p);
  for (const auto& n : in.nodes) refs.nodes.push_back(&n);
  for (const auto& p : in.pods) refs.pods.push_back(&p);
  refs.holds = in.holds;
  return buildSnapshot(refs);
}

Snapshot buildSnapshot(const SnapshotRefs& in) {
  std::vector<const api::CapacityPool*> pools = in.pools;
  std::sort(pools.begin(), pools.end(),
            [](auto* a, auto* b) { return a->metadata.name < b->metadata.name; });
  std::vector<scheduling::PoolSpec> ps;
  for (auto* p : pools) ps.push_back(toPoolSpec(*p));

  Snapshot snap;
  std::vector<scheduling::NodeSpec> ns;
  std::vector<const NodeView*> nodes = in.nodes;
  std::sort(nodes.begin(), nodes.end(), [](auto* a, auto* b) { return a->name < b->name; });
  for (auto* n : nodes) {
    std::string owner;
    const api::CapacityPool* ownerPool = nullptr;
    api::SharingMode mode = api::SharingMode::Exclusive;
    int matches = 0;
    for (auto* p : pools)
      if (p->spec.selectsNode(n->labels)) {
        if (owner.empty()) {
          owner = p->metadata.name;
          ownerPool = p;
          mode = p->spec.sharing.mode;
        }
        ++matches;
      }
    if (owner.empty()) continue;  // in no pool: not GPU inventory of ours
    auto spec = toNodeSpec(*n, owner, mode);
    if (matches > 1) spec.unschedulable = true;  // conflicting membership: no new work
    // Its own region / zone / data-zone labels contradict the pool's: no new work there
    // (DataZone and Standard deployments pick pools by the pool's declared place).
    if (!topologyMismatch(*ownerPool, *n).empty()) spec.unschedulable = true;
    snap.nodePool[n->name] = owner;
    ns.push_back(std::move(spec));
  }

  std::vector<std::pair<const WorkerPod*, scheduling::Assignment>> held;
  std::vector<scheduling::RecordedAssignment> recs;
  std::vector<std::pair<std::string, const WorkerPod*>> pods;  // by key(), built once each
  pods.reserve(in.pods.size());
  for (auto* p : in.pods) pods.emplace_back(p->key(), p);
  std::sort(pods.begin(), pods.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  for (const auto& [podKey, p] : pods) {
    if (p->terminal() || p->assignment.empty()) continue;
    auto a = scheduling::decodeAssignment(p->assignment);
    if (!a) {
      scheduling::Conflict c;
      c.kind = scheduling::Conflict::Kind::Malformed;
      c.worker = p->key();
      c.node = p->node;
      c.message = a.error();
      snap.conflicts.push_back(std::move(c));
      continue;
    }
    scheduling::RecordedAssignment r;
    r.request = requestFromAssignment(*a, p->key(), p->ns + "/" + p->deployment);
    r.annotation = p->assignment;
    r.order = p->created ? std::chrono::duration_cast<std::chrono::seconds>(
                               p->created->time_since_epoch()).count()
                         : INT64_MAX;  // not yet seen by the apiserver (assumed): last
    recs.push_back(std::move(r));
  }
  auto rb = scheduling::Inventory::rebuild(std::move(ps), std::move(ns), std::move(recs));
  snap.inventory = std::move(rb.inventory);
  for (auto& c : rb.conflicts) snap.conflicts.push_back(std::move(c));
  applyHolds(snap, in.holds);
  return snap;
}

int32_t idleGpus(const scheduling::Inventory& inv, scheduling::PoolId pool) {
  int32_t n = 0;
  for (scheduling::ClassId c : inv.pool(pool).classes)
    for (scheduling::NodeId id : inv.nodeClass(c).members) {
      const auto& ns = inv.node(id);
      if (!ns.schedulable()) continue;
      for (const auto& g : ns.gpus)
        if (g.healthy && g.idle() && g.reserved_for == scheduling::kNone) ++n;
    }
  return n;
}

std::vector<PoolHold> holdsFromReservations(const std::vector<std::shared_ptr<const nlohmann::json>>& reservations) {
  std::vector<PoolHold> out;
  for (const auto& r : reservations) {
    if (!r || !r->contains("status") || !(*r)["status"].is_object()) continue;
    const auto& st = (*r)["status"];
    if (st.value("phase", "") != "Active") continue;
    if (r->contains("metadata") && (*r)["metadata"].contains("deletionTimestamp")) continue;
    if (!r->contains("spec") || !(*r)["spec"].contains("deploymentRef") || !st.contains("placements") ||
        !st["placements"].is_array())
      continue;
    const std::string ns = (*r)["metadata"].value("namespace", "");
    const std::string name = (*r)["metadata"].value("name", "");
    const auto& ref = (*r)["spec"]["deploymentRef"];
    if (!ref.is_object() || !ref.contains("name") || !ref["name"].is_string()) continue;
    for (const auto& p : st["placements"]) {
      if (!p.is_object() || !p.contains("pool") || !p["pool"].is_string()) continue;
      PoolHold h;
      h.reservation = ns + "/" + name;
      h.deployment = ns + "/" + ref["name"].get<std::string>();
      h.pool = p["pool"].get<std::string>();
      if (p.contains("replicas") && p["replicas"].is_number_integer()) h.replicas = p["replicas"].get<int32_t>();
      if (p.contains("gpus") && p["gpus"].is_number()) h.gpus = p["gpus"].get<double>();
      if (h.replicas > 0 && h.gpus > 0) out.push_back(std::move(h));
    }
  }
  return out;
}

std::map<std::string, PoolAllocation> allocationByPool(const scheduling::Inventory& inv) {
  std::map<std::string, PoolAllocation> out;
  for (scheduling::NodeId id = 0; id < inv.nodeCount(); ++id) {
    const auto& n = inv.node(id);
    if (n.pool == scheduling::kNone || n.spec.name.empty()) continue;
    auto& a = out[inv.pool(n.pool).spec.name];
    if (!n.spec.ready || n.spec.unschedulable) continue;
    for (const auto& g : n.gpus) {
      if (g.idle() || !g.healthy) continue;  // unhealthy GPUs are not allocatable
      ++a.gpus;
      if (g.whole_owner != scheduling::kNone) a.slices += 1;
      else if (g.share_mask) a.slices += std::popcount(g.share_mask);
      else a.slices += 1;  // MIG: a GPU with instances counts as one slice of the GPU view
    }
  }
  return out;
}

std::map<std::string, double> fragmentationByPool(const scheduling::Inventory& inv,
                                                  std::vector<scheduling::Request> shapes) {
  if (shapes.empty()) {
    scheduling::Request r;
    r.worker = "fragmentation/probe";
    r.deployment = "fragmentation/probe";
    r.type = scheduling::DeploymentType::Global;
    r.shape = scheduling::GpuShape::whole(1);
    shapes.push_back(r);
  }
  std::map<std::string, double> out;
  auto report = scheduling::fragmentation(inv, scheduling::Profile::defaults(), shapes);
  for (const auto& p : report.pools)
    out[p.pool] = p.free_gpus > 0 ? std::clamp(p.stranded_gpus / p.free_gpus, 0.0, 1.0) : 0.0;
  return out;
}

}  // namespace waterline::planners
