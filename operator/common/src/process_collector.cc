#include "waterline/common/process_collector.h"

#include <sys/resource.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>

namespace waterline::metrics {

namespace {

prometheus::MetricFamily family(const char* name, const char* help, prometheus::MetricType type,
                                double v) {
  prometheus::MetricFamily mf;
  mf.name = name;
  mf.help = help;
  mf.type = type;
  prometheus::ClientMetric m;
  if (type == prometheus::MetricType::Counter) {
    m.counter.value = v;
  } else {
    m.gauge.value = v;
  }
  mf.metric.push_back(std::move(m));
  return mf;
}

// The fields of /proc/<pid>/stat after the command name (which may hold spaces and
// parentheses: it ends at the last ')'). fields[0] is field 3 (state).
std::optional<std::vector<std::string>> statFields(const std::string& dir) {
  std::ifstream f(dir + "/stat");
  std::string line;
  if (!f || !std::getline(f, line)) return std::nullopt;
  const auto close = line.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::istringstream rest(line.substr(close + 1));
  std::vector<std::string> fields;
  for (std::string s; rest >> s;) fields.push_back(s);
  if (fields.size() < 22) return std::nullopt;
  return fields;
}

std::optional<double> bootTimeSeconds() {
  std::ifstream f("/proc/stat");
  for (std::string line; std::getline(f, line);) {
    if (line.rfind("btime ", 0) == 0) return std::strtod(line.c_str() + 6, nullptr);
  }
  return std::nullopt;
}

// The soft "Max open files" of /proc/<pid>/limits ("unlimited" reads as the
// largest value, as client_golang's procfs does).
std::optional<double> maxFds(const std::string& dir) {
  std::ifstream f(dir + "/limits");
  for (std::string line; std::getline(f, line);) {
    if (line.rfind("Max open files", 0) != 0) continue;
    std::istringstream in(line.substr(std::string("Max open files").size()));
    std::string soft;
    in >> soft;
    if (soft == "unlimited") return 18446744073709551615.0;
    char* end = nullptr;
    const double v = std::strtod(soft.c_str(), &end);
    if (end && *end == '\0' && !soft.empty()) return v;
    return std::nullopt;
  }
  return std::nullopt;
}

std::optional<double> openFds(const std::string& dir) {
  std::error_code ec;
  std::filesystem::directory_iterator it(dir + "/fd", ec);
  if (ec) return std::nullopt;
  double n = 0;
  for (const auto& e : it) {
    (void)e;
    ++n;
  }
  // The iterator's own descriptor is in the listing while it is open (as in
  // client_golang, which counts it too); keep the count as read.
  return n;
}

}  // namespace

ProcessCollector::ProcessCollector(std::string procDir) : dir_(std::move(procDir)) {}

std::vector<std::string> ProcessCollector::familyNames() {
  return {"process_cpu_seconds_total", "process_max_fds",          "process_open_fds",
          "process_resident_memory_bytes", "process_start_time_seconds", "process_virtual_memory_bytes"};
}

std::vector<prometheus::MetricFamily> ProcessCollector::Collect() const {
  using prometheus::MetricType;
  std::vector<prometheus::MetricFamily> out;
  if (auto st = statFields(dir_)) {
    const auto& f = *st;
    // proc(5): utime 14, stime 15, starttime 22, vsize 23, rss 24 (1-based field
    // numbers); f[0] is field 3.
    const double ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
    const double pageSize = static_cast<double>(::sysconf(_SC_PAGESIZE));
    auto field = [&](int n) { return std::strtod(f[n - 3].c_str(), nullptr); };
    if (ticks > 0) {
      out.push_back(family("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.",
                           MetricType::Counter, (field(14) + field(15)) / ticks));
      if (auto boot = bootTimeSeconds()) {
        out.push_back(family("process_start_time_seconds",
                             "Start time of the process since unix epoch in seconds.", MetricType::Gauge,
                             *boot + field(22) / ticks));
      }
    }
    out.push_back(family("process_virtual_memory_bytes", "Virtual memory size in bytes.", MetricType::Gauge,
                         field(23)));
    out.push_back(family("process_resident_memory_bytes", "Resident memory size in bytes.",
                         MetricType::Gauge, field(24) * pageSize));
  }
  if (auto n = openFds(dir_)) {
    out.push_back(family("process_open_fds", "Number of open file descriptors.", MetricType::Gauge, *n));
  }
  if (auto n = maxFds(dir_)) {
    out.push_back(family("process_max_fds", "Maximum number of open file descriptors.", MetricType::Gauge, *n));
  }
  return out;
}

void addProcessCollector(Registry& registry) {
  registry.addCollectable(std::make_shared<ProcessCollector>(), ProcessCollector::familyNames());
}

}  // namespace waterline::metrics
