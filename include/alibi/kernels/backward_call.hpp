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
#include <cmath>
#include <cstdint>

#include "alibi/detail/buffer.hpp"
#include "alibi/detail/problem.hpp"
#include "alibi/detail/threading.hpp"
#include "alibi/detail/validate_backward.hpp"
#include "alibi/isa/ops.hpp"
#include "alibi/types.hpp"

ALIBI_NAMESPACE_BEGIN
namespace kernels {

// Note [deterministic backward]: FlashAttention-2's backward, in two passes that never share a write.
//   P_ij = exp(S_ij - lse_i) with S = scale q.k + bias recomputed, D_i = dO_i . O_i = sum_j P_ij dO_i . v_j,
//   dS_ij = P_ij (dO_i . v_j - D_i), dV_j = sum_i P_ij dO_i, dK_j = scale sum_i dS_ij q_i,
//   dQ_i = scale sum_j dS_ij k_j, dm_h = sum_ij dS_ij * (-distance).
// Pass 1 (key blocks): a unit is (batch, kv head, block of kBackwardKeys keys); it owns dK and dV of those
// keys and sums over every query row that sees them, row by row and, within a row, over the query heads of
// the kv head in head order. Pass 2 (query rows): a unit is (batch, block of kBackwardRows query rows,
// query head); it owns dQ of its rows and one partial of dm_h (in double), and the partials are added in
// unit order at the end. Units depend on the shape only and each unit's arithmetic is sequential, so the
// result is bitwise the same for any num_threads.
//
// Frames (Note [nearest-key frame]): the forward's lse includes the constant -m |p - nearest| its kernel
// logits leave out; the backward recomputes the logits in the same frame (bias from the integer distance
// to the key, relative to the row's nearest visible key) and subtracts that constant from lse in double,
// so P is exact however far the row is from its keys. The slope gradient uses the same relative distance:
// the dropped constant multiplies sum_j dS_ij, which is exactly zero (softmax ignores a constant per row).
//
// Note [renormalised rows]: lse is fp32, so exp(S - lse) carries one relative error per row of up to
// |lse| * 6e-8 (2e-6 for |lse| ~ 30), the same for every key of the row. The naive implementation
// normalises each row by its own sum and has no such error; where the row's terms cancel (dm_h sums
// dS_ij * distance, and sum_j dS_ij = 0) that shared error dominates (measured: 7x the naive error of dm_h).
// So a first pass sums exp(S - lse) over each row's visible keys in double and every P is multiplied by
// the inverse of that sum: lse only keeps exp in range, and P is normalised to fp32 rounding.
//
// Note [centred distances]: sum_j dS_ij = 0 exactly, so any constant c_i may be added to the row's distances in
// dm_h = sum_ij dS_ij * (-distance_ij). The backward's D_i comes from the forward's out, whose rounding differs
// from the recomputed P's; D_i's error then enters dm_h multiplied by sum_j P_ij distance_ij, tens to thousands
// (measured: up to 15x the naive error, which computes D_i from its own P). With c_i that P-weighted mean
// distance (first pass, in double) that factor is zero: dm_h = -sum_i Cov_P(dP_i, distance_i). The same
// argument covers the nearest-key frame: distances relative to the frame differ from the absolute ones by a
// constant per row.
//
// Note [consistent D]: D_i = dO_i . O_i in exact arithmetic, but the forward's O was rounded along another
// path (online softmax, its own P) than the recomputed P, and D_i's error then enters every dS_ij of the row
// (measured: dk up to 4x, dm_h up to 11x the naive error, which takes D_i from its own P). So the first
// pass computes D_i = sum_j P_ij (dO_i . v_j) from the very P and dO.v the later passes use, in double; then
// sum_j dS_ij vanishes to rounding and `out` is only validated. It costs one more dot product per pair.
//
// Skipping: the backward computes every visible pair. The forward's lse leaves out the mass it skipped
// (at most skip_tolerance of the row's largest term), so the recomputed P of the other keys is high by at
// most that fraction before renormalisation and exact after it (the gradient of the unskipped softmax).
constexpr std::int64_t kBackwardKeys = 64;
constexpr std::int64_t kBackwardRows = 64;

template <class Isa>
inline float backward_dot(const float* a, const float* b, int n) {
  using Ops = simd::Ops<Isa>;
  constexpr int W = Ops::width;
  typename Ops::vec acc = Ops::zero();
  int d = 0;
  for (; d + W <= n; d += W) acc = Ops::fma(Ops::load(a + d), Ops::load(b + d), acc);
  if (d < n) acc = Ops::fma(Ops::load_partial(a + d, n - d), Ops::load_partial(b + d, n - d), acc);
  return Ops::reduce_add(acc);
}

// y += alpha x
template <class Isa>
inline void backward_axpy(float alpha, const float* x, float* y, int n) {
  using Ops = simd::Ops<Isa>;
  constexpr int W = Ops::width;
  const typename Ops::vec a = Ops::set1(alpha);
  int d = 0;
  for (; d + W <= n; d += W) Ops::store(y + d, Ops::fma(a, Ops::load(x + d), Ops::load(y + d)));
  if (d < n)
    Ops::store_partial(y + d, Ops::fma(a, Ops::load_partial(x + d, n - d), Ops::load_partial(y + d, n - d)), n - d);
}

// What every pair of a row needs: its visible keys, its frame and its lse in that frame.
struct BackwardRow {
  std::int64_t lo = 0, hi = 0;  // visible keys [lo, hi); empty if the row contributes nothing
  std::int64_t nearest = 0;     // the frame (Note [nearest-key frame])
  float lse = 0.0f;             // lse - dropped constant
  float d = 0.0f;               // D_i = dO_i . O_i
  float norm = 1.0f;            // 1 / sum_j exp(S_ij - lse): Note [renormalised rows]
  float center = 0.0f;          // sum_j P_ij distance_ij: Note [centred distances]
};

template <class Isa>
struct BackwardContext {
  const detail::Problem& pr;
  const float* lse;
  const float* dout;
  const float* d_rows;   // D_i per (batch, row, head)
  const float* norms;    // BackwardRow::norm per (batch, row, head); null while they are computed
  const float* centers;  // BackwardRow::center per (batch, row, head); null while they are computed
  int group;             // query heads per kv head

  const float* q_row(std::int64_t b, std::int64_t i, int h) const {
    return pr.q + ((b * pr.q_len + i) * pr.num_heads + h) * pr.head_dim;
  }
  const float* dout_row(std::int64_t b, std::int64_t i, int h) const {
    return dout + ((b * pr.q_len + i) * pr.num_heads + h) * pr.head_dim;
  }
  const float* k_row(std::int64_t b, std::int64_t j, int g) const {
    return static_cast<const float*>(pr.k) + ((b * pr.kv_len + j) * pr.num_kv_heads + g) * pr.head_dim;
  }
  const float* v_row(std::int64_t b, std::int64_t j, int g) const {
    return static_cast<const float*>(pr.v) + ((b * pr.kv_len + j) * pr.num_kv_heads + g) * pr.head_dim;
  }

  BackwardRow row(std::int64_t b, std::int64_t i, int h) const {
    BackwardRow r;
    const std::int64_t pos = pr.q_pos0 + i;
    detail::visible_keys(pr, pos, r.lo, r.hi);
    const std::int64_t n = (b * pr.q_len + i) * pr.num_heads + h;
    const float row_lse = lse[n];
    if (r.lo >= r.hi || !(row_lse > -HUGE_VALF)) {  // sees no key (lse -inf): contributes nothing
      r.hi = r.lo;
      return r;
    }
    r.nearest = detail::nearest_visible_key(pos, r.lo, r.hi);
    r.lse = static_cast<float>(static_cast<double>(row_lse) - detail::dropped_bias(pr.slopes[h], pos, r.lo, r.hi));
    r.d = d_rows[n];
    r.norm = norms != nullptr ? norms[n] : 1.0f;
    r.center = centers != nullptr ? centers[n] : 0.0f;
    return r;
  }

  // Minus the distance of key j from the row's frame, as the forward's bias uses it (times the slope).
  static float neg_distance(const BackwardRow& r, std::int64_t j) {
    return -static_cast<float>(j > r.nearest ? j - r.nearest : r.nearest - j);
  }

  // P_ij from q_i scaled (qs), k_j and the row.
  float probability(const float* qs, const float* k, const BackwardRow& r, std::int64_t j, float slope) const {
    const float logit = backward_dot<Isa>(qs, k, pr.head_dim) + slope * neg_distance(r, j);
    return std::exp(logit - r.lse) * r.norm;
  }
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
  const bool want_dkv = grads.dk != nullptr || grads.dv != nullptr;
  const bool want_dq = grads.dq != nullptr || grads.dslopes != nullptr;
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

  // D_i = dO_i . O_i (in order, on the calling thread: O(rows x head_dim)).
  detail::Buffer<float> d_rows(static_cast<std::size_t>(rows)), norms(static_cast<std::size_t>(rows)),
      centers(static_cast<std::size_t>(rows));
  const float scale = pr.scale;
  const std::int64_t row_blocks = (pr.q_len + kBackwardRows - 1) / kBackwardRows;
  const std::int64_t row_units = pr.batch * row_blocks * pr.num_heads;
  // Pass 0, Note [renormalised rows]: each row's sum of exp(S - lse) over its visible keys, in double.
  {
    const BackwardContext<Isa> sums{pr, lse, dout, d_rows.data(), nullptr, nullptr, pr.num_heads / pr.num_kv_heads};
    detail::parallel_for_units(row_units, pr.num_threads, [&] {
      return [&, qs = detail::Buffer<float>(static_cast<std::size_t>(hd))](std::int64_t unit) mutable {
        const int h = static_cast<int>(unit % pr.num_heads);
        const std::int64_t block = (unit / pr.num_heads) % row_blocks;
        const std::int64_t b = unit / pr.num_heads / row_blocks;
        const int g = h / sums.group;
        const std::int64_t i1 = (block + 1) * kBackwardRows < pr.q_len ? (block + 1) * kBackwardRows : pr.q_len;
        for (std::int64_t i = block * kBackwardRows; i < i1; ++i) {
          const BackwardRow r = sums.row(b, i, h);
          const float* qi = sums.q_row(b, i, h);
          for (int d = 0; d < hd; ++d) qs[static_cast<std::size_t>(d)] = scale * qi[d];
          const float* doi = sums.dout_row(b, i, h);
          double total = 0.0, moment = 0.0, flow = 0.0;
          for (std::int64_t j = r.lo; j < r.hi; ++j) {
            const double p = sums.probability(qs.data(), sums.k_row(b, j, g), r, j, pr.slopes[h]);
            total += p;
            moment -= p * static_cast<double>(BackwardContext<Isa>::neg_distance(r, j));
            flow += p * static_cast<double>(backward_dot<Isa>(doi, sums.v_row(b, j, g), hd));
          }
          const auto n = static_cast<std::size_t>((b * pr.q_len + i) * pr.num_heads + h);
          norms[n] = total > 0.0 ? static_cast<float>(1.0 / total) : 0.0f;
          centers[n] = total > 0.0 ? static_cast<float>(moment / total) : 0.0f;
          d_rows[n] = total > 0.0 ? static_cast<float>(flow / total) : 0.0f;
        }
      };
    });
  }
  const BackwardContext<Isa> ctx{
      pr, lse, dout, d_rows.data(), norms.data(), centers.data(), pr.num_heads / pr.num_kv_heads};

  if (want_dkv) {
    const std::int64_t key_blocks = (pr.kv_len + kBackwardKeys - 1) / kBackwardKeys;
    const std::int64_t units = pr.batch * pr.num_kv_heads * key_blocks;
    detail::parallel_for_units(units, pr.num_threads, [&] {
      return [&, dk = detail::Buffer<float>(static_cast<std::size_t>(kBackwardKeys * hd)),
              dv = detail::Buffer<float>(static_cast<std::size_t>(kBackwardKeys * hd)),
              qs = detail::Buffer<float>(static_cast<std::size_t>(hd))](std::int64_t unit) mutable {
        const std::int64_t block = unit % key_blocks;
        const int g = static_cast<int>((unit / key_blocks) % pr.num_kv_heads);
        const std::int64_t b = unit / key_blocks / pr.num_kv_heads;
        const std::int64_t j0 = block * kBackwardKeys;
        const std::int64_t j1 = j0 + kBackwardKeys < pr.kv_len ? j0 + kBackwardKeys : pr.kv_len;
        for (float& x : dk) x = 0.0f;
        for (float& x : dv) x = 0.0f;
        for (std::int64_t i = 0; i < pr.q_len; ++i) {
          for (int h = g * ctx.group; h < (g + 1) * ctx.group; ++h) {
            const BackwardRow r = ctx.row(b, i, h);
            const std::int64_t lo = r.lo > j0 ? r.lo : j0, hi = r.hi < j1 ? r.hi : j1;
            if (lo >= hi) continue;
            const float* qi = ctx.q_row(b, i, h);
            const float* doi = ctx.dout_row(b, i, h);
            for (int d = 0; d < hd; ++d) qs[static_cast<std::size_t>(d)] = scale * qi[d];
            const float slope = pr.slopes[h];
            for (std::int64_t j = lo; j < hi; ++j) {
              const float p = ctx.probability(qs.data(), ctx.k_row(b, j, g), r, j, slope);
              const float dp = backward_dot<Isa>(doi, ctx.v_row(b, j, g), hd);
              const float ds = p * (dp - r.d);
              float* dv_j = dv.data() + (j - j0) * hd;
              float* dk_j = dk.data() + (j - j0) * hd;
              backward_axpy<Isa>(p, doi, dv_j, hd);
              backward_axpy<Isa>(ds, qs.data(), dk_j, hd);  // scale dS q
            }
          }
        }
        for (std::int64_t j = j0; j < j1; ++j) {
          const std::int64_t at = ((b * pr.kv_len + j) * pr.num_kv_heads + g) * hd;
          for (int d = 0; d < hd; ++d) {
            const std::size_t from = static_cast<std::size_t>((j - j0) * hd + d);
            if (grads.dk != nullptr) grads.dk[at + d] = dk[from];
            if (grads.dv != nullptr) grads.dv[at + d] = dv[from];
          }
        }
      };
    });
  }

  if (want_dq) {
    const std::int64_t units = row_units;
    detail::Buffer<double> slope_partials(static_cast<std::size_t>(units));
    detail::parallel_for_units(units, pr.num_threads, [&] {
      return [&, dq = detail::Buffer<float>(static_cast<std::size_t>(hd)),
              qs = detail::Buffer<float>(static_cast<std::size_t>(hd))](std::int64_t unit) mutable {
        const int h = static_cast<int>(unit % pr.num_heads);
        const std::int64_t block = (unit / pr.num_heads) % row_blocks;
        const std::int64_t b = unit / pr.num_heads / row_blocks;
        const int g = h / ctx.group;
        const float slope = pr.slopes[h];
        const std::int64_t i0 = block * kBackwardRows;
        const std::int64_t i1 = i0 + kBackwardRows < pr.q_len ? i0 + kBackwardRows : pr.q_len;
        double slope_sum = 0.0;
        for (std::int64_t i = i0; i < i1; ++i) {
          const BackwardRow r = ctx.row(b, i, h);
          const float* qi = ctx.q_row(b, i, h);
          const float* doi = ctx.dout_row(b, i, h);
          for (int d = 0; d < hd; ++d) {
            qs[static_cast<std::size_t>(d)] = scale * qi[d];
            dq[static_cast<std::size_t>(d)] = 0.0f;
          }
          double row_slope = 0.0;  // in double: its terms cancel (a covariance)
          for (std::int64_t j = r.lo; j < r.hi; ++j) {
            const float* kj = ctx.k_row(b, j, g);
            const float p = ctx.probability(qs.data(), kj, r, j, slope);
            const float dp = backward_dot<Isa>(doi, ctx.v_row(b, j, g), hd);
            const float ds = p * (dp - r.d);
            backward_axpy<Isa>(ds, kj, dq.data(), hd);
            row_slope += static_cast<double>(ds) *
                         (static_cast<double>(r.center) +
                          static_cast<double>(BackwardContext<Isa>::neg_distance(r, j)));  // Note [centred distances]
          }
          slope_sum += row_slope;
          if (grads.dq != nullptr)
            for (int d = 0; d < hd; ++d)
              grads.dq[((b * pr.q_len + i) * pr.num_heads + h) * hd + d] = scale * dq[static_cast<std::size_t>(d)];
        }
        slope_partials[static_cast<std::size_t>(unit)] = slope_sum;
      };
    });
    if (grads.dslopes != nullptr) {
      for (int h = 0; h < pr.num_heads; ++h) {
        double sum = 0.0;
        for (std::int64_t u = h; u < units; u += pr.num_heads) sum += slope_partials[static_cast<std::size_t>(u)];
        grads.dslopes[h] = static_cast<float>(sum);
      }
    }
  }
}

}  // namespace kernels
ALIBI_NAMESPACE_END
#endif  // per-target guard
