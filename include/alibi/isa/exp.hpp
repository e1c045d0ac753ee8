// Vector exp written once over Ops<Isa>.
//
// Range reduction x = n ln2 + r with |r| <= ln2/2 (ln2 split in two parts so r is exact to ~1 ulp), a
// degree-7 polynomial for e^r, 1 + r (1 + r P(r)) with P of degree 5 (six Cephes expf coefficients;
// within 2 ulp of the true value over the range), and 2^n built directly in the exponent field.
//
// Note [exp flush to zero]: inputs below ln(FLT_MIN) return exactly 0 instead of a denormal. ALiBi's
// large negative biases put many softmax terms there; a denormal P entry would make every P.V FMA that
// touches it take a microcode assist (several times slower) and carries no information at fp32 precision
// next to the row's largest term, which is 1. Doing it here, not through MXCSR, leaves the caller's
// floating-point environment alone. -inf gives 0; NaN gives NaN; large inputs saturate at e^88.
#include "alibi/detail/config.hpp"
// Per-target header: no #pragma once (Note [per-target headers] in detail/config.hpp).
#if (ALIBI_PASS == 0 && !defined(ALIBI_ISA_EXP_HPP_0)) || (ALIBI_PASS == 1 && !defined(ALIBI_ISA_EXP_HPP_1)) || \
    (ALIBI_PASS == 2 && !defined(ALIBI_ISA_EXP_HPP_2))
#if ALIBI_PASS == 0
#define ALIBI_ISA_EXP_HPP_0
#elif ALIBI_PASS == 1
#define ALIBI_ISA_EXP_HPP_1
#else
#define ALIBI_ISA_EXP_HPP_2
#endif
#include "alibi/detail/config.hpp"
#include "alibi/isa/ops.hpp"

ALIBI_NAMESPACE_BEGIN
namespace simd {

template <class Isa>
ALIBI_ALWAYS_INLINE typename Ops<Isa>::vec exp(typename Ops<Isa>::vec x) {
  using O = Ops<Isa>;
  // Slightly above ln(FLT_MIN) = -87.33654475: at and above it n >= -126 and r >= 0, so the result is normal.
  const auto flush_below = O::set1(-87.3365f);
  // max/min put x second so a NaN in x propagates. The softmax passes x <= 0, except when a NaN logit
  // hid a larger one from the running max (that row is recomputed anyway): the upper clamp keeps n <= 127
  // there, so building 2^n never overflows an int (found by the fuzzer).
  const auto xc = O::min(O::set1(88.0f), O::max(flush_below, x));
  const auto n = O::round_even(O::mul(xc, O::set1(1.44269504088896341f)));
  auto r = O::fma(n, O::set1(-0.693359375f), xc);  // ln2 high part: exact product for |n| <= 2^9
  r = O::fma(n, O::set1(2.12194440e-4f), r);       // ln2 low part
  // e^r = 1 + r (1 + r P(r)): P (degree 5) then the two outer steps, Horner throughout (one FMA each).
  auto poly = O::set1(1.9875691500e-4f);
  poly = O::fma(poly, r, O::set1(1.3981999507e-3f));
  poly = O::fma(poly, r, O::set1(8.3334519073e-3f));
  poly = O::fma(poly, r, O::set1(4.1665795894e-2f));
  poly = O::fma(poly, r, O::set1(1.6666665459e-1f));
  poly = O::fma(poly, r, O::set1(5.0000001201e-1f));
  poly = O::fma(poly, r, O::set1(1.0f));
  poly = O::fma(poly, r, O::set1(1.0f));
  const auto result = O::mul(poly, O::pow2i(n));
  return O::select_lt(x, flush_below, O::zero(), result);
}

}  // namespace simd
ALIBI_NAMESPACE_END
#endif  // per-target guard
