#include "waterline/scheduling/mig.h"

#include <bit>
#include <mutex>

namespace waterline::scheduling {

int MigGeometry::profileIndex(std::string_view profile) const {
  for (std::size_t i = 0; i < profiles.size(); ++i) {
    if (profiles[i].name == profile) return static_cast<int>(i);
  }
  return -1;
}

std::int64_t MigGeometry::memoryMib(int profile, std::int64_t gpu_memory_mib) const {
  const MigProfile& p = profiles[profile];
  if (gpu_memory_mib > 0) return gpu_memory_mib * p.memory_slices / memory_slices;
  // "3g.40gb" -> 40
  const auto dot = p.name.find('.');
  std::int64_t gb = 0;
  for (std::size_t i = dot + 1; i < p.name.size() && p.name[i] >= '0' && p.name[i] <= '9'; ++i) {
    gb = gb * 10 + (p.name[i] - '0');
  }
  return gb * 1024;
}

std::uint8_t MigGeometry::placementMask(int profile, int start) const {
  const int size = profiles[profile].memory_slices;
  return static_cast<std::uint8_t>(((1u << size) - 1u) << start);
}

bool MigGeometry::canPlace(MigState s, int profile, int start) const {
  const MigProfile& p = profiles[profile];
  if (start < 0 || start > 7 || !(p.starts & (1u << start))) return false;
  if (s & placementMask(profile, start)) return false;
  if (p.media_extensions && (s & kMigMediaBit)) return false;
  return true;
}

MigState MigGeometry::place(MigState s, int profile, int start) const {
  MigState r = static_cast<MigState>(s | placementMask(profile, start));
  if (profiles[profile].media_extensions) r |= kMigMediaBit;
  return r;
}

MigState MigGeometry::remove(MigState s, int profile, int start) const {
  MigState r = static_cast<MigState>(s & ~placementMask(profile, start));
  if (profiles[profile].media_extensions) r &= static_cast<MigState>(~kMigMediaBit);
  return r;
}

void MigGeometry::finalize() {
  capacity.assign(profiles.size(), {});
  for (int s = 0; s < kMigStates; ++s) {
    std::uint16_t f = 0;
    for (std::size_t p = 0; p < profiles.size(); ++p) {
      for (int st = 0; st < memory_slices; ++st) {
        if (canPlace(static_cast<MigState>(s), static_cast<int>(p), st)) {
          f |= static_cast<std::uint16_t>(1u << p);
          break;
        }
      }
      // Most instances of p that fit together: brute force over subsets of placements.
      std::vector<int> starts;
      for (int st = 0; st < memory_slices; ++st) {
        if (canPlace(static_cast<MigState>(s), static_cast<int>(p), st)) starts.push_back(st);
      }
      int best = 0;
      const unsigned n = static_cast<unsigned>(starts.size());
      for (unsigned sub = 1; sub < (1u << n); ++sub) {
        MigState cur = static_cast<MigState>(s);
        bool ok = true;
        for (unsigned i = 0; i < n && ok; ++i) {
          if (!(sub & (1u << i))) continue;
          if (!canPlace(cur, static_cast<int>(p), starts[i])) {
            ok = false;
          } else {
            cur = place(cur, static_cast<int>(p), starts[i]);
          }
        }
        if (ok) best = std::max(best, std::popcount(sub));
      }
      capacity[p][s] = static_cast<std::uint8_t>(best);
    }
    fits[s] = f;
  }
}

namespace {

std::uint8_t starts(std::initializer_list<int> l) {
  std::uint8_t m = 0;
  for (int i : l) m = static_cast<std::uint8_t>(m | (1u << i));
  return m;
}

// The 7-compute-slice / 8-memory-slice layout shared by A100 and H100/H200; only the
// memory figure in the profile names differs.
MigGeometry sevenSlice(std::string name, const char* g1, const char* g1me, const char* g1x2,
                       const char* g2, const char* g3, const char* g4, const char* g7) {
  MigGeometry g;
  g.name = std::move(name);
  g.memory_slices = 8;
  g.compute_slices = 7;
  g.profiles = {
      {g1, 1, 1, starts({0, 1, 2, 3, 4, 5, 6}), false},
      {g1me, 1, 1, starts({0, 1, 2, 3, 4, 5, 6}), true},
      {g1x2, 1, 2, starts({0, 2, 4, 6}), false},
      {g2, 2, 2, starts({0, 2, 4}), false},
      {g3, 3, 4, starts({0, 4}), false},
      {g4, 4, 4, starts({0}), false},
      {g7, 7, 8, starts({0}), true},  // the full GPU instance includes all media engines
  };
  g.finalize();
  return g;
}

struct Tables {
  std::vector<MigGeometry> all;
  Tables() {
    all.push_back(sevenSlice("A100-40GB", "1g.5gb", "1g.5gb+me", "1g.10gb", "2g.10gb",
                             "3g.20gb", "4g.20gb", "7g.40gb"));
    all.push_back(sevenSlice("A100/H100-80GB", "1g.10gb", "1g.10gb+me", "1g.20gb", "2g.20gb",
                             "3g.40gb", "4g.40gb", "7g.80gb"));
    all.push_back(sevenSlice("H100-94GB", "1g.12gb", "1g.12gb+me", "1g.24gb", "2g.24gb",
                             "3g.47gb", "4g.47gb", "7g.94gb"));
    all.push_back(sevenSlice("H200-141GB", "1g.18gb", "1g.18gb+me", "1g.35gb", "2g.35gb",
                             "3g.71gb", "4g.71gb", "7g.141gb"));
    MigGeometry a30;
    a30.name = "A30-24GB";
    a30.memory_slices = 4;
    a30.compute_slices = 4;
    a30.profiles = {
        {"1g.6gb", 1, 1, starts({0, 1, 2, 3}), false},
        {"1g.6gb+me", 1, 1, starts({0, 1, 2, 3}), true},
        {"2g.12gb", 2, 2, starts({0, 2}), false},
        {"2g.12gb+me", 2, 2, starts({0, 2}), true},
        {"4g.24gb", 4, 4, starts({0}), true},
    };
    a30.finalize();
    all.push_back(std::move(a30));
  }
};

const Tables& tables() {
  static const Tables t;
  return t;
}

bool contains(std::string_view s, std::string_view sub) {
  return s.find(sub) != std::string_view::npos;
}

}  // namespace

const MigGeometry* migGeometryByName(std::string_view name) {
  for (const auto& g : tables().all) {
    if (g.name == name) return &g;
  }
  return nullptr;
}

const MigGeometry* migGeometryForProduct(std::string_view product) {
  if (contains(product, "A30")) return migGeometryByName("A30-24GB");
  if (contains(product, "H200")) return migGeometryByName("H200-141GB");
  if (contains(product, "H100")) {
    if (contains(product, "NVL") || contains(product, "94GB")) {
      return migGeometryByName("H100-94GB");
    }
    return migGeometryByName("A100/H100-80GB");
  }
  if (contains(product, "A100")) {
    if (contains(product, "80GB")) return migGeometryByName("A100/H100-80GB");
    return migGeometryByName("A100-40GB");
  }
  return nullptr;
}

}  // namespace waterline::scheduling
