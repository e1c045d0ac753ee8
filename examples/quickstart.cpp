// The smallest complete use of alibi: head slopes, the dense bias of one head, and fused attention - then
// one output row recomputed by hand from that bias, to show exactly what attention() computes.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <vector>

#include "alibi/alibi.hpp"

int main() {
  const int num_heads = 4, num_kv_heads = 2, head_dim = 8;
  const std::int64_t tokens = 5;

  // 1. Slopes: head h penalises a key d positions back by slopes[h] * d.
  const std::vector<float> slopes = alibi::slopes(num_heads);
  std::printf("slopes:");
  for (const float m : slopes) std::printf(" %g", m);
  std::printf("\n");

  // 2. The causal bias of head 0 as a dense tokens x tokens matrix (-inf above the diagonal).
  std::vector<float> bias(static_cast<std::size_t>(tokens * tokens));
  alibi::causal_bias(slopes[0], tokens, tokens, bias.data());
  std::printf("bias of head 0:\n");
  for (std::int64_t i = 0; i < tokens; ++i) {
    for (std::int64_t j = 0; j < tokens; ++j)
      std::printf(" %6.2f", bias[static_cast<std::size_t>(i * tokens + j)] + 0.0f);  // + 0 prints -0 as 0
    std::printf("\n");
  }

  // 3. Fused attention. Layout: q, out [tokens][num_heads][head_dim]; k, v [tokens][num_kv_heads][head_dim].
  alibi::AttentionShape shape;
  shape.q_len = tokens;
  shape.kv_len = tokens;
  shape.num_heads = num_heads;
  shape.num_kv_heads = num_kv_heads;  // 2 query heads share each kv head (grouped-query attention)
  shape.head_dim = head_dim;
  std::vector<float> q(static_cast<std::size_t>(tokens * num_heads * head_dim));
  std::vector<float> k(static_cast<std::size_t>(tokens * num_kv_heads * head_dim)), v(k.size());
  for (std::size_t i = 0; i < q.size(); ++i) q[i] = std::sin(0.37f * static_cast<float>(i));
  for (std::size_t i = 0; i < k.size(); ++i) k[i] = std::cos(0.21f * static_cast<float>(i));
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = std::sin(0.11f * static_cast<float>(i) + 1.0f);
  std::vector<float> out(q.size());
  alibi::attention(q.data(), k.data(), v.data(), out.data(), shape);  // causal, scale 1/sqrt(head_dim)

  // 4. The last token's row of head 0 by hand: softmax(scale * q.k + bias) v, kv head 0.
  const std::int64_t row = tokens - 1;
  const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
  std::vector<double> weights(static_cast<std::size_t>(tokens));
  double sum = 0.0;
  for (std::int64_t j = 0; j < tokens; ++j) {
    double dot = 0.0;
    for (int d = 0; d < head_dim; ++d)
      dot += q[static_cast<std::size_t>((row * num_heads + 0) * head_dim + d)] *
             k[static_cast<std::size_t>((j * num_kv_heads + 0) * head_dim + d)];
    const double logit = scale * dot + bias[static_cast<std::size_t>(row * tokens + j)];
    sum += weights[static_cast<std::size_t>(j)] = std::exp(logit);  // exp(-inf) = 0 masks the future
  }
  double max_difference = 0.0;
  std::printf("last token, head 0:\n  attention():");
  for (int d = 0; d < head_dim; ++d)
    std::printf(" %8.5f", out[static_cast<std::size_t>((row * num_heads) * head_dim + d)]);
  std::printf("\n  by hand:    ");
  for (int d = 0; d < head_dim; ++d) {
    double value = 0.0;
    for (std::int64_t j = 0; j < tokens; ++j)
      value +=
          weights[static_cast<std::size_t>(j)] / sum * v[static_cast<std::size_t>((j * num_kv_heads) * head_dim + d)];
    std::printf(" %8.5f", value);
    max_difference =
        std::fmax(max_difference, std::abs(value - out[static_cast<std::size_t>((row * num_heads) * head_dim + d)]));
  }
  std::printf("\nmax difference: %.2g\n", max_difference);
  return max_difference < 1e-5 ? 0 : 1;
}
