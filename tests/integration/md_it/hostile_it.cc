// Hostile ModelDeployments that pass apply, against the operator binary: a template the
// apiserver refuses on every worker pod (a CPU request above its limit: the CRD cannot
// compare quantities, the Pod validation does). The deployment gets a condition with the
// reason and the apiserver's message and a Warning Event; no worker pod is ever created
// (pod creations per minute bounded by 2x replicas, counted from a watch); a valid
// deployment alongside places on the GPUs the hostile one would have had, and one that
// waits for capacity places as soon as a deployment is deleted, long before the
// operator's resync (10 minutes).
#include <atomic>
#include <iostream>
#include <map>
#include <mutex>
#include <thread>

#include "md_world.h"

namespace waterline::mdit {
namespace {

// Counts ADDED pod events per waterline.dev/deployment label in one namespace, from a
// watch started before the operator.
class PodAdds {
 public:
  PodAdds(std::shared_ptr<kube::RestClient> c, std::string ns) : c_(std::move(c)), ns_(std::move(ns)) {
    start_ = std::chrono::steady_clock::now();
    th_ = std::thread([this] { loop(); });
  }
  ~PodAdds() {
    stop_ = true;
    {
      std::lock_guard g(mu_);
      if (stream_) stream_->cancel();
    }
    th_.join();
  }
  int count(const std::string& deployment) {
    std::lock_guard g(mu_);
    return adds_[deployment];
  }
  std::chrono::seconds elapsed() const {
    return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - start_);
  }

 private:
  void loop() {
    std::string rv;
    if (auto l = c_->list(kube::kinds::Pod, ns_)) rv = l->resourceVersion;
    while (!stop_) {
      kube::ListOptions o;
      o.resourceVersion = rv;
      o.timeoutSeconds = 30;
      auto w = c_->watch(kube::kinds::Pod, ns_, o);
      if (!w) {
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
        continue;
      }
      {
        std::lock_guard g(mu_);
        stream_ = std::move(*w);
      }
      while (!stop_) {
        auto ev = stream_->next();
        if (!ev || !*ev) break;
        const auto& obj = (*ev)->object;
        if (obj.contains("metadata") && obj["metadata"].contains("resourceVersion"))
          rv = obj["metadata"]["resourceVersion"].get<std::string>();
        if ((*ev)->type != kube::WatchEventType::Added) continue;
        std::string d;
        if (obj["metadata"].contains("labels")) d = obj["metadata"]["labels"].value("waterline.dev/deployment", "");
        std::lock_guard g(mu_);
        ++adds_[d];
      }
    }
  }
  std::shared_ptr<kube::RestClient> c_;
  std::string ns_;
  std::chrono::steady_clock::time_point start_;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  kube::WatchStreamPtr stream_;
  std::map<std::string, int> adds_;
  std::thread th_;
};

std::vector<Json> eventsFor(kube::RestClient& c, const std::string& ns, const std::string& name) {
  kube::ListOptions o;
  o.fieldSelector = "involvedObject.name=" + name;
  auto l = c.list(kube::kinds::CoreEvent, ns, o);
  return l ? l->items : std::vector<Json>{};
}

TEST(HostileManifestIT, RefusedWorkersAreReportedWithoutChurnAndHoldNoCapacity) {
  WL_CLIENT_OR_SKIP(client);
  World w(client);
  PodAdds adds(client, w.ns);
  OperatorProcess op;
  op.start();

  // Every worker of this one is refused (422): both replicas would take a whole node.
  auto hostile = w.deployment("hostile", 2, 8);
  hostile["spec"]["template"]["spec"]["resources"] = {{"requests", {{"cpu", "4"}}}, {"limits", {{"cpu", "2"}}}};
  w.apply(hostile);
  ASSERT_TRUE(it::eventually([&] {
    return w.conditionOf("hostile", "Scheduled").value("reason", "") == "WorkerCreateFailed";
  }, 60s)) << w.md("hostile").dump() << op.logText();
  const auto sched = w.conditionOf("hostile", "Scheduled");
  EXPECT_EQ(sched.value("status", ""), "False");
  const std::string msg = sched.value("message", "");
  EXPECT_NE(msg.find("must be less than or equal to cpu limit"), std::string::npos) << msg;
  EXPECT_LE(msg.size(), 700u) << "the apiserver's message is bounded";
  EXPECT_EQ(w.conditionOf("hostile", "Degraded").value("reason", ""), "WorkerCreateFailed");
  EXPECT_EQ(w.statusInt("hostile", "scheduledReplicas"), 0);
  ASSERT_TRUE(it::eventually([&] {
    for (const auto& e : eventsFor(*client, w.ns, "hostile"))
      if (e.value("reason", "") == "WorkerCreateFailed" && e.value("type", "") == "Warning") return true;
    return false;
  }, 30s)) << "no Warning WorkerCreateFailed Event";

  // A valid deployment alongside gets the whole pool (the hostile one holds nothing).
  w.apply(w.deployment("good", 2, 8));
  ASSERT_TRUE(it::eventually([&] {
    return w.conditionOf("good", "Scheduled").value("status", "") == "True" && w.pods("good").size() == 2;
  }, 60s)) << w.md("good").dump() << op.logText();
  // One more valid deployment waits for capacity ...
  w.apply(w.deployment("waiting", 1, 8));
  ASSERT_TRUE(it::eventually([&] {
    return w.conditionOf("waiting", "Scheduled").value("reason", "") == "InsufficientCapacity";
  }, 60s)) << w.md("waiting").dump() << op.logText();
  // ... and places once "good" is deleted (its workers go), well before any resync.
  const auto deletedAt = std::chrono::steady_clock::now();
  ASSERT_TRUE(client->remove(kube::kinds::ModelDeployment, w.ns, "good"));
  ASSERT_TRUE(it::eventually([&] {
    return w.conditionOf("waiting", "Scheduled").value("status", "") == "True" && w.pods("waiting").size() == 1;
  }, 60s)) << w.md("waiting").dump() << op.logText();
  std::cout << "waiting deployment scheduled "
            << std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - deletedAt).count()
            << " ms after the deletion\n";

  // The hostile deployment is deleted: nothing of it is left, and still no churn.
  ASSERT_TRUE(client->remove(kube::kinds::ModelDeployment, w.ns, "hostile"));
  // Churn over a window of at least a minute since the hostile manifest was applied.
  it::eventually([&] { return adds.elapsed() >= 60s; }, 90s);
  const double minutes = std::max<double>(1.0, adds.elapsed().count() / 60.0);
  std::cout << "pod ADDED events over " << adds.elapsed().count() << " s: hostile " << adds.count("hostile")
            << ", good " << adds.count("good") << ", waiting " << adds.count("waiting") << "\n";
  EXPECT_EQ(adds.count("hostile"), 0) << "a refused worker never exists";
  EXPECT_LE(adds.count("good") / minutes, 2.0 * 2);
  EXPECT_LE(adds.count("waiting") / minutes, 2.0 * 1);
  EXPECT_TRUE(w.pods("hostile").empty());
}

// A Semantic cache whose embeddings deployment does not exist: CacheReady=False with the
// reason and a Warning Event; once the embeddings deployment is created, CacheReady turns
// True (the deployment watch maps it to the deployments that name it).
TEST(HostileManifestIT, MissingEmbeddingsDeploymentIsAConditionUntilItAppears) {
  WL_CLIENT_OR_SKIP(client);
  World w(client);
  OperatorProcess op;
  op.start();
  auto chat = w.deployment("chat", 1, 1);
  chat["spec"]["cache"] = {{"mode", "Semantic"}, {"embeddingsDeploymentRef", {{"name", "embed"}}}};
  w.apply(chat);
  ASSERT_TRUE(it::eventually([&] {
    return w.conditionOf("chat", "CacheReady").value("reason", "") == "EmbeddingsDeploymentNotFound";
  }, 60s)) << w.md("chat").dump() << op.logText();
  EXPECT_EQ(w.conditionOf("chat", "CacheReady").value("status", ""), "False");
  EXPECT_NE(w.conditionOf("chat", "CacheReady").value("message", "").find(w.ns + "/embed"), std::string::npos);
  ASSERT_TRUE(it::eventually([&] {
    for (const auto& e : eventsFor(*client, w.ns, "chat"))
      if (e.value("reason", "") == "EmbeddingsDeploymentNotFound" && e.value("type", "") == "Warning") return true;
    return false;
  }, 30s)) << "no Warning EmbeddingsDeploymentNotFound Event";
  w.apply(w.deployment("embed", 1, 1));
  ASSERT_TRUE(it::eventually([&] {
    return w.conditionOf("chat", "CacheReady").value("status", "") == "True";
  }, 60s)) << w.md("chat").dump() << op.logText();
  EXPECT_EQ(w.conditionOf("chat", "CacheReady").value("reason", ""), "CacheConfigured");
  op.kill(SIGTERM);
}

}  // namespace
}  // namespace waterline::mdit
