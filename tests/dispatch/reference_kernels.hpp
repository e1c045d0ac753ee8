#pragma once
// alibi::attention<isa::X>, attention_varlen<isa::X>, attention_paged<isa::X>, merge_partials<isa::X> and
// attention_backward<isa::X> compiled with X's own flags (reference_kernel.cpp, built once per ISA), the
// baselines their alibi::dispatch counterparts must reproduce bit for bit: one overload per K/V element type.
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

template <class KV>
using VarlenFn = void (*)(const float* q, const KV* k, const KV* v, float* out, const alibi::SeqBatch& batch,
                          const alibi::AttentionOptions& options);
template <class KV>
using PagedFn = void (*)(const float* q, const alibi::PagedKV<KV>& cache, float* out, const alibi::SeqBatch& batch,
                         const alibi::AttentionOptions& options);
#define ALIBI_DISPATCH_TEST_DECLARE_SERVING(isa, KV)                                                              \
  void attention_varlen_##isa(const float* q, const KV* k, const KV* v, float* out, const alibi::SeqBatch& batch, \
                              const alibi::AttentionOptions& options);                                            \
  void attention_paged_##isa(const float* q, const alibi::PagedKV<KV>& cache, float* out,                         \
                             const alibi::SeqBatch& batch, const alibi::AttentionOptions& options);
#define ALIBI_DISPATCH_TEST_DECLARE_SERVING_ALL(isa)        \
  ALIBI_DISPATCH_TEST_DECLARE_SERVING(isa, float)           \
  ALIBI_DISPATCH_TEST_DECLARE_SERVING(isa, alibi::bfloat16) \
  ALIBI_DISPATCH_TEST_DECLARE_SERVING(isa, alibi::float16)
ALIBI_DISPATCH_TEST_DECLARE_SERVING_ALL(scalar)
ALIBI_DISPATCH_TEST_DECLARE_SERVING_ALL(avx2)
ALIBI_DISPATCH_TEST_DECLARE_SERVING_ALL(avx512)
#undef ALIBI_DISPATCH_TEST_DECLARE_SERVING_ALL
#undef ALIBI_DISPATCH_TEST_DECLARE_SERVING
}  // namespace alibi_dispatch_test
