// Argument errors: std::invalid_argument naming the offending parameter (abort with the message when the
// including TU is compiled without exceptions).
#include "alibi/detail/config.hpp"
// Per-target header: no #pragma once (Note [per-target headers] in detail/config.hpp).
#if (ALIBI_PASS == 0 && !defined(ALIBI_DETAIL_ERRORS_HPP_0)) || \
    (ALIBI_PASS == 1 && !defined(ALIBI_DETAIL_ERRORS_HPP_1)) || \
    (ALIBI_PASS == 2 && !defined(ALIBI_DETAIL_ERRORS_HPP_2))
#if ALIBI_PASS == 0
#define ALIBI_DETAIL_ERRORS_HPP_0
#elif ALIBI_PASS == 1
#define ALIBI_DETAIL_ERRORS_HPP_1
#else
#define ALIBI_DETAIL_ERRORS_HPP_2
#endif
#include <cstdarg>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <type_traits>

#include "alibi/detail/config.hpp"

ALIBI_NAMESPACE_BEGIN
namespace detail {

[[noreturn]] inline void invalid_argument(const char* message) {
#if ALIBI_HAS_EXCEPTIONS
  throw std::invalid_argument(message);
#else
  std::fprintf(stderr, "alibi: invalid argument: %s\n", message);
  std::abort();
#endif
}

// Note [validation messages]
// ~~~~~~~~~~~~~~~~~~~~~~~~~~
// Every call validates its arguments, some of them once per sequence or per page of a block table, so a
// check must cost a comparison, not a message: formatting numbers into strings that are thrown away took
// ~20k instructions of a 1-key decode and 4k per page of a paged call. require() therefore takes a printf
// format and its values and formats only when the check fails, in fail_parameter(). That function builds
// the message in a char buffer with vsnprintf and throws with std::invalid_argument(const char*): no
// std::string template is instantiated on either path. Out-of-line instances of libstdc++'s string
// templates (operator+, the const char* constructor) are weak symbols outside alibi's per-ISA namespaces
// whose code differs with the ISA flags, which the linker may pick across translation units
// (Note [ABI namespace]); cold paths are exactly where GCC emits them out of line.

// The values a message format reads: %lld for every integer, %.9g for every floating value, %s for text.
template <class Integer, std::enable_if_t<std::is_integral<Integer>::value, int> = 0>
long long message_value(Integer x) noexcept {
  return static_cast<long long>(x);
}
inline double message_value(double x) noexcept {
  return x;
}
inline const char* message_value(const char* text) noexcept {
  return text;
}

// Throws "alibi::<function>: <parameter> <why, formatted>". Messages longer than the buffer are cut short.
[[noreturn]] inline void fail_parameter(const char* function, const char* parameter, const char* why, ...) {
  char message[512];
  const int prefix = std::snprintf(message, sizeof message, "alibi::%s: %s ", function, parameter);
  if (prefix >= 0 && static_cast<std::size_t>(prefix) < sizeof message) {
    std::va_list values;
    va_start(values, why);
    std::vsnprintf(message + prefix, sizeof message - static_cast<std::size_t>(prefix), why, values);
    va_end(values);
  }
  invalid_argument(message);
}

// Throws std::invalid_argument naming `parameter` unless `ok`. `why` is a printf format over `values`
// (integers as %lld, floating values as %.9g, text as %s), formatted only on failure
// (Note [validation messages]).
template <class... Values>
void require(bool ok, const char* function, const char* parameter, const char* why, Values... values) {
  if (!ok) fail_parameter(function, parameter, why, message_value(values)...);
}

}  // namespace detail
ALIBI_NAMESPACE_END
#endif  // per-target guard
