// AVX2 + FMA: 8 floats per register, 16 registers.
#include "alibi/detail/config.hpp"
// Per-target header: no #pragma once (Note [per-target headers] in detail/config.hpp).
#if (ALIBI_PASS == 0 && !defined(ALIBI_ISA_AVX2_HPP_0)) || (ALIBI_PASS == 1 && !defined(ALIBI_ISA_AVX2_HPP_1)) || \
    (ALIBI_PASS == 2 && !defined(ALIBI_ISA_AVX2_HPP_2))
#if ALIBI_PASS == 0
#define ALIBI_ISA_AVX2_HPP_0
#elif ALIBI_PASS == 1
#define ALIBI_ISA_AVX2_HPP_1
#else
#define ALIBI_ISA_AVX2_HPP_2
#endif
#include "alibi/detail/config.hpp"
#include "alibi/isa/tags.hpp"

#if ALIBI_TARGET_AVX2
#include <immintrin.h>

ALIBI_NAMESPACE_BEGIN
namespace simd {
template <class Isa>
struct Ops;

template <>
struct Ops<isa::avx2> {
  using vec = __m256;
  static constexpr int width = 8;
  static constexpr int registers = 16;
  // Q.K tile: 3 row vectors x 4 keys = 12 accumulators + 3 query vectors + 1 broadcast key element.
  static constexpr int qk_row_vecs = 3;
  // 4 x 3 output accumulators + 3 value vectors + 1 broadcast = 16 registers.
  static constexpr int pv_rows = 4, pv_vecs = 3;

  // ---- construction, memory
  static ALIBI_ALWAYS_INLINE vec zero() { return _mm256_setzero_ps(); }
  static ALIBI_ALWAYS_INLINE vec set1(float x) { return _mm256_set1_ps(x); }
  static ALIBI_ALWAYS_INLINE vec load(const float* p) { return _mm256_loadu_ps(p); }
  static ALIBI_ALWAYS_INLINE void store(float* p, vec x) { _mm256_storeu_ps(p, x); }
  static ALIBI_ALWAYS_INLINE __m256i first_lanes(int n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  // vmaskmov never touches masked-off lanes, so a tail at the very end of a tensor is safe to read.
  static ALIBI_ALWAYS_INLINE vec load_partial(const float* p, int n) { return _mm256_maskload_ps(p, first_lanes(n)); }
  static ALIBI_ALWAYS_INLINE void store_partial(float* p, vec x, int n) { _mm256_maskstore_ps(p, first_lanes(n), x); }

  // Keeps a reused operand in a register: without it GCC re-reads it as a memory operand of every FMA,
  // and a micro-kernel tile then issues more loads than the load ports sustain.
  static ALIBI_ALWAYS_INLINE void pin(vec& x) {
#if defined(__GNUC__)
    __asm__("" : "+x"(x));
#else
    (void)x;
#endif
  }

  // ---- arithmetic
  static ALIBI_ALWAYS_INLINE vec add(vec a, vec b) { return _mm256_add_ps(a, b); }
  static ALIBI_ALWAYS_INLINE vec sub(vec a, vec b) { return _mm256_sub_ps(a, b); }
  static ALIBI_ALWAYS_INLINE vec mul(vec a, vec b) { return _mm256_mul_ps(a, b); }
  static ALIBI_ALWAYS_INLINE vec fma(vec a, vec b, vec c) { return _mm256_fmadd_ps(a, b, c); }
  static ALIBI_ALWAYS_INLINE vec abs(vec a) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), a); }
  static ALIBI_ALWAYS_INLINE vec max(vec a, vec b) { return _mm256_max_ps(a, b); }
  static ALIBI_ALWAYS_INLINE vec min(vec a, vec b) { return _mm256_min_ps(a, b); }
  static ALIBI_ALWAYS_INLINE vec select_lt(vec a, vec b, vec x, vec y) {
    return _mm256_blendv_ps(y, x, _mm256_cmp_ps(a, b, _CMP_LT_OQ));
  }

  // ---- exponent manipulation (for exp)
  static ALIBI_ALWAYS_INLINE vec round_even(vec a) {
    return _mm256_round_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  }
  static ALIBI_ALWAYS_INLINE vec pow2i(vec n) {
    const __m256i biased = _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127));
    return _mm256_castsi256_ps(_mm256_slli_epi32(biased, 23));
  }

  // ---- horizontal
  static ALIBI_ALWAYS_INLINE float reduce_add(vec a) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
};

}  // namespace simd
ALIBI_NAMESPACE_END
#endif
#endif  // per-target guard
