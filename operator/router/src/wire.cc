#include "waterline/router/wire.h"

#include <boost/beast/http/status.hpp>

namespace waterline::router::wire {

namespace http = boost::beast::http;

namespace {

void appendField(std::string& out, boost::beast::string_view name, boost::beast::string_view value) {
  out.append(name.data(), name.size());
  out += ": ";
  out.append(value.data(), value.size());
  out += "\r\n";
}

void appendUint(std::string& out, std::uint64_t v) {
  char buf[24];
  char* e = buf + sizeof buf;
  char* p = e;
  do {
    *--p = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v);
  out.append(p, static_cast<std::size_t>(e - p));
}

}  // namespace

bool isHopByHop(http::field f) {
  switch (f) {
    case http::field::connection:
    case http::field::keep_alive:
    case http::field::proxy_connection:
    case http::field::transfer_encoding:
    case http::field::te:
    case http::field::trailer:
    case http::field::upgrade:
    case http::field::content_length:
    case http::field::host:
    case http::field::expect:
    case http::field::proxy_authorization:
    case http::field::proxy_authenticate:
      return true;
    default:
      return false;
  }
}

void appendUpstreamRequestHead(std::string& out, std::string_view path, const http::fields& client,
                               std::string_view host, std::uint64_t contentLength) {
  out += "POST ";
  out += path;
  out += " HTTP/1.1\r\n";
  for (const auto& f : client) {
    const auto name = f.name();
    if (isHopByHop(name) || name == http::field::accept_encoding || name == http::field::content_type) continue;
    appendField(out, f.name_string(), f.value());
  }
  out += "Host: ";
  out += host;
  out += "\r\nContent-Type: application/json\r\nContent-Length: ";
  appendUint(out, contentLength);
  out += "\r\n\r\n";
}

void appendResponseHead(std::string& out, unsigned version, unsigned status, std::string_view reason,
                        const http::fields& upstream, std::span<const std::pair<std::string, std::string>> set,
                        std::uint64_t contentLength, bool keepAlive) {
  out += version >= 11 ? "HTTP/1.1 " : "HTTP/1.0 ";
  appendUint(out, status);
  out += ' ';
  if (reason.empty()) {
    const auto std = http::obsolete_reason(http::int_to_status(status));
    out.append(std.data(), std.size());
  } else {
    out += reason;
  }
  out += "\r\n";
  forEachResponseField(upstream, set, [&](auto name, auto value) { appendField(out, name, value); });
  if (version >= 11 && !keepAlive) out += "Connection: close\r\n";
  if (version < 11 && keepAlive) out += "Connection: keep-alive\r\n";
  out += "Content-Length: ";
  appendUint(out, contentLength);
  out += "\r\n\r\n";
}

}  // namespace waterline::router::wire
