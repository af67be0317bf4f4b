// The Prometheus client's pure parts (value/response parsing, URL building, query
// rendering) and its retry/timeout behaviour against a fake HTTP endpoint.
#include "waterline/sources/prometheus.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <deque>
#include <mutex>
#include <thread>

#include <boost/asio/io_context.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>

#include "waterline/sim/http_server.h"

namespace waterline::sources {
namespace {

using namespace std::chrono_literals;

// ---- sample values

TEST(PromValue, Parses) {
  EXPECT_EQ(parseSampleValue("1").value(), 1.0);
  EXPECT_EQ(parseSampleValue("-2.5").value(), -2.5);
  EXPECT_EQ(parseSampleValue("1.5e3").value(), 1500.0);
  EXPECT_EQ(parseSampleValue("+7").value(), 7.0);
  EXPECT_TRUE(std::isnan(parseSampleValue("NaN").value()));
  EXPECT_EQ(parseSampleValue("+Inf").value(), INFINITY);
  EXPECT_EQ(parseSampleValue("-Inf").value(), -INFINITY);
  EXPECT_EQ(parseSampleValue("inf").value(), INFINITY);
  EXPECT_EQ(parseSampleValue("1e400").value(), INFINITY);
  for (const char* bad : {"", "abc", "1.2.3", "1 ", " 1", "--1", "+-1", "0x"}) EXPECT_FALSE(parseSampleValue(bad)) << bad;
}

// ---- responses

TEST(PromResponse, Vector) {
  auto r = parseQueryResponse(200, R"({"status":"success","data":{"resultType":"vector","result":[
      {"metric":{"__name__":"up","pod":"a"},"value":[1700000000.5,"1"]},
      {"metric":{"pod":"b"},"value":[1700000000.5,"2.25"]}]}})");
  ASSERT_TRUE(r) << r.error().toString();
  EXPECT_EQ(r->type, PromResultType::Vector);
  ASSERT_EQ(r->samples.size(), 2u);
  EXPECT_EQ(r->samples[0].labels.at("pod"), "a");
  EXPECT_EQ(r->samples[0].labels.at("__name__"), "up");
  EXPECT_DOUBLE_EQ(r->samples[0].timestamp, 1700000000.5);
  EXPECT_DOUBLE_EQ(r->samples[1].value, 2.25);
  EXPECT_DOUBLE_EQ(totalValue(*r).value(), 3.25);  // one series per pod: summed
}

TEST(PromResponse, Scalar) {
  auto r = parseQueryResponse(200, R"({"status":"success","data":{"resultType":"scalar","result":[1700000000,"42"]}})");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->type, PromResultType::Scalar);
  ASSERT_EQ(r->samples.size(), 1u);
  EXPECT_TRUE(r->samples[0].labels.empty());
  EXPECT_DOUBLE_EQ(totalValue(*r).value(), 42);
}

TEST(PromResponse, MatrixAndStringAreRejected) {
  auto m = parseQueryResponse(200, R"({"status":"success","data":{"resultType":"matrix","result":[
      {"metric":{},"values":[[1,"1"],[2,"2"]]}]}})");
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error().kind, PromErrorKind::BadData);
  EXPECT_EQ(m.error().errorType, "unsupported_result");
  EXPECT_NE(m.error().message.find("matrix"), std::string::npos);
  auto s = parseQueryResponse(200, R"({"status":"success","data":{"resultType":"string","result":[1,"x"]}})");
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().kind, PromErrorKind::BadData);
}

TEST(PromResponse, ErrorAnswers) {
  auto e = parseQueryResponse(
      400, R"({"status":"error","errorType":"bad_data","error":"1:5: parse error: unclosed left parenthesis"})");
  ASSERT_FALSE(e);
  EXPECT_EQ(e.error().kind, PromErrorKind::BadData);
  EXPECT_EQ(e.error().errorType, "bad_data");
  EXPECT_EQ(e.error().message, "1:5: parse error: unclosed left parenthesis");
  EXPECT_EQ(e.error().httpStatus, 400);
  EXPECT_EQ(e.error().toString(), "BadData: bad_data: 1:5: parse error: unclosed left parenthesis");
  EXPECT_FALSE(isRetryable(e.error()));

  auto ex = parseQueryResponse(422, R"({"status":"error","errorType":"execution","error":"many-to-many matching"})");
  EXPECT_EQ(ex.error().kind, PromErrorKind::BadData);

  auto to = parseQueryResponse(503, R"({"status":"error","errorType":"timeout","error":"query timed out"})");
  EXPECT_EQ(to.error().kind, PromErrorKind::Timeout);
  EXPECT_TRUE(isRetryable(to.error()));

  auto in = parseQueryResponse(500, R"({"status":"error","errorType":"internal","error":"boom"})");
  EXPECT_EQ(in.error().kind, PromErrorKind::Transport);

  auto gw = parseQueryResponse(502, "<html>Bad Gateway</html>");
  EXPECT_EQ(gw.error().kind, PromErrorKind::Transport);
  EXPECT_EQ(gw.error().httpStatus, 502);
  EXPECT_NE(gw.error().message.find("Bad Gateway"), std::string::npos);

  auto nf = parseQueryResponse(404, "404 page not found");
  EXPECT_EQ(nf.error().kind, PromErrorKind::BadData);

  auto malformed = parseQueryResponse(200, R"({"status":"success","data":{"resultType":"vector","result":[
      {"metric":{},"value":[1,2]}]}})");  // value must be a string
  EXPECT_EQ(malformed.error().kind, PromErrorKind::BadData);
}

TEST(PromResponse, WarningsAreKept) {
  auto r = parseQueryResponse(200, R"({"status":"success","warnings":["partial response"],
      "data":{"resultType":"vector","result":[]}})");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->warnings, std::vector<std::string>{"partial response"});
}

TEST(PromTotal, EmptyAndNaN) {
  auto empty = parseQueryResponse(200, R"({"status":"success","data":{"resultType":"vector","result":[]}})");
  ASSERT_TRUE(empty);
  EXPECT_EQ(totalValue(*empty).error().kind, PromErrorKind::EmptyResult);

  for (const char* v : {"NaN", "+Inf", "-Inf"}) {
    auto r = parseQueryResponse(200, std::string(R"({"status":"success","data":{"resultType":"vector","result":[
        {"metric":{"pod":"a"},"value":[1,"1"]},{"metric":{"pod":"b"},"value":[1,")") + v + R"("]}]}})");
    ASSERT_TRUE(r) << v;
    auto t = totalValue(*r);
    ASSERT_FALSE(t) << v;
    EXPECT_EQ(t.error().kind, PromErrorKind::NaN);
    EXPECT_NE(t.error().message.find(R"(pod="b")"), std::string::npos);
  }
  auto s = parseQueryResponse(200, R"({"status":"success","data":{"resultType":"scalar","result":[1,"NaN"]}})");
  EXPECT_EQ(totalValue(*s).error().kind, PromErrorKind::NaN);
}

// ---- URLs

TEST(PromUrl, EncodesTheQuery) {
  EXPECT_EQ(urlEncode("a-z_0.9~"), "a-z_0.9~");
  EXPECT_EQ(urlEncode(R"(sum(rate(x{a="b c"}[1m])) + 1)"),
            "sum%28rate%28x%7Ba%3D%22b%20c%22%7D%5B1m%5D%29%29%20%2B%201");
  EXPECT_EQ(urlEncode("é&"), "%C3%A9%26");
  const SystemTime at = SystemTime{} + 1'700'000'000'123ms;
  EXPECT_EQ(buildQueryTarget("up", at, 10s), "/api/v1/query?query=up&time=1700000000.123&timeout=10000ms");
  EXPECT_EQ(buildQueryTarget("up", std::nullopt, 0s), "/api/v1/query?query=up");
}

// ---- rendering

TEST(RenderQuery, DefaultTemplate) {
  auto q = renderQuery(
      R"(sum(rate(vllm:generation_tokens_total{namespace="{{namespace}}",deployment="{{deployment}}"}[1m])))",
      {"llama-70b", "ml-prod", "h100-a"});
  ASSERT_TRUE(q) << q.error();
  EXPECT_EQ(*q, R"(sum(rate(vllm:generation_tokens_total{namespace="ml-prod",deployment="llama-70b"}[1m])))");
}

TEST(RenderQuery, EscapesForTheStringItLandsIn) {
  const QueryVars nasty{R"(a"b\c)", "x'y", "p\nq"};
  EXPECT_EQ(renderQuery(R"(m{d="{{deployment}}"})", nasty).value(), R"(m{d="a\"b\\c"})");
  EXPECT_EQ(renderQuery(R"(m{n='{{namespace}}'})", nasty).value(), R"(m{n='x\'y'})");
  EXPECT_EQ(renderQuery(R"(m{n="{{namespace}}"})", nasty).value(), R"(m{n="x'y"})");
  EXPECT_EQ(renderQuery(R"(m{p="{{pool}}"})", nasty).value(), R"(m{p="p\nq"})");
  EXPECT_EQ(renderQuery("m{p=\"{{pool}}\"}", {"", "", std::string("a\x01z")}).value(), R"(m{p="a\x01z"})");
  // an escaped quote in the template does not end the string
  EXPECT_EQ(renderQuery(R"(m{d="x\"{{deployment}}"})", {"v", "", ""}).value(), R"(m{d="x\"v"})");
}

TEST(RenderQuery, RegexMatchersQuoteMetacharacters) {
  const QueryVars v{"llama.70b+", "ml", "p(1)"};
  EXPECT_EQ(renderQuery(R"(m{d=~"{{deployment}}"})", v).value(), R"(m{d=~"llama\\.70b\\+"})");
  EXPECT_EQ(renderQuery(R"(m{d!~ "{{deployment}}-.*"})", v).value(), R"(m{d!~ "llama\\.70b\\+-.*"})");
  EXPECT_EQ(renderQuery("m{p=~`{{pool}}`}", v).value(), R"(m{p=~`p\(1\)`})");
  EXPECT_EQ(renderQuery(R"(m{d="{{deployment}}"})", v).value(), R"(m{d="llama.70b+"})");  // not a regex
}

TEST(RenderQuery, RejectsUnsafeValues) {
  EXPECT_FALSE(renderQuery("m{d=`{{deployment}}`}", {"a`b", "", ""}));
  auto outside = renderQuery("m_{{deployment}}", {"llama-70b", "", ""});
  ASSERT_FALSE(outside);
  EXPECT_NE(outside.error().find("outside a string"), std::string::npos);
  EXPECT_EQ(renderQuery("m_{{deployment}}", {"llama_70b", "", ""}).value(), "m_llama_70b");
  EXPECT_FALSE(renderQuery(R"(m{d="{{deployment}})", {"a", "", ""}));  // unterminated
}

TEST(RenderQuery, KeepsOtherText) {
  EXPECT_EQ(renderQuery(R"(m{d="{{other}}"} # {{deployment}} "in a comment)", {"v", "", ""}).value(),
            R"(m{d="{{other}}"} # {{deployment}} "in a comment)");
  EXPECT_EQ(renderQuery("vector(1)", {}).value(), "vector(1)");
}

// ---- the client against a fake endpoint

// A clock whose sleeps return at once and are recorded.
class RecordingClock final : public TimeSource {
 public:
  SystemTime systemTime() const override { return SystemTime{}; }
  MonotonicTime monotonicTime() const override { return MonotonicTime{}; }
  bool waitUntil(std::unique_lock<std::mutex>&, std::condition_variable&, MonotonicTime,
                 const std::function<bool()>& pred) override {
    return pred();
  }
  void sleepFor(Duration d) override {
    std::lock_guard g(mu);
    sleeps.push_back(d);
  }
  std::mutex mu;
  std::vector<Duration> sleeps;
};

struct Scripted {
  int status;
  std::string body;
  bool hang = false;  // never answer
};

class FakePrometheus {
 public:
  FakePrometheus() : work_(boost::asio::make_work_guard(io_)) {
    server_ = sim::HttpServer::start(io_, "127.0.0.1", 0, [this](const sim::HttpRequest& r, sim::HttpExchangePtr ex) {
      std::lock_guard g(mu_);
      requests_.push_back(r);
      if (script_.empty()) {
        ex->respond({500, "text/plain", "no script", {}});
        return;
      }
      Scripted s = script_.front();
      if (script_.size() > 1) script_.pop_front();
      if (s.hang) {
        hung_.push_back(ex);
        return;
      }
      ex->respond({s.status, "application/json", s.body, {}});
    });
    thread_ = std::thread([this] { io_.run(); });
  }
  ~FakePrometheus() {
    boost::asio::post(io_, [this] {
      hung_.clear();
      server_->stop();
      work_.reset();
      io_.stop();
    });
    thread_.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(server_->port()); }
  void script(std::deque<Scripted> s) {
    std::lock_guard g(mu_);
    script_ = std::move(s);
  }
  std::vector<sim::HttpRequest> requests() {
    std::lock_guard g(mu_);
    return requests_;
  }

 private:
  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_;
  std::unique_ptr<sim::HttpServer> server_;
  std::thread thread_;
  std::mutex mu_;
  std::deque<Scripted> script_;
  std::vector<sim::HttpRequest> requests_;
  std::vector<sim::HttpExchangePtr> hung_;
};

const char* kOk = R"({"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"12.5"]}]}})";

PrometheusClientConfig config(const std::string& url) {
  PrometheusClientConfig c;
  c.baseUrl = url;
  c.timeout = 2s;
  c.maxAttempts = 3;
  c.backoffBase = 100ms;
  c.backoffCap = 1s;
  c.backoffJitter = 0;
  return c;
}

TEST(PromClient, QueriesWithEncodedParameters) {
  FakePrometheus fake;
  fake.script({{200, kOk}});
  auto clock = std::make_shared<RecordingClock>();
  auto cfg = config(fake.url());
  cfg.bearerToken = "s3cret";
  auto client = makeHttpPrometheusClient(cfg, clock);
  const SystemTime at = SystemTime{} + 1'700'000'000s;
  auto v = queryTotal(*client, R"(sum(x{d="a b"}))", at);
  ASSERT_TRUE(v) << v.error().toString();
  EXPECT_DOUBLE_EQ(*v, 12.5);
  auto reqs = fake.requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].method, "GET");
  EXPECT_EQ(reqs[0].path, "/api/v1/query");
  EXPECT_EQ(reqs[0].query.at("query"), R"(sum(x{d="a b"}))");
  EXPECT_EQ(reqs[0].query.at("time"), "1700000000.000");
  EXPECT_EQ(reqs[0].query.at("timeout"), "2000ms");
  EXPECT_EQ(reqs[0].headers.at("authorization"), "Bearer s3cret");
  EXPECT_TRUE(clock->sleeps.empty());
}

TEST(PromClient, Retries5xxWithBackoffThenSucceeds) {
  FakePrometheus fake;
  fake.script({{503, R"({"status":"error","errorType":"unavailable","error":"starting"})"},
                {502, "bad gateway"},
                {200, kOk}});
  auto clock = std::make_shared<RecordingClock>();
  auto client = makeHttpPrometheusClient(config(fake.url()), clock);
  auto v = queryTotal(*client, "up");
  ASSERT_TRUE(v) << v.error().toString();
  EXPECT_EQ(fake.requests().size(), 3u);
  EXPECT_EQ(clock->sleeps, (std::vector<Duration>{100ms, 200ms}));
}

TEST(PromClient, GivesUpAfterMaxAttempts) {
  FakePrometheus fake;
  fake.script({{500, R"({"status":"error","errorType":"internal","error":"boom"})"}});
  auto clock = std::make_shared<RecordingClock>();
  auto client = makeHttpPrometheusClient(config(fake.url()), clock);
  auto r = client->query("up");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, PromErrorKind::Transport);
  EXPECT_EQ(r.error().attempts, 3);
  EXPECT_EQ(r.error().message, "boom");
  EXPECT_EQ(fake.requests().size(), 3u);
}

TEST(PromClient, DoesNotRetryPromQLErrors) {
  FakePrometheus fake;
  fake.script({{400, R"({"status":"error","errorType":"bad_data","error":"1:4: parse error: unexpected end of input"})"}});
  auto clock = std::make_shared<RecordingClock>();
  auto client = makeHttpPrometheusClient(config(fake.url()), clock);
  auto r = client->query("sum(");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, PromErrorKind::BadData);
  EXPECT_EQ(r.error().attempts, 1);
  EXPECT_EQ(r.error().message, "1:4: parse error: unexpected end of input");
  EXPECT_EQ(fake.requests().size(), 1u);
  EXPECT_TRUE(clock->sleeps.empty());
}

TEST(PromClient, TimesOut) {
  FakePrometheus fake;
  fake.script({{0, "", true}});
  auto clock = std::make_shared<RecordingClock>();
  auto cfg = config(fake.url());
  cfg.timeout = 300ms;
  cfg.maxAttempts = 2;
  auto client = makeHttpPrometheusClient(cfg, clock);
  const auto t0 = std::chrono::steady_clock::now();
  auto r = client->query("up");
  const auto took = std::chrono::steady_clock::now() - t0;
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, PromErrorKind::Timeout) << r.error().toString();
  EXPECT_EQ(r.error().attempts, 2);
  EXPECT_LT(took, 5s);
}

TEST(PromClient, ConnectionRefusedIsTransport) {
  // A port that was free a moment ago.
  std::string url;
  {
    FakePrometheus fake;
    url = fake.url();
  }
  auto clock = std::make_shared<RecordingClock>();
  auto client = makeHttpPrometheusClient(config(url), clock);
  auto r = client->query("up");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, PromErrorKind::Transport) << r.error().toString();
  EXPECT_EQ(r.error().httpStatus, 0);
  EXPECT_EQ(r.error().attempts, 3);
  EXPECT_EQ(clock->sleeps.size(), 2u);
}

// ---- range queries (waterline-plan's series)

const char* kMatrix =
    R"({"status":"success","data":{"resultType":"matrix","result":[)"
    R"({"metric":{"pod":"a"},"values":[[1700000060,"10"],[1700000120,"20.5"]]},)"
    R"({"metric":{"pod":"b"},"values":[[1700000060,"NaN"]]}]}})";

TEST(PromRange, ParsesAMatrix) {
  auto r = parseRangeResponse(200, kMatrix);
  ASSERT_TRUE(r) << r.error().toString();
  ASSERT_EQ(r->size(), 2u);
  EXPECT_EQ((*r)[0].labels.at("pod"), "a");
  ASSERT_EQ((*r)[0].points.size(), 2u);
  EXPECT_DOUBLE_EQ((*r)[0].points[1].timestamp, 1700000120);
  EXPECT_DOUBLE_EQ((*r)[0].points[1].value, 20.5);
  EXPECT_TRUE(std::isnan((*r)[1].points[0].value));
}

TEST(PromRange, RejectsOtherAnswers) {
  auto v = parseRangeResponse(200, kOk);  // a vector
  ASSERT_FALSE(v);
  EXPECT_EQ(v.error().kind, PromErrorKind::BadData);
  EXPECT_EQ(v.error().errorType, "unsupported_result");
  auto e = parseRangeResponse(400, R"({"status":"error","errorType":"bad_data","error":"parse error"})");
  ASSERT_FALSE(e);
  EXPECT_EQ(e.error().kind, PromErrorKind::BadData);
  EXPECT_EQ(e.error().message, "parse error");
  auto t = parseRangeResponse(503, "<html>");
  ASSERT_FALSE(t);
  EXPECT_EQ(t.error().kind, PromErrorKind::Transport);
  auto m = parseRangeResponse(200, R"({"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1,2]]}]}})");
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error().errorType, "bad_response");
}

TEST(PromRange, BuildsTheTarget) {
  const SystemTime start = SystemTime{} + 1'700'000'000s, end = start + 1h;
  EXPECT_EQ(buildRangeQueryTarget("up", start, end, 60s, 2s),
            "/api/v1/query_range?query=up&start=1700000000.000&end=1700003600.000&step=60&timeout=2000ms");
  EXPECT_EQ(buildRangeQueryTarget("up", start, end, 0s, 0s),
            "/api/v1/query_range?query=up&start=1700000000.000&end=1700003600.000&step=1");
}

TEST(PromClient, RangeQuery) {
  FakePrometheus fake;
  fake.script({{503, "busy"}, {200, kMatrix}});
  auto clock = std::make_shared<RecordingClock>();
  auto client = makeHttpPrometheusClient(config(fake.url()), clock);
  const SystemTime start = SystemTime{} + 1'700'000'000s;
  auto r = client->queryRange("sum(x)", start, start + 10min, 60s);
  ASSERT_TRUE(r) << r.error().toString();
  EXPECT_EQ(r->size(), 2u);
  auto reqs = fake.requests();
  ASSERT_EQ(reqs.size(), 2u);  // the 503 was retried
  EXPECT_EQ(reqs[1].path, "/api/v1/query_range");
  EXPECT_EQ(reqs[1].query.at("step"), "60");
  EXPECT_EQ(reqs[1].query.at("end"), "1700000600.000");
  EXPECT_EQ(clock->sleeps.size(), 1u);
}

}  // namespace
}  // namespace waterline::sources
