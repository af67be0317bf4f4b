#include "fake_server.h"

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <sys/socket.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cctype>
#include <list>
#include <sstream>

namespace waterline::kube::testing {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

namespace {

std::string urlDecode(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      out.push_back(static_cast<char>(std::stoi(s.substr(i + 1, 2), nullptr, 16)));
      i += 2;
    } else if (s[i] == '+') {
      out.push_back(' ');
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

std::vector<std::pair<std::string, std::string>> parseQuery(const std::string& q) {
  std::vector<std::pair<std::string, std::string>> out;
  std::stringstream ss(q);
  std::string item;
  while (std::getline(ss, item, '&')) {
    if (item.empty()) continue;
    auto eq = item.find('=');
    if (eq == std::string::npos) out.emplace_back(urlDecode(item), "");
    else out.emplace_back(urlDecode(item.substr(0, eq)), urlDecode(item.substr(eq + 1)));
  }
  return out;
}

const char* reasonPhrase(int code) {
  switch (code) {
    case 200: return "OK";
    case 201: return "Created";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 422: return "Unprocessable Entity";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Status";
  }
}

}  // namespace

std::string HttpRequest::param(const std::string& name) const {
  for (auto& [k, v] : parseQuery(query))
    if (k == name) return v;
  return {};
}

bool HttpRequest::hasParam(const std::string& name) const {
  for (auto& [k, v] : parseQuery(query))
    if (k == name) return true;
  return false;
}

struct FakeServer::Impl {
  Handler handler;
  std::optional<ServerTls> tls;
  std::unique_ptr<asio::ssl::context> sslCtx;
  asio::io_context ioc;
  tcp::acceptor acceptor{ioc};
  std::thread acceptThread;
  std::atomic<bool> stopping{false};
  mutable std::mutex mu;
  std::condition_variable stopCv;
  std::vector<HttpRequest> requests;
  std::list<std::thread> connThreads;
  std::vector<int> openFds;
  std::atomic<int>* finished = nullptr;

  struct Conn final : Responder {
    Impl* srv;
    tcp::socket sock;
    std::unique_ptr<asio::ssl::stream<tcp::socket&>> ssl;
    bool responded = false;
    bool broken = false;

    Conn(Impl* s, tcp::socket so) : srv(s), sock(std::move(so)) {}

    void write(const std::string& data) {
      if (broken) return;
      boost::system::error_code ec;
      if (ssl) asio::write(*ssl, asio::buffer(data), ec);
      else asio::write(sock, asio::buffer(data), ec);
      if (ec) broken = true;
    }

    void respond(int code, const std::string& body,
                 const std::vector<std::pair<std::string, std::string>>& headers,
                 const std::string& contentType) override {
      std::string h = "HTTP/1.1 " + std::to_string(code) + " " + reasonPhrase(code) + "\r\n";
      h += "Content-Type: " + contentType + "\r\n";
      h += "Content-Length: " + std::to_string(body.size()) + "\r\n";
      for (auto& [k, v] : headers) h += k + ": " + v + "\r\n";
      h += "Connection: close\r\n\r\n";
      write(h + body);
      responded = true;
    }
    void beginChunked(int code, const std::string& contentType) override {
      std::string h = "HTTP/1.1 " + std::to_string(code) + " " + reasonPhrase(code) + "\r\n";
      h += "Content-Type: " + contentType + "\r\n";
      h += "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
      write(h);
      responded = true;
    }
    bool chunk(const std::string& data) override {
      if (data.empty()) return !broken;
      std::ostringstream ss;
      ss << std::hex << data.size() << "\r\n" << data << "\r\n";
      write(ss.str());
      return !broken && !srv->stopping;
    }
    void endChunked() override { write("0\r\n\r\n"); }
    bool stopping() const override { return srv->stopping; }
    bool sleepMs(int ms) override {
      std::unique_lock lk(srv->mu);
      return !srv->stopCv.wait_for(lk, std::chrono::milliseconds(ms),
                                   [&] { return srv->stopping.load(); });
    }
  };

  void serve(tcp::socket sock) {
    Conn c(this, std::move(sock));
    const int fd = c.sock.native_handle();
    {
      std::lock_guard g(mu);
      openFds.push_back(fd);
    }
    try {
      if (sslCtx) {
        c.ssl = std::make_unique<asio::ssl::stream<tcp::socket&>>(c.sock, *sslCtx);
        boost::system::error_code ec;
        c.ssl->handshake(asio::ssl::stream_base::server, ec);
        if (ec) throw std::runtime_error("handshake: " + ec.message());
      }
      asio::streambuf buf;
      boost::system::error_code ec;
      if (c.ssl) asio::read_until(*c.ssl, buf, "\r\n\r\n", ec);
      else asio::read_until(c.sock, buf, "\r\n\r\n", ec);
      if (ec) throw std::runtime_error("read: " + ec.message());
      std::istream is(&buf);
      HttpRequest req;
      std::string line;
      std::getline(is, line);
      {
        std::istringstream rl(line);
        rl >> req.method >> req.target;
      }
      while (std::getline(is, line) && line != "\r" && !line.empty()) {
        if (line.back() == '\r') line.pop_back();
        auto colon = line.find(':');
        if (colon == std::string::npos) continue;
        std::string name = line.substr(0, colon);
        std::transform(name.begin(), name.end(), name.begin(), ::tolower);
        std::string value = line.substr(colon + 1);
        while (!value.empty() && value.front() == ' ') value.erase(0, 1);
        req.headers[name] = value;
      }
      auto q = req.target.find('?');
      req.path = req.target.substr(0, q);
      if (q != std::string::npos) req.query = req.target.substr(q + 1);
      size_t len = 0;
      if (auto it = req.headers.find("content-length"); it != req.headers.end())
        len = std::stoul(it->second);
      // What read_until buffered past the headers, then the rest.
      std::string body((std::istreambuf_iterator<char>(is)), std::istreambuf_iterator<char>());
      if (body.size() < len) {
        std::string rest(len - body.size(), '\0');
        if (c.ssl) asio::read(*c.ssl, asio::buffer(rest), ec);
        else asio::read(c.sock, asio::buffer(rest), ec);
        body += rest;
      }
      req.body = body.substr(0, len);
      if (c.ssl) {
        if (X509* peer = SSL_get_peer_certificate(c.ssl->native_handle())) {
          char subj[512];
          X509_NAME_oneline(X509_get_subject_name(peer), subj, sizeof subj);
          req.clientCertSubject = subj;
          X509_free(peer);
        }
      }
      {
        std::lock_guard g(mu);
        requests.push_back(req);
      }
      handler(req, c);
      if (!c.responded) c.respond(500, "handler sent nothing", {}, "text/plain");
    } catch (const std::exception&) {
      // client went away / TLS failure: nothing to answer
    }
    {
      std::lock_guard g(mu);
      openFds.erase(std::remove(openFds.begin(), openFds.end(), fd), openFds.end());
    }
    boost::system::error_code ec;
    c.sock.shutdown(tcp::socket::shutdown_both, ec);
    c.sock.close(ec);
    if (finished) finished->fetch_add(1);
  }

  void acceptLoop() {
    for (;;) {
      tcp::socket s(ioc);
      boost::system::error_code ec;
      acceptor.accept(s, ec);
      if (stopping) break;
      if (ec) continue;
      std::lock_guard g(mu);
      connThreads.emplace_back([this, so = std::move(s)]() mutable { serve(std::move(so)); });
    }
  }
};

FakeServer::FakeServer(Handler handler, std::optional<ServerTls> tls)
    : impl_(std::make_unique<Impl>()) {
  impl_->handler = std::move(handler);
  impl_->tls = std::move(tls);
  impl_->finished = &finished_;
  if (impl_->tls) {
    auto& t = *impl_->tls;
    impl_->sslCtx = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_server);
    impl_->sslCtx->use_certificate_chain(asio::buffer(t.certPem));
    impl_->sslCtx->use_private_key(asio::buffer(t.keyPem), asio::ssl::context::pem);
    if (!t.clientCaPem.empty()) {
      impl_->sslCtx->add_certificate_authority(asio::buffer(t.clientCaPem));
      impl_->sslCtx->set_verify_mode(asio::ssl::verify_peer |
                                     (t.requireClientCert ? asio::ssl::verify_fail_if_no_peer_cert : 0));
    }
  }
  tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), 0);
  impl_->acceptor.open(ep.protocol());
  impl_->acceptor.set_option(tcp::acceptor::reuse_address(true));
  impl_->acceptor.bind(ep);
  impl_->acceptor.listen();
  port_ = impl_->acceptor.local_endpoint().port();
  impl_->acceptThread = std::thread([this] { impl_->acceptLoop(); });
}

FakeServer::~FakeServer() {
  {
    std::lock_guard g(impl_->mu);
    impl_->stopping = true;
    for (int fd : impl_->openFds) ::shutdown(fd, SHUT_RDWR);
  }
  impl_->stopCv.notify_all();
  {
    // Wake the blocking accept().
    asio::io_context ioc;
    tcp::socket s(ioc);
    boost::system::error_code ec;
    s.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port_)), ec);
  }
  impl_->acceptThread.join();
  boost::system::error_code ec;
  impl_->acceptor.close(ec);
  for (;;) {
    std::thread t;
    {
      std::lock_guard g(impl_->mu);
      if (impl_->connThreads.empty()) break;
      t = std::move(impl_->connThreads.front());
      impl_->connThreads.pop_front();
    }
    if (t.joinable()) t.join();
  }
}

std::string FakeServer::url() const {
  return std::string(impl_->tls ? "https" : "http") + "://127.0.0.1:" + std::to_string(port_);
}

std::vector<HttpRequest> FakeServer::requests() const {
  std::lock_guard g(impl_->mu);
  return impl_->requests;
}

int FakeServer::requestCount() const {
  std::lock_guard g(impl_->mu);
  return static_cast<int>(impl_->requests.size());
}

}  // namespace waterline::kube::testing
