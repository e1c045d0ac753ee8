// Which vendor's cores run the process. The streaming decode's memory tuning (kernels/plan.hpp) depends on
// the hardware prefetchers, which differ by vendor rather than by instruction set: the same AVX-512 code
// wants its keys read differently on AMD Zen 5 and on Intel Xeon (bench/RESULTS.md, 2026-12-03 fifteenth
// session).
#include "alibi/detail/config.hpp"
// Per-target header: no #pragma once (Note [per-target headers] in detail/config.hpp).
#if (ALIBI_PASS == 0 && !defined(ALIBI_ISA_CPU_VENDOR_HPP_0)) || \
    (ALIBI_PASS == 1 && !defined(ALIBI_ISA_CPU_VENDOR_HPP_1)) || \
    (ALIBI_PASS == 2 && !defined(ALIBI_ISA_CPU_VENDOR_HPP_2))
#if ALIBI_PASS == 0
#define ALIBI_ISA_CPU_VENDOR_HPP_0
#elif ALIBI_PASS == 1
#define ALIBI_ISA_CPU_VENDOR_HPP_1
#else
#define ALIBI_ISA_CPU_VENDOR_HPP_2
#endif

ALIBI_NAMESPACE_BEGIN
namespace simd {

enum class CpuVendor { amd, other };

// Cheap enough per call: after the first, __builtin_cpu_init returns at once and __builtin_cpu_is reads a
// variable the runtime filled in.
inline CpuVendor running_cpu_vendor() noexcept {
#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
  __builtin_cpu_init();
  if (__builtin_cpu_is("amd")) return CpuVendor::amd;
#endif
  return CpuVendor::other;
}

}  // namespace simd
ALIBI_NAMESPACE_END
#endif  // per-target guard
