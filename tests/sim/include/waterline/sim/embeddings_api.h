#pragma once
// waterline-sim's POST /v1/embeddings (and /workers/<pod>/v1/embeddings): the request
// checked and answered with embedText's vectors, at once (not through the perf model).
#include <string>
#include <string_view>
#include <vector>

namespace waterline::sim {

// The most `dimensions` a request may ask for (a larger one is a 400).
constexpr int kMaxEmbeddingDimensions = 8192;

struct EmbeddingsAnswer {
  int status = 200;
  std::string body;  // JSON: an OpenAI embeddings list, or an OpenAI-shaped error
};

// Answers an OpenAI embeddings request body:
//   input            a string, or an array of strings, or an array of token ids (one
//                    input), or an array of arrays of token ids; token ids are embedded
//                    as their decimal text, space-separated;
//   encoding_format  "float" (the default: arrays of numbers) or "base64" (each vector's
//                    little-endian float32 bytes in base64, as the openai SDK asks by
//                    default);
//   dimensions       the vector length, 1..kMaxEmbeddingDimensions (default
//                    kEmbeddingDimensions);
//   model            echoed (defaultModel when absent).
// -> {"object":"list","data":[{"object":"embedding","index":i,"embedding":...}],
//     "model":..., "usage":{"prompt_tokens":N,"total_tokens":N}}, N the sum over the
// inputs of embeddingTokens (token ids: one each). Bad input: 400 with
// {"error":{"message","type":"invalid_request_error","param","code"}}.
EmbeddingsAnswer answerEmbeddings(std::string_view requestBody, std::string_view defaultModel);

// The tokens the sim charges for a text: ceil(bytes / 4), at least 1.
int embeddingTokens(std::string_view text);

// Standard base64 (RFC 4648, padded).
std::string base64Encode(std::string_view bytes);
// A vector as little-endian float32 bytes, base64-encoded (encoding_format "base64").
std::string embeddingToBase64(const std::vector<float>& v);

}  // namespace waterline::sim
