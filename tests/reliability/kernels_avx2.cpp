// The AVX2 kernel, compiled with -mavx2 -mfma (alibi::v0_avx2). Nothing here runs before the test asked
// cpu_supports(): no static initialisers with AVX2 code.
#include "alibi/alibi.hpp"
#include "kernel_entry.hpp"
#include "kernels.hpp"

static_assert(alibi::isa::compiled<alibi::isa::avx2>, "kernels_avx2.cpp must be compiled with -mavx2 -mfma");

namespace alibi_reliability {

const Kernel& avx2_kernel() {
  static const Kernel kernel{alibi::isa::avx2::name,
                             [] {
                               __builtin_cpu_init();
                               return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
                             },
                             &call_attention<alibi::isa::avx2>};
  return kernel;
}

}  // namespace alibi_reliability
