#include "waterline/common/metrics.h"
#include "waterline/common/process_collector.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <thread>

namespace waterline::metrics {
namespace {

using ::testing::HasSubstr;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

TEST(MetricsFormat, Values) {
  EXPECT_EQ(formatValue(0), "0");
  EXPECT_EQ(formatValue(-0.0), "0");
  EXPECT_EQ(formatValue(1), "1");
  EXPECT_EQ(formatValue(-3), "-3");
  EXPECT_EQ(formatValue(123456789), "123456789");
  EXPECT_EQ(formatValue(100000000000000), "100000000000000");
  EXPECT_EQ(formatValue(1.5), "1.5");
  EXPECT_EQ(formatValue(0.005), "0.005");
  EXPECT_EQ(formatValue(1e-8), "1e-08");
  EXPECT_EQ(formatValue(0.0001), "0.0001");
  EXPECT_EQ(formatValue(0.00012), "0.00012");
  EXPECT_EQ(formatValue(1.5e-5), "1.5e-05");
  EXPECT_EQ(formatValue(123456.5), "123456.5");
  EXPECT_EQ(formatValue(1e20), "1e+20");
  EXPECT_EQ(formatValue(0.1 + 0.2), "0.30000000000000004");
  EXPECT_EQ(formatValue(kNaN), "NaN");
  EXPECT_EQ(formatValue(kInf), "+Inf");
  EXPECT_EQ(formatValue(-kInf), "-Inf");
}

TEST(MetricsFormat, Escapes) {
  EXPECT_EQ(escapeLabelValue("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
  EXPECT_EQ(escapeHelp("a\\b\"c\nd"), "a\\\\b\"c\\nd");
}

TEST(MetricsNames, Validation) {
  EXPECT_TRUE(isValidMetricName("waterline_x:y_total"));
  EXPECT_TRUE(isValidMetricName(":a"));
  EXPECT_FALSE(isValidMetricName(""));
  EXPECT_FALSE(isValidMetricName("9x"));
  EXPECT_FALSE(isValidMetricName("a-b"));
  EXPECT_FALSE(isValidMetricName("a b"));
  EXPECT_TRUE(isValidLabelName("name"));
  EXPECT_TRUE(isValidLabelName("_x1"));
  EXPECT_FALSE(isValidLabelName("__name__"));
  EXPECT_FALSE(isValidLabelName("a:b"));
  EXPECT_FALSE(isValidLabelName("1a"));
  EXPECT_FALSE(isValidLabelName(""));
}

TEST(Registry, GoldenExposition) {
  Registry r;
  auto& c = r.counter("waterline_reconcile_total", "Reconciles by result.", {"controller", "result"});
  c.withLabels({"pool", "success"}).inc(3);
  c.withLabels({"pool", "error"}).inc();
  c.withLabels({"deployment", "success"}).inc(2.5);
  r.gauge("waterline_up", "Whether the operator is up.").get().set(1);
  auto& h = r.histogram("waterline_reconcile_duration_seconds", "Reconcile time.", {"controller"},
                        {0.25, 1, 10});
  for (double v : {0.125, 0.25, 5.0, 100.0}) h.withLabels({"pool"}).observe(v);
  r.gaugeFunc("waterline_pool_ready_gpus", "Ready GPUs per pool.", {"pool"}, [] {
    return std::vector<Sample>{{{"b"}, 2}, {{"a"}, 3}};
  });
  r.counter("waterline_unused_total", "Labelled family without children.", {"x"});

  EXPECT_EQ(r.serialize(),
            "# HELP waterline_pool_ready_gpus Ready GPUs per pool.\n"
            "# TYPE waterline_pool_ready_gpus gauge\n"
            "waterline_pool_ready_gpus{pool=\"a\"} 3\n"
            "waterline_pool_ready_gpus{pool=\"b\"} 2\n"
            "# HELP waterline_reconcile_duration_seconds Reconcile time.\n"
            "# TYPE waterline_reconcile_duration_seconds histogram\n"
            "waterline_reconcile_duration_seconds_count{controller=\"pool\"} 4\n"
            "waterline_reconcile_duration_seconds_sum{controller=\"pool\"} 105.375\n"
            "waterline_reconcile_duration_seconds_bucket{controller=\"pool\",le=\"0.25\"} 2\n"
            "waterline_reconcile_duration_seconds_bucket{controller=\"pool\",le=\"1\"} 2\n"
            "waterline_reconcile_duration_seconds_bucket{controller=\"pool\",le=\"10\"} 3\n"
            "waterline_reconcile_duration_seconds_bucket{controller=\"pool\",le=\"+Inf\"} 4\n"
            "# HELP waterline_reconcile_total Reconciles by result.\n"
            "# TYPE waterline_reconcile_total counter\n"
            "waterline_reconcile_total{controller=\"deployment\",result=\"success\"} 2.5\n"
            "waterline_reconcile_total{controller=\"pool\",result=\"error\"} 1\n"
            "waterline_reconcile_total{controller=\"pool\",result=\"success\"} 3\n"
            "# HELP waterline_up Whether the operator is up.\n"
            "# TYPE waterline_up gauge\n"
            "waterline_up 1\n");
}

TEST(Registry, GoldenEscapingAndSpecialValues) {
  Registry r;
  auto& g = r.gauge("temp_celsius", "Line one\nback\\slash \"quoted\"", {"path"});
  g.withLabels({"C:\\dir \"x\"\nnext"}).set(kNaN);
  g.withLabels({"inf"}).set(kInf);
  g.withLabels({"neginf"}).set(-kInf);
  g.withLabels({""}).set(-2.5);
  EXPECT_EQ(r.serialize(),
            "# HELP temp_celsius Line one\\nback\\\\slash \"quoted\"\n"
            "# TYPE temp_celsius gauge\n"
            "temp_celsius{path=\"\"} -2.5\n"
            "temp_celsius{path=\"C:\\\\dir \\\"x\\\"\\nnext\"} Nan\n"
            "temp_celsius{path=\"inf\"} +Inf\n"
            "temp_celsius{path=\"neginf\"} -Inf\n");
}

TEST(Registry, SharedCounterIsOneFamilyAndRefusesAMismatch) {
  Registry r;
  auto& a = r.sharedCounter("repairs_total", "Repairs.", {"reason"});
  auto& b = r.sharedCounter("repairs_total", "Repairs.", {"reason"});
  EXPECT_EQ(&a, &b);
  a.withLabels({"x"}).inc();
  EXPECT_EQ(b.withLabels({"x"}).value(), 1);
  EXPECT_THROW(r.sharedCounter("repairs_total", "Other help.", {"reason"}), std::invalid_argument);
  EXPECT_THROW(r.sharedCounter("repairs_total", "Repairs.", {"cause"}), std::invalid_argument);
  r.gauge("depth", "Depth.");
  EXPECT_THROW(r.sharedCounter("depth", "Depth."), std::invalid_argument);  // not a counter name either
  EXPECT_THROW(r.counter("repairs_total", "Repairs.", {"reason"}), std::invalid_argument);  // plain counter() stays strict
}

TEST(Registry, UnlabelledFamiliesPrintZeroAndEmptyRegistryIsEmpty) {
  Registry r;
  EXPECT_EQ(r.serialize(), "");
  r.counter("a_total", "A.");
  r.histogram("b_seconds", "B.", {}, {1});
  EXPECT_EQ(r.serialize(),
            "# HELP a_total A.\n# TYPE a_total counter\na_total 0\n"
            "# HELP b_seconds B.\n# TYPE b_seconds histogram\n"
            "b_seconds_count 0\nb_seconds_sum 0\n"
            "b_seconds_bucket{le=\"1\"} 0\nb_seconds_bucket{le=\"+Inf\"} 0\n");
}

TEST(Registry, RejectsInvalidRegistrations) {
  Registry r;
  EXPECT_THROW(r.counter("requests", "no _total"), std::invalid_argument);
  EXPECT_THROW(r.counter("bad-name_total", "h"), std::invalid_argument);
  EXPECT_THROW(r.counter("ok_total", ""), std::invalid_argument);
  EXPECT_THROW(r.counter("ok_total", "h", {"__reserved"}), std::invalid_argument);
  EXPECT_THROW(r.counter("ok_total", "h", {"a", "a"}), std::invalid_argument);
  EXPECT_THROW(r.counter("ok_total", "h", {"bad-label"}), std::invalid_argument);
  EXPECT_THROW(r.gauge("g_total", "h"), std::invalid_argument);
  EXPECT_THROW(r.gauge("g_count", "h"), std::invalid_argument);
  EXPECT_THROW(r.gauge("g_sum", "h"), std::invalid_argument);
  EXPECT_THROW(r.gauge("g_bucket", "h"), std::invalid_argument);
  EXPECT_THROW(r.histogram("h_seconds", "h", {"le"}), std::invalid_argument);
  EXPECT_THROW(r.histogram("h_seconds", "h", {}, {1, 1}), std::invalid_argument);
  EXPECT_THROW(r.histogram("h_seconds", "h", {}, {2, 1}), std::invalid_argument);
  EXPECT_THROW(r.histogram("h_seconds", "h", {}, {kNaN}), std::invalid_argument);
  EXPECT_THROW(r.gaugeFunc("f_total", "h", {}, {}), std::invalid_argument);
  EXPECT_THROW(r.counterFunc("f", "h", {}, {}), std::invalid_argument);
  EXPECT_TRUE(r.familyNames().empty());

  r.gauge("dup", "h");
  EXPECT_THROW(r.gauge("dup", "h"), std::invalid_argument);
  EXPECT_THROW(r.histogram("dup", "h"), std::invalid_argument);
  EXPECT_THROW(r.gaugeFunc("dup", "h", {}, [] { return std::vector<Sample>{}; }),
               std::invalid_argument);
  EXPECT_EQ(r.familyNames(), std::vector<std::string>{"dup"});
}

TEST(Registry, UnregisterKeepsReferencesValidAndFreesTheName) {
  Registry r;
  auto& c = r.counter("x_total", "h");
  c.get().inc();
  EXPECT_TRUE(r.unregister("x_total"));
  EXPECT_FALSE(r.unregister("x_total"));
  EXPECT_FALSE(r.contains("x_total"));
  c.get().inc();  // still valid
  EXPECT_EQ(c.get().value(), 2);
  EXPECT_EQ(r.serialize(), "");
  auto& c2 = r.counter("x_total", "h2");
  EXPECT_EQ(c2.get().value(), 0);
  EXPECT_TRUE(r.contains("x_total"));
}

TEST(Family, ChildrenArityAndRemoval) {
  Registry r;
  auto& g = r.gauge("pool_gpus", "h", {"pool", "state"});
  EXPECT_THROW(g.withLabels({"a"}), std::invalid_argument);
  EXPECT_THROW(g.get(), std::invalid_argument);
  auto& a = g.withLabels({"a", "ready"});
  EXPECT_EQ(&a, &g.withLabels({"a", "ready"}));
  EXPECT_EQ(&a, &g.withLabels(LabelValues{"a", "ready"}));
  a.set(4);
  a.inc();
  a.dec(2);
  a.add(0.5);
  a.sub(0.25);
  EXPECT_DOUBLE_EQ(a.value(), 3.25);
  EXPECT_EQ(g.size(), 1u);
  EXPECT_TRUE(g.remove({"a", "ready"}));
  EXPECT_FALSE(g.remove({"a", "ready"}));
  EXPECT_EQ(g.size(), 0u);
}

TEST(Family, LabelsPrintInDeclaredOrderAndRemovedSeriesLeaveTheExposition) {
  // prometheus-cpp keeps a child's labels by name; the exposition keeps the family's order.
  Registry r;
  auto& g = r.gauge("routes", "h", {"zone", "app", "mode"});
  g.withLabels({"z1", "b", "x"}).set(1);
  g.withLabels({"z1", "a", "y"}).set(2);
  g.withLabels({"z0", "c", "x"}).set(3);
  EXPECT_EQ(r.serialize(),
            "# HELP routes h\n# TYPE routes gauge\n"
            "routes{zone=\"z0\",app=\"c\",mode=\"x\"} 3\n"
            "routes{zone=\"z1\",app=\"a\",mode=\"y\"} 2\n"
            "routes{zone=\"z1\",app=\"b\",mode=\"x\"} 1\n");
  EXPECT_TRUE(g.remove({"z1", "a", "y"}));
  EXPECT_EQ(r.serialize(),
            "# HELP routes h\n# TYPE routes gauge\n"
            "routes{zone=\"z0\",app=\"c\",mode=\"x\"} 3\n"
            "routes{zone=\"z1\",app=\"b\",mode=\"x\"} 1\n");
  // A removed child comes back from zero.
  EXPECT_EQ(g.withLabels({"z1", "a", "y"}).value(), 0);
  auto& h = r.histogram("lat_seconds", "h", {"b", "a"}, {1});
  h.withLabels({"x", "y"}).observe(2);
  EXPECT_TRUE(h.remove({"x", "y"}));
  EXPECT_EQ(h.withLabels({"x", "y"}).snapshot().count, 0u);
  EXPECT_THAT(r.serialize(), HasSubstr("lat_seconds_bucket{b=\"x\",a=\"y\",le=\"+Inf\"} 0\n"));
}

// A fixed collectable: what addCollectable() merges into the exposition.
class FixedCollectable : public prometheus::Collectable {
 public:
  std::vector<prometheus::MetricFamily> Collect() const override {
    prometheus::MetricFamily a;
    a.name = "extra_things";
    a.help = "Things\nfrom elsewhere.";
    a.type = prometheus::MetricType::Gauge;
    a.metric.emplace_back();
    a.metric.back().gauge.value = 7;
    prometheus::MetricFamily stray = a;  // a name it did not declare: dropped
    stray.name = "undeclared";
    prometheus::MetricFamily empty;  // no samples: not printed
    empty.name = "extra_empty";
    empty.help = "h";
    empty.type = prometheus::MetricType::Gauge;
    return {stray, a, empty};
  }
};

TEST(Registry, CollectablesJoinTheExpositionAndReserveTheirNames) {
  Registry r;
  r.gauge("zz_last", "h").get().set(1);
  auto c = std::make_shared<FixedCollectable>();
  r.addCollectable(c, {"extra_things", "extra_empty"});
  EXPECT_EQ(r.serialize(),
            "# HELP extra_things Things\\nfrom elsewhere.\n# TYPE extra_things gauge\nextra_things 7\n"
            "# HELP zz_last h\n# TYPE zz_last gauge\nzz_last 1\n");
  EXPECT_THROW(r.gauge("extra_things", "h"), std::invalid_argument);
  EXPECT_THROW(r.addCollectable(std::make_shared<FixedCollectable>(), {"zz_last"}), std::invalid_argument);
  EXPECT_THROW(r.addCollectable(std::make_shared<FixedCollectable>(), {"fresh", "extra_empty"}),
               std::invalid_argument);
  r.gauge("fresh", "h", {"l"});  // the failed addCollectable reserved nothing (no child: not printed)
  EXPECT_TRUE(r.removeCollectable(c.get()));
  EXPECT_FALSE(r.removeCollectable(c.get()));
  EXPECT_EQ(r.serialize(), "# HELP zz_last h\n# TYPE zz_last gauge\nzz_last 1\n");
  r.gauge("extra_things", "h");  // the name is free again
}

TEST(Counter, RejectsDecrease) {
  Registry r;
  auto& c = r.counter("c_total", "h").get();
  EXPECT_THROW(c.inc(-1), std::invalid_argument);
  EXPECT_THROW(c.inc(kNaN), std::invalid_argument);
  c.inc(0);
  EXPECT_EQ(c.value(), 0);
}

TEST(Histogram, BucketsAreInclusiveAndCumulative) {
  Registry r;
  auto& h = r.histogram("h_seconds", "h", {}, {1, 2, kInf}).get();  // trailing +Inf is implied
  EXPECT_EQ(h.upperBounds(), (std::vector<double>{1, 2}));
  for (double v : {0.5, 1.0, 1.5, 2.0, 3.0, kNaN}) h.observe(v);
  auto s = h.snapshot();
  EXPECT_EQ(s.cumulative, (std::vector<std::uint64_t>{2, 4, 6}));
  EXPECT_EQ(s.count, 6u);
  EXPECT_TRUE(std::isnan(s.sum));
}

TEST(Buckets, Helpers) {
  EXPECT_EQ(defaultBuckets().size(), 11u);
  auto e = exponentialBuckets(1e-8, 10, 10);
  ASSERT_EQ(e.size(), 10u);
  std::string printed;
  for (double b : e) printed += formatValue(b) + " ";
  EXPECT_EQ(printed, "1e-08 1e-07 1e-06 1e-05 0.0001 0.001 0.01 0.1 1 10 ");
  EXPECT_EQ(linearBuckets(0.1, 0.1, 3), (std::vector<double>{0.1, 0.2, 0.3}));
  EXPECT_THROW(exponentialBuckets(0, 2, 3), std::invalid_argument);
  EXPECT_THROW(linearBuckets(0, 0, 3), std::invalid_argument);
}

TEST(CallbackFamily, DropsBadAndDuplicateSamples) {
  Registry r;
  int calls = 0;
  r.gaugeFunc("q_depth", "h", {"name"}, [&] {
    ++calls;
    return std::vector<Sample>{{{"b"}, 1}, {{"a", "extra"}, 9}, {{"a"}, 2}, {{"b"}, 7}};
  });
  r.counterFunc("q_seen_total", "h", {}, [] { return std::vector<Sample>{{{}, 42}}; });
  r.gaugeFunc("q_empty", "h", {}, [] { return std::vector<Sample>{}; });
  EXPECT_EQ(r.serialize(),
            "# HELP q_depth h\n# TYPE q_depth gauge\nq_depth{name=\"a\"} 2\nq_depth{name=\"b\"} 1\n"
            "# HELP q_seen_total h\n# TYPE q_seen_total counter\nq_seen_total 42\n");
  EXPECT_EQ(calls, 1);
}

TEST(Registry, ConcurrentUpdatesAndScrapes) {
  Registry r;
  auto& c = r.counter("c_total", "h", {"t"});
  auto& h = r.histogram("h_seconds", "h", {"t"}, {1});
  // The series exist before the scraper starts (a family with no series is not
  // serialized: without this the first scrape could run before the first increment).
  c.withLabels({"shared"});
  ASSERT_THAT(r.serialize(), HasSubstr("# TYPE c_total counter"));
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t) {
    ts.emplace_back([&, t] {
      for (int i = 0; i < 5000; ++i) {
        c.withLabels({"shared"}).inc();
        c.withLabels({std::to_string(t)}).inc();
        h.withLabels({"shared"}).observe(0.5);
      }
    });
  }
  ts.emplace_back([&] {
    for (int i = 0; i < 50; ++i) {
      const std::string s = r.serialize();
      ASSERT_THAT(s, HasSubstr("# TYPE c_total counter"));
    }
  });
  for (auto& t : ts) t.join();
  EXPECT_EQ(c.withLabels({"shared"}).value(), 20000);
  EXPECT_EQ(h.withLabels({"shared"}).snapshot().count, 20000u);
  EXPECT_THAT(r.serialize(), HasSubstr("h_seconds_bucket{t=\"shared\",le=\"+Inf\"} 20000\n"));
}

TEST(Registry, DefaultRegistryIsProcessWide) {
  // A family registered and counted through defaultRegistry() on another thread (as the
  // operator's components do) is the one this thread sees and serializes: one registry
  // per process, not per thread or per call.
  CounterFamily* there = nullptr;
  std::thread t([&] {
    there = &defaultRegistry().counter("waterline_test_process_wide_total", "Counted on another thread.");
    there->get().inc(3);
  });
  t.join();
  EXPECT_TRUE(defaultRegistry().contains("waterline_test_process_wide_total"));
  auto& here = defaultRegistry().sharedCounter("waterline_test_process_wide_total", "Counted on another thread.");
  EXPECT_EQ(&here, there);
  here.get().inc();
  EXPECT_NE(defaultRegistry().serialize().find("waterline_test_process_wide_total 4\n"), std::string::npos)
      << defaultRegistry().serialize();
  defaultRegistry().unregister("waterline_test_process_wide_total");  // leave it as found (--gtest_repeat)
}

// Runs `cmd`, returning its exit status and combined output.
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

TEST(Registry, PromtoolAcceptsEveryKind) {
  if (run("command -v promtool").first != 0) GTEST_SKIP() << "promtool not installed";
  Registry r;
  addProcessCollector(r);
  auto& c = r.counter("waterline_reconcile_total", "Reconciles by result.", {"controller", "result"});
  c.withLabels({"pool", "success"}).inc(3);
  c.withLabels({"we\"ird\\pool\nname", "error"}).inc(1e20);
  r.counter("waterline_starts_total", "Process starts.").get().inc();
  auto& g = r.gauge("waterline_pool_temperature_celsius",
                    "Help with \\ backslash and\nnewline and \"quotes\".", {"pool"});
  g.withLabels({"a"}).set(kNaN);
  g.withLabels({"b"}).set(kInf);
  g.withLabels({"c"}).set(-kInf);
  g.withLabels({"d"}).set(1e-9);
  g.withLabels({""}).set(-3);
  auto& h = r.histogram("waterline_reconcile_duration_seconds", "Reconcile time.", {"controller"},
                        exponentialBuckets(1e-8, 10, 10));
  for (double v : {1e-9, 0.003, 0.5, 2.0, 50.0}) h.withLabels({"pool"}).observe(v);
  h.withLabels({"deploy\"ment"}).observe(0.1);
  r.histogram("waterline_empty_seconds", "Never observed.").get();
  r.gaugeFunc("waterline_workqueue_depth", "Queue depth.", {"name"}, [] {
    return std::vector<Sample>{{{"capacitypool"}, 3}, {{"deploy\\ment"}, 0}};
  });
  r.counterFunc("waterline_events_seen_total", "Events seen.", {}, [] {
    return std::vector<Sample>{{{}, 12345678}};
  });

  const std::string text = r.serialize();
  const auto path = std::filesystem::temp_directory_path() /
                    ("waterline-metrics-" + std::to_string(::getpid()) + ".prom");
  {
    std::ofstream f(path);
    f << text;
  }
  auto [rc, out] = run("promtool check metrics < '" + path.string() + "'");
  std::filesystem::remove(path);
  EXPECT_EQ(rc, 0) << out << "\n--- exposition ---\n" << text;
  EXPECT_EQ(out, "") << "\n--- exposition ---\n" << text;
}

TEST(Registry, PromtoolLintsWhatWeReject) {
  // Guards the test above: promtool really does complain about such output.
  if (run("command -v promtool").first != 0) GTEST_SKIP() << "promtool not installed";
  auto [rc, out] = run("printf '# TYPE x counter\\nx 1\\n' | promtool check metrics");
  EXPECT_NE(rc, 0);
  EXPECT_THAT(out, HasSubstr("no help text"));
}

}  // namespace
}  // namespace waterline::metrics
