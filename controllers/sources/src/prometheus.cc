// The pure parts of the Prometheus client: value and response parsing, URL building,
// query rendering.
#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <limits>

#include <nlohmann/json.hpp>

#include "waterline/sources/prometheus.h"

namespace waterline::sources {

std::string_view toString(PromErrorKind k) {
  switch (k) {
    case PromErrorKind::BadData: return "BadData";
    case PromErrorKind::Timeout: return "Timeout";
    case PromErrorKind::Transport: return "Transport";
    case PromErrorKind::EmptyResult: return "EmptyResult";
    case PromErrorKind::NaN: return "NaN";
  }
  return "Unknown";
}

std::string PromError::toString() const {
  std::string s(sources::toString(kind));
  if (!errorType.empty()) s += ": " + errorType;
  if (!message.empty()) s += ": " + message;
  return s;
}

bool isRetryable(const PromError& e) {
  return e.kind == PromErrorKind::Transport || e.kind == PromErrorKind::Timeout;
}

namespace {

PromError makeError(PromErrorKind kind, std::string errorType, std::string message, int status = 0) {
  PromError e;
  e.kind = kind;
  e.errorType = std::move(errorType);
  e.message = std::move(message);
  e.httpStatus = status;
  return e;
}

std::string snippet(std::string_view body) {
  std::string s(body.substr(0, 200));
  for (char& c : s)
    if (c == '\n' || c == '\r' || c == '\t') c = ' ';
  if (body.size() > 200) s += "...";
  return s;
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

// [<unix seconds number>, "<value string>"]
std::expected<std::pair<double, double>, std::string> parsePoint(const nlohmann::json& p) {
  if (!p.is_array() || p.size() != 2 || !p[0].is_number() || !p[1].is_string())
    return std::unexpected("a sample must be [<timestamp>, \"<value>\"]");
  const auto v = parseSampleValue(p[1].get_ref<const std::string&>());
  if (!v) return std::unexpected("invalid sample value \"" + p[1].get<std::string>() + "\"");
  return std::pair{p[0].get<double>(), *v};
}

}  // namespace

std::optional<double> parseSampleValue(std::string_view s) {
  if (s.empty()) return std::nullopt;
  bool neg = false;
  std::string_view body = s;
  if (body.front() == '+' || body.front() == '-') {
    neg = body.front() == '-';
    body.remove_prefix(1);
  }
  if (iequals(body, "inf") || iequals(body, "infinity"))
    return neg ? -std::numeric_limits<double>::infinity() : std::numeric_limits<double>::infinity();
  if (iequals(body, "nan")) return std::numeric_limits<double>::quiet_NaN();
  if (body.empty() || body.front() == '+' || body.front() == '-') return std::nullopt;
  double v = 0;
  auto [ptr, ec] = std::from_chars(body.data(), body.data() + body.size(), v, std::chars_format::general);
  if (ec == std::errc::result_out_of_range) {
    // from_chars reports overflow/underflow; Prometheus would give ±Inf or 0.
    std::string tmp(body);
    v = std::strtod(tmp.c_str(), nullptr);
  } else if (ec != std::errc() || ptr != body.data() + body.size()) {
    return std::nullopt;
  }
  return neg ? -v : v;
}

PromResultOr parseQueryResponse(int httpStatus, std::string_view body) {
  auto j = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object() || !j.contains("status") || !j["status"].is_string()) {
    const std::string what = "HTTP " + std::to_string(httpStatus) + ": not a Prometheus API answer: " + snippet(body);
    return std::unexpected(makeError(httpStatus >= 500 ? PromErrorKind::Transport : PromErrorKind::BadData, "",
                                     what, httpStatus));
  }
  const std::string status = j["status"].get<std::string>();
  if (status != "success") {
    std::string errorType = j.value("errorType", std::string());
    std::string message = j.value("error", std::string());
    if (message.empty()) message = "HTTP " + std::to_string(httpStatus);
    PromErrorKind kind = PromErrorKind::BadData;
    if (errorType == "timeout") kind = PromErrorKind::Timeout;
    else if (httpStatus >= 500 || errorType == "unavailable" || errorType == "internal" || errorType == "canceled")
      kind = PromErrorKind::Transport;
    return std::unexpected(makeError(kind, std::move(errorType), std::move(message), httpStatus));
  }
  PromResult r;
  if (auto w = j.find("warnings"); w != j.end() && w->is_array())
    for (const auto& x : *w)
      if (x.is_string()) r.warnings.push_back(x.get<std::string>());
  auto data = j.find("data");
  if (data == j.end() || !data->is_object() || !data->contains("resultType") || !(*data)["resultType"].is_string())
    return std::unexpected(makeError(PromErrorKind::BadData, "bad_response", "answer without data.resultType",
                                     httpStatus));
  const std::string type = (*data)["resultType"].get<std::string>();
  const auto& result = (*data)["result"];
  auto bad = [&](std::string msg) {
    return std::unexpected(makeError(PromErrorKind::BadData, "bad_response", std::move(msg), httpStatus));
  };
  if (type == "scalar") {
    auto p = parsePoint(result);
    if (!p) return bad("scalar: " + p.error());
    r.type = PromResultType::Scalar;
    r.samples.push_back(PromSample{{}, p->second, p->first});
    return r;
  }
  if (type == "vector") {
    if (!result.is_array()) return bad("vector: result is not a list");
    r.type = PromResultType::Vector;
    for (const auto& s : result) {
      if (!s.is_object()) return bad("vector: a sample is not an object");
      PromSample out;
      if (auto m = s.find("metric"); m != s.end()) {
        if (!m->is_object()) return bad("vector: metric is not an object");
        for (const auto& [k, v] : m->items())
          if (v.is_string()) out.labels[k] = v.get<std::string>();
      }
      auto v = s.find("value");
      if (v == s.end()) {
        if (s.contains("histogram"))
          return std::unexpected(makeError(PromErrorKind::BadData, "unsupported_result",
                                           "native histogram samples are not supported; aggregate them to a number",
                                           httpStatus));
        return bad("vector: a sample has no value");
      }
      auto p = parsePoint(*v);
      if (!p) return bad("vector: " + p.error());
      out.timestamp = p->first;
      out.value = p->second;
      r.samples.push_back(std::move(out));
    }
    return r;
  }
  return std::unexpected(makeError(PromErrorKind::BadData, "unsupported_result",
                                   "the query returned a " + type +
                                       (type == "matrix" ? " (range vector)" : std::string()) +
                                       "; an instant vector or scalar is needed",
                                   httpStatus));
}

std::expected<double, PromError> totalValue(const PromResult& r) {
  if (r.samples.empty())
    return std::unexpected(makeError(PromErrorKind::EmptyResult, "", "the query returned no sample"));
  double sum = 0;
  for (const auto& s : r.samples) {
    if (!std::isfinite(s.value)) {
      std::string labels;
      for (const auto& [k, v] : s.labels) labels += (labels.empty() ? "" : ",") + k + "=\"" + v + "\"";
      const std::string val = std::isnan(s.value) ? "NaN" : (s.value > 0 ? "+Inf" : "-Inf");
      return std::unexpected(makeError(PromErrorKind::NaN, "",
                                       "the query returned " + val + (labels.empty() ? "" : " for {" + labels + "}")));
    }
    sum += s.value;
  }
  return sum;
}

std::string urlEncode(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size() * 3);
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

std::string buildQueryTarget(std::string_view promql, std::optional<SystemTime> at, Duration timeout) {
  std::string t = "/api/v1/query?query=" + urlEncode(promql);
  if (at) {
    const int64_t ms = std::chrono::duration_cast<std::chrono::milliseconds>(at->time_since_epoch()).count();
    char buf[48];
    const int64_t secs = ms / 1000, frac = ms % 1000;
    if (ms >= 0) std::snprintf(buf, sizeof buf, "%lld.%03lld", (long long)secs, (long long)frac);
    else std::snprintf(buf, sizeof buf, "%.3f", double(ms) / 1000.0);
    t += "&time=" + urlEncode(buf);
  }
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(timeout).count();
  if (ms > 0) t += "&timeout=" + std::to_string(ms) + "ms";
  return t;
}

namespace {
std::string unixSecondsParam(SystemTime t) {
  const int64_t ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
  char buf[48];
  if (ms >= 0) std::snprintf(buf, sizeof buf, "%lld.%03lld", (long long)(ms / 1000), (long long)(ms % 1000));
  else std::snprintf(buf, sizeof buf, "%.3f", double(ms) / 1000.0);
  return urlEncode(buf);
}
}  // namespace

std::string buildRangeQueryTarget(std::string_view promql, SystemTime start, SystemTime end, Duration step,
                                  Duration timeout) {
  const int64_t stepS = std::max<int64_t>(1, std::chrono::duration_cast<std::chrono::seconds>(step).count());
  std::string t = "/api/v1/query_range?query=" + urlEncode(promql) + "&start=" + unixSecondsParam(start) +
                  "&end=" + unixSecondsParam(end) + "&step=" + std::to_string(stepS);
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(timeout).count();
  if (ms > 0) t += "&timeout=" + std::to_string(ms) + "ms";
  return t;
}

std::expected<std::vector<PromSeries>, PromError> parseRangeResponse(int httpStatus, std::string_view body) {
  auto j = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  const bool matrix = !j.is_discarded() && j.is_object() && j.value("status", std::string()) == "success" &&
                      j.contains("data") && j["data"].is_object() && j["data"].value("resultType", std::string()) == "matrix";
  if (!matrix) {
    auto r = parseQueryResponse(httpStatus, body);
    if (!r) return std::unexpected(r.error());
    return std::unexpected(makeError(PromErrorKind::BadData, "unsupported_result",
                                     "a range query must return a matrix", httpStatus));
  }
  auto bad = [&](std::string msg) {
    return std::unexpected(makeError(PromErrorKind::BadData, "bad_response", "matrix: " + std::move(msg), httpStatus));
  };
  const auto& result = j["data"]["result"];
  if (!result.is_array()) return bad("result is not a list");
  std::vector<PromSeries> out;
  for (const auto& s : result) {
    if (!s.is_object()) return bad("a series is not an object");
    PromSeries ser;
    if (auto m = s.find("metric"); m != s.end()) {
      if (!m->is_object()) return bad("metric is not an object");
      for (const auto& [k, v] : m->items())
        if (v.is_string()) ser.labels[k] = v.get<std::string>();
    }
    auto vs = s.find("values");
    if (vs == s.end() || !vs->is_array()) {
      if (s.contains("histograms"))
        return std::unexpected(makeError(PromErrorKind::BadData, "unsupported_result",
                                         "native histogram samples are not supported; aggregate them to a number",
                                         httpStatus));
      return bad("a series has no values");
    }
    for (const auto& v : *vs) {
      auto p = parsePoint(v);
      if (!p) return bad(p.error());
      ser.points.push_back({p->first, p->second});
    }
    out.push_back(std::move(ser));
  }
  return out;
}

// ------------------------------------------------------------------------------------
// renderQuery

namespace {

std::string quoteRegexMeta(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (std::string_view(R"(\.+*?()|[]{}^$)").find(c) != std::string_view::npos) out += '\\';
    out += c;
  }
  return out;
}

std::string escapeForString(std::string_view v, char quote) {
  std::string out;
  for (unsigned char c : v) {
    switch (c) {
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c == static_cast<unsigned char>(quote)) {
          out += '\\';
          out += static_cast<char>(c);
        } else if (c < 0x20 || c == 0x7f) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\x%02x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out;
}

// Whether the text before position `quotePos` (skipping blanks) ends with =~ or !~.
bool opensRegexMatcher(std::string_view tmpl, size_t quotePos) {
  size_t i = quotePos;
  while (i > 0 && (tmpl[i - 1] == ' ' || tmpl[i - 1] == '\t' || tmpl[i - 1] == '\n' || tmpl[i - 1] == '\r')) --i;
  return i >= 2 && tmpl[i - 1] == '~' && (tmpl[i - 2] == '=' || tmpl[i - 2] == '!');
}

}  // namespace

std::expected<std::string, std::string> renderQuery(std::string_view tmpl, const QueryVars& vars) {
  const std::pair<std::string_view, const std::string*> placeholders[] = {
      {"{{deployment}}", &vars.deployment}, {"{{namespace}}", &vars.ns}, {"{{pool}}", &vars.pool}};
  std::string out;
  out.reserve(tmpl.size() + 64);
  char quote = 0;  // 0: outside any string; else the open quote character
  bool regex = false;
  for (size_t i = 0; i < tmpl.size();) {
    bool replaced = false;
    for (const auto& [ph, value] : placeholders) {
      if (tmpl.compare(i, ph.size(), ph) != 0) continue;
      const std::string_view name = ph.substr(2, ph.size() - 4);
      std::string v = regex ? quoteRegexMeta(*value) : *value;
      if (quote == 0) {
        const bool safe = std::all_of(value->begin(), value->end(), [](unsigned char c) {
          return std::isalnum(c) || c == '_' || c == ':';
        });
        if (!safe)
          return std::unexpected("{{" + std::string(name) + "}} is outside a string and its value \"" + *value +
                                 "\" is not a plain identifier; put the placeholder inside quotes");
        out += *value;
      } else if (quote == '`') {
        if (v.find('`') != std::string::npos)
          return std::unexpected("{{" + std::string(name) + "}} is inside a `raw string` and its value contains a backtick");
        out += v;
      } else {
        out += escapeForString(v, quote);
      }
      i += ph.size();
      replaced = true;
      break;
    }
    if (replaced) continue;
    const char c = tmpl[i];
    if (quote == 0) {
      if (c == '"' || c == '\'' || c == '`') {
        quote = c;
        regex = opensRegexMatcher(tmpl, i);
      } else if (c == '#') {  // a comment runs to the end of the line
        const size_t nl = tmpl.find('\n', i);
        const size_t end = nl == std::string_view::npos ? tmpl.size() : nl;
        out.append(tmpl.substr(i, end - i));
        i = end;
        continue;
      }
      out += c;
      ++i;
      continue;
    }
    if (c == '\\' && quote != '`' && i + 1 < tmpl.size()) {  // an escape: keep both characters
      out += c;
      out += tmpl[i + 1];
      i += 2;
      continue;
    }
    if (c == quote) {
      quote = 0;
      regex = false;
    }
    out += c;
    ++i;
  }
  if (quote != 0) return std::unexpected(std::string("the query template has an unterminated ") + quote + " string");
  return out;
}

}  // namespace waterline::sources
