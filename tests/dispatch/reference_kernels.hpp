#pragma once
// alibi::attention<isa::X> compiled with X's own flags (reference_kernel.cpp, built once per ISA), the
// baseline alibi::dispatch::attention must reproduce bit for bit: one overload per K/V element type.
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

}  // namespace alibi_dispatch_test
