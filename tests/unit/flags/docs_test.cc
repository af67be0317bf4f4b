// docs/flags.md lists every flag of the three binaries with the default the code has.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <sstream>

#include "waterline/main/operator_config.h"
#include "waterline/plan/plan_cli.h"
#include "waterline/router/flags.h"

namespace waterline {
namespace {

// The rows of the table under `## <heading>`: flag -> default ("" for "—").
std::map<std::string, std::string> docTable(const std::string& heading) {
  std::ifstream in(std::string(WL_SOURCE_DIR) + "/docs/flags.md");
  EXPECT_TRUE(in) << "docs/flags.md";
  std::map<std::string, std::string> rows;
  std::string line;
  bool inSection = false;
  while (std::getline(in, line)) {
    if (line.rfind("## ", 0) == 0) inSection = line == "## " + heading;
    if (!inSection || line.rfind("| `--", 0) != 0) continue;
    std::vector<std::string> cells;
    std::stringstream ss(line.substr(1));
    for (std::string cell; std::getline(ss, cell, '|');) {
      while (!cell.empty() && cell.front() == ' ') cell.erase(0, 1);
      while (!cell.empty() && cell.back() == ' ') cell.pop_back();
      cells.push_back(cell);
    }
    EXPECT_GE(cells.size(), 4u) << line;
    if (cells.size() < 4) continue;
    auto unquote = [](std::string s) { return s.size() >= 2 && s.front() == '`' ? s.substr(1, s.size() - 2) : s; };
    const std::string def = cells[2] == "—" ? "" : unquote(cells[2]);
    EXPECT_TRUE(rows.emplace(unquote(cells[0]), def).second) << "listed twice: " << cells[0];
  }
  return rows;
}

void expectDocumented(const std::vector<cli::FlagDoc>& flags, const std::string& heading) {
  auto doc = docTable(heading);
  ASSERT_FALSE(doc.empty()) << "no table under ## " << heading;
  for (const auto& f : flags) {
    auto it = doc.find(f.name);
    if (it == doc.end()) {
      ADD_FAILURE() << f.name << " (default \"" << f.def << "\") is not in docs/flags.md under ## " << heading;
      continue;
    }
    EXPECT_EQ(it->second, f.def) << f.name << ": docs/flags.md says \"" << it->second << "\", the code \"" << f.def << "\"";
    doc.erase(it);
  }
  for (const auto& [name, def] : doc) ADD_FAILURE() << name << " is in docs/flags.md but not a flag of " << heading;
}

TEST(Docs, OperatorFlagsAndDefaults) { expectDocumented(cmd::operatorFlags(), "waterline-operator"); }
TEST(Docs, RouterFlagsAndDefaults) { expectDocumented(router::routerFlags(), "waterline-router"); }
TEST(Docs, PlanFlagsAndDefaults) { expectDocumented(plan::planFlags(), "waterline-plan"); }

}  // namespace
}  // namespace waterline
