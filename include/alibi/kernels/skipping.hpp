// ALiBi block skipping: key-norm bounds, per-head budgets and the tail test.
//
// Note [block skipping]: a unit visits its key blocks newest first (for a causal row, its nearest keys
// first; a bidirectional row meets its nearest keys once the visit reaches it, and its keys after it are
// skipped a whole chunk at a time: an order that depends on no row keeps results batch invariant, Note
// [batch invariance] in unit_worker.hpp). The nearest keys carry the largest bias, so each row's running
// max settles early; and
// after each block, a row whose unvisited keys provably carry less softmax mass than skip_tolerance
// (relative to its largest term) stops, by Cauchy-Schwarz:
//   logit_j = qs.k_j - m d_j <= |qs| |k_j| - m d_j,   sum_{d >= d0} e^{-m d} = e^{-m d0} / (1 - e^{-m}).
// Slopes <= 0 never skip (the bound needs a decaying bias), and nothing else depends on skipping (not the
// plan, not the block order), so those rows come out bitwise as without skipping. Block boundaries depend
// only on the unit, never on the thread count. Everything the test reads (norm bounds, running max, logit
// floor) comes from keys the row sees: a NaN or inf elsewhere changes no decision.
#include "alibi/detail/config.hpp"
// Per-target header: no #pragma once (Note [per-target headers] in detail/config.hpp).
#if (ALIBI_PASS == 0 && !defined(ALIBI_KERNELS_SKIPPING_HPP_0)) || \
    (ALIBI_PASS == 1 && !defined(ALIBI_KERNELS_SKIPPING_HPP_1)) || \
    (ALIBI_PASS == 2 && !defined(ALIBI_KERNELS_SKIPPING_HPP_2))
#if ALIBI_PASS == 0
#define ALIBI_KERNELS_SKIPPING_HPP_0
#elif ALIBI_PASS == 1
#define ALIBI_KERNELS_SKIPPING_HPP_1
#else
#define ALIBI_KERNELS_SKIPPING_HPP_2
#endif
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include "alibi/detail/buffer.hpp"
#include "alibi/detail/config.hpp"
#include "alibi/detail/problem.hpp"
#include "alibi/detail/threading.hpp"
#include "alibi/kernels/key_norms.hpp"
#include "alibi/kernels/kv_source.hpp"
#include "alibi/kernels/plan.hpp"

ALIBI_NAMESPACE_BEGIN
namespace kernels {

// Upper bounds on key norms for every (batch, kv head): one per key (the caller's AttentionOptions::key_norms
// when given, else computed here), and per block of Tuning::kNormBlock absolute positions a sparse table of
// maxima over 2^k blocks. A row's tail bound combines whole blocks inside the keys it sees with its two edge
// blocks scanned over its visible keys only (SkipRow::lo_edge, hi_edge): it never reads a key the row does
// not see, so a NaN or inf key (bound +inf) stops skipping only for the rows that see it.
template <class Isa>
class KeyNormBounds {
 public:
  static constexpr std::int64_t kNormBlock = Tuning::kNormBlock;

  // keys: the call's keys (contiguous or paged: detail::key_slot), read only without pr.key_norm_input.
  template <class KV>
  KeyNormBounds(const detail::Problem& pr, const KV* keys)
      : pr_(pr),
        kv_len_(pr.kv_len),
        heads_(pr.num_kv_heads),
        blocks_((pr.kv_len + kNormBlock - 1) / kNormBlock),
        series_(pr.batch * pr.num_kv_heads) {
    levels_ = 1;
    while ((std::int64_t{1} << levels_) <= blocks_) ++levels_;
    table_.assign(static_cast<std::size_t>(levels_ * series_ * blocks_), 0.0f);
    if (pr.key_norm_input == nullptr) computed_.assign(static_cast<std::size_t>(pr.batch * pr.kv_len * heads_), 0.0f);
    const std::int64_t kv_row = static_cast<std::int64_t>(heads_) * pr.head_dim;
    // One (batch, key block) per work item, keys visited in memory order.
    detail::parallel_for_units(pr.batch * blocks_, pr.num_threads, [&] {
      return [&](std::int64_t item) {
        const std::int64_t b = item / blocks_, blk = item % blocks_;
        const std::int64_t j_begin = blk * kNormBlock, j_end = std::min(kv_len_, j_begin + kNormBlock);
        for (int kv_head = 0; kv_head < heads_; ++kv_head) table_[table_index(0, b * heads_ + kv_head, blk)] = 0.0f;
        for (std::int64_t j = j_begin; j < j_end; ++j) {
          const std::int64_t key_row = b * kv_len_ + j, slot = detail::key_slot(pr, b, j);
          for (int kv_head = 0; kv_head < heads_; ++kv_head) {
            float bound;
            if (pr.key_norm_input != nullptr) {
              bound = pr.key_norm_input[slot * heads_ + kv_head];
              if (!(bound >= 0.0f)) bound = HUGE_VALF;  // NaN or negative: unbounded
            } else {
              // Summed in the narrower ISA's vectors (AVX-512: AVX2's 8 lanes), so that skipping decides the
              // same on both and their results stay bitwise equal (Note [narrower vectors] in plan.hpp).
              bound = key_norm_bound_fast<typename simd::Ops<Isa>::narrower>(
                  keys + slot * kv_row + static_cast<std::int64_t>(kv_head) * pr.head_dim, pr.head_dim);
              computed_[static_cast<std::size_t>(key_row * heads_ + kv_head)] = bound;
            }
            float& entry = table_[table_index(0, b * heads_ + kv_head, blk)];
            entry = larger(entry, bound);
          }
        }
      };
    });
    for (std::int64_t s = 0; s < series_; ++s)
      for (int k = 1; k < levels_; ++k)
        for (std::int64_t blk = 0; blk + (std::int64_t{1} << k) <= blocks_; ++blk)
          table_[table_index(k, s, blk)] = larger(table_[table_index(k - 1, s, blk)],
                                                  table_[table_index(k - 1, s, blk + (std::int64_t{1} << (k - 1)))]);
  }

  /// Bound on the norm of key j of (batch, kv head) `bk`; +inf for NaN or negative caller bounds.
  float key(std::int64_t bk, std::int64_t j) const {
    const std::int64_t b = bk / heads_;
    const float bound = pr_.key_norm_input != nullptr
                            ? pr_.key_norm_input[detail::key_slot(pr_, b, j) * heads_ + bk % heads_]
                            : computed_[static_cast<std::size_t>((b * kv_len_ + j) * heads_ + bk % heads_)];
    return bound >= 0.0f ? bound : HUGE_VALF;
  }
  /// Bound over keys [a, b) of `bk`, by scanning them.
  float scan(std::int64_t bk, std::int64_t a, std::int64_t b) const {
    float bound = 0.0f;
    for (std::int64_t j = a; j < b; ++j) bound = larger(bound, key(bk, j));
    return bound;
  }
  /// Bound over the whole blocks [x, y] (inclusive; 0 if empty).
  float blocks(std::int64_t bk, std::int64_t x, std::int64_t y) const {
    if (x > y) return 0.0f;
    const int k = floor_log2(static_cast<std::uint64_t>(y + 1 - x));
    return larger(table_[table_index(k, bk, x)], table_[table_index(k, bk, y + 1 - (std::int64_t{1} << k))]);
  }

  static float larger(float x, float y) { return x > y ? x : y; }  // bounds are never NaN

 private:
  static int floor_log2(std::uint64_t n) {  // n >= 1
#if defined(__GNUC__) || defined(__clang__)
    return 63 - __builtin_clzll(n);
#else
    int k = 0;
    while (n >>= 1) ++k;
    return k;
#endif
  }

  std::size_t table_index(int level, std::int64_t bk, std::int64_t blk) const {
    return static_cast<std::size_t>((level * series_ + bk) * blocks_ + blk);
  }

  detail::Problem pr_;  // its key_norm_input (caller-kept bounds, by key slot) and its pages
  std::int64_t kv_len_;
  int heads_;
  std::int64_t blocks_;
  std::int64_t series_;  // (batch, kv head) pairs
  int levels_ = 1;
  detail::Buffer<float> computed_;  // [batch][kv_len][num_kv_heads] when the caller gave no bounds
  detail::Buffer<float> table_;     // [level][bk][block]
};

// What the tail test needs of a row.
struct SkipRow {
  std::int64_t pos;   // key position of the query, in the kernel's frame (Note [nearest-key frame])
  std::int64_t bk;    // batch * num_kv_heads + kv head
  double q_norm;      // |scale * q|
  double log_budget;  // log of the mass one unvisited side may carry, times (1 - e^{-m}); -inf: never skip
  double slope;
  // Norm bounds over the row's visible keys in the blocks of lo and of hi - 1 (KeyNormBounds).
  float lo_edge;
  float hi_edge;
  // A lower bound on the row's largest logit (Skipping::logit_floor; -inf without split-K). A split-K
  // piece compares its far tail against it before it has seen any key of its own.
  float logit_floor;
};

template <class Isa>
class Skipping {
 public:
  // `bounds` null: skipping is off.
  Skipping(const detail::Problem& pr, const KeyNormBounds<Isa>* bounds) : bounds_(bounds) {
    if (bounds == nullptr) return;
    // Each unvisited side gets half the budget when keys remain on both sides (bidirectional).
    log_budget_.assign(static_cast<std::size_t>(pr.num_heads), 0.0);
    const double log_tolerance = std::log(static_cast<double>(pr.skip_tolerance) * (pr.causal ? 1.0 : 0.5));
    for (int h = 0; h < pr.num_heads; ++h) {
      const double m = pr.slopes[h];
      log_budget_[static_cast<std::size_t>(h)] = m > 0.0 ? log_tolerance + std::log(-std::expm1(-m)) : -HUGE_VAL;
    }
  }

  bool on() const { return bounds_ != nullptr; }
  double log_budget(int h) const { return on() ? log_budget_[static_cast<std::size_t>(h)] : -HUGE_VAL; }

  // A lower bound on the largest logit of row (b, i, h), which sees keys [lo, hi): the largest finite logit
  // of its Tuning::kFloorKeys nearest visible keys, in double, rounded down to float; -inf if there is none.
  static constexpr std::int64_t kFloorKeys = Tuning::kFloorKeys;
  template <class KV>
  static float logit_floor(const detail::Problem& pr, const KvSource<Isa, KV>& kv, std::int64_t b, std::int64_t i,
                           int h, std::int64_t lo, std::int64_t hi) {
    if (lo >= hi) return -HUGE_VALF;
    // In the kernel's frame: the row at its nearest visible key (Note [nearest-key frame]).
    const std::int64_t pos = detail::nearest_visible_key(pr.q_pos0 + i, lo, hi);
    const std::int64_t nearest = pos;
    const std::int64_t first = std::max(lo, std::min(nearest - kFloorKeys / 2, hi - kFloorKeys));
    const std::int64_t last = std::min(hi, first + kFloorKeys);
    const float* q = pr.q + ((b * pr.q_len + i) * pr.num_heads + h) * pr.head_dim;
    const int kv_head = h / (pr.num_heads / pr.num_kv_heads);
    double best = -HUGE_VAL;
    for (std::int64_t j = first; j < last; ++j) {
      const KV* key = kv.key_row(b, kv_head, j);
      double dot = 0.0;
      for (int d = 0; d < pr.head_dim; ++d) dot += static_cast<double>(q[d]) * to_fp32(key[d]);
      const double distance = static_cast<double>(pos > j ? pos - j : j - pos);
      const double logit = static_cast<double>(pr.scale) * dot - static_cast<double>(pr.slopes[h]) * distance;
      if (logit > best && logit < 3.0e38) best = logit;  // NaN and inf give no bound
    }
    if (!(best > -3.0e38)) return -HUGE_VALF;
    float floor = static_cast<float>(best);
    if (static_cast<double>(floor) > best) floor = std::nextafter(floor, -HUGE_VALF);
    return floor;
  }

  // Is the far side of each unvisited part of a piece negligible for the row, which sees keys [lo, hi)? The piece has
  // visited [left, right) of its keys [piece_lo, piece_hi). Unvisited keys of the piece on the left make the row's
  // whole unvisited left side [lo, left) the tail tested (it contains every farther piece's keys too, so
  // what all pieces drop on one side stays within that side's budget); likewise on the right. The
  // reference is the larger of the running max and the row's logit floor, both <= its true max.
  bool done(const SkipRow& row, std::int64_t lo, std::int64_t hi, float running_max, std::int64_t left,
            std::int64_t right, std::int64_t piece_lo, std::int64_t piece_hi) const {
    const std::int64_t left_begin = std::max(lo, piece_lo), left_end = std::min(left, hi);
    const std::int64_t right_begin = std::max(right, lo);
    const bool left_open = left_begin < left_end;
    const bool right_open = right_begin < std::min(hi, piece_hi);
    if (!left_open && !right_open) return true;  // nothing left to visit
    const float reference = running_max > row.logit_floor ? running_max : row.logit_floor;
    if (row.log_budget == -HUGE_VAL || reference == -HUGE_VALF) return false;
    // Unvisited keys before `left` that all lie after the row (bidirectional, a chunk to its right): bound
    // them with every key after them, so that whatever of the row's right side is skipped, chunk by chunk,
    // lies in one tail within the budget, as its left side does.
    const bool left_after_row = left_open && row.pos < left_begin;
    return (!left_open ||
            (left_after_row ? tail_negligible(row, reference, left_begin, hi, right_tail_bound(row, lo, left_begin, hi))
                            : tail_negligible(row, reference, lo, left_end, left_tail_bound(row, lo, left_end, hi)))) &&
           (!right_open ||
            tail_negligible(row, reference, right_begin, hi, right_tail_bound(row, lo, right_begin, hi)));
  }

  // Sets row.lo_edge and row.hi_edge for visible keys [lo, hi), lo < hi. `previous` is the last row set up
  // (or null): rows of one unit often share lo, and positions that follow each other extend hi by one.
  void set_edges(SkipRow& row, std::int64_t lo, std::int64_t hi, const SkipRow* previous, std::int64_t previous_lo,
                 std::int64_t previous_hi) const {
    const std::int64_t lo_block_end = std::min(hi, block_start(lo) + Tuning::kNormBlock);
    const std::int64_t hi_block_start = std::max(lo, block_start(hi - 1));
    const bool same_series = previous != nullptr && previous->bk == row.bk;
    if (same_series && previous_lo == lo && previous_hi == hi) {
      row.lo_edge = previous->lo_edge;
      row.hi_edge = previous->hi_edge;
      return;
    }
    row.lo_edge =
        same_series && previous_lo == lo && std::min(previous_hi, block_start(lo) + Tuning::kNormBlock) == lo_block_end
            ? previous->lo_edge
            : bounds_->scan(row.bk, lo, lo_block_end);
    const bool extends = same_series && previous_hi + 1 == hi && block_start(previous_hi - 1) == block_start(hi - 1) &&
                         std::max(previous_lo, block_start(previous_hi - 1)) == hi_block_start;
    row.hi_edge = extends ? KeyNormBounds<Isa>::larger(previous->hi_edge, bounds_->key(row.bk, hi - 1))
                          : bounds_->scan(row.bk, hi_block_start, hi);
  }

 private:
  static std::int64_t block_start(std::int64_t j) { return j / Tuning::kNormBlock * Tuning::kNormBlock; }

  // Bound on the keys [lo, end) (a left tail) from keys in [lo, hi) only: the row's lo edge, the whole
  // blocks after it up to end's block, and the hi edge if end reaches hi's block.
  float left_tail_bound(const SkipRow& row, std::int64_t lo, std::int64_t end, std::int64_t hi) const {
    const std::int64_t bl = block_of(lo), bh = block_of(hi - 1), be = block_of(end - 1);
    if (be == bl) return row.lo_edge;
    if (be < bh) return KeyNormBounds<Isa>::larger(row.lo_edge, bounds_->blocks(row.bk, bl + 1, be));
    return KeyNormBounds<Isa>::larger(KeyNormBounds<Isa>::larger(row.lo_edge, row.hi_edge),
                                      bounds_->blocks(row.bk, bl + 1, bh - 1));
  }
  // Likewise for a right tail [begin, hi).
  float right_tail_bound(const SkipRow& row, std::int64_t lo, std::int64_t begin, std::int64_t hi) const {
    const std::int64_t bl = block_of(lo), bh = block_of(hi - 1), bb = block_of(begin);
    if (bb == bh) return row.hi_edge;
    if (bb > bl) return KeyNormBounds<Isa>::larger(row.hi_edge, bounds_->blocks(row.bk, bb, bh - 1));
    return KeyNormBounds<Isa>::larger(KeyNormBounds<Isa>::larger(row.lo_edge, row.hi_edge),
                                      bounds_->blocks(row.bk, bl + 1, bh - 1));
  }
  static std::int64_t block_of(std::int64_t j) { return j / Tuning::kNormBlock; }

  // Can the keys [begin, end), all with norm <= key_norm, carry more than the row's budget?
  static bool tail_negligible(const SkipRow& row, float row_max, std::int64_t begin, std::int64_t end, float key_norm) {
    const std::int64_t d0 = row.pos < begin ? begin - row.pos : (row.pos >= end ? row.pos - end + 1 : 0);
    if (d0 <= 0) return false;
    const double reach = row.q_norm * key_norm;
    const double distance_term = row.slope * static_cast<double>(d0);
    const double max_logit = row_max;
    // The kernel's fp32 logits (and so `max`) carry rounding error; 2^-16 relative is far above it.
    const double slack = 0x1p-16 * (reach + std::fabs(max_logit) + distance_term) + 1e-6;
    return reach - distance_term - max_logit + slack <= row.log_budget;
  }

  const KeyNormBounds<Isa>* bounds_;
  detail::Buffer<double> log_budget_;  // per query head
};

}  // namespace kernels
ALIBI_NAMESPACE_END
#endif  // per-target guard
