// One attention call: validation and defaults, the key-norm bounds for skipping, the plan
// (kernels/plan.hpp), then the unit workers on the thread team and the split-K merge. alibi::attention
// and alibi::dispatch::attention both land here.
#include "alibi/detail/config.hpp"
// Per-target header: no #pragma once (Note [per-target headers] in detail/config.hpp).
#if (ALIBI_PASS == 0 && !defined(ALIBI_KERNELS_ATTENTION_CALL_HPP_0)) || \
    (ALIBI_PASS == 1 && !defined(ALIBI_KERNELS_ATTENTION_CALL_HPP_1)) || \
    (ALIBI_PASS == 2 && !defined(ALIBI_KERNELS_ATTENTION_CALL_HPP_2))
#if ALIBI_PASS == 0
#define ALIBI_KERNELS_ATTENTION_CALL_HPP_0
#elif ALIBI_PASS == 1
#define ALIBI_KERNELS_ATTENTION_CALL_HPP_1
#else
#define ALIBI_KERNELS_ATTENTION_CALL_HPP_2
#endif
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>

#include "alibi/detail/buffer.hpp"
#include "alibi/detail/threading.hpp"
#include "alibi/detail/validate.hpp"
#include "alibi/kernels/elements.hpp"
#include "alibi/kernels/key_norms.hpp"
#include "alibi/kernels/kv_source.hpp"
#include "alibi/kernels/partials.hpp"
#include "alibi/kernels/plan.hpp"
#include "alibi/kernels/skipping.hpp"
#include "alibi/kernels/unit_worker.hpp"
#include "alibi/types.hpp"

ALIBI_NAMESPACE_BEGIN
namespace kernels {

// KV: float, bfloat16 or float16 (kernels/elements.hpp); widened exactly to fp32 as blocks are packed.
template <class Isa, class KV>
void attention(const float* q, const KV* k, const KV* v, float* out, const AttentionShape& shape,
               const AttentionOptions& options) {
  static_assert(is_kv_element<KV>::value, "alibi::attention: k and v must be float, bfloat16 or float16");
  detail::Buffer<float> default_slopes;
  const detail::Problem pr = detail::validate_attention(q, k, v, out, shape, options, default_slopes);
  const std::int64_t q_count = pr.batch * pr.q_len * pr.num_heads * pr.head_dim;
  if (q_count == 0) return;
  if (pr.kv_len == 0) {  // no key at all: every row sees nothing
    for (std::int64_t n = 0; n < q_count; ++n) out[n] = 0.0f;
    if (pr.lse != nullptr)
      for (std::int64_t n = 0; n < q_count / pr.head_dim; ++n) pr.lse[n] = -HUGE_VALF;
    return;
  }
  // Block skipping needs key norm bounds (one pass over K); only worth it when some slope decays.
  bool some_slope_decays = false;
  for (int h = 0; h < pr.num_heads; ++h) some_slope_decays = some_slope_decays || pr.slopes[h] > 0.0f;
  std::unique_ptr<KeyNormBounds<Isa>> bounds;
  if (pr.skip_tolerance > 0.0f && some_slope_decays) bounds = std::make_unique<KeyNormBounds<Isa>>(pr, k);
  const Plan<Isa> plan = Plan<Isa>::make(pr, static_cast<int>(sizeof(KV)));
  detail::Buffer<float> partial;
  if (plan.kv_chunk > 0)
    partial.assign(static_cast<std::size_t>(plan.pieces() * plan.partial_floats_per_piece()), 0.0f);
  // Split pieces that skip need a lower bound on each row's max before they see a key (Note [block
  // skipping]); one per row, computed once for all pieces.
  detail::Buffer<float> logit_floors;
  if (bounds != nullptr && plan.kv_chunk > 0) {
    logit_floors.assign(static_cast<std::size_t>(pr.batch * pr.q_len * pr.num_heads), 0.0f);
    const KvSource<Isa, KV> kv(pr);
    std::int64_t n = 0;
    for (std::int64_t b = 0; b < pr.batch; ++b)
      for (std::int64_t i = 0; i < pr.q_len; ++i)
        for (int h = 0; h < pr.num_heads; ++h, ++n) {
          std::int64_t lo, hi;
          detail::visible_keys(pr, pr.q_pos0 + i, lo, hi);
          logit_floors[static_cast<std::size_t>(n)] = Skipping<Isa>::logit_floor(pr, kv, b, i, h, lo, hi);
        }
  }
  const KeyNormBounds<Isa>* bounds_ptr = bounds.get();
  float* partial_ptr = partial.data();
  const float* floors_ptr = logit_floors.empty() ? nullptr : logit_floors.data();
  detail::parallel_for_units(plan.pieces(), plan.threads, [&] {
    return [worker = UnitWorker<Isa, KV>(pr, plan, bounds_ptr, partial_ptr, floors_ptr)](std::int64_t piece) mutable {
      worker.run_piece(piece);
    };
  });
  if (plan.kv_chunk > 0) {
    detail::parallel_for_units(plan.base_units, plan.threads, [&] {
      return [&](std::int64_t unit) { merge_unit<Isa, KV>(pr, plan, partial_ptr, unit); };
    });
  }
}

template <class KV>
void key_norms(const KV* k, const AttentionShape& shape, float* out) {
  static_assert(is_kv_element<KV>::value, "alibi::key_norms: k must be float, bfloat16 or float16");
  const char* fn = "key_norms";
  detail::require(shape.batch >= 0, fn, "batch", "must be >= 0, got " + detail::int_text(shape.batch));
  detail::require(shape.kv_len >= 0, fn, "kv_len", "must be >= 0, got " + detail::int_text(shape.kv_len));
  detail::require(shape.num_kv_heads > 0, fn, "num_kv_heads",
                  "must be >= 1, got " + detail::int_text(shape.num_kv_heads));
  detail::require(shape.head_dim > 0, fn, "head_dim", "must be >= 1, got " + detail::int_text(shape.head_dim));
  const std::int64_t rows = detail::checked_mul(detail::checked_mul(shape.batch, shape.kv_len, fn, "batch * kv_len"),
                                                shape.num_kv_heads, fn, "batch * kv_len * num_kv_heads");
  detail::checked_mul(rows, shape.head_dim, fn, "the k tensor");
  if (rows == 0) return;
  detail::require(k != nullptr, fn, "k", "must not be null for a non-empty key tensor");
  detail::require(out != nullptr, fn, "out", "must not be null for a non-empty key tensor");
  for (std::int64_t row = 0; row < rows; ++row) out[row] = key_norm_bound(k + row * shape.head_dim, shape.head_dim);
}

}  // namespace kernels
ALIBI_NAMESPACE_END
#endif  // per-target guard
