#pragma once
// Dense ALiBi bias of one head, for inspection and interop with unfused attention code.
#include <cmath>
#include <cstdint>
#include <limits>

#include "alibi/detail/checked.hpp"
#include "alibi/detail/config.hpp"
#include "alibi/detail/errors.hpp"

ALIBI_NAMESPACE_BEGIN

/// Writes the causal ALiBi bias of one head, row-major q_len x kv_len:
///   out[i * kv_len + j] = -slope * (p - j)  if j <= p,  -infinity otherwise,   with p = q_pos0 + i.
/// q_pos0 = -1 places the queries on the last q_len key positions (p = kv_len - q_len + i); when q_len >
/// kv_len that makes the first rows' positions negative, so those rows are entirely -infinity.
/// The bias is computed from the integer distance p - j (in double, rounded once to float), never from
/// absolute positions, so it stays exact at any context length.
/// @throws std::invalid_argument for negative sizes, q_pos0 < -1, a non-finite slope, a null `out` when
///         q_len * kv_len > 0, or a q_len * kv_len that overflows; `out` is untouched then.
inline void causal_bias(float slope, std::int64_t q_len, std::int64_t kv_len, float* out, std::int64_t q_pos0 = -1) {
  const char* fn = "causal_bias";
  detail::require(q_len >= 0, fn, "q_len", "must be >= 0, got %lld", q_len);
  detail::require(kv_len >= 0, fn, "kv_len", "must be >= 0, got %lld", kv_len);
  detail::require(q_pos0 >= -1, fn, "q_pos0", "must be >= 0, or -1 for kv_len - q_len; got %lld", q_pos0);
  detail::require(std::isfinite(slope), fn, "slope", "must be finite");
  const std::int64_t count = detail::checked_mul(q_len, kv_len, fn, "q_len * kv_len");
  if (count == 0) return;
  detail::require(out != nullptr, fn, "out", "must not be null when q_len * kv_len > 0");
  const std::int64_t first = q_pos0 == -1 ? kv_len - q_len : q_pos0;
  const double m = slope;
  const float minus_inf = -std::numeric_limits<float>::infinity();
  for (std::int64_t i = 0; i < q_len; ++i) {
    const std::int64_t p = first + i;
    float* row = out + i * kv_len;
    for (std::int64_t j = 0; j < kv_len; ++j)
      row[j] = j <= p ? static_cast<float>(-m * static_cast<double>(p - j)) : minus_inf;
  }
}

ALIBI_NAMESPACE_END
