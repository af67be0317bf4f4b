// docs/api.md documents every CRD field, with the CRD's default.
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "yaml_json.h"

namespace waterline::api {
namespace {

using nlohmann::json;
using testing::loadYamlFile;
using testing::sourceDir;

std::string readFile(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The lines of the section that starts with `heading`, up to the next heading or rule.
std::vector<std::string> section(const std::string& doc, const std::string& heading) {
  std::vector<std::string> out;
  std::istringstream in(doc);
  std::string line;
  bool inside = false;
  while (std::getline(in, line)) {
    if (inside && (line.rfind("#", 0) == 0 || line == "---")) break;
    if (line == heading) inside = true;
    else if (inside) out.push_back(line);
  }
  return out;
}

// Cells of a markdown table row ("\|" inside a cell is not a separator).
std::vector<std::string> cells(std::string row) {
  const std::string esc = "\x01";
  for (size_t p; (p = row.find("\\|")) != std::string::npos;) row.replace(p, 2, esc);
  std::vector<std::string> out;
  std::stringstream ss(row);
  std::string c;
  std::getline(ss, c, '|');  // before the first '|'
  while (std::getline(ss, c, '|')) {
    size_t b = c.find_first_not_of(' '), e = c.find_last_not_of(' ');
    out.push_back(b == std::string::npos ? "" : c.substr(b, e - b + 1));
  }
  return out;
}

// Field paths of a schema (lists as "[]"), skipping the children of conditions, which the
// Condition table documents once. With `all` false, also the children of
// spec.template.spec: a core/v1 PodSpec generated from Kubernetes (hack/gen-podtemplate.py),
// documented by Kubernetes; rows for its fields are allowed, not required.
void paths(const json& s, const std::string& path, std::vector<std::pair<std::string, json>>& out, bool all = false) {
  if (!path.empty()) out.emplace_back(path, s);
  if (path.ends_with("conditions")) return;
  if (!all && path == "spec.template.spec") return;
  if (s.contains("properties"))
    for (auto it = s["properties"].begin(); it != s["properties"].end(); ++it)
      paths(it.value(), path + "." + it.key(), out, all);
  if (s.contains("items") && s["items"].contains("properties"))
    for (auto it = s["items"]["properties"].begin(); it != s["items"]["properties"].end(); ++it)
      paths(it.value(), path + "[]." + it.key(), out, all);
}

std::string renderDefault(const json& d) {
  if (d.is_string()) return "`" + d.get<std::string>() + "`";
  return "`" + d.dump() + "`";
}

TEST(Docs, EveryCrdFieldHasARowWithItsDefault) {
  std::string doc = readFile(sourceDir() / "docs" / "api.md");
  ASSERT_FALSE(doc.empty());
  for (const auto& [file, kind] : std::vector<std::pair<std::string, std::string>>{
           {"waterline.dev_capacitypools.yaml", "CapacityPool"},
           {"waterline.dev_modeldeployments.yaml", "ModelDeployment"},
           {"waterline.dev_ptureservations.yaml", "PTUReservation"}}) {
    json schema = loadYamlFile(sourceDir() / "crds" / file).at(0)["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
    for (const std::string part : {"spec", "status"}) {
      auto lines = section(doc, "### " + kind + " " + part);
      ASSERT_FALSE(lines.empty()) << "no section '### " << kind << " " << part << "'";
      std::vector<std::pair<std::string, json>> ps, every;
      paths(schema["properties"][part], part, ps);
      ps.erase(ps.begin());  // the root
      paths(schema["properties"][part], part, every, /*all=*/true);
      for (const auto& [p, s] : ps) {
        SCOPED_TRACE(kind + " " + p);
        std::vector<std::string> row;
        for (const auto& l : lines) {
          auto c = cells(l);
          if (!c.empty() && c[0] == "`" + p + "`") {
            row = c;
            break;
          }
        }
        ASSERT_GE(row.size(), 5u) << "no table row for `" << p << "` in docs/api.md";
        if (s.contains("default"))
          EXPECT_EQ(row[2], renderDefault(s["default"]));
        else
          EXPECT_EQ(row[2], "—");
      }
      // And no row documents a field the CRD does not have.
      for (const auto& l : lines) {
        auto c = cells(l);
        if (c.size() < 5 || c[0].size() < 3 || c[0].front() != '`' || c[0].rfind("`" + part + ".", 0) != 0) continue;
        std::string p = c[0].substr(1, c[0].size() - 2);
        bool known = false;
        for (const auto& [q, s] : every) known |= q == p;
        // CEL tables name objects in their first column too; those are fields as well.
        EXPECT_TRUE(known) << "docs/api.md documents " << p << ", which the " << kind << " CRD does not have";
      }
    }
  }
}

TEST(Docs, PrinterColumnsAreDocumented) {
  std::string doc = readFile(sourceDir() / "docs" / "api.md");
  for (const char* file : {"waterline.dev_capacitypools.yaml", "waterline.dev_modeldeployments.yaml",
                           "waterline.dev_ptureservations.yaml"}) {
    json crd = loadYamlFile(sourceDir() / "crds" / file).at(0);
    for (const auto& col : crd["spec"]["versions"][0]["additionalPrinterColumns"]) {
      std::string name = col["name"];
      for (auto& ch : name) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
      EXPECT_NE(doc.find("`" + name + "`"), std::string::npos) << file << ": column " << name;
    }
  }
}

}  // namespace
}  // namespace waterline::api
