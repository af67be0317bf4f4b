#pragma once
// A tiny blocking HTTP/1.1 server on 127.0.0.1 (optionally TLS) for client tests: one
// thread per connection, one request per connection ("Connection: close"), and a
// handler that either answers at once or streams a chunked body (watch).
#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace waterline::kube::testing {

struct HttpRequest {
  std::string method;
  std::string target;  // path?query as sent
  std::string path;
  std::string query;   // without '?'
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
  std::string clientCertSubject;  // TLS with a client certificate: its subject (one line)

  std::string header(const std::string& lowerName) const {
    auto it = headers.find(lowerName);
    return it == headers.end() ? std::string() : it->second;
  }
  // The decoded value of a query parameter ("" if absent).
  std::string param(const std::string& name) const;
  bool hasParam(const std::string& name) const;
};

class Responder {
 public:
  virtual ~Responder() = default;
  virtual void respond(int code, const std::string& body,
                       const std::vector<std::pair<std::string, std::string>>& headers = {},
                       const std::string& contentType = "application/json") = 0;
  virtual void beginChunked(int code, const std::string& contentType = "application/json") = 0;
  // False once the client has gone away (or the server is stopping).
  virtual bool chunk(const std::string& data) = 0;
  virtual void endChunked() = 0;
  // True when the server is being torn down: streaming handlers must return.
  virtual bool stopping() const = 0;
  // Sleeps up to `ms`, returning early (false) when the server stops.
  virtual bool sleepMs(int ms) = 0;
};

struct ServerTls {
  std::string certPem;
  std::string keyPem;
  std::string clientCaPem;  // non-empty: verify client certificates against it
  bool requireClientCert = false;
};

class FakeServer {
 public:
  using Handler = std::function<void(const HttpRequest&, Responder&)>;

  explicit FakeServer(Handler handler, std::optional<ServerTls> tls = std::nullopt);
  ~FakeServer();
  FakeServer(const FakeServer&) = delete;
  FakeServer& operator=(const FakeServer&) = delete;

  std::string url() const;  // http(s)://127.0.0.1:<port>
  int port() const { return port_; }
  // Requests whose headers were read, in order.
  std::vector<HttpRequest> requests() const;
  int requestCount() const;
  // Connections whose handler returned (the stream ended for whatever reason).
  int finishedConnections() const { return finished_.load(); }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  int port_ = 0;
  std::atomic<int> finished_{0};
};

}  // namespace waterline::kube::testing
