// Router membership (router/membership.h): the pure parts (Lease names, counting live
// members at an injected time) and the renew/list loop against an in-memory client with
// a simulated clock, plus N feeding the PTU limits of a RouterServer.
#include "waterline/router/membership.h"

#include <gtest/gtest.h>

#include <regex>

#include "fake_client.h"
#include "fixtures.h"
#include "waterline/router/server.h"
#include "waterline/routing/table.h"

namespace waterline::router {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

const SystemTime kNow = SystemTime{std::chrono::seconds(1'750'000'000)};

json lease(const std::string& group, const std::string& holder, SystemTime renew, int durationSeconds) {
  return memberLease("ns", group, holder, std::chrono::seconds(durationSeconds), renew - 60s, renew);
}

// ------------------------------------------------------------------ lease names

TEST(MemberLeaseName, IsADns1123LabelWithAHashOfTheExactPair) {
  static const std::regex dns1123("^[a-z0-9]([-a-z0-9]*[a-z0-9])?$");
  const std::string n = memberLeaseName("wl-waterline-router", "wl-waterline-router-7d9f8b6c5-x2k4q");
  EXPECT_TRUE(std::regex_match(n, dns1123)) << n;
  EXPECT_LE(n.size(), 63u);
  EXPECT_EQ(n.rfind("wl-waterline-router-wl-waterline-router-", 0), 0u) << n;
  EXPECT_EQ(n, memberLeaseName("wl-waterline-router", "wl-waterline-router-7d9f8b6c5-x2k4q"));  // deterministic
  // Sanitising and cutting never make two pairs share a name.
  EXPECT_NE(memberLeaseName("a-b", "c"), memberLeaseName("a", "b-c"));
  EXPECT_NE(memberLeaseName("g", "Pod_1"), memberLeaseName("g", "pod-1"));
  EXPECT_NE(memberLeaseName("g", "r1"), memberLeaseName("h", "r1"));
  const std::string longId(300, 'x');
  EXPECT_NE(memberLeaseName("g", longId), memberLeaseName("g", longId + "y"));
  for (const auto& [g, id] : std::vector<std::pair<std::string, std::string>>{
           {"Routers.EU", "Host_Name.example.COM"},
           {"g", longId},
           {std::string(63, 'g'), std::string(63, 'i')},
           {"-", "!!!"},
           {"", ""},
           {"g", "ends-with-dash-" + std::string(60, '-')},
           {"g", "ünïcödé"}}) {
    const std::string name = memberLeaseName(g, id);
    EXPECT_TRUE(std::regex_match(name, dns1123)) << g << " / " << id << " -> " << name;
    EXPECT_LE(name.size(), 63u) << name;
    EXPECT_TRUE(isDns1123Label(name)) << name;
  }
  EXPECT_EQ(memberLeaseName("Routers.EU", "Host_Name").rfind("routers-eu-host-name-", 0), 0u);
  EXPECT_EQ(memberLeaseName("-", "!!!").rfind("router-", 0), 0u);
}

TEST(MemberLeaseName, NameValidators) {
  EXPECT_TRUE(isDns1123Label("waterline-system"));
  EXPECT_TRUE(isDns1123Label("a"));
  EXPECT_FALSE(isDns1123Label(""));
  EXPECT_FALSE(isDns1123Label("-a"));
  EXPECT_FALSE(isDns1123Label("a-"));
  EXPECT_FALSE(isDns1123Label("A"));
  EXPECT_FALSE(isDns1123Label("a.b"));
  EXPECT_FALSE(isDns1123Label(std::string(64, 'a')));
  EXPECT_TRUE(isLabelValue("wl-waterline-router"));
  EXPECT_TRUE(isLabelValue("Routers_EU.1"));
  EXPECT_TRUE(isLabelValue(std::string(63, 'a')));
  EXPECT_FALSE(isLabelValue(""));
  EXPECT_FALSE(isLabelValue("_a"));
  EXPECT_FALSE(isLabelValue("a."));
  EXPECT_FALSE(isLabelValue("a b"));
  EXPECT_FALSE(isLabelValue("a/b"));
  EXPECT_FALSE(isLabelValue(std::string(64, 'a')));
}

// ------------------------------------------------------------------ counting

TEST(CountLiveMembers, LiveUntilRenewTimePlusDurationPlusSkew) {
  const json l = lease("g", "r1", kNow, 15);
  // Skew 0: live strictly before renewTime + 15 s.
  EXPECT_EQ(classifyLease(l, "g", kNow, 0s), LeaseVerdict::Live);
  EXPECT_EQ(classifyLease(l, "g", kNow + 15s - 1us, 0s), LeaseVerdict::Live);
  EXPECT_EQ(classifyLease(l, "g", kNow + 15s, 0s), LeaseVerdict::Expired);
  // Skew 2 s: two more seconds.
  EXPECT_EQ(classifyLease(l, "g", kNow + 16s, 2s), LeaseVerdict::Live);
  EXPECT_EQ(classifyLease(l, "g", kNow + 17s - 1us, 2s), LeaseVerdict::Live);
  EXPECT_EQ(classifyLease(l, "g", kNow + 17s, 2s), LeaseVerdict::Expired);
  // A negative skew counts as none.
  EXPECT_EQ(classifyLease(l, "g", kNow + 15s, -5s), LeaseVerdict::Expired);
  // Renewed "in the future" (the holder's clock is ahead): live.
  EXPECT_EQ(classifyLease(lease("g", "r1", kNow + 30s, 15), "g", kNow, 0s), LeaseVerdict::Live);
}

TEST(CountLiveMembers, CountsDistinctLiveHoldersOfTheGroup) {
  std::vector<json> leases = {
      lease("g", "r1", kNow - 1s, 15),
      lease("g", "r2", kNow - 14s, 15),   // 1 s left
      lease("g", "r3", kNow - 15s, 15),   // expired exactly now
      lease("g", "r4", kNow - 60s, 15),   // long gone (crashed)
      lease("g", "r1", kNow - 2s, 15),    // r1 again (another Lease name): counted once
      lease("other", "x1", kNow, 15),     // another group sharing the namespace
  };
  auto c = countLiveMembers(leases, "g", kNow, 0s);
  EXPECT_EQ(c.live, (std::vector<std::string>{"r1", "r2"}));
  EXPECT_EQ(c.replicas(), 2);
  EXPECT_EQ(c.expired, 2);
  EXPECT_EQ(c.otherGroups, 1);
  EXPECT_EQ(c.malformed, 0);
  EXPECT_FALSE(c.selfAdded);
  // The other group counts its own.
  auto o = countLiveMembers(leases, "other", kNow, 0s);
  EXPECT_EQ(o.live, (std::vector<std::string>{"x1"}));
  EXPECT_EQ(o.otherGroups, 5);
  // With a 1 s skew allowance r3 is still live.
  EXPECT_EQ(countLiveMembers(leases, "g", kNow, 1s).replicas(), 3);
  // Later: only r1's second Lease... and then nobody.
  EXPECT_EQ(countLiveMembers(leases, "g", kNow + 13s, 0s).live, (std::vector<std::string>{"r1"}));
  EXPECT_EQ(countLiveMembers(leases, "g", kNow + 14s, 0s).live, (std::vector<std::string>{}));
  EXPECT_EQ(countLiveMembers(leases, "g", kNow + 14s, 0s).replicas(), 1);  // N >= 1
}

TEST(CountLiveMembers, SelfIsAlwaysAMember) {
  std::vector<json> leases = {lease("g", "r1", kNow, 15), lease("g", "me", kNow - 20s, 15)};
  auto c = countLiveMembers(leases, "g", kNow, 0s, "me");  // own Lease stale: renewal failing
  EXPECT_EQ(c.live, (std::vector<std::string>{"me", "r1"}));
  EXPECT_TRUE(c.selfAdded);
  auto d = countLiveMembers({lease("g", "me", kNow, 15)}, "g", kNow, 0s, "me");
  EXPECT_EQ(d.replicas(), 1);
  EXPECT_FALSE(d.selfAdded);
  auto e = countLiveMembers({}, "g", kNow, 0s, "me");
  EXPECT_EQ(e.live, (std::vector<std::string>{"me"}));
  EXPECT_TRUE(e.selfAdded);
  EXPECT_EQ(countLiveMembers({}, "g", kNow, 0s).replicas(), 1);
}

TEST(CountLiveMembers, MalformedReleasedAndDeletedLeasesAreNotMembers) {
  const json good = lease("g", "ok", kNow, 15);
  auto with = [&](const std::function<void(json&)>& f) {
    json l = good;
    f(l);
    return l;
  };
  struct Case {
    const char* what;
    json lease;
    LeaseVerdict want;
  };
  const std::vector<Case> cases = {
      {"not an object", json::array({1, 2}), LeaseVerdict::Malformed},
      {"a string", json("lease"), LeaseVerdict::Malformed},
      {"no metadata", with([](json& l) { l.erase("metadata"); }), LeaseVerdict::Malformed},
      {"metadata not an object", with([](json& l) { l["metadata"] = 3; }), LeaseVerdict::Malformed},
      {"no labels", with([](json& l) { l["metadata"].erase("labels"); }), LeaseVerdict::OtherGroup},
      {"labels not an object", with([](json& l) { l["metadata"]["labels"] = "g"; }), LeaseVerdict::OtherGroup},
      {"group label not a string", with([](json& l) { l["metadata"]["labels"][kRouterGroupLabel] = 1; }),
       LeaseVerdict::OtherGroup},
      {"no spec", with([](json& l) { l.erase("spec"); }), LeaseVerdict::Malformed},
      {"spec null", with([](json& l) { l["spec"] = nullptr; }), LeaseVerdict::Malformed},
      {"no renewTime", with([](json& l) { l["spec"].erase("renewTime"); }), LeaseVerdict::Malformed},
      {"renewTime null", with([](json& l) { l["spec"]["renewTime"] = nullptr; }), LeaseVerdict::Malformed},
      {"renewTime garbage", with([](json& l) { l["spec"]["renewTime"] = "yesterday"; }), LeaseVerdict::Malformed},
      {"renewTime a number", with([](json& l) { l["spec"]["renewTime"] = 1750000000; }), LeaseVerdict::Malformed},
      {"no duration", with([](json& l) { l["spec"].erase("leaseDurationSeconds"); }), LeaseVerdict::Malformed},
      {"duration 0", with([](json& l) { l["spec"]["leaseDurationSeconds"] = 0; }), LeaseVerdict::Malformed},
      {"duration negative", with([](json& l) { l["spec"]["leaseDurationSeconds"] = -15; }), LeaseVerdict::Malformed},
      {"duration a string", with([](json& l) { l["spec"]["leaseDurationSeconds"] = "15"; }), LeaseVerdict::Malformed},
      {"duration fractional", with([](json& l) { l["spec"]["leaseDurationSeconds"] = 1.5; }), LeaseVerdict::Malformed},
      {"holder a number", with([](json& l) { l["spec"]["holderIdentity"] = 7; }), LeaseVerdict::Malformed},
      {"released (empty holder)", with([](json& l) { l["spec"]["holderIdentity"] = ""; }), LeaseVerdict::Expired},
      {"no holder", with([](json& l) { l["spec"].erase("holderIdentity"); }), LeaseVerdict::Expired},
      {"being deleted", with([](json& l) { l["metadata"]["deletionTimestamp"] = "2025-06-15T00:00:00Z"; }),
       LeaseVerdict::Expired},
      {"huge duration", with([](json& l) { l["spec"]["leaseDurationSeconds"] = INT64_MAX; }), LeaseVerdict::Live},
      {"RFC 3339 with an offset", with([](json& l) { l["spec"]["renewTime"] = "2025-06-15T17:06:40+02:00"; }),
       LeaseVerdict::Live},  // 15:06:40Z = kNow
      {"the good one", good, LeaseVerdict::Live},
  };
  std::vector<json> all;
  for (const auto& c : cases) {
    EXPECT_EQ(classifyLease(c.lease, "g", kNow, 0s), c.want) << c.what << ": " << c.lease.dump();
    all.push_back(c.lease);
  }
  auto count = countLiveMembers(all, "g", kNow, 0s);
  EXPECT_EQ(count.live, (std::vector<std::string>{"ok"}));
  EXPECT_EQ(count.malformed, 16);
  EXPECT_EQ(count.otherGroups, 3);
  EXPECT_EQ(count.expired, 3);
}

TEST(CountLiveMembers, TheLeaseARouterWrites) {
  const json l = memberLease("wl-sys", "wl-waterline-router", "pod-a", 15s, kNow - 1h, kNow);
  EXPECT_EQ(l["apiVersion"], "coordination.k8s.io/v1");
  EXPECT_EQ(l["kind"], "Lease");
  EXPECT_EQ(l["metadata"]["name"], memberLeaseName("wl-waterline-router", "pod-a"));
  EXPECT_EQ(l["metadata"]["namespace"], "wl-sys");
  EXPECT_EQ(l["metadata"]["labels"][kRouterGroupLabel], "wl-waterline-router");
  EXPECT_EQ(l["spec"]["holderIdentity"], "pod-a");
  EXPECT_EQ(l["spec"]["leaseDurationSeconds"], 15);
  EXPECT_EQ(l["spec"]["renewTime"], "2025-06-15T15:06:40.000000Z");
  EXPECT_EQ(l["spec"]["acquireTime"], "2025-06-15T14:06:40.000000Z");
  EXPECT_EQ(classifyLease(l, "wl-waterline-router", kNow + 14s, 0s), LeaseVerdict::Live);
  EXPECT_EQ(classifyLease(l, "wl-waterline-router", kNow + 15s, 0s), LeaseVerdict::Expired);
  // Sub-second durations round up to whole seconds (leaseDurationSeconds is an integer).
  EXPECT_EQ(memberLease("n", "g", "i", 1500ms, kNow, kNow)["spec"]["leaseDurationSeconds"], 2);
}

// ------------------------------------------------------------------ the loop

// The in-memory client with switchable failures (an unreachable apiserver).
class FlakyClient : public waterline::testing::FakeClient {
 public:
  std::atomic<bool> down{false};
  std::atomic<int> updates{0};
  kube::Result<kube::Json> get(const kube::ResourceKind& k, const std::string& ns, const std::string& n) override {
    if (down) return std::unexpected(kube::transportError("connection refused"));
    return FakeClient::get(k, ns, n);
  }
  kube::Result<kube::ObjectList> list(const kube::ResourceKind& k, const std::string& ns,
                                      const kube::ListOptions& o) override {
    if (down) return std::unexpected(kube::transportError("connection refused"));
    return FakeClient::list(k, ns, o);
  }
  kube::Result<kube::Json> create(const kube::ResourceKind& k, const std::string& ns, const kube::Json& obj,
                                  const kube::WriteOptions& o) override {
    if (down) return std::unexpected(kube::transportError("connection refused"));
    return FakeClient::create(k, ns, obj, o);
  }
  kube::Result<kube::Json> update(const kube::ResourceKind& k, const std::string& ns, const kube::Json& obj,
                                  const kube::WriteOptions& o) override {
    if (down) return std::unexpected(kube::transportError("connection refused"));
    ++updates;
    return FakeClient::update(k, ns, obj, o);
  }
  kube::Result<kube::Json> remove(const kube::ResourceKind& k, const std::string& ns, const std::string& n,
                                  const kube::DeleteOptions& o) override {
    if (down) return std::unexpected(kube::transportError("connection refused"));
    return FakeClient::remove(k, ns, n, o);
  }
};

struct Member {
  std::vector<int> notified;
  std::unique_ptr<LeaseMembership> m;
  Member(std::shared_ptr<FlakyClient> c, std::shared_ptr<SimulatedTimeSource> t, const std::string& id,
         metrics::Registry* reg = nullptr, int initial = 1) {
    MembershipConfig cfg;
    cfg.ns = "wl-sys";
    cfg.group = "routers";
    cfg.identity = id;
    cfg.leaseDuration = 15s;
    cfg.clockSkew = 1s;
    m = std::make_unique<LeaseMembership>(c, cfg, t, reg, [this](int n) { notified.push_back(n); }, initial);
  }
};

class MembershipLoop : public ::testing::Test {
 protected:
  std::shared_ptr<FlakyClient> client = std::make_shared<FlakyClient>();
  std::shared_ptr<SimulatedTimeSource> clock = std::make_shared<SimulatedTimeSource>(kNow);
  bool leaseExists(const std::string& id) {
    return client->FakeClient::get(kube::kinds::Lease, "wl-sys", memberLeaseName("routers", id)).has_value();
  }
};

TEST_F(MembershipLoop, TwoMembersSeeEachOtherAndACleanStopDropsAtOnce) {
  Member a(client, clock, "a"), b(client, clock, "b");
  EXPECT_EQ(a.m->renewPeriod(), 5s);
  ASSERT_TRUE(a.m->sync());
  EXPECT_EQ(a.m->replicas(), 1);
  EXPECT_EQ(a.notified, (std::vector<int>{1}));  // the first count is always announced
  ASSERT_TRUE(b.m->sync());
  EXPECT_EQ(b.m->replicas(), 2);
  clock->advance(5s);
  ASSERT_TRUE(a.m->sync());
  EXPECT_EQ(a.m->replicas(), 2);
  EXPECT_EQ(a.notified, (std::vector<int>{1, 2}));
  EXPECT_EQ(a.m->lastCount()->live, (std::vector<std::string>{"a", "b"}));
  // The own Lease as written.
  auto l = client->FakeClient::get(kube::kinds::Lease, "wl-sys", a.m->leaseName());
  ASSERT_TRUE(l);
  EXPECT_EQ((*l)["spec"]["holderIdentity"], "a");
  EXPECT_EQ((*l)["spec"]["leaseDurationSeconds"], 15);
  EXPECT_EQ((*l)["metadata"]["labels"][kRouterGroupLabel], "routers");
  EXPECT_EQ((*l)["spec"]["renewTime"], routing::formatMicroTime(clock->systemTime()));
  EXPECT_EQ((*l)["spec"]["acquireTime"], routing::formatMicroTime(kNow));  // kept across renewals
  // Renewals are updates of the Lease last written (no get before each).
  const int updatesBefore = client->updates;
  ASSERT_TRUE(a.m->sync());
  EXPECT_EQ(client->updates, updatesBefore + 1);

  b.m->stop(true);
  EXPECT_FALSE(leaseExists("b"));
  ASSERT_TRUE(a.m->sync());  // no time needs to pass
  EXPECT_EQ(a.m->replicas(), 1);
  EXPECT_EQ(a.notified, (std::vector<int>{1, 2, 1}));
  a.m->stop(true);
  EXPECT_FALSE(leaseExists("a"));
}

TEST_F(MembershipLoop, ACrashedMemberIsDroppedAfterTheLeaseDurationPlusSkew) {
  Member a(client, clock, "a"), b(client, clock, "b");
  ASSERT_TRUE(b.m->sync());
  ASSERT_TRUE(a.m->sync());
  EXPECT_EQ(a.m->replicas(), 2);
  b.m->stop(false);  // kill -9: the Lease stays
  EXPECT_TRUE(leaseExists("b"));
  // b renewed at kNow: live until kNow + 15 s + 1 s skew.
  for (auto step : {5s, 5s, 5s}) {
    clock->advance(step);
    ASSERT_TRUE(a.m->sync());
    EXPECT_EQ(a.m->replicas(), 2) << "at +" << (clock->systemTime() - kNow).count() << "ns";
  }
  clock->advance(1s - 1us);  // kNow + 16 s - 1 µs
  ASSERT_TRUE(a.m->sync());
  EXPECT_EQ(a.m->replicas(), 2);
  clock->advance(1us);
  ASSERT_TRUE(a.m->sync());
  EXPECT_EQ(a.m->replicas(), 1);
  EXPECT_EQ(a.m->lastCount()->expired, 1);
  EXPECT_EQ(a.notified, (std::vector<int>{2, 1}));
}

TEST_F(MembershipLoop, AnUnreachableApiserverKeepsTheLastCount) {
  metrics::Registry reg;
  Member a(client, clock, "a", &reg, 3), b(client, clock, "b"), c(client, clock, "c");
  EXPECT_EQ(a.m->replicas(), 3);  // --replicas until the first count
  client->down = true;
  EXPECT_FALSE(a.m->sync());
  EXPECT_EQ(a.m->replicas(), 3);  // not 1
  EXPECT_TRUE(a.notified.empty());
  client->down = false;
  ASSERT_TRUE(b.m->sync());
  ASSERT_TRUE(c.m->sync());
  ASSERT_TRUE(a.m->sync());
  EXPECT_EQ(a.m->replicas(), 3);
  EXPECT_EQ(a.notified, (std::vector<int>{3}));
  c.m->stop(true);
  ASSERT_TRUE(a.m->sync());
  EXPECT_EQ(a.m->replicas(), 2);

  client->down = true;
  // Long enough for every Lease, a's own included, to expire: still 2.
  for (int i = 0; i < 10; ++i) {
    clock->advance(5s);
    EXPECT_FALSE(a.m->sync());
    EXPECT_EQ(a.m->replicas(), 2);
  }
  EXPECT_EQ(a.notified, (std::vector<int>{3, 2}));
  const std::string text = reg.serialize();
  EXPECT_NE(text.find("waterline_router_membership_errors_total{operation=\"renew\"} 11"), std::string::npos) << text;
  EXPECT_NE(text.find("waterline_router_membership_errors_total{operation=\"list\"} 11"), std::string::npos) << text;
  // Back: b has not renewed for 50 s and is gone; a re-creates nothing (its Lease is
  // still there) and counts itself.
  client->down = false;
  ASSERT_TRUE(a.m->sync());
  EXPECT_EQ(a.m->replicas(), 1);
  ASSERT_TRUE(b.m->sync());
  ASSERT_TRUE(a.m->sync());
  EXPECT_EQ(a.m->replicas(), 2);
  // A failed delete on stop is counted too.
  client->down = true;
  a.m->stop(true);
  EXPECT_NE(reg.serialize().find("waterline_router_membership_errors_total{operation=\"delete\"} 1"),
            std::string::npos);
  client->down = false;
  EXPECT_TRUE(leaseExists("a"));
}

TEST_F(MembershipLoop, RecoversWhenItsLeaseIsChangedOrDeletedBehindItsBack) {
  Member a(client, clock, "a");
  ASSERT_TRUE(a.m->sync());
  const std::string name = a.m->leaseName();
  // Someone else updates it (a new resourceVersion): the next renewal conflicts, re-reads it.
  auto l = client->FakeClient::get(kube::kinds::Lease, "wl-sys", name);
  ASSERT_TRUE(l);
  (*l)["metadata"]["annotations"] = {{"touched", "yes"}};
  ASSERT_TRUE(client->FakeClient::update(kube::kinds::Lease, "wl-sys", *l, {}));
  clock->advance(5s);
  ASSERT_TRUE(a.m->sync());
  l = client->FakeClient::get(kube::kinds::Lease, "wl-sys", name);
  EXPECT_EQ((*l)["spec"]["renewTime"], routing::formatMicroTime(clock->systemTime()));
  // Someone deletes it: re-created.
  ASSERT_TRUE(client->FakeClient::remove(kube::kinds::Lease, "wl-sys", name, {}));
  clock->advance(5s);
  ASSERT_TRUE(a.m->sync());
  EXPECT_TRUE(leaseExists("a"));
  EXPECT_EQ(a.m->replicas(), 1);
}

TEST_F(MembershipLoop, TheThreadRenewsEveryThirdOfTheLeaseDuration) {
  Member a(client, clock, "a"), b(client, clock, "b");
  ASSERT_TRUE(b.m->sync());
  a.m->start();
  // The first round runs at once.
  for (int i = 0; i < 2000 && a.m->replicas() != 2; ++i) std::this_thread::sleep_for(1ms);
  EXPECT_EQ(a.m->replicas(), 2);
  b.m->stop(true);
  // Nothing happens before the renew period has passed on the (simulated) clock...
  clock->advance(5s);
  for (int i = 0; i < 2000 && a.m->replicas() != 1; ++i) std::this_thread::sleep_for(1ms);
  EXPECT_EQ(a.m->replicas(), 1);
  a.m->stop(true);
  EXPECT_FALSE(leaseExists("a"));
}

// ------------------------------------------------------------------ N -> PTU limits

TEST(RouterReplicaCount, SplitsEveryReservationAndIsExported) {
  RouterConfig cfg;
  cfg.replicas = 2;
  RouterServer server(cfg);
  auto d = routing::testing::deployment("llama", api::DeploymentType::Global,
                                        {routing::testing::entry("p", "eu-west", "EU", 0.1)});
  routing::ReservationInfo r;
  r.reservation = {"team", "contoso"};
  r.tokensPerMinute = 60000;
  d.reservations = {r};
  routing::RoutingTable t;
  t.deployments = {d};
  server.setRoutes(t);
  auto text = [&] { return server.registry().serialize(); };
  EXPECT_EQ(server.replicaCount(), 2);
  EXPECT_NE(text().find("waterline_router_members 2\n"), std::string::npos) << text();
  EXPECT_NE(text().find("waterline_router_ptu_limit_tokens{reservation=\"team/contoso\"} 30000\n"), std::string::npos)
      << text();
  server.setReplicaCount(3);
  EXPECT_NE(text().find("waterline_router_members 3\n"), std::string::npos);
  EXPECT_NE(text().find("waterline_router_ptu_limit_tokens{reservation=\"team/contoso\"} 20000\n"), std::string::npos)
      << text();
  server.setReplicaCount(0);  // counts as 1
  EXPECT_EQ(server.replicaCount(), 1);
  EXPECT_NE(text().find("waterline_router_ptu_limit_tokens{reservation=\"team/contoso\"} 60000\n"), std::string::npos)
      << text();
}

TEST(RouterReplicaCount, ChangesWhileRequestsAreAdmitted) {
  // setShare re-splits under the admission lock while other threads admit: no race (run
  // under TSan to check), every admission sees one of the limits, usage is kept.
  RouterConfig cfg;
  RouterServer server(cfg);
  auto d = routing::testing::deployment("llama", api::DeploymentType::Global,
                                        {routing::testing::entry("p", "eu-west", "EU", 0.1)});
  routing::ReservationInfo r;
  r.reservation = {"team", "contoso"};
  r.tokensPerMinute = 1'000'000;
  d.reservations = {r};
  routing::RoutingTable t;
  t.deployments = {d};
  server.setRoutes(t);
  std::atomic<bool> done{false};
  std::atomic<int> admitted{0};
  std::thread admitter([&] {
    while (!done) {
      auto a = server.admission().admit(d, 10, std::chrono::steady_clock::now());
      if (a.outcome == routing::AdmitOutcome::Admitted) ++admitted;
    }
  });
  // Re-split at least 2,000 times and until the admitter got 2,000 requests through
  // (bounded: 10 s).
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  for (int i = 0; (i < 2000 || admitted.load() < 2000) && std::chrono::steady_clock::now() < deadline; ++i)
    server.setReplicaCount(1 + i % 4);
  done = true;
  admitter.join();
  EXPECT_GE(admitted.load(), 2000);
  server.setReplicaCount(4);
  auto stats = server.admission().stats(std::chrono::steady_clock::now());
  EXPECT_DOUBLE_EQ(stats.at("team/contoso").limit, 250000);
  EXPECT_DOUBLE_EQ(stats.at("team/contoso").used, admitted.load() * 10.0);
}

}  // namespace
}  // namespace waterline::router
