// The ALiBi slope rule, computed into caller storage (alibi/slopes.hpp documents it).
#include "alibi/detail/config.hpp"
// Per-target header: no #pragma once (Note [per-target headers] in detail/config.hpp).
#if (ALIBI_PASS == 0 && !defined(ALIBI_DETAIL_SLOPE_VALUES_HPP_0)) || \
    (ALIBI_PASS == 1 && !defined(ALIBI_DETAIL_SLOPE_VALUES_HPP_1)) || \
    (ALIBI_PASS == 2 && !defined(ALIBI_DETAIL_SLOPE_VALUES_HPP_2))
#if ALIBI_PASS == 0
#define ALIBI_DETAIL_SLOPE_VALUES_HPP_0
#elif ALIBI_PASS == 1
#define ALIBI_DETAIL_SLOPE_VALUES_HPP_1
#else
#define ALIBI_DETAIL_SLOPE_VALUES_HPP_2
#endif
#include <cmath>

ALIBI_NAMESPACE_BEGIN
namespace detail {

// out[h] for h < num_heads (num_heads >= 1, max_bias finite and > 0: the callers validate). Each slope is
// computed in double and rounded once to float.
inline void slope_values(int num_heads, float max_bias, float* out) {
  int p = 1;
  while (p <= num_heads / 2) p *= 2;
  const double bias = max_bias;
  for (int h = 0; h < num_heads; ++h) {
    const double exponent = h < p ? -bias * (h + 1) / p : -(bias / 2.0) * (2.0 * (h - p) + 1.0) / p;
    out[h] = static_cast<float>(std::exp2(exponent));
  }
}

}  // namespace detail
ALIBI_NAMESPACE_END
#endif  // per-target guard
