#include "waterline/kube/errors.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace waterline::kube {
namespace {

using R = ApiError::Reason;
using Json = nlohmann::json;

std::string status(int code, const std::string& reason, const std::string& message,
                   Json details = nullptr) {
  Json s = {{"kind", "Status"},   {"apiVersion", "v1"}, {"metadata", Json::object()},
            {"status", "Failure"}, {"message", message}, {"reason", reason},
            {"code", code}};
  if (!details.is_null()) s["details"] = details;
  return s.dump();
}

struct Row {
  int code;
  std::string reason;
  R want;
  bool retryable;
};

class StatusMapping : public ::testing::TestWithParam<Row> {};

TEST_P(StatusMapping, MapsCodeAndReason) {
  const Row& r = GetParam();
  ApiError e = errorFromResponse(r.code, status(r.code, r.reason, "msg"));
  EXPECT_EQ(e.reason, r.want) << r.code << " " << r.reason << " -> " << toString(e.reason);
  EXPECT_EQ(e.httpCode, r.code);
  EXPECT_EQ(e.statusReason, r.reason);
  EXPECT_EQ(e.message, "msg");
  EXPECT_EQ(e.isRetryable(), r.retryable) << r.code << " " << r.reason;
}

INSTANTIATE_TEST_SUITE_P(
    Table, StatusMapping,
    ::testing::Values(Row{400, "BadRequest", R::BadRequest, false},
                      Row{401, "Unauthorized", R::Unauthorized, false},
                      Row{403, "Forbidden", R::Forbidden, false},
                      Row{404, "NotFound", R::NotFound, false},
                      Row{405, "MethodNotAllowed", R::MethodNotAllowed, false},
                      Row{409, "AlreadyExists", R::AlreadyExists, false},
                      Row{409, "Conflict", R::Conflict, false},
                      Row{410, "Expired", R::Gone, false},
                      Row{410, "Gone", R::Gone, false},
                      Row{422, "Invalid", R::Invalid, false},
                      Row{429, "TooManyRequests", R::TooManyRequests, true},
                      Row{500, "InternalError", R::InternalError, true},
                      Row{500, "ServerTimeout", R::Timeout, true},
                      Row{503, "ServiceUnavailable", R::ServiceUnavailable, true},
                      Row{504, "Timeout", R::Timeout, true},
                      // Unfamiliar or empty reasons fall back to the code.
                      Row{409, "", R::Conflict, false},
                      Row{404, "SomethingNew", R::NotFound, false},
                      Row{502, "", R::InternalError, true},
                      Row{418, "", R::Unknown, false}));

TEST(ErrorFromResponse, InvalidWithCauses) {
  Json details = {{"name", "x"},
                  {"kind", "ConfigMap"},
                  {"causes",
                   {{{"reason", "FieldValueInvalid"},
                     {"message", "Invalid value: \"Bad_Name\": must be lowercase"},
                     {"field", "metadata.name"}},
                    {{"reason", "FieldValueRequired"}, {"message", "Required value"}, {"field", "spec.x"}}}}};
  ApiError e = errorFromResponse(422, status(422, "Invalid", "ConfigMap \"x\" is invalid", details));
  EXPECT_TRUE(e.isInvalid());
  ASSERT_EQ(e.causes.size(), 2u);
  EXPECT_EQ(e.causes[0].reason, "FieldValueInvalid");
  EXPECT_EQ(e.causes[0].field, "metadata.name");
  EXPECT_EQ(e.causes[1].field, "spec.x");
  EXPECT_EQ(e.describe(),
            "Invalid (422): ConfigMap \"x\" is invalid [metadata.name: Invalid value: \"Bad_Name\": "
            "must be lowercase; spec.x: Required value]");
}

TEST(ErrorFromResponse, TooManyRequestsRetryAfterHeader) {
  ApiError e = errorFromResponse(429, status(429, "TooManyRequests", "slow down"), "7");
  EXPECT_TRUE(e.isTooManyRequests());
  ASSERT_TRUE(e.retryAfter);
  EXPECT_EQ(*e.retryAfter, std::chrono::seconds(7));
  EXPECT_TRUE(e.isRetryable());
}

TEST(ErrorFromResponse, TooManyRequestsRetryAfterDetails) {
  ApiError e = errorFromResponse(
      429, status(429, "TooManyRequests", "slow down", {{"retryAfterSeconds", 3}}));
  ASSERT_TRUE(e.retryAfter);
  EXPECT_EQ(*e.retryAfter, std::chrono::seconds(3));
  // The header, when present, wins.
  ApiError h = errorFromResponse(
      429, status(429, "TooManyRequests", "slow down", {{"retryAfterSeconds", 3}}), " 2 ");
  EXPECT_EQ(*h.retryAfter, std::chrono::seconds(2));
  // HTTP-date Retry-After is ignored (kept from details).
  ApiError d = errorFromResponse(429, status(429, "TooManyRequests", "x", {{"retryAfterSeconds", 4}}),
                                 "Wed, 21 Oct 2015 07:28:00 GMT");
  EXPECT_EQ(*d.retryAfter, std::chrono::seconds(4));
}

TEST(ErrorFromResponse, NonStatusBody) {
  ApiError e = errorFromResponse(404, "404 page not found\n");
  EXPECT_TRUE(e.isNotFound());
  EXPECT_EQ(e.message, "404 page not found");
  EXPECT_TRUE(e.statusReason.empty());

  ApiError empty = errorFromResponse(503, "");
  EXPECT_EQ(empty.reason, R::ServiceUnavailable);
  EXPECT_EQ(empty.message, "HTTP 503");

  // JSON that is not a Status is treated as text.
  ApiError other = errorFromResponse(500, R"({"kind":"ConfigMap"})");
  EXPECT_EQ(other.reason, R::InternalError);
}

TEST(ErrorFromStatus, WatchErrorObject) {
  Json s = Json::parse(status(410, "Expired", "too old resource version: 1 (200)"));
  ApiError e = errorFromStatus(s);
  EXPECT_TRUE(e.isGone());
  EXPECT_EQ(e.httpCode, 410);
  EXPECT_EQ(e.statusReason, "Expired");

  // Only a code.
  ApiError c = errorFromStatus(Json{{"code", 410}});
  EXPECT_TRUE(c.isGone());
  // Only a reason.
  ApiError r = errorFromStatus(Json{{"reason", "Gone"}});
  EXPECT_TRUE(r.isGone());
}

TEST(Transport, ConstructorsAndDescribe) {
  ApiError t = transportError("connect: Connection refused");
  EXPECT_EQ(t.reason, R::Transport);
  EXPECT_EQ(t.httpCode, 0);
  EXPECT_TRUE(t.isRetryable());
  EXPECT_EQ(t.describe(), "Transport: connect: Connection refused");

  ApiError to = timeoutError("read");
  EXPECT_TRUE(to.isTimeout());
  EXPECT_TRUE(to.isRetryable());

  ApiError d = decodeError("bad json");
  EXPECT_EQ(d.reason, R::Decode);
  EXPECT_FALSE(d.isRetryable());

  ApiError ra = errorFromResponse(429, "", "5");
  EXPECT_EQ(ra.describe(), "TooManyRequests (429): HTTP 429 (retry after 5s)");
}

}  // namespace
}  // namespace waterline::kube
