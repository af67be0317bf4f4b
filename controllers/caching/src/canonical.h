#pragma once
// Internals shared by the caching sources (not installed).
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace waterline::caching::detail {

// Appends `j` in canonical form: object keys sorted, no whitespace, integral numbers
// below 2^63 as integers (1 == 1.0), other numbers as shortest round-trip doubles.
void canonicalJson(const nlohmann::json& j, std::string& out);

// Lower-case hex SHA-256 (OpenSSL EVP).
std::string sha256Hex(std::string_view data);

}  // namespace waterline::caching::detail
