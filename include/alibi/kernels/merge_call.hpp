// alibi::merge_partials: the exact merge of two partial attention results over disjoint key sets, by the
// rule the split-K pieces of one call merge with (Note [merging partial results] in kernels/partials.hpp).
#include "alibi/detail/config.hpp"
// Per-target header: no #pragma once (Note [per-target headers] in detail/config.hpp).
#if (ALIBI_PASS == 0 && !defined(ALIBI_KERNELS_MERGE_CALL_HPP_0)) || \
    (ALIBI_PASS == 1 && !defined(ALIBI_KERNELS_MERGE_CALL_HPP_1)) || \
    (ALIBI_PASS == 2 && !defined(ALIBI_KERNELS_MERGE_CALL_HPP_2))
#if ALIBI_PASS == 0
#define ALIBI_KERNELS_MERGE_CALL_HPP_0
#elif ALIBI_PASS == 1
#define ALIBI_KERNELS_MERGE_CALL_HPP_1
#else
#define ALIBI_KERNELS_MERGE_CALL_HPP_2
#endif
#include <cmath>
#include <cstdint>

#include "alibi/detail/config.hpp"
#include "alibi/detail/validate.hpp"
#include "alibi/kernels/partials.hpp"

ALIBI_NAMESPACE_BEGIN
namespace kernels {

// Isa only selects the target pass this is compiled in (the merge is plain fp32 code), so that dispatch
// calls it like every other kernel.
template <class Isa>
void merge_partials(const float* out_a, const float* lse_a, const float* out_b, const float* lse_b, float* out,
                    float* lse, std::int64_t rows, int head_dim) {
  detail::validate_merge(out_a, lse_a, out_b, lse_b, out, lse, rows, head_dim);
  float weights[2];
  for (std::int64_t r = 0; r < rows; ++r) {
    const std::int64_t at = r * head_dim;
    // A finished result is the partial state (lse, 1, out).
    const PartialRow a{lse_a[r], 1.0f, out_a + at}, b{lse_b[r], 1.0f, out_b + at};
    const auto part = [&](std::int64_t c) { return c == 0 ? a : b; };
    const double merged = merge_partial_rows(part, 2, head_dim, weights, out + at);
    lse[r] = static_cast<float>(merged);  // written last: lse may alias lse_a or lse_b, read above
  }
}

}  // namespace kernels
ALIBI_NAMESPACE_END
#endif  // per-target guard
