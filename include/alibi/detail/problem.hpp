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
  std::int64_t batch = 0;
  std::int64_t q_len = 0;
  std::int64_t kv_len = 0;
  int num_heads = 0;
  int num_kv_heads = 0;
  int head_dim = 0;
  bool causal = true;
  std::int64_t window = 0;        // 0: unlimited
  std::int64_t q_pos0 = 0;        // resolved (never -1 here)
  float scale = 0.0f;             // resolved (never 0 from the default here)
  const float* slopes = nullptr;  // num_heads finite values
  float skip_tolerance = 0.0f;
  const float* key_norm_input = nullptr;  // AttentionOptions::key_norms
  int num_threads = 1;                    // resolved, >= 1
};

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

}  // namespace detail
ALIBI_NAMESPACE_END
#endif  // per-target guard
