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
  Embeddings,        // POST /v1/embeddings
  AzureChat,         // POST /openai/deployments/{name}/chat/completions
  AzureCompletions,  // POST /openai/deployments/{name}/completions
  AzureEmbeddings,   // POST /openai/deployments/{name}/embeddings
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
    switch (kind) {
      case RouteKind::ChatCompletions:
      case RouteKind::Completions:
      case RouteKind::Embeddings:
      case RouteKind::AzureChat:
      case RouteKind::AzureCompletions:
      case RouteKind::AzureEmbeddings:
        return true;
      default:
        return false;
    }
  }
  // An OpenAI (/v1) path: the body's `model` names the deployment (required). On the
  // Azure paths the path does.
  bool modelInBody() const {
    return kind == RouteKind::ChatCompletions || kind == RouteKind::Completions || kind == RouteKind::Embeddings;
  }
  routing::ApiKind apiKind() const {
    switch (kind) {
      case RouteKind::Completions:
      case RouteKind::AzureCompletions:
        return routing::ApiKind::Completions;
      case RouteKind::Embeddings:
      case RouteKind::AzureEmbeddings:
        return routing::ApiKind::Embeddings;
      default:
        return routing::ApiKind::ChatCompletions;
    }
  }
  // The OpenAI path the upstream serves.
  std::string_view upstreamPath() const {
    switch (apiKind()) {
      case routing::ApiKind::Completions:
        return "/v1/completions";
      case routing::ApiKind::Embeddings:
        return "/v1/embeddings";
      case routing::ApiKind::ChatCompletions:
        break;
    }
    return "/v1/chat/completions";
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

// Parses and validates a request body. The model is required on the OpenAI paths
// (`requireModel`); on Azure paths the path names the deployment. Checks: valid JSON
// (400), depth <= maxDepth (400), an object (400), `model` a string when present, then
//   chat:        `messages` a non-empty array of objects with a `role`;
//   completions: `prompt` a string or array;
//   both:        `stream` a boolean, `max_tokens`/`max_completion_tokens`/`n`
//                non-negative integers;
//   embeddings:  `input` a non-empty string, or a non-empty array of non-empty strings,
//                of non-negative integer token ids, or of non-empty arrays of them (one
//                kind throughout); `encoding_format` "float" or "base64" and
//                `dimensions` a positive integer when present.
// Each error is OpenAI's 400 shape with the offending `param` ("input[2]", ...).
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
