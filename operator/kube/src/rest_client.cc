#include "waterline/kube/rest_client.h"

#include <cpprest/containerstream.h>
#include <cpprest/http_client.h>
#include <pplx/pplxtasks.h>

#include <cerrno>
#include <condition_variable>
#include <mutex>

#include "internal.h"
#include "waterline/common/backoff.h"
#include "waterline/kube/wire.h"

namespace waterline::kube {

namespace http = web::http;
namespace hc = web::http::client;
using namespace std::chrono_literals;

namespace {

ApiError clientError(std::string message) {
  ApiError e;
  e.reason = ApiError::Reason::BadRequest;
  e.message = "client: " + std::move(message);
  return e;
}

bool isTimeoutCode(const std::error_code& ec) {
  return ec.value() == ETIMEDOUT || ec == std::errc::timed_out;
}

// A failure without an HTTP answer.
ApiError fromException(std::exception_ptr ep, const std::string& what) {
  try {
    std::rethrow_exception(ep);
  } catch (const http::http_exception& e) {
    if (isTimeoutCode(e.error_code())) return timeoutError(what + ": client timeout: " + e.what());
    return transportError(what + ": " + e.what());
  } catch (const pplx::task_canceled&) {
    return transportError(what + ": cancelled");
  } catch (const std::exception& e) {
    return transportError(what + ": " + e.what());
  } catch (...) {
    return transportError(what + ": unknown failure");
  }
}

std::string resourceLabel(const ResourceKind& kind, const std::string& subresource) {
  return subresource.empty() ? kind.resource : kind.resource + "/" + subresource;
}

std::string metaString(const Json& obj, const char* key) {
  if (!obj.is_object()) return {};
  auto md = obj.find("metadata");
  if (md == obj.end() || !md->is_object()) return {};
  auto it = md->find(key);
  if (it == md->end() || !it->is_string()) return {};
  return it->get<std::string>();
}

std::string trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ' || s.back() == '\t'))
    s.pop_back();
  size_t b = 0;
  while (b < s.size() && (s[b] == ' ' || s[b] == '\t')) ++b;
  return s.substr(b);
}

// The bearer token, re-read from its file every cfg.tokenRefresh.
class TokenSource {
 public:
  TokenSource(const RestConfig& cfg, TimeSourcePtr time)
      : token_(cfg.bearerToken), file_(cfg.bearerTokenFile), refresh_(cfg.tokenRefresh),
        time_(std::move(time)) {}

  std::string get() {
    if (file_.empty()) return token_;
    std::lock_guard g(mu_);
    const auto now = time_->monotonicTime();
    if (!loaded_ || now - lastRead_ >= refresh_) {
      if (auto t = detail::readFile(file_)) {
        token_ = trimmed(*t);
      }  // on failure keep the last token; the server will say 401 if it is stale
      lastRead_ = now;
      loaded_ = true;
    }
    return token_;
  }

 private:
  std::mutex mu_;
  std::string token_;
  const std::string file_;
  const Duration refresh_;
  TimeSourcePtr time_;
  bool loaded_ = false;
  MonotonicTime lastRead_{};
};

struct Request {
  Request(http::method m, std::string v, std::string res, std::string pq,
          std::optional<std::string> b = std::nullopt, std::string ct = "application/json")
      : method(std::move(m)), verb(std::move(v)), resource(std::move(res)),
        pathAndQuery(std::move(pq)), body(std::move(b)), contentType(std::move(ct)) {}
  http::method method;
  std::string verb;      // for the observer
  std::string resource;  // for the observer
  std::string pathAndQuery;
  std::optional<std::string> body;
  std::string contentType = "application/json";
  bool idempotent = false;  // retried on 429
};

struct Answer {
  int code = 0;
  std::string body;
};

// -------------------------------------------------------------------------------------
// Watch stream: the response body read one line per next().

class RestWatchStream final : public WatchStream {
 public:
  RestWatchStream(std::shared_ptr<hc::http_client> client, pplx::cancellation_token_source cts,
                  http::http_response response)
      : st_(std::make_shared<State>()),
        client_(std::move(client)),
        cts_(std::move(cts)),
        response_(std::move(response)),
        body_(response_.body()) {}

  ~RestWatchStream() override { cancel(); }

  Result<std::optional<WatchEvent>> next() override {
    for (;;) {
      std::unique_lock lk(st_->mu);
      if (st_->finished) return std::optional<WatchEvent>{};
      if (st_->cancelled) {
        st_->finished = true;
        return std::optional<WatchEvent>{};
      }
      if (!st_->reading && !st_->ready) startReadLocked();
      st_->cv.wait(lk, [&] { return st_->ready || st_->cancelled; });
      if (st_->cancelled) {
        st_->finished = true;
        return std::optional<WatchEvent>{};
      }
      st_->ready = false;
      if (st_->error) {
        st_->finished = true;
        return std::unexpected(*st_->error);
      }
      if (st_->eof && st_->line.empty()) {
        st_->finished = true;
        return std::optional<WatchEvent>{};
      }
      std::string line = std::move(st_->line);
      st_->line.clear();
      const bool eofAfter = st_->eof;
      lk.unlock();

      auto ev = decodeWatchLine(line);
      if (!ev || eofAfter) {
        std::lock_guard g(st_->mu);
        if (!ev || !*ev) st_->finished = true;
      }
      if (!ev) return std::unexpected(ev.error());
      if (!*ev) continue;  // blank line (or the end)
      return ev;
    }
  }

  void cancel() override {
    {
      std::lock_guard g(st_->mu);
      if (st_->cancelled) return;
      st_->cancelled = true;
    }
    st_->cv.notify_all();
    // Closes the connection (cpprestsdk's registration on the request), which fails
    // the outstanding body read.
    cts_.cancel();
  }

 private:
  struct State {
    std::mutex mu;
    std::condition_variable cv;
    bool reading = false;    // a read_line is outstanding
    bool ready = false;      // a result waits to be taken
    bool cancelled = false;
    bool finished = false;
    std::string line;
    bool eof = false;
    std::optional<ApiError> error;
  };

  void startReadLocked() {
    st_->reading = true;
    auto buf = std::make_shared<concurrency::streams::container_buffer<std::string>>();
    auto st = st_;
    auto body = body_;
    try {
      body.read_line(*buf).then([st, buf, body](pplx::task<size_t> t) {
        std::string line;
        bool eof = false;
        std::optional<ApiError> err;
        try {
          const size_t n = t.get();
          line = std::move(buf->collection());
          if (n == 0 && line.empty() && body.is_eof()) eof = true;
          else if (body.is_eof()) eof = true;
        } catch (...) {
          err = fromException(std::current_exception(), "watch read");
        }
        {
          std::lock_guard g(st->mu);
          st->reading = false;
          st->ready = true;
          st->line = std::move(line);
          st->eof = eof;
          if (err && !st->cancelled) st->error = std::move(err);
        }
        st->cv.notify_all();
      });
    } catch (...) {
      st_->reading = false;
      st_->ready = true;
      st_->error = fromException(std::current_exception(), "watch read");
    }
  }

  std::shared_ptr<State> st_;
  std::shared_ptr<hc::http_client> client_;  // kept alive for the stream's lifetime
  pplx::cancellation_token_source cts_;
  http::http_response response_;
  concurrency::streams::istream body_;
};

}  // namespace

// -------------------------------------------------------------------------------------

struct RestClient::Impl {
  RestConfig cfg;
  TimeSourcePtr time;
  RequestObserverPtr observer;
  std::unique_ptr<TokenBucket> limiter;
  TokenSource token;
  web::uri base;
  std::unique_ptr<hc::http_client> http;

  Impl(RestConfig c, TimeSourcePtr t, RequestObserverPtr o)
      : cfg(std::move(c)), time(std::move(t)), observer(std::move(o)), token(cfg, time),
        base(web::uri(cfg.server)) {
    if (cfg.qps > 0) {
      limiter = std::make_unique<TokenBucket>(time, cfg.qps, std::max(1, cfg.burst));
    }
    http = std::make_unique<hc::http_client>(base, clientConfig(cfg.requestTimeout));
  }

  hc::http_client_config clientConfig(std::chrono::seconds timeout) const {
    hc::http_client_config c;
    c.set_timeout(std::chrono::duration_cast<std::chrono::microseconds>(timeout));
    c.set_validate_certificates(!cfg.insecureSkipTLSVerify);
    if (base.scheme() == "https") {
      RestConfig tls = cfg;  // a copy of the PEM material lives in the callback
      c.set_ssl_context_callback([tls](boost::asio::ssl::context& ctx) {
        detail::configureSslContext(ctx, tls);
      });
    }
    return c;
  }

  // Waits for the rate limiter; returns the time waited.
  Duration throttle() {
    if (!limiter) return Duration::zero();
    Duration d = limiter->reserve(1);
    if (d <= Duration::zero()) return Duration::zero();
    if (d == Duration::max()) d = std::chrono::seconds(1);
    time->sleepFor(d);
    return d;
  }

  http::http_request buildRequest(const Request& r) {
    http::http_request req(r.method);
    req.set_request_uri(web::uri(r.pathAndQuery));
    auto& h = req.headers();
    h.add("Accept", "application/json");
    if (!cfg.userAgent.empty()) h.add("User-Agent", cfg.userAgent);
    std::string tok = token.get();
    if (!tok.empty()) h.add("Authorization", "Bearer " + tok);
    if (r.body) req.set_body(*r.body, r.contentType);
    return req;
  }

  void observe(const Request& r, int code, const ApiError* err, Duration latency,
               Duration throttled, int attempt) {
    if (!observer) return;
    RequestInfo info;
    info.verb = r.verb;
    info.resource = r.resource;
    info.code = code;
    info.reason = err ? err->reason : ApiError::Reason::Unknown;
    info.latency = latency;
    info.throttled = throttled;
    info.attempt = attempt;
    observer->onRequest(info);
  }

  // When a failed answer should be retried, the wait before the retry.
  std::optional<Duration> retryWait(const Request& r, const ApiError& e, int attempt) const {
    if (!r.idempotent || attempt >= cfg.maxRetries) return std::nullopt;
    const bool retry = e.httpCode == 429 || (e.httpCode >= 500 && e.retryAfter.has_value());
    if (!retry) return std::nullopt;
    Duration wait = e.retryAfter.value_or(1s);
    if (wait > cfg.maxRetryWait) wait = cfg.maxRetryWait;
    return wait;
  }

  Result<Answer> send(const Request& r) {
    for (int attempt = 0;; ++attempt) {
      const Duration throttled = throttle();
      const auto start = std::chrono::steady_clock::now();
      Answer a;
      std::string retryAfter;
      std::optional<ApiError> err;
      try {
        http::http_request req = buildRequest(r);
        http::http_response resp = http->request(req).get();
        a.code = resp.status_code();
        auto it = resp.headers().find("Retry-After");
        if (it != resp.headers().end()) retryAfter = it->second;
        a.body = resp.extract_utf8string(true).get();
      } catch (...) {
        err = fromException(std::current_exception(), r.verb + " " + r.pathAndQuery);
      }
      const Duration latency = std::chrono::steady_clock::now() - start;
      if (!err && (a.code < 200 || a.code > 299)) err = errorFromResponse(a.code, a.body, retryAfter);
      observe(r, err && err->reason == ApiError::Reason::Transport ? 0 : a.code,
              err ? &*err : nullptr, latency, throttled, attempt);
      if (!err) return a;
      if (auto wait = retryWait(r, *err, attempt)) {
        time->sleepFor(*wait);
        continue;
      }
      return std::unexpected(std::move(*err));
    }
  }

  Result<Json> sendJson(const Request& r) {
    auto a = send(r);
    if (!a) return std::unexpected(a.error());
    if (a->body.empty()) return Json::object();
    Json j = Json::parse(a->body, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded())
      return std::unexpected(decodeError(r.verb + " " + r.pathAndQuery + ": answer is not JSON"));
    return j;
  }
};

RestClient::RestClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
RestClient::~RestClient() = default;

std::expected<std::shared_ptr<RestClient>, std::string> RestClient::create(
    RestConfig config, TimeSourcePtr time, RequestObserverPtr observer) {
  while (!config.server.empty() && config.server.back() == '/') config.server.pop_back();
  if (config.server.empty()) return std::unexpected(std::string("rest config: server is empty"));
  if (!config.server.starts_with("https://") && !config.server.starts_with("http://"))
    return std::unexpected("rest config: server \"" + config.server +
                           "\" must start with https:// or http://");
  if (!web::uri::validate(config.server))
    return std::unexpected("rest config: server \"" + config.server + "\" is not a valid URL");
  if (config.server.starts_with("https://")) {
    if (auto err = detail::validateTls(config); !err.empty())
      return std::unexpected("rest config: " + err);
  }
  if (!time) time = RealTimeSource::instance();
  try {
    auto impl = std::make_unique<Impl>(std::move(config), std::move(time), std::move(observer));
    return std::shared_ptr<RestClient>(new RestClient(std::move(impl)));
  } catch (const std::exception& e) {
    return std::unexpected(std::string("rest config: ") + e.what());
  }
}

const RestConfig& RestClient::config() const { return impl_->cfg; }

Result<Json> RestClient::get(const ResourceKind& kind, const std::string& ns,
                             const std::string& name) {
  if (name.empty()) return std::unexpected(clientError("get " + kind.resource + ": empty name"));
  Request r{http::methods::GET, "GET", kind.resource, resourcePath(kind, ns, name)};
  r.idempotent = true;
  return impl_->sendJson(r);
}

Result<Json> RestClient::getSubresource(const ResourceKind& kind, const std::string& ns,
                                        const std::string& name, const std::string& subresource) {
  if (name.empty()) return std::unexpected(clientError("get " + kind.resource + ": empty name"));
  Request r{http::methods::GET, "GET", resourceLabel(kind, subresource),
            resourcePath(kind, ns, name, subresource)};
  r.idempotent = true;
  return impl_->sendJson(r);
}

Result<std::string> RestClient::getRaw(const std::string& pathAndQuery) {
  Request r{http::methods::GET, "GET", "", pathAndQuery};
  r.idempotent = true;
  auto a = impl_->send(r);
  if (!a) return std::unexpected(a.error());
  return std::move(a->body);
}

Result<ObjectList> RestClient::list(const ResourceKind& kind, const std::string& ns,
                                    const ListOptions& opts) {
  Request r{http::methods::GET, "LIST", kind.resource,
            resourcePath(kind, ns) + buildQuery(listQuery(opts, false))};
  r.idempotent = true;
  auto j = impl_->sendJson(r);
  if (!j) return std::unexpected(j.error());
  return decodeObjectList(*j);
}

namespace {
QueryParams writeQuery(const std::string& fieldManager, bool dryRun) {
  QueryParams q;
  if (dryRun) q.emplace_back("dryRun", "All");
  if (!fieldManager.empty()) q.emplace_back("fieldManager", fieldManager);
  return q;
}
}  // namespace

Result<Json> RestClient::create(const ResourceKind& kind, const std::string& ns, const Json& obj,
                                const WriteOptions& opts) {
  std::string n = ns.empty() && kind.namespaced ? metaString(obj, "namespace") : ns;
  if (kind.namespaced && n.empty())
    return std::unexpected(clientError("create " + kind.resource + ": no namespace"));
  std::string path = opts.subresource.empty()
                         ? resourcePath(kind, n)
                         : resourcePath(kind, n, metaString(obj, "name"), opts.subresource);
  Request r{http::methods::POST, "POST", resourceLabel(kind, opts.subresource),
            path + buildQuery(writeQuery(opts.fieldManager, opts.dryRun)), obj.dump()};
  return impl_->sendJson(r);
}

Result<Json> RestClient::update(const ResourceKind& kind, const std::string& ns, const Json& obj,
                                const WriteOptions& opts) {
  std::string name = metaString(obj, "name");
  if (name.empty()) return std::unexpected(clientError("update " + kind.resource + ": no metadata.name"));
  std::string n = ns.empty() && kind.namespaced ? metaString(obj, "namespace") : ns;
  if (kind.namespaced && n.empty())
    return std::unexpected(clientError("update " + kind.resource + ": no namespace"));
  Request r{http::methods::PUT, "PUT", resourceLabel(kind, opts.subresource),
            resourcePath(kind, n, name, opts.subresource) +
                buildQuery(writeQuery(opts.fieldManager, opts.dryRun)),
            obj.dump()};
  return impl_->sendJson(r);
}

Result<Json> RestClient::patch(const ResourceKind& kind, const std::string& ns,
                               const std::string& name, PatchType type, const std::string& body,
                               const PatchOptions& opts) {
  if (name.empty()) return std::unexpected(clientError("patch " + kind.resource + ": empty name"));
  if (type == PatchType::Apply && opts.fieldManager.empty())
    return std::unexpected(clientError("apply " + kind.resource + ": fieldManager is required"));
  QueryParams q = writeQuery(opts.fieldManager, false);
  if (type == PatchType::Apply && opts.force) q.emplace_back("force", "true");
  Request r{http::methods::PATCH, type == PatchType::Apply ? "APPLY" : "PATCH",
            resourceLabel(kind, opts.subresource),
            resourcePath(kind, ns, name, opts.subresource) + buildQuery(q), body,
            contentType(type)};
  return impl_->sendJson(r);
}

Result<Json> RestClient::apply(const ResourceKind& kind, const std::string& ns, const Json& obj,
                               const PatchOptions& opts) {
  std::string name = metaString(obj, "name");
  if (name.empty()) return std::unexpected(clientError("apply " + kind.resource + ": no metadata.name"));
  std::string n = ns.empty() && kind.namespaced ? metaString(obj, "namespace") : ns;
  if (kind.namespaced && n.empty())
    return std::unexpected(clientError("apply " + kind.resource + ": no namespace"));
  return patch(kind, n, name, PatchType::Apply, obj.dump(), opts);
}

Result<Json> RestClient::remove(const ResourceKind& kind, const std::string& ns,
                                const std::string& name, const DeleteOptions& opts) {
  if (name.empty()) return std::unexpected(clientError("delete " + kind.resource + ": empty name"));
  Request r{http::methods::DEL, "DELETE", kind.resource, resourcePath(kind, ns, name),
            deleteOptionsBody(opts).dump()};
  return impl_->sendJson(r);
}

Result<WatchStreamPtr> RestClient::watch(const ResourceKind& kind, const std::string& ns,
                                         const ListOptions& opts) {
  ListOptions o = opts;
  if (!o.timeoutSeconds || *o.timeoutSeconds <= 0)
    o.timeoutSeconds = impl_->cfg.defaultWatchTimeout.count();
  Request r{http::methods::GET, "WATCH", kind.resource,
            resourcePath(kind, ns) + buildQuery(listQuery(o, true))};
  r.idempotent = true;

  // A client per watch: its inactivity timeout is this watch's, and a long-lived
  // stream does not hold a connection of the shared pool.
  const auto inactivity = std::chrono::seconds(*o.timeoutSeconds) + impl_->cfg.watchInactivitySlack;
  std::shared_ptr<hc::http_client> client;
  try {
    client = std::make_shared<hc::http_client>(impl_->base, impl_->clientConfig(inactivity));
  } catch (...) {
    return std::unexpected(fromException(std::current_exception(), "watch " + kind.resource));
  }

  for (int attempt = 0;; ++attempt) {
    const Duration throttled = impl_->throttle();
    const auto start = std::chrono::steady_clock::now();
    pplx::cancellation_token_source cts;
    std::optional<ApiError> err;
    int code = 0;
    try {
      http::http_request req = impl_->buildRequest(r);
      http::http_response resp = client->request(req, cts.get_token()).get();
      code = resp.status_code();
      if (code >= 200 && code <= 299) {
        impl_->observe(r, code, nullptr, std::chrono::steady_clock::now() - start, throttled,
                       attempt);
        return WatchStreamPtr(std::make_unique<RestWatchStream>(client, cts, std::move(resp)));
      }
      std::string retryAfter;
      auto it = resp.headers().find("Retry-After");
      if (it != resp.headers().end()) retryAfter = it->second;
      std::string body = resp.extract_utf8string(true).get();
      err = errorFromResponse(code, body, retryAfter);
    } catch (...) {
      err = fromException(std::current_exception(), "WATCH " + r.pathAndQuery);
      code = 0;
    }
    impl_->observe(r, code, &*err, std::chrono::steady_clock::now() - start, throttled, attempt);
    if (auto wait = impl_->retryWait(r, *err, attempt)) {
      impl_->time->sleepFor(*wait);
      continue;
    }
    return std::unexpected(std::move(*err));
  }
}

}  // namespace waterline::kube
