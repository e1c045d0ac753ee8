#pragma once
// Argument errors: std::invalid_argument naming the offending parameter (abort with the message when the
// including TU is compiled without exceptions).
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

inline void require(bool ok, const char* function, const char* parameter, const std::string& why) {
  if (!ok) invalid_argument(std::string("alibi::") + function + ": " + parameter + " " + why);
}

}  // namespace detail
ALIBI_NAMESPACE_END
