// Flags short of a tag's full set must not enable it (issue 10, defect 5): built with -mavx512f -mavx2
// -mfma only, so isa::native is avx2, and the code gets a namespace of its own (it may hold AVX-512F
// instructions, which a pure AVX2 TU's code must never be merged with).
#include <type_traits>

#include "alibi/attention.hpp"

static_assert(!alibi::isa::compiled<alibi::isa::avx512>, "-mavx512f alone must not enable isa::avx512");
static_assert(alibi::isa::compiled<alibi::isa::avx2>, "-mavx2 -mfma enable isa::avx2");
static_assert(std::is_same<alibi::isa::native, alibi::isa::avx2>::value, "isa::native must be avx2 here");

namespace alibi {
namespace v0_avx512f_partial {}  // namespace v0_avx512f_partial
}  // namespace alibi

void partial_flags_instantiate(const float* q, const float* k, const float* v, float* out) {
  alibi::v0_avx512f_partial::attention<alibi::isa::avx2>(q, k, v, out, alibi::AttentionShape{1, 1, 1, 1, 1, 4});
}
