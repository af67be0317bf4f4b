#pragma once
// GPU request helpers: MIG profile names.
#include <cstdint>
#include <expected>
#include <string>
#include <string_view>

namespace waterline::api {

// A MIG profile name such as "3g.40gb" or "1g.10gb+me": compute slices (of 7), memory in
// GB as the name states it, and whether it carries the media extensions.
struct MigProfile {
  int computeSlices = 0;
  int memoryGB = 0;
  bool mediaExtensions = false;

  static std::expected<MigProfile, std::string> parse(std::string_view name);
  std::string name() const;
  bool operator==(const MigProfile&) const = default;
};

}  // namespace waterline::api
