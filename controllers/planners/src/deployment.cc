#include "waterline/planners/deployment.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <set>

#include "waterline/api/keys.h"
#include "waterline/planners/repair.h"
#include "waterline/scheduling/analysis.h"
#include "waterline/scheduling/annotation.h"
#include "waterline/scheduling/scheduler.h"

namespace waterline::planners {

using nlohmann::json;

namespace {

uint64_t fnv1a(std::string_view s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

std::string hex(uint64_t v, int digits) {
  static const char* d = "0123456789abcdef";
  std::string s(digits, '0');
  for (int i = digits - 1; i >= 0; --i, v >>= 4) s[i] = d[v & 15];
  return s;
}

std::string joinInts(const std::vector<int>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + std::to_string(v[i]);
  return s;
}

// Index of "<deployment>-<n>", or -1.
int podIndex(const std::string& deployment, const std::string& name) {
  if (name.size() <= deployment.size() + 1 || name.compare(0, deployment.size(), deployment) != 0 ||
      name[deployment.size()] != '-')
    return -1;
  int v = 0;
  for (size_t i = deployment.size() + 1; i < name.size(); ++i) {
    if (name[i] < '0' || name[i] > '9' || v > 10'000'000) return -1;
    v = v * 10 + (name[i] - '0');
  }
  return v;
}

// GPU indices of `assignment` (on its node) that the node reports faulty.
std::vector<int> faultyGpusOf(const std::string& assignment, const NodeView& n) {
  std::vector<int> out;
  auto faulty = n.faultyGpus();
  if (faulty.empty() || assignment.empty()) return out;
  auto a = scheduling::decodeAssignment(assignment);
  if (!a) return out;
  for (int g : a->gpus)
    if (std::binary_search(faulty.begin(), faulty.end(), g)) out.push_back(g);
  return out;
}

api::Condition cond(std::string_view type, bool status, std::string_view reason, std::string msg,
                    int64_t gen) {
  return {std::string(type), status ? api::ConditionStatus::True : api::ConditionStatus::False,
          std::string(reason), std::move(msg), {}, gen};
}

json probe(const api::HealthCheckSpec& h, int32_t port, bool liveness) {
  return {{"httpGet", {{"path", h.path}, {"port", port}}},
          {"periodSeconds", h.periodSeconds},
          {"timeoutSeconds", h.timeoutSeconds},
          {"failureThreshold", h.failureThreshold},
          {"successThreshold", liveness ? 1 : h.successThreshold}};
}

}  // namespace

std::string templateHash(const api::ModelDeployment& d) {
  json spec = api::toJson(d.spec);
  // The whole template as given. A template in the old flat shape hashes as it always
  // did (its old encoding), so upgrading the operator rolls no worker.
  json tmpl = spec.value("template", json());
  if (auto legacy = api::legacyTemplateJson(d.spec.template_)) tmpl = std::move(*legacy);
  json basis = {{"template", std::move(tmpl)},
                {"gpu", spec.value("gpu", json())},
                {"healthCheck", spec.value("healthCheck", json())},
                {"model", spec.value("model", json())}};
  // Fields that change the rendered pod; only when not at their default, so the hashes of
  // existing workers stay as they were.
  if (d.spec.workerContainer) basis["workerContainer"] = *d.spec.workerContainer;
  if (d.spec.startupTimeoutSeconds != api::kDefaultStartupTimeoutSeconds)
    basis["startupTimeoutSeconds"] = d.spec.startupTimeoutSeconds;
  return hex(fnv1a(basis.dump()), 10);
}

int32_t desiredReplicas(const api::ModelDeployment& d) {
  int32_t r = d.spec.replicas;
  if (d.spec.minReplicas) r = std::max(r, *d.spec.minReplicas);
  if (d.spec.maxReplicas) r = std::min(r, *d.spec.maxReplicas);
  return std::max(0, r);
}

int32_t maxUnavailable(const api::ModelDeployment& d, int32_t desired) {
  auto v = d.spec.maxUnavailable.scaledValue(desired, false);
  return std::max<int32_t>(1, v ? int32_t(*v) : 1);
}

std::string workerPodName(const std::string& deployment, int index) {
  return deployment + "-" + std::to_string(index);
}

json renderWorkerPod(const api::ModelDeployment& d, const std::string& name,
                     const std::string& pool, const scheduling::Assignment& a, int slicesPerGpu,
                     scheduling::SharingMode mode, const std::string& hash) {
  const auto& t = d.spec.template_;
  // Keys under waterline.dev/ are the operator's (validate() rejects them in a template;
  // they are left out here as well, so that no template can ever set one on a worker).
  json labels = json::object();
  for (const auto& [k, v] : t.labels())
    if (!api::isReservedKey(k)) labels[k] = v;
  labels[std::string(api::labels::kDeployment)] = d.metadata.name;
  labels[std::string(api::labels::kPool)] = pool;
  labels[std::string(api::labels::kModel)] = api::modelLabelValue(d.spec.model.name);
  labels[std::string(api::labels::kModelVersion)] = api::modelLabelValue(d.spec.model.version);
  labels[std::string(api::labels::kManagedBy)] = std::string(api::labels::kManagedByValue);
  labels[std::string(api::labels::kTemplateHash)] = hash;
  const std::string assignment = scheduling::encodeAssignment(a);
  json annotations = json::object();
  for (const auto& [k, v] : t.annotations())
    if (!api::isReservedKey(k)) annotations[k] = v;
  annotations[std::string(api::annotations::kGpuAssignment)] = assignment;

  // GPU resources matching the placement.
  std::string resName = std::string(api::gfd::kGpuResource);
  int64_t resCount = 1;
  std::string devices;
  switch (a.kind) {
    case scheduling::ShapeKind::Whole:
      resCount = int64_t(a.gpus.size());
      devices = joinInts(a.gpus);
      break;
    case scheduling::ShapeKind::Mig:
      resName = api::gfd::migResource(a.mig_profile);
      devices = joinInts(a.gpus);
      break;
    case scheduling::ShapeKind::Share:
      resCount = int64_t(std::max<size_t>(1, a.share_slots.size()));
      devices = joinInts(a.gpus);
      break;
  }

  // The user's PodSpec first (the shorthand expanded into one container "worker"), then
  // the operator's fields on top.
  json spec = t.podSpec();
  if (!spec.contains("containers") || !spec["containers"].is_array() || spec["containers"].empty())
    spec["containers"] = json::array({json{{"name", std::string(api::kShorthandContainerName)}}});
  int wi = d.spec.workerContainerIndex(spec);
  if (wi < 0) wi = 0;  // validate() rejects a workerContainer that names no container
  json& container = spec["containers"][size_t(wi)];
  if (!container.is_object()) container = json::object();

  // GPU resources added to the worker container's own (requests = limits). Any other
  // nvidia.com/ resource is the CRD's to reject; it is dropped here as well, so the
  // worker never asks the device plugin for GPUs the scheduler did not assign.
  json resources = container.value("resources", json::object());
  if (!resources.is_object()) resources = json::object();
  for (const char* part : {"requests", "limits"}) {
    json m = resources.value(part, json::object());
    if (!m.is_object()) m = json::object();
    for (auto it = m.begin(); it != m.end();) {
      if (it.key().starts_with("nvidia.com/")) it = m.erase(it);
      else ++it;
    }
    m[resName] = std::to_string(resCount);
    resources[part] = std::move(m);
  }
  container["resources"] = std::move(resources);

  // Env: the template's, then the operator's (a template variable of the same name gives
  // way: the operator's value is the one that matches the placement).
  std::vector<std::pair<std::string, std::string>> owned;
  owned.emplace_back("NVIDIA_VISIBLE_DEVICES", devices);
  owned.emplace_back("CUDA_VISIBLE_DEVICES", devices);
  if (mode == scheduling::SharingMode::MPS && a.kind == scheduling::ShapeKind::Share && slicesPerGpu > 0)
    owned.emplace_back("CUDA_MPS_ACTIVE_THREAD_PERCENTAGE",
                       std::to_string(100 * int64_t(a.share_slots.size()) / slicesPerGpu));
  owned.emplace_back("WATERLINE_GPU_ASSIGNMENT", assignment);
  owned.emplace_back("WATERLINE_DEPLOYMENT", d.metadata.name);
  owned.emplace_back("WATERLINE_POOL", pool);
  owned.emplace_back("WATERLINE_MODEL", d.spec.model.name);
  owned.emplace_back("WATERLINE_MODEL_VERSION", d.spec.model.version);
  json env = json::array();
  if (auto it = container.find("env"); it != container.end() && it->is_array())
    for (const auto& e : *it) {
      const std::string n = e.is_object() ? e.value("name", "") : "";
      bool shadowed = false;
      for (const auto& [k, v] : owned) shadowed |= k == n;
      if (!shadowed) env.push_back(e);
    }
  for (const auto& [k, v] : owned) env.push_back({{"name", k}, {"value", v}});
  container["env"] = std::move(env);

  // Probes on the health endpoint, each only where the worker container has none.
  if (int32_t port = d.spec.healthPort(); port > 0) {
    if (!container.contains("readinessProbe")) container["readinessProbe"] = probe(d.spec.healthCheck, port, false);
    if (!container.contains("livenessProbe")) container["livenessProbe"] = probe(d.spec.healthCheck, port, true);
    // Loading a large model takes minutes: liveness only starts once the server has
    // answered, and the server gets up to spec.startupTimeoutSeconds to do so.
    if (!container.contains("startupProbe")) {
      json startup = probe(d.spec.healthCheck, port, true);
      const int32_t period = std::max<int32_t>(1, d.spec.healthCheck.periodSeconds);
      const int32_t allowance = std::max<int32_t>(1, d.spec.startupTimeoutSeconds);
      startup["failureThreshold"] =
          std::max<int32_t>(d.spec.healthCheck.failureThreshold, (allowance + period - 1) / period);
      container["startupProbe"] = std::move(startup);
    }
  }

  // Pod fields the operator owns (the CRD rejects them in a template).
  spec["nodeName"] = a.node;
  spec["restartPolicy"] = "Always";
  for (const char* k : {"schedulerName", "nodeSelector", "affinity", "topologySpreadConstraints", "schedulingGates",
                        "ephemeralContainers"})
    spec.erase(k);
  if (!spec.contains("terminationGracePeriodSeconds")) spec["terminationGracePeriodSeconds"] = 30;

  json owner = {{"apiVersion", "waterline.dev/v1alpha1"},
                {"kind", "ModelDeployment"},
                {"name", d.metadata.name},
                {"uid", d.metadata.uid},
                {"controller", true},
                {"blockOwnerDeletion", true}};
  return {{"apiVersion", "v1"},
          {"kind", "Pod"},
          {"metadata",
           {{"name", name},
            {"namespace", d.metadata.namespace_},
            {"labels", labels},
            {"annotations", annotations},
            {"ownerReferences", json::array({owner})}}},
          {"spec", spec}};
}

DeploymentPlan planDeployment(const DeploymentPlanInput& in, SystemTime now) {
  const api::ModelDeployment& d = *in.deployment;
  scheduling::Inventory& inv = *in.inventory;
  DeploymentPlan plan;
  const int64_t gen = d.metadata.generation;
  const std::string hash = templateHash(d);
  int32_t desired = desiredReplicas(d);
  // Without autoscaling nothing else raises replicas to the reservations' floor.
  if (!d.spec.autoscalingEnabled() && in.ptuFloor > desired)
    desired = d.spec.maxReplicas ? std::min(in.ptuFloor, *d.spec.maxReplicas) : in.ptuFloor;
  const int32_t maxU = maxUnavailable(d, desired);
  const Duration drain = std::chrono::seconds(std::max(0, d.spec.drainSeconds));

  std::map<std::string, const NodeView*> nodes;
  for (const auto& n : in.nodes) nodes[n.name] = &n;

  // A worker of this deployment whose claim the inventory refused because another worker
  // (or another deployment's reservation) holds the GPUs goes: in flight from now on (it
  // keeps its index and counts against maxUnavailable) and replaced by a real placement.
  std::vector<WorkerPod> own = in.pods;
  for (const auto& c : in.conflicts) {
    if (c.kind != scheduling::Conflict::Kind::Occupied && c.kind != scheduling::Conflict::Kind::ReservedForOther)
      continue;
    for (auto& w : own)
      if (w.key() == c.worker && !w.deleting && !w.terminal()) {
        w.deleting = true;
        plan.conflictDeletes.push_back({w.name, w.uid, c.holder, c.node,
                                        "worker " + w.name + " claims GPUs on node " + c.node + " that " + c.holder +
                                            " holds; deleting it to place it again"});
      }
  }
  std::vector<const WorkerPod*> pods;
  for (const auto& p : own) pods.push_back(&p);
  std::sort(pods.begin(), pods.end(), [](auto* a, auto* b) { return a->name < b->name; });

  std::set<int> usedIdx;
  std::vector<const WorkerPod*> active;
  std::vector<const WorkerPod*> moving;  // on faulty GPUs: replaced first, then drained
  int inFlight = 0;    // draining or being deleted: counted against maxUnavailable
  int live = 0;        // pods that exist and are not terminal / being deleted
  int repaired = 0, failed = 0;
  int held = 0;        // worker-caused repairs postponed by the backoff
  int heldFailed = 0;  // ... of them Failed pods, which keep their replica slot
  const bool hold = in.repairHoldUntil && now < *in.repairHoldUntil;
  auto noteRequeue = [&](Duration d2) {
    if (!plan.requeueAfter || d2 < *plan.requeueAfter) plan.requeueAfter = d2;
  };
  auto addRepair = [&](const WorkerPod* p, std::string_view reason, std::string_view eventReason,
                       std::string msg) {
    plan.repairs.push_back({p->name, p->uid, p->node, std::string(reason), msg});
    plan.events.push_back({"Warning", std::string(eventReason), msg + " (" + std::string(reason) + ")"});
  };
  for (auto* p : pods) {
    if (int i = podIndex(d.metadata.name, p->name); i >= 0) usedIdx.insert(i);
    if (p->deleting) {
      ++inFlight;
      continue;
    }
    if (p->terminal()) {
      if (p->phase == "Failed") {
        if (hold) {
          // Backoff: the failed pod (it holds no GPU) keeps its replica slot for now.
          ++held;
          ++heldFailed;
          noteRequeue(std::chrono::duration_cast<Duration>(*in.repairHoldUntil - now));
          continue;
        }
        plan.remove.push_back(p->name);
        ++failed;
        addRepair(p, repair_reasons::kWorkerFailed, "WorkerReplaced",
                  "worker " + p->name + " failed on node " + p->node + "; replacing it");
      } else {
        plan.remove.push_back(p->name);
      }
      continue;
    }
    ++live;
    if (p->drainingSince) {
      const auto deadline = *p->drainingSince + drain;
      if (now >= deadline) plan.remove.push_back(p->name);
      else noteRequeue(std::chrono::duration_cast<Duration>(deadline - now));
      ++inFlight;
      continue;
    }
    auto nit = p->node.empty() ? nodes.end() : nodes.find(p->node);
    if (!p->node.empty() && (nit == nodes.end() || nit->second->broken())) {
      // Repair: the node is gone, not ready or evicting; the worker is not serving.
      plan.remove.push_back(p->name);
      ++repaired;
      const bool gone = nit == nodes.end();
      if (gone) plan.removeWithoutGrace.insert(p->name);
      const bool notReady = !gone && !nit->second->ready;
      addRepair(p, gone ? repair_reasons::kNodeGone
                        : notReady ? repair_reasons::kNodeNotReady : repair_reasons::kNodeEvicting,
                "WorkerReplaced",
                "worker " + p->name + " is on node " + p->node +
                    (gone ? " which is gone" : notReady ? " which is not ready" : " which is evicting (NoExecute)") +
                    "; replacing it");
      continue;
    }
    if (in.unhealthyWorkers.count(p->name)) {
      if (hold) {
        // Backoff: keep the unhealthy worker (it holds its GPU) until the hold ends.
        ++held;
        noteRequeue(std::chrono::duration_cast<Duration>(*in.repairHoldUntil - now));
        active.push_back(p);
        continue;
      }
      plan.remove.push_back(p->name);
      ++failed;
      addRepair(p, repair_reasons::kProbeFailed, "WorkerReplaced",
                "worker " + p->name + " on node " + p->node + " fails its health check; replacing it");
      continue;
    }
    if (nit != nodes.end() && !faultyGpusOf(p->assignment, *nit->second).empty()) {
      moving.push_back(p);
      continue;
    }
    active.push_back(p);
  }
  // Workers on faulty GPUs move: a replacement is placed first (below, as a missing
  // replica); the old worker is drained once the ready workers without it reach the
  // desired count, or at once when it is not ready itself (it serves nothing).
  {
    int servingReady = int(std::count_if(active.begin(), active.end(), [](auto* p) { return p->ready; }));
    for (auto* p : moving) servingReady += p->ready ? 1 : 0;
    for (auto* p : moving) {
      const bool release = !p->ready || servingReady - 1 >= desired;
      if (!release) {
        ++plan.moving;
        continue;
      }
      if (p->ready) --servingReady;
      if (!p->ready || drain.count() == 0) plan.remove.push_back(p->name);  // not serving: no drain
      else {
        plan.drain.push_back(p->name);
        noteRequeue(drain);
      }
      ++inFlight;
      ++repaired;
      auto bad = faultyGpusOf(p->assignment, *nodes.at(p->node));
      std::string idx;
      for (size_t i = 0; i < bad.size(); ++i) idx += (i ? "," : "") + std::to_string(bad[i]);
      addRepair(p, repair_reasons::kGpuUnhealthy, "WorkerMoved",
                "worker " + p->name + " is on unhealthy GPU(s) " + idx + " of node " + p->node +
                    (p->ready ? "; its replacement is ready, draining it" : "; removing it"));
    }
    // Still serving until their replacement is ready: counted as available below.
    moving.erase(std::remove_if(moving.begin(), moving.end(),
                                [&](auto* p) {
                                  return std::find(plan.drain.begin(), plan.drain.end(), p->name) != plan.drain.end() ||
                                         std::find(plan.remove.begin(), plan.remove.end(), p->name) != plan.remove.end();
                                }),
                 moving.end());
  }
  plan.repairsHeld = held;

  auto startDrain = [&](const WorkerPod* p) {
    if (drain.count() == 0) plan.remove.push_back(p->name);
    else {
      plan.drain.push_back(p->name);
      noteRequeue(drain);
    }
    ++inFlight;
    active.erase(std::find(active.begin(), active.end(), p));
  };

  // Scale down: victims by the scheduler's victim selection, within maxUnavailable.
  int scaledDown = 0, rolled = 0;
  const int excess = int(active.size()) - desired;
  if (excess > 0) {
    const int n = std::min(excess, std::max(0, maxU - inFlight));
    // Workers that are not ready go first; then the scheduler's choice among the rest.
    std::vector<const WorkerPod*> victims;
    for (auto* p : active)
      if (!p->ready && int(victims.size()) < n) victims.push_back(p);
    std::vector<std::string> names;
    std::map<std::string, const WorkerPod*> byKey;
    for (auto* p : active)
      if (std::find(victims.begin(), victims.end(), p) == victims.end()) {
        names.push_back(p->key());
        byKey[p->key()] = p;
      }
    if (int(victims.size()) < n) {
      auto chosen = scheduling::selectVictims(inv, names, size_t(n) - victims.size());
      for (const auto& k : chosen) victims.push_back(byKey[k]);
      // Pods the inventory does not know (no assignment): by name, last first.
      for (auto it = names.rbegin(); it != names.rend() && int(victims.size()) < n; ++it)
        if (std::find(victims.begin(), victims.end(), byKey[*it]) == victims.end())
          victims.push_back(byKey[*it]);
    }
    for (auto* v : victims) startDrain(v);
    scaledDown = int(victims.size());
  } else if (excess == 0) {
    // Rollout: replace pods of an older template, within maxUnavailable.
    std::vector<const WorkerPod*> outdated;
    int ready = 0;
    for (auto* p : active) {
      if (p->ready) ++ready;
      if (p->templateHash != hash) outdated.push_back(p);
    }
    std::stable_sort(outdated.begin(), outdated.end(),
                     [](auto* a, auto* b) { return !a->ready && b->ready; });
    int allowed = maxU - std::max(0, desired - ready) - inFlight;
    for (auto* p : outdated) {
      if (allowed <= 0) break;
      // A pod that is not ready costs no availability.
      if (p->ready) --allowed;
      startDrain(p);
      ++rolled;
    }
  }

  // Scale up: place what fits, explain the rest.
  const int missing = desired - int(active.size()) - heldFailed;
  std::string insufficient;
  std::string insufficientReason;
  if (missing > 0) {
    scheduling::Scheduler sch(inv);
    int next = 0;
    for (int i = 0; i < missing; ++i) {
      while (usedIdx.count(next)) ++next;
      const std::string name = workerPodName(d.metadata.name, next);
      auto req = toRequest(d, name);
      auto dec = sch.place(req);
      if (!dec) {
        auto explainReq = req;
        if (explainReq.product.empty()) explainReq.product = explainReq.preferred_product;
        auto u = sch.explain(explainReq, missing - i);
        insufficientReason = u.reason == "NoEligiblePool" ? std::string(api::reasons::kNoMatchingPool)
                                                          : std::string(api::reasons::kInsufficientCapacity);
        insufficient = u.message;
        plan.unschedulable = true;
        break;
      }
      usedIdx.insert(next);
      const auto pid = inv.findPool(dec->pool);
      const auto& pspec = inv.pool(pid).spec;
      PodToCreate c;
      c.name = name;
      c.pool = dec->pool;
      c.assignment = dec->assignment;
      c.pod = renderWorkerPod(d, name, dec->pool, dec->assignment, pspec.slices_per_gpu, pspec.sharing, hash);
      plan.creates.push_back(std::move(c));
    }
  }

  // Status.
  api::ModelDeploymentStatus& st = plan.status;
  st = d.status;
  st.observedGeneration = gen;
  st.desiredReplicas = desired;
  st.replicas = live + int(plan.creates.size()) -
                int(std::count_if(plan.remove.begin(), plan.remove.end(), [&](const std::string& n) {
                  for (auto* p : pods)
                    if (p->name == n) return !p->terminal() && !p->deleting;
                  return false;
                }));
  st.scheduledReplicas = int(active.size() + plan.creates.size());
  st.readyReplicas = 0;
  st.updatedReplicas = int(plan.creates.size());
  std::map<std::string, api::DeploymentPlacement> byPool;
  for (auto* p : active) {
    auto& pl = byPool[p->pool];
    pl.pool = p->pool;
    ++pl.replicas;
    if (p->ready) {
      ++pl.readyReplicas;
      ++st.readyReplicas;
    }
    if (p->templateHash == hash) ++st.updatedReplicas;
  }
  for (auto* p : moving) {  // on faulty GPUs, serving until their replacement is ready
    auto& pl = byPool[p->pool];
    pl.pool = p->pool;
    ++pl.replicas;
    if (p->ready) {
      ++pl.readyReplicas;
      ++st.readyReplicas;
    }
  }
  for (const auto& c : plan.creates) {
    auto& pl = byPool[c.pool];
    pl.pool = c.pool;
    ++pl.replicas;
  }
  st.placements.clear();
  for (auto& [_, pl] : byPool) st.placements.push_back(pl);
  std::string sel;
  for (const auto& [k, v] : d.workerSelectorLabels()) sel += (sel.empty() ? "" : ",") + k + "=" + v;
  st.selector = sel;
  st.insufficientCapacity = insufficient;

  using namespace api::conditions;
  namespace R = api::reasons;
  if (plan.unschedulable)
    api::setCondition(st.conditions, cond(kScheduled, false, insufficientReason, insufficient, gen), now);
  else
    api::setCondition(st.conditions,
                      cond(kScheduled, true, R::kAllReplicasScheduled,
                           std::to_string(desired) + " of " + std::to_string(desired) + " replicas scheduled", gen),
                      now);
  const int minAvail = std::max(0, desired - maxU);
  if (st.readyReplicas >= minAvail)
    api::setCondition(st.conditions,
                      cond(kAvailable, true, R::kMinimumReplicasAvailable,
                           std::to_string(st.readyReplicas) + " of " + std::to_string(desired) + " replicas ready",
                           gen),
                      now);
  else
    api::setCondition(st.conditions,
                      cond(kAvailable, false, R::kMinimumReplicasUnavailable,
                           std::to_string(st.readyReplicas) + " of " + std::to_string(desired) +
                               " replicas ready, need " + std::to_string(minAvail),
                           gen),
                      now);
  const bool rollingOut = rolled > 0 || st.updatedReplicas < st.scheduledReplicas;
  const bool scaling = !plan.creates.empty() || scaledDown > 0 || inFlight > 0 || !plan.remove.empty() ||
                       st.readyReplicas < desired || int(active.size()) != desired;
  if (rollingOut)
    api::setCondition(st.conditions, cond(kProgressing, true, R::kRollingOut,
                                          std::to_string(st.updatedReplicas) + " of " + std::to_string(desired) +
                                              " replicas updated", gen), now);
  else if (scaling && !(plan.unschedulable && plan.creates.empty() && inFlight == 0 && plan.remove.empty() &&
                        st.readyReplicas == st.scheduledReplicas))
    api::setCondition(st.conditions, cond(kProgressing, true, R::kScaling,
                                          std::to_string(st.scheduledReplicas) + " scheduled, " +
                                              std::to_string(st.readyReplicas) + " ready of " +
                                              std::to_string(desired) + " desired", gen), now);
  else
    api::setCondition(st.conditions, cond(kProgressing, false, R::kRolloutComplete,
                                          plan.unschedulable ? "waiting for capacity" : "all replicas updated and ready",
                                          gen), now);
  if (plan.unschedulable)
    api::setCondition(st.conditions, cond(kDegraded, true, R::kInsufficientCapacity, insufficient, gen), now);
  else if (failed + repaired + held + plan.moving > 0) {
    std::string msg;
    if (failed + repaired > 0) msg = std::to_string(failed + repaired) + " replicas failed or on broken nodes or GPUs";
    if (plan.moving > 0)
      msg += (msg.empty() ? "" : "; ") + std::to_string(plan.moving) +
             " replicas on unhealthy GPUs waiting for their replacement";
    if (held > 0)
      msg += (msg.empty() ? "" : "; ") + std::to_string(held) + " repairs delayed by backoff until " +
             api::formatTime(*in.repairHoldUntil);
    api::setCondition(st.conditions, cond(kDegraded, true, R::kReplicasUnhealthy, msg, gen), now);
  }
  else
    api::setCondition(st.conditions, cond(kDegraded, false, R::kReplicasHealthy, "", gen), now);

  // CacheReady (spec.cache): whether the router can use the cache as configured.
  if (d.spec.cache) {
    const auto* before = api::findCondition(d.status.conditions, kCacheReady);
    if (in.embeddingsDeploymentMissing) {
      const std::string ref = d.spec.cache->embeddingsDeploymentRef ? d.spec.cache->embeddingsDeploymentRef->name : "";
      const std::string msg = "spec.cache.embeddingsDeploymentRef names ModelDeployment " + d.metadata.namespace_ +
                              "/" + ref + ", which does not exist; the routers answer exact repeats only";
      api::setCondition(st.conditions, cond(kCacheReady, false, R::kEmbeddingsDeploymentNotFound, msg, gen), now);
      if (!before || before->status != api::ConditionStatus::False || before->reason != R::kEmbeddingsDeploymentNotFound)
        plan.events.push_back({"Warning", std::string(R::kEmbeddingsDeploymentNotFound), msg});
    } else {
      const std::string msg = d.spec.cache->mode == api::CacheMode::Semantic && d.spec.cache->embeddingsDeploymentRef
                                  ? "Semantic cache, embeddings from " + d.spec.cache->embeddingsDeploymentRef->name
                                  : "Exact cache";
      api::setCondition(st.conditions, cond(kCacheReady, true, R::kCacheConfigured, msg, gen), now);
    }
  } else {
    api::removeCondition(st.conditions, kCacheReady);
  }

  if (!plan.creates.empty() || scaledDown > 0) {
    plan.events.push_back({"Normal", "Scaled",
                           "scaling to " + std::to_string(desired) + " replicas: creating " +
                               std::to_string(plan.creates.size()) + ", draining " + std::to_string(scaledDown)});
  }
  if (rolled > 0)
    plan.events.push_back({"Normal", "RollingOut",
                           "replacing " + std::to_string(rolled) + " worker(s) of an older template"});
  if (plan.unschedulable)
    plan.events.push_back({"Warning", std::string(insufficientReason), insufficient});
  return plan;
}

namespace {
// At most `max` bytes, cut on a UTF-8 boundary, with "..." when cut.
std::string bounded(const std::string& s, size_t max) {
  if (s.size() <= max) return s;
  size_t n = max;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  return s.substr(0, n) + "...";
}
}  // namespace

void recordCreateFailures(DeploymentPlan& plan, const api::ModelDeployment& d,
                          const std::vector<CreateFailure>& failures, SystemTime now) {
  if (failures.empty()) return;
  api::ModelDeploymentStatus& st = plan.status;
  const int64_t gen = d.metadata.generation;
  std::set<std::string> failed;
  for (const auto& f : failures) failed.insert(f.pod);
  int n = 0;
  for (const auto& c : plan.creates) {
    if (!failed.count(c.name)) continue;
    ++n;
    for (auto& pl : st.placements)
      if (pl.pool == c.pool) --pl.replicas;
  }
  std::erase_if(st.placements, [](const api::DeploymentPlacement& pl) { return pl.replicas <= 0 && pl.readyReplicas <= 0; });
  st.replicas = std::max(0, st.replicas - n);
  st.scheduledReplicas = std::max(0, st.scheduledReplicas - n);
  st.updatedReplicas = std::max(0, st.updatedReplicas - n);

  if (auto* prog = api::findCondition(st.conditions, api::conditions::kProgressing);
      prog && prog->reason == api::reasons::kScaling)
    prog->message = std::to_string(st.scheduledReplicas) + " scheduled, " + std::to_string(st.readyReplicas) +
                    " ready of " + std::to_string(st.desiredReplicas) + " desired";

  // The plan set Scheduled (and Degraded) as if every create succeeded: start again from
  // the conditions the object had, so that a failure that repeats keeps its transition
  // time and writes nothing new.
  for (auto type : {api::conditions::kScheduled, api::conditions::kDegraded}) {
    std::erase_if(st.conditions, [&](const api::Condition& c) { return c.type == type; });
    if (const auto* before = api::findCondition(d.status.conditions, type)) st.conditions.push_back(*before);
  }
  const std::string msg = std::to_string(n) + " of " + std::to_string(plan.creates.size()) +
                          " worker creates failed; " + failures.front().pod + ": " +
                          bounded(failures.front().message, kMaxFailureMessage);
  const std::string reason(api::reasons::kWorkerCreateFailed);
  api::setCondition(st.conditions, cond(api::conditions::kScheduled, false, reason, msg, gen), now);
  api::setCondition(st.conditions, cond(api::conditions::kDegraded, true, reason, msg, gen), now);
  // Keep the condition order of the object (stable status writes).
  std::vector<api::Condition> ordered;
  for (const auto& c : d.status.conditions)
    if (const auto* x = api::findCondition(st.conditions, c.type)) ordered.push_back(*x);
  for (const auto& c : st.conditions)
    if (!api::findCondition(ordered, c.type)) ordered.push_back(c);
  st.conditions = std::move(ordered);

  std::erase_if(plan.events, [](const PlannedEvent& e) { return e.reason == "Scaled"; });
  plan.events.push_back({"Warning", reason, msg});
}

}  // namespace waterline::planners
