// The register-blocked micro-kernels of the attention kernel (kernels/unit_worker.hpp), written once
// over Ops<Isa>: the Q.K tile (rows in vector lanes, Note [rows in lanes]) with its epilogue, and the P.V
// tile. Their shapes come from the ISA's register budget (Ops::registers, qk_row_vecs, pv_rows x pv_vecs);
// Ops::pin keeps the reused operands in registers.
#include "alibi/detail/config.hpp"
// Per-target header: no #pragma once (Note [per-target headers] in detail/config.hpp).
#if (ALIBI_PASS == 0 && !defined(ALIBI_KERNELS_TILES_HPP_0)) || \
    (ALIBI_PASS == 1 && !defined(ALIBI_KERNELS_TILES_HPP_1)) || \
    (ALIBI_PASS == 2 && !defined(ALIBI_KERNELS_TILES_HPP_2))
#if ALIBI_PASS == 0
#define ALIBI_KERNELS_TILES_HPP_0
#elif ALIBI_PASS == 1
#define ALIBI_KERNELS_TILES_HPP_1
#else
#define ALIBI_KERNELS_TILES_HPP_2
#endif
#include <cstdint>
#include <type_traits>

#include "alibi/detail/config.hpp"
#include "alibi/isa/ops.hpp"
#include "alibi/kernels/elements.hpp"

ALIBI_NAMESPACE_BEGIN
namespace kernels {

// Calls f(std::integral_constant<int, n>) for a runtime n in [1, N], so tails get their own unrolled code.
template <int N, class F>
ALIBI_ALWAYS_INLINE void with_count(int n, F&& f) {
  if constexpr (N >= 1) {
    if (n == N) {
      f(std::integral_constant<int, N>{});
      return;
    }
    with_count<N - 1>(n, f);
  }
}

// acc[r][c] += scalars[r * scalar_stride] * vectors[c*W ..]: the rank-1 update both tiles are made of
// (Q.K: key elements times query vectors; P.V: probabilities times value vectors). The vectors may be
// 16-bit elements, widened exactly as they are loaded.
template <class Isa, int R, int C, class Element = float>
ALIBI_ALWAYS_INLINE void rank1_update(typename simd::Ops<Isa>::vec (&acc)[R][C], const float* scalars,
                                      std::int64_t scalar_stride, const Element* vectors) {
  using O = simd::Ops<Isa>;
  using vec = typename O::vec;
  constexpr int W = O::width;
  vec v[C];
#pragma GCC unroll 8
  for (int c = 0; c < C; ++c) {
    vec x = Elements<Isa, Element>::load(vectors + c * W);
    O::pin(x);  // on a temporary: pinning the array element would keep the array in memory
    v[c] = x;
  }
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) {
    const vec s = O::set1(scalars[r * scalar_stride]);
#pragma GCC unroll 8
    for (int c = 0; c < C; ++c) acc[r][c] = O::fma(s, v[c], acc[r][c]);
  }
}

// S^T[j][c*W ..] = epilogue(sum_d K[j][d] * Qs^T[d][c*W ..], j0 + j, c, overflow[c]) for J keys and C row
// vectors of one kv head; block_max[c] folds in the maximum of what is stored. The epilogue turns
// overflow[c] NaN in the lanes whose dot product came out inf or NaN and matters.
template <class Isa, int J, int C, class Epilogue>
ALIBI_ALWAYS_INLINE void qk_tile(const float* keys, std::int64_t key_stride, const float* qt, std::int64_t qt_stride,
                                 int dim, float* st, std::int64_t st_stride, int j0, const Epilogue& epilogue,
                                 typename simd::Ops<Isa>::vec* block_max, typename simd::Ops<Isa>::vec* overflow) {
  using O = simd::Ops<Isa>;
  using vec = typename O::vec;
  constexpr int W = O::width;
  vec acc[J][C];
#pragma GCC unroll 16
  for (int j = 0; j < J; ++j)
#pragma GCC unroll 4
    for (int c = 0; c < C; ++c) acc[j][c] = O::zero();
  for (int d = 0; d < dim; ++d) rank1_update<Isa, J, C>(acc, keys + d, key_stride, qt + d * qt_stride);
#pragma GCC unroll 4
  for (int c = 0; c < C; ++c) {
    vec m = block_max[c], bad = overflow[c];
#pragma GCC unroll 16
    for (int j = 0; j < J; ++j) {
      const vec x = epilogue(acc[j][c], j0 + j, c, bad);
      O::store(st + j * st_stride + c * W, x);
      m = O::max(m, x);
    }
    block_max[c] = m;
    overflow[c] = bad;
  }
}

// Keys per Q.K tile for C row vectors: as many as the register file holds next to the C query vectors
// and the broadcast, at most 8 (enough independent FMA chains to hide the latency).
template <class Isa>
constexpr int qk_tile_keys(int row_vecs) {
  const int fit = (simd::Ops<Isa>::registers - 1 - row_vecs) / row_vecs;
  return fit < 8 ? fit : 8;
}

// O[r][dv0*W ..] += sum_{j in [ja, jb)} p[j * p_stride + r * p_row_stride] * V[j][dv0*W ..] for NR rows and NV
// dimension vectors (P^T of the packed tiles: p_row_stride 1; the streaming decode's P: p_stride 1).
// V rows are whole vectors from dv0*W on (packed rows, or the caller's rows when dv0*W + NV*W <= head_dim).
// `rows(j)`: the first element of V row j (a packed block, or K/V rows where they lie, possibly in pages).
template <class Isa, int NR, int NV, class Element, class Rows>
ALIBI_ALWAYS_INLINE void pv_tile_rows(const float* p, std::int64_t p_stride, std::int64_t p_row_stride,
                                      const Rows& rows, int ja, int jb, float* o, std::int64_t o_stride, int dv0) {
  using O = simd::Ops<Isa>;
  using vec = typename O::vec;
  constexpr int W = O::width;
  vec acc[NR][NV];
#pragma GCC unroll 16
  for (int r = 0; r < NR; ++r)
#pragma GCC unroll 8
    for (int c = 0; c < NV; ++c) acc[r][c] = O::load(o + r * o_stride + (dv0 + c) * W);
      // Two keys a step: the loop's own counting is a fifth of a narrow tile's instructions.
#pragma GCC unroll 2
  for (int j = ja; j < jb; ++j)
    rank1_update<Isa, NR, NV, Element>(acc, p + j * p_stride, p_row_stride, rows(j) + dv0 * W);
#pragma GCC unroll 16
  for (int r = 0; r < NR; ++r)
#pragma GCC unroll 8
    for (int c = 0; c < NV; ++c) O::store(o + r * o_stride + (dv0 + c) * W, acc[r][c]);
}

// V rows value_stride elements apart.
template <class Isa, int NR, int NV, class Element = float>
ALIBI_ALWAYS_INLINE void pv_tile(const float* p, std::int64_t p_stride, const Element* values,
                                 std::int64_t value_stride, int ja, int jb, float* o, std::int64_t o_stride, int dv0) {
  pv_tile_rows<Isa, NR, NV, Element>(
      p, p_stride, 1, [values, value_stride](int j) { return values + j * value_stride; }, ja, jb, o, o_stride, dv0);
}

}  // namespace kernels
ALIBI_NAMESPACE_END
#endif  // per-target guard
