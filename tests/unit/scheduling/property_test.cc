// Property tests: seeded random sequences of create / scale / delete / node failure /
// GPU failure / reservation / operator restart. Invariants checked after every step:
//   - nothing over-committed, counters and indexes consistent (checkInvariants);
//   - every placement obeys its deployment type's region / zone rule and product;
//   - reserved GPUs are used only by their deployment (checkInvariants);
//   - rebuilding from the annotation-encoded assignments gives the same state;
//   - the indexed search equals the exhaustive reference;
//   - the same seed gives the same placements, with or without restarts.
#include <gtest/gtest.h>

#include <cstdio>
#include <map>
#include <random>
#include <sstream>

#include "fixtures.h"
#include "waterline/scheduling/analysis.h"
#include "waterline/scheduling/annotation.h"
#include "waterline/scheduling/plugins.h"
#include "waterline/scheduling/scheduler.h"

namespace waterline::scheduling {
namespace {

using namespace testing;

struct Cluster {
  std::vector<PoolSpec> pools;
  std::map<std::string, NodeSpec> nodes;  // current specs (readiness, health)
};

Cluster makeCluster(std::mt19937& rng) {
  Cluster c;
  auto add_pool = [&](PoolSpec p) { c.pools.push_back(std::move(p)); };
  PoolSpec a = pool("eu-west-ex", "eu-west", "EU");
  a.reservable_fraction = 0.3;
  add_pool(a);
  add_pool(pool("eu-north-ex", "eu-north", "EU", SharingMode::Exclusive, Strategy::Spread));
  PoolSpec m = pool("eu-west-mig", "eu-west", "EU", SharingMode::MIG);
  m.mig_profiles = {"1g.10gb", "2g.20gb", "3g.40gb", "4g.40gb", "7g.80gb"};
  m.reservable_fraction = 0.25;
  add_pool(m);
  PoolSpec mig2 = pool("eu-north-mig", "eu-north", "EU", SharingMode::MIG, Strategy::Spread, kA100);
  add_pool(mig2);
  PoolSpec ts = pool("us-east-ts", "us-east", "US", SharingMode::TimeSlicing);
  ts.slices_per_gpu = 4;
  add_pool(ts);
  PoolSpec mps = pool("eu-west-mps", "eu-west", "EU", SharingMode::MPS);
  mps.slices_per_gpu = 4;
  add_pool(mps);
  add_pool(pool("us-east-ex", "us-east", "US", SharingMode::Exclusive, Strategy::BinPack, kA100));
  std::uniform_int_distribution<int> nn(3, 6);
  for (const PoolSpec& p : c.pools) {
    const int count = nn(rng);
    for (int i = 0; i < count; ++i) {
      NodeSpec n = node(p.name + "-" + std::to_string(i), p.name, (i % 3 == 2) ? 4 : 8, p.gpu_product);
      if (i == 1 && p.sharing == SharingMode::Exclusive) {
        n.taints = {{"dedicated", "batch", TaintEffect::NoSchedule}};
      }
      c.nodes[n.name] = n;
    }
  }
  return c;
}

struct Deployment {
  Request base;  // worker name filled per replica
  int next = 0;
  std::vector<std::string> workers;
};

std::vector<Deployment> makeDeployments(std::mt19937& rng) {
  std::vector<Deployment> ds;
  const std::vector<GpuShape> shapes = {
      GpuShape::whole(1),       GpuShape::whole(2),          GpuShape::whole(4),
      GpuShape::whole(8),       GpuShape::mig("1g.10gb"),    GpuShape::mig("3g.40gb"),
      GpuShape::mig("2g.20gb"), GpuShape::mig("7g.80gb"),    GpuShape::share(4),
      GpuShape::mig("4g.40gb"), GpuShape::share(4, 20000),   GpuShape::whole(3),
      GpuShape::share(2),       GpuShape::whole(1).withMemory(90000),
      GpuShape::mig("2g.20gb").withMemory(20000)};
  const std::vector<std::tuple<DeploymentType, std::string, std::string>> locs = {
      {DeploymentType::Standard, "eu-west", ""}, {DeploymentType::Standard, "eu-north", ""},
      {DeploymentType::Standard, "us-east", ""}, {DeploymentType::DataZone, "", "EU"},
      {DeploymentType::DataZone, "", "US"},      {DeploymentType::Global, "", ""}};
  std::uniform_int_distribution<std::size_t> sp(0, shapes.size() - 1), lp(0, locs.size() - 1);
  std::uniform_int_distribution<int> coin(0, 3);
  for (int i = 0; i < 12; ++i) {
    Deployment d;
    d.base.deployment = "ns/dep" + std::to_string(i);
    d.base.shape = shapes[sp(rng)];
    auto [t, region, zone] = locs[lp(rng)];
    d.base.type = t;
    d.base.region = region;
    d.base.zone = zone;
    if (coin(rng) == 0) d.base.tolerations = {{"dedicated", TolerationOperator::Exists, "", std::nullopt}};
    if (coin(rng) == 0) d.base.product = coin(rng) < 2 ? kH100 : kA100;
    if (coin(rng) == 0) d.base.preferred_product = coin(rng) < 2 ? kA100 : kH100;
    ds.push_back(std::move(d));
  }
  return ds;
}

std::vector<NodeSpec> nodeList(const Cluster& c) {
  std::vector<NodeSpec> out;
  for (const auto& [n, s] : c.nodes) out.push_back(s);
  return out;
}

class Harness {
 public:
  Harness(std::uint32_t seed, bool restarts) : rng_(seed), restarts_(restarts) {
    cluster_ = makeCluster(rng_);
    deps_ = makeDeployments(rng_);
    for (const auto& p : cluster_.pools) EXPECT_TRUE(inv_.upsertPool(p));
    for (const auto& [n, s] : cluster_.nodes) EXPECT_TRUE(inv_.upsertNode(s));
  }

  std::string run(int steps) {
    for (int step = 0; step < steps && !::testing::Test::HasFatalFailure(); ++step) {
      this->step(step);
      auto errs = inv_.checkInvariants();
      if (!errs.empty()) {
        ADD_FAILURE() << "step " << step << ": " << errs.front();
        break;
      }
    }
    return log_.str();
  }

 private:
  void place(Deployment& d) {
    Request r = d.base;
    r.worker = d.base.deployment + "-" + std::to_string(d.next++);
    Scheduler s(inv_);
    auto dec = s.place(r);
    if (!dec) {
      log_ << "F " << r.worker << "\n";
      EXPECT_FALSE(dec.error().message.empty());
      return;
    }
    // Location, product and mode rules.
    const PoolId p = inv_.findPool(dec->pool);
    const PoolSpec& ps = inv_.pool(p).spec;
    EXPECT_TRUE(poolMatchesLocation(r, ps)) << r.worker << " in " << ps.name;
    if (!r.product.empty()) {
      EXPECT_EQ(inv_.node(inv_.findNode(dec->assignment.node)).spec.gpu_product, r.product);
    }
    const NodeState& ns = inv_.node(inv_.findNode(dec->assignment.node));
    EXPECT_TRUE(ns.schedulable());
    EXPECT_TRUE(toleratesAll(ns.spec.taints, r.tolerations));
    for (int g : dec->assignment.gpus) EXPECT_TRUE(ns.gpus[g].healthy);
    d.workers.push_back(r.worker);
    recorded_[r.worker] = RecordedAssignment{r, encodeAssignment(dec->assignment), 0};
    log_ << "P " << r.worker << " " << recorded_[r.worker].annotation << "\n";
  }

  void remove(const std::string& w) {
    for (auto& d : deps_) std::erase(d.workers, w);
    EXPECT_TRUE(inv_.forget(w));
    recorded_.erase(w);
    log_ << "R " << w << "\n";
  }

  void restart() {
    std::vector<RecordedAssignment> recs;
    for (const auto& [w, r] : recorded_) recs.push_back(r);
    // Shuffle: the rebuild must not depend on the order the API lists pods in.
    std::shuffle(recs.begin(), recs.end(), rng_);
    std::vector<ReservationRecord> res;
    for (const auto& r : inv_.reservations()) {
      auto back = decodeReservation(encodeReservation(r));
      EXPECT_TRUE(back);
      res.push_back(*back);
    }
    log_ << "S\n";
    if (!restarts_) return;  // same RNG draws either way
    auto rb = Inventory::rebuild(cluster_.pools, nodeList(cluster_), recs, res);
    EXPECT_TRUE(rb.conflicts.empty()) << rb.conflicts.front().message;
    EXPECT_EQ(rb.inventory.fingerprint(), inv_.fingerprint());
    inv_ = std::move(rb.inventory);
  }

  void crossCheck() {
    // The indexed search picks what the exhaustive reference picks.
    Deployment& d = deps_[pick(deps_.size())];
    Request r = d.base;
    r.worker = "probe";
    Profile prof = Profile::defaults();
    prof.max_feasible_per_bucket = 1u << 30;
    Scheduler s(inv_, prof);
    auto a = s.schedule(r);
    auto b = s.scheduleExhaustive(r);
    log_ << "C\n";
    ASSERT_EQ(a.has_value(), b.has_value()) << r.deployment;
    if (a) {
      EXPECT_EQ(a->assignment, b->assignment) << r.deployment << " " << r.shape.describe();
      EXPECT_EQ(a->score, b->score);
    } else {
      EXPECT_EQ(a.error().message, b.error().message);
    }
  }

  std::size_t pick(std::size_t n) { return std::uniform_int_distribution<std::size_t>(0, n - 1)(rng_); }

  void step(int i) {
    const int op = std::uniform_int_distribution<int>(0, 99)(rng_);
    if (op < 35) {  // scale up
      Deployment& d = deps_[pick(deps_.size())];
      const int n = 1 + static_cast<int>(pick(3));
      for (int k = 0; k < n; ++k) place(d);
    } else if (op < 50) {  // scale down with victim selection
      Deployment& d = deps_[pick(deps_.size())];
      const std::size_t n = 1 + pick(2);
      auto victims = selectVictims(inv_, d.workers, n);
      EXPECT_EQ(victims.size(), std::min(n, d.workers.size()));
      for (const auto& w : victims) remove(w);
    } else if (op < 55) {  // delete a deployment
      Deployment& d = deps_[pick(deps_.size())];
      auto ws = d.workers;
      for (const auto& w : ws) remove(w);
    } else if (op < 62) {  // node failure: evict and reschedule its workers
      auto it = cluster_.nodes.begin();
      std::advance(it, static_cast<long>(pick(cluster_.nodes.size())));
      it->second.ready = false;
      inv_.setNodeReady(it->first, false);
      log_ << "N- " << it->first << "\n";
      for (const auto& w : inv_.workersOnNode(it->first)) {
        remove(w);
        for (auto& d : deps_) {
          if (w.rfind(d.base.deployment + "-", 0) == 0) place(d);
        }
      }
    } else if (op < 70) {  // node recovery
      for (auto& [name, spec] : cluster_.nodes) {
        if (!spec.ready) {
          spec.ready = true;
          inv_.setNodeReady(name, true);
          log_ << "N+ " << name << "\n";
          break;
        }
      }
    } else if (op < 75) {  // GPU health flip (workers stay; new work avoids it)
      auto it = cluster_.nodes.begin();
      std::advance(it, static_cast<long>(pick(cluster_.nodes.size())));
      const int g = static_cast<int>(pick(static_cast<std::size_t>(it->second.gpu_count)));
      auto& u = it->second.unhealthy_gpus;
      const bool healthy = std::find(u.begin(), u.end(), g) != u.end();
      inv_.setGpuHealthy(it->first, g, healthy);
      std::erase(u, g);
      if (!healthy) {
        u.push_back(g);
        std::sort(u.begin(), u.end());
      }
      log_ << "G " << it->first << " " << g << " " << healthy << "\n";
    } else if (op < 80) {  // reservation create / release
      auto rs = inv_.reservations();
      if (!rs.empty() && pick(2) == 0) {
        inv_.releaseReservation(rs.front().name);
        log_ << "X- " << rs.front().name << "\n";
      } else {
        Deployment& d = deps_[pick(deps_.size())];
        const PoolSpec& p = cluster_.pools[pick(2) == 0 ? 0 : 2];
        auto r = inv_.createReservation("res-" + std::to_string(i), d.base.deployment, p.name,
                                        1 + static_cast<int>(pick(4)));
        log_ << "X+ " << (r ? encodeReservation(*r) : std::string("refused")) << "\n";
      }
    } else if (op < 85) {
      restart();
    } else if (op < 90) {  // a move plan never changes the inventory
      Deployment& d = deps_[pick(deps_.size())];
      Request r = d.base;
      r.worker = "plan-probe";
      const std::string before = inv_.fingerprint();
      Scheduler s(inv_);
      auto plan = s.planMoves(r, 2);
      EXPECT_EQ(inv_.fingerprint(), before);
      if (plan) {
        EXPECT_LE(plan->moves.size(), 2u);
        log_ << "M " << encodeAssignment(plan->target) << " " << plan->moves.size() << "\n";
      }
    } else {
      crossCheck();
    }
  }

  std::mt19937 rng_;
  bool restarts_;
  Cluster cluster_;
  std::vector<Deployment> deps_;
  Inventory inv_;
  std::map<std::string, RecordedAssignment> recorded_;
  std::ostringstream log_;
};

constexpr int kSeeds = 40;
constexpr int kSteps = 250;

TEST(Property, RandomSequencesKeepInvariants) {
  std::map<std::string, int> ops;  // how much each kind of event was exercised
  for (std::uint32_t seed = 1; seed <= kSeeds; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    Harness h(seed, true);
    std::istringstream log(h.run(kSteps));
    for (std::string line; std::getline(log, line);) ++ops[line.substr(0, line.find(' '))];
    if (HasFailure()) break;
  }
  std::ostringstream summary;
  for (const auto& [k, v] : ops) summary << k << "=" << v << " ";
  RecordProperty("events", summary.str());
  std::printf("events: %s\n", summary.str().c_str());
  EXPECT_GT(ops["P"], 1000);  // placements
  EXPECT_GT(ops["F"], 100);   // refusals (capacity runs out)
  EXPECT_GT(ops["R"], 500);   // removals
  EXPECT_GT(ops["X+"], 50);   // reservations
  EXPECT_GT(ops["M"], 5);     // move plans found
  EXPECT_GT(ops["N-"], 50);   // node failures
  EXPECT_GT(ops["S"], 200);   // operator restarts (rebuild + compare)
  EXPECT_GT(ops["C"], 200);   // indexed vs exhaustive cross-checks
}

TEST(Property, SameSeedSamePlacementsWithOrWithoutRestarts) {
  for (std::uint32_t seed = 100; seed < 100 + kSeeds / 4; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    const std::string a = Harness(seed, true).run(kSteps);
    const std::string b = Harness(seed, true).run(kSteps);
    const std::string c = Harness(seed, false).run(kSteps);
    EXPECT_EQ(a, b);
    EXPECT_EQ(a, c);
    if (HasFailure()) break;
  }
}

// Node insertion order must not leak into decisions: the same snapshot built in a
// different order places identically.
TEST(Property, InsertionOrderDoesNotMatter) {
  std::mt19937 rng(7);
  Cluster c = makeCluster(rng);
  auto deps = makeDeployments(rng);
  std::vector<NodeSpec> fwd = nodeList(c), rev = fwd;
  std::reverse(rev.begin(), rev.end());
  Inventory a, b;
  for (const auto& p : c.pools) ASSERT_TRUE(a.upsertPool(p));
  for (auto it = c.pools.rbegin(); it != c.pools.rend(); ++it) ASSERT_TRUE(b.upsertPool(*it));
  for (const auto& n : fwd) ASSERT_TRUE(a.upsertNode(n));
  for (const auto& n : rev) ASSERT_TRUE(b.upsertNode(n));
  Scheduler sa(a), sb(b);
  for (int i = 0; i < 200; ++i) {
    Request r = deps[static_cast<std::size_t>(i) % deps.size()].base;
    r.worker = "w" + std::to_string(i);
    auto da = sa.place(r);
    auto db = sb.place(r);
    ASSERT_EQ(da.has_value(), db.has_value()) << i;
    if (da) {
      EXPECT_EQ(da->assignment, db->assignment) << i;
    } else {
      EXPECT_EQ(da.error().message, db.error().message);
    }
  }
  EXPECT_EQ(a.fingerprint(), b.fingerprint());
}

}  // namespace
}  // namespace waterline::scheduling
