#include "waterline/sim/perf_model.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <fstream>
#include <sstream>

namespace waterline::sim {

std::expected<ModelShape, std::string> modelShape(const std::string& model) {
  if (model == "llama2-70b") return ModelShape{129.0, 2.0 * 80 * 8 * 128 * 2};
  if (model == "bloom-176b") return ModelShape{328.0, 2.0 * 70 * 14336 * 2};
  return std::unexpected("unknown model " + model + " (known: llama2-70b, bloom-176b)");
}

std::string normalizeHardware(const std::string& gpuType) {
  std::string s;
  for (char c : gpuType) s += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (s == "h100" || s == "h100-80gb" || s == "nvidia-h100-80gb-hbm3" || s == "h100-sxm") return "h100-80gb";
  if (s == "a100" || s == "a100-80gb" || s == "nvidia-a100-sxm4-80gb") return "a100-80gb";
  return s;
}

namespace {

double interpolate(const std::vector<std::pair<double, double>>& pts, double x) {
  if (pts.empty()) return 0;
  if (pts.size() == 1) return pts.front().second;
  auto seg = [&](size_t i) {  // the line through pts[i], pts[i+1]
    const auto& [x0, y0] = pts[i];
    const auto& [x1, y1] = pts[i + 1];
    return y0 + (y1 - y0) * (x - x0) / (x1 - x0);
  };
  if (x <= pts.front().first) return pts.front().second;  // below the table: overhead-dominated
  for (size_t i = 0; i + 1 < pts.size(); ++i)
    if (x <= pts[i + 1].first) return seg(i);
  return std::max(pts.back().second, seg(pts.size() - 2));
}

std::vector<std::string> splitCsv(const std::string& line) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : line) {
    if (c == ',') {
      out.push_back(cur);
      cur.clear();
    } else if (c != '\r') {
      cur += c;
    }
  }
  out.push_back(cur);
  return out;
}

}  // namespace

ServiceModel::ServiceModel(std::vector<std::pair<double, double>> prefillMs,
                           std::vector<std::pair<double, double>> decodeMs, double kvCapacityTokens)
    : prefill_(std::move(prefillMs)), decode_(std::move(decodeMs)), kvCapacityTokens_(kvCapacityTokens) {
  std::sort(prefill_.begin(), prefill_.end());
  std::sort(decode_.begin(), decode_.end());
  for (size_t i = 1; i < decode_.size(); ++i) decode_[i].second = std::max(decode_[i].second, decode_[i - 1].second);
  for (size_t i = 1; i < prefill_.size(); ++i) prefill_[i].second = std::max(prefill_[i].second, prefill_[i - 1].second);
}

double ServiceModel::prefillSeconds(double tokens) const {
  if (tokens <= 0) return 0;
  return interpolate(prefill_, tokens) / 1000.0;
}

double ServiceModel::decodeStepSeconds(int batch) const {
  if (decode_.empty()) return 0;
  batch = std::max(1, batch);
  if (batch <= decode_.front().first) return decode_.front().second / 1000.0;
  return interpolate(decode_, batch) / 1000.0;
}

int ServiceModel::tableMaxBatch() const { return decode_.empty() ? 1 : static_cast<int>(decode_.back().first); }

double ServiceModel::secondsPerInputToken() const { return prefillSeconds(8192) / 8192.0; }

double ServiceModel::secondsPerOutputToken(int operatingBatch) const {
  operatingBatch = std::max(1, operatingBatch);
  return decodeStepSeconds(operatingBatch) / operatingBatch;
}

std::expected<PerfModel, std::string> PerfModel::loadCsv(const std::string& path) {
  std::ifstream in(path);
  if (!in) return std::unexpected("cannot open perf model " + path);
  std::string line;
  if (!std::getline(in, line)) return std::unexpected(path + ": empty");
  const auto header = splitCsv(line);
  auto col = [&](const char* name) -> int {
    auto it = std::find(header.begin(), header.end(), name);
    return it == header.end() ? -1 : static_cast<int>(it - header.begin());
  };
  const int cModel = col("model"), cHw = col("hardware"), cPrompt = col("prompt_size"), cBatch = col("batch_size"),
            cTok = col("token_size"), cPt = col("prompt_time"), cTt = col("token_time"), cTp = col("tensor_parallel");
  if (std::min({cModel, cHw, cPrompt, cBatch, cTok, cPt, cTt, cTp}) < 0)
    return std::unexpected(path + ": missing columns (need model, hardware, prompt_size, batch_size, token_size, "
                                  "prompt_time, token_time, tensor_parallel)");
  PerfModel pm;
  size_t lineNo = 1;
  while (std::getline(in, line)) {
    ++lineNo;
    if (line.empty()) continue;
    const auto f = splitCsv(line);
    if (f.size() < header.size()) return std::unexpected(path + ":" + std::to_string(lineNo) + ": short row");
    try {
      Key k{f[cModel], f[cHw], std::stoi(f[cTp])};
      const int prompt = std::stoi(f[cPrompt]), batch = std::stoi(f[cBatch]), tok = std::stoi(f[cTok]);
      const double pt = std::stod(f[cPt]), tt = std::stod(f[cTt]);
      auto& c = pm.curves_[k];
      if (batch == 1 && tok == 128) {
        auto& e = c.prefill[prompt];
        e.first += pt;
        e.second += 1;
      }
      if (prompt == 512 && tok == 128) {
        auto& e = c.decode[batch];
        e.first += tt;
        e.second += 1;
      }
    } catch (const std::exception&) {
      return std::unexpected(path + ":" + std::to_string(lineNo) + ": bad number");
    }
  }
  if (pm.curves_.empty()) return std::unexpected(path + ": no rows");
  return pm;
}

std::vector<PerfModel::Key> PerfModel::keys() const {
  std::vector<Key> out;
  for (const auto& [k, _] : curves_) out.push_back(k);
  return out;
}

std::expected<ServiceModel, std::string> PerfModel::service(const std::string& model, const std::string& hardware,
                                                            int tp) const {
  const Key k{model, normalizeHardware(hardware), tp};
  auto it = curves_.find(k);
  if (it == curves_.end()) {
    std::string known;
    for (const auto& [kk, _] : curves_)
      known += (known.empty() ? "" : ", ") + kk.model + "/" + kk.hardware + "/tp" + std::to_string(kk.tp);
    return std::unexpected("no perf data for " + model + "/" + k.hardware + "/tp" + std::to_string(tp) +
                           " (have: " + known + ")");
  }
  std::vector<std::pair<double, double>> prefill, decode;
  for (const auto& [p, e] : it->second.prefill) prefill.push_back({double(p), e.first / e.second});
  for (const auto& [b, e] : it->second.decode) decode.push_back({double(b), e.first / e.second});
  if (prefill.size() < 2 || decode.empty())
    return std::unexpected("perf data for " + model + "/" + k.hardware + "/tp" + std::to_string(tp) + " is incomplete");
  double kv = 0;
  if (auto shape = modelShape(model)) {
    const double memGiB = 80.0 * tp;
    kv = std::max(0.0, (memGiB - shape->weightsGiB) * 0.9 * 1024.0 * 1024.0 * 1024.0 / shape->kvBytesPerToken);
  }
  return ServiceModel(std::move(prefill), std::move(decode), kv);
}

}  // namespace waterline::sim
