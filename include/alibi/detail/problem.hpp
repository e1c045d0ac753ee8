// A validated attention call with every default resolved: what the kernels consume.
#include "alibi/detail/config.hpp"
// Per-target header: no #pragma once (Note [per-target headers] in detail/config.hpp).
#if (ALIBI_PASS == 0 && !defined(ALIBI_DETAIL_PROBLEM_HPP_0)) || (ALIBI_PASS == 1 && !defined(ALIBI_DETAIL_PROBLEM_HPP_1)) || \
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
  const float* k = nullptr;
  const float* v = nullptr;
  float* out = nullptr;
  std::int64_t batch = 0;
  std::int64_t q_len = 0;
  std::int64_t kv_len = 0;
  int num_heads = 0;
  int num_kv_heads = 0;
  int head_dim = 0;
  bool causal = true;
  std::int64_t window = 0;   // 0: unlimited
  std::int64_t q_pos0 = 0;   // resolved (never -1 here)
  float scale = 0.0f;        // resolved (never 0 from the default here)
  const float* slopes = nullptr;  // num_heads finite values
  float skip_tolerance = 0.0f;
  const void* key_norms = nullptr;           // KeyNormBounds<Isa>, set iff block skipping is on
  const float* key_norm_input = nullptr;     // AttentionOptions::key_norms
  // Split-K (few work units, long keys): each unit's keys are cut at multiples of kv_chunk, every piece
  // writes a partial softmax state to `partial`, and the pieces are merged in key order. 0: no split.
  std::int64_t kv_chunk = 0;
  float* partial = nullptr;
  int num_threads = 1;       // resolved, >= 1
};

}  // namespace detail
ALIBI_NAMESPACE_END
#endif  // per-target guard
