#pragma once
// A cached answer, kept in one normalised form whichever way it arrived (a JSON
// completion or an SSE stream), and rendered back either way in OpenAI's shape.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "waterline/caching/request.h"

namespace waterline::caching {

struct StoredChoice {
  int index = 0;
  std::string content;        // chat: message.content; completions: text
  std::string finishReason;   // "stop", "length", ...
  bool operator==(const StoredChoice&) const = default;
};

struct StoredAnswer {
  Api api = Api::Chat;
  std::string model;          // the response's `model`
  std::optional<std::string> systemFingerprint;
  std::vector<StoredChoice> choices;  // sorted by index
  std::int64_t promptTokens = 0;
  std::int64_t completionTokens = 0;
  bool operator==(const StoredAnswer&) const = default;

  // Bytes this answer holds (strings' capacity plus the struct), for the cache's size.
  std::size_t bytes() const;
};

// From a 200 JSON completion body. nullopt when the body is not a plain completion that
// can be replayed exactly: not JSON, no choices, a choice with tool_calls, function_call,
// refusal, logprobs or audio, a content that is not a string, or a missing finish_reason.
std::optional<StoredAnswer> answerFromJson(std::string_view body, Api api);

// Collects an SSE stream (the bytes as they arrive, any split) into a StoredAnswer: the
// content deltas concatenated per choice index, the finish_reason, model, fingerprint and
// the usage chunk when present. finish() gives nullopt unless the stream ended with
// `data: [DONE]`, every choice has a finish_reason, no event was an error or carried
// tool_calls/refusal/logprobs, and the stream was at most `maxBytes` long.
class SseAnswerCollector {
 public:
  explicit SseAnswerCollector(Api api, std::size_t maxBytes = 1 << 20);
  void feed(std::string_view bytes);
  std::optional<StoredAnswer> finish();

 private:
  struct State;
  std::shared_ptr<State> s_;
};

// The answer as a JSON completion ("chat.completion" / "text_completion") with the given
// id and created time, and usage {prompt_tokens, completion_tokens, total_tokens}.
std::string renderJson(const StoredAnswer& a, std::string_view id, std::int64_t created);

// The answer as an SSE stream in OpenAI's shape, byte for byte: for chat, per choice a
// first chunk with delta {"role":"assistant","content":""}, then one chunk with the whole
// content, then a chunk with an empty delta and the finish_reason; for completions, a
// chunk with the text and finish_reason null, then one with "" and the finish_reason.
// Each event is `data: <json>\n\n` with the keys in OpenAI's order (id, object, created,
// model, system_fingerprint when known, choices); with includeUsage every chunk carries
// "usage":null and a last chunk has "choices":[] and the usage. Ends `data: [DONE]\n\n`.
std::string renderSse(const StoredAnswer& a, std::string_view id, std::int64_t created, bool includeUsage);

}  // namespace waterline::caching
