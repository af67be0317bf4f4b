#include "waterline/scheduling/annotation.h"

#include <algorithm>
#include <charconv>
#include <vector>

namespace waterline::scheduling {

namespace {

bool validName(std::string_view s) {
  if (s.empty() || s.size() > 253) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '.' || c == '_';
  });
}

bool validKeyName(std::string_view s) {  // deployment keys may carry a namespace
  if (s.empty() || s.size() > 512) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return c != ';' && c != '=' && c != ':' && c != ',' && static_cast<unsigned char>(c) > ' ';
  });
}

bool validProfile(std::string_view s) {
  if (s.empty() || s.size() > 32) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '+';
  });
}

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  std::size_t start = 0;
  while (true) {
    std::size_t p = s.find(sep, start);
    if (p == std::string_view::npos) {
      out.push_back(s.substr(start));
      return out;
    }
    out.push_back(s.substr(start, p - start));
    start = p + 1;
  }
}

template <typename T>
bool toNumber(std::string_view s, T& out) {
  if (s.empty() || s.size() > 18) return false;
  if (s.size() > 1 && s[0] == '0') return false;  // canonical form only
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size() && out >= 0;
}

std::string joinInts(const std::vector<int>& v) {
  std::string s;
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (i) s += ',';
    s += std::to_string(v[i]);
  }
  return s;
}

std::expected<std::vector<int>, std::string> parseIndexList(std::string_view s) {
  std::vector<int> out;
  for (std::string_view part : split(s, ',')) {
    int v = 0;
    if (!toNumber(part, v) || v > 63) return std::unexpected("bad GPU index '" + std::string(part) + "'");
    out.push_back(v);
  }
  for (std::size_t i = 1; i < out.size(); ++i) {
    if (out[i] <= out[i - 1]) return std::unexpected(std::string("GPU indices must ascend"));
  }
  return out;
}

}  // namespace

std::string encodeAssignment(const Assignment& a) {
  std::string s = "v1;node=" + a.node;
  switch (a.kind) {
    case ShapeKind::Whole:
      s += ";gpus=" + joinInts(a.gpus);
      break;
    case ShapeKind::Mig:
      s += ";gpu=" + std::to_string(a.gpus.empty() ? -1 : a.gpus[0]);
      s += ";mig=" + a.mig_profile + "@" + std::to_string(a.mig_slot);
      break;
    case ShapeKind::Share:
      s += ";gpu=" + std::to_string(a.gpus.empty() ? -1 : a.gpus[0]);
      s += ";share=" + joinInts(a.share_slots) + "/" + std::to_string(a.shares_per_gpu);
      if (a.memory_mib > 0) s += ";mem=" + std::to_string(a.memory_mib);
      break;
  }
  return s;
}

std::expected<Assignment, std::string> decodeAssignment(std::string_view s) {
  auto parts = split(s, ';');
  if (parts.empty() || parts[0] != "v1") return std::unexpected(std::string("missing version v1"));
  Assignment a;
  bool has_node = false, has_gpus = false, has_gpu = false, has_mig = false, has_share = false,
       has_mem = false;
  for (std::size_t i = 1; i < parts.size(); ++i) {
    std::string_view kv = parts[i];
    std::size_t eq = kv.find('=');
    if (eq == std::string_view::npos) return std::unexpected("bad field '" + std::string(kv) + "'");
    std::string_view key = kv.substr(0, eq), val = kv.substr(eq + 1);
    if (key == "node" && !has_node) {
      if (!validName(val)) return std::unexpected("bad node name '" + std::string(val) + "'");
      a.node = std::string(val);
      has_node = true;
    } else if (key == "gpus" && !has_gpus) {
      auto l = parseIndexList(val);
      if (!l) return std::unexpected(l.error());
      a.gpus = *l;
      has_gpus = true;
    } else if (key == "gpu" && !has_gpu) {
      int g = 0;
      if (!toNumber(val, g) || g > 63) return std::unexpected("bad gpu '" + std::string(val) + "'");
      a.gpus = {g};
      has_gpu = true;
    } else if (key == "mig" && !has_mig) {
      std::size_t at = val.rfind('@');
      if (at == std::string_view::npos) return std::unexpected(std::string("mig needs profile@slot"));
      std::string_view prof = val.substr(0, at);
      int slot = 0;
      if (!validProfile(prof) || !toNumber(val.substr(at + 1), slot) || slot > 7) {
        return std::unexpected("bad mig '" + std::string(val) + "'");
      }
      a.mig_profile = std::string(prof);
      a.mig_slot = slot;
      has_mig = true;
    } else if (key == "share" && !has_share) {
      std::size_t sl = val.find('/');
      int k = 0;
      if (sl == std::string_view::npos || !toNumber(val.substr(sl + 1), k) || k < 1 || k > 64) {
        return std::unexpected("bad share '" + std::string(val) + "'");
      }
      auto slots = parseIndexList(val.substr(0, sl));
      if (!slots || slots->back() >= k) return std::unexpected("bad share '" + std::string(val) + "'");
      a.share_slots = *slots;
      a.shares_per_gpu = k;
      has_share = true;
    } else if (key == "mem" && !has_mem) {
      std::int64_t m = 0;
      if (!toNumber(val, m) || m == 0) return std::unexpected("bad mem '" + std::string(val) + "'");
      a.memory_mib = m;
      has_mem = true;
    } else {
      return std::unexpected("unknown or repeated field '" + std::string(key) + "'");
    }
  }
  if (!has_node) return std::unexpected(std::string("missing node"));
  if (has_gpus) {
    if (has_gpu || has_mig || has_share || has_mem) return std::unexpected(std::string("mixed fields"));
    a.kind = ShapeKind::Whole;
  } else if (has_gpu && has_mig && !has_share && !has_mem) {
    a.kind = ShapeKind::Mig;
  } else if (has_gpu && has_share && !has_mig) {
    a.kind = ShapeKind::Share;
  } else {
    return std::unexpected(std::string("incomplete assignment"));
  }
  return a;
}

std::string encodeReservation(const ReservationRecord& r) {
  std::string s = "v1;name=" + r.name + ";deployment=" + r.deployment;
  std::vector<GpuRef> gpus = r.gpus;
  std::sort(gpus.begin(), gpus.end());
  for (std::size_t i = 0; i < gpus.size();) {
    std::size_t j = i;
    std::vector<int> idx;
    while (j < gpus.size() && gpus[j].node == gpus[i].node) idx.push_back(gpus[j++].index);
    s += ";at=" + gpus[i].node + ":" + joinInts(idx);
    i = j;
  }
  return s;
}

std::expected<ReservationRecord, std::string> decodeReservation(std::string_view s) {
  auto parts = split(s, ';');
  if (parts.empty() || parts[0] != "v1") return std::unexpected(std::string("missing version v1"));
  ReservationRecord r;
  for (std::size_t i = 1; i < parts.size(); ++i) {
    std::string_view kv = parts[i];
    std::size_t eq = kv.find('=');
    if (eq == std::string_view::npos) return std::unexpected("bad field '" + std::string(kv) + "'");
    std::string_view key = kv.substr(0, eq), val = kv.substr(eq + 1);
    if (key == "name" && r.name.empty()) {
      if (!validName(val)) return std::unexpected(std::string("bad name"));
      r.name = std::string(val);
    } else if (key == "deployment" && r.deployment.empty()) {
      if (!validKeyName(val)) return std::unexpected(std::string("bad deployment"));
      r.deployment = std::string(val);
    } else if (key == "at") {
      std::size_t c = val.find(':');
      if (c == std::string_view::npos || !validName(val.substr(0, c))) {
        return std::unexpected("bad at '" + std::string(val) + "'");
      }
      auto l = parseIndexList(val.substr(c + 1));
      if (!l) return std::unexpected(l.error());
      for (int g : *l) r.gpus.push_back(GpuRef{std::string(val.substr(0, c)), g});
    } else {
      return std::unexpected("unknown or repeated field '" + std::string(key) + "'");
    }
  }
  if (r.name.empty() || r.deployment.empty()) return std::unexpected(std::string("missing name or deployment"));
  std::sort(r.gpus.begin(), r.gpus.end());
  return r;
}

}  // namespace waterline::scheduling
