#include "waterline/api/keys.h"

#include <cctype>

namespace waterline::api {

std::string gfd::migCountLabel(std::string_view profile) {
  return "nvidia.com/mig-" + std::string(profile) + ".count";
}

std::string gfd::migResource(std::string_view profile) { return "nvidia.com/mig-" + std::string(profile); }

namespace {
bool alnum(char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; }
bool labelChar(char c) { return alnum(c) || c == '-' || c == '_' || c == '.'; }
}  // namespace

bool isReservedKey(std::string_view key) {
  const auto slash = key.find('/');
  if (slash == std::string_view::npos) return false;
  std::string prefix;
  for (char c : key.substr(0, slash)) prefix.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  constexpr std::string_view kDomain = "waterline.dev";
  return prefix == kDomain ||
         (prefix.size() > kDomain.size() && prefix.ends_with(kDomain) && prefix[prefix.size() - kDomain.size() - 1] == '.');
}

bool isValidLabelValue(std::string_view v) {
  if (v.empty()) return true;
  if (v.size() > 63 || !alnum(v.front()) || !alnum(v.back())) return false;
  for (char c : v)
    if (!labelChar(c)) return false;
  return true;
}

std::string modelLabelValue(std::string_view modelName) {
  std::string s;
  s.reserve(modelName.size());
  for (char c : modelName) s.push_back(labelChar(c) ? c : '.');
  if (s.size() > 63) s.resize(63);
  size_t b = 0;
  while (b < s.size() && !alnum(s[b])) ++b;
  size_t e = s.size();
  while (e > b && !alnum(s[e - 1])) --e;
  return s.substr(b, e - b);
}

}  // namespace waterline::api
