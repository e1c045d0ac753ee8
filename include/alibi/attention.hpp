#pragma once
// Fused ALiBi attention: out = softmax(scale * Q K^T + bias) V, computed block by block with an online
// softmax so no q_len x kv_len matrix is ever built.
#include <cstdint>

#include "alibi/detail/config.hpp"
#include "alibi/detail/require_isa.hpp"
#include "alibi/isa/tags.hpp"
#include "alibi/kernels/attention_call.hpp"
#include "alibi/kernels/merge_call.hpp"
#include "alibi/types.hpp"

ALIBI_NAMESPACE_BEGIN

/// out = softmax(scale * q.k + bias) v for every (batch, head, query row), with query row i at position
/// p = q_pos0 + i, key row j at position t = kv_pos0 + j (q_pos0 = -1: kv_pos0 + kv_len - q_len), and
///   causal:        bias = -m_h * (p - t),  visible iff t <= p (and p - t < window when window > 0)
///   bidirectional: bias = -m_h * |p - t|,  visible iff |p - t| < window when window > 0, else always.
/// A query row that sees no key gets an output row of zeros (and lse -infinity).
/// With options.lse, also writes each row's log-sum-exp of its logits: calls over disjoint shards of a
/// sequence's keys (each with its kv_pos0) merge exactly with alibi::merge_partials.
///
/// Guarantees: no q_len x kv_len matrix: extra memory is O(block sizes * head_dim) per thread, plus, for
/// block skipping, key-norm bounds (one float per key row without caller key_norms, and about
/// log2(kv_len / 64) floats per (batch, kv head, 64 keys)), and, for split-K (few query rows over many
/// keys), one partial output row per (row, 2048-key chunk). The
/// output is bitwise identical for every num_threads value; the bias comes from the integer distance
/// p - j, so it is exact at any context length; exp() flushes results below the normal range to exactly
/// zero (no denormals reach the P.V products, whatever the caller's MXCSR).
///
/// Threads: with OpenMP enabled in the calling TU (-fopenmp) work is split with `omp parallel`; otherwise
/// with std::thread. Work items are fixed (batch, kv head, query block) units, so the split never changes
/// the arithmetic.
///
/// @throws std::invalid_argument (naming the parameter) for negative sizes, num_heads <= 0,
///         num_kv_heads <= 0 or not dividing num_heads, head_dim <= 0, batch < 0, window < 0, q_pos0 < -1,
///         kv_pos0 < 0, q_pos0 + q_len or kv_pos0 + kv_len overflowing, out or lse overlapping slopes or
///         key_norms, lse overlapping q, k, v or out,
///         num_threads < 0, a non-finite scale or slope, a negative or non-finite skip_tolerance, a null
///         pointer where a non-empty tensor is expected, `out` overlapping q, k or v, or sizes whose
///         element counts overflow. Nothing is written to `out` or `lse` then.
///
/// `Isa` must be enabled by this translation unit's compile flags (isa::native: the widest that is);
/// alibi::dispatch::attention (alibi/dispatch.hpp) picks the widest one the running CPU has instead.
///
/// KV, the element type of k and v: float, bfloat16 or float16 (alibi/types.hpp). The result is exactly the
/// fp32 attention of q against to_float(k), to_float(v): 16-bit values are widened exactly as they are
/// read, and q, out, scale, slopes, bias and all accumulation stay fp32.
template <class Isa = isa::native, class KV>
void attention(const float* q, const KV* k, const KV* v, float* out, const AttentionShape& shape,
               const AttentionOptions& options = {}) {
  detail::require_isa<Isa>();
  kernels::attention<Isa>(q, k, v, out, shape, options);
}

/// fp32 K/V. The same call as above; this overload also takes a literal nullptr for k or v (empty tensors),
/// from which KV could not be deduced.
template <class Isa = isa::native>
void attention(const float* q, const float* k, const float* v, float* out, const AttentionShape& shape,
               const AttentionOptions& options = {}) {
  detail::require_isa<Isa>();
  kernels::attention<Isa>(q, k, v, out, shape, options);
}

/// Exact merge of two partial results of the same rows over disjoint key sets: out_a, out_b, out are `rows`
/// rows of head_dim floats, lse_a, lse_b, lse one float per row (AttentionOptions::lse of each call). The
/// result is the attention of each row over the union of the two key sets:
///   M = max(lse_a, lse_b),  w_x = e^{lse_x - M},  out = (w_a out_a + w_b out_b) / (w_a + w_b),
///   lse = M + log(w_a + w_b).
/// A side with lse -infinity (it saw no key) is left out entirely; both: zeros and -infinity. Stable for
/// any difference of lse (no overflow, no NaN from finite inputs). out may be out_a or out_b and lse may be
/// lse_a or lse_b (in place); any other overlap is rejected. Split-K pieces inside one attention call are
/// merged by the same code. Merging in any order and grouping gives the same result up to rounding.
/// @throws std::invalid_argument (naming the parameter) for rows < 0, head_dim <= 0, a null pointer when
///         rows > 0, or overlapping arrays other than the in-place cases. Nothing is written then.
template <class Isa = isa::native>
void merge_partials(const float* out_a, const float* lse_a, const float* out_b, const float* lse_b, float* out,
                    float* lse, std::int64_t rows, int head_dim) {
  detail::require_isa<Isa>();
  kernels::merge_partials(out_a, lse_a, out_b, lse_b, out, lse, rows, head_dim);
}

/// Writes an upper bound on |k| for every key row: out[(b * kv_len + j) * num_kv_heads + kv_head], the
/// input AttentionOptions::key_norms expects. Only batch, kv_len, num_kv_heads and head_dim of `shape` are
/// read; KV is float, bfloat16 or float16 (the norms are those of the exactly widened values).
/// @throws std::invalid_argument for invalid sizes or a null pointer with non-empty k.
template <class KV>
void key_norms(const KV* k, const AttentionShape& shape, float* out) {
  kernels::key_norms(k, shape, out);
}

/// fp32 keys; also takes a literal nullptr for k (empty tensors).
inline void key_norms(const float* k, const AttentionShape& shape, float* out) {
  kernels::key_norms(k, shape, out);
}

ALIBI_NAMESPACE_END
