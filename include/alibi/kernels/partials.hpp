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
#include <cmath>
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

// Note [merging partial results]: one implementation merges the split-K pieces inside a call and the
// partial results of separate calls (alibi::merge_partials). A partial result of a row over a key set is
// (m, s, o): running max m, sum s = sum_j e^{x_j - m}, o = sum_j e^{x_j - m} v_j, so the row's softmax over
// those keys is o / s and their log-sum-exp m + log s. A finished result (out, lse) is (lse, 1, out).
// Merging (key sets disjoint):
//   M = max_c m_c,  w_c = e^{m_c - M} <= 1,  S = sum_c s_c w_c,  out = (sum_c o_c w_c) / S,  lse = M + log S.
// No term can overflow for any spread of the m_c, and a part far below M gets weight exactly 0 (exp flushes
// below the normal range). An empty part (s = 0, or m = -inf with a non-NaN s) is left out, so whatever
// its o holds never reaches the result; all parts empty: zeros and -inf. A NaN s (a poisoned split piece,
// Note [non-finite rows]) or a NaN m makes the result NaN.
struct PartialRow {
  float max;
  float sum;
  const float* o;
};

inline bool empty_partial(const PartialRow& part) {
  return part.sum == 0.0f || (part.max == -std::numeric_limits<float>::infinity() && part.sum == part.sum);
}

// Merges parts(0) .. parts(count - 1) (each a PartialRow) into out[0, head_dim), in that order, and returns
// the log-sum-exp of the union of their key sets (-inf if every part is empty). `weights`: count floats of
// scratch. out may alias the o of any part: each element is read from every part before it is written.
template <class Parts>
double merge_partial_rows(const Parts& parts, std::int64_t count, int head_dim, float* weights, float* out) {
  float max = -std::numeric_limits<float>::infinity();
  bool any = false;
  for (std::int64_t c = 0; c < count; ++c) {
    const PartialRow part = parts(c);
    if (empty_partial(part)) continue;
    any = true;
    max = part.max > max || part.max != part.max ? part.max : max;  // NaN sticks
  }
  // Weight -1 marks an empty part. A part with weight 0 still multiplies its o: an inf or NaN the row saw
  // there makes the row non-finite, as it does without split-K (the caller then recomputes it).
  constexpr float kEmpty = -1.0f;
  float sum = 0.0f;
  for (std::int64_t c = 0; c < count; ++c) {
    const PartialRow part = parts(c);
    weights[c] = empty_partial(part) ? kEmpty : simd::exp<isa::scalar>(part.max - max);
    if (!(weights[c] < 0.0f)) sum += part.sum * weights[c];
  }
  const float inv = any ? 1.0f / sum : 0.0f;
  for (int d = 0; d < head_dim; ++d) {
    float acc = 0.0f;
    for (std::int64_t c = 0; c < count; ++c)
      if (!(weights[c] < 0.0f)) acc += parts(c).o[d] * weights[c];
    out[d] = acc * inv;
  }
  if (!any) return -HUGE_VAL;
  return static_cast<double>(max) + std::log(static_cast<double>(sum));
}

// Combines the chunks [c0, c1) of `unit` into its output rows; chunk c's state starts at
// states + c * plan.partial_floats_per_piece(). `weights`: plan.chunks floats of scratch. The chunks a row
// sees no key of are empty and left out, so any range holding all of a row's chunks gives the same bits.
template <class Isa, class KV>
void merge_unit(const detail::Problem& pr, const Plan<Isa>& plan, const float* states, std::int64_t c0, std::int64_t c1,
                std::int64_t unit, float* weights) {
  const std::int64_t stride = plan.partial_floats_per_piece();
  const std::int64_t row_floats = 2 + plan.dim_pad;
  const UnitLayout& L = plan.layout;
  const UnitCoords u = plan.coords(pr, unit);
  const KvSource<Isa, KV> kv(pr);
  std::int64_t r = 0;
  for (int kv_head = u.kv_head0; kv_head < u.kv_head0 + u.kv_heads; ++kv_head)
    for (std::int64_t i = u.i0; i < u.i1; ++i)
      for (int g = 0; g < L.group; ++g, ++r) {
        const int h = kv_head * L.group + g;
        const std::int64_t row = (u.b * pr.q_len + i) * pr.num_heads + h;
        float* out = pr.out + row * pr.head_dim;
        const float* row_states = states + c0 * stride + r * row_floats;
        const auto piece = [&](std::int64_t c) {
          const float* state = row_states + c * stride;
          return PartialRow{state[0], state[1], state + 2};
        };
        const double lse = merge_partial_rows(piece, c1 - c0, pr.head_dim, weights, out);
        std::int64_t lo, hi;
        const std::int64_t pos = pr.q_pos0 + i;
        detail::visible_keys(pr, pos, lo, hi);
        if (!all_finite(out, pr.head_dim)) {
          recompute_row_exactly(pr, kv, u.b, i, h, lo, hi, out, pr.lse == nullptr ? nullptr : pr.lse + row);
        } else if (pr.lse != nullptr) {
          pr.lse[row] = static_cast<float>(lse + detail::dropped_bias(pr.slopes[h], pos, lo, hi));
        }
      }
}

}  // namespace kernels
ALIBI_NAMESPACE_END
#endif  // per-target guard
