// Every field of every CRD in crds/ has a description, so that `kubectl explain` documents
// it. A field is any schema under a `properties` map, at any depth: fields of list items
// (`items`) and of map values (`additionalProperties`) included, as kubectl explain walks
// into both; spec, status and the root's apiVersion and kind alike. The root schema needs
// one too (kubectl explain KIND shows it). The one exception is the root's `metadata`: the
// apiserver refuses a CRD that gives it anything but a type ("must not specify anything
// other than name and generateName"), and publishes ObjectMeta's own description for it.
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "yaml_json.h"

namespace waterline::api {
namespace {

using nlohmann::json;
using testing::loadYamlFile;
using testing::sourceDir;
using testing::yamlFiles;

bool hasDescription(const json& s) {
  if (!s.is_object() || !s.contains("description") || !s["description"].is_string()) return false;
  return s["description"].get<std::string>().find_first_not_of(" \t\r\n") != std::string::npos;
}

// Paths of the fields under `s` that have no description. `path` is the path of `s`:
// ".spec.gpu"; list items add "[]", map values "{}" (".spec.env[].name").
void undescribed(const json& s, const std::string& path, std::vector<std::string>& out) {
  if (!s.is_object()) return;
  if (s.contains("properties") && s["properties"].is_object())
    for (auto it = s["properties"].begin(); it != s["properties"].end(); ++it) {
      std::string p = path + "." + it.key();
      if (!hasDescription(it.value()) && p != ".metadata") out.push_back(p);
      undescribed(it.value(), p, out);
    }
  if (s.contains("items")) undescribed(s["items"], path + "[]", out);
  if (s.contains("additionalProperties")) undescribed(s["additionalProperties"], path + "{}", out);
}

// Number of fields under `s`, walked as above.
size_t countFields(const json& s) {
  if (!s.is_object()) return 0;
  size_t n = 0;
  if (s.contains("properties") && s["properties"].is_object())
    for (auto it = s["properties"].begin(); it != s["properties"].end(); ++it) n += 1 + countFields(it.value());
  if (s.contains("items")) n += countFields(s["items"]);
  if (s.contains("additionalProperties")) n += countFields(s["additionalProperties"]);
  return n;
}

std::vector<std::string> undescribed(const json& root) {
  std::vector<std::string> out;
  if (!hasDescription(root)) out.push_back("(root)");
  undescribed(root, "", out);
  return out;
}

// The walk itself: a field missing at any depth is found, and only those; only the root's
// metadata is exempt.
TEST(CrdDescriptions, WalkFindsFieldsAtEveryDepth) {
  json schema = testing::yamlToJson(R"(
type: object
description: root
properties:
  apiVersion:
    type: string
  metadata:
    type: object
  spec:
    type: object
    description: spec
    properties:
      blank:
        type: string
        description: "  "
      list:
        type: array
        description: a list
        items:
          type: object
          properties:
            key:
              type: string
            inner:
              type: array
              description: inner
              items:
                type: string
      map:
        type: object
        description: a map
        additionalProperties:
          type: object
          properties:
            value:
              type: integer
            ok:
              type: integer
              description: fine
      metadata:
        type: object
      strings:
        type: object
        description: string map
        additionalProperties:
          type: string
)");
  EXPECT_EQ(undescribed(schema),
            (std::vector<std::string>{".apiVersion", ".spec.blank", ".spec.list[].key", ".spec.map{}.value",
                                      ".spec.metadata"}));
  EXPECT_EQ(countFields(schema), 12u);
  schema.erase("description");
  EXPECT_EQ(undescribed(schema).front(), "(root)");
}

TEST(CrdDescriptions, EveryCrdFieldHasADescription) {
  auto files = yamlFiles(sourceDir() / "crds");
  ASSERT_GE(files.size(), 4u);
  size_t fields = 0;
  std::vector<std::string> missing;
  for (const auto& file : files) {
    for (const json& crd : loadYamlFile(file)) {
      if (crd.value("kind", "") != "CustomResourceDefinition") continue;
      const std::string plural = crd.at("spec").at("names").at("plural");
      for (const json& v : crd.at("spec").at("versions")) {
        const std::string version = v.at("name");
        ASSERT_TRUE(v.contains("schema") && v["schema"].contains("openAPIV3Schema"))
            << file << ": " << version << " has no openAPIV3Schema";
        const json& schema = v["schema"]["openAPIV3Schema"];
        fields += countFields(schema);
        for (const auto& p : undescribed(schema)) missing.push_back(plural + " " + version + " " + p);
      }
    }
  }
  EXPECT_GE(fields, 200u) << "the walk found too few fields";
  std::string list;
  for (const auto& m : missing) list += "  " + m + "\n";
  EXPECT_TRUE(missing.empty()) << missing.size() << " of " << fields
                               << " CRD fields have no description (kubectl explain shows nothing for them):\n"
                               << list;
}

}  // namespace
}  // namespace waterline::api
