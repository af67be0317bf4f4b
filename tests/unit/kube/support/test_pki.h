#pragma once
// Throwaway PKI for TLS tests, generated in memory with OpenSSL: a CA, a server
// certificate for 127.0.0.1/localhost and a client certificate, all EC P-256, as PEM.
#include <string>

namespace waterline::kube::testing {

struct KeyPair {
  std::string certPem;
  std::string keyPem;
};

struct TestPki {
  KeyPair ca;
  KeyPair server;  // SAN IP:127.0.0.1, DNS:localhost; serverAuth
  KeyPair client;  // CN=<clientCN>, O=<clientOrg>; clientAuth
};

// A fresh CA and leaves signed by it. Throws std::runtime_error on OpenSSL failure.
TestPki makeTestPki(const std::string& clientCN = "test-client",
                    const std::string& clientOrg = "system:masters");

}  // namespace waterline::kube::testing
