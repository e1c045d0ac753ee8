// A validated attention call with every default resolved: what the kernels consume.
#include "alibi/detail/config.hpp"
// Per-target header: no #pragma once (Note [per-target headers] in detail/config.hpp).
#if (ALIBI_PASS == 0 && !defined(ALIBI_DETAIL_PROBLEM_HPP_0)) || \
    (ALIBI_PASS == 1 && !defined(ALIBI_DETAIL_PROBLEM_HPP_1)) || \
    (ALIBI_PASS == 2 && !defined(ALIBI_DETAIL_PROBLEM_HPP_2))
#if ALIBI_PASS == 0
#define ALIBI_DETAIL_PROBLEM_HPP_0
#elif ALIBI_PASS == 1
#define ALIBI_DETAIL_PROBLEM_HPP_1
#else
#define ALIBI_DETAIL_PROBLEM_HPP_2
#endif
#include <cstdint>

#include "alibi/detail/config.hpp"

ALIBI_NAMESPACE_BEGIN
namespace detail {

struct Problem {
  const float* q = nullptr;
  const void* k = nullptr;  // KV elements (float, bfloat16 or float16): read through kernels::KvSource
  const void* v = nullptr;
  float* out = nullptr;
  float* lse = nullptr;  // optional: per output row, log-sum-exp of its logits ([batch][q_len][num_heads])
  std::int64_t batch = 0;
  std::int64_t q_len = 0;
  std::int64_t kv_len = 0;
  int num_heads = 0;
  int num_kv_heads = 0;
  int head_dim = 0;
  bool causal = true;
  std::int64_t window = 0;  // 0: unlimited
  // Position of query row 0 relative to key row 0: the caller's absolute q_pos0 (-1 resolved) minus
  // kv_pos0. Bias, mask and window depend only on position differences, so the kernels work in key-row
  // coordinates and never see kv_pos0. May be negative (rows before the first key).
  std::int64_t q_pos0 = 0;
  float scale = 0.0f;             // resolved (never 0 from the default here)
  const float* slopes = nullptr;  // num_heads finite values
  float skip_tolerance = 0.0f;
  const float* key_norm_input = nullptr;  // AttentionOptions::key_norms, indexed by key_slot()
  int num_threads = 1;                    // resolved, >= 1
  // Paged K/V (alibi::attention_paged; batch is 1 then): k and v point at the page pool
  // [pages][page_size][num_kv_heads][head_dim], key j is slot key_slot(*this, 0, j) of it. Null: k and v
  // are contiguous [batch][kv_len][num_kv_heads][head_dim].
  const std::int32_t* block_table = nullptr;  // this sequence's page ids, validated
  std::int64_t page_size = 0;
};

// The row of the K/V storage ([rows][num_kv_heads][head_dim]; key_norms: [rows][num_kv_heads]) that holds
// key j of batch entry b.
inline std::int64_t key_slot(const Problem& pr, std::int64_t b, std::int64_t j) {
  if (pr.block_table == nullptr) return b * pr.kv_len + j;
  return static_cast<std::int64_t>(pr.block_table[j / pr.page_size]) * pr.page_size + j % pr.page_size;
}

// The keys [lo, hi) the query at position `pos` sees (empty: lo == hi). Written to avoid overflow for any
// position and window (positions may be far outside [0, kv_len)).
inline void visible_keys(const Problem& pr, std::int64_t pos, std::int64_t& lo, std::int64_t& hi) {
  const std::int64_t w = pr.window;
  lo = (w > 0 && pos >= w) ? pos - w + 1 : 0;
  if (pr.causal) {
    hi = pos < pr.kv_len ? pos + 1 : pr.kv_len;
  } else {
    hi = (w > 0 && pos < pr.kv_len - w) ? pos + w : pr.kv_len;
  }
  lo = lo < pr.kv_len ? lo : pr.kv_len;
  if (hi < lo) hi = lo;  // empty
}

// Note [nearest-key frame]: a row's logits are computed relative to its nearest visible key. Softmax is
// invariant under adding a constant to every logit of a row, and for the keys [lo, hi) a row at `pos`
// sees, |pos - j| = |nearest - j| + |pos - nearest| with nearest = clamp(pos, lo, hi - 1): the keys are
// all on one side of pos whenever pos lies outside them. So the kernels put the row at `nearest` and
// drop the constant -m |pos - nearest| from every logit: the distances they handle stay below kv_len
// (exact in fp32 below 2^24) even when the query is any number of positions away from its keys, as it
// is for shards of a long sequence (kv_pos0). Only the log-sum-exp adds the constant back, in double.
// For a row inside its keys (prefill, decode) nearest == pos and nothing changes.
inline std::int64_t nearest_visible_key(std::int64_t pos, std::int64_t lo, std::int64_t hi) {
  return pos < lo ? lo : (pos >= hi ? hi - 1 : pos);  // lo < hi
}

// The constant a row's kernel logits leave out (Note [nearest-key frame]): -slope * |pos - nearest|.
inline double dropped_bias(float slope, std::int64_t pos, std::int64_t lo, std::int64_t hi) {
  if (lo >= hi) return 0.0;
  const std::int64_t nearest = nearest_visible_key(pos, lo, hi);
  const std::int64_t distance = pos > nearest ? pos - nearest : nearest - pos;
  return -static_cast<double>(slope) * static_cast<double>(distance);
}

}  // namespace detail
ALIBI_NAMESPACE_END
#endif  // per-target guard
