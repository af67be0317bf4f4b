#include "trace.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <fstream>
#include <map>
#include <numeric>
#include <queue>
#include <span>
#include <sstream>

#include "first_fit.h"
#include "waterline/scheduling/analysis.h"
#include "waterline/scheduling/mig.h"
#include "waterline/scheduling/scheduler.h"

namespace waterline::scheduling::bench {

namespace {

constexpr std::string_view kNodeColumns[] = {"name", "gpu_model", "gpus", "sharing", "layout"};
constexpr std::string_view kPodColumns[] = {"arrival_s", "duration_s", "gpu", "gpu_model",
                                            "mig_profile"};
constexpr double kMaxSeconds = 1e9;  // about 31 years

struct Field {
  std::string_view text;  // trimmed
  int column = 1;         // 1-based column of the field's first character (after spaces)
};

struct Row {
  int line = 0;
  std::vector<Field> fields;
};

bool isSpace(char c) { return c == ' ' || c == '\t'; }

// Splits the text into rows of comma-separated fields. Blank lines and lines whose first
// non-blank character is '#' are skipped; a trailing '\r' is dropped; fields are trimmed.
std::vector<Row> rows(std::string_view text) {
  std::vector<Row> out;
  int line = 0;
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view l = text.substr(pos, end - pos);
    pos = end + 1;
    ++line;
    if (!l.empty() && l.back() == '\r') l.remove_suffix(1);
    std::size_t first = 0;
    while (first < l.size() && isSpace(l[first])) ++first;
    if (first == l.size() || l[first] == '#') continue;
    Row r;
    r.line = line;
    std::size_t start = 0;
    while (true) {
      std::size_t comma = l.find(',', start);
      std::size_t stop = comma == std::string_view::npos ? l.size() : comma;
      std::size_t b = start, e = stop;
      while (b < e && isSpace(l[b])) ++b;
      while (e > b && isSpace(l[e - 1])) --e;
      r.fields.push_back({l.substr(b, e - b), static_cast<int>(b) + 1});
      if (comma == std::string_view::npos) break;
      start = comma + 1;
    }
    out.push_back(std::move(r));
  }
  return out;
}

// The column just after the row's last field (where a missing field would start).
int endOf(const Row& r) {
  return r.fields.back().column + static_cast<int>(r.fields.back().text.size());
}

std::string where(std::string_view file, int line, int column) {
  return std::string(file) + ":" + std::to_string(line) + ":" + std::to_string(column) + ": ";
}

std::string quoted(std::string_view s) { return "'" + std::string(s) + "'"; }

// A whole integer in [lo, hi], nothing else in the field.
std::optional<long long> parseInt(std::string_view s, long long lo, long long hi) {
  long long v = 0;
  const char* b = s.data();
  const char* e = s.data() + s.size();
  if (b == e) return std::nullopt;
  auto [p, ec] = std::from_chars(b, e, v);
  if (ec != std::errc() || p != e || v < lo || v > hi) return std::nullopt;
  return v;
}

// Seconds as a plain decimal (no exponent, no sign, at most 3 decimals), in ms.
std::optional<std::int64_t> parseSeconds(std::string_view s) {
  if (s.empty() || s.front() == '-' || s.front() == '+') return std::nullopt;
  std::size_t dot = s.find('.');
  if (dot != std::string_view::npos && s.size() - dot - 1 > 3) return std::nullopt;
  double v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v, std::chars_format::fixed);
  if (ec != std::errc() || p != s.data() + s.size() || !std::isfinite(v) || v < 0 ||
      v > kMaxSeconds) {
    return std::nullopt;
  }
  return static_cast<std::int64_t>(std::llround(v * 1000.0));
}

// Checks a header row: the first `n` fields must be the first `n` column names.
std::optional<std::string> checkHeader(const Row& r, std::span<const std::string_view> names,
                                       std::string_view file) {
  if (r.fields.size() > names.size()) {
    return where(file, r.line, r.fields[names.size()].column) + "header has " +
           std::to_string(r.fields.size()) + " columns; expected at most " +
           std::to_string(names.size());
  }
  for (std::size_t i = 0; i < r.fields.size(); ++i) {
    if (r.fields[i].text != names[i]) {
      return where(file, r.line, r.fields[i].column) + "header column " + std::to_string(i + 1) +
             " is " + quoted(r.fields[i].text) + "; expected " + quoted(names[i]);
    }
  }
  return std::nullopt;
}

std::string readFile(const std::string& path, bool& ok) {
  std::ifstream in(path, std::ios::binary);
  ok = static_cast<bool>(in);
  std::ostringstream ss;
  if (ok) ss << in.rdbuf();
  return ss.str();
}

bool isShared(SharingMode m) { return m == SharingMode::TimeSlicing || m == SharingMode::MPS; }

std::string poolName(const TraceNode& n) {
  std::string s;
  switch (n.sharing) {
    case SharingMode::Exclusive: s = "exclusive"; break;
    case SharingMode::MIG: s = "mig"; break;
    case SharingMode::TimeSlicing: s = "timeslicing"; break;
    case SharingMode::MPS: s = "mps"; break;
  }
  s += "/" + n.gpu_model;
  if (n.sharing == SharingMode::MIG) {
    s += "/";
    if (n.mig_profiles.empty()) s += "all";
    for (std::size_t i = 0; i < n.mig_profiles.size(); ++i) s += (i ? "+" : "") + n.mig_profiles[i];
  }
  if (isShared(n.sharing)) s += "/slices=" + std::to_string(n.slices);
  return s;
}

}  // namespace

std::expected<std::vector<TraceNode>, std::string> parseNodes(std::string_view text,
                                                              std::string_view file) {
  std::vector<TraceNode> out;
  std::map<std::string, int, std::less<>> seen;  // name -> line
  bool first = true;
  for (const Row& r : rows(text)) {
    const bool header = first && r.fields[0].text == kNodeColumns[0];
    first = false;
    if (header) {
      if (auto err = checkHeader(r, kNodeColumns, file)) return std::unexpected(*err);
      continue;
    }
    auto err = [&](int field, std::string msg) {
      const int col = field < static_cast<int>(r.fields.size()) ? r.fields[field].column : endOf(r);
      return std::unexpected(where(file, r.line, col) + msg);
    };
    if (r.fields.size() < 4 || r.fields.size() > 5) {
      const int col = r.fields.size() > 5 ? r.fields[5].column : endOf(r);
      return std::unexpected(where(file, r.line, col) + "expected 4 or 5 columns (" +
                             "name,gpu_model,gpus,sharing[,layout]), got " +
                             std::to_string(r.fields.size()));
    }
    TraceNode n;
    n.line = r.line;
    n.name = std::string(r.fields[0].text);
    if (n.name.empty()) return err(0, "node name is empty");
    if (auto it = seen.find(n.name); it != seen.end()) {
      return err(0, "duplicate node name " + quoted(n.name) + " (first on line " +
                        std::to_string(it->second) + ")");
    }
    seen.emplace(n.name, r.line);
    n.gpu_model = std::string(r.fields[1].text);
    if (n.gpu_model.empty()) return err(1, "GPU model is empty");
    auto gpus = parseInt(r.fields[2].text, 1, 64);
    if (!gpus) return err(2, "GPUs must be a whole number 1..64, got " + quoted(r.fields[2].text));
    n.gpus = static_cast<int>(*gpus);
    const std::string_view mode = r.fields[3].text;
    if (mode == "exclusive") n.sharing = SharingMode::Exclusive;
    else if (mode == "mig") n.sharing = SharingMode::MIG;
    else if (mode == "timeslicing") n.sharing = SharingMode::TimeSlicing;
    else if (mode == "mps") n.sharing = SharingMode::MPS;
    else return err(3, "sharing must be exclusive, mig, timeslicing or mps, got " + quoted(mode));
    const std::string_view layout = r.fields.size() > 4 ? r.fields[4].text : std::string_view{};
    switch (n.sharing) {
      case SharingMode::Exclusive:
        if (!layout.empty() && layout != "-") {
          return err(4, "an exclusive node takes no layout ('-' or empty), got " + quoted(layout));
        }
        break;
      case SharingMode::MIG: {
        if (!layout.starts_with("mig=")) {
          return err(4, "a mig node needs layout mig=all or mig=<profile>+<profile>..., got " +
                            quoted(layout));
        }
        const MigGeometry* geo = migGeometryForProduct(n.gpu_model);
        if (geo == nullptr) return err(1, "no MIG geometry known for GPU model " + quoted(n.gpu_model));
        std::string_view list = layout.substr(4);
        if (list == "all") break;
        const int base = r.fields[4].column + 4;
        std::size_t start = 0;
        while (true) {
          std::size_t plus = list.find('+', start);
          std::string_view p = list.substr(start, plus == std::string_view::npos ? list.size() - start
                                                                                : plus - start);
          const int col = base + static_cast<int>(start);
          if (p.empty()) return std::unexpected(where(file, r.line, col) + "empty MIG profile in layout");
          if (geo->profileIndex(p) < 0) {
            return std::unexpected(where(file, r.line, col) + "MIG profile " + quoted(p) +
                                   " does not exist on " + n.gpu_model + " (" + geo->name + ")");
          }
          if (std::find(n.mig_profiles.begin(), n.mig_profiles.end(), p) == n.mig_profiles.end()) {
            n.mig_profiles.emplace_back(p);
          }
          if (plus == std::string_view::npos) break;
          start = plus + 1;
        }
        std::sort(n.mig_profiles.begin(), n.mig_profiles.end());
        break;
      }
      case SharingMode::TimeSlicing:
      case SharingMode::MPS: {
        if (!layout.starts_with("slices=")) {
          return err(4, "a " + std::string(mode) + " node needs layout slices=<1..64>, got " +
                            quoted(layout));
        }
        auto k = parseInt(layout.substr(7), 1, 64);
        if (!k) {
          return std::unexpected(where(file, r.line, r.fields[4].column + 7) +
                                 "slices must be a whole number 1..64, got " + quoted(layout.substr(7)));
        }
        n.slices = static_cast<int>(*k);
        break;
      }
    }
    out.push_back(std::move(n));
  }
  if (out.empty()) return std::unexpected(std::string(file) + ": no nodes");
  return out;
}

std::expected<std::vector<TracePod>, std::string> parsePods(std::string_view text,
                                                            std::string_view file) {
  std::vector<TracePod> out;
  bool first = true;
  for (const Row& r : rows(text)) {
    const bool header = first && r.fields[0].text == kPodColumns[0];
    first = false;
    if (header) {
      if (auto err = checkHeader(r, kPodColumns, file)) return std::unexpected(*err);
      continue;
    }
    auto err = [&](int field, std::string msg) {
      return std::unexpected(where(file, r.line, r.fields[field].column) + msg);
    };
    if (r.fields.size() < 3 || r.fields.size() > 5) {
      const int col = r.fields.size() > 5 ? r.fields[5].column : endOf(r);
      return std::unexpected(where(file, r.line, col) + "expected 3 to 5 columns (" +
                             "arrival_s,duration_s,gpu[,gpu_model[,mig_profile]]), got " +
                             std::to_string(r.fields.size()));
    }
    TracePod p;
    p.line = r.line;
    auto at = parseSeconds(r.fields[0].text);
    if (!at) {
      return err(0, "arrival must be seconds >= 0 (at most 3 decimals), got " +
                        quoted(r.fields[0].text));
    }
    p.arrival_ms = *at;
    auto dur = parseSeconds(r.fields[1].text);
    if (!dur || *dur <= 0) {
      return err(1, "duration must be seconds > 0 (at most 3 decimals), got " +
                        quoted(r.fields[1].text));
    }
    p.duration_ms = *dur;
    const std::string_view g = r.fields[2].text;
    if (g.ends_with('m')) {
      auto m = parseInt(g.substr(0, g.size() - 1), 1, 999);
      if (!m) {
        return err(2, "a GPU fraction is 1m..999m (thousandths of one GPU), got " + quoted(g) +
                          "; write whole GPUs as a count");
      }
      p.gpu_milli = static_cast<int>(*m);
    } else {
      auto n = parseInt(g, 1, 64);
      if (!n) {
        return err(2, "gpu must be a whole count 1..64 or a fraction 1m..999m, got " + quoted(g));
      }
      p.whole_gpus = static_cast<int>(*n);
    }
    if (r.fields.size() > 3) p.gpu_model = std::string(r.fields[3].text);
    if (r.fields.size() > 4 && !r.fields[4].text.empty()) {
      p.mig_profile = std::string(r.fields[4].text);
      if (p.gpu_milli == 0) {
        return err(2, "a pod with a MIG profile gives its fraction as <n>m, got " + quoted(g));
      }
      bool known = false;
      for (std::string_view name : {"A100-40GB", "A100/H100-80GB", "H100-94GB", "H200-141GB", "A30-24GB"}) {
        if (const MigGeometry* geo = migGeometryByName(name); geo && geo->profileIndex(p.mig_profile) >= 0) {
          known = true;
        }
      }
      if (!known) return err(4, "unknown MIG profile " + quoted(p.mig_profile));
    }
    out.push_back(std::move(p));
  }
  if (out.empty()) return std::unexpected(std::string(file) + ": no pods");
  return out;
}

std::expected<std::vector<TraceNode>, std::string> loadNodes(const std::string& path) {
  bool ok = false;
  std::string text = readFile(path, ok);
  if (!ok) return std::unexpected(path + ": cannot read");
  return parseNodes(text, path);
}

std::expected<std::vector<TracePod>, std::string> loadPods(const std::string& path) {
  bool ok = false;
  std::string text = readFile(path, ok);
  if (!ok) return std::unexpected(path + ": cannot read");
  return parsePods(text, path);
}

TraceCluster buildCluster(const std::vector<TraceNode>& nodes) {
  TraceCluster c;
  std::map<std::string, PoolSpec> pools;
  for (const TraceNode& n : nodes) {
    const std::string name = poolName(n);
    if (!pools.contains(name)) {
      PoolSpec p;
      p.name = name;
      p.region = "trace";
      p.zone = "trace";
      p.gpu_product = n.gpu_model;
      p.sharing = n.sharing;
      p.mig_profiles = n.mig_profiles;
      p.slices_per_gpu = isShared(n.sharing) ? n.slices : 1;
      p.strategy = Strategy::BinPack;
      pools.emplace(name, std::move(p));
    }
    NodeSpec s;
    s.name = n.name;
    s.pool = name;
    s.gpu_product = n.gpu_model;
    s.gpu_count = n.gpus;
    c.nodes.push_back(std::move(s));
  }
  for (auto& [_, p] : pools) c.pools.push_back(std::move(p));
  return c;
}

std::expected<Inventory, std::string> makeInventory(const TraceCluster& c) {
  Inventory inv;
  for (const PoolSpec& p : c.pools) {
    if (auto ok = inv.upsertPool(p); !ok) return std::unexpected(ok.error());
  }
  for (const NodeSpec& n : c.nodes) {
    if (auto ok = inv.upsertNode(n); !ok) return std::unexpected(ok.error());
  }
  inv.prepare();
  return inv;
}

Request toRequest(const TracePod& p, const TraceCluster& c) {
  Request r;
  r.worker = "pod-" + std::to_string(p.line);
  r.deployment = r.worker;
  r.type = DeploymentType::Global;
  r.product = p.gpu_model;
  if (p.whole_gpus > 0) {
    r.shape = GpuShape::whole(p.whole_gpus);
  } else if (!p.mig_profile.empty()) {
    r.shape = GpuShape::mig(p.mig_profile);
  } else {
    int g = 0;
    for (const PoolSpec& pool : c.pools) {
      if (!isShared(pool.sharing)) continue;
      if (!p.gpu_model.empty() && pool.gpu_product != p.gpu_model) continue;
      g = std::gcd(g, pool.slices_per_gpu);
    }
    if (g == 0) g = 1;
    // Largest divisor k of g with k * m <= 1000 (1/k >= m/1000).
    int k = 1;
    for (int d = 1; d <= g; ++d) {
      if (g % d == 0 && d * p.gpu_milli <= 1000) k = d;
    }
    r.shape = GpuShape::share(k);
  }
  return r;
}

ReplayStats replay(const TraceCluster& c, const std::vector<TracePod>& pods, Inventory& inv,
                   const PlaceFn& place, std::vector<ReplaySample>* samples) {
  ReplayStats st;
  st.pods = static_cast<std::int64_t>(pods.size());
  if (pods.empty()) return st;
  std::vector<std::size_t> order(pods.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    return pods[a].arrival_ms < pods[b].arrival_ms;
  });
  using Departure = std::pair<std::int64_t, std::size_t>;  // (time, pod)
  std::priority_queue<Departure, std::vector<Departure>, std::greater<>> leaving;
  std::vector<std::string> workers(pods.size());
  const std::int64_t t0 = pods[order.front()].arrival_ms;
  std::int64_t t_prev = t0;
  std::int64_t used = 0, bound = 0;  // state since t_prev
  std::size_t next = 0;
  // The window ends at the last arrival: departures after it change nothing the
  // schedulers decide, and the drain of the last pods would depend only on the trace's end.
  while (next < order.size()) {
    std::int64_t t = pods[order[next]].arrival_ms;
    if (!leaving.empty()) t = std::min(t, leaving.top().first);
    const double dt = static_cast<double>(t - t_prev) / 1000.0;
    st.used_gpu_s += static_cast<double>(used) * dt;
    st.bound_gpu_s += static_cast<double>(bound) * dt;
    st.window_s += dt;
    // Departures at t first, then the arrivals at t in file order.
    while (!leaving.empty() && leaving.top().first == t) {
      inv.forget(workers[leaving.top().second]);
      leaving.pop();
    }
    while (next < order.size() && pods[order[next]].arrival_ms == t) {
      const std::size_t i = order[next++];
      Request r = toRequest(pods[i], c);
      workers[i] = r.worker;
      if (place(r)) {
        ++st.placed;
        leaving.emplace(t + pods[i].duration_ms, i);
      } else {
        ++st.refused;
        switch (r.shape.kind) {
          case ShapeKind::Whole: ++st.refused_whole; break;
          case ShapeKind::Mig: ++st.refused_mig; break;
          case ShapeKind::Share: ++st.refused_share; break;
        }
      }
    }
    const PackingStats ps = packingStats(inv);
    used = ps.gpus_used;
    bound = ps.lower_bound_gpus;
    st.peak_stranded = std::max(st.peak_stranded, used - bound);
    if (samples) {
      samples->push_back({static_cast<double>(t) / 1000.0, used, bound,
                          static_cast<std::int64_t>(inv.workerCount())});
    }
    t_prev = t;
  }
  return st;
}

std::expected<ReplayStats, std::string> replayOurs(const TraceCluster& c,
                                                  const std::vector<TracePod>& pods,
                                                  std::vector<ReplaySample>* samples) {
  auto inv = makeInventory(c);
  if (!inv) return std::unexpected(inv.error());
  Scheduler sched(*inv);
  return replay(c, pods, *inv, [&](const Request& r) { return sched.place(r).has_value(); },
                samples);
}

std::expected<ReplayStats, std::string> replayFirstFit(const TraceCluster& c,
                                                      const std::vector<TracePod>& pods,
                                                      std::vector<ReplaySample>* samples) {
  auto inv = makeInventory(c);
  if (!inv) return std::unexpected(inv.error());
  const Profile prof = Profile::defaults();
  FirstFit ff(*inv, prof);
  return replay(c, pods, *inv, [&](const Request& r) {
    auto a = ff.schedule(r);
    return a && inv->assume(r, *a).has_value();
  }, samples);
}

std::expected<std::int64_t, std::string> unservablePods(const TraceCluster& c,
                                                       const std::vector<TracePod>& pods) {
  auto inv = makeInventory(c);
  if (!inv) return std::unexpected(inv.error());
  Scheduler sched(*inv);
  std::int64_t n = 0;
  for (const TracePod& p : pods) n += sched.schedule(toRequest(p, c)).has_value() ? 0 : 1;
  return n;
}

}  // namespace waterline::scheduling::bench
