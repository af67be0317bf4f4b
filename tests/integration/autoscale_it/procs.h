#pragma once
// Child processes for end-to-end tests: the operator binary, a real Prometheus (Debian's
// /usr/bin/prometheus or $WATERLINE_PROMETHEUS) with a temporary TSDB, and waterline-sim.
// Each is killed (SIGKILL) and reaped by its destructor.
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "it_support.h"

namespace waterline::it {

inline std::string sourceDir() { return env("WATERLINE_SOURCE_DIR"); }
inline std::string binaryDir() { return env("WATERLINE_BINARY_DIR"); }

inline uint16_t freePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

inline std::string readFile(const std::string& path, size_t tail = 8000) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  std::string s = ss.str();
  return s.size() > tail ? s.substr(s.size() - tail) : s;
}

inline std::string findBinary(const char* envVar, const std::string& name) {
  if (const char* p = std::getenv(envVar); p && *p) return p;
  for (const char* dir : {"/usr/bin", "/usr/local/bin", "/bin"}) {
    std::string c = std::string(dir) + "/" + name;
    if (::access(c.c_str(), X_OK) == 0) return c;
  }
  return {};
}

// A child process with stdout and stderr in `log`.
struct Child {
  pid_t pid = -1;
  std::string log;
  void start(std::vector<std::string> args, const std::string& logPath) {
    log = logPath;
    pid = ::fork();
    if (pid == 0) {
      FILE* f = std::fopen(log.c_str(), "a");
      if (f) {
        ::dup2(fileno(f), 1);
        ::dup2(fileno(f), 2);
      }
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(argv[0], argv.data());
      std::_Exit(127);
    }
  }
  bool alive() {
    if (pid <= 0) return false;
    int st = 0;
    if (::waitpid(pid, &st, WNOHANG) == pid) {
      pid = -1;
      return false;
    }
    return true;
  }
  void kill(int sig = SIGKILL) {
    if (pid <= 0) return;
    ::kill(pid, sig);
    int st = 0;
    ::waitpid(pid, &st, 0);
    pid = -1;
  }
  std::string logText() const { return readFile(log); }
  ~Child() { kill(); }
};

// The operator binary against the fixture's apiserver, with extra flags.
struct Operator : Child {
  uint16_t port = freePort();
  void start(const std::vector<std::string>& extra) {
    std::vector<std::string> args = {binaryDir() + "/operator/main/waterline-operator",
                                     "--kubeconfig=" + env("WATERLINE_TEST_KUBECONFIG"),
                                     "--bind-address=127.0.0.1:" + std::to_string(port), "--leader-elect=false"};
    args.insert(args.end(), extra.begin(), extra.end());
    Child::start(args, "/tmp/" + uniqueName("wl-op") + ".log");
  }
};

// Prometheus scraping `targets` every second. Restartable on the same port and TSDB.
struct Prometheus : Child {
  std::string binary = findBinary("WATERLINE_PROMETHEUS", "prometheus");
  uint16_t port = freePort();
  std::filesystem::path dir;
  explicit Prometheus(const std::vector<uint16_t>& targets) {
    dir = std::filesystem::temp_directory_path() / uniqueName("wl-prom");
    std::filesystem::create_directories(dir / "data");
    std::ofstream cfg(dir / "prometheus.yml");
    // 2 s with a 2 s timeout: a slow /metrics on a loaded machine still gets scraped.
    cfg << "global:\n  scrape_interval: 2s\n  scrape_timeout: 2s\n  evaluation_interval: 2s\nscrape_configs:\n"
           "  - job_name: it\n"
           "    static_configs:\n      - targets: [";
    for (size_t i = 0; i < targets.size(); ++i) cfg << (i ? ", " : "") << "'127.0.0.1:" << targets[i] << "'";
    cfg << "]\n";
  }
  void start() {
    Child::start({binary, "--config.file=" + (dir / "prometheus.yml").string(),
                  "--storage.tsdb.path=" + (dir / "data").string(),
                  "--web.listen-address=127.0.0.1:" + std::to_string(port), "--log.level=warn"},
                 (dir / "prometheus.log").string());
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port); }
  ~Prometheus() {
    kill();
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
};

// waterline-sim on a free port; port() once it printed "listening on".
struct Sim : Child {
  uint16_t listenPort = 0;
  bool start(std::vector<std::string> args) {
    args.insert(args.begin(), {binaryDir() + "/tests/sim/waterline-sim", "--listen", "127.0.0.1:0"});
    Child::start(args, "/tmp/" + uniqueName("wl-sim") + ".log");
    return eventually([&] {
      auto s = readFile(log);
      auto p = s.find("listening on 127.0.0.1:");
      if (p == std::string::npos) return false;
      listenPort = uint16_t(std::stoi(s.substr(p + 23)));
      return true;
    }, std::chrono::seconds(30));
  }
};

}  // namespace waterline::it
