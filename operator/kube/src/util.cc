#include <boost/asio/ssl.hpp>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "internal.h"
#include "waterline/kube/config.h"

namespace waterline::kube::detail {

std::optional<std::string> base64Decode(std::string_view in) {
  auto val = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+' || c == '-') return 62;
    if (c == '/' || c == '_') return 63;
    return -1;
  };
  std::string out;
  out.reserve(in.size() * 3 / 4);
  unsigned int acc = 0;
  int bits = 0;
  bool padding = false;
  for (char c : in) {
    if (c == ' ' || c == '\n' || c == '\r' || c == '\t') continue;
    if (c == '=') {
      padding = true;
      continue;
    }
    if (padding) return std::nullopt;  // data after padding
    int v = val(c);
    if (v < 0) return std::nullopt;
    acc = (acc << 6) | static_cast<unsigned>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xFF));
    }
  }
  if (bits >= 6) return std::nullopt;  // a dangling sextet: truncated input
  return out;
}

std::expected<std::string, std::string> readFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return std::unexpected(std::string(std::strerror(errno)));
  std::ostringstream ss;
  ss << f.rdbuf();
  if (f.bad()) return std::unexpected(std::string("read error"));
  return ss.str();
}

void configureSslContext(boost::asio::ssl::context& ctx, const RestConfig& cfg) {
  if (!cfg.caData.empty()) {
    ctx.add_certificate_authority(boost::asio::buffer(cfg.caData.data(), cfg.caData.size()));
  } else {
    ctx.set_default_verify_paths();
  }
  if (!cfg.clientCertData.empty()) {
    ctx.use_certificate_chain(
        boost::asio::buffer(cfg.clientCertData.data(), cfg.clientCertData.size()));
    ctx.use_private_key(boost::asio::buffer(cfg.clientKeyData.data(), cfg.clientKeyData.size()),
                        boost::asio::ssl::context::pem);
  }
}

std::string validateTls(const RestConfig& cfg) {
  try {
    boost::asio::ssl::context ctx(boost::asio::ssl::context::tls_client);
    if (!cfg.caData.empty()) {
      try {
        ctx.add_certificate_authority(boost::asio::buffer(cfg.caData.data(), cfg.caData.size()));
      } catch (const std::exception& e) {
        return std::string("CA data is not a valid PEM certificate: ") + e.what();
      }
    }
    if (!cfg.clientCertData.empty() || !cfg.clientKeyData.empty()) {
      if (cfg.clientCertData.empty() || cfg.clientKeyData.empty())
        return "client certificate and key must be given together";
      try {
        ctx.use_certificate_chain(
            boost::asio::buffer(cfg.clientCertData.data(), cfg.clientCertData.size()));
      } catch (const std::exception& e) {
        return std::string("client certificate is not a valid PEM certificate: ") + e.what();
      }
      try {
        ctx.use_private_key(
            boost::asio::buffer(cfg.clientKeyData.data(), cfg.clientKeyData.size()),
            boost::asio::ssl::context::pem);
      } catch (const std::exception& e) {
        // OpenSSL also checks here that the key belongs to the certificate.
        if (std::string(e.what()).find("mismatch") != std::string::npos)
          return "client key does not match the client certificate";
        return std::string("client key is not a valid PEM private key: ") + e.what();
      }
      if (SSL_CTX_check_private_key(ctx.native_handle()) != 1)
        return "client key does not match the client certificate";
    }
  } catch (const std::exception& e) {
    return std::string("TLS setup failed: ") + e.what();
  }
  return {};
}

}  // namespace waterline::kube::detail
