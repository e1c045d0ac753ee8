#pragma once
// Shared by the test sources: the ISAs this binary was compiled for, deterministic data, and comparison
// against the float64 reference with the tolerances the contract sets.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <limits>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "alibi/alibi.hpp"
#include "reference.hpp"
#include "test_registry.hpp"

// Defined in test_main.cpp (no ISA flags).
bool alibi_test_quick_mode();

namespace alibi_test {

// The ISAs this binary's flags allow (alibi::isa::compiled<X>); scalar always.
template <class List, class Isa, bool keep>
struct append_if {
  using type = List;
};
template <class... Isas, class Isa>
struct append_if<IsaList<Isas...>, Isa, true> {
  using type = IsaList<Isas..., Isa>;
};

// With ALIBI_TEST_BINARY_ISA_ONLY (the sanitizer preset), only the widest of them: each kernel is then
// built and run once across the three binaries instead of up to three times, which roughly halves the
// sanitizer run (the release build keeps testing the narrower kernels compiled under the wider flags).
#if defined(ALIBI_TEST_BINARY_ISA_ONLY)
using CompiledIsas = std::conditional_t<
    alibi::isa::compiled<alibi::isa::avx512>, IsaList<alibi::isa::avx512>,
    std::conditional_t<alibi::isa::compiled<alibi::isa::avx2>, IsaList<alibi::isa::avx2>, IsaList<alibi::isa::scalar>>>;
#else
using CompiledIsas = typename append_if<
    typename append_if<IsaList<alibi::isa::scalar>, alibi::isa::avx2, alibi::isa::compiled<alibi::isa::avx2>>::type,
    alibi::isa::avx512, alibi::isa::compiled<alibi::isa::avx512>>::type;
#endif

// The test table of a source: make(static_cast<Isa*>(nullptr)) lists one ISA's tests, and the entries of
// every ISA in the list are concatenated (constexpr, so the table is constant-initialised data).
template <std::size_t PerIsa, class Make, class... Isas>
constexpr std::array<TestEntry, PerIsa * sizeof...(Isas)> entries_for_isas(Make make, IsaList<Isas...>) {
  std::array<TestEntry, PerIsa * sizeof...(Isas)> all{};
  std::size_t n = 0;
  auto append = [&](const std::array<TestEntry, PerIsa>& some) {
    for (const TestEntry& entry : some) all[n++] = entry;
  };
  (append(make(static_cast<Isas*>(nullptr))), ...);
  return all;
}

// Scales case counts down for sanitizer builds (see test_main.cpp).
inline int scaled(int full, int quick) {
  return alibi_test_quick_mode() ? quick : full;
}

// ---- data

inline std::vector<float> normal_floats(std::size_t count, std::mt19937& rng, float sigma = 1.0f) {
  std::normal_distribution<float> dist(0.0f, sigma);
  std::vector<float> x(count);
  for (float& value : x) value = dist(rng);
  return x;
}

inline std::int64_t q_count(const alibi::AttentionShape& s) {
  return std::int64_t{s.batch} * s.q_len * s.num_heads * s.head_dim;
}
inline std::int64_t kv_count(const alibi::AttentionShape& s) {
  return std::int64_t{s.batch} * s.kv_len * s.num_kv_heads * s.head_dim;
}

inline const char* mask_name(alibi::Mask mask) {
  return mask == alibi::Mask::causal ? "causal" : "bidirectional";
}

inline std::string describe(const alibi::AttentionShape& s, const alibi::AttentionOptions& o) {
  std::ostringstream text;
  text << "batch=" << s.batch << " q_len=" << s.q_len << " kv_len=" << s.kv_len << " num_heads=" << s.num_heads
       << " num_kv_heads=" << s.num_kv_heads << " head_dim=" << s.head_dim << " mask=" << mask_name(o.mask)
       << " window=" << o.window << " q_pos0=" << o.q_pos0 << " scale=" << o.scale << " num_threads=" << o.num_threads
       << " slopes=";
  if (o.slopes == nullptr) {
    text << "default";
  } else {
    text << "{";
    for (int h = 0; h < s.num_heads; ++h) text << (h ? "," : "") << o.slopes[h];
    text << "}";
  }
  return text.str();
}

// A quiet NaN with a recognisable payload: an element the kernel forgot to write fails every comparison.
inline float unwritten_marker() {
  const std::uint32_t bits = 0x7FC0DEADu;
  float x;
  std::memcpy(&x, &bits, sizeof x);
  return x;
}

// ---- comparison

struct Comparison {
  double max_error = 0.0;
  double max_reference = 0.0;
  double worst_ratio = 0.0;   // max over elements of error / allowed error
  std::string first_failure;  // empty when every element is within tolerance
};

// Checks `out` against the reference element by element. Allowed error per element:
//   2e-5 * max|ref| (the contract's unit-scale tolerance)
// + 4u * max|v| (a weighted mean of fp32 values cannot be closer than a few ulp of the largest one)
// + the logit rounding bound of Note [logit rounding bound], only when `allow_logit_rounding` (large logits).
inline Comparison compare_to_reference(const float* out, const ReferenceOutput& ref, const alibi::AttentionShape& s,
                                       double max_abs_value, bool allow_logit_rounding) {
  Comparison c;
  for (double x : ref.out) c.max_reference = std::max(c.max_reference, std::fabs(x));
  const double base = 2e-5 * c.max_reference + 4.0 * kUnitRoundoff * max_abs_value;
  const std::size_t count = ref.out.size();
  for (std::size_t n = 0; n < count; ++n) {
    const double got = out[n];
    const double error = std::fabs(got - ref.out[n]);
    const double allowed = base + (allow_logit_rounding ? ref.rounding_bound[n] : 0.0);
    const bool ok = std::isfinite(got) && error <= allowed;
    if (std::isfinite(got)) c.max_error = std::max(c.max_error, error);
    c.worst_ratio = std::max(c.worst_ratio, ok ? (allowed > 0 ? error / allowed : 0.0) : HUGE_VAL);
    if (!ok && c.first_failure.empty()) {
      const std::int64_t d = static_cast<std::int64_t>(n) % s.head_dim;
      const std::int64_t h = static_cast<std::int64_t>(n) / s.head_dim % s.num_heads;
      const std::int64_t i = static_cast<std::int64_t>(n) / s.head_dim / s.num_heads % s.q_len;
      const std::int64_t b = static_cast<std::int64_t>(n) / s.head_dim / s.num_heads / s.q_len;
      std::ostringstream text;
      text << "first bad element [b=" << b << "][i=" << i << "][h=" << h << "][d=" << d << "]: got " << got
           << ", reference " << ref.out[n] << ", error " << error << " > allowed " << allowed;
      c.first_failure = text.str();
    }
  }
  return c;
}

inline double max_abs(const std::vector<float>& x) {
  double m = 0.0;
  for (float value : x) m = std::max(m, std::fabs(double(value)));
  return m;
}

// True when `message` contains `name` as a whole identifier (so "q" does not match inside "q_len").
inline bool names_parameter(const std::string& message, const std::string& name) {
  auto is_identifier = [](char ch) { return std::isalnum(static_cast<unsigned char>(ch)) || ch == '_'; };
  for (std::size_t at = message.find(name); at != std::string::npos; at = message.find(name, at + 1)) {
    const bool starts = at == 0 || !is_identifier(message[at - 1]);
    const std::size_t end = at + name.size();
    const bool ends = end == message.size() || !is_identifier(message[end]);
    if (starts && ends) return true;
  }
  return false;
}

// Runs `call`, which must throw std::invalid_argument naming `parameter`, and checks `guarded` kept its bytes.
template <class Call>
void expect_rejected(Call&& call, const std::string& parameter, const std::vector<float>& guarded,
                     const std::string& context) {
  const std::vector<float> before = guarded;
  try {
    call();
    ADD_FAILURE() << context << ": no exception";
  } catch (const std::invalid_argument& e) {
    EXPECT_TRUE(names_parameter(e.what(), parameter))
        << context << ": message does not name '" << parameter << "': " << e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << context << ": threw something other than std::invalid_argument: " << e.what();
  }
  if (!before.empty()) {  // memcmp on the null data() of an empty vector would be undefined
    EXPECT_EQ(std::memcmp(before.data(), guarded.data(), before.size() * sizeof(float)), 0)
        << context << ": the output was written";
  }
}

// Whether two outputs hold the same bits (memcmp needs valid pointers even for 0 bytes).
inline bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}

// Runs `call`, which must throw std::invalid_argument whose message names one of `names`, and checks that
// every buffer in `guarded` kept its bytes.
template <class Call>
void expect_rejected_guarding(Call&& call, std::initializer_list<const char*> names,
                              std::initializer_list<const std::vector<float>*> guarded, const std::string& context) {
  std::vector<std::vector<float>> before;
  for (const std::vector<float>* g : guarded) before.push_back(*g);
  try {
    call();
    ADD_FAILURE() << context << ": no exception";
  } catch (const std::invalid_argument& e) {
    bool named = false;
    for (const char* name : names) named = named || names_parameter(e.what(), name);
    EXPECT_TRUE(named) << context << ": message does not name " << *names.begin() << ": " << e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << context << ": threw something other than std::invalid_argument: " << e.what();
  }
  std::size_t n = 0;
  for (const std::vector<float>* g : guarded) EXPECT_TRUE(same_bits(before[n++], *g)) << context << ": wrote";
}

}  // namespace alibi_test
