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
  auto str = [](long long x) { return int_text(x); };
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
  require(options.kv_pos0 >= 0, fn, "kv_pos0", "must be >= 0, got " + str(options.kv_pos0));
  require(options.kv_pos0 <= std::numeric_limits<std::int64_t>::max() - shape.kv_len, fn, "kv_pos0",
          "is too large: kv_pos0 + kv_len overflows");
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
  const std::int64_t rows = shape.batch * shape.q_len * shape.num_heads;  // q_count / head_dim: no overflow
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
  // lse, when given (overlaps() is false for a null pointer): against every tensor.
  const std::int64_t lse_bytes = rows * static_cast<std::int64_t>(sizeof(float));
  require(!overlaps(options.lse, lse_bytes, q, q_bytes), fn, "lse", "must not overlap q");
  require(!overlaps(options.lse, lse_bytes, out, q_bytes), fn, "lse", "must not overlap out");
  require(!(reads_kv && overlaps(options.lse, lse_bytes, k, kv_bytes)), fn, "lse", "must not overlap k");
  require(!(reads_kv && overlaps(options.lse, lse_bytes, v, kv_bytes)), fn, "lse", "must not overlap v");

  // The written arrays must not overlap the per-head and per-key inputs either: the kernel reads slopes
  // and key_norms while it writes out and lse.
  const std::int64_t slope_bytes =
      static_cast<std::int64_t>(shape.num_heads) * static_cast<std::int64_t>(sizeof(float));
  const std::int64_t norm_bytes = kv_count / shape.head_dim * static_cast<std::int64_t>(sizeof(float));
  require(!overlaps(out, q_bytes, options.slopes, slope_bytes), fn, "out", "must not overlap slopes");
  require(!overlaps(options.lse, lse_bytes, options.slopes, slope_bytes), fn, "lse", "must not overlap slopes");
  require(!(reads_kv && overlaps(out, q_bytes, options.key_norms, norm_bytes)), fn, "out",
          "must not overlap key_norms");
  require(!(reads_kv && overlaps(options.lse, lse_bytes, options.key_norms, norm_bytes)), fn, "lse",
          "must not overlap key_norms");

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
  pr.lse = options.lse;
  // Relative to key row 0 (detail::Problem::q_pos0). Both positions are in [0, 2^63) here, so their
  // difference cannot overflow.
  pr.q_pos0 = options.q_pos0 == -1 ? shape.kv_len - shape.q_len : options.q_pos0 - options.kv_pos0;
  pr.scale = options.scale != 0.0f ? options.scale : 1.0f / std::sqrt(static_cast<float>(shape.head_dim));
  pr.slopes = slopes;
  pr.skip_tolerance = options.skip_tolerance;
  pr.key_norm_input = options.key_norms;
  pr.num_threads = resolve_num_threads(options.num_threads);
  return pr;
}

// Argument checks for merge_partials(): out and lse may be the very arrays of either input, but no other
// overlap is allowed (a shifted alias would read elements already written).
inline void validate_merge(const float* out_a, const float* lse_a, const float* out_b, const float* lse_b,
                           const float* out, const float* lse, std::int64_t rows, int head_dim) {
  const char* fn = "merge_partials";
  require(rows >= 0, fn, "rows", "must be >= 0, got " + int_text(rows));
  require(head_dim > 0, fn, "head_dim", "must be >= 1, got " + int_text(head_dim));
  const std::int64_t count = checked_mul(rows, head_dim, fn, "rows * head_dim");
  if (rows == 0) return;
  require(out_a != nullptr, fn, "out_a", "must not be null when rows > 0");
  require(lse_a != nullptr, fn, "lse_a", "must not be null when rows > 0");
  require(out_b != nullptr, fn, "out_b", "must not be null when rows > 0");
  require(lse_b != nullptr, fn, "lse_b", "must not be null when rows > 0");
  require(out != nullptr, fn, "out", "must not be null when rows > 0");
  require(lse != nullptr, fn, "lse", "must not be null when rows > 0");
  const std::int64_t out_bytes = checked_mul(count, static_cast<std::int64_t>(sizeof(float)), fn, "rows * head_dim");
  const std::int64_t lse_bytes = rows * static_cast<std::int64_t>(sizeof(float));
  // Written arrays against every array: the same array as an input of the same kind, or disjoint.
  auto check = [&](const float* written, std::int64_t written_bytes, const char* name, const float* other,
                   std::int64_t other_bytes, const char* other_name, bool may_alias) {
    if (may_alias && written == other) return;
    require(!overlaps(written, written_bytes, other, other_bytes), fn, name,
            std::string("must be ") + (may_alias ? "either exactly " + std::string(other_name) + " or disjoint from it"
                                                 : "disjoint from " + std::string(other_name)));
  };
  check(out, out_bytes, "out", out_a, out_bytes, "out_a", true);
  check(out, out_bytes, "out", out_b, out_bytes, "out_b", true);
  check(out, out_bytes, "out", lse_a, lse_bytes, "lse_a", false);
  check(out, out_bytes, "out", lse_b, lse_bytes, "lse_b", false);
  check(out, out_bytes, "out", lse, lse_bytes, "lse", false);
  check(lse, lse_bytes, "lse", lse_a, lse_bytes, "lse_a", true);
  check(lse, lse_bytes, "lse", lse_b, lse_bytes, "lse_b", true);
  check(lse, lse_bytes, "lse", out_a, out_bytes, "out_a", false);
  check(lse, lse_bytes, "lse", out_b, out_bytes, "out_b", false);
}

}  // namespace detail
ALIBI_NAMESPACE_END
#endif  // per-target guard
