// Fuzzes the router's request-body handling: parseRequestBody (chat, completions and
// embeddings, with and without a required model), then for accepted bodies the token estimate, the usage
// clamp and the bounded quote of the model name, checking their invariants.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <string_view>

#include "waterline/router/openai.h"
#include "waterline/routing/tokens.h"

using namespace waterline;

namespace {
[[noreturn]] void fail() { std::abort(); }
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const unsigned sel = data[0];
  const std::string_view body(reinterpret_cast<const char*>(data + 1), size - 1);
  // Bit 2 picks embeddings (bit 0 chat or completions otherwise), bit 1 requires a model.
  const auto kind = (sel & 4)   ? routing::ApiKind::Embeddings
                    : (sel & 1) ? routing::ApiKind::Completions
                                : routing::ApiKind::ChatCompletions;
  const bool requireModel = (sel & 2) != 0;
  auto parsed = router::parseRequestBody(body, kind, requireModel, 64);
  if (!parsed) {
    const auto& e = parsed.error();
    if (e.status != 400 || e.message.empty()) fail();
    (void)e.body();  // must not throw
    return 0;
  }
  const auto est = routing::estimateTokens(*parsed, kind);
  if (kind == routing::ApiKind::Embeddings && est.maxOutputTokens != 0) fail();  // input only is charged
  if (kind == routing::ApiKind::Embeddings && est.promptTokens < 1) fail();       // a valid input is never empty
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  for (routing::Usage u : {routing::Usage{kMax, kMax}, routing::Usage{-1, std::numeric_limits<int64_t>::min()},
                           routing::Usage{est.promptTokens, est.maxOutputTokens}}) {
    const auto c = router::clampUsage(u, est, body.size());
    if (c.promptTokens < 0 || c.completionTokens < 0) fail();
    if (c.promptTokens > router::promptTokenBound(est, body.size())) fail();
    if (c.completionTokens > std::max<int64_t>(0, est.maxOutputTokens)) fail();
    if (c.promptTokens > u.promptTokens && u.promptTokens >= 0) fail();
  }
  if (auto m = parsed->find("model"); m != parsed->end() && m->is_string()) {
    const std::string q = router::quoteBounded(m->get_ref<const std::string&>());
    if (q.size() > router::kMaxQuotedBytes + 3) fail();
    (void)router::makeError(404, "The model `" + q + "` does not exist.").body();
  }
  return 0;
}
