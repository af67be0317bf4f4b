#include "waterline/runtime/http_server.h"

#include <utility>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <atomic>
#include <chrono>

namespace waterline::runtime {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

struct HttpServer::Impl {
  asio::io_context io{1};
  std::unique_ptr<tcp::acceptor> acceptor;
  std::map<std::string, HttpHandler> routes;
  std::map<std::string, AsyncHttpHandler> asyncRoutes;
  std::thread thread;
  std::atomic<int> port{0};

  void accept() {
    acceptor->async_accept([this](beast::error_code ec, tcp::socket sock) {
      if (ec) {
        if (ec == asio::error::operation_aborted) return;
      } else {
        std::make_shared<Session>(std::move(sock), *this)->read();
      }
      if (acceptor->is_open()) accept();
    });
  }

  // Calls `done` with the response, now (plain handlers) or later (async handlers).
  void dispatch(const HttpRequest& req, HttpResponder done) {
    if (auto it = asyncRoutes.find(req.path); it != asyncRoutes.end()) {
      try {
        it->second(req, done);  // a copy: `done` answers at most once (see Session)
      } catch (const std::exception& e) {
        done(HttpResponse{500, "text/plain; charset=utf-8", std::string("error: ") + e.what() + "\n", {}});
      }
      return;
    }
    done(dispatchSync(req));
  }

  HttpResponse dispatchSync(const HttpRequest& req) {
    auto it = routes.find(req.path);
    if (it == routes.end()) return HttpResponse{404, "text/plain; charset=utf-8", "not found\n", {}};
    try {
      return it->second(req);
    } catch (const std::exception& e) {
      return HttpResponse{500, "text/plain; charset=utf-8", std::string("error: ") + e.what() + "\n", {}};
    }
  }

  struct Session : std::enable_shared_from_this<Session> {
    Session(tcp::socket s, Impl& impl) : stream(std::move(s)), impl(impl) {}
    beast::tcp_stream stream;
    Impl& impl;
    beast::flat_buffer buf;
    http::request<http::string_body> req;
    std::shared_ptr<http::response<http::string_body>> res;

    void read() {
      req = {};
      stream.expires_after(std::chrono::seconds(30));
      http::async_read(stream, buf, req,
                       [self = shared_from_this()](beast::error_code ec, std::size_t) {
                         if (ec) return self->close();
                         self->handle();
                       });
    }
    void handle() {
      HttpRequest r;
      r.method = std::string(req.method_string());
      r.target = std::string(req.target());
      auto q = r.target.find('?');
      r.path = r.target.substr(0, q);
      r.query = q == std::string::npos ? "" : r.target.substr(q + 1);
      for (const auto& f : req) {
        std::string name(f.name_string());
        for (auto& c : name) c = char(std::tolower(static_cast<unsigned char>(c)));
        r.headers[name] = std::string(f.value());
      }
      r.body = req.body();
      // No read deadline while the handler holds the request (long-poll); the response
      // is written on the I/O thread whichever thread answers.
      stream.expires_never();
      auto once = std::make_shared<std::atomic<bool>>(false);
      impl.dispatch(r, [self = shared_from_this(), once](HttpResponse out) {
        if (once->exchange(true)) return;
        asio::post(self->stream.get_executor(),
                   [self, out = std::move(out)]() mutable { self->write(std::move(out)); });
      });
    }
    void write(HttpResponse out) {
      res = std::make_shared<http::response<http::string_body>>(
          static_cast<http::status>(out.status), req.version());
      res->set(http::field::server, "waterline");
      res->set(http::field::content_type, out.contentType);
      for (const auto& [k, v] : out.headers) res->set(k, v);
      res->keep_alive(req.keep_alive());
      res->body() = std::move(out.body);
      res->prepare_payload();
      stream.expires_after(std::chrono::seconds(30));
      http::async_write(stream, *res,
                        [self = shared_from_this()](beast::error_code ec, std::size_t) {
                          if (ec || !self->res->keep_alive()) return self->close();
                          self->read();
                        });
    }
    void close() {
      beast::error_code ec;
      stream.socket().shutdown(tcp::socket::shutdown_send, ec);
    }
  };
};

HttpServer::HttpServer() : impl_(std::make_unique<Impl>()) {}
HttpServer::~HttpServer() { stop(); }

void HttpServer::handle(const std::string& path, HttpHandler h) { impl_->routes[path] = std::move(h); }
void HttpServer::handleAsync(const std::string& path, AsyncHttpHandler h) {
  impl_->asyncRoutes[path] = std::move(h);
}

std::string HttpServer::start(const std::string& bindAddress) {
  std::string host = "0.0.0.0", port = bindAddress;
  auto colon = bindAddress.rfind(':');
  if (colon != std::string::npos) {
    host = bindAddress.substr(0, colon);
    port = bindAddress.substr(colon + 1);
  }
  if (host.empty()) host = "0.0.0.0";
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  try {
    tcp::resolver resolver(impl_->io);
    auto eps = resolver.resolve(host, port);
    tcp::endpoint ep = *eps.begin();
    impl_->acceptor = std::make_unique<tcp::acceptor>(impl_->io);
    impl_->acceptor->open(ep.protocol());
    impl_->acceptor->set_option(asio::socket_base::reuse_address(true));
    impl_->acceptor->bind(ep);
    impl_->acceptor->listen();
    impl_->port = impl_->acceptor->local_endpoint().port();
  } catch (const std::exception& e) {
    return "cannot listen on " + bindAddress + ": " + e.what();
  }
  impl_->accept();
  impl_->thread = std::thread([this] { impl_->io.run(); });
  return "";
}

void HttpServer::stop() {
  if (!impl_ || !impl_->thread.joinable()) return;
  asio::post(impl_->io, [this] {
    beast::error_code ec;
    if (impl_->acceptor) impl_->acceptor->close(ec);
    impl_->io.stop();
  });
  impl_->thread.join();
}

int HttpServer::port() const { return impl_->port.load(); }

}  // namespace waterline::runtime
