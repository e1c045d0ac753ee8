#pragma once
// The 16-bit element types (alibi::bfloat16, alibi::float16 in alibi/types.hpp) and their conversions to
// and from float: scalar, and element-wise over arrays, vectorised with the widest ISA the translation
// unit's flags allow. Every conversion is bit-exact and the same on every ISA (Note [16-bit rounding] in
// detail/float16.hpp): float -> 16 bits rounds to nearest, ties to even (binary16 subnormals included,
// |x| >= 65520 -> +-inf); 16 bits -> float is exact; NaN stays NaN with the same sign. Nothing depends on
// the floating-point environment (rounding mode, FTZ, DAZ).
#include <cstddef>
#include <cstdint>

#include "alibi/detail/config.hpp"
#include "alibi/detail/errors.hpp"
#include "alibi/detail/float16.hpp"
#include "alibi/isa/ops.hpp"
#include "alibi/isa/tags.hpp"
#include "alibi/types.hpp"

ALIBI_NAMESPACE_BEGIN

/// x rounded to the nearest bfloat16, ties to even; overflow gives +-inf; a NaN gives a quiet NaN with the
/// same sign (the top bits of its payload kept).
inline bfloat16 to_bfloat16(float x) noexcept {
  return bfloat16{detail::float_to_bf16_bits(x)};
}

/// x rounded to the nearest IEEE binary16, ties to even, subnormals included; |x| >= 65520 (the midpoint
/// between 65504, the largest finite value, and 2^16) gives +-inf, so 65519.99f gives 65504; a NaN gives a
/// quiet NaN with the same sign (the top bits of its payload kept).
inline float16 to_float16(float x) noexcept {
  return float16{detail::float_to_f16_bits(x)};
}

/// The value of x as a float: exact (the bits become the float's top half, NaN payloads included).
inline float to_float(bfloat16 x) noexcept {
  return detail::bf16_bits_to_float(x.bits);
}

/// The value of x as a float: exact; a NaN gives a quiet NaN with the same sign and payload.
inline float to_float(float16 x) noexcept {
  return detail::f16_bits_to_float(x.bits);
}

namespace detail {

// n > 0 needs both arrays; they must not overlap (n is bounded so the byte ranges are representable).
inline void check_convert(const void* in, std::size_t in_size, const void* out, std::size_t out_size, std::size_t n) {
  if (n == 0) return;
  const std::size_t limit = static_cast<std::size_t>(-1) / 4;
  require(n <= limit, "convert", "n", "is too large");
  require(in != nullptr, "convert", "in", "must not be null when n > 0");
  require(out != nullptr, "convert", "out", "must not be null when n > 0");
  const std::uintptr_t in_begin = reinterpret_cast<std::uintptr_t>(in);
  const std::uintptr_t out_begin = reinterpret_cast<std::uintptr_t>(out);
  const bool disjoint = in_begin + n * in_size <= out_begin || out_begin + n * out_size <= in_begin;
  require(disjoint, "convert", "out", "must not overlap in");
}

}  // namespace detail

/// out[i] = to_bfloat16(in[i]) for i < n, bit for bit. Any alignment; in and out must not overlap.
/// @throws std::invalid_argument if n > 0 and in or out is null, or if they overlap.
inline void convert(const float* in, bfloat16* out, std::size_t n) {
  detail::check_convert(in, sizeof *in, out, sizeof *out, n);
  using O = simd::Ops<isa::native>;
  std::size_t i = 0;
  for (; i + O::width <= n; i += O::width) O::store_bf16(&out[i].bits, O::load(in + i));
  if (i < n) {
    const int rest = static_cast<int>(n - i);
    O::store_bf16_partial(&out[i].bits, O::load_partial(in + i, rest), rest);
  }
}

/// out[i] = to_float16(in[i]) for i < n, bit for bit. Any alignment; in and out must not overlap.
/// @throws std::invalid_argument if n > 0 and in or out is null, or if they overlap.
inline void convert(const float* in, float16* out, std::size_t n) {
  detail::check_convert(in, sizeof *in, out, sizeof *out, n);
  using O = simd::Ops<isa::native>;
  std::size_t i = 0;
  for (; i + O::width <= n; i += O::width) O::store_f16(&out[i].bits, O::load(in + i));
  if (i < n) {
    const int rest = static_cast<int>(n - i);
    O::store_f16_partial(&out[i].bits, O::load_partial(in + i, rest), rest);
  }
}

/// out[i] = to_float(in[i]) for i < n, bit for bit. Any alignment; in and out must not overlap.
/// @throws std::invalid_argument if n > 0 and in or out is null, or if they overlap.
inline void convert(const bfloat16* in, float* out, std::size_t n) {
  detail::check_convert(in, sizeof *in, out, sizeof *out, n);
  using O = simd::Ops<isa::native>;
  std::size_t i = 0;
  for (; i + O::width <= n; i += O::width) O::store(out + i, O::load_bf16(&in[i].bits));
  if (i < n) {
    const int rest = static_cast<int>(n - i);
    O::store_partial(out + i, O::load_bf16_partial(&in[i].bits, rest), rest);
  }
}

/// out[i] = to_float(in[i]) for i < n, bit for bit. Any alignment; in and out must not overlap.
/// @throws std::invalid_argument if n > 0 and in or out is null, or if they overlap.
inline void convert(const float16* in, float* out, std::size_t n) {
  detail::check_convert(in, sizeof *in, out, sizeof *out, n);
  using O = simd::Ops<isa::native>;
  std::size_t i = 0;
  for (; i + O::width <= n; i += O::width) O::store(out + i, O::load_f16(&in[i].bits));
  if (i < n) {
    const int rest = static_cast<int>(n - i);
    O::store_partial(out + i, O::load_f16_partial(&in[i].bits, rest), rest);
  }
}

ALIBI_NAMESPACE_END
