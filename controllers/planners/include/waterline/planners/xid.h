#pragma once
// GPU faults from DCGM XID errors (pure). The DCGM exporter's DCGM_FI_DEV_XID_ERRORS gauge
// holds the last XID a GPU reported (0: none since the driver loaded). A fatal XID marks
// the GPU unhealthy through the node annotation waterline.dev/xid-unhealthy-gpus, which
// the inventory reads like waterline.dev/unhealthy-gpus (planners/nodes.h): no new work,
// workers moved, counted in the pool's `unhealthy`.
//
// Level-based and conservative about missing data: a GPU is added when its latest sample
// is a fatal XID and removed only when a sample for it says otherwise (0 or a non-fatal
// XID). A GPU without a sample (exporter down, series gone) keeps its current state.
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace waterline::planners {

// XIDs that mean the GPU needs a reset or replacement (NVIDIA's XID catalogue): 48 double-bit
// ECC, 62 internal micro-controller halt, 63/64 row-remapping events/failure, 74 NVLink
// error, 79 fallen off the bus, 92 high single-bit ECC rate, 94/95 contained/uncontained
// ECC errors.
const std::set<int>& defaultFatalXids();

struct XidSample {
  std::string node;  // DCGM's Hostname label (the node name)
  int gpu = 0;       // DCGM's gpu label (the index)
  int xid = 0;       // the gauge's value
};

struct NodeXidState {
  std::string node;
  std::string annotation;  // current waterline.dev/xid-unhealthy-gpus value ("" when absent)
  int gpuCount = 0;        // indices at or above it are ignored
};

struct XidChange {
  std::string node;
  std::optional<std::string> annotation;  // the new value; nullopt: remove the annotation
  std::vector<std::pair<int, int>> marked;  // (gpu, xid) newly marked unhealthy
  std::vector<int> cleared;                 // gpus no longer marked
};

// The annotation changes that bring each known node in line with the samples. Samples of
// unknown nodes are ignored. Deterministic: nodes in input order, GPUs ascending.
std::vector<XidChange> planXidAnnotations(const std::vector<XidSample>& samples,
                                          const std::vector<NodeXidState>& nodes,
                                          const std::set<int>& fatal = defaultFatalXids());

// "0,3" for {0, 3}.
std::string formatIndexList(const std::set<int>& gpus);

}  // namespace waterline::planners
