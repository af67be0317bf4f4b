#include "waterline/plan/plan_cli.h"

#include <CLI/CLI.hpp>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <ostream>
#include <sstream>

#include "waterline/planners/token_series.h"
#include "waterline/planners/waterline.h"

namespace waterline::plan {

namespace {

// A duration of the flags' syntax, or a whole number of days ("7d").
std::expected<Duration, std::string> parseSince(const std::string& v) {
  if (v.size() > 1 && v.back() == 'd' && v.find_first_not_of("0123456789") == v.size() - 1) {
    const long long days = std::stoll(v.substr(0, v.size() - 1));
    if (days < 1 || days > 400) return std::unexpected("want 1d to 400d, got " + v);
    return std::chrono::hours(24 * days);
  }
  auto d = cli::parseDuration(v);
  if (!d) return std::unexpected(d.error());
  if (*d < std::chrono::minutes(1) || *d > std::chrono::hours(24 * 400))
    return std::unexpected("want 1m to 400d, got " + v);
  return *d;
}

void addFlags(CLI::App& app, PlanConfig& c) {
  app.set_version_flag("--version", std::string("waterline-plan ") + WATERLINE_VERSION);
  app.add_option("--series", c.series, "per-minute token series: CSV or JSONL (timestamp, input, output tokens)");
  app.add_option("--prometheus-url", c.prometheusUrl,
                 "read the series from Prometheus instead (the workers' token counters of --deployment)");
  app.add_option_function<std::string>(
         "--since",
         [&c](const std::string& v) {
           auto d = parseSince(v);
           if (!d) throw CLI::ValidationError("--since", d.error());
           c.since = *d;
         },
         "with --prometheus-url: the window that ends now (a duration; d for days: 7d)")
      ->default_str("7d");
  cli::addChoice(app, "series-format", {"auto", "csv", "jsonl", "mooncake"}, c.seriesFormat,
                 [&c](const std::string& s) { c.seriesFormat = s; },
                 "format of --series; auto: .jsonl/.json are JSONL, anything else CSV");
  app.add_option("--units-per-minute", c.unitsPerMinute, "tokens per minute per unit (the reservation's tokensPerMinutePerUnit)")
      ->check(CLI::Range(int64_t{1}, int64_t{100000000}));
  app.add_option("--burst-percent", c.burstPercent, "the reservation's burstPercent")
      ->check(CLI::Range(0, 1000))
      ->capture_default_str();
  cli::addBool(app, "spillover", c.spillover, "the deployment has a spillover deployment (over the line spills, else 429)");
  app.add_option("--prices", c.prices, "JSON price file: unitHour, inputPer1k, outputPer1k (default: all 0)");
  app.add_option("--input-token-weight", c.inputTokenWeight, "the deployment's throughput.inputTokenWeight")
      ->check(CLI::Range(0.0, 1e6))
      ->capture_default_str();
  app.add_option("--output-token-weight", c.outputTokenWeight, "the deployment's throughput.outputTokenWeight")
      ->check(CLI::Range(0.0, 1e6))
      ->capture_default_str();
  app.add_option("--min-units", c.minUnits, "smallest unit count evaluated")
      ->check(CLI::Range(int64_t{0}, int64_t{10000}))
      ->capture_default_str();
  app.add_option("--max-units", c.maxUnits, "largest unit count evaluated")
      ->check(CLI::Range(int64_t{0}, int64_t{10000}))
      ->capture_default_str();
  app.add_option("--step", c.step, "unit count step")->check(CLI::Range(int64_t{1}, int64_t{10000}))->capture_default_str();
  app.add_option("--coverage", c.coverage, "the coverage target of the table's recommendations, % of minutes")
      ->check(CLI::Range(0.0, 100.0))
      ->capture_default_str();
  cli::addChoice(app, "output", {"table", "yaml"}, c.output, [&c](const std::string& s) { c.output = s; },
                 "table: the table and the recommendations; yaml: the PTUReservation for --target");
  app.add_option("--target", c.target, "recommendation for --output yaml: coverage=X, min-cost, no-429")
      ->capture_default_str();
  app.add_option("--deployment", c.deployment, "namespace/name of the ModelDeployment (the YAML's namespace and deploymentRef)");
  app.add_option("--scope", c.scope, "the YAML's scope: Global, Regional:<region>, DataZone:<zone>")
      ->capture_default_str();
}

std::expected<std::string, std::string> readFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::unexpected("cannot open " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::expected<planners::PtuPrices, std::string> readPrices(const std::string& path) {
  planners::PtuPrices p;
  if (path.empty()) return p;
  auto text = readFile(path);
  if (!text) return std::unexpected(text.error());
  auto j = nlohmann::json::parse(*text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return std::unexpected(path + ": not a JSON object");
  for (auto [key, dst] : {std::pair{"unitHour", &p.unitHour}, std::pair{"inputPer1k", &p.inputPer1k},
                          std::pair{"outputPer1k", &p.outputPer1k}}) {
    auto it = j.find(key);
    if (it == j.end()) continue;
    if (!it->is_number() || it->get<double>() < 0)
      return std::unexpected(path + ": " + key + " must be a number >= 0");
    *dst = it->get<double>();
  }
  for (auto it = j.begin(); it != j.end(); ++it)
    if (it.key() != "unitHour" && it.key() != "inputPer1k" && it.key() != "outputPer1k")
      return std::unexpected(path + ": unknown key " + it.key() + " (unitHour, inputPer1k, outputPer1k)");
  return p;
}

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

struct Scope {
  std::string type, key, value;
};
std::expected<Scope, std::string> parseScope(const std::string& s) {
  if (s == "Global") return Scope{"Global", "", ""};
  for (auto [type, key] : {std::pair{"Regional", "region"}, std::pair{"DataZone", "dataZone"}}) {
    std::string prefix = std::string(type) + ":";
    if (s.starts_with(prefix) && s.size() > prefix.size()) return Scope{type, key, s.substr(prefix.size())};
  }
  return std::unexpected("--scope: want Global, Regional:<region> or DataZone:<zone>, got '" + s + "'");
}

}  // namespace

std::vector<cli::FlagDoc> planFlags() {
  PlanConfig c;
  CLI::App app("", "waterline-plan");
  addFlags(app, c);
  return cli::describe(app);
}

std::expected<PlanConfig, cli::Exit> parsePlanConfig(const std::vector<std::string>& args) {
  PlanConfig c;
  CLI::App app("size a PTUReservation from a per-minute token series (docs/waterline.md)", "waterline-plan");
  addFlags(app, c);
  if (auto exit = cli::parse(app, args)) return std::unexpected(*exit);
  if (c.series.empty() == c.prometheusUrl.empty())
    return std::unexpected(cli::Exit{2, "one of --series or --prometheus-url is required"});
  if (!c.prometheusUrl.empty() && c.deployment.find('/') == std::string::npos)
    return std::unexpected(cli::Exit{2, "--prometheus-url needs --deployment namespace/name"});
  if (c.unitsPerMinute <= 0) return std::unexpected(cli::Exit{2, "--units-per-minute is required"});
  if (c.maxUnits < c.minUnits) return std::unexpected(cli::Exit{2, "--max-units must be >= --min-units"});
  if (c.output == "yaml" && c.deployment.find('/') == std::string::npos)
    return std::unexpected(cli::Exit{2, "--output yaml needs --deployment namespace/name"});
  if (auto s = parseScope(c.scope); !s) return std::unexpected(cli::Exit{2, s.error()});
  return c;
}

std::expected<planners::TokenSeries, std::string> prometheusSeries(sources::PrometheusClient& prom,
                                                                    const std::string& ns, const std::string& name,
                                                                    Duration since, SystemTime now) {
  using namespace std::chrono;
  const int64_t endS = floor<minutes>(now.time_since_epoch()).count() * 60;
  const int64_t startS = endS - std::max<int64_t>(60, duration_cast<seconds>(since).count());
  constexpr int64_t kMaxSteps = 10000;
  std::vector<planners::CounterStep> in, outSteps;
  for (auto [counter, dst] : {std::pair{"vllm:prompt_tokens_total", &in},
                              std::pair{"vllm:generation_tokens_total", &outSteps}}) {
    const std::string tmpl = std::string("sum(increase(") + counter +
                             R"({namespace="{{namespace}}",deployment="{{deployment}}"}[1m])))";
    auto q = sources::renderQuery(tmpl, {.deployment = name, .ns = ns, .pool = ""});
    if (!q) return std::unexpected("--deployment: " + q.error());
    // Steps at startS + 60, ..., endS (each counts the minute before it).
    for (int64_t cs = startS + 60; cs <= endS; cs += kMaxSteps * 60) {
      const int64_t ce = std::min(endS, cs + (kMaxSteps - 1) * 60);
      auto r = prom.queryRange(*q, SystemTime{seconds(cs)}, SystemTime{seconds(ce)}, seconds(60));
      if (!r) return std::unexpected("Prometheus: " + *q + ": " + r.error().toString());
      for (const auto& ser : *r)
        for (const auto& p : ser.points) dst->push_back({p.timestamp, p.value});
    }
  }
  auto s = planners::seriesFromIncreases(in, outSteps);
  if (s.minutes.empty()) return std::unexpected("Prometheus returned no token counts for " + ns + "/" + name);
  // The window, not just the minutes that had points: leading and trailing minutes without
  // traffic count as zero.
  const int64_t firstMinute = startS / 60, minutesTotal = (endS - startS) / 60;
  std::vector<planners::TokenMinute> full(static_cast<size_t>(minutesTotal));
  for (size_t i = 0; i < s.minutes.size(); ++i) {
    const int64_t m = s.startUnixMinute + static_cast<int64_t>(i) - firstMinute;
    if (m >= 0 && m < minutesTotal) full[static_cast<size_t>(m)] = s.minutes[i];
  }
  return planners::TokenSeries{firstMinute, std::move(full)};
}

int run(const PlanConfig& c, std::ostream& out, std::ostream& err) {
  if (c.prometheusUrl.empty()) return run(c, out, err, nullptr, SystemTime{});
  sources::PrometheusClientConfig pc;
  pc.baseUrl = c.prometheusUrl;
  auto prom = sources::makeHttpPrometheusClient(pc);
  return run(c, out, err, prom.get(), std::chrono::system_clock::now());
}

int run(const PlanConfig& c, std::ostream& out, std::ostream& err, sources::PrometheusClient* prom, SystemTime now) {
  std::expected<planners::TokenSeries, std::string> series;
  if (!c.prometheusUrl.empty()) {
    if (!prom) {
      err << "waterline-plan: no Prometheus client\n";
      return 1;
    }
    const std::string ns = c.deployment.substr(0, c.deployment.find('/'));
    const std::string name = c.deployment.substr(c.deployment.find('/') + 1);
    series = prometheusSeries(*prom, ns, name, c.since, now);
    if (!series) {
      err << "waterline-plan: " << series.error() << "\n";
      return 1;
    }
  } else {
    auto text = readFile(c.series);
    if (!text) {
      err << "waterline-plan: " << text.error() << "\n";
      return 1;
    }
    std::string format = c.seriesFormat;
    if (format == "auto")
      format = c.series.ends_with(".jsonl") || c.series.ends_with(".json") ? "jsonl" : "csv";
    series = format == "mooncake"
                 ? planners::parseMooncakeTrace(*text)
                 : planners::parseTokenSeries(*text, format == "jsonl" ? planners::SeriesFormat::Jsonl
                                                                       : planners::SeriesFormat::Csv);
    if (!series) {
      err << "waterline-plan: " << c.series << ": " << series.error() << "\n";
      return 1;
    }
  }
  auto prices = readPrices(c.prices);
  if (!prices) {
    err << "waterline-plan: " << prices.error() << "\n";
    return 1;
  }
  auto prepared = planners::prepareSeries(series->minutes, {c.inputTokenWeight, c.outputTokenWeight}, *prices);
  const planners::ReservationShape shape{c.unitsPerMinute, c.burstPercent, c.spillover};
  auto plan = planners::planWaterline(prepared, shape, *prices, {c.minUnits, c.maxUnits, c.step}, c.coverage);
  if (!plan) {
    err << "waterline-plan: " << plan.error() << "\n";
    return 2;
  }

  if (c.output == "yaml") {
    auto rec = planners::pickTarget(*plan, c.target);
    if (!rec) {
      err << "waterline-plan: --target: " << rec.error() << "\n";
      return 2;
    }
    if (!rec->units) {
      err << "waterline-plan: " << rec->target << ": " << rec->why << "\n";
      return 1;
    }
    if (*rec->units < 1) {
      err << "waterline-plan: " << rec->target << " recommends 0 units (no reservation): " << rec->why << "\n";
      return 1;
    }
    const std::string ns = c.deployment.substr(0, c.deployment.find('/'));
    const std::string name = c.deployment.substr(c.deployment.find('/') + 1);
    const Scope scope = *parseScope(c.scope);
    out << "# waterline-plan " << rec->target << ": " << rec->why << "\n"
        << "apiVersion: waterline.dev/v1alpha1\n"
        << "kind: PTUReservation\n"
        << "metadata:\n"
        << "  name: " << name << "-ptu\n"
        << "  namespace: " << ns << "\n"
        << "spec:\n"
        << "  deploymentRef:\n"
        << "    name: " << name << "\n"
        << "  units: " << *rec->units << "\n"
        << "  tokensPerMinutePerUnit: " << c.unitsPerMinute << "\n"
        << "  burstPercent: " << c.burstPercent << "\n"
        << "  scope:\n"
        << "    type: " << scope.type << "\n";
    if (!scope.key.empty()) out << "    " << scope.key << ": " << scope.value << "\n";
    return 0;
  }

  char line[256];
  out << "series: " << plan->minutes << " minutes, peak " << fmt("%.0f", plan->peak)
      << " weighted tokens/min; all pay-as-you-go: " << fmt("%.4f", plan->allPaygCostPerHour) << "/h\n";
  out << "reservation: " << c.unitsPerMinute << " tokens/min per unit, burst " << c.burstPercent << "%, "
      << (c.spillover ? "spillover" : "no spillover (429)") << "\n\n";
  std::snprintf(line, sizeof line, "%7s %8s %9s %11s %9s %13s %12s %12s %12s\n", "units", "served%", "spilled%",
                "throttled%", "covered%", "utilisation%", "reserved/h", "payg/h", "total/h");
  out << line;
  for (const auto& r : plan->rows) {
    std::snprintf(line, sizeof line, "%7lld %8.2f %9.2f %11.2f %9.2f %13.2f %12.4f %12.4f %12.4f\n",
                  static_cast<long long>(r.units), r.servedShare() * 100, r.spilledShare() * 100,
                  r.throttledShare() * 100, r.coveredShare(plan->minutes) * 100, r.utilization * 100,
                  r.reservedCostPerHour, r.paygCostPerHour, r.totalCostPerHour);
    out << line;
  }
  out << "\nrecommendations:\n";
  for (const auto& rec : plan->recommendations)
    out << "  " << rec.target << ": " << (rec.units ? std::to_string(*rec.units) + " units" : std::string("none"))
        << " (" << rec.why << ")\n";
  out << "\nthe planner models each minute as one window of the router's limiter; its error against the routing "
         "simulation is not measured yet (docs/waterline.md)\n";
  return 0;
}

int main(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  auto c = parsePlanConfig(args);
  if (!c) {
    if (c.error().code == 0) out << c.error().text;
    else err << "waterline-plan: " << c.error().text << "\n";
    return c.error().code;
  }
  return run(*c, out, err);
}

}  // namespace waterline::plan
