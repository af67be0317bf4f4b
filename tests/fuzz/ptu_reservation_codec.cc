// Fuzzes api::PTUReservation::fromJson on arbitrary JSON: decoding never crashes, errors name
// a field, and whatever decodes survives toJson -> fromJson unchanged and validates the
// same (codec_roundtrip.h has the invariants).
#include "codec_roundtrip.h"
#include "waterline/api/ptu_reservation.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return waterline::fuzz::codecRoundTrip<waterline::api::PTUReservation>(data, size);
}
