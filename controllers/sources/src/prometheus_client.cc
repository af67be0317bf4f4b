// The cpprestsdk transport of the Prometheus client: one GET per attempt, retries with
// exponential backoff on Transport/Timeout (5xx included), none on 4xx.
#include <cpprest/http_client.h>
#include <pplx/pplxtasks.h>

#include <cerrno>
#include <future>
#include <memory>

#include "waterline/common/backoff.h"
#include "waterline/common/log.h"
#include "waterline/sources/prometheus.h"

namespace waterline::sources {

namespace http = web::http;
namespace hc = web::http::client;

namespace {

bool isTimeoutCode(const std::error_code& ec) {
  return ec.value() == ETIMEDOUT || ec == std::errc::timed_out;
}

PromError transportError(PromErrorKind kind, std::string message) {
  PromError e;
  e.kind = kind;
  e.message = std::move(message);
  return e;
}

PromError fromException(std::exception_ptr ep, const std::string& where) {
  try {
    std::rethrow_exception(ep);
  } catch (const http::http_exception& e) {
    if (isTimeoutCode(e.error_code()))
      return transportError(PromErrorKind::Timeout, where + ": request timed out: " + e.what());
    return transportError(PromErrorKind::Transport, where + ": " + e.what());
  } catch (const pplx::task_canceled&) {
    return transportError(PromErrorKind::Transport, where + ": cancelled");
  } catch (const std::exception& e) {
    return transportError(PromErrorKind::Transport, where + ": " + e.what());
  } catch (...) {
    return transportError(PromErrorKind::Transport, where + ": unknown failure");
  }
}

class HttpPrometheusClient final : public PrometheusClient {
 public:
  HttpPrometheusClient(PrometheusClientConfig cfg, TimeSourcePtr clock)
      : cfg_(std::move(cfg)),
        clock_(std::move(clock)),
        backoff_(ExponentialBackoff(cfg_.backoffBase, cfg_.backoffCap).withJitter(cfg_.backoffJitter, defaultRandom())),
        log_(log::logger("prometheus")) {
    hc::http_client_config hcfg;
    const auto us = std::chrono::duration_cast<std::chrono::microseconds>(cfg_.timeout);
    hcfg.set_timeout(std::chrono::microseconds(std::max<int64_t>(1000, us.count())));
    client_ = std::make_unique<hc::http_client>(utility::conversions::to_string_t(cfg_.baseUrl), hcfg);
  }

  PromResultOr query(std::string_view promql, std::optional<SystemTime> at) override {
    return withRetries(buildQueryTarget(promql, at, cfg_.timeout), "/api/v1/query", parseQueryResponse);
  }

  std::expected<std::vector<PromSeries>, PromError> queryRange(std::string_view promql, SystemTime start,
                                                               SystemTime end, Duration step) override {
    return withRetries(buildRangeQueryTarget(promql, start, end, step, cfg_.timeout), "/api/v1/query_range",
                       parseRangeResponse);
  }

 private:
  template <typename Parse>
  auto withRetries(const std::string& target, const char* path, Parse parse) -> decltype(parse(0, std::string_view{})) {
    const int attempts = std::max(1, cfg_.maxAttempts);
    for (int attempt = 0;; ++attempt) {
      auto r = once(target, path, parse);
      if (r) return r;
      r.error().attempts = attempt + 1;
      if (!isRetryable(r.error()) || attempt + 1 >= attempts) return r;
      const Duration delay = backoff_.next(attempt);
      WL_LOG_DEBUG(log_, "query failed, retrying",
                   {{"error", r.error().toString()}, {"attempt", attempt + 1}, {"delay", delay}});
      clock_->sleepFor(delay);
    }
  }

  template <typename Parse>
  auto once(const std::string& target, const char* path, Parse parse) -> decltype(parse(0, std::string_view{})) {
    using Result = decltype(parse(0, std::string_view{}));
    const std::string where = "GET " + cfg_.baseUrl + path;
    try {
      http::http_request req(http::methods::GET);
      req.set_request_uri(utility::conversions::to_string_t(target));
      req.headers().add("Accept", "application/json");
      if (!cfg_.bearerToken.empty()) req.headers().add("Authorization", "Bearer " + cfg_.bearerToken);
      for (const auto& [k, v] : cfg_.headers) req.headers().add(k, v);
      // cpprestsdk's timeout is an inactivity timer; a hard deadline on top of it makes
      // sure that no answer ever blocks a reconcile worker for longer (the request is
      // cancelled, and its continuation only touches the shared promise).
      pplx::cancellation_token_source cts;
      auto done = std::make_shared<std::promise<std::pair<int, std::string>>>();
      auto answer = done->get_future();
      client_->request(req, cts.get_token())
          .then([](http::http_response resp) {
            const int code = resp.status_code();
            return resp.extract_utf8string(true).then(
                [code](std::string body) { return std::make_pair(code, std::move(body)); });
          })
          .then([done](pplx::task<std::pair<int, std::string>> t) {
            try {
              done->set_value(t.get());
            } catch (...) {
              done->set_exception(std::current_exception());
            }
          });
      const auto deadline = cfg_.timeout * 2 + std::chrono::seconds(1);
      if (answer.wait_for(deadline) != std::future_status::ready) {
        cts.cancel();
        return Result(std::unexpect, transportError(
            PromErrorKind::Timeout,
            where + ": no answer within " +
                std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(deadline).count()) + " ms"));
      }
      auto [code, body] = answer.get();  // rethrows the request's exception
      return parse(code, body);
    } catch (...) {
      return Result(std::unexpect, fromException(std::current_exception(), where));
    }
  }

  const PrometheusClientConfig cfg_;
  TimeSourcePtr clock_;
  ExponentialBackoff backoff_;
  log::Logger log_;
  std::unique_ptr<hc::http_client> client_;
};

}  // namespace

PrometheusClientPtr makeHttpPrometheusClient(PrometheusClientConfig cfg, TimeSourcePtr clock) {
  if (!clock) clock = RealTimeSource::instance();
  return std::make_shared<HttpPrometheusClient>(std::move(cfg), std::move(clock));
}

std::expected<std::vector<PromSeries>, PromError> PrometheusClient::queryRange(std::string_view, SystemTime,
                                                                               SystemTime, Duration) {
  PromError e;
  e.kind = PromErrorKind::BadData;
  e.errorType = "unsupported";
  e.message = "this Prometheus client has no range queries";
  return std::unexpected(e);
}

std::expected<double, PromError> queryTotal(PrometheusClient& client, std::string_view promql,
                                            std::optional<SystemTime> at) {
  auto r = client.query(promql, at);
  if (!r) return std::unexpected(r.error());
  return totalValue(*r);
}

}  // namespace waterline::sources
