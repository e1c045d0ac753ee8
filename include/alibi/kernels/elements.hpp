// The element types K and V may hold (float, bfloat16, float16) as the kernels read them: one value at a
// time, exactly, as a float (to_fp32), and whole vectors of them widened to fp32 (Elements<Isa, KV>).
// Every 16-bit value converts exactly, so a kernel over 16-bit K/V computes the fp32 attention of the
// converted values.
#include "alibi/detail/config.hpp"
// Per-target header: no #pragma once (Note [per-target headers] in detail/config.hpp).
#if (ALIBI_PASS == 0 && !defined(ALIBI_KERNELS_ELEMENTS_HPP_0)) || \
    (ALIBI_PASS == 1 && !defined(ALIBI_KERNELS_ELEMENTS_HPP_1)) || \
    (ALIBI_PASS == 2 && !defined(ALIBI_KERNELS_ELEMENTS_HPP_2))
#if ALIBI_PASS == 0
#define ALIBI_KERNELS_ELEMENTS_HPP_0
#elif ALIBI_PASS == 1
#define ALIBI_KERNELS_ELEMENTS_HPP_1
#else
#define ALIBI_KERNELS_ELEMENTS_HPP_2
#endif
#include <cstdint>
#include <type_traits>

#include "alibi/detail/config.hpp"
#include "alibi/detail/float16.hpp"
#include "alibi/isa/ops.hpp"
#include "alibi/types.hpp"

ALIBI_NAMESPACE_BEGIN
namespace kernels {

template <class KV>
struct is_kv_element
    : std::integral_constant<bool, std::is_same<KV, float>::value || std::is_same<KV, bfloat16>::value ||
                                       std::is_same<KV, float16>::value> {};

inline float to_fp32(float x) {
  return x;
}
inline float to_fp32(bfloat16 x) {
  return detail::bf16_bits_to_float(x.bits);
}
inline float to_fp32(float16 x) {
  return detail::f16_bits_to_float(x.bits);
}

template <class Isa, class KV>
struct Elements;

template <class Isa>
struct Elements<Isa, float> {
  using O = simd::Ops<Isa>;
  static ALIBI_ALWAYS_INLINE typename O::vec load(const float* p) { return O::load(p); }
  static ALIBI_ALWAYS_INLINE typename O::vec load_partial(const float* p, int n) { return O::load_partial(p, n); }
  // x[i] lane l <- rows[l][offset + i], for O::width rows of O::width values.
  static ALIBI_ALWAYS_INLINE void load_transposed(const float* const* rows, std::int64_t offset,
                                                  typename O::vec (&x)[O::width]) {
#pragma GCC unroll 16
    for (int l = 0; l < O::width; ++l) x[l] = O::load(rows[l] + offset);
    O::transpose(x);
  }
};

template <class Isa>
struct Elements<Isa, bfloat16> {
  using O = simd::Ops<Isa>;
  static ALIBI_ALWAYS_INLINE typename O::vec load(const bfloat16* p) { return O::load_bf16(&p->bits); }
  static ALIBI_ALWAYS_INLINE typename O::vec load_partial(const bfloat16* p, int n) {
    return O::load_bf16_partial(&p->bits, n);
  }
  static ALIBI_ALWAYS_INLINE void load_transposed(const bfloat16* const* rows, std::int64_t offset,
                                                  typename O::vec (&x)[O::width]) {
    O::load_transposed_bf16([rows, offset](int l) { return &(rows[l] + offset)->bits; }, x);
  }
};

template <class Isa>
struct Elements<Isa, float16> {
  using O = simd::Ops<Isa>;
  static ALIBI_ALWAYS_INLINE typename O::vec load(const float16* p) { return O::load_f16(&p->bits); }
  static ALIBI_ALWAYS_INLINE typename O::vec load_partial(const float16* p, int n) {
    return O::load_f16_partial(&p->bits, n);
  }
  static ALIBI_ALWAYS_INLINE void load_transposed(const float16* const* rows, std::int64_t offset,
                                                  typename O::vec (&x)[O::width]) {
    O::load_transposed_f16([rows, offset](int l) { return &(rows[l] + offset)->bits; }, x);
  }
};

}  // namespace kernels
ALIBI_NAMESPACE_END
#endif  // per-target guard
