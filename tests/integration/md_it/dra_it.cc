// DRA mode end to end (docs/scheduling.md, "Allocation modes"): the operator binary
// against the fixture's kube-apiserver (resource.k8s.io/v1 served) with kwok nodes whose
// GPUs are published as ResourceSlices in the NVIDIA DRA driver's shape.
//  - Each worker gets its own ResourceClaim with the exact devices in status.allocation,
//    reserved for and owned by its pod; the pod refers to it and asks for no
//    nvidia.com/gpu and gets no device-index variables.
//  - A claim someone else allocated (kube-scheduler for a pod Waterline does not manage)
//    holds its devices: no worker ever gets them.
//  - A device removed from its slice moves its worker, make-before-break.
//  - A worker claim left without its pod (the operator killed between the two creates)
//    is deleted, and its devices come back.
//  - The real kube-scheduler (hack/build-tools.sh, the same version as the apiserver)
//    allocates a claim for a pod Waterline does not manage on a pool node: Waterline
//    never gives those devices to a worker.
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <set>

#include "md_world.h"

namespace waterline::mdit {
namespace {

Json str(const std::string& s) { return {{"string", s}}; }

const kube::ResourceKind kDeviceClass{"resource.k8s.io", "v1", "deviceclasses", "DeviceClass", false};

// One node's 8 H100s as the NVIDIA driver publishes them (pool = node name).
Json h100Slice(const std::string& node, int64_t generation, const std::set<int>& without = {}) {
  Json devs = Json::array();
  for (int i = 0; i < 8; ++i) {
    if (without.count(i)) continue;
    devs.push_back({{"name", "gpu-" + std::to_string(i)},
                    {"attributes",
                     {{"type", str("gpu")},
                      {"uuid", str("GPU-" + node + "-" + std::to_string(i))},
                      {"productName", str("NVIDIA H100 80GB HBM3")},
                      {"architecture", str("Hopper")},
                      {"cudaComputeCapability", {{"version", "9.0.0"}}}}},
                    {"capacity", {{"memory", {{"value", "81559Mi"}}}}}});
  }
  return {{"apiVersion", "resource.k8s.io/v1"},
          {"kind", "ResourceSlice"},
          {"metadata", {{"name", node + "-gpu.nvidia.com"}}},
          {"spec",
           {{"driver", "gpu.nvidia.com"},
            {"pool", {{"name", node}, {"generation", generation}, {"resourceSliceCount", 1}}},
            {"nodeName", node},
            {"devices", devs}}}};
}

Json claimJson(const std::string& ns, const std::string& name, int count, const Json& labels = Json::object()) {
  return {{"apiVersion", "resource.k8s.io/v1"},
          {"kind", "ResourceClaim"},
          {"metadata", {{"name", name}, {"namespace", ns}, {"labels", labels}}},
          {"spec",
           {{"devices",
             {{"requests", Json::array({{{"name", "gpu"},
                                         {"exactly",
                                          {{"deviceClassName", "gpu.nvidia.com"},
                                           {"allocationMode", "ExactCount"},
                                           {"count", count}}}}})}}}}}};
}

// Creates a claim and writes its allocation (devices of `node`), as a scheduler does.
void allocatedClaim(World& w, const std::string& name, const std::string& node, const std::vector<int>& gpus,
                    const Json& labels = Json::object()) {
  ASSERT_TRUE(w.c->create(kube::kinds::ResourceClaim, w.ns, claimJson(w.ns, name, int(gpus.size()), labels)));
  Json results = Json::array();
  for (int g : gpus)
    results.push_back({{"request", "gpu"}, {"driver", "gpu.nvidia.com"}, {"pool", node}, {"device", "gpu-" + std::to_string(g)}});
  Json st = {{"status",
              {{"allocation",
                {{"devices", {{"results", results}}},
                 {"nodeSelector",
                  {{"nodeSelectorTerms",
                    Json::array({{{"matchFields", Json::array({{{"key", "metadata.name"}, {"operator", "In"},
                                                                {"values", Json::array({node})}}})}}})}}}}}}}};
  auto r = w.c->patch(kube::kinds::ResourceClaim, w.ns, name, kube::PatchType::Merge, st.dump(), {"it-test", false, "status"});
  ASSERT_TRUE(r) << r.error().describe();
}

// DRA world: the small fixture's two eu-west H100 nodes publish slices; the pool says
// `allocation` ("" leaves it automatic).
struct DraWorld : World {
  std::string n0 = prefix + "-euw-h100-0", n1 = prefix + "-euw-h100-1";
  explicit DraWorld(std::shared_ptr<kube::RestClient> client, const std::string& allocation) : World(std::move(client)) {
    for (const auto& n : {n0, n1}) {
      auto r = c->create(kube::kinds::ResourceSlice, "", h100Slice(n, 1));
      EXPECT_TRUE(r) << r.error().describe();
    }
    if (!allocation.empty()) {
      Json patch = {{"spec", {{"allocation", allocation}}}};
      EXPECT_TRUE(c->patch(kube::kinds::CapacityPool, "", pool, kube::PatchType::Merge, patch.dump()));
    }
  }
  ~DraWorld() {
    if (auto l = c->list(kube::kinds::ResourceClaim, ns))
      for (const auto& cl : l->items) (void)c->remove(kube::kinds::ResourceClaim, ns, cl["metadata"]["name"]);
    for (const auto& n : {n0, n1}) (void)c->remove(kube::kinds::ResourceSlice, "", n + "-gpu.nvidia.com");
  }
  std::map<std::string, Json> claims() {
    std::map<std::string, Json> out;
    if (auto l = c->list(kube::kinds::ResourceClaim, ns))
      for (const auto& cl : l->items) out[cl["metadata"]["name"]] = cl;
    return out;
  }
};

// node/gpu-N of every allocated device of the claim.
std::vector<std::string> devicesOf(const Json& claim) {
  std::vector<std::string> out;
  if (!claim.contains("status") || !claim["status"].contains("allocation")) return out;
  for (const auto& r : claim["status"]["allocation"]["devices"]["results"])
    out.push_back(r.value("pool", "") + "/" + r.value("device", ""));
  std::sort(out.begin(), out.end());
  return out;
}

// Every live worker is in DRA form, with a claim that holds exactly its assignment's
// devices, reserved for and owned by it; no device is in two claims; none of `forbidden`
// (node/gpu-N) is used by a worker. Returns "" or what is wrong.
std::string checkWorkers(DraWorld& w, const std::string& deployment, size_t n, const std::set<std::string>& forbidden) {
  auto claims = w.claims();
  std::map<std::string, std::string> deviceHolder;
  for (const auto& [name, cl] : claims)
    for (const auto& d : devicesOf(cl)) {
      if (deviceHolder.count(d)) return "device " + d + " in claims " + deviceHolder[d] + " and " + name;
      deviceHolder[d] = name;
    }
  size_t live = 0;
  for (const auto& p : w.pods(deployment)) {
    if (p["metadata"].contains("deletionTimestamp")) continue;
    ++live;
    const std::string pod = p["metadata"]["name"];
    const std::string uid = p["metadata"]["uid"];
    const auto& spec = p["spec"];
    if (!spec.contains("resourceClaims") || spec["resourceClaims"].size() != 1) return pod + ": no spec.resourceClaims";
    const std::string claim = spec["resourceClaims"][0].value("resourceClaimName", "");
    for (const auto& c : spec["containers"]) {
      const std::string dump = c.dump();
      if (dump.find("nvidia.com/gpu") != std::string::npos) return pod + ": asks for nvidia.com/gpu";
      if (dump.find("VISIBLE_DEVICES") != std::string::npos) return pod + ": has a device-index variable";
    }
    if (spec["containers"][0]["resources"].value("claims", Json::array()).dump() != R"([{"name":"gpu"}])")
      return pod + ": container does not ask for the claim";
    if (!claims.count(claim)) return pod + ": claim " + claim + " missing";
    const Json& cl = claims[claim];
    auto a = scheduling::decodeAssignment(p["metadata"]["annotations"].value("waterline.dev/gpu-assignment", ""));
    if (!a) return pod + ": no assignment";
    std::vector<std::string> want;
    for (int g : a->gpus) want.push_back(a->node + "/gpu-" + std::to_string(g));
    std::sort(want.begin(), want.end());
    if (devicesOf(cl) != want) return pod + ": claim devices differ from its assignment";
    if (a->node != spec.value("nodeName", "")) return pod + ": bound elsewhere";
    for (const auto& d : want)
      if (forbidden.count(d)) return pod + ": uses " + d + ", held by someone else";
    bool reserved = false;
    for (const auto& r : cl["status"].value("reservedFor", Json::array())) reserved |= r.value("uid", "") == uid;
    if (!reserved) return pod + ": claim not reserved for it";
    bool owned = false;
    for (const auto& o : cl["metadata"].value("ownerReferences", Json::array()))
      owned |= o.value("kind", "") == "Pod" && o.value("uid", "") == uid;
    if (!owned) return pod + ": claim not owned by it";
  }
  if (live != n) return "live workers " + std::to_string(live) + ", want " + std::to_string(n);
  return "";
}

TEST(DraIT, WorkersGetExactClaimsAndNeverTouchDevicesOthersHold) {
  WL_CLIENT_OR_SKIP(c);
  DraWorld w(c, "");  // automatic: the nodes publish slices, so DRA
  // kube-scheduler's claim for a training pod Waterline does not manage: n0's first 6 GPUs.
  allocatedClaim(w, "trainer-gpus", w.n0, {0, 1, 2, 3, 4, 5});
  std::set<std::string> foreign;
  for (int g = 0; g < 6; ++g) foreign.insert(w.n0 + "/gpu-" + std::to_string(g));
  OperatorProcess op;
  op.start();
  // 3 workers x 2 GPUs: 10 GPUs are free (2 on n0, 8 on n1), so all fit, none on the 6.
  w.apply(w.deployment("llama", 3, 2));
  std::string why;
  ASSERT_TRUE(it::eventually([&] { return (why = checkWorkers(w, "llama", 3, foreign)).empty(); }, 90s))
      << why << "\n" << op.logText();
  // Six workers would need 12 GPUs: the 10 free fit five, the sixth needs GPUs that
  // only the foreign claim has.
  w.scale("llama", 6);
  ASSERT_TRUE(it::eventually([&] {
    auto cond = w.conditionOf("llama", "Scheduled");
    return cond.value("status", "") == "False" && cond.value("reason", "") == "InsufficientCapacity";
  }, 60s)) << op.logText();
  ASSERT_TRUE(it::eventually([&] { return (why = checkWorkers(w, "llama", 5, foreign)).empty(); }, 60s)) << why;
  // The foreign claim goes (its pod ended): its GPUs become Waterline's to use.
  ASSERT_TRUE(w.c->remove(kube::kinds::ResourceClaim, w.ns, "trainer-gpus"));
  ASSERT_TRUE(it::eventually([&] { return (why = checkWorkers(w, "llama", 6, {})).empty(); }, 90s))
      << why << "\n" << op.logText();
  op.kill(SIGKILL);
}

// The pinned kube-scheduler binary (hack/lib.sh KUBE_SCHEDULER_BIN), "" when not built.
std::string kubeSchedulerBin() {
  FILE* p = popen(("bash -c 'source " + sourceDir() + "/hack/lib.sh >/dev/null 2>&1; echo \"$KUBE_SCHEDULER_BIN\"'").c_str(), "r");
  if (!p) return "";
  char buf[4096] = {0};
  std::string out = fgets(buf, sizeof buf, p) ? buf : "";
  pclose(p);
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  return !out.empty() && access(out.c_str(), X_OK) == 0 ? out : "";
}

// kube-scheduler with its default profile (DRA plugin on: GA), no leader election.
struct KubeScheduler {
  pid_t pid = -1;
  std::string dir = "/tmp/" + it::uniqueName("wl-ks");
  std::string log = dir + "/kube-scheduler.log";
  bool start(const std::string& bin) {
    const std::string kc = it::env("WATERLINE_TEST_KUBECONFIG");
    if (it::run("mkdir -p " + dir) != 0) return false;
    std::ofstream(dir + "/config.yaml") << "apiVersion: kubescheduler.config.k8s.io/v1\n"
                                           "kind: KubeSchedulerConfiguration\n"
                                           "clientConnection:\n  kubeconfig: \"" << kc << "\"\n"
                                           "leaderElection:\n  leaderElect: false\n";
    std::vector<std::string> args = {bin,
                                     "--config=" + dir + "/config.yaml",
                                     "--authentication-kubeconfig=" + kc,
                                     "--authorization-kubeconfig=" + kc,
                                     "--bind-address=127.0.0.1",
                                     "--secure-port=" + std::to_string(it::freeLoopbackPort()),
                                     "--cert-dir=" + dir + "/certs",
                                     "--v=1"};
    pid = it::spawnLogged(std::move(args), log);
    return pid > 0;
  }
  std::string logText() const {
    std::ifstream f(log);
    std::string s((std::istreambuf_iterator<char>(f)), {});
    return s.size() > 4000 ? s.substr(s.size() - 4000) : s;
  }
  ~KubeScheduler() {
    if (pid > 0) {
      ::kill(pid, SIGKILL);
      int st;
      waitpid(pid, &st, 0);
    }
    (void)it::run("rm -rf " + dir);
  }
};

TEST(DraIT, AClaimKubeSchedulerAllocatedIsNeverDoubleBooked) {
  WL_CLIENT_OR_SKIP(c);
  const std::string bin = kubeSchedulerBin();
  if (bin.empty()) GTEST_SKIP() << "kube-scheduler not built (hack/build-tools.sh kube-scheduler)";
  DraWorld w(c, "");
  // The driver's DeviceClass, which kube-scheduler resolves the request's class through.
  Json dc = {{"apiVersion", "resource.k8s.io/v1"},
             {"kind", "DeviceClass"},
             {"metadata", {{"name", "gpu.nvidia.com"}}},
             {"spec", {{"selectors", Json::array({{{"cel", {{"expression", "device.driver == 'gpu.nvidia.com'"}}}}})}}}};
  auto dcr = c->apply(kDeviceClass, "", dc, {"it-test", true, ""});
  ASSERT_TRUE(dcr) << dcr.error().describe();
  KubeScheduler ks;
  ASSERT_TRUE(ks.start(bin));
  // A training pod Waterline does not manage, on n0, asking for 6 GPUs through its claim.
  ASSERT_TRUE(c->create(kube::kinds::ResourceClaim, w.ns, claimJson(w.ns, "trainer-gpus", 6)));
  Json pod = {{"apiVersion", "v1"},
              {"kind", "Pod"},
              {"metadata", {{"name", "trainer"}, {"namespace", w.ns}}},
              {"spec",
               {{"containers", Json::array({{{"name", "train"},
                                             {"image", "busybox"},
                                             {"resources", {{"claims", Json::array({{{"name", "gpus"}}})}}}}})},
                {"resourceClaims", Json::array({{{"name", "gpus"}, {"resourceClaimName", "trainer-gpus"}}})},
                {"affinity",
                 {{"nodeAffinity",
                   {{"requiredDuringSchedulingIgnoredDuringExecution",
                     {{"nodeSelectorTerms",
                       Json::array({{{"matchFields", Json::array({{{"key", "metadata.name"}, {"operator", "In"},
                                                                   {"values", Json::array({w.n0})}}})}}})}}}}}}},
                {"tolerations", Json::array({{{"operator", "Exists"}}})}}}};
  ASSERT_TRUE(c->create(kube::kinds::Pod, w.ns, pod));
  std::set<std::string> foreign;
  ASSERT_TRUE(it::eventually([&] {
    auto cl = c->get(kube::kinds::ResourceClaim, w.ns, "trainer-gpus");
    auto p = c->get(kube::kinds::Pod, w.ns, "trainer");
    if (!cl || !p || (*p)["spec"].value("nodeName", "") != w.n0) return false;
    auto d = devicesOf(*cl);
    foreign = std::set<std::string>(d.begin(), d.end());
    return foreign.size() == 6;
  }, 60s)) << ks.logText();
  OperatorProcess op;
  op.start();
  // 10 GPUs are left (2 on n0, 8 on n1): five 2-GPU workers fit, none on the trainer's.
  w.apply(w.deployment("llama", 5, 2));
  std::string why;
  ASSERT_TRUE(it::eventually([&] { return (why = checkWorkers(w, "llama", 5, foreign)).empty(); }, 90s))
      << why << "\n" << op.logText();
  // The trainer's claim still holds exactly its devices, and nothing else claims them.
  auto cl = c->get(kube::kinds::ResourceClaim, w.ns, "trainer-gpus");
  ASSERT_TRUE(cl);
  auto d = devicesOf(*cl);
  EXPECT_EQ(std::set<std::string>(d.begin(), d.end()), foreign);
  kube::DeleteOptions now;
  now.gracePeriodSeconds = 0;
  (void)c->remove(kube::kinds::Pod, w.ns, "trainer", now);
}

TEST(DraIT, RemovedDeviceMovesItsWorkerAndOrphanClaimsAreDeleted) {
  WL_CLIENT_OR_SKIP(c);
  DraWorld w(c, "DRA");
  OperatorProcess op;
  op.start();
  w.apply(w.deployment("llama", 2, 2));
  std::string why;
  ASSERT_TRUE(it::eventually([&] { return (why = checkWorkers(w, "llama", 2, {})).empty(); }, 90s))
      << why << "\n" << op.logText();
  // The driver stops publishing one device a worker holds (a new pool generation).
  auto pods = w.pods("llama");
  auto a = scheduling::decodeAssignment(pods[0]["metadata"]["annotations"].value("waterline.dev/gpu-assignment", ""));
  ASSERT_TRUE(a);
  const std::string victim = pods[0]["metadata"]["name"];
  const int gone = a->gpus[0];
  Json s = h100Slice(a->node, 2, {gone});
  auto cur = w.c->get(kube::kinds::ResourceSlice, "", a->node + "-gpu.nvidia.com");
  ASSERT_TRUE(cur);
  s["metadata"]["resourceVersion"] = (*cur)["metadata"]["resourceVersion"];
  ASSERT_TRUE(w.c->update(kube::kinds::ResourceSlice, "", s));
  const std::string goneDevice = a->node + "/gpu-" + std::to_string(gone);
  ASSERT_TRUE(it::eventually([&] {
    bool victimGone = true;
    for (const auto& p : w.pods("llama")) victimGone &= p["metadata"]["name"] != victim;
    // ... and the moved worker's old claim deleted, so that the count below sees only
    // the ghost go (a stale claim still there at the SIGKILL is deleted after the restart
    // too, and the count would be off by one).
    return victimGone && (why = checkWorkers(w, "llama", 2, {goneDevice})).empty() && w.claims().size() == 2;
  }, 120s)) << why << " claims " << w.claims().size() << "\n" << op.logText();

  // A worker claim whose pod never came (the operator stopped between the claim's create
  // and the pod's): it holds n1's... whatever is free; it is deleted, and nothing else is.
  op.kill(SIGKILL);
  std::string freeNode, freeDev;
  {
    std::set<std::string> used;
    for (const auto& [n, cl] : w.claims())
      for (const auto& d : devicesOf(cl)) used.insert(d);
    for (const auto& n : {w.n0, w.n1})
      for (int g = 0; g < 8 && freeNode.empty(); ++g)
        if (!used.count(n + "/gpu-" + std::to_string(g)) && !(n + "/gpu-" + std::to_string(g) == goneDevice)) {
          freeNode = n;
          freeDev = std::to_string(g);
        }
  }
  ASSERT_FALSE(freeNode.empty());
  Json labels = {{"app.kubernetes.io/managed-by", "waterline"}, {"waterline.dev/deployment", "llama"},
                 {"waterline.dev/worker", "llama-ghost"}};
  allocatedClaim(w, "llama-ghost-gpu", freeNode, {std::stoi(freeDev)}, labels);
  const size_t before = w.claims().size();
  op.start();
  ASSERT_TRUE(it::eventually([&] { return !w.claims().count("llama-ghost-gpu"); }, 60s)) << op.logText();
  EXPECT_EQ(w.claims().size(), before - 1);
  EXPECT_TRUE((why = checkWorkers(w, "llama", 2, {goneDevice})).empty()) << why;
  // Scale-down: the removed worker's claim goes with it (this control plane has no
  // garbage collector; the operator deletes a claim whose pod is gone).
  w.scale("llama", 1);
  ASSERT_TRUE(it::eventually([&] { return w.claims().size() == 1 && checkWorkers(w, "llama", 1, {}).empty(); }, 90s))
      << checkWorkers(w, "llama", 1, {}) << "\n" << op.logText();
  op.kill(SIGKILL);
}

}  // namespace
}  // namespace waterline::mdit
