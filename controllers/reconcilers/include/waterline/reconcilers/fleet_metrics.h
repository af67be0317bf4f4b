#pragma once
// Fleet gauges: what the CapacityPools, ModelDeployments and PTUReservations say about
// themselves, exported at scrape time from the informer caches (no API calls).
//
//   waterline_pool_info{pool,region,data_zone,gpu_product,sharing_mode}            1
//   waterline_pool_nodes{pool,state}              state: total, ready
//   waterline_pool_gpus{pool,state}               state: total, allocatable, allocated,
//   waterline_pool_gpu_slices{pool,state}                free, unhealthy, reserved
//   waterline_pool_allocation_ratio{pool}         status.utilization (allocated / allocatable)
//   waterline_pool_fragmentation_ratio{pool}      status.fragmentation
//   waterline_pool_condition{pool,condition,status,reason}                          1
//   waterline_deployment_info{namespace,deployment,type,model,model_version}        1
//   waterline_deployment_replicas{namespace,deployment,state}
//                                                 state: spec, desired, current, scheduled,
//                                                        ready, updated
//   waterline_deployment_pool_replicas{namespace,deployment,pool,state}  state: current, ready
//   waterline_deployment_condition{namespace,deployment,condition,status,reason}    1
//   waterline_reservation_info{namespace,reservation,deployment,scope}              1
//   waterline_reservation_phase{namespace,reservation,phase}   1 for the current phase, 0
//                                                 for the other three (all 0 before the first
//                                                 status)
//   waterline_reservation_units{namespace,reservation}
//   waterline_reservation_provisioned_tokens_per_minute{namespace,reservation}
//   waterline_reservation_used_tokens_per_minute{namespace,reservation}
//   waterline_reservation_utilization_ratio{namespace,reservation}
//   waterline_reservation_reserved_replicas{namespace,reservation}
//   waterline_reservation_condition{namespace,reservation,condition,status,reason}  1
//
// The `state` values of one family overlap (total = allocatable + unhealthy/unschedulable,
// allocatable = allocated + free): select one state, never sum over them. docs/metrics.md
// has the table.
//
// Cardinality: one series per object (per state, per pool placement, per condition);
// nothing is kept between scrapes, so the series of a deleted object disappear with it and
// a condition's series changes when its status or reason does. Values come from the
// objects' status as the leader wrote it, and every replica exports them (caches run on
// standbys too): aggregate with max by (...) across replicas. Fields are read leniently
// (a missing or mistyped field reads as absent/0) so one odd object does not hide the rest.
#include <functional>
#include <memory>
#include <vector>

#include "waterline/cache/informer.h"
#include "waterline/cache/store.h"
#include "waterline/common/metrics.h"

namespace waterline::reconcilers {

// Where the objects come from at scrape time. An empty function exports nothing for
// that kind.
struct FleetSources {
  using Lister = std::function<std::vector<cache::ObjectPtr>()>;
  Lister pools;
  Lister deployments;
  Lister reservations;

  // Lists the informers' stores (any may be null).
  static FleetSources fromInformers(cache::InformerPtr pools, cache::InformerPtr deployments,
                                    cache::InformerPtr reservations);
};

// Registers the families above on `reg` (std::invalid_argument if a name is taken).
void registerFleetMetrics(metrics::Registry& reg, FleetSources sources);

// The family names registerFleetMetrics adds, in registration order.
std::vector<std::string> fleetMetricNames();

}  // namespace waterline::reconcilers
