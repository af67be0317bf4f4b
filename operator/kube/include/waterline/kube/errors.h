#pragma once
// A Kubernetes metav1.Status (or a transport failure) as a typed error.
#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace waterline::kube {

struct StatusCause {
  std::string reason;   // e.g. FieldValueInvalid
  std::string message;
  std::string field;    // e.g. spec.sharing.mode
};

struct ApiError {
  enum class Reason {
    Unknown,
    BadRequest,          // 400
    Unauthorized,        // 401
    Forbidden,           // 403
    NotFound,            // 404
    MethodNotAllowed,    // 405
    AlreadyExists,       // 409 reason AlreadyExists
    Conflict,            // 409 (resourceVersion / apply conflict)
    Gone,                // 410 (Gone or Expired: resourceVersion too old)
    Invalid,             // 422
    TooManyRequests,     // 429
    InternalError,       // 500
    ServiceUnavailable,  // 503
    Timeout,             // 504 or server/client timeout
    Transport,           // connect/TLS/read failure: no HTTP answer
    Decode,              // the answer could not be parsed
  };

  Reason reason = Reason::Unknown;
  int httpCode = 0;  // 0 when no HTTP answer
  std::string message;
  std::string statusReason;  // Status.reason as sent ("NotFound", "Expired", ...)
  std::vector<StatusCause> causes;
  std::optional<std::chrono::seconds> retryAfter;  // 429/503 Retry-After or details

  bool isNotFound() const { return reason == Reason::NotFound; }
  bool isConflict() const { return reason == Reason::Conflict; }
  bool isAlreadyExists() const { return reason == Reason::AlreadyExists; }
  bool isGone() const { return reason == Reason::Gone; }
  bool isInvalid() const { return reason == Reason::Invalid; }
  bool isTooManyRequests() const { return reason == Reason::TooManyRequests; }
  bool isTimeout() const { return reason == Reason::Timeout; }
  // Worth retrying after a backoff (timeouts, 429, 5xx, transport errors).
  bool isRetryable() const;

  // One line: "<Reason> (<code>): <message> [field: message; ...]".
  std::string describe() const;
};

const char* toString(ApiError::Reason r);

// Builds the ApiError for a non-2xx answer: `body` is normally a metav1.Status (its
// reason, message and details.causes / details.retryAfterSeconds are used); any other
// body becomes the message. The reason comes from Status.reason when it is one we know,
// else from the HTTP code. `retryAfterHeader` is the Retry-After header ("" if none;
// delta-seconds only).
ApiError errorFromResponse(int httpCode, std::string_view body,
                           std::string_view retryAfterHeader = {});
// The same from an already-parsed Status object (a watch ERROR event's object); its
// `code` field stands in for the HTTP code.
ApiError errorFromStatus(const nlohmann::json& status);

// No HTTP answer: connect/TLS/read failure, or a client-side timeout.
ApiError transportError(std::string message);
ApiError timeoutError(std::string message);
// An answer that could not be parsed.
ApiError decodeError(std::string message);

}  // namespace waterline::kube
