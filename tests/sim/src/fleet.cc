#include "waterline/sim/fleet.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <set>

#include <nlohmann/json.hpp>

namespace waterline::sim {

namespace {

const std::vector<std::string> kWorkerLabels = {"pod", "namespace", "deployment", "pool", "model_name"};
const std::vector<std::string> kGpuLabels = {"gpu", "UUID", "device", "modelName", "Hostname",
                                             "pod", "namespace", "container"};

bool fatalXid(int xid) {
  static const std::set<int> kFatal = {48, 62, 64, 74, 79, 92, 94, 95};
  return kFatal.contains(xid);
}

uint64_t fnv1a(std::string_view s, uint64_t h = 1469598103934665603ULL) {
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  return h;
}

std::string gpuUuid(const std::string& node, int index) {
  const std::string key = node + "/" + std::to_string(index);
  const uint64_t a = fnv1a(key), b = fnv1a(key, a);
  char buf[64];
  std::snprintf(buf, sizeof buf, "GPU-%08llx-%04llx-%04llx-%04llx-%012llx", (unsigned long long)(a >> 32),
                (unsigned long long)((a >> 16) & 0xffff), (unsigned long long)(a & 0xffff),
                (unsigned long long)(b >> 48), (unsigned long long)(b & 0xffffffffffffULL));
  return buf;
}

std::string gpuModelName(const std::string& hw) {
  if (hw.starts_with("h100")) return "NVIDIA H100 80GB HBM3";
  if (hw.starts_with("a100")) return "NVIDIA A100-SXM4-80GB";
  return hw;
}

double gpuMemMiB(const std::string& hw) { return hw.starts_with("a100") ? 81920.0 : 81559.0; }

std::vector<double> ttftBuckets() {
  return {0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0};
}
std::vector<double> tpotBuckets() {
  return {0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5};
}
std::vector<double> e2eBuckets() {
  return {0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0};
}

}  // namespace

// ------------------------------------------------------------------------------------
// Config parsing

std::expected<WorkerSpec, std::string> parseWorkerSpec(std::string_view s) {
  WorkerSpec w;
  while (!s.empty()) {
    const size_t comma = s.find(',');
    const std::string_view kv = s.substr(0, comma);
    const size_t eq = kv.find('=');
    if (eq == std::string_view::npos) return std::unexpected("worker: expected key=value, got \"" + std::string(kv) + "\"");
    const std::string k(kv.substr(0, eq)), v(kv.substr(eq + 1));
    if (k == "pod" || k == "name") w.pod = v;
    else if (k == "namespace" || k == "ns") w.ns = v;
    else if (k == "deployment") w.deployment = v;
    else if (k == "pool") w.pool = v;
    else if (k == "node") w.node = v;
    else if (k == "gpu") w.gpuType = v;
    else if (k == "model") w.model = v;
    else if (k == "tp") {
      try {
        w.tp = std::stoi(v);
      } catch (...) {
        return std::unexpected("worker: tp must be an integer");
      }
    } else {
      return std::unexpected("worker: unknown key " + k);
    }
    if (comma == std::string_view::npos) break;
    s.remove_prefix(comma + 1);
  }
  if (w.pod.empty()) return std::unexpected("worker: pod= is required");
  if (w.deployment.empty()) w.deployment = w.pod;
  if (w.tp < 1) return std::unexpected("worker: tp must be >= 1");
  return w;
}

std::expected<std::vector<WorkerSpec>, std::string> parseWorkerConfig(std::string_view json) {
  auto j = nlohmann::json::parse(json, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("workers") || !j["workers"].is_array())
    return std::unexpected("worker config: expected {\"workers\": [...]}");
  std::vector<WorkerSpec> out;
  for (const auto& e : j["workers"]) {
    if (!e.is_object()) return std::unexpected("worker config: each worker is an object");
    WorkerSpec w;
    w.pod = e.value("pod", std::string());
    w.ns = e.value("namespace", std::string("default"));
    w.deployment = e.value("deployment", w.pod);
    w.pool = e.value("pool", std::string());
    w.node = e.value("node", std::string());
    w.gpuType = e.value("gpu", std::string("H100"));
    w.tp = e.value("tp", 4);
    w.model = e.value("model", std::string("llama2-70b"));
    if (e.contains("gpus") && e["gpus"].is_array())
      for (const auto& g : e["gpus"])
        if (g.is_number_integer()) w.gpus.push_back(g.get<int>());
    if (w.pod.empty()) return std::unexpected("worker config: a worker without \"pod\"");
    if (w.tp < 1) return std::unexpected("worker config: " + w.pod + ": tp must be >= 1");
    out.push_back(std::move(w));
  }
  return out;
}

// ------------------------------------------------------------------------------------
// State

struct Fleet::Gpu {
  std::string uuid;
  std::string modelName;
  double memMiB = 81559;
  std::string pod;  // holder
  int xid = 0;
  double util = 0;  // percent
  double fbMiB = 0;
};

struct Fleet::Worker {
  WorkerSpec requested;  // as listed by the worker set
  WorkerSpec spec;       // with the node and GPUs assigned
  std::string hardware;
  std::unique_ptr<SimWorker> sim;
  double createdAt = 0;
  double readyAt = 0;
  bool draining = false;
  bool failed = false;
  std::vector<std::pair<std::string, int>> gpus;
  std::map<uint64_t, std::pair<DoneFn, ProgressFn>> callbacks;
  // utilisation average
  double utilEma = 0;
  double lastBusy = 0;
  double lastRefresh = 0;
  double weightsGiB = 0;
  // metrics children (null without a registry)
  metrics::Counter* promptTokens = nullptr;
  metrics::Counter* generationTokens = nullptr;
  metrics::Counter* success = nullptr;
  metrics::Histogram* ttft = nullptr;
  metrics::Histogram* tpot = nullptr;
  metrics::Histogram* e2e = nullptr;
  WorkerEvents events;  // built once (bound to this worker and its fleet)

  metrics::LabelValues labels() const { return {spec.pod, spec.ns, spec.deployment, spec.pool, spec.model}; }
  bool ready(double now) const { return !draining && !failed && now >= readyAt; }
};

struct Fleet::Metrics {
  metrics::Registry* reg;
  metrics::CounterFamily* promptTokens;
  metrics::CounterFamily* generationTokens;
  metrics::CounterFamily* success;
  metrics::HistogramFamily* ttft;
  metrics::HistogramFamily* tpot;
  metrics::HistogramFamily* e2e;
  std::vector<std::string> names;

  Metrics(metrics::Registry* r, Fleet* fleet) : reg(r) {
    promptTokens = &r->counter("vllm:prompt_tokens_total", "Number of prefill tokens processed.", kWorkerLabels);
    generationTokens =
        &r->counter("vllm:generation_tokens_total", "Number of generation tokens processed.", kWorkerLabels);
    success = &r->counter("vllm:request_success_total", "Count of successfully processed requests.", kWorkerLabels);
    ttft = &r->histogram("vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.",
                         kWorkerLabels, ttftBuckets());
    tpot = &r->histogram("vllm:time_per_output_token_seconds", "Histogram of time per output token in seconds.",
                         kWorkerLabels, tpotBuckets());
    e2e = &r->histogram("vllm:e2e_request_latency_seconds", "Histogram of end to end request latency in seconds.",
                        kWorkerLabels, e2eBuckets());
    auto perWorker = [fleet](auto value) {
      return [fleet, value] {
        std::vector<metrics::Sample> out;
        for (const auto& [_, w] : fleet->workers_) out.push_back({w->labels(), value(*w)});
        return out;
      };
    };
    r->gaugeFunc("vllm:num_requests_running", "Number of requests currently running on GPU.", kWorkerLabels,
                 perWorker([](const Worker& w) { return double(w.sim->running()); }));
    r->gaugeFunc("vllm:num_requests_waiting", "Number of requests waiting to be processed.", kWorkerLabels,
                 perWorker([](const Worker& w) { return double(w.sim->waiting()); }));
    r->gaugeFunc("vllm:gpu_cache_usage_perc", "GPU KV-cache usage. 1 means 100 percent usage.", kWorkerLabels,
                 perWorker([](const Worker& w) { return w.sim->kvUsage(); }));
    auto perGpu = [fleet](auto value) {
      return [fleet, value] {
        std::vector<metrics::Sample> out;
        for (const auto& [key, g] : fleet->gpus_) {
          const Worker* w = g.pod.empty() ? nullptr : fleet->find(g.pod);
          out.push_back({{std::to_string(key.second), g.uuid, "nvidia" + std::to_string(key.second), g.modelName,
                          key.first, w ? w->spec.pod : "", w ? w->spec.ns : "", w ? "vllm" : ""},
                         value(g)});
        }
        return out;
      };
    };
    r->gaugeFunc("DCGM_FI_DEV_GPU_UTIL", "GPU utilization (in %).", kGpuLabels,
                 perGpu([](const Gpu& g) { return std::round(g.util); }));
    r->gaugeFunc("DCGM_FI_DEV_FB_USED", "Framebuffer memory used (in MiB).", kGpuLabels,
                 perGpu([](const Gpu& g) { return std::round(g.fbMiB); }));
    r->gaugeFunc("DCGM_FI_DEV_XID_ERRORS", "Value of the last XID error encountered.", kGpuLabels,
                 perGpu([](const Gpu& g) { return double(g.xid); }));
    names = {"vllm:prompt_tokens_total", "vllm:generation_tokens_total", "vllm:request_success_total",
             "vllm:time_to_first_token_seconds", "vllm:time_per_output_token_seconds",
             "vllm:e2e_request_latency_seconds", "vllm:num_requests_running", "vllm:num_requests_waiting",
             "vllm:gpu_cache_usage_perc", "DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_DEV_FB_USED", "DCGM_FI_DEV_XID_ERRORS"};
  }
  ~Metrics() {
    for (const auto& n : names) reg->unregister(n);
  }
};

Fleet::Fleet(const PerfModel& perf, FleetOptions opts, metrics::Registry* registry) : perf_(perf), opts_(opts) {
  opts_.gpusPerNode = std::max(1, opts_.gpusPerNode);
  if (registry) metrics_ = std::make_unique<Metrics>(registry, this);
}

Fleet::~Fleet() = default;

Fleet::Worker* Fleet::find(std::string_view pod) {
  auto it = workers_.find(pod);
  return it == workers_.end() ? nullptr : it->second.get();
}

std::vector<std::string> Fleet::sync(const std::vector<WorkerSpec>& specs, double now) {
  advanceTo(now);
  std::vector<std::string> errors;
  std::set<std::string> listed;
  for (const auto& s : specs) {
    listed.insert(s.pod);
    if (Worker* w = find(s.pod)) {
      if (w->requested == s) {
        w->draining = false;
        continue;
      }
      removeWorker(s.pod);  // the same name with a new shape: a new pod
    }
    const std::string hw = normalizeHardware(s.gpuType);
    auto svc = perf_.service(s.model, hw, s.tp);
    if (!svc) {
      errors.push_back(s.pod + ": " + svc.error());
      continue;
    }
    // GPUs.
    auto ensureNode = [&](const std::string& node) {
      for (int i = 0; i < opts_.gpusPerNode; ++i) {
        auto& g = gpus_[{node, i}];
        if (g.uuid.empty()) {
          g.uuid = gpuUuid(node, i);
          g.modelName = gpuModelName(hw);
          g.memMiB = gpuMemMiB(hw);
        }
      }
    };
    auto freeOn = [&](const std::string& node) {
      std::vector<int> free;
      for (int i = 0; i < opts_.gpusPerNode; ++i)
        if (gpus_[{node, i}].pod.empty()) free.push_back(i);
      return free;
    };
    std::string node = s.node;
    std::vector<int> chosen;
    if (!node.empty()) {
      ensureNode(node);
      if (!s.gpus.empty()) {
        for (int g : s.gpus) {
          if (g < 0 || g >= opts_.gpusPerNode || !gpus_[{node, g}].pod.empty()) {
            errors.push_back(s.pod + ": GPU " + std::to_string(g) + " on " + node + " is not free");
            chosen.clear();
            break;
          }
          chosen.push_back(g);
        }
        if (chosen.empty()) continue;
      } else {
        auto free = freeOn(node);
        if (static_cast<int>(free.size()) < s.tp) {
          errors.push_back(s.pod + ": node " + node + " has " + std::to_string(free.size()) + " free GPUs, needs " +
                           std::to_string(s.tp));
          continue;
        }
        chosen.assign(free.begin(), free.begin() + s.tp);
      }
    } else {
      if (s.tp > opts_.gpusPerNode) {
        errors.push_back(s.pod + ": tp " + std::to_string(s.tp) + " exceeds GPUs per node");
        continue;
      }
      for (int n = 0;; ++n) {
        const std::string cand = "sim-node-" + std::to_string(n);
        ensureNode(cand);
        auto free = freeOn(cand);
        if (static_cast<int>(free.size()) >= s.tp) {
          node = cand;
          chosen.assign(free.begin(), free.begin() + s.tp);
          break;
        }
      }
    }
    auto w = std::make_unique<Worker>();
    w->requested = s;
    w->spec = s;
    w->spec.node = node;
    w->spec.gpus = chosen;
    w->hardware = hw;
    w->sim = std::make_unique<SimWorker>(*svc, opts_.worker);
    w->createdAt = now;
    w->readyAt = now + std::max(0.0, opts_.startupSeconds);
    w->lastRefresh = now;
    if (auto shape = modelShape(s.model)) w->weightsGiB = shape->weightsGiB;
    for (int g : chosen) {
      gpus_[{node, g}].pod = s.pod;
      gpus_[{node, g}].xid = 0;
      w->gpus.push_back({node, g});
    }
    if (metrics_) {
      const auto l = w->labels();
      w->promptTokens = &metrics_->promptTokens->withLabels(l);
      w->generationTokens = &metrics_->generationTokens->withLabels(l);
      w->success = &metrics_->success->withLabels(l);
      w->ttft = &metrics_->ttft->withLabels(l);
      w->tpot = &metrics_->tpot->withLabels(l);
      w->e2e = &metrics_->e2e->withLabels(l);
    }
    workers_[s.pod] = std::move(w);
  }
  std::vector<std::string> gone;
  for (auto& [pod, w] : workers_)
    if (!listed.contains(pod)) {
      w->draining = true;
      if (w->sim->outstanding() == 0 || w->failed) gone.push_back(pod);
    }
  for (const auto& p : gone) removeWorker(p);
  return errors;
}

void Fleet::removeWorker(const std::string& pod) {
  auto it = workers_.find(pod);
  if (it == workers_.end()) return;
  Worker& w = *it->second;
  for (auto& a : w.sim->failAll()) finishRequest(w, a, now_, true, "worker " + pod + " removed");
  for (const auto& key : w.gpus) {
    auto& g = gpus_[key];
    g.pod.clear();
    g.util = 0;
    g.fbMiB = 0;
  }
  if (metrics_) {
    const auto l = w.labels();
    metrics_->promptTokens->remove(l);
    metrics_->generationTokens->remove(l);
    metrics_->success->remove(l);
    metrics_->ttft->remove(l);
    metrics_->tpot->remove(l);
    metrics_->e2e->remove(l);
  }
  workers_.erase(it);
}

void Fleet::finishRequest(Worker& w, const ActiveRequest& a, double t, bool failed, const std::string& error) {
  if (failed) ++failed_;
  else ++completed_;
  auto it = w.callbacks.find(a.id);
  if (it == w.callbacks.end()) return;
  auto done = std::move(it->second.first);
  w.callbacks.erase(it);
  if (done) {
    Completion c;
    c.id = a.id;
    c.pod = w.spec.pod;
    c.arrival = a.arrival;
    c.firstToken = a.firstTokenAt;
    c.finish = t;
    c.input = a.input;
    c.output = a.generated;
    c.failed = failed;
    c.error = error;
    done(c);
  }
}

std::expected<std::string, std::string> Fleet::submit(const SimRequest& r, double now, std::string_view deployment,
                                                      std::string_view pod, DoneFn done, ProgressFn progress) {
  if (now > now_) advanceTo(now);
  Worker* best = nullptr;
  if (!pod.empty()) {
    best = find(pod);
    if (!best) {
      ++rejected_;
      return std::unexpected("no worker " + std::string(pod));
    }
    if (!best->ready(now_)) {
      ++rejected_;
      return std::unexpected("worker " + std::string(pod) + " is not ready");
    }
  } else {
    for (auto& [_, w] : workers_) {
      if (!w->ready(now_)) continue;
      if (!deployment.empty() && w->spec.deployment != deployment) continue;
      if (!best || w->sim->outstanding() < best->sim->outstanding()) best = w.get();
    }
    if (!best) {
      ++rejected_;
      return std::unexpected(deployment.empty() ? std::string("no ready worker")
                                                : "no ready worker for deployment " + std::string(deployment));
    }
  }
  if (done || progress) best->callbacks[r.id] = {std::move(done), std::move(progress)};
  best->sim->submit(r, now_);
  return best->spec.pod;
}

void Fleet::stepWorker(Worker& w, double t) {
  if (!w.events.done) {
    Worker* wp = &w;
    w.events.firstToken = [wp](const ActiveRequest& a, double at) {
      if (wp->promptTokens) wp->promptTokens->inc(a.input);
      if (wp->ttft) wp->ttft->observe(at - a.arrival);
    };
    w.events.iteration = [wp](double seconds, int batch, bool prefill, int64_t) {
      if (wp->generationTokens) wp->generationTokens->inc(batch);
      if (!prefill && wp->tpot)
        for (int i = 0; i < batch; ++i) wp->tpot->observe(seconds);
    };
    w.events.tokens = [wp](const ActiveRequest& a, double at) {
      if (wp->callbacks.empty()) return;
      auto it = wp->callbacks.find(a.id);
      if (it != wp->callbacks.end() && it->second.second) it->second.second(a.id, a.generated, at);
    };
    w.events.done = [this, wp](const ActiveRequest& a, double at) {
      if (wp->success) wp->success->inc();
      if (wp->e2e) wp->e2e->observe(at - a.arrival);
      finishRequest(*wp, a, at, false, "");
    };
  }
  w.sim->advanceTo(t, w.events);
}

void Fleet::advanceTo(double t) {
  if (t < now_) return;
  for (auto& [_, w] : workers_) stepWorker(*w, t);
  now_ = t;
  std::vector<std::string> gone;
  for (auto& [pod, w] : workers_)
    if (w->draining && (w->sim->outstanding() == 0 || w->failed)) gone.push_back(pod);
  for (const auto& p : gone) removeWorker(p);
}

bool Fleet::injectXid(const std::string& node, int gpu, int xid, double now) {
  auto it = gpus_.find({node, gpu});
  if (it == gpus_.end()) return false;
  advanceTo(now);
  it->second.xid = xid;
  if (fatalXid(xid) && !it->second.pod.empty()) {
    if (Worker* w = find(it->second.pod); w && !w->failed) {
      w->failed = true;
      for (auto& a : w->sim->failAll())
        finishRequest(*w, a, now_, true, "XID " + std::to_string(xid) + " on " + node + " GPU " + std::to_string(gpu));
    }
  }
  return true;
}

bool Fleet::clearXid(const std::string& node, int gpu) {
  auto it = gpus_.find({node, gpu});
  if (it == gpus_.end()) return false;
  it->second.xid = 0;
  if (!it->second.pod.empty())
    if (Worker* w = find(it->second.pod)) {
      bool anyXid = false;
      for (const auto& k : w->gpus) anyXid |= fatalXid(gpus_[k].xid);
      if (!anyXid) w->failed = false;
    }
  return true;
}

void Fleet::refreshGauges(double now) {
  if (now > now_) advanceTo(now);
  for (auto& [_, w] : workers_) {
    const double busy = w->sim->busySecondsUntil(now_);
    const double dt = now_ - w->lastRefresh;
    if (dt > 0) {
      const double frac = std::clamp((busy - w->lastBusy) / dt, 0.0, 1.0);
      const double alpha = 1.0 - std::exp(-dt / std::max(1e-3, opts_.utilTimeConstant));
      w->utilEma += (frac - w->utilEma) * alpha;
      w->lastBusy = busy;
      w->lastRefresh = now_;
    }
    // vLLM pre-allocates its KV cache (gpu_memory_utilization 0.9) once the model is
    // loaded; while loading, memory grows with the weights.
    for (const auto& key : w->gpus) {
      auto& g = gpus_[key];
      const double total = g.memMiB;
      const double loading = w->readyAt > w->createdAt
                                 ? std::clamp((now_ - w->createdAt) / (w->readyAt - w->createdAt), 0.0, 1.0)
                                 : 1.0;
      const double weights = w->weightsGiB * 1024.0 / w->spec.tp;
      g.fbMiB = loading < 1.0 ? weights * loading : std::max(weights, 0.9 * total);
      g.util = w->failed ? 0.0 : w->utilEma * 100.0;
    }
  }
}

std::vector<WorkerStatus> Fleet::status() const {
  std::vector<WorkerStatus> out;
  for (const auto& [_, w] : workers_) {
    WorkerStatus s;
    s.spec = w->spec;
    s.ready = w->ready(now_);
    s.draining = w->draining;
    s.failed = w->failed;
    s.running = w->sim->running();
    s.waiting = w->sim->waiting();
    s.kvUsage = w->sim->kvUsage();
    out.push_back(std::move(s));
  }
  return out;
}

std::optional<WorkerStatus> Fleet::status(std::string_view pod) const {
  for (auto& s : status())
    if (s.spec.pod == pod) return s;
  return std::nullopt;
}

size_t Fleet::readyWorkers(std::string_view deployment) const {
  size_t n = 0;
  for (const auto& [_, w] : workers_)
    if (w->ready(now_) && (deployment.empty() || w->spec.deployment == deployment)) ++n;
  return n;
}

}  // namespace waterline::sim
