#pragma once
// waterline-sim's deterministic embeddings (POST /v1/embeddings): hashed character
// trigrams. Texts that differ in case, spacing or a word or two land close (cosine near
// 1); unrelated texts land near 0. Also used by bench/cache to make near repeats.
#include <string>
#include <string_view>
#include <vector>

namespace waterline::sim {

constexpr int kEmbeddingDimensions = 256;

// The text as the embedder reads it: ASCII lower-cased, runs of whitespace as one space,
// no leading or trailing space.
std::string normalizeForEmbedding(std::string_view text);

// An L2-normalised vector of `dims` floats: each trigram of the normalised text (padded
// with one space each side) adds +1 or -1 (by a bit of its FNV-1a hash) to the bucket its
// hash picks. An empty text gives the unit vector on bucket 0.
std::vector<float> embedText(std::string_view text, int dims = kEmbeddingDimensions);

}  // namespace waterline::sim
