// -fno-exceptions (issue 5, item 6): in a program built without exceptions, bad input aborts with the
// message on stderr instead of throwing.
//
// The calls live in a separate helper executable, built entirely with -fno-exceptions, that each death
// test execs. alibi's own inline code could share this binary (its per-ISA namespace encodes the exception
// mode, Note [ABI namespace] in alibi/detail/config.hpp), but the standard library's inline functions and
// GoogleTest's headers would be compiled in both modes under the same names, and the linker keeps one
// body for both: the helper keeps the -fno-exceptions program whole.
#include <gtest/gtest.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <string>

#ifndef ALIBI_NO_EXCEPTIONS_HELPER
#error "ALIBI_NO_EXCEPTIONS_HELPER must be the path of the no_exceptions_helper executable"
#endif

namespace {

void run_helper(const char* which) {
  execl(ALIBI_NO_EXCEPTIONS_HELPER, ALIBI_NO_EXCEPTIONS_HELPER, which, static_cast<char*>(nullptr));
  std::fprintf(stderr, "could not exec %s\n", ALIBI_NO_EXCEPTIONS_HELPER);
  std::_Exit(127);
}

class NoExceptions : public ::testing::Test {
 protected:
  void SetUp() override { GTEST_FLAG_SET(death_test_style, "threadsafe"); }
};

TEST_F(NoExceptions, ValidCallRunsNormally) {
  EXPECT_EXIT(run_helper("valid"), ::testing::ExitedWithCode(0), "");
}

TEST_F(NoExceptions, BadNumHeadsAbortsWithTheMessage) {
  EXPECT_EXIT(run_helper("num_heads"), ::testing::KilledBySignal(SIGABRT),
              "alibi: invalid argument: alibi::attention: num_heads must be >= 1");
}

TEST_F(NoExceptions, OverlappingOutputAbortsWithTheMessage) {
  EXPECT_EXIT(run_helper("overlap"), ::testing::KilledBySignal(SIGABRT),
              "alibi: invalid argument: alibi::attention: out must not overlap k");
}

TEST_F(NoExceptions, OverflowingSizeAbortsWithTheMessage) {
  EXPECT_EXIT(run_helper("overflow"), ::testing::KilledBySignal(SIGABRT),
              "alibi: invalid argument: alibi::attention: .*overflows");
}

TEST_F(NoExceptions, KeyNormsNullKeysAbortsWithTheMessage) {
  EXPECT_EXIT(run_helper("key_norms"), ::testing::KilledBySignal(SIGABRT),
              "alibi: invalid argument: alibi::key_norms: k must not be null");
}

}  // namespace
