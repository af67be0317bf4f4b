#pragma once
// PTU admission (pure): which PTUReservations hold capacity, where, and the status each
// one gets. A function of (all reservations, their deployments, all pools, now).
//
//   replicas      = ceil(units × tokensPerMinutePerUnit / deployment tokensPerMinutePerReplica)
//   GPUs/replica  = spec.gpu of the deployment (count, or the fraction of a MIG
//                   instance / share)
//   pools         = those the reservation's scope allows (Regional: region, DataZone:
//                   data zone, Global: any) AND the deployment's type allows, whose sharing
//                   mode fits the deployment's GPU request
//   reservable    = floor(reservableFraction × status.gpus.allocatable) GPUs per pool
//
// Reservations are admitted one at a time, in a fixed order: those already Active first
// (so a new reservation never takes capacity from one that holds it), then by creation
// time, then namespace/name. A reservation is admitted whole or not at all: all its
// replicas fit into the reservable GPUs left in its pools (most room first), or it holds
// nothing and is Insufficient, with a message saying how much is missing and what each
// pool has. Outside its time window (before startTime: Pending; at or after endTime:
// Expired) or while being deleted a reservation holds nothing. Capacity is counted per
// pool, not per node: reserved GPUs are a share of the pool, not particular GPUs.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "waterline/api/capacity_pool.h"
#include "waterline/api/model_deployment.h"
#include "waterline/api/ptu_reservation.h"
#include "waterline/common/time.h"

namespace waterline::planners {

namespace ptu {
// Ready reasons (Ready=True: Provisioned).
inline constexpr std::string_view kProvisioned = "Provisioned";
inline constexpr std::string_view kNotStarted = "NotStarted";
inline constexpr std::string_view kExpired = "Expired";
inline constexpr std::string_view kInsufficientCapacity = "InsufficientCapacity";
inline constexpr std::string_view kDeploymentNotFound = "DeploymentNotFound";
inline constexpr std::string_view kThroughputUnknown = "ThroughputUnknown";
// Insufficient=False.
inline constexpr std::string_view kCapacityAvailable = "CapacityAvailable";
}  // namespace ptu

struct PtuAdmissionInput {
  std::vector<api::CapacityPool> pools;
  std::vector<api::PTUReservation> reservations;
  std::map<std::string, api::ModelDeployment> deployments;  // "namespace/name"
  SystemTime now{};
};

struct PtuAdmission {
  api::ReservationPhase phase = api::ReservationPhase::Pending;
  std::string reason;   // a ptu:: reason
  std::string message;  // for the conditions
  int32_t replicas = 0;                // sized replicas (0 when unknown)
  int64_t provisionedTokensPerMinute = 0;  // units × tokensPerMinutePerUnit
  std::vector<api::ReservationPlacement> placements;  // when Active, sorted by pool
  // When the outcome changes by time alone (startTime or endTime), if it does.
  std::optional<SystemTime> nextChange;
};

struct PtuAdmissionPlan {
  std::map<std::string, PtuAdmission> byReservation;  // "namespace/name"
  std::map<std::string, double> reservedGpus;          // pool -> GPUs held by Active reservations
};

PtuAdmissionPlan planPtuAdmission(const PtuAdmissionInput& in);

// Whether a pool can host replicas of this GPU request (sharing mode and shape).
bool poolFitsRequest(const api::CapacityPoolSpec& pool, const api::GpuRequest& gpu);
// Whether the reservation's scope and the deployment's type both allow the pool.
bool poolInScope(const api::CapacityPoolSpec& pool, const api::ReservationScope& scope,
                 const api::ModelDeploymentSpec& deployment);

// The status a reservation gets for its admission: phase, sizing, placements, the Ready
// and Insufficient conditions (lastTransitionTime kept while a status does not change),
// and unit-hours accrued up to `now` while Active (billing per started minute from
// spec.startTime, or creationTimestamp when absent; time spent not Active is skipped:
// lastAccrualTime moves on without adding). Other fields (used tokens, throttled and
// spilled requests) are kept from `current`.
api::PTUReservationStatus planPtuStatus(const api::PTUReservation& r, const PtuAdmission& a, SystemTime now);

}  // namespace waterline::planners
