// The router's hand-written request and response heads (operator/router wire.h) against
// what Beast serializes for the messages the router built with Beast before: byte for
// byte, including field order, plus a parse back through Beast's parser.
#include "waterline/router/wire.h"

#include <gtest/gtest.h>

#include <boost/beast/http.hpp>

#include <sstream>
#include <string>
#include <utility>
#include <vector>

namespace waterline::router {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
using Set = std::vector<std::pair<std::string, std::string>>;

// Feeds all of `bytes` to a Beast parser; fails the test on a parse error.
template <class Parser>
void parseAll(Parser& p, const std::string& bytes) {
  p.eager(true);
  std::size_t off = 0;
  while (off < bytes.size() && !p.is_done()) {
    beast::error_code ec;
    const std::size_t n = p.put(boost::asio::buffer(bytes.data() + off, bytes.size() - off), ec);
    ASSERT_FALSE(ec) << ec.message();
    ASSERT_GT(n, 0u);
    off += n;
  }
  EXPECT_EQ(off, bytes.size());
}

template <class Msg>
std::string serialize(Msg& m) {
  std::ostringstream os;
  os << m;
  return os.str();
}

http::fields clientFields() {
  http::fields f;
  f.insert("Authorization", "Bearer sk-test");
  f.insert(http::field::host, "router.example:8080");
  f.insert(http::field::connection, "keep-alive, X-Hop");
  f.insert(http::field::content_type, "application/json; charset=utf-8");
  f.insert(http::field::content_length, "29");
  f.insert(http::field::accept_encoding, "gzip");
  f.insert(http::field::expect, "100-continue");
  f.insert(http::field::te, "trailers");
  f.insert("x-request-id", "abc-123");
  f.insert("X-Custom", "a");
  f.insert("X-Custom", "b");
  f.insert(http::field::proxy_authorization, "Basic Zm9v");
  return f;
}

// The upstream request exactly as server.cc built it with Beast before wire.h.
std::string beastUpstreamRequest(std::string_view path, const http::fields& client, std::string_view host,
                                 const std::string& body) {
  http::request<http::string_body> up{http::verb::post, beast::string_view(path.data(), path.size()), 11};
  for (const auto& f : client) {
    if (wire::isHopByHop(f.name()) || f.name() == http::field::accept_encoding) continue;
    up.insert(f.name_string(), f.value());
  }
  up.set(http::field::host, beast::string_view(host.data(), host.size()));
  up.set(http::field::content_type, "application/json");
  up.keep_alive(true);
  up.body() = body;
  up.prepare_payload();
  return serialize(up);
}

TEST(RouterWire, UpstreamRequestEqualsBeastsSerialization) {
  const std::string body = R"({"model":"m","messages":[]})";
  std::string mine;
  wire::appendUpstreamRequestHead(mine, "/v1/chat/completions", clientFields(), "10.0.0.7:8000", body.size());
  mine += body;
  EXPECT_EQ(mine, beastUpstreamRequest("/v1/chat/completions", clientFields(), "10.0.0.7:8000", body));

  // No client fields at all.
  std::string bare;
  wire::appendUpstreamRequestHead(bare, "/v1/completions", http::fields{}, "h:1", 0);
  EXPECT_EQ(bare, beastUpstreamRequest("/v1/completions", http::fields{}, "h:1", ""));
}

TEST(RouterWire, UpstreamRequestParsesWithOwnedFieldsReplaced) {
  const std::string body = "{}";
  std::string mine;
  wire::appendUpstreamRequestHead(mine, "/v1/chat/completions", clientFields(), "10.0.0.7:8000", body.size());
  mine += body;
  http::request_parser<http::string_body> p;
  parseAll(p, mine);
  ASSERT_TRUE(p.is_done());
  const auto& r = p.get();
  EXPECT_EQ(r.method(), http::verb::post);
  EXPECT_EQ(r.target(), "/v1/chat/completions");
  EXPECT_EQ(r[http::field::host], "10.0.0.7:8000");
  EXPECT_EQ(r[http::field::content_type], "application/json");
  EXPECT_EQ(r.count(http::field::content_type), 1u);
  EXPECT_EQ(r[http::field::content_length], "2");
  EXPECT_EQ(r["Authorization"], "Bearer sk-test");
  EXPECT_EQ(r.count("X-Custom"), 2u);
  for (auto f : {http::field::connection, http::field::expect, http::field::te, http::field::accept_encoding,
                 http::field::proxy_authorization})
    EXPECT_EQ(r.count(f), 0u) << f;
  EXPECT_TRUE(r.keep_alive());
  EXPECT_EQ(r.body(), "{}");
}

http::fields upstreamFields() {
  http::fields f;
  f.insert(http::field::content_type, "application/json");
  f.insert(http::field::content_length, "999");
  f.insert(http::field::connection, "close");
  f.insert(http::field::transfer_encoding, "identity");
  f.insert("x-request-id", "up-1");
  f.insert("X-Waterline-Pool", "spoofed");
  f.insert(http::field::date, "Mon, 23 Nov 2026 10:00:00 GMT");
  f.insert("x-ratelimit-remaining-tokens", "7");
  return f;
}

// The buffered response exactly as server.cc built it with Beast before wire.h.
std::string beastResponse(unsigned version, unsigned status, std::string_view reason, const http::fields& upstream,
                          const Set& set, const std::string& body, bool keep) {
  http::response<http::buffer_body> res;
  res.version(version);
  res.result(status);
  res.reason(beast::string_view(reason.data(), reason.size()));
  for (const auto& f : upstream) {
    if (wire::isHopByHop(f.name())) continue;
    res.insert(f.name_string(), f.value());
  }
  for (const auto& [k, v] : set) res.set(k, v);
  res.content_length(body.size());
  res.keep_alive(keep);
  http::response<http::string_body> whole{http::response_header<>(res.base())};
  whole.body() = body;
  whole.content_length(whole.body().size());
  return serialize(whole);
}

TEST(RouterWire, ResponseEqualsBeastsSerialization) {
  const Set set = {{"x-waterline-deployment", "team-a/llama"},
                   {"x-waterline-pool", "eu-west"},
                   {"x-ratelimit-remaining-tokens", "1200"},
                   {"x-ratelimit-remaining-requests", "40"}};
  const std::string body = R"({"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}})";
  struct Case {
    unsigned version, status;
    std::string reason;
    bool keep;
  };
  for (const Case& c : {Case{11, 200, "OK", true}, Case{11, 200, "OK", false}, Case{10, 200, "OK", true},
                        Case{10, 200, "OK", false}, Case{11, 404, "", true}, Case{11, 429, "Slow Down", true},
                        Case{11, 299, "", true}}) {
    std::string mine;
    wire::appendResponseHead(mine, c.version, c.status, c.reason, upstreamFields(), set, body.size(), c.keep);
    mine += body;
    EXPECT_EQ(mine, beastResponse(c.version, c.status, c.reason, upstreamFields(), set, body, c.keep))
        << "version " << c.version << " status " << c.status << " keep " << c.keep;
  }
}

TEST(RouterWire, ResponseParsesWithRouterFieldsWinning) {
  const Set set = {{"x-waterline-deployment", "team-a/llama"}, {"x-waterline-pool", "eu-west"}};
  std::string mine;
  wire::appendResponseHead(mine, 11, 503, "", upstreamFields(), set, 2, false);
  mine += "{}";
  http::response_parser<http::string_body> p;
  parseAll(p, mine);
  ASSERT_TRUE(p.is_done());
  const auto& r = p.get();
  EXPECT_EQ(r.result_int(), 503u);
  EXPECT_EQ(r.reason(), "Service Unavailable");
  EXPECT_EQ(r.count("x-waterline-pool"), 1u);
  EXPECT_EQ(r["x-waterline-pool"], "eu-west");  // the upstream's spoofed value is gone
  EXPECT_EQ(r["x-request-id"], "up-1");
  EXPECT_EQ(r[http::field::content_length], "2");
  EXPECT_EQ(r.count(http::field::transfer_encoding), 0u);
  EXPECT_FALSE(r.keep_alive());
  EXPECT_EQ(r.body(), "{}");
}

}  // namespace
}  // namespace waterline::router
