// Argument checks for attention_backward(): the forward's rules (validate_attention), then the backward's
// own inputs and the gradient buffers. Every rejection happens before any gradient is written.
#include "alibi/detail/config.hpp"
// Per-target header: no #pragma once (Note [per-target headers] in detail/config.hpp).
#if (ALIBI_PASS == 0 && !defined(ALIBI_DETAIL_VALIDATE_BACKWARD_HPP_0)) || \
    (ALIBI_PASS == 1 && !defined(ALIBI_DETAIL_VALIDATE_BACKWARD_HPP_1)) || \
    (ALIBI_PASS == 2 && !defined(ALIBI_DETAIL_VALIDATE_BACKWARD_HPP_2))
#if ALIBI_PASS == 0
#define ALIBI_DETAIL_VALIDATE_BACKWARD_HPP_0
#elif ALIBI_PASS == 1
#define ALIBI_DETAIL_VALIDATE_BACKWARD_HPP_1
#else
#define ALIBI_DETAIL_VALIDATE_BACKWARD_HPP_2
#endif
#include <cstdint>

#include "alibi/detail/buffer.hpp"
#include "alibi/detail/errors.hpp"
#include "alibi/detail/problem.hpp"
#include "alibi/detail/validate.hpp"
#include "alibi/types.hpp"

ALIBI_NAMESPACE_BEGIN
namespace detail {

// Validates a backward call and resolves defaults into the forward's Problem (out is the forward's
// output, read only; Problem::lse is the forward's lse). `default_slopes` owns the slopes when
// options.slopes is null.
inline Problem validate_attention_backward(const float* q, const float* k, const float* v, const float* out,
                                           const float* lse, const float* dout, const AttentionGrads& grads,
                                           const AttentionShape& shape, const AttentionOptions& options,
                                           Buffer<float>& default_slopes) {
  // The forward's rules first (sizes, options, null q/k/v/out, out against q/k/v, options.lse), with every
  // message naming this entry point: "alibi::attention_backward: <parameter> ...".
  const char* fn = "attention_backward";
  Problem pr = validate_attention(q, k, v, const_cast<float*>(out), shape, options, default_slopes, fn);
  const std::int64_t rows = pr.batch * pr.q_len * pr.num_heads;
  const std::int64_t q_count = rows * pr.head_dim;
  const std::int64_t kv_count = pr.batch * pr.kv_len * pr.num_kv_heads * pr.head_dim;  // checked above
  if (q_count > 0) {
    require(lse != nullptr, fn, "lse", "must not be null for a non-empty query tensor (the forward's options.lse)");
    require(dout != nullptr, fn, "dout", "must not be null for a non-empty output tensor");
  }
  const std::int64_t f = static_cast<std::int64_t>(sizeof(float));
  const std::int64_t q_bytes = q_count * f, kv_bytes = kv_count * f, lse_bytes = rows * f;
  const std::int64_t slope_bytes = static_cast<std::int64_t>(pr.num_heads) * f;
  const std::int64_t norm_bytes = kv_count / pr.head_dim * f;
  const struct {
    const void* p;
    std::int64_t bytes;
    const char* name;
  } inputs[] = {{q, q_bytes, "q"},
                {k, kv_bytes, "k"},
                {v, kv_bytes, "v"},
                {out, q_bytes, "out"},
                {lse, lse_bytes, "lse"},
                {dout, q_bytes, "dout"},
                {options.slopes, slope_bytes, "slopes"},
                {options.key_norms, norm_bytes, "key_norms"}};
  const struct {
    const float* p;
    std::int64_t bytes;
    const char* name;
  } outputs[] = {{grads.dq, q_bytes, "dq"},
                 {grads.dk, kv_bytes, "dk"},
                 {grads.dv, kv_bytes, "dv"},
                 {grads.dslopes, slope_bytes, "dslopes"}};
  for (const auto& written : outputs) {
    if (written.bytes > 0 && written.p == nullptr) continue;  // not asked for
    for (const auto& input : inputs)
      require(!overlaps(written.p, written.bytes, input.p, input.bytes), fn, written.name, "must not overlap %s",
              input.name);
    for (const auto& other : outputs)
      if (&other != &written)
        require(!overlaps(written.p, written.bytes, other.p, other.bytes), fn, written.name, "must not overlap %s",
                other.name);
  }
  return pr;
}

}  // namespace detail
ALIBI_NAMESPACE_END
#endif  // per-target guard
