#pragma once
// Registration of tests compiled with ISA flags, without static initialisers.
//
// Note [no AVX-512 before the CPU check]: GoogleTest's TEST/TYPED_TEST macros register tests from static
// initialisers, and in a TU built with -mavx512f the compiler uses AVX-512 there too (the first version of
// this suite died with SIGILL before main on a CPU without AVX-512). So the test sources define plain
// functions with the macros below and export one constant table per source: constant-initialised data,
// no code. test_main.cpp, compiled without ISA flags, registers the table with testing::RegisterTest and
// calls a test function only after the CPU check passed; otherwise the test is reported as skipped.
//
//   ALIBI_ISA_TEST(Name) { ... Isa ... }   a test templated on the ISA tag, run for every ISA this
//                                          binary's flags allow (alibi::isa::compiled<X>)
//   ALIBI_TEST(Suite, Name) { ... }        a test that does not depend on an ISA tag
// Each source lists its tests once more in its table at the end; a static_assert there compares the list
// with the number of macros used (__COUNTER__), so a test cannot be defined and silently never run. A
// source of ALIBI_ISA_TESTs only builds that table with ALIBI_ISA_TEST_ENTRIES (below).
#include <array>
#include <cstddef>

namespace alibi_test {

struct TestEntry {
  const char* suite;  // GoogleTest suite; "/<isa>" is appended for ISA tests
  const char* isa;    // the ISA tag under test (Isa::name), or nullptr for tests without one
  const char* name;
  void (*body)();
  const char* file;
  int line;
};

struct TestTable {
  const TestEntry* entries;
  std::size_t count;
};

// The tables of the test sources (defined in attention_test.cpp, slopes_bias_test.cpp, convert_test.cpp,
// kv16_test.cpp, partial_test.cpp and serving_test.cpp).
extern const TestTable kAttentionTests;
extern const TestTable kSlopesBiasTests;
extern const TestTable kConvertTests;
extern const TestTable kKv16Tests;
extern const TestTable kPartialTests;
extern const TestTable kServingTests;
extern const TestTable kBackwardTests;

template <class... Isas>
struct IsaList {};

}  // namespace alibi_test

// Each use also advances __COUNTER__ once (see the static_assert at the end of each source).
#define ALIBI_ISA_TEST(Name)                              \
  constexpr int Name##_line = __LINE__ + 0 * __COUNTER__; \
  template <class Isa>                                    \
  void Name()

#define ALIBI_TEST(Suite, Name)                                     \
  constexpr int Suite##_##Name##_line = __LINE__ + 0 * __COUNTER__; \
  void Suite##_##Name()

// In a source whose tests are all ALIBI_ISA_TESTs, inside its anonymous namespace, after the tests:
//   #define ALIBI_X_TESTS(X) X(FirstTest) X(SecondTest) ...
//   ALIBI_ISA_TEST_ENTRIES("XTest", ALIBI_X_TESTS);
// defines kEntries, every listed test for every ISA this binary's flags allow (the source then exports
// `const TestTable kXTests = {kEntries.data(), kEntries.size()};`), and fails to compile unless the list
// names as many tests as the source defined since `constexpr int kCounterBefore = __COUNTER__;`.
#define ALIBI_ISA_TEST_COUNT_ONE(Name) +1
#define ALIBI_ISA_TEST_ENTRY(Name) TestEntry{kSuiteName, Isa::name, #Name, &Name<Isa>, __FILE__, Name##_line},
#define ALIBI_ISA_TEST_ENTRIES(Suite, List)                                                                          \
  constexpr int kDefinedTests = __COUNTER__ - kCounterBefore - 1;                                                    \
  static_assert(0 List(ALIBI_ISA_TEST_COUNT_ONE) == kDefinedTests, "every ALIBI_ISA_TEST must be listed in " #List); \
  constexpr const char* kSuiteName = Suite;                                                                          \
  template <class Isa>                                                                                               \
  constexpr std::array<TestEntry, kDefinedTests> tests_for(Isa*) {                                                   \
    return {{List(ALIBI_ISA_TEST_ENTRY)}};                                                                           \
  }                                                                                                                  \
  constexpr auto kEntries = entries_for_isas<kDefinedTests>([](auto* isa) { return tests_for(isa); }, CompiledIsas{})
