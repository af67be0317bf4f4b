#pragma once
// What a completion request is, to the response cache (docs/routing.md, "Cache"):
// whether it may be answered from the cache at all, the exact key (every field that can
// change the answer, canonicalised), the parameters key (the same without the prompt:
// a semantic match must agree on all of it) and the prompt text to embed.
// Pure functions on parsed JSON: no I/O, no clock.
#include <expected>
#include <string_view>
#include <string>

#include <nlohmann/json.hpp>

namespace waterline::caching {

enum class Api { Chat, Completions };

// Why a request is not looked up or stored (x-waterline-cache: bypass). Default
// eligibility: no `tools`/`functions`/`tool_choice`/`function_call`, `temperature` 0 or
// unset, no `logprobs`/`top_logprobs`, `n` 1 or unset, no `audio`/`modalities`, a chat
// message content of text parts only, a `prompt` that is a string (completions).
struct Ineligible {
  std::string reason;  // short machine-readable reason: "tools", "temperature", "n", "logprobs", "modalities", "content", "prompt"
};

struct CanonicalRequest {
  // Lower-case hex SHA-256 of the canonical request: model (as given to the function),
  // the prompt (chat: messages with role, name and text content; completions: prompt),
  // and every other body field except those that cannot change the answer (stream,
  // stream_options, user, metadata, store, service_tier, parallel_tool_calls). Canonical
  // means: object keys sorted, numbers as shortest round-trip doubles (1 == 1.0),
  // max_completion_tokens and max_tokens the same field, a content array of text parts
  // the same as their concatenation, a missing optional field the same as its explicit
  // default where OpenAI documents one (temperature 1 is NOT a default here: only 0 or
  // unset is eligible, and they differ).
  std::string exactKey;
  // The same hash without the prompt (chat: without the content of the last user message
  // -- earlier turns stay in it; completions: without the prompt): two requests may share
  // a semantic answer only when this key is equal.
  std::string paramsKey;
  // The text the embedding is taken of: chat: the last user message's text; completions:
  // the prompt.
  std::string promptText;
  bool stream = false;        // the client wants SSE
  bool includeUsage = false;  // stream_options.include_usage
};

// `model` is what the key is bound to (the router passes the deployment's model name and
// version, so a changed model never matches an old entry).
std::expected<CanonicalRequest, Ineligible> canonicalize(const nlohmann::json& body, Api api, std::string_view model);

}  // namespace waterline::caching
