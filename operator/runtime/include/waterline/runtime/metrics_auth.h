#pragma once
// Authentication and authorization of /metrics requests, as controller-runtime's
// filters.WithAuthenticationAndAuthorization does: the bearer token is checked with a
// TokenReview, then its user with a SubjectAccessReview for the non-resource URL
// /metrics, verb get. Results are cached for a short TTL (by token), so a scraper
// costs two API calls per TTL, not per scrape.
//
//   no "Authorization: Bearer <token>"      401
//   token not authenticated                 401
//   user not allowed get on /metrics        403
//   TokenReview/SubjectAccessReview failed  500 (logged; not cached)
//
// The operator's ServiceAccount needs create on tokenreviews (authentication.k8s.io)
// and subjectaccessreviews (authorization.k8s.io); see docs/security.md.
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "waterline/common/time.h"
#include "waterline/kube/client.h"
#include "waterline/runtime/http_server.h"

namespace waterline::runtime {

class MetricsAuthorizer {
 public:
  virtual ~MetricsAuthorizer() = default;
  // Calls `done` exactly once, possibly on another thread: std::nullopt when the
  // request may read the metrics, else the response to send instead.
  virtual void authorize(const HttpRequest& req, std::function<void(std::optional<HttpResponse>)> done) = 0;
};

struct KubernetesMetricsAuthOptions {
  std::string path = "/metrics";  // the nonResourceAttributes path
  std::chrono::seconds ttl{60};   // how long an answer (allowed, denied, unauthenticated) is reused
  std::size_t maxEntries = 1024;  // cache bound (tokens); the soonest to expire go first
  std::size_t maxQueued = 64;     // reviews waiting for the API; beyond: 503
};

// Reviews run on one worker thread of the returned object (never on the HTTP I/O
// thread); cached answers are given at once. Destroying it waits for the review in
// progress and answers the queued ones with 503.
std::shared_ptr<MetricsAuthorizer> kubernetesMetricsAuthorizer(kube::ClientPtr client, TimeSourcePtr time,
                                                               KubernetesMetricsAuthOptions opts = {});

}  // namespace waterline::runtime
