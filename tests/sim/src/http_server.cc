// Beast parses requests; answers are serialised by hand (status line, headers,
// Content-Length or chunked) into one ordered write queue per connection, which keeps
// plain and streamed answers on the same path.
#include "waterline/sim/http_server.h"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/status.hpp>
#include <boost/beast/http/string_body.hpp>

#include <cctype>
#include <cstdio>
#include <deque>
#include <optional>
#include <set>
#include <stdexcept>

namespace waterline::sim {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = net::ip::tcp;

std::string urlDecode(std::string_view s, bool plusIsSpace) {
  std::string out;
  out.reserve(s.size());
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && hex(s[i + 1]) >= 0 && hex(s[i + 2]) >= 0) {
      out += static_cast<char>(hex(s[i + 1]) * 16 + hex(s[i + 2]));
      i += 2;
    } else if (s[i] == '+' && plusIsSpace) {
      out += ' ';
    } else {
      out += s[i];
    }
  }
  return out;
}

std::map<std::string, std::string> parseQueryString(std::string_view qs) {
  std::map<std::string, std::string> out;
  while (!qs.empty()) {
    const size_t amp = qs.find('&');
    const std::string_view part = qs.substr(0, amp);
    if (!part.empty()) {
      const size_t eq = part.find('=');
      if (eq == std::string_view::npos) out[urlDecode(part)] = "";
      else out[urlDecode(part.substr(0, eq))] = urlDecode(part.substr(eq + 1));
    }
    if (amp == std::string_view::npos) break;
    qs.remove_prefix(amp + 1);
  }
  return out;
}

namespace {

std::string statusLine(int status) {
  const auto reason = bhttp::obsolete_reason(bhttp::int_to_status(static_cast<unsigned>(status)));
  return "HTTP/1.1 " + std::to_string(status) + " " + std::string(reason.data(), reason.size()) + "\r\n";
}

class Session;

class Exchange final : public HttpExchange {
 public:
  Exchange(std::shared_ptr<Session> s, bool keepAlive) : session_(std::move(s)), keepAlive_(keepAlive) {}
  ~Exchange() override;
  void respond(HttpResponse r) override;
  void startStream(int status, std::string contentType, std::vector<std::pair<std::string, std::string>> headers) override;
  void write(std::string chunk) override;
  void end() override;
  bool closed() const override;

 private:
  std::shared_ptr<Session> session_;
  bool keepAlive_;
  bool done_ = false;
  bool streaming_ = false;
};

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket sock, HttpHandler* handler, std::set<std::shared_ptr<Session>>* registry)
      : socket_(std::move(sock)), handler_(handler), registry_(registry) {}

  void start() { readNext(); }

  void enqueue(std::string bytes) {
    if (closed_) return;
    queue_.push_back(std::move(bytes));
    if (!writing_) writeNext();
  }

  // The current exchange is finished: read the next request or close.
  void finishExchange(bool keepAlive) {
    if (closed_) return;
    if (!keepAlive) {
      closeAfterWrites_ = true;
      if (!writing_ && queue_.empty()) close();
      return;
    }
    readNext();
  }

  bool isClosed() const { return closed_; }

  void close() {
    if (closed_) return;
    closed_ = true;
    beast::error_code ec;
    socket_.shutdown(tcp::socket::shutdown_both, ec);
    socket_.close(ec);
    queue_.clear();
    if (registry_) registry_->erase(shared_from_this());
  }

 private:
  void readNext() {
    parser_.emplace();
    parser_->body_limit(16 * 1024 * 1024);
    auto self = shared_from_this();
    bhttp::async_read(socket_, buffer_, *parser_, [self](beast::error_code ec, std::size_t) {
      if (ec) {
        self->close();
        return;
      }
      self->dispatch();
    });
  }

  void dispatch() {
    auto msg = parser_->release();
    HttpRequest req;
    req.method = std::string(msg.method_string());
    req.target = std::string(msg.target());
    const size_t q = req.target.find('?');
    req.path = urlDecode(std::string_view(req.target).substr(0, q), false);
    if (q != std::string::npos) req.query = parseQueryString(std::string_view(req.target).substr(q + 1));
    for (const auto& f : msg) {
      std::string name(f.name_string());
      for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      req.headers[name] = std::string(f.value());
    }
    req.body = std::move(msg.body());
    auto ex = std::make_shared<Exchange>(shared_from_this(), msg.keep_alive());
    try {
      (*handler_)(req, ex);
    } catch (const std::exception& e) {
      HttpResponse r;
      r.status = 500;
      r.body = std::string("handler failed: ") + e.what() + "\n";
      ex->respond(std::move(r));
    }
  }

  void writeNext() {
    if (queue_.empty()) {
      writing_ = false;
      if (closeAfterWrites_) close();
      return;
    }
    writing_ = true;
    auto self = shared_from_this();
    net::async_write(socket_, net::buffer(queue_.front()), [self](beast::error_code ec, std::size_t) {
      if (ec) {
        self->close();
        return;
      }
      if (!self->queue_.empty()) self->queue_.pop_front();
      self->writeNext();
    });
  }

  tcp::socket socket_;
  HttpHandler* handler_;
  std::set<std::shared_ptr<Session>>* registry_;
  beast::flat_buffer buffer_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  std::deque<std::string> queue_;
  bool writing_ = false;
  bool closed_ = false;
  bool closeAfterWrites_ = false;
};

Exchange::~Exchange() {
  if (done_ || session_->isClosed()) return;
  // Dropped without an answer: say so rather than hang the client.
  if (streaming_) {
    end();
  } else {
    HttpResponse r;
    r.status = 500;
    r.body = "no answer\n";
    respond(std::move(r));
  }
}

void Exchange::respond(HttpResponse r) {
  if (done_ || streaming_) return;
  done_ = true;
  std::string out = statusLine(r.status);
  out += "Content-Type: " + r.contentType + "\r\n";
  out += "Content-Length: " + std::to_string(r.body.size()) + "\r\n";
  for (const auto& [k, v] : r.headers) out += k + ": " + v + "\r\n";
  if (!keepAlive_) out += "Connection: close\r\n";
  out += "\r\n";
  out += r.body;
  session_->enqueue(std::move(out));
  session_->finishExchange(keepAlive_);
}

void Exchange::startStream(int status, std::string contentType,
                           std::vector<std::pair<std::string, std::string>> headers) {
  if (done_ || streaming_) return;
  streaming_ = true;
  std::string out = statusLine(status);
  out += "Content-Type: " + contentType + "\r\n";
  out += "Transfer-Encoding: chunked\r\n";
  for (const auto& [k, v] : headers) out += k + ": " + v + "\r\n";
  if (!keepAlive_) out += "Connection: close\r\n";
  out += "\r\n";
  session_->enqueue(std::move(out));
}

void Exchange::write(std::string chunk) {
  if (!streaming_ || done_ || chunk.empty()) return;
  char size[24];
  std::snprintf(size, sizeof size, "%zx\r\n", chunk.size());
  session_->enqueue(std::string(size) + chunk + "\r\n");
}

void Exchange::end() {
  if (!streaming_ || done_) return;
  done_ = true;
  session_->enqueue("0\r\n\r\n");
  session_->finishExchange(keepAlive_);
}

bool Exchange::closed() const { return session_->isClosed(); }

class BeastServer final : public HttpServer {
 public:
  BeastServer(net::io_context& io, const std::string& host, uint16_t port, HttpHandler handler)
      : acceptor_(io), handler_(std::move(handler)) {
    beast::error_code ec;
    const auto addr = net::ip::make_address(host, ec);
    if (ec) throw std::runtime_error("http server: bad address " + host + ": " + ec.message());
    tcp::endpoint ep(addr, port);
    acceptor_.open(ep.protocol(), ec);
    if (!ec) acceptor_.set_option(net::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_.bind(ep, ec);
    if (!ec) acceptor_.listen(net::socket_base::max_listen_connections, ec);
    if (ec) throw std::runtime_error("http server: cannot listen on " + host + ":" + std::to_string(port) + ": " +
                                     ec.message());
    port_ = acceptor_.local_endpoint().port();
    accept();
  }

  ~BeastServer() override { stop(); }

  uint16_t port() const override { return port_; }

  void stop() override {
    beast::error_code ec;
    acceptor_.close(ec);
    auto sessions = sessions_;  // close() erases from the set
    for (const auto& s : sessions) s->close();
    sessions_.clear();
  }

 private:
  void accept() {
    acceptor_.async_accept([this](beast::error_code ec, tcp::socket sock) {
      if (ec) {
        if (ec == net::error::operation_aborted || !acceptor_.is_open()) return;
        accept();
        return;
      }
      beast::error_code ignored;
      sock.set_option(tcp::no_delay(true), ignored);
      auto s = std::make_shared<Session>(std::move(sock), &handler_, &sessions_);
      sessions_.insert(s);
      s->start();
      accept();
    });
  }

  tcp::acceptor acceptor_;
  HttpHandler handler_;
  uint16_t port_ = 0;
  std::set<std::shared_ptr<Session>> sessions_;
};

}  // namespace

std::unique_ptr<HttpServer> HttpServer::start(net::io_context& io, const std::string& host, uint16_t port,
                                              HttpHandler handler) {
  return std::make_unique<BeastServer>(io, host, port, std::move(handler));
}

}  // namespace waterline::sim
