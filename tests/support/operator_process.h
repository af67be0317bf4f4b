#pragma once
// The waterline-operator binary as a child process of an integration test, with its own
// log file and metrics port. Needs it_support.h (tests/integration/runtime_it) on the
// include path and the operator built (add_dependencies(<test> waterline-operator)).
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>
#include <vector>

#include "it_support.h"

namespace waterline::it {

// Starts args[0] with args, stdout and stderr to `log`; the child's pid (-1 on failure).
inline pid_t spawnLogged(std::vector<std::string> args, const std::string& log) {
  pid_t pid = fork();
  if (pid == 0) {
    FILE* f = std::fopen(log.c_str(), "w");
    if (f) {
      dup2(fileno(f), 1);
      dup2(fileno(f), 2);
    }
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  return pid;
}

// A loopback TCP port that was free a moment ago (the kernel's pick for port 0), so that
// concurrent test processes on one machine do not collide on a guessed port.
inline int freeLoopbackPort() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  int port = 0;
  socklen_t len = sizeof a;
  if (fd >= 0 && ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0)
    port = ntohs(a.sin_port);
  if (fd >= 0) ::close(fd);
  return port > 0 ? port : 20000 + int(getpid() * 7 + std::rand()) % 20000;
}

struct OperatorProcess {
  pid_t pid = -1;
  int port = 0;
  std::string log;
  std::string kubeconfig;  // default: $WATERLINE_TEST_KUBECONFIG

  // Starts build/operator/main/waterline-operator against the test kubeconfig, serving
  // /healthz, /readyz and /metrics on a random loopback port; `extra` flags are appended.
  void start(const std::vector<std::string>& extra = {}) {
    port = freeLoopbackPort();
    log = "/tmp/" + uniqueName("wl-op") + ".log";
    std::vector<std::string> args = {env("WATERLINE_BINARY_DIR") + "/operator/main/waterline-operator",
                                     "--kubeconfig=" + (kubeconfig.empty() ? env("WATERLINE_TEST_KUBECONFIG") : kubeconfig),
                                     "--bind-address=127.0.0.1:" + std::to_string(port)};
    args.insert(args.end(), extra.begin(), extra.end());
    pid = spawnLogged(args, log);
  }
  void kill(int sig) {
    if (pid > 0) {
      ::kill(pid, sig);
      int st;
      waitpid(pid, &st, 0);
      pid = -1;
    }
  }
  ~OperatorProcess() { kill(SIGKILL); }

  // GET http://127.0.0.1:port/path with curl; "" when unreachable.
  std::string get(const std::string& path) const {
    std::string cmd = "curl -s --max-time 2 http://127.0.0.1:" + std::to_string(port) + path;
    FILE* p = popen(cmd.c_str(), "r");
    if (!p) return "";
    std::string out;
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    pclose(p);
    return out;
  }
  // Sum of the /metrics samples whose line starts with `series`.
  double metric(const std::string& series) const {
    std::istringstream in(get("/metrics"));
    std::string line;
    double sum = 0;
    while (std::getline(in, line)) {
      if (line.rfind(series, 0) == 0) {
        auto sp = line.rfind(' ');
        sum += std::stod(line.substr(sp + 1));
      }
    }
    return sum;
  }
  // The log of the current process; its last `tail` characters when longer.
  std::string logText(size_t tail = 20000) const {
    std::ifstream f(log);
    std::stringstream ss;
    ss << f.rdbuf();
    std::string s = ss.str();
    return s.size() > tail ? s.substr(s.size() - tail) : s;
  }
};

}  // namespace waterline::it
