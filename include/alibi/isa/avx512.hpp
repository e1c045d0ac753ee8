// AVX-512 (F, BW, DQ, VL: the set the avx512 tag requires): 16 floats per register, 32 registers.
#include "alibi/detail/config.hpp"
// Per-target header: no #pragma once (Note [per-target headers] in detail/config.hpp).
#if (ALIBI_PASS == 0 && !defined(ALIBI_ISA_AVX512_HPP_0)) || (ALIBI_PASS == 1 && !defined(ALIBI_ISA_AVX512_HPP_1)) || \
    (ALIBI_PASS == 2 && !defined(ALIBI_ISA_AVX512_HPP_2))
#if ALIBI_PASS == 0
#define ALIBI_ISA_AVX512_HPP_0
#elif ALIBI_PASS == 1
#define ALIBI_ISA_AVX512_HPP_1
#else
#define ALIBI_ISA_AVX512_HPP_2
#endif
#include "alibi/detail/config.hpp"
#include "alibi/isa/tags.hpp"

#if ALIBI_TARGET_AVX512
#include <immintrin.h>

// GCC 12's own AVX-512 intrinsics start from _mm512_undefined_ps(), which its -Wmaybe-uninitialized
// reports wherever they are inlined (fixed in GCC 13): a false positive we must not pass on to users.
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 13
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#define ALIBI_AVX512_DIAGNOSTICS_PUSHED
#endif

ALIBI_NAMESPACE_BEGIN
namespace simd {
template <class Isa>
struct Ops;

template <>
struct Ops<isa::avx512> {
  using vec = __m512;
  static constexpr int width = 16;
  static constexpr int registers = 32;
  // Q.K tile: 3 row vectors x 8 keys = 24 accumulators + 3 query vectors + 1 broadcast key element.
  static constexpr int qk_row_vecs = 3;
  // 6 x 4 output accumulators + 4 value vectors + 1 broadcast = 29 registers.
  static constexpr int pv_rows = 6, pv_vecs = 4;

  // ---- construction, memory
  static ALIBI_ALWAYS_INLINE vec zero() { return _mm512_setzero_ps(); }
  static ALIBI_ALWAYS_INLINE vec set1(float x) { return _mm512_set1_ps(x); }
  static ALIBI_ALWAYS_INLINE vec load(const float* p) { return _mm512_loadu_ps(p); }
  static ALIBI_ALWAYS_INLINE void store(float* p, vec x) { _mm512_storeu_ps(p, x); }
  static ALIBI_ALWAYS_INLINE __mmask16 first_lanes(int n) {
    return n >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << (n > 0 ? n : 0)) - 1u);
  }
  // Masked-off lanes are never accessed (no fault past the end of a tensor).
  static ALIBI_ALWAYS_INLINE vec load_partial(const float* p, int n) { return _mm512_maskz_loadu_ps(first_lanes(n), p); }
  static ALIBI_ALWAYS_INLINE void store_partial(float* p, vec x, int n) { _mm512_mask_storeu_ps(p, first_lanes(n), x); }

  // Keeps a reused operand in a register: without it GCC re-reads it as a memory operand of every FMA,
  // and a micro-kernel tile then issues more loads than the load ports sustain.
  static ALIBI_ALWAYS_INLINE void pin(vec& x) {
#if defined(__GNUC__)
    __asm__("" : "+v"(x));
#else
    (void)x;
#endif
  }

  // ---- arithmetic
  static ALIBI_ALWAYS_INLINE vec add(vec a, vec b) { return _mm512_add_ps(a, b); }
  static ALIBI_ALWAYS_INLINE vec sub(vec a, vec b) { return _mm512_sub_ps(a, b); }
  static ALIBI_ALWAYS_INLINE vec mul(vec a, vec b) { return _mm512_mul_ps(a, b); }
  static ALIBI_ALWAYS_INLINE vec fma(vec a, vec b, vec c) { return _mm512_fmadd_ps(a, b, c); }
  static ALIBI_ALWAYS_INLINE vec abs(vec a) {
    return _mm512_castsi512_ps(_mm512_and_epi32(_mm512_castps_si512(a), _mm512_set1_epi32(0x7FFFFFFF)));
  }
  static ALIBI_ALWAYS_INLINE vec max(vec a, vec b) { return _mm512_max_ps(a, b); }
  static ALIBI_ALWAYS_INLINE vec min(vec a, vec b) { return _mm512_min_ps(a, b); }
  static ALIBI_ALWAYS_INLINE vec select_lt(vec a, vec b, vec x, vec y) {
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, b, _CMP_LT_OQ), y, x);
  }

  // ---- exponent manipulation (for exp)
  static ALIBI_ALWAYS_INLINE vec round_even(vec a) {
    return _mm512_roundscale_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  }
  // vscalefps computes 1 * 2^n in one instruction and handles NaN like the other lanes.
  static ALIBI_ALWAYS_INLINE vec pow2i(vec n) { return _mm512_scalef_ps(_mm512_set1_ps(1.0f), n); }

  // ---- horizontal
  static ALIBI_ALWAYS_INLINE float reduce_add(vec a) { return _mm512_reduce_add_ps(a); }
};

}  // namespace simd
ALIBI_NAMESPACE_END

#if defined(ALIBI_AVX512_DIAGNOSTICS_PUSHED)
#pragma GCC diagnostic pop
#undef ALIBI_AVX512_DIAGNOSTICS_PUSHED
#endif
#endif
#endif  // per-target guard
