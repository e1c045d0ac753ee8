#pragma once
// The values of bfloat16 and IEEE binary16 bit patterns, from the formats' definitions (sign, biased
// exponent, mantissa; ldexp in double), sharing no code with the library. The conversion tests compare
// alibi::to_float with these, and the 16-bit K/V tests and the fuzzer build their float64 references on
// them, so a reference never rests on the conversion it is meant to check.
#include <cmath>
#include <cstdint>
#include <limits>

namespace alibi_test {

// A binary format with `mantissa_bits` stored mantissa bits and `exponent_bits` exponent bits: the value
// of a pattern (NaN for NaN patterns), from sign, exponent and mantissa.
inline double decode(std::uint32_t pattern, int exponent_bits, int mantissa_bits) {
  const int bias = (1 << (exponent_bits - 1)) - 1;
  const std::uint32_t mantissa = pattern & ((1u << mantissa_bits) - 1);
  const std::uint32_t exponent = (pattern >> mantissa_bits) & ((1u << exponent_bits) - 1);
  const bool negative = (pattern >> (mantissa_bits + exponent_bits)) & 1u;
  double value;
  if (exponent == (1u << exponent_bits) - 1) {
    value = mantissa == 0 ? HUGE_VAL : std::numeric_limits<double>::quiet_NaN();
  } else if (exponent == 0) {
    value = std::ldexp(double(mantissa), 1 - bias - mantissa_bits);
  } else {
    value = std::ldexp(double(mantissa + (1u << mantissa_bits)), int(exponent) - bias - mantissa_bits);
  }
  return negative ? -value : value;
}
inline double decode_bf16(std::uint16_t h) {
  return decode(h, 8, 7);
}
inline double decode_f16(std::uint16_t h) {
  return decode(h, 5, 10);
}

}  // namespace alibi_test
