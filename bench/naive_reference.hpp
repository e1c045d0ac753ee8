#pragma once
// Textbook attention in double precision: one query row at a time, every logit, an exact softmax.
// Quadratic memory-free but slow; the benchmark runs it on small shapes only.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "variants.hpp"

namespace alibi_bench {

inline void run_naive_attention(const AttentionCall& call) {
  const std::int64_t q_len = call.shape.q_len;
  const std::int64_t kv_len = call.shape.kv_len;
  const int num_heads = call.shape.num_heads;
  const int num_kv_heads = call.shape.num_kv_heads;
  const int head_dim = call.shape.head_dim;
  const int group = num_heads / num_kv_heads;
  const std::int64_t q_pos0 = kv_len - q_len;
  const double scale = 1.0 / std::sqrt(static_cast<double>(head_dim));
  std::vector<double> logits_storage(static_cast<std::size_t>(kv_len));
  std::vector<double> accumulated_storage(static_cast<std::size_t>(head_dim));
  double* logits = logits_storage.data();
  double* accumulated = accumulated_storage.data();

  for (int b = 0; b < call.shape.batch; ++b) {
    for (std::int64_t i = 0; i < q_len; ++i) {
      const std::int64_t position = q_pos0 + i;
      const std::int64_t visible = position < 0 ? 0 : std::min(position + 1, kv_len);
      for (int h = 0; h < num_heads; ++h) {
        const int kv_head = h / group;
        const float* q = call.q + ((static_cast<std::int64_t>(b) * q_len + i) * num_heads + h) * head_dim;
        float* out = call.out + ((static_cast<std::int64_t>(b) * q_len + i) * num_heads + h) * head_dim;
        auto key_row = [&](const float* base, std::int64_t j) {
          return base + ((static_cast<std::int64_t>(b) * kv_len + j) * num_kv_heads + kv_head) * head_dim;
        };
        double row_max = -INFINITY;
        for (std::int64_t j = 0; j < visible; ++j) {
          const float* k = key_row(call.k, j);
          double dot = 0.0;
          for (int d = 0; d < head_dim; ++d) dot += static_cast<double>(q[d]) * k[d];
          logits[j] = dot * scale - static_cast<double>(call.options.slopes[h]) * static_cast<double>(position - j);
          row_max = std::max(row_max, logits[j]);
        }
        std::fill(accumulated, accumulated + head_dim, 0.0);
        double denominator = 0.0;
        for (std::int64_t j = 0; j < visible; ++j) {
          const double weight = std::exp(logits[j] - row_max);
          denominator += weight;
          const float* v = key_row(call.v, j);
          for (int d = 0; d < head_dim; ++d) accumulated[d] += weight * v[d];
        }
        for (int d = 0; d < head_dim; ++d)
          out[d] = visible == 0 ? 0.0f : static_cast<float>(accumulated[d] / denominator);
      }
    }
  }
}

}  // namespace alibi_bench
