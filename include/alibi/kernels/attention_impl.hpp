#pragma once
// Definition of alibi::attention (declared in alibi/attention.hpp).
#include <algorithm>
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
  using Kernel = kernels::FlashAttention<Isa>;
  const std::int64_t units = Kernel(pr).num_units();
  detail::parallel_for_units(units, pr.num_threads, [&pr] {
    return [kernel = Kernel(pr)](std::int64_t unit) mutable { kernel.run_unit(unit); };
  });
}

ALIBI_NAMESPACE_END
