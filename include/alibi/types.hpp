#pragma once
// The value types of the attention API: mask, shape and options, and the 16-bit element types. Plain data
// in namespace alibi itself, shared by translation units built with any flags (Note [ABI namespace]).
#include <cstdint>
#include <type_traits>

#include "alibi/detail/config.hpp"

namespace alibi {

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
  /// positions, as in prefill and KV-cache decode). Under the causal mask a row whose position is
  /// negative (more queries than keys with the default) sees no key; bidirectional rows still see keys.
  std::int64_t q_pos0 = -1;
  /// Position of key row 0 (>= 0): k and v may be a shard of a longer sequence, keys kv_pos0 .. kv_pos0 +
  /// kv_len - 1. Query row i sits at q_pos0 + i (q_pos0 = -1: kv_pos0 + kv_len - q_len), key row j at
  /// kv_pos0 + j; bias, mask and window use these absolute positions. With `lse`, the partial results of
  /// disjoint shards merge exactly (alibi::merge_partials).
  std::int64_t kv_pos0 = 0;
  /// Optional output, one float per output row in out's row order ([batch][q_len][num_heads]): the natural
  /// log of sum_j exp(logit_j) over the keys the row sees, logit_j = scale * q.k_j + bias_j; -infinity for
  /// a row that sees no key. With block skipping the skipped keys are left out of the sum too (within
  /// skip_tolerance, relative). Must not overlap q, k, v, out, slopes or key_norms.
  float* lse = nullptr;
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

/// The gradients alibi::attention_backward computes, each laid out like its tensor. A null member is not
/// computed; the others are overwritten (not accumulated).
struct AttentionGrads {
  float* dq = nullptr;       ///< like q: [batch][q_len][num_heads][head_dim]
  float* dk = nullptr;       ///< like k (grouped-query: summed over the query heads sharing the kv head)
  float* dv = nullptr;       ///< like v
  float* dslopes = nullptr;  ///< [num_heads]: d loss / d m_h
};

/// A ragged batch of sequences (alibi::attention_varlen, alibi::attention_paged), as FlashAttention's
/// cu_seqlens: the query rows of all sequences are packed one after another,
///   q and out: [total_q][num_heads][head_dim], total_q = q_offsets[num_seqs],
/// sequence s owning rows [q_offsets[s], q_offsets[s + 1]). Its queries are the last q_len_s positions of
/// its kv_lens[s] keys (decode: q_len_s = 1; prefill: q_len_s = kv_lens[s]; chunked prefill in between).
struct SeqBatch {
  std::int64_t num_seqs = 0;
  const std::int64_t* q_offsets = nullptr;  ///< num_seqs + 1 non-decreasing offsets, q_offsets[0] == 0
  const std::int64_t* kv_lens = nullptr;    ///< num_seqs key counts (>= 0)
  int num_heads = 0, num_kv_heads = 0, head_dim = 0;
};

/// A paged KV cache (vLLM's block tables). Key j of sequence s is slot j % page_size of page
/// block_table[s * max_pages_per_seq + j / page_size]; entries past a sequence's last page are never read.
/// KV: float, bfloat16 or float16.
template <class KV>
struct PagedKV {
  const KV* k_pages = nullptr;  ///< [num_pages][page_size][num_kv_heads][head_dim]
  const KV* v_pages = nullptr;  ///< same layout
  std::int64_t num_pages = 0;
  int page_size = 0;                          ///< keys per page, >= 1
  const std::int32_t* block_table = nullptr;  ///< [num_seqs][max_pages_per_seq] page ids in [0, num_pages)
  std::int64_t max_pages_per_seq = 0;
};

/// bfloat16: the top half of an IEEE binary32 (1 sign, 8 exponent, 7 mantissa bits), as raw bits.
/// Memory-compatible (memcpy) with Eigen::bfloat16, torch.bfloat16 and ggml's bf16. Conversions:
/// alibi::to_bfloat16, alibi::to_float and alibi::convert (alibi/convert.hpp).
struct bfloat16 {
  std::uint16_t bits;
};

/// float16: IEEE binary16 (1 sign, 5 exponent, 10 mantissa bits), as raw bits. Memory-compatible (memcpy)
/// with Eigen::half, torch.float16, numpy.float16 and ggml's f16. Conversions: alibi::to_float16,
/// alibi::to_float and alibi::convert (alibi/convert.hpp).
struct float16 {
  std::uint16_t bits;
};

static_assert(sizeof(bfloat16) == 2 && alignof(bfloat16) == alignof(std::uint16_t), "bfloat16 must be 2 bytes");
static_assert(sizeof(float16) == 2 && alignof(float16) == alignof(std::uint16_t), "float16 must be 2 bytes");
static_assert(std::is_standard_layout<bfloat16>::value, "bfloat16 must be memcpy-compatible with other bfloat16s");
static_assert(std::is_trivially_copyable<bfloat16>::value, "bfloat16 must be memcpy-compatible with other bfloat16s");
static_assert(std::is_standard_layout<float16>::value, "float16 must be memcpy-compatible with other halfs");
static_assert(std::is_trivially_copyable<float16>::value, "float16 must be memcpy-compatible with other halfs");

}  // namespace alibi
