// ALiBi block skipping: key-norm bounds, per-head budgets and the tail test.
//
// Note [block skipping]: a unit visits its key blocks from the keys nearest its queries outward (causal:
// newest first). The nearest keys carry the largest bias, so each row's running max settles early; and
// after each block, a row whose unvisited keys provably carry less softmax mass than skip_tolerance
// (relative to its largest term) stops, by Cauchy-Schwarz:
//   logit_j = qs.k_j - m d_j <= |qs| |k_j| - m d_j,   sum_{d >= d0} e^{-m d} = e^{-m d0} / (1 - e^{-m}).
// Slopes <= 0 never skip (the bound needs a decaying bias). Block boundaries depend only on the unit, never
// on the thread count.
#include "alibi/detail/config.hpp"
// Per-target header: no #pragma once (Note [per-target headers] in detail/config.hpp).
#if (ALIBI_PASS == 0 && !defined(ALIBI_KERNELS_SKIPPING_HPP_0)) || (ALIBI_PASS == 1 && !defined(ALIBI_KERNELS_SKIPPING_HPP_1)) || \
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

#include "alibi/detail/buffer.hpp"
#include "alibi/detail/config.hpp"
#include "alibi/detail/problem.hpp"
#include "alibi/detail/threading.hpp"
#include "alibi/kernels/key_norms.hpp"
#include "alibi/kernels/plan.hpp"

ALIBI_NAMESPACE_BEGIN
namespace kernels {

// Upper bounds on key norms per block of Tuning::kNormBlock absolute positions, for every (batch, kv
// head), with prefix/suffix maxima that answer "how large can any key in [0, L) or [R, kv_len) be" in O(1).
template <class Isa>
class KeyNormBounds {
  static constexpr std::int64_t kNormBlock = Tuning::kNormBlock;

 public:
  explicit KeyNormBounds(const detail::Problem& pr)
      : heads_(pr.num_kv_heads), blocks_((pr.kv_len + kNormBlock - 1) / kNormBlock) {
    const std::int64_t per_batch = static_cast<std::int64_t>(heads_) * blocks_;
    prefix_.assign(static_cast<std::size_t>(pr.batch * per_batch), 0.0f);
    suffix_.assign(static_cast<std::size_t>(pr.batch * per_batch), 0.0f);
    const std::int64_t kv_row = static_cast<std::int64_t>(pr.num_kv_heads) * pr.head_dim;
    // Block maxima, one (batch, key block) per work item, keys visited in memory order.
    detail::parallel_for_units(pr.batch * blocks_, pr.num_threads, [&] {
      return [&](std::int64_t item) {
        const std::int64_t b = item / blocks_, blk = item % blocks_;
        const std::int64_t j_end = std::min(pr.kv_len, (blk + 1) * kNormBlock);
        for (int kv_head = 0; kv_head < heads_; ++kv_head) prefix_[index(b * heads_ + kv_head, blk)] = 0.0f;
        for (std::int64_t j = blk * kNormBlock; j < j_end; ++j) {
          const std::int64_t key_row = b * pr.kv_len + j;
          for (int kv_head = 0; kv_head < heads_; ++kv_head) {
            float bound;
            if (pr.key_norm_input != nullptr) {  // caller-kept bounds: the keys are not read at all
              bound = pr.key_norm_input[key_row * heads_ + kv_head];
              if (!(bound >= 0.0f)) bound = HUGE_VALF;  // NaN or negative: unbounded
            } else {
              bound = key_norm_bound_fast<Isa>(pr.k + key_row * kv_row + static_cast<std::int64_t>(kv_head) * pr.head_dim, pr.head_dim);
            }
            float& slot = prefix_[index(b * heads_ + kv_head, blk)];
            slot = std::max(slot, bound);
          }
        }
      };
    });
    for (std::int64_t bk = 0; bk < pr.batch * heads_; ++bk) {
      for (std::int64_t blk = blocks_ - 1; blk >= 0; --blk)
        suffix_[index(bk, blk)] = blk + 1 < blocks_ ? std::max(prefix_[index(bk, blk)], suffix_[index(bk, blk + 1)])
                                                    : prefix_[index(bk, blk)];
      for (std::int64_t blk = 1; blk < blocks_; ++blk)
        prefix_[index(bk, blk)] = std::max(prefix_[index(bk, blk)], prefix_[index(bk, blk - 1)]);
    }
  }

  /// Bound on the norm of every key in [0, end) of (batch, kv head) `bk`; end >= 1.
  float before(std::int64_t bk, std::int64_t end) const { return prefix_[index(bk, (end - 1) / kNormBlock)]; }
  /// Bound on the norm of every key in [begin, kv_len); begin < kv_len.
  float from(std::int64_t bk, std::int64_t begin) const { return suffix_[index(bk, begin / kNormBlock)]; }

 private:
  std::size_t index(std::int64_t bk, std::int64_t blk) const { return static_cast<std::size_t>(bk * blocks_ + blk); }

  int heads_;
  std::int64_t blocks_;
  detail::Buffer<float> prefix_, suffix_;
};

// What the tail test needs of a row.
struct SkipRow {
  std::int64_t pos;   // key position of the query
  std::int64_t bk;    // batch * num_kv_heads + kv head
  double q_norm;      // |scale * q|
  double log_budget;  // log of the mass one unvisited side may carry, times (1 - e^{-m}); -inf: never skip
  double slope;
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

  // Are the unvisited keys [lo, left_end) and [right_begin, hi) (either may be empty) negligible for a
  // row whose running max is row_max?
  bool tails_negligible(const SkipRow& row, float row_max, std::int64_t lo, std::int64_t left_end,
                        std::int64_t right_begin, std::int64_t hi) const {
    const bool left_open = lo < left_end, right_open = right_begin < hi;
    return (!left_open || tail_negligible(row, row_max, lo, left_end, bounds_->before(row.bk, left_end))) &&
           (!right_open || tail_negligible(row, row_max, right_begin, hi, bounds_->from(row.bk, right_begin)));
  }

 private:
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
