#pragma once
// Compile-time configuration shared by every alibi header.
//
// Note [ABI namespace]: code whose machine code depends on the ISA flags (every inline function and
// template of the library) lives in a namespace named after the instruction set it is compiled for, e.g.
// alibi::v0_avx2. Two translation units built with different flags then never share an inline function
// or a template instantiation of ours: the linker cannot keep an AVX-512 body for an AVX2-only caller.
// The name encodes the widest ISA level the flags enable (a level the tags do not name, such as
// -mavx512f without BW/DQ/VL, gets its own name too) and whether exceptions are on (a -fno-exceptions
// build aborts where the others throw). Plain data that TUs hand to each other (AttentionShape,
// AttentionOptions, Mask, the ISA tags) lives directly in namespace alibi and has no code to differ.
//
// Note [per-target headers]: the headers under detail/, isa/ and kernels/ that hold such code have no
// #pragma once. alibi/dispatch.hpp includes them once more for each ISA the TU's flags lack, inside
// `#pragma GCC target` (clang: `#pragma clang attribute`) regions and with ALIBI_PASS, ALIBI_ISA_NAMESPACE
// and ALIBI_TARGET_* redefined, like Highway's foreach_target.h. Each such header therefore guards itself
// once per pass: ALIBI_PASS is 0 for the TU's own flags, 1 for dispatch's AVX2 pass, 2 for its AVX-512
// pass. Standard headers are all included by pass 0, so none of them is ever compiled for a target.

// ---- ISA levels the TU's flags enable
#if defined(__AVX2__) && defined(__FMA__)
#define ALIBI_FLAGS_AVX2 1
#else
#define ALIBI_FLAGS_AVX2 0
#endif
// The AVX-512 kernel uses F, BW, DQ and VL (the x86-64-v4 set): the tag is enabled only with all four.
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512DQ__) && defined(__AVX512VL__) && ALIBI_FLAGS_AVX2
#define ALIBI_FLAGS_AVX512 1
#else
#define ALIBI_FLAGS_AVX512 0
#endif

// F16C (vcvtph2ps / vcvtps2ph): float16 conversions in one instruction. Every AVX2 CPU has it, but
// -mavx2 -mfma alone does not enable it; without it the avx2 tag converts float16 with integer code.
#if defined(__F16C__)
#define ALIBI_FLAGS_F16C 1
#else
#define ALIBI_FLAGS_F16C 0
#endif

#if ALIBI_FLAGS_AVX512
#define ALIBI_FLAGS_LEVEL avx512
#elif defined(__AVX512F__)
#define ALIBI_FLAGS_LEVEL avx512f_partial  // AVX-512 code possible, but not the avx512 tag's whole set
#elif ALIBI_FLAGS_AVX2 && ALIBI_FLAGS_F16C
#define ALIBI_FLAGS_LEVEL avx2
#elif ALIBI_FLAGS_AVX2
#define ALIBI_FLAGS_LEVEL avx2_no_f16c  // the avx2 tag, float16 converted without F16C
#elif defined(__AVX__)
#define ALIBI_FLAGS_LEVEL avx_partial  // VEX code possible, but not the avx2 tag's whole set
#else
#define ALIBI_FLAGS_LEVEL scalar
#endif

// Bad arguments throw std::invalid_argument; in a TU built without exceptions they print the message and
// abort instead, so a caller never continues with a half-validated call.
#if defined(__cpp_exceptions) || defined(__EXCEPTIONS)
#define ALIBI_HAS_EXCEPTIONS 1
#define ALIBI_EXCEPTION_SUFFIX
#else
#define ALIBI_HAS_EXCEPTIONS 0
#define ALIBI_EXCEPTION_SUFFIX _noexcept
#endif

#define ALIBI_PP_CAT_(a, b) a##b
#define ALIBI_PP_CAT(a, b) ALIBI_PP_CAT_(a, b)
#define ALIBI_PP_STR_(a) #a
#define ALIBI_PP_STR(a) ALIBI_PP_STR_(a)
/// The per-ISA namespace of a level: v0_<level>[_noexcept].
#define ALIBI_ISA_NAMESPACE_OF(level) ALIBI_PP_CAT(ALIBI_PP_CAT(v0_, level), ALIBI_EXCEPTION_SUFFIX)
/// The per-ISA namespace of the TU's own flags (whatever pass is being compiled).
#define ALIBI_FLAGS_NAMESPACE ALIBI_ISA_NAMESPACE_OF(ALIBI_FLAGS_LEVEL)

// ---- The current pass (redefined by alibi/dispatch.hpp around its passes; see Note [per-target headers])
#define ALIBI_PASS 0
#define ALIBI_TARGET_AVX2 ALIBI_FLAGS_AVX2
#define ALIBI_TARGET_AVX512 ALIBI_FLAGS_AVX512
#define ALIBI_TARGET_F16C ALIBI_FLAGS_F16C
#define ALIBI_ISA_NAMESPACE ALIBI_FLAGS_NAMESPACE
#define ALIBI_ISA_NAMESPACE_INLINE inline

/// Opens the per-ISA namespace of the current pass (Note [ABI namespace]). Inline for the TU's own flags,
/// so alibi::attention names it; dispatch's extra passes are reached only through alibi::dispatch.
#define ALIBI_NAMESPACE_BEGIN \
  namespace alibi {           \
  ALIBI_ISA_NAMESPACE_INLINE namespace ALIBI_ISA_NAMESPACE {
#define ALIBI_NAMESPACE_END \
  }                         \
  }

#if defined(__GNUC__) || defined(__clang__)
#define ALIBI_PREFETCH(address) __builtin_prefetch(address)
#define ALIBI_PREFETCH_WRITE(address) __builtin_prefetch(address, 1)
#define ALIBI_PREFETCH_L2(address) __builtin_prefetch(address, 0, 2)
#define ALIBI_ALWAYS_INLINE inline __attribute__((always_inline))
#define ALIBI_RESTRICT __restrict__
#else
#define ALIBI_PREFETCH(address) ((void)(address))
#define ALIBI_PREFETCH_WRITE(address) ((void)(address))
#define ALIBI_PREFETCH_L2(address) ((void)(address))
#define ALIBI_ALWAYS_INLINE inline
#define ALIBI_RESTRICT
#endif
