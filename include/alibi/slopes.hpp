#pragma once
// ALiBi head slopes (Press, Smith & Lewis, "Train Short, Test Long", ICLR 2022).
#include <cmath>
#include <vector>

#include "alibi/detail/config.hpp"
#include "alibi/detail/errors.hpp"
#include "alibi/detail/slope_values.hpp"

ALIBI_NAMESPACE_BEGIN

/// Per-head slopes m_h for h = 0 .. num_heads-1, the paper's rule generalised by `max_bias` (as ggml does):
/// with n = num_heads and p the largest power of two <= n,
///   h <  p : m_h = 2^(-max_bias * (h + 1) / p)
///   h >= p : m_h = 2^(-(max_bias / 2) * (2 * (h - p) + 1) / p)
/// With max_bias = 8 this equals get_slopes(n) of the paper's reference code for every n >= 1 (the
/// interleaved tail makes the list non-monotone when n is not a power of two).
/// Each slope is computed in double and rounded once to float.
/// @throws std::invalid_argument if num_heads <= 0 or max_bias is not finite and > 0.
inline std::vector<float> slopes(int num_heads, float max_bias = 8.0f) {
  detail::require(num_heads > 0, "slopes", "num_heads", "must be >= 1, got %lld", num_heads);
  detail::require(std::isfinite(max_bias) && max_bias > 0.0f, "slopes", "max_bias", "must be finite and > 0, got %.9g",
                  max_bias);
  std::vector<float> result(static_cast<std::size_t>(num_heads));
  detail::slope_values(num_heads, max_bias, result.data());
  return result;
}

ALIBI_NAMESPACE_END
