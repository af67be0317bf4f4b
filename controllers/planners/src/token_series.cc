#include "waterline/planners/token_series.h"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "waterline/api/meta.h"

#include "sfmt.h"

namespace waterline::planners {

using detail::sfmt;

namespace {

// A series longer than this (400 days) is refused: gaps are materialised as zero minutes.
constexpr int64_t kMaxMinutes = 400LL * 24 * 60;

int64_t floorDiv(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

std::expected<double, std::string> parseNumber(std::string_view s, std::string_view what) {
  s = trim(s);
  double v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || p != s.data() + s.size() || !std::isfinite(v))
    return std::unexpected(sfmt("%.*s '%.*s' is not a number", int(what.size()), what.data(), int(s.size()), s.data()));
  return v;
}

std::expected<double, std::string> parseTokens(std::string_view s, std::string_view what) {
  auto v = parseNumber(s, what);
  if (!v) return v;
  if (*v < 0) return std::unexpected(sfmt("%.*s %g is negative", int(what.size()), what.data(), *v));
  return v;
}

std::expected<int64_t, std::string> unixSecondsOf(double v) {
  if (!(v >= 0 && v < 7'258'118'400.0)) return std::unexpected(sfmt("timestamp %g is out of range", v));
  return static_cast<int64_t>(std::floor(v));
}

std::expected<int64_t, std::string> parseTimestamp(std::string_view s) {
  s = trim(s);
  if (!s.empty() && (std::isdigit(static_cast<unsigned char>(s.front())) != 0) &&
      s.find_first_of("-T:Zz") == std::string_view::npos) {
    auto v = parseNumber(s, "timestamp");
    if (!v) return std::unexpected(v.error());
    return unixSecondsOf(*v);
  }
  auto t = api::parseTime(s);
  if (!t) return std::unexpected(sfmt("timestamp '%.*s': %s", int(s.size()), s.data(), t.error().c_str()));
  return std::chrono::floor<std::chrono::seconds>(t->time_since_epoch()).count();
}

template <typename F>
std::expected<TokenSeries, std::string> eachLine(std::string_view text, F&& f) {
  std::vector<TokenPoint> pts;
  size_t lineNo = 0;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
    ++lineNo;
    line = trim(line);
    if (line.empty() || line.front() == '#') continue;
    auto r = f(line, lineNo, pts);
    if (!r) return std::unexpected("line " + std::to_string(lineNo) + ": " + r.error());
  }
  if (!pts.empty()) {
    auto [lo, hi] = std::minmax_element(pts.begin(), pts.end(),
                                        [](const auto& a, const auto& b) { return a.unixSeconds < b.unixSeconds; });
    if (floorDiv(hi->unixSeconds, 60) - floorDiv(lo->unixSeconds, 60) >= kMaxMinutes)
      return std::unexpected(sfmt("the series spans more than %lld days", static_cast<long long>(kMaxMinutes / 1440)));
  }
  return bucketPoints(std::move(pts));
}

}  // namespace

TokenSeries bucketPoints(std::vector<TokenPoint> points) {
  TokenSeries s;
  if (points.empty()) return s;
  std::stable_sort(points.begin(), points.end(),
                   [](const TokenPoint& a, const TokenPoint& b) { return a.unixSeconds < b.unixSeconds; });
  s.startUnixMinute = floorDiv(points.front().unixSeconds, 60);
  const int64_t last = floorDiv(points.back().unixSeconds, 60);
  s.minutes.assign(static_cast<size_t>(last - s.startUnixMinute + 1), TokenMinute{});
  for (const auto& p : points) {
    auto& m = s.minutes[static_cast<size_t>(floorDiv(p.unixSeconds, 60) - s.startUnixMinute)];
    m.inputTokens += p.inputTokens;
    m.outputTokens += p.outputTokens;
  }
  return s;
}

std::expected<TokenSeries, std::string> parseTokenSeries(std::string_view text, SeriesFormat format) {
  if (format == SeriesFormat::Csv) {
    bool first = true;
    return eachLine(text, [&](std::string_view line, size_t, std::vector<TokenPoint>& pts)
                              -> std::expected<void, std::string> {
      const bool wasFirst = first;
      first = false;
      std::vector<std::string_view> f;
      size_t pos = 0;
      while (true) {
        size_t c = line.find(',', pos);
        f.push_back(line.substr(pos, c == std::string_view::npos ? std::string_view::npos : c - pos));
        if (c == std::string_view::npos) break;
        pos = c + 1;
      }
      if (wasFirst && trim(f[0]).starts_with("timestamp")) return {};  // header
      if (f.size() != 3)
        return std::unexpected(sfmt("want 3 fields (timestamp,input_tokens,output_tokens), got %zu", f.size()));
      auto ts = parseTimestamp(f[0]);
      if (!ts) return std::unexpected(ts.error());
      auto in = parseTokens(f[1], "input_tokens");
      if (!in) return std::unexpected(in.error());
      auto out = parseTokens(f[2], "output_tokens");
      if (!out) return std::unexpected(out.error());
      pts.push_back({*ts, *in, *out});
      return {};
    });
  }
  return eachLine(text, [](std::string_view line, size_t, std::vector<TokenPoint>& pts)
                            -> std::expected<void, std::string> {
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object()) return std::unexpected("not a JSON object");
    TokenPoint p;
    auto ts = j.find("timestamp");
    if (ts == j.end()) return std::unexpected("no timestamp");
    if (ts->is_string()) {
      auto v = parseTimestamp(ts->get<std::string>());
      if (!v) return std::unexpected(v.error());
      p.unixSeconds = *v;
    } else if (ts->is_number()) {
      auto v = unixSecondsOf(ts->get<double>());
      if (!v) return std::unexpected(v.error());
      p.unixSeconds = *v;
    } else {
      return std::unexpected("timestamp is neither a string nor a number");
    }
    for (auto [key, dst] : {std::pair{"input_tokens", &p.inputTokens}, std::pair{"output_tokens", &p.outputTokens}}) {
      auto it = j.find(key);
      if (it == j.end() || !it->is_number()) return std::unexpected(sfmt("%s missing or not a number", key));
      double v = it->get<double>();
      if (!std::isfinite(v) || v < 0) return std::unexpected(sfmt("%s %g is negative or not finite", key, v));
      *dst = v;
    }
    pts.push_back(p);
    return {};
  });
}

TokenSeries seriesFromIncreases(const std::vector<CounterStep>& input, const std::vector<CounterStep>& output) {
  std::vector<TokenPoint> pts;
  pts.reserve(input.size() + output.size());
  auto add = [&](const std::vector<CounterStep>& steps, bool isInput) {
    for (const auto& st : steps) {
      if (!std::isfinite(st.unixSeconds) || st.unixSeconds < 60 || st.unixSeconds > 7'258'118'400.0) continue;
      const double v = std::isfinite(st.value) && st.value > 0 ? st.value : 0.0;
      const int64_t t = static_cast<int64_t>(std::floor(st.unixSeconds)) - 60;
      pts.push_back({t, isInput ? v : 0.0, isInput ? 0.0 : v});
    }
  };
  add(input, true);
  add(output, false);
  return bucketPoints(std::move(pts));
}

std::expected<TokenSeries, std::string> parseMooncakeTrace(std::string_view text, int64_t startUnixSeconds) {
  return eachLine(text, [&](std::string_view line, size_t, std::vector<TokenPoint>& pts)
                            -> std::expected<void, std::string> {
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object()) return std::unexpected("not a JSON object");
    auto ts = j.find("timestamp");
    auto in = j.find("input_length");
    auto out = j.find("output_length");
    if (ts == j.end() || !ts->is_number() || in == j.end() || !in->is_number() || out == j.end() || !out->is_number())
      return std::unexpected("want numeric timestamp (ms), input_length, output_length");
    const double ms = ts->get<double>();
    if (!(ms >= 0 && ms < 1e13)) return std::unexpected(sfmt("timestamp %g ms out of range", ms));
    const double i = in->get<double>(), o = out->get<double>();
    if (!(i >= 0) || !(o >= 0)) return std::unexpected("negative length");
    pts.push_back({startUnixSeconds + static_cast<int64_t>(std::floor(ms / 1000.0)), i, o});
    return {};
  });
}

}  // namespace waterline::planners
