#include "first_fit.h"

#include <algorithm>
#include <bit>

namespace waterline::scheduling::bench {

FirstFit::FirstFit(Inventory& inv, const Profile& profile) : inv_(inv), profile_(profile) {
  for (NodeId n = 0; n < inv_.nodeCount(); ++n) {
    if (!inv_.node(n).spec.name.empty()) order_.push_back(n);
  }
  std::sort(order_.begin(), order_.end(), [&](NodeId a, NodeId b) {
    return inv_.node(a).spec.name < inv_.node(b).spec.name;
  });
}

std::optional<Assignment> FirstFit::schedule(const Request& r) {
  // Class-level filters once per class.
  std::vector<std::optional<ResolvedShape>> cls(inv_.classCount());
  for (ClassId c = 0; c < inv_.classCount(); ++c) {
    const NodeClass& nc = inv_.nodeClass(c);
    if (nc.pool == kNone) continue;
    const ClassInfo info{inv_, c, nc, inv_.pool(nc.pool).spec};
    bool ok = true;
    for (const auto& f : profile_.filters) ok = ok && f->filterClass(r, info);
    if (ok) cls[c] = inv_.resolve(c, r.shape);
  }
  for (NodeId n : order_) {
    const NodeState& ns = inv_.node(n);
    if (ns.cls == kNone || !ns.schedulable() || !cls[ns.cls]) continue;
    const ResolvedShape& s = *cls[ns.cls];
    const NodeClass& nc = inv_.nodeClass(ns.cls);
    Assignment a;
    a.node = ns.spec.name;
    a.kind = s.kind;
    for (int g = 0; g < static_cast<int>(ns.gpus.size()); ++g) {
      const GpuState& gs = ns.gpus[g];
      if (!inv_.usable(gs, GpuScope{})) continue;
      if (s.kind == ShapeKind::Whole) {
        if (gs.idle()) a.gpus.push_back(g);
        if (static_cast<int>(a.gpus.size()) == s.count) return a;
      } else if (s.kind == ShapeKind::Mig) {
        if (gs.whole_owner != kNone || gs.share_mask != 0) continue;
        for (int st = 0; st < nc.mig->memory_slices; ++st) {
          if (nc.mig->canPlace(gs.mig, s.mig_profile, st)) {
            a.gpus = {g};
            a.mig_profile = nc.mig->profiles[s.mig_profile].name;
            a.mig_slot = st;
            return a;
          }
        }
      } else {
        if (gs.whole_owner != kNone || gs.mig != 0) continue;
        if (nc.units_per_gpu - std::popcount(gs.share_mask) < s.slots) continue;
        a.gpus = {g};
        std::uint64_t free = ~gs.share_mask;
        for (int i = 0; i < s.slots; ++i) {
          a.share_slots.push_back(std::countr_zero(free));
          free &= free - 1;
        }
        a.shares_per_gpu = nc.units_per_gpu;
        a.memory_mib = s.memory_mib;
        return a;
      }
    }
  }
  return std::nullopt;
}

}  // namespace waterline::scheduling::bench
