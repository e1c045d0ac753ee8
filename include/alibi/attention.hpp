#pragma once
// Fused ALiBi attention: out = softmax(scale * Q K^T + bias) V, computed block by block with an online
// softmax so no q_len x kv_len matrix is ever built.
#include <cstdint>

#include "alibi/detail/config.hpp"
#include "alibi/isa/tags.hpp"
#include "alibi/types.hpp"

ALIBI_NAMESPACE_BEGIN

/// out = softmax(scale * q.k + bias) v for every (batch, head, query row), with query row i at key
/// position p = q_pos0 + i and
///   causal:        bias = -m_h * (p - j),  visible iff j <= p (and p - j < window when window > 0)
///   bidirectional: bias = -m_h * |p - j|,  visible iff |p - j| < window when window > 0, else always.
/// A query row that sees no key gets an output row of zeros.
///
/// Guarantees: extra memory is O(block sizes * head_dim) per thread, independent of q_len * kv_len; the
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
///         num_threads < 0, a non-finite scale or slope, a negative or non-finite skip_tolerance, a null
///         pointer where a non-empty tensor is expected, `out` overlapping q, k or v, or sizes whose
///         element counts overflow. Nothing is written to `out` then.
/// Writes an upper bound on |k| for every key row: out[(b * kv_len + j) * num_kv_heads + kv_head], the
/// input AttentionOptions::key_norms expects. Only batch, kv_len, num_kv_heads and head_dim of `shape` are
/// read. @throws std::invalid_argument for invalid sizes or a null pointer with non-empty k.
inline void key_norms(const float* k, const AttentionShape& shape, float* out);

template <class Isa = isa::native>
void attention(const float* q, const float* k, const float* v, float* out, const AttentionShape& shape,
               const AttentionOptions& options = {});

ALIBI_NAMESPACE_END

#include "alibi/kernels/attention_impl.hpp"
