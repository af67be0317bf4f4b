#pragma once
// Request framing rules (RFC 9112) for the router's client side, as pure functions over
// the raw request head, checked before Beast's parser sees it.
//
// Why not Beast alone: Beast 1.74's request_parser accepts heads that make the message's
// end ambiguous, and the router would then read the following bytes as the next request
// (request smuggling / desync). Measured with Beast 1.74 (tests/unit/routing/
// router_framing_test.cc, BeastAloneAcceptsThese): it accepts `Transfer-Encoding:
// chunked, identity` and `chunked, chunked` as a body of length 0, `xchunked` next to a
// Content-Length (it uses the Content-Length), `gzip, chunked`, an empty
// Transfer-Encoding, Transfer-Encoding in HTTP/1.0, two equal Content-Length fields,
// `Content-Length: 5, 5`, obs-fold (a field line continued on the next line) and two Host
// fields. It does reject bare CR, whitespace before the colon, NUL and other CTLs in
// values, `+5`/overflowing Content-Length, and Content-Length next to `chunked`.
//
// The rules checked here (each failure is answered and the connection closed):
//   * every line ends in CRLF: no bare CR, no bare LF                         -> 400
//   * request line: METHOD SP TARGET SP HTTP/1.0|HTTP/1.1, tchar method, target
//     of visible ASCII                                                       -> 400
//   * field line: 1*tchar name immediately followed by ':' (no whitespace before
//     the colon), value of VCHAR / obs-text / SP / HTAB; a line starting with
//     SP or HTAB (obs-fold)                                                  -> 400
//   * Content-Length: one field, 1*DIGIT, at most 18 digits                  -> 400
//   * Transfer-Encoding: only in HTTP/1.1, never with Content-Length         -> 400
//     its codings (all fields, comma lists, OWS, case-insensitive) must be
//     exactly one `chunked`; `chunked` not last, or twice                     -> 400
//     `chunked` last after other codings (gzip, chunked)                     -> 501
//   * Host at most once                                                      -> 400
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace waterline::router::framing {

// Where the head (request line, fields, the empty line) ends in `buf`: the offset just
// past the empty line, or npos while it is incomplete. `from` is where to resume
// scanning (0 on the first call); it is advanced to the start of the first line not yet
// complete, so a head trickled in byte by byte is scanned once in total. An empty line
// is "\r\n" or a bare "\n" (the latter then fails checkRequestHead).
std::size_t findHeadEnd(std::string_view buf, std::size_t& from);

enum class BodyKind { None, Length, Chunked };

struct Framing {
  BodyKind body = BodyKind::None;
  std::uint64_t contentLength = 0;  // BodyKind::Length
  unsigned version = 11;            // 10 or 11
};

struct FramingError {
  int status = 400;         // 400, or 501 for a transfer coding the router does not implement
  std::string_view reason;  // a fixed sentence (static storage), quoted in the error answer
};

struct Result {
  bool ok = false;
  Framing framing;
  FramingError error;
};

// Checks a complete request head (as delimited by findHeadEnd, empty line included).
Result checkRequestHead(std::string_view head);

}  // namespace waterline::router::framing
