// Compile-time guard used by every entry point that takes an ISA tag.
#include "alibi/detail/config.hpp"
// Per-target header: no #pragma once (Note [per-target headers] in detail/config.hpp).
#if (ALIBI_PASS == 0 && !defined(ALIBI_DETAIL_REQUIRE_ISA_HPP_0)) || \
    (ALIBI_PASS == 1 && !defined(ALIBI_DETAIL_REQUIRE_ISA_HPP_1)) || \
    (ALIBI_PASS == 2 && !defined(ALIBI_DETAIL_REQUIRE_ISA_HPP_2))
#if ALIBI_PASS == 0
#define ALIBI_DETAIL_REQUIRE_ISA_HPP_0
#elif ALIBI_PASS == 1
#define ALIBI_DETAIL_REQUIRE_ISA_HPP_1
#else
#define ALIBI_DETAIL_REQUIRE_ISA_HPP_2
#endif
#include <type_traits>

#include "alibi/isa/tags.hpp"

ALIBI_NAMESPACE_BEGIN
namespace detail {

// The ISA of this pass (the TU's flags, or one of alibi/dispatch.hpp's target regions) must enable Isa.
template <class Isa>
constexpr void require_isa() {
  static_assert(isa::is_tag<Isa>::value, "alibi: the ISA argument must be alibi::isa::scalar, avx2, avx512 or native");
  static_assert(!std::is_same<Isa, isa::avx2>::value || ALIBI_TARGET_AVX2,
                "alibi::isa::avx2 is not enabled by the compile flags: add -mavx2 -mfma (or -march=native on a CPU "
                "with AVX2 and FMA), or call alibi::dispatch::attention");
  static_assert(!std::is_same<Isa, isa::avx512>::value || ALIBI_TARGET_AVX512,
                "alibi::isa::avx512 is not enabled by the compile flags: add -mavx512f -mavx512bw -mavx512dq "
                "-mavx512vl -mavx2 -mfma (or -march=native on a CPU with them), or call alibi::dispatch::attention");
}

}  // namespace detail
ALIBI_NAMESPACE_END
#endif  // per-target guard
