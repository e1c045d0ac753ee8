// alibi::attention<Isa> and alibi::key_norms over bfloat16 and float16 K/V (issue 11), typed over every ISA
// this binary was compiled for.
//
// The contract: the result is exactly the fp32 attention of q against to_float(k), to_float(v). So the
// expected values are those of the float64 reference (tests/reference.hpp) of the case whose K and V hold
// the exact values of the stored 16-bit elements, decoded from the formats' definitions
// (tests/float16_reference.hpp, not the library's conversions), and the tolerance is the fp32 tests'
// (compare_to_reference in test_support.hpp). Everything else the fp32 path promises (masks, windows,
// GQA, skipping with and without cached key norms, thread-count independence, NaN containment, argument
// checks) is checked again with 16-bit K/V.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <initializer_list>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "alibi/alibi.hpp"
#include "attention_cases.hpp"
#include "float16_reference.hpp"
#include "kv_types.hpp"
#include "reference.hpp"
#include "test_registry.hpp"
#include "test_support.hpp"

namespace alibi_test {
namespace {

constexpr int kCounterBefore = __COUNTER__;

// ---- K/V element types (names, stored_as, value_of: kv_types.hpp)

// Stored bits of a 16-bit element, so tests can build patterns (subnormals, NaNs) directly.
template <class KV>
KV from_bits(std::uint16_t bits) {
  KV x;
  x.bits = bits;
  return x;
}

// A 16-bit format: its stored mantissa bits and smallest normal exponent (the spacing of its values above
// x > 0 is 2^(max(ilogb x, min_exponent) - mantissa_bits)), and the patterns the tests build.
template <class KV>
struct Format;
template <>
struct Format<alibi::bfloat16> {
  static constexpr int mantissa_bits = 7, min_exponent = -126;
  static constexpr std::uint16_t largest = 0x7F7F, nan = 0x7FC0, signaling_nan = 0x7F81, inf = 0x7F80,
                                 negative_inf = 0xFF80;
};
template <>
struct Format<alibi::float16> {
  static constexpr int mantissa_bits = 10, min_exponent = -14;
  static constexpr std::uint16_t largest = 0x7BFF, nan = 0x7E00, signaling_nan = 0x7C01, inf = 0x7C00,
                                 negative_inf = 0xFC00;
};
// Patterns with a zero exponent field: subnormals in both formats.
constexpr std::uint16_t kSubnormalPatterns[] = {0x0001, 0x8003, 0x0041};

// A float that is not a KV value but rounds to the KV value x: x plus 0.45 of the gap to the next KV value
// above it. (Above a negative power of two, towards zero, that gap is half the one below it.)
template <class KV>
float off_the_grid_above(float x) {
  const int exponent = x == 0.0f ? Format<KV>::min_exponent : std::max(std::ilogb(x), Format<KV>::min_exponent);
  double spacing = std::ldexp(1.0, exponent - Format<KV>::mantissa_bits);
  int unused;
  if (x < 0.0f && std::frexp(x, &unused) == -0.5) spacing /= 2;
  return static_cast<float>(x + 0.45 * spacing);
}

// Calls body(KV{}) for each K/V element type.
template <class Body>
void for_each_16bit_kv(Body&& body) {
  body(alibi::bfloat16{});
  body(alibi::float16{});
}
// float too, the same harness on the fp32 path (left out of quick runs: attention_test.cpp covers it).
template <class Body>
void for_each_kv_fp32_in_full_runs(Body&& body) {
  if (!alibi_test_quick_mode()) body(0.0f);
  for_each_16bit_kv(body);
}

// ---- a case with K/V stored as KV

// The kernel reads stored_k and stored_v; the inherited k and v hold their exact values as floats, which is
// what the float64 reference (reference_of) and the fp32 path see.
template <class KV>
struct KvCase : Case {
  std::vector<KV> stored_k, stored_v;

  std::string describe() const { return std::string("KV=") + kv_name(KV{}) + " " + Case::describe(); }

  // Sets element n of K (or V) to x, stored and widened.
  void set_key(std::size_t n, KV x) {
    stored_k[n] = x;
    k[n] = value_of(x);
  }
  void set_value(std::size_t n, KV x) {
    stored_v[n] = x;
    v[n] = value_of(x);
  }
};

// `c` with its K and V stored as KV (rounded), and k, v replaced by the stored values.
template <class KV>
KvCase<KV> stored_case(const Case& c) {
  KvCase<KV> s;
  static_cast<Case&>(s) = c;
  for (float x : c.k) s.stored_k.push_back(stored_as<KV>(x));
  for (float x : c.v) s.stored_v.push_back(stored_as<KV>(x));
  for (std::size_t n = 0; n < c.k.size(); ++n) s.k[n] = value_of(s.stored_k[n]);
  for (std::size_t n = 0; n < c.v.size(); ++n) s.v[n] = value_of(s.stored_v[n]);
  return s;
}

template <class Isa, class KV>
std::vector<float> run_kv(const KvCase<KV>& c) {
  std::vector<float> out(static_cast<std::size_t>(q_count(c.shape)), unwritten_marker());
  alibi::attention<Isa>(c.q.data(), c.stored_k.data(), c.stored_v.data(), out.data(), c.shape, c.call_options());
  return out;
}

// The output of `c` on Isa against the float64 reference on the stored values, with the fp32 tolerance.
template <class Isa, class KV>
Comparison check_kv(const KvCase<KV>& c, bool allow_logit_rounding = false) {
  const std::vector<float> out = run_kv<Isa>(c);
  return compare_to_reference(out.data(), reference_of(c), c.shape, max_abs(c.v), allow_logit_rounding);
}

// alibi::key_norms of the stored keys.
template <class KV>
std::vector<float> key_norms_of(const KvCase<KV>& c) {
  std::vector<float> norms(static_cast<std::size_t>(c.shape.batch * c.shape.kv_len * c.shape.num_kv_heads));
  alibi::key_norms(c.stored_k.data(), c.shape, norms.data());
  return norms;
}

// ---- against the reference on the converted values

// The awkward shapes (kAwkwardShapes): attention_cases.hpp.

ALIBI_ISA_TEST(AwkwardShapesMatchTheReferenceOnConvertedValues) {
  std::mt19937 rng(1101);
  for (const ShapeAndOptions& a : kAwkwardShapes) {
    Case c = make_case(a.batch, a.q_len, a.kv_len, a.heads, a.kv_heads, a.head_dim);
    c.options.mask = a.mask;
    c.options.window = a.window;
    c.options.q_pos0 = a.q_pos0;
    c.options.num_threads = 2;
    c.fill(rng);
    for_each_kv_fp32_in_full_runs([&](auto element) {
      using KV = decltype(element);
      const KvCase<KV> s = stored_case<KV>(c);
      const Comparison result = check_kv<Isa>(s);
      EXPECT_MATCHES_REFERENCE(result, s);
    });
  }
  {  // custom slopes: zero, negative and steep, with a window
    Case c = make_case(2, 63, 65, 5, 5, 17);
    c.custom_slopes = {0.0f, -0.02f, 0.5f, 0.25f, -0.0f};
    c.options.window = 9;
    c.fill(rng);
    for_each_kv_fp32_in_full_runs([&](auto element) {
      using KV = decltype(element);
      const KvCase<KV> s = stored_case<KV>(c);
      const Comparison result = check_kv<Isa>(s);
      EXPECT_MATCHES_REFERENCE(result, s);
    });
  }
}

ALIBI_ISA_TEST(RandomShapesMatchTheReferenceOnConvertedValues) {
  const int num_cases = scaled(40, 10);
  const std::int64_t max_work = scaled(1000000, 200000);
  for_each_16bit_kv([&](auto element) {
    using KV = decltype(element);
    std::mt19937 rng(1102);
    double worst_ratio = 0.0;
    int failures = 0;
    for (int index = 0; index < num_cases; ++index) {
      const KvCase<KV> s = stored_case<KV>(random_case(index, rng, max_work));
      const Comparison result = check_kv<Isa>(s);
      worst_ratio = std::max(worst_ratio, result.worst_ratio);
      if (!result.first_failure.empty() && ++failures <= 10)
        ADD_FAILURE() << "case " << index << ": " << s.describe() << "\n  " << result.first_failure;
    }
    EXPECT_EQ(failures, 0) << failures << " of " << num_cases << " " << kv_name(KV{})
                           << " cases failed (first 10 shown above)";
    std::printf("[ %s ] %d random %s cases: worst error / tolerance %.3g\n", Isa::name, num_cases, kv_name(KV{}),
                worst_ratio);
  });
}

// Not the contract, a property of the current implementation (16-bit values are widened exactly while
// packing, and everything after is the fp32 kernel): the same bits as the fp32 path on the widened values.
// A kernel that computed on 16-bit values natively could legitimately break this test but not the ones
// against the reference.
ALIBI_ISA_TEST(SameBitsAsTheFloatPathOnTheWidenedValues) {
  std::mt19937 rng(1103);
  std::vector<Case> cases;
  for (int index = 0; index < scaled(8, 4); ++index) cases.push_back(random_case(index, rng, 200000));
  cases.push_back(make_case(1, 1, 4500, 8, 2, 64));   // decode split along the keys
  cases.push_back(make_case(1, 300, 300, 4, 2, 33));  // prefill with block skipping
  for (std::size_t n = cases.size() - 2; n < cases.size(); ++n) {
    cases[n].options.num_threads = 2;
    cases[n].fill(rng);
  }
  for (const Case& c : cases) {
    for_each_16bit_kv([&](auto element) {
      using KV = decltype(element);
      const KvCase<KV> s = stored_case<KV>(c);
      const std::vector<float> sixteen = run_kv<Isa>(s);
      const std::vector<float> widened = run<Isa>(static_cast<const Case&>(s));
      EXPECT_TRUE(same_bits(sixteen, widened)) << s.describe();
    });
  }
}

// Inputs that are not representable in the 16-bit format: each K and V value lies 0.45 of a 16-bit gap above
// the element it is stored as (off_the_grid_above), so the shifts never cancel on average. The output must
// match the reference on the stored values, and must NOT match the reference on the original floats: the
// tolerance resolves the rounding, so these tests could tell a kernel (or a reference) that used the
// unconverted values.
ALIBI_ISA_TEST(RoundingMattersAndTheReferenceUsesTheConvertedValues) {
  std::mt19937 rng(1104);
  for_each_16bit_kv([&](auto element) {
    using KV = decltype(element);
    for (alibi::Mask mask : {alibi::Mask::causal, alibi::Mask::bidirectional}) {
      Case c = make_case(2, 33, 97, 4, 2, 40);
      c.options.mask = mask;
      c.fill(rng);
      const KvCase<KV> s = stored_case<KV>(c);
      Case original = s;  // q, shape, options; k and v set below
      int unrepresentable = 0;
      auto nudge = [&](const std::vector<float>& values, const std::vector<KV>& stored, std::vector<float>& out) {
        for (std::size_t n = 0; n < values.size(); ++n) {
          out[n] = off_the_grid_above<KV>(values[n]);
          unrepresentable += out[n] != values[n] ? 1 : 0;
          ASSERT_EQ(stored_as<KV>(out[n]).bits, stored[n].bits)
              << "input " << out[n] << " is not stored as " << values[n];
        }
      };
      ASSERT_NO_FATAL_FAILURE(nudge(s.k, s.stored_k, original.k));
      ASSERT_NO_FATAL_FAILURE(nudge(s.v, s.stored_v, original.v));
      ASSERT_EQ(unrepresentable, static_cast<int>(s.k.size() + s.v.size()));

      const std::vector<float> out = run_kv<Isa>(s);
      const Comparison converted = compare_to_reference(out.data(), reference_of(s), s.shape, max_abs(s.v), false);
      EXPECT_MATCHES_REFERENCE(converted, s);
      const Comparison unconverted =
          compare_to_reference(out.data(), reference_of(original), s.shape, max_abs(original.v), false);
      EXPECT_FALSE(unconverted.first_failure.empty())
          << s.describe() << ": the output also matches the reference on the unconverted floats (worst error "
          << unconverted.max_error << "), so the rounding went unseen";
    }
  });
}

// binary16 subnormals (2^-24 .. 2^-14): exact in fp32, so the kernel must use their exact values. Checked in
// V (unit-scale keys), and in K with queries of about 2^14 so the logits stay unit-scale. A reference with
// the subnormals flushed to zero must not match: the case would catch a widening that flushed them.
ALIBI_ISA_TEST(Float16SubnormalKeysAndValues) {
  using KV = alibi::float16;
  std::mt19937 rng(1105);
  std::uniform_int_distribution<int> subnormal_bits(1, 0x3FF), sign(0, 1);
  auto random_subnormal = [&] {
    return from_bits<KV>(static_cast<std::uint16_t>(subnormal_bits(rng) | (sign(rng) << 15)));
  };
  for (int tensor = 0; tensor < 2; ++tensor) {  // subnormal V, then subnormal K
    for (alibi::Mask mask : {alibi::Mask::causal, alibi::Mask::bidirectional}) {
      Case c = make_case(1, 40, 90, 4, 2, 24);
      c.options.mask = mask;
      c.fill(rng, tensor == 0 ? 1.0f : 16384.0f);
      KvCase<KV> s = stored_case<KV>(c);
      for (std::size_t n = 0; n < s.stored_k.size(); ++n) {
        if (tensor == 0)
          s.set_value(n, random_subnormal());
        else
          s.set_key(n, random_subnormal());
      }
      const std::vector<float>& subnormals = tensor == 0 ? s.v : s.k;
      for (float x : subnormals) ASSERT_TRUE(x != 0.0f && std::fabs(x) < 0x1p-14f) << x;

      const std::vector<float> out = run_kv<Isa>(s);
      const Comparison exact = compare_to_reference(out.data(), reference_of(s), s.shape, max_abs(s.v), false);
      EXPECT_MATCHES_REFERENCE(exact, s);
      Case flushed = s;
      std::fill((tensor == 0 ? flushed.v : flushed.k).begin(), (tensor == 0 ? flushed.v : flushed.k).end(), 0.0f);
      const Comparison against_flushed =
          compare_to_reference(out.data(), reference_of(flushed), s.shape, max_abs(s.v), false);
      EXPECT_FALSE(against_flushed.first_failure.empty())
          << s.describe() << ": subnormal " << (tensor == 0 ? "values" : "keys") << " made no visible difference";
    }
  }
}

// Values at the top of each format's range: float16 up to 65504 (inputs up to 65519.99 round to it), and
// bfloat16 near its largest finite value 0x1.fep127, where fp32 sums of a few values overflow although
// their weighted mean is finite (the non-finite-row recompute must give the true mean).
ALIBI_ISA_TEST(ValuesNearTheLargestFiniteOfEachFormat) {
  std::mt19937 rng(1106);
  std::uniform_real_distribution<float> float16_magnitude(60000.0f, 65519.99f);
  std::uniform_int_distribution<int> sign(0, 1), bfloat16_top_mantissa(0x70, 0x7F);
  for (alibi::Mask mask : {alibi::Mask::causal, alibi::Mask::bidirectional}) {
    Case c = make_case(2, 17, 70, 4, 2, 20);
    c.options.mask = mask;
    c.fill(rng);
    {
      KvCase<alibi::float16> s = stored_case<alibi::float16>(c);
      int largest = 0;
      for (std::size_t n = 0; n < s.v.size(); ++n) {
        const float x = float16_magnitude(rng);
        s.set_value(n, alibi::to_float16(sign(rng) ? -x : x));
        ASSERT_TRUE(std::fabs(s.v[n]) >= 59999.0f && std::fabs(s.v[n]) <= 65504.0f) << s.v[n];
        largest += std::fabs(s.v[n]) == 65504.0f;
      }
      ASSERT_GT(largest, 0) << "no value was stored as 65504";
      const Comparison result = check_kv<Isa>(s);
      EXPECT_MATCHES_REFERENCE(result, s);
    }
    {
      KvCase<alibi::bfloat16> s = stored_case<alibi::bfloat16>(c);
      for (std::size_t n = 0; n < s.v.size(); ++n) {  // exponent 254: values in [0x1.e0p127, 0x1.fep127]
        const int bits = (sign(rng) << 15) | (254 << 7) | bfloat16_top_mantissa(rng);
        s.set_value(n, from_bits<alibi::bfloat16>(static_cast<std::uint16_t>(bits)));
        ASSERT_TRUE(std::isfinite(s.v[n]) && std::fabs(s.v[n]) > 3e38f) << s.v[n];
      }
      const std::vector<float> out = run_kv<Isa>(s);
      for (float x : out) ASSERT_TRUE(std::isfinite(x)) << s.describe();
      const Comparison result = compare_to_reference(out.data(), reference_of(s), s.shape, max_abs(s.v), false);
      EXPECT_MATCHES_REFERENCE(result, s);
    }
  }
}

// K and V at addresses that are 2 mod 4: 16-bit elements need only 2-byte alignment.
ALIBI_ISA_TEST(SixteenBitTensorsAtAnyEvenAddress) {
  std::mt19937 rng(1107);
  for (int head_dim : {7, 16, 33, 80}) {
    Case c = make_case(2, 19, 45, 4, 2, head_dim);
    c.fill(rng);
    for_each_16bit_kv([&](auto element) {
      using KV = decltype(element);
      const KvCase<KV> s = stored_case<KV>(c);
      std::vector<KV> k(s.stored_k.size() + 1), v(s.stored_v.size() + 1);
      std::copy(s.stored_k.begin(), s.stored_k.end(), k.begin() + 1);
      std::copy(s.stored_v.begin(), s.stored_v.end(), v.begin() + 1);
      std::vector<float> out(s.q.size(), unwritten_marker());
      alibi::attention<Isa>(s.q.data(), k.data() + 1, v.data() + 1, out.data(), s.shape, s.call_options());
      const Comparison result = compare_to_reference(out.data(), reference_of(s), s.shape, max_abs(s.v), false);
      EXPECT_MATCHES_REFERENCE(result, s);
    });
  }
}

// ---- key norms and block skipping

// alibi::key_norms of 16-bit keys: upper bounds on the norms of the widened keys (computed here in double),
// and the same bits as alibi::key_norms of the widened keys as floats. Rows of ordinary values, zeros,
// subnormals, the format's largest values, and non-finite values (whose bound must not be finite).
ALIBI_ISA_TEST(KeyNormsBoundTheWidenedKeys) {
  std::mt19937 rng(1108);
  for_each_16bit_kv([&](auto element) {
    using KV = decltype(element);
    for (int head_dim : {1, 17, 80}) {
      Case c = make_case(2, 0, 37, 3, 3, head_dim);
      c.fill(rng);
      KvCase<KV> s = stored_case<KV>(c);
      const std::size_t D = static_cast<std::size_t>(head_dim), rows = s.stored_k.size() / D;
      for (std::size_t row = 0; row < rows; ++row) {
        const std::size_t kind = row % 6;
        for (std::size_t d = 0; d < D; ++d) {
          const std::size_t n = row * D + d;
          const auto largest =
              static_cast<std::uint16_t>((row + d) % 2 ? Format<KV>::largest : Format<KV>::largest | 0x8000u);
          if (kind == 1) s.set_key(n, stored_as<KV>(0.0f));
          if (kind == 2) s.set_key(n, from_bits<KV>(kSubnormalPatterns[(row + d) % 3]));
          if (kind == 3) s.set_key(n, from_bits<KV>(largest));
          if (kind == 4 && d == D / 2) s.set_key(n, from_bits<KV>(Format<KV>::inf));
          if (kind == 5 && d == D - 1) s.set_key(n, from_bits<KV>(Format<KV>::nan));
        }
      }
      const std::vector<float> norms = key_norms_of(s);
      for (std::size_t row = 0; row < rows; ++row) {
        double square = 0.0;
        for (std::size_t d = 0; d < D; ++d) square += double(s.k[row * D + d]) * double(s.k[row * D + d]);
        const double norm = std::sqrt(square);
        if (std::isfinite(norm)) {
          EXPECT_GE(double(norms[row]), norm) << kv_name(KV{}) << " head_dim " << head_dim << " key row " << row;
        } else {
          EXPECT_FALSE(norms[row] < HUGE_VALF) << kv_name(KV{}) << " head_dim " << head_dim << " key row " << row
                                               << " holds inf or NaN, yet its bound is " << norms[row];
        }
      }
      std::vector<float> of_widened(norms.size());
      alibi::key_norms(s.k.data(), s.shape, of_widened.data());
      EXPECT_TRUE(same_bits(norms, of_widened)) << kv_name(KV{}) << " head_dim " << head_dim;
    }
  });
}

// Block skipping at the default tolerance, with the kernel's own key-norm bounds and with cached ones from
// alibi::key_norms of the 16-bit keys: rows match the reference on the converted values, and the whole
// output agrees with no skipping to 1e-6 of its scale.
ALIBI_ISA_TEST(SkippingWithAndWithoutCachedKeyNormsMatchesTheReference) {
  std::mt19937 rng(1109);
  const std::int64_t length = scaled(384, 192);
  struct Situation {
    std::int64_t q_len, kv_len;
    int heads, kv_heads;
    alibi::Mask mask;
    std::int64_t window;
  } situations[] = {
      {length, length, 8, 2, alibi::Mask::causal, 0},               // prefill
      {1, 4500, 8, 2, alibi::Mask::causal, 0},                      // decode, split along the keys (>= 4096)
      {length / 2, length, 8, 4, alibi::Mask::bidirectional, 0},    // encoder-style
      {length, length, 8, 8, alibi::Mask::causal, length / 4 + 1},  // sliding window
  };
  for (const Situation& at : situations) {
    Case c = make_case(1, at.q_len, at.kv_len, at.heads, at.kv_heads, 64);
    c.options.mask = at.mask;
    c.options.window = at.window;
    c.fill(rng);
    const std::vector<std::int64_t> rows = spot_rows(at.q_len, rng);
    for_each_16bit_kv([&](auto element) {
      using KV = decltype(element);
      KvCase<KV> s = stored_case<KV>(c);
      s.options.skip_tolerance = 0.0f;
      const std::vector<float> exact = run_kv<Isa>(s);
      s.options.skip_tolerance = alibi::AttentionOptions{}.skip_tolerance;
      const std::vector<float> own_bounds = run_kv<Isa>(s);
      const std::vector<float> norms = key_norms_of(s);
      s.options.key_norms = norms.data();
      const std::vector<float> cached_bounds = run_kv<Isa>(s);
      const SpotReference reference = spot_reference(s, rows);
      for (const std::vector<float>* out : {&own_bounds, &cached_bounds}) {
        SCOPED_TRACE(out == &own_bounds ? "own key-norm bounds" : "cached key norms");
        ASSERT_NO_FATAL_FAILURE(expect_rows_match(*out, s, reference));
        const Deviation dev = deviation(*out, exact);
        EXPECT_LE(dev.difference, 1e-6 * dev.scale) << s.describe();
      }
    });
  }
}

// A far key that dominates its rows although its norm sits almost entirely in its last element: key 5 is
// (0.25, ..., 0.25, 64) and every query ends in 4, so rows up to ~100 (slope 1/2) or ~200 (slope 1/4)
// positions later give it almost all their weight. Skipping may pass it only with a bound that sees the last
// element; one that missed it would be about 1 and the rows far enough to skip would lose their dominant
// key. (The 0.25s keep the key clear of the exact path the kernel's own bounds take for tiny keys.) Logits
// reach ~60, so the allowed error adds Note [logit rounding bound].
ALIBI_ISA_TEST(SkippingKeepsAFarKeyWhoseNormIsInItsLastElement) {
  std::mt19937 rng(1110);
  const std::int64_t length = 384;
  const int D = 17;
  Case c = make_case(1, length, length, 2, 1, D);
  c.custom_slopes = {0.5f, 0.25f};
  c.fill(rng);
  const std::int64_t hot_key = 5;
  for (int d = 0; d < D; ++d) c.k[static_cast<std::size_t>(hot_key * D + d)] = d == D - 1 ? 64.0f : 0.25f;
  for (std::size_t n = D - 1; n < c.q.size(); n += static_cast<std::size_t>(D)) c.q[n] = 4.0f;
  std::vector<std::int64_t> rows;
  for (std::int64_t distance : {10, 30, 50, 70, 90, 110, 150, 190, 230, 300}) rows.push_back(hot_key + distance);
  for_each_16bit_kv([&](auto element) {
    using KV = decltype(element);
    KvCase<KV> s = stored_case<KV>(c);
    const SpotReference reference = spot_reference(s, rows);
    {
      SCOPED_TRACE("own key-norm bounds");
      ASSERT_NO_FATAL_FAILURE(expect_rows_match(run_kv<Isa>(s), s, reference, true));
    }
    const std::vector<float> norms = key_norms_of(s);
    s.options.key_norms = norms.data();
    SCOPED_TRACE("cached key norms");
    ASSERT_NO_FATAL_FAILURE(expect_rows_match(run_kv<Isa>(s), s, reference, true));
  });
}

// ---- threads and non-finite inputs

ALIBI_ISA_TEST(ThreadCountDoesNotChangeABit) {
  const AllCallsUseThreads threads_even_for_small_calls;
  std::mt19937 rng(1111);
  std::vector<Case> cases;
  for (int index = 0; index < scaled(3, 2); ++index) {
    // One draw per statement: the order of evaluation of function arguments is unspecified.
    const int batch = std::uniform_int_distribution<int>(1, 2)(rng);
    Case c = make_case(batch, 0, 0, 8, 2, index % 2 ? 33 : 16);
    c.shape.q_len = std::uniform_int_distribution<std::int64_t>(1, 200)(rng);
    c.shape.kv_len = std::uniform_int_distribution<std::int64_t>(1, 200)(rng);
    c.options.mask = index % 2 ? alibi::Mask::bidirectional : alibi::Mask::causal;
    c.options.window = index % 3 == 0 ? 37 : 0;
    c.fill(rng);
    cases.push_back(c);
  }
  // Decode against a cache long enough to be split across threads (fixed key chunks merged in key order),
  // with and without skipping, and skipping with cached key norms.
  for (float tolerance : {0.0f, alibi::AttentionOptions{}.skip_tolerance}) {
    Case c = make_case(1, 1, 4500, 8, 2, 16);
    c.options.skip_tolerance = tolerance;
    c.fill(rng);
    cases.push_back(c);
  }
  for (const Case& c : cases) {
    for_each_16bit_kv([&](auto element) {
      using KV = decltype(element);
      KvCase<KV> s = stored_case<KV>(c);
      ASSERT_NO_FATAL_FAILURE(expect_bitwise_equal_across_threads(s, {2, 3}, run_kv<Isa, KV>));
      if (s.options.skip_tolerance == 0.0f || s.shape.q_len > 1) return;
      const std::vector<float> norms = key_norms_of(s);
      s.options.key_norms = norms.data();
      SCOPED_TRACE("cached key norms");
      ASSERT_NO_FATAL_FAILURE(expect_bitwise_equal_across_threads(s, {2, 3}, run_kv<Isa, KV>));
    });
  }
}

// A NaN (quiet or signalling) or infinity stored in one 16-bit key or value reaches exactly the rows that
// see it: every other row is bitwise as without it. With nothing skipped, a row that sees a NaN (and no
// infinity) does not come out finite.
template <class Isa, class KV>
void expect_non_finite_16bit_reaches_only_its_rows(const KvCase<KV>& clean, std::int64_t bad_key, int bad_element,
                                                   std::initializer_list<std::uint16_t> patterns) {
  const std::vector<float> reference = run_kv<Isa>(clean);
  const int bad_kv_head = 1;
  const std::size_t at =
      static_cast<std::size_t>((bad_key * clean.shape.num_kv_heads + bad_kv_head) * clean.shape.head_dim + bad_element);
  for (int tensor = 0; tensor < 2; ++tensor) {  // k, then v
    for (std::uint16_t bits : patterns) {
      KvCase<KV> c = clean;
      if (tensor == 0)
        c.set_key(at, from_bits<KV>(bits));
      else
        c.set_value(at, from_bits<KV>(bits));
      const NonFiniteSpread spread = non_finite_spread(c, bad_key, bad_kv_head, run_kv<Isa>(c), reference);
      char what[64];
      std::snprintf(what, sizeof what, "%s = 0x%04X at key %lld", tensor == 0 ? "k" : "v", unsigned(bits),
                    static_cast<long long>(bad_key));
      EXPECT_EQ(spread.changed_without_seeing, 0)
          << c.describe() << " skip_tolerance=" << c.options.skip_tolerance << ": " << what << " changed "
          << spread.changed_without_seeing << " rows that do not see it (" << spread.seeing << " rows see it)";
      const bool nan = std::isnan(value_of(from_bits<KV>(bits)));
      if (nan && c.options.skip_tolerance == 0.0f) {
        EXPECT_EQ(spread.finite_while_seeing, 0)
            << c.describe() << ": " << what << " left " << spread.finite_while_seeing << " of the " << spread.seeing
            << " rows that see it finite";
      }
    }
  }
}

ALIBI_ISA_TEST(NonFiniteKeyOrValueReachesOnlyRowsThatSeeIt) {
  std::mt19937 rng(1112);
  struct Situation {
    alibi::Mask mask;
    std::int64_t window;
  } situations[] = {{alibi::Mask::causal, 0},
                    {alibi::Mask::causal, 9},
                    {alibi::Mask::bidirectional, 0},
                    {alibi::Mask::bidirectional, 9}};
  for (const Situation& at : situations) {
    for_each_16bit_kv([&](auto element) {
      using KV = decltype(element);
      using F = Format<KV>;
      for (float tolerance : {alibi::AttentionOptions{}.skip_tolerance, 0.0f}) {  // one key block
        Case c = make_case(2, 37, 53, 4, 2, 24);
        c.options.mask = at.mask;
        c.options.window = at.window;
        c.options.num_threads = 1;
        c.options.skip_tolerance = tolerance;
        c.fill(rng);
        ASSERT_NO_FATAL_FAILURE((expect_non_finite_16bit_reaches_only_its_rows<Isa, KV>(
            stored_case<KV>(c), 39, 3, {F::nan, F::signaling_nan, F::inf, F::negative_inf})));
      }
      // Long enough that rows skip blocks, so the skipping bounds meet the bad key (quick runs: no window only).
      if (at.window == 0 || !alibi_test_quick_mode()) {
        Case c = make_case(1, 300, 400, 4, 2, 24);
        c.options.mask = at.mask;
        c.options.window = at.window == 0 ? 0 : 150;
        c.options.num_threads = 1;
        c.custom_slopes = {0.5f, 0.25f, 0.5f, 0.125f};
        c.fill(rng);
        ASSERT_NO_FATAL_FAILURE((expect_non_finite_16bit_reaches_only_its_rows<Isa, KV>(
            stored_case<KV>(c), 350, 5, {F::signaling_nan, F::negative_inf})));
      }
      // Decodes, which read K/V in place (Note [streaming decode]) with keys in lanes or, where a kv head's
      // rows fill a vector, rows in lanes: 1, 2, 4, 8 and 16 rows per kv head; with the window some of a kv
      // head's positions see the bad key and some do not.
      if (at.mask == alibi::Mask::causal) {
        for (std::int64_t q_len : {1, 2, 4}) {
          for (int kv_heads : {8, 2}) {  // 1 or 4 query heads per kv head
            Case c = make_case(1, q_len, 150, 8, kv_heads, q_len == 2 ? 17 : 24);
            c.options.window = at.window;
            c.options.num_threads = 1;
            c.options.skip_tolerance = 0.0f;
            c.fill(rng);
            ASSERT_NO_FATAL_FAILURE((expect_non_finite_16bit_reaches_only_its_rows<Isa, KV>(
                stored_case<KV>(c), 150 - 11, 2, {F::nan, F::inf})));
          }
        }
      }
    });
  }
}

// ---- arguments

// Empty tensors may be null with 16-bit K/V too: kv_len 0 gives zeros, q_len 0 touches nothing.
ALIBI_ISA_TEST(EmptySixteenBitTensorsMayBeNull) {
  std::mt19937 rng(1113);
  for_each_16bit_kv([&](auto element) {
    using KV = decltype(element);
    const KV* none = nullptr;
    Case c = make_case(2, 6, 0, 4, 2, 9);
    c.fill(rng);
    std::vector<float> out(c.q.size(), unwritten_marker());
    ASSERT_NO_THROW(alibi::attention<Isa>(c.q.data(), none, none, out.data(), c.shape));
    for (float x : out) ASSERT_EQ(x, 0.0f);
    const std::vector<KV> some(64);
    std::vector<float> untouched(8, 42.0f);
    ASSERT_NO_THROW(alibi::attention<Isa>(c.q.data(), some.data(), some.data(), untouched.data(),
                                          make_case(2, 0, 7, 4, 2, 8).shape));
    for (float x : untouched) ASSERT_EQ(x, 42.0f);
    ASSERT_NO_THROW(alibi::key_norms(none, make_case(2, 5, 0, 4, 2, 9).shape, nullptr));
  });
}

// Places `values` at `byte_offset` in `buffer` and returns where they are (the overlap rules compare byte
// ranges: q_count floats of out against kv_count * sizeof(KV) bytes of k or v).
template <class KV>
KV* place(std::vector<float>& buffer, std::size_t byte_offset, const std::vector<KV>& values) {
  unsigned char* bytes = reinterpret_cast<unsigned char*>(buffer.data()) + byte_offset;
  std::memcpy(bytes, values.data(), values.size() * sizeof(KV));
  return reinterpret_cast<KV*>(bytes);
}
float* float_at(std::vector<float>& buffer, std::size_t byte_offset) {
  return reinterpret_cast<float*>(reinterpret_cast<unsigned char*>(buffer.data()) + byte_offset);
}

ALIBI_ISA_TEST(RejectsBadArgumentsWithoutWriting) {
  std::mt19937 rng(1114);
  Case base = make_case(2, 5, 7, 4, 2, 8);
  base.fill(rng);
  for_each_16bit_kv([&](auto element) {
    using KV = decltype(element);
    const KvCase<KV> c = stored_case<KV>(base);
    const KV* none = nullptr;
    const std::string name = kv_name(KV{});
    std::vector<float> out(c.q.size(), 12345.0f);
    const alibi::AttentionOptions defaults;
    expect_rejected([&] { alibi::attention<Isa>(c.q.data(), none, c.stored_v.data(), out.data(), c.shape); }, "k", out,
                    "null " + name + " k");
    expect_rejected([&] { alibi::attention<Isa>(c.q.data(), c.stored_k.data(), none, out.data(), c.shape); }, "v", out,
                    "null " + name + " v");
    expect_rejected([&] { alibi::attention<Isa>(c.q.data(), c.stored_k.data(), c.stored_v.data(), nullptr, c.shape); },
                    "out", out, "null out with " + name + " k/v");
    alibi::AttentionShape uneven = c.shape;
    uneven.num_kv_heads = 3;
    expect_rejected(
        [&] { alibi::attention<Isa>(c.q.data(), c.stored_k.data(), c.stored_v.data(), out.data(), uneven); },
        "num_kv_heads", out, "num_kv_heads 3 of 4 heads with " + name + " k/v");
    expect_rejected([&] { alibi::key_norms(none, c.shape, out.data()); }, "k", out,
                    "key_norms of a null " + name + " k");

    // out against a 16-bit k or v in one buffer, at byte offsets: nkv elements of 2 bytes, nq floats.
    const std::size_t nq = c.q.size(), nkv = c.stored_k.size();
    const std::size_t kv_bytes = nkv * sizeof(KV), out_bytes = nq * sizeof(float);
    ASSERT_EQ(kv_bytes % 4, 0u);
    for (int tensor = 0; tensor < 2; ++tensor) {
      const std::string which = tensor == 0 ? "k" : "v";
      const std::vector<KV>& own = tensor == 0 ? c.stored_k : c.stored_v;
      auto call = [&](const KV* shared, float* result) {
        alibi::attention<Isa>(c.q.data(), tensor == 0 ? shared : c.stored_k.data(),
                              tensor == 1 ? shared : c.stored_v.data(), result, c.shape, defaults);
      };
      struct Layout {
        std::size_t kv_at, out_at;
        const char* what;
      } overlapping[] = {
          {0, 0, "out == "},
          {2, kv_bytes, "out starting on the last element of "},  // bytes [kv_bytes, kv_bytes + 2) are shared
          {out_bytes - 2, 0, "out's last float holding the first element of "},
      };
      for (const Layout& layout : overlapping) {
        std::vector<float> shared((out_bytes + kv_bytes) / 4 + 2, 7.0f);
        const KV* kv = place(shared, layout.kv_at, own);
        expect_rejected([&] { call(kv, float_at(shared, layout.out_at)); }, "out", shared,
                        layout.what + name + " " + which);
      }
      // Adjoining is not overlapping, on either side: nothing rejected, and the result is right.
      const Layout adjoining[] = {{0, kv_bytes, "out right after "}, {out_bytes, 0, "out right before "}};
      for (const Layout& layout : adjoining) {
        std::vector<float> shared((out_bytes + kv_bytes) / 4, 7.0f);
        const KV* kv = place(shared, layout.kv_at, own);
        float* result = float_at(shared, layout.out_at);
        ASSERT_NO_THROW(call(kv, result)) << layout.what << name << " " << which;
        const Comparison comparison = compare_to_reference(result, reference_of(c), c.shape, max_abs(c.v), false);
        EXPECT_TRUE(comparison.first_failure.empty())
            << layout.what << name << " " << which << ": " << comparison.first_failure;
      }
    }
  });
}

// ---- the table test_main.cpp registers (Note [no AVX-512 before the CPU check])

#define ALIBI_KV16_TESTS(X)                                  \
  X(AwkwardShapesMatchTheReferenceOnConvertedValues)         \
  X(RandomShapesMatchTheReferenceOnConvertedValues)          \
  X(SameBitsAsTheFloatPathOnTheWidenedValues)                \
  X(RoundingMattersAndTheReferenceUsesTheConvertedValues)    \
  X(Float16SubnormalKeysAndValues)                           \
  X(ValuesNearTheLargestFiniteOfEachFormat)                  \
  X(SixteenBitTensorsAtAnyEvenAddress)                       \
  X(KeyNormsBoundTheWidenedKeys)                             \
  X(SkippingWithAndWithoutCachedKeyNormsMatchesTheReference) \
  X(SkippingKeepsAFarKeyWhoseNormIsInItsLastElement)         \
  X(ThreadCountDoesNotChangeABit)                            \
  X(NonFiniteKeyOrValueReachesOnlyRowsThatSeeIt)             \
  X(EmptySixteenBitTensorsMayBeNull)                         \
  X(RejectsBadArgumentsWithoutWriting)

ALIBI_ISA_TEST_ENTRIES("Kv16AttentionTest", ALIBI_KV16_TESTS);

}  // namespace

const TestTable kKv16Tests = {kEntries.data(), kEntries.size()};

}  // namespace alibi_test
