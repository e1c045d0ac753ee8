#pragma once
// The backward pass of fused ALiBi attention, for training: gradients of q, k, v and of the slopes.
#include "alibi/detail/config.hpp"
#include "alibi/detail/require_isa.hpp"
#include "alibi/isa/tags.hpp"
#include "alibi/kernels/backward_call.hpp"
#include "alibi/types.hpp"

ALIBI_NAMESPACE_BEGIN

/// Gradients of a loss through out = alibi::attention(q, k, v, shape, options), given dout = d loss / d out.
/// With P = softmax(S) per row, S = scale * Q K^T + bias (the forward's bias, mask, window and positions):
///   dV = P^T dO,  dS = P o (dO V^T - rowsum(dO o O)),  dQ = scale dS K,  dK = scale dS^T Q,
///   dm_h = sum over the pairs a row sees of dS_ij * (-(p - j)) causal, (-|p - j|) bidirectional
/// (p, j absolute positions: q_pos0, kv_pos0 as in the forward). Grouped-query: dk and dv are summed over
/// the query heads sharing a kv head. `out` and `lse` are the forward call's output and
/// AttentionOptions::lse, with the same shape and options; K/V are fp32. The gradients asked for in
/// `grads` are overwritten (not accumulated); a null member is not computed.
///
/// Guarantees: bitwise identical for any num_threads (fixed work units, no atomics, fixed-order
/// reductions); extra memory O(batch * q_len * num_heads) floats plus O(block * head_dim) per thread and one
/// double per (batch, 64-row block, head): no q_len x kv_len matrix. Every visible (row, key) pair is
/// computed (no block skipping); P is recomputed from exp(S - lse) and renormalised per row, and rowsum(dO o O)
/// is computed as sum_j P_ij dO.v_j from that P (accuracy: kernels/backward_call.hpp), so `out` is only
/// validated and the keys the forward skipped are included exactly.
///
/// @throws std::invalid_argument (naming the parameter), nothing written, for everything alibi::attention
///         rejects, a null lse or dout with a non-empty query tensor, and a gradient buffer overlapping q, k,
///         v, out, lse, dout, slopes, key_norms or another gradient buffer.
template <class Isa = isa::native>
void attention_backward(const float* q, const float* k, const float* v, const float* out, const float* lse,
                        const float* dout, const AttentionGrads& grads, const AttentionShape& shape,
                        const AttentionOptions& options = {}) {
  detail::require_isa<Isa>();
  kernels::attention_backward<Isa>(q, k, v, out, lse, dout, grads, shape, options);
}

ALIBI_NAMESPACE_END
