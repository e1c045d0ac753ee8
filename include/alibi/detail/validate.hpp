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
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>

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

// An array a call reads, for the overlap checks of the arrays it writes.
struct ReadArray {
  const void* p;
  std::int64_t bytes;  // 0 when the call does not read it
  const char* name;
};

// The written arrays out and lse (lse may be null) must not share a byte with any array the call reads,
// nor with each other: the kernel reads inputs while it writes. The same rule for every entry point.
template <std::size_t N>
void check_writes_apart_from_reads(const char* fn, const float* out, std::int64_t out_bytes, const float* lse,
                                   std::int64_t lse_bytes, const ReadArray (&reads)[N]) {
  for (const ReadArray& input : reads) {
    require(!overlaps(out, out_bytes, input.p, input.bytes), fn, "out", "must not overlap %s", input.name);
    require(!overlaps(lse, lse_bytes, input.p, input.bytes), fn, "lse", "must not overlap %s", input.name);
  }
  require(!overlaps(lse, lse_bytes, out, out_bytes), fn, "lse", "must not overlap out");
}

// Head counts and head_dim, the same rules for every entry point.
inline void check_heads(const char* fn, int num_heads, int num_kv_heads, int head_dim) {
  require(num_heads > 0, fn, "num_heads", "must be >= 1, got %lld", num_heads);
  require(num_kv_heads > 0, fn, "num_kv_heads", "must be >= 1, got %lld", num_kv_heads);
  require(num_heads % num_kv_heads == 0, fn, "num_kv_heads", "must divide num_heads (%lld), got %lld", num_heads,
          num_kv_heads);
  require(head_dim > 0, fn, "head_dim", "must be >= 1, got %lld", head_dim);
}

// The options every entry point reads the same way (not positions, not the placement of lse).
inline void check_common_options(const char* fn, const AttentionOptions& options) {
  require(options.mask == Mask::causal || options.mask == Mask::bidirectional, fn, "mask",
          "must be Mask::causal or Mask::bidirectional");
  require(options.window >= 0, fn, "window", "must be >= 0 (0: unlimited), got %lld", options.window);
  require(options.num_threads >= 0, fn, "num_threads", "must be >= 0 (0: all hardware threads), got %lld",
          options.num_threads);
  require(std::isfinite(options.scale), fn, "scale", "must be finite (0 means 1/sqrt(head_dim))");
  require(std::isfinite(options.skip_tolerance) && options.skip_tolerance >= 0.0f, fn, "skip_tolerance",
          "must be finite and >= 0 (0 disables skipping)");
}

// options.slopes checked, or the default slopes (owned by `default_slopes`).
inline const float* resolve_slopes(const char* fn, const AttentionOptions& options, int num_heads,
                                   Buffer<float>& default_slopes) {
  if (options.slopes != nullptr) {
    for (int h = 0; h < num_heads; ++h)
      require(std::isfinite(options.slopes[h]), fn, "slopes", "must be finite, slopes[%lld] is not", h);
    return options.slopes;
  }
  default_slopes.assign(static_cast<std::size_t>(num_heads), 0.0f);
  slope_values(num_heads, 8.0f, default_slopes.data());
  return default_slopes.data();
}

// Validates the call and resolves defaults. `default_slopes` owns the slopes when options.slopes is null;
// `fn` is the entry point the messages name (attention_backward checks the forward's arguments here too).
template <class KV>
Problem validate_attention(const float* q, const KV* k, const KV* v, float* out, const AttentionShape& shape,
                           const AttentionOptions& options, Buffer<float>& default_slopes,
                           const char* fn = "attention") {
  require(shape.batch >= 0, fn, "batch", "must be >= 0, got %lld", shape.batch);
  require(shape.q_len >= 0, fn, "q_len", "must be >= 0, got %lld", shape.q_len);
  require(shape.kv_len >= 0, fn, "kv_len", "must be >= 0, got %lld", shape.kv_len);
  check_heads(fn, shape.num_heads, shape.num_kv_heads, shape.head_dim);
  check_common_options(fn, options);
  require(options.q_pos0 >= -1, fn, "q_pos0", "must be >= 0, or -1 for kv_len - q_len; got %lld", options.q_pos0);
  require(options.q_pos0 <= std::numeric_limits<std::int64_t>::max() - shape.q_len, fn, "q_pos0",
          "is too large: q_pos0 + q_len overflows");
  require(options.kv_pos0 >= 0, fn, "kv_pos0", "must be >= 0, got %lld", options.kv_pos0);
  require(options.kv_pos0 <= std::numeric_limits<std::int64_t>::max() - shape.kv_len, fn, "kv_pos0",
          "is too large: kv_pos0 + kv_len overflows");

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
  const std::int64_t lse_bytes = rows * static_cast<std::int64_t>(sizeof(float));
  const std::int64_t slope_bytes =
      static_cast<std::int64_t>(shape.num_heads) * static_cast<std::int64_t>(sizeof(float));
  const std::int64_t norm_bytes = kv_count / shape.head_dim * static_cast<std::int64_t>(sizeof(float));
  const ReadArray reads[] = {{q, q_bytes, "q"},
                             {k, reads_kv ? kv_bytes : 0, "k"},
                             {v, reads_kv ? kv_bytes : 0, "v"},
                             {options.slopes, slope_bytes, "slopes"},
                             {options.key_norms, reads_kv ? norm_bytes : 0, "key_norms"}};
  check_writes_apart_from_reads(fn, out, q_bytes, options.lse, lse_bytes, reads);
  require(!(reads_kv && overlaps(options.lse, lse_bytes, options.key_norms, norm_bytes)), fn, "lse",
          "must not overlap key_norms");

  const float* slopes = resolve_slopes(fn, options, shape.num_heads, default_slopes);

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

// Validates a ragged batch and resolves defaults: one Problem per sequence in `problems` (batch 1 each).
// `pages` null: attention_varlen, k and v packed [total_kv][num_kv_heads][head_dim]; else attention_paged,
// k and v are pages->k_pages and v_pages. Every rejection happens before anything is written.
template <class KV>
void validate_seq_batch(const char* fn, const float* q, const KV* k, const KV* v, float* out, const SeqBatch& batch,
                        const AttentionOptions& options, const PagedKV<KV>* pages, Buffer<float>& default_slopes,
                        Buffer<Problem>& problems) {
  const std::int64_t n = batch.num_seqs;
  require(n >= 0, fn, "num_seqs", "must be >= 0, got %lld", n);
  check_heads(fn, batch.num_heads, batch.num_kv_heads, batch.head_dim);
  check_common_options(fn, options);
  require(options.q_pos0 == -1, fn, "q_pos0",
          "must be -1 (each sequence's queries are the last positions of its keys), got %lld", options.q_pos0);
  require(options.kv_pos0 == 0, fn, "kv_pos0", "must be 0 (keys start at position 0), got %lld", options.kv_pos0);
  if (n > 0) {
    require(batch.q_offsets != nullptr, fn, "q_offsets", "must not be null when num_seqs > 0");
    require(batch.kv_lens != nullptr, fn, "kv_lens", "must not be null when num_seqs > 0");
    require(batch.q_offsets[0] == 0, fn, "q_offsets", "must start at 0, got q_offsets[0] = %lld", batch.q_offsets[0]);
  }
  std::int64_t total_kv = 0;
  bool reads_kv = false;  // some sequence has both queries and keys
  for (std::int64_t s = 0; s < n; ++s) {
    const std::int64_t q_begin = batch.q_offsets[s], q_end = batch.q_offsets[s + 1], kv_len = batch.kv_lens[s];
    require(q_end >= q_begin, fn, "q_offsets", "must not decrease, got q_offsets[%lld] = %lld < q_offsets[%lld] = %lld",
            s + 1, q_end, s, q_begin);
    require(kv_len >= 0, fn, "kv_lens", "must be >= 0, got kv_lens[%lld] = %lld", s, kv_len);
    require(kv_len <= kMaxElements - total_kv, fn, "kv_lens", "is too large: the sum of kv_lens overflows");
    total_kv += kv_len;
    reads_kv = reads_kv || (q_end > q_begin && kv_len > 0);
  }
  const std::int64_t total_q = n > 0 ? batch.q_offsets[n] : 0;
  const std::int64_t q_count = checked_mul(checked_mul(total_q, batch.num_heads, fn, "q_offsets[num_seqs] * num_heads"),
                                           batch.head_dim, fn, "the q/out tensor (total_q * num_heads * head_dim)");
  const std::int64_t rows = total_q * batch.num_heads;  // q_count / head_dim: no overflow

  // The K/V storage: rows of num_kv_heads * head_dim elements.
  std::int64_t storage_rows = total_kv;
  std::int64_t table_bytes = 0;
  const char* k_name = pages != nullptr ? "k_pages" : "k";
  const char* v_name = pages != nullptr ? "v_pages" : "v";
  if (pages != nullptr) {
    const std::int64_t page_size = pages->page_size;
    require(page_size >= 1, fn, "page_size", "must be >= 1, got %lld", page_size);
    require(pages->num_pages >= 0, fn, "num_pages", "must be >= 0, got %lld", pages->num_pages);
    require(pages->max_pages_per_seq >= 0, fn, "max_pages_per_seq", "must be >= 0, got %lld", pages->max_pages_per_seq);
    storage_rows = checked_mul(pages->num_pages, page_size, fn, "num_pages * page_size");
    table_bytes = checked_mul(checked_mul(n, pages->max_pages_per_seq, fn, "num_seqs * max_pages_per_seq"),
                              static_cast<std::int64_t>(sizeof(std::int32_t)), fn, "block_table");
    require(total_kv == 0 || pages->block_table != nullptr, fn, "block_table",
            "must not be null when a sequence has keys");
    for (std::int64_t s = 0; s < n; ++s) {
      const std::int64_t kv_len = batch.kv_lens[s];
      const std::int64_t needed = kv_len / page_size + (kv_len % page_size != 0 ? 1 : 0);
      require(needed <= pages->max_pages_per_seq, fn, "max_pages_per_seq",
              "is too small: kv_lens[%lld] = %lld keys need %lld pages of page_size %lld, the block table has %lld", s,
              kv_len, needed, page_size, pages->max_pages_per_seq);
      const std::int32_t* table = pages->block_table + s * pages->max_pages_per_seq;
      for (std::int64_t page = 0; page < needed; ++page)
        require(table[page] >= 0 && table[page] < pages->num_pages, fn, "block_table",
                "entry [%lld][%lld] = %lld is outside [0, num_pages = %lld)", s, page, table[page], pages->num_pages);
    }
  }
  const std::int64_t kv_count =
      checked_mul(checked_mul(storage_rows, batch.num_kv_heads, fn, "the k/v storage rows * num_kv_heads"),
                  batch.head_dim, fn, "the k/v tensors (rows * num_kv_heads * head_dim)");
  if (q_count > 0) {
    require(q != nullptr, fn, "q", "must not be null for a non-empty query tensor");
    require(out != nullptr, fn, "out", "must not be null for a non-empty output tensor");
  }
  if (reads_kv) {
    require(k != nullptr, fn, k_name, "must not be null when a sequence with queries has keys");
    require(v != nullptr, fn, v_name, "must not be null when a sequence with queries has keys");
  }
  const std::int64_t q_bytes = q_count * static_cast<std::int64_t>(sizeof(float));
  const std::int64_t kv_bytes = reads_kv ? kv_count * static_cast<std::int64_t>(sizeof(KV)) : 0;
  const std::int64_t lse_bytes = rows * static_cast<std::int64_t>(sizeof(float));
  const std::int64_t slope_bytes =
      static_cast<std::int64_t>(batch.num_heads) * static_cast<std::int64_t>(sizeof(float));
  const std::int64_t norm_bytes = reads_kv ? kv_count / batch.head_dim * static_cast<std::int64_t>(sizeof(float)) : 0;
  const std::int64_t offset_bytes = n > 0 ? (n + 1) * static_cast<std::int64_t>(sizeof(std::int64_t)) : 0;
  const std::int64_t len_bytes = n * static_cast<std::int64_t>(sizeof(std::int64_t));
  const std::int32_t* block_table = pages != nullptr ? pages->block_table : nullptr;
  const ReadArray reads[] = {{q, q_bytes, "q"},
                             {k, kv_bytes, k_name},
                             {v, kv_bytes, v_name},
                             {options.slopes, slope_bytes, "slopes"},
                             {options.key_norms, norm_bytes, "key_norms"},
                             {batch.q_offsets, offset_bytes, "q_offsets"},
                             {batch.kv_lens, len_bytes, "kv_lens"},
                             {block_table, table_bytes, "block_table"}};
  check_writes_apart_from_reads(fn, out, q_bytes, options.lse, lse_bytes, reads);

  const float* slopes = resolve_slopes(fn, options, batch.num_heads, default_slopes);
  Problem base;
  base.num_heads = batch.num_heads;
  base.num_kv_heads = batch.num_kv_heads;
  base.head_dim = batch.head_dim;
  base.causal = options.mask == Mask::causal;
  base.window = options.window;
  base.scale = options.scale != 0.0f ? options.scale : 1.0f / std::sqrt(static_cast<float>(batch.head_dim));
  base.slopes = slopes;
  base.skip_tolerance = options.skip_tolerance;
  base.num_threads = resolve_num_threads(options.num_threads);
  base.batch = 1;
  problems.assign(static_cast<std::size_t>(n), base);
  const std::int64_t q_row = static_cast<std::int64_t>(batch.num_heads) * batch.head_dim;
  const std::int64_t kv_row = static_cast<std::int64_t>(batch.num_kv_heads) * batch.head_dim;
  std::int64_t kv_begin = 0;
  for (std::int64_t s = 0; s < n; ++s) {
    Problem& pr = problems[static_cast<std::size_t>(s)];
    const std::int64_t q_begin = batch.q_offsets[s];
    pr.q_len = batch.q_offsets[s + 1] - q_begin;
    pr.kv_len = batch.kv_lens[s];
    pr.q_pos0 = pr.kv_len - pr.q_len;
    pr.q = q_count > 0 ? q + q_begin * q_row : q;
    pr.out = q_count > 0 ? out + q_begin * q_row : out;
    pr.lse = options.lse != nullptr ? options.lse + q_begin * batch.num_heads : nullptr;
    if (pages != nullptr) {
      pr.k = k;
      pr.v = v;
      pr.key_norm_input = options.key_norms;
      pr.block_table = pages->block_table != nullptr ? pages->block_table + s * pages->max_pages_per_seq : nullptr;
      pr.page_size = pages->page_size;
    } else {
      pr.k = k != nullptr ? k + kv_begin * kv_row : k;
      pr.v = v != nullptr ? v + kv_begin * kv_row : v;
      pr.key_norm_input = options.key_norms != nullptr ? options.key_norms + kv_begin * batch.num_kv_heads : nullptr;
    }
    kv_begin += pr.kv_len;
  }
}

// Argument checks for merge_partials(): out and lse may be the very arrays of either input, but no other
// overlap is allowed (a shifted alias would read elements already written).
inline void validate_merge(const float* out_a, const float* lse_a, const float* out_b, const float* lse_b,
                           const float* out, const float* lse, std::int64_t rows, int head_dim) {
  const char* fn = "merge_partials";
  require(rows >= 0, fn, "rows", "must be >= 0, got %lld", rows);
  require(head_dim > 0, fn, "head_dim", "must be >= 1, got %lld", head_dim);
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
            may_alias ? "must be either exactly %s or disjoint from it" : "must be disjoint from %s", other_name);
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
