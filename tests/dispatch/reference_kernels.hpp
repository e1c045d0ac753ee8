#pragma once
// alibi::attention<isa::X> compiled with X's own flags (reference_kernel.cpp, built once per ISA), the
// baseline alibi::dispatch::attention must reproduce bit for bit.
#include "alibi/types.hpp"

namespace alibi_dispatch_test {

using AttentionFn = void (*)(const float* q, const float* k, const float* v, float* out,
                             const alibi::AttentionShape& shape, const alibi::AttentionOptions& options);

void attention_scalar(const float* q, const float* k, const float* v, float* out, const alibi::AttentionShape& shape,
                      const alibi::AttentionOptions& options);
void attention_avx2(const float* q, const float* k, const float* v, float* out, const alibi::AttentionShape& shape,
                    const alibi::AttentionOptions& options);
void attention_avx512(const float* q, const float* k, const float* v, float* out, const alibi::AttentionShape& shape,
                      const alibi::AttentionOptions& options);

}  // namespace alibi_dispatch_test
