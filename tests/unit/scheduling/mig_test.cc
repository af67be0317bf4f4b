#include <gtest/gtest.h>

#include <algorithm>
#include <bit>

#include "waterline/scheduling/mig.h"

namespace waterline::scheduling {
namespace {

std::vector<int> startsOf(const MigGeometry& g, const std::string& profile) {
  const int p = g.profileIndex(profile);
  std::vector<int> out;
  for (int s = 0; s < 8; ++s) {
    if (g.profiles[p].starts & (1u << s)) out.push_back(s);
  }
  return out;
}

struct PlacementRow {
  const char* product;
  const char* profile;
  std::vector<int> starts;
  int memory_slices;
  int max_instances;
};

class MigPlacementTable : public ::testing::TestWithParam<PlacementRow> {};

// `nvidia-smi mig -lgipp` on A100-80GB / H100-80GB (MIG user guide).
TEST_P(MigPlacementTable, MatchesNvidiaPlacements) {
  const PlacementRow& row = GetParam();
  const MigGeometry* g = migGeometryForProduct(row.product);
  ASSERT_NE(g, nullptr) << row.product;
  const int p = g->profileIndex(row.profile);
  ASSERT_GE(p, 0) << row.profile;
  EXPECT_EQ(startsOf(*g, row.profile), row.starts);
  EXPECT_EQ(g->profiles[p].memory_slices, row.memory_slices);
  EXPECT_EQ(g->capacity[p][0], row.max_instances) << "instances on an empty GPU";
}

INSTANTIATE_TEST_SUITE_P(
    Products, MigPlacementTable,
    ::testing::Values(
        PlacementRow{"NVIDIA-H100-80GB-HBM3", "1g.10gb", {0, 1, 2, 3, 4, 5, 6}, 1, 7},
        PlacementRow{"NVIDIA-H100-80GB-HBM3", "1g.10gb+me", {0, 1, 2, 3, 4, 5, 6}, 1, 1},
        PlacementRow{"NVIDIA-H100-80GB-HBM3", "1g.20gb", {0, 2, 4, 6}, 2, 4},
        PlacementRow{"NVIDIA-H100-80GB-HBM3", "2g.20gb", {0, 2, 4}, 2, 3},
        PlacementRow{"NVIDIA-H100-80GB-HBM3", "3g.40gb", {0, 4}, 4, 2},
        PlacementRow{"NVIDIA-H100-80GB-HBM3", "4g.40gb", {0}, 4, 1},
        PlacementRow{"NVIDIA-H100-80GB-HBM3", "7g.80gb", {0}, 8, 1},
        PlacementRow{"NVIDIA-A100-SXM4-80GB", "1g.10gb", {0, 1, 2, 3, 4, 5, 6}, 1, 7},
        PlacementRow{"NVIDIA-A100-SXM4-80GB", "3g.40gb", {0, 4}, 4, 2},
        PlacementRow{"NVIDIA-A100-SXM4-80GB", "7g.80gb", {0}, 8, 1},
        PlacementRow{"NVIDIA-A100-SXM4-40GB", "1g.5gb", {0, 1, 2, 3, 4, 5, 6}, 1, 7},
        PlacementRow{"NVIDIA-A100-SXM4-40GB", "1g.10gb", {0, 2, 4, 6}, 2, 4},
        PlacementRow{"NVIDIA-A100-SXM4-40GB", "3g.20gb", {0, 4}, 4, 2},
        PlacementRow{"NVIDIA-H100-NVL", "3g.47gb", {0, 4}, 4, 2},
        PlacementRow{"NVIDIA-H200", "1g.18gb", {0, 1, 2, 3, 4, 5, 6}, 1, 7},
        PlacementRow{"NVIDIA-A30", "2g.12gb", {0, 2}, 2, 2},
        PlacementRow{"NVIDIA-A30", "4g.24gb", {0}, 4, 1}));

TEST(MigGeometry, UnknownProductHasNoGeometry) {
  EXPECT_EQ(migGeometryForProduct("Tesla-T4"), nullptr);
  EXPECT_EQ(migGeometryForProduct("NVIDIA-L40S"), nullptr);
}

TEST(MigGeometry, PlacementRulesFollowMemorySlices) {
  const MigGeometry& g = *migGeometryForProduct("NVIDIA-H100-80GB-HBM3");
  const int g1 = g.profileIndex("1g.10gb"), g3 = g.profileIndex("3g.40gb"),
            g4 = g.profileIndex("4g.40gb"), g7 = g.profileIndex("7g.80gb"),
            me = g.profileIndex("1g.10gb+me"), g2 = g.profileIndex("2g.20gb");
  // 4g.40gb at 0 + 3g.40gb at 4 is the classic full split.
  MigState s = g.place(0, g4, 0);
  EXPECT_TRUE(g.canPlace(s, g3, 4));
  EXPECT_FALSE(g.canPlace(s, g3, 0));
  s = g.place(s, g3, 4);
  EXPECT_EQ(s & 0xff, 0xff);
  EXPECT_EQ(g.fits[s] & ((1u << g1) | (1u << g7)), 0u);
  // Not a valid start: 3g.40gb at 2, 2g.20gb at 1 or 6.
  EXPECT_FALSE(g.canPlace(0, g3, 2));
  EXPECT_FALSE(g.canPlace(0, g2, 1));
  EXPECT_FALSE(g.canPlace(0, g2, 6));
  // Seven 1g.10gb fill the GPU; slice 7 stays free but holds no 1g instance.
  MigState seven = 0;
  for (int i = 0; i < 7; ++i) seven = g.place(seven, g1, i);
  EXPECT_EQ(g.fits[seven], 0u);
  EXPECT_EQ(g.capacity[g1][seven], 0);
  // Media extensions: one +me instance per GPU.
  MigState m = g.place(0, me, 0);
  EXPECT_FALSE(g.canPlace(m, me, 3));
  EXPECT_TRUE(g.canPlace(m, g1, 3));
  EXPECT_EQ(g.remove(m, me, 0), 0);
  // 7g.80gb takes all slices.
  EXPECT_EQ(g.place(0, g7, 0) & 0xff, 0xff);
}

// An independent brute force over every state of every built-in geometry: the rules
// re-stated from the profile data (a placement is a valid start whose memory slices are
// all free; a "+me" profile also needs the media engines free and takes them), every
// sequence of placements explored, and the derived tables (fits, capacity) compared.
int bruteMaxInstances(const MigProfile& p, int slices, MigState s, int from) {
  int best = 0;
  for (int st = from; st < slices; ++st) {
    if (!(p.starts & (1u << st))) continue;
    const unsigned mask = ((1u << p.memory_slices) - 1u) << st;
    if (s & mask) continue;
    if (p.media_extensions && (s & kMigMediaBit)) continue;
    MigState next = static_cast<MigState>(s | mask | (p.media_extensions ? kMigMediaBit : 0));
    best = std::max(best, 1 + bruteMaxInstances(p, slices, next, st + 1));
  }
  return best;
}

TEST(MigGeometry, CapacityTableMatchesBruteForce) {
  int checked = 0;
  for (const char* name : {"A100-40GB", "A100/H100-80GB", "H100-94GB", "H200-141GB", "A30-24GB"}) {
    const MigGeometry* g = migGeometryByName(name);
    ASSERT_NE(g, nullptr) << name;
    ASSERT_EQ(g->capacity.size(), g->profiles.size()) << name;
    for (int s = 0; s < kMigStates; ++s) {
      std::uint16_t fits = 0;
      for (std::size_t p = 0; p < g->profiles.size(); ++p) {
        const int want = bruteMaxInstances(g->profiles[p], g->memory_slices, static_cast<MigState>(s), 0);
        if (want > 0) fits = static_cast<std::uint16_t>(fits | (1u << p));
        ASSERT_EQ(g->capacity[p][s], want) << name << " " << g->profiles[p].name << " state 0x" << std::hex << s;
        ++checked;
      }
      ASSERT_EQ(g->fits[s], fits) << name << " state 0x" << std::hex << s;
    }
  }
  EXPECT_GT(checked, 5 * kMigStates);  // every geometry, every state, every profile
  // Spot values, worked out by hand (A100-80GB): slices 4,5 used: 2g.20gb fits at 0 and
  // 2; slices 1 and 5 used: at 2 only; media engines taken: no 1g.10gb+me at all.
  const MigGeometry& a = *migGeometryForProduct("NVIDIA-A100-SXM4-80GB");
  EXPECT_EQ(a.capacity[a.profileIndex("2g.20gb")][0x30], 2);
  EXPECT_EQ(a.capacity[a.profileIndex("2g.20gb")][0x22], 1);
  EXPECT_EQ(a.capacity[a.profileIndex("1g.10gb+me")][kMigMediaBit], 0);
  EXPECT_EQ(a.capacity[a.profileIndex("1g.10gb+me")][0], 1);
  EXPECT_EQ(a.capacity[a.profileIndex("1g.10gb")][0], 7);
}

}  // namespace
}  // namespace waterline::scheduling
