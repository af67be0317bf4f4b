#include "waterline/router/attempts.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace waterline::router {

namespace {

std::string fmtNum(double v) {
  if (!std::isfinite(v)) v = 0;
  if (v < 0) v = 0;
  if (v > 9e18) v = 9e18;  // the cast below is undefined past LLONG_MAX
  return std::to_string(static_cast<long long>(std::floor(v)));
}

// Weighted tokens as the limiter may see them: finite, in [0, 1e15]. The weights come
// from the routing table and the token counts from the request or the upstream; a NaN, an
// infinity or an absurd product must not reach the admission window (a NaN charge would
// otherwise be admitted as 0, an infinite settlement poison the window's running sum).
// `ifInvalid` is what a NaN/negative value stands for.
double saneTokens(double v, double ifInvalid) {
  if (std::isnan(v) || v < 0) v = ifInvalid;
  return std::clamp(v, 0.0, 1e15);
}

// Whole seconds, rounded up from the rounded-up milliseconds (so that Retry-After is
// never below retry-after-ms / 1000: 5.0004 s is 5001 ms and 6 s, not 5 s).
long long retrySeconds(Duration d) {
  if (d == Duration::max()) return 60;
  auto s = std::chrono::ceil<std::chrono::milliseconds>(d).count();
  return std::max<long long>(1, (s + 999) / 1000);
}

}  // namespace

const char* toString(Answer::Why w) {
  switch (w) {
    case Answer::Why::Throttled: return "throttled";
    case Answer::Why::CapacityExceeded: return "capacity_exceeded";
    case Answer::Why::NoHealthyUpstream: return "no_healthy_upstream";
    case Answer::Why::NoUpstreamAvailable: return "no_upstream_available";
    case Answer::Why::DeadlineExceeded: return "deadline_exceeded";
  }
  return "unknown";
}

HeaderList rateLimitHeaders(const routing::Admission& a, bool throttled) {
  HeaderList h;
  if (a.outcome == routing::AdmitOutcome::NoReservation) return h;
  if (throttled) {
    long long secs = retrySeconds(a.retryAfter);
    h.emplace_back("Retry-After", std::to_string(secs));
    // Rounded up, like the seconds: clients wait exactly this long (the openai SDKs prefer
    // retry-after-ms to Retry-After), and one that came back before the request fits would
    // be refused again.
    long long ms = a.retryAfter == Duration::max()
                       ? 60000
                       : std::max<long long>(1, std::chrono::ceil<std::chrono::milliseconds>(a.retryAfter).count());
    h.emplace_back("retry-after-ms", std::to_string(ms));
  }
  if (a.by == routing::AdmitLimiter::Quota) {
    // The deployment's quota (spec.rateLimit): OpenAI's header set, limits included.
    h.emplace_back("x-ratelimit-limit-tokens", fmtNum(a.limitTokens));
    h.emplace_back("x-ratelimit-limit-requests", fmtNum(a.limitRequests));
  }
  h.emplace_back("x-ratelimit-remaining-tokens", fmtNum(a.remainingTokens));
  h.emplace_back("x-ratelimit-remaining-requests", fmtNum(a.remainingRequests));
  return h;
}

AttemptPlanner::AttemptPlanner(const DeploymentIndex& routes, const routing::DeploymentRoutes& requested,
                               routing::TokenEstimate est, std::size_t bodyBytes, AttemptLimits limits,
                               PtuLedger& ledger, UpstreamPool& pool, MonotonicTime arrived)
    : routes_(routes),
      requested_(requested),
      est_(est),
      bodyBytes_(bodyBytes),
      limits_(limits),
      ledger_(ledger),
      pool_(pool),
      arrived_(arrived),
      cur_(&requested),
      attemptsLeft_(limits.maxAttempts) {}

bool AttemptPlanner::pastDeadline(Now now) const {
  return limits_.deadline > Duration::zero() && now.mono - arrived_ >= limits_.deadline;
}

bool AttemptPlanner::allTried(const routing::RoutingEntry& e) const {
  return std::all_of(e.endpoints.begin(), e.endpoints.end(), [&](const std::string& ep) {
    return std::any_of(tried_.begin(), tried_.end(), [&](const std::string* t) { return *t == ep; });
  });
}

void AttemptPlanner::refund(Now now) {
  if (!admOpen_) return;
  admOpen_ = false;
  ledger_.settle(adm_, 0, now.mono);
}

Action AttemptPlanner::spillTo(const routing::DeploymentRoutes* next, const char* reason) {
  Action a;
  a.kind = Action::Kind::Spill;
  a.deployment = cur_;
  a.reason = reason;
  a.target = next;
  if (next) {
    spilled_ = reason;
    cur_ = next;
    ++hops_;
    phase_ = Phase::Admit;
  }
  return a;
}

const Answer& AttemptPlanner::answer() const {
  if (!answer_) throw std::logic_error("AttemptPlanner::answer: the planner did not answer");
  return *answer_;
}

Action AttemptPlanner::finish(Answer::Why why) {
  Answer& answer = answer_.emplace();
  answer.why = why;
  const std::string dep = cur_ ? cur_->deployment.str() : requested_.deployment.str();
  switch (why) {
    case Answer::Why::Throttled: {
      answer.error = makeError(429, "", "rate_limit_error", "rate_limit_exceeded");
      if (adm_.by == routing::AdmitLimiter::Quota) {
        answer.error.message =
            adm_.retryAfter == Duration::max()
                ? "The request needs about " + fmtNum(charge_) + " tokens, more than the rate limit of deployment " +
                      dep + " admits per minute on this router."
                : "Requests to deployment " + dep + " have exceeded its rate limit (spec.rateLimit). Retry after " +
                      std::to_string(retrySeconds(adm_.retryAfter)) + " seconds.";
      } else if (adm_.retryAfter == Duration::max()) {
        answer.error.message = "The request needs about " + fmtNum(charge_) + " tokens, more than reservation " +
                                adm_.reservation.str() + " admits per minute on this router.";
      } else {
        answer.error.message = "Requests to deployment " + dep +
                                " have exceeded the provisioned throughput of reservation " + adm_.reservation.str() +
                                ". Retry after " + std::to_string(retrySeconds(adm_.retryAfter)) + " seconds.";
      }
      answer.headers = rateLimitHeaders(adm_, true);
      break;
    }
    case Answer::Why::CapacityExceeded:
      answer.error = makeError(429, "Every pool of deployment " + dep + " is at its utilisation limit. Retry shortly.",
                                "rate_limit_error", "capacity_exceeded");
      answer.headers = rateLimitHeaders(adm_, false);
      answer.headers.emplace_back("Retry-After", "1");
      break;
    case Answer::Why::NoHealthyUpstream:
      answer.error = makeError(503, "Deployment " + dep + " has no healthy replicas in the pools it may use.",
                                "server_error", "no_healthy_upstream");
      break;
    case Answer::Why::NoUpstreamAvailable:
      answer.error = makeError(503,
                                "No upstream replica of deployment " + requested_.deployment.str() +
                                    " could take the request.",
                                "server_error", "no_upstream_available");
      break;
    case Answer::Why::DeadlineExceeded:
      answer.error = makeError(503,
                                "No upstream replica of deployment " + requested_.deployment.str() +
                                    " could take the request within the failover deadline (" +
                                    std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(limits_.deadline).count()) +
                                    " ms).",
                                "server_error", "no_upstream_available");
      break;
  }
  phase_ = Phase::Answered;
  Action a;
  a.kind = Action::Kind::Answer;
  a.deployment = cur_;
  return a;
}

Action AttemptPlanner::next(Now now) {
  for (;;) {
    switch (phase_) {
      case Phase::Admit: {
        if (!cur_ || hops_ > limits_.maxSpilloverHops ||
            std::find(visited_.begin(), visited_.end(), cur_) != visited_.end())
          return finish(Answer::Why::NoUpstreamAvailable);
        visited_.push_back(cur_);
        // An estimate that is not a finite non-negative number charges the most (refused
        // by any reservation), never nothing.
        charge_ = saneTokens(
            cur_->weightedTokens(static_cast<double>(est_.promptTokens), static_cast<double>(est_.maxOutputTokens)),
            1e15);
        adm_ = ledger_.admit(*cur_, charge_, now.mono);
        admOpen_ = adm_.outcome == routing::AdmitOutcome::Admitted;
        if (adm_.outcome == routing::AdmitOutcome::Spill) {
          const auto* next = routes_.spilloverOf(*cur_);
          if (!next) {
            adm_.outcome = routing::AdmitOutcome::Throttle;  // spillover target missing from the table
            phase_ = Phase::Throttle;
          }
          return spillTo(next, adm_.by == routing::AdmitLimiter::Quota ? "quota" : "ptu");
        }
        phase_ = adm_.outcome == routing::AdmitOutcome::Throttle ? Phase::Throttle : Phase::Choose;
        continue;
      }
      case Phase::Throttle:
        return finish(Answer::Why::Throttled);
      case Phase::Choose: {
        routing::PoolChoice choice = pool_.choosePools(*cur_, adm_.scope, now.wall, static_cast<double>(est_.promptTokens));
        order_ = std::move(choice.order);
        if (order_.empty() && limits_.bestEffort)
          for (const auto* e : choice.saturated)
            if (e->weight > 0) order_.push_back(e);
        if (order_.empty()) {
          refund(now);
          if (const auto* next = routes_.spilloverOf(*cur_)) return spillTo(next, "capacity");
          return finish(choice.saturated.empty() ? Answer::Why::NoHealthyUpstream : Answer::Why::CapacityExceeded);
        }
        headers_ = rateLimitHeaders(adm_, false);
        if (spilled_) headers_.emplace_back("x-waterline-spilled", spilled_);
        tried_.clear();
        entry_ = 0;
        phase_ = Phase::Pick;
        continue;
      }
      case Phase::Pick: {
        // Pools in order; within a pool, a replica not yet tried for this deployment,
        // then the next pool.
        while (attemptsLeft_ > 0 && entry_ < order_.size()) {
          const routing::RoutingEntry& e = *order_[entry_];
          if (allTried(e)) {
            ++entry_;
            continue;
          }
          if (attempts_ > 0 && pastDeadline(now)) {
            refund(now);
            return finish(Answer::Why::DeadlineExceeded);
          }
          const auto idx = pool_.pickReplica(e, tried_, now.mono);
          if (!idx) {
            ++entry_;
            continue;
          }
          --attemptsLeft_;
          ++attempts_;
          pool_.onAttempt(e, *idx, charge_);
          tried_.push_back(&e.endpoints[*idx]);
          lastEntry_ = &e;
          lastReplica_ = *idx;
          phase_ = Phase::Attempting;
          Action a;
          a.kind = Action::Kind::Try;
          a.deployment = cur_;
          a.entry = &e;
          a.replica = *idx;
          a.headers = &headers_;
          return a;
        }
        refund(now);  // nothing served by this deployment
        const auto* next = routes_.spilloverOf(*cur_);
        if (attemptsLeft_ > 0 && next) {
          if (pastDeadline(now)) return finish(Answer::Why::DeadlineExceeded);
          return spillTo(next, "failover");
        }
        return finish(Answer::Why::NoUpstreamAvailable);
      }
      case Phase::Attempting:
        throw std::logic_error("AttemptPlanner::next: the last attempt's outcome was not reported");
      case Phase::Answered: {
        Action a;
        a.kind = Action::Kind::Answer;
        a.deployment = cur_;
        return a;
      }
      case Phase::Responded:
        throw std::logic_error("AttemptPlanner::next: the request was answered by an upstream");
    }
  }
}

void AttemptPlanner::onFailure(AttemptFailure f, Now now) {
  if (phase_ != Phase::Attempting) throw std::logic_error("AttemptPlanner::onFailure: no attempt in progress");
  pool_.onFailure(*lastEntry_, lastReplica_, f, now.mono);
  phase_ = Phase::Pick;
}

Settlement AttemptPlanner::onResponse(const ResponseSummary& r, Now now) {
  if (phase_ != Phase::Attempting) throw std::logic_error("AttemptPlanner::onResponse: no attempt in progress");
  phase_ = Phase::Responded;
  Settlement s;
  // Settle with what the response reported, clamped to what this request could have
  // produced (clampUsage, docs/routing.md).
  double actual;
  if (r.usage) {
    const routing::Usage u = clampUsage(*r.usage, est_, bodyBytes_);
    s.usageClamped = u != *r.usage;
    actual = cur_->weightedTokens(static_cast<double>(u.promptTokens), static_cast<double>(u.completionTokens));
  } else if (r.status >= 400) {
    actual = 0;
  } else if (r.sse) {
    const routing::Usage u = clampUsage({est_.promptTokens, r.sseEvents}, est_, bodyBytes_);
    actual = cur_->weightedTokens(static_cast<double>(u.promptTokens), static_cast<double>(u.completionTokens));
  } else {
    actual = charge_;
  }
  actual = saneTokens(actual, charge_);
  s.tokens = actual;
  if (admOpen_) {
    admOpen_ = false;
    s.settled = true;
    ledger_.settle(adm_, actual, now.mono);
  }
  return s;
}

}  // namespace waterline::router
