// --ptu-share-store's address (no hiredis here: the flags parse it in every build).
#include <charconv>

#include "waterline/router/ptu_share_exchange.h"

namespace waterline::router {

std::string parsePtuShareStore(const std::string& url, PtuShareStoreAddress* out) {
  const std::string scheme = "redis://";
  if (url.rfind(scheme, 0) != 0) return "want redis://HOST:PORT, got \"" + url + "\"";
  std::string rest = url.substr(scheme.size());
  if (!rest.empty() && rest.back() == '/') rest.pop_back();
  PtuShareStoreAddress a;
  std::string host = rest, port;
  if (!rest.empty() && rest.front() == '[') {  // [v6]:port
    auto close = rest.find(']');
    if (close == std::string::npos) return "want redis://HOST:PORT, got \"" + url + "\"";
    host = rest.substr(1, close - 1);
    std::string after = rest.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return "want redis://HOST:PORT, got \"" + url + "\"";
      port = after.substr(1);
      if (port.empty()) return "want redis://HOST:PORT, got \"" + url + "\"";
    }
  } else if (auto colon = rest.rfind(':'); colon != std::string::npos) {
    host = rest.substr(0, colon);
    port = rest.substr(colon + 1);
    if (port.empty()) return "want redis://HOST:PORT, got \"" + url + "\"";
  }
  if (!port.empty()) {
    int p = -1;
    auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
    if (ec != std::errc() || end != port.data() + port.size() || p < 1 || p > 65535)
      return "want redis://HOST:PORT with a port in [1, 65535], got \"" + url + "\"";
    a.port = p;
  }
  if (host.empty() || host.find_first_of("/?#@ ") != std::string::npos)
    return "want redis://HOST:PORT, got \"" + url + "\"";
  a.host = host;
  if (out) *out = a;
  return {};
}

}  // namespace waterline::router
