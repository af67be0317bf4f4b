#include "waterline/planners/reclaim.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <optional>
#include <tuple>

#include "waterline/planners/deployment.h"

namespace waterline::planners {

bool ReclaimPlan::pending() const {
  for (const auto& p : pools)
    if (p.fittingUnits + p.freedUnits < p.missingUnits) return true;
  return false;
}

namespace {

struct Candidate {
  const WorkerPod* pod = nullptr;
  std::string deployment;
  int32_t priority = 0;
  bool orphan = false;
};

bool before(const Candidate& a, const Candidate& b) {
  if (a.orphan != b.orphan) return a.orphan;
  if (a.priority != b.priority) return a.priority < b.priority;
  if (a.pod->ready != b.pod->ready) return !a.pod->ready;
  const auto at = a.pod->created.value_or(SystemTime::max()), bt = b.pod->created.value_or(SystemTime::max());
  if (at != bt) return at > bt;  // newest first
  return a.pod->key() < b.pod->key();
}

// GPUs of a node the deployment could use now: healthy, idle, unreserved or its own.
int availableOn(const scheduling::Inventory& inv, scheduling::NodeId n, scheduling::DeploymentId d) {
  const auto& ns = inv.node(n);
  if (!ns.schedulable()) return 0;
  int a = 0;
  for (const auto& g : ns.gpus)
    if (g.healthy && g.idle() && (g.reserved_for == scheduling::kNone || (d != scheduling::kNone && g.reserved_for == d)))
      ++a;
  return a;
}

}  // namespace

ReclaimPlan planReclaim(const ReclaimInput& in) {
  ReclaimPlan plan;
  if (!in.snapshot) return plan;
  const auto& base = in.snapshot->inventory;

  // Unavailable workers per deployment (any pool): live but not Ready, or being deleted.
  std::map<std::string, int32_t> unavailable;
  for (const auto& p : in.pods) {
    if (p.terminal()) continue;
    if (p.deleting || !p.ready) ++unavailable[p.ns + "/" + p.deployment];
  }
  std::map<std::string, int32_t> budget;
  auto budgetOf = [&](const std::string& key) -> int32_t& {
    auto it = budget.find(key);
    if (it != budget.end()) return it->second;
    int32_t b = INT32_MAX;  // orphans: no deployment to protect
    if (auto d = in.deployments.find(key); d != in.deployments.end())
      b = maxUnavailable(d->second, desiredReplicas(d->second)) - unavailable[key];
    return budget[key] = b;
  };
  // Reserved replicas per (pool, deployment): other deployments' holds protect their own
  // oldest workers in the pool.
  std::map<std::pair<std::string, std::string>, int32_t> protectedReplicas;
  for (const auto& h : in.holds) protectedReplicas[{h.pool, h.deployment}] += h.replicas;

  std::optional<scheduling::Inventory> sim;
  for (const auto& sf : in.snapshot->holds) {
    if (sf.deployment != in.deployment || sf.missingGpus() <= 0) continue;
    const scheduling::PoolId pid = base.findPool(sf.pool);
    if (pid == scheduling::kNone) continue;
    if (!sim) sim = base;
    const scheduling::DeploymentId did = sim->findDeployment(sf.deployment);
    PoolReclaim pr;
    pr.pool = sf.pool;
    const bool whole = sf.gpusPerReplica >= 1 - 1e-9;
    pr.gpusPerUnit = whole ? std::max(1, int32_t(std::lround(sf.gpusPerReplica))) : 1;
    pr.missingUnits = whole ? sf.missingReplicas : sf.needGpus;
    const int c = pr.gpusPerUnit;

    std::vector<scheduling::NodeId> nodes;
    for (scheduling::ClassId cl : sim->pool(pid).classes)
      for (scheduling::NodeId n : sim->nodeClass(cl).members) nodes.push_back(n);
    std::sort(nodes.begin(), nodes.end(),
              [&](auto a, auto b) { return sim->node(a).spec.name < sim->node(b).spec.name; });
    auto inPool = [&](const WorkerPod& p) {
      const auto* w = sim->worker(p.key());
      return w && w->live && w->node != scheduling::kNone && sim->node(w->node).pool == pid;
    };
    // Deletions in flight free their GPUs soon: count them as free.
    for (const auto& p : in.pods)
      if (p.deleting && !p.terminal() && inPool(p)) sim->forget(p.key());
    // Units placed per node by this plan (so a node's GPUs are not counted twice).
    std::map<scheduling::NodeId, int> usedUnits;
    auto fitsOn = [&](scheduling::NodeId n) { return availableOn(*sim, n, did) / c - usedUnits[n]; };
    for (auto n : nodes) {
      while (pr.fittingUnits < pr.missingUnits && fitsOn(n) > 0) {
        ++usedUnits[n];
        ++pr.fittingUnits;
      }
    }

    // Candidates per node: other deployments' live, unreserved workers in the pool.
    std::map<std::string, std::vector<const WorkerPod*>> byDeployment;
    for (const auto& p : in.pods) {
      if (p.deleting || p.terminal() || p.assignment.empty()) continue;
      const std::string key = p.ns + "/" + p.deployment;
      if (key == in.deployment || !inPool(p)) continue;
      byDeployment[key].push_back(&p);
    }
    std::map<scheduling::NodeId, std::vector<Candidate>> byNode;
    for (auto& [key, pods] : byDeployment) {
      std::sort(pods.begin(), pods.end(), [](const WorkerPod* a, const WorkerPod* b) {
        const auto at = a->created.value_or(SystemTime::max()), bt = b->created.value_or(SystemTime::max());
        if (at != bt) return at < bt;
        return a->name < b->name;
      });
      size_t keep = 0;
      if (auto it = protectedReplicas.find({sf.pool, key}); it != protectedReplicas.end())
        keep = size_t(std::max(0, it->second));
      auto d = in.deployments.find(key);
      for (size_t i = keep; i < pods.size(); ++i)
        byNode[sim->worker(pods[i]->key())->node].push_back(
            {pods[i], key, d == in.deployments.end() ? INT32_MIN : d->second.spec.priority, d == in.deployments.end()});
    }
    for (auto& [_, v] : byNode) std::sort(v.begin(), v.end(), before);

    while (pr.fittingUnits + pr.freedUnits < pr.missingUnits) {
      // The cheapest node to fit one more unit on. A node where that needs more evictions
      // than the disruption budgets allow now is a partial choice: only when no node fits
      // within the budgets, its allowed evictions go ahead (progress; the rest next pass).
      struct Choice {
        scheduling::NodeId node = scheduling::kNone;
        std::vector<size_t> allowed;  // indexes into byNode[node], within budgets
        int blocked = 0;              // needed but over budget
        std::tuple<int64_t, size_t, std::string> cost;
      };
      std::optional<Choice> best, bestPartial;
      // The lowest priority any feasible node needs to evict, budgets aside: a node that
      // needs higher-priority victims is never taken while one of lower priority waits
      // for its deployment's disruption budget (waiting beats escalating).
      int64_t lowestPriority = INT64_MAX;
      bool lowestBlocked = false;
      for (auto& [n, cands] : byNode) {
        std::vector<scheduling::WorkerRecord> undo;
        std::map<std::string, int32_t> spent;
        Choice ch;
        ch.node = n;
        int64_t maxPriority = INT64_MIN;
        size_t needed = 0;
        for (size_t i = 0; i < cands.size() && fitsOn(n) <= 0; ++i) {
          const auto& cd = cands[i];
          if (!cd.pod || !sim->worker(cd.pod->key())) continue;  // taken already
          undo.push_back(*sim->worker(cd.pod->key()));
          sim->forget(cd.pod->key());
          ++needed;
          maxPriority = std::max<int64_t>(maxPriority, cd.orphan ? INT64_MIN : cd.priority);
          if (budgetOf(cd.deployment) - spent[cd.deployment] <= 0) {
            ++ch.blocked;
            continue;
          }
          ++spent[cd.deployment];
          ch.allowed.push_back(i);
        }
        const bool feasible = fitsOn(n) > 0 && needed > 0;
        for (auto it = undo.rbegin(); it != undo.rend(); ++it)
          (void)sim->assume(it->request, it->assignment);  // back as it was
        if (!feasible) continue;
        ch.cost = {maxPriority, needed, sim->node(n).spec.name};
        if (maxPriority < lowestPriority) {
          lowestPriority = maxPriority;
          lowestBlocked = ch.blocked > 0;
        } else if (maxPriority == lowestPriority) {
          lowestBlocked = lowestBlocked && ch.blocked > 0;
        }
        auto& slot = ch.blocked == 0 ? best : bestPartial;
        if (ch.blocked > 0 && ch.allowed.empty()) {
          pr.blocked = std::max(pr.blocked, ch.blocked);
          continue;
        }
        if (!slot || ch.cost < slot->cost) slot = std::move(ch);
      }
      // Only choices at the lowest priority count; when all of those are over budget with
      // nothing allowed, wait (the next pass sees the budgets freed).
      if (best && std::get<0>(best->cost) > lowestPriority) best.reset();
      if (bestPartial && std::get<0>(bestPartial->cost) > lowestPriority) bestPartial.reset();
      if (!best && !bestPartial && lowestBlocked) {
        pr.blocked = std::max(pr.blocked, 1);
        break;
      }
      const bool partial = !best;
      if (partial && !bestPartial) break;
      Choice& pick = partial ? *bestPartial : *best;
      auto& cands = byNode[pick.node];
      for (size_t i : pick.allowed) {
        const auto& cd = cands[i];
        sim->forget(cd.pod->key());
        --budgetOf(cd.deployment);
        plan.evictions.push_back({cd.pod->ns, cd.pod->name, cd.pod->uid, cd.deployment, sf.pool,
                                  sim->node(pick.node).spec.name, cd.priority});
        cands[i].pod = nullptr;
      }
      if (partial) {
        pr.blocked = std::max(pr.blocked, pick.blocked);
        break;
      }
      ++usedUnits[pick.node];
      ++pr.freedUnits;
    }
    plan.pools.push_back(pr);
  }
  std::sort(plan.pools.begin(), plan.pools.end(), [](const auto& a, const auto& b) { return a.pool < b.pool; });
  return plan;
}

}  // namespace waterline::planners
