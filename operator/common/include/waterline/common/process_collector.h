#pragma once
// The standard process_* metrics, as client_golang's process collector exports them,
// read from /proc/self at scrape time (Linux only):
//
//   process_cpu_seconds_total       counter  user + system CPU time
//   process_resident_memory_bytes   gauge    resident set size
//   process_virtual_memory_bytes    gauge    virtual memory size
//   process_start_time_seconds      gauge    start time, seconds since the Unix epoch
//   process_open_fds                gauge    open file descriptors
//   process_max_fds                 gauge    the soft limit on open file descriptors
//
// A value that cannot be read (e.g. /proc not mounted) is left out, not reported as 0.
#include <memory>
#include <string>
#include <vector>

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

#include "waterline/common/metrics.h"

namespace waterline::metrics {

class ProcessCollector final : public prometheus::Collectable {
 public:
  // procDir: the /proc/<pid> directory to read (tests may point it elsewhere).
  explicit ProcessCollector(std::string procDir = "/proc/self");
  std::vector<prometheus::MetricFamily> Collect() const override;

  // The family names Collect() produces.
  static std::vector<std::string> familyNames();

 private:
  std::string dir_;
};

// Adds a ProcessCollector to `registry` (both binaries do this for the default
// registry at start). Throws std::invalid_argument when it is there already.
void addProcessCollector(Registry& registry);

}  // namespace waterline::metrics
