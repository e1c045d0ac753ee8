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
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "alibi/detail/config.hpp"

ALIBI_NAMESPACE_BEGIN
namespace detail {

[[noreturn]] inline void invalid_argument(const std::string& message) {
#if ALIBI_HAS_EXCEPTIONS
  throw std::invalid_argument(message);
#else
  std::fprintf(stderr, "alibi: invalid argument: %s\n", message.c_str());
  std::abort();
#endif
}

// A float for a message. Not std::to_string(float): it instantiates __gnu_cxx::__to_xstring, a weak
// variadic template whose register-saving prologue differs with the ISA flags (Note [ABI namespace]).
inline std::string float_text(double x) {
  char text[32];
  std::snprintf(text, sizeof text, "%.9g", x);
  return text;
}

// An integer for a message. Not std::to_string: its libstdc++ code is inline, and once it is emitted out of
// line it is a weak symbol whose code differs with the ISA flags (Note [ABI namespace]).
inline std::string int_text(long long x) {
  char text[24];
  std::snprintf(text, sizeof text, "%lld", x);
  return text;
}

inline void require(bool ok, const char* function, const char* parameter, const std::string& why) {
  if (!ok) invalid_argument(std::string("alibi::") + function + ": " + parameter + " " + why);
}

}  // namespace detail
ALIBI_NAMESPACE_END
#endif  // per-target guard
