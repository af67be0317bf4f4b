#pragma once
// Helpers of the monitoring tests: docs/metrics.md as data, the metric names a PromQL
// expression reads, file and command helpers.
#include <sys/wait.h>

#include <cctype>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace waterline::monitoring_test {

inline std::filesystem::path sourceDir() { return WATERLINE_SOURCE_DIR; }

inline std::string readFile(const std::filesystem::path& p) {
  std::ifstream f(p);
  if (!f) throw std::runtime_error("cannot read " + p.string());
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// Runs `cmd` with sh, returning its exit status and combined output.
inline std::pair<int, std::string> run(const std::string& cmd) {
  std::string out;
  FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  if (!p) return {-1, "popen failed"};
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  const int status = ::pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

inline bool havePromtool() { return run("command -v promtool").first == 0; }

struct DocRow {
  std::string name, type, source;
  std::vector<std::string> labels;
  int line = 0;
};

// The rows of the table in docs/metrics.md whose first cell is a `waterline_...` name.
// Malformed rows (wrong cell count, unquoted cells) are returned in `errors`.
struct MetricsDoc {
  std::map<std::string, DocRow> rows;
  std::vector<std::string> errors;

  bool has(const std::string& n) const { return rows.contains(n); }
  // A name as PromQL may use it: a listed family, or a histogram's _bucket/_sum/_count.
  bool knows(const std::string& n) const {
    if (has(n)) return true;
    for (const char* suffix : {"_bucket", "_sum", "_count"}) {
      std::string s = suffix;
      if (n.size() > s.size() && n.ends_with(s)) {
        auto it = rows.find(n.substr(0, n.size() - s.size()));
        if (it != rows.end() && it->second.type == "histogram") return true;
      }
    }
    return false;
  }
};

inline std::string trim(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  std::size_t i = 0;
  while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
  return s.substr(i);
}

// `x` -> x; anything else -> "" (caller reports).
inline std::string unquote(const std::string& cell) {
  if (cell.size() >= 2 && cell.front() == '`' && cell.back() == '`') return cell.substr(1, cell.size() - 2);
  return "";
}

inline MetricsDoc parseMetricsDoc(const std::string& text) {
  MetricsDoc doc;
  std::istringstream in(text);
  std::string line;
  int no = 0;
  while (std::getline(in, line)) {
    ++no;
    if (!line.starts_with("| `waterline_")) continue;
    std::vector<std::string> cells;
    std::size_t pos = 1;
    while (pos < line.size()) {
      auto bar = line.find('|', pos);
      if (bar == std::string::npos) break;
      cells.push_back(trim(line.substr(pos, bar - pos)));
      pos = bar + 1;
    }
    auto err = [&](const std::string& why) {
      doc.errors.push_back("docs/metrics.md:" + std::to_string(no) + ": " + why + ": " + line);
    };
    if (cells.size() != 4) {
      // Rows of the other tables (label values) have 3 cells and are not metric rows.
      if (cells.size() != 3) err("want 4 cells (metric, type, labels, source)");
      continue;
    }
    DocRow r;
    r.line = no;
    r.name = unquote(cells[0]);
    r.type = cells[1];
    r.source = unquote(cells[3]);
    if (r.name.empty() || r.source.empty()) {
      err("metric and source must be `quoted`");
      continue;
    }
    if (cells[2] != "—") {
      std::istringstream ls(cells[2]);
      std::string l;
      while (std::getline(ls, l, ',')) {
        std::string u = unquote(trim(l));
        if (u.empty()) err("labels: `a`, `b` or —");
        r.labels.push_back(u);
      }
    }
    if (doc.rows.contains(r.name)) err("listed twice");
    doc.rows[r.name] = r;
  }
  return doc;
}

inline MetricsDoc loadMetricsDoc() { return parseMetricsDoc(readFile(sourceDir() / "docs/metrics.md")); }

// The metric names a PromQL expression selects. Strings, label matchers, ranges,
// grouping lists and numbers are removed first; identifiers followed by "(" are
// functions or aggregations; keywords are skipped.
inline std::set<std::string> promqlMetricNames(const std::string& expr) {
  std::string s;
  // 1. strings (", ', `) out
  for (std::size_t i = 0; i < expr.size(); ++i) {
    char c = expr[i];
    if (c == '"' || c == '\'' || c == '`') {
      char q = c;
      ++i;
      while (i < expr.size() && expr[i] != q) {
        if (expr[i] == '\\' && q != '`') ++i;
        ++i;
      }
      s += "\"\"";
      continue;
    }
    s += c;
  }
  // 2. {...} and [...] out
  std::string t;
  int brace = 0, bracket = 0;
  for (char c : s) {
    if (c == '{') ++brace;
    else if (c == '}') --brace;
    else if (c == '[') ++bracket;
    else if (c == ']') --bracket;
    else if (brace == 0 && bracket == 0) t += c;
    if (brace < 0 || bracket < 0) throw std::invalid_argument("unbalanced: " + expr);
  }
  if (brace != 0 || bracket != 0) throw std::invalid_argument("unbalanced: " + expr);
  // 3. grouping lists out
  static const std::regex grouping(R"(\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\))");
  t = std::regex_replace(t, grouping, " ");
  // 4. identifiers
  static const std::set<std::string> keywords = {"and", "or", "unless", "by", "without", "on",
                                                 "ignoring", "group_left", "group_right", "bool",
                                                 "offset", "atan2", "inf", "nan", "Inf", "NaN"};
  std::set<std::string> out;
  for (std::size_t i = 0; i < t.size();) {
    char c = t[i];
    bool start = std::isalpha(static_cast<unsigned char>(c)) || c == '_' || c == ':';
    if (!start) {
      ++i;
      continue;
    }
    bool afterNumber = i > 0 && (std::isdigit(static_cast<unsigned char>(t[i - 1])) || t[i - 1] == '.');
    std::size_t j = i;
    while (j < t.size() && (std::isalnum(static_cast<unsigned char>(t[j])) || t[j] == '_' || t[j] == ':')) ++j;
    std::string id = t.substr(i, j - i);
    std::size_t k = j;
    while (k < t.size() && std::isspace(static_cast<unsigned char>(t[k]))) ++k;
    bool call = k < t.size() && t[k] == '(';
    if (!afterNumber && !call && !keywords.contains(id)) out.insert(id);
    i = j;
  }
  return out;
}

}  // namespace waterline::monitoring_test
