// Upper bounds on key norms, per block of keys, for ALiBi block skipping (see Note [block skipping]).
//
// For every (batch, kv head) the keys are cut into blocks of kNormBlock absolute positions; each block
// gets an upper bound on the Euclidean norm of its keys, and prefix/suffix maxima of those bounds answer
// "how large can any key in [0, L) or [R, kv_len) be" in O(1).
#include "alibi/detail/config.hpp"
// Per-target header: no #pragma once (Note [per-target headers] in detail/config.hpp).
#if (ALIBI_PASS == 0 && !defined(ALIBI_KERNELS_KEY_NORMS_HPP_0)) || (ALIBI_PASS == 1 && !defined(ALIBI_KERNELS_KEY_NORMS_HPP_1)) || \
    (ALIBI_PASS == 2 && !defined(ALIBI_KERNELS_KEY_NORMS_HPP_2))
#if ALIBI_PASS == 0
#define ALIBI_KERNELS_KEY_NORMS_HPP_0
#elif ALIBI_PASS == 1
#define ALIBI_KERNELS_KEY_NORMS_HPP_1
#else
#define ALIBI_KERNELS_KEY_NORMS_HPP_2
#endif
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "alibi/detail/config.hpp"
#include "alibi/detail/threading.hpp"
#include "alibi/isa/ops.hpp"
#include "alibi/detail/problem.hpp"

ALIBI_NAMESPACE_BEGIN
namespace kernels {

// Upper bound on |key|: double accumulation (exact to ~1e-16 relative) rounded up by a margin that
// survives the conversion to float. A key with a NaN or inf entry gets +inf: never skipped past.
inline float key_norm_bound(const float* key, int head_dim) {
  double sq = 0.0;
  for (int d = 0; d < head_dim; ++d) sq += static_cast<double>(key[d]) * key[d];
  const double norm = std::sqrt(sq) * (1.0 + 1e-6);
  if (!(norm < 3.0e38)) return HUGE_VALF;
  float bound = static_cast<float>(norm);
  if (static_cast<double>(bound) < norm) bound = std::nextafter(bound, HUGE_VALF);  // denormal rounding
  return bound;
}

template <class Isa>
class KeyNormBounds;

// Upper bound on |key| computed with the ISA's vectors: a float sum of D non-negative squares is within
// a relative (D + 1) * 2^-24 of the exact one, so inflating by (D + 16) * 2^-23 and the square root by
// 2^-22 keeps a true upper bound. Cheap enough to run over every key of a long cache.
template <class Isa>
ALIBI_ALWAYS_INLINE float key_norm_bound_fast(const float* key, int head_dim) {
  using O = simd::Ops<Isa>;
  constexpr int W = O::width;
  auto acc = O::zero();
  int d = 0;
  for (; d + W <= head_dim; d += W) {
    const auto x = O::load(key + d);
    acc = O::fma(x, x, acc);
  }
  if (d < head_dim) {
    const auto x = O::load_partial(key + d, head_dim - d);
    acc = O::fma(x, x, acc);
  }
  const float sq = O::reduce_add(acc);
  if (!(sq < 3.0e38f)) return HUGE_VALF;  // overflow, inf or NaN: unbounded
  // Squares of entries below ~2^-63 underflow in float, which could make the bound too small: tiny keys
  // take the exact double path. Above 2^-60, the flushed squares (< 2^-126 each) are far inside the margin.
  if (sq < 0x1p-60f) return key_norm_bound(key, head_dim);
  const double inflated = static_cast<double>(sq) * (1.0 + (head_dim + 16) * 0x1p-23);
  return static_cast<float>(std::sqrt(inflated) * (1.0 + 0x1p-22));
}

template <class Isa>
class KeyNormBounds {
 public:
  static constexpr std::int64_t kNormBlock = 64;

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
  std::vector<float> prefix_, suffix_;
};

}  // namespace kernels
ALIBI_NAMESPACE_END
#endif  // per-target guard
