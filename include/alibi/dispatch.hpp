#pragma once
// Runtime dispatch: alibi::dispatch::attention runs the widest kernel the running CPU supports, from a
// translation unit compiled without any ISA flags. For binaries built once for many CPUs: distribution
// packages, Python extensions, plugins.
//
// How (Note [per-target headers] in detail/config.hpp): this header includes the kernel once for the TU's
// own flags and once more for each wider ISA the flags lack, each time inside a target region
// (`#pragma GCC target`, or clang's `#pragma clang attribute`) and in that ISA's namespace, as Highway's
// foreach_target.h does. The code of each pass is the code a TU built with that ISA's flags gets, in the
// same namespace, so the output is bitwise equal to alibi::attention<isa::X> compiled with X's flags.
//
// The environment variable ALIBI_ISA=scalar|avx2|avx512 caps the choice (as oneDNN's ONEDNN_MAX_CPU_ISA
// does); it is read once, on the first call. An unknown value, an ISA this CPU lacks, or one below what
// the TU's flags already require throws std::invalid_argument naming ALIBI_ISA.
#include <cstdlib>
#include <cstring>
#include <type_traits>

#include "alibi/detail/config.hpp"
#include "alibi/isa/tags.hpp"
#include "alibi/types.hpp"
// Pass 0: the kernels for this TU's own flags (and every standard header they use).
#include "alibi/detail/errors.hpp"
#include "alibi/kernels/attention_call.hpp"
#include "alibi/kernels/backward_call.hpp"
#include "alibi/kernels/merge_call.hpp"
#include "alibi/kernels/serving_call.hpp"

#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
#define ALIBI_DISPATCH_X86 1
#include <cpuid.h>
#include <immintrin.h>
#else
#define ALIBI_DISPATCH_X86 0
#endif

// ---- Pass 1: AVX2 + FMA + F16C, when the TU's flags do not already give AVX2 ------------------------------
#if ALIBI_DISPATCH_X86 && !ALIBI_FLAGS_AVX2
#define ALIBI_DISPATCH_PASS_AVX2 1
#undef ALIBI_PASS
#define ALIBI_PASS 1
#undef ALIBI_TARGET_AVX2
#define ALIBI_TARGET_AVX2 1
#undef ALIBI_TARGET_AVX512
#define ALIBI_TARGET_AVX512 0
#undef ALIBI_TARGET_F16C
#define ALIBI_TARGET_F16C 1
#undef ALIBI_ISA_NAMESPACE
#define ALIBI_ISA_NAMESPACE ALIBI_ISA_NAMESPACE_OF(avx2)
#undef ALIBI_ISA_NAMESPACE_INLINE
#define ALIBI_ISA_NAMESPACE_INLINE
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
#endif
#include "alibi/kernels/attention_call.hpp"
#include "alibi/kernels/backward_call.hpp"
#include "alibi/kernels/merge_call.hpp"
#include "alibi/kernels/serving_call.hpp"
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
#else
#define ALIBI_DISPATCH_PASS_AVX2 0
#endif

// ---- Pass 2: AVX-512 F/BW/DQ/VL (with AVX2 + FMA), when the TU's flags do not already give it ----------
#if ALIBI_DISPATCH_X86 && !ALIBI_FLAGS_AVX512
#define ALIBI_DISPATCH_PASS_AVX512 1
#undef ALIBI_PASS
#define ALIBI_PASS 2
#undef ALIBI_TARGET_AVX2
#define ALIBI_TARGET_AVX2 1
#undef ALIBI_TARGET_AVX512
#define ALIBI_TARGET_AVX512 1
#undef ALIBI_TARGET_F16C
#define ALIBI_TARGET_F16C 1
#undef ALIBI_ISA_NAMESPACE
#define ALIBI_ISA_NAMESPACE ALIBI_ISA_NAMESPACE_OF(avx512)
#undef ALIBI_ISA_NAMESPACE_INLINE
#define ALIBI_ISA_NAMESPACE_INLINE
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma,f16c"))), \
                             apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma,f16c")
#endif
#include "alibi/kernels/attention_call.hpp"
#include "alibi/kernels/backward_call.hpp"
#include "alibi/kernels/merge_call.hpp"
#include "alibi/kernels/serving_call.hpp"
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
#else
#define ALIBI_DISPATCH_PASS_AVX512 0
#endif

// ---- Back to the TU's own pass -------------------------------------------------------------------------
#undef ALIBI_PASS
#define ALIBI_PASS 0
#undef ALIBI_TARGET_AVX2
#define ALIBI_TARGET_AVX2 ALIBI_FLAGS_AVX2
#undef ALIBI_TARGET_AVX512
#define ALIBI_TARGET_AVX512 ALIBI_FLAGS_AVX512
#undef ALIBI_TARGET_F16C
#define ALIBI_TARGET_F16C ALIBI_FLAGS_F16C
#undef ALIBI_ISA_NAMESPACE
#define ALIBI_ISA_NAMESPACE ALIBI_FLAGS_NAMESPACE
#undef ALIBI_ISA_NAMESPACE_INLINE
#define ALIBI_ISA_NAMESPACE_INLINE inline

ALIBI_NAMESPACE_BEGIN
namespace dispatch {
namespace detail {

// ISA levels in increasing width; the index into the kernel table.
enum class Level : int { scalar = 0, avx2 = 1, avx512 = 2 };

inline const char* level_name(Level level) {
  switch (level) {
    case Level::avx2:
      return isa::avx2::name;
    case Level::avx512:
      return isa::avx512::name;
    case Level::scalar:
      break;
  }
  return isa::scalar::name;
}

// The lowest level this TU has a kernel for: its own flags' level (a TU built with -mavx2 cannot hold a
// kernel free of AVX2 instructions).
constexpr Level floor_level() {
  return ALIBI_FLAGS_AVX512 ? Level::avx512 : (ALIBI_FLAGS_AVX2 ? Level::avx2 : Level::scalar);
}

// The widest level the running CPU (and its OS, for the register state) supports.
inline Level cpu_level() {
#if ALIBI_DISPATCH_X86
  __builtin_cpu_init();
  // F16C from CPUID leaf 1, ECX bit 29 (clang's __builtin_cpu_supports does not know "f16c").
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  const bool f16c = __get_cpuid(1, &eax, &ebx, &ecx, &edx) != 0 && (ecx & (1u << 29)) != 0;
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && f16c;
  const bool avx512 = avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
  return avx512 ? Level::avx512 : (avx2 ? Level::avx2 : Level::scalar);
#else
  return Level::scalar;
#endif
}

// The CPU's level, capped by ALIBI_ISA when it is set (and not empty).
inline Level resolve_level() {
  const Level cpu = cpu_level();
  const char* cap = std::getenv("ALIBI_ISA");
  if (cap == nullptr || *cap == '\0') return cpu < floor_level() ? floor_level() : cpu;
  Level wanted;
  if (std::strcmp(cap, "scalar") == 0) {
    wanted = Level::scalar;
  } else if (std::strcmp(cap, "avx2") == 0) {
    wanted = Level::avx2;
  } else if (std::strcmp(cap, "avx512") == 0) {
    wanted = Level::avx512;
  } else {
    alibi::detail::fail_parameter("dispatch", "ALIBI_ISA", "must be scalar, avx2 or avx512, got \"%s\"", cap);
  }
  alibi::detail::require(wanted <= cpu, "dispatch", "ALIBI_ISA", "is %s but this CPU supports at most %s", cap,
                         level_name(cpu));
  alibi::detail::require(wanted >= floor_level(), "dispatch", "ALIBI_ISA",
                         "is %s but this program was compiled with %s flags, so its narrowest kernel is %s", cap,
                         level_name(floor_level()), level_name(floor_level()));
  return wanted;
}

// Read once: the first call decides for the whole program (a throwing first call decides nothing).
inline Level chosen_level() {
  static const Level level = resolve_level();
  return level;
}

}  // namespace detail

/// The ISA attention() runs on: "scalar", "avx2" or "avx512".
/// @throws std::invalid_argument naming ALIBI_ISA when that variable holds an unusable value.
inline const char* isa_name() {
  return detail::level_name(detail::chosen_level());
}

// Calls kernels::FN<isa::X>(...) for the chosen level X: the pass compiled for it, or this TU's own.
#if ALIBI_DISPATCH_PASS_AVX512
#define ALIBI_DISPATCH_CASE_AVX512(FN, ...)                                         \
  case detail::Level::avx512:                                                       \
    ::alibi::ALIBI_ISA_NAMESPACE_OF(avx512)::kernels::FN<isa::avx512>(__VA_ARGS__); \
    return;
#elif ALIBI_FLAGS_AVX512
#define ALIBI_DISPATCH_CASE_AVX512(FN, ...) \
  case detail::Level::avx512:               \
    kernels::FN<isa::avx512>(__VA_ARGS__);  \
    return;
#else
#define ALIBI_DISPATCH_CASE_AVX512(FN, ...)
#endif
#if ALIBI_DISPATCH_PASS_AVX2
#define ALIBI_DISPATCH_CASE_AVX2(FN, ...)                                       \
  case detail::Level::avx2:                                                     \
    ::alibi::ALIBI_ISA_NAMESPACE_OF(avx2)::kernels::FN<isa::avx2>(__VA_ARGS__); \
    return;
#elif ALIBI_FLAGS_AVX2
#define ALIBI_DISPATCH_CASE_AVX2(FN, ...) \
  case detail::Level::avx2:               \
    kernels::FN<isa::avx2>(__VA_ARGS__);  \
    return;
#else
#define ALIBI_DISPATCH_CASE_AVX2(FN, ...)
#endif
#define ALIBI_DISPATCH_KERNEL(FN, ...)          \
  switch (detail::chosen_level()) {             \
    ALIBI_DISPATCH_CASE_AVX512(FN, __VA_ARGS__) \
    ALIBI_DISPATCH_CASE_AVX2(FN, __VA_ARGS__)   \
    default:                                    \
      break;                                    \
  }                                             \
  kernels::FN<isa::native>(__VA_ARGS__)

/// alibi::attention on the widest ISA the running CPU supports (capped by ALIBI_ISA); same arguments,
/// same guarantees, and bitwise the output of alibi::attention<isa::X> compiled with X's flags.
/// KV is the element type of k and v: float, bfloat16 or float16.
template <class KV>
void attention(const float* q, const KV* k, const KV* v, float* out, const AttentionShape& shape,
               const AttentionOptions& options = {}) {
  ALIBI_DISPATCH_KERNEL(attention, q, k, v, out, shape, options);
}

/// alibi::attention_varlen (alibi/serving.hpp) on the widest ISA the running CPU supports; bitwise the
/// output of alibi::attention_varlen<isa::X> compiled with X's flags.
template <class KV>
void attention_varlen(const float* q, const KV* k, const KV* v, float* out, const SeqBatch& batch,
                      const AttentionOptions& options = {}) {
  ALIBI_DISPATCH_KERNEL(attention_varlen, q, k, v, out, batch, options);
}

/// fp32 K/V; also takes a literal nullptr for k or v.
inline void attention_varlen(const float* q, const float* k, const float* v, float* out, const SeqBatch& batch,
                             const AttentionOptions& options = {}) {
  dispatch::attention_varlen<float>(q, k, v, out, batch, options);
}

/// alibi::attention_paged (alibi/serving.hpp) on the widest ISA the running CPU supports; bitwise the
/// output of alibi::attention_paged<isa::X> compiled with X's flags.
template <class KV>
void attention_paged(const float* q, const PagedKV<KV>& cache, float* out, const SeqBatch& batch,
                     const AttentionOptions& options = {}) {
  ALIBI_DISPATCH_KERNEL(attention_paged, q, cache, out, batch, options);
}

/// alibi::attention_backward (alibi/backward.hpp) on the widest ISA the running CPU supports (capped by
/// ALIBI_ISA); bitwise the gradients of alibi::attention_backward<isa::X> compiled with X's flags.
inline void attention_backward(const float* q, const float* k, const float* v, const float* out, const float* lse,
                               const float* dout, const AttentionGrads& grads, const AttentionShape& shape,
                               const AttentionOptions& options = {}) {
  ALIBI_DISPATCH_KERNEL(attention_backward, q, k, v, out, lse, dout, grads, shape, options);
}

/// alibi::merge_partials on the widest ISA the running CPU supports (capped by ALIBI_ISA); bitwise the
/// output of alibi::merge_partials<isa::X> compiled with X's flags.
inline void merge_partials(const float* out_a, const float* lse_a, const float* out_b, const float* lse_b, float* out,
                           float* lse, std::int64_t rows, int head_dim) {
  ALIBI_DISPATCH_KERNEL(merge_partials, out_a, lse_a, out_b, lse_b, out, lse, rows, head_dim);
}

/// fp32 K/V; also takes a literal nullptr for k or v (empty tensors), from which KV could not be deduced.
inline void attention(const float* q, const float* k, const float* v, float* out, const AttentionShape& shape,
                      const AttentionOptions& options = {}) {
  dispatch::attention<float>(q, k, v, out, shape, options);
}
}  // namespace dispatch
ALIBI_NAMESPACE_END
