#include "waterline/common/process_collector.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>

namespace waterline::metrics {
namespace {

using ::testing::HasSubstr;

std::map<std::string, double> byName(const std::vector<prometheus::MetricFamily>& fams) {
  std::map<std::string, double> out;
  for (const auto& f : fams) {
    EXPECT_EQ(f.metric.size(), 1u) << f.name;
    if (f.metric.empty()) continue;
    out[f.name] = f.type == prometheus::MetricType::Counter ? f.metric[0].counter.value : f.metric[0].gauge.value;
  }
  return out;
}

double nowSeconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

TEST(ProcessCollector, ReportsThisProcessWithPlausibleValues) {
  ProcessCollector pc;
  auto before = byName(pc.Collect());
  for (const auto& n : ProcessCollector::familyNames()) EXPECT_TRUE(before.count(n)) << n;
  EXPECT_GE(before["process_cpu_seconds_total"], 0);
  EXPECT_GT(before["process_resident_memory_bytes"], 1 << 20);  // a gtest binary holds more than 1 MiB
  EXPECT_GE(before["process_virtual_memory_bytes"], before["process_resident_memory_bytes"]);
  EXPECT_GE(before["process_open_fds"], 3);  // stdin, stdout, stderr
  EXPECT_GE(before["process_max_fds"], before["process_open_fds"]);
  // Started in the past, and not before this machine booted a year ago... a day is enough
  // for a unit test run.
  EXPECT_LE(before["process_start_time_seconds"], nowSeconds() + 1);
  EXPECT_GT(before["process_start_time_seconds"], nowSeconds() - 86400);

  std::vector<int> fds;
  for (int i = 0; i < 5; ++i) fds.push_back(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  auto after = byName(pc.Collect());
  for (int fd : fds) ::close(fd);
  EXPECT_EQ(after["process_open_fds"], before["process_open_fds"] + 5);
  EXPECT_GE(after["process_cpu_seconds_total"], before["process_cpu_seconds_total"]);
}

// A fake /proc/<pid>: exact parsing of stat (a command name with spaces and ')'),
// limits and fd/.
TEST(ProcessCollector, ParsesProcFiles) {
  const auto dir = std::filesystem::temp_directory_path() / ("wl-proc-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir / "fd");
  for (const char* n : {"0", "1", "2", "7"}) std::ofstream(dir / "fd" / n) << "";
  const double ticks = double(::sysconf(_SC_CLK_TCK));
  const double page = double(::sysconf(_SC_PAGESIZE));
  {
    // pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
    // utime stime cutime cstime priority nice threads itrealvalue starttime vsize rss ...
    std::ofstream(dir / "stat") << "42 (we ird) (x)) S 1 42 42 0 -1 4194560 10 0 0 0 "
                                << 3 * ticks << " " << 2 * ticks << " 0 0 20 0 4 0 "
                                << 100 * ticks << " 123456789 1000 18446744073709551615 1 1 0 0 0 0 0 0\n";
    std::ofstream(dir / "limits") << "Limit                     Soft Limit           Hard Limit           Units\n"
                                     "Max open files            4096                 524288               files\n";
  }
  auto v = byName(ProcessCollector(dir.string()).Collect());
  EXPECT_DOUBLE_EQ(v["process_cpu_seconds_total"], 5);
  EXPECT_DOUBLE_EQ(v["process_virtual_memory_bytes"], 123456789);
  EXPECT_DOUBLE_EQ(v["process_resident_memory_bytes"], 1000 * page);
  EXPECT_DOUBLE_EQ(v["process_open_fds"], 4);
  EXPECT_DOUBLE_EQ(v["process_max_fds"], 4096);
  // Boot time (from the real /proc/stat) + 100 s.
  std::ifstream stat("/proc/stat");
  double btime = 0;
  for (std::string line; std::getline(stat, line);)
    if (line.rfind("btime ", 0) == 0) btime = std::strtod(line.c_str() + 6, nullptr);
  ASSERT_GT(btime, 0);
  EXPECT_DOUBLE_EQ(v["process_start_time_seconds"], btime + 100);

  std::ofstream(dir / "limits") << "Max open files            unlimited            unlimited            files\n";
  std::filesystem::remove(dir / "stat");
  auto partial = ProcessCollector(dir.string()).Collect();
  auto p = byName(partial);
  EXPECT_FALSE(p.count("process_cpu_seconds_total"));  // unreadable: left out, not 0
  EXPECT_GT(p["process_max_fds"], 1e18);
  std::filesystem::remove_all(dir);
}

TEST(ProcessCollector, ServedThroughTheRegistryOnce) {
  Registry r;
  addProcessCollector(r);
  const std::string text = r.serialize();
  EXPECT_THAT(text, HasSubstr("# TYPE process_cpu_seconds_total counter\n"));
  EXPECT_THAT(text, HasSubstr("# TYPE process_open_fds gauge\n"));
  EXPECT_TRUE(std::regex_search(text, std::regex("\nprocess_resident_memory_bytes [0-9.e+]+\n"))) << text;
  EXPECT_THROW(addProcessCollector(r), std::invalid_argument);
  EXPECT_THROW(r.gauge("process_open_fds", "h"), std::invalid_argument);
}

}  // namespace
}  // namespace waterline::metrics
