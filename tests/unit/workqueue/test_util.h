#pragma once
#include <chrono>
#include <functional>
#include <thread>

namespace waterline::workqueue::testing {

// Polls `cond` (real time) for up to `limit`; true once it holds. Only used to wait
// for another thread to reach a state; the generous limit guards against a hang
// and never decides a test's outcome on a healthy run.
inline bool eventually(const std::function<bool()>& cond,
                       std::chrono::milliseconds limit = std::chrono::seconds(60)) {
  const auto giveUp = std::chrono::steady_clock::now() + limit;
  while (!cond()) {
    if (std::chrono::steady_clock::now() > giveUp) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

}  // namespace waterline::workqueue::testing
