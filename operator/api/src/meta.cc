#include "waterline/api/meta.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>

#include "codec.h"

namespace waterline::api {

namespace {
bool digits(std::string_view s, size_t pos, size_t n, int& out) {
  if (pos + n > s.size()) return false;
  int v = 0;
  for (size_t i = pos; i < pos + n; ++i) {
    if (!std::isdigit(static_cast<unsigned char>(s[i]))) return false;
    v = v * 10 + (s[i] - '0');
  }
  out = v;
  return true;
}
}  // namespace

std::expected<SystemTime, std::string> parseTime(std::string_view s) {
  using namespace std::chrono;
  auto bad = [&](const char* why) {
    return std::unexpected("invalid date-time \"" + std::string(s) + "\" (" + why + "), want RFC 3339 such as 2025-01-01T00:00:00Z");
  };
  int Y, M, D, h, m, sec;
  if (!digits(s, 0, 4, Y) || s.size() < 19 || s[4] != '-' || !digits(s, 5, 2, M) || s[7] != '-' ||
      !digits(s, 8, 2, D) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') || !digits(s, 11, 2, h) ||
      s[13] != ':' || !digits(s, 14, 2, m) || s[16] != ':' || !digits(s, 17, 2, sec))
    return bad("layout");
  year_month_day ymd{year{Y}, month{static_cast<unsigned>(M)}, day{static_cast<unsigned>(D)}};
  if (!ymd.ok()) return bad("no such date");
  if (h > 23 || m > 59 || sec > 60) return bad("time out of range");
  size_t pos = 19;
  nanoseconds frac{0};
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    size_t start = pos;
    int64_t ns = 0;
    int nd = 0;
    while (pos < s.size() && std::isdigit(static_cast<unsigned char>(s[pos]))) {
      if (nd < 9) {
        ns = ns * 10 + (s[pos] - '0');
        ++nd;
      }
      ++pos;
    }
    if (pos == start) return bad("empty fraction");
    for (; nd < 9; ++nd) ns *= 10;
    frac = nanoseconds{ns};
  }
  if (pos >= s.size()) return bad("missing zone offset");
  minutes offset{0};
  if (s[pos] == 'Z' || s[pos] == 'z') {
    ++pos;
  } else if (s[pos] == '+' || s[pos] == '-') {
    int oh, om;
    if (!digits(s, pos + 1, 2, oh) || pos + 3 >= s.size() || s[pos + 3] != ':' || !digits(s, pos + 4, 2, om) ||
        oh > 23 || om > 59)
      return bad("zone offset");
    offset = minutes{(s[pos] == '-' ? -1 : 1) * (oh * 60 + om)};
    pos += 6;
  } else {
    return bad("zone offset");
  }
  if (pos != s.size()) return bad("trailing characters");
  // Whole seconds first (int64 seconds hold any four-digit year), then the window
  // SystemTime (int64 nanoseconds, 1677-2262) can take with room for arithmetic: a sum of
  // nanoseconds overflowed past 2262, so "9999-12-31T23:59:59Z" came out in 1816.
  const sys_seconds whole = sys_days{ymd} + hours{h} + minutes{m} + seconds{sec} - offset;
  if (whole.time_since_epoch() < kEarliestTime.time_since_epoch()) return SystemTime{kEarliestTime};
  if (whole.time_since_epoch() >= kLatestTime.time_since_epoch()) return SystemTime{kLatestTime};
  return SystemTime{duration_cast<SystemTime::duration>(whole.time_since_epoch()) + frac};
}

std::string formatTime(SystemTime t) {
  using namespace std::chrono;
  auto secs = floor<seconds>(t);
  auto dp = floor<days>(secs);
  year_month_day ymd{dp};
  hh_mm_ss hms{secs - dp};
  char buf[32];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02d:%02d:%02dZ", static_cast<int>(ymd.year()),
                static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                static_cast<int>(hms.hours().count()), static_cast<int>(hms.minutes().count()),
                static_cast<int>(hms.seconds().count()));
  return buf;
}

bool ObjectMeta::hasFinalizer(std::string_view f) const {
  return std::find(finalizers.begin(), finalizers.end(), f) != finalizers.end();
}

const OwnerReference* ObjectMeta::controllerRef() const {
  for (const auto& r : ownerReferences)
    if (r.controller) return &r;
  return nullptr;
}

std::string ObjectMeta::key() const { return namespace_.empty() ? name : namespace_ + "/" + name; }

namespace detail {

bool read(Decoder& d, const json& v, const std::string& path, OwnerReference& out) {
  if (!expectObject(d, v, path)) return false;
  req(d, v, path, "apiVersion", out.apiVersion);
  req(d, v, path, "kind", out.kind);
  req(d, v, path, "name", out.name);
  req(d, v, path, "uid", out.uid);
  opt(d, v, path, "controller", out.controller);
  opt(d, v, path, "blockOwnerDeletion", out.blockOwnerDeletion);
  return d.ok();
}

bool read(Decoder& d, const json& v, const std::string& path, ObjectMeta& out) {
  if (!expectObject(d, v, path)) return false;
  opt(d, v, path, "name", out.name);
  opt(d, v, path, "generateName", out.generateName);
  opt(d, v, path, "namespace", out.namespace_);
  opt(d, v, path, "uid", out.uid);
  opt(d, v, path, "resourceVersion", out.resourceVersion);
  opt(d, v, path, "generation", out.generation);
  opt(d, v, path, "labels", out.labels);
  opt(d, v, path, "annotations", out.annotations);
  opt(d, v, path, "ownerReferences", out.ownerReferences);
  opt(d, v, path, "finalizers", out.finalizers);
  opt(d, v, path, "creationTimestamp", out.creationTimestamp);
  opt(d, v, path, "deletionTimestamp", out.deletionTimestamp);
  return d.ok();
}

bool read(Decoder& d, const json& v, const std::string& path, LocalObjectReference& out) {
  if (!expectObject(d, v, path)) return false;
  req(d, v, path, "name", out.name);
  return d.ok();
}

json toJ(const LocalObjectReference& r) { return json{{"name", r.name}}; }

}  // namespace detail

std::expected<OwnerReference, std::string> OwnerReference::fromJson(const nlohmann::json& j) {
  detail::Decoder d;
  OwnerReference r;
  if (!read(d, j, "", r)) return std::unexpected(d.error());
  return r;
}

nlohmann::json OwnerReference::toJson() const {
  nlohmann::json o{{"apiVersion", apiVersion}, {"kind", kind}, {"name", name}, {"uid", uid}};
  if (controller) o["controller"] = true;
  if (blockOwnerDeletion) o["blockOwnerDeletion"] = true;
  return o;
}

std::expected<ObjectMeta, std::string> ObjectMeta::fromJson(const nlohmann::json& j) {
  detail::Decoder d;
  ObjectMeta m;
  if (!read(d, j, "metadata", m)) return std::unexpected(d.error());
  return m;
}

nlohmann::json ObjectMeta::toJson() const {
  using namespace detail;
  json o = json::object();
  putNonEmpty(o, "name", name);
  putNonEmpty(o, "generateName", generateName);
  putNonEmpty(o, "namespace", namespace_);
  putNonEmpty(o, "uid", uid);
  putNonEmpty(o, "resourceVersion", resourceVersion);
  if (generation != 0) o["generation"] = generation;
  putNonEmpty(o, "labels", labels);
  putNonEmpty(o, "annotations", annotations);
  putNonEmpty(o, "ownerReferences", ownerReferences);
  putNonEmpty(o, "finalizers", finalizers);
  putOpt(o, "creationTimestamp", creationTimestamp);
  putOpt(o, "deletionTimestamp", deletionTimestamp);
  return o;
}

}  // namespace waterline::api
