#pragma once
// Loopback test helpers: a tiny Beast upstream (OpenAI-style worker) and a blocking
// HTTP client. Everything binds 127.0.0.1 on an ephemeral port.
#include <utility>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace waterline::router::testing {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

struct SeenRequest {
  std::string method, target, body;
  std::map<std::string, std::string> headers;  // lower-case names
};

struct Reply {
  int status = 200;
  std::string contentType = "application/json";
  std::string body;                      // non-streaming body
  std::vector<std::string> sseChunks;    // when non-empty: chunked, one write per element
  std::chrono::milliseconds chunkDelay{0};
  // Called (on the connection's thread) before chunk i is written: a test holds a stream
  // open mid-way by blocking here until it lets it go on.
  std::function<void(std::size_t i)> beforeChunk;
};

// A worker that answers every request with handler(request).
class TestUpstream {
 public:
  using Handler = std::function<Reply(const SeenRequest&)>;

  // address: any loopback address (127.x.y.z) works on Linux, e.g. a kwok pod's IP.
  explicit TestUpstream(Handler h, int port = 0, const std::string& address = "127.0.0.1")
      : handler_(std::move(h)), acceptor_(io_), address_(address) {
    tcp::endpoint ep(asio::ip::make_address(address), static_cast<unsigned short>(port));
    acceptor_.open(ep.protocol());
    acceptor_.set_option(asio::socket_base::reuse_address(true));
    acceptor_.bind(ep);
    acceptor_.listen();
    port_ = acceptor_.local_endpoint().port();
    thread_ = std::thread([this] { acceptLoop(); });
  }
  ~TestUpstream() { stop(); }

  void stop() {
    if (stopped_.exchange(true)) return;
    beast::error_code ec;
    // close() alone does not wake a thread blocked in accept(); shutdown() does (Linux).
    ::shutdown(acceptor_.native_handle(), SHUT_RDWR);
    acceptor_.close(ec);
    {
      std::lock_guard lk(mu_);
      for (auto* s : open_) s->shutdown(tcp::socket::shutdown_both, ec);
    }
    if (thread_.joinable()) thread_.join();
    for (auto& t : conns_)
      if (t.joinable()) t.join();
  }

  int port() const { return port_; }
  std::string endpoint() const { return address_ + ":" + std::to_string(port_); }
  std::vector<SeenRequest> requests() const {
    std::lock_guard lk(mu_);
    return seen_;
  }
  size_t requestCount() const {
    std::lock_guard lk(mu_);
    return seen_.size();
  }
  int connections() const { return connections_.load(); }
  void setHandler(Handler h) {
    std::lock_guard lk(mu_);
    handler_ = std::move(h);
  }

  // A JSON chat completion with usage.
  static Reply completion(int promptTokens, int completionTokens, std::string text = "hello") {
    Reply r;
    r.body = std::string(R"({"id":"cmpl-1","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":")") +
             text + R"("},"finish_reason":"stop"}],"usage":{"prompt_tokens":)" + std::to_string(promptTokens) +
             R"(,"completion_tokens":)" + std::to_string(completionTokens) + R"(,"total_tokens":)" +
             std::to_string(promptTokens + completionTokens) + "}}";
    return r;
  }

 private:
  void acceptLoop() {
    for (;;) {
      beast::error_code ec;
      tcp::socket s(io_);
      acceptor_.accept(s, ec);
      if (ec) return;
      connections_++;
      conns_.emplace_back([this, sock = std::move(s)]() mutable { serve(std::move(sock)); });
    }
  }

  void serve(tcp::socket sock) {
    {
      std::lock_guard lk(mu_);
      open_.push_back(&sock);
    }
    beast::flat_buffer buf;
    for (;;) {
      beast::error_code ec;
      http::request<http::string_body> req;
      http::read(sock, buf, req, ec);
      if (ec) break;
      SeenRequest r;
      r.method = std::string(req.method_string());
      r.target = std::string(req.target());
      r.body = req.body();
      for (const auto& f : req) {
        std::string n(f.name_string());
        for (auto& c : n) c = char(std::tolower(static_cast<unsigned char>(c)));
        r.headers[n] = std::string(f.value());
      }
      Handler h;
      {
        std::lock_guard lk(mu_);
        seen_.push_back(r);
        h = handler_;
      }
      Reply rep = h(r);
      if (rep.sseChunks.empty()) {
        http::response<http::string_body> res{static_cast<http::status>(rep.status), req.version()};
        res.set(http::field::content_type, rep.contentType);
        res.body() = rep.body;
        res.keep_alive(req.keep_alive());
        res.prepare_payload();
        http::write(sock, res, ec);
      } else {
        http::response<http::empty_body> res{static_cast<http::status>(rep.status), req.version()};
        res.set(http::field::content_type, rep.contentType);
        res.chunked(true);
        res.keep_alive(req.keep_alive());
        http::response_serializer<http::empty_body> sr{res};
        http::write_header(sock, sr, ec);
        for (std::size_t i = 0; i < rep.sseChunks.size(); ++i) {
          if (ec) break;
          if (rep.chunkDelay.count()) std::this_thread::sleep_for(rep.chunkDelay);
          if (rep.beforeChunk) rep.beforeChunk(i);
          asio::write(sock, http::make_chunk(asio::buffer(rep.sseChunks[i])), ec);
        }
        if (!ec) asio::write(sock, http::make_chunk_last(), ec);
      }
      if (ec || !req.keep_alive()) break;
    }
    beast::error_code ec;
    {
      std::lock_guard lk(mu_);
      std::erase(open_, &sock);
    }
    sock.shutdown(tcp::socket::shutdown_both, ec);
  }

  Handler handler_;
  asio::io_context io_;
  tcp::acceptor acceptor_;
  std::string address_;
  int port_ = 0;
  std::thread thread_;
  std::vector<std::thread> conns_;
  mutable std::mutex mu_;
  std::vector<SeenRequest> seen_;
  std::vector<tcp::socket*> open_;
  std::atomic<int> connections_{0};
  std::atomic<bool> stopped_{false};
};

struct Response {
  int status = 0;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
  std::string header(const std::string& k) const {
    auto it = headers.find(k);
    return it == headers.end() ? "" : it->second;
  }
};

// A keep-alive client connection.
class Client {
 public:
  explicit Client(int port) : sock_(io_) { sock_.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port)); }

  Response request(http::verb method, const std::string& target, const std::string& body = "",
                   std::map<std::string, std::string> headers = {}) {
    http::request<http::string_body> req{method, target, 11};
    req.set(http::field::host, "router");
    if (!body.empty() || method == http::verb::post) {
      req.set(http::field::content_type, "application/json");
      req.body() = body;
      req.prepare_payload();
    }
    for (auto& [k, v] : headers) req.set(k, v);
    http::write(sock_, req);
    return read();
  }

  Response post(const std::string& target, const std::string& body, std::map<std::string, std::string> headers = {}) {
    return request(http::verb::post, target, body, std::move(headers));
  }

  // Writes raw bytes (for malformed requests) and reads one response.
  Response raw(const std::string& bytes) {
    asio::write(sock_, asio::buffer(bytes));
    return read();
  }

  Response read() {
    http::response_parser<http::string_body> p;
    p.body_limit(64u << 20);
    http::read(sock_, buf_, p);
    Response r;
    auto& m = p.get();
    r.status = static_cast<int>(m.result_int());
    for (const auto& f : m) {
      std::string n(f.name_string());
      for (auto& c : n) c = char(std::tolower(static_cast<unsigned char>(c)));
      r.headers[n] = std::string(f.value());
    }
    r.body = m.body();
    return r;
  }

  tcp::socket& socket() { return sock_; }

 private:
  asio::io_context io_;
  tcp::socket sock_;
  beast::flat_buffer buf_;
};

// A sample's value in a Prometheus text exposition (`series` is the name with its labels
// as serialized), or `absent` when the series is not there.
inline double metricValue(const std::string& text, const std::string& series, double absent = 0) {
  for (size_t p = text.find(series + " "); p != std::string::npos; p = text.find(series + " ", p + 1))
    if (p == 0 || text[p - 1] == '\n') return std::stod(text.substr(p + series.size() + 1));
  return absent;
}

inline Response get(int port, const std::string& target) {
  Client c(port);
  return c.request(http::verb::get, target);
}

inline Response post(int port, const std::string& target, const std::string& body,
                     std::map<std::string, std::string> headers = {}) {
  Client c(port);
  return c.post(target, body, std::move(headers));
}

// A port nothing listens on (bound then closed).
inline int closedPort() {
  asio::io_context io;
  tcp::acceptor a(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  int p = a.local_endpoint().port();
  a.close();
  return p;
}

}  // namespace waterline::router::testing
