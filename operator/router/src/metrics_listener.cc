#include "waterline/router/metrics_listener.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <chrono>

namespace waterline::router {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using asio::awaitable;
using asio::use_awaitable;

struct MetricsListener::Impl {
  explicit Impl(metrics::Registry& r) : registry(r) {}
  metrics::Registry& registry;
  asio::io_context io{1};
  std::unique_ptr<tcp::acceptor> acceptor;
  std::thread thread;

  awaitable<void> session(tcp::socket s) {
    beast::tcp_stream stream(std::move(s));
    beast::flat_buffer buf;
    for (;;) {
      http::request_parser<http::empty_body> parser;
      parser.header_limit(16 << 10);
      stream.expires_after(std::chrono::seconds(10));
      beast::error_code ec;
      co_await http::async_read(stream, buf, parser, asio::redirect_error(use_awaitable, ec));
      if (ec) break;
      const auto& req = parser.get();
      http::response<http::string_body> res;
      res.version(req.version());
      res.keep_alive(req.keep_alive());
      std::string_view target(req.target().data(), req.target().size());
      const std::string_view path = target.substr(0, target.find('?'));
      if (path != "/metrics") {
        res.result(http::status::not_found);
        res.set(http::field::content_type, "text/plain; charset=utf-8");
        res.body() = "not found\n";
      } else if (req.method() != http::verb::get && req.method() != http::verb::head) {
        res.result(http::status::method_not_allowed);
        res.set(http::field::allow, "GET, HEAD");
        res.set(http::field::content_type, "text/plain; charset=utf-8");
        res.body() = "method not allowed\n";
      } else {
        res.result(http::status::ok);
        res.set(http::field::content_type, metrics::kContentType);
        res.body() = registry.serialize();
      }
      res.prepare_payload();
      if (req.method() == http::verb::head) res.body().clear();
      stream.expires_after(std::chrono::seconds(10));
      co_await http::async_write(stream, res, asio::redirect_error(use_awaitable, ec));
      if (ec || !res.keep_alive()) break;
    }
    beast::error_code ignored;
    stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
  }

  awaitable<void> listen() {
    for (;;) {
      beast::error_code ec;
      tcp::socket s = co_await acceptor->async_accept(asio::redirect_error(use_awaitable, ec));
      if (ec) {
        if (ec == asio::error::operation_aborted || !acceptor->is_open()) co_return;
        continue;  // e.g. EMFILE: try the next one
      }
      asio::co_spawn(io, session(std::move(s)), asio::detached);
    }
  }
};

MetricsListener::MetricsListener(metrics::Registry& registry) : impl_(std::make_unique<Impl>(registry)) {}

MetricsListener::~MetricsListener() { stop(); }

std::expected<void, std::string> MetricsListener::start(const std::string& address, int port) {
  auto& im = *impl_;
  if (im.thread.joinable()) return std::unexpected("already started");
  beast::error_code ec;
  auto addr = asio::ip::make_address(address, ec);
  if (ec) return std::unexpected("invalid metrics listen address \"" + address + "\"");
  tcp::endpoint ep(addr, static_cast<unsigned short>(port));
  im.acceptor = std::make_unique<tcp::acceptor>(im.io);
  im.acceptor->open(ep.protocol(), ec);
  if (!ec) im.acceptor->set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) im.acceptor->bind(ep, ec);
  if (!ec) im.acceptor->listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    im.acceptor.reset();
    return std::unexpected("cannot listen on " + address + ":" + std::to_string(port) + " for metrics: " +
                           ec.message());
  }
  port_ = im.acceptor->local_endpoint().port();
  asio::co_spawn(im.io, im.listen(), asio::detached);
  im.thread = std::thread([&im] { im.io.run(); });
  return {};
}

void MetricsListener::stop() {
  auto& im = *impl_;
  if (!im.thread.joinable()) return;
  asio::post(im.io, [&im] {
    beast::error_code ec;
    if (im.acceptor) im.acceptor->close(ec);
    im.io.stop();
  });
  im.thread.join();
  im.acceptor.reset();
}

}  // namespace waterline::router
