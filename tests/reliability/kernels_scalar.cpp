// The scalar kernel, compiled without ISA flags (alibi::v0_scalar), and the list of compiled kernels.
#include "alibi/alibi.hpp"
#include "kernel_entry.hpp"
#include "kernels.hpp"

namespace alibi_reliability {

#if defined(ALIBI_RELIABILITY_HAVE_AVX2)
const Kernel& avx2_kernel();  // kernels_avx2.cpp
#endif

std::vector<Kernel> compiled_kernels() {
  std::vector<Kernel> kernels;
  kernels.push_back(Kernel{alibi::isa::scalar::name, [] { return true; }, &call_attention<alibi::isa::scalar>});
#if defined(ALIBI_RELIABILITY_HAVE_AVX2)
  kernels.push_back(avx2_kernel());
#endif
  return kernels;
}

void key_norms(const Call& call, float* out) {
  alibi::key_norms(call.k, call.shape, out);
}

}  // namespace alibi_reliability
