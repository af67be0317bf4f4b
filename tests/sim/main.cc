// waterline-sim: a simulated GPU inference fleet on one HTTP endpoint.
//
//   waterline-sim --listen 127.0.0.1:9400
//     --worker pod=llama-0,namespace=ml,deployment=llama,pool=h100-a,gpu=H100,tp=4
//     --worker pod=llama-1,namespace=ml,deployment=llama,pool=h100-a,gpu=H100,tp=4
//     --load trace --trace-speed 1 --time-scale 10
//
// Serves:
//   GET  /metrics                         vLLM worker metrics and DCGM GPU metrics (text 0.0.4)
//   GET  /healthz                         "ok"
//   GET  /workers                         JSON status of every worker
//   GET  /workers/<pod>/health            200 when the worker is ready, else 503
//   POST /inject/xid?node=N&gpu=G&xid=79  set DCGM_FI_DEV_XID_ERRORS (fatal XIDs fail the worker)
//   POST /clear/xid?node=N&gpu=G          clear it
//   POST /v1/chat/completions             OpenAI-compatible; answered after the modelled latency
//   POST /workers/<pod>/v1/chat/completions   the same, on that worker
//   POST /v1/embeddings                   OpenAI-compatible embeddings (sim/embeddings_api.h:
//                                         hashed-trigram vectors, float or base64,
//                                         `dimensions`), answered at once, not modelled
//   POST /workers/<pod>/v1/embeddings     the same (404 for an unknown pod)
// Simulated time runs --time-scale times faster than the wall clock (10: an hour of trace
// in six minutes). Counters and histograms are in simulated units. Prints
// "listening on HOST:PORT" on stdout once it serves.
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "waterline/common/metrics.h"
#include "waterline/sim/embeddings_api.h"
#include "waterline/sim/fleet.h"
#include "waterline/sim/http_server.h"
#include "waterline/sim/perf_model.h"
#include "waterline/sim/trace.h"

using namespace waterline;
using namespace waterline::sim;
using json = nlohmann::json;

namespace {

struct Options {
  std::string listen = "127.0.0.1:9400";
  std::vector<std::string> workerFlags;
  std::string config;
  std::string load = "none";  // trace | poisson | none
  std::string tracePath = defaultMooncakeTracePath();
  std::string perfPath = defaultPerfModelPath();
  double traceSpeed = 1;
  int loops = 1;  // 0: forever
  double timeScale = 1;
  std::string loadDeployment;
  PoissonConfig poisson;
  double startupSeconds = 0;
  int maxBatch = 64;
  int tickMs = 10;
  std::string defaultModel = "llama2-70b";
};

void usage() {
  std::cerr << "usage: waterline-sim [--listen HOST:PORT] [--worker pod=..,namespace=..,deployment=..,pool=..,"
               "gpu=H100|A100,tp=N[,node=..]]... [--config workers.json]\n"
               "  [--load trace|poisson|none] [--trace PATH] [--trace-speed X] [--loop N (0: forever)]\n"
               "  [--poisson-rate R] [--duration S] [--mean-input N] [--mean-output N]\n"
               "  [--burst-every S --burst-duration S --burst-factor F] [--seed N] [--load-deployment D]\n"
               "  [--time-scale X] [--perf-model PATH] [--startup-seconds S] [--max-batch N] [--tick-ms N]\n";
}

bool parseArgs(int argc, char** argv, Options& o) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i], v;
    const size_t eq = a.find('=');
    const bool inlineValue = a.rfind("--", 0) == 0 && eq != std::string::npos;
    if (inlineValue) {
      v = a.substr(eq + 1);
      a = a.substr(0, eq);
    }
    auto val = [&]() -> std::string {
      if (inlineValue) return v;
      if (i + 1 >= argc) throw std::runtime_error(a + " needs a value");
      return argv[++i];
    };
    if (a == "--help" || a == "-h") return false;
    else if (a == "--listen") o.listen = val();
    else if (a == "--worker") o.workerFlags.push_back(val());
    else if (a == "--config") o.config = val();
    else if (a == "--load") o.load = val();
    else if (a == "--trace") o.tracePath = val();
    else if (a == "--trace-speed") o.traceSpeed = std::stod(val());
    else if (a == "--loop") o.loops = std::stoi(val());
    else if (a == "--time-scale") o.timeScale = std::stod(val());
    else if (a == "--perf-model") o.perfPath = val();
    else if (a == "--poisson-rate") o.poisson.ratePerSecond = std::stod(val());
    else if (a == "--duration") o.poisson.duration = std::stod(val());
    else if (a == "--mean-input") o.poisson.meanInputTokens = std::stod(val());
    else if (a == "--mean-output") o.poisson.meanOutputTokens = std::stod(val());
    else if (a == "--burst-every") o.poisson.burstEvery = std::stod(val());
    else if (a == "--burst-duration") o.poisson.burstDuration = std::stod(val());
    else if (a == "--burst-factor") o.poisson.burstFactor = std::stod(val());
    else if (a == "--seed") o.poisson.seed = std::stoull(val());
    else if (a == "--load-deployment") o.loadDeployment = val();
    else if (a == "--startup-seconds") o.startupSeconds = std::stod(val());
    else if (a == "--max-batch") o.maxBatch = std::stoi(val());
    else if (a == "--tick-ms") o.tickMs = std::max(1, std::stoi(val()));
    else throw std::runtime_error("unknown flag " + a);
  }
  return true;
}

json statusJson(const WorkerStatus& s) {
  return json{{"pod", s.spec.pod},         {"namespace", s.spec.ns},   {"deployment", s.spec.deployment},
              {"pool", s.spec.pool},       {"node", s.spec.node},      {"gpu", s.spec.gpuType},
              {"tp", s.spec.tp},           {"ready", s.ready},         {"draining", s.draining},
              {"failed", s.failed},        {"running", s.running},     {"waiting", s.waiting},
              {"kvUsage", s.kvUsage}};
}

HttpResponse jsonResponse(int status, const json& j) {
  HttpResponse r;
  r.status = status;
  r.contentType = "application/json";
  r.body = j.dump() + "\n";
  return r;
}

HttpResponse openAiError(int status, const std::string& message, const std::string& type) {
  return jsonResponse(status, json{{"error", {{"message", message}, {"type", type}, {"code", nullptr}}}});
}

std::string words(int n) {
  static const char* kWords[] = {"lorem ", "ipsum ", "dolor ", "sit ", "amet ", "consectetur ", "adipiscing ", "elit "};
  std::string s;
  for (int i = 0; i < n; ++i) s += kWords[i % 8];
  return s;
}

// The simulator: fleet, arrivals, clock, HTTP.
class Simulator {
 public:
  Simulator(Options o, PerfModel perf, std::vector<WorkerSpec> workers, std::vector<SimRequest> arrivals)
      : opts_(std::move(o)),
        perf_(std::move(perf)),
        workerSet_(std::make_shared<StaticWorkerSet>(std::move(workers))),
        arrivals_(std::move(arrivals)) {
    FleetOptions fo;
    fo.startupSeconds = opts_.startupSeconds;
    fo.worker.maxBatch = opts_.maxBatch;
    fleet_ = std::make_unique<Fleet>(perf_, fo, &registry_);
    for (const auto& e : fleet_->sync(workerSet_->workers(), 0)) std::cerr << "worker skipped: " << e << "\n";
    if (!arrivals_.empty()) {
      const double span = arrivals_.back().arrival;
      period_ = span + (arrivals_.size() > 1 ? span / double(arrivals_.size() - 1) : 1.0);
    }
  }

  int run() {
    const size_t colon = opts_.listen.rfind(':');
    if (colon == std::string::npos) {
      std::cerr << "--listen wants HOST:PORT\n";
      return 2;
    }
    const std::string host = opts_.listen.substr(0, colon);
    const auto port = static_cast<uint16_t>(std::stoi(opts_.listen.substr(colon + 1)));
    server_ = HttpServer::start(io_, host, port,
                                [this](const HttpRequest& r, HttpExchangePtr ex) { handle(r, std::move(ex)); });
    boost::asio::signal_set signals(io_, SIGINT, SIGTERM);
    signals.async_wait([this](const boost::system::error_code&, int) {
      server_->stop();
      io_.stop();
    });
    wallStart_ = std::chrono::steady_clock::now();
    std::cout << "listening on " << host << ":" << server_->port() << std::endl;
    timer_ = std::make_unique<boost::asio::steady_timer>(io_);
    scheduleTick();
    io_.run();
    return 0;
  }

 private:
  double simNow() const {
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - wallStart_).count();
    return std::max(lastSim_, wall * opts_.timeScale);
  }

  void scheduleTick() {
    timer_->expires_after(std::chrono::milliseconds(opts_.tickMs));
    timer_->async_wait([this](const boost::system::error_code& ec) {
      if (ec) return;
      tick();
      scheduleTick();
    });
  }

  void tick() {
    const double now = simNow();
    feedArrivals(now);
    fleet_->advanceTo(now);
    lastSim_ = now;
    if (now - lastSync_ >= 1.0) {
      for (const auto& e : fleet_->sync(workerSet_->workers(), now)) std::cerr << "worker skipped: " << e << "\n";
      lastSync_ = now;
    }
    fleet_->refreshGauges(now);
  }

  void feedArrivals(double now) {
    while (!arrivals_.empty()) {
      if (next_ >= arrivals_.size()) {
        if (opts_.loops != 0 && loop_ + 1 >= opts_.loops) return;
        ++loop_;
        next_ = 0;
      }
      SimRequest r = arrivals_[next_];
      r.arrival += loop_ * period_;
      if (r.arrival > now) return;
      r.id = nextTraceId_++;
      (void)fleet_->submit(r, std::max(r.arrival, fleet_->now()), opts_.loadDeployment);
      ++next_;
    }
  }

  void handle(const HttpRequest& req, HttpExchangePtr ex) {
    const std::string& p = req.path;
    if (p == "/metrics" && req.method == "GET") {
      const double now = simNow();
      feedArrivals(now);
      fleet_->refreshGauges(now);
      lastSim_ = now;
      HttpResponse r;
      r.contentType = metrics::kContentType;
      r.body = registry_.serialize();
      ex->respond(std::move(r));
      return;
    }
    if (p == "/healthz") {
      ex->respond(HttpResponse{200, "text/plain; charset=utf-8", "ok\n", {}});
      return;
    }
    if (p == "/workers" && req.method == "GET") {
      json arr = json::array();
      for (const auto& s : fleet_->status()) arr.push_back(statusJson(s));
      ex->respond(jsonResponse(200, json{{"simTime", fleet_->now()}, {"workers", arr}}));
      return;
    }
    if (p == "/inject/xid" || p == "/clear/xid") {
      if (req.method != "POST") {
        ex->respond(HttpResponse{405, "text/plain; charset=utf-8", "POST only\n", {}});
        return;
      }
      auto q = req.query;
      if (!q.contains("node") || !q.contains("gpu") || (p == "/inject/xid" && !q.contains("xid"))) {
        ex->respond(HttpResponse{400, "text/plain; charset=utf-8", "need node, gpu and xid\n", {}});
        return;
      }
      int gpu = 0, xid = 0;
      try {
        gpu = std::stoi(q["gpu"]);
        if (p == "/inject/xid") xid = std::stoi(q["xid"]);
      } catch (...) {
        ex->respond(HttpResponse{400, "text/plain; charset=utf-8", "gpu and xid are integers\n", {}});
        return;
      }
      const bool ok = p == "/inject/xid" ? fleet_->injectXid(q["node"], gpu, xid, simNow())
                                         : fleet_->clearXid(q["node"], gpu);
      ex->respond(ok ? HttpResponse{200, "text/plain; charset=utf-8", "ok\n", {}}
                     : HttpResponse{404, "text/plain; charset=utf-8", "no such node/gpu\n", {}});
      return;
    }
    std::string pod;
    std::string rest = p;
    if (p.rfind("/workers/", 0) == 0) {
      const size_t slash = p.find('/', 9);
      pod = p.substr(9, slash == std::string::npos ? std::string::npos : slash - 9);
      rest = slash == std::string::npos ? "" : p.substr(slash);
      if (rest == "/health") {
        auto st = fleet_->status(pod);
        const bool ok = st && st->ready;
        ex->respond(HttpResponse{ok ? 200 : 503, "text/plain; charset=utf-8",
                                 !st ? "no such worker\n" : ok ? "ok\n" : "not ready\n", {}});
        return;
      }
    }
    if (rest == "/v1/chat/completions" && req.method == "POST") {
      chat(req, pod, std::move(ex));
      return;
    }
    if (rest == "/v1/embeddings" && req.method == "POST") {
      if (!pod.empty() && !fleet_->status(pod)) {
        ex->respond(openAiError(404, "no such worker: " + pod, "invalid_request_error"));
        return;
      }
      // Answered at once: embeddings are not run through the perf model.
      EmbeddingsAnswer a = answerEmbeddings(req.body, opts_.defaultModel);
      ex->respond(HttpResponse{a.status, "application/json", std::move(a.body), {}});
      return;
    }
    ex->respond(HttpResponse{404, "text/plain; charset=utf-8", "not found\n", {}});
  }

  void chat(const HttpRequest& req, const std::string& pod, HttpExchangePtr ex) {
    auto body = json::parse(req.body, nullptr, false);
    if (body.is_discarded() || !body.is_object() || !body.contains("messages") || !body["messages"].is_array()) {
      ex->respond(openAiError(400, "expected a JSON body with \"messages\"", "invalid_request_error"));
      return;
    }
    size_t chars = 0;
    for (const auto& m : body["messages"]) {
      if (!m.is_object() || !m.contains("content")) continue;
      const auto& c = m["content"];
      if (c.is_string()) chars += c.get_ref<const std::string&>().size();
      else if (c.is_array())
        for (const auto& part : c)
          if (part.is_object() && part.contains("text") && part["text"].is_string())
            chars += part["text"].get_ref<const std::string&>().size();
    }
    int maxTokens = 128;
    for (const char* k : {"max_tokens", "max_completion_tokens"})
      if (body.contains(k) && body[k].is_number_integer()) maxTokens = body[k].get<int>();
    maxTokens = std::clamp(maxTokens, 1, 8192);
    const std::string model = body.value("model", std::string());
    const bool stream = body.value("stream", false);
    const bool includeUsage = stream && body.contains("stream_options") && body["stream_options"].is_object() &&
                              body["stream_options"].value("include_usage", false);
    std::string deployment;
    for (const auto& s : fleet_->status())
      if (s.spec.deployment == model) deployment = model;

    SimRequest r;
    r.id = nextHttpId_++;
    r.inputTokens = static_cast<int32_t>(std::max<size_t>(1, (chars + 3) / 4));
    r.outputTokens = maxTokens;
    const double now = simNow();
    r.arrival = now;
    const std::string id = "chatcmpl-sim-" + std::to_string(r.id);
    const int64_t created = std::chrono::duration_cast<std::chrono::seconds>(
                                std::chrono::system_clock::now().time_since_epoch())
                                .count();
    const std::string modelName = model.empty() ? opts_.defaultModel : model;
    auto sent = std::make_shared<int>(0);

    Fleet::DoneFn done = [ex, id, created, modelName, stream, includeUsage, sent](const Completion& c) {
      json usage = {{"prompt_tokens", c.input},
                    {"completion_tokens", c.output},
                    {"total_tokens", c.input + c.output}};
      if (c.failed) {
        if (stream) {
          ex->write("data: " + json{{"error", {{"message", c.error}, {"type", "server_error"}}}}.dump() + "\n\n");
          ex->end();
        } else {
          ex->respond(openAiError(503, c.error, "server_error"));
        }
        return;
      }
      if (stream) {
        if (c.output > *sent) {
          ex->write("data: " +
                    json{{"id", id}, {"object", "chat.completion.chunk"}, {"created", created}, {"model", modelName},
                         {"choices", json::array({{{"index", 0}, {"delta", {{"content", words(c.output - *sent)}}},
                                                   {"finish_reason", nullptr}}})}}
                        .dump() +
                    "\n\n");
        }
        ex->write("data: " +
                  json{{"id", id}, {"object", "chat.completion.chunk"}, {"created", created}, {"model", modelName},
                       {"choices", json::array({{{"index", 0}, {"delta", json::object()}, {"finish_reason", "length"}}})}}
                      .dump() +
                  "\n\n");
        if (includeUsage)
          ex->write("data: " +
                    json{{"id", id}, {"object", "chat.completion.chunk"}, {"created", created}, {"model", modelName},
                         {"choices", json::array()}, {"usage", usage}}
                        .dump() +
                    "\n\n");
        ex->write("data: [DONE]\n\n");
        ex->end();
        return;
      }
      ex->respond(jsonResponse(
          200, json{{"id", id},
                    {"object", "chat.completion"},
                    {"created", created},
                    {"model", modelName},
                    {"choices", json::array({{{"index", 0},
                                              {"message", {{"role", "assistant"}, {"content", words(c.output)}}},
                                              {"finish_reason", "length"}}})},
                    {"usage", usage},
                    {"waterline_sim", {{"pod", c.pod}, {"ttft_seconds", c.firstToken - c.arrival},
                                       {"e2e_seconds", c.finish - c.arrival}}}}));
    };
    Fleet::ProgressFn progress;
    if (stream) {
      progress = [ex, id, created, modelName, sent](uint64_t, int generated, double) {
        if (generated <= *sent) return;
        ex->write("data: " +
                  json{{"id", id}, {"object", "chat.completion.chunk"}, {"created", created}, {"model", modelName},
                       {"choices", json::array({{{"index", 0},
                                                 {"delta", *sent == 0 ? json{{"role", "assistant"},
                                                                             {"content", words(generated - *sent)}}
                                                                      : json{{"content", words(generated - *sent)}}},
                                                 {"finish_reason", nullptr}}})}}
                      .dump() +
                  "\n\n");
        *sent = generated;
      };
    }
    fleet_->advanceTo(std::max(now, fleet_->now()));
    if (stream) ex->startStream(200, "text/event-stream", {{"Cache-Control", "no-cache"}});
    auto routed = fleet_->submit(r, fleet_->now(), deployment, pod, std::move(done), std::move(progress));
    if (!routed) {
      if (stream) {
        ex->write("data: " + json{{"error", {{"message", routed.error()}, {"type", "server_error"}}}}.dump() + "\n\n");
        ex->end();
      } else {
        ex->respond(openAiError(503, routed.error(), "server_error"));
      }
    }
  }

  Options opts_;
  PerfModel perf_;
  std::shared_ptr<StaticWorkerSet> workerSet_;
  std::vector<SimRequest> arrivals_;
  double period_ = 0;
  size_t next_ = 0;
  int loop_ = 0;
  uint64_t nextTraceId_ = 0;
  uint64_t nextHttpId_ = uint64_t{1} << 40;
  metrics::Registry registry_;
  std::unique_ptr<Fleet> fleet_;
  boost::asio::io_context io_;
  std::unique_ptr<HttpServer> server_;
  std::unique_ptr<boost::asio::steady_timer> timer_;
  std::chrono::steady_clock::time_point wallStart_;
  double lastSim_ = 0;
  double lastSync_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
  Options o;
  try {
    if (!parseArgs(argc, argv, o)) {
      usage();
      return 0;
    }
  } catch (const std::exception& e) {
    std::cerr << "waterline-sim: " << e.what() << "\n";
    usage();
    return 2;
  }
  auto perf = PerfModel::loadCsv(o.perfPath);
  if (!perf) {
    std::cerr << "waterline-sim: " << perf.error() << "\n";
    return 1;
  }
  std::vector<WorkerSpec> workers;
  if (!o.config.empty()) {
    std::ifstream in(o.config);
    std::stringstream ss;
    ss << in.rdbuf();
    auto w = parseWorkerConfig(ss.str());
    if (!w) {
      std::cerr << "waterline-sim: " << o.config << ": " << w.error() << "\n";
      return 1;
    }
    workers = std::move(*w);
  }
  for (const auto& f : o.workerFlags) {
    auto w = parseWorkerSpec(f);
    if (!w) {
      std::cerr << "waterline-sim: " << w.error() << "\n";
      return 2;
    }
    workers.push_back(std::move(*w));
  }
  if (workers.empty()) workers.push_back(*parseWorkerSpec("pod=sim-0,deployment=sim,pool=default"));
  std::vector<SimRequest> arrivals;
  if (o.load == "trace") {
    auto t = loadMooncakeTrace(o.tracePath, o.traceSpeed);
    if (!t) {
      std::cerr << "waterline-sim: " << t.error() << "\n";
      return 1;
    }
    arrivals = std::move(*t);
  } else if (o.load == "poisson") {
    arrivals = generatePoisson(o.poisson);
  } else if (o.load != "none") {
    std::cerr << "waterline-sim: --load must be trace, poisson or none\n";
    return 2;
  }
  if (!(o.timeScale > 0)) {
    std::cerr << "waterline-sim: --time-scale must be > 0\n";
    return 2;
  }
  try {
    Simulator sim(std::move(o), std::move(*perf), std::move(workers), std::move(arrivals));
    return sim.run();
  } catch (const std::exception& e) {
    std::cerr << "waterline-sim: " << e.what() << "\n";
    return 1;
  }
}
