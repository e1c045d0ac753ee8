// The register-blocked micro-kernels of the backward pass (kernels/backward_call.hpp), written once over
// Ops<Isa> like the forward's (kernels/tiles.hpp, whose rank-1 update they share): the logit and dP tiles
// with rows in vector lanes, and the accumulating tile every gradient product is made of.
#include "alibi/detail/config.hpp"
// Per-target header: no #pragma once (Note [per-target headers] in detail/config.hpp).
#if (ALIBI_PASS == 0 && !defined(ALIBI_KERNELS_BACKWARD_TILES_HPP_0)) || \
    (ALIBI_PASS == 1 && !defined(ALIBI_KERNELS_BACKWARD_TILES_HPP_1)) || \
    (ALIBI_PASS == 2 && !defined(ALIBI_KERNELS_BACKWARD_TILES_HPP_2))
#if ALIBI_PASS == 0
#define ALIBI_KERNELS_BACKWARD_TILES_HPP_0
#elif ALIBI_PASS == 1
#define ALIBI_KERNELS_BACKWARD_TILES_HPP_1
#else
#define ALIBI_KERNELS_BACKWARD_TILES_HPP_2
#endif
#include <cstdint>

#include "alibi/detail/config.hpp"
#include "alibi/isa/ops.hpp"
#include "alibi/kernels/tiles.hpp"

ALIBI_NAMESPACE_BEGIN
namespace kernels {

// The backward's register blocking, from the ISA's budget: a row block is the C row vectors of one Q.K
// tile (rows in lanes), J keys per logit tile, and NR x NV accumulators for the gradient products.
template <class Isa>
struct BackwardBlocking {
  static constexpr int W = simd::Ops<Isa>::width;
  static constexpr int C = simd::Ops<Isa>::qk_row_vecs;
  static constexpr int R = C * W;  // query rows per block
  static constexpr int J = qk_tile_keys<Isa>(C);
  static constexpr int NR = simd::Ops<Isa>::pv_rows, NV = simd::Ops<Isa>::pv_vecs;
};

// acc[j][c] = sum_d rows[j * row_stride + d] * t[d * t_stride + c * W]: J rows (keys) against C vectors of
// lanes (query rows) of a transposed operand.
template <class Isa, int J, int C>
ALIBI_ALWAYS_INLINE void lanes_tile(const float* rows, std::int64_t row_stride, const float* t, std::int64_t t_stride,
                                    int dim, typename simd::Ops<Isa>::vec (&acc)[J][C]) {
  using O = simd::Ops<Isa>;
#pragma GCC unroll 16
  for (int j = 0; j < J; ++j)
#pragma GCC unroll 4
    for (int c = 0; c < C; ++c) acc[j][c] = O::zero();
  for (int d = 0; d < dim; ++d) rank1_update<Isa, J, C>(acc, rows + d, row_stride, t + d * t_stride);
}

// out[r][c*W ..] += sum_{t < steps} scalars[t * step_stride + r * out_stride_s] * vecs[t * vec_stride + c*W ..]
// for NR output rows and NV vectors.
template <class Isa, int NR, int NV>
ALIBI_ALWAYS_INLINE void accumulate_tile(float* out, std::int64_t out_stride, const float* scalars,
                                         std::int64_t scalar_row_stride, std::int64_t step_stride, const float* vecs,
                                         std::int64_t vec_stride, std::int64_t steps) {
  using O = simd::Ops<Isa>;
  using vec = typename O::vec;
  constexpr int W = O::width;
  vec acc[NR][NV];
#pragma GCC unroll 16
  for (int r = 0; r < NR; ++r)
#pragma GCC unroll 8
    for (int c = 0; c < NV; ++c) acc[r][c] = O::load(out + r * out_stride + c * W);
  for (std::int64_t t = 0; t < steps; ++t) {
    const float* x = vecs + t * vec_stride;
    vec v[NV];
#pragma GCC unroll 8
    for (int c = 0; c < NV; ++c) {
      vec y = O::load(x + c * W);
      O::pin(y);
      v[c] = y;
    }
    const float* s = scalars + t * step_stride;
#pragma GCC unroll 16
    for (int r = 0; r < NR; ++r) {
      const vec b = O::set1(s[r * scalar_row_stride]);
#pragma GCC unroll 8
      for (int c = 0; c < NV; ++c) acc[r][c] = O::fma(b, v[c], acc[r][c]);
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < NR; ++r)
#pragma GCC unroll 8
    for (int c = 0; c < NV; ++c) O::store(out + r * out_stride + c * W, acc[r][c]);
}

// accumulate_tile over `rows` output rows and `dim` floats of padded rows (a multiple of the width):
// tiles of NR rows x NV vectors, tails unrolled on their own.
template <class Isa>
void accumulate_rows(float* out, std::int64_t out_stride, int rows, const float* scalars,
                     std::int64_t scalar_row_stride, std::int64_t step_stride, const float* vecs,
                     std::int64_t vec_stride, std::int64_t steps, std::int64_t dim) {
  using B = BackwardBlocking<Isa>;
  constexpr int W = B::W;
  const int vectors = static_cast<int>(dim / W);
  for (int r0 = 0; r0 < rows; r0 += B::NR) {
    const int nr = rows - r0 < B::NR ? rows - r0 : B::NR;
    with_count<B::NR>(nr, [&](auto nrows) {
      constexpr int NRc = decltype(nrows)::value;
      for (int v0 = 0; v0 < vectors; v0 += B::NV) {
        const int nv = vectors - v0 < B::NV ? vectors - v0 : B::NV;
        with_count<B::NV>(nv, [&](auto nvecs) {
          accumulate_tile<Isa, NRc, decltype(nvecs)::value>(out + r0 * out_stride + v0 * W, out_stride,
                                                            scalars + r0 * scalar_row_stride, scalar_row_stride,
                                                            step_stride, vecs + v0 * W, vec_stride, steps);
        });
      }
    });
  }
}

}  // namespace kernels
ALIBI_NAMESPACE_END
#endif  // per-target guard
