// Note [non-finite rows]: the fast kernel processes rows in tiles, and a tile multiplies a P entry of 0
// by a value row that one of its rows cannot see; if that value row holds a NaN or inf, 0 * inf = NaN
// would leak into a row that never saw it. Logits that overflow fp32 (huge but finite q and k) would
// also turn finite inputs into NaN. And a dot product's fp32 partial sums can overflow to -inf while
// the true logit is finite, even the row's largest, which would silently drop that key. The kernel
// poisons (sets the softmax sum to NaN in) every row where any of these can have happened: a non-finite
// dot product, a NaN logit, or visible logits that are all -inf. Those rows (and only they) come out
// non-finite and are recomputed here: one row, only its visible keys, in double precision, without
// skipping. Finite inputs then always give finite, correct outputs, and a NaN or inf in q, k or v
// reaches exactly the rows that see it.
#include "alibi/detail/config.hpp"
// Per-target header: no #pragma once (Note [per-target headers] in detail/config.hpp).
#if (ALIBI_PASS == 0 && !defined(ALIBI_KERNELS_ROW_FALLBACK_HPP_0)) || \
    (ALIBI_PASS == 1 && !defined(ALIBI_KERNELS_ROW_FALLBACK_HPP_1)) || \
    (ALIBI_PASS == 2 && !defined(ALIBI_KERNELS_ROW_FALLBACK_HPP_2))
#if ALIBI_PASS == 0
#define ALIBI_KERNELS_ROW_FALLBACK_HPP_0
#elif ALIBI_PASS == 1
#define ALIBI_KERNELS_ROW_FALLBACK_HPP_1
#else
#define ALIBI_KERNELS_ROW_FALLBACK_HPP_2
#endif
#include <cmath>
#include <cstdint>
#include <limits>

#include "alibi/detail/buffer.hpp"
#include "alibi/detail/config.hpp"
#include "alibi/detail/problem.hpp"
#include "alibi/kernels/elements.hpp"
#include "alibi/kernels/kv_source.hpp"

ALIBI_NAMESPACE_BEGIN
namespace kernels {

inline bool all_finite(const float* row, int n) {
  for (int d = 0; d < n; ++d)
    if (!std::isfinite(row[d])) return false;
  return true;
}

// Recomputes output row (b, i, h) whose visible keys are [lo, hi) into `out`, and its log-sum-exp into
// *lse when lse is not null.
template <class Isa, class KV>
void recompute_row_exactly(const detail::Problem& pr, const KvSource<Isa, KV>& kv, std::int64_t b, std::int64_t i,
                           int h, std::int64_t lo, std::int64_t hi, float* out, float* lse) {
  const int D = pr.head_dim;
  const int kv_head = h / (pr.num_heads / pr.num_kv_heads);
  const float* q = pr.q + ((b * pr.q_len + i) * pr.num_heads + h) * D;
  // In the frame of the nearest visible key (Note [nearest-key frame]); the lse adds the constant back.
  const std::int64_t pos = lo < hi ? detail::nearest_visible_key(pr.q_pos0 + i, lo, hi) : pr.q_pos0 + i;
  const double slope = pr.slopes[h];
  detail::Buffer<double> acc(static_cast<std::size_t>(D));
  double max = -std::numeric_limits<double>::infinity(), sum = 0.0;
  for (std::int64_t j = lo; j < hi; ++j) {
    const KV* key = kv.key_row(b, kv_head, j);
    const KV* value = kv.value_row(b, kv_head, j);
    double dot = 0.0;
    for (int d = 0; d < D; ++d) dot += static_cast<double>(q[d]) * to_fp32(key[d]);
    const double logit = static_cast<double>(pr.scale) * dot - slope * std::fabs(static_cast<double>(pos - j));
    if (logit == -std::numeric_limits<double>::infinity()) continue;
    if (logit > max) {  // rescale; also reached once for the first key (max = -inf, factor 0)
      const double factor = std::exp(max - logit);
      sum *= factor;
      for (int d = 0; d < D; ++d) acc[static_cast<std::size_t>(d)] *= factor;
      max = logit;
    }
    const double weight = std::isnan(logit) ? logit : std::exp(logit - max);
    sum += weight;
    for (int d = 0; d < D; ++d) acc.data()[d] += weight * to_fp32(value[d]);
  }
  for (int d = 0; d < D; ++d) out[d] = sum == 0.0 ? 0.0f : static_cast<float>(acc.data()[d] / sum);
  if (lse != nullptr)
    *lse = sum == 0.0
               ? -HUGE_VALF
               : static_cast<float>(max + std::log(sum) + detail::dropped_bias(pr.slopes[h], pr.q_pos0 + i, lo, hi));
}

}  // namespace kernels
ALIBI_NAMESPACE_END
#endif  // per-target guard
