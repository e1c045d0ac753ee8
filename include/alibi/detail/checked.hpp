// Size arithmetic that cannot overflow silently: every element count the library derives from caller
// sizes goes through checked_mul, so a product past PTRDIFF_MAX is an argument error, not a wrap-around.
#include "alibi/detail/config.hpp"
// Per-target header: no #pragma once (Note [per-target headers] in detail/config.hpp).
#if (ALIBI_PASS == 0 && !defined(ALIBI_DETAIL_CHECKED_HPP_0)) || \
    (ALIBI_PASS == 1 && !defined(ALIBI_DETAIL_CHECKED_HPP_1)) || \
    (ALIBI_PASS == 2 && !defined(ALIBI_DETAIL_CHECKED_HPP_2))
#if ALIBI_PASS == 0
#define ALIBI_DETAIL_CHECKED_HPP_0
#elif ALIBI_PASS == 1
#define ALIBI_DETAIL_CHECKED_HPP_1
#else
#define ALIBI_DETAIL_CHECKED_HPP_2
#endif
#include <cstddef>
#include <cstdint>
#include <limits>

#include "alibi/detail/errors.hpp"

ALIBI_NAMESPACE_BEGIN
namespace detail {

// Largest element count we accept: its byte size must fit in std::ptrdiff_t (and so in std::size_t).
constexpr std::int64_t kMaxElements =
    static_cast<std::int64_t>(std::numeric_limits<std::ptrdiff_t>::max() / static_cast<std::ptrdiff_t>(sizeof(float)));

inline std::int64_t checked_mul(std::int64_t a, std::int64_t b, const char* function, const char* what) {
  // a, b >= 0 here (sizes were validated first).
  if (a != 0 && b > kMaxElements / a)
    fail_parameter(function, what, "is too large: its element count overflows std::ptrdiff_t");
  return a * b;
}

}  // namespace detail
ALIBI_NAMESPACE_END
#endif  // per-target guard
