#pragma once
// AVX-512F: 16 floats per register, 32 registers. Uses AVX-512F instructions only.
#include "alibi/detail/config.hpp"
#include "alibi/isa/tags.hpp"

#if defined(__AVX512F__)
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
namespace isa {
template <class Isa>
struct Ops;

template <>
struct Ops<avx512> {
  using vec = __m512;
  static constexpr int width = 16;
  // 6 x 4 dot accumulators + 6 query vectors + 1 key vector = 31 of 32 registers.
  static constexpr int qk_rows = 6, qk_keys = 4;
  // 6 x 4 output accumulators + 4 value vectors + 1 broadcast = 29 registers.
  static constexpr int pv_rows = 6, pv_vecs = 4;

  // ---- construction, memory
  static ALIBI_ALWAYS_INLINE vec zero() { return _mm512_setzero_ps(); }
  static ALIBI_ALWAYS_INLINE vec set1(float x) { return _mm512_set1_ps(x); }
  static ALIBI_ALWAYS_INLINE vec iota() {
    return _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  }
  static ALIBI_ALWAYS_INLINE vec load(const float* p) { return _mm512_loadu_ps(p); }
  static ALIBI_ALWAYS_INLINE void store(float* p, vec x) { _mm512_storeu_ps(p, x); }
  static ALIBI_ALWAYS_INLINE __mmask16 first_lanes(int n) {
    return n >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << (n > 0 ? n : 0)) - 1u);
  }
  // Masked-off lanes are never accessed (no fault past the end of a tensor).
  static ALIBI_ALWAYS_INLINE vec load_partial(const float* p, int n) { return _mm512_maskz_loadu_ps(first_lanes(n), p); }
  static ALIBI_ALWAYS_INLINE void store_partial(float* p, vec x, int n) { _mm512_mask_storeu_ps(p, first_lanes(n), x); }

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
  static ALIBI_ALWAYS_INLINE float reduce_max(vec a) { return _mm512_reduce_max_ps(a); }
  static ALIBI_ALWAYS_INLINE __m256 fold(vec a) {
    // vshuff32x4 (AVX-512F) brings the upper 256 bits down without needing AVX-512DQ.
    return _mm256_add_ps(_mm512_castps512_ps256(a), _mm512_castps512_ps256(_mm512_shuffle_f32x4(a, a, 0xEE)));
  }
  static ALIBI_ALWAYS_INLINE void reduce_add4(vec a, vec b, vec c, vec d, float* out) {
    const __m256 ab = _mm256_hadd_ps(fold(a), fold(b));
    const __m256 cd = _mm256_hadd_ps(fold(c), fold(d));
    const __m256 abcd = _mm256_hadd_ps(ab, cd);
    _mm_storeu_ps(out, _mm_add_ps(_mm256_castps256_ps128(abcd), _mm256_extractf128_ps(abcd, 1)));
  }
};

}  // namespace isa
ALIBI_NAMESPACE_END

#if defined(ALIBI_AVX512_DIAGNOSTICS_PUSHED)
#pragma GCC diagnostic pop
#undef ALIBI_AVX512_DIAGNOSTICS_PUSHED
#endif
#endif
