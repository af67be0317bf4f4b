#pragma once
// The two messages on the router's hot path written as bytes, without Beast's
// serializer: the request to the upstream and a buffered (Content-Length) response to the
// client. Beast's serializer walks a buffers_cat_view per field and allocates a field
// element per header; building the head into one string and sending head and body in one
// gathered write costs a fraction of that (docs/performance.md, "Router overhead"). The
// output equals what the Beast messages the router built before would serialize to, with
// the same field choices; tests/unit/routing/router_wire_test.cc checks it through Beast's
// parser. Streaming (chunked/SSE) responses still go through Beast.
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include <boost/beast/core/string.hpp>
#include <boost/beast/http/field.hpp>
#include <boost/beast/http/fields.hpp>

namespace waterline::router::wire {

// Fields a proxy owns and never copies between the two sides: hop-by-hop and framing
// fields (RFC 9110 7.6.1) and the ones the router sets itself (Host, Expect).
bool isHopByHop(boost::beast::http::field f);

// Appends "POST <path> HTTP/1.1", the client's fields except hop-by-hop ones,
// Accept-Encoding and Content-Type, then Host, Content-Type: application/json and
// Content-Length, and the blank line.
void appendUpstreamRequestHead(std::string& out, std::string_view path, const boost::beast::http::fields& client,
                               std::string_view host, std::uint64_t contentLength);

// The fields a response to the client carries, in order: the upstream's fields except
// hop-by-hop ones and those named in `set`, then `set` (names unique). Calls
// emit(name, value) with boost::beast::string_views for each. Both the buffered head
// below and the streamed (Beast) response take their fields from here.
template <class Emit>
void forEachResponseField(const boost::beast::http::fields& upstream,
                          std::span<const std::pair<std::string, std::string>> set, Emit&& emit) {
  for (const auto& f : upstream) {
    if (isHopByHop(f.name())) continue;
    const auto name = f.name_string();
    bool replaced = false;
    for (const auto& kv : set)
      if (boost::beast::iequals(name, boost::beast::string_view(kv.first.data(), kv.first.size()))) {
        replaced = true;
        break;
      }
    if (!replaced) emit(name, f.value());
  }
  for (const auto& [k, v] : set) emit(boost::beast::string_view(k.data(), k.size()), boost::beast::string_view(v.data(), v.size()));
}

// Appends a response head: the status line (the upstream's reason, or the standard one
// when it sent none), forEachResponseField's fields, the Connection field HTTP/`version`
// needs for `keepAlive`, Content-Length, and the blank line.
void appendResponseHead(std::string& out, unsigned version, unsigned status, std::string_view reason,
                        const boost::beast::http::fields& upstream,
                        std::span<const std::pair<std::string, std::string>> set, std::uint64_t contentLength,
                        bool keepAlive);

}  // namespace waterline::router::wire
