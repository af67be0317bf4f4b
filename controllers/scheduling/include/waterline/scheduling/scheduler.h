#pragma once
// The scheduling cycle: class-level filters, index search for the best packing score,
// node-level filters and tie-breaks on a bounded set of candidates, in-node allocation,
// then Reserve (assume into the inventory) and the bind decision (an Assignment, written
// to the pod with encodeAssignment). See docs/scheduling.md.
#include <cstdint>
#include <expected>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "waterline/scheduling/framework.h"
#include "waterline/scheduling/inventory.h"

namespace waterline::scheduling {

struct Decision {
  Assignment assignment;
  std::string pool;
  bool from_reservation = false;  // placed on GPUs reserved for the deployment
  std::int64_t score = 0;         // packing score
  std::int64_t tie_break = 0;
};

// Per pool, why it could not take the request, or how much room it has.
struct PoolDiagnosis {
  std::string pool;
  bool location_ok = false;  // passes the deployment type's region / zone rule
  bool eligible = false;     // passes every class-level filter for some node class
  std::string reason;        // when not eligible
  std::int64_t free_units = 0;       // free request-units (GPUs, MIG instances, shares)
  std::int64_t largest_block = 0;    // most on a single node
  std::int64_t fitting_workers = 0;  // workers of this shape that fit, one by one
  std::int64_t unschedulable_nodes = 0;
};

struct Unschedulable {
  // "InvalidRequest" | "NoEligiblePool" | "InsufficientCapacity"
  std::string reason;
  std::string message;  // one line for a status condition
  std::int64_t requested_workers = 1;
  std::int64_t fitting_workers = 0;
  std::int64_t missing_units = 0;  // in `unit`
  std::string unit;                // "GPUs", "MIG 3g.40gb instances", "1/4 GPU shares"
  std::vector<PoolDiagnosis> pools;  // sorted by pool name
};

struct Move {
  std::string worker;
  Assignment from;
  Assignment to;
};

// Moving `moves` (fractional workers, MIG instances or shares) makes `target` free.
struct MovePlan {
  Assignment target;
  std::vector<Move> moves;
};

class Scheduler {
 public:
  explicit Scheduler(Inventory& inventory, Profile profile = Profile::defaults());

  // Filter + score: where the worker would go. Does not change the inventory (other than
  // sorting node classes after node additions).
  std::expected<Decision, Unschedulable> schedule(const Request& r);
  // The same decision rule evaluated by scanning every node (no index, no candidate
  // bound). Reference implementation for tests; O(nodes).
  std::expected<Decision, Unschedulable> scheduleExhaustive(const Request& r);

  // Reserve: assume the worker into the inventory, then run Reserve plugins.
  std::expected<void, std::string> reserve(const Request& r, const Decision& d);
  // Unreserve: roll back a reserve (or release a worker).
  void unreserve(const Request& r, const Decision& d);
  // schedule + reserve.
  std::expected<Decision, Unschedulable> place(const Request& r);

  // Capacity explanation for `replicas` workers of the request's shape.
  Unschedulable explain(const Request& r, std::int64_t replicas);

  // When the request does not fit: the cheapest plan (fewest moves, then node name, GPU,
  // slot) that moves at most `max_moves` fractional workers so that it fits. Computed by
  // trial reserve/rollback; the inventory is unchanged afterwards. nullopt when none.
  std::optional<MovePlan> planMoves(const Request& r, int max_moves);

  const Profile& profile() const { return profile_; }
  Inventory& inventory() { return inv_; }

 private:
  struct Eligible {
    ClassId cls;
    ResolvedShape shape;
  };
  struct Candidate {
    NodeId node = kNone;
    std::int64_t score = 0;
    std::int64_t tie = 0;
    bool from_reservation = false;
  };
  std::optional<std::string> validate(const Request& r) const;
  void eligibleClasses(const Request& r, std::vector<Eligible>& out) const;
  bool nodeFeasible(const Request& r, NodeId n, const ResolvedShape& s, GpuScope scope) const;
  std::int64_t packingScore(const Request& r, const PoolState& p, const std::string& product,
                            const ResourceSummary& s, const ResolvedShape& shape) const;
  std::int64_t tieBreak(const Request& r, std::uint32_t node_reps, std::uint32_t pool_reps) const;
  bool better(const Candidate& a, const Candidate& b) const;
  std::optional<Candidate> searchReserved(const Request& r, DeploymentId d);
  std::optional<Candidate> searchIndexed(const Request& r, DeploymentId d);
  std::expected<Decision, Unschedulable> finish(const Request& r, const Candidate& c);
  Unschedulable diagnose(const Request& r, std::int64_t replicas);

  Inventory& inv_;
  Profile profile_;
  std::vector<Eligible> eligible_;  // scratch
  struct Entry {
    std::int64_t score;
    std::uint32_t eligible;
    std::int32_t key;
  };
  std::vector<Entry> entries_;  // scratch
};

}  // namespace waterline::scheduling
