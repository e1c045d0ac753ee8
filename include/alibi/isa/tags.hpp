#pragma once
// ISA tags: empty types that select a kernel instantiation at compile time.
//
// The tags are plain data shared by every translation unit (Note [ABI namespace]). What this TU's compile
// flags allow is per TU: `isa::compiled<Tag>` and `isa::native`, the widest allowed tag. Naming a tag the
// flags do not allow fails in `require_compiled` with a message naming the flags to add.
#include <type_traits>

#include "alibi/detail/config.hpp"

namespace alibi {
namespace isa {

struct scalar {
  static constexpr const char* name = "scalar";
};

/// AVX2 and FMA (x86-64-v3 without the rest).
struct avx2 {
  static constexpr const char* name = "avx2";
};

/// AVX-512 F, BW, DQ and VL (the x86-64-v4 set), with AVX2 and FMA.
struct avx512 {
  static constexpr const char* name = "avx512";
};

template <class Isa>
struct is_tag : std::bool_constant<std::is_same<Isa, scalar>::value || std::is_same<Isa, avx2>::value ||
                                   std::is_same<Isa, avx512>::value> {};

// Per TU (inline namespace of the TU's flags, so TUs with different flags never share these entities).
inline namespace ALIBI_FLAGS_NAMESPACE {

/// Whether this translation unit's compile flags enable `Isa`: avx2 needs -mavx2 -mfma; avx512 needs
/// -mavx512f -mavx512bw -mavx512dq -mavx512vl (and AVX2 + FMA, which those CPUs all have).
template <class Isa>
constexpr bool compiled = std::is_same<Isa, scalar>::value || (std::is_same<Isa, avx2>::value && ALIBI_FLAGS_AVX2) ||
                          (std::is_same<Isa, avx512>::value && ALIBI_FLAGS_AVX512);

/// The widest ISA this translation unit's compile flags allow.
using native = std::conditional_t<compiled<avx512>, avx512, std::conditional_t<compiled<avx2>, avx2, scalar>>;

}  // namespace ALIBI_FLAGS_NAMESPACE
}  // namespace isa
}  // namespace alibi
