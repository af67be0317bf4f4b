#include "waterline/scheduling/analysis.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>
#include <map>
#include <optional>

namespace waterline::scheduling {

namespace {

bool isShared(SharingMode m) { return m == SharingMode::TimeSlicing || m == SharingMode::MPS; }

int gpuUnits(const NodeClass& cl, const GpuState& g) {
  switch (cl.mode) {
    case SharingMode::Exclusive: return g.idle() ? 0 : 1;
    case SharingMode::MIG:
      if (g.whole_owner != kNone || g.share_mask != 0) return cl.units_per_gpu;
      return std::popcount(static_cast<unsigned>(g.mig & 0xffu));
    case SharingMode::TimeSlicing:
    case SharingMode::MPS:
      if (g.whole_owner != kNone || g.mig != 0) return cl.units_per_gpu;
      return std::popcount(g.share_mask);
  }
  return 0;
}

}  // namespace

std::vector<std::string> selectVictims(const Inventory& inv, std::span<const std::string> workers,
                                       std::size_t count) {
  struct Cand {
    std::string name;
    NodeId node;
    std::vector<int> gpus;
    int units_per_gpu;  // units this worker takes on each of its GPUs
    bool broken;
    Strategy strategy;
  };
  struct SimNode {
    std::vector<int> gpu_used;
    int used = 0;
    int capacity = 0;
    int workers = 0;
  };
  std::vector<Cand> cands;
  std::map<NodeId, SimNode> sim;
  std::vector<std::string> names(workers.begin(), workers.end());
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  for (const std::string& w : names) {
    const WorkerRecord* r = inv.worker(w);
    if (!r) continue;
    const NodeState& ns = inv.node(r->node);
    Cand c{w, r->node, r->assignment.gpus, 1, !ns.schedulable(), Strategy::BinPack};
    if (ns.pool != kNone) c.strategy = inv.pool(ns.pool).spec.strategy;
    for (int g : c.gpus) c.broken |= !ns.gpus[g].healthy;
    if (ns.cls != kNone) {
      const NodeClass& cl = inv.nodeClass(ns.cls);
      if (r->assignment.kind == ShapeKind::Share) {
        c.units_per_gpu = static_cast<int>(r->assignment.share_slots.size());
      }
      if (r->assignment.kind == ShapeKind::Mig && cl.mig) {
        const int p = cl.mig->profileIndex(r->assignment.mig_profile);
        if (p >= 0) c.units_per_gpu = cl.mig->profiles[p].memory_slices;
      }
      if (!sim.count(r->node)) {
        SimNode s;
        for (const GpuState& g : ns.gpus) {
          const int u = gpuUnits(cl, g);
          s.gpu_used.push_back(u);
          s.used += u;
        }
        s.capacity = static_cast<int>(ns.gpus.size()) * cl.units_per_gpu;
        s.workers = static_cast<int>(ns.workers);
        sim.emplace(r->node, std::move(s));
      }
    } else if (!sim.count(r->node)) {
      SimNode s;
      s.gpu_used.assign(ns.gpus.size(), 1);
      s.used = static_cast<int>(ns.gpus.size());
      s.capacity = s.used;
      s.workers = static_cast<int>(ns.workers);
      sim.emplace(r->node, std::move(s));
    }
    cands.push_back(std::move(c));
  }
  std::vector<std::string> out;
  std::vector<bool> taken(cands.size(), false);
  while (out.size() < count) {
    std::optional<std::size_t> best;
    // Key of a candidate against the current simulated state.
    struct Key {
      bool broken;
      bool empties;
      int freed;
      long long util_num;  // compare as util_num / util_den
      long long util_den;
    };
    auto keyOf = [&](const Cand& c) {
      const SimNode& s = sim.at(c.node);
      Key k{c.broken, s.workers == 1, 0, 0, std::max(1, s.capacity)};
      int removed = 0;
      for (int g : c.gpus) {
        if (s.gpu_used[g] > 0 && s.gpu_used[g] - c.units_per_gpu <= 0) ++k.freed;
        removed += std::min(c.units_per_gpu, s.gpu_used[g]);
      }
      k.util_num = c.strategy == Strategy::Spread ? s.used : s.used - removed;
      return k;
    };
    Key bk{};
    for (std::size_t i = 0; i < cands.size(); ++i) {
      if (taken[i]) continue;
      const Key k = keyOf(cands[i]);
      bool win = !best;
      if (!win) {
        if (k.broken != bk.broken) {
          win = k.broken;
        } else if (k.empties != bk.empties) {
          win = k.empties;
        } else if (k.freed != bk.freed) {
          win = k.freed > bk.freed;
        } else {
          const long long a = k.util_num * bk.util_den, b = bk.util_num * k.util_den;
          if (a != b) {
            win = cands[i].strategy == Strategy::Spread ? a > b : a < b;
          } else {
            win = cands[i].name < cands[*best].name;
          }
        }
      }
      if (win) {
        best = i;
        bk = k;
      }
    }
    if (!best) break;
    taken[*best] = true;
    const Cand& c = cands[*best];
    SimNode& s = sim.at(c.node);
    for (int g : c.gpus) {
      const int rm = std::min(c.units_per_gpu, s.gpu_used[g]);
      s.gpu_used[g] -= rm;
      s.used -= rm;
    }
    --s.workers;
    out.push_back(c.name);
  }
  return out;
}

FragmentationReport fragmentation(const Inventory& inv, const Profile& profile,
                                  std::span<const Request> pending) {
  FragmentationReport rep;
  for (PoolId p : inv.poolsByName()) {
    const PoolState& ps = inv.pool(p);
    FragmentationReport::Pool pf;
    pf.pool = ps.spec.name;
    for (ClassId c : ps.classes) {
      const NodeClass& cl = inv.nodeClass(c);
      if (cl.members.empty()) continue;
      // What the pending mix can use on this class.
      int min_whole = std::numeric_limits<int>::max();
      std::uint32_t mig_profiles = 0;
      int min_slots = std::numeric_limits<int>::max();
      const ClassInfo info{inv, c, cl, ps.spec};
      for (const Request& r : pending) {
        bool ok = true;
        for (const auto& f : profile.filters) {
          if (!f->filterClass(r, info)) {
            ok = false;
            break;
          }
        }
        if (!ok) continue;
        auto s = inv.resolve(c, r.shape);
        if (!s) continue;
        if (s->kind == ShapeKind::Whole) min_whole = std::min(min_whole, s->count);
        if (s->kind == ShapeKind::Mig) mig_profiles |= 1u << s->mig_profile;
        if (s->kind == ShapeKind::Share) min_slots = std::min(min_slots, s->slots);
      }
      const double unit = 1.0 / cl.units_per_gpu;
      for (NodeId n : cl.members) {
        const NodeState& ns = inv.node(n);
        if (!ns.schedulable()) continue;
        int idle = 0;
        for (const GpuState& g : ns.gpus) {
          if (!inv.usable(g, GpuScope{})) continue;
          if (cl.mode == SharingMode::Exclusive) {
            idle += g.idle() ? 1 : 0;
          } else if (cl.mode == SharingMode::MIG) {
            if (g.whole_owner != kNone || g.share_mask != 0) continue;
            const int free = cl.units_per_gpu - std::popcount(static_cast<unsigned>(g.mig & 0xffu));
            unsigned cover = 0;
            if (cl.mig) {
              for (std::size_t pi = 0; pi < cl.mig->profiles.size(); ++pi) {
                if (!((mig_profiles >> pi) & 1u)) continue;
                for (int st = 0; st < cl.mig->memory_slices; ++st) {
                  if (cl.mig->canPlace(g.mig, static_cast<int>(pi), st)) {
                    cover |= cl.mig->placementMask(static_cast<int>(pi), st);
                  }
                }
              }
            }
            const int usable = std::popcount(cover);
            pf.free_gpus += free * unit;
            pf.stranded_gpus += (free - usable) * unit;
          } else if (isShared(cl.mode)) {
            if (g.whole_owner != kNone || g.mig != 0) continue;
            const int free = std::max(0, cl.units_per_gpu - std::popcount(g.share_mask));
            pf.free_gpus += free * unit;
            if (free < min_slots) pf.stranded_gpus += free * unit;
          }
        }
        if (cl.mode == SharingMode::Exclusive) {
          pf.free_gpus += idle;
          if (idle < min_whole) pf.stranded_gpus += idle;
        }
      }
    }
    rep.free_gpus += pf.free_gpus;
    rep.stranded_gpus += pf.stranded_gpus;
    rep.pools.push_back(std::move(pf));
  }
  return rep;
}

PackingStats packingStats(const Inventory& inv) {
  PackingStats st;
  for (PoolId p : inv.poolsByName()) {
    const PoolState& ps = inv.pool(p);
    std::int64_t whole = 0, mem = 0, compute = 0, media = 0, shares = 0;
    int mem_per_gpu = 8, compute_per_gpu = 7, k = 1;
    for (ClassId c : ps.classes) {
      const NodeClass& cl = inv.nodeClass(c);
      std::uint16_t allowed = 0;
      for (int pi : cl.mig_profiles) allowed = static_cast<std::uint16_t>(allowed | (1u << pi));
      if (cl.mig) {
        mem_per_gpu = cl.mig->memory_slices;
        compute_per_gpu = cl.mig->compute_slices;
      }
      if (isShared(cl.mode)) k = cl.units_per_gpu;
      for (NodeId n : cl.members) {
        const NodeState& ns = inv.node(n);
        ++st.nodes;
        int used_here = 0, full_here = 0, idle_here = 0;
        for (const GpuState& g : ns.gpus) {
          if (g.healthy) ++st.gpus;
          if (g.idle()) {
            ++idle_here;
            continue;
          }
          ++used_here;
          bool full = true;
          if (g.whole_owner != kNone) {
            ++whole;
          } else if (!g.mig_instances.empty() && cl.mig) {
            for (const auto& mi : g.mig_instances) {
              mem += cl.mig->profiles[mi.profile].memory_slices;
              compute += cl.mig->profiles[mi.profile].compute_slices;
              media += cl.mig->profiles[mi.profile].media_extensions &&
                               cl.mig->profiles[mi.profile].compute_slices < cl.mig->compute_slices
                           ? 1
                           : 0;
            }
            full = (cl.mig->fits[g.mig] & allowed) == 0;
          } else if (!g.shares.empty()) {
            shares += static_cast<std::int64_t>(g.shares.size());
            full = std::popcount(g.share_mask) >= cl.units_per_gpu;
          }
          if (full) ++full_here; else ++st.gpus_partial;
        }
        st.gpus_used += used_here;
        if (used_here > 0) ++st.nodes_used;
        if (full_here == static_cast<int>(ns.gpus.size())) ++st.nodes_full;
        if (idle_here == static_cast<int>(ns.gpus.size()) && ns.schedulable()) ++st.idle_nodes;
      }
    }
    auto ceil_div = [](std::int64_t a, std::int64_t b) { return b > 0 ? (a + b - 1) / b : 0; };
    st.lower_bound_gpus += whole;
    st.lower_bound_gpus +=
        std::max({ceil_div(mem, mem_per_gpu), ceil_div(compute, compute_per_gpu), media});
    st.lower_bound_gpus += ceil_div(shares, k);
  }
  return st;
}

}  // namespace waterline::scheduling
