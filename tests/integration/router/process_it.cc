// The waterline-router binary as a process: flags, --routes-file reload, SIGTERM and the
// graceful drain (router/drain.h: --shutdown-delay, --shutdown-grace).
#include "support.h"

#include <gtest/gtest.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <future>
#include <sstream>

#include <nlohmann/json.hpp>

#include "waterline/routing/table.h"

namespace waterline::router {
namespace {

using namespace testing;
using json = nlohmann::json;

routing::RoutingTable tableFor(const std::string& endpoint, const std::string& pool) {
  routing::DeploymentRoutes d;
  d.deployment = {"team", "llama"};
  d.model = "meta-llama/Llama-3.1-8B-Instruct";
  d.deploymentType = api::DeploymentType::Global;
  routing::RoutingEntry e;
  e.pool = pool;
  e.region = "eu-west";
  e.dataZone = "EU";
  e.endpoints = {endpoint};
  e.healthy = true;
  e.heartbeatTime = std::chrono::system_clock::now();
  d.entries = {e};
  routing::RoutingTable t;
  t.deployments = {d};
  t.normalize();
  return t;
}

void writeAtomically(const std::filesystem::path& p, const std::string& s) {
  auto tmp = p;
  tmp += ".tmp";
  std::ofstream(tmp) << s;
  std::filesystem::rename(tmp, p);
}

TEST(RouterProcess, HelpAndBadFlags) {
  std::string help;
  FILE* f = popen(WATERLINE_ROUTER_BIN " --help", "r");
  ASSERT_NE(f, nullptr);
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) help.append(buf, n);
  EXPECT_EQ(WEXITSTATUS(pclose(f)), 0);
  EXPECT_NE(help.find("--routes-file"), std::string::npos);
  EXPECT_EQ(WEXITSTATUS(std::system(WATERLINE_ROUTER_BIN " --bogus 2>/dev/null")), 2);
  EXPECT_EQ(WEXITSTATUS(std::system(WATERLINE_ROUTER_BIN " 2>/dev/null")), 2);  // no routes source
}

TEST(RouterProcess, ServesFromARoutesFileAndReloadsIt) {
  TestUpstream a([](const SeenRequest&) { return TestUpstream::completion(1, 1, "from-a"); });
  TestUpstream b([](const SeenRequest&) { return TestUpstream::completion(1, 1, "from-b"); });
  auto dir = std::filesystem::temp_directory_path() / ("wl-router-it-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  auto routes = dir / "routes.json";
  writeAtomically(routes, tableFor(a.endpoint(), "pool-a").toJson().dump());

  int out[2];
  ASSERT_EQ(pipe(out), 0);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    dup2(out[1], 1);
    close(out[0]);
    std::string flag = "--routes-file=" + routes.string();
    execl(WATERLINE_ROUTER_BIN, WATERLINE_ROUTER_BIN, "--listen=127.0.0.1:0", "--threads=1",
          "--routes-poll-interval=50ms", "--log-level=warn", "--shutdown-delay=0", flag.c_str(), (char*)nullptr);
    _exit(127);
  }
  close(out[1]);
  std::string line;
  char c;
  while (read(out[0], &c, 1) == 1 && c != '\n') line += c;
  auto colon = line.rfind(':');
  ASSERT_NE(colon, std::string::npos) << line;
  int port = std::stoi(line.substr(colon + 1));

  json body = {{"model", "llama"}, {"messages", json::array({{{"role", "user"}, {"content", "hi"}}})}};
  auto r = post(port, "/v1/chat/completions", body.dump());
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_NE(r.body.find("from-a"), std::string::npos);

  writeAtomically(routes, tableFor(b.endpoint(), "pool-b").toJson().dump());
  bool switched = false;
  for (int i = 0; i < 100 && !switched; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    auto r2 = post(port, "/v1/chat/completions", body.dump());
    switched = r2.header("x-waterline-pool") == "pool-b";
  }
  EXPECT_TRUE(switched);
  // A broken file keeps the last good table.
  writeAtomically(routes, "{oops");
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_EQ(post(port, "/v1/chat/completions", body.dump()).header("x-waterline-pool"), "pool-b");

  kill(pid, SIGTERM);
  int status = 0;
  waitpid(pid, &status, 0);
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  close(out[0]);
  std::filesystem::remove_all(dir);
}

// ---- graceful shutdown ------------------------------------------------------------

using namespace std::chrono_literals;

bool eventually(const std::function<bool()>& pred, std::chrono::milliseconds limit = 20s) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(10ms);
  }
  return pred();
}

// waterline-router started with a routes file (one deployment on `endpoint`) and extra
// flags; its port read from the line it prints, its stderr kept for the test.
class RouterProc {
 public:
  RouterProc(const std::string& endpoint, std::vector<std::string> flags) {
    dir_ = std::filesystem::temp_directory_path() /
           ("wl-router-drain-" + std::to_string(::getpid()) + "-" + std::to_string(counter()++));
    std::filesystem::create_directories(dir_);
    const auto routes = dir_ / "routes.json";
    writeAtomically(routes, tableFor(endpoint, "pool-a").toJson().dump());
    errPath_ = dir_ / "stderr.log";
    flags.insert(flags.begin(), {"--listen=127.0.0.1:0", "--threads=2", "--routes-file=" + routes.string()});
    int out[2];
    EXPECT_EQ(pipe(out), 0);
    pid_ = fork();
    if (pid_ == 0) {
      dup2(out[1], 1);
      close(out[0]);
      const int err = ::open(errPath_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (err >= 0) dup2(err, 2);
      std::vector<char*> argv;
      argv.push_back(const_cast<char*>(WATERLINE_ROUTER_BIN));
      for (auto& f : flags) argv.push_back(f.data());
      argv.push_back(nullptr);
      execv(WATERLINE_ROUTER_BIN, argv.data());
      _exit(127);
    }
    close(out[1]);
    std::string line;
    char c;
    while (read(out[0], &c, 1) == 1 && c != '\n') line += c;
    close(out[0]);
    const auto colon = line.rfind(':');
    if (colon != std::string::npos) port_ = std::stoi(line.substr(colon + 1));
  }
  ~RouterProc() {
    if (pid_ > 0 && !exited_) {
      ::kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  int port() const { return port_; }
  void signal(int sig) { ::kill(pid_, sig); }
  // Waits for the exit; the status as a shell reports it (128 + signal when killed).
  int wait() {
    int status = 0;
    waitpid(pid_, &status, 0);
    exited_ = true;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  std::string log() const {
    std::ifstream in(errPath_);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

 private:
  static int& counter() {
    static int n = 0;
    return n;
  }
  std::filesystem::path dir_, errPath_;
  pid_t pid_ = -1;
  int port_ = 0;
  bool exited_ = false;
};

// True when a new TCP connection to the port is refused (the listener is closed).
bool connectionRefused(int port) {
  asio::io_context io;
  tcp::socket s(io);
  beast::error_code ec;
  s.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port)), ec);
  return ec == asio::error::connection_refused;
}

// An upstream that answers a stream of `n` SSE events and [DONE], stopping before event
// `holdAt` until release() (or the end of the test) lets it go on.
struct HeldStream {
  std::promise<void> go;
  std::shared_future<void> released{go.get_future().share()};
  std::promise<void> reachedPromise;
  std::shared_future<void> reached{reachedPromise.get_future().share()};
  std::atomic<bool> reachedOnce{false};
  std::atomic<bool> releasedOnce{false};
  std::size_t holdAt;
  std::vector<std::string> chunks;

  std::unique_ptr<TestUpstream> upstream;  // stopped after release(): its threads wait on it

  HeldStream(int n, std::size_t hold) : holdAt(hold) {
    for (int i = 0; i < n; ++i)
      chunks.push_back("data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"tok" + std::to_string(i) +
                       "\"}}]}\n\n");
    chunks.push_back("data: [DONE]\n\n");
    upstream = std::make_unique<TestUpstream>([this](const SeenRequest&) { return reply(); });
  }
  ~HeldStream() {
    release();
    upstream.reset();
  }
  std::string endpoint() const { return upstream->endpoint(); }
  void release() {
    if (!releasedOnce.exchange(true)) go.set_value();
  }
  Reply reply() {
    Reply r;
    r.contentType = "text/event-stream";
    r.sseChunks = chunks;
    r.beforeChunk = [this](std::size_t i) {
      if (i != holdAt) return;
      if (!reachedOnce.exchange(true)) reachedPromise.set_value();
      released.wait();
    };
    return r;
  }
};

// A streaming request on its own connection, read as raw bytes.
class StreamClient {
 public:
  explicit StreamClient(int port) : sock_(io_) {
    sock_.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port)));
    json body = {{"model", "llama"}, {"stream", true}, {"messages", json::array({{{"role", "user"}, {"content", "hi"}}})}};
    http::request<http::string_body> req{http::verb::post, "/v1/chat/completions", 11};
    req.set(http::field::host, "router");
    req.set(http::field::content_type, "application/json");
    req.body() = body.dump();
    req.prepare_payload();
    http::write(sock_, req);
  }
  // Reads until `text` has arrived (or the connection ends); true when it has.
  bool readUntil(const std::string& text) {
    while (raw_.find(text) == std::string::npos) {
      if (!readSome()) return false;
    }
    return true;
  }
  // Reads until the router closes the connection.
  void readToEnd() {
    while (readSome()) {
    }
  }
  const std::string& raw() const { return raw_; }
  // The response parsed from the bytes read: complete (its last chunk arrived) or not.
  bool complete(std::string* body = nullptr, std::map<std::string, std::string>* headers = nullptr) const {
    http::response_parser<http::string_body> p;
    p.eager(true);
    beast::error_code ec;
    p.put(asio::buffer(raw_), ec);
    if (body) *body = p.get().body();
    if (headers)
      for (const auto& f : p.get()) {
        std::string n(f.name_string());
        for (auto& c : n) c = char(std::tolower(static_cast<unsigned char>(c)));
        (*headers)[n] = std::string(f.value());
      }
    return !ec && p.is_done();
  }

 private:
  bool readSome() {
    char buf[4096];
    beast::error_code ec;
    const std::size_t n = sock_.read_some(asio::buffer(buf), ec);
    raw_.append(buf, n);
    return !ec;
  }
  asio::io_context io_;
  tcp::socket sock_;
  std::string raw_;
};

TEST(RouterShutdown, DrainsAStreamAndExitsZero) {
  HeldStream stream(6, 3);
  // The delay is long enough for the checks made during it; the process exits well before
  // the grace (exit 0 says it drained: a cut would exit 1).
  RouterProc router(stream.endpoint(), {"--shutdown-delay=3s", "--shutdown-grace=60s", "--log-level=info"});
  ASSERT_GT(router.port(), 0) << router.log();
  const int port = router.port();
  EXPECT_EQ(get(port, "/readyz").status, 200);

  // An idle keep-alive connection, and a stream held mid-way.
  Client idle(port);
  EXPECT_EQ(idle.request(http::verb::get, "/healthz").status, 200);
  StreamClient s(port);
  ASSERT_TRUE(s.readUntil("tok2")) << s.raw();
  stream.reached.wait();

  router.signal(SIGTERM);
  // During the delay: /readyz 503 on new connections, which are still accepted; every
  // response closes its connection.
  Response ready;
  ASSERT_TRUE(eventually([&] {
    ready = get(port, "/readyz");
    return ready.status == 503;
  })) << router.log();
  EXPECT_EQ(ready.body, "shutting down\n");
  EXPECT_EQ(ready.header("connection"), "close");
  EXPECT_EQ(get(port, "/healthz").status, 200);

  // After the delay: new connections are refused, the idle keep-alive one is closed.
  ASSERT_TRUE(eventually([&] { return connectionRefused(port); })) << router.log();
  {
    char b;
    beast::error_code ec;
    idle.socket().read_some(asio::buffer(&b, 1), ec);
    EXPECT_EQ(ec, asio::error::eof) << ec.message();
  }
  // The stream goes on to its end: every event and [DONE], then the connection closes.
  stream.release();
  s.readToEnd();
  std::string body;
  ASSERT_TRUE(s.complete(&body)) << s.raw();
  for (int i = 0; i < 6; ++i) EXPECT_NE(body.find("\"tok" + std::to_string(i) + "\""), std::string::npos) << body;
  EXPECT_NE(body.find("data: [DONE]\n\n"), std::string::npos) << body;

  EXPECT_EQ(router.wait(), 0) << router.log();
  EXPECT_NE(router.log().find("msg=\"drained: no client connection left\""), std::string::npos) << router.log();
}

TEST(RouterShutdown, GraceRunsOutCutsTheStreamAndExitsOne) {
  HeldStream stream(4, 2);
  RouterProc router(stream.endpoint(), {"--shutdown-delay=0", "--shutdown-grace=1s", "--log-format=json"});
  ASSERT_GT(router.port(), 0) << router.log();
  StreamClient s(router.port());
  ASSERT_TRUE(s.readUntil("tok1")) << s.raw();
  stream.reached.wait();

  router.signal(SIGTERM);
  // Documented: a drain that had to cut connections exits 1.
  EXPECT_EQ(router.wait(), 1) << router.log();
  s.readToEnd();
  EXPECT_FALSE(s.complete()) << s.raw();
  EXPECT_EQ(s.raw().find("[DONE]"), std::string::npos);

  // Logged, as JSON (--log-format=json): one object per line, the cut counted.
  bool cutLogged = false;
  std::istringstream lines(router.log());
  for (std::string line; std::getline(lines, line);) {
    const json j = json::parse(line, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << "not JSON: " << line;
    ASSERT_TRUE(j.contains("ts") && j.contains("level") && j.contains("msg")) << line;
    if (j["msg"] == "shutdown grace over: cutting the connections still open") {
      cutLogged = true;
      EXPECT_EQ(j["level"], "warn");
      EXPECT_EQ(j["connections"], 1) << line;
      EXPECT_EQ(j["inflight"], 1) << line;
    }
  }
  EXPECT_TRUE(cutLogged) << router.log();
}

TEST(RouterShutdown, SecondSignalExitsAtOnce) {
  HeldStream stream(4, 1);
  RouterProc router(stream.endpoint(), {"--shutdown-delay=10m", "--shutdown-grace=20m"});
  ASSERT_GT(router.port(), 0) << router.log();
  StreamClient s(router.port());
  ASSERT_TRUE(s.readUntil("tok0")) << s.raw();
  router.signal(SIGTERM);
  ASSERT_TRUE(eventually([&] { return get(router.port(), "/readyz").status == 503; })) << router.log();
  router.signal(SIGINT);
  // Long before the delay is over: 128 + the second signal.
  EXPECT_EQ(router.wait(), 128 + SIGINT) << router.log();
  EXPECT_NE(router.log().find("second signal: exiting at once"), std::string::npos) << router.log();
}

}  // namespace
}  // namespace waterline::router
