#include "waterline/api/gpu.h"

#include <cctype>

namespace waterline::api {

std::expected<MigProfile, std::string> MigProfile::parse(std::string_view name) {
  auto bad = [&] {
    return std::unexpected("invalid MIG profile \"" + std::string(name) + "\", want e.g. 1g.10gb or 3g.40gb");
  };
  // ^[1-7]g\.[1-9][0-9]*gb(\+me)?$
  MigProfile p;
  if (name.size() < 6 || name[0] < '1' || name[0] > '7' || name[1] != 'g' || name[2] != '.') return bad();
  p.computeSlices = name[0] - '0';
  size_t pos = 3;
  if (name[pos] < '1' || name[pos] > '9') return bad();
  int mem = 0;
  while (pos < name.size() && std::isdigit(static_cast<unsigned char>(name[pos]))) {
    mem = mem * 10 + (name[pos++] - '0');
    if (mem > 100000) return bad();
  }
  std::string_view rest = name.substr(pos);
  if (rest == "gb") {
  } else if (rest == "gb+me") {
    p.mediaExtensions = true;
  } else {
    return bad();
  }
  p.memoryGB = mem;
  return p;
}

std::string MigProfile::name() const {
  return std::to_string(computeSlices) + "g." + std::to_string(memoryGB) + "gb" + (mediaExtensions ? "+me" : "");
}

}  // namespace waterline::api
