// main() of the per-ISA test binaries. This TU is compiled WITHOUT ISA flags: it registers the tables of
// tests/test_registry.hpp with GoogleTest and checks the CPU before any code built with -mavx2 or
// -mavx512f runs, so a binary built for an ISA this CPU lacks reports its tests as skipped instead of
// dying with SIGILL (Note [no AVX-512 before the CPU check]).
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "test_registry.hpp"

#ifndef ALIBI_TEST_BINARY_ISA
#error "ALIBI_TEST_BINARY_ISA must name the ISA the test sources of this binary were compiled for"
#endif

bool alibi_test_cpu_supports(const char* isa_name) {
  const std::string isa = isa_name;
  if (isa == "scalar") return true;
  __builtin_cpu_init();
  if (isa == "avx2") return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (isa == "avx512")  // the flag set of cmake/AlibiIsaFlags.cmake
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx2") &&
           __builtin_cpu_supports("fma");
  return false;
}

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define ALIBI_TEST_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || __has_feature(memory_sanitizer)
#define ALIBI_TEST_SANITIZED 1
#endif
#endif

// Fewer and smaller random cases: for sanitizer builds (detected, or -DALIBI_TEST_QUICK=ON) and when the
// environment sets ALIBI_TEST_QUICK to anything but 0.
bool alibi_test_quick_mode() {
#if defined(ALIBI_TEST_QUICK) || defined(ALIBI_TEST_SANITIZED)
  return true;
#else
  const char* env = std::getenv("ALIBI_TEST_QUICK");
  return env != nullptr && *env != '\0' && std::strcmp(env, "0") != 0;
#endif
}

namespace {

// Runs one table entry: skips unless the CPU has the ISA under test and the ISA the binary's test sources
// were compiled for (every function there may use the latter: the reference, gtest helpers, the scalar
// kernel).
class TableTest : public ::testing::Test {
 public:
  explicit TableTest(const alibi_test::TestEntry& entry) : entry_(entry) {}

  void TestBody() override {
    if (entry_.isa != nullptr && !alibi_test_cpu_supports(entry_.isa)) GTEST_SKIP() << "this CPU lacks " << entry_.isa;
    if (!alibi_test_cpu_supports(ALIBI_TEST_BINARY_ISA))
      GTEST_SKIP() << "this binary is compiled for " << ALIBI_TEST_BINARY_ISA << ", which this CPU lacks";
    entry_.body();
  }

 private:
  const alibi_test::TestEntry& entry_;
};

void register_tests(const alibi_test::TestTable& table) {
  for (std::size_t n = 0; n < table.count; ++n) {
    const alibi_test::TestEntry& entry = table.entries[n];
    const std::string suite = entry.isa ? std::string(entry.suite) + "/" + entry.isa : std::string(entry.suite);
    ::testing::RegisterTest(suite.c_str(), entry.name, nullptr, nullptr, entry.file, entry.line,
                            [&entry]() -> TableTest* { return new TableTest(entry); });
  }
}

}  // namespace

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  register_tests(alibi_test::kAttentionTests);
  register_tests(alibi_test::kSlopesBiasTests);
  register_tests(alibi_test::kConvertTests);
  register_tests(alibi_test::kKv16Tests);
  register_tests(alibi_test::kPartialTests);
  register_tests(alibi_test::kServingTests);
  register_tests(alibi_test::kBackwardTests);
  // Notes go to stderr and not while listing: ctest's test discovery parses the listing on stdout.
  if (!GTEST_FLAG_GET(list_tests)) {
    const char* binary_isa = ALIBI_TEST_BINARY_ISA;
    if (!alibi_test_cpu_supports(binary_isa))
      std::fprintf(stderr, "note: this binary is compiled for %s, which this CPU lacks: every test skips\n",
                   binary_isa);
    if (alibi_test_quick_mode()) std::fprintf(stderr, "note: quick mode (sanitizer build or ALIBI_TEST_QUICK)\n");
  }
  return RUN_ALL_TESTS();
}
