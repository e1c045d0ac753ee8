// Argument checks for attention(): every rejection happens before anything is written to `out`.
#include "alibi/detail/config.hpp"
// Per-target header: no #pragma once (Note [per-target headers] in detail/config.hpp).
#if (ALIBI_PASS == 0 && !defined(ALIBI_DETAIL_VALIDATE_HPP_0)) || \
    (ALIBI_PASS == 1 && !defined(ALIBI_DETAIL_VALIDATE_HPP_1)) || \
    (ALIBI_PASS == 2 && !defined(ALIBI_DETAIL_VALIDATE_HPP_2))
#if ALIBI_PASS == 0
#define ALIBI_DETAIL_VALIDATE_HPP_0
#elif ALIBI_PASS == 1
#define ALIBI_DETAIL_VALIDATE_HPP_1
#else
#define ALIBI_DETAIL_VALIDATE_HPP_2
#endif
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <string>

#include "alibi/detail/buffer.hpp"
#include "alibi/detail/checked.hpp"
#include "alibi/detail/errors.hpp"
#include "alibi/detail/problem.hpp"
#include "alibi/detail/slope_values.hpp"
#include "alibi/detail/threading.hpp"
#include "alibi/types.hpp"

ALIBI_NAMESPACE_BEGIN
namespace detail {

// Half-open byte ranges [a, a + na) and [b, b + nb) share a byte. std::less gives a total order even
// for pointers into different arrays.
inline bool overlaps(const void* a, std::int64_t na, const void* b, std::int64_t nb) {
  if (na == 0 || nb == 0 || a == nullptr || b == nullptr) return false;
  const auto* pa = static_cast<const char*>(a);
  const auto* pb = static_cast<const char*>(b);
  const std::less<const char*> before;
  return before(pa, pb + nb) && before(pb, pa + na);
}

// Validates the call and resolves defaults. `default_slopes` owns the slopes when options.slopes is null.
template <class KV>
Problem validate_attention(const float* q, const KV* k, const KV* v, float* out, const AttentionShape& shape,
                           const AttentionOptions& options, Buffer<float>& default_slopes) {
  const char* fn = "attention";
  auto str = [](auto x) { return std::to_string(x); };
  require(shape.batch >= 0, fn, "batch", "must be >= 0, got " + str(shape.batch));
  require(shape.q_len >= 0, fn, "q_len", "must be >= 0, got " + str(shape.q_len));
  require(shape.kv_len >= 0, fn, "kv_len", "must be >= 0, got " + str(shape.kv_len));
  require(shape.num_heads > 0, fn, "num_heads", "must be >= 1, got " + str(shape.num_heads));
  require(shape.num_kv_heads > 0, fn, "num_kv_heads", "must be >= 1, got " + str(shape.num_kv_heads));
  require(shape.num_heads % shape.num_kv_heads == 0, fn, "num_kv_heads",
          "must divide num_heads (" + str(shape.num_heads) + "), got " + str(shape.num_kv_heads));
  require(shape.head_dim > 0, fn, "head_dim", "must be >= 1, got " + str(shape.head_dim));
  require(options.mask == Mask::causal || options.mask == Mask::bidirectional, fn, "mask",
          "must be Mask::causal or Mask::bidirectional");
  require(options.window >= 0, fn, "window", "must be >= 0 (0: unlimited), got " + str(options.window));
  require(options.q_pos0 >= -1, fn, "q_pos0", "must be >= 0, or -1 for kv_len - q_len; got " + str(options.q_pos0));
  require(options.q_pos0 <= std::numeric_limits<std::int64_t>::max() - shape.q_len, fn, "q_pos0",
          "is too large: q_pos0 + q_len overflows");
  require(options.num_threads >= 0, fn, "num_threads",
          "must be >= 0 (0: all hardware threads), got " + str(options.num_threads));
  require(std::isfinite(options.scale), fn, "scale", "must be finite (0 means 1/sqrt(head_dim))");
  require(std::isfinite(options.skip_tolerance) && options.skip_tolerance >= 0.0f, fn, "skip_tolerance",
          "must be finite and >= 0 (0 disables skipping)");

  const std::int64_t q_count =
      checked_mul(checked_mul(checked_mul(shape.batch, shape.q_len, fn, "batch * q_len"), shape.num_heads, fn,
                              "batch * q_len * num_heads"),
                  shape.head_dim, fn, "the q/out tensor (batch * q_len * num_heads * head_dim)");
  const std::int64_t kv_count =
      checked_mul(checked_mul(checked_mul(shape.batch, shape.kv_len, fn, "batch * kv_len"), shape.num_kv_heads, fn,
                              "batch * kv_len * num_kv_heads"),
                  shape.head_dim, fn, "the k/v tensors (batch * kv_len * num_kv_heads * head_dim)");
  const bool reads_kv = q_count > 0 && kv_count > 0;
  if (q_count > 0) {
    require(q != nullptr, fn, "q", "must not be null for a non-empty query tensor");
    require(out != nullptr, fn, "out", "must not be null for a non-empty output tensor");
  }
  if (reads_kv) {
    require(k != nullptr, fn, "k", "must not be null for a non-empty key tensor");
    require(v != nullptr, fn, "v", "must not be null for a non-empty value tensor");
  }
  const std::int64_t q_bytes = q_count * static_cast<std::int64_t>(sizeof(float));
  const std::int64_t kv_bytes = kv_count * static_cast<std::int64_t>(sizeof(KV));
  require(!overlaps(out, q_bytes, q, q_bytes), fn, "out", "must not overlap q");
  require(!(reads_kv && overlaps(out, q_bytes, k, kv_bytes)), fn, "out", "must not overlap k");
  require(!(reads_kv && overlaps(out, q_bytes, v, kv_bytes)), fn, "out", "must not overlap v");

  const float* slopes = options.slopes;
  if (slopes != nullptr) {
    for (int h = 0; h < shape.num_heads; ++h)
      require(std::isfinite(slopes[h]), fn, "slopes", "must be finite, slopes[" + str(h) + "] is not");
  } else {
    default_slopes.assign(static_cast<std::size_t>(shape.num_heads), 0.0f);
    slope_values(shape.num_heads, 8.0f, default_slopes.data());
    slopes = default_slopes.data();
  }

  Problem pr;
  pr.q = q;
  pr.k = k;
  pr.v = v;
  pr.out = out;
  pr.batch = shape.batch;
  pr.q_len = shape.q_len;
  pr.kv_len = shape.kv_len;
  pr.num_heads = shape.num_heads;
  pr.num_kv_heads = shape.num_kv_heads;
  pr.head_dim = shape.head_dim;
  pr.causal = options.mask == Mask::causal;
  pr.window = options.window;
  pr.q_pos0 = options.q_pos0 == -1 ? shape.kv_len - shape.q_len : options.q_pos0;
  pr.scale = options.scale != 0.0f ? options.scale : 1.0f / std::sqrt(static_cast<float>(shape.head_dim));
  pr.slopes = slopes;
  pr.skip_tolerance = options.skip_tolerance;
  pr.key_norm_input = options.key_norms;
  pr.num_threads = resolve_num_threads(options.num_threads);
  return pr;
}

}  // namespace detail
ALIBI_NAMESPACE_END
#endif  // per-target guard
