#pragma once
// A client for Prometheus's HTTP API instant queries (GET /api/v1/query), the
// autoscaler's metric source, and range queries (GET /api/v1/query_range: waterline-plan). Typed errors, per-attempt timeouts, retries with
// exponential backoff on transport failures, timeouts and 5xx answers (never on 4xx:
// a PromQL error does not get better by asking again), and a safe query renderer.
//
//   auto prom = sources::makeHttpPrometheusClient({.baseUrl = "http://prometheus:9090"});
//   auto q = sources::renderQuery(spec.autoscaling->query, {.deployment = "llama", .ns = "ml"});
//   auto v = q ? sources::queryTotal(*prom, *q) : ...;   // double, or a PromError
//
// The HTTP transport is cpprestsdk; everything else (URL building, response parsing,
// rendering) is a pure function, unit-tested on its own.
#include <chrono>
#include <cstdint>
#include <expected>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "waterline/common/time.h"

namespace waterline::sources {

enum class PromErrorKind {
  BadData,      // the query or request is wrong: a PromQL error (4xx), or an unsupported result type
  Timeout,      // the attempt timed out (client side) or Prometheus reported errorType "timeout"
  Transport,    // no usable HTTP answer: connection refused/reset, DNS, a 5xx without a query error
  EmptyResult,  // the query ran but returned no sample
  NaN,          // the value is NaN or ±Inf
};
std::string_view toString(PromErrorKind k);

struct PromError {
  PromErrorKind kind = PromErrorKind::Transport;
  std::string errorType;  // Prometheus's errorType ("bad_data", "execution", "timeout", ...); may be empty
  std::string message;    // Prometheus's `error` text, or the client's description
  int httpStatus = 0;     // 0 when there was no HTTP answer
  int attempts = 0;       // attempts made (filled in by the client)

  // "<Kind>: <errorType>: <message>" (errorType left out when empty).
  std::string toString() const;
};

struct PromSample {
  std::map<std::string, std::string> labels;  // the `metric` object (empty for a scalar)
  double value = 0;                           // NaN and ±Inf are kept as such
  double timestamp = 0;                       // unix seconds
};

enum class PromResultType { Vector, Scalar };

struct PromResult {
  PromResultType type = PromResultType::Vector;
  std::vector<PromSample> samples;  // a scalar has exactly one
  std::vector<std::string> warnings;
};

using PromResultOr = std::expected<PromResult, PromError>;

// ---- pure parts

// A sample value as Prometheus writes it: decimal/exponent notation, "NaN", "+Inf",
// "-Inf" (also "Inf", case-insensitive). nullopt when not a number.
std::optional<double> parseSampleValue(std::string_view s);

// Parses an /api/v1/query answer. Success with resultType vector or scalar gives the
// samples; matrix and string results are BadData (errorType "unsupported_result"); an
// error answer gives the kind for its errorType/HTTP status (timeout → Timeout,
// 5xx → Transport, otherwise BadData) with the server's text; a body that is not the
// API's JSON gives Transport for 5xx and BadData otherwise.
PromResultOr parseQueryResponse(int httpStatus, std::string_view body);

// The deployment's total from a result: a scalar's value, or the sum of a vector's
// samples (a query that returns one series per pod is summed). Empty vector →
// EmptyResult; any NaN/±Inf → NaN.
std::expected<double, PromError> totalValue(const PromResult& r);

// Percent-encoding of a query-string value (RFC 3986 unreserved characters pass).
std::string urlEncode(std::string_view s);

// "/api/v1/query?query=<enc>[&time=<unix seconds, ms precision>][&timeout=<n>ms]"
// (the timeout parameter bounds evaluation on the server; 0 leaves it out).
std::string buildQueryTarget(std::string_view promql, std::optional<SystemTime> at, Duration timeout);

// ---- range queries (GET /api/v1/query_range), for series over a window

struct PromPoint {
  double timestamp = 0;  // unix seconds
  double value = 0;      // NaN and ±Inf are kept as such
};
struct PromSeries {
  std::map<std::string, std::string> labels;
  std::vector<PromPoint> points;
};

// "/api/v1/query_range?query=<enc>&start=<s>&end=<s>&step=<s>[&timeout=<n>ms]" (unix
// seconds with ms precision; step in whole seconds, at least 1).
std::string buildRangeQueryTarget(std::string_view promql, SystemTime start, SystemTime end, Duration step,
                                  Duration timeout);

// Parses an /api/v1/query_range answer: a matrix gives its series; error answers and
// non-JSON bodies give the errors parseQueryResponse gives; another result type is
// BadData (errorType "unsupported_result").
std::expected<std::vector<PromSeries>, PromError> parseRangeResponse(int httpStatus, std::string_view body);

// Values for the query template's placeholders.
struct QueryVars {
  std::string deployment;
  std::string ns;
  std::string pool;
};

// Replaces {{deployment}}, {{namespace}} and {{pool}} (other text is kept as is),
// escaping each value for where it lands:
//   - inside "…" or '…': backslash, the quote character and control characters are
//     escaped (\\, \", \', \n, \r, \t, \xNN);
//   - inside `…` (raw string): a value containing a backtick is an error;
//   - inside the string of a regex matcher (=~ or !~): the value is first quoted as a
//     literal (RE2 metacharacters .+*?()|[]{}^$\ get a backslash), then escaped as above;
//   - outside any string: only [A-Za-z0-9_:] values are allowed (anything else could
//     change the query's meaning), else an error.
// Errors also for an unterminated string in the template.
std::expected<std::string, std::string> renderQuery(std::string_view tmpl, const QueryVars& vars);

// ---- the client

struct PrometheusClientConfig {
  std::string baseUrl = "http://127.0.0.1:9090";  // may include a path prefix
  Duration timeout = std::chrono::seconds(10);    // per attempt (connect + answer)
  int maxAttempts = 3;                            // 1 = no retries
  Duration backoffBase = std::chrono::milliseconds(200);
  Duration backoffCap = std::chrono::seconds(5);
  double backoffJitter = 0.2;                     // ExponentialBackoff jitter fraction
  std::string bearerToken;                        // sent as Authorization: Bearer
  std::map<std::string, std::string> headers;     // extra request headers
};

class PrometheusClient {
 public:
  virtual ~PrometheusClient() = default;
  // An instant query at `at` (Prometheus's "now" when absent).
  virtual PromResultOr query(std::string_view promql, std::optional<SystemTime> at = std::nullopt) = 0;
  // A range query over [start, end] every `step` (Prometheus answers at most 11,000
  // points per series: callers split longer windows). The default answers BadData (a
  // client without range queries).
  virtual std::expected<std::vector<PromSeries>, PromError> queryRange(std::string_view promql, SystemTime start,
                                                                       SystemTime end, Duration step);
};
using PrometheusClientPtr = std::shared_ptr<PrometheusClient>;

// The cpprestsdk client. Retries sleep on `clock` (so tests can use simulated time).
// Thread-safe.
PrometheusClientPtr makeHttpPrometheusClient(PrometheusClientConfig cfg,
                                             TimeSourcePtr clock = RealTimeSource::instance());

// query() then totalValue().
std::expected<double, PromError> queryTotal(PrometheusClient& client, std::string_view promql,
                                            std::optional<SystemTime> at = std::nullopt);

// True for the kinds the client retries (Transport, Timeout).
bool isRetryable(const PromError& e);

}  // namespace waterline::sources
