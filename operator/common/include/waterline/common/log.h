#pragma once
// A small leveled, structured logger. One record is one line on stderr, logfmt (the
// default, --log-format=text) or one JSON object (--log-format=json), with the same keys:
//
//   ts=2024-05-01T12:00:00.123456Z level=info logger=workqueue msg="item done" key=ns/a n=3
//   {"ts":"2024-05-01T12:00:00.123456Z","level":"info","logger":"workqueue","msg":"item done","key":"ns/a","n":3}
//
// Levels error < warn < info < debug; the threshold (default info) and a klog-style
// verbosity (--v, default 0, for `v(n, ...)` records, which log at info) are atomics
// settable at runtime. A disabled record costs one relaxed atomic load; use the
// WL_LOG_* macros to also skip evaluating the field expressions.
// Thread-safe: each record is formatted off-lock and written with one write under a
// mutex, so lines never interleave.
//
//   auto log = waterline::log::logger("workqueue");
//   log.info("item done", {{"key", key}, {"attempt", 3}});
//   WL_LOG_DEBUG(log, "expensive", {{"dump", render()}});  // render() only if enabled
#include <atomic>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <variant>
#include <vector>

#include "waterline/common/time.h"

namespace waterline::log {

enum class Level : int { Error = 0, Warn = 1, Info = 2, Debug = 3 };

const char* toString(Level l);
// "error", "warn"/"warning", "info", "debug" (case-insensitive).
std::optional<Level> parseLevel(std::string_view s);

// How a record is written: logfmt (Text) or one JSON object per line (Json).
enum class Format : int { Text = 0, Json = 1 };
const char* toString(Format f);             // "text", "json"
std::optional<Format> parseFormat(std::string_view s);  // "text", "json" (case-insensitive)

// A field value: strings, integers, floating point, bools, durations.
class Value {
 public:
  Value(std::string_view s) : v_(std::string(s)) {}
  Value(const std::string& s) : v_(s) {}
  Value(std::string&& s) : v_(std::move(s)) {}
  Value(const char* s) : v_(std::string(s ? s : "")) {}
  Value(bool b) : v_(b) {}
  template <class T>
    requires(std::is_integral_v<T> && !std::is_same_v<T, bool> && std::is_signed_v<T>)
  Value(T i) : v_(static_cast<std::int64_t>(i)) {}
  template <class T>
    requires(std::is_integral_v<T> && !std::is_same_v<T, bool> && std::is_unsigned_v<T>)
  Value(T u) : v_(static_cast<std::uint64_t>(u)) {}
  Value(double d) : v_(d) {}
  Value(float d) : v_(static_cast<double>(d)) {}
  // Durations print as Go does ("1.5s", "250ms", "0s").
  template <class Rep, class Period>
  Value(std::chrono::duration<Rep, Period> d)
      : v_(DurationNs{std::chrono::duration_cast<std::chrono::nanoseconds>(d).count()}) {}

  // The value as text, unquoted.
  std::string str() const;

  // Calls exactly one of the visitor's overloads with the stored value: std::string, bool,
  // std::int64_t, std::uint64_t, double, or Duration (a duration field).
  template <class F>
  decltype(auto) visit(F&& f) const {
    return std::visit(
        [&f](const auto& x) -> decltype(auto) {
          if constexpr (std::is_same_v<std::decay_t<decltype(x)>, DurationNs>) return f(Duration(x.ns));
          else return f(x);
        },
        v_);
  }

 private:
  struct DurationNs {
    std::int64_t ns;
  };
  std::variant<std::string, bool, std::int64_t, std::uint64_t, double, DurationNs> v_;
};

struct Field {
  std::string key;
  Value value;
};
using Fields = std::vector<Field>;

// Receives each enabled record as one formatted line (without the trailing newline).
using Sink = std::function<void(std::string_view line)>;

// Process-wide configuration.
void setLevel(Level l);
Level level();
void setVerbosity(int v);
int verbosity();
void setFormat(Format f);
Format format();
// Replaces where lines go (default: stderr). An empty Sink restores stderr.
void setSink(Sink sink);
// The clock for `ts` (default RealTimeSource). nullptr restores the real clock.
void setTimeSource(TimeSourcePtr clock);

// True when a record at `l` (and, for info, verbosity `v`) would be written.
inline bool enabled(Level l, int v = 0);

class Logger {
 public:
  Logger() = default;

  // A child whose records carry logger=<parent>/<name>.
  Logger withName(std::string_view name) const;
  // A child whose records carry these fields first.
  Logger withValues(std::initializer_list<Field> fields) const;

  const std::string& name() const { return name_; }

  void error(std::string_view msg, std::initializer_list<Field> fields = {}) const {
    if (enabled(Level::Error)) write(Level::Error, msg, fields);
  }
  void warn(std::string_view msg, std::initializer_list<Field> fields = {}) const {
    if (enabled(Level::Warn)) write(Level::Warn, msg, fields);
  }
  void info(std::string_view msg, std::initializer_list<Field> fields = {}) const {
    if (enabled(Level::Info)) write(Level::Info, msg, fields);
  }
  void debug(std::string_view msg, std::initializer_list<Field> fields = {}) const {
    if (enabled(Level::Debug)) write(Level::Debug, msg, fields);
  }
  // klog's V(v).Info: info, written when verbosity >= v.
  void v(int v, std::string_view msg, std::initializer_list<Field> fields = {}) const {
    if (enabled(Level::Info, v)) write(Level::Info, msg, fields);
  }
  // Formats and writes unconditionally (the level check is the caller's).
  void write(Level l, std::string_view msg, std::initializer_list<Field> fields = {}) const;

 private:
  std::string name_;
  std::shared_ptr<const Fields> values_;
};

// The root logger (no name) and named loggers.
const Logger& root();
Logger logger(std::string_view name);

// Formats one record as written (exposed for tests): ts, level, logger, msg, then the
// logger's values and the record's fields. Values are quoted when needed (empty,
// spaces, '=', '"', '\\', control bytes) with Go-style escapes (\" \\ \n \r \t \xNN);
// UTF-8 passes through. Bad key bytes become '_'.
std::string formatRecord(SystemTime ts, Level l, std::string_view loggerName, std::string_view msg,
                         const Fields* values, std::initializer_list<Field> fields);

// The same record as one JSON object (--log-format=json), keys in the same order: "ts"
// (RFC 3339 string), "level", "logger" (only when named), "msg", then the fields. Integers
// and floating point values are JSON numbers (NaN and infinities, which JSON lacks, are
// the strings "NaN", "+Inf", "-Inf"), booleans are booleans, strings and durations
// ("1.5s", as in logfmt) are strings. Escaping is nlohmann/json's: quotes, backslashes and
// control characters escaped, bytes that are not valid UTF-8 replaced by U+FFFD. A field
// named like one of the record's own keys, or like an earlier field, gets a "_" prefix
// (until unique), so no key is lost or repeated.
std::string formatRecordJson(SystemTime ts, Level l, std::string_view loggerName, std::string_view msg,
                             const Fields* values, std::initializer_list<Field> fields);

namespace detail {
extern std::atomic<int> g_level;
extern std::atomic<int> g_verbosity;
}  // namespace detail

inline bool enabled(Level l, int v) {
  if (static_cast<int>(l) > detail::g_level.load(std::memory_order_relaxed)) return false;
  return v <= 0 || v <= detail::g_verbosity.load(std::memory_order_relaxed);
}

}  // namespace waterline::log

// Skip evaluating the fields when the level is disabled.
#define WL_LOG_AT(logger, lvl, verb, msg, ...)                                   \
  do {                                                                           \
    if (::waterline::log::enabled((lvl), (verb)))                                \
      (logger).write((lvl), (msg) __VA_OPT__(, ) __VA_ARGS__);                   \
  } while (0)
#define WL_LOG_ERROR(logger, msg, ...) WL_LOG_AT(logger, ::waterline::log::Level::Error, 0, msg, __VA_ARGS__)
#define WL_LOG_WARN(logger, msg, ...) WL_LOG_AT(logger, ::waterline::log::Level::Warn, 0, msg, __VA_ARGS__)
#define WL_LOG_INFO(logger, msg, ...) WL_LOG_AT(logger, ::waterline::log::Level::Info, 0, msg, __VA_ARGS__)
#define WL_LOG_DEBUG(logger, msg, ...) WL_LOG_AT(logger, ::waterline::log::Level::Debug, 0, msg, __VA_ARGS__)
#define WL_LOG_V(logger, verb, msg, ...) WL_LOG_AT(logger, ::waterline::log::Level::Info, verb, msg, __VA_ARGS__)
