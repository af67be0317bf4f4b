#pragma once
// XID watcher: GPU faults from DCGM metrics in Prometheus (docs/workers.md, "GPU and node
// faults"). Every `period` it queries Prometheus for the last XID of every GPU
// (DCGM_FI_DEV_XID_ERRORS, by Hostname and gpu), plans the node annotation
// waterline.dev/xid-unhealthy-gpus (planners/xid.h) and patches the nodes whose value
// changes. The inventory reads the annotation like waterline.dev/unhealthy-gpus, and the
// node update comes back through the node watch to the CapacityPool and ModelDeployment
// controllers, which stop placing work there and move the workers.
//
// A failed query changes nothing (the GPUs keep their state) and is counted. Leader only.
#include <condition_variable>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "waterline/cache/informer.h"
#include "waterline/common/metrics.h"
#include "waterline/kube/client.h"
#include "waterline/runtime/events.h"
#include "waterline/sources/prometheus.h"

namespace waterline::reconcilers {

inline constexpr std::string_view kDefaultXidQuery = "max by (Hostname, gpu) (DCGM_FI_DEV_XID_ERRORS)";

struct XidWatcherDeps {
  kube::WriterPtr writer;  // node patches
  cache::InformerPtr nodes;
  sources::PrometheusClientPtr prometheus;
  runtime::EventRecorderPtr recorder;
  TimeSourcePtr time;
  Duration period = std::chrono::seconds(30);
  std::string query = std::string(kDefaultXidQuery);
  std::set<int> fatal;  // empty: planners::defaultFatalXids()
  metrics::Registry* registry = nullptr;  // default: metrics::defaultRegistry()
};

class XidWatcher {
 public:
  explicit XidWatcher(XidWatcherDeps deps);
  ~XidWatcher();

  // One query and the patches it calls for. False when the query or a patch failed.
  bool syncOnce();

  void start();  // a thread calling syncOnce() every period
  void stop();

 private:
  XidWatcherDeps d_;
  metrics::CounterFamily* syncs_ = nullptr;   // {result}
  metrics::CounterFamily* marks_ = nullptr;   // {xid}
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace waterline::reconcilers
