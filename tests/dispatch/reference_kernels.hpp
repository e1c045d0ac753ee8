#pragma once
// alibi::attention<isa::X> and alibi::merge_partials<isa::X> compiled with X's own flags
// (reference_kernel.cpp, built once per ISA), the baselines alibi::dispatch::attention and
// alibi::dispatch::merge_partials must reproduce bit for bit: one attention overload per K/V element type.
#include <cstdint>

#include "alibi/types.hpp"

namespace alibi_dispatch_test {

template <class KV>
using AttentionFn = void (*)(const float* q, const KV* k, const KV* v, float* out, const alibi::AttentionShape& shape,
                             const alibi::AttentionOptions& options);

void attention_scalar(const float* q, const float* k, const float* v, float* out, const alibi::AttentionShape& shape,
                      const alibi::AttentionOptions& options);
void attention_scalar(const float* q, const alibi::bfloat16* k, const alibi::bfloat16* v, float* out,
                      const alibi::AttentionShape& shape, const alibi::AttentionOptions& options);
void attention_scalar(const float* q, const alibi::float16* k, const alibi::float16* v, float* out,
                      const alibi::AttentionShape& shape, const alibi::AttentionOptions& options);
void attention_avx2(const float* q, const float* k, const float* v, float* out, const alibi::AttentionShape& shape,
                    const alibi::AttentionOptions& options);
void attention_avx2(const float* q, const alibi::bfloat16* k, const alibi::bfloat16* v, float* out,
                    const alibi::AttentionShape& shape, const alibi::AttentionOptions& options);
void attention_avx2(const float* q, const alibi::float16* k, const alibi::float16* v, float* out,
                    const alibi::AttentionShape& shape, const alibi::AttentionOptions& options);
void attention_avx512(const float* q, const float* k, const float* v, float* out, const alibi::AttentionShape& shape,
                      const alibi::AttentionOptions& options);
void attention_avx512(const float* q, const alibi::bfloat16* k, const alibi::bfloat16* v, float* out,
                      const alibi::AttentionShape& shape, const alibi::AttentionOptions& options);
void attention_avx512(const float* q, const alibi::float16* k, const alibi::float16* v, float* out,
                      const alibi::AttentionShape& shape, const alibi::AttentionOptions& options);

using MergeFn = void (*)(const float* out_a, const float* lse_a, const float* out_b, const float* lse_b, float* out,
                         float* lse, std::int64_t rows, int head_dim);

void merge_partials_scalar(const float* out_a, const float* lse_a, const float* out_b, const float* lse_b, float* out,
                           float* lse, std::int64_t rows, int head_dim);
void merge_partials_avx2(const float* out_a, const float* lse_a, const float* out_b, const float* lse_b, float* out,
                         float* lse, std::int64_t rows, int head_dim);
void merge_partials_avx512(const float* out_a, const float* lse_a, const float* out_b, const float* lse_b, float* out,
                           float* lse, std::int64_t rows, int head_dim);

using BackwardFn = void (*)(const float* q, const float* k, const float* v, const float* out, const float* lse,
                            const float* dout, const alibi::AttentionGrads& grads, const alibi::AttentionShape& shape,
                            const alibi::AttentionOptions& options);

void attention_backward_scalar(const float* q, const float* k, const float* v, const float* out, const float* lse,
                               const float* dout, const alibi::AttentionGrads& grads,
                               const alibi::AttentionShape& shape, const alibi::AttentionOptions& options);
void attention_backward_avx2(const float* q, const float* k, const float* v, const float* out, const float* lse,
                             const float* dout, const alibi::AttentionGrads& grads, const alibi::AttentionShape& shape,
                             const alibi::AttentionOptions& options);
void attention_backward_avx512(const float* q, const float* k, const float* v, const float* out, const float* lse,
                               const float* dout, const alibi::AttentionGrads& grads,
                               const alibi::AttentionShape& shape, const alibi::AttentionOptions& options);

}  // namespace alibi_dispatch_test
