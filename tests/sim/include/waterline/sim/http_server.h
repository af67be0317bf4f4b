#pragma once
// A small single-threaded HTTP/1.1 server on Boost.Beast/Asio, for the fleet simulator
// (and tests that need a fake HTTP endpoint). Everything runs on the io_context's
// thread: the handler is called there, and the exchange must be answered there.
// Answers may be given later (respond() after a simulated delay) and may be streamed
// (chunked transfer encoding, e.g. Server-Sent Events). Keep-alive is supported.
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/asio/io_context.hpp>

namespace waterline::sim {

struct HttpRequest {
  std::string method;                          // "GET", "POST", ...
  std::string target;                          // as sent: "/inject/xid?node=a"
  std::string path;                            // "/inject/xid" (percent-decoded)
  std::map<std::string, std::string> query;    // decoded query parameters (last wins)
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;
};

struct HttpResponse {
  int status = 200;
  std::string contentType = "text/plain; charset=utf-8";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
};

// One request's answer: either respond() once, or startStream(), write()..., end().
class HttpExchange {
 public:
  virtual ~HttpExchange() = default;
  virtual void respond(HttpResponse r) = 0;
  virtual void startStream(int status, std::string contentType,
                           std::vector<std::pair<std::string, std::string>> headers = {}) = 0;
  virtual void write(std::string chunk) = 0;
  virtual void end() = 0;
  // The connection failed or was closed by the client.
  virtual bool closed() const = 0;
};
using HttpExchangePtr = std::shared_ptr<HttpExchange>;
using HttpHandler = std::function<void(const HttpRequest&, HttpExchangePtr)>;

class HttpServer {
 public:
  virtual ~HttpServer() = default;
  // Listens on host:port (port 0: any free port) and serves on `io`. Throws
  // std::runtime_error when it cannot bind.
  static std::unique_ptr<HttpServer> start(boost::asio::io_context& io, const std::string& host, uint16_t port,
                                           HttpHandler handler);
  virtual uint16_t port() const = 0;
  // Stops accepting and closes open connections (call on the io_context thread, or
  // after it has stopped).
  virtual void stop() = 0;
};

std::string urlDecode(std::string_view s, bool plusIsSpace = true);
std::map<std::string, std::string> parseQueryString(std::string_view qs);

}  // namespace waterline::sim
