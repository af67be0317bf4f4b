#pragma once
// A small HTTP/1.1 server on Boost.Beast for the operator's /healthz, /readyz and
// /metrics (and later /v1/routes). One I/O thread; handlers must be quick.
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>

namespace waterline::runtime {

struct HttpRequest {
  std::string method;
  std::string target;  // path + query
  std::string path;
  std::string query;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
};

struct HttpResponse {
  int status = 200;
  std::string contentType = "text/plain; charset=utf-8";
  std::string body;
  std::map<std::string, std::string> headers;
};

using HttpHandler = std::function<HttpResponse(const HttpRequest&)>;
// Answers a request later (long-poll). `respond` may be called from any thread, exactly
// once; a session waits for it without blocking the I/O thread.
using HttpResponder = std::function<void(HttpResponse)>;
using AsyncHttpHandler = std::function<void(const HttpRequest&, HttpResponder respond)>;

class HttpServer {
 public:
  HttpServer();
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Exact-path routes; must be registered before start().
  void handle(const std::string& path, HttpHandler h);
  void handleAsync(const std::string& path, AsyncHttpHandler h);
  // Binds "host:port" (port 0 = any free port) and starts serving. Returns an error
  // message on failure, "" on success.
  std::string start(const std::string& bindAddress);
  void stop();
  int port() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace waterline::runtime
