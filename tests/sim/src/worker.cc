#include "waterline/sim/worker.h"

#include <algorithm>

namespace waterline::sim {

SimWorker::SimWorker(ServiceModel model, WorkerParams params) : model_(std::move(model)), params_(params) {
  kvCap_ = params_.kvCapacityTokens > 0 ? params_.kvCapacityTokens : model_.kvCapacityTokens();
  if (kvCap_ <= 0) kvCap_ = 1e12;  // unknown model: no KV limit
  params_.maxBatch = std::max(1, params_.maxBatch);
  params_.maxPrefillTokens = std::max(1, params_.maxPrefillTokens);
}

void SimWorker::submit(const SimRequest& r, double now) {
  ActiveRequest a;
  a.id = r.id;
  a.arrival = now;
  a.output = std::max(1, r.outputTokens);
  a.input = std::max(1, r.inputTokens);
  // Never larger than the whole cache (the prompt is cut first, as a max_model_len would).
  const double cap = std::max(2.0, kvCap_);
  if (a.input + a.output > cap) {
    a.output = std::min<int32_t>(a.output, static_cast<int32_t>(cap / 2));
    a.input = std::max<int32_t>(1, static_cast<int32_t>(cap) - a.output);
  }
  waiting_.push_back(a);
  now_ = std::max(now_, now);
  if (!busy_) startIteration(now_);
}

double SimWorker::kvUsage() const { return std::clamp(kvUsed_ / kvCap_, 0.0, 1.0); }

double SimWorker::busySecondsUntil(double t) const {
  double b = busyDone_;
  if (busy_ && t > iterStart_) b += std::min(t, iterEnd_) - iterStart_;
  return b;
}

bool SimWorker::startIteration(double at) {
  // Admit from the queue.
  int64_t tokens = 0;
  while (!waiting_.empty()) {
    const auto& w = waiting_.front();
    const bool roomInBatch = running_.size() + admitted_.size() < static_cast<size_t>(params_.maxBatch);
    const bool roomInCache = kvUsed_ + w.input + w.output <= kvCap_;
    const bool roomInIteration = admitted_.empty() || tokens + w.input <= params_.maxPrefillTokens;
    if (!roomInBatch || !roomInCache || !roomInIteration) break;
    ActiveRequest a = w;
    waiting_.pop_front();
    a.admittedAt = at;
    kvUsed_ += a.input + a.output;
    tokens += a.input;
    admitted_.push_back(a);
  }
  double dur;
  if (!admitted_.empty()) {
    prefill_ = true;
    dur = model_.prefillSeconds(double(tokens));
  } else if (!running_.empty()) {
    prefill_ = false;
    dur = model_.decodeStepSeconds(static_cast<int>(running_.size()));
  } else {
    busy_ = false;
    return false;
  }
  busy_ = true;
  iterStart_ = at;
  iterEnd_ = at + std::max(dur, 1e-6);
  return true;
}

void SimWorker::finishIteration(const WorkerEvents& ev) {
  const double t = iterEnd_;
  busyDone_ += iterEnd_ - iterStart_;
  busy_ = false;
  if (prefill_) {
    int64_t promptTokens = 0;
    for (auto& a : admitted_) promptTokens += a.input;
    if (ev.iteration) ev.iteration(iterEnd_ - iterStart_, static_cast<int>(admitted_.size()), true, promptTokens);
    for (auto& a : admitted_) {
      a.generated = 1;
      a.firstTokenAt = t;
      if (ev.firstToken) ev.firstToken(a, t);
      if (ev.tokens) ev.tokens(a, t);
      if (a.generated >= a.output) {
        kvUsed_ -= a.input + a.output;
        if (ev.done) ev.done(a, t);
      } else {
        running_.push_back(a);
      }
    }
    admitted_.clear();
  } else {
    if (ev.iteration) ev.iteration(iterEnd_ - iterStart_, static_cast<int>(running_.size()), false, 0);
    size_t keep = 0;
    for (size_t i = 0; i < running_.size(); ++i) {
      auto& a = running_[i];
      a.generated += 1;
      if (ev.tokens) ev.tokens(a, t);
      if (a.generated >= a.output) {
        kvUsed_ -= a.input + a.output;
        if (ev.done) ev.done(a, t);
      } else {
        if (keep != i) running_[keep] = a;
        ++keep;
      }
    }
    running_.resize(keep);
  }
  if (kvUsed_ < 0.5) kvUsed_ = 0;  // float drift
}

void SimWorker::advanceTo(double t, const WorkerEvents& ev) {
  while (busy_ && iterEnd_ <= t) {
    finishIteration(ev);
    now_ = iterEnd_;
    startIteration(now_);
  }
  now_ = std::max(now_, t);
}

std::vector<ActiveRequest> SimWorker::failAll() {
  std::vector<ActiveRequest> out(waiting_.begin(), waiting_.end());
  out.insert(out.end(), admitted_.begin(), admitted_.end());
  out.insert(out.end(), running_.begin(), running_.end());
  waiting_.clear();
  admitted_.clear();
  running_.clear();
  kvUsed_ = 0;
  if (busy_) {
    busyDone_ += std::max(0.0, std::min(now_, iterEnd_) - iterStart_);
    busy_ = false;
  }
  return out;
}

}  // namespace waterline::sim
