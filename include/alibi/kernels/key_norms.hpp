// Upper bounds on the norm of one key, for ALiBi block skipping (kernels/skipping.hpp) and alibi::key_norms.
#include "alibi/detail/config.hpp"
// Per-target header: no #pragma once (Note [per-target headers] in detail/config.hpp).
#if (ALIBI_PASS == 0 && !defined(ALIBI_KERNELS_KEY_NORMS_HPP_0)) || \
    (ALIBI_PASS == 1 && !defined(ALIBI_KERNELS_KEY_NORMS_HPP_1)) || \
    (ALIBI_PASS == 2 && !defined(ALIBI_KERNELS_KEY_NORMS_HPP_2))
#if ALIBI_PASS == 0
#define ALIBI_KERNELS_KEY_NORMS_HPP_0
#elif ALIBI_PASS == 1
#define ALIBI_KERNELS_KEY_NORMS_HPP_1
#else
#define ALIBI_KERNELS_KEY_NORMS_HPP_2
#endif
#include <cmath>
#include <cstdint>

#include "alibi/detail/config.hpp"
#include "alibi/isa/ops.hpp"
#include "alibi/kernels/elements.hpp"

ALIBI_NAMESPACE_BEGIN
namespace kernels {

// Upper bound on |key|: double accumulation (exact to ~1e-16 relative) rounded up by a margin that
// survives the conversion to float. A key with a NaN or inf entry gets +inf: never skipped past.
template <class KV>
float key_norm_bound(const KV* key, int head_dim) {
  double sq = 0.0;
  for (int d = 0; d < head_dim; ++d) {
    const double x = to_fp32(key[d]);
    sq += x * x;
  }
  const double norm = std::sqrt(sq) * (1.0 + 1e-6);
  if (!(norm < 3.0e38)) return HUGE_VALF;
  float bound = static_cast<float>(norm);
  if (static_cast<double>(bound) < norm) bound = std::nextafter(bound, HUGE_VALF);  // denormal rounding
  return bound;
}

// Upper bound on |key| computed with the ISA's vectors: a float sum of D non-negative squares is within
// a relative (D + 1) * 2^-24 of the exact one, so inflating by (D + 16) * 2^-23 and the square root by
// 2^-22 keeps a true upper bound. Cheap enough to run over every key of a long cache.
template <class Isa, class KV>
ALIBI_ALWAYS_INLINE float key_norm_bound_fast(const KV* key, int head_dim) {
  using O = simd::Ops<Isa>;
  using E = Elements<Isa, KV>;
  constexpr int W = O::width;
  auto acc = O::zero();
  int d = 0;
  for (; d + W <= head_dim; d += W) {
    const auto x = E::load(key + d);
    acc = O::fma(x, x, acc);
  }
  if (d < head_dim) {
    const auto x = E::load_partial(key + d, head_dim - d);
    acc = O::fma(x, x, acc);
  }
  const float sq = O::reduce_add(acc);
  if (!(sq < 3.0e38f)) return HUGE_VALF;  // overflow, inf or NaN: unbounded
  // Squares of entries below ~2^-63 underflow in float, which could make the bound too small: tiny keys
  // take the exact double path. Above 2^-60, the flushed squares (< 2^-126 each) are far inside the margin.
  if (sq < 0x1p-60f) return key_norm_bound(key, head_dim);
  const double inflated = static_cast<double>(sq) * (1.0 + (head_dim + 16) * 0x1p-23);
  return static_cast<float>(std::sqrt(inflated) * (1.0 + 0x1p-22));
}

}  // namespace kernels
ALIBI_NAMESPACE_END
#endif  // per-target guard
