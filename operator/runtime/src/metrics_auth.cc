#include "waterline/runtime/metrics_auth.h"

#include <cctype>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <thread>

#include "waterline/common/log.h"

namespace waterline::runtime {

namespace {

const log::Logger& lg() {
  static const log::Logger l = log::logger("metrics-auth");
  return l;
}

const kube::ResourceKind kTokenReviews{"authentication.k8s.io", "v1", "tokenreviews", "TokenReview", false};
const kube::ResourceKind kSubjectAccessReviews{"authorization.k8s.io", "v1", "subjectaccessreviews",
                                               "SubjectAccessReview", false};

HttpResponse plain(int status, std::string body) {
  HttpResponse r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

HttpResponse unauthorized(std::string body) {
  HttpResponse r = plain(401, std::move(body));
  r.headers["WWW-Authenticate"] = "Bearer";
  return r;
}

// The token of "Authorization: Bearer <token>" ("" when there is none).
std::string bearerToken(const HttpRequest& req) {
  auto it = req.headers.find("authorization");
  if (it == req.headers.end()) return "";
  const std::string& v = it->second;
  if (v.size() <= 7) return "";
  std::string scheme = v.substr(0, 7);
  for (auto& c : scheme) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (scheme != "bearer ") return "";
  auto token = v.substr(7);
  const auto b = token.find_first_not_of(' ');
  if (b == std::string::npos) return "";
  token = token.substr(b);
  while (!token.empty() && token.back() == ' ') token.pop_back();
  return token;
}

class KubernetesAuthorizer final : public MetricsAuthorizer {
 public:
  KubernetesAuthorizer(kube::ClientPtr client, TimeSourcePtr time, KubernetesMetricsAuthOptions opts)
      : client_(std::move(client)), time_(std::move(time)), opts_(std::move(opts)) {
    worker_ = std::thread([this] { loop(); });
  }

  ~KubernetesAuthorizer() override {
    std::deque<Job> left;
    {
      std::lock_guard g(mu_);
      stopping_ = true;
      left.swap(queue_);
    }
    cv_.notify_all();
    if (worker_.joinable()) worker_.join();
    for (auto& j : left) j.done(plain(503, "shutting down\n"));
  }

  void authorize(const HttpRequest& req, std::function<void(std::optional<HttpResponse>)> done) override {
    std::string token = bearerToken(req);
    if (token.empty()) {
      done(unauthorized("Unauthorized: a bearer token is required\n"));
      return;
    }
    {
      std::unique_lock lk(mu_);
      if (auto answer = cachedLocked(token)) {
        lk.unlock();
        done(*answer);
        return;
      }
      if (stopping_ || queue_.size() >= opts_.maxQueued) {
        lk.unlock();
        done(plain(503, "too many authorization reviews in flight\n"));
        return;
      }
      queue_.push_back(Job{std::move(token), std::move(done)});
    }
    cv_.notify_one();
  }

 private:
  struct Job {
    std::string token;
    std::function<void(std::optional<HttpResponse>)> done;
  };
  struct Entry {
    std::optional<HttpResponse> answer;
    MonotonicTime expires;
  };

  std::optional<std::optional<HttpResponse>> cachedLocked(const std::string& token) {
    auto it = cache_.find(token);
    if (it == cache_.end()) return std::nullopt;
    if (time_->monotonicTime() >= it->second.expires) {
      cache_.erase(it);
      return std::nullopt;
    }
    return it->second.answer;
  }

  void storeLocked(const std::string& token, std::optional<HttpResponse> answer) {
    const auto now = time_->monotonicTime();
    if (cache_.size() >= opts_.maxEntries && !cache_.count(token)) {
      std::erase_if(cache_, [&](const auto& kv) { return now >= kv.second.expires; });
      while (cache_.size() >= opts_.maxEntries && !cache_.empty()) {
        auto soonest = cache_.begin();
        for (auto it = cache_.begin(); it != cache_.end(); ++it)
          if (it->second.expires < soonest->second.expires) soonest = it;
        cache_.erase(soonest);
      }
    }
    if (opts_.maxEntries == 0) return;
    cache_[token] = Entry{std::move(answer), now + opts_.ttl};
  }

  void loop() {
    for (;;) {
      Job job;
      {
        std::unique_lock lk(mu_);
        cv_.wait(lk, [&] { return stopping_ || !queue_.empty(); });
        if (stopping_) return;
        job = std::move(queue_.front());
        queue_.pop_front();
        // Another job for the same token may have been answered meanwhile.
        if (auto answer = cachedLocked(job.token)) {
          lk.unlock();
          job.done(*answer);
          continue;
        }
      }
      bool cacheable = true;
      std::optional<HttpResponse> answer = review(job.token, cacheable);
      if (cacheable) {
        std::lock_guard g(mu_);
        storeLocked(job.token, answer);
      }
      job.done(std::move(answer));
    }
  }

  // The answer for this token; cacheable=false for API errors.
  std::optional<HttpResponse> review(const std::string& token, bool& cacheable) {
    const kube::Json tr = {{"apiVersion", "authentication.k8s.io/v1"},
                           {"kind", "TokenReview"},
                           {"spec", {{"token", token}}}};
    auto trResult = client_->create(kTokenReviews, "", tr);
    if (!trResult) {
      cacheable = false;
      lg().error("TokenReview failed", {{"err", trResult.error().describe()}});
      return plain(500, "Internal Server Error: authentication failed\n");
    }
    const auto& status = (*trResult)["status"];
    if (!status.is_object() || !status.value("authenticated", false)) {
      return unauthorized("Unauthorized\n");
    }
    const auto& user = status.contains("user") ? status["user"] : kube::Json::object();
    kube::Json spec = {{"user", user.value("username", "")},
                       {"nonResourceAttributes", {{"path", opts_.path}, {"verb", "get"}}}};
    if (user.contains("uid")) spec["uid"] = user["uid"];
    if (user.contains("groups")) spec["groups"] = user["groups"];
    if (user.contains("extra")) spec["extra"] = user["extra"];
    const kube::Json sar = {{"apiVersion", "authorization.k8s.io/v1"},
                            {"kind", "SubjectAccessReview"},
                            {"spec", spec}};
    auto sarResult = client_->create(kSubjectAccessReviews, "", sar);
    if (!sarResult) {
      cacheable = false;
      lg().error("SubjectAccessReview failed", {{"err", sarResult.error().describe()}});
      return plain(500, "Internal Server Error: authorization failed\n");
    }
    const auto& s = (*sarResult)["status"];
    if (s.is_object() && s.value("allowed", false)) return std::nullopt;
    return plain(403, "Forbidden: user \"" + user.value("username", "") + "\" may not get path \"" +
                          opts_.path + "\"\n");
  }

  kube::ClientPtr client_;
  TimeSourcePtr time_;
  KubernetesMetricsAuthOptions opts_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::deque<Job> queue_;
  std::map<std::string, Entry> cache_;
  std::thread worker_;
};

}  // namespace

std::shared_ptr<MetricsAuthorizer> kubernetesMetricsAuthorizer(kube::ClientPtr client, TimeSourcePtr time,
                                                               KubernetesMetricsAuthOptions opts) {
  if (!time) time = RealTimeSource::instance();
  return std::make_shared<KubernetesAuthorizer>(std::move(client), std::move(time), std::move(opts));
}

}  // namespace waterline::runtime
