// Fuzzes the router's request framing the way session() reads a connection: heads found
// by framing::findHeadEnd (fed in pieces), checked by framing::checkRequestHead, parsed by
// Beast's request_parser with the router's limits, bodies read eagerly; repeated for
// pipelined requests until the bytes run out or a request is refused. Checks that the
// framing check and Beast agree on every accepted head's body framing (a disagreement is
// a desync), and that every round makes progress (no hang).
#include <boost/beast/http.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "waterline/router/config.h"
#include "waterline/router/framing.h"

namespace http = boost::beast::http;
using namespace waterline::router;

namespace {
[[noreturn]] void fail() { std::abort(); }
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const RouterConfig cfg;
  std::string_view in(reinterpret_cast<const char*>(data), size);
  // The first byte picks how the bytes arrive: in pieces of 1..16 bytes, or whole.
  std::size_t piece = size ? (static_cast<unsigned char>(in[0]) % 17) : 0;
  if (size) in.remove_prefix(1);
  for (int round = 0; round < 64 && !in.empty(); ++round) {
    // The head, as if it arrived `piece` bytes at a time.
    std::size_t from = 0, end = std::string_view::npos, have = piece ? 0 : in.size();
    for (;;) {
      have = std::min(in.size(), piece ? have + piece : have);
      end = framing::findHeadEnd(in.substr(0, have), from);
      if (end != std::string_view::npos || have == in.size()) break;
    }
    if (from > in.size()) fail();
    if (end == std::string_view::npos) return 0;  // incomplete: the router would read on
    if (end > in.size() || end == 0) fail();
    if (end > cfg.maxHeaderBytes) return 0;  // 431
    const framing::Result fr = framing::checkRequestHead(in.substr(0, end));
    if (!fr.ok) {
      if (fr.error.reason.empty() || (fr.error.status != 400 && fr.error.status != 501)) fail();
      return 0;  // answered, connection closed
    }
    http::request_parser<http::string_body> p;
    p.header_limit(static_cast<std::uint32_t>(cfg.maxHeaderBytes));
    p.body_limit(cfg.maxBodyBytes);
    boost::beast::error_code ec;
    std::size_t used = p.put(boost::asio::buffer(in.data(), end), ec);
    if (ec) return 0;  // answered 400, closed
    if (!p.is_header_done() || used != end) fail();
    // The framing check and Beast must agree on how the body is delimited.
    const bool chunked = p.chunked();
    const auto len = p.content_length();
    switch (fr.framing.body) {
      case framing::BodyKind::Chunked:
        if (!chunked || len) fail();
        break;
      case framing::BodyKind::Length:
        if (chunked || !len || *len != fr.framing.contentLength) fail();
        break;
      case framing::BodyKind::None:
        if (chunked || (len && *len != 0) || !p.is_done()) fail();
        break;
    }
    in.remove_prefix(end);
    if (!p.is_done()) {
      p.eager(true);
      used = p.put(boost::asio::buffer(in.data(), in.size()), ec);
      if (used > in.size()) fail();
      in.remove_prefix(used);
      if (ec == http::error::need_more) return 0;  // the router would read on
      if (ec) return 0;                            // answered (400/413), closed
      if (!p.is_done()) return 0;                  // body incomplete
    }
    if (p.get().body().size() > cfg.maxBodyBytes) fail();
  }
  return 0;
}
