// The kernels of reference_kernels.hpp for isa::native in a TU compiled with one ISA's flags;
// ALIBI_DISPATCH_TEST_ISA names it.
#include "alibi/attention.hpp"
#include "alibi/backward.hpp"
#include "alibi/serving.hpp"
#include "reference_kernels.hpp"

#define ALIBI_DISPATCH_TEST_CAT_(a, b) a##b
#define ALIBI_DISPATCH_TEST_CAT(a, b) ALIBI_DISPATCH_TEST_CAT_(a, b)

namespace alibi_dispatch_test {

static_assert(std::is_same<alibi::isa::native, alibi::isa::ALIBI_DISPATCH_TEST_ISA>::value,
              "reference_kernel.cpp must be compiled with exactly the flags of ALIBI_DISPATCH_TEST_ISA");

#define ALIBI_DISPATCH_TEST_DEFINE(KV)                                                                              \
  void ALIBI_DISPATCH_TEST_CAT(attention_, ALIBI_DISPATCH_TEST_ISA)(const float* q, const KV* k, const KV* v,       \
                                                                    float* out, const alibi::AttentionShape& shape, \
                                                                    const alibi::AttentionOptions& options) {       \
    alibi::attention<alibi::isa::ALIBI_DISPATCH_TEST_ISA>(q, k, v, out, shape, options);                            \
  }
ALIBI_DISPATCH_TEST_DEFINE(float)
ALIBI_DISPATCH_TEST_DEFINE(alibi::bfloat16)
ALIBI_DISPATCH_TEST_DEFINE(alibi::float16)
#undef ALIBI_DISPATCH_TEST_DEFINE

void ALIBI_DISPATCH_TEST_CAT(merge_partials_, ALIBI_DISPATCH_TEST_ISA)(const float* out_a, const float* lse_a,
                                                                       const float* out_b, const float* lse_b,
                                                                       float* out, float* lse, std::int64_t rows,
                                                                       int head_dim) {
  alibi::merge_partials<alibi::isa::ALIBI_DISPATCH_TEST_ISA>(out_a, lse_a, out_b, lse_b, out, lse, rows, head_dim);
}

void ALIBI_DISPATCH_TEST_CAT(attention_backward_, ALIBI_DISPATCH_TEST_ISA)(
    const float* q, const float* k, const float* v, const float* out, const float* lse, const float* dout,
    const alibi::AttentionGrads& grads, const alibi::AttentionShape& shape, const alibi::AttentionOptions& options) {
  alibi::attention_backward<alibi::isa::ALIBI_DISPATCH_TEST_ISA>(q, k, v, out, lse, dout, grads, shape, options);
}

#define ALIBI_DISPATCH_TEST_DEFINE_SERVING(KV)                                                                       \
  void ALIBI_DISPATCH_TEST_CAT(attention_varlen_, ALIBI_DISPATCH_TEST_ISA)(const float* q, const KV* k, const KV* v, \
                                                                           float* out, const alibi::SeqBatch& batch, \
                                                                           const alibi::AttentionOptions& options) { \
    alibi::attention_varlen<alibi::isa::ALIBI_DISPATCH_TEST_ISA>(q, k, v, out, batch, options);                      \
  }                                                                                                                  \
  void ALIBI_DISPATCH_TEST_CAT(attention_paged_, ALIBI_DISPATCH_TEST_ISA)(                                           \
      const float* q, const alibi::PagedKV<KV>& cache, float* out, const alibi::SeqBatch& batch,                     \
      const alibi::AttentionOptions& options) {                                                                      \
    alibi::attention_paged<alibi::isa::ALIBI_DISPATCH_TEST_ISA>(q, cache, out, batch, options);                      \
  }
ALIBI_DISPATCH_TEST_DEFINE_SERVING(float)
ALIBI_DISPATCH_TEST_DEFINE_SERVING(alibi::bfloat16)
ALIBI_DISPATCH_TEST_DEFINE_SERVING(alibi::float16)
#undef ALIBI_DISPATCH_TEST_DEFINE_SERVING
}  // namespace alibi_dispatch_test
