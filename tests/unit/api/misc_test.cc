// keys.h helpers, MIG profiles, GPU request shapes, query templates, pool node matching.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "waterline/api/capacity_pool.h"
#include "waterline/api/gpu.h"
#include "waterline/api/keys.h"
#include "waterline/api/model_deployment.h"

namespace waterline::api {
namespace {

// requestsPerMinute derived as Azure OpenAI does: 6 per 1000 tokens per minute, rounded
// down, at least 1; an explicit value wins.
TEST(RateLimit, RequestsPerMinuteDefaultsToSixPerThousandTokens) {
  auto rpm = [](int64_t tpm, std::optional<int64_t> r = std::nullopt) {
    return RateLimitSpec{.tokensPerMinute = tpm, .requestsPerMinute = r}.effectiveRequestsPerMinute();
  };
  EXPECT_EQ(rpm(1000), 6);
  EXPECT_EQ(rpm(120000), 720);
  EXPECT_EQ(rpm(1999), 11);
  EXPECT_EQ(rpm(500), 3);
  EXPECT_EQ(rpm(1), 1);
  EXPECT_EQ(rpm(INT64_MAX), INT64_MAX / 1000 * 6 + (INT64_MAX % 1000) * 6 / 1000);
  EXPECT_EQ(rpm(120000, 7), 7);
}

TEST(Keys, LabelValues) {
  EXPECT_TRUE(isValidLabelValue(""));
  EXPECT_TRUE(isValidLabelValue("v1"));
  EXPECT_TRUE(isValidLabelValue("2024-07-23"));
  EXPECT_FALSE(isValidLabelValue("-a"));
  EXPECT_FALSE(isValidLabelValue("a/b"));
  EXPECT_FALSE(isValidLabelValue(std::string(64, 'a')));
  EXPECT_EQ(modelLabelValue("meta-llama/Llama-3.1-8B-Instruct"), "meta-llama.Llama-3.1-8B-Instruct");
  EXPECT_EQ(modelLabelValue("org/model:tag"), "org.model.tag");
  EXPECT_EQ(modelLabelValue("/weird/"), "weird");
  std::string longName = "org/" + std::string(80, 'x');
  EXPECT_EQ(modelLabelValue(longName).size(), 63u);
  EXPECT_TRUE(isValidLabelValue(modelLabelValue(longName)));
  EXPECT_TRUE(isValidLabelValue(modelLabelValue("a/" + std::string(59, 'b') + "/-c")));
  EXPECT_EQ(gfd::migResource("3g.40gb"), "nvidia.com/mig-3g.40gb");
  EXPECT_EQ(gfd::migCountLabel("1g.10gb"), "nvidia.com/mig-1g.10gb.count");
}

TEST(Gpu, MigProfiles) {
  auto p = MigProfile::parse("3g.40gb");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->computeSlices, 3);
  EXPECT_EQ(p->memoryGB, 40);
  EXPECT_FALSE(p->mediaExtensions);
  EXPECT_EQ(p->name(), "3g.40gb");
  auto me = MigProfile::parse("1g.10gb+me");
  ASSERT_TRUE(me);
  EXPECT_TRUE(me->mediaExtensions);
  EXPECT_EQ(me->name(), "1g.10gb+me");
  for (const char* bad : {"", "8g.80gb", "0g.10gb", "3g40gb", "3g.040gb", "3g.40GB", "3g.40gb+", "g.10gb", "3g.gb"})
    EXPECT_FALSE(MigProfile::parse(bad)) << bad;
}

TEST(Gpu, RequestShapes) {
  GpuRequest whole;
  whole.count = 4;
  EXPECT_EQ(whole.kind(), GpuRequestKind::Count);
  EXPECT_DOUBLE_EQ(whole.gpuFraction(), 4);
  GpuRequest mig;
  mig.migProfile = "3g.40gb";
  EXPECT_EQ(mig.kind(), GpuRequestKind::MigProfile);
  EXPECT_DOUBLE_EQ(mig.gpuFraction(), 3.0 / 7);
  GpuRequest share;
  share.sharesPerGpu = 4;
  EXPECT_EQ(share.kind(), GpuRequestKind::Shares);
  EXPECT_DOUBLE_EQ(share.gpuFraction(), 0.25);
}

TEST(Autoscaling, RenderQuery) {
  AutoscalingSpec a;
  EXPECT_EQ(a.renderQuery("llama", "llm", "h100-eu-west"),
            R"(sum(rate(vllm:generation_tokens_total{namespace="llm",deployment="llama"}[1m])))");
  a.query = "x{pool=\"{{pool}}\",d=\"{{deployment}}\",n=\"{{namespace}}\",o=\"{{other}}\"} {{pool}}";
  EXPECT_EQ(a.renderQuery("d1", "n1", "p1"), "x{pool=\"p1\",d=\"d1\",n=\"n1\",o=\"{{other}}\"} p1");
}

TEST(Pool, SelectsNodesByProductAndSelector) {
  CapacityPoolSpec s;
  s.gpuProduct = "NVIDIA-H100-80GB-HBM3";
  s.nodeSelector.matchLabels = {{"topology.kubernetes.io/region", "eu-west"}};
  EXPECT_TRUE(s.selectsNode({{"nvidia.com/gpu.product", "NVIDIA-H100-80GB-HBM3"}, {"topology.kubernetes.io/region", "eu-west"}}));
  EXPECT_FALSE(s.selectsNode({{"nvidia.com/gpu.product", "NVIDIA-L40S"}, {"topology.kubernetes.io/region", "eu-west"}}));
  EXPECT_FALSE(s.selectsNode({{"topology.kubernetes.io/region", "eu-west"}}));
  EXPECT_FALSE(s.selectsNode({{"nvidia.com/gpu.product", "NVIDIA-H100-80GB-HBM3"}}));
  s.sharing = {SharingMode::TimeSlicing, {}, 4};
  EXPECT_EQ(s.sharing.sharesPerGpu(), 4);
}

TEST(Deployment, SelectorLabelsAndHealthPort) {
  ModelDeployment d;
  d.metadata.name = "llama";
  EXPECT_EQ(d.workerSelectorLabels(),
            (Labels{{"waterline.dev/deployment", "llama"}, {"app.kubernetes.io/managed-by", "waterline"}}));
  EXPECT_EQ(d.spec.healthPort(), 0);
  d.spec.template_.raw = {{"spec", {{"image", "img"}, {"ports", {{{"name", "http"}, {"containerPort", 8080}}}}}}};
  EXPECT_EQ(d.spec.healthPort(), 8080);
  d.spec.healthCheck.port = 9000;
  EXPECT_EQ(d.spec.healthPort(), 9000);
}

TEST(Keys, ReservedKeysAreTheOperatorsPrefixAndItsSubdomains) {
  for (const char* k : {"waterline.dev/draining-since", "waterline.dev/gpu-assignment", "waterline.dev/x",
                        "ops.waterline.dev/x", "a.b.waterline.dev/y", "WaterLine.DEV/x"})
    EXPECT_TRUE(isReservedKey(k)) << k;
  for (const char* k : {"app", "waterline.dev", "notwaterline.dev/x", "waterline.development/x", "example.com/waterline.dev",
                        "app.kubernetes.io/name", "dev/waterline", ""})
    EXPECT_FALSE(isReservedKey(k)) << k;
}

TEST(Deployment, HealthCheckPathFitsAnHttpRequestLine) {
  EXPECT_TRUE(isValidHttpPath("/health"));
  EXPECT_TRUE(isValidHttpPath("/v1/models?x=%20&y=~!$"));
  EXPECT_TRUE(isValidHttpPath("/"));
  const std::vector<std::string> bad{"", "health", "/a b", "/a\tb", "/h\r\nX-Injected: 1", "/\n",
                                     "/\x7f", std::string("/a\0b", 4), "/\x1b[0m"};
  for (const auto& b : bad) EXPECT_FALSE(isValidHttpPath(b)) << b;
}

}  // namespace
}  // namespace waterline::api
