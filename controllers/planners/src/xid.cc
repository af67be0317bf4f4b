#include "waterline/planners/xid.h"

#include <map>

#include "waterline/planners/nodes.h"

namespace waterline::planners {

const std::set<int>& defaultFatalXids() {
  static const std::set<int> k = {48, 62, 63, 64, 74, 79, 92, 94, 95};
  return k;
}

std::string formatIndexList(const std::set<int>& gpus) {
  std::string out;
  for (int g : gpus) out += (out.empty() ? "" : ",") + std::to_string(g);
  return out;
}

std::vector<XidChange> planXidAnnotations(const std::vector<XidSample>& samples,
                                          const std::vector<NodeXidState>& nodes,
                                          const std::set<int>& fatal) {
  std::map<std::string, std::map<int, int>> latest;  // node -> gpu -> xid
  for (const auto& s : samples) latest[s.node][s.gpu] = s.xid;
  std::vector<XidChange> out;
  for (const auto& n : nodes) {
    std::set<int> current;
    for (int g : parseIndexList(n.annotation))
      if (g < n.gpuCount) current.insert(g);
    std::set<int> next = current;
    XidChange c;
    c.node = n.node;
    if (auto it = latest.find(n.node); it != latest.end()) {
      for (const auto& [gpu, xid] : it->second) {
        if (gpu < 0 || gpu >= n.gpuCount) continue;
        if (fatal.contains(xid)) {
          if (next.insert(gpu).second) c.marked.push_back({gpu, xid});
        } else if (next.erase(gpu)) {
          c.cleared.push_back(gpu);
        }
      }
    }
    const std::string value = formatIndexList(next);
    if (value == n.annotation) continue;
    if (value.empty()) c.annotation = std::nullopt;
    else c.annotation = value;
    out.push_back(std::move(c));
  }
  return out;
}

}  // namespace waterline::planners
