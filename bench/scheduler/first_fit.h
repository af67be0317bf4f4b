#pragma once
// The first-fit baseline the scheduler benchmark compares our scheduler with.
#include <optional>
#include <vector>

#include "waterline/scheduling/framework.h"
#include "waterline/scheduling/inventory.h"

namespace waterline::scheduling::bench {

// First fit: nodes in name order, the first node that passes the same class-level filters
// and has room; inside it the lowest GPU index and the lowest valid slot.
class FirstFit {
 public:
  FirstFit(Inventory& inv, const Profile& profile);
  std::optional<Assignment> schedule(const Request& r);

 private:
  Inventory& inv_;
  const Profile& profile_;
  std::vector<NodeId> order_;
};

}  // namespace waterline::scheduling::bench
