#include "waterline/common/log.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <mutex>

#include <nlohmann/json.hpp>

namespace waterline::log {

namespace detail {
std::atomic<int> g_level{static_cast<int>(Level::Info)};
std::atomic<int> g_verbosity{0};
}  // namespace detail

namespace {
std::atomic<int> g_format{static_cast<int>(Format::Text)};
}  // namespace

namespace {

struct Output {
  std::mutex mu;
  Sink sink;             // empty: stderr
  TimeSourcePtr clock;   // empty: real time
};

Output& output() {
  static Output* o = new Output();  // never destroyed: usable from static destructors
  return *o;
}

void appendDouble(std::string& out, double d) {
  if (std::isnan(d)) {
    out += "NaN";
    return;
  }
  if (std::isinf(d)) {
    out += d > 0 ? "+Inf" : "-Inf";
    return;
  }
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, d);
  out.append(buf, r.ptr);
}

// Go's time.Duration.String, with "us" for microseconds.
std::string formatDuration(std::int64_t ns) {
  if (ns == 0) return "0s";
  std::string out;
  unsigned long long u;
  if (ns < 0) {
    out += '-';
    u = static_cast<unsigned long long>(-(ns + 1)) + 1;
  } else {
    u = static_cast<unsigned long long>(ns);
  }
  auto frac = [&](unsigned long long v, unsigned long long unit, const char* suffix) {
    std::string s = std::to_string(v / unit);
    unsigned long long rem = v % unit;
    if (rem != 0) {
      std::string f = std::to_string(rem);
      f.insert(0, std::to_string(unit).size() - 1 - f.size(), '0');
      while (!f.empty() && f.back() == '0') f.pop_back();
      s += '.';
      s += f;
    }
    return s + suffix;
  };
  if (u < 1000ULL) return out + std::to_string(u) + "ns";
  if (u < 1000000ULL) return out + frac(u, 1000ULL, "us");
  if (u < 1000000000ULL) return out + frac(u, 1000000ULL, "ms");
  const unsigned long long secNs = 1000000000ULL;
  unsigned long long h = u / (3600 * secNs);
  u -= h * 3600 * secNs;
  unsigned long long m = u / (60 * secNs);
  u -= m * 60 * secNs;
  if (h > 0) out += std::to_string(h) + "h";
  if (h > 0 || m > 0) out += std::to_string(m) + "m";
  return out + frac(u, secNs, "s");
}

bool needsQuoting(std::string_view s) {
  if (s.empty()) return true;
  for (unsigned char c : s) {
    if (c <= 0x20 || c == '=' || c == '"' || c == '\\' || c == 0x7f) return true;
  }
  return false;
}

void appendQuoted(std::string& out, std::string_view s) {
  out += '"';
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20 || c == 0x7f) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\x%02x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  out += '"';
}

void appendValue(std::string& out, std::string_view s) {
  if (needsQuoting(s)) {
    appendQuoted(out, s);
  } else {
    out += s;
  }
}

void appendKey(std::string& out, std::string_view k) {
  if (k.empty()) {
    out += '_';
    return;
  }
  for (unsigned char c : k) {
    out += (c <= 0x20 || c == '=' || c == '"' || c == '\\' || c >= 0x7f) ? '_' : static_cast<char>(c);
  }
}

void appendTimestamp(std::string& out, SystemTime ts) {
  using namespace std::chrono;
  const auto us = duration_cast<microseconds>(ts.time_since_epoch()).count();
  std::int64_t secs = us / 1000000;
  std::int64_t micros = us % 1000000;
  if (micros < 0) {
    micros += 1000000;
    secs -= 1;
  }
  std::time_t t = static_cast<std::time_t>(secs);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%06lldZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<long long>(micros));
  out += buf;
}

void appendField(std::string& out, const Field& f) {
  out += ' ';
  appendKey(out, f.key);
  out += '=';
  appendValue(out, f.value.str());
}

}  // namespace

const char* toString(Level l) {
  switch (l) {
    case Level::Error: return "error";
    case Level::Warn: return "warn";
    case Level::Info: return "info";
    case Level::Debug: return "debug";
  }
  return "unknown";
}

std::optional<Level> parseLevel(std::string_view s) {
  std::string lower;
  for (char c : s) lower += static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  if (lower == "error") return Level::Error;
  if (lower == "warn" || lower == "warning") return Level::Warn;
  if (lower == "info") return Level::Info;
  if (lower == "debug") return Level::Debug;
  return std::nullopt;
}

std::string Value::str() const {
  struct Visitor {
    std::string operator()(const std::string& s) const { return s; }
    std::string operator()(bool b) const { return b ? "true" : "false"; }
    std::string operator()(std::int64_t i) const { return std::to_string(i); }
    std::string operator()(std::uint64_t u) const { return std::to_string(u); }
    std::string operator()(double d) const {
      std::string s;
      appendDouble(s, d);
      return s;
    }
    std::string operator()(DurationNs d) const { return formatDuration(d.ns); }
  };
  return std::visit(Visitor{}, v_);
}

void setLevel(Level l) { detail::g_level.store(static_cast<int>(l), std::memory_order_relaxed); }
Level level() { return static_cast<Level>(detail::g_level.load(std::memory_order_relaxed)); }
void setVerbosity(int v) { detail::g_verbosity.store(v, std::memory_order_relaxed); }
int verbosity() { return detail::g_verbosity.load(std::memory_order_relaxed); }

const char* toString(Format f) { return f == Format::Json ? "json" : "text"; }

std::optional<Format> parseFormat(std::string_view s) {
  std::string lower;
  for (char c : s) lower += static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  if (lower == "text") return Format::Text;
  if (lower == "json") return Format::Json;
  return std::nullopt;
}

void setFormat(Format f) { g_format.store(static_cast<int>(f), std::memory_order_relaxed); }
Format format() { return static_cast<Format>(g_format.load(std::memory_order_relaxed)); }

void setSink(Sink sink) {
  auto& o = output();
  std::lock_guard g(o.mu);
  o.sink = std::move(sink);
}

void setTimeSource(TimeSourcePtr clock) {
  auto& o = output();
  std::lock_guard g(o.mu);
  o.clock = std::move(clock);
}

std::string formatRecord(SystemTime ts, Level l, std::string_view loggerName, std::string_view msg,
                         const Fields* values, std::initializer_list<Field> fields) {
  std::string out;
  out.reserve(128);
  out += "ts=";
  appendTimestamp(out, ts);
  out += " level=";
  out += toString(l);
  if (!loggerName.empty()) {
    out += " logger=";
    appendValue(out, loggerName);
  }
  out += " msg=";
  appendValue(out, msg);
  if (values) {
    for (const auto& f : *values) appendField(out, f);
  }
  for (const auto& f : fields) appendField(out, f);
  return out;
}

std::string formatRecordJson(SystemTime ts, Level l, std::string_view loggerName, std::string_view msg,
                             const Fields* values, std::initializer_list<Field> fields) {
  using ojson = nlohmann::ordered_json;
  ojson rec = ojson::object();
  std::string t;
  appendTimestamp(t, ts);
  rec["ts"] = std::move(t);
  rec["level"] = toString(l);
  if (!loggerName.empty()) rec["logger"] = std::string(loggerName);
  rec["msg"] = std::string(msg);
  auto add = [&rec](const Field& f) {
    std::string key = f.key.empty() ? std::string("_") : f.key;
    while (rec.contains(key)) key.insert(0, 1, '_');
    struct ToJson {
      ojson operator()(const std::string& s) const { return s; }
      ojson operator()(bool b) const { return b; }
      ojson operator()(std::int64_t i) const { return i; }
      ojson operator()(std::uint64_t u) const { return u; }
      ojson operator()(double d) const {
        if (std::isfinite(d)) return d;
        std::string s;
        appendDouble(s, d);
        return s;
      }
      ojson operator()(Duration d) const { return Value(d).str(); }
    };
    rec[std::move(key)] = f.value.visit(ToJson{});
  };
  if (values)
    for (const auto& f : *values) add(f);
  for (const auto& f : fields) add(f);
  // replace: bytes that are not UTF-8 become U+FFFD instead of an exception.
  return rec.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

Logger Logger::withName(std::string_view name) const {
  Logger l = *this;
  if (l.name_.empty()) {
    l.name_ = std::string(name);
  } else if (!name.empty()) {
    l.name_ += '/';
    l.name_ += name;
  }
  return l;
}

Logger Logger::withValues(std::initializer_list<Field> fields) const {
  Logger l = *this;
  auto merged = std::make_shared<Fields>();
  if (values_) *merged = *values_;
  merged->insert(merged->end(), fields.begin(), fields.end());
  l.values_ = std::move(merged);
  return l;
}

void Logger::write(Level l, std::string_view msg, std::initializer_list<Field> fields) const {
  auto& o = output();
  TimeSourcePtr clock;
  {
    std::lock_guard g(o.mu);
    clock = o.clock;
  }
  const SystemTime now = clock ? clock->systemTime() : std::chrono::system_clock::now();
  std::string line = format() == Format::Json ? formatRecordJson(now, l, name_, msg, values_.get(), fields)
                                               : formatRecord(now, l, name_, msg, values_.get(), fields);
  std::lock_guard g(o.mu);
  if (o.sink) {
    o.sink(line);
  } else {
    line += '\n';
    std::fwrite(line.data(), 1, line.size(), stderr);
    std::fflush(stderr);
  }
}

const Logger& root() {
  static const Logger* l = new Logger();
  return *l;
}

Logger logger(std::string_view name) { return root().withName(name); }

}  // namespace waterline::log
