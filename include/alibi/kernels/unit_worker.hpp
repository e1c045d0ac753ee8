// The per-thread worker of the attention kernel: one unit (or split-K piece of one) at a time, from the
// queries to its output rows. Written once over the ISA tag.
//
// A unit's rows are every (query position, query head of the kv head's group) pair of its kv heads
// (kernels/plan.hpp), so the heads sharing a kv head read each K/V block once, each row keeping its own
// slope and position. For each key block the unit computes
//   S^T = K Qs^T          register-blocked rank-1 updates (Qs: queries pre-multiplied by the scale)
//   S^T += -m |p - j|     the ALiBi bias from the integer distance, then the mask
//   online softmax        running max and sum per row; the output is rescaled when the max grows
//   O += P V              register-blocked rank-1 updates over the block's keys
// and visits only the keys that some row of the unit can see (blocks hidden by the causal mask or the
// window are never touched), newest keys first (Note [block skipping] in kernels/skipping.hpp). Rows see
// a contiguous key interval [lo, hi), which makes masking a clamp.
//
// Note [rows in lanes]: the unit keeps its queries transposed (Qs^T: dimension-major, rows contiguous),
// so S^T comes out key-major with one row per vector lane. Q.K then needs no horizontal reductions (one
// broadcast key element times a vector of rows), and the softmax is purely vertical: each lane carries
// its own row's slope, position, visible range, running max and sum. A kv head's rows are padded to
// whole vectors; padding lanes see no key.
//
// Note [streaming decode]: with at most Tuning::kStreamMaxRows rows per kv head, and no more than a
// vector's lanes (decode: one query position per GQA group; a few positions of small groups), rows in
// lanes would leave lanes idle, and the call is memory-bound: K and V are read once and used by a handful
// of rows. Such units (Plan::stream) skip packing and read K and V where they lie (16-bit elements
// widened as they are loaded). Q.K goes key-major across the unit's heads
// (a key of all of them is one contiguous run, so the reads sweep memory in order), W keys of a head at a
// time transposed in registers so that S comes out with keys in lanes (Note [keys in lanes]) and the bias,
// the mask and exp run over vectors of real keys (a head with a vector's worth of rows keeps them in lanes
// instead: Note [rows in lanes for the stream]). The softmax and P.V then go head
// by head, P.V with a chunk of the rows' output in registers over all the block's keys
// (Plan::stream_pv_rows rows at a time). With Plan::stream_prefetch each group of keys requests the next group's K/V a
// little at a time as Q.K runs, so the core computes on one group while the next one streams in. P.V runs rows that see
// exactly the same keys of the block together, others one by one, so no row ever multiplies a value it does not see (no
// 0 * inf) and no non-finite check of the values is needed.
//
// Note [batch invariance]: a row computed by the packed tiles gets bits that depend on the row alone, not on
// the other rows of its unit or call, so a prefill in chunks, or a row alone, gives the one-call bits:
//   - key blocks are Tuning::kKeyBlock keys at multiples of it from key 0, whatever the unit, and every unit
//     visits them newest first, so every row folds the same blocks in the same order;
//   - Q.K sums each (row, key) product over d in one chain whatever the tile; keys a row does not see get
//     P = 0 exactly, so the block sum and P.V add exact zeros for them, and a block the row does not see
//     leaves its state as it was (new max = old max, alpha = 1);
//   - keys are reduced in chunks of Tuning::kKvChunk at absolute multiples, each chunk alone, and a row's
//     chunks merged in key order with the empty ones left out (kernels/partials.hpp), whether a unit's
//     chunks run as split-K pieces on several threads or one after another on one;
//   - skipping decides per row (Skipping::done) from the row's own running max, the block boundary reached
//     and its logit floor, which every row whose keys span several chunks gets, and nothing else.
// The streaming decode (Note [streaming decode]) follows the same rules (Note [keys in lanes]), so a decode
// row gets the bits of the same row in a prefill. Both masks: every unit visits its blocks newest first,
// whatever its rows' positions.
#include "alibi/detail/config.hpp"
// Per-target header: no #pragma once (Note [per-target headers] in detail/config.hpp).
#if (ALIBI_PASS == 0 && !defined(ALIBI_KERNELS_UNIT_WORKER_HPP_0)) || \
    (ALIBI_PASS == 1 && !defined(ALIBI_KERNELS_UNIT_WORKER_HPP_1)) || \
    (ALIBI_PASS == 2 && !defined(ALIBI_KERNELS_UNIT_WORKER_HPP_2))
#if ALIBI_PASS == 0
#define ALIBI_KERNELS_UNIT_WORKER_HPP_0
#elif ALIBI_PASS == 1
#define ALIBI_KERNELS_UNIT_WORKER_HPP_1
#else
#define ALIBI_KERNELS_UNIT_WORKER_HPP_2
#endif
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <utility>

#include "alibi/detail/buffer.hpp"
#include "alibi/detail/config.hpp"
#include "alibi/detail/problem.hpp"
#include "alibi/isa/exp.hpp"
#include "alibi/isa/ops.hpp"
#include "alibi/kernels/kv_source.hpp"
#include "alibi/kernels/partials.hpp"
#include "alibi/kernels/plan.hpp"
#include "alibi/kernels/row_fallback.hpp"
#include "alibi/kernels/skipping.hpp"
#include "alibi/kernels/tiles.hpp"

ALIBI_NAMESPACE_BEGIN
namespace kernels {

template <class Isa, class KV = float>
class UnitWorker {
  using O = simd::Ops<Isa>;
  using vec = typename O::vec;
  static constexpr int W = O::width;
  static constexpr int kKeyBlock = Tuning::kKeyBlock;

 public:
  // `bounds`: key-norm bounds when block skipping is on, else null. `partial`: the split-K state buffer
  // (plan.split), else null.
  UnitWorker(const detail::Problem& pr, const Plan<Isa>& plan, const KeyNormBounds<Isa>* bounds, float* partial)
      : pr_(pr),
        plan_(plan),
        kv_(pr),
        skipping_(pr, bounds),
        partial_(partial),
        group_(plan.layout.group),
        dim_vecs_(plan.dim_vecs),
        dim_pad_(plan.dim_pad),
        pack_stride_(plan.pack_stride),
        head_rows_(plan.head_rows),
        block_keys_(plan.block_keys) {
    const auto rows = static_cast<std::size_t>(static_cast<std::int64_t>(head_rows_) * plan.layout.heads);
    rows_.assign(rows, Row{});
    // Written before they are read: o_ by reset_softmax_state, qs_ by setup_rows (the real rows' and the
    // padding rows the streaming Q.K computes, the only ones read).
    o_.assign_for_overwrite(rows * static_cast<std::size_t>(dim_pad_));
    if (plan.stream) {
      qs_.assign_for_overwrite(rows * static_cast<std::size_t>(pr.head_dim));
      // Rows in lanes (Note [rows in lanes for the stream]), only where a unit's rows can fill a vector (no
      // unit has more rows than the plan's): Qs^T per head, one head's key tile, per head its fold. Each is
      // written before it is read (setup_rows, load_key_tile, stream_scores_rows_in_lanes), and a decode's
      // start-up should not fill them.
      if (stream_rows_fill_vector(plan.rows_per_head)) {
        qst_.assign_for_overwrite(rows * static_cast<std::size_t>(pr.head_dim));
        const std::size_t dim_chunks = (static_cast<std::size_t>(pr.head_dim) + W - 1) / W;
        stream_key_tile_.assign_for_overwrite(dim_chunks * W * W);
        stream_head_fold_.assign_for_overwrite(2 * static_cast<std::size_t>(plan.layout.heads) * W);
      }
      // A row's S covers the block's keys in whole vectors (Note [keys in lanes]).
      stream_row_stride_ = (static_cast<std::int64_t>(block_keys_) + W - 1) / W * W;
      stream_st_stride_ = Tuning::kStreamMaxRows * stream_row_stride_;
      stream_st_.assign(static_cast<std::size_t>(stream_st_stride_ * plan.layout.heads), 0.0f);
      const std::size_t head_rows = static_cast<std::size_t>(plan.layout.heads) * Tuning::kStreamMaxRows;
      stream_lanes_.assign((head_rows * kStreamRowVecs + 1) * W, 0.0f);
      stream_lane_offsets_at_ = static_cast<std::int64_t>(head_rows) * kStreamRowVecs * W;
      for (int l = 0; l < W; ++l) stream_lanes_.data()[stream_lane_offsets_at_ + l] = static_cast<float>(l);
      stream_heads_.assign(static_cast<std::size_t>(plan.layout.heads), StreamHead{});
      stream_mask_.assign(head_rows, 0);
      stream_fold_.assign(4 * static_cast<std::size_t>(W), 0.0f);
      stream_key_rows_.assign(static_cast<std::size_t>(stream_row_stride_), nullptr);
      stream_value_rows_.assign(static_cast<std::size_t>(stream_row_stride_), nullptr);
      stream_group_keys_.assign(static_cast<std::size_t>(W), nullptr);
      stream_ahead_key_rows_.assign(static_cast<std::size_t>(W), nullptr);
      stream_ahead_value_rows_.assign(static_cast<std::size_t>(W), nullptr);
    } else {
      qt_.assign(rows * static_cast<std::size_t>(pr.head_dim), 0.0f);
      st_.assign(static_cast<std::size_t>(head_rows_) * kKeyBlock, 0.0f);
      k_pack_.assign(static_cast<std::size_t>(plan.layout.heads * kKeyBlock * pack_stride_), 0.0f);
      v_pack_.assign(static_cast<std::size_t>(plan.layout.heads * kKeyBlock * pack_stride_), 0.0f);
    }
    for (auto* lane : {&max_, &sum_, &neg_slope_, &dist_, &lo_f_, &hi_f_}) lane->assign(rows, 0.0f);
    lo_.assign(rows, 0);
    hi_.assign(rows, 0);
    alpha_.assign(static_cast<std::size_t>(W), 0.0f);
    head_active_.assign(static_cast<std::size_t>(plan.layout.heads), 0);
    key_range_.assign(static_cast<std::size_t>(head_rows_) + 1, {0, 0});  // more than a group's P.V tiles
    if (plan.chunks > 1) {
      merge_weights_.assign(static_cast<std::size_t>(plan.chunks), 0.0f);
      if (!plan.split)
        chunk_states_.assign(static_cast<std::size_t>(plan.chunks * plan.partial_floats_per_piece()), 0.0f);
    }
  }

  // Computes piece `piece`: with split-K, chunk piece % chunks of unit piece / chunks into its partial
  // state; else unit `piece`, chunk by chunk when its keys span several, into its output rows.
  void run_piece(std::int64_t piece) {
    const std::int64_t chunks = plan_.chunks;
    const std::int64_t stride = plan_.partial_floats_per_piece();
    const std::int64_t unit = plan_.split ? piece / chunks : piece;
    const UnitCoords u = plan_.coords(pr_, unit);
    const int num_rows = head_rows_ * u.kv_heads;  // with padding lanes
    kv_.bind(u.b, u.kv_head0);
    // The pieces of a unit share its rows: consecutive pieces on one thread set them up once.
    if (unit != set_up_unit_) {
      setup_rows(u);
      set_up_unit_ = unit;
    }
    if (plan_.split) {
      const std::int64_t chunk = piece % chunks;
      run_chunk(u, num_rows, chunk);
      save_partial(num_rows, partial_ + piece * stride);
      return;
    }
    if (chunks == 1) {
      run_chunk(u, num_rows, 0);
      finish_rows(num_rows);
      return;
    }
    // The chunks some row of the unit sees; the others are empty for every row and stay out of the merge.
    std::int64_t union_lo = pr_.kv_len, union_hi = 0;
    for (int r = 0; r < num_rows; ++r) {
      const Row& row = rows_.data()[r];
      if (!row.real || row.lo >= row.hi) continue;
      union_lo = std::min(union_lo, row.lo);
      union_hi = std::max(union_hi, row.hi);
    }
    if (union_lo >= union_hi) {
      run_chunk(u, num_rows, 0);
      finish_rows(num_rows);
      return;
    }
    const std::int64_t c0 = union_lo / plan_.kv_chunk, c1 = (union_hi - 1) / plan_.kv_chunk + 1;
    for (std::int64_t c = c0; c < c1; ++c) {
      run_chunk(u, num_rows, c);
      save_partial(num_rows, chunk_states_.data() + c * stride);
    }
    merge_unit<Isa, KV>(pr_, plan_, chunk_states_.data(), c0, c1, unit, merge_weights_.data());
  }

 private:
  // Runs the online softmax of the unit's rows (set up) over the keys of chunk `chunk` they see (all keys
  // with a single chunk), leaving each row's running state in max_, sum_ and o_.
  void run_chunk(const UnitCoords& u, int num_rows, std::int64_t chunk) {
    reset_softmax_state(num_rows);
    std::int64_t union_lo = pr_.kv_len, union_hi = 0;
    for (int r = 0; r < num_rows; ++r) {
      const Row& row = rows_.data()[r];
      if (!row.real || row.lo >= row.hi) continue;
      union_lo = std::min(union_lo, row.lo);
      union_hi = std::max(union_hi, row.hi);
    }
    // The chunk's keys.
    const std::int64_t piece_lo = plan_.kv_chunk > 0 ? chunk * plan_.kv_chunk : 0;
    const std::int64_t piece_hi = plan_.kv_chunk > 0 ? std::min(pr_.kv_len, piece_lo + plan_.kv_chunk) : pr_.kv_len;
    union_lo = std::max(union_lo, piece_lo);
    union_hi = std::min(union_hi, piece_hi);
    // Newest keys first, for either mask (Note [block skipping]): the order depends on no row, so every row
    // folds its visible blocks in the same order whatever rows share its unit (Note [batch invariance]).
    // Visited keys are [left, right), right = union_hi throughout.
    std::int64_t left = union_hi;
    const std::int64_t right = union_hi;
    // A chunk far from the queries may be negligible as a whole (tested against the logit floors).
    const bool skip_piece =
        skipping_.on() && plan_.kv_chunk > 0 && rows_finished(num_rows, left, right, piece_lo, piece_hi);
    // The block before visited keys [l, right): from a multiple of block_keys_ (Note [batch invariance]).
    const std::int64_t block = block_keys_;
    auto next_block = [&](std::int64_t l, std::int64_t& j0, std::int64_t& j1) {
      j0 = std::max(union_lo, (l - 1) / block * block);
      j1 = l;
    };
    while (!skip_piece && left > union_lo) {
      std::int64_t j0, j1;
      next_block(left, j0, j1);
      left = j0;
      if (plan_.stream) {
        for (int hh = 0; hh < u.kv_heads; ++hh) prepare_lanes(hh, j0, static_cast<int>(j1 - j0));
        std::int64_t ahead0 = 0, ahead1 = 0;  // the block after this one, streamed in while this one computes
        if (left > union_lo) next_block(left, ahead0, ahead1);
        stream_block(j0, u.kv_heads, ahead0, static_cast<int>(ahead1 - ahead0));
        if (skipping_.on() && rows_finished(num_rows, left, right, piece_lo, piece_hi)) break;
        continue;
      }
      // One kv head per unit: its rows are strided, which the hardware prefetchers follow poorly, so warm
      // the caches with the block that most likely comes next. Units spanning several heads sweep memory
      // in order, which the hardware prefetchers handle better than we do.
      if (u.kv_heads == 1) {
        const std::int64_t next = std::max(union_lo, j0 - block_keys_);
        const std::int64_t next_end = j0;
        kv_.prefetch(next, next_end);
      }
      const int nk = static_cast<int>(j1 - j0);
      bool any_head = false;
      for (int hh = 0; hh < u.kv_heads; ++hh) {
        head_active_.data()[hh] = prepare_lanes(hh, j0, nk);
        any_head |= head_active_.data()[hh] != 0;
      }
      const bool non_finite_values = any_head && kv_.pack_block(j0, nk, u.kv_heads, head_active_.data(), k_pack_.data(),
                                                                v_pack_.data(), kKeyBlock, pack_stride_);
      for (int hh = 0; hh < u.kv_heads; ++hh) {
        if (!head_active_.data()[hh]) continue;
        const std::int64_t at = static_cast<std::int64_t>(hh) * kKeyBlock * pack_stride_;
        process_block(hh, k_pack_.data() + at, v_pack_.data() + at, non_finite_values);
      }
      if (skipping_.on() && rows_finished(num_rows, left, right, piece_lo, piece_hi)) break;
    }
  }
  struct Row {
    float* out;
    std::int64_t b, i;  // batch and query row
    int h;              // query head
    std::int64_t lo;    // visible keys: [lo, hi)
    std::int64_t hi;
    float* lse;           // AttentionOptions::lse of the row, or null
    double dropped_bias;  // the constant left out of the row's logits (Note [nearest-key frame])
    bool real;            // false for the lanes that pad a kv head's rows to whole vectors
    bool done;            // block skipping: the unvisited keys are negligible for this row
    SkipRow skip;
  };

  // Qs^T of a kv head is stored per Q.K group of qk_row_vecs row vectors, [head_dim][group rows], so the
  // slice a Q.K tile streams is contiguous. Lane l's first element and its stride:
  std::int64_t qt_offset(int l, std::int64_t dim) const {
    const int group_rows = O::qk_row_vecs * W;
    return static_cast<std::int64_t>(l / group_rows) * group_rows * dim + l % group_rows;
  }
  std::int64_t qt_stride(int l) const {
    const int group_rows = O::qk_row_vecs * W;
    return std::min(group_rows, head_rows_ - l / group_rows * group_rows);
  }

  void setup_rows(const UnitCoords& u) {
    const std::int64_t D = pr_.head_dim;
    const std::int64_t b = u.b;
    const int rows_per_head = static_cast<int>((u.i1 - u.i0) * group_);
    // The unit's query rows sit num_heads * head_dim floats apart and are usually cold: request them all
    // first so the misses overlap (the transposing loop below would otherwise wait on one row at a time).
    for (std::int64_t i = u.i0; i < u.i1; ++i)
      for (int h = u.kv_head0 * group_; h < (u.kv_head0 + u.kv_heads) * group_; ++h)
        KvSource<Isa>::prefetch_span(pr_.q + ((b * pr_.q_len + i) * pr_.num_heads + h) * D, D);
    const Row* previous = nullptr;  // the last row whose skipping edges were set
    for (int hh = 0; hh < u.kv_heads; ++hh) {
      const int kv_head = u.kv_head0 + hh;
      // Qs^T is the packed path's (the streaming decode has no qt_).
      float* qt = plan_.stream ? nullptr : qt_.data() + static_cast<std::int64_t>(hh) * D * head_rows_;
      for (int l = 0; l < head_rows_; ++l) {
        const int r = hh * head_rows_ + l;
        float* qt_lane = qt == nullptr ? nullptr : qt + qt_offset(l, D);  // then every qt_stride(l) floats
        const std::int64_t qt_step = qt_stride(l);
        Row& row = rows_.data()[r];
        if (l >= rows_per_head) {  // padding lane: sees no key, never written out
          row = Row{};
          row.real = false;
          row.done = true;
          row.skip.log_budget = -HUGE_VAL;
          row.skip.logit_floor = -std::numeric_limits<float>::infinity();
          row.skip.lo_edge = row.skip.hi_edge = HUGE_VALF;
          neg_slope_.data()[r] = 0.0f;
          if (qt_lane != nullptr)
            for (std::int64_t d = 0; d < D; ++d) qt_lane[d * qt_step] = 0.0f;
          else if (l < stream_rows_computed(rows_per_head))  // padding rows the streaming Q.K computes
            for (std::int64_t d = 0; d < D; ++d) {
              qs_.data()[static_cast<std::int64_t>(r) * D + d] = 0.0f;
              if (stream_rows_fill_vector(rows_per_head))
                qst_.data()[(static_cast<std::int64_t>(hh) * D + d) * W + l] = 0.0f;
            }
          continue;
        }
        const std::int64_t i = u.i0 + l / group_;
        const int h = kv_head * group_ + l % group_;
        const std::int64_t offset = ((b * pr_.q_len + i) * pr_.num_heads + h) * D;
        row.out = pr_.out + offset;
        row.b = b;
        row.i = i;
        row.h = h;
        row.real = true;
        row.lse = pr_.lse == nullptr ? nullptr : pr_.lse + offset / D;
        const std::int64_t pos = pr_.q_pos0 + i;
        detail::visible_keys(pr_, pos, row.lo, row.hi);
        // The row sits at its nearest visible key (Note [nearest-key frame]).
        row.skip.pos = row.lo < row.hi ? detail::nearest_visible_key(pos, row.lo, row.hi) : pos;
        row.dropped_bias = detail::dropped_bias(pr_.slopes[h], pos, row.lo, row.hi);
        row.skip.bk = b * pr_.num_kv_heads + kv_head;
        row.skip.slope = pr_.slopes[h];
        neg_slope_.data()[r] = -pr_.slopes[h];
        const float* q = pr_.q + offset;
        const float scale = pr_.scale;  // a local: the stores through qt_lane could alias a member
        if (qt_lane != nullptr) {
          for (std::int64_t d = 0; d < D; ++d) qt_lane[d * qt_step] = q[d] * scale;
        } else {  // the streaming Q.K reads Qs row by row
          // In vectors: a scalar loop here is a fifth of a 1-key decode's instructions at -O2.
          float* qs = qs_.data() + static_cast<std::int64_t>(r) * D;
          const vec scale_lanes = O::set1(scale);
          std::int64_t d = 0;
          for (; d + W <= D; d += W) O::store(qs + d, O::mul(O::load(q + d), scale_lanes));
          for (; d < D; ++d) qs[d] = q[d] * scale;
          if (stream_rows_fill_vector(rows_per_head)) {
            float* qst = qst_.data() + static_cast<std::int64_t>(hh) * D * W + l;
            for (d = 0; d < D; ++d) qst[d * W] = qs[d];
          }
        }
        row.skip.q_norm = 0.0;
        if (skipping_.on()) {  // only the skipping bound needs it
          // Four independent chains (one would be latency-bound), element d in chain d % 4, written as
          // steps of four so the compiler keeps the chains in one vector.
          double q_sq[4] = {0.0, 0.0, 0.0, 0.0};
          std::int64_t d = 0;
          for (; d + 4 <= D; d += 4)
            for (int c = 0; c < 4; ++c) {
              const double qs = q[d + c] * scale;
              q_sq[c] += qs * qs;
            }
          for (; d < D; ++d) {
            const double qs = q[d] * scale;
            q_sq[d % 4] += qs * qs;
          }
          row.skip.q_norm = std::sqrt((q_sq[0] + q_sq[1]) + (q_sq[2] + q_sq[3])) * (1.0 + 1e-6);
        }
        row.skip.log_budget = skipping_.log_budget(h);
        // Rows whose keys span several chunks reduce each chunk alone; the floor stands in for the max of
        // the others (a property of the row alone, so every way of batching it makes the same decisions).
        const bool chunked =
            plan_.kv_chunk > 0 && row.lo < row.hi && row.lo / plan_.kv_chunk != (row.hi - 1) / plan_.kv_chunk;
        row.skip.logit_floor = skipping_.on() && chunked ? Skipping<Isa>::logit_floor(pr_, kv_, b, i, h, row.lo, row.hi)
                                                         : -std::numeric_limits<float>::infinity();
        if (row.skip.log_budget != -HUGE_VAL && row.lo < row.hi) {
          skipping_.set_edges(row.skip, row.lo, row.hi, previous == nullptr ? nullptr : &previous->skip,
                              previous == nullptr ? 0 : previous->lo, previous == nullptr ? 0 : previous->hi);
          previous = &row;
        }
      }
    }
  }

  // Running max, sum and output of every row back to "no key seen"; padding lanes stay done. The streaming
  // decode never touches a padding lane's output (the packed tiles carry it along: it must be finite).
  void reset_softmax_state(int num_rows) {
    for (int r = 0; r < num_rows; ++r) {
      Row& row = rows_.data()[r];
      row.done = !row.real;
      max_.data()[r] = -std::numeric_limits<float>::infinity();
      sum_.data()[r] = 0.0f;
      if (plan_.stream && !row.real) continue;
      float* o = o_.data() + r * dim_pad_;
      for (std::int64_t d = 0; d < dim_pad_; ++d) o[d] = 0.0f;
    }
  }

  // Marks the rows whose unvisited keys are negligible (Skipping::done) after the piece [piece_lo, piece_hi)
  // visited [left, right); true when every row of the unit is done or has nothing left to visit.
  bool rows_finished(int num_rows, std::int64_t left, std::int64_t right, std::int64_t piece_lo,
                     std::int64_t piece_hi) {
    bool all = true;
    for (int r = 0; r < num_rows; ++r) {
      Row& row = rows_.data()[r];
      if (row.done) continue;
      row.done = skipping_.done(row.skip, row.lo, row.hi, max_.data()[r], left, right, piece_lo, piece_hi);
      all = all && row.done;
    }
    return all;
  }

  // Sets the lanes of kv head hh for keys [j0, j0 + nk): each row's visible part of the block relative to
  // j0 (empty for padding lanes, rows that see none of it and rows done skipping) and its distance from
  // key j0. False if no row of the head sees the block.
  bool prepare_lanes(int hh, std::int64_t j0, int nk) {
    bool any = false;
    for (int r = hh * head_rows_; r < (hh + 1) * head_rows_; ++r) {
      const Row& row = rows_.data()[r];
      const bool active = !row.done && row.lo < j0 + nk && row.hi > j0;
      const int a = active ? static_cast<int>(std::max<std::int64_t>(row.lo - j0, 0)) : 0;
      const int b = active ? static_cast<int>(std::min<std::int64_t>(row.hi - j0, nk)) : 0;
      lo_.data()[r] = a;
      hi_.data()[r] = b;
      lo_f_.data()[r] = static_cast<float>(a);
      hi_f_.data()[r] = static_cast<float>(b);
      // From the integer difference: exact below 2^24, where every fp32 key position would not be.
      dist_.data()[r] = row.real ? static_cast<float>(row.skip.pos - j0) : 0.0f;
      any |= active;
    }
    return any;
  }

  // Keys [lo, hi) of the block that some row of [r0, r1) sees; empty if none.
  std::pair<int, int> key_range(int r0, int r1) const {
    int ja = std::numeric_limits<int>::max(), jb = 0;
    for (int r = r0; r < r1; ++r) {
      if (lo_.data()[r] >= hi_.data()[r]) continue;
      ja = std::min(ja, lo_.data()[r]);
      jb = std::max(jb, hi_.data()[r]);
    }
    return {ja, jb};
  }

  // Folds the packed block (prepare_lanes set its rows' lanes) into the rows of kv head hh. Rows go in
  // groups of qk_row_vecs vectors: S^T of the group, its softmax, then its P.V, so S^T stays in L1.
  // `non_finite_values`: some value of the block is inf or NaN.
  void process_block(int hh, const float* k_packed, const float* v_packed, bool non_finite_values) {
    constexpr int QC = O::qk_row_vecs;
    const int dim = pr_.head_dim;
    const int first = hh * head_rows_;
    const int row_vecs = head_rows_ / W;
    const float* qt = qt_.data() + static_cast<std::int64_t>(hh) * dim * head_rows_;
    for (int g0 = 0; g0 < row_vecs; g0 += QC) {
      const int group_vecs = std::min(QC, row_vecs - g0);
      const int r0 = first + g0 * W, r1 = r0 + group_vecs * W;
      // Plain ints, not a structured binding: C++17 lambdas may not capture those (clang rejects it).
      const std::pair<int, int> range = key_range(r0, r1);
      const int ja = range.first, jb = range.second;
      if (ja >= jb) continue;
      float* st = st_.data() + g0 * W;  // S^T[j][row - first] = st[j * head_rows_ + row - r0]
      const float* qt_group = qt + static_cast<std::int64_t>(g0) * W * dim;
      // The bias and the mask are applied as each Q.K tile leaves its registers.
      BiasEpilogue<false> bias;
      bias.dist0 = dist_.data() + r0;
      bias.neg_slope = neg_slope_.data() + r0;
      bias.lo = lo_f_.data() + r0;
      bias.hi = hi_f_.data() + r0;
      for (int c = 0; c < group_vecs; ++c) {
        bias.needs_mask[c] = false;
        for (int r = r0 + c * W; r < r0 + (c + 1) * W; ++r)
          bias.needs_mask[c] = bias.needs_mask[c] || lo_.data()[r] > ja || hi_.data()[r] < jb;
      }
      vec block_max[QC], overflow[QC];
      qk_group(bias, group_vecs, k_packed, qt_group, st, ja, jb, block_max, overflow);
      // A non-finite dot product somewhere in the group (rare): the same tiles again, now flagging only the
      // lanes that see the key, so that no row is recomputed (with other bits) for a key it does not see.
      bool any_overflow = false;
      for (int c = 0; c < group_vecs; ++c) any_overflow = any_overflow || O::reduce_add(overflow[c]) != 0.0f;
      if (any_overflow) {
        BiasEpilogue<true> visible_only;
        visible_only.dist0 = bias.dist0;
        visible_only.neg_slope = bias.neg_slope;
        visible_only.lo = bias.lo;
        visible_only.hi = bias.hi;
        for (int c = 0; c < group_vecs; ++c) visible_only.needs_mask[c] = bias.needs_mask[c];
        qk_group(visible_only, group_vecs, k_packed, qt_group, st, ja, jb, block_max, overflow);
      }
      for (int c = 0; c < group_vecs; ++c) softmax_lanes(r0 + c * W, st + c * W, ja, jb, block_max[c], overflow[c]);
      accumulate_pv(r0, r1, st, v_packed, non_finite_values);
    }
  }

  // Note [streaming decode]: folds keys [j0, j0 + nk) of the unit's kv heads, read in place, into their rows
  // (prepare_lanes has set the rows' lanes). Q.K first, key-major across the heads (stream_scores), then
  // the softmax and P.V head by head (stream_softmax, stream_pv), each head's whole block through tight
  // loops with its rows' state in registers. Keys [ahead0, ahead0 + ahead_keys) are the next block's
  // (Plan::stream_prefetch requests its first keys while the last group of this one computes).
  void stream_block(std::int64_t j0, int heads, std::int64_t ahead0, int ahead_keys) {
    // Every head of a unit has the same real rows (one query block per unit), a prefix of its lanes.
    int rows = 0;
    while (rows < head_rows_ && rows_.data()[rows].real) ++rows;
    if constexpr (Plan<Isa>::can_stream) {
      with_stream_rows(rows, [&](auto n) {
        constexpr int R = decltype(n)::value;
        if (!stream_block_keys<R>(j0, heads)) return;
        if constexpr (R == W) {  // Note [rows in lanes for the stream]
          stream_scores_rows_in_lanes(heads, ahead0, plan_.stream_prefetch ? ahead_keys : 0);
          for (int hh = 0; hh < heads; ++hh) {
            stream_softmax_rows_in_lanes(hh);
            stream_pv_head<R>(hh, rows, W, 1);
          }
        } else {
          stream_scores<R>(heads, ahead0, plan_.stream_prefetch ? ahead_keys : 0);
          for (int hh = 0; hh < heads; ++hh) {
            stream_softmax<R>(hh);
            stream_pv_head<R>(hh, rows, 1, stream_row_stride_);
          }
        }
      });
    }
  }

  // The streaming kernels are compiled for 1-4, 8 and 16 rows per kv head (not for each of the 16 counts:
  // compile time and code size): `rows` real rows are computed as the next of those counts, the rows past them padding
  // lanes (zero queries, no visible key) whose S is masked and which join no P.V.
  static constexpr int stream_rows_computed(int rows) { return rows <= 4 ? rows : rows <= 8 ? 8 : 16; }
  static_assert(Tuning::kStreamMaxRows == 16, "stream_rows_computed covers up to 16 rows");
  // A kv head's streaming rows are computed in the lanes of one vector (Note [rows in lanes for the stream]).
  static constexpr bool stream_rows_fill_vector(int rows) { return stream_rows_computed(rows) == W; }
  // Calls f(std::integral_constant<int, stream_rows_computed(rows)>).
  template <class F>
  static ALIBI_ALWAYS_INLINE void with_stream_rows(int rows, F&& f) {
    if (rows <= 4)
      with_count<4>(rows, f);
    else if (rows <= 8)
      f(std::integral_constant<int, 8>{});
    else
      f(std::integral_constant<int, 16>{});
  }

  // Note [keys in lanes]: a streaming head with fewer rows than lanes keeps S of each of its rows separately, a row's
  // keys in the lanes of its vectors: Q.K reads W keys of K, transposes them in registers (Ops::transpose; 16-bit keys
  // are widened and transposed in one step, Ops::load_transposed_bf16/f16, with fewer shuffles: bfloat16
  // moves as pairs of values, float16 two keys per register on 16-lane vectors) and multiplies each dimension's vector
  // of W keys by the row's broadcast query element. So every (row, key) dot product is one FMA chain over d in order
  // from 0, the packed tiles' chain (Note [batch invariance]), with all lanes doing real work. The bias, the mask and
  // exp then run over vectors of real keys; a row's block sum adds its keys one by one in key order, as a
  // lane of the packed tiles does. With one row per head (multi-head attention's decode) that chain is the
  // only work in flight, each FMA waiting on the one before: two heads' chains run interleaved
  // (stream_dots_two_heads; Zen 5, 2026-12-05 twenty-fourth session, 32 heads of 128 in cache: AVX-512
  // bfloat16 with the pair transposes 0.73 of the time, AVX2 0.79-0.88; from memory unchanged).
  //
  // S of every head of the block covers the keys [ja, jb) that some row of the unit sees (StreamBlock), so
  // the heads' vectors line up key for key; a row that sees fewer of them has those lanes masked.

  // Note [page pairs]: the hardware L2 streamer follows one ascending run of lines per 4 KiB page. When a
  // key of the unit's heads is half a page (bfloat16 or float16 with 8 kv heads of 128), Q.K head by head
  // over W consecutive keys reads each page as two interleaved runs (head h of its first key, then of its
  // second), which the streamer does not follow, so K had to be requested by software, and those requests
  // compete with V's for the core's few line fill buffers. With Plan::stream_key_pairs, Q.K takes 2 W keys
  // in two passes, the even keys then the odd keys: each pass reads every page as one ascending run, the
  // streamer brings K in alone and only V is requested. Each (row, key) dot product is the same FMA chain,
  // and the two passes' vectors of S are interleaved back into key order before anything sums over keys,
  // so the bits are those of the single pass. AMD's prefetchers behave otherwise: there keys in order with K
  // requested too are faster, and the plan leaves page pairs out (Tuning, kernels/plan.hpp).

  // The block's keys some row of the unit sees, relative to its first key, and how many vectors of S
  // they fill (per row).
  struct StreamBlock {
    int ja, jb, vectors;
    int active_heads;  // heads some row of which sees a key of the block
  };
  // Per head of the block: the keys its rows see (empty: the head skips the block) and whether every row
  // sees exactly the block's [ja, jb).
  struct StreamHead {
    int ja, jb;
    bool same_keys;
    bool partial_lanes;  // rows in lanes: some lane (padding lanes too) sees only part of the block's keys
  };

  // Per (head, row): the row's -slope, distance and visible keys broadcast (4 vectors), then its block
  // max and overflow flags per key lane (2 vectors); after the heads of the widest unit (a unit may have
  // fewer), one vector of lane offsets 0..W-1, at stream_lane_offsets_at_.
  static constexpr int kStreamRowVecs = 6;
  float* stream_row_lanes(int hh, int r) {
    return stream_lanes_.data() + (static_cast<std::int64_t>(hh) * Tuning::kStreamMaxRows + r) * kStreamRowVecs * W;
  }
  // S, then P, of head hh: row r's keys at r * stream_row_stride_.
  float* stream_head_scores(int hh) { return stream_st_.data() + static_cast<std::int64_t>(hh) * stream_st_stride_; }

  // The block's keys (stream_block_) and heads (stream_heads_): false if no row sees a key of the block.
  template <int R>
  bool stream_block_keys(std::int64_t j0, int heads) {
    int ja = std::numeric_limits<int>::max(), jb = 0;
    for (int hh = 0; hh < heads; ++hh) {
      const int r0 = hh * head_rows_;
      const std::pair<int, int> range = key_range(r0, r0 + R);
      StreamHead& head = stream_heads_.data()[hh];
      head.ja = range.first;
      head.jb = range.second;
      if (head.ja >= head.jb) continue;
      ja = std::min(ja, head.ja);
      jb = std::max(jb, head.jb);
      bool same_keys = true;  // padding rows aside: they join no P.V
      for (int r = r0; r < r0 + R; ++r)
        same_keys = same_keys && (!rows_.data()[r].real || (lo_.data()[r] == head.ja && hi_.data()[r] == head.jb));
      head.same_keys = same_keys;
    }
    if (ja >= jb) return false;
    int active_heads = 0;
    for (int hh = 0; hh < heads; ++hh) active_heads += stream_heads_.data()[hh].ja < stream_heads_.data()[hh].jb;
    const int vectors = (jb - ja + W - 1) / W;
    // Where each key of the block lies (first bound head): consecutive keys are consecutive rows only
    // within a page, so every read goes through these. The lanes past jb of the last vector read key ja
    // again (their logits are masked).
    for (int j = ja; j < ja + vectors * W; ++j) {
      stream_key_rows_.data()[j] = kv_.bound_key(0, j0 + (j < jb ? j : ja));
      if (j < jb) stream_value_rows_.data()[j] = kv_.bound_value(0, j0 + j);
    }
    stream_block_ = StreamBlock{ja, jb, vectors, active_heads};
    stream_block_j0_ = j0;
    return true;
  }

  // The keys of the next group whose K and V a Q.K pass requests (Plan::stream_prefetch): the keys from
  // [first, first + W) (the block's, then the first ahead_keys of the next block at ahead0).
  // Returns whether there is a line to request.
  bool set_ahead_keys(int first, std::int64_t ahead0, int ahead_keys) {
    const int jb = stream_block_.jb;
    // Note [requests at page jumps]: with Plan::stream_prefetch_at_jumps, a group is requested only if some
    // key of it does not lie where a contiguous cache would put it relative to the key read before the
    // group (the last of [first - W, first), in this block). Over pages allocated in order the hardware
    // prefetchers then stream the keys alone, as they do for the contiguous cache, whose decode on AMD
    // cores runs without requests (Zen 5, 2026-12-05 twenty-fifth session: fp32, 8 kv heads of 128, pages
    // of 16 in pool order, 1.12-1.14 of the contiguous time with every group requested).
    // The current group's last real key (first > ja).
    const std::int64_t previous_key = stream_block_j0_ + std::min(first, jb) - 1;
    bool jumps = !plan_.stream_prefetch_at_jumps;
    bool any = false;
    for (int l = 0; l < W; ++l) {
      const int j = first + l;
      const bool in_block = j < jb, in_next = !in_block && j - jb < ahead_keys;
      const std::int64_t key = in_block ? stream_block_j0_ + j : ahead0 + (j - jb);
      const KV* row = in_block ? stream_key_rows_.data()[j] : in_next ? kv_.bound_key(0, key) : nullptr;
      stream_ahead_key_rows_.data()[l] = row;
      stream_ahead_value_rows_.data()[l] = in_block  ? stream_value_rows_.data()[j]
                                           : in_next ? kv_.bound_value(0, key)
                                                     : nullptr;
      if (row == nullptr) continue;
      any = true;
      jumps = jumps || !kv_.follows(previous_key, key);
    }
    return any && jumps;
  }

  // S = Qs K^T + bias, masked, of every head of the unit over the block at j0, with its maximum and
  // overflow flags per lane. Key-major: each few keys of all heads before the next ones, so the reads sweep
  // memory in order (a key of all heads is contiguous; with fp32 and 8 kv heads of 128, exactly a 4 KiB
  // page, which head by head would be walked once per head).
  // With Plan::stream_prefetch, each group of W keys requests the next group's K and V as it goes (the last
  // group: the first keys of the next block, [ahead0, ahead0 + ahead_keys)).
  // Keys in lanes (Note [keys in lanes]): fewer rows than lanes.
  template <int R>
  void stream_scores(int heads, std::int64_t ahead0, int ahead_keys) {
    const int ja = stream_block_.ja, jb = stream_block_.jb;
    const float minus_inf = -std::numeric_limits<float>::infinity();
    for (int hh = 0; hh < heads; ++hh) {
      if (stream_heads_.data()[hh].ja >= stream_heads_.data()[hh].jb) continue;
      for (int r = 0; r < R; ++r) {
        const int row = hh * head_rows_ + r;
        float* lanes = stream_row_lanes(hh, r);
        const float values[kStreamRowVecs] = {neg_slope_.data()[row], dist_.data()[row], lo_f_.data()[row],
                                              hi_f_.data()[row],      minus_inf,         0.0f};
        for (int v = 0; v < kStreamRowVecs; ++v) O::store(lanes + v * W, O::set1(values[v]));
        stream_mask_.data()[hh * Tuning::kStreamMaxRows + r] = lo_.data()[row] > ja || hi_.data()[row] < jb;
      }
    }
    const vec lane_offsets = O::load(stream_lanes_.data() + stream_lane_offsets_at_);
    const std::int64_t dim = pr_.head_dim;
    // Vector v of S (keys [ja + v W, ja + (v + 1) W)) of head hh. One head and W keys at a time: the R
    // FMA chains wait on their latency, but wider tiles (two heads, or 2 W keys) spill and run slower
    // (bench/RESULTS.md, 2026-12-01 fifth session).
    const KV* const* group_keys = stream_group_keys_.data();
    // A pass computes vector v + pass of S.
    for_each_stream_pass(heads, ahead0, ahead_keys, [&](int v, int first_key, int pass, int passes) {
      const vec key_lanes =
          O::fma(lane_offsets, O::set1(static_cast<float>(passes)), O::set1(static_cast<float>(first_key + pass)));
      // Bias, mask and running max of head hh's rows over the pass's keys, from their dot products.
      auto finish_head = [&](int hh, vec(&acc)[R]) {
        float* s = stream_head_scores(hh);
#pragma GCC unroll 16
        for (int r = 0; r < R; ++r) {
          float* lanes = stream_row_lanes(hh, r);
          BiasEpilogue<true> bias;
          bias.neg_slope = lanes;
          bias.dist0 = lanes + W;
          bias.lo = lanes + 2 * W;
          bias.hi = lanes + 3 * W;
          bias.needs_mask[0] = first_key + passes * W > jb || stream_mask_.data()[hh * Tuning::kStreamMaxRows + r] != 0;
          vec overflow = O::load(lanes + 5 * W);
          const vec x = bias.apply(acc[r], key_lanes, 0, overflow);
          float* s_row = s + r * stream_row_stride_ + v * W;
          if (pass == 0) {
            O::store(s_row, x);  // with page pairs, the even keys wait here for the odd ones
          } else {
            vec in_order_lo, in_order_hi;
            O::interleave(O::load(s_row), x, in_order_lo, in_order_hi);
            O::store(s_row, in_order_lo);
            O::store(s_row + W, in_order_hi);
          }
          O::store(lanes + 4 * W, O::max(O::load(lanes + 4 * W), x));
          O::store(lanes + 5 * W, overflow);
        }
      };
      const float* qs = qs_.data();
      const std::int64_t q_head_stride = static_cast<std::int64_t>(head_rows_) * dim;
      int pending = -1;  // with one row per head: an active head waiting for a second one
      for (int hh = 0; hh < heads; ++hh) {
        if (stream_heads_.data()[hh].ja >= stream_heads_.data()[hh].jb) continue;
        if constexpr (R == 1) {
          if (pending < 0) {
            pending = hh;
            continue;
          }
          vec acc_a[R], acc_b[R];
          stream_dots_two_heads<R>(qs + pending * q_head_stride, qs + hh * q_head_stride, group_keys, pending * dim,
                                   hh * dim, acc_a, acc_b);
          finish_head(pending, acc_a);
          finish_head(hh, acc_b);
          pending = -1;
        } else {
          vec acc[R];
          stream_dots<R>(qs + hh * q_head_stride, group_keys, hh * dim, acc);
          finish_head(hh, acc);
        }
      }
      if (pending >= 0) {
        vec acc[R];
        stream_dots<R>(qs + pending * q_head_stride, group_keys, pending * dim, acc);
        finish_head(pending, acc);
      }
    });
  }

  // Calls f(v, first_key, pass, passes) for each Q.K pass over the block's keys, in order: a pass takes the W
  // keys first_key + pass + l * passes (passes 2: Note [page pairs]) from vector v of the block on, with
  // stream_group_keys_ set to them and, with Plan::stream_prefetch, the next group's requests started.
  template <class F>
  ALIBI_ALWAYS_INLINE void for_each_stream_pass(int heads, std::int64_t ahead0, int ahead_keys, F&& f) {
    const int ja = stream_block_.ja, vectors = stream_block_.vectors;
    const KV** group_keys = stream_group_keys_.data();
    for (int v = 0; v < vectors;) {
      const int first_key = ja + v * W;
      const int passes = plan_.stream_key_pairs && v + 1 < vectors ? 2 : 1;
      for (int pass = 0; pass < passes; ++pass) {
        for (int l = 0; l < W; ++l) group_keys[l] = stream_key_rows_.data()[first_key + pass + l * passes];
        if (plan_.stream_prefetch)
          start_ahead_requests(heads, stream_block_.active_heads,
                               set_ahead_keys(first_key + (passes + pass) * W, ahead0, ahead_keys));
        f(v, first_key, pass, passes);
      }
      v += passes;
    }
  }

  // Note [rows in lanes for the stream]: a streaming head with a vector's worth of rows (16 on 16-lane
  // vectors, 8 on 8-lane ones) keeps them in the lanes, as the packed tiles do (Note [rows in lanes]): per
  // key, one FMA per dimension of the broadcast key element times the vector of the rows' queries (Qs^T,
  // qst_), with no transpose of the keys and one vector of S per key (S^T, key-major). With keys in lanes
  // the same Q.K needed a transpose per W keys and a broadcast query element per row and dimension, about
  // twice the time per key (bench/RESULTS.md, 2026-12-04 twenty-first session). The bias, the mask, the
  // softmax and the block sums are the packed tiles' (BiasEpilogue, softmax_lanes), so each (row, key) gets
  // the same operations in the same order as on every other path (Note [batch invariance]).
  //
  // Each head's W keys are first copied (16-bit ones widened) into a small tile, dimension chunk by chunk
  // (W dimensions of each of the W keys contiguous: stream_key_tile_), so that the Q.K reads each key
  // element at a fixed offset from one pointer whatever head_dim and the layout of the cache.
  void stream_scores_rows_in_lanes(int heads, std::int64_t ahead0, int ahead_keys) {
    const int ja = stream_block_.ja, jb = stream_block_.jb;
    const int dim = pr_.head_dim;
    for (int hh = 0; hh < heads; ++hh) {
      StreamHead& head = stream_heads_.data()[hh];
      if (head.ja >= head.jb) continue;
      float* fold = stream_head_fold_.data() + 2 * hh * W;  // the head's block max, then overflow flags
      O::store(fold, O::set1(-std::numeric_limits<float>::infinity()));
      O::store(fold + W, O::zero());
      head.partial_lanes = false;
      for (int r = hh * head_rows_; r < (hh + 1) * head_rows_; ++r)
        head.partial_lanes = head.partial_lanes || lo_.data()[r] > ja || hi_.data()[r] < jb;
    }
    const KV* const* group_keys = stream_group_keys_.data();
    for_each_stream_pass(heads, ahead0, ahead_keys, [&](int, int first_key, int pass, int passes) {
      for (int hh = 0; hh < heads; ++hh) {
        if (stream_heads_.data()[hh].ja >= stream_heads_.data()[hh].jb) continue;
        const int r0 = hh * head_rows_;
        load_key_tile(group_keys, static_cast<std::int64_t>(hh) * dim);
        vec acc[W];
        stream_dots_rows_in_lanes(qst_.data() + static_cast<std::int64_t>(hh) * dim * W, acc);
        BiasEpilogue<true> bias;
        bias.neg_slope = neg_slope_.data() + r0;
        bias.dist0 = dist_.data() + r0;
        bias.lo = lo_f_.data() + r0;
        bias.hi = hi_f_.data() + r0;
        bias.needs_mask[0] = first_key + passes * W > jb || stream_heads_.data()[hh].partial_lanes;
        float* fold = stream_head_fold_.data() + 2 * hh * W;
        vec block_max = O::load(fold), overflow = O::load(fold + W);
        float* st = stream_head_scores(hh);
#pragma GCC unroll 16
        for (int l = 0; l < W; ++l) {
          const int key = first_key + pass + l * passes;
          const vec x = bias.apply(acc[l], O::set1(static_cast<float>(key)), 0, overflow);
          O::store(st + (key - ja) * W, x);
          block_max = O::max(block_max, x);
        }
        O::store(fold, block_max);
        O::store(fold + W, overflow);
      }
    });
  }

  // The W keys' elements [offset, offset + head_dim) into stream_key_tile_: chunk c of W dimensions of key
  // l at (c W + l) W, widened to fp32; the last chunk's dimensions past head_dim are zeros.
  ALIBI_ALWAYS_INLINE void load_key_tile(const KV* const* key, std::int64_t offset) {
    using E = Elements<Isa, KV>;
    const int dim = pr_.head_dim;
    float* tile = stream_key_tile_.data();
    int c = 0;
    for (; (c + 1) * W <= dim; ++c)
#pragma GCC unroll 16
      for (int l = 0; l < W; ++l) O::store(tile + (c * W + l) * W, E::load(key[l] + offset + c * W));
    if (c * W < dim)
      for (int l = 0; l < W; ++l)
        O::store(tile + (c * W + l) * W, E::load_partial(key[l] + offset + c * W, dim - c * W));
  }

  // acc[l] lane r = Qs[r] . key_l over the key tile (load_key_tile) for the W rows of qst ([head_dim][W]):
  // for each dimension d in order one FMA of the broadcast key element by the rows' query elements. With
  // Plan::stream_prefetch each chunk of W dimensions requests its share of the next group, as stream_dots
  // does per step (Note [request order]).
  ALIBI_ALWAYS_INLINE void stream_dots_rows_in_lanes(const float* qst, vec (&acc)[W]) {
    const int dim = pr_.head_dim;
    const float* tile = stream_key_tile_.data();
#pragma GCC unroll 16
    for (int l = 0; l < W; ++l) acc[l] = O::zero();
    int c = 0;
    for (; (c + 1) * W <= dim; ++c) {
      if (plan_.stream_prefetch) request_ahead_step();
      const float* k = tile + c * W * W;
      const float* q = qst + c * W * W;
#pragma GCC unroll 16
      for (int i = 0; i < W; ++i) {
        const vec qd = O::load(q + i * W);
#pragma GCC unroll 16
        for (int l = 0; l < W; ++l) acc[l] = O::fma(O::set1(k[l * W + i]), qd, acc[l]);
      }
    }
    if (c * W < dim) {
      const float* k = tile + c * W * W;
      const float* q = qst + c * W * W;
      for (int i = 0; i < dim - c * W; ++i) {
        const vec qd = O::load(q + i * W);
#pragma GCC unroll 16
        for (int l = 0; l < W; ++l) acc[l] = O::fma(O::set1(k[l * W + i]), qd, acc[l]);
      }
    }
  }

  // The online softmax of head hh's rows over the block with rows in lanes (stream_scores_rows_in_lanes left
  // S^T in place), S^T turned into P^T: the packed tiles' softmax_lanes over the keys some row of the head
  // sees (a row adds exact zeros for the keys it does not see).
  void stream_softmax_rows_in_lanes(int hh) {
    const StreamHead& head = stream_heads_.data()[hh];
    if (head.ja >= head.jb) return;
    const float* fold = stream_head_fold_.data() + 2 * hh * W;
    softmax_lanes(hh * head_rows_, stream_head_scores(hh), head.ja - stream_block_.ja, head.jb - stream_block_.ja,
                  O::load(fold), O::load(fold + W));
  }

  // The online softmax of head hh's rows over the block (stream_scores left S in place), S turned into P.
  template <int R>
  void stream_softmax(int hh) {
    const StreamHead& head = stream_heads_.data()[hh];
    if (head.ja >= head.jb) return;
    const int r0 = hh * head_rows_;
    const int ja = stream_block_.ja, vectors = stream_block_.vectors;
    float* s = stream_head_scores(hh);
    // Per row (lanes >= R: rows that see no key): block max, overflow flags, shift, block sum.
    float* block_max = stream_fold_.data();
    float* overflow = block_max + W;
    float* shift_rows = overflow + W;
    float* block_sum = shift_rows + W;
    for (int l = 0; l < W; ++l) {
      block_max[l] = -std::numeric_limits<float>::infinity();
      overflow[l] = 0.0f;
      block_sum[l] = 0.0f;
    }
    for (int r = 0; r < R; ++r) {
      const float* lanes = stream_row_lanes(hh, r);
      float m = block_max[r], bad = 0.0f;
      for (int l = 0; l < W; ++l) {
        m = std::max(m, lanes[4 * W + l]);  // NaN logits are flagged in `overflow` and recomputed
        bad += lanes[5 * W + l];
      }
      block_max[r] = m;
      overflow[r] = bad;
    }
    const vec old_max = O::load(max_.data() + r0);
    const vec new_max = O::max(O::load(block_max), old_max);
    const vec shift = softmax_shift(new_max);
    O::store(shift_rows, shift);
    for (int r = 0; r < R; ++r) {
      float* p = s + r * stream_row_stride_;
      const vec row_shift = O::set1(shift_rows[r]);
      for (int v = 0; v < vectors; ++v) O::store(p + v * W, simd::exp<Isa>(O::sub(O::load(p + v * W), row_shift)));
    }
    // Each row's sum key by key in key order, as the packed tiles' lane does (Note [batch invariance]); rows
    // that see the same keys side by side, so their additions overlap rather than wait on one another.
    if (head.same_keys) {
      float sum[R];
      for (int r = 0; r < R; ++r) sum[r] = 0.0f;
      for (int j = head.ja - ja; j < head.jb - ja; ++j)
        for (int r = 0; r < R; ++r) sum[r] += s[r * stream_row_stride_ + j];
      for (int r = 0; r < R; ++r) block_sum[r] = sum[r];
    } else {
      for (int r = 0; r < R; ++r) {
        const float* p = s + r * stream_row_stride_;
        float sum = 0.0f;
        for (int j = lo_.data()[r0 + r]; j < hi_.data()[r0 + r]; ++j) sum += p[j - ja];
        block_sum[r] = sum;
      }
    }
    update_rows(r0, old_max, new_max, shift, O::load(block_sum), O::load(overflow));
  }

  // O += P V for head hh over the block at j0 (stream_softmax left P in place). Rows that see different keys
  // of the block go one by one, each over its own keys only, so no row multiplies a value it does not see
  // (no 0 * inf, and no non-finite check of the values).
  // P of row r and key j (relative to the block's first) at r * p_row_stride + j * p_key_stride.
  template <int R>
  void stream_pv_head(int hh, int rows, std::int64_t p_key_stride, std::int64_t p_row_stride) {
    const StreamHead& head = stream_heads_.data()[hh];
    if (head.ja >= head.jb) return;
    const int r0 = hh * head_rows_;
    const float* p = stream_head_scores(hh);
    const int ja = stream_block_.ja;
    const KV* const* values = stream_value_rows_.data();
    const std::int64_t head_offset = static_cast<std::int64_t>(hh) * pr_.head_dim;
    float* o = o_.data() + static_cast<std::int64_t>(r0) * dim_pad_;
    if (head.same_keys) {
      // The real rows (padding rows join no P.V), Plan::stream_pv_rows at a time: with more, a row's output
      // would get a single vector of registers, and each of its FMAs would wait on two loads.
      constexpr int kGroup = std::min(R, Plan<Isa>::stream_pv_rows);
      for (int r = 0; r < rows; r += kGroup)
        with_count<kGroup>(std::min(kGroup, rows - r), [&](auto n) {
          stream_pv<decltype(n)::value>(o + r * dim_pad_, p + r * p_row_stride + (head.ja - ja) * p_key_stride,
                                        p_key_stride, p_row_stride, head.jb - head.ja, values + head.ja, head_offset);
        });
    } else {
      for (int r = 0; r < rows; ++r) {
        const int lo = lo_.data()[r0 + r], hi = hi_.data()[r0 + r];
        if (lo < hi)
          stream_pv<1>(o + r * dim_pad_, p + r * p_row_stride + (lo - ja) * p_key_stride, p_key_stride, p_row_stride,
                       hi - lo, values + lo, head_offset);
      }
    }
  }

  // Note [request order]: with Plan::stream_prefetch, the Q.K of a group of W keys requests the next group's
  // K and V (only V with page pairs, Note [page pairs]) in address order: key by key, each over all the
  // unit's heads (a key of all of them is one contiguous run), an equal share of the lines per dimension step
  // of the group's Q.K over all its heads. Head by head, each head's Q.K requesting its own rows of the next
  // keys, every key's run was requested as one piece per head, interleaved with the other keys' pieces;
  // requested in order, the AVX2 kernel's 16-bit decode took 6-10 % less time (bench/RESULTS.md, 2026-12-03
  // fourteenth session), and no other case changed.
  struct AheadRequests {
    std::int64_t key_lines = 0;  // cache lines of one key of the unit's heads
    std::int64_t lines = 0;      // of the whole group: W keys
    std::int64_t steps = 0;      // dimension steps of the group's Q.K over every head that computes it
    std::int64_t credit = 0;     // lines owed to the steps so far, times `steps`
    int key = 0;                 // the next line to request: `line` of ahead key `key`
    std::int64_t line = 0;
  };
  // With `wanted` false the group's steps request nothing.
  void start_ahead_requests(int heads, int active_heads, bool wanted) {
    AheadRequests& q = ahead_requests_;
    const std::int64_t key_bytes =
        static_cast<std::int64_t>(heads) * pr_.head_dim * static_cast<std::int64_t>(sizeof(KV));
    q.key_lines = (key_bytes + 63) / 64;
    q.lines = W * q.key_lines;
    q.steps = static_cast<std::int64_t>(active_heads) * (pr_.head_dim / W);
    q.credit = 0;
    q.key = wanted ? 0 : W;
    q.line = 0;
  }
  // One step's share: the lines up to step * lines / steps, rounded down (so the group's steps request every
  // line exactly once, without a division per step).
  ALIBI_ALWAYS_INLINE void request_ahead_step() {
    AheadRequests& q = ahead_requests_;
    q.credit += q.lines;
    for (; q.credit >= q.steps && q.key < W; q.credit -= q.steps) {
      const KV* key_row = stream_ahead_key_rows_.data()[q.key];
      if (key_row != nullptr) {
        const std::int64_t at = q.line * 64;
        if (!plan_.stream_key_pairs)
          kv_.prefetch_key_line(reinterpret_cast<const char*>(key_row) + at, plan_.stream_prefetch_to_l2);
        kv_.prefetch_value_line(reinterpret_cast<const char*>(stream_ahead_value_rows_.data()[q.key]) + at);
      }
      if (++q.line == q.key_lines) {
        q.line = 0;
        ++q.key;
      }
    }
  }

  // acc[r] lane l = Qs[r] . key_l for W keys (key_l = key[l] + offset) and the R query rows at qs (head_dim
  // floats apart): W keys at a time transposed in registers, then for each dimension d in order one FMA of
  // the keys' d-th elements by the row's broadcast q[d] (Note [keys in lanes]).
  // With Plan::stream_prefetch, each dimension step requests its share of the next group (Note [request
  // order]): requested in bursts between groups the lines would fill the line fill buffers and stall the core
  // rather than overlap its work (bench/RESULTS.md, 2026-12-01 fifth session).
  template <int R>
  ALIBI_ALWAYS_INLINE void stream_dots(const float* qs, const KV* const* key, std::int64_t offset, vec (&acc)[R]) {
    using E = Elements<Isa, KV>;
    const int dim = pr_.head_dim;
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) acc[r] = O::zero();
    int d0 = 0;
    for (; d0 + W <= dim; d0 += W) {
      if (plan_.stream_prefetch) request_ahead_step();
      vec t[W];
      E::load_transposed(key, offset + d0, t);
#pragma GCC unroll 16
      for (int i = 0; i < W; ++i)
#pragma GCC unroll 16
        for (int r = 0; r < R; ++r) acc[r] = O::fma(O::set1(qs[r * dim + d0 + i]), t[i], acc[r]);
    }
    if (d0 < dim) stream_dots_tail<R>(qs, key, offset, d0, acc);
  }
  // stream_dots' last dimensions [d0, head_dim), fewer than W.
  template <int R>
  ALIBI_ALWAYS_INLINE void stream_dots_tail(const float* qs, const KV* const* key, std::int64_t offset, int d0,
                                            vec (&acc)[R]) {
    using E = Elements<Isa, KV>;
    const int dim = pr_.head_dim;
    const int rest = dim - d0;
    vec t[W];
    for (int l = 0; l < W; ++l) t[l] = E::load_partial(key[l] + offset + d0, rest);
    O::transpose(t);
    for (int i = 0; i < rest; ++i)
      for (int r = 0; r < R; ++r) acc[r] = O::fma(O::set1(qs[r * dim + d0 + i]), t[i], acc[r]);
  }

  // stream_dots<R> of two heads at once (query rows qs_a and qs_b, key offsets offset_a and offset_b), their
  // FMA chains interleaved: a single row's chain over d waits on the FMA latency at every step, and two heads
  // keep twice as many FMAs in flight (Note [keys in lanes]). Each (row, key) product is the same chain, so
  // the same bits.
  template <int R>
  ALIBI_ALWAYS_INLINE void stream_dots_two_heads(const float* qs_a, const float* qs_b, const KV* const* key,
                                                 std::int64_t offset_a, std::int64_t offset_b, vec (&acc_a)[R],
                                                 vec (&acc_b)[R]) {
    using E = Elements<Isa, KV>;
    const int dim = pr_.head_dim;
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) acc_a[r] = acc_b[r] = O::zero();
    int d0 = 0;
    for (; d0 + W <= dim; d0 += W) {
      if (plan_.stream_prefetch) {
        request_ahead_step();  // one step per head, as stream_dots
        request_ahead_step();
      }
      vec ta[W], tb[W];
      E::load_transposed(key, offset_a + d0, ta);
      E::load_transposed(key, offset_b + d0, tb);
#pragma GCC unroll 16
      for (int i = 0; i < W; ++i)
#pragma GCC unroll 16
        for (int r = 0; r < R; ++r) {
          acc_a[r] = O::fma(O::set1(qs_a[r * dim + d0 + i]), ta[i], acc_a[r]);
          acc_b[r] = O::fma(O::set1(qs_b[r * dim + d0 + i]), tb[i], acc_b[r]);
        }
    }
    if (d0 < dim) {
      stream_dots_tail<R>(qs_a, key, offset_a, d0, acc_a);
      stream_dots_tail<R>(qs_b, key, offset_b, d0, acc_b);
    }
  }

  // o[r] += sum_j p[r * row_stride + j * key_stride] * value_j over `keys` keys (value_j = value[j] + offset)
  // for NR rows (output rows dim_pad_ floats apart): the output in registers a chunk of dimensions at a time,
  // over all the keys. As few passes over the values as the registers allow, of equal widths (a lone narrow
  // chunk's few FMA chains would wait on their own latency): each pass reads a slice of every value row, and
  // from memory one pass over whole rows streams better than two over halves (bench/RESULTS.md, Zen 5,
  // 2026-12-05 twenty-third session: one or two rows, heads of 128, AVX-512, 8-12 % less time).
  template <int NR>
  void stream_pv(float* o, const float* p, std::int64_t key_stride, std::int64_t row_stride, int keys,
                 const KV* const* value, std::int64_t offset) {
    using E = Elements<Isa, KV>;
    // Accumulators, the chunk's value vectors and a broadcast probability in registers.
    constexpr int kChunk = std::min(Tuning::kStreamPvMaxVecs, (O::registers - 1) / (NR + 1));
    const int dim = pr_.head_dim, whole = dim / W;
    const int passes = (whole + kChunk - 1) / kChunk;
    for (int pass = 0, dv0 = 0; pass < passes; ++pass) {
      const int chunk = (whole - dv0 + passes - pass - 1) / (passes - pass);
      with_count<kChunk>(chunk, [&](auto m) {
        pv_tile_rows<Isa, NR, decltype(m)::value, KV>(
            p, key_stride, row_stride, [value, offset](int j) { return value[j] + offset; }, 0, keys, o, dim_pad_, dv0);
      });
      dv0 += chunk;
    }
    if (whole * W < dim) {  // o rows are padded to whole vectors; the value rows are not
      const int d = whole * W;
      vec acc[NR];
#pragma GCC unroll 4
      for (int r = 0; r < NR; ++r) acc[r] = O::load(o + r * dim_pad_ + d);
      for (int j = 0; j < keys; ++j) {
        const vec x = E::load_partial(value[j] + offset + d, dim - d);
#pragma GCC unroll 4
        for (int r = 0; r < NR; ++r) acc[r] = O::fma(O::set1(p[r * row_stride + j * key_stride]), x, acc[r]);
      }
#pragma GCC unroll 4
      for (int r = 0; r < NR; ++r) O::store(o + r * dim_pad_ + d, acc[r]);
    }
  }

  // S^T of one Q.K group over keys [ja, jb), with its block maxima and overflow flags (qk_tile).
  template <class Epilogue>
  void qk_group(const Epilogue& bias, int group_vecs, const float* k_packed, const float* qt_group, float* st, int ja,
                int jb, vec* block_max, vec* overflow) const {
    const int dim = pr_.head_dim;
    for (int c = 0; c < group_vecs; ++c) {
      block_max[c] = O::set1(-std::numeric_limits<float>::infinity());
      overflow[c] = O::zero();
    }
    with_count<O::qk_row_vecs>(group_vecs, [&](auto c) {
      constexpr int C = decltype(c)::value;
      constexpr int J = qk_tile_keys<Isa>(C);
      int j = ja;
      for (; j + J <= jb; j += J)
        qk_tile<Isa, J, C>(k_packed + j * pack_stride_, pack_stride_, qt_group, group_vecs * W, dim,
                           st + j * head_rows_, head_rows_, j, bias, block_max, overflow);
      if (j < jb)
        with_count<J>(jb - j, [&](auto n) {
          qk_tile<Isa, decltype(n)::value, C>(k_packed + j * pack_stride_, pack_stride_, qt_group, group_vecs * W, dim,
                                              st + j * head_rows_, head_rows_, j, bias, block_max, overflow);
        });
    });
  }

  // S^T + bias, masked: x = s - m |p - j| for visible keys j, -inf for the others. Each lane carries its
  // row's slope, distance from the block's first key and visible range (set by prepare_lanes).
  // kVisibleOnly: overflow flags only lanes that see the key (a second pass, see process_block); else every
  // lane (the common pass: cheaper, and flags nothing when all dot products are finite).
  template <bool kVisibleOnly>
  struct BiasEpilogue {
    const float* dist0;
    const float* neg_slope;
    const float* lo;
    const float* hi;
    bool needs_mask[O::qk_row_vecs];  // per row vector: some lane sees only part of the group's keys
    // Also adds NaN to `overflow` in the lanes that see key j and whose dot product s is inf or NaN (only
    // those: a row must not be recomputed, with other bits, for a key it does not see).
    ALIBI_ALWAYS_INLINE vec operator()(vec s, int j, int c, vec& overflow) const {
      return apply(s, O::set1(static_cast<float>(j)), c, overflow);
    }
    // The same with a key per lane (Note [keys in lanes]).
    ALIBI_ALWAYS_INLINE vec apply(vec s, vec key, int c, vec& overflow) const {
      // causal: visible keys have p - j >= 0, so |p - j| is the paper's distance; bidirectional: symmetric.
      vec x = O::fma(O::load(neg_slope + c * W), O::abs(O::sub(O::load(dist0 + c * W), key)), s);
      const vec non_finite = O::mul(s, O::zero());  // 0 for a finite dot product, NaN otherwise
      if (needs_mask[c]) {
        const vec minus_inf = O::set1(-std::numeric_limits<float>::infinity());
        const vec lo_lanes = O::load(lo + c * W), hi_lanes = O::load(hi + c * W);
        x = O::select_lt(key, lo_lanes, minus_inf, x);
        x = O::select_lt(key, hi_lanes, x, minus_inf);
        if (kVisibleOnly) {
          overflow = O::add(overflow,
                            O::select_lt(key, lo_lanes, O::zero(), O::select_lt(key, hi_lanes, non_finite, O::zero())));
          return x;
        }
      }
      overflow = O::add(overflow, non_finite);
      return x;
    }
  };

  // Folds the biased, masked S^T of the W rows starting at r0 (keys [ja, jb); block_max: its maximum per
  // lane; overflow: NaN in lanes with a non-finite dot product) into the rows' online softmax; leaves P^T
  // in place of S^T.
  void softmax_lanes(int r0, float* st, int ja, int jb, vec block_max, vec overflow) {
    // A local copy: the compiler cannot keep a member in a register across the stores through `st`.
    const std::int64_t stride = head_rows_;
    const vec old_max = O::load(max_.data() + r0);
    const vec new_max = O::max(block_max, old_max);
    const vec shift = softmax_shift(new_max);
    vec block_sum = O::zero();
    float* s = st + ja * stride;
    for (int j = ja; j < jb; ++j, s += stride) {
      const vec p = simd::exp<Isa>(O::sub(O::load(s), shift));
      O::store(s, p);
      block_sum = O::add(block_sum, p);
    }
    update_rows(r0, old_max, new_max, shift, block_sum, overflow);
  }

  // What the rows subtract from their logits before exp: their new running max, but 0 for a row that has
  // seen no finite logit yet, which avoids -inf - -inf (its P stays 0).
  static ALIBI_ALWAYS_INLINE vec softmax_shift(vec new_max) {
    const vec lowest = O::set1(std::numeric_limits<float>::lowest());
    return O::select_lt(new_max, lowest, O::zero(), new_max);
  }

  // Folds a block into the running state of the W rows starting at r0: their max goes from old_max to
  // new_max (P = exp(logit - shift), shift = softmax_shift(new_max)); block_sum: the sum of P per row;
  // overflow: NaN in rows with a non-finite dot product for a key they see. Rescales the rows' output.
  void update_rows(int r0, vec old_max, vec new_max, vec shift, vec block_sum, vec overflow) {
    const vec lo = O::load(lo_f_.data() + r0), hi = O::load(hi_f_.data() + r0);
    const vec lowest = O::set1(std::numeric_limits<float>::lowest());
    const vec alpha = simd::exp<Isa>(O::sub(old_max, shift));
    vec sum = O::fma(O::load(sum_.data() + r0), alpha, block_sum);
    // A NaN logit (NaN or inf in q or k) already made the sum NaN through exp. A lane that sees keys here
    // but whose logits are all -inf (fp32 overflow of a huge but finite bias or dot product, or -inf
    // inputs) is poisoned too; both are recomputed exactly in double (Note [non-finite rows]), which keeps
    // finite inputs finite and puts NaN exactly where it is visible.
    const vec nan = O::set1(std::numeric_limits<float>::quiet_NaN());
    sum = O::select_lt(lo, hi, O::select_lt(new_max, lowest, nan, sum), sum);
    // A dot product that came out inf or NaN for a key the row sees: inf or NaN inputs, or fp32 overflow
    // of a partial sum even though the true logit is finite (it can even be the row's largest: Note
    // [non-finite rows]). Such a row is recomputed exactly too.
    sum = O::add(sum, overflow);
    O::store(sum_.data() + r0, sum);
    O::store(max_.data() + r0, new_max);
    O::store(alpha_.data(), alpha);
    for (int l = 0; l < W; ++l) {
      const float a = alpha_.data()[l];
      if (a == 1.0f || !rows_.data()[r0 + l].real) continue;  // padding lanes never reach the output
      float* o = o_.data() + (static_cast<std::int64_t>(r0 + l) * dim_pad_);
      const vec va = O::set1(a);
      for (int c = 0; c < dim_vecs_; ++c) O::store(o + c * W, O::mul(va, O::load(o + c * W)));
    }
  }

  // O += P V for rows [r0, r1) (a Q.K group), each P.V tile over the keys its rows see. Rows of a tile
  // that see fewer keys ride along with P = 0 there (masked to -inf, exp -> 0): exact no-ops for finite
  // values. But 0 * inf is NaN, so a block with a non-finite value runs every row alone over its own
  // keys (`per_row`), which gives the other rows the same bits as the tiles.
  void accumulate_pv(int r0, int r1, const float* pt, const float* v_packed, bool per_row) {
    if (per_row)
      accumulate_pv_tiles<1>(r0, r1, pt, v_packed);
    else
      accumulate_pv_tiles<O::pv_rows>(r0, r1, pt, v_packed);
  }

  template <int PR>
  void accumulate_pv_tiles(int r0, int r1, const float* pt, const float* v_packed) {
    constexpr int PV = O::pv_vecs;
    const int tiles = (r1 - r0 + PR - 1) / PR;
    for (int t = 0; t < tiles; ++t) {
      const int a = r0 + t * PR;
      key_range_.data()[t] = key_range(a, std::min(r1, a + PR));
    }
    for (int dv0 = 0, chunk = 0; dv0 < dim_vecs_; dv0 += chunk) {
      // Full PV-wide chunks, but never leave a lone narrow one: with pv_rows x 1 accumulators the FMA
      // chains would wait on their own latency (16 vectors -> 3+3+3+3+2+2, not 3+3+3+3+3+1).
      const int remaining = dim_vecs_ - dv0;
      chunk = remaining == PV + 1 && PV > 2 ? (remaining + 1) / 2 : std::min(PV, remaining);
      with_count<PV>(chunk, [&](auto m) {
        constexpr int NV = decltype(m)::value;
        for (int t = 0; t < tiles; ++t) {
          const auto range = key_range_.data()[t];
          if (range.first >= range.second) continue;
          const int a = r0 + t * PR;
          float* o = o_.data() + (a * dim_pad_);
          with_count<PR>(std::min(PR, r1 - a), [&](auto n) {
            pv_tile<Isa, decltype(n)::value, NV>(pt + (a - r0), head_rows_, v_packed, pack_stride_, range.first,
                                                 range.second, o, dim_pad_, dv0);
          });
        }
      });
    }
  }

  // The rows' running state into `state` (a chunk's: Plan::partial_floats_per_piece floats). A row that
  // saw no key of the chunk still holds the initial -inf, 0 and zeros.
  void save_partial(int num_rows, float* state) {
    const std::int64_t row_floats = 2 + dim_pad_;
    for (int r = 0; r < num_rows; ++r) {
      if (!rows_.data()[r].real) continue;
      save_partial_row(state, max_.data()[r], sum_.data()[r], o_.data() + r * dim_pad_, dim_pad_);
      state += row_floats;
    }
  }

  void finish_rows(int num_rows) {
    // Output rows are num_heads * head_dim floats apart and usually not cached: request them all first
    // so the write misses overlap.
    for (int r = 0; r < num_rows; ++r)
      if (rows_.data()[r].real) KvSource<Isa>::prefetch_span(rows_.data()[r].out, pr_.head_dim, /*for_write=*/true);
    for (int r = 0; r < num_rows; ++r) {
      const Row& row = rows_.data()[r];
      if (!row.real) continue;
      const float sum = sum_.data()[r];
      const vec inv = O::set1(sum == 0.0f ? 0.0f : 1.0f / sum);  // a row that saw no key: zeros
      const float* o = o_.data() + (r * dim_pad_);
      // x * 0 is 0 for finite x and NaN for inf or NaN: `bad` stays 0 iff the whole row is finite.
      vec bad = O::zero();
      int d = 0;
      for (; d + W <= pr_.head_dim; d += W) {
        const vec y = O::mul(O::load(o + d), inv);
        O::store(row.out + d, y);
        bad = O::add(bad, O::mul(y, O::zero()));
      }
      if (d < pr_.head_dim) {
        const vec y = O::mul(O::load_partial(o + d, pr_.head_dim - d), inv);
        O::store_partial(row.out + d, y, pr_.head_dim - d);
        bad = O::add(bad, O::mul(y, O::zero()));
      }
      if (O::reduce_add(bad) != 0.0f) {
        recompute_row_exactly(pr_, kv_, row.b, row.i, row.h, row.lo, row.hi, row.out, row.lse);
      } else if (row.lse != nullptr) {
        *row.lse = sum == 0.0f ? -HUGE_VALF
                               : static_cast<float>(static_cast<double>(max_.data()[r]) +
                                                    std::log(static_cast<double>(sum)) + row.dropped_bias);
      }
    }
  }

  const detail::Problem& pr_;
  const Plan<Isa>& plan_;
  KvSource<Isa, KV> kv_;
  Skipping<Isa> skipping_;
  float* partial_;
  detail::Buffer<float> chunk_states_;   // without split-K, the states of the current unit's chunks
  detail::Buffer<float> merge_weights_;  // scratch of merge_unit
  std::int64_t set_up_unit_ = -1;        // the unit whose rows setup_rows last set
  int group_;
  int dim_vecs_;
  std::int64_t dim_pad_;
  std::int64_t pack_stride_;  // floats between packed K/V rows
  int head_rows_;             // rows per kv head, padded to whole vectors
  int block_keys_;
  detail::Buffer<Row> rows_;
  detail::Buffer<float> qt_;  // per kv head: Qs^T per Q.K group (qt_offset); packed path only
  detail::Buffer<float> o_;   // per row: unnormalised output, [dim_pad_]
  detail::Buffer<float> st_;  // S^T, then P^T, of the current kv head: [kKeyBlock][head_rows_]
  detail::Buffer<float> k_pack_, v_pack_;
  // Streaming decode (Note [streaming decode]): Qs per row, row-major [rows][head_dim]; S, then P, of the
  // current block per head and row, keys in lanes (Note [keys in lanes]); per (head, row) lanes
  // (stream_row_lanes); per row scratch of the softmax.
  detail::Buffer<float> qs_, stream_st_, stream_lanes_, stream_fold_;
  // Rows in lanes (Note [rows in lanes for the stream]): Qs^T per head ([head_dim][W]), the key tile of one
  // head's W keys, per head its block max and overflow flags.
  detail::Buffer<float> qst_, stream_key_tile_, stream_head_fold_;
  detail::Buffer<const KV*> stream_key_rows_, stream_value_rows_;              // the block's keys, first bound head
  detail::Buffer<const KV*> stream_group_keys_;                                // the keys of a Q.K pass, one per lane
  detail::Buffer<const KV*> stream_ahead_key_rows_, stream_ahead_value_rows_;  // the next group's, or null
  std::int64_t stream_block_j0_ = 0;                                           // the block's first key
  std::int64_t stream_row_stride_ = 0;                                         // floats of stream_st_ per row
  std::int64_t stream_st_stride_ = 0;                                          // floats of stream_st_ per head
  std::int64_t stream_lane_offsets_at_ = 0;  // where stream_lanes_ keeps the lane offsets 0..W-1
  AheadRequests ahead_requests_;             // the current Q.K pass's requests of the next group
  detail::Buffer<StreamHead> stream_heads_;  // per kv head of the unit, the current block
  detail::Buffer<char> stream_mask_;         // per (head, row): the row sees only part of the block's keys
  StreamBlock stream_block_{0, 0, 0, 0};
  // Per row (lane): running max and sum, -slope, and for the current block: distance from its first key
  // and the visible keys [lo, hi) relative to it (also as floats, for vector compares).
  detail::Buffer<float> max_, sum_, neg_slope_, dist_, lo_f_, hi_f_;
  detail::Buffer<int> lo_, hi_;
  detail::Buffer<float> alpha_;                    // one vector: rescale factors of the current lanes
  detail::Buffer<char> head_active_;               // per kv head of the unit: some row sees the block
  detail::Buffer<std::pair<int, int>> key_range_;  // per P.V row tile: keys of the block its rows see
};

}  // namespace kernels
ALIBI_NAMESPACE_END
#endif  // per-target guard
