// The waterline-router binary as a process: flags, --routes-file reload, SIGTERM.
#include "support.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

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
          "--routes-poll-interval=50ms", "--log-level=warn", flag.c_str(), (char*)nullptr);
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

}  // namespace
}  // namespace waterline::router
