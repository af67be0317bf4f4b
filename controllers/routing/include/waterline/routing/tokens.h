#pragma once
// Token estimation for admission, and the `usage` a response reports for settlement.
//
// Estimator (documented in docs/routing.md):
//   prompt tokens  = ceil(characters / charsPerToken) summed over the text the model
//                    reads, + tokensPerMessage per chat message (role and framing);
//                    characters are Unicode code points; image parts count
//                    tokensPerImage; a completions prompt given as token ids counts
//                    exactly one token per id; an embeddings `input` counts the
//                    same way (strings by characters, token ids one each, also inside
//                    arrays of token arrays).
//   output tokens  = (max_completion_tokens, else max_tokens, else defaultMaxTokens) x n;
//                    0 for embeddings (they generate no tokens: a reservation is
//                    charged the input only)
//   charged tokens = prompt x inputTokenWeight + output x outputTokenWeight
// The charge is an upper bound on the output and an estimate of the prompt; settlement
// with the response's usage refunds or charges the difference.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace waterline::routing {

enum class ApiKind { ChatCompletions, Completions, Embeddings };

struct EstimatorOptions {
  double charsPerToken = 4.0;
  int64_t tokensPerMessage = 4;
  int64_t tokensPerImage = 85;
  int64_t defaultMaxTokens = 1024;  // when the request sets no max_tokens
};

struct TokenEstimate {
  int64_t promptTokens = 0;
  int64_t maxOutputTokens = 0;
};

// Never throws; ignores fields of the wrong type (request validation is the caller's).
TokenEstimate estimateTokens(const nlohmann::json& body, ApiKind kind, const EstimatorOptions& opts = {});

// Unicode code points in UTF-8 text (bytes that are not continuation bytes).
std::size_t countCodePoints(std::string_view s);

struct Usage {
  int64_t promptTokens = 0;
  int64_t completionTokens = 0;
  bool operator==(const Usage&) const = default;
};

// {"usage": {"prompt_tokens": N, "completion_tokens": M, ...}} (null or absent: nullopt).
// An embeddings usage ({"prompt_tokens": N, "total_tokens": N}) reads as completion 0.
std::optional<Usage> usageFromJson(const nlohmann::json& body);

// The same from JSON text without parsing all of it: finds the last "usage" key whose
// value is an object (skipping string contents) and parses only that object. For
// completion bodies, whose usage comes last, this is several times cheaper than a DOM.
std::optional<Usage> findUsage(std::string_view jsonText);

// Scans a Server-Sent Events stream as it passes through: counts `data:` events (other
// than `[DONE]`) and remembers the last event whose JSON carries a non-null `usage`
// (OpenAI's `stream_options.include_usage`). Bytes may arrive in any split, with the
// same result: a line longer than 1 MiB is skipped (not counted, not read).
class SseUsageScanner {
 public:
  void feed(std::string_view bytes);
  // The last usage seen, if any.
  const std::optional<Usage>& usage() const { return usage_; }
  // Data events seen (excluding [DONE]); each normally carries one generated token.
  int64_t events() const { return events_; }

 private:
  void line(std::string_view l);
  std::string partial_;
  bool overflow_ = false;
  std::optional<Usage> usage_;
  int64_t events_ = 0;
};

}  // namespace waterline::routing
