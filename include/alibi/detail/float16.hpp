// Bit-exact scalar conversions between float and the 16-bit formats, on raw bit patterns: bfloat16 (the top
// half of an IEEE binary32) and IEEE binary16. Portable integer code: no compiler _Float16, no dependence
// on the floating-point environment (rounding mode, FTZ/DAZ), bit casts through memcpy.
//
// Note [16-bit rounding]: float -> 16 bits rounds to nearest, ties to even, in integer arithmetic on the
// float's bits, the subnormals of binary16 included; binary16 overflow (|x| >= 65520, the midpoint
// between 65504 and 2^16) gives +-inf. NaN keeps its sign and becomes a quiet NaN carrying the top bits of
// its payload (what vcvtps2ph does, so the AVX-512 path agrees bit for bit). 16 bits -> float is exact;
// a binary16 NaN comes back quiet (what vcvtph2ps does), a bfloat16 pattern comes back unchanged.
// The SIMD paths of simd::Ops (isa/) follow these functions bit for bit.
#include "alibi/detail/config.hpp"
// Per-target header: no #pragma once (Note [per-target headers] in detail/config.hpp).
#if (ALIBI_PASS == 0 && !defined(ALIBI_DETAIL_FLOAT16_HPP_0)) || \
    (ALIBI_PASS == 1 && !defined(ALIBI_DETAIL_FLOAT16_HPP_1)) || \
    (ALIBI_PASS == 2 && !defined(ALIBI_DETAIL_FLOAT16_HPP_2))
#if ALIBI_PASS == 0
#define ALIBI_DETAIL_FLOAT16_HPP_0
#elif ALIBI_PASS == 1
#define ALIBI_DETAIL_FLOAT16_HPP_1
#else
#define ALIBI_DETAIL_FLOAT16_HPP_2
#endif
#include <cstdint>
#include <cstring>

#include "alibi/detail/config.hpp"

ALIBI_NAMESPACE_BEGIN
namespace detail {

inline std::uint32_t float_bits(float x) noexcept {
  std::uint32_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  return bits;
}

inline float bits_float(std::uint32_t bits) noexcept {
  float x;
  std::memcpy(&x, &bits, sizeof x);
  return x;
}

/// bfloat16 bits -> float: the 16 bits become the top half of the float (exact, NaN payloads kept).
inline float bf16_bits_to_float(std::uint16_t h) noexcept {
  return bits_float(std::uint32_t{h} << 16);
}

/// float -> bfloat16 bits, round to nearest even (Note [16-bit rounding]).
inline std::uint16_t float_to_bf16_bits(float x) noexcept {
  const std::uint32_t bits = float_bits(x);
  if ((bits & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<std::uint16_t>((bits >> 16) | 0x0040u);  // quiet NaN
  // Adding 0x7FFF plus the lowest kept bit carries into bit 16 exactly when the dropped half is above the
  // midpoint, or at it with an odd kept part. A carry out of the mantissa steps the exponent (up to inf).
  return static_cast<std::uint16_t>((bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16);
}

/// IEEE binary16 bits -> float, exact (a NaN comes back quiet, Note [16-bit rounding]).
inline float f16_bits_to_float(std::uint16_t h) noexcept {
  const std::uint32_t sign = std::uint32_t{h & 0x8000u} << 16;
  const std::uint32_t exponent = (h >> 10) & 0x1Fu;
  const std::uint32_t mantissa = h & 0x3FFu;
  std::uint32_t bits;
  if (exponent == 0x1Fu) {
    bits = 0x7F800000u | (mantissa << 13) | (mantissa != 0 ? 0x00400000u : 0u);  // inf, or quiet NaN
  } else if (exponent != 0) {
    bits = ((exponent + (127 - 15)) << 23) | (mantissa << 13);  // normal
  } else if (mantissa != 0) {
    // Subnormal: mantissa * 2^-24. Normalise: shift the leading one up to bit 10.
    int shift = 0;
    std::uint32_t m = mantissa;
    while ((m & 0x400u) == 0) {
      m <<= 1;
      ++shift;
    }
    bits = (static_cast<std::uint32_t>(127 - 15 + 1 - shift) << 23) | ((m & 0x3FFu) << 13);
  } else {
    bits = 0;  // zero
  }
  return bits_float(sign | bits);
}

/// float -> IEEE binary16 bits, round to nearest even including subnormals (Note [16-bit rounding]).
inline std::uint16_t float_to_f16_bits(float x) noexcept {
  const std::uint32_t bits = float_bits(x);
  const std::uint32_t sign = (bits >> 16) & 0x8000u;
  const std::uint32_t a = bits & 0x7FFFFFFFu;
  std::uint32_t h;
  if (a > 0x7F800000u) {
    h = 0x7E00u | ((a >> 13) & 0x3FFu);  // quiet NaN, top payload bits
  } else if (a >= 0x477FF000u) {
    h = 0x7C00u;  // >= 65520 (and inf): inf
  } else if (a >= 0x38800000u) {
    // Normal binary16 (>= 2^-14): rebias the exponent, round off 13 mantissa bits (a carry may step the
    // exponent; below 65520 it never reaches inf).
    h = (a - (std::uint32_t{127 - 15} << 23) + 0xFFFu + ((a >> 13) & 1u)) >> 13;
  } else {
    // Subnormal binary16 or zero: |x| / 2^-24 rounded to an integer. |x| = m * 2^(e - 150) with the
    // implicit bit in m, so the quotient is m >> (126 - e); shifts of 25 or more give 0 (below 2^-25), and
    // so do float subnormals (e = 0).
    const std::uint32_t e = a >> 23;
    const std::uint32_t m = (a & 0x7FFFFFu) | 0x800000u;
    const std::uint32_t shift = e == 0 ? 31u : (126u - e < 31u ? 126u - e : 31u);
    h = (m + ((1u << (shift - 1)) - 1u) + ((m >> shift) & 1u)) >> shift;
  }
  return static_cast<std::uint16_t>(sign | h);
}

}  // namespace detail
ALIBI_NAMESPACE_END
#endif  // per-target guard
