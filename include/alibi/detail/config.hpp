#pragma once
// Compile-time configuration shared by every alibi header.
//
// Note [ABI namespace]: every declaration lives in an inline namespace named after the widest ISA the
// translation unit was compiled for. A TU built with -mavx512f and one built without can then be linked
// into one program: their inline functions and templates have different mangled names, so the linker
// never merges an AVX-512 body into code that must run on an AVX2-only CPU.
#if defined(__AVX512F__)
#define ALIBI_ABI_NAMESPACE v0_avx512
#elif defined(__AVX2__) && defined(__FMA__)
#define ALIBI_ABI_NAMESPACE v0_avx2
#else
#define ALIBI_ABI_NAMESPACE v0_scalar
#endif

#define ALIBI_NAMESPACE_BEGIN \
  namespace alibi {           \
  inline namespace ALIBI_ABI_NAMESPACE {
#define ALIBI_NAMESPACE_END \
  }                         \
  }

// Bad arguments throw std::invalid_argument; in a TU built without exceptions they print the message and
// abort instead, so a caller never continues with a half-validated call.
#if defined(__cpp_exceptions) || defined(__EXCEPTIONS)
#define ALIBI_HAS_EXCEPTIONS 1
#else
#define ALIBI_HAS_EXCEPTIONS 0
#endif

#if defined(__GNUC__) || defined(__clang__)
#define ALIBI_PREFETCH(address) __builtin_prefetch(address)
#define ALIBI_PREFETCH_WRITE(address) __builtin_prefetch(address, 1)
#define ALIBI_ALWAYS_INLINE inline __attribute__((always_inline))
#define ALIBI_RESTRICT __restrict__
#else
#define ALIBI_PREFETCH(address) ((void)(address))
#define ALIBI_PREFETCH_WRITE(address) ((void)(address))
#define ALIBI_ALWAYS_INLINE inline
#define ALIBI_RESTRICT
#endif
