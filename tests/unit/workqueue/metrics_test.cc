#include "waterline/workqueue/metrics.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "waterline/workqueue/queue.h"
#include "waterline/workqueue/rate_limiting_queue.h"

namespace waterline::workqueue {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using ::testing::HasSubstr;
using ::testing::Not;

class WorkqueueMetricsTest : public ::testing::Test {
 protected:
  metrics::Registry registry;
  std::shared_ptr<MetricsProvider> provider = std::make_shared<MetricsProvider>(registry);
  std::shared_ptr<SimulatedTimeSource> sim = std::make_shared<SimulatedTimeSource>();

  QueueOptions opts(std::string name) { return {.name = std::move(name), .clock = sim, .metrics = provider}; }
};

TEST_F(WorkqueueMetricsTest, FamiliesAreRegistered) {
  EXPECT_EQ(registry.familyNames(),
            (std::vector<std::string>{"waterline_workqueue_adds_total", "waterline_workqueue_depth",
                                      "waterline_workqueue_longest_running_processor_seconds",
                                      "waterline_workqueue_queue_duration_seconds",
                                      "waterline_workqueue_retries_total",
                                      "waterline_workqueue_unfinished_work_seconds",
                                      "waterline_workqueue_work_duration_seconds"}));
  EXPECT_THROW(MetricsProvider{registry}, std::invalid_argument);  // one per registry
}

TEST_F(WorkqueueMetricsTest, CountsDepthAndDurations) {
  Queue q(opts("capacitypool"));
  q.add("ns/a");
  q.add("ns/b");
  q.add("ns/a");  // deduplicated: not an add
  sim->advance(seconds(2));
  std::string text = registry.serialize();
  EXPECT_THAT(text, HasSubstr("waterline_workqueue_adds_total{name=\"capacitypool\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("waterline_workqueue_depth{name=\"capacitypool\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("waterline_workqueue_unfinished_work_seconds{name=\"capacitypool\"} 0\n"));

  ASSERT_EQ(q.tryGet(), "ns/a");  // waited 2s
  sim->advance(seconds(3));
  ASSERT_EQ(q.tryGet(), "ns/b");  // waited 5s
  sim->advance(seconds(1));
  text = registry.serialize();
  EXPECT_THAT(text, HasSubstr("waterline_workqueue_depth{name=\"capacitypool\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("waterline_workqueue_unfinished_work_seconds{name=\"capacitypool\"} 5\n"));
  EXPECT_THAT(text,
              HasSubstr("waterline_workqueue_longest_running_processor_seconds{name=\"capacitypool\"} 4\n"));
  EXPECT_THAT(text, HasSubstr("waterline_workqueue_queue_duration_seconds_sum{name=\"capacitypool\"} 7\n"));
  EXPECT_THAT(text, HasSubstr("waterline_workqueue_queue_duration_seconds_count{name=\"capacitypool\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("waterline_workqueue_queue_duration_seconds_bucket{name=\"capacitypool\",le=\"1\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("waterline_workqueue_queue_duration_seconds_bucket{name=\"capacitypool\",le=\"10\"} 2\n"));

  q.done("ns/a");  // 4s of work
  q.done("ns/b");  // 1s of work
  text = registry.serialize();
  EXPECT_THAT(text, HasSubstr("waterline_workqueue_work_duration_seconds_sum{name=\"capacitypool\"} 5\n"));
  EXPECT_THAT(text, HasSubstr("waterline_workqueue_work_duration_seconds_count{name=\"capacitypool\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("waterline_workqueue_work_duration_seconds_bucket{name=\"capacitypool\",le=\"1\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("waterline_workqueue_unfinished_work_seconds{name=\"capacitypool\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("waterline_workqueue_longest_running_processor_seconds{name=\"capacitypool\"} 0\n"));
}

TEST_F(WorkqueueMetricsTest, AddWhileProcessingCountsAndLatencyStartsAtTheAdd) {
  Queue q(opts("pool"));
  q.add("a");
  ASSERT_EQ(q.tryGet(), "a");
  sim->advance(seconds(1));
  q.add("a");  // dirty while in flight: counted as an add, latency clock starts now
  sim->advance(seconds(2));
  q.done("a");
  sim->advance(seconds(1));
  ASSERT_EQ(q.tryGet(), "a");
  const std::string text = registry.serialize();
  EXPECT_THAT(text, HasSubstr("waterline_workqueue_adds_total{name=\"pool\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("waterline_workqueue_queue_duration_seconds_sum{name=\"pool\"} 3\n"));
}

TEST_F(WorkqueueMetricsTest, DelayedAddsCountRetriesAndLatencyFromReadyTime) {
  RateLimitingQueue q(std::make_shared<ItemExponentialFailureRateLimiter>(seconds(1), seconds(60)),
                      opts("deployment"));
  q.addRateLimited("a");   // due in 1s
  q.addAfter("b", seconds(10));
  q.addAfter("c", Duration::zero());  // counts as a retry (as client-go) and an add
  sim->advance(seconds(3));           // "a" became due 2s ago
  // A due item is promoted (and counted as an add) by the next queue call or by the
  // depth callback during a scrape; len() makes it happen before this scrape.
  EXPECT_EQ(q.len(), 2u);
  std::string text = registry.serialize();
  EXPECT_THAT(text, HasSubstr("waterline_workqueue_retries_total{name=\"deployment\"} 3\n"));
  EXPECT_THAT(text, HasSubstr("waterline_workqueue_depth{name=\"deployment\"} 2\n"));  // b still waits
  EXPECT_THAT(text, HasSubstr("waterline_workqueue_adds_total{name=\"deployment\"} 2\n"));
  ASSERT_EQ(q.tryGet(), "c");
  ASSERT_EQ(q.tryGet(), "a");
  text = registry.serialize();
  EXPECT_THAT(text, HasSubstr("waterline_workqueue_queue_duration_seconds_sum{name=\"deployment\"} 5\n"));
}

TEST_F(WorkqueueMetricsTest, QueuesSharingANameAddUpAndDeadQueuesDisappear) {
  {
    Queue a(opts("shared"));
    Queue b(opts("shared"));
    Queue other(opts("other"));
    a.add("x");
    b.add("x");
    b.add("y");
    ASSERT_EQ(a.tryGet(), "x");
    ASSERT_EQ(b.tryGet(), "x");
    sim->advance(seconds(2));
    ASSERT_EQ(b.tryGet(), "y");
    sim->advance(seconds(1));
    const std::string text = registry.serialize();
    EXPECT_THAT(text, HasSubstr("waterline_workqueue_adds_total{name=\"shared\"} 3\n"));
    EXPECT_THAT(text, HasSubstr("waterline_workqueue_unfinished_work_seconds{name=\"shared\"} 7\n"));
    EXPECT_THAT(text, HasSubstr("waterline_workqueue_longest_running_processor_seconds{name=\"shared\"} 3\n"));
    EXPECT_THAT(text, HasSubstr("waterline_workqueue_depth{name=\"other\"} 0\n"));
  }
  const std::string text = registry.serialize();
  EXPECT_THAT(text, Not(HasSubstr("waterline_workqueue_depth")));
  EXPECT_THAT(text, HasSubstr("waterline_workqueue_adds_total{name=\"shared\"} 3\n"));  // counters persist
}

TEST_F(WorkqueueMetricsTest, NoNameOrNoProviderMeansNoMetrics) {
  Queue unnamed(QueueOptions{.clock = sim, .metrics = provider});
  Queue noProvider(QueueOptions{.name = "x", .clock = sim});
  unnamed.add("a");
  noProvider.add("a");
  EXPECT_EQ(registry.serialize(), "");
}

TEST_F(WorkqueueMetricsTest, ProviderDestructionUnregisters) {
  {
    metrics::Registry r;
    auto p = std::make_shared<MetricsProvider>(r, "test_wq_");
    EXPECT_TRUE(r.contains("test_wq_depth"));
    p.reset();
    EXPECT_TRUE(r.familyNames().empty());
  }
  EXPECT_TRUE(MetricsProvider::forDefaultRegistry());
  EXPECT_EQ(MetricsProvider::forDefaultRegistry(), MetricsProvider::forDefaultRegistry());
  EXPECT_TRUE(metrics::defaultRegistry().contains("waterline_workqueue_depth"));
}

std::pair<int, std::string> run(const std::string& cmd) {
  std::string out;
  FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  if (!p) return {-1, "popen failed"};
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  const int status = ::pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

TEST_F(WorkqueueMetricsTest, PromtoolAcceptsTheExposition) {
  if (run("command -v promtool").first != 0) GTEST_SKIP() << "promtool not installed";
  RateLimitingQueue q(nullptr, opts("capacitypool"));
  q.add("ns/a");
  q.add("ns/b");
  q.addRateLimited("ns/c");
  sim->advance(milliseconds(1500));
  ASSERT_TRUE(q.tryGet());
  sim->advance(milliseconds(250));
  ASSERT_TRUE(q.tryGet());
  q.done("ns/a");
  const std::string text = registry.serialize();
  const auto path = std::filesystem::temp_directory_path() /
                    ("waterline-wq-metrics-" + std::to_string(::getpid()) + ".prom");
  {
    std::ofstream f(path);
    f << text;
  }
  auto [rc, out] = run("promtool check metrics < '" + path.string() + "'");
  std::filesystem::remove(path);
  EXPECT_EQ(rc, 0) << out << "\n" << text;
  EXPECT_EQ(out, "") << "\n" << text;
}

}  // namespace
}  // namespace waterline::workqueue
