#include "waterline/cli/flags.h"

#include <CLI/CLI.hpp>

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <utility>

namespace waterline::cli {

namespace {

struct Unit {
  std::string_view name;
  std::int64_t ns;
};
// Longest spelling first where one is a suffix of another ("ms" before "s").
constexpr std::array<Unit, 7> kDurationUnits = {{{"ns", 1},
                                                 {"us", 1'000},
                                                 {"µs", 1'000},
                                                 {"ms", 1'000'000},
                                                 {"s", 1'000'000'000},
                                                 {"m", 60'000'000'000},
                                                 {"h", 3'600'000'000'000}}};

std::string inQuotes(std::string_view s) { return "\"" + std::string(s) + "\""; }

}  // namespace

std::expected<Duration, std::string> parseDuration(std::string_view s) {
  const std::string want = "want a duration with a unit (ns, us, ms, s, m, h), e.g. 15s or 500ms; got " + inQuotes(s);
  if (s == "0") return Duration::zero();
  std::size_t i = 0;
  while (i < s.size() && (std::isdigit(static_cast<unsigned char>(s[i])) || s[i] == '.')) ++i;
  const std::string_view num = s.substr(0, i), unit = s.substr(i);
  if (num.empty() || num.front() == '.' || num.back() == '.' || std::count(num.begin(), num.end(), '.') > 1)
    return std::unexpected(want);
  if (unit.empty())
    return std::unexpected("want a duration with a unit (ns, us, ms, s, m, h), e.g. " + std::string(num) +
                           "s; got the bare number " + inQuotes(s));
  const auto u = std::find_if(kDurationUnits.begin(), kDurationUnits.end(), [&](const Unit& x) { return x.name == unit; });
  if (u == kDurationUnits.end()) return std::unexpected(want);
  double v = 0;
  auto [p, ec] = std::from_chars(num.data(), num.data() + num.size(), v);
  if (ec != std::errc() || p != num.data() + num.size() || !std::isfinite(v)) return std::unexpected(want);
  const double ns = v * static_cast<double>(u->ns);
  if (ns > 9e18) return std::unexpected("duration " + inQuotes(s) + " is too large");
  return Duration(static_cast<std::int64_t>(std::llround(ns)));
}

std::string formatDuration(Duration d) {
  if (d == Duration::zero()) return "0";
  const std::int64_t ns = d.count();
  for (auto it = kDurationUnits.rbegin(); it != kDurationUnits.rend(); ++it) {
    if (it->name == "µs") continue;
    if (ns % it->ns == 0) return std::to_string(ns / it->ns) + std::string(it->name);
  }
  return std::to_string(ns) + "ns";
}

std::expected<std::size_t, std::string> parseBytes(std::string_view s) {
  static constexpr std::array<std::pair<std::string_view, std::uint64_t>, 7> units = {
      {{"", 1}, {"K", 1000}, {"M", 1000'000}, {"G", 1000'000'000}, {"Ki", 1ull << 10}, {"Mi", 1ull << 20}, {"Gi", 1ull << 30}}};
  const std::string want = "want a size in bytes with an optional unit (K, M, G, Ki, Mi, Gi), e.g. 4Mi; got " + inQuotes(s);
  std::size_t i = 0;
  while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i;
  if (i == 0) return std::unexpected(want);
  std::uint64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + i, v);
  if (ec != std::errc()) return std::unexpected(want);
  const auto u = std::find_if(units.begin(), units.end(), [&](const auto& x) { return x.first == s.substr(i); });
  if (u == units.end()) return std::unexpected(want);
  if (v > 1'000'000'000'000'000ull / u->second) return std::unexpected("size " + inQuotes(s) + " is too large");
  return static_cast<std::size_t>(v * u->second);
}

std::string formatBytes(std::size_t b) {
  if (b != 0 && b % (1ull << 30) == 0) return std::to_string(b >> 30) + "Gi";
  if (b != 0 && b % (1ull << 20) == 0) return std::to_string(b >> 20) + "Mi";
  if (b != 0 && b % (1ull << 10) == 0) return std::to_string(b >> 10) + "Ki";
  return std::to_string(b);
}

CLI::Option* addDuration(CLI::App& app, const std::string& name, Duration& target, const std::string& help,
                         DurationLimits limits) {
  CLI::Validator check(
      [limits](std::string& s) -> std::string {
        auto d = parseDuration(s);
        if (!d) return d.error();
        if (limits.wholeSeconds && *d % std::chrono::seconds(1) != Duration::zero())
          return "want whole seconds, got " + inQuotes(s);
        if (*d < limits.min || *d > limits.max) {
          std::string range = "at least " + formatDuration(limits.min);
          if (limits.max != Duration::max())
            range = limits.min == Duration::zero() ? "at most " + formatDuration(limits.max)
                                                   : "in [" + formatDuration(limits.min) + ", " + formatDuration(limits.max) + "]";
          return "want a duration " + range + ", got " + inQuotes(s);
        }
        return {};
      },
      "", "duration");
  return app
      .add_option_function<std::string>(
          "--" + name, [&target](const std::string& s) { target = *parseDuration(s); }, help)
      ->check(check)
      ->type_name("DURATION")
      ->default_str(formatDuration(target));
}

CLI::Option* addBytes(CLI::App& app, const std::string& name, std::size_t& target, const std::string& help,
                      std::size_t min) {
  CLI::Validator check(
      [min](std::string& s) -> std::string {
        auto b = parseBytes(s);
        if (!b) return b.error();
        if (*b < min) return "want at least " + formatBytes(min) + ", got " + inQuotes(s);
        return {};
      },
      "", "size");
  return app
      .add_option_function<std::string>(
          "--" + name, [&target](const std::string& s) { target = *parseBytes(s); }, help)
      ->check(check)
      ->type_name("SIZE")
      ->default_str(formatBytes(target));
}

CLI::Option* addBool(CLI::App& app, const std::string& name, bool& target, const std::string& help) {
  // A flag (no value needed) whose explicit value must be a boolean; CLI11 alone would
  // also read yes/no/on/off and numbers.
  CLI::Validator check(
      [](std::string& s) -> std::string {
        if (s == "true" || s == "false" || s == "1" || s == "0") return {};
        return "want true or false, got " + inQuotes(s);
      },
      "", "bool");
  return app.add_flag("--" + name, target, help)->check(check)->default_str(target ? "true" : "false");
}

CLI::Option* addChoice(CLI::App& app, const std::string& name, const std::vector<std::string>& choices,
                       const std::string& def, std::function<void(const std::string&)> set, const std::string& help) {
  return app.add_option_function<std::string>("--" + name, std::move(set), help)
      ->check(CLI::IsMember(choices))
      ->default_str(def);
}

CLI::Option* addLogLevel(CLI::App& app, log::Level& target) {
  return addChoice(app, "log-level", {"error", "warn", "warning", "info", "debug"}, log::toString(target),
                   [&target](const std::string& s) { target = *log::parseLevel(s); }, "log level");
}

CLI::Option* addLogFormat(CLI::App& app, log::Format& target) {
  return addChoice(app, "log-format", {"text", "json"}, log::toString(target),
                   [&target](const std::string& s) { target = *log::parseFormat(s); },
                   "log lines: text (logfmt) or json (one object per line, the same keys)");
}

std::vector<FlagDoc> describe(const CLI::App& app) {
  std::vector<FlagDoc> out;
  for (const CLI::Option* o : app.get_options()) {
    const std::string name = o->get_name();
    if (name == "--help" || name == "--version") continue;
    out.push_back({name, o->get_default_str()});
  }
  return out;
}

std::optional<Exit> parse(CLI::App& app, std::vector<std::string> args) {
  for (CLI::Option* o : app.get_options()) o->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  for (auto& a : args)
    if (a.size() > 2 && a[0] == '-' && a[1] != '-' && a.find('=') != std::string::npos) a.insert(0, "-");
  std::reverse(args.begin(), args.end());  // CLI::App::parse takes them last first
  try {
    app.parse(args);
  } catch (const CLI::CallForHelp&) {
    return Exit{0, app.help()};
  } catch (const CLI::CallForVersion& e) {
    return Exit{0, std::string(e.what()) + "\n"};
  } catch (const CLI::ExtrasError&) {
    std::string a = app.remaining().empty() ? "" : app.remaining().front();
    if (a.rfind("-", 0) == 0) {
      a = a.substr(0, a.find('='));
      return Exit{2, "unknown flag " + a + " (see --help)"};
    }
    return Exit{2, "unexpected argument " + inQuotes(a) + " (see --help)"};
  } catch (const CLI::ParseError& e) {
    return Exit{2, std::string(e.what())};
  }
  return std::nullopt;
}

}  // namespace waterline::cli
