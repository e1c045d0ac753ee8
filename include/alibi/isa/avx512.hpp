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
#include <cstdint>

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
  // Half-width vectors, for calls too small to fill these (kernels/plan.hpp, Plan::prefers_narrower).
  using narrower = isa::avx2;
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
  static ALIBI_ALWAYS_INLINE vec load_partial(const float* p, int n) {
    return _mm512_maskz_loadu_ps(first_lanes(n), p);
  }
  static ALIBI_ALWAYS_INLINE void store_partial(float* p, vec x, int n) { _mm512_mask_storeu_ps(p, first_lanes(n), x); }

  // ---- 16-bit memory: 16 values in an __m256i, bit for bit the scalar functions of detail/float16.hpp
  // (Note [16-bit rounding]). Binary16 uses vcvtph2ps / vcvtps2ph (AVX512F): exact, resp. rounding to
  // nearest even by the immediate (not MXCSR.RC); both ignore FTZ, and a DAZ-flushed float input is a float
  // subnormal, which rounds to the same signed zero anyway. bfloat16 is integer code (vcvtneps2bf16 is not
  // in the tag's set, and it flushes subnormals).
  static ALIBI_ALWAYS_INLINE vec widen_bf16(__m256i h) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  }
  static ALIBI_ALWAYS_INLINE vec widen_f16(__m256i h) { return _mm512_cvtph_ps(h); }
  static ALIBI_ALWAYS_INLINE __m256i narrow_bf16(vec x) {
    const __m512i bits = _mm512_castps_si512(x);
    const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(bits, 16), _mm512_set1_epi32(1));
    const __m512i rounded =
        _mm512_srli_epi32(_mm512_add_epi32(_mm512_add_epi32(bits, _mm512_set1_epi32(0x7FFF)), lsb), 16);
    const __m512i nan = _mm512_or_si512(_mm512_srli_epi32(bits, 16), _mm512_set1_epi32(0x0040));
    const __mmask16 is_nan =
        _mm512_cmpgt_epi32_mask(_mm512_and_si512(bits, _mm512_set1_epi32(0x7FFFFFFF)), _mm512_set1_epi32(0x7F800000));
    return _mm512_cvtepi32_epi16(_mm512_mask_blend_epi32(is_nan, rounded, nan));
  }
  static ALIBI_ALWAYS_INLINE __m256i narrow_f16(vec x) {
    return _mm512_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  }
  // Masked-off 16-bit lanes are never accessed (AVX512BW + VL).
  static ALIBI_ALWAYS_INLINE __m256i load_u16_partial(const std::uint16_t* p, int n) {
    return _mm256_maskz_loadu_epi16(first_lanes(n), p);
  }
  static ALIBI_ALWAYS_INLINE vec load_bf16(const std::uint16_t* p) {
    return widen_bf16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  }
  static ALIBI_ALWAYS_INLINE vec load_bf16_partial(const std::uint16_t* p, int n) {
    return widen_bf16(load_u16_partial(p, n));
  }
  static ALIBI_ALWAYS_INLINE vec load_f16(const std::uint16_t* p) {
    return widen_f16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  }
  static ALIBI_ALWAYS_INLINE vec load_f16_partial(const std::uint16_t* p, int n) {
    return widen_f16(load_u16_partial(p, n));
  }
  // 16 rows of 16 values each (rows(l): row l's first value), loaded transposed and widened: x[i] lane l <-
  // value i of row l. Register i holds values of row kLowRow[i] in its low 256-bit half and of row
  // kLowRow[i] + 4 in its high half, so that the last step's 128-bit block selections put the rows in order.
  // bfloat16 is the high half of its float, so its rows are transposed as pairs of values (32-bit words:
  // one 32-byte load per row, 8 joins and 24 shuffles) and each pair then split into its two floats by a
  // shift and a mask; float16 rows are widened first, 8 values of two rows per register, and transposed as
  // two 16 x 8 halves (16 joins, 16 widenings and 48 shuffles; bench/RESULTS.md, 2026-12-04 nineteenth
  // session and 2026-12-05 twenty-fourth session).
  static constexpr int kLowRow[8] = {0, 1, 2, 3, 8, 9, 10, 11};
  template <class Rows>
  static ALIBI_ALWAYS_INLINE void load_transposed_bf16(const Rows& rows, vec (&x)[16]) {
    __m512 z[8];
#pragma GCC unroll 8
    for (int i = 0; i < 8; ++i) {
      const __m256i low = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(rows(kLowRow[i])));
      const __m256i high = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(rows(kLowRow[i] + 4)));
      z[i] = _mm512_castsi512_ps(_mm512_inserti64x4(_mm512_castsi256_si512(low), high, 1));
    }
    // quads[4 g + c], block k: word c (blocks 0, 2) or 4 + c (blocks 1, 3) of the four rows held by
    // z[4 g .. 4 g + 3] (the float unpacks move the words' bits unchanged).
    __m512 quads[8];
    transpose_within_blocks(z, quads);
    const __m512i high_half = _mm512_set1_epi32(static_cast<int>(0xFFFF0000u));
#pragma GCC unroll 4
    for (int c = 0; c < 4; ++c) {
      // Word c (then 4 + c) of rows 0-3, 4-7, 8-11, 12-15: values 2 c and 2 c + 1 (then 8 + 2 c, 9 + 2 c).
      const __m512i words[2] = {_mm512_castps_si512(_mm512_shuffle_f32x4(quads[c], quads[4 + c], 0x88)),
                                _mm512_castps_si512(_mm512_shuffle_f32x4(quads[c], quads[4 + c], 0xDD))};
#pragma GCC unroll 2
      for (int h = 0; h < 2; ++h) {
        x[8 * h + 2 * c] = _mm512_castsi512_ps(_mm512_slli_epi32(words[h], 16));
        x[8 * h + 2 * c + 1] = _mm512_castsi512_ps(_mm512_and_si512(words[h], high_half));
      }
    }
  }
  template <class Rows>
  static ALIBI_ALWAYS_INLINE void load_transposed_f16(const Rows& rows, vec (&x)[16]) {
#pragma GCC unroll 2
    for (int half = 0; half < 2; ++half) {
      __m512 z[8];
#pragma GCC unroll 8
      for (int i = 0; i < 8; ++i) {
        const __m128i low = _mm_loadu_si128(reinterpret_cast<const __m128i*>(rows(kLowRow[i]) + 8 * half));
        const __m128i high = _mm_loadu_si128(reinterpret_cast<const __m128i*>(rows(kLowRow[i] + 4) + 8 * half));
        z[i] = widen_f16(_mm256_inserti128_si256(_mm256_castsi128_si256(low), high, 1));
      }
      // quads[4 g + c], block k: value c (blocks 0, 2) or 4 + c (blocks 1, 3) of the four rows held by
      // z[4 g .. 4 g + 3] in that half.
      __m512 quads[8];
      transpose_within_blocks(z, quads);
      // Blocks 0, 2 of quads[c] and of quads[4 + c]: value c of rows 0-3, 4-7, 8-11, 12-15; blocks 1, 3:
      // value 4 + c.
#pragma GCC unroll 4
      for (int c = 0; c < 4; ++c) {
        x[8 * half + c] = _mm512_shuffle_f32x4(quads[c], quads[4 + c], 0x88);
        x[8 * half + 4 + c] = _mm512_shuffle_f32x4(quads[c], quads[4 + c], 0xDD);
      }
    }
  }
  static ALIBI_ALWAYS_INLINE void store_bf16(std::uint16_t* p, vec x) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), narrow_bf16(x));
  }
  static ALIBI_ALWAYS_INLINE void store_bf16_partial(std::uint16_t* p, vec x, int n) {
    _mm256_mask_storeu_epi16(p, first_lanes(n), narrow_bf16(x));
  }
  static ALIBI_ALWAYS_INLINE void store_f16(std::uint16_t* p, vec x) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), narrow_f16(x));
  }
  static ALIBI_ALWAYS_INLINE void store_f16_partial(std::uint16_t* p, vec x, int n) {
    _mm256_mask_storeu_epi16(p, first_lanes(n), narrow_f16(x));
  }

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
  static ALIBI_ALWAYS_INLINE vec add(vec a, vec b) {
    return _mm512_add_ps(a, b);
  }
  static ALIBI_ALWAYS_INLINE vec sub(vec a, vec b) {
    return _mm512_sub_ps(a, b);
  }
  static ALIBI_ALWAYS_INLINE vec mul(vec a, vec b) {
    return _mm512_mul_ps(a, b);
  }
  static constexpr bool fused_fma = true;  // one rounding (Note [scalar fma] in isa/scalar.hpp)
  static ALIBI_ALWAYS_INLINE vec fma(vec a, vec b, vec c) {
    return _mm512_fmadd_ps(a, b, c);
  }
  static ALIBI_ALWAYS_INLINE vec abs(vec a) {
    return _mm512_castsi512_ps(_mm512_and_epi32(_mm512_castps_si512(a), _mm512_set1_epi32(0x7FFFFFFF)));
  }
  static ALIBI_ALWAYS_INLINE vec max(vec a, vec b) {
    return _mm512_max_ps(a, b);
  }
  static ALIBI_ALWAYS_INLINE vec min(vec a, vec b) {
    return _mm512_min_ps(a, b);
  }
  static ALIBI_ALWAYS_INLINE vec select_lt(vec a, vec b, vec x, vec y) {
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, b, _CMP_LT_OQ), y, x);
  }

  // ---- exponent manipulation (for exp)
  static ALIBI_ALWAYS_INLINE vec round_even(vec a) {
    return _mm512_roundscale_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  }
  // vscalefps computes 1 * 2^n in one instruction and handles NaN like the other lanes.
  static ALIBI_ALWAYS_INLINE vec pow2i(vec n) {
    return _mm512_scalef_ps(_mm512_set1_ps(1.0f), n);
  }

  // ---- horizontal
  static ALIBI_ALWAYS_INLINE float reduce_add(vec a) {
    return _mm512_reduce_add_ps(a);
  }

  // ---- lane interleave
  // lo = a0 b0 a1 b1 .. a7 b7, hi = a8 b8 .. a15 b15: two vectors of alternate keys back into key order.
  static ALIBI_ALWAYS_INLINE void interleave(vec a, vec b, vec& lo, vec& hi) {
    const __m512i low_lanes = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const __m512i high_lanes = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    lo = _mm512_permutex2var_ps(a, low_lanes, b);
    hi = _mm512_permutex2var_ps(a, high_lanes, b);
  }

  // ---- in-register transpose
  // The first two steps of a transpose, 4 x 4 transposes within 128-bit blocks (32-bit, then 64-bit
  // unpacks): out[4 g + c], block k: element c of block k of in[4 g], in[4 g + 1], in[4 g + 2], in[4 g + 3].
  template <int N>
  static ALIBI_ALWAYS_INLINE void transpose_within_blocks(const vec (&in)[N], vec (&out)[N]) {
    static_assert(N % 4 == 0, "groups of four vectors");
    __m512 pairs[N];
#pragma GCC unroll 16
    for (int i = 0; i < N; i += 2) {
      pairs[i] = _mm512_unpacklo_ps(in[i], in[i + 1]);
      pairs[i + 1] = _mm512_unpackhi_ps(in[i], in[i + 1]);
    }
#pragma GCC unroll 16
    for (int g = 0; g < N; g += 4) {
      const __m512d lo01 = _mm512_castps_pd(pairs[g]), hi01 = _mm512_castps_pd(pairs[g + 1]);
      const __m512d lo23 = _mm512_castps_pd(pairs[g + 2]), hi23 = _mm512_castps_pd(pairs[g + 3]);
      out[g] = _mm512_castpd_ps(_mm512_unpacklo_pd(lo01, lo23));
      out[g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(lo01, lo23));
      out[g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(hi01, hi23));
      out[g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(hi01, hi23));
    }
  }

  // x[i] lane l <- x[l] lane i, for the 16 vectors x[0..15]: 32-bit then 64-bit unpacks within 128-bit
  // blocks (4x4 transposes), then two rounds of 128-bit block shuffles.
  static ALIBI_ALWAYS_INLINE void transpose(vec (&x)[16]) {
    // quads[4 g + c], 128-bit block k: column 4 k + c of rows 4 g .. 4 g + 3.
    __m512 quads[16];
    transpose_within_blocks(x, quads);
#pragma GCC unroll 16
    for (int c = 0; c < 4; ++c) {
      // Blocks 0, 2 (even) and 1, 3 (odd) of row groups 0, 1 and of row groups 2, 3.
      const __m512 even01 = _mm512_shuffle_f32x4(quads[c], quads[4 + c], 0x88);
      const __m512 odd01 = _mm512_shuffle_f32x4(quads[c], quads[4 + c], 0xDD);
      const __m512 even23 = _mm512_shuffle_f32x4(quads[8 + c], quads[12 + c], 0x88);
      const __m512 odd23 = _mm512_shuffle_f32x4(quads[8 + c], quads[12 + c], 0xDD);
      x[c] = _mm512_shuffle_f32x4(even01, even23, 0x88);
      x[8 + c] = _mm512_shuffle_f32x4(even01, even23, 0xDD);
      x[4 + c] = _mm512_shuffle_f32x4(odd01, odd23, 0x88);
      x[12 + c] = _mm512_shuffle_f32x4(odd01, odd23, 0xDD);
    }
  }
};

}  // namespace simd
ALIBI_NAMESPACE_END

#if defined(ALIBI_AVX512_DIAGNOSTICS_PUSHED)
#pragma GCC diagnostic pop
#undef ALIBI_AVX512_DIAGNOSTICS_PUSHED
#endif
#endif
#endif  // per-target guard
