#pragma once
// The router's request handling that needs no sockets: which endpoint a target is,
// request-body validation, OpenAI-shaped errors and model -> deployment resolution.
#include <cstdint>
#include <expected>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "waterline/routing/table.h"
#include "waterline/routing/tokens.h"

namespace waterline::router {

enum class RouteKind {
  ChatCompletions,   // POST /v1/chat/completions
  Completions,       // POST /v1/completions
  AzureChat,         // POST /openai/deployments/{name}/chat/completions
  AzureCompletions,  // POST /openai/deployments/{name}/completions
  Models,            // GET /v1/models
  Metrics,           // GET /metrics
  Healthz,           // GET /healthz
  Readyz,            // GET /readyz
  DebugRoutes,       // GET /debug/routes
  NotFound,
};

struct Target {
  RouteKind kind = RouteKind::NotFound;
  std::string deployment;  // Azure paths: the {name} segment (percent-decoded)
  bool post = false;       // the kind expects POST (else GET)

  bool proxied() const {
    return kind == RouteKind::ChatCompletions || kind == RouteKind::Completions ||
           kind == RouteKind::AzureChat || kind == RouteKind::AzureCompletions;
  }
  routing::ApiKind apiKind() const {
    return kind == RouteKind::Completions || kind == RouteKind::AzureCompletions ? routing::ApiKind::Completions
                                                                                  : routing::ApiKind::ChatCompletions;
  }
  // The OpenAI path the upstream serves.
  std::string_view upstreamPath() const {
    return apiKind() == routing::ApiKind::Completions ? "/v1/completions" : "/v1/chat/completions";
  }
};

// Classifies an HTTP target (path and optional query; the query is ignored).
Target classifyTarget(std::string_view target);

// An error in OpenAI's shape: {"error":{"message","type","param","code"}}.
struct ApiError {
  int status = 400;
  std::string message;
  std::string type = "invalid_request_error";
  std::optional<std::string> param;
  std::optional<std::string> code;

  std::string body() const;
};

// Builds an ApiError (a plain function: GCC 12 miscompiles some braced aggregate
// initialisations inside coroutines).
ApiError makeError(int status, std::string message, std::string type = "invalid_request_error",
                   std::optional<std::string> code = std::nullopt, std::optional<std::string> param = std::nullopt);

// Request data quoted in an error message (model, deployment, path, method): at most
// `maxBytes` bytes of it, cut at a UTF-8 character boundary, with "…" appended when cut.
// ApiError::body() replaces invalid UTF-8, so any bytes may be quoted.
constexpr std::size_t kMaxQuotedBytes = 256;
std::string quoteBounded(std::string_view s, std::size_t maxBytes = kMaxQuotedBytes);

// Upstream `usage` clamped to what the request could have produced (docs/routing.md,
// "Settlement"): completion tokens to [0, est.maxOutputTokens] (the request's
// max_tokens x n, or --default-max-tokens x n), prompt tokens to
// [0, promptTokenBound(est, bodyBytes)]. An upstream that reports INT64_MAX (or a
// negative count) cannot lock or refund a reservation beyond the request's own size.
routing::Usage clampUsage(routing::Usage u, const routing::TokenEstimate& est, std::size_t requestBodyBytes);
// The most prompt tokens a request of `requestBodyBytes` bytes may have cost: every byte
// of its body once (a token of text the client sent is at least one byte of it), plus
// kPromptBoundEstimateFactor x the estimate (tokens the server adds that the body does not
// spell out: chat-template framing per message, and images, whose tokens come from pixels,
// not from the bytes of their URL). Saturates instead of overflowing.
constexpr std::int64_t kPromptBoundEstimateFactor = 16;
std::int64_t promptTokenBound(const routing::TokenEstimate& est, std::size_t requestBodyBytes);

// The deepest nesting of arrays/objects in JSON text (strings skipped); stops counting
// past `limit`.
int jsonDepth(std::string_view text, int limit = 1 << 20);

// Parses and validates a completion request body. The model is required on the OpenAI
// paths (`requireModel`); on Azure paths the path names the deployment. Checks:
// valid JSON (400), depth <= maxDepth (400), an object (400), `model` a string when
// present, `messages` a non-empty array of objects (chat) / `prompt` present (completions),
// `stream` a boolean, `max_tokens`/`max_completion_tokens`/`n` non-negative integers.
std::expected<nlohmann::json, ApiError> parseRequestBody(std::string_view body, routing::ApiKind kind,
                                                         bool requireModel, int maxDepth = 64);

// GET /v1/models: the table's deployments as an OpenAI model list
// ({"object":"list","data":[...]}). Each item carries every field the OpenAI Model type
// requires (id = "namespace/name", object, created, owned_by), plus root (the model the
// workers serve) and deployment_type. The table knows no creation time: `createdUnix`
// (the caller's clock, Unix seconds) is given to all, as vLLM does for its model list.
std::string modelsListBody(const routing::RoutingTable& table, std::int64_t createdUnix);

// A routing table with lookups by deployment key, deployment name and model name.
class DeploymentIndex {
 public:
  explicit DeploymentIndex(routing::RoutingTable table);

  const routing::RoutingTable& table() const { return table_; }
  // "namespace/name" first, then a deployment name, then a model name. A name or model
  // that several deployments share resolves to the one that is no other candidate's
  // spillover target, then the first by namespace/name.
  const routing::DeploymentRoutes* resolve(std::string_view model) const;
  const routing::DeploymentRoutes* find(const routing::DeploymentKey& key) const { return table_.find(key); }
  // The deployment's spillover target (same namespace), if set and present.
  const routing::DeploymentRoutes* spilloverOf(const routing::DeploymentRoutes& d) const;

 private:
  const routing::DeploymentRoutes* pick(std::string_view key,
                                        const std::unordered_map<std::string, std::vector<const routing::DeploymentRoutes*>>& m) const;
  routing::RoutingTable table_;
  std::unordered_map<std::string, const routing::DeploymentRoutes*> byKey_;
  std::unordered_map<std::string, std::vector<const routing::DeploymentRoutes*>> byName_, byModel_;
};

}  // namespace waterline::router
