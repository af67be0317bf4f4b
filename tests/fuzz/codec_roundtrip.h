#pragma once
// The round-trip check shared by the three resource codec harnesses (capacity_pool_codec,
// model_deployment_codec, ptu_reservation_codec), mirroring tests/unit/api/codec_test.cc:
//
//   x1 = T::fromJson(input); if it decodes:
//     - validate(x1) returns (a list of messages, none empty);
//     - x2 = T::fromJson(x1.toJson()) decodes and equals x1 (nothing is lost or changed by
//       encoding), and validate(x2) == validate(x1);
//     - x1.toJson(false) has no status and decodes to x1 with a default status.
//
// metav1.Time is encoded in whole seconds (as the apiserver does), so times in the input
// are first rewritten to their encoded form: every string that parseTime accepts is
// replaced by formatTime of it. Any other difference is a codec bug.
#include <cstddef>
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "fuzz_check.h"
#include "waterline/api/meta.h"

namespace waterline::fuzz {

inline void normalizeTimes(nlohmann::json& j, int depth = 0) {
  if (depth > 64) return;
  if (j.is_string()) {
    if (auto t = api::parseTime(j.get_ref<const std::string&>())) j = api::formatTime(*t);
  } else if (j.is_structured()) {
    for (auto& v : j) normalizeTimes(v, depth + 1);
  }
}

template <class T>
int codecRoundTrip(const uint8_t* data, size_t size) {
  nlohmann::json doc = nlohmann::json::parse(data, data + size, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return 0;
  normalizeTimes(doc);
  auto x1 = T::fromJson(doc);
  if (!x1) {
    WL_FUZZ_CHECK(!x1.error().empty(), "a decode error without a message");
    return 0;
  }
  const auto errs1 = validate(*x1);
  for (const auto& e : errs1) WL_FUZZ_CHECK(!e.empty(), "an empty validation message");

  const nlohmann::json j1 = x1->toJson();
  auto x2 = T::fromJson(j1);
  WL_FUZZ_CHECK(x2.has_value(), "toJson does not decode: %s\n  %s", x2.error().c_str(), j1.dump().c_str());
  WL_FUZZ_CHECK(*x2 == *x1, "toJson/fromJson changed the object:\n  in:  %s\n  out: %s", doc.dump().c_str(),
                j1.dump().c_str());
  WL_FUZZ_CHECK(x2->toJson() == j1, "encoding is not stable");
  WL_FUZZ_CHECK(validate(*x2) == errs1, "validation changed across the round trip");

  const nlohmann::json spec = x1->toJson(false);
  WL_FUZZ_CHECK(!spec.contains("status"), "toJson(false) has a status");
  auto x3 = T::fromJson(spec);
  WL_FUZZ_CHECK(x3.has_value(), "toJson(false) does not decode: %s", x3.error().c_str());
  auto want = *x1;
  want.status = {};
  WL_FUZZ_CHECK(*x3 == want, "toJson(false)/fromJson changed the spec");
  return 0;
}

}  // namespace waterline::fuzz
