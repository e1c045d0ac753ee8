// The ISA layer's single customisation point: `Ops<Isa>` is a traits type with the few vector primitives
// the kernels need. Each ISA specialises it in its own header (scalar.hpp, avx2.hpp, avx512.hpp); this is the
// only place in the library with intrinsics or ISA #ifs.
//
// Every specialisation provides:
//   using vec;  static constexpr int width;                  one register of `width` floats
//   zero, set1
//   load/store (unaligned), load_partial/store_partial       first n lanes, the rest read as 0 / untouched
//   load_bf16/load_f16(const std::uint16_t* p)                width bfloat16 / IEEE binary16 values from p
//   load_bf16_partial/load_f16_partial(p, n)                  (unaligned), widened exactly to floats; the
//                                                             partial forms read only the first n (the rest
//                                                             are 0), never a byte past them
//   store_bf16/store_f16(std::uint16_t* p, x)                 x rounded to nearest even (binary16: subnormals
//   store_bf16_partial/store_f16_partial(p, x, n)             included, overflow to +-inf); partial: first n
//   add, sub, mul, fma(a, b, c) = a * b + c, abs
//   max(a, b), min(a, b)                                      x86 semantics: b when either is NaN
//   select_lt(a, b, x, y)                                     per lane: a < b ? x : y
//   round_even(a), pow2i(n)                                   pow2i: 2^n for integral n in [-126, 127]
//   reduce_add                                                horizontal sum, to a float
//   transpose(vec (&x)[width])                                the `width` x `width` matrix of x transposed in
//                                                             registers: x[i] lane l <- x[l] lane i
//   load_transposed_bf16/f16(rows, vec (&x)[width])           `width` rows of `width` 16-bit values (rows(l):
//                                                             row l's first, unaligned) widened exactly and
//                                                             transposed: x[i] lane l <- value i of row l
// and the register-blocking shape of its micro-kernels: `registers` (vector registers the ISA has),
// qk_row_vecs (row vectors of one Q.K tile; the tile's key count follows from the register budget) and
// pv_rows x pv_vecs P.V accumulators. The 16-bit conversions are bit for bit those of detail/float16.hpp
// (Note [16-bit rounding]) on every ISA, NaN payloads included, whatever the floating-point environment
// (rounding mode, FTZ, DAZ).
#include "alibi/detail/config.hpp"
// Per-target header: no #pragma once (Note [per-target headers] in detail/config.hpp).
#if (ALIBI_PASS == 0 && !defined(ALIBI_ISA_OPS_HPP_0)) || (ALIBI_PASS == 1 && !defined(ALIBI_ISA_OPS_HPP_1)) || \
    (ALIBI_PASS == 2 && !defined(ALIBI_ISA_OPS_HPP_2))
#if ALIBI_PASS == 0
#define ALIBI_ISA_OPS_HPP_0
#elif ALIBI_PASS == 1
#define ALIBI_ISA_OPS_HPP_1
#else
#define ALIBI_ISA_OPS_HPP_2
#endif
#include "alibi/detail/config.hpp"
#include "alibi/isa/tags.hpp"

ALIBI_NAMESPACE_BEGIN
namespace simd {
template <class Isa>
struct Ops;
}  // namespace simd
ALIBI_NAMESPACE_END

#include "alibi/isa/avx2.hpp"
#include "alibi/isa/avx512.hpp"
#include "alibi/isa/scalar.hpp"
#endif  // per-target guard
