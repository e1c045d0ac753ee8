// Split-K partial states and their merge. A split piece ends with each row's unnormalised softmax state
// over its keys: running max m_c, sum s_c = sum_j e^{x_j - m_c} and o_c = sum_j e^{x_j - m_c} v_j. Pieces
// merge by the log-sum-exp rule, in key order (so the result does not depend on which threads computed
// them):
//   m = max_c m_c,   s = sum_c s_c e^{m_c - m},   out = (sum_c o_c e^{m_c - m}) / s.
// Row layout in the buffer: [max, sum, o_0 .. o_{dim_pad - 1}].
#include "alibi/detail/config.hpp"
// Per-target header: no #pragma once (Note [per-target headers] in detail/config.hpp).
#if (ALIBI_PASS == 0 && !defined(ALIBI_KERNELS_PARTIALS_HPP_0)) || \
    (ALIBI_PASS == 1 && !defined(ALIBI_KERNELS_PARTIALS_HPP_1)) || \
    (ALIBI_PASS == 2 && !defined(ALIBI_KERNELS_PARTIALS_HPP_2))
#if ALIBI_PASS == 0
#define ALIBI_KERNELS_PARTIALS_HPP_0
#elif ALIBI_PASS == 1
#define ALIBI_KERNELS_PARTIALS_HPP_1
#else
#define ALIBI_KERNELS_PARTIALS_HPP_2
#endif
#include <cstdint>
#include <limits>

#include "alibi/detail/buffer.hpp"
#include "alibi/detail/config.hpp"
#include "alibi/detail/problem.hpp"
#include "alibi/isa/exp.hpp"
#include "alibi/kernels/kv_source.hpp"
#include "alibi/kernels/plan.hpp"
#include "alibi/kernels/row_fallback.hpp"

ALIBI_NAMESPACE_BEGIN
namespace kernels {

// Writes one row's state; a piece that saw no key stores max -inf and sum 0.
inline void save_partial_row(float* state, float max, float sum, const float* o, std::int64_t dim_pad) {
  state[0] = max;
  state[1] = sum;
  for (std::int64_t d = 0; d < dim_pad; ++d) state[2 + d] = o[d];
}

// Merges the `pieces` states of one row (`stride` floats apart) into out[0, head_dim). Returns false if the
// result is not finite (the caller recomputes the row exactly: Note [non-finite rows]).
inline bool merge_partial_row(const float* states, std::int64_t pieces, std::int64_t stride, int head_dim, float* acc,
                              float* out) {
  float max = -std::numeric_limits<float>::infinity();
  for (std::int64_t c = 0; c < pieces; ++c) {
    const float m = states[c * stride];
    max = m > max ? m : max;  // never NaN: a piece's max is a max of logits (NaN logits poison the sum)
  }
  for (int d = 0; d < head_dim; ++d) acc[d] = 0.0f;
  float sum = 0.0f;
  if (max != -std::numeric_limits<float>::infinity()) {
    for (std::int64_t c = 0; c < pieces; ++c) {
      const float* state = states + c * stride;
      if (state[1] == 0.0f) continue;  // this piece saw nothing
      const float weight = simd::exp<isa::scalar>(state[0] - max);
      sum += state[1] * weight;
      for (int d = 0; d < head_dim; ++d) acc[d] += state[2 + d] * weight;
    }
  }
  const float inv = sum == 0.0f ? 0.0f : 1.0f / sum;
  for (int d = 0; d < head_dim; ++d) out[d] = acc[d] * inv;
  return all_finite(out, head_dim);
}

// Combines the split pieces of `unit` into its output rows.
template <class Isa, class KV>
void merge_unit(const detail::Problem& pr, const Plan<Isa>& plan, const float* partial, std::int64_t unit) {
  const std::int64_t chunks = plan.chunks;
  const std::int64_t stride = plan.partial_floats_per_piece();
  const std::int64_t row_floats = 2 + plan.dim_pad;
  const UnitLayout& L = plan.layout;
  const UnitCoords u = plan.coords(pr, unit);
  const KvSource<Isa, KV> kv(pr);
  detail::Buffer<float> acc(static_cast<std::size_t>(pr.head_dim));
  std::int64_t r = 0;
  for (int kv_head = u.kv_head0; kv_head < u.kv_head0 + u.kv_heads; ++kv_head)
    for (std::int64_t i = u.i0; i < u.i1; ++i)
      for (int g = 0; g < L.group; ++g, ++r) {
        const int h = kv_head * L.group + g;
        float* out = pr.out + ((u.b * pr.q_len + i) * pr.num_heads + h) * pr.head_dim;
        const float* states = partial + unit * chunks * stride + r * row_floats;
        if (!merge_partial_row(states, chunks, stride, pr.head_dim, acc.data(), out)) {
          std::int64_t lo, hi;
          detail::visible_keys(pr, pr.q_pos0 + i, lo, hi);
          recompute_row_exactly(pr, kv, u.b, i, h, lo, hi, out);
        }
      }
}

}  // namespace kernels
ALIBI_NAMESPACE_END
#endif  // per-target guard
