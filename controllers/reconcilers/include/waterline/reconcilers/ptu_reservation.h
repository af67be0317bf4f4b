#pragma once
// PTUReservation reconciler: admission (planners::planPtuAdmission over every reservation,
// deployment and pool in the cache), the reservation's status (phase, sizing, placements,
// Ready / Insufficient conditions, unit-hours accrued by the minute) by server-side apply,
// a finalizer so that deleting a reservation releases its capacity before it is gone,
// and Events on phase changes. Capacity appearing (a pool's allocatable GPUs or
// reservableFraction changing), another reservation released, or the deployment changing
// re-admits the waiting reservations. Time boundaries (startTime, endTime) and accrual
// (every minute while Active) are requeues.
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <memory>
#include <optional>

#include "waterline/api/ptu_reservation.h"
#include "waterline/cache/informer.h"
#include "waterline/cache/lister.h"
#include "waterline/capacity/capacity_cache.h"
#include "waterline/planners/ptu_admission.h"
#include "waterline/common/time.h"
#include "waterline/kube/client.h"
#include "waterline/runtime/controller.h"
#include "waterline/runtime/events.h"
#include "waterline/reconcilers/observations.h"
#include "waterline/sources/prometheus.h"

namespace waterline::reconcilers {

struct PtuReservationDeps {
  kube::WriterPtr writer;  // its reads come from listers
  cache::InformerPtr reservations;
  cache::InformerPtr deployments;
  cache::InformerPtr pools;
  runtime::EventRecorderPtr recorder;
  TimeSourcePtr time;
  // Reclaim (optional): the process's capacity cache. An Active reservation whose holds
  // miss GPUs because other deployments' workers fill the pool evicts the lowest-priority
  // unreserved ones (planners::planReclaim) through the Eviction API, so
  // PodDisruptionBudgets apply too; the cache counts the evicted workers as deleting
  // until the watch shows them so.
  capacity::CapacityCachePtr capacity = nullptr;
  // Observed load (optional): weighted tokens/min per pool of a deployment (the routing
  // publisher's LoadFunc, from Prometheus); usedTokensPerMinute is its sum, shared among
  // the deployment's Active reservations by provisioned tokens.
  LoadFunc load = nullptr;
  PtuCountersFunc routerCounts = nullptr;  // optional: throttledRequests, spilledRequests
  // A status that differs only by accrual (unitHoursConsumed, lastAccrualTime) is
  // written at most this often; accrual resumes from the written lastAccrualTime, so the
  // count stays exact and only its visibility lags. 0: at every reconcile.
  Duration accrualWriteInterval = std::chrono::minutes(5);
};

class PtuReservationReconciler final : public runtime::Reconciler {
 public:
  explicit PtuReservationReconciler(PtuReservationDeps deps)
      : d_(std::move(deps)),
        reservations_(cache::Lister<api::PTUReservation>::of(d_.reservations)),
        deployments_(cache::Lister<api::ModelDeployment>::of(d_.deployments)),
        pools_(cache::Lister<api::CapacityPool>::of(d_.pools)) {}
  runtime::ReconcileResult reconcile(const runtime::Request& req) override;

 private:
  // Evicts what planReclaim picks; true while GPUs are still missing (requeue soon).
  std::expected<bool, std::string> reclaim(const api::PTUReservation& r, const api::PTUReservationStatus& st,
                                           const std::string& deploymentKey, const planners::PtuAdmissionInput& in);
  PtuReservationDeps d_;
  // Typed listers (cache/lister.h): each object decoded once per version.
  std::shared_ptr<cache::Lister<api::PTUReservation>> reservations_;
  std::shared_ptr<cache::Lister<api::ModelDeployment>> deployments_;
  std::shared_ptr<cache::Lister<api::CapacityPool>> pools_;
};

runtime::ControllerPtr newPtuReservationController(PtuReservationDeps deps, runtime::ControllerOptions opts = {});

}  // namespace waterline::reconcilers
