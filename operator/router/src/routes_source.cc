#include "waterline/router/routes_source.h"

#include <sys/socket.h>
#include <sys/stat.h>

#include <fstream>
#include <set>
#include <sstream>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "waterline/common/log.h"

namespace waterline::router {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

void RoutesSource::start(Callback cb, Duration interval) {
  stop();
  {
    std::lock_guard lk(mu_);
    cb_ = std::move(cb);
    stopping_ = false;
  }
  // The first poll on the caller's thread: a good table is in place when start() returns
  // (the router opens its port after it), instead of racing the first requests.
  pollOnce();
  thread_ = std::thread([this, interval] {
    for (;;) {
      {
        std::unique_lock lk(mu_);
        if (cv_.wait_for(lk, interval, [&] { return stopping_; })) return;
      }
      pollOnce();
    }
  });
}

void RoutesSource::stop() { stopThread(); }

bool RoutesSource::stopRequested() {
  std::lock_guard lk(mu_);
  return stopping_;
}

void RoutesSource::stopThread() {
  {
    std::lock_guard lk(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  interrupt();
  if (thread_.joinable()) thread_.join();
}

void RoutesSource::deliver(routing::RoutingTable t) {
  Callback cb;
  {
    std::lock_guard lk(mu_);
    cb = cb_;
  }
  if (cb) cb(std::move(t));
}

// ---------------------------------------------------------------------------------

FileRoutesSource::FileRoutesSource(std::string path) : path_(std::move(path)) {}
FileRoutesSource::~FileRoutesSource() { stopThread(); }

std::string FileRoutesSource::lastError() const {
  std::lock_guard lk(mu_);
  return lastError_;
}

RoutesSource::PollResult FileRoutesSource::pollOnce() {
  static const auto log = waterline::log::logger("router.routes");
  struct stat st {};
  auto setError = [&](std::string e) {
    std::lock_guard lk(mu_);
    if (e != lastError_) log.warn("routes file unusable; keeping the last table", {{"path", path_}, {"error", e}});
    lastError_ = std::move(e);
    return PollResult::Error;
  };
  if (::stat(path_.c_str(), &st) != 0) return setError("cannot stat file");
  Stamp s{static_cast<long long>(st.st_size),
          static_cast<long long>(st.st_mtim.tv_sec) * 1000000000LL + st.st_mtim.tv_nsec,
          static_cast<long long>(st.st_ino)};
  {
    std::lock_guard lk(mu_);
    if (stamp_ && *stamp_ == s && lastError_.empty()) return PollResult::Unchanged;
  }
  std::ifstream in(path_, std::ios::binary);
  if (!in) return setError("cannot open file");
  std::ostringstream ss;
  ss << in.rdbuf();
  auto t = routing::RoutingTable::parse(ss.str());
  {
    std::lock_guard lk(mu_);
    stamp_ = s;  // do not re-read an unchanged broken file every poll
  }
  if (!t) return setError(t.error());
  {
    std::lock_guard lk(mu_);
    lastError_.clear();
  }
  log.v(1, "routes file loaded", {{"path", path_}, {"deployments", t->deployments.size()}});
  deliver(std::move(*t));
  return PollResult::Updated;
}

// ---------------------------------------------------------------------------------

HttpRoutesSource::HttpRoutesSource(std::string url, Duration timeout, Duration longPoll)
    : url_(std::move(url)), timeout_(timeout), longPoll_(longPoll) {
  std::string rest = url_;
  if (rest.rfind("http://", 0) == 0) rest = rest.substr(7);
  auto slash = rest.find('/');
  std::string hostport = rest.substr(0, slash);
  path_ = slash == std::string::npos ? "/v1/routes" : rest.substr(slash);
  port_ = "80";
  if (!hostport.empty() && hostport.front() == '[') {
    auto close = hostport.find(']');
    host_ = hostport.substr(1, close == std::string::npos ? std::string::npos : close - 1);
    if (close != std::string::npos && close + 1 < hostport.size() && hostport[close + 1] == ':')
      port_ = hostport.substr(close + 2);
  } else if (auto colon = hostport.rfind(':'); colon != std::string::npos) {
    host_ = hostport.substr(0, colon);
    port_ = hostport.substr(colon + 1);
  } else {
    host_ = hostport;
  }
}

HttpRoutesSource::~HttpRoutesSource() { stopThread(); }

void HttpRoutesSource::interrupt() {
  // stopping_ is already set: a poll that registers its socket after this sees it.
  std::lock_guard lk(mu_);
  if (activeFd_ >= 0) ::shutdown(activeFd_, SHUT_RDWR);
}

std::string HttpRoutesSource::lastError() const {
  std::lock_guard lk(mu_);
  return lastError_;
}

std::string HttpRoutesSource::etag() const {
  std::lock_guard lk(mu_);
  return etag_;
}

RoutesSource::PollResult HttpRoutesSource::pollOnce() {
  static const auto log = waterline::log::logger("router.routes");
  auto setError = [&](std::string e) {
    if (stopRequested()) return PollResult::Unchanged;  // interrupted by stop(): not an error
    std::lock_guard lk(mu_);
    if (e != lastError_) log.warn("routes URL unusable; keeping the last table", {{"url", url_}, {"error", e}});
    lastError_ = std::move(e);
    return PollResult::Error;
  };
  std::string etag;
  {
    std::lock_guard lk(mu_);
    etag = etag_;
  }
  try {
    asio::io_context io;
    asio::ip::tcp::resolver resolver(io);
    beast::tcp_stream stream(io);
    beast::error_code ec;
    const long waitSeconds =
        etag.empty() ? 0 : static_cast<long>(std::chrono::duration_cast<std::chrono::seconds>(longPoll_).count());
    stream.expires_after(timeout_ + std::chrono::seconds(waitSeconds));
    auto results = resolver.resolve(host_, port_, ec);
    if (ec) return setError("resolve: " + ec.message());
    stream.connect(results, ec);
    if (ec) return setError("connect: " + ec.message());
    {
      std::lock_guard lk(mu_);
      if (stopRequested()) return PollResult::Unchanged;  // stopping
      activeFd_ = stream.socket().native_handle();
    }
    struct ClearFd {
      HttpRoutesSource* s;
      ~ClearFd() {
        std::lock_guard lk(s->mu_);
        s->activeFd_ = -1;
      }
    } clearFd{this};
    std::string target = path_;
    if (waitSeconds > 0)
      target += (target.find('?') == std::string::npos ? "?" : "&") + std::string("waitSeconds=") +
                std::to_string(waitSeconds);
    http::request<http::empty_body> req{http::verb::get, target, 11};
    req.set(http::field::host, host_ + ":" + port_);
    req.set(http::field::accept, "application/json");
    req.set(http::field::user_agent, "waterline-router");
    if (!etag.empty()) req.set(http::field::if_none_match, etag);
    http::write(stream, req, ec);
    if (ec) return setError("write: " + ec.message());
    beast::flat_buffer buf;
    http::response_parser<http::string_body> parser;
    parser.body_limit(256u << 20);
    http::read(stream, buf, parser, ec);
    if (ec) return setError("read: " + ec.message());
    auto& res = parser.get();
    stream.socket().shutdown(asio::ip::tcp::socket::shutdown_both, ec);
    if (res.result() == http::status::not_modified) {
      std::lock_guard lk(mu_);
      lastError_.clear();
      return PollResult::Unchanged;
    }
    if (res.result() != http::status::ok) return setError("HTTP " + std::to_string(res.result_int()));
    auto t = routing::RoutingTable::parse(res.body());
    if (!t) return setError(t.error());
    {
      std::lock_guard lk(mu_);
      etag_ = std::string(res[http::field::etag]);
      lastError_.clear();
    }
    deliver(std::move(*t));
    return PollResult::Updated;
  } catch (const std::exception& e) {
    return setError(e.what());
  }
}

// ---------------------------------------------------------------------------------

routing::RoutingTable RoutesMerger::update(size_t source, routing::RoutingTable t) {
  std::lock_guard lk(mu_);
  if (source < tables_.size()) tables_[source] = std::move(t);
  routing::RoutingTable out;
  std::set<routing::DeploymentKey> seen;
  for (const auto& tab : tables_) {
    if (!tab) continue;
    for (const auto& d : tab->deployments)
      if (seen.insert(d.deployment).second) out.deployments.push_back(d);
    if (tab->generatedAt && (!out.generatedAt || *tab->generatedAt > *out.generatedAt)) out.generatedAt = tab->generatedAt;
  }
  out.normalize();
  return out;
}

}  // namespace waterline::router
