#pragma once
// Definition of alibi::attention (declared in alibi/attention.hpp).
#include <algorithm>
#include <memory>
#include <vector>

#include "alibi/attention.hpp"
#include "alibi/detail/config.hpp"
#include "alibi/detail/threading.hpp"
#include "alibi/detail/validate.hpp"
#include "alibi/kernels/flash_attention.hpp"

ALIBI_NAMESPACE_BEGIN

template <class Isa>
void attention(const float* q, const float* k, const float* v, float* out, const AttentionShape& shape,
               const AttentionOptions& options) {
  isa::require_compiled<Isa>();
  std::vector<float> default_slopes;
  const kernels::Problem pr = detail::validate_attention(q, k, v, out, shape, options, default_slopes);
  const std::int64_t q_count = pr.batch * pr.q_len * pr.num_heads * pr.head_dim;
  if (q_count == 0) return;
  if (pr.kv_len == 0) {  // no key at all: every row sees nothing
    std::fill(out, out + q_count, 0.0f);
    return;
  }
  // Block skipping needs key norm bounds (one pass over K); only worth it when some slope decays.
  kernels::Problem run = pr;
  std::unique_ptr<kernels::KeyNormBounds> norms;
  if (pr.skip_tolerance > 0.0f && std::any_of(pr.slopes, pr.slopes + pr.num_heads, [](float m) { return m > 0.0f; })) {
    norms = std::make_unique<kernels::KeyNormBounds>(pr);
    run.key_norms = norms.get();
  }
  using Kernel = kernels::FlashAttention<Isa>;
  const std::int64_t units = Kernel::num_units(run);
  detail::parallel_for_units(units, run.num_threads, [&run] {
    return [kernel = Kernel(run)](std::int64_t unit) mutable { kernel.run_unit(unit); };
  });
}

ALIBI_NAMESPACE_END
