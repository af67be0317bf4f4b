#include "waterline/scheduling/model.h"

#include <charconv>

#include "waterline/common/parse.h"

namespace waterline::scheduling {

std::string_view toString(SharingMode m) {
  switch (m) {
    case SharingMode::Exclusive: return "Exclusive";
    case SharingMode::MIG: return "MIG";
    case SharingMode::TimeSlicing: return "TimeSlicing";
    case SharingMode::MPS: return "MPS";
  }
  return "?";
}

std::string_view toString(Strategy s) {
  return s == Strategy::BinPack ? "BinPack" : "Spread";
}

std::string_view toString(DeploymentType t) {
  switch (t) {
    case DeploymentType::Standard: return "Standard";
    case DeploymentType::DataZone: return "DataZone";
    case DeploymentType::Global: return "Global";
  }
  return "?";
}

std::string_view toString(TaintEffect e) {
  switch (e) {
    case TaintEffect::NoSchedule: return "NoSchedule";
    case TaintEffect::PreferNoSchedule: return "PreferNoSchedule";
    case TaintEffect::NoExecute: return "NoExecute";
  }
  return "?";
}

std::string_view toString(ShapeKind k) {
  switch (k) {
    case ShapeKind::Whole: return "Whole";
    case ShapeKind::Mig: return "MIG";
    case ShapeKind::Share: return "Share";
  }
  return "?";
}

std::optional<SharingMode> parseSharingMode(std::string_view s) {
  if (s == "Exclusive" || s == "None" || s.empty()) return SharingMode::Exclusive;
  if (s == "MIG" || s == "Mig") return SharingMode::MIG;
  if (s == "TimeSlicing") return SharingMode::TimeSlicing;
  if (s == "MPS") return SharingMode::MPS;
  return std::nullopt;
}

std::optional<Strategy> parseStrategy(std::string_view s) {
  if (s == "BinPack" || s == "MostAllocated" || s.empty()) return Strategy::BinPack;
  if (s == "Spread" || s == "LeastAllocated") return Strategy::Spread;
  return std::nullopt;
}

std::optional<DeploymentType> parseDeploymentType(std::string_view s) {
  if (s == "Standard" || s.empty()) return DeploymentType::Standard;
  if (s == "DataZone") return DeploymentType::DataZone;
  if (s == "Global") return DeploymentType::Global;
  return std::nullopt;
}

std::optional<TaintEffect> parseTaintEffect(std::string_view s) {
  if (s == "NoSchedule") return TaintEffect::NoSchedule;
  if (s == "PreferNoSchedule") return TaintEffect::PreferNoSchedule;
  if (s == "NoExecute") return TaintEffect::NoExecute;
  return std::nullopt;
}

bool Toleration::tolerates(const Taint& t) const {
  if (effect && *effect != t.effect) return false;
  if (key.empty()) return op == TolerationOperator::Exists;
  if (key != t.key) return false;
  if (op == TolerationOperator::Exists) return true;
  return value == t.value;
}

bool toleratesAll(const std::vector<Taint>& taints, const std::vector<Toleration>& tolerations) {
  for (const Taint& t : taints) {
    if (t.effect == TaintEffect::PreferNoSchedule) continue;
    bool ok = false;
    for (const Toleration& tol : tolerations) {
      if (tol.tolerates(t)) {
        ok = true;
        break;
      }
    }
    if (!ok) return false;
  }
  return true;
}

NodeSpec withGfdDefaults(NodeSpec n) {
  if (n.gpu_product.empty()) {
    if (auto it = n.labels.find(std::string(kLabelGpuProduct)); it != n.labels.end()) {
      n.gpu_product = it->second;
    }
  }
  if (n.gpu_count < 0) {
    auto it = n.labels.find(std::string(kLabelGpuCount));
    // a value that is not an integer in [0, 64] counts as no GPUs, never as a negative count
    n.gpu_count = it != n.labels.end() ? parseIntegerInRange<int>(it->second, 0, kMaxGpusPerNode).value_or(0) : 0;
  }
  if (n.gpu_memory_mib == 0) {
    if (auto it = n.labels.find(std::string(kLabelGpuMemory)); it != n.labels.end()) {
      n.gpu_memory_mib = parseIntegerInRange<std::int64_t>(it->second, 0, kMaxGpuMemoryMiB).value_or(0);
    }
  }
  return n;
}

GpuShape GpuShape::whole(int n) {
  GpuShape s;
  s.kind = ShapeKind::Whole;
  s.count = n;
  return s;
}

GpuShape GpuShape::mig(std::string profile) {
  GpuShape s;
  s.kind = ShapeKind::Mig;
  s.count = 0;
  s.mig_profile = std::move(profile);
  return s;
}

GpuShape GpuShape::share(int k, std::int64_t memory_mib) {
  GpuShape s;
  s.kind = ShapeKind::Share;
  s.count = 0;
  s.shares_per_gpu = k;
  s.memory_mib = memory_mib;
  return s;
}

std::string GpuShape::describe() const {
  switch (kind) {
    case ShapeKind::Whole:
      return std::to_string(count) + (count == 1 ? " GPU" : " GPUs") +
             (memory_mib > 0 ? " of at least " + std::to_string(memory_mib) + " MiB" : "");
    case ShapeKind::Mig:
      return "MIG " + mig_profile +
             (memory_mib > 0 ? " of at least " + std::to_string(memory_mib) + " MiB" : "");
    case ShapeKind::Share:
      return "1/" + std::to_string(shares_per_gpu) + " GPU share" +
             (memory_mib > 0 ? " of at least " + std::to_string(memory_mib) + " MiB" : "");
  }
  return "?";
}

}  // namespace waterline::scheduling
