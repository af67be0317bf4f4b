#pragma once
// Private helpers of waterline_kube (not installed, not on other modules' paths).
#include <expected>
#include <optional>
#include <string>
#include <string_view>

namespace boost::asio::ssl {
class context;
}

namespace waterline::kube {
struct RestConfig;
}

namespace waterline::kube::detail {

// Standard base64 (RFC 4648, with or without padding; whitespace ignored).
std::optional<std::string> base64Decode(std::string_view in);

// The whole file, or an error text (strerror).
std::expected<std::string, std::string> readFile(const std::string& path);

// Loads the config's CA, client certificate chain and key into `ctx`. Throws
// boost::system::system_error / std::runtime_error on bad material.
void configureSslContext(boost::asio::ssl::context& ctx, const RestConfig& cfg);

// Checks the TLS material of `cfg` by loading it into a scratch context (and that the
// key matches the certificate). "" when fine, else what is wrong.
std::string validateTls(const RestConfig& cfg);

}  // namespace waterline::kube::detail
