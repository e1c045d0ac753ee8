#pragma once
// ISA tags: empty types that select a kernel instantiation at compile time.
//
// Each tag says whether this translation unit's compile flags allow it (`compiled`). `isa::native` is the
// widest allowed one. Naming a tag the flags do not allow fails in `require_compiled` with a message that
// names the flags to add.
#include <type_traits>

#include "alibi/detail/config.hpp"

ALIBI_NAMESPACE_BEGIN
namespace isa {

struct scalar {
  static constexpr const char* name = "scalar";
  static constexpr bool compiled = true;
};

struct avx2 {
  static constexpr const char* name = "avx2";
#if defined(__AVX2__) && defined(__FMA__)
  static constexpr bool compiled = true;
#else
  static constexpr bool compiled = false;
#endif
};

struct avx512 {
  static constexpr const char* name = "avx512";
#if defined(__AVX512F__)
  static constexpr bool compiled = true;
#else
  static constexpr bool compiled = false;
#endif
};

/// The widest ISA this translation unit's compile flags allow.
using native = std::conditional_t<avx512::compiled, avx512, std::conditional_t<avx2::compiled, avx2, scalar>>;

template <class Isa>
struct is_tag : std::bool_constant<std::is_same<Isa, scalar>::value || std::is_same<Isa, avx2>::value ||
                                   std::is_same<Isa, avx512>::value> {};

/// Compile-time guard used by every entry point that takes an ISA tag.
template <class Isa>
constexpr void require_compiled() {
  static_assert(is_tag<Isa>::value, "alibi: the ISA argument must be alibi::isa::scalar, avx2, avx512 or native");
  static_assert(!std::is_same<Isa, avx2>::value || avx2::compiled,
                "alibi::isa::avx2 is not enabled by the compile flags: add -mavx2 -mfma (or -march=native "
                "on a CPU with AVX2 and FMA)");
  static_assert(!std::is_same<Isa, avx512>::value || avx512::compiled,
                "alibi::isa::avx512 is not enabled by the compile flags: add -mavx512f (or -march=native "
                "on a CPU with AVX-512F)");
}

}  // namespace isa
ALIBI_NAMESPACE_END
