#include "yaml_json.h"

#include <algorithm>
#include <regex>
#include <stdexcept>

#include <yaml-cpp/yaml.h>

namespace waterline::testing {

namespace {
nlohmann::json convert(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      return nullptr;
    case YAML::NodeType::Sequence: {
      auto a = nlohmann::json::array();
      for (const auto& x : n) a.push_back(convert(x));
      return a;
    }
    case YAML::NodeType::Map: {
      auto o = nlohmann::json::object();
      for (const auto& kv : n) o[kv.first.as<std::string>()] = convert(kv.second);
      return o;
    }
    case YAML::NodeType::Scalar: {
      const std::string& s = n.Scalar();
      if (n.Tag() == "!") return s;  // quoted
      static const std::regex intRe("^[-+]?[0-9]+$");
      static const std::regex floatRe("^[-+]?(\\.[0-9]+|[0-9]+(\\.[0-9]*)?)([eE][-+]?[0-9]+)?$");
      if (s == "true" || s == "True" || s == "TRUE") return true;
      if (s == "false" || s == "False" || s == "FALSE") return false;
      if (s == "null" || s == "Null" || s == "NULL" || s == "~" || s.empty()) return nullptr;
      if (std::regex_match(s, intRe)) return std::stoll(s);
      if (std::regex_match(s, floatRe)) return std::stod(s);
      return s;
    }
  }
  return nullptr;
}
}  // namespace

std::vector<nlohmann::json> loadYamlFile(const std::filesystem::path& p) {
  std::vector<nlohmann::json> out;
  for (const auto& doc : YAML::LoadAllFromFile(p.string())) {
    if (doc.IsNull()) continue;
    out.push_back(convert(doc));
  }
  return out;
}

nlohmann::json yamlToJson(const std::string& yaml) { return convert(YAML::Load(yaml)); }

std::vector<std::filesystem::path> yamlFiles(const std::filesystem::path& dir) {
  std::vector<std::filesystem::path> out;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (!e.is_regular_file() || e.path().extension() != ".yaml") continue;
    if (e.path().filename() == "kustomization.yaml") continue;
    out.push_back(e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace waterline::testing
