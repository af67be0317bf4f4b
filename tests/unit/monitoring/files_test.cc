// The monitoring files agree with each other and with the code:
//   docs/metrics.md      well-formed, every row's source has the name, every metric name
//                        in a .cc file of operator/ or controllers/ has a row
//   alert rules          only listed metrics; severity, summary, description, runbook; a
//                        runbook section in docs/operations.md; a firing and a not-firing
//                        case in alerts_test.yaml; input series only of listed metrics
//   dashboard            every query parses (promtool check rules on a recording rule per
//                        query) and uses only listed metrics; ids, uid, data source
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "monitoring_support.h"
#include "yaml_json.h"

namespace waterline::monitoring_test {
namespace {

using nlohmann::json;
using ::testing::ElementsAre;
using ::testing::IsEmpty;
namespace fs = std::filesystem;

// ------------------------------------------------------------------- the PromQL lexer

TEST(PromqlMetricNames, FindsSelectorsOnly) {
  EXPECT_THAT(promqlMetricNames("up"), ElementsAre("up"));
  EXPECT_THAT(promqlMetricNames(R"(sum by (pool, state) (waterline_pool_gpus{state="free", pool=~"a|b"}))"),
              ElementsAre("waterline_pool_gpus"));
  EXPECT_THAT(promqlMetricNames(
                  "histogram_quantile(0.99, sum by (controller, le) (rate(x_seconds_bucket[5m] offset 1h)))"),
              ElementsAre("x_seconds_bucket"));
  EXPECT_THAT(promqlMetricNames(R"(a / on (pool) group_left (region) b > 1e3 and bool c unless absent(d))"),
              ElementsAre("a", "b", "c", "d"));
  EXPECT_THAT(promqlMetricNames(R"x(label_replace(m, "dst", "not_a_metric", "src", "(.*)") or vector(0))x"),
              ElementsAre("m"));
  EXPECT_THAT(promqlMetricNames(R"(max_over_time(m[$__rate_interval:1m]) * 0.5 - nan)"), ElementsAre("m"));
  EXPECT_THROW(promqlMetricNames("m{a=\"b\""), std::invalid_argument);
}

TEST(MetricsDocParser, ReadsRowsAndReportsBadOnes) {
  auto d = parseMetricsDoc(
      "| metric | type | labels | source |\n|---|---|---|---|\n"
      "| `waterline_a_total` | counter | `x`, `y` | `f.cc` |\n"
      "| `waterline_b` | histogram | — | `g.cc` |\n"
      "| `waterline_c` | gauge | x | `g.cc` |\n"
      "| `waterline_d` | gauge | `x` |\n"
      "| `waterline_e` | gauge | — | f.cc |\n");
  ASSERT_TRUE(d.has("waterline_a_total"));
  EXPECT_THAT(d.rows["waterline_a_total"].labels, ElementsAre("x", "y"));
  EXPECT_EQ(d.rows["waterline_a_total"].source, "f.cc");
  EXPECT_TRUE(d.rows["waterline_b"].labels.empty());
  EXPECT_TRUE(d.knows("waterline_b_bucket"));
  EXPECT_FALSE(d.knows("waterline_a_total_bucket"));
  EXPECT_EQ(d.errors.size(), 2u);  // c: unquoted label, e: unquoted source (d is a 3-cell row)
}

// ------------------------------------------------------------------- docs/metrics.md

TEST(MetricsDoc, RowsAreWellFormedAndTrueToTheirSource) {
  const MetricsDoc doc = loadMetricsDoc();
  EXPECT_THAT(doc.errors, IsEmpty());
  ASSERT_GE(doc.rows.size(), 40u);
  static const std::regex nameRe("^waterline_[a-z0-9_]+$"), labelRe("^[a-z_][a-z0-9_]*$");
  for (const auto& [name, r] : doc.rows) {
    SCOPED_TRACE("docs/metrics.md:" + std::to_string(r.line) + " " + name);
    EXPECT_TRUE(std::regex_match(name, nameRe));
    EXPECT_THAT(r.type, ::testing::AnyOf("counter", "gauge", "histogram"));
    EXPECT_EQ(name.ends_with("_total"), r.type == "counter") << "counters, and only counters, end in _total";
    for (const auto& l : r.labels) EXPECT_TRUE(std::regex_match(l, labelRe)) << l;
    if (r.type == "histogram") {
      EXPECT_EQ(std::count(r.labels.begin(), r.labels.end(), "le"), 0);
    }
    const fs::path src = sourceDir() / r.source;
    ASSERT_TRUE(fs::exists(src)) << r.source;
    EXPECT_NE(readFile(src).find(name), std::string::npos) << r.source << " does not mention " << name;
  }
}

TEST(MetricsDoc, EveryMetricNamedInTheCodeIsListed) {
  const MetricsDoc doc = loadMetricsDoc();
  static const std::regex lit("\"(waterline_[a-z0-9_]*[a-z0-9])\"");
  std::set<std::string> seen;
  for (const char* dir : {"operator", "controllers"}) {
    for (const auto& e : fs::recursive_directory_iterator(sourceDir() / dir)) {
      if (!e.is_regular_file() || e.path().extension() != ".cc") continue;
      const std::string text = readFile(e.path());
      for (std::sregex_iterator it(text.begin(), text.end(), lit), end; it != end; ++it) {
        const std::string name = (*it)[1];
        if (seen.insert(name).second) {
          EXPECT_TRUE(doc.has(name)) << name << " (" << fs::relative(e.path(), sourceDir()).string()
                                     << ") has no row in docs/metrics.md: add one";
        }
      }
    }
  }
  EXPECT_GE(seen.size(), 30u) << "the scan found too little; did the layout change?";
}

// ------------------------------------------------------------------- alert rules

json loadRules() {
  auto docs = testing::loadYamlFile(sourceDir() / "deploy/prometheus/waterline-alerts.yaml");
  if (docs.size() != 1) throw std::runtime_error("want one YAML document");
  return docs[0];
}

std::vector<json> alertRules() {
  std::vector<json> out;
  const json rules = loadRules();  // named: a temporary's member would dangle in the loop
  for (const auto& g : rules.at("groups"))
    for (const auto& r : g.at("rules")) out.push_back(r);
  return out;
}

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

TEST(AlertRules, UseOnlyListedMetricsAndCarryRunbooks) {
  const MetricsDoc doc = loadMetricsDoc();
  const std::string ops = readFile(sourceDir() / "docs/operations.md");
  const auto rules = alertRules();
  ASSERT_GE(rules.size(), 13u);
  std::set<std::string> names;
  for (const auto& r : rules) {
    ASSERT_TRUE(r.contains("alert")) << "recording rules belong elsewhere: " << r.dump();
    const std::string a = r.at("alert");
    SCOPED_TRACE(a);
    EXPECT_TRUE(names.insert(a).second) << "duplicate alert name";
    EXPECT_TRUE(a.starts_with("Waterline"));
    const std::string expr = r.at("expr");
    const auto used = promqlMetricNames(expr);
    EXPECT_FALSE(used.empty());
    for (const auto& m : used) EXPECT_TRUE(doc.knows(m)) << m << " is not in docs/metrics.md";
    EXPECT_THAT(r.at("labels").at("severity").get<std::string>(), ::testing::AnyOf("critical", "warning"));
    ASSERT_TRUE(r.contains("for"));
    const auto& an = r.at("annotations");
    EXPECT_FALSE(an.value("summary", "").empty());
    EXPECT_FALSE(an.value("description", "").empty());
    EXPECT_EQ(an.value("runbook_url", ""), "docs/operations.md#" + lower(a));
    EXPECT_FALSE(an.contains("runbook")) << "runbook_url, not runbook";
    EXPECT_NE(ops.find("\n### " + a + "\n"), std::string::npos) << "docs/operations.md has no '### " << a << "'";
  }
}

TEST(AlertRules, EveryAlertHasAFiringAndAQuietTestCase) {
  const MetricsDoc doc = loadMetricsDoc();
  const json tests = testing::loadYamlFile(sourceDir() / "tests/unit/monitoring/alerts_test.yaml").at(0);
  EXPECT_EQ(tests.at("rule_files"), json::array({"../../../deploy/prometheus/waterline-alerts.yaml"}));
  std::map<std::string, std::pair<int, int>> cases;  // alert -> (firing, quiet)
  for (const auto& t : tests.at("tests")) {
    for (const auto& s : t.value("input_series", json::array())) {
      const std::string series = s.at("series");
      const std::string name = trim(series.substr(0, series.find('{')));
      EXPECT_TRUE(doc.knows(name)) << "input series of " << t.value("name", "?") << ": " << name
                                   << " is not in docs/metrics.md";
    }
    for (const auto& c : t.value("alert_rule_test", json::array())) {
      auto& [firing, quiet] = cases[c.at("alertname")];
      (c.value("exp_alerts", json::array()).empty() ? quiet : firing)++;
    }
  }
  const auto rules = alertRules();
  ASSERT_GE(rules.size(), 13u);
  for (const auto& r : rules) {
    const std::string a = r.at("alert");
    EXPECT_GE(cases[a].first, 1) << a << " is never shown firing in alerts_test.yaml";
    EXPECT_GE(cases[a].second, 1) << a << " is never shown quiet in alerts_test.yaml";
  }
}

// ------------------------------------------------------------------- dashboard

json loadDashboard() { return json::parse(readFile(sourceDir() / "deploy/grafana/waterline-fleet.json")); }

void collect(const json& j, const std::string& key, std::vector<const json*>& out) {
  if (j.is_object()) {
    for (auto it = j.begin(); it != j.end(); ++it) {
      if (it.key() == key) out.push_back(&it.value());
      collect(it.value(), key, out);
    }
  } else if (j.is_array()) {
    for (const auto& e : j) collect(e, key, out);
  }
}

// Grafana's variables as Prometheus would see them after substitution.
std::string substituteVariables(std::string e) {
  e = std::regex_replace(e, std::regex(R"(\$__(rate_interval|interval|range))"), "5m");
  return std::regex_replace(e, std::regex(R"(\$\{?[A-Za-z_][A-Za-z0-9_]*\}?)"), "x");
}

std::vector<std::string> dashboardExprs(const json& d) {
  std::vector<const json*> found;
  collect(d.at("panels"), "expr", found);
  std::vector<std::string> out;
  for (const auto* e : found) out.push_back(e->get<std::string>());
  return out;
}

TEST(Dashboard, QueriesUseOnlyListedMetrics) {
  const MetricsDoc doc = loadMetricsDoc();
  const json d = loadDashboard();
  const auto exprs = dashboardExprs(d);
  ASSERT_GE(exprs.size(), 30u);
  for (const auto& e : exprs)
    for (const auto& m : promqlMetricNames(substituteVariables(e)))
      EXPECT_TRUE(doc.knows(m)) << m << " (in " << e << ") is not in docs/metrics.md";
  // Template variables: label_values(<metric>, <label>) over listed metrics.
  static const std::regex lv(R"(label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*))");
  int vars = 0;
  for (const auto& v : d.at("templating").at("list")) {
    if (v.at("type") != "query") continue;
    ++vars;
    const std::string q = v.at("definition");
    std::smatch m;
    ASSERT_TRUE(std::regex_search(q, m, lv)) << q;
    EXPECT_TRUE(doc.knows(m[1])) << q;
  }
  EXPECT_EQ(vars, 3);
}

TEST(Dashboard, IsWellFormed) {
  const json d = loadDashboard();
  EXPECT_EQ(d.at("uid"), "waterline-fleet");
  EXPECT_FALSE(d.at("title").get<std::string>().empty());
  std::set<int> ids;
  std::set<std::string> rows;
  int targets = 0;
  for (const auto& p : d.at("panels")) {
    EXPECT_TRUE(ids.insert(p.at("id").get<int>()).second) << "duplicate panel id " << p.at("id");
    const auto& g = p.at("gridPos");
    EXPECT_LE(g.at("x").get<int>() + g.at("w").get<int>(), 24) << p.at("title");
    if (p.at("type") == "row") {
      rows.insert(p.at("title").get<std::string>());
      continue;
    }
    for (const auto& t : p.at("targets")) {
      ++targets;
      EXPECT_EQ(t.at("datasource").at("uid"), "${datasource}") << p.at("title");
    }
  }
  EXPECT_THAT(rows, ::testing::ElementsAre("Deployments ($namespace/$deployment)", "Fleet overview",
                                           "PTU reservations", "Pools ($pool)", "Response cache"));
  EXPECT_EQ(targets, static_cast<int>(dashboardExprs(d).size()));
  const auto& vars = d.at("templating").at("list");
  ASSERT_FALSE(vars.empty());
  EXPECT_EQ(vars[0].at("type"), "datasource");
  EXPECT_EQ(vars[0].at("name"), "datasource");
}

// Writes one recording rule per expression (JSON is YAML) and runs promtool check rules.
std::pair<int, std::string> promtoolCheck(const std::vector<std::string>& exprs) {
  json rules = json::array();
  for (std::size_t i = 0; i < exprs.size(); ++i)
    rules.push_back({{"record", "waterline:dashboard_query_" + std::to_string(i)}, {"expr", substituteVariables(exprs[i])}});
  const json file = {{"groups", json::array({{{"name", "dashboard"}, {"rules", rules}}})}};
  const auto path = fs::temp_directory_path() / ("waterline-dashboard-" + std::to_string(::getpid()) + ".rules.json");
  {
    std::ofstream f(path);
    f << file.dump(2);
  }
  auto r = run("promtool check rules '" + path.string() + "'");
  fs::remove(path);
  return r;
}

TEST(Dashboard, EveryQueryParses) {
  if (!havePromtool()) GTEST_SKIP() << "promtool not installed";
  const auto exprs = dashboardExprs(loadDashboard());
  auto [rc, out] = promtoolCheck(exprs);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_THAT(out, ::testing::HasSubstr("SUCCESS: " + std::to_string(exprs.size()) + " rules found")) << out;
}

TEST(Dashboard, PromtoolRejectsABrokenQuery) {
  // Guards the test above: a query that does not parse fails the check.
  if (!havePromtool()) GTEST_SKIP() << "promtool not installed";
  auto [rc, out] = promtoolCheck({"sum(rate(waterline_pool_gpus[5m])", "max by (pool) (waterline_pool_gpus)"});
  EXPECT_NE(rc, 0) << out;
  EXPECT_THAT(out, ::testing::HasSubstr("parse error")) << out;
}

}  // namespace
}  // namespace waterline::monitoring_test
