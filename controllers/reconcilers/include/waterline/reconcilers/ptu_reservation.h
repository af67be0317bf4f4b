#pragma once
// PTUReservation reconciler: admission (planners::planPtuAdmission over every reservation,
// deployment and pool in the cache), the reservation's status (phase, sizing, placements,
// Ready / Insufficient conditions, unit-hours accrued by the minute) by server-side apply,
// a finalizer so that deleting a reservation releases its capacity before it is gone,
// and Events on phase changes. Capacity appearing (a pool's allocatable GPUs or
// reservableFraction changing), another reservation released, or the deployment changing
// re-admits the waiting reservations. Time boundaries (startTime, endTime) and accrual
// (every minute while Active) are requeues.
#include <memory>

#include "waterline/cache/informer.h"
#include "waterline/common/time.h"
#include "waterline/kube/client.h"
#include "waterline/runtime/controller.h"
#include "waterline/runtime/events.h"

namespace waterline::reconcilers {

struct PtuReservationDeps {
  kube::ClientPtr client;  // writes only
  cache::InformerPtr reservations;
  cache::InformerPtr deployments;
  cache::InformerPtr pools;
  runtime::EventRecorderPtr recorder;
  TimeSourcePtr time;
};

class PtuReservationReconciler final : public runtime::Reconciler {
 public:
  explicit PtuReservationReconciler(PtuReservationDeps deps) : d_(std::move(deps)) {}
  runtime::ReconcileResult reconcile(const runtime::Request& req) override;

 private:
  PtuReservationDeps d_;
};

runtime::ControllerPtr newPtuReservationController(PtuReservationDeps deps, runtime::ControllerOptions opts = {});

// GPUs held in `pool` by Active reservations (their status.placements), rounded up: the
// CapacityPool's status.gpus.reserved.
int32_t reservedGpusInPool(const std::vector<std::shared_ptr<const kube::Json>>& reservations,
                           const std::string& pool);

}  // namespace waterline::reconcilers
