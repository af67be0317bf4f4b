// Fuzzes routing::estimateTokens (the PTU admission charge) on arbitrary request bodies.
//
// Invariants (hardening finding 1: max_tokens x n wrapped negative and was admitted at a
// zero charge):
//   - promptTokens >= 0 and maxOutputTokens >= 0, under the default estimator options and
//     under hostile ones (INT64_MAX per message and per image, NaN chars per token, a
//     negative default max_tokens);
//   - embeddings charge no output (maxOutputTokens 0); for chat and completions the
//     output bound is at least the request's own max_completion_tokens / max_tokens
//     (n >= 1 multiplies, it never shrinks it), and at most max x 128;
//   - adding a message never lowers the prompt estimate (sums saturate, never wrap);
//   - a limiter of L tokens per minute never admits a charge above L.
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>

#include <nlohmann/json.hpp>

#include "fuzz_check.h"
#include "waterline/routing/admission.h"
#include "waterline/routing/tokens.h"

using nlohmann::json;
using namespace waterline::routing;

namespace {

std::optional<int64_t> requestedMax(const json& body) {
  for (const char* k : {"max_completion_tokens", "max_tokens"}) {
    auto it = body.find(k);
    if (it == body.end() || !it->is_number_integer()) continue;
    if (it->is_number_unsigned()) return static_cast<int64_t>(std::min<uint64_t>(it->get<uint64_t>(), INT64_MAX));
    if (it->get<int64_t>() >= 0) return it->get<int64_t>();
  }
  return std::nullopt;
}

void check(const json& body, ApiKind kind, const EstimatorOptions& o) {
  const TokenEstimate e = estimateTokens(body, kind, o);
  WL_FUZZ_CHECK(e.promptTokens >= 0, "promptTokens %lld", static_cast<long long>(e.promptTokens));
  WL_FUZZ_CHECK(e.maxOutputTokens >= 0, "maxOutputTokens %lld", static_cast<long long>(e.maxOutputTokens));
  if (kind == ApiKind::Embeddings)  // no output: max_tokens is not an embeddings field
    WL_FUZZ_CHECK(e.maxOutputTokens == 0, "embeddings maxOutputTokens %lld", static_cast<long long>(e.maxOutputTokens));
  if (body.is_object() && kind != ApiKind::Embeddings) {
    if (auto m = requestedMax(body)) {
      WL_FUZZ_CHECK(e.maxOutputTokens >= *m, "maxOutputTokens %lld < requested %lld",
                    static_cast<long long>(e.maxOutputTokens), static_cast<long long>(*m));
      const __int128 upper = static_cast<__int128>(*m) * 128;
      WL_FUZZ_CHECK(static_cast<__int128>(e.maxOutputTokens) <= upper, "maxOutputTokens %lld > 128 x requested",
                    static_cast<long long>(e.maxOutputTokens));
    }
    // One more message (or prompt string) never lowers the prompt estimate.
    json more = body;
    if (kind == ApiKind::ChatCompletions) {
      auto it = more.find("messages");
      if (it != more.end() && it->is_array()) {
        it->push_back({{"role", "user"}, {"content", "one more"}});
        const TokenEstimate e2 = estimateTokens(more, kind, o);
        WL_FUZZ_CHECK(e2.promptTokens >= e.promptTokens, "a message lowered the estimate: %lld -> %lld",
                      static_cast<long long>(e.promptTokens), static_cast<long long>(e2.promptTokens));
      }
    }
  }
  // The charge the router makes (weights 1): a limiter never admits more than its limit.
  waterline::routing::LimiterConfig cfg;
  cfg.tokensPerMinute = 100'000;
  cfg.slots = 60;
  ReservationLimiter lim(cfg);
  const double charge = static_cast<double>(e.promptTokens) + static_cast<double>(e.maxOutputTokens);
  WL_FUZZ_CHECK(charge >= 0 && !std::isnan(charge), "charge %g", charge);
  const auto now = waterline::MonotonicTime{} + std::chrono::hours(1);
  if (auto t = lim.tryAdmit(charge, now)) {
    WL_FUZZ_CHECK(charge <= lim.limit(), "admitted %g over a limit of %g", charge, lim.limit());
    WL_FUZZ_CHECK(t->charged == charge, "charged %g for an estimate of %g", t->charged, charge);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const json body = json::parse(data, data + size, nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded()) return 0;
  EstimatorOptions hostile;
  hostile.tokensPerMessage = INT64_MAX;
  hostile.tokensPerImage = INT64_MAX;
  hostile.defaultMaxTokens = -5;
  hostile.charsPerToken = std::numeric_limits<double>::quiet_NaN();
  EstimatorOptions tiny;
  tiny.charsPerToken = 1e-300;  // every character a huge number of tokens
  for (ApiKind kind : {ApiKind::ChatCompletions, ApiKind::Completions, ApiKind::Embeddings})
    for (const EstimatorOptions& o : {EstimatorOptions{}, hostile, tiny}) check(body, kind, o);
  return 0;
}
