// alibi::attention<isa::native> in a TU compiled with one ISA's flags; ALIBI_DISPATCH_TEST_ISA names it.
#include "alibi/attention.hpp"
#include "reference_kernels.hpp"

#define ALIBI_DISPATCH_TEST_CAT_(a, b) a##b
#define ALIBI_DISPATCH_TEST_CAT(a, b) ALIBI_DISPATCH_TEST_CAT_(a, b)

namespace alibi_dispatch_test {

static_assert(std::is_same<alibi::isa::native, alibi::isa::ALIBI_DISPATCH_TEST_ISA>::value,
              "reference_kernel.cpp must be compiled with exactly the flags of ALIBI_DISPATCH_TEST_ISA");

void ALIBI_DISPATCH_TEST_CAT(attention_, ALIBI_DISPATCH_TEST_ISA)(const float* q, const float* k, const float* v,
                                                                  float* out, const alibi::AttentionShape& shape,
                                                                  const alibi::AttentionOptions& options) {
  alibi::attention<alibi::isa::ALIBI_DISPATCH_TEST_ISA>(q, k, v, out, shape, options);
}

}  // namespace alibi_dispatch_test
