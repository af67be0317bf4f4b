// Router under abuse (docs/security.md, "Router"; docs/operations.md, "Limits").
//
// One process holds a loopback upstream (thread per connection, any body size, a small
// chat completion as the answer) and a routes file pointing at it, starts
// waterline-router with its default limits, then for --seconds at once:
//   * --slow slowloris connections: each sends a request line and the start of a field,
//     then one byte every --trickle-ms; a connection the router closes is opened again;
//   * --bodies threads each sending a --body-bytes JSON request after another, at full
//     speed (answers: 200 when admitted, 503 when --max-body-bytes-in-flight is full);
//   * one good client sending ordinary small requests over keep-alive.
// The router's RSS is sampled from /proc/<pid>/status (VmRSS every 20 ms, and VmHWM at
// the end). Prints:
//   RESULT router_rss_mib_under_abuse <peak MiB> MiB   (goal < 256)
//   RESULT router_good_requests_answered_pct_under_abuse <200s / sent x 100> pct
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

namespace {

struct Options {
  std::string routerBin;
  std::string workDir = "/tmp";
  double seconds = 30;
  int slow = 1000;
  int bodies = 64;
  std::size_t bodyBytes = 4000000;
  int trickleMs = 500;
  std::vector<std::string> routerFlags;  // --router-flag=...: passed on
};

const std::string kCompletion =
    R"({"id":"cmpl-1","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},)"
    R"("finish_reason":"stop"}],"usage":{"prompt_tokens":10,"completion_tokens":1,"total_tokens":11}})";

// ---- upstream: a thread per connection, any body ------------------------------------

class Upstream {
 public:
  Upstream() : acceptor_(io_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
    thread_ = std::thread([this] {
      for (;;) {
        beast::error_code ec;
        tcp::socket s(io_);
        acceptor_.accept(s, ec);
        if (ec) return;
        std::thread([sock = std::move(s)]() mutable { serve(std::move(sock)); }).detach();
      }
    });
  }
  ~Upstream() {
    ::shutdown(acceptor_.native_handle(), SHUT_RDWR);
    beast::error_code ec;
    acceptor_.close(ec);
    thread_.join();
  }
  int port() const { return acceptor_.local_endpoint().port(); }

 private:
  static void serve(tcp::socket sock) {
    beast::flat_buffer buf;
    for (;;) {
      beast::error_code ec;
      http::request_parser<http::string_body> p;
      p.body_limit(64u << 20);
      http::read(sock, buf, p, ec);
      if (ec) return;
      http::response<http::string_body> res{http::status::ok, 11};
      res.set(http::field::content_type, "application/json");
      res.body() = kCompletion;
      res.keep_alive(p.get().keep_alive());
      res.prepare_payload();
      http::write(sock, res, ec);
      if (ec || !p.get().keep_alive()) return;
    }
  }
  asio::io_context io_;
  tcp::acceptor acceptor_;
  std::thread thread_;
};

int connectTo(int port, bool nonBlocking) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (nonBlocking) ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  return fd;
}

long rssKiB(pid_t pid, const char* key) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  const std::string k = std::string(key) + ":";
  while (std::getline(f, line))
    if (line.rfind(k, 0) == 0) return std::atol(line.c_str() + k.size());
  return -1;
}

std::string chatBody(std::size_t bytes) {
  std::string head = R"({"model":"bench/llama","messages":[{"role":"user","content":")";
  std::string tail = R"("}],"max_tokens":16})";
  std::string body = head;
  if (bytes > head.size() + tail.size()) body.append(bytes - head.size() - tail.size(), 'x');
  body += tail;
  return body;
}

std::string request(const std::string& body) {
  return "POST /v1/chat/completions HTTP/1.1\r\nHost: router\r\nContent-Type: application/json\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\n\r\n" + body;
}

bool parseArgs(int argc, char** argv, Options& o) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto val = [&](const char* name) -> const char* {
      std::string p = std::string("--") + name + "=";
      return a.rfind(p, 0) == 0 ? argv[i] + p.size() : nullptr;
    };
    if (auto v = val("router-bin")) o.routerBin = v;
    else if (auto v = val("work-dir")) o.workDir = v;
    else if (auto v = val("seconds")) o.seconds = std::atof(v);
    else if (auto v = val("slow")) o.slow = std::atoi(v);
    else if (auto v = val("bodies")) o.bodies = std::atoi(v);
    else if (auto v = val("body-bytes")) o.bodyBytes = std::strtoull(v, nullptr, 10);
    else if (auto v = val("trickle-ms")) o.trickleMs = std::atoi(v);
    else if (auto v = val("router-flag")) o.routerFlags.push_back(v);
    else {
      std::fprintf(stderr, "router_abuse_bench: unknown flag %s\n", a.c_str());
      return false;
    }
  }
  if (o.routerBin.empty() || o.seconds <= 0 || o.seconds > 50) {
    std::fprintf(stderr, "router_abuse_bench: need --router-bin; --seconds in (0, 50]\n");
    return false;
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  signal(SIGPIPE, SIG_IGN);
  Options o;
  if (!parseArgs(argc, argv, o)) return 2;
  Upstream upstream;

  std::filesystem::create_directories(o.workDir);
  const std::string routesPath = o.workDir + "/router-abuse-routes-" + std::to_string(getpid()) + ".json";
  {
    std::ofstream f(routesPath);
    f << R"({"apiVersion":"waterline.dev/v1alpha1","kind":"RoutingTableList","items":[{"apiVersion":"waterline.dev/v1alpha1","kind":"RoutingTable","metadata":{"name":"bench.llama"},"spec":{)"
      << R"("deployment":{"namespace":"bench","name":"llama"},"model":"bench-model","deploymentType":"Global",)"
      // --stale-after=0: the heartbeat's age does not matter.
      << R"("entries":[{"pool":"local","region":"local","dataZone":"LOCAL","endpoints":["127.0.0.1:)" << upstream.port()
      << R"("],"capacityTokensPerMinute":1000000000,"loadTokensPerMinute":0,"utilization":0,"healthy":true,"weight":1,"heartbeatTime":"2026-01-01T00:00:00.000000Z"}]}}]})";
  }

  int pipefd[2];
  if (pipe(pipefd) != 0) return 1;
  pid_t pid = fork();
  if (pid == 0) {
    dup2(pipefd[1], 1);
    close(pipefd[0]);
    std::vector<std::string> args = {o.routerBin, "--listen=127.0.0.1:0", "--threads=2", "--stale-after=0",
                                     "--log-level=error", "--routes-file=" + routesPath};
    for (const auto& f : o.routerFlags) args.push_back(f);
    std::vector<char*> argvv;
    for (auto& a : args) argvv.push_back(a.data());
    argvv.push_back(nullptr);
    execv(o.routerBin.c_str(), argvv.data());
    _exit(127);
  }
  close(pipefd[1]);
  std::string line;
  char ch;
  while (read(pipefd[0], &ch, 1) == 1 && ch != '\n') line += ch;
  auto colon = line.rfind(':');
  if (colon == std::string::npos) {
    std::fprintf(stderr, "router_abuse_bench: router did not start (%s)\n", line.c_str());
    kill(pid, SIGTERM);
    waitpid(pid, nullptr, 0);
    return 1;
  }
  const int port = std::atoi(line.c_str() + colon + 1);
  // Routes are loaded from the file asynchronously: wait (bounded) for one good answer.
  const std::string small = request(chatBody(200));
  {
    bool ready = false;
    for (int i = 0; i < 500 && !ready; ++i) {
      try {
        asio::io_context io;
        tcp::socket s(io);
        s.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port)));
        asio::write(s, asio::buffer(small));
        beast::flat_buffer b;
        http::response<http::string_body> r;
        http::read(s, b, r);
        ready = r.result_int() == 200;
      } catch (const std::exception&) {
      }
      if (!ready) std::this_thread::sleep_for(10ms);
    }
    if (!ready) {
      std::fprintf(stderr, "router_abuse_bench: router never answered 200\n");
      kill(pid, SIGTERM);
      waitpid(pid, nullptr, 0);
      return 1;
    }
  }
  const long baseKiB = rssKiB(pid, "VmRSS");
  std::printf("router_abuse_bench: router pid %d on port %d, %d slow connections, %d x %zu-byte bodies, %.0f s; "
              "router RSS at start %.1f MiB\n",
              pid, port, o.slow, o.bodies, o.bodyBytes, o.seconds, baseKiB / 1024.0);
  std::fflush(stdout);

  std::atomic<bool> stop{false};
  std::atomic<long> peakKiB{baseKiB};
  std::thread sampler([&] {
    while (!stop.load()) {
      long v = rssKiB(pid, "VmRSS");
      if (v > peakKiB.load()) peakKiB = v;
      std::this_thread::sleep_for(20ms);
    }
  });

  // Large bodies.
  std::atomic<long> bigSent{0}, big200{0}, big503{0}, bigOther{0};
  const std::string big = request(chatBody(o.bodyBytes));
  std::vector<std::thread> bodies;
  for (int t = 0; t < o.bodies; ++t)
    bodies.emplace_back([&] {
      while (!stop.load()) {
        try {
          asio::io_context io;
          tcp::socket s(io);
          s.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port)));
          beast::flat_buffer b;
          while (!stop.load()) {
            bigSent++;
            beast::error_code wec;
            asio::write(s, asio::buffer(big), wec);  // a refused one is closed mid-body
            http::response<http::string_body> r;
            beast::error_code ec;
            http::read(s, b, r, ec);
            if (ec) {
              bigOther++;
              break;
            }
            if (r.result_int() == 200) big200++;
            else if (r.result_int() == 503) big503++;
            else bigOther++;
            if (!r.keep_alive()) break;
          }
        } catch (const std::exception&) {
          bigOther++;
          std::this_thread::sleep_for(10ms);
        }
      }
    });

  // The good client.
  std::atomic<long> goodSent{0}, goodOk{0};
  std::thread good([&] {
    while (!stop.load()) {
      try {
        asio::io_context io;
        tcp::socket s(io);
        s.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port)));
        beast::flat_buffer b;
        while (!stop.load()) {
          goodSent++;
          asio::write(s, asio::buffer(small));
          http::response<http::string_body> r;
          http::read(s, b, r);
          if (r.result_int() == 200) goodOk++;
          if (!r.keep_alive()) break;
          std::this_thread::sleep_for(10ms);
        }
      } catch (const std::exception&) {
        std::this_thread::sleep_for(10ms);
      }
    }
  });

  // Slowloris, on this thread.
  const std::string slowStart = "POST /v1/chat/completions HTTP/1.1\r\nHost: router\r\nX-Slow: ";
  std::vector<int> slow(static_cast<std::size_t>(o.slow), -1);
  long reopened = 0, slowFailed = 0;
  auto open = [&](int& fd) {
    fd = connectTo(port, true);
    if (fd < 0) {
      ++slowFailed;
      return;
    }
    if (::send(fd, slowStart.data(), slowStart.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(slowStart.size())) {
      ::close(fd);
      fd = -1;
    }
  };
  for (auto& fd : slow) open(fd);
  const auto t0 = std::chrono::steady_clock::now();
  const auto end = t0 + std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(o.seconds));
  while (std::chrono::steady_clock::now() < end) {
    for (auto& fd : slow) {
      if (fd >= 0) {
        char c;
        ssize_t n = ::recv(fd, &c, 1, MSG_DONTWAIT);
        bool closed = n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) || n > 0;
        if (!closed && ::send(fd, "a", 1, MSG_NOSIGNAL) != 1) closed = true;
        if (!closed) continue;
        ::close(fd);
        fd = -1;
      }
      ++reopened;
      open(fd);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(o.trickleMs));
  }
  stop = true;
  for (auto& fd : slow)
    if (fd >= 0) ::close(fd);
  good.join();
  for (auto& t : bodies) t.join();
  sampler.join();
  const long hwmKiB = rssKiB(pid, "VmHWM");
  const long peak = std::max(peakKiB.load(), hwmKiB);
  kill(pid, SIGTERM);
  waitpid(pid, nullptr, 0);
  std::filesystem::remove(routesPath);

  std::printf("router_abuse_bench: slow connections reopened %ld (failed to open %ld); large bodies sent %ld: "
              "%ld answered 200, %ld answered 503, %ld cut or other\n",
              reopened, slowFailed, bigSent.load(), big200.load(), big503.load(), bigOther.load());
  std::printf("router_abuse_bench: good client %ld sent, %ld answered 200; router RSS peak %.1f MiB (VmHWM %.1f MiB)\n",
              goodSent.load(), goodOk.load(), peak / 1024.0, hwmKiB / 1024.0);
  const double pct = goodSent.load() ? 100.0 * static_cast<double>(goodOk.load()) / static_cast<double>(goodSent.load()) : 0;
  std::printf("RESULT router_rss_mib_under_abuse %.1f MiB\n", peak / 1024.0);
  std::printf("RESULT router_good_requests_answered_pct_under_abuse %.1f pct\n", pct);
  return 0;
}
