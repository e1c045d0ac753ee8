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
#include <cstdint>
#include <cstring>

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
  using narrower = isa::avx2;  // none narrower that streams (Plan::can_stream)
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

  // ---- 16-bit memory: 8 values in an __m128i, bit for bit the scalar functions of detail/float16.hpp
  // (Note [16-bit rounding]). Binary16 uses F16C when the target has it (vcvtph2ps is exact; vcvtps2ph
  // rounds to nearest even by its immediate, not MXCSR.RC, and ignores FTZ; a DAZ-flushed input is a float
  // subnormal, which rounds to the same signed zero anyway), else integer AVX2 code.
  static ALIBI_ALWAYS_INLINE vec widen_bf16(__m128i h) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  }
#if ALIBI_TARGET_F16C
  static ALIBI_ALWAYS_INLINE vec widen_f16(__m128i h) {
    return _mm256_cvtph_ps(h);
  }
#else
  static ALIBI_ALWAYS_INLINE vec widen_f16(__m128i h) {
    const __m256i h32 = _mm256_cvtepu16_epi32(h);
    const __m256i sign = _mm256_slli_epi32(_mm256_and_si256(h32, _mm256_set1_epi32(0x8000)), 16);
    const __m256i em = _mm256_and_si256(h32, _mm256_set1_epi32(0x7FFF));  // exponent and mantissa
    const __m256i shifted = _mm256_slli_epi32(em, 13);
    const __m256i normal = _mm256_add_epi32(shifted, _mm256_set1_epi32((127 - 15) << 23));
    // Exponent 31: 0x0F800000 + 0x70000000 = 0x7F800000 (inf), plus the quiet bit for a NaN.
    const __m256i quiet =
        _mm256_and_si256(_mm256_cmpgt_epi32(em, _mm256_set1_epi32(0x7C00)), _mm256_set1_epi32(0x00400000));
    const __m256i special = _mm256_or_si256(_mm256_add_epi32(shifted, _mm256_set1_epi32(0x70000000)), quiet);
    // Exponent 0: mantissa * 2^-24, exact in float arithmetic (a small integer times a power of two, and
    // normal in binary32: no rounding, FTZ or DAZ can change it).
    const __m256i tiny = _mm256_castps_si256(_mm256_mul_ps(_mm256_cvtepi32_ps(em), _mm256_set1_ps(0x1p-24f)));
    __m256i bits = _mm256_blendv_epi8(normal, special, _mm256_cmpgt_epi32(em, _mm256_set1_epi32(0x7BFF)));
    bits = _mm256_blendv_epi8(bits, tiny, _mm256_cmpgt_epi32(_mm256_set1_epi32(0x0400), em));
    return _mm256_castsi256_ps(_mm256_or_si256(bits, sign));
  }
#endif
  // 8 lanes holding values <= 0xFFFF -> 8 uint16.
  static ALIBI_ALWAYS_INLINE __m128i pack_u16(__m256i x) {
    return _mm_packus_epi32(_mm256_castsi256_si128(x), _mm256_extracti128_si256(x, 1));
  }
  static ALIBI_ALWAYS_INLINE __m128i narrow_bf16(vec x) {
    const __m256i bits = _mm256_castps_si256(x);
    const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(bits, 16), _mm256_set1_epi32(1));
    const __m256i rounded =
        _mm256_srli_epi32(_mm256_add_epi32(_mm256_add_epi32(bits, _mm256_set1_epi32(0x7FFF)), lsb), 16);
    const __m256i nan = _mm256_or_si256(_mm256_srli_epi32(bits, 16), _mm256_set1_epi32(0x0040));
    const __m256i is_nan =
        _mm256_cmpgt_epi32(_mm256_and_si256(bits, _mm256_set1_epi32(0x7FFFFFFF)), _mm256_set1_epi32(0x7F800000));
    return pack_u16(_mm256_blendv_epi8(rounded, nan, is_nan));
  }
#if ALIBI_TARGET_F16C
  static ALIBI_ALWAYS_INLINE __m128i narrow_f16(vec x) {
    return _mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT);
  }
#else
  static ALIBI_ALWAYS_INLINE __m128i narrow_f16(vec x) {
    const __m256i bits = _mm256_castps_si256(x);
    const __m256i sign = _mm256_and_si256(_mm256_srli_epi32(bits, 16), _mm256_set1_epi32(0x8000));
    const __m256i a = _mm256_and_si256(bits, _mm256_set1_epi32(0x7FFFFFFF));  // |x|, a non-negative int32
    const __m256i one = _mm256_set1_epi32(1);
    // Normal binary16: rebias, round off 13 bits (ties to even).
    const __m256i normal_lsb = _mm256_and_si256(_mm256_srli_epi32(a, 13), one);
    const __m256i normal =
        _mm256_srli_epi32(_mm256_add_epi32(_mm256_sub_epi32(a, _mm256_set1_epi32(0x38000000 - 0xFFF)), normal_lsb), 13);
    // Subnormal binary16 or zero: m >> (126 - e) rounded, the shift capped at 31 (gives 0).
    const __m256i e = _mm256_srli_epi32(a, 23);
    const __m256i m = _mm256_or_si256(_mm256_and_si256(a, _mm256_set1_epi32(0x7FFFFF)), _mm256_set1_epi32(0x800000));
    const __m256i shift = _mm256_min_epu32(_mm256_sub_epi32(_mm256_set1_epi32(126), e), _mm256_set1_epi32(31));
    const __m256i half_minus_one = _mm256_sub_epi32(_mm256_sllv_epi32(one, _mm256_sub_epi32(shift, one)), one);
    const __m256i tiny_lsb = _mm256_and_si256(_mm256_srlv_epi32(m, shift), one);
    const __m256i tiny = _mm256_srlv_epi32(_mm256_add_epi32(_mm256_add_epi32(m, half_minus_one), tiny_lsb), shift);
    const __m256i nan = _mm256_or_si256(_mm256_set1_epi32(0x7E00),
                                        _mm256_and_si256(_mm256_srli_epi32(a, 13), _mm256_set1_epi32(0x3FF)));
    __m256i h = _mm256_blendv_epi8(tiny, normal, _mm256_cmpgt_epi32(a, _mm256_set1_epi32(0x387FFFFF)));
    h = _mm256_blendv_epi8(h, _mm256_set1_epi32(0x7C00), _mm256_cmpgt_epi32(a, _mm256_set1_epi32(0x477FEFFF)));
    h = _mm256_blendv_epi8(h, nan, _mm256_cmpgt_epi32(a, _mm256_set1_epi32(0x7F800000)));
    return pack_u16(_mm256_or_si256(h, sign));
  }
#endif
  static ALIBI_ALWAYS_INLINE __m128i load_u16(const std::uint16_t* p) {
    return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  }
  // AVX2 has no 16-bit masked load or store: the partial forms go through a buffer, copying only n values.
  static ALIBI_ALWAYS_INLINE __m128i load_u16_partial(const std::uint16_t* p, int n) {
    alignas(16) std::uint16_t buffer[8] = {};
    if (n > 0) std::memcpy(buffer, p, static_cast<std::size_t>(n < 8 ? n : 8) * sizeof(std::uint16_t));
    return _mm_load_si128(reinterpret_cast<const __m128i*>(buffer));
  }
  static ALIBI_ALWAYS_INLINE void store_u16(std::uint16_t* p, __m128i h) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p), h);
  }
  static ALIBI_ALWAYS_INLINE void store_u16_partial(std::uint16_t* p, __m128i h, int n) {
    alignas(16) std::uint16_t buffer[8];
    _mm_store_si128(reinterpret_cast<__m128i*>(buffer), h);
    if (n > 0) std::memcpy(p, buffer, static_cast<std::size_t>(n < 8 ? n : 8) * sizeof(std::uint16_t));
  }
  static ALIBI_ALWAYS_INLINE vec load_bf16(const std::uint16_t* p) {
    return widen_bf16(load_u16(p));
  }
  static ALIBI_ALWAYS_INLINE vec load_bf16_partial(const std::uint16_t* p, int n) {
    return widen_bf16(load_u16_partial(p, n));
  }
  static ALIBI_ALWAYS_INLINE vec load_f16(const std::uint16_t* p) {
    return widen_f16(load_u16(p));
  }
  static ALIBI_ALWAYS_INLINE vec load_f16_partial(const std::uint16_t* p, int n) {
    return widen_f16(load_u16_partial(p, n));
  }
  static ALIBI_ALWAYS_INLINE void store_bf16(std::uint16_t* p, vec x) {
    store_u16(p, narrow_bf16(x));
  }
  static ALIBI_ALWAYS_INLINE void store_bf16_partial(std::uint16_t* p, vec x, int n) {
    store_u16_partial(p, narrow_bf16(x), n);
  }
  static ALIBI_ALWAYS_INLINE void store_f16(std::uint16_t* p, vec x) {
    store_u16(p, narrow_f16(x));
  }
  static ALIBI_ALWAYS_INLINE void store_f16_partial(std::uint16_t* p, vec x, int n) {
    store_u16_partial(p, narrow_f16(x), n);
  }

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
  static ALIBI_ALWAYS_INLINE vec add(vec a, vec b) {
    return _mm256_add_ps(a, b);
  }
  static ALIBI_ALWAYS_INLINE vec sub(vec a, vec b) {
    return _mm256_sub_ps(a, b);
  }
  static ALIBI_ALWAYS_INLINE vec mul(vec a, vec b) {
    return _mm256_mul_ps(a, b);
  }
  static constexpr bool fused_fma = true;  // one rounding (Note [scalar fma] in isa/scalar.hpp)
  static ALIBI_ALWAYS_INLINE vec fma(vec a, vec b, vec c) {
    return _mm256_fmadd_ps(a, b, c);
  }
  static ALIBI_ALWAYS_INLINE vec abs(vec a) {
    return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), a);
  }
  static ALIBI_ALWAYS_INLINE vec max(vec a, vec b) {
    return _mm256_max_ps(a, b);
  }
  static ALIBI_ALWAYS_INLINE vec min(vec a, vec b) {
    return _mm256_min_ps(a, b);
  }
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

  // ---- lane interleave
  // lo = a0 b0 a1 b1 a2 b2 a3 b3, hi = a4 b4 .. a7 b7: two vectors of alternate keys back into key order.
  static ALIBI_ALWAYS_INLINE void interleave(vec a, vec b, vec& lo, vec& hi) {
    const __m256 low_pairs = _mm256_unpacklo_ps(a, b), high_pairs = _mm256_unpackhi_ps(a, b);
    lo = _mm256_permute2f128_ps(low_pairs, high_pairs, 0x20);
    hi = _mm256_permute2f128_ps(low_pairs, high_pairs, 0x31);
  }

  // ---- 16-bit rows loaded transposed (Ops<avx512>::load_transposed_bf16)
  // bfloat16: pairs of values (32-bit words) transposed, row l in the low 128-bit half and row l + 4 in the
  // high half of register l (4 joins and 8 unpacks), each pair then split into its two floats by a shift and
  // a mask; widened first, the rows took 8 widenings and 24 shuffles.
  template <class Rows>
  static ALIBI_ALWAYS_INLINE void load_transposed_bf16(const Rows& rows, vec (&x)[8]) {
    __m256i z[4];
#pragma GCC unroll 4
    for (int l = 0; l < 4; ++l) {
      const __m128i low = _mm_loadu_si128(reinterpret_cast<const __m128i*>(rows(l)));
      const __m128i high = _mm_loadu_si128(reinterpret_cast<const __m128i*>(rows(l + 4)));
      z[l] = _mm256_inserti128_si256(_mm256_castsi128_si256(low), high, 1);
    }
    const __m256i lo01 = _mm256_unpacklo_epi32(z[0], z[1]), hi01 = _mm256_unpackhi_epi32(z[0], z[1]);
    const __m256i lo23 = _mm256_unpacklo_epi32(z[2], z[3]), hi23 = _mm256_unpackhi_epi32(z[2], z[3]);
    // Word c of rows 0-3 (low half) and 4-7 (high half): values 2 c and 2 c + 1.
    const __m256i words[4] = {_mm256_unpacklo_epi64(lo01, lo23), _mm256_unpackhi_epi64(lo01, lo23),
                              _mm256_unpacklo_epi64(hi01, hi23), _mm256_unpackhi_epi64(hi01, hi23)};
    const __m256i high_half = _mm256_set1_epi32(static_cast<int>(0xFFFF0000u));
#pragma GCC unroll 4
    for (int c = 0; c < 4; ++c) {
      x[2 * c] = _mm256_castsi256_ps(_mm256_slli_epi32(words[c], 16));
      x[2 * c + 1] = _mm256_castsi256_ps(_mm256_and_si256(words[c], high_half));
    }
  }
  // float16: widened, then transposed.
  template <class Rows>
  static ALIBI_ALWAYS_INLINE void load_transposed_f16(const Rows& rows, vec (&x)[8]) {
#pragma GCC unroll 8
    for (int l = 0; l < 8; ++l) x[l] = load_f16(rows(l));
    transpose(x);
  }

  // ---- in-register transpose
  // x[i] lane l <- x[l] lane i, for the 8 vectors x[0..7] (unpack, 64-bit shuffle, then 128-bit halves).
  static ALIBI_ALWAYS_INLINE void transpose(vec (&x)[8]) {
    __m256 pairs[8], quads[8];
#pragma GCC unroll 16
    for (int i = 0; i < 8; i += 2) {
      pairs[i] = _mm256_unpacklo_ps(x[i], x[i + 1]);
      pairs[i + 1] = _mm256_unpackhi_ps(x[i], x[i + 1]);
    }
#pragma GCC unroll 16
    for (int i = 0; i < 8; i += 4) {
      quads[i] = _mm256_shuffle_ps(pairs[i], pairs[i + 2], 0x44);
      quads[i + 1] = _mm256_shuffle_ps(pairs[i], pairs[i + 2], 0xEE);
      quads[i + 2] = _mm256_shuffle_ps(pairs[i + 1], pairs[i + 3], 0x44);
      quads[i + 3] = _mm256_shuffle_ps(pairs[i + 1], pairs[i + 3], 0xEE);
    }
#pragma GCC unroll 16
    for (int i = 0; i < 4; ++i) {
      x[i] = _mm256_permute2f128_ps(quads[i], quads[i + 4], 0x20);
      x[i + 4] = _mm256_permute2f128_ps(quads[i], quads[i + 4], 0x31);
    }
  }
};

}  // namespace simd
ALIBI_NAMESPACE_END
#endif
#endif  // per-target guard
