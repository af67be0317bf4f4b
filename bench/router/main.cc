// Router overhead benchmark (loopback only, bounded in count and time).
//
// One process holds a simulated upstream (a minimal keep-alive HTTP server answering a
// fixed OpenAI-style chat completion with usage) and a load generator. It starts the
// real waterline-router binary with --threads=1 (pinned to one core with taskset when
// available) and a routes file pointing at the upstream, then, in the same run:
//   1. open-loop at --rate requests/s, alternating phases DIRECT (client -> upstream)
//      and ROUTED (client -> router -> upstream), --rounds times each; latency is
//      measured from each request's scheduled send time (no coordinated omission);
//      the added latency is ROUTED minus DIRECT at p50 and p99;
//   2. closed-loop with --connections connections through the router for --seconds:
//      requests/s of one router core.
// A peer for the router: when nginx is found (--nginx-bin, default `nginx` on PATH or
// /usr/sbin/nginx; --nginx=off skips it), each round also runs a PROXIED phase
// (client -> nginx -> upstream), nginx being a plain reverse proxy with keep-alive
// upstream connections, one worker, pinned to the router's core, its configuration in a
// temporary directory, listening on loopback as the current user; it is killed on exit.
// Its added latency is PROXIED minus DIRECT, measured exactly like the router's.
// With --realtime=auto (the default) the open-loop phases run at SCHED_FIFO when the
// bench may set it, so that other processes on a shared machine cannot preempt the
// router, the load generator or the upstream mid-request (see docs/performance.md,
// "Router overhead"); the output says which policy was used. --dump-latencies=FILE
// writes every open-loop latency with its scheduled send time, to find stalls.
// Ends with RESULT lines.
#include <utility>

#include <boost/asio.hpp>

#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace {

struct Options {
  std::string routerBin;
  std::string workDir = "/tmp";
  int routerCpu = -1;  // -1: no pinning
  int clientCpu = -1;
  double rate = 10000;
  double phaseSeconds = 2.0;
  int rounds = 3;
  int connections = 32;
  double seconds = 3.0;
  int maxConnections = 64;
  std::string busyPoll = "0";  // passed to the router as --busy-poll
  std::string dumpPath;        // when set: every open-loop latency, in send order, one "path round us" per line
  std::string realtime = "auto";  // SCHED_FIFO for the open-loop phases: auto (when permitted), on, off
  std::string nginx = "auto";     // the nginx peer: auto (when found), on (fail without it), off
  std::string nginxBin;           // default: nginx on PATH, else /usr/sbin/nginx
};

const std::string kRequestBody =
    R"({"model":"bench-model","messages":[{"role":"system","content":"You are a helpful assistant."},)"
    R"({"role":"user","content":"Say hello in one word."}],"max_tokens":16})";

const std::string kResponseBody =
    R"({"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,"model":"bench-model",)"
    R"("choices":[{"index":0,"message":{"role":"assistant","content":"Hello"},"finish_reason":"stop"}],)"
    R"("usage":{"prompt_tokens":24,"completion_tokens":1,"total_tokens":25}})";

// Finds the end of an HTTP message (header + Content-Length body) in buf; 0 if incomplete.
size_t messageLength(const char* buf, size_t n) {
  const char* end = static_cast<const char*>(memmem(buf, n, "\r\n\r\n", 4));
  if (!end) return 0;
  size_t headerLen = static_cast<size_t>(end - buf) + 4;
  size_t contentLength = 0;
  // Case-insensitive search for content-length.
  for (size_t i = 0; i + 15 < headerLen; ++i) {
    if ((buf[i] == '\n') && strncasecmp(buf + i + 1, "content-length:", 15) == 0) {
      contentLength = std::strtoul(buf + i + 16, nullptr, 10);
      break;
    }
  }
  if (n < headerLen + contentLength) return 0;
  return headerLen + contentLength;
}

// ---- simulated upstream ----------------------------------------------------------

class Upstream {
 public:
  Upstream() : acceptor_(io_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
    response_ = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " +
                std::to_string(kResponseBody.size()) + "\r\n\r\n" + kResponseBody;
    accept();
    thread_ = std::thread([this] { io_.run(); });
  }
  ~Upstream() {
    io_.stop();
    thread_.join();
  }
  int port() const { return acceptor_.local_endpoint().port(); }

 private:
  struct Conn : std::enable_shared_from_this<Conn> {
    tcp::socket sock;
    const std::string& response;
    std::vector<char> buf = std::vector<char>(65536);
    size_t have = 0;
    std::string out;
    Conn(tcp::socket s, const std::string& r) : sock(std::move(s)), response(r) {}
    void read() {
      auto self = shared_from_this();
      sock.async_read_some(asio::buffer(buf.data() + have, buf.size() - have), [self](boost::system::error_code ec, size_t n) {
        if (ec) return;
        self->have += n;
        size_t replies = 0;
        size_t off = 0;
        while (size_t len = messageLength(self->buf.data() + off, self->have - off)) {
          off += len;
          ++replies;
        }
        std::memmove(self->buf.data(), self->buf.data() + off, self->have - off);
        self->have -= off;
        if (replies == 0) return self->read();
        self->out.clear();
        for (size_t i = 0; i < replies; ++i) self->out += self->response;
        asio::async_write(self->sock, asio::buffer(self->out), [self](boost::system::error_code ec, size_t) {
          if (!ec) self->read();
        });
      });
    }
  };
  void accept() {
    acceptor_.async_accept([this](boost::system::error_code ec, tcp::socket s) {
      if (!ec) {
        s.set_option(tcp::no_delay(true));
        std::make_shared<Conn>(std::move(s), response_)->read();
      }
      accept();
    });
  }
  asio::io_context io_{1};
  tcp::acceptor acceptor_;
  std::string response_;
  std::thread thread_;
};

// ---- load generator ---------------------------------------------------------------

struct ClientConn {
  tcp::socket sock;
  std::vector<char> buf = std::vector<char>(65536);
  size_t have = 0;
  bool busy = false;
  explicit ClientConn(asio::io_context& io) : sock(io) {}
};

class LoadGen {
 public:
  LoadGen(int port, std::string target, std::string hostHeader) : port_(port) {
    request_ = "POST " + target + " HTTP/1.1\r\nHost: " + hostHeader +
               "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(kRequestBody.size()) +
               "\r\n\r\n" + kRequestBody;
  }

  // Open loop: n requests at `rate`/s; returns latencies (ns) from scheduled send time.
  std::vector<double> openLoop(double rate, size_t n, int maxConns, size_t& errors) {
    asio::io_context io{1};
    std::vector<std::unique_ptr<ClientConn>> conns;
    std::deque<ClientConn*> idle;
    std::vector<double> lat;
    lat.reserve(n);
    sendOffsets_.clear();
    errors = 0;
    auto addConn = [&]() -> ClientConn* {
      auto c = std::make_unique<ClientConn>(io);
      boost::system::error_code ec;
      c->sock.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port_)), ec);
      if (ec) return nullptr;
      c->sock.set_option(tcp::no_delay(true));
      conns.push_back(std::move(c));
      return conns.back().get();
    };
    for (int i = 0; i < 16; ++i)
      if (auto* c = addConn()) idle.push_back(c);
    const auto start = Clock::now() + std::chrono::milliseconds(5);
    const double intervalNs = 1e9 / rate;
    size_t sent = 0, done = 0;
    std::deque<Clock::time_point> backlog;  // scheduled but waiting for a connection
    asio::steady_timer timer(io);
    std::function<void(ClientConn*, Clock::time_point)> send;
    std::function<void(ClientConn*, Clock::time_point)> readResp;
    readResp = [&](ClientConn* c, Clock::time_point scheduled) {
      c->sock.async_read_some(asio::buffer(c->buf.data() + c->have, c->buf.size() - c->have),
                              [&, c, scheduled](boost::system::error_code ec, size_t k) {
                                if (ec) {
                                  ++errors;
                                  ++done;
                                  return;
                                }
                                c->have += k;
                                size_t len = messageLength(c->buf.data(), c->have);
                                if (!len) return readResp(c, scheduled);
                                lat.push_back(std::chrono::duration<double, std::nano>(Clock::now() - scheduled).count());
                                sendOffsets_.push_back(std::chrono::duration<double, std::micro>(scheduled - start).count());
                                if (std::strncmp(c->buf.data(), "HTTP/1.1 200", 12) != 0) ++errors;
                                std::memmove(c->buf.data(), c->buf.data() + len, c->have - len);
                                c->have -= len;
                                ++done;
                                if (!backlog.empty()) {
                                  auto s = backlog.front();
                                  backlog.pop_front();
                                  send(c, s);
                                } else {
                                  idle.push_back(c);
                                }
                                if (done == n) io.stop();
                              });
    };
    send = [&](ClientConn* c, Clock::time_point scheduled) {
      asio::async_write(c->sock, asio::buffer(request_), [&, c, scheduled](boost::system::error_code ec, size_t) {
        if (ec) {
          ++errors;
          ++done;
          if (done == n) io.stop();
          return;
        }
        readResp(c, scheduled);
      });
    };
    std::function<void()> tick = [&] {
      auto now = Clock::now();
      while (sent < n) {
        auto due = start + std::chrono::nanoseconds(static_cast<int64_t>(static_cast<double>(sent) * intervalNs));
        if (due > now) {
          timer.expires_at(due);
          timer.async_wait([&](boost::system::error_code ec) {
            if (!ec) tick();
          });
          return;
        }
        ++sent;
        ClientConn* c = nullptr;
        if (!idle.empty()) {
          c = idle.front();
          idle.pop_front();
        } else if (static_cast<int>(conns.size()) < maxConns) {
          c = addConn();
        }
        if (c) send(c, due);
        else backlog.push_back(due);
      }
    };
    tick();
    // Hard bound on time: 5x the schedule plus 10 s.
    asio::steady_timer guard(io);
    guard.expires_after(std::chrono::nanoseconds(static_cast<int64_t>(intervalNs * static_cast<double>(n) * 5)) +
                        std::chrono::seconds(10));
    guard.async_wait([&](boost::system::error_code ec) {
      if (!ec) io.stop();
    });
    io.run();
    errors += n - std::min(n, lat.size() + errors);
    return lat;
  }

  // Closed loop: `connections` connections, each sending its next request when the
  // previous answer arrives, for `seconds`. Returns completed requests and latencies.
  size_t closedLoop(int connections, double seconds, std::vector<double>& lat, size_t& errors) {
    asio::io_context io{1};
    std::vector<std::unique_ptr<ClientConn>> conns;
    size_t completed = 0;
    errors = 0;
    bool stopping = false;
    std::function<void(ClientConn*)> go;
    std::function<void(ClientConn*, Clock::time_point)> rd;
    rd = [&](ClientConn* c, Clock::time_point t0) {
      c->sock.async_read_some(asio::buffer(c->buf.data() + c->have, c->buf.size() - c->have),
                              [&, c, t0](boost::system::error_code ec, size_t k) {
                                if (ec) {
                                  ++errors;
                                  return;
                                }
                                c->have += k;
                                size_t len = messageLength(c->buf.data(), c->have);
                                if (!len) return rd(c, t0);
                                if (std::strncmp(c->buf.data(), "HTTP/1.1 200", 12) != 0) ++errors;
                                std::memmove(c->buf.data(), c->buf.data() + len, c->have - len);
                                c->have -= len;
                                ++completed;
                                lat.push_back(std::chrono::duration<double, std::nano>(Clock::now() - t0).count());
                                go(c);
                              });
    };
    go = [&](ClientConn* c) {
      if (stopping) return;
      auto t0 = Clock::now();
      asio::async_write(c->sock, asio::buffer(request_), [&, c, t0](boost::system::error_code ec, size_t) {
        if (ec) {
          ++errors;
          return;
        }
        rd(c, t0);
      });
    };
    for (int i = 0; i < connections; ++i) {
      auto c = std::make_unique<ClientConn>(io);
      boost::system::error_code ec;
      c->sock.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port_)), ec);
      if (ec) continue;
      c->sock.set_option(tcp::no_delay(true));
      conns.push_back(std::move(c));
    }
    // Warm-up 0.3 s, then count.
    asio::steady_timer warm(io), end(io);
    for (auto& c : conns) go(c.get());
    size_t atWarm = 0;
    Clock::time_point measuredFrom;
    warm.expires_after(std::chrono::milliseconds(300));
    warm.async_wait([&](boost::system::error_code) {
      atWarm = completed;
      measuredFrom = Clock::now();
      lat.clear();
      end.expires_after(std::chrono::nanoseconds(static_cast<int64_t>(seconds * 1e9)));
      end.async_wait([&](boost::system::error_code) {
        stopping = true;
        io.stop();
      });
    });
    io.run();
    double elapsed = std::chrono::duration<double>(Clock::now() - measuredFrom).count();
    size_t n = completed - atWarm;
    lastElapsed_ = elapsed;
    return n;
  }
  double lastElapsed() const { return lastElapsed_; }
  // Scheduled send time (us from the phase start) of each latency the last openLoop returned.
  const std::vector<double>& sendOffsets() const { return sendOffsets_; }

 private:
  int port_;
  std::string request_;
  double lastElapsed_ = 0;
  std::vector<double> sendOffsets_;
};

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(std::min<double>(static_cast<double>(v.size() - 1), std::ceil(p * static_cast<double>(v.size())) - 1));
  return v[i];
}

bool pin(int cpu) {
  if (cpu < 0) return false;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  return sched_setaffinity(0, sizeof set, &set) == 0;
}

constexpr int kRealtimePriority = 10;

// Moves every thread listed under `taskDir` (/proc/<pid>/task) back to SCHED_OTHER.
void toNormalPriority(const std::string& taskDir) {
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(taskDir, ec)) {
    const pid_t tid = static_cast<pid_t>(std::atoi(e.path().filename().c_str()));
    sched_param sp{};
    if (tid > 0 && sched_setscheduler(tid, SCHED_OTHER, &sp) != 0)
      std::fprintf(stderr, "router_bench: cannot reset thread %d to SCHED_OTHER: %s\n", tid, std::strerror(errno));
  }
}

std::string isoNow() {
  auto t = std::chrono::system_clock::now();
  auto secs = std::chrono::system_clock::to_time_t(t);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&secs));
  return buf;
}

// A free loopback port (bound, read, released: nginx cannot report a port 0 it chose).
int freePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  int port = -1;
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0)
    port = ntohs(a.sin_port);
  close(fd);
  return port;
}

std::string findNginx(const std::string& given) {
  if (!given.empty()) return given;
  if (const char* path = std::getenv("PATH")) {
    std::string p = path;
    size_t start = 0;
    while (start <= p.size()) {
      size_t end = p.find(':', start);
      if (end == std::string::npos) end = p.size();
      std::string cand = p.substr(start, end - start) + "/nginx";
      if (end > start && access(cand.c_str(), X_OK) == 0) return cand;
      start = end + 1;
    }
  }
  if (access("/usr/sbin/nginx", X_OK) == 0) return "/usr/sbin/nginx";
  return "";
}

// nginx as a plain reverse proxy to the upstream: one process (no master), keep-alive
// to the client and to the upstream (64 idle upstream connections kept, as many
// requests per connection as the run sends), no access log, temp paths in `dir`.
struct NginxPeer {
  pid_t pid = -1;
  int port = -1;
  std::string dir;
  std::string error;
};

NginxPeer startNginx(const std::string& bin, const std::string& workDir, int upstreamPort, int cpu) {
  NginxPeer n;
  char tmpl[4096];
  std::snprintf(tmpl, sizeof tmpl, "%s/router-bench-nginx-XXXXXX", workDir.c_str());
  if (!mkdtemp(tmpl)) {
    n.error = std::string("mkdtemp: ") + std::strerror(errno);
    return n;
  }
  n.dir = tmpl;
  n.port = freePort();
  if (n.port <= 0) {
    n.error = "no free port";
    return n;
  }
  {
    std::ofstream f(n.dir + "/nginx.conf");
    f << "daemon off;\nmaster_process off;\nworker_processes 1;\n"
      << "pid " << n.dir << "/nginx.pid;\n"
      << "error_log " << n.dir << "/error.log warn;\n"
      << "events { worker_connections 4096; multi_accept on; }\n"
      << "http {\n"
      << "  access_log off;\n"
      << "  client_body_temp_path " << n.dir << "/body;\n"
      << "  proxy_temp_path " << n.dir << "/proxy;\n"
      << "  fastcgi_temp_path " << n.dir << "/fastcgi;\n"
      << "  uwsgi_temp_path " << n.dir << "/uwsgi;\n"
      << "  scgi_temp_path " << n.dir << "/scgi;\n"
      << "  keepalive_requests 10000000;\n  keepalive_timeout 300s;\n  tcp_nodelay on;\n"
      << "  upstream bench_upstream {\n"
      << "    server 127.0.0.1:" << upstreamPort << ";\n"
      << "    keepalive 64;\n    keepalive_requests 10000000;\n    keepalive_timeout 300s;\n"
      << "  }\n"
      << "  server {\n"
      << "    listen 127.0.0.1:" << n.port << ";\n"
      << "    location / {\n"
      << "      proxy_pass http://bench_upstream;\n"
      << "      proxy_http_version 1.1;\n"
      << "      proxy_set_header Connection \"\";\n"
      << "    }\n"
      << "  }\n"
      << "}\n";
  }
  pid_t pid = fork();
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGTERM);  // killed with the bench, however it ends
    if (cpu >= 0) pin(cpu);
    std::string conf = n.dir + "/nginx.conf";
    std::string err = n.dir + "/error.log";
    // -e (nginx >= 1.19.5): the startup error log, before the configuration is read.
    execl(bin.c_str(), bin.c_str(), "-p", n.dir.c_str(), "-e", err.c_str(), "-c", conf.c_str(), (char*)nullptr);
    _exit(127);
  }
  if (pid < 0) {
    n.error = std::string("fork: ") + std::strerror(errno);
    return n;
  }
  n.pid = pid;
  // Wait (at most 5 s) until it accepts.
  for (int i = 0; i < 500; ++i) {
    int st = 0;
    if (waitpid(pid, &st, WNOHANG) == pid) {
      n.pid = -1;
      std::ifstream e(n.dir + "/error.log");
      std::string log((std::istreambuf_iterator<char>(e)), std::istreambuf_iterator<char>());
      n.error = "nginx exited at start: " + log;
      return n;
    }
    asio::io_context io;
    tcp::socket s(io);
    boost::system::error_code ec;
    s.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(n.port)), ec);
    if (!ec) return n;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  n.error = "nginx did not accept within 5 s";
  return n;
}

void stopNginx(NginxPeer& n) {
  if (n.pid > 0) {
    kill(n.pid, SIGTERM);
    int st = 0;
    waitpid(n.pid, &st, 0);
    n.pid = -1;
  }
  if (!n.dir.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(n.dir, ec);
  }
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto val = [&](const char* name) -> const char* {
      size_t n = std::strlen(name);
      if (a.compare(0, n, name) == 0 && a.size() > n && a[n] == '=') return argv[i] + n + 1;
      return nullptr;
    };
    if (auto v = val("--router-bin")) o.routerBin = v;
    else if (auto v2 = val("--work-dir")) o.workDir = v2;
    else if (auto v3 = val("--router-cpu")) o.routerCpu = std::atoi(v3);
    else if (auto v4 = val("--client-cpu")) o.clientCpu = std::atoi(v4);
    else if (auto v5 = val("--rate")) o.rate = std::atof(v5);
    else if (auto v6 = val("--phase-seconds")) o.phaseSeconds = std::atof(v6);
    else if (auto v7 = val("--rounds")) o.rounds = std::atoi(v7);
    else if (auto v8 = val("--connections")) o.connections = std::atoi(v8);
    else if (auto v9 = val("--seconds")) o.seconds = std::atof(v9);
    else if (auto v10 = val("--busy-poll")) o.busyPoll = v10;
    else if (auto v11 = val("--dump-latencies")) o.dumpPath = v11;
    else if (auto v12 = val("--realtime")) o.realtime = v12;
    else if (auto v13 = val("--nginx")) o.nginx = v13;
    else if (auto v14 = val("--nginx-bin")) o.nginxBin = v14;
    else {
      std::fprintf(stderr, "usage: router_bench --router-bin=PATH [--router-cpu=N --client-cpu=N --rate=R "
                           "--phase-seconds=S --rounds=N --connections=C --seconds=S --work-dir=DIR "
                           "--busy-poll=DUR --realtime=auto|on|off --dump-latencies=FILE --nginx=auto|on|off "
                           "--nginx-bin=PATH]\n");
      return 2;
    }
  }
  if (o.routerBin.empty()) {
    std::fprintf(stderr, "router_bench: --router-bin is required\n");
    return 2;
  }
  // Bounds: at most 100k requests per phase and 30 s of closed loop.
  o.rate = std::clamp(o.rate, 100.0, 50000.0);
  o.phaseSeconds = std::clamp(o.phaseSeconds, 0.2, 10.0);
  o.rounds = std::clamp(o.rounds, 1, 10);
  o.seconds = std::clamp(o.seconds, 0.5, 30.0);
  o.connections = std::clamp(o.connections, 1, 512);

  if (o.realtime != "auto" && o.realtime != "on" && o.realtime != "off") {
    std::fprintf(stderr, "router_bench: --realtime must be auto, on or off\n");
    return 2;
  }
  // Real-time isolation for the open-loop phases: the load generator, the upstream and
  // (inherited through fork and exec) the router run at SCHED_FIFO, so that other
  // processes on a shared machine cannot preempt them mid-request. All three block in
  // epoll between requests, so they leave the cores to everyone else; the kernel's RT
  // throttling bounds them anyway. Both paths, DIRECT and ROUTED, run under the same
  // policy. The closed-loop phase, which saturates a core, runs at normal priority.
  bool realtime = false;
  if (o.realtime != "off") {
    sched_param sp{};
    sp.sched_priority = kRealtimePriority;
    realtime = sched_setscheduler(0, SCHED_FIFO, &sp) == 0;
    if (!realtime && o.realtime == "on") {
      std::fprintf(stderr, "router_bench: --realtime=on but SCHED_FIFO is not permitted: %s\n", std::strerror(errno));
      return 2;
    }
  }
  if (o.nginx != "auto" && o.nginx != "on" && o.nginx != "off") {
    std::fprintf(stderr, "router_bench: --nginx must be auto, on or off\n");
    return 2;
  }
  const bool pinnedClient = pin(o.clientCpu);
  Upstream upstream;

  // Routes file for the router: one Global deployment, one pool, the upstream.
  std::filesystem::create_directories(o.workDir);
  const std::string routesPath = o.workDir + "/router-bench-routes.json";
  {
    std::ofstream f(routesPath);
    f << R"({"apiVersion":"waterline.dev/v1alpha1","kind":"RoutingTableList","items":[{"apiVersion":"waterline.dev/v1alpha1","kind":"RoutingTable","metadata":{"name":"bench.llama"},"spec":{)"
      << R"("deployment":{"namespace":"bench","name":"llama"},"model":"bench-model","deploymentType":"Global",)"
      << R"("entries":[{"pool":"local","region":"local","dataZone":"LOCAL","endpoints":["127.0.0.1:)" << upstream.port()
      << R"("],"capacityTokensPerMinute":1000000000,"loadTokensPerMinute":0,"utilization":0,"healthy":true,"weight":1,"heartbeatTime":")"
      << isoNow() << R"("}]}}]})";
  }

  // Start the router pinned to its core.
  int pipefd[2];
  if (pipe(pipefd) != 0) return 1;
  pid_t pid = fork();
  if (pid == 0) {
    if (o.routerCpu >= 0) pin(o.routerCpu);
    dup2(pipefd[1], 1);
    close(pipefd[0]);
    std::string routesFlag = "--routes-file=" + routesPath;
    std::string busyFlag = "--busy-poll=" + o.busyPoll;
    execl(o.routerBin.c_str(), o.routerBin.c_str(), "--listen=127.0.0.1:0", "--threads=1", "--stale-after=0",
          "--log-level=warn", routesFlag.c_str(), busyFlag.c_str(), (char*)nullptr);
    _exit(127);
  }
  close(pipefd[1]);
  std::string line;
  char ch;
  while (read(pipefd[0], &ch, 1) == 1 && ch != '\n') line += ch;
  auto colon = line.rfind(':');
  if (colon == std::string::npos) {
    std::fprintf(stderr, "router_bench: router did not start (%s)\n", line.c_str());
    kill(pid, SIGTERM);
    return 1;
  }
  const int routerPort = std::atoi(line.c_str() + colon + 1);

  // The nginx peer, on the router's core, started the same way (inheriting the policy).
  NginxPeer nginx;
  if (o.nginx != "off") {
    const std::string bin = findNginx(o.nginxBin);
    if (bin.empty()) {
      nginx.error = "nginx not found (install nginx-light, or pass --nginx-bin)";
    } else {
      nginx = startNginx(bin, o.workDir, upstream.port(), o.routerCpu);
    }
    if (!nginx.error.empty()) {
      std::printf("router_bench: nginx peer not run: %s\n", nginx.error.c_str());
      if (o.nginx == "on") {
        stopNginx(nginx);
        kill(pid, SIGTERM);
        waitpid(pid, nullptr, 0);
        return 1;
      }
      stopNginx(nginx);
    } else {
      std::printf("router_bench: nginx peer %s pid %d on port %d (cpu %s, 1 process, keep-alive upstream)\n",
                  bin.c_str(), nginx.pid, nginx.port,
                  o.routerCpu >= 0 ? std::to_string(o.routerCpu).c_str() : "any");
    }
  }
  const bool withNginx = nginx.pid > 0;

  std::printf("router_bench: router pid %d on port %d (cpu %s, --busy-poll=%s), client+upstream on cpu %s, rate %.0f/s, "
              "%d rounds x %.1f s\n",
              pid, routerPort, o.routerCpu >= 0 ? std::to_string(o.routerCpu).c_str() : "any", o.busyPoll.c_str(),
              pinnedClient ? std::to_string(o.clientCpu).c_str() : "any", o.rate, o.rounds, o.phaseSeconds);
  std::printf("router_bench: open-loop phases %s\n",
              (realtime ? "at SCHED_FIFO " + std::to_string(kRealtimePriority) + " (router, load generator, upstream)"
                       : std::string("at normal priority (SCHED_FIFO off or not permitted)"))
                  .c_str());

  LoadGen direct(upstream.port(), "/v1/chat/completions", "upstream");
  LoadGen routed(routerPort, "/v1/chat/completions", "router");
  LoadGen proxied(withNginx ? nginx.port : 0, "/v1/chat/completions", "nginx");
  const size_t n = static_cast<size_t>(o.rate * o.phaseSeconds);

  // Warm-up both paths.
  size_t errs = 0;
  direct.openLoop(o.rate / 4, n / 4 + 1, 256, errs);
  routed.openLoop(o.rate / 4, n / 4 + 1, 256, errs);
  if (withNginx) {
    size_t e = 0;
    proxied.openLoop(o.rate / 4, n / 4 + 1, 256, e);
    errs += e;
  }
  if (errs) std::printf("router_bench: warm-up errors: %zu\n", errs);

  std::vector<double> dAll, rAll, nAll;
  std::vector<double> roundAddedP99;  // per round: routed p99 - direct p99
  size_t dErr = 0, rErr = 0, nErr = 0;
  std::FILE* dump = o.dumpPath.empty() ? nullptr : std::fopen(o.dumpPath.c_str(), "w");
  if (!o.dumpPath.empty() && !dump)
    std::fprintf(stderr, "router_bench: cannot write %s: %s\n", o.dumpPath.c_str(), std::strerror(errno));
  auto dumpPhase = [&](const char* path, int round, const std::vector<double>& lat, const LoadGen& g) {
    if (!dump) return;
    for (size_t i = 0; i < lat.size() && i < g.sendOffsets().size(); ++i)
      std::fprintf(dump, "%s %d %.1f %.1f\n", path, round, g.sendOffsets()[i], lat[i] / 1e3);
  };
  for (int round = 0; round < o.rounds; ++round) {
    size_t e1 = 0, e2 = 0;
    auto d = direct.openLoop(o.rate, n, o.maxConnections, e1);
    dumpPhase("direct", round + 1, d, direct);
    auto r = routed.openLoop(o.rate, n, o.maxConnections, e2);
    dumpPhase("routed", round + 1, r, routed);
    std::vector<double> x;
    size_t e3 = 0;
    if (withNginx) {
      x = proxied.openLoop(o.rate, n, o.maxConnections, e3);
      dumpPhase("nginx", round + 1, x, proxied);
    }
    std::printf("  round %d: direct p50 %.1f us p99 %.1f us | routed p50 %.1f us p99 %.1f us | errors %zu/%zu\n", round + 1,
                percentile(d, 0.5) / 1e3, percentile(d, 0.99) / 1e3, percentile(r, 0.5) / 1e3,
                percentile(r, 0.99) / 1e3, e1, e2);
    if (withNginx)
      std::printf("           nginx p50 %.1f us p99 %.1f us | errors %zu\n", percentile(x, 0.5) / 1e3,
                  percentile(x, 0.99) / 1e3, e3);
    nAll.insert(nAll.end(), x.begin(), x.end());
    nErr += e3;
    roundAddedP99.push_back((percentile(r, 0.99) - percentile(d, 0.99)) / 1e3);
    dAll.insert(dAll.end(), d.begin(), d.end());
    rAll.insert(rAll.end(), r.begin(), r.end());
    dErr += e1;
    rErr += e2;
  }
  if (dump) std::fclose(dump);
  const double dp50 = percentile(dAll, 0.5) / 1e3, dp99 = percentile(dAll, 0.99) / 1e3;
  const double rp50 = percentile(rAll, 0.5) / 1e3, rp99 = percentile(rAll, 0.99) / 1e3;
  std::printf("open loop at %.0f req/s, %zu requests per path:\n", o.rate, dAll.size());
  std::printf("  direct: p50 %.1f us  p99 %.1f us  p99.9 %.1f us  errors %zu\n", dp50, dp99, percentile(dAll, 0.999) / 1e3, dErr);
  std::printf("  routed: p50 %.1f us  p99 %.1f us  p99.9 %.1f us  errors %zu\n", rp50, rp99, percentile(rAll, 0.999) / 1e3, rErr);
  std::printf("  added:  p50 %.1f us  p99 %.1f us\n", rp50 - dp50, rp99 - dp99);
  const double np50 = percentile(nAll, 0.5) / 1e3, np99 = percentile(nAll, 0.99) / 1e3;
  if (withNginx) {
    std::printf("  nginx:  p50 %.1f us  p99 %.1f us  p99.9 %.1f us  errors %zu\n", np50, np99,
                percentile(nAll, 0.999) / 1e3, nErr);
    std::printf("  nginx added: p50 %.1f us  p99 %.1f us\n", np50 - dp50, np99 - dp99);
  }
  std::printf("  percentiles (us)    p50     p75     p90     p95     p98     p99   p99.5\n");
  for (const auto* v : {&dAll, &rAll, &nAll}) {
    if (v->empty()) continue;
    std::printf("  %-16s", v == &dAll ? "direct" : v == &rAll ? "routed" : "nginx");
    for (double q : {0.5, 0.75, 0.9, 0.95, 0.98, 0.99, 0.995}) std::printf(" %7.1f", percentile(*v, q) / 1e3);
    std::printf("\n");
  }

  // Closed loop through the router: its throughput on one core, at normal priority (a
  // saturated SCHED_FIFO thread would run into RT throttling and starve its core).
  if (realtime) {
    toNormalPriority("/proc/self/task");
    toNormalPriority("/proc/" + std::to_string(pid) + "/task");
    if (withNginx) toNormalPriority("/proc/" + std::to_string(nginx.pid) + "/task");
  }
  std::vector<double> cl;
  size_t clErr = 0;
  size_t done = routed.closedLoop(o.connections, o.seconds, cl, clErr);
  const double rps = static_cast<double>(done) / routed.lastElapsed();
  std::vector<double> cld;
  size_t cldErr = 0;
  size_t doneDirect = direct.closedLoop(o.connections, std::min(o.seconds, 2.0), cld, cldErr);
  std::printf("closed loop, %d connections: routed %.0f req/s (p50 %.1f us, p99 %.1f us, errors %zu); direct %.0f req/s\n",
              o.connections, rps, percentile(cl, 0.5) / 1e3, percentile(cl, 0.99) / 1e3, clErr,
              static_cast<double>(doneDirect) / direct.lastElapsed());

  kill(pid, SIGTERM);
  int status = 0;
  waitpid(pid, &status, 0);
  stopNginx(nginx);
  std::filesystem::remove(routesPath);

  const bool ok = dErr == 0 && rErr == 0 && clErr == 0 && nErr == 0;
  if (!ok) std::printf("router_bench: WARNING: errors during the run (see above)\n");
  std::printf("RESULT router_added_latency_p50_us %.1f us\n", rp50 - dp50);
  std::printf("RESULT router_added_latency_p99_us %.1f us\n", rp99 - dp99);
  std::printf("RESULT router_requests_per_sec_per_core %.0f 1/s\n", rps);
  // The median over rounds of each round's added p99: one round hit by a stall from
  // outside the benchmark moves the pooled p99 above, not this.
  std::printf("RESULT router_added_latency_p99_median_round_us %.1f us\n", percentile(roundAddedP99, 0.5));
  if (withNginx) {
    std::printf("RESULT nginx_added_latency_p50_us %.1f us\n", np50 - dp50);
    std::printf("RESULT nginx_added_latency_p99_us %.1f us\n", np99 - dp99);
    // Ratios of added latencies; undefined when nginx adds nothing measurable.
    if (np50 - dp50 > 0)
      std::printf("RESULT router_added_p50_ratio_vs_nginx %.2f ratio\n", (rp50 - dp50) / (np50 - dp50));
    if (np99 - dp99 > 0)
      std::printf("RESULT router_added_p99_ratio_vs_nginx %.2f ratio\n", (rp99 - dp99) / (np99 - dp99));
  }
  return ok ? 0 : 1;
}
