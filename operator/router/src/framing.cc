#include "waterline/router/framing.h"

#include <cstring>

namespace waterline::router::framing {

namespace {

// RFC 9110 5.6.2 tchar.
constexpr bool isTchar(unsigned char c) {
  if (c >= '0' && c <= '9') return true;
  if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') return true;
  switch (c) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+':
    case '-': case '.': case '^': case '_': case '`': case '|': case '~':
      return true;
    default:
      return false;
  }
}

// Field value octets: VCHAR, obs-text, SP, HTAB.
constexpr bool isValueChar(unsigned char c) { return c == '\t' || (c >= 0x20 && c != 0x7f); }

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    unsigned char x = static_cast<unsigned char>(a[i]), y = static_cast<unsigned char>(b[i]);
    if (x >= 'A' && x <= 'Z') x = static_cast<unsigned char>(x | 0x20);
    if (y >= 'A' && y <= 'Z') y = static_cast<unsigned char>(y | 0x20);
    if (x != y) return false;
  }
  return true;
}

std::string_view trimOws(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

Result fail(int status, std::string_view reason) {
  Result r;
  r.error = {status, reason};
  return r;
}

}  // namespace

std::size_t findHeadEnd(std::string_view buf, std::size_t& from) {
  std::size_t pos = from;
  while (pos < buf.size()) {
    const void* nl = std::memchr(buf.data() + pos, '\n', buf.size() - pos);
    if (!nl) break;
    const std::size_t end = static_cast<std::size_t>(static_cast<const char*>(nl) - buf.data());
    const std::size_t len = end - pos;  // the line without its '\n'
    // The empty line ends the head (as the very first line too: checkRequestHead then
    // rejects the empty request line).
    if ((len == 0 || (len == 1 && buf[pos] == '\r'))) {
      from = end + 1;
      return end + 1;
    }
    pos = end + 1;
    from = pos;
  }
  return std::string_view::npos;
}

Result checkRequestHead(std::string_view head) {
  Result r;
  Framing& f = r.framing;
  // Lines, each ending in CRLF.
  std::size_t pos = 0;
  auto nextLine = [&](std::string_view& line) -> bool {
    const std::size_t nl = head.find('\n', pos);
    if (nl == std::string_view::npos) return false;
    if (nl == pos || head[nl - 1] != '\r') return false;  // bare LF
    line = head.substr(pos, nl - 1 - pos);
    pos = nl + 1;
    return true;
  };
  std::string_view line;
  if (!nextLine(line)) return fail(400, "Every line of the request head must end with CRLF.");

  // Request line: method SP target SP version.
  {
    const std::size_t sp1 = line.find(' ');
    if (sp1 == std::string_view::npos || sp1 == 0) return fail(400, "Malformed request line.");
    for (std::size_t i = 0; i < sp1; ++i)
      if (!isTchar(static_cast<unsigned char>(line[i]))) return fail(400, "Malformed request line.");
    const std::size_t sp2 = line.find(' ', sp1 + 1);
    if (sp2 == std::string_view::npos || sp2 == sp1 + 1) return fail(400, "Malformed request line.");
    for (std::size_t i = sp1 + 1; i < sp2; ++i) {
      const unsigned char c = static_cast<unsigned char>(line[i]);
      if (c <= 0x20 || c == 0x7f) return fail(400, "Malformed request line.");
    }
    const std::string_view version = line.substr(sp2 + 1);
    if (version == "HTTP/1.1") f.version = 11;
    else if (version == "HTTP/1.0") f.version = 10;
    else return fail(400, "Malformed request line: only HTTP/1.0 and HTTP/1.1 are served.");
  }

  int contentLengths = 0, hosts = 0, transferEncodings = 0;
  int codings = 0, chunkedCount = 0;
  bool lastIsChunked = false, otherCoding = false;
  std::uint64_t contentLength = 0;
  for (;;) {
    if (!nextLine(line)) return fail(400, "Every line of the request head must end with CRLF.");
    if (line.empty()) break;  // the end of the head
    if (line.front() == ' ' || line.front() == '\t')
      return fail(400, "Obsolete line folding (a field line starting with whitespace) is not accepted.");
    const std::size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) return fail(400, "Malformed header field.");
    const std::string_view name = line.substr(0, colon);
    for (unsigned char c : name)
      if (!isTchar(c)) return fail(400, "Malformed header field name (whitespace before the colon?).");
    std::string_view value = line.substr(colon + 1);
    for (unsigned char c : value)
      if (!isValueChar(c)) return fail(400, "Header field values may not contain control characters or a bare CR.");
    value = trimOws(value);

    if (iequals(name, "content-length")) {
      if (++contentLengths > 1) return fail(400, "More than one Content-Length field.");
      if (value.empty() || value.size() > 18) return fail(400, "Invalid Content-Length.");
      for (char c : value) {
        if (c < '0' || c > '9') return fail(400, "Invalid Content-Length.");
        contentLength = contentLength * 10 + static_cast<std::uint64_t>(c - '0');
      }
    } else if (iequals(name, "transfer-encoding")) {
      ++transferEncodings;
      // A comma-separated list of codings; empty elements are allowed by the list syntax
      // but at least one coding must be named over all fields.
      std::string_view rest = value;
      for (;;) {
        const std::size_t comma = rest.find(',');
        const std::string_view coding = trimOws(rest.substr(0, comma));
        if (!coding.empty()) {
          ++codings;
          lastIsChunked = iequals(coding, "chunked");
          if (lastIsChunked) ++chunkedCount;
          else otherCoding = true;
        }
        if (comma == std::string_view::npos) break;
        rest.remove_prefix(comma + 1);
      }
    } else if (iequals(name, "host")) {
      if (++hosts > 1) return fail(400, "More than one Host field.");
    }
  }
  if (pos != head.size()) return fail(400, "Malformed request head.");

  if (transferEncodings > 0) {
    if (f.version < 11) return fail(400, "Transfer-Encoding is not allowed in an HTTP/1.0 request.");
    if (contentLengths > 0) return fail(400, "A request may not carry both Transfer-Encoding and Content-Length.");
    if (codings == 0 || !lastIsChunked) return fail(400, "Transfer-Encoding must end with chunked.");
    if (chunkedCount > 1) return fail(400, "Transfer-Encoding names chunked more than once.");
    if (otherCoding) return fail(501, "Only the chunked transfer coding is implemented.");
    f.body = BodyKind::Chunked;
  } else if (contentLengths > 0) {
    f.contentLength = contentLength;
    f.body = contentLength > 0 ? BodyKind::Length : BodyKind::None;
  }
  r.ok = true;
  return r;
}

}  // namespace waterline::router::framing
