// The backward pass of ALiBi attention (issue 14): dq, dk, dv and the gradients of the slopes, from the
// forward's out and lse, without a q_len x kv_len matrix. alibi::attention_backward and
// alibi::dispatch::attention_backward both land here. See Note [deterministic backward].
#include "alibi/detail/config.hpp"
// Per-target header: no #pragma once (Note [per-target headers] in detail/config.hpp).
#if (ALIBI_PASS == 0 && !defined(ALIBI_KERNELS_BACKWARD_CALL_HPP_0)) || \
    (ALIBI_PASS == 1 && !defined(ALIBI_KERNELS_BACKWARD_CALL_HPP_1)) || \
    (ALIBI_PASS == 2 && !defined(ALIBI_KERNELS_BACKWARD_CALL_HPP_2))
#if ALIBI_PASS == 0
#define ALIBI_KERNELS_BACKWARD_CALL_HPP_0
#elif ALIBI_PASS == 1
#define ALIBI_KERNELS_BACKWARD_CALL_HPP_1
#else
#define ALIBI_KERNELS_BACKWARD_CALL_HPP_2
#endif
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "alibi/detail/buffer.hpp"
#include "alibi/detail/problem.hpp"
#include "alibi/detail/threading.hpp"
#include "alibi/detail/validate_backward.hpp"
#include "alibi/isa/exp.hpp"
#include "alibi/isa/ops.hpp"
#include "alibi/kernels/backward_tiles.hpp"
#include "alibi/kernels/tiles.hpp"
#include "alibi/types.hpp"

ALIBI_NAMESPACE_BEGIN
namespace kernels {

// Note [deterministic backward]: FlashAttention-2's backward, in one pass whose units never share a write.
//   P_ij = exp(S_ij - lse_i) with S = scale q.k + bias recomputed, D_i = dO_i . O_i = sum_j P_ij dO_i . v_j,
//   dS_ij = P_ij (dO_i . v_j - D_i), dV_j = sum_i P_ij dO_i, dK_j = scale sum_i dS_ij q_i,
//   dQ_i = scale sum_j dS_ij k_j, dm_h = sum_ij dS_ij * (-distance).
// A unit is (batch, kv head, split): it owns dQ and the slope partials of the query heads of its kv head
// for the row blocks of its split, and one accumulator of dK and dV for every key of the kv head. A row
// block (BackwardBlocking::R rows of one query head, rows in vector lanes) computes S and dP once for all
// the keys its rows see (10 x head_dim FLOPs per pair in all), keeping P and dP for up to
// kBackwardChunkKeys keys: first the row statistics (below), then dS and the three gradient products from
// the kept tiles. Longer rows recompute S and dP chunk by chunk in the second sweep (14 x head_dim), so the
// memory per thread stays O(R x kBackwardChunkKeys + kv_len x head_dim). The splits' dK and dV are added
// in split order at the end, the slope partials in unit order. Units depend on the shape only and each
// unit's arithmetic is sequential, so the result is bitwise the same for any num_threads.
//
// Frames (Note [nearest-key frame]): the forward's lse includes the constant -m |p - nearest| its kernel
// logits leave out; the backward recomputes the logits in the same frame (bias from the distance to the
// row's nearest visible key) and subtracts that constant from lse in double, so P is exact however far
// the row is from its keys. The slope gradient uses the same relative distance: the dropped constant
// multiplies sum_j dS_ij, which is exactly zero (softmax ignores a constant per row).
//
// Note [renormalised rows]: lse is fp32, so exp(S - lse) carries one relative error per row of up to
// |lse| * 6e-8 (2e-6 for |lse| ~ 30), the same for every key of the row. The naive implementation
// normalises each row by its own sum and has no such error; where the row's terms cancel (dm_h sums
// dS_ij * distance, and sum_j dS_ij = 0) that shared error dominates (measured: 7x the naive error of dm_h).
// So the first sweep sums exp(S - lse) over each row's visible keys (compensated: Note [compensated row
// sums]) and every P is multiplied by the inverse of that sum: lse only keeps exp in range.
//
// Note [centred distances]: sum_j dS_ij = 0 exactly, so any constant c_i may be added to the row's distances in
// dm_h = sum_ij dS_ij * (-distance_ij). The backward's D_i comes from the forward's out, whose rounding differs
// from the recomputed P's; D_i's error then enters dm_h multiplied by sum_j P_ij distance_ij, tens to thousands
// (measured: up to 15x the naive error, which computes D_i from its own P). With c_i that P-weighted mean
// distance (first sweep) that factor is zero: dm_h = -sum_i Cov_P(dP_i, distance_i). The same argument
// covers the nearest-key frame: distances relative to the frame differ from the absolute ones by a
// constant per row.
//
// Note [consistent D]: D_i = dO_i . O_i in exact arithmetic, but the forward's O was rounded along another
// path (online softmax, its own P) than the recomputed P, and D_i's error then enters every dS_ij of the row
// (measured: dk up to 4x, dm_h up to 11x the naive error, which takes D_i from its own P). So the first
// sweep computes D_i = sum_j P_ij (dO_i . v_j) from the very P and dP the second uses; then sum_j dS_ij
// vanishes to rounding and `out` is only validated.
//
// Note [compensated row sums]: the row statistics (sum of P, its first moment of the distance, D_i) and each
// row's slope term sum up to kv_len terms per lane in fp32; each tile's J terms are added plainly and the
// tile sum enters the running sum through an error-free two-sum, so a row's sums are within a few fp32
// roundings of exact whatever kv_len (a plain fp32 sum drifts by up to kv_len roundings).
//
// Skipping: the backward computes every visible pair. The forward's lse leaves out the mass it skipped
// (at most skip_tolerance of the row's largest term), so the recomputed P of the other keys is high by at
// most that fraction before renormalisation and exact after it (the gradient of the unskipped softmax).
constexpr std::int64_t kBackwardChunkKeys = 4096;  // keys whose P and dP a row block keeps between its sweeps
// Rows are split until a call has this many units. Each split packs its kv head again and keeps one more
// dK and dV (measured: 2 splits of 8 heads, 2048 tokens, cost 10 %), so only shapes with few heads split.
constexpr std::int64_t kBackwardMinUnits = 8;
constexpr std::int64_t kBackwardKeyBlock = 64;  // keys per block of gradient products

// sum + comp += x, with the rounding error of the addition kept in comp (Knuth's two-sum, exact).
template <class Isa>
ALIBI_ALWAYS_INLINE void compensated_add(float* sum, float* comp, typename simd::Ops<Isa>::vec x) {
  using O = simd::Ops<Isa>;
  const auto a = O::load(sum);
  const auto s = O::add(a, x);
  const auto bp = O::sub(s, a);
  const auto err = O::add(O::sub(a, O::sub(s, bp)), O::sub(x, bp));
  O::store(sum, s);
  O::store(comp, O::add(O::load(comp), err));
}

// One unit's per-thread buffers (sized once per thread).
struct BackwardScratch {
  detail::Buffer<float> qt, dot;  // [head_dim][R]: scale q and dO of the block's rows, transposed
  detail::Buffer<float> qs, dos;  // [R][padded head_dim]: the same, row-major
  detail::Buffer<float> p, ds;    // [chunk][R]: exp(S - lse) then P; dP then dS
  detail::Buffer<float> dq;       // [R][padded head_dim]
  detail::Buffer<float> k, v;     // [kv_len][padded head_dim]: the unit's keys and values, packed
  detail::Buffer<float> dk, dv;   // [kv_len][padded head_dim]: the unit's accumulators
  detail::Buffer<float> lanes;    // per-row constants and sums, kLanes arrays of R
};

// The arrays of BackwardScratch::lanes, R floats each.
enum BackwardLane : int {
  kLaneLse,  // lse in the row's frame
  kLaneLo,   // visible keys [lo, hi) and the frame's key, relative to the chunk
  kLaneHi,
  kLaneNear,
  kLaneSum,  // compensated sums: sum of P, of P * (-distance), of P * dP, of the slope terms
  kLaneSumC,
  kLaneMoment,
  kLaneMomentC,
  kLaneFlow,
  kLaneFlowC,
  kLaneSlope,
  kLaneSlopeC,
  kLaneNorm,  // 1 / sum, D_i, the P-weighted mean of -distance
  kLaneD,
  kLaneCenter,
  kLanes
};

template <class Isa>
class BackwardUnit {
  using O = simd::Ops<Isa>;
  using vec = typename O::vec;
  using B = BackwardBlocking<Isa>;
  static constexpr int W = B::W, C = B::C, R = B::R, J = B::J;

 public:
  BackwardUnit(const detail::Problem& pr, const float* lse, const float* dout, const AttentionGrads& grads)
      : pr_(pr), lse_(lse), dout_(dout), grads_(grads), hd_(pr.head_dim), hdp_((pr.head_dim + W - 1) / W * W) {
    const std::int64_t chunk = pr.kv_len < kBackwardChunkKeys ? pr.kv_len : kBackwardChunkKeys;
    const auto f = [](std::int64_t n) { return detail::Buffer<float>(static_cast<std::size_t>(n)); };
    s_.qt = f(hd_ * R);
    s_.dot = f(hd_ * R);
    s_.qs = f(R * hdp_);
    s_.dos = f(R * hdp_);
    s_.p = f(chunk * R);
    s_.ds = f(chunk * R);
    s_.dq = f(R * hdp_);
    s_.k = f(pr.kv_len * hdp_);
    s_.v = f(pr.kv_len * hdp_);
    if (grads.dk != nullptr) s_.dk = f(pr.kv_len * hdp_);
    if (grads.dv != nullptr) s_.dv = f(pr.kv_len * hdp_);
    s_.lanes = f(kLanes * R);
  }

  // Row blocks split, split + splits, ... of kv head g in batch b, in that order and the group's heads in
  // order within a block; the slope partials of the group's heads go to slope_sums[0 .. group), dK and dV
  // to the accumulators dk(), dv() ([kv_len][padded head_dim]; null when not asked for).
  void run(std::int64_t b, int g, std::int64_t split, std::int64_t splits, double* slope_sums) {
    for (detail::Buffer<float>* acc : {&s_.dk, &s_.dv}) std::fill(acc->begin(), acc->end(), 0.0f);
    // Packed rows: the products stream keys and values at a stride of whole vectors, not num_kv_heads rows.
    const std::int64_t kv_stride = static_cast<std::int64_t>(pr_.num_kv_heads) * hd_;
    const float* k = static_cast<const float*>(pr_.k) + (b * pr_.kv_len * pr_.num_kv_heads + g) * hd_;
    const float* v = static_cast<const float*>(pr_.v) + (b * pr_.kv_len * pr_.num_kv_heads + g) * hd_;
    for (std::int64_t j = 0; j < pr_.kv_len; ++j) {
      float* kj = s_.k.data() + j * hdp_;
      float* vj = s_.v.data() + j * hdp_;
      std::copy(k + j * kv_stride, k + j * kv_stride + hd_, kj);
      std::copy(v + j * kv_stride, v + j * kv_stride + hd_, vj);
      std::fill(kj + hd_, kj + hdp_, 0.0f);
      std::fill(vj + hd_, vj + hdp_, 0.0f);
    }
    const int group = pr_.num_heads / pr_.num_kv_heads;
    for (int x = 0; x < group; ++x) slope_sums[x] = 0.0;
    const std::int64_t blocks = (pr_.q_len + R - 1) / R;
    for (std::int64_t block = split; block < blocks; block += splits)
      for (int x = 0; x < group; ++x) slope_sums[x] += row_block(b, g * group + x, block * R);
  }
  const float* dk() const { return s_.dk.data(); }
  const float* dv() const { return s_.dv.data(); }
  std::int64_t padded_dim() const { return hdp_; }

 private:
  float* lane(BackwardLane which) { return s_.lanes.data() + which * R; }

  // One block of rows [i0, i0 + R) of head h: its dq rows and its slope term.
  double row_block(std::int64_t b, int h, std::int64_t i0) {
    const int rows = static_cast<int>(pr_.q_len - i0 < R ? pr_.q_len - i0 : R);
    const float scale = pr_.scale;
    // The rows' visible keys and frames; [lo_all, hi_all) covers every row's keys.
    std::int64_t lo[R], hi[R], nearest[R];
    std::int64_t lo_all = pr_.kv_len, hi_all = 0;
    for (int r = 0; r < R; ++r) {
      lo[r] = hi[r] = nearest[r] = 0;
      lane(kLaneLse)[r] = 0.0f;
      if (r >= rows) continue;
      const std::int64_t pos = pr_.q_pos0 + i0 + r;
      detail::visible_keys(pr_, pos, lo[r], hi[r]);
      const float row_lse = lse_[((b * pr_.q_len + i0 + r) * pr_.num_heads + h)];
      if (lo[r] >= hi[r] || !(row_lse > -HUGE_VALF)) {  // sees no key (lse -inf): contributes nothing
        lo[r] = hi[r] = 0;
        continue;
      }
      nearest[r] = detail::nearest_visible_key(pos, lo[r], hi[r]);
      lane(kLaneLse)[r] =
          static_cast<float>(static_cast<double>(row_lse) - detail::dropped_bias(pr_.slopes[h], pos, lo[r], hi[r]));
      lo_all = lo[r] < lo_all ? lo[r] : lo_all;
      hi_all = hi[r] > hi_all ? hi[r] : hi_all;
    }
    const bool want_dq = grads_.dq != nullptr;
    float* dq_out = want_dq ? grads_.dq + ((b * pr_.q_len + i0) * pr_.num_heads + h) * hd_ : nullptr;
    const std::int64_t q_stride = static_cast<std::int64_t>(pr_.num_heads) * hd_;
    if (lo_all >= hi_all) {
      if (want_dq)
        for (int r = 0; r < rows; ++r)
          for (int d = 0; d < hd_; ++d) dq_out[r * q_stride + d] = 0.0f;
      return 0.0;
    }

    // The block's q (scaled) and dO, row-major for dK and dV (rows padded with zeros), then transposed for
    // the lanes tiles from there (the caller's rows are num_heads rows apart).
    const float* q = pr_.q + ((b * pr_.q_len + i0) * pr_.num_heads + h) * hd_;
    const float* dout = dout_ + ((b * pr_.q_len + i0) * pr_.num_heads + h) * hd_;
    for (int r = 0; r < R; ++r) {
      float* qr = s_.qs.data() + r * hdp_;
      float* dr = s_.dos.data() + r * hdp_;
      const int n = r < rows ? hd_ : 0;
      for (int d = 0; d < n; ++d) qr[d] = scale * q[r * q_stride + d];
      for (int d = 0; d < n; ++d) dr[d] = dout[r * q_stride + d];
      std::fill(qr + n, qr + hdp_, 0.0f);
      std::fill(dr + n, dr + hdp_, 0.0f);
    }
    for (int d = 0; d < hd_; ++d)
      for (int r = 0; r < R; ++r) {
        s_.qt[static_cast<std::size_t>(d * R + r)] = s_.qs[static_cast<std::size_t>(r * hdp_ + d)];
        s_.dot[static_cast<std::size_t>(d * R + r)] = s_.dos[static_cast<std::size_t>(r * hdp_ + d)];
      }
    for (BackwardLane x :
         {kLaneSum, kLaneSumC, kLaneMoment, kLaneMomentC, kLaneFlow, kLaneFlowC, kLaneSlope, kLaneSlopeC})
      for (int r = 0; r < R; ++r) lane(x)[r] = 0.0f;

    // Sweep 1: the row statistics (Notes [renormalised rows], [centred distances], [consistent D]).
    const std::int64_t span = hi_all - lo_all;
    const bool kept = span <= kBackwardChunkKeys;
    for (std::int64_t c0 = lo_all; c0 < hi_all; c0 += kBackwardChunkKeys)
      logits(h, c0, (hi_all - c0 < kBackwardChunkKeys ? hi_all : c0 + kBackwardChunkKeys), lo, hi, nearest, true);
    for (int r = 0; r < R; ++r) {
      const float sum = lane(kLaneSum)[r] + lane(kLaneSumC)[r];
      const bool any = sum > 0.0f;
      lane(kLaneNorm)[r] = any ? 1.0f / sum : 0.0f;
      lane(kLaneD)[r] = any ? (lane(kLaneFlow)[r] + lane(kLaneFlowC)[r]) / sum : 0.0f;
      lane(kLaneCenter)[r] = any ? (lane(kLaneMoment)[r] + lane(kLaneMomentC)[r]) / sum : 0.0f;
    }

    // Sweep 2: dS and the gradient products.
    if (want_dq)
      for (std::int64_t n = 0; n < R * hdp_; ++n) s_.dq[static_cast<std::size_t>(n)] = 0.0f;
    for (std::int64_t c0 = lo_all; c0 < hi_all; c0 += kBackwardChunkKeys) {
      const std::int64_t c1 = hi_all - c0 < kBackwardChunkKeys ? hi_all : c0 + kBackwardChunkKeys;
      if (!kept) logits(h, c0, c1, lo, hi, nearest, false);
      gradients(c0, c1, rows);
    }

    double slope = 0.0;
    for (int r = 0; r < rows; ++r)
      slope += static_cast<double>(lane(kLaneSlope)[r]) + static_cast<double>(lane(kLaneSlopeC)[r]);
    if (want_dq)
      for (int r = 0; r < rows; ++r)
        for (int d = 0; d < hd_; ++d) dq_out[r * q_stride + d] = scale * s_.dq[static_cast<std::size_t>(r * hdp_ + d)];
    return slope;
  }

  // Keys [c0, c1) of the block: p = exp(S - lse) (0 where a row does not see the key) and ds = dP, both
  // [key - c0][R]; with `stats`, their sums into the lanes (Note [compensated row sums]).
  void logits(int h, std::int64_t c0, std::int64_t c1, const std::int64_t* lo, const std::int64_t* hi,
              const std::int64_t* nearest, bool stats) {
    const std::int64_t n = c1 - c0;
    for (int r = 0; r < R; ++r) {  // relative to the chunk: exact small integers in fp32
      const auto clamp = [n](std::int64_t x) { return static_cast<float>(x < -1 ? -1 : (x > n + 1 ? n + 1 : x)); };
      const bool any = lo[r] < hi[r];
      lane(kLaneLo)[r] = any ? clamp(lo[r] - c0) : -1.0f;
      lane(kLaneHi)[r] = any ? clamp(hi[r] - c0) : -1.0f;
      lane(kLaneNear)[r] = static_cast<float>(nearest[r] - c0);
    }
    const float* keys = s_.k.data() + c0 * hdp_;
    const float* values = s_.v.data() + c0 * hdp_;
    const vec slope = O::set1(pr_.slopes[h]);
    for (std::int64_t j0 = 0; j0 < n; j0 += J) {
      const int nj = static_cast<int>(n - j0 < J ? n - j0 : J);
      with_count<J>(nj, [&](auto count) {
        constexpr int NJ = decltype(count)::value;
        vec s[NJ][C], dp[NJ][C];
        lanes_tile<Isa, NJ, C>(keys + j0 * hdp_, hdp_, s_.qt.data(), R, hd_, s);
        lanes_tile<Isa, NJ, C>(values + j0 * hdp_, hdp_, s_.dot.data(), R, hd_, dp);
#pragma GCC unroll 4
        for (int c = 0; c < C; ++c) {
          const vec lse = O::load(lane(kLaneLse) + c * W), lo_c = O::load(lane(kLaneLo) + c * W),
                    hi_c = O::load(lane(kLaneHi) + c * W), near = O::load(lane(kLaneNear) + c * W);
          vec sum = O::zero(), moment = O::zero(), flow = O::zero();
#pragma GCC unroll 16
          for (int j = 0; j < NJ; ++j) {
            const vec key = O::set1(static_cast<float>(j0 + j));
            const vec neg_distance = O::sub(O::zero(), O::abs(O::sub(key, near)));
            vec e = simd::exp<Isa>(O::sub(O::fma(slope, neg_distance, s[j][c]), lse));
            e = O::select_lt(key, lo_c, O::zero(), O::select_lt(key, hi_c, e, O::zero()));
            const std::int64_t at = (j0 + j) * R + c * W;
            O::store(s_.p.data() + at, e);
            O::store(s_.ds.data() + at, dp[j][c]);
            if (stats) {
              sum = O::add(sum, e);
              moment = O::fma(e, neg_distance, moment);
              flow = O::fma(e, dp[j][c], flow);
            }
          }
          if (stats) {
            compensated_add<Isa>(lane(kLaneSum) + c * W, lane(kLaneSumC) + c * W, sum);
            compensated_add<Isa>(lane(kLaneMoment) + c * W, lane(kLaneMomentC) + c * W, moment);
            compensated_add<Isa>(lane(kLaneFlow) + c * W, lane(kLaneFlowC) + c * W, flow);
          }
        }
      });
    }
  }

  // Keys [c0, c1) of the block, from logits(): P and dS in place, the slope terms, then dV += P^T dO,
  // dK += dS^T (scale q), dQ += dS K (scaled when written), kBackwardKeyBlock keys at a time so the keys,
  // P and dS a block of products reads stay in the first cache levels.
  void gradients(std::int64_t c0, std::int64_t c1, int rows) {
    for (std::int64_t k0 = 0; k0 < c1 - c0; k0 += kBackwardKeyBlock) {
      const std::int64_t k1 = c1 - c0 - k0 < kBackwardKeyBlock ? c1 - c0 : k0 + kBackwardKeyBlock;
#pragma GCC unroll 4
      for (int c = 0; c < C; ++c) {
        const vec norm = O::load(lane(kLaneNorm) + c * W), d = O::load(lane(kLaneD) + c * W),
                  center = O::load(lane(kLaneCenter) + c * W), near = O::load(lane(kLaneNear) + c * W);
        vec slope = O::zero();
        for (std::int64_t j = k0; j < k1; ++j) {
          const std::int64_t at = j * R + c * W;
          const vec p = O::mul(O::load(s_.p.data() + at), norm);
          const vec ds = O::mul(p, O::sub(O::load(s_.ds.data() + at), d));
          O::store(s_.p.data() + at, p);
          O::store(s_.ds.data() + at, ds);
          const vec neg_distance = O::sub(O::zero(), O::abs(O::sub(O::set1(static_cast<float>(j)), near)));
          slope = O::fma(ds, O::sub(neg_distance, center), slope);  // Note [centred distances]
        }
        compensated_add<Isa>(lane(kLaneSlope) + c * W, lane(kLaneSlopeC) + c * W, slope);
      }
      const int keys = static_cast<int>(k1 - k0);
      const float* p = s_.p.data() + k0 * R;
      const float* ds = s_.ds.data() + k0 * R;
      if (grads_.dv != nullptr)
        accumulate_rows<Isa>(s_.dv.data() + (c0 + k0) * hdp_, hdp_, keys, p, R, 1, s_.dos.data(), hdp_, rows, hdp_);
      if (grads_.dk != nullptr)
        accumulate_rows<Isa>(s_.dk.data() + (c0 + k0) * hdp_, hdp_, keys, ds, R, 1, s_.qs.data(), hdp_, rows, hdp_);
      if (grads_.dq != nullptr)
        accumulate_rows<Isa>(s_.dq.data(), hdp_, rows, ds, 1, R, s_.k.data() + (c0 + k0) * hdp_, hdp_, keys, hdp_);
    }
  }

  const detail::Problem& pr_;
  const float* lse_;
  const float* dout_;
  const AttentionGrads& grads_;
  int hd_;
  std::int64_t hdp_;
  BackwardScratch s_;
};

template <class Isa>
void attention_backward(const float* q, const float* k, const float* v, const float* out, const float* lse,
                        const float* dout, const AttentionGrads& grads, const AttentionShape& shape,
                        const AttentionOptions& options) {
  detail::Buffer<float> default_slopes;
  const detail::Problem pr =
      detail::validate_attention_backward(q, k, v, out, lse, dout, grads, shape, options, default_slopes);
  const int hd = pr.head_dim;
  const std::int64_t rows = pr.batch * pr.q_len * pr.num_heads;
  const std::int64_t kv_count = pr.batch * pr.kv_len * pr.num_kv_heads * hd;
  if (rows == 0 || pr.kv_len == 0) {  // no pair: every gradient asked for is zero
    if (grads.dq != nullptr)
      for (std::int64_t n = 0; n < rows * hd; ++n) grads.dq[n] = 0.0f;
    for (float* g : {grads.dk, grads.dv})
      if (g != nullptr)
        for (std::int64_t n = 0; n < kv_count; ++n) g[n] = 0.0f;
    if (grads.dslopes != nullptr)
      for (int h = 0; h < pr.num_heads; ++h) grads.dslopes[h] = 0.0f;
    return;
  }

  // Units: (batch, kv head, split), the splits taking every splits-th row block (balanced under a causal
  // mask); the count depends on the shape only (Note [deterministic backward]).
  const std::int64_t heads = pr.batch * pr.num_kv_heads;
  const std::int64_t blocks = (pr.q_len + BackwardBlocking<Isa>::R - 1) / BackwardBlocking<Isa>::R;
  std::int64_t splits = (kBackwardMinUnits + heads - 1) / heads;
  splits = splits < blocks ? splits : blocks;
  const std::int64_t units = heads * splits;
  const int group = pr.num_heads / pr.num_kv_heads;
  const std::int64_t slice = pr.kv_len * hd;  // one (batch, kv head) of dk or dv, packed
  const bool want_dkv = grads.dk != nullptr || grads.dv != nullptr;
  // Splits after the first keep their dK and dV here until every unit is done.
  detail::Buffer<float> later_dk(grads.dk != nullptr ? static_cast<std::size_t>((splits - 1) * heads * slice) : 0),
      later_dv(grads.dv != nullptr ? static_cast<std::size_t>((splits - 1) * heads * slice) : 0);
  detail::Buffer<double> slope_sums(static_cast<std::size_t>(units * group));
  const std::int64_t kv_stride = static_cast<std::int64_t>(pr.num_kv_heads) * hd;
  detail::parallel_for_units(units, pr.num_threads, [&] {
    return [&, unit_state = BackwardUnit<Isa>(pr, lse, dout, grads)](std::int64_t unit) mutable {
      const std::int64_t split = unit % splits, bg = unit / splits;
      const int g = static_cast<int>(bg % pr.num_kv_heads);
      const std::int64_t b = bg / pr.num_kv_heads;
      unit_state.run(b, g, split, splits, slope_sums.data() + unit * group);
      if (!want_dkv) return;
      const std::int64_t hdp = unit_state.padded_dim();
      for (int which = 0; which < 2; ++which) {
        const float* acc = which == 0 ? unit_state.dk() : unit_state.dv();
        float* grad = which == 0 ? grads.dk : grads.dv;
        if (grad == nullptr) continue;
        float* later = (which == 0 ? later_dk : later_dv).data();
        for (std::int64_t j = 0; j < pr.kv_len; ++j)
          std::copy(acc + j * hdp, acc + j * hdp + hd,
                    split == 0 ? grad + (b * pr.kv_len + j) * kv_stride + g * hd
                               : later + ((split - 1) * heads + bg) * slice + j * hd);
      }
    };
  });
  if (splits > 1 && want_dkv) {  // the later splits' dK and dV, added in split order
    detail::parallel_for_units(heads, pr.num_threads, [&] {
      return [&](std::int64_t bg) {
        const int g = static_cast<int>(bg % pr.num_kv_heads);
        const std::int64_t b = bg / pr.num_kv_heads;
        for (int which = 0; which < 2; ++which) {
          float* grad = which == 0 ? grads.dk : grads.dv;
          if (grad == nullptr) continue;
          const float* later = (which == 0 ? later_dk : later_dv).data();
          for (std::int64_t split = 1; split < splits; ++split)
            for (std::int64_t j = 0; j < pr.kv_len; ++j) {
              float* to = grad + (b * pr.kv_len + j) * kv_stride + g * hd;
              const float* from = later + ((split - 1) * heads + bg) * slice + j * hd;
              for (int d = 0; d < hd; ++d) to[d] += from[d];
            }
        }
      };
    });
  }
  if (grads.dslopes != nullptr)
    for (int h = 0; h < pr.num_heads; ++h) {
      double sum = 0.0;
      const int g = h / group;
      for (std::int64_t b = 0; b < pr.batch; ++b)
        for (std::int64_t split = 0; split < splits; ++split)
          sum += slope_sums[static_cast<std::size_t>(((b * pr.num_kv_heads + g) * splits + split) * group + h % group)];
      grads.dslopes[h] = static_cast<float>(sum);
    }
}

}  // namespace kernels
ALIBI_NAMESPACE_END
#endif  // per-target guard
