#pragma once
// The fused ALiBi attention kernel, written once over the ISA tag.
//
// Work is split into units of (batch, kv head, block of query positions). A unit's rows are every
// (query position, query head of the kv head's group) pair, so the heads sharing a kv head read each K/V
// block once, each row keeping its own slope and position. For each key block the unit computes
//   S = Qs K^T            register-blocked dot products (Qs: queries pre-multiplied by the scale)
//   S += -m |p - j|       the ALiBi bias from the integer distance, then the mask
//   online softmax        running max and sum per row; the output is rescaled when the max grows
//   O += P V              register-blocked rank-1 updates over the block's keys
// and visits only the keys that some row of the unit can see (blocks hidden by the causal mask or the
// window are never touched). Rows see a contiguous key interval [lo, hi), which makes masking a clamp.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>
#include <utility>
#include <vector>

#include "alibi/detail/config.hpp"
#include "alibi/isa/exp.hpp"
#include "alibi/isa/ops.hpp"
#include "alibi/kernels/key_norms.hpp"
#include "alibi/kernels/problem.hpp"
#include "alibi/kernels/row_fallback.hpp"

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

// S[r][c] = dot(q_r, k_c) for NR rows and one panel of NK keys (the key pointers may repeat: a panel
// past the block's last key reuses it, and those columns are masked out later).
template <class Isa, int NR>
ALIBI_ALWAYS_INLINE void qk_panel(const float* qs, std::int64_t q_stride, const float* const* key, int dim_vecs,
                                  float* s, std::int64_t s_stride) {
  using O = isa::Ops<Isa>;
  using vec = typename O::vec;
  constexpr int W = O::width;
  constexpr int NK = O::qk_keys;
  static_assert(NK == 4, "reduce_add4 folds exactly four accumulators");
  vec acc[NR][NK];
#pragma GCC unroll 16
  for (int r = 0; r < NR; ++r)
#pragma GCC unroll 4
    for (int c = 0; c < NK; ++c) acc[r][c] = O::zero();
  for (int dv = 0; dv < dim_vecs; ++dv) {
    vec qv[NR];
#pragma GCC unroll 16
    for (int r = 0; r < NR; ++r) qv[r] = O::load(qs + r * q_stride + dv * W);
#pragma GCC unroll 4
    for (int c = 0; c < NK; ++c) {
      const vec kv = O::load(key[c] + dv * W);
#pragma GCC unroll 16
      for (int r = 0; r < NR; ++r) acc[r][c] = O::fma(qv[r], kv, acc[r][c]);
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < NR; ++r) O::reduce_add4(acc[r][0], acc[r][1], acc[r][2], acc[r][3], s + r * s_stride);
}

// O[r][dv0*W ..] += sum_{j in [ja, jb)} P[r][j] * V[j][dv0*W ..] for NR rows and NV dimension vectors.
template <class Isa, int NR, int NV>
ALIBI_ALWAYS_INLINE void pv_tile(const float* p, std::int64_t p_stride, const float* values, std::int64_t value_stride,
                                 int ja, int jb, float* o, std::int64_t o_stride, int dv0) {
  using O = isa::Ops<Isa>;
  using vec = typename O::vec;
  constexpr int W = O::width;
  vec acc[NR][NV];
#pragma GCC unroll 16
  for (int r = 0; r < NR; ++r)
#pragma GCC unroll 8
    for (int c = 0; c < NV; ++c) acc[r][c] = O::load(o + r * o_stride + (dv0 + c) * W);
  for (int j = ja; j < jb; ++j) {
    const float* value = values + j * value_stride + dv0 * W;
    vec vv[NV];
#pragma GCC unroll 8
    for (int c = 0; c < NV; ++c) vv[c] = O::load(value + c * W);
#pragma GCC unroll 16
    for (int r = 0; r < NR; ++r) {
      const vec weight = O::set1(p[r * p_stride + j]);
#pragma GCC unroll 8
      for (int c = 0; c < NV; ++c) acc[r][c] = O::fma(weight, vv[c], acc[r][c]);
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < NR; ++r)
#pragma GCC unroll 8
    for (int c = 0; c < NV; ++c) O::store(o + r * o_stride + (dv0 + c) * W, acc[r][c]);
}

template <class Isa>
class FlashAttention {
  using O = isa::Ops<Isa>;
  using vec = typename O::vec;
  static constexpr int W = O::width;

 public:
  // Keys per block: a multiple of the vector width and of qk_keys; S for one unit stays in L1/L2.
  static constexpr int kKeyBlock = 64;
  // Rows (query position x head) a unit aims for: enough to amortise each K/V block over many rows.
  static constexpr int kTargetRows = 48;

  // A unit is (batch, group of kv heads, block of query positions). Its rows are ordered kv head,
  // position, query head of the group. Decode-like calls (few rows per kv head) put several kv heads in
  // one unit: key j of all of them is one contiguous run of memory, so a block then reads whole pages
  // instead of one head's slice of each (a slice per 4 KiB page would miss the TLB on every key).
  struct UnitLayout {
    std::int64_t positions;  // query positions per unit
    int heads;               // kv heads per unit
    std::int64_t q_blocks;   // query blocks per (batch, head group)
    int head_groups;         // kv head groups per batch entry
    int group;               // query heads per kv head
  };
  struct UnitCoords {
    std::int64_t b, i0, i1;  // batch entry, query rows [i0, i1)
    int kv_head0, kv_heads;  // kv heads [kv_head0, kv_head0 + kv_heads)
  };

  static UnitLayout layout(const Problem& pr) {
    UnitLayout L;
    L.group = pr.num_heads / pr.num_kv_heads;
    L.positions = std::max<std::int64_t>(1, std::min<std::int64_t>(pr.q_len, std::max(1, kTargetRows / L.group)));
    const std::int64_t rows_per_head = L.positions * L.group;
    L.heads = static_cast<int>(std::min<std::int64_t>(pr.num_kv_heads, (kTargetRows + rows_per_head - 1) / rows_per_head));
    L.q_blocks = (pr.q_len + L.positions - 1) / L.positions;
    L.head_groups = (pr.num_kv_heads + L.heads - 1) / L.heads;
    return L;
  }

  // Keys per block: kKeyBlock for one kv head; fewer when a unit packs several heads, so the packed
  // K/V of all of them stays within L2.
  static int block_keys(const UnitLayout& L) {
    constexpr int kQuantum = 16;  // a multiple of every ISA's width and of qk_keys
    const int keys = (kKeyBlock / L.heads + kQuantum - 1) / kQuantum * kQuantum;
    return std::min(kKeyBlock, std::max(kQuantum, keys));
  }

  static UnitCoords coords(const Problem& pr, const UnitLayout& L, std::int64_t unit) {
    UnitCoords u;
    // Last query blocks first: under the causal mask they are the longest, which balances the threads.
    const std::int64_t block = L.q_blocks - 1 - unit % L.q_blocks;
    const std::int64_t rest = unit / L.q_blocks;
    u.kv_head0 = static_cast<int>(rest % L.head_groups) * L.heads;
    u.kv_heads = std::min(L.heads, pr.num_kv_heads - u.kv_head0);
    u.b = rest / L.head_groups;
    u.i0 = block * L.positions;
    u.i1 = std::min(pr.q_len, u.i0 + L.positions);
    return u;
  }

  explicit FlashAttention(const Problem& pr)
      : pr_(pr),
        layout_(layout(pr)),
        group_(layout_.group),
        dim_vecs_(static_cast<int>((static_cast<std::int64_t>(pr.head_dim) + W - 1) / W)),
        dim_pad_(static_cast<std::int64_t>(dim_vecs_) * W),
        max_rows_(rows_per_unit(pr)),
        block_keys_(block_keys(layout_)) {
    rows_.resize(static_cast<std::size_t>(max_rows_));
    const auto rows_alloc = static_cast<std::size_t>(max_rows_ + O::pv_rows);
    qs_.assign(rows_alloc * static_cast<std::size_t>(dim_pad_), 0.0f);
    o_.assign(rows_alloc * static_cast<std::size_t>(dim_pad_), 0.0f);
    s_.assign(rows_alloc * kKeyBlock, 0.0f);
    k_pack_.assign(static_cast<std::size_t>(layout_.heads * kKeyBlock * dim_pad_), 0.0f);
    v_pack_.assign(static_cast<std::size_t>(layout_.heads * kKeyBlock * dim_pad_), 0.0f);
    head_active_.assign(static_cast<std::size_t>(layout_.heads), 0);
    tile_active_.assign(static_cast<std::size_t>(max_rows_ / O::qk_rows + 1), 0);
    key_range_.assign(static_cast<std::size_t>(max_rows_ / O::pv_rows + 1), {0, 0});
  }

  // Units before any split of the keys.
  static std::int64_t num_base_units(const Problem& pr) {
    const UnitLayout L = layout(pr);
    return pr.batch * L.head_groups * L.q_blocks;
  }
  static std::int64_t num_chunks(const Problem& pr) {
    return pr.kv_chunk > 0 ? (pr.kv_len + pr.kv_chunk - 1) / pr.kv_chunk : 1;
  }
  static std::int64_t num_units(const Problem& pr) { return num_base_units(pr) * num_chunks(pr); }
  static std::int64_t rows_per_unit(const Problem& pr) {
    const UnitLayout L = layout(pr);
    return L.positions * L.group * L.heads;
  }
  // Floats of partial state per split piece: per row, max and sum then the padded output row.
  static std::int64_t partial_floats_per_piece(const Problem& pr) {
    return rows_per_unit(pr) * (2 + (static_cast<std::int64_t>(pr.head_dim) + W - 1) / W * W);
  }

  void run_unit(std::int64_t piece) {
    const std::int64_t chunks = num_chunks(pr_);
    const std::int64_t unit = piece / chunks, chunk = piece % chunks;
    const UnitCoords u = coords(pr_, layout_, unit);
    const int rows_per_head = static_cast<int>((u.i1 - u.i0) * group_);
    const int num_rows = rows_per_head * u.kv_heads;
    setup_rows(u);

    std::int64_t union_lo = pr_.kv_len, union_hi = 0;
    for (int r = 0; r < num_rows; ++r) {
      if (rows_.data()[r].lo >= rows_.data()[r].hi) continue;
      union_lo = std::min(union_lo, rows_.data()[r].lo);
      union_hi = std::max(union_hi, rows_.data()[r].hi);
    }
    if (pr_.kv_chunk > 0) {
      union_lo = std::max(union_lo, chunk * pr_.kv_chunk);
      union_hi = std::min(union_hi, (chunk + 1) * pr_.kv_chunk);
    }
    const std::int64_t kv_row = static_cast<std::int64_t>(pr_.num_kv_heads) * pr_.head_dim;
    const std::int64_t head_offset = (u.b * pr_.kv_len * pr_.num_kv_heads + u.kv_head0) * pr_.head_dim;
    const float* k_base = pr_.k + head_offset;  // key 0 of the unit's first kv head
    const float* v_base = pr_.v + head_offset;
    // Note [block skipping]: blocks are visited from the keys nearest the unit's queries outward (causal:
    // newest first). The nearest keys carry the largest bias, so each row's running max settles early and
    // the output is rarely rescaled; and after each block, a row whose unvisited keys provably carry less
    // softmax mass than skip_tolerance (relative to its largest term) stops, by Cauchy-Schwarz:
    //   logit_j = qs.k_j - m d_j <= |qs| |k_j| - m d_j,   sum_{d >= d0} e^{-m d} = e^{-m d0} / (1 - e^{-m}).
    // Block boundaries depend only on the unit, never on the thread count.
    std::int64_t anchor = union_hi;
    if (!pr_.causal) {
      const std::int64_t mid = rows_.data()[0].pos + (rows_.data()[num_rows - 1].pos - rows_.data()[0].pos) / 2;
      anchor = std::min(std::max(mid, union_lo - 1), union_hi - 1) + 1;
    }
    const double mid_pos = static_cast<double>(anchor) - 0.5;
    std::int64_t left = anchor, right = anchor;  // visited keys: [left, right)
    while (left > union_lo || right < union_hi) {
      const bool go_left = right >= union_hi ||
                           (left > union_lo && mid_pos - static_cast<double>(left - 1) <= static_cast<double>(right) - mid_pos);
      std::int64_t j0, j1;
      if (go_left) {
        j1 = left;
        j0 = std::max(union_lo, left - block_keys_);
        left = j0;
      } else {
        j0 = right;
        j1 = std::min(union_hi, right + block_keys_);
        right = j1;
      }
      // One kv head per unit: its rows are strided (num_kv_heads * head_dim apart), which the hardware
      // prefetchers follow poorly, so warm the caches with the block that most likely comes next. Units
      // spanning several heads sweep memory in order and are left to the hardware (measured: faster).
      if (u.kv_heads == 1) {
        const std::int64_t next = go_left ? std::max(union_lo, j0 - block_keys_) : j1;
        const std::int64_t next_end = go_left ? j0 : std::min(union_hi, j1 + block_keys_);
        prefetch_rows(k_base, v_base, kv_row, next, next_end, pr_.head_dim);
      }
      const int nk = static_cast<int>(j1 - j0);
      bool any_head = false;
      for (int hh = 0; hh < u.kv_heads; ++hh) {
        head_active_.data()[hh] = mark_active(hh * rows_per_head, rows_per_head, j0, nk);
        any_head |= head_active_.data()[hh] != 0;
      }
      if (any_head) pack_block(k_base, v_base, kv_row, j0, nk, u.kv_heads, head_active_.data());
      for (int hh = 0; hh < u.kv_heads; ++hh) {
        if (!head_active_.data()[hh]) continue;
        const std::int64_t at = static_cast<std::int64_t>(hh) * kKeyBlock * dim_pad_;
        process_block(hh * rows_per_head, rows_per_head, j0, nk, k_pack_.data() + at, v_pack_.data() + at);
      }
      if (pr_.key_norms != nullptr && rows_finished(num_rows, left, right)) break;
    }
    if (pr_.kv_chunk > 0)
      save_partial(num_rows, piece, union_lo, union_hi);
    else
      finish_rows(num_rows);
  }

  // Combines the split pieces of `unit` in key order into the output rows. The order is fixed, so the
  // result does not depend on which threads computed the pieces.
  static void merge_unit(const Problem& pr, std::int64_t unit) {
    const std::int64_t chunks = num_chunks(pr);
    const std::int64_t stride = partial_floats_per_piece(pr);
    const std::int64_t dim_pad = (static_cast<std::int64_t>(pr.head_dim) + W - 1) / W * W;
    const UnitLayout L = layout(pr);
    const UnitCoords u = coords(pr, L, unit);
    const std::int64_t b = u.b;
    std::vector<float> acc(static_cast<std::size_t>(pr.head_dim));
    std::int64_t r = 0;
    for (int kv_head = u.kv_head0; kv_head < u.kv_head0 + u.kv_heads; ++kv_head)
    for (std::int64_t i = u.i0; i < u.i1; ++i) {
      for (int g = 0; g < L.group; ++g, ++r) {
        const std::int64_t h = static_cast<std::int64_t>(kv_head) * L.group + g;
        float* out = pr.out + ((b * pr.q_len + i) * pr.num_heads + h) * pr.head_dim;
        float max = -std::numeric_limits<float>::infinity();
        for (std::int64_t c = 0; c < chunks; ++c) max = std::max(max, pr.partial[(unit * chunks + c) * stride + r * (2 + dim_pad)]);
        std::fill(acc.begin(), acc.end(), 0.0f);
        float sum = 0.0f;
        if (max != -std::numeric_limits<float>::infinity()) {
          for (std::int64_t c = 0; c < chunks; ++c) {
            const float* state = pr.partial + (unit * chunks + c) * stride + r * (2 + dim_pad);
            if (state[1] == 0.0f) continue;  // this piece saw nothing
            const float weight = isa::exp<isa::scalar>(state[0] - max);
            sum += state[1] * weight;
            for (int d = 0; d < pr.head_dim; ++d) acc.data()[d] += state[2 + d] * weight;
          }
        }
        const float inv = sum == 0.0f ? 0.0f : 1.0f / sum;
        for (int d = 0; d < pr.head_dim; ++d) out[d] = acc.data()[d] * inv;
        if (!all_finite(out, pr.head_dim)) {
          std::int64_t lo, hi;
          visible_keys(pr, pr.q_pos0 + i, lo, hi);
          recompute_row_exactly(pr, b, i, static_cast<int>(h), lo, hi, out);
        }
      }
    }
  }

 private:
  struct Row {
    float* out;
    std::int64_t b, i;  // batch and query row
    int h;              // query head
    std::int64_t bk;    // batch * num_kv_heads + kv head
    std::int64_t pos;   // key position of this query
    std::int64_t lo;    // visible keys: [lo, hi)
    std::int64_t hi;
    float neg_slope;    // -m_h
    float max;          // running max of the logits seen so far
    float sum;          // running sum of exp(logit - max)
    bool active;        // sees at least one key of the current block
    bool done;          // block skipping: the unvisited keys are negligible for this row
    double q_norm;      // |scale * q|, for the skipping bound
    double log_budget;  // log of the mass one unvisited side may carry, times (1 - e^{-m})
  };

  void setup_rows(const UnitCoords& u) {
    const std::int64_t D = pr_.head_dim;
    const std::int64_t b = u.b;
    int r = 0;
    for (int kv_head = u.kv_head0; kv_head < u.kv_head0 + u.kv_heads; ++kv_head)
    for (std::int64_t i = u.i0; i < u.i1; ++i) {
      for (int g = 0; g < group_; ++g, ++r) {
        const int h = kv_head * group_ + g;
        const std::int64_t offset = ((b * pr_.q_len + i) * pr_.num_heads + h) * D;
        Row& row = rows_.data()[r];
        row.out = pr_.out + offset;
        row.b = b;
        row.i = i;
        row.h = h;
        row.bk = b * pr_.num_kv_heads + kv_head;
        row.pos = pr_.q_pos0 + i;
        visible_keys(pr_, row.pos, row.lo, row.hi);
        row.neg_slope = -pr_.slopes[h];
        row.max = -std::numeric_limits<float>::infinity();
        row.sum = 0.0f;
        row.done = false;
        const float* q = pr_.q + offset;
        float* qs = qs_.data() + (r * dim_pad_);
        double q_sq = 0.0;
        for (std::int64_t d = 0; d < D; ++d) {
          qs[d] = q[d] * pr_.scale;
          q_sq += static_cast<double>(qs[d]) * qs[d];
        }
        row.q_norm = std::sqrt(q_sq) * (1.0 + 1e-6);
        const double m = pr_.slopes[h];
        // Slopes <= 0 never skip (the bound needs a decaying bias); each unvisited side gets half the
        // budget when keys remain on both sides (bidirectional).
        row.log_budget = m > 0.0 && pr_.key_norms != nullptr
                             ? std::log(static_cast<double>(pr_.skip_tolerance) * (pr_.causal ? 1.0 : 0.5)) +
                                   std::log(-std::expm1(-m))
                             : -HUGE_VAL;
        std::fill(qs + D, qs + dim_pad_, 0.0f);
        std::fill(o_.data() + (r * dim_pad_), o_.data() + ((r + 1) * dim_pad_), 0.0f);
      }
    }
  }

  void prefetch_rows(const float* k_base, const float* v_base, std::int64_t kv_row, std::int64_t j0,
                     std::int64_t j1, std::int64_t span) const {
    constexpr std::int64_t kLine = 64 / sizeof(float);
    for (std::int64_t j = j0; j < j1; ++j)
      for (std::int64_t d = 0; d < span; d += kLine) {
        ALIBI_PREFETCH(k_base + j * kv_row + d);
        ALIBI_PREFETCH(v_base + j * kv_row + d);
      }
  }

  // Marks rows whose unvisited keys ([lo, left) and [right, hi)) are negligible; true when every row of the
  // unit is done or has nothing left to visit.
  const KeyNormBounds<Isa>* norms() const { return static_cast<const KeyNormBounds<Isa>*>(pr_.key_norms); }

  bool rows_finished(int num_rows, std::int64_t left, std::int64_t right) {
    bool all = true;
    for (int r = 0; r < num_rows; ++r) {
      Row& row = rows_.data()[r];
      if (row.done) continue;
      const std::int64_t left_end = std::min(left, row.hi), right_begin = std::max(right, row.lo);
      const bool left_open = row.lo < left_end, right_open = right_begin < row.hi;
      if (!left_open && !right_open) continue;
      if (row.log_budget == -HUGE_VAL || row.max == -std::numeric_limits<float>::infinity()) {
        all = false;
        continue;
      }
      row.done = (!left_open || tail_negligible(row, row.lo, left_end, norms()->before(row.bk, left_end))) &&
                 (!right_open || tail_negligible(row, right_begin, row.hi, norms()->from(row.bk, right_begin)));
      all = all && row.done;
    }
    return all;
  }

  // Can the keys [begin, end), all with norm <= key_norm, carry more than the row's budget?
  static bool tail_negligible(const Row& row, std::int64_t begin, std::int64_t end, float key_norm) {
    const std::int64_t d0 = row.pos < begin ? begin - row.pos : (row.pos >= end ? row.pos - end + 1 : 0);
    if (d0 <= 0) return false;
    const double m = -static_cast<double>(row.neg_slope);
    const double reach = row.q_norm * key_norm;
    const double distance_term = m * static_cast<double>(d0);
    const double max_logit = row.max;
    // The kernel's fp32 logits (and so `max`) carry rounding error; 2^-16 relative is far above it.
    const double slack = 0x1p-16 * (reach + std::fabs(max_logit) + distance_term) + 1e-6;
    return reach - distance_term - max_logit + slack <= row.log_budget;
  }

  // Written to avoid overflow for any position and window (positions may be far outside [0, kv_len)).
  static void visible_keys(const Problem& pr, std::int64_t pos, std::int64_t& lo, std::int64_t& hi) {
    const std::int64_t w = pr.window;
    lo = (w > 0 && pos >= w) ? pos - w + 1 : 0;
    if (pr.causal) {
      hi = pos < pr.kv_len ? pos + 1 : pr.kv_len;
    } else {
      hi = (w > 0 && pos < pr.kv_len - w) ? pos + w : pr.kv_len;
    }
    lo = std::min(lo, pr.kv_len);
    if (hi < lo) hi = lo;  // empty
  }

  // Folds keys [j0, j0 + nk) of one kv head into rows [first, first + num_rows), which all read it.
  // Marks the rows of [first, first + num_rows) that see keys [j0, j0 + nk); false if none does.
  bool mark_active(int first, int num_rows, std::int64_t j0, int nk) {
    bool any_active = false;
    for (int r = first; r < first + num_rows; ++r) {
      Row& row = rows_.data()[r];
      row.active = !row.done && row.lo < j0 + nk && row.hi > j0;
      any_active |= row.active;
    }
    return any_active;
  }

  // Copies keys [j0, j0 + nk) of the unit's active kv heads into contiguous zero-padded rows, key by key
  // so the reads sweep memory in order. In the input, a head's K/V rows sit num_kv_heads * head_dim
  // floats apart, often a multiple of 4 KiB, which would map a whole block onto a few L1 sets; the copy
  // also pads head_dim to whole vectors.
  void pack_block(const float* k_base, const float* v_base, std::int64_t kv_row, std::int64_t j0, int nk,
                  int kv_heads, const char* head_active) {
    const std::size_t bytes = sizeof(float) * static_cast<std::size_t>(pr_.head_dim);
    for (int j = 0; j < nk; ++j) {
      const std::int64_t at = (j0 + j) * kv_row;
      for (int hh = 0; hh < kv_heads; ++hh) {
        if (!head_active[hh]) continue;
        const std::int64_t to = (static_cast<std::int64_t>(hh) * kKeyBlock + j) * dim_pad_;
        const std::int64_t head_at = at + static_cast<std::int64_t>(hh) * pr_.head_dim;
        std::memcpy(k_pack_.data() + to, k_base + head_at, bytes);
        std::memcpy(v_pack_.data() + to, v_base + head_at, bytes);
      }
    }
  }

  // Folds the packed keys [j0, j0 + nk) of one kv head into its rows [first, first + num_rows), whose
  // `active` flags mark_active has set.
  void process_block(int first, int num_rows, std::int64_t j0, int nk, const float* k_packed,
                     const float* v_packed) {
    const int end = first + num_rows;


    // S = Qs K^T: key panels outside, row tiles inside, so a panel stays in L1 while every row uses it.
    constexpr int QR = O::qk_rows;
    constexpr int NK = O::qk_keys;
    const int num_tiles = (num_rows + QR - 1) / QR;
    for (int t = 0; t < num_tiles; ++t) {
      bool any = false;
      for (int r = first + t * QR; r < std::min(end, first + (t + 1) * QR); ++r) any |= rows_.data()[r].active;
      tile_active_.data()[t] = any;
    }
    for (int c0 = 0; c0 < nk; c0 += NK) {
      const float* key[NK];
      for (int c = 0; c < NK; ++c) key[c] = k_packed + std::min(c0 + c, nk - 1) * dim_pad_;
      for (int t = 0; t < num_tiles; ++t) {
        if (!tile_active_.data()[t]) continue;
        const int r0 = first + t * QR;
        const float* qs = qs_.data() + (r0 * dim_pad_);
        float* s = s_.data() + (r0) * kKeyBlock + static_cast<std::size_t>(c0);
        with_count<QR>(std::min(QR, end - r0), [&](auto n) {
          qk_panel<Isa, decltype(n)::value>(qs, dim_pad_, key, dim_vecs_, s, kKeyBlock);
        });
      }
    }

    for (int r = first; r < end; ++r)
      if (rows_.data()[r].active) softmax_row(r, j0, nk);

    // O += P V: dimension chunks outside, row tiles inside, so a chunk of V stays in L1.
    constexpr int PR = O::pv_rows;
    constexpr int PV = O::pv_vecs;
    const int pv_tiles = (num_rows + PR - 1) / PR;
    for (int t = 0; t < pv_tiles; ++t) {
      const int r0 = first + t * PR, r1 = std::min(end, r0 + PR);
      int ja = nk, jb = 0;
      for (int r = r0; r < r1; ++r) {
        const Row& row = rows_.data()[r];
        if (!row.active) continue;
        ja = std::min<int>(ja, static_cast<int>(std::max<std::int64_t>(row.lo - j0, 0)));
        jb = std::max<int>(jb, static_cast<int>(std::min<std::int64_t>(row.hi - j0, nk)));
      }
      key_range_.data()[t] = {ja, jb};
      if (ja >= jb) continue;
      for (int r = r0; r < r1; ++r)  // rows that see nothing here still ride along in the tile
        if (!rows_.data()[r].active) std::fill_n(s_.data() + r * kKeyBlock, nk, 0.0f);
    }
    for (int dv0 = 0, chunk = 0; dv0 < dim_vecs_; dv0 += chunk) {
      // Full PV-wide chunks, but never leave a lone narrow one: with pv_rows x 1 accumulators the FMA
      // chains would wait on their own latency (16 vectors -> 3+3+3+3+2+2, not 3+3+3+3+3+1).
      const int remaining = dim_vecs_ - dv0;
      chunk = remaining == PV + 1 && PV > 2 ? (remaining + 1) / 2 : std::min(PV, remaining);
      with_count<PV>(chunk, [&](auto m) {
        constexpr int NV = decltype(m)::value;
        for (int t = 0; t < pv_tiles; ++t) {
          const auto range = key_range_.data()[t];
          if (range.first >= range.second) continue;
          const int r0 = first + t * PR;
          const float* p = s_.data() + r0 * kKeyBlock;
          float* o = o_.data() + (r0 * dim_pad_);
          with_count<PR>(std::min(PR, end - r0), [&](auto n) {
            pv_tile<Isa, decltype(n)::value, NV>(p, kKeyBlock, v_packed, dim_pad_, range.first, range.second, o,
                                                 dim_pad_, dv0);
          });
        }
      });
    }
  }

  // Adds the bias, masks, and folds the block into row r's online softmax; leaves P in S.
  void softmax_row(int r, std::int64_t j0, int nk) {
    Row& row = rows_.data()[r];
    float* s = s_.data() + r * kKeyBlock;
    const int a = static_cast<int>(std::max<std::int64_t>(row.lo - j0, 0));
    const int b = static_cast<int>(std::min<std::int64_t>(row.hi - j0, nk));
    const int nvec = (nk + W - 1) / W;
    const vec minus_inf = O::set1(-std::numeric_limits<float>::infinity());
    // Distance of lane 0 from the query, from the integer difference (exact below 2^24).
    const vec dist0 = O::set1(static_cast<float>(row.pos - j0));
    const vec neg_slope = O::set1(row.neg_slope);
    const vec lane = O::iota();
    const bool needs_mask = a > 0 || b < nvec * W;
    const vec first = O::set1(static_cast<float>(a)), end = O::set1(static_cast<float>(b));
    vec vmax = minus_inf;
    for (int c = 0; c < nvec; ++c) {
      const vec index = O::add(lane, O::set1(static_cast<float>(c * W)));
      // causal: visible keys have p - j >= 0, so |p - j| is the paper's distance; bidirectional: symmetric.
      vec x = O::fma(neg_slope, O::abs(O::sub(dist0, index)), O::load(s + c * W));
      if (needs_mask) {
        x = O::select_lt(index, first, minus_inf, x);
        x = O::select_lt(index, end, x, minus_inf);
      }
      O::store(s + c * W, x);
      vmax = O::max(vmax, x);
    }
    const float block_max = O::reduce_max(vmax);
    const float new_max = std::max(row.max, block_max);
    if (block_max != block_max || new_max == -std::numeric_limits<float>::infinity()) {
      // A NaN logit (NaN or inf in q or k; max() would silently drop it), or every visible logit at -inf
      // (fp32 overflow of a huge but finite bias or dot product, or -inf inputs): poison the row so it is
      // recomputed exactly in double (Note [non-finite rows]), which keeps finite inputs finite and puts
      // NaN exactly where it is visible. Also avoids exp(-inf - -inf).
      row.sum = std::numeric_limits<float>::quiet_NaN();
      std::fill_n(s, nk, 0.0f);
      return;
    }
    const vec shift = O::set1(new_max);
    vec vsum = O::zero();
    for (int c = 0; c < nvec; ++c) {
      const vec p = isa::exp<Isa>(O::sub(O::load(s + c * W), shift));
      O::store(s + c * W, p);
      vsum = O::add(vsum, p);
    }
    const float alpha = isa::exp<isa::scalar>(row.max - new_max);
    row.sum = row.sum * alpha + O::reduce_add(vsum);
    row.max = new_max;
    if (alpha != 1.0f) {
      float* o = o_.data() + (r * dim_pad_);
      const vec va = O::set1(alpha);
      for (int c = 0; c < dim_vecs_; ++c) O::store(o + c * W, O::mul(va, O::load(o + c * W)));
    }
  }

  void save_partial(int num_rows, std::int64_t piece, std::int64_t union_lo, std::int64_t union_hi) {
    const std::int64_t row_floats = 2 + dim_pad_;
    float* state = pr_.partial + piece * partial_floats_per_piece(pr_);
    for (int r = 0; r < num_rows; ++r, state += row_floats) {
      const Row& row = rows_.data()[r];
      const bool saw_keys = union_lo < union_hi;  // else o_ and sum are still the initial zeros
      state[0] = saw_keys ? row.max : -std::numeric_limits<float>::infinity();
      state[1] = saw_keys ? row.sum : 0.0f;
      std::copy(o_.data() + r * dim_pad_, o_.data() + (r + 1) * dim_pad_, state + 2);
    }
  }

  void finish_rows(int num_rows) {
    for (int r = 0; r < num_rows; ++r) {
      const Row& row = rows_.data()[r];
      const float inv = row.sum == 0.0f ? 0.0f : 1.0f / row.sum;  // a row that saw no key: zeros
      const float* o = o_.data() + (r * dim_pad_);
      for (std::int64_t d = 0; d < pr_.head_dim; ++d) row.out[d] = o[d] * inv;
      if (!all_finite(row.out, pr_.head_dim))
        recompute_row_exactly(pr_, row.b, row.i, row.h, row.lo, row.hi, row.out);
    }
  }

  const Problem& pr_;
  UnitLayout layout_;
  int group_;
  int dim_vecs_;
  std::int64_t dim_pad_;
  std::int64_t max_rows_;
  int block_keys_;
  std::vector<Row> rows_;
  std::vector<float> qs_, o_, s_, k_pack_, v_pack_;
  std::vector<char> head_active_;                 // per kv head of the unit: some row sees the block
  std::vector<char> tile_active_;                 // per QK row tile: some row sees the current block
  std::vector<std::pair<int, int>> key_range_;    // per P.V row tile: keys of the block its rows see
};

}  // namespace kernels
ALIBI_NAMESPACE_END
