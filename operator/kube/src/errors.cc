#include "waterline/kube/errors.h"

#include <charconv>
#include <nlohmann/json.hpp>

namespace waterline::kube {

using Json = nlohmann::json;

const char* toString(ApiError::Reason r) {
  using R = ApiError::Reason;
  switch (r) {
    case R::Unknown: return "Unknown";
    case R::BadRequest: return "BadRequest";
    case R::Unauthorized: return "Unauthorized";
    case R::Forbidden: return "Forbidden";
    case R::NotFound: return "NotFound";
    case R::MethodNotAllowed: return "MethodNotAllowed";
    case R::AlreadyExists: return "AlreadyExists";
    case R::Conflict: return "Conflict";
    case R::Gone: return "Gone";
    case R::Invalid: return "Invalid";
    case R::TooManyRequests: return "TooManyRequests";
    case R::InternalError: return "InternalError";
    case R::ServiceUnavailable: return "ServiceUnavailable";
    case R::Timeout: return "Timeout";
    case R::Transport: return "Transport";
    case R::Decode: return "Decode";
  }
  return "Unknown";
}

bool ApiError::isRetryable() const {
  switch (reason) {
    case Reason::Timeout:
    case Reason::TooManyRequests:
    case Reason::InternalError:
    case Reason::ServiceUnavailable:
    case Reason::Transport:
      return true;
    default:
      return httpCode >= 500;
  }
}

std::string ApiError::describe() const {
  std::string out = toString(reason);
  if (httpCode != 0) out += " (" + std::to_string(httpCode) + ")";
  out += ": ";
  out += message.empty() ? std::string(statusReason.empty() ? "no message" : statusReason) : message;
  if (!causes.empty()) {
    out += " [";
    for (size_t i = 0; i < causes.size(); ++i) {
      if (i) out += "; ";
      const auto& c = causes[i];
      if (!c.field.empty()) out += c.field + ": ";
      out += c.message.empty() ? c.reason : c.message;
    }
    out += "]";
  }
  if (retryAfter) out += " (retry after " + std::to_string(retryAfter->count()) + "s)";
  return out;
}

namespace {

using R = ApiError::Reason;

std::optional<R> reasonFromStatusReason(std::string_view s) {
  if (s == "NotFound") return R::NotFound;
  if (s == "AlreadyExists") return R::AlreadyExists;
  if (s == "Conflict") return R::Conflict;
  if (s == "Gone" || s == "Expired") return R::Gone;
  if (s == "Invalid") return R::Invalid;
  if (s == "TooManyRequests") return R::TooManyRequests;
  if (s == "Unauthorized") return R::Unauthorized;
  if (s == "Forbidden") return R::Forbidden;
  if (s == "Timeout" || s == "ServerTimeout") return R::Timeout;
  if (s == "BadRequest") return R::BadRequest;
  if (s == "MethodNotAllowed") return R::MethodNotAllowed;
  if (s == "InternalError") return R::InternalError;
  if (s == "ServiceUnavailable") return R::ServiceUnavailable;
  return std::nullopt;
}

R reasonFromCode(int code) {
  switch (code) {
    case 400: return R::BadRequest;
    case 401: return R::Unauthorized;
    case 403: return R::Forbidden;
    case 404: return R::NotFound;
    case 405: return R::MethodNotAllowed;
    case 409: return R::Conflict;
    case 410: return R::Gone;
    case 422: return R::Invalid;
    case 429: return R::TooManyRequests;
    case 500: return R::InternalError;
    case 503: return R::ServiceUnavailable;
    case 504: return R::Timeout;
    default: break;
  }
  if (code > 500 && code < 600) return R::InternalError;
  return R::Unknown;
}

std::optional<std::chrono::seconds> parseRetryAfter(std::string_view v) {
  while (!v.empty() && v.front() == ' ') v.remove_prefix(1);
  while (!v.empty() && v.back() == ' ') v.remove_suffix(1);
  if (v.empty()) return std::nullopt;
  long long n = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (ec != std::errc() || p != v.data() + v.size() || n < 0) return std::nullopt;  // HTTP-date: ignored
  return std::chrono::seconds(n);
}

std::string str(const Json& j, const char* key) {
  if (!j.is_object()) return {};
  auto it = j.find(key);
  if (it == j.end() || !it->is_string()) return {};
  return it->get<std::string>();
}

// Fills reason-independent Status fields into `e`.
void fillFromStatus(ApiError& e, const Json& status) {
  e.message = str(status, "message");
  e.statusReason = str(status, "reason");
  auto details = status.find("details");
  if (details != status.end() && details->is_object()) {
    auto causes = details->find("causes");
    if (causes != details->end() && causes->is_array()) {
      for (const auto& c : *causes) {
        e.causes.push_back(StatusCause{str(c, "reason"), str(c, "message"), str(c, "field")});
      }
    }
    auto ras = details->find("retryAfterSeconds");
    if (ras != details->end() && ras->is_number_integer() && ras->get<int64_t>() > 0)
      e.retryAfter = std::chrono::seconds(ras->get<int64_t>());
  }
}

void classify(ApiError& e) {
  // A reason we know wins; but a 409 whose reason says nothing specific is a Conflict,
  // and a code we map is used when the reason is empty or unfamiliar.
  if (auto r = reasonFromStatusReason(e.statusReason)) {
    e.reason = *r;
  } else {
    e.reason = reasonFromCode(e.httpCode);
  }
}

}  // namespace

ApiError errorFromStatus(const Json& status) {
  ApiError e;
  if (status.is_object()) {
    auto code = status.find("code");
    if (code != status.end() && code->is_number_integer()) e.httpCode = code->get<int>();
    fillFromStatus(e, status);
  }
  classify(e);
  return e;
}

ApiError errorFromResponse(int httpCode, std::string_view body, std::string_view retryAfterHeader) {
  ApiError e;
  e.httpCode = httpCode;
  Json status = Json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
  if (status.is_object() && str(status, "kind") == "Status") {
    fillFromStatus(e, status);
  } else {
    std::string msg(body.substr(0, 1024));
    while (!msg.empty() && (msg.back() == '\n' || msg.back() == '\r' || msg.back() == ' '))
      msg.pop_back();
    e.message = msg.empty() ? "HTTP " + std::to_string(httpCode) : msg;
  }
  classify(e);
  if (auto ra = parseRetryAfter(retryAfterHeader)) e.retryAfter = ra;
  return e;
}

ApiError transportError(std::string message) {
  ApiError e;
  e.reason = R::Transport;
  e.message = std::move(message);
  return e;
}

ApiError timeoutError(std::string message) {
  ApiError e;
  e.reason = R::Timeout;
  e.message = std::move(message);
  return e;
}

ApiError decodeError(std::string message) {
  ApiError e;
  e.reason = R::Decode;
  e.message = std::move(message);
  return e;
}

}  // namespace waterline::kube
