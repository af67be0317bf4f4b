#pragma once
// Durable assignments. The bind step writes the decision on the pod as
//   waterline.dev/gpu-assignment: "v1;node=<node>;gpus=0,1"                 (whole GPUs)
//   waterline.dev/gpu-assignment: "v1;node=<node>;gpu=3;mig=3g.40gb@4"      (MIG instance)
//   waterline.dev/gpu-assignment: "v1;node=<node>;gpu=2;share=4,5/8[;mem=20389]"
//       (slices 4 and 5 of a GPU split into 8, i.e. a 1/4 share; the share's memory in MiB)
// and reservations record their GPUs as
//   waterline.dev/gpu-reservation: "v1;name=<r>;deployment=<ns/name>;at=<node>:0,1;at=..."
// After a restart Inventory::rebuild() reads them back to the same occupancy.
#include <expected>
#include <string>
#include <string_view>

#include "waterline/scheduling/model.h"

namespace waterline::scheduling {

inline constexpr std::string_view kAssignmentAnnotation = "waterline.dev/gpu-assignment";
inline constexpr std::string_view kReservationAnnotation = "waterline.dev/gpu-reservation";

std::string encodeAssignment(const Assignment& a);
std::expected<Assignment, std::string> decodeAssignment(std::string_view s);

std::string encodeReservation(const ReservationRecord& r);
std::expected<ReservationRecord, std::string> decodeReservation(std::string_view s);

}  // namespace waterline::scheduling
