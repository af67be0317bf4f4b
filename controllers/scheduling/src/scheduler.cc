#include "waterline/scheduling/scheduler.h"

#include <algorithm>
#include <bit>
#include <map>

#include "waterline/scheduling/plugins.h"

namespace waterline::scheduling {

Scheduler::Scheduler(Inventory& inventory, Profile profile)
    : inv_(inventory), profile_(std::move(profile)) {
  if (profile_.max_feasible_per_bucket == 0) profile_.max_feasible_per_bucket = 1;
}

std::optional<std::string> Scheduler::validate(const Request& r) const {
  switch (r.shape.kind) {
    case ShapeKind::Whole:
      if (r.shape.count < 1 || r.shape.count > 64) return "GPU count must be at least 1";
      break;
    case ShapeKind::Mig:
      if (r.shape.mig_profile.empty()) return "MIG profile is empty";
      break;
    case ShapeKind::Share:
      if (r.shape.shares_per_gpu < 1 || r.shape.shares_per_gpu > 64) return "sharesPerGpu must be 1..64";
      if (r.shape.memory_mib < 0) return "memory bound must not be negative";
      break;
  }
  if (r.type == DeploymentType::Standard && r.region.empty()) return "Standard deployment without region";
  if (r.type == DeploymentType::DataZone && r.zone.empty()) return "DataZone deployment without zone";
  return std::nullopt;
}

void Scheduler::eligibleClasses(const Request& r, std::vector<Eligible>& out) const {
  out.clear();
  for (ClassId c = 0; c < inv_.classCount(); ++c) {
    const NodeClass& cl = inv_.nodeClass(c);
    if (cl.pool == kNone || cl.members.empty()) continue;
    const ClassInfo info{inv_, c, cl, inv_.pool(cl.pool).spec};
    bool ok = true;
    for (const auto& f : profile_.filters) {
      if (!f->filterClass(r, info)) {
        ok = false;
        break;
      }
    }
    if (!ok) continue;
    auto shape = inv_.resolve(c, r.shape);
    if (!shape) continue;
    out.push_back(Eligible{c, *shape});
  }
}

bool Scheduler::nodeFeasible(const Request& r, NodeId n, const ResolvedShape& s,
                             GpuScope scope) const {
  for (const auto& f : profile_.filters) {
    if (!f->filterNode(r, inv_, n, s, scope)) return false;
  }
  return true;
}

std::int64_t Scheduler::packingScore(const Request& r, const PoolState& p, const std::string& product,
                                     const ResourceSummary& s, const ResolvedShape& shape) const {
  const PackingInput in{p.spec, s, shape.units, shape.kind, product, p.used_units, p.capacity_units};
  std::int64_t total = 0;
  for (const auto& w : profile_.packing) total += w.weight * w.plugin->score(r, in);
  return total;
}

std::int64_t Scheduler::tieBreak(const Request& r, std::uint32_t node_reps,
                                 std::uint32_t pool_reps) const {
  const SpreadInput in{node_reps, pool_reps};
  std::int64_t total = 0;
  for (const auto& w : profile_.tie_breaks) total += w.weight * w.plugin->score(r, in);
  return total;
}

bool Scheduler::better(const Candidate& a, const Candidate& b) const {
  if (a.score != b.score) return a.score > b.score;
  if (a.tie != b.tie) return a.tie > b.tie;
  return inv_.node(a.node).spec.name < inv_.node(b.node).spec.name;
}

std::optional<Scheduler::Candidate> Scheduler::searchReserved(const Request& r, DeploymentId d) {
  auto it = inv_.reserved_nodes_.find(d);
  if (it == inv_.reserved_nodes_.end()) return std::nullopt;
  std::optional<Candidate> best;
  const GpuScope scope{d};
  for (const auto& [n, count] : it->second) {
    const NodeState& ns = inv_.node(n);
    const Eligible* e = nullptr;
    for (const Eligible& el : eligible_) {
      if (el.cls == ns.cls) {
        e = &el;
        break;
      }
    }
    if (!e || !nodeFeasible(r, n, e->shape, scope)) continue;
    const ResourceSummary s = inv_.summarize(n, e->shape, scope);
    Candidate c;
    c.node = n;
    c.score = packingScore(r, inv_.pool(ns.pool), inv_.nodeClass(ns.cls).product, s, e->shape);
    c.tie = tieBreak(r, ns.replicasOf(d), inv_.pool(ns.pool).replicasOf(d));
    c.from_reservation = true;
    if (!best || better(c, *best)) best = c;
  }
  return best;
}

std::optional<Scheduler::Candidate> Scheduler::searchIndexed(const Request& r, DeploymentId d) {
  entries_.clear();
  for (std::uint32_t i = 0; i < eligible_.size(); ++i) {
    const Eligible& e = eligible_[i];
    const NodeClass& cl = inv_.nodeClass(e.cls);
    const ShapeIndex& si = cl.shapes[e.shape.shape_index];
    const PoolState& pool = inv_.pool(cl.pool);
    for (std::size_t w = 0; w < si.nonempty.size(); ++w) {
      std::uint64_t bits = si.nonempty[w];
      while (bits) {
        const int key = static_cast<int>(w * 64 + static_cast<std::size_t>(std::countr_zero(bits)));
        bits &= bits - 1;
        const ResourceSummary s = cl.decode(key);
        if (e.shape.kind == ShapeKind::Whole && s.capacity - s.used < e.shape.count) continue;
        entries_.push_back(Entry{packingScore(r, pool, cl.product, s, e.shape), i, key});
      }
    }
  }
  std::sort(entries_.begin(), entries_.end(), [](const Entry& a, const Entry& b) {
    if (a.score != b.score) return a.score > b.score;
    if (a.eligible != b.eligible) return a.eligible < b.eligible;
    return a.key < b.key;
  });
  const std::uint32_t limit = profile_.max_feasible_per_bucket;
  for (std::size_t g = 0; g < entries_.size();) {
    std::size_t h = g;
    while (h < entries_.size() && entries_[h].score == entries_[g].score) ++h;
    std::optional<Candidate> best;
    for (std::size_t k = g; k < h; ++k) {
      const Eligible& e = eligible_[entries_[k].eligible];
      const NodeClass& cl = inv_.nodeClass(e.cls);
      const detail::NodeSet& bucket = *cl.shapes[e.shape.shape_index].bucket(entries_[k].key);
      const std::uint32_t pool_reps = d == kNone ? 0 : inv_.pool(cl.pool).replicasOf(d);
      const std::int64_t max_tie = tieBreak(r, 0, pool_reps);
      std::optional<Candidate> bucket_best;
      std::uint32_t feasible = 0;
      for (std::uint32_t local = bucket.first(); local != detail::NodeSet::npos;
           local = bucket.findNext(local + 1)) {
        const NodeId n = cl.members[local];
        if (!nodeFeasible(r, n, e.shape, GpuScope{})) continue;
        const std::uint32_t node_reps = d == kNone ? 0 : inv_.node(n).replicasOf(d);
        const std::int64_t tie = node_reps == 0 ? max_tie : tieBreak(r, node_reps, pool_reps);
        if (!bucket_best || tie > bucket_best->tie) {
          bucket_best = Candidate{n, entries_[k].score, tie, false};
        }
        if (tie >= max_tie || ++feasible >= limit) break;
      }
      if (bucket_best && (!best || better(*bucket_best, *best))) best = bucket_best;
    }
    if (best) return best;
    g = h;
  }
  return std::nullopt;
}

std::expected<Decision, Unschedulable> Scheduler::finish(const Request& r, const Candidate& c) {
  const NodeState& ns = inv_.node(c.node);
  const Eligible* e = nullptr;
  for (const Eligible& el : eligible_) {
    if (el.cls == ns.cls) e = &el;
  }
  const GpuScope scope{c.from_reservation ? inv_.findDeployment(r.deployment) : kNone};
  std::optional<Assignment> a = e ? inv_.allocateOnNode(c.node, e->shape, scope) : std::nullopt;
  if (!a) {  // cannot happen: the node passed ResourceFit
    Unschedulable u;
    u.reason = "InternalError";
    u.message = "node " + ns.spec.name + " passed filters but allocation failed";
    return std::unexpected(std::move(u));
  }
  Decision d;
  d.assignment = std::move(*a);
  d.pool = inv_.pool(ns.pool).spec.name;
  d.from_reservation = c.from_reservation;
  d.score = c.score;
  d.tie_break = c.tie;
  return d;
}

std::expected<Decision, Unschedulable> Scheduler::schedule(const Request& r) {
  inv_.prepare();
  if (auto err = validate(r)) {
    Unschedulable u;
    u.reason = "InvalidRequest";
    u.message = "invalid request: " + *err;
    return std::unexpected(std::move(u));
  }
  eligibleClasses(r, eligible_);
  if (eligible_.empty()) return std::unexpected(diagnose(r, 1));
  const DeploymentId d = inv_.findDeployment(r.deployment);
  std::optional<Candidate> reserved;
  if (d != kNone) reserved = searchReserved(r, d);
  if (reserved && profile_.prefer_reserved) return finish(r, *reserved);
  std::optional<Candidate> general = searchIndexed(r, d);
  if (reserved && (!general || better(*reserved, *general))) return finish(r, *reserved);
  if (general) return finish(r, *general);
  return std::unexpected(diagnose(r, 1));
}

std::expected<Decision, Unschedulable> Scheduler::scheduleExhaustive(const Request& r) {
  inv_.prepare();
  if (auto err = validate(r)) {
    Unschedulable u;
    u.reason = "InvalidRequest";
    u.message = "invalid request: " + *err;
    return std::unexpected(std::move(u));
  }
  eligibleClasses(r, eligible_);
  if (eligible_.empty()) return std::unexpected(diagnose(r, 1));
  const DeploymentId d = inv_.findDeployment(r.deployment);
  std::optional<Candidate> reserved;
  if (d != kNone) reserved = searchReserved(r, d);
  if (reserved && profile_.prefer_reserved) return finish(r, *reserved);
  std::optional<Candidate> best;
  for (const Eligible& e : eligible_) {
    const NodeClass& cl = inv_.nodeClass(e.cls);
    const PoolState& ps = inv_.pool(cl.pool);
    for (NodeId n : cl.members) {
      if (!nodeFeasible(r, n, e.shape, GpuScope{})) continue;
      const ResourceSummary s = inv_.summarize(n, e.shape, GpuScope{});
      Candidate c;
      c.node = n;
      c.score = packingScore(r, ps, cl.product, s, e.shape);
      c.tie = tieBreak(r, d == kNone ? 0 : inv_.node(n).replicasOf(d), d == kNone ? 0 : ps.replicasOf(d));
      if (!best || better(c, *best)) best = c;
    }
  }
  if (reserved && (!best || better(*reserved, *best))) return finish(r, *reserved);
  if (best) return finish(r, *best);
  return std::unexpected(diagnose(r, 1));
}

std::expected<void, std::string> Scheduler::reserve(const Request& r, const Decision& d) {
  if (auto ok = inv_.assume(r, d.assignment); !ok) {
    return std::unexpected(std::string(toString(ok.error().kind)) + ": " + ok.error().message);
  }
  for (std::size_t i = 0; i < profile_.reserve.size(); ++i) {
    if (auto ok = profile_.reserve[i]->reserve(r, d); !ok) {
      for (std::size_t j = i; j-- > 0;) profile_.reserve[j]->unreserve(r, d);
      inv_.forget(r.worker);
      return std::unexpected(std::string(profile_.reserve[i]->name()) + ": " + ok.error());
    }
  }
  return {};
}

void Scheduler::unreserve(const Request& r, const Decision& d) {
  for (std::size_t j = profile_.reserve.size(); j-- > 0;) profile_.reserve[j]->unreserve(r, d);
  inv_.forget(r.worker);
}

std::expected<Decision, Unschedulable> Scheduler::place(const Request& r) {
  auto d = schedule(r);
  if (!d) return d;
  if (auto ok = reserve(r, *d); !ok) {
    Unschedulable u;
    u.reason = "ReserveFailed";
    u.message = ok.error();
    return std::unexpected(std::move(u));
  }
  return d;
}

Unschedulable Scheduler::explain(const Request& r, std::int64_t replicas) {
  inv_.prepare();
  if (auto err = validate(r)) {
    Unschedulable u;
    u.reason = "InvalidRequest";
    u.message = "invalid request: " + *err;
    return u;
  }
  return diagnose(r, replicas);
}

namespace {

std::string unitText(const GpuShape& s, std::int64_t n) {
  switch (s.kind) {
    case ShapeKind::Whole: return n == 1 ? "GPU" : "GPUs";
    case ShapeKind::Mig: return "MIG " + s.mig_profile + (n == 1 ? " instance" : " instances");
    case ShapeKind::Share:
      return "1/" + std::to_string(s.shares_per_gpu) + (n == 1 ? " GPU share" : " GPU shares");
  }
  return {};
}

}  // namespace

Unschedulable Scheduler::diagnose(const Request& r, std::int64_t replicas) {
  Unschedulable u;
  u.requested_workers = replicas;
  const std::int64_t per_worker = r.shape.kind == ShapeKind::Whole ? r.shape.count : 1;
  bool any_eligible = false;
  for (PoolId p : inv_.poolsByName()) {
    const PoolState& ps = inv_.pool(p);
    PoolDiagnosis pd;
    pd.pool = ps.spec.name;
    pd.location_ok = poolMatchesLocation(r, ps.spec);
    std::vector<std::string> reasons;
    for (ClassId c : ps.classes) {
      const NodeClass& cl = inv_.nodeClass(c);
      if (cl.members.empty()) continue;
      const ClassInfo info{inv_, c, cl, ps.spec};
      const FilterPlugin* failed = nullptr;
      for (const auto& f : profile_.filters) {
        if (!f->filterClass(r, info)) {
          failed = f.get();
          break;
        }
      }
      std::optional<ResolvedShape> shape;
      if (!failed) shape = inv_.resolve(c, r.shape);
      if (failed || !shape) {
        reasons.push_back(failed ? failed->explainClass(r, info)
                                 : std::string("sharing mode cannot serve ") + r.shape.describe());
        continue;
      }
      pd.eligible = true;
      for (NodeId n : cl.members) pd.unschedulable_nodes += inv_.node(n).schedulable() ? 0 : 1;
      const ShapeIndex& si = cl.shapes[shape->shape_index];
      for (std::size_t w = 0; w < si.nonempty.size(); ++w) {
        std::uint64_t bits = si.nonempty[w];
        while (bits) {
          const int key = static_cast<int>(w * 64 + static_cast<std::size_t>(std::countr_zero(bits)));
          bits &= bits - 1;
          const detail::NodeSet& b = *si.bucket(key);
          if (shape->kind != ShapeKind::Whole) {
            for (std::uint32_t l = b.first(); l != detail::NodeSet::npos; l = b.findNext(l + 1)) {
              const std::int64_t f = inv_.fittingWorkers(cl.members[l], *shape, GpuScope{});
              pd.free_units += f;
              pd.fitting_workers += f;
              pd.largest_block = std::max(pd.largest_block, f);
            }
          } else {
            const ResourceSummary s = cl.decode(key);
            const std::int64_t free = s.capacity - s.used;
            const std::int64_t cnt = b.size();
            pd.free_units += cnt * free;
            pd.largest_block = std::max(pd.largest_block, free);
            pd.fitting_workers += cnt * (free / shape->count);
          }
        }
      }
    }
    if (!pd.eligible) {
      std::sort(reasons.begin(), reasons.end());
      pd.reason = reasons.empty() ? std::string("no nodes") : reasons.front();
    }
    any_eligible |= pd.eligible;
    u.fitting_workers += pd.fitting_workers;
    u.pools.push_back(std::move(pd));
  }
  const std::int64_t missing_workers = std::max<std::int64_t>(0, replicas - u.fitting_workers);
  u.missing_units = missing_workers * per_worker;
  u.unit = unitText(r.shape, u.missing_units);
  const std::string product = r.product.empty() ? std::string() : r.product + " ";
  std::string msg;
  if (!any_eligible) {
    u.reason = "NoEligiblePool";
    msg = "no pool can serve " + r.shape.describe() + " " + (r.product.empty() ? "" : "of " + r.product + " ") +
          locationText(r);
    std::string sep = ": ";
    int shown = 0;
    for (const auto& pd : u.pools) {
      if (!pd.location_ok) continue;
      if (shown++ == 6) {
        msg += "; ...";
        break;
      }
      msg += sep + "pool " + pd.pool + " " + pd.reason;
      sep = "; ";
    }
  } else {
    u.reason = "InsufficientCapacity";
    const std::int64_t missing = u.missing_units > 0 ? u.missing_units : per_worker;
    msg = "need " + std::to_string(missing) + " more " + product + unitText(r.shape, missing);
    if (r.shape.kind == ShapeKind::Whole && r.shape.count > 1) {
      msg += " (" + std::to_string(r.shape.count) + " on one node)";
    }
    msg += " " + locationText(r);
    if (u.missing_units == 0) msg += " (capacity exists but every candidate node was filtered)";
    std::string sep = "; ";
    int shown = 0;
    for (const auto& pd : u.pools) {
      if (!pd.location_ok) continue;
      if (shown++ == 8) {
        msg += "; ...";
        break;
      }
      if (pd.eligible) {
        msg += sep + "pool " + pd.pool + " has " + std::to_string(pd.free_units) + " free";
        if (r.shape.kind == ShapeKind::Whole && pd.free_units > 0) {
          msg += " (largest node block " + std::to_string(pd.largest_block) + ")";
        }
        if (pd.unschedulable_nodes > 0) {
          msg += " (" + std::to_string(pd.unschedulable_nodes) + " nodes not ready or cordoned)";
        }
      } else {
        msg += sep + "pool " + pd.pool + " excluded: " + pd.reason;
      }
    }
  }
  u.message = std::move(msg);
  return u;
}

std::optional<MovePlan> Scheduler::planMoves(const Request& r, int max_moves) {
  if (validate(r) || r.shape.kind == ShapeKind::Whole || max_moves < 1) return std::nullopt;
  inv_.prepare();
  if (auto d = schedule(r)) return MovePlan{d->assignment, {}};
  eligibleClasses(r, eligible_);
  const std::vector<Eligible> elig = eligible_;
  const DeploymentId dep = inv_.findDeployment(r.deployment);

  struct Cand {
    int moves;
    NodeId node;
    int gpu;
    std::vector<int> slots;  // MIG: {start}; shares: the slices the target takes
    std::vector<WorkerId> blockers;
  };
  std::vector<Cand> cands;
  for (const Eligible& e : elig) {
    const NodeClass& cl = inv_.nodeClass(e.cls);
    for (NodeId n : cl.members) {
      const NodeState& ns = inv_.node(n);
      if (!ns.schedulable()) continue;
      for (int gi = 0; gi < static_cast<int>(ns.gpus.size()); ++gi) {
        const GpuState& g = ns.gpus[gi];
        if (!inv_.usable(g, GpuScope{}) && !(dep != kNone && inv_.usable(g, GpuScope{dep}))) continue;
        if (e.shape.kind == ShapeKind::Mig) {
          if (g.whole_owner != kNone || g.share_mask != 0 || !cl.mig) continue;
          const int p = e.shape.mig_profile;
          const MigProfile& prof = cl.mig->profiles[p];
          for (int st = 0; st < cl.mig->memory_slices; ++st) {
            if (!(prof.starts & (1u << st))) continue;
            const std::uint8_t mask = cl.mig->placementMask(p, st);
            std::vector<WorkerId> blockers;
            for (const auto& mi : g.mig_instances) {
              const bool overlap = (cl.mig->placementMask(mi.profile, mi.slot) & mask) != 0;
              const bool media = prof.media_extensions && cl.mig->profiles[mi.profile].media_extensions;
              if (overlap || media) blockers.push_back(mi.worker);
            }
            if (blockers.empty() || static_cast<int>(blockers.size()) > max_moves) continue;
            cands.push_back(Cand{static_cast<int>(blockers.size()), n, gi, {st}, std::move(blockers)});
          }
        } else {
          if (g.whole_owner != kNone || g.mig != 0) continue;
          const int free = cl.units_per_gpu - std::popcount(g.share_mask);
          if (free >= e.shape.slots) continue;
          // Workers on the GPU with their slices, biggest first, then by slice.
          std::map<WorkerId, std::uint64_t> held;
          for (const auto& sh : g.shares) held[sh.worker] |= std::uint64_t{1} << sh.slot;
          std::vector<std::pair<WorkerId, std::uint64_t>> ws(held.begin(), held.end());
          std::sort(ws.begin(), ws.end(), [](const auto& a, const auto& b) {
            const int ca = std::popcount(a.second), cb = std::popcount(b.second);
            if (ca != cb) return ca > cb;
            return std::countr_zero(a.second) < std::countr_zero(b.second);
          });
          auto take = [&](std::uint64_t freed) {
            std::vector<int> slots;
            std::uint64_t avail = ~g.share_mask | freed;
            for (int i = 0; i < e.shape.slots; ++i) {
              slots.push_back(std::countr_zero(avail));
              avail &= avail - 1;
            }
            return slots;
          };
          // One blocker that frees enough on its own...
          for (const auto& [w, m] : ws) {
            if (free + std::popcount(m) >= e.shape.slots) cands.push_back(Cand{1, n, gi, take(m), {w}});
          }
          // ... or the fewest, biggest first.
          std::uint64_t freed = 0;
          std::vector<WorkerId> bl;
          for (const auto& [w, m] : ws) {
            if (free + std::popcount(freed) >= e.shape.slots) break;
            freed |= m;
            bl.push_back(w);
          }
          if (bl.size() > 1 && static_cast<int>(bl.size()) <= max_moves &&
              free + std::popcount(freed) >= e.shape.slots) {
            cands.push_back(Cand{static_cast<int>(bl.size()), n, gi, take(freed), bl});
          }
        }
      }
    }
  }
  std::sort(cands.begin(), cands.end(), [&](const Cand& a, const Cand& b) {
    if (a.moves != b.moves) return a.moves < b.moves;
    const auto& na = inv_.node(a.node).spec.name;
    const auto& nb = inv_.node(b.node).spec.name;
    if (na != nb) return na < nb;
    if (a.gpu != b.gpu) return a.gpu < b.gpu;
    return a.slots < b.slots;
  });
  // Workers of one deployment with the same shape are interchangeable as blockers: try
  // a few candidates per blocker signature, not thousands.
  std::map<std::vector<std::pair<DeploymentId, std::string>>, int> tried;
  int attempts = 0;
  Request target_req = r;
  target_req.worker = "\x01waterline-plan-target";  // never a pod name
  for (const Cand& c : cands) {
    std::vector<std::pair<DeploymentId, std::string>> sig;
    for (WorkerId w : c.blockers) {
      const WorkerRecord& wr = inv_.workerRecord(w);
      sig.emplace_back(wr.deployment, wr.request.shape.describe());
    }
    std::sort(sig.begin(), sig.end());
    if (++tried[sig] > 4) continue;
    if (attempts++ >= profile_.max_move_attempts) break;

    std::vector<std::pair<Request, Assignment>> saved;
    for (WorkerId w : c.blockers) {
      const WorkerRecord& wr = inv_.workerRecord(w);
      saved.emplace_back(wr.request, wr.assignment);
    }
    for (const auto& [req, a] : saved) inv_.forget(req.worker);
    const NodeState& ns = inv_.node(c.node);
    const NodeClass& cl = inv_.nodeClass(ns.cls);
    Assignment target;
    target.node = ns.spec.name;
    target.kind = r.shape.kind;
    target.gpus = {c.gpu};
    for (const Eligible& e : elig) {
      if (e.cls != ns.cls) continue;
      if (r.shape.kind == ShapeKind::Mig) {
        target.mig_profile = cl.mig->profiles[e.shape.mig_profile].name;
        target.mig_slot = c.slots[0];
      } else {
        target.share_slots = c.slots;
        target.shares_per_gpu = cl.units_per_gpu;
        target.memory_mib = e.shape.memory_mib;
      }
    }
    bool ok = inv_.assume(target_req, target).has_value();
    const bool target_placed = ok;
    std::vector<Move> moves;
    std::vector<std::string> placed;
    if (ok) {
      std::vector<std::size_t> order(saved.size());
      for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
      // Re-place the largest blockers first, then by name.
      auto units = [&](std::size_t i) {
        const Assignment& a = saved[i].second;
        if (a.kind == ShapeKind::Share) return static_cast<int>(a.share_slots.size());
        if (a.kind != ShapeKind::Mig || !cl.mig) return 1;
        const int p = cl.mig->profileIndex(a.mig_profile);
        return p < 0 ? 1 : cl.mig->profiles[p].memory_slices;
      };
      std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
        if (units(a) != units(b)) return units(a) > units(b);
        return saved[a].first.worker < saved[b].first.worker;
      });
      for (std::size_t i : order) {
        const auto& [req, from] = saved[i];
        auto d = schedule(req);
        if (!d || !inv_.assume(req, d->assignment)) {
          ok = false;
          break;
        }
        placed.push_back(req.worker);
        moves.push_back(Move{req.worker, from, d->assignment});
      }
    }
    for (const auto& w : placed) inv_.forget(w);
    if (target_placed) inv_.forget(target_req.worker);
    for (const auto& [req, a] : saved) (void)inv_.assume(req, a);
    if (ok) {
      std::sort(moves.begin(), moves.end(),
                [](const Move& a, const Move& b) { return a.worker < b.worker; });
      return MovePlan{std::move(target), std::move(moves)};
    }
  }
  return std::nullopt;
}

}  // namespace waterline::scheduling
