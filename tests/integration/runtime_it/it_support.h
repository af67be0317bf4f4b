#pragma once
// Shared helpers for integration tests against the fixture's kube-apiserver.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <functional>
#include <random>
#include <string>
#include <thread>

#include "waterline/kube/config.h"
#include "waterline/kube/rest_client.h"

namespace waterline::it {

inline std::string env(const char* k) {
  const char* v = std::getenv(k);
  if (v && *v) return v;
  // Compiled-in defaults (see waterline_integration_test in tests/CMakeLists.txt).
#ifdef WL_SOURCE_DIR
  if (std::string(k) == "WATERLINE_SOURCE_DIR") return WL_SOURCE_DIR;
#endif
#ifdef WL_BINARY_DIR
  if (std::string(k) == "WATERLINE_BINARY_DIR") return WL_BINARY_DIR;
#endif
  return "";
}

inline std::shared_ptr<kube::RestClient> clientOrSkip() {
  std::string kc = env("WATERLINE_TEST_KUBECONFIG");
  if (kc.empty()) return nullptr;
  auto cfg = kube::loadKubeconfig(kc);
  if (!cfg) throw std::runtime_error("kubeconfig: " + cfg.error());
  auto c = kube::RestClient::create(*cfg);
  if (!c) throw std::runtime_error("client: " + c.error());
  return *c;
}

#define WL_CLIENT_OR_SKIP(var)                                            \
  auto var = ::waterline::it::clientOrSkip();                             \
  if (!var) GTEST_SKIP() << "WATERLINE_TEST_KUBECONFIG is not set";

inline std::string uniqueName(const std::string& prefix) {
  static std::mt19937_64 rng{std::random_device{}()};
  static const char* hex = "0123456789abcdef";
  std::string s = prefix + "-";
  for (int i = 0; i < 6; ++i) s += hex[rng() % 16];
  return s;
}

// Polls `pred` every 50 ms until true or `timeout`; returns the final value.
inline bool eventually(const std::function<bool()>& pred,
                       std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return pred();
}

inline int run(const std::string& cmd) { return std::system(cmd.c_str()); }

}  // namespace waterline::it
