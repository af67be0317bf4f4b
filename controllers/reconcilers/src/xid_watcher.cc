#include "waterline/reconcilers/xid_watcher.h"

#include <charconv>

#include "waterline/common/log.h"
#include "waterline/planners/nodes.h"
#include "waterline/planners/xid.h"
#include "waterline/runtime/objects.h"

namespace waterline::reconcilers {

namespace {

std::optional<int> toInt(const std::string& s) {
  int v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc{} || p != s.data() + s.size()) return std::nullopt;
  return v;
}

}  // namespace

XidWatcher::XidWatcher(XidWatcherDeps deps) : d_(std::move(deps)) {
  if (!d_.time) d_.time = RealTimeSource::instance();
  if (d_.fatal.empty()) d_.fatal = planners::defaultFatalXids();
  auto& reg = d_.registry ? *d_.registry : metrics::defaultRegistry();
  syncs_ = &reg.counter("waterline_xid_syncs_total",
                        "XID watcher rounds (Prometheus query plus node annotations), by result.", {"result"});
  marks_ = &reg.counter("waterline_xid_gpus_marked_total",
                        "GPUs marked unhealthy because DCGM reported a fatal XID, by XID.", {"xid"});
  for (auto r : {"ok", "query_error", "patch_error"}) syncs_->withLabels({r});
}

XidWatcher::~XidWatcher() { stop(); }

bool XidWatcher::syncOnce() {
  static const auto log = log::logger("xid");
  auto res = d_.prometheus->query(d_.query);
  if (!res) {
    syncs_->withLabels({"query_error"}).inc();
    log.warn("XID query failed; GPUs keep their state", {{"err", res.error().toString()}});
    return false;
  }
  std::vector<planners::XidSample> samples;
  for (const auto& s : res->samples) {
    auto host = s.labels.find("Hostname");
    auto gpu = s.labels.find("gpu");
    if (host == s.labels.end() || gpu == s.labels.end()) continue;
    auto g = toInt(gpu->second);
    if (!g || !(s.value == s.value)) continue;  // NaN: no reading
    samples.push_back({host->second, *g, static_cast<int>(s.value)});
  }
  std::vector<planners::NodeXidState> nodes;
  std::map<std::string, cache::ObjectPtr> byName;
  for (const auto& n : d_.nodes->store().list()) {
    auto view = planners::NodeView::fromJson(*n);
    std::string ann;
    if (const auto& md = (*n)["metadata"]; md.contains("annotations") && md["annotations"].is_object())
      ann = md["annotations"].value(std::string(planners::kXidUnhealthyGpusAnnotation), "");
    nodes.push_back({view.name, ann, view.gpuCount});
    byName[view.name] = n;
  }
  bool ok = true;
  for (const auto& c : planners::planXidAnnotations(samples, nodes, d_.fatal)) {
    kube::Json value = c.annotation ? kube::Json(*c.annotation) : kube::Json(nullptr);
    kube::Json patch = {{"metadata", {{"annotations", {{std::string(planners::kXidUnhealthyGpusAnnotation), value}}}}}};
    auto r = d_.writer->patch(kube::kinds::Node, "", c.node, kube::PatchType::Merge, patch.dump());
    if (!r) {
      ok = false;
      log.warn("cannot annotate node", {{"node", c.node}, {"err", r.error().describe()}});
      continue;
    }
    const auto& obj = *byName[c.node];
    for (const auto& [gpu, xid] : c.marked) {
      marks_->withLabels({std::to_string(xid)}).inc();
      log.info("GPU marked unhealthy by XID", {{"node", c.node}, {"gpu", gpu}, {"xid", xid}});
      if (d_.recorder)
        d_.recorder->event(obj, "Warning", "GpuXidError",
                           "GPU " + std::to_string(gpu) + " reported XID " + std::to_string(xid) +
                               ": marked unhealthy (" + std::string(planners::kXidUnhealthyGpusAnnotation) + ")");
    }
    for (int gpu : c.cleared) {
      log.info("GPU XID cleared", {{"node", c.node}, {"gpu", gpu}});
      if (d_.recorder)
        d_.recorder->event(obj, "Normal", "GpuXidCleared",
                           "GPU " + std::to_string(gpu) + " reports no fatal XID any more: healthy again");
    }
  }
  syncs_->withLabels({ok ? "ok" : "patch_error"}).inc();
  return ok;
}

void XidWatcher::start() {
  std::lock_guard g(mu_);
  if (thread_.joinable()) return;
  stopping_ = false;
  thread_ = std::thread([this] {
    for (;;) {
      syncOnce();
      std::unique_lock lk(mu_);
      if (d_.time->waitUntil(lk, cv_, d_.time->monotonicTime() + d_.period, [this] { return stopping_; })) return;
    }
  });
}

void XidWatcher::stop() {
  {
    std::lock_guard g(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

}  // namespace waterline::reconcilers
