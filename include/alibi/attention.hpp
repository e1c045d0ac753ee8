#pragma once
// Fused ALiBi attention: out = softmax(scale * Q K^T + bias) V, computed block by block with an online
// softmax so no q_len x kv_len matrix is ever built.
#include <cstdint>

#include "alibi/detail/config.hpp"
#include "alibi/isa/tags.hpp"

ALIBI_NAMESPACE_BEGIN

/// Which keys a query sees.
enum class Mask {
  causal,        ///< key j is visible to the query at position p iff j <= p; bias -m * (p - j)
  bidirectional  ///< every key is visible; bias -m * |p - j| (symmetric ALiBi)
};

/// Tensor sizes. Layout, contiguous row-major:
///   q and out: [batch][q_len][num_heads][head_dim]
///   k and v:   [batch][kv_len][num_kv_heads][head_dim]
/// Query head h reads kv head h / (num_heads / num_kv_heads).
struct AttentionShape {
  int batch = 1;
  std::int64_t q_len = 0;   ///< query rows per sequence
  std::int64_t kv_len = 0;  ///< key/value rows per sequence
  int num_heads = 0;        ///< query heads
  int num_kv_heads = 0;     ///< divides num_heads: 1 = multi-query, < num_heads = grouped-query
  int head_dim = 0;         ///< any value >= 1
};

struct AttentionOptions {
  Mask mask = Mask::causal;
  float scale = 0.0f;             ///< logit scale; 0 means 1/sqrt(head_dim). Applied before the bias.
  const float* slopes = nullptr;  ///< num_heads slopes (any finite values); nullptr means alibi::slopes(num_heads)
  /// 0: unlimited. w > 0: the query at p sees key j only if p - j < w (causal) or |p - j| < w
  /// (bidirectional), i.e. a sliding window of w keys ending at the query.
  std::int64_t window = 0;
  /// Position of query row 0 among the keys; -1 means kv_len - q_len (the queries are the last q_len
  /// positions, as in prefill and KV-cache decode). Rows whose position is negative see no key.
  std::int64_t q_pos0 = -1;
  int num_threads = 0;  ///< 0: all hardware threads; 1: the calling thread only
  /// ALiBi block skipping: the largest total softmax mass a row may drop, relative to its largest term.
  /// The default is below fp32 resolution; 0 disables skipping. Never skips for slopes <= 0.
  float skip_tolerance = 0x1p-24f;
  /// Optional, for block skipping: upper bounds on the key norms |k|, [batch][kv_len][num_kv_heads] floats,
  /// as alibi::key_norms computes them (a KV cache can keep them and append one per new token). With
  /// them, skipping never reads the keys it skips, so a long decode reads only the keys near the query;
  /// without them, each call first reads every key once to bound its norm. Values must be >= the true
  /// norms for the guarantee to hold; NaN or negative entries are treated as unbounded.
  const float* key_norms = nullptr;
};

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
