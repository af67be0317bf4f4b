#pragma once
// Internal JSON decoding/encoding helpers. Decoding records the first error with the
// field's path ("spec.sharing.slicesPerGpu: expected integer, got string").
#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "waterline/api/conditions.h"
#include "waterline/api/meta.h"
#include "waterline/api/quantity.h"
#include "waterline/api/selector.h"

namespace waterline::api::detail {

using json = nlohmann::json;

class Decoder {
 public:
  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }
  void fail(const std::string& path, std::string_view msg) {
    if (error_.empty()) error_ = (path.empty() ? std::string("<root>") : path) + ": " + std::string(msg);
  }

 private:
  std::string error_;
};

inline std::string join(const std::string& path, std::string_view key) {
  return path.empty() ? std::string(key) : path + "." + std::string(key);
}
inline std::string indexed(const std::string& path, size_t i) {
  return path + "[" + std::to_string(i) + "]";
}
inline std::string typeName(const json& v) {
  if (v.is_number_integer()) return "integer";
  if (v.is_number()) return "number";
  return v.type_name();
}
inline void typeError(Decoder& d, const std::string& path, std::string_view want, const json& v) {
  d.fail(path, "expected " + std::string(want) + ", got " + typeName(v));
}

// Enum names: specialise with `static constexpr std::array<std::string_view, N> names`,
// indexed by the enum's value.
template <class E>
struct EnumNames;

template <class E>
std::string_view enumName(E e) {
  auto i = static_cast<size_t>(e);
  return i < EnumNames<E>::names.size() ? EnumNames<E>::names[i] : std::string_view{"?"};
}
template <class E>
std::optional<E> enumParse(std::string_view s) {
  for (size_t i = 0; i < EnumNames<E>::names.size(); ++i)
    if (EnumNames<E>::names[i] == s) return static_cast<E>(i);
  return std::nullopt;
}

// ---- readers: read(d, value, path, out) -> bool ----
inline bool read(Decoder& d, const json& v, const std::string& path, std::string& out) {
  if (!v.is_string()) return typeError(d, path, "string", v), false;
  out = v.get<std::string>();
  return true;
}
inline bool read(Decoder& d, const json& v, const std::string& path, bool& out) {
  if (!v.is_boolean()) return typeError(d, path, "boolean", v), false;
  out = v.get<bool>();
  return true;
}
template <class I>
  requires(std::is_integral_v<I> && !std::is_same_v<I, bool>)
bool read(Decoder& d, const json& v, const std::string& path, I& out) {
  if (v.is_number_unsigned()) {
    auto u = v.get<uint64_t>();
    if (u > static_cast<uint64_t>(std::numeric_limits<I>::max()))
      return d.fail(path, "integer out of range"), false;
    out = static_cast<I>(u);
    return true;
  } else if (v.is_number_integer()) {
    auto i = v.get<int64_t>();
    if (i < static_cast<int64_t>(std::numeric_limits<I>::min()) ||
        i > static_cast<int64_t>(std::numeric_limits<I>::max()))
      return d.fail(path, "integer out of range"), false;
    out = static_cast<I>(i);
    return true;
  } else if (v.is_number_float() && std::trunc(v.get<double>()) == v.get<double>()) {
    long double x = v.get<double>();
    if (x < static_cast<long double>(std::numeric_limits<I>::min()) ||
        x > static_cast<long double>(std::numeric_limits<I>::max()))
      return d.fail(path, "integer out of range"), false;
    out = static_cast<I>(x);
    return true;
  }
  return typeError(d, path, "integer", v), false;
}
inline bool read(Decoder& d, const json& v, const std::string& path, double& out) {
  if (!v.is_number()) return typeError(d, path, "number", v), false;
  out = v.get<double>();
  return true;
}
template <class E>
  requires std::is_enum_v<E>
bool read(Decoder& d, const json& v, const std::string& path, E& out) {
  if (!v.is_string()) return typeError(d, path, "string", v), false;
  auto s = v.get<std::string>();
  if (auto e = enumParse<E>(s)) {
    out = *e;
    return true;
  }
  std::string msg = "unsupported value \"" + s + "\": supported values: ";
  for (size_t i = 0; i < EnumNames<E>::names.size(); ++i) {
    if (i) msg += ", ";
    msg += "\"" + std::string(EnumNames<E>::names[i]) + "\"";
  }
  d.fail(path, msg);
  return false;
}
inline bool read(Decoder& d, const json& v, const std::string& path, SystemTime& out) {
  if (!v.is_string()) return typeError(d, path, "string", v), false;
  auto t = parseTime(v.get_ref<const std::string&>());
  if (!t) return d.fail(path, t.error()), false;
  out = *t;
  return true;
}
inline bool read(Decoder& d, const json& v, const std::string& path, Quantity& out) {
  auto q = Quantity::fromJson(v);
  if (!q) return d.fail(path, q.error()), false;
  out = std::move(*q);
  return true;
}
inline bool read(Decoder& d, const json& v, const std::string& path, IntOrString& out) {
  auto q = IntOrString::fromJson(v);
  if (!q) return d.fail(path, q.error()), false;
  out = std::move(*q);
  return true;
}
inline bool read(Decoder& d, const json& v, const std::string& path, std::map<std::string, std::string>& out) {
  if (!v.is_object()) return typeError(d, path, "object", v), false;
  out.clear();
  for (auto it = v.begin(); it != v.end(); ++it) {
    if (it.value().is_null()) continue;
    std::string s;
    if (!read(d, it.value(), join(path, it.key()), s)) return false;
    out.emplace(it.key(), std::move(s));
  }
  return true;
}
template <class T>
bool read(Decoder& d, const json& v, const std::string& path, std::vector<T>& out) {
  if (!v.is_array()) return typeError(d, path, "array", v), false;
  out.clear();
  out.reserve(v.size());
  for (size_t i = 0; i < v.size(); ++i) {
    T t{};
    if (!read(d, v[i], indexed(path, i), t)) return false;
    out.push_back(std::move(t));
  }
  return true;
}

// Struct readers are defined next to each type as
//   bool read(Decoder&, const json&, const std::string&, T&);
// in this namespace; they are found by argument-dependent lookup through Decoder.
// The shared ones:
bool read(Decoder& d, const json& v, const std::string& path, ObjectMeta& out);
bool read(Decoder& d, const json& v, const std::string& path, OwnerReference& out);
bool read(Decoder& d, const json& v, const std::string& path, Condition& out);
bool read(Decoder& d, const json& v, const std::string& path, LabelSelector& out);
bool read(Decoder& d, const json& v, const std::string& path, LocalObjectReference& out);

inline bool expectObject(Decoder& d, const json& v, const std::string& path) {
  if (v.is_object()) return true;
  typeError(d, path, "object", v);
  return false;
}

// Member access: nullptr when absent or null. Fails when `obj` is not an object.
inline const json* member(Decoder& d, const json& obj, const std::string& path, std::string_view key) {
  if (!obj.is_object()) {
    typeError(d, path, "object", obj);
    return nullptr;
  }
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return nullptr;
  return &*it;
}
// Optional field: leaves `out` (its default) when absent.
template <class T>
void opt(Decoder& d, const json& obj, const std::string& path, std::string_view key, T& out) {
  if (!d.ok()) return;
  if (const json* v = member(d, obj, path, key)) read(d, *v, join(path, key), out);
}
template <class T>
void opt(Decoder& d, const json& obj, const std::string& path, std::string_view key, std::optional<T>& out) {
  if (!d.ok()) return;
  if (const json* v = member(d, obj, path, key)) {
    T t{};
    if (read(d, *v, join(path, key), t)) out = std::move(t);
  }
}
// Required field.
template <class T>
void req(Decoder& d, const json& obj, const std::string& path, std::string_view key, T& out) {
  if (!d.ok()) return;
  const json* v = member(d, obj, path, key);
  if (!v) {
    if (d.ok()) d.fail(join(path, key), "Required value");
    return;
  }
  read(d, *v, join(path, key), out);
}

// ---- encoding helpers ----
inline json toJ(const std::string& s) { return s; }
inline json toJ(bool b) { return b; }
template <class I>
  requires(std::is_integral_v<I> && !std::is_same_v<I, bool>)
json toJ(I i) { return i; }
inline json toJ(double x) { return x; }
template <class E>
  requires std::is_enum_v<E>
json toJ(E e) { return std::string(enumName(e)); }
inline json toJ(SystemTime t) { return formatTime(t); }
inline json toJ(const Quantity& q) { return q.toJson(); }
inline json toJ(const IntOrString& q) { return q.toJson(); }
inline json toJ(const std::map<std::string, std::string>& m) {
  json o = json::object();
  for (const auto& [k, v] : m) o[k] = v;
  return o;
}
// Types with a toJson() member. Struct encoders without one are declared as
// `json toJ(const T&)` in namespace waterline::api (found by argument-dependent lookup).
template <class T>
  requires requires(const T& t) { t.toJson(); }
json toJ(const T& t) { return t.toJson(); }
json toJ(const LocalObjectReference& r);
template <class T>
json toJ(const std::vector<T>& v) {
  json a = json::array();
  for (const auto& x : v) a.push_back(toJ(x));
  return a;
}

// put: always; putOpt: when engaged; putNonEmpty: strings/containers when non-empty.
template <class T>
void put(json& o, std::string_view key, const T& v) { o[std::string(key)] = toJ(v); }
template <class T>
void putOpt(json& o, std::string_view key, const std::optional<T>& v) {
  if (v) o[std::string(key)] = toJ(*v);
}
template <class T>
void putNonEmpty(json& o, std::string_view key, const T& v) {
  if (!v.empty()) o[std::string(key)] = toJ(v);
}


// The top level of a resource: kind check, metadata, spec (required), status.
template <class T>
std::expected<T, std::string> decodeResource(const nlohmann::json& j) {
  Decoder d;
  T r;
  if (!expectObject(d, j, "")) return std::unexpected(d.error());
  if (auto k = j.find("kind"); k != j.end() && k->is_string() && *k != T::kKind)
    return std::unexpected("kind: expected " + std::string(T::kKind) + ", got " + k->template get<std::string>());
  opt(d, j, "", "metadata", r.metadata);
  req(d, j, "", "spec", r.spec);
  opt(d, j, "", "status", r.status);
  if (!d.ok()) return std::unexpected(d.error());
  return r;
}

template <class T>
nlohmann::json encodeResource(const T& r, bool withStatus) {
  nlohmann::json o{{"apiVersion", std::string(kApiVersion)},
                   {"kind", std::string(T::kKind)},
                   {"metadata", r.metadata.toJson()},
                   {"spec", toJson(r.spec)}};
  if (withStatus) o["status"] = toJson(r.status);
  return o;
}

}  // namespace waterline::api::detail
