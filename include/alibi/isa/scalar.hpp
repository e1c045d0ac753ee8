// Scalar "vectors" of one float: the portable path, and the semantic model the SIMD ISAs follow.
#include "alibi/detail/config.hpp"
// Per-target header: no #pragma once (Note [per-target headers] in detail/config.hpp).
#if (ALIBI_PASS == 0 && !defined(ALIBI_ISA_SCALAR_HPP_0)) || (ALIBI_PASS == 1 && !defined(ALIBI_ISA_SCALAR_HPP_1)) || \
    (ALIBI_PASS == 2 && !defined(ALIBI_ISA_SCALAR_HPP_2))
#if ALIBI_PASS == 0
#define ALIBI_ISA_SCALAR_HPP_0
#elif ALIBI_PASS == 1
#define ALIBI_ISA_SCALAR_HPP_1
#else
#define ALIBI_ISA_SCALAR_HPP_2
#endif
#include <cmath>
#include <cstdint>
#include <cstring>

#include "alibi/detail/config.hpp"
#include "alibi/detail/float16.hpp"
#include "alibi/isa/tags.hpp"

ALIBI_NAMESPACE_BEGIN
namespace simd {
template <class Isa>
struct Ops;

// Leaves x in a register, unchanged, through an empty asm statement the optimisers cannot see into.
ALIBI_ALWAYS_INLINE void scalar_opaque(float& x) {
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__)) && defined(__SSE__)
  __asm__("" : "+x"(x));
#elif defined(__GNUC__) && defined(__aarch64__)
  __asm__("" : "+w"(x));
#else
  (void)x;
#endif
}

// Note [scalar fma]: the kernels rely on fma giving the same bits wherever it is used (a row's bits must not
// depend on which code path computed it: Note [batch invariance] in kernels/unit_worker.hpp). A plain
// a * b + c does not: where the target has FMA, GCC fuses it at one site and not at another (not where the
// product is shared with another use), so under -mfma (a dispatching program, the multi-ISA test binaries)
// the streaming and packed paths could round differently. So it rounds once whenever the target has an FMA
// instruction, and twice (a * b + c, which nothing can fuse) where it has none: std::fma there would be a
// slow library call.
#if defined(__FMA__) || defined(__FP_FAST_FMAF) || defined(__ARM_FEATURE_FMA)
constexpr bool kScalarFusedFma = true;
ALIBI_ALWAYS_INLINE float scalar_fma(float a, float b, float c) {
#if defined(__GNUC__)
  return __builtin_fmaf(a, b, c);  // the instruction itself: std::fma could be emitted as a weak symbol
#else
  return std::fma(a, b, c);
#endif
}
#else
constexpr bool kScalarFusedFma = false;
ALIBI_ALWAYS_INLINE float scalar_fma(float a, float b, float c) {
  return a * b + c;
}
#endif

template <>
struct Ops<isa::scalar> {
  using vec = float;
  static constexpr int width = 1;
  static constexpr int registers = 16;  // what the compiler can keep in registers for the tiles below
  using narrower = isa::scalar;
  static constexpr int qk_row_vecs = 3;
  static constexpr int pv_rows = 4, pv_vecs = 4;

  // ---- construction, memory
  static ALIBI_ALWAYS_INLINE vec zero() { return 0.0f; }
  static ALIBI_ALWAYS_INLINE vec set1(float x) { return x; }
  static ALIBI_ALWAYS_INLINE vec load(const float* p) { return *p; }
  static ALIBI_ALWAYS_INLINE void store(float* p, vec x) { *p = x; }
  static ALIBI_ALWAYS_INLINE vec load_partial(const float* p, int n) { return n > 0 ? *p : 0.0f; }
  static ALIBI_ALWAYS_INLINE void store_partial(float* p, vec x, int n) {
    if (n > 0) *p = x;
  }

  // ---- 16-bit memory (Note [16-bit rounding] in detail/float16.hpp): the scalar conversions themselves
  static ALIBI_ALWAYS_INLINE vec load_bf16(const std::uint16_t* p) { return detail::bf16_bits_to_float(*p); }
  static ALIBI_ALWAYS_INLINE vec load_bf16_partial(const std::uint16_t* p, int n) {
    return n > 0 ? detail::bf16_bits_to_float(*p) : 0.0f;
  }
  static ALIBI_ALWAYS_INLINE vec load_f16(const std::uint16_t* p) { return detail::f16_bits_to_float(*p); }
  static ALIBI_ALWAYS_INLINE vec load_f16_partial(const std::uint16_t* p, int n) {
    return n > 0 ? detail::f16_bits_to_float(*p) : 0.0f;
  }
  static ALIBI_ALWAYS_INLINE void store_bf16(std::uint16_t* p, vec x) { *p = detail::float_to_bf16_bits(x); }
  static ALIBI_ALWAYS_INLINE void store_bf16_partial(std::uint16_t* p, vec x, int n) {
    if (n > 0) *p = detail::float_to_bf16_bits(x);
  }
  static ALIBI_ALWAYS_INLINE void store_f16(std::uint16_t* p, vec x) { *p = detail::float_to_f16_bits(x); }
  static ALIBI_ALWAYS_INLINE void store_f16_partial(std::uint16_t* p, vec x, int n) {
    if (n > 0) *p = detail::float_to_f16_bits(x);
  }

  // An opaque register move (scalar_opaque): GCC 12's loop vectoriser (-O2/-O3, with -mavx2 or wider) turns
  // the scalar micro-kernels' loops into vector code whose loads run past the packed block and P^T
  // (valgrind: reads just past the buffers; a fault when a buffer ends at a page). The kernels pin every
  // loaded K/V element, which keeps those loops scalar, as this ISA is meant to be.
  static ALIBI_ALWAYS_INLINE void pin(vec& x) { scalar_opaque(x); }

  // ---- arithmetic
  static ALIBI_ALWAYS_INLINE vec add(vec a, vec b) { return a + b; }
  static ALIBI_ALWAYS_INLINE vec sub(vec a, vec b) { return a - b; }
  static ALIBI_ALWAYS_INLINE vec mul(vec a, vec b) { return a * b; }
  static constexpr bool fused_fma = kScalarFusedFma;  // Note [scalar fma]
  static ALIBI_ALWAYS_INLINE vec fma(vec a, vec b, vec c) { return scalar_fma(a, b, c); }
  static ALIBI_ALWAYS_INLINE vec abs(vec a) { return std::fabs(a); }
  // Operand order mirrors maxps/minps: the second operand wins when either is NaN.
  static ALIBI_ALWAYS_INLINE vec max(vec a, vec b) { return a > b ? a : b; }
  static ALIBI_ALWAYS_INLINE vec min(vec a, vec b) { return a < b ? a : b; }
  static ALIBI_ALWAYS_INLINE vec select_lt(vec a, vec b, vec x, vec y) { return a < b ? x : y; }

  // ---- exponent manipulation (for exp)
  static ALIBI_ALWAYS_INLINE vec round_even(vec a) { return std::nearbyint(a); }
  static ALIBI_ALWAYS_INLINE vec pow2i(vec n) {
    if (!(n == n)) return n;  // NaN stays NaN (the int conversion below would be undefined)
    const std::uint32_t bits = static_cast<std::uint32_t>(static_cast<std::int32_t>(n) + 127) << 23;
    float out;
    std::memcpy(&out, &bits, sizeof out);
    return out;
  }

  // ---- horizontal
  static ALIBI_ALWAYS_INLINE float reduce_add(vec a) { return a; }
  static ALIBI_ALWAYS_INLINE void transpose(vec (&)[1]) {}
  template <class Rows>
  static ALIBI_ALWAYS_INLINE void load_transposed_bf16(const Rows& rows, vec (&x)[1]) {
    x[0] = load_bf16(rows(0));
  }
  template <class Rows>
  static ALIBI_ALWAYS_INLINE void load_transposed_f16(const Rows& rows, vec (&x)[1]) {
    x[0] = load_f16(rows(0));
  }
  static ALIBI_ALWAYS_INLINE void interleave(vec a, vec b, vec& lo, vec& hi) {
    lo = a;
    hi = b;
  }
};

}  // namespace simd
ALIBI_NAMESPACE_END
#endif  // per-target guard
