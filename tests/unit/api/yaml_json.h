#pragma once
// Test helper: YAML files to nlohmann::json, with YAML 1.2 core-schema scalar typing
// (plain true/false/null/ints/floats; quoted scalars stay strings).
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace waterline::testing {

// Every document of a YAML file (empty documents skipped).
std::vector<nlohmann::json> loadYamlFile(const std::filesystem::path& p);
nlohmann::json yamlToJson(const std::string& yaml);  // first document

// The YAML files directly in `dir`, sorted, optionally skipping kustomization.yaml.
std::vector<std::filesystem::path> yamlFiles(const std::filesystem::path& dir);

inline std::filesystem::path sourceDir() { return WATERLINE_SOURCE_DIR; }

}  // namespace waterline::testing
