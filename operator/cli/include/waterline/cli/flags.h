#pragma once
// Command-line flags on CLI11 (docs/flags.md): what the operator and the router share.
//   durations  a number with a unit: ns, us, ms, s, m, h ("15s", "500ms", "1.5m"); "0"
//              alone is zero. A bare number such as "15" is an error naming the flag.
//   sizes      bytes with an optional unit: K, M, G (1000s), Ki, Mi, Gi (1024s).
//   booleans   --flag (true), --flag=true, --flag=false.
// Errors name the flag: "--lease-duration: want a duration with a unit ...".
#include <cstddef>
#include <expected>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "waterline/common/log.h"
#include "waterline/common/time.h"

namespace CLI {
class App;
class Option;
}  // namespace CLI

namespace waterline::cli {

std::expected<Duration, std::string> parseDuration(std::string_view s);
// The shortest exact spelling in the syntax above ("15s", "500ms", "2m", "0").
std::string formatDuration(Duration d);
std::expected<std::size_t, std::string> parseBytes(std::string_view s);
std::string formatBytes(std::size_t b);  // "4Mi", "64Ki", "1000"

// Options whose value is checked (the range is inclusive) and stored into `target`; the
// help shows the type and the default (target's value when added).
struct DurationLimits {
  Duration min = Duration::zero();
  Duration max = Duration::max();
  bool wholeSeconds = false;
};
CLI::Option* addDuration(CLI::App& app, const std::string& name, Duration& target, const std::string& help,
                         DurationLimits limits = {});
CLI::Option* addBytes(CLI::App& app, const std::string& name, std::size_t& target, const std::string& help,
                      std::size_t min = 1);
// --name sets true, --name=true|false (also 1|0) sets either.
CLI::Option* addBool(CLI::App& app, const std::string& name, bool& target, const std::string& help);

// One of `choices` (checked with CLI::IsMember), handed to `set`; `def` is shown as the
// default. Enums are set through it.
CLI::Option* addChoice(CLI::App& app, const std::string& name, const std::vector<std::string>& choices,
                       const std::string& def, std::function<void(const std::string&)> set, const std::string& help);
// --log-level: error, warn (or warning), info, debug.
CLI::Option* addLogLevel(CLI::App& app, log::Level& target);
// --log-format: text (logfmt) or json (one object per line), the same keys (log.h).
CLI::Option* addLogFormat(CLI::App& app, log::Format& target);

// A flag as --help and docs/flags.md show it: "--lease-duration", "15s" ("" when it has
// no default). --help and --version are left out.
struct FlagDoc {
  std::string name, def;
};
std::vector<FlagDoc> describe(const CLI::App& app);

// What main does when parsing stops: print `text` (to stdout when code is 0: --help,
// --version; else to stderr) and exit with `code` (2 for bad flags).
struct Exit {
  int code = 2;
  std::string text;
};

// Parses args (argv[0] excluded) into the options of `app`. Every option takes the last
// of repeated values (as scripts that append an override expect); `-name=value` is read
// as `--name=value` (klog-style `-v=2`). Unknown flags and positional arguments fail.
std::optional<Exit> parse(CLI::App& app, std::vector<std::string> args);

}  // namespace waterline::cli
