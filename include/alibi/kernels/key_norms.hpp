#pragma once
// Upper bounds on key norms, per block of keys, for ALiBi block skipping (see Note [block skipping]).
//
// For every (batch, kv head) the keys are cut into blocks of kNormBlock absolute positions; each block
// gets an upper bound on the Euclidean norm of its keys, and prefix/suffix maxima of those bounds answer
// "how large can any key in [0, L) or [R, kv_len) be" in O(1).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "alibi/detail/config.hpp"
#include "alibi/detail/threading.hpp"
#include "alibi/kernels/problem.hpp"

ALIBI_NAMESPACE_BEGIN
namespace kernels {

// Upper bound on |key|: double accumulation (exact to ~1e-16 relative) rounded up by a margin that
// survives the conversion to float. A key with a NaN or inf entry gets +inf: never skipped past.
inline float key_norm_bound(const float* key, int head_dim) {
  double sq = 0.0;
  for (int d = 0; d < head_dim; ++d) sq += static_cast<double>(key[d]) * key[d];
  const double norm = std::sqrt(sq) * (1.0 + 1e-6);
  return std::isfinite(norm) && norm < 3.0e38 ? static_cast<float>(norm) : HUGE_VALF;
}

class KeyNormBounds {
 public:
  static constexpr std::int64_t kNormBlock = 64;

  explicit KeyNormBounds(const Problem& pr)
      : kv_len_(pr.kv_len), blocks_((pr.kv_len + kNormBlock - 1) / kNormBlock) {
    const std::int64_t heads = pr.batch * pr.num_kv_heads;
    prefix_.assign(static_cast<std::size_t>(heads * blocks_), 0.0f);
    suffix_.assign(static_cast<std::size_t>(heads * blocks_), 0.0f);
    const std::int64_t kv_row = static_cast<std::int64_t>(pr.num_kv_heads) * pr.head_dim;
    detail::parallel_for_units(heads, pr.num_threads, [&] {
      return [&](std::int64_t bk) {
        const std::int64_t b = bk / pr.num_kv_heads, kv_head = bk % pr.num_kv_heads;
        const float* keys = pr.k + (b * pr.kv_len * pr.num_kv_heads + kv_head) * pr.head_dim;
        float* prefix = prefix_.data() + bk * blocks_;
        float* suffix = suffix_.data() + bk * blocks_;
        for (std::int64_t blk = 0; blk < blocks_; ++blk) {
          if (pr.key_norm_input != nullptr) {  // caller-kept bounds: no need to read the keys
            float largest = 0.0f;
            const std::int64_t j_end = std::min(kv_len_, (blk + 1) * kNormBlock);
            for (std::int64_t j = blk * kNormBlock; j < j_end; ++j) {
              const float bound = pr.key_norm_input[(b * pr.kv_len + j) * pr.num_kv_heads + kv_head];
              largest = bound >= 0.0f ? std::max(largest, bound) : HUGE_VALF;  // NaN or negative: unbounded
              if (largest == HUGE_VALF) break;
            }
            prefix[blk] = largest;
            continue;
          }
          float largest = 0.0f;
          const std::int64_t j_end = std::min(kv_len_, (blk + 1) * kNormBlock);
          for (std::int64_t j = blk * kNormBlock; j < j_end; ++j)
            largest = std::max(largest, key_norm_bound(keys + j * kv_row, pr.head_dim));
          prefix[blk] = largest;
        }
        for (std::int64_t blk = blocks_ - 1; blk >= 0; --blk)
          suffix[blk] = blk + 1 < blocks_ ? std::max(prefix[blk], suffix[blk + 1]) : prefix[blk];
        for (std::int64_t blk = 1; blk < blocks_; ++blk) prefix[blk] = std::max(prefix[blk], prefix[blk - 1]);
      };
    });
  }

  /// Bound on the norm of every key in [0, end) of (batch, kv head) `bk`; end >= 1.
  float before(std::int64_t bk, std::int64_t end) const { return prefix_[index(bk, (end - 1) / kNormBlock)]; }
  /// Bound on the norm of every key in [begin, kv_len); begin < kv_len.
  float from(std::int64_t bk, std::int64_t begin) const { return suffix_[index(bk, begin / kNormBlock)]; }

 private:
  std::size_t index(std::int64_t bk, std::int64_t blk) const { return static_cast<std::size_t>(bk * blocks_ + blk); }

  std::int64_t kv_len_;
  std::int64_t blocks_;
  std::vector<float> prefix_, suffix_;
};

}  // namespace kernels
ALIBI_NAMESPACE_END
