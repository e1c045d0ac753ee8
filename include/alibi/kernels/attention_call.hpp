// One attention call: validation, defaults, the skipping and split-K decisions, then the kernel on the
// thread team. alibi::attention and alibi::dispatch::attention both land here.
#include "alibi/detail/config.hpp"
// Per-target header: no #pragma once (Note [per-target headers] in detail/config.hpp).
#if (ALIBI_PASS == 0 && !defined(ALIBI_KERNELS_ATTENTION_CALL_HPP_0)) || (ALIBI_PASS == 1 && !defined(ALIBI_KERNELS_ATTENTION_CALL_HPP_1)) || \
    (ALIBI_PASS == 2 && !defined(ALIBI_KERNELS_ATTENTION_CALL_HPP_2))
#if ALIBI_PASS == 0
#define ALIBI_KERNELS_ATTENTION_CALL_HPP_0
#elif ALIBI_PASS == 1
#define ALIBI_KERNELS_ATTENTION_CALL_HPP_1
#else
#define ALIBI_KERNELS_ATTENTION_CALL_HPP_2
#endif
#include <algorithm>
#include <memory>

#include "alibi/types.hpp"
#include "alibi/detail/buffer.hpp"
#include "alibi/detail/threading.hpp"
#include "alibi/detail/validate.hpp"
#include "alibi/kernels/flash_attention.hpp"

ALIBI_NAMESPACE_BEGIN
namespace kernels {

template <class Isa>
void attention(const float* q, const float* k, const float* v, float* out, const AttentionShape& shape,
               const AttentionOptions& options) {
  detail::Buffer<float> default_slopes;
  const detail::Problem pr = detail::validate_attention(q, k, v, out, shape, options, default_slopes);
  const std::int64_t q_count = pr.batch * pr.q_len * pr.num_heads * pr.head_dim;
  if (q_count == 0) return;
  if (pr.kv_len == 0) {  // no key at all: every row sees nothing
    std::fill(out, out + q_count, 0.0f);
    return;
  }
  // Block skipping needs key norm bounds (one pass over K); only worth it when some slope decays.
  detail::Problem run = pr;
  std::unique_ptr<KeyNormBounds<Isa>> norms;
  if (pr.skip_tolerance > 0.0f && std::any_of(pr.slopes, pr.slopes + pr.num_heads, [](float m) { return m > 0.0f; })) {
    norms = std::make_unique<KeyNormBounds<Isa>>(pr);
    run.key_norms = norms.get();
  }
  using Kernel = FlashAttention<Isa>;
  // Split-K for decode-like calls with too few units to occupy the threads. The decision depends on the
  // shape only, never on num_threads, so the arithmetic (and the output) is the same for every thread
  // count. Not combined with block skipping, which needs the nearest keys' max before the far ones.
  constexpr std::int64_t kSplitBelowUnits = 8, kKvChunk = 2048, kMaxSplitRows = 256;
  detail::Buffer<float> partial;
  if (norms == nullptr && Kernel::num_base_units(run) < kSplitBelowUnits &&
      Kernel::rows_per_unit(run) <= kMaxSplitRows && run.kv_len >= 2 * kKvChunk) {
    run.kv_chunk = kKvChunk;
    partial.assign(static_cast<std::size_t>(Kernel::num_units(run) * Kernel::partial_floats_per_piece(run)), 0.0f);
    run.partial = partial.data();
  }
  // Starting a thread team costs tens of microseconds: tiny calls (one decode token over a short cache)
  // run on the calling thread. The output does not depend on this choice.
  const double kv = static_cast<double>(run.kv_len);
  const double visible = run.window > 0 ? std::min(2.0 * static_cast<double>(run.window), kv) : kv;
  const double flops = 4.0 * static_cast<double>(run.batch * run.q_len * run.num_heads) * visible * run.head_dim;
  if (flops < 4e6) run.num_threads = 1;
  const std::int64_t units = Kernel::num_units(run);
  detail::parallel_for_units(units, run.num_threads, [&run] {
    return [kernel = Kernel(run)](std::int64_t unit) mutable { kernel.run_unit(unit); };
  });
  if (run.kv_chunk > 0) {
    detail::parallel_for_units(Kernel::num_base_units(run), run.num_threads, [&run] {
      return [&run](std::int64_t unit) { Kernel::merge_unit(run, unit); };
    });
  }
}

inline void key_norms(const float* k, const AttentionShape& shape, float* out) {
  const char* fn = "key_norms";
  detail::require(shape.batch >= 0, fn, "batch", "must be >= 0, got " + std::to_string(shape.batch));
  detail::require(shape.kv_len >= 0, fn, "kv_len", "must be >= 0, got " + std::to_string(shape.kv_len));
  detail::require(shape.num_kv_heads > 0, fn, "num_kv_heads", "must be >= 1, got " + std::to_string(shape.num_kv_heads));
  detail::require(shape.head_dim > 0, fn, "head_dim", "must be >= 1, got " + std::to_string(shape.head_dim));
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
