// The 16-bit types and conversions (alibi/convert.hpp) against references written here from the formats'
// definitions (decoding with ldexp in double, rounding in double), and the 16-bit loads and stores of
// simd::Ops<Isa> against the scalar functions, typed over every ISA this binary was compiled for. convert()
// runs on this binary's isa::native.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <limits>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#if defined(__unix__)
#include <sys/mman.h>
#include <unistd.h>
#endif
#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#define ALIBI_TEST_HAS_MXCSR 1
#else
#define ALIBI_TEST_HAS_MXCSR 0
#endif

#include "alibi/alibi.hpp"
#include "alibi/convert.hpp"
#include "float16_reference.hpp"
#include "test_registry.hpp"
#include "test_support.hpp"

namespace alibi_test {
namespace {

constexpr int kCounterBefore = __COUNTER__;

static_assert(sizeof(alibi::bfloat16) == 2 && sizeof(alibi::float16) == 2, "16-bit types are 2 bytes");
static_assert(std::is_standard_layout<alibi::bfloat16>::value && std::is_trivially_copyable<alibi::bfloat16>::value,
              "bfloat16 is plain data");
static_assert(std::is_standard_layout<alibi::float16>::value && std::is_trivially_copyable<alibi::float16>::value,
              "float16 is plain data");

std::uint32_t bits_of(float x) {
  std::uint32_t b;
  std::memcpy(&b, &x, sizeof b);
  return b;
}
float float_of(std::uint32_t b) {
  float x;
  std::memcpy(&x, &b, sizeof x);
  return x;
}

// ---- independent references: the formats' definitions in double (decode*: tests/float16_reference.hpp)

// Finite x rounded to nearest even in a format with `mantissa_bits` stored bits, smallest normal exponent
// `emin` and largest finite value `max_finite` (IEEE: round with unbounded exponent range, then overflow).
double round_reference(double x, int mantissa_bits, int emin, double max_finite) {
  if (x == 0) return x;
  int e;
  std::frexp(std::fabs(x), &e);  // |x| = f 2^e, f in [0.5, 1)
  const int exponent = e - 1 > emin ? e - 1 : emin;
  const double ulp = std::ldexp(1.0, exponent - mantissa_bits);
  const double q = std::fabs(x) / ulp;  // exact: a power-of-two scaling
  double r = std::floor(q);
  const double rest = q - r;
  if (rest > 0.5 || (rest == 0.5 && std::fmod(r, 2.0) == 1.0)) r += 1.0;
  double result = r * ulp;
  if (result > max_finite) result = HUGE_VAL;
  return std::copysign(result, x);
}
double round_f16_reference(float x) {
  return round_reference(x, 10, -14, 65504.0);
}
double round_bf16_reference(float x) {
  return round_reference(x, 7, -126, std::ldexp(255.0, 120));
}

// `got` (a 16-bit pattern) is the pattern of `want` (a value, possibly a signed zero or inf).
::testing::AssertionResult same_value(double got, double want, float input, std::uint16_t pattern) {
  if (got == want && std::signbit(got) == std::signbit(want)) return ::testing::AssertionSuccess();
  char text[160];
  std::snprintf(text, sizeof text, "input %a (bits %08x): got pattern %04x = %a, want %a", double(input),
                unsigned(bits_of(input)), unsigned(pattern), got, want);
  return ::testing::AssertionFailure() << text;
}

bool is_nan_f16(std::uint16_t h) {
  return (h & 0x7C00u) == 0x7C00u && (h & 0x3FFu) != 0;
}
bool is_nan_bf16(std::uint16_t h) {
  return (h & 0x7F80u) == 0x7F80u && (h & 0x7Fu) != 0;
}

// ---- inputs

// Every finite non-negative 16-bit value v, the midpoint between it and the next one, the floats either
// side of that midpoint, and all of it negated. `next_of_largest` stands for the value after the largest
// finite one (2^16 for binary16: the rounding threshold to inf is halfway to it).
template <class Decode>
std::vector<float> rounding_cases(std::uint16_t largest_finite, double next_of_largest, Decode decode_fn) {
  std::vector<float> cases;
  for (std::uint32_t k = 0; k <= largest_finite; ++k) {
    const double v = decode_fn(static_cast<std::uint16_t>(k));
    const double next = k == largest_finite ? next_of_largest : decode_fn(static_cast<std::uint16_t>(k + 1));
    const float mid = static_cast<float>((v + next) / 2);  // exact: one bit more than the 16-bit format
    for (float x : {static_cast<float>(v), mid, std::nextafter(mid, 0.0f), std::nextafter(mid, HUGE_VALF)}) {
      cases.push_back(x);
      cases.push_back(-x);
    }
  }
  return cases;
}

// Random bit patterns (every exponent equally often), NaNs and infinities included.
std::vector<float> random_floats(int count, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<float> x(static_cast<std::size_t>(count));
  for (float& value : x) value = float_of(static_cast<std::uint32_t>(rng()));
  return x;
}

std::vector<float> special_floats() {
  const float inf = std::numeric_limits<float>::infinity();
  std::vector<float> x = {0.0f,
                          -0.0f,
                          inf,
                          -inf,
                          65504.0f,
                          65519.99f,
                          65520.0f,
                          -65520.0f,
                          65536.0f,
                          0x1p-24f,
                          0x1p-25f,
                          0x1.8p-25f,
                          0x1p-14f,
                          0x1.ff8p-15f,
                          1e-40f,
                          -1e-40f,
                          0x1p-149f,
                          3.4028235e38f,
                          -3.4028235e38f,
                          float_of(0x7F800001u),
                          float_of(0xFF800001u),
                          float_of(0x7FC00000u),
                          float_of(0xFFC00000u),
                          float_of(0x7FBFFFFFu),
                          float_of(0x7F802000u),
                          float_of(0xFFFFFFFFu)};
  return x;
}

std::vector<float> all_store_cases() {
  std::vector<float> x = special_floats();
  const std::vector<float> f16 = rounding_cases(0x7BFF, 65536.0, decode_f16);
  const std::vector<float> random = random_floats(scaled(1 << 18, 1 << 14), 7u);
  x.insert(x.end(), f16.begin(), f16.end());
  x.insert(x.end(), random.begin(), random.end());
  return x;
}

// ---- scalar conversions

ALIBI_TEST(ConvertTest, BFloat16ToFloatIsExactForAllPatterns) {
  int failures = 0;
  for (std::uint32_t h = 0; h < 65536 && failures < 10; ++h) {
    const float got = alibi::to_float(alibi::bfloat16{static_cast<std::uint16_t>(h)});
    const double want = decode_bf16(static_cast<std::uint16_t>(h));
    if (std::isnan(want)) {
      // A pure widening: NaN payloads too.
      if (bits_of(got) != h << 16) ++failures, ADD_FAILURE() << "pattern " << h << ": bits " << bits_of(got);
    } else if (!same_value(got, want, 0.0f, static_cast<std::uint16_t>(h))) {
      ++failures, ADD_FAILURE() << "pattern " << h << ": got " << got << ", want " << want;
    }
  }
}

ALIBI_TEST(ConvertTest, Float16ToFloatIsExactForAllPatterns) {
  int failures = 0;
  for (std::uint32_t h = 0; h < 65536 && failures < 10; ++h) {
    const float got = alibi::to_float(alibi::float16{static_cast<std::uint16_t>(h)});
    const double want = decode_f16(static_cast<std::uint16_t>(h));
    if (std::isnan(want)) {
      // Same sign, quiet, payload in the top mantissa bits.
      const std::uint32_t expected = ((h & 0x8000u) << 16) | 0x7FC00000u | ((h & 0x3FFu) << 13);
      if (!std::isnan(got) || bits_of(got) != expected)
        ++failures, ADD_FAILURE() << "pattern " << h << ": bits " << bits_of(got) << ", want " << expected;
    } else if (!same_value(got, want, 0.0f, static_cast<std::uint16_t>(h))) {
      ++failures, ADD_FAILURE() << "pattern " << h << ": got " << got << ", want " << want;
    }
  }
}

template <class Round, class Reference, class Decode, class IsNan>
void check_rounding(const std::vector<float>& inputs, Round round, Reference reference, Decode decode_fn, IsNan is_nan,
                    std::uint16_t sign_bit) {
  int failures = 0;
  for (float x : inputs) {
    const std::uint16_t got = round(x);
    if (std::isnan(x)) {
      const bool ok = is_nan(got) && ((got & sign_bit) != 0) == std::signbit(x);
      if (!ok) ++failures, ADD_FAILURE() << "NaN input " << bits_of(x) << " gave pattern " << got;
    } else if (!same_value(decode_fn(got), reference(x), x, got)) {
      ++failures, ADD_FAILURE() << same_value(decode_fn(got), reference(x), x, got).message();
    }
    if (failures >= 10) return;
  }
}

ALIBI_TEST(ConvertTest, ToFloat16RoundsToNearestEven) {
  auto round = [](float x) { return alibi::to_float16(x).bits; };
  std::vector<float> inputs = rounding_cases(0x7BFF, 65536.0, decode_f16);
  const std::vector<float> more = random_floats(scaled(1 << 21, 1 << 16), 1u);
  inputs.insert(inputs.end(), more.begin(), more.end());
  const std::vector<float> special = special_floats();
  inputs.insert(inputs.end(), special.begin(), special.end());
  // Every exponent densely around the binary16 range (2^-26 .. 2^17), a stride through the mantissas.
  for (std::uint32_t b = 0x32800000u; b < 0x48000000u; b += 997u) inputs.push_back(float_of(b));
  check_rounding(inputs, round, round_f16_reference, decode_f16, is_nan_f16, 0x8000);
}

ALIBI_TEST(ConvertTest, ToBFloat16RoundsToNearestEven) {
  auto round = [](float x) { return alibi::to_bfloat16(x).bits; };
  std::vector<float> inputs = rounding_cases(0x7F7F, std::ldexp(1.0, 128), decode_bf16);
  const std::vector<float> more = random_floats(scaled(1 << 21, 1 << 16), 2u);
  inputs.insert(inputs.end(), more.begin(), more.end());
  const std::vector<float> special = special_floats();
  inputs.insert(inputs.end(), special.begin(), special.end());
  check_rounding(inputs, round, round_bf16_reference, decode_bf16, is_nan_bf16, 0x8000);
}

ALIBI_TEST(ConvertTest, SpecialValuesAndTies) {
  using alibi::to_bfloat16;
  using alibi::to_float16;
  const float inf = std::numeric_limits<float>::infinity();
  // float16: overflow threshold, signed zeros, infinities, NaN signs.
  EXPECT_EQ(to_float16(65520.0f).bits, 0x7C00);
  EXPECT_EQ(to_float16(-65520.0f).bits, 0xFC00);
  EXPECT_EQ(to_float16(65519.99f).bits, 0x7BFF);  // 65504
  EXPECT_EQ(to_float16(65504.0f).bits, 0x7BFF);
  EXPECT_EQ(to_float16(1e30f).bits, 0x7C00);
  EXPECT_EQ(to_float16(inf).bits, 0x7C00);
  EXPECT_EQ(to_float16(-inf).bits, 0xFC00);
  EXPECT_EQ(to_float16(0.0f).bits, 0x0000);
  EXPECT_EQ(to_float16(-0.0f).bits, 0x8000);
  EXPECT_EQ(to_float16(1.0f).bits, 0x3C00);
  EXPECT_EQ(to_float16(-2.0f).bits, 0xC000);
  EXPECT_EQ(to_float16(std::numeric_limits<float>::quiet_NaN()).bits & 0xFE00, 0x7E00);
  EXPECT_EQ(to_float16(-std::numeric_limits<float>::quiet_NaN()).bits & 0xFE00, 0xFE00);
  EXPECT_EQ(to_float16(float_of(0x7F800001u)).bits, 0x7E00);  // signalling NaN, payload below 16 bits
  EXPECT_EQ(to_float16(float_of(0xFF800001u)).bits, 0xFE00);
  // float16 ties to even: 1 + 2^-11 is halfway between 1 and 1 + 2^-10.
  EXPECT_EQ(to_float16(1.0f + 0x1p-11f).bits, 0x3C00);
  EXPECT_EQ(to_float16(1.0f + 0x3p-11f).bits, 0x3C02);
  EXPECT_EQ(to_float16(std::nextafter(1.0f + 0x1p-11f, 2.0f)).bits, 0x3C01);
  EXPECT_EQ(to_float16(2049.0f).bits, to_float16(2048.0f).bits);  // halfway, to the even 2048
  EXPECT_EQ(to_float16(2051.0f).bits, to_float16(2052.0f).bits);  // halfway, to the even 2052
  // float16 subnormals: 2^-24 is the smallest; 2^-25 is halfway to 0 (even), 3 * 2^-25 halfway up to 2^-23.
  EXPECT_EQ(to_float16(0x1p-24f).bits, 0x0001);
  EXPECT_EQ(to_float16(0x1p-25f).bits, 0x0000);
  EXPECT_EQ(to_float16(-0x1p-25f).bits, 0x8000);
  EXPECT_EQ(to_float16(std::nextafter(0x1p-25f, 1.0f)).bits, 0x0001);
  EXPECT_EQ(to_float16(0x1.8p-24f).bits, 0x0002);
  EXPECT_EQ(to_float16(0x1.4p-23f).bits, 0x0002);    // 2.5 * 2^-24 -> 2 (even)
  EXPECT_EQ(to_float16(0x1.ff8p-15f).bits, 0x03FF);  // largest subnormal
  EXPECT_EQ(to_float16(0x1.ffcp-15f).bits, 0x0400);  // halfway between it and 2^-14: up to the even normal
  EXPECT_EQ(to_float16(std::nextafter(0x1.ffcp-15f, 0.0f)).bits, 0x03FF);
  EXPECT_EQ(to_float16(1e-40f).bits, 0x0000);  // float subnormal
  EXPECT_EQ(to_float16(-1e-40f).bits, 0x8000);
  EXPECT_EQ(alibi::to_float(alibi::float16{0x0001}), 0x1p-24f);
  EXPECT_EQ(alibi::to_float(alibi::float16{0x7BFF}), 65504.0f);
  EXPECT_EQ(bits_of(alibi::to_float(alibi::float16{0x8000})), 0x80000000u);
  // bfloat16.
  EXPECT_EQ(to_bfloat16(1.0f).bits, 0x3F80);
  EXPECT_EQ(to_bfloat16(-0.0f).bits, 0x8000);
  EXPECT_EQ(to_bfloat16(inf).bits, 0x7F80);
  EXPECT_EQ(to_bfloat16(-inf).bits, 0xFF80);
  EXPECT_EQ(to_bfloat16(float_of(0x3F808000u)).bits, 0x3F80);  // halfway, to even
  EXPECT_EQ(to_bfloat16(float_of(0x3F818000u)).bits, 0x3F82);  // halfway, to even
  EXPECT_EQ(to_bfloat16(float_of(0x3F808001u)).bits, 0x3F81);
  EXPECT_EQ(to_bfloat16(3.4028235e38f).bits, 0x7F80);          // above the last midpoint: inf
  EXPECT_EQ(to_bfloat16(float_of(0x7F7F7FFFu)).bits, 0x7F7F);  // below it: the largest finite
  EXPECT_EQ(to_bfloat16(float_of(0x00008000u)).bits, 0x0000);  // subnormal halfway, to even 0
  EXPECT_EQ(to_bfloat16(float_of(0x7F800001u)).bits, 0x7FC0);  // signalling NaN stays a NaN
  EXPECT_EQ(to_bfloat16(float_of(0xFF800001u)).bits, 0xFFC0);
  EXPECT_EQ(to_bfloat16(float_of(0xFFC12345u)).bits, 0xFFC1);
}

// ---- arrays (this binary's isa::native)

template <class T>
T sentinel() {
  return T{0xA5A5};
}

ALIBI_TEST(ConvertTest, ArraysMatchTheScalarFunctionsBitwise) {
  std::vector<float> pool = special_floats();
  const std::vector<float> random = random_floats(4096, 3u);
  pool.insert(pool.end(), random.begin(), random.end());
  std::mt19937 rng(11);
  for (std::size_t n : {0u, 1u, 7u, 15u, 17u, 33u, 1000u}) {
    for (std::size_t offset = 0; offset < 4; ++offset) {
      const std::string where = "n=" + std::to_string(n) + " offset=" + std::to_string(offset);
      // float -> 16 bits; an element either side of the output must stay untouched.
      std::vector<float> in(n + offset);
      for (std::size_t i = 0; i < n; ++i) in[offset + i] = pool[rng() % pool.size()];
      std::vector<alibi::bfloat16> bf(n + offset + 1, sentinel<alibi::bfloat16>());
      std::vector<alibi::float16> f16(n + offset + 1, sentinel<alibi::float16>());
      alibi::convert(in.data() + offset, bf.data() + offset, n);
      alibi::convert(in.data() + offset, f16.data() + offset, n);
      int failures = 0;
      for (std::size_t i = 0; i < n && failures < 5; ++i) {
        const float x = in[offset + i];
        if (bf[offset + i].bits != alibi::to_bfloat16(x).bits)
          ++failures, ADD_FAILURE() << where << " bf16 [" << i << "]";
        if (f16[offset + i].bits != alibi::to_float16(x).bits)
          ++failures, ADD_FAILURE() << where << " f16 [" << i << "]";
      }
      for (std::size_t i = 0; i < offset; ++i) {
        EXPECT_EQ(bf[i].bits, 0xA5A5) << where;
        EXPECT_EQ(f16[i].bits, 0xA5A5) << where;
      }
      EXPECT_EQ(bf[offset + n].bits, 0xA5A5) << where << ": wrote past n";
      EXPECT_EQ(f16[offset + n].bits, 0xA5A5) << where << ": wrote past n";

      // 16 bits -> float, from every pattern in turn.
      std::vector<alibi::bfloat16> bf_in(n + offset);
      std::vector<alibi::float16> f16_in(n + offset);
      for (std::size_t i = 0; i < n; ++i) {
        const auto h = static_cast<std::uint16_t>(rng());
        bf_in[offset + i].bits = h;
        f16_in[offset + i].bits = h;
      }
      const float marker = unwritten_marker();
      std::vector<float> from_bf(n + offset + 1, marker), from_f16(n + offset + 1, marker);
      alibi::convert(bf_in.data() + offset, from_bf.data() + offset, n);
      alibi::convert(f16_in.data() + offset, from_f16.data() + offset, n);
      for (std::size_t i = 0; i < n && failures < 10; ++i) {
        if (bits_of(from_bf[offset + i]) != bits_of(alibi::to_float(bf_in[offset + i])))
          ++failures, ADD_FAILURE() << where << " from bf16 [" << i << "]";
        if (bits_of(from_f16[offset + i]) != bits_of(alibi::to_float(f16_in[offset + i])))
          ++failures, ADD_FAILURE() << where << " from f16 [" << i << "]";
      }
      for (std::size_t i = 0; i < offset; ++i) {
        EXPECT_EQ(bits_of(from_bf[i]), bits_of(marker)) << where;
        EXPECT_EQ(bits_of(from_f16[i]), bits_of(marker)) << where;
      }
      EXPECT_EQ(bits_of(from_bf[offset + n]), bits_of(marker)) << where << ": wrote past n";
      EXPECT_EQ(bits_of(from_f16[offset + n]), bits_of(marker)) << where << ": wrote past n";
    }
  }
}

// The conversions are integer code or use explicit rounding: FTZ, DAZ and the rounding mode change nothing.
ALIBI_TEST(ConvertTest, ArraysIgnoreTheFloatingPointEnvironment) {
#if ALIBI_TEST_HAS_MXCSR
  std::vector<float> in = special_floats();
  const std::vector<float> f16_cases = rounding_cases(0x7BFF, 65536.0, decode_f16);
  in.insert(in.end(), f16_cases.begin(), f16_cases.end());
  std::vector<alibi::bfloat16> bf_patterns(65536);
  std::vector<alibi::float16> f16_patterns(65536);
  for (std::uint32_t h = 0; h < 65536; ++h) {
    bf_patterns[h].bits = static_cast<std::uint16_t>(h);
    f16_patterns[h].bits = static_cast<std::uint16_t>(h);
  }
  std::vector<alibi::bfloat16> bf(in.size());
  std::vector<alibi::float16> f16(in.size());
  std::vector<float> from_bf(65536), from_f16(65536);
  for (unsigned rounding : {0x2000u, 0x4000u, 0x6000u}) {  // down, up, toward zero
    const unsigned saved = _mm_getcsr();
    _mm_setcsr((saved & ~0x6000u) | rounding | 0x8040u);  // plus FTZ and DAZ
    alibi::convert(in.data(), bf.data(), in.size());
    alibi::convert(in.data(), f16.data(), in.size());
    alibi::convert(bf_patterns.data(), from_bf.data(), bf_patterns.size());
    alibi::convert(f16_patterns.data(), from_f16.data(), f16_patterns.size());
    _mm_setcsr(saved);
    int failures = 0;
    for (std::size_t i = 0; i < in.size() && failures < 10; ++i) {
      if (bf[i].bits != alibi::to_bfloat16(in[i]).bits) ++failures, ADD_FAILURE() << "bf16 of " << in[i];
      if (f16[i].bits != alibi::to_float16(in[i]).bits) ++failures, ADD_FAILURE() << "f16 of " << in[i];
    }
    for (std::uint32_t h = 0; h < 65536 && failures < 10; ++h) {
      const auto p = static_cast<std::uint16_t>(h);
      if (bits_of(from_bf[h]) != bits_of(alibi::to_float(alibi::bfloat16{p})))
        ++failures, ADD_FAILURE() << "bf16 " << h;
      if (bits_of(from_f16[h]) != bits_of(alibi::to_float(alibi::float16{p}))) ++failures, ADD_FAILURE() << "f16 " << h;
    }
  }
#else
  GTEST_SKIP() << "no MXCSR on this architecture";
#endif
}

ALIBI_TEST(ConvertTest, RejectsBadArguments) {
  std::vector<float> f(8, 1.0f);
  std::vector<alibi::bfloat16> bf(8);
  std::vector<alibi::float16> h(8);
  const std::vector<float> nothing;
  EXPECT_NO_THROW(alibi::convert(static_cast<const float*>(nullptr), static_cast<alibi::bfloat16*>(nullptr), 0));
  EXPECT_NO_THROW(alibi::convert(static_cast<const alibi::float16*>(nullptr), static_cast<float*>(nullptr), 0));
  expect_rejected([&] { alibi::convert(static_cast<const float*>(nullptr), bf.data(), 8); }, "in", nothing, "null in");
  expect_rejected([&] { alibi::convert(f.data(), static_cast<alibi::float16*>(nullptr), 8); }, "out", nothing,
                  "null out");
  expect_rejected([&] { alibi::convert(bf.data(), static_cast<float*>(nullptr), 8); }, "out", nothing, "null out");
  expect_rejected([&] { alibi::convert(static_cast<const alibi::float16*>(nullptr), f.data(), 8); }, "in", nothing,
                  "null in");
  // Overlap: the 16-bit array inside the float array, and the other way round.
  expect_rejected([&] { alibi::convert(f.data(), reinterpret_cast<alibi::float16*>(f.data() + 3), 4); }, "out", f,
                  "out inside in");
  expect_rejected([&] { alibi::convert(reinterpret_cast<const alibi::bfloat16*>(f.data()), f.data() + 1, 4); }, "out",
                  f, "out overlapping in");
  EXPECT_NO_THROW(alibi::convert(f.data(), reinterpret_cast<alibi::float16*>(f.data() + 4), 4))
      << "adjacent arrays do not overlap";
}

// ---- simd::Ops<Isa>: 16-bit loads and stores

// `count` uint16 at the very end of a readable page followed by an inaccessible one (where the platform
// allows it), so a load or store touching anything past them faults.
class GuardedU16 {
 public:
  explicit GuardedU16(std::size_t count) : count_(count) {
#if defined(__unix__)
    page_ = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
    void* base = mmap(nullptr, 2 * page_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base != MAP_FAILED && mprotect(static_cast<char*>(base) + page_, page_, PROT_NONE) == 0) {
      base_ = base;
      data_ = reinterpret_cast<std::uint16_t*>(static_cast<char*>(base) + page_) - count;
      return;
    }
    if (base != MAP_FAILED) munmap(base, 2 * page_);
#endif
    fallback_.assign(count + 1, 0);
    data_ = fallback_.data();
  }
  ~GuardedU16() {
#if defined(__unix__)
    if (base_ != nullptr) munmap(base_, 2 * page_);
#endif
  }
  GuardedU16(const GuardedU16&) = delete;
  GuardedU16& operator=(const GuardedU16&) = delete;
  std::uint16_t* data() {
    return data_;
  }
  std::size_t size() const {
    return count_;
  }

 private:
  std::size_t count_;
  std::uint16_t* data_ = nullptr;
  void* base_ = nullptr;
  std::size_t page_ = 0;
  std::vector<std::uint16_t> fallback_;
};

template <class Isa>
void check_widening_lanes(const float* lanes, const std::uint16_t* patterns, int n, bool f16, const std::string& where,
                          int& failures) {
  for (int l = 0; l < alibi::simd::Ops<Isa>::width && failures < 10; ++l) {
    const float want =
        l >= n ? 0.0f
               : (f16 ? alibi::to_float(alibi::float16{patterns[l]}) : alibi::to_float(alibi::bfloat16{patterns[l]}));
    if (bits_of(lanes[l]) != bits_of(want))
      ++failures, ADD_FAILURE() << Isa::name << " " << where << (f16 ? " f16" : " bf16") << " lane " << l
                                << ": got bits " << bits_of(lanes[l]) << ", want " << bits_of(want);
  }
}

ALIBI_ISA_TEST(SixteenBitLoadsMatchTheScalarFunctions) {
  using O = alibi::simd::Ops<Isa>;
  constexpr int W = O::width;
  std::vector<std::uint16_t> patterns(65536 + 1);
  for (std::size_t h = 0; h < 65536; ++h) patterns[h] = static_cast<std::uint16_t>(h);
  float lanes[64];
  int failures = 0;
  for (std::size_t base = 0; base + W <= 65536; base += W) {
    O::store(lanes, O::load_bf16(patterns.data() + base));
    check_widening_lanes<Isa>(lanes, patterns.data() + base, W, false, "full", failures);
    O::store(lanes, O::load_f16(patterns.data() + base));
    check_widening_lanes<Isa>(lanes, patterns.data() + base, W, true, "full", failures);
    // Unaligned too.
    O::store(lanes, O::load_f16(patterns.data() + base + 1));
    check_widening_lanes<Isa>(lanes, patterns.data() + base + 1, W, true, "unaligned", failures);
  }
  // Partial loads read only their n values: placed against an inaccessible page, and the other lanes are 0.
  for (int n = 0; n <= W; ++n) {
    GuardedU16 guarded(static_cast<std::size_t>(n));
    std::uint16_t* p = guarded.data();
    for (std::size_t start = 0; start < 65536; start += 4099) {
      for (int i = 0; i < n; ++i) p[i] = static_cast<std::uint16_t>(start + static_cast<std::size_t>(i) * 977);
      const std::string where = "partial n=" + std::to_string(n);
      O::store(lanes, O::load_bf16_partial(p, n));
      check_widening_lanes<Isa>(lanes, p, n, false, where, failures);
      O::store(lanes, O::load_f16_partial(p, n));
      check_widening_lanes<Isa>(lanes, p, n, true, where, failures);
    }
  }
}

ALIBI_ISA_TEST(SixteenBitStoresMatchTheScalarFunctions) {
  using O = alibi::simd::Ops<Isa>;
  constexpr int W = O::width;
  std::vector<float> in = all_store_cases();
  const std::vector<float> bf16_cases = rounding_cases(0x7F7F, std::ldexp(1.0, 128), decode_bf16);
  in.insert(in.end(), bf16_cases.begin(), bf16_cases.end());
  in.resize((in.size() + W - 1) / W * W, 1.0f);
  std::vector<std::uint16_t> bf(in.size() + 1), f16(in.size() + 1);
  int failures = 0;
  for (std::size_t base = 0; base < in.size(); base += W) {
    // Unaligned destinations (odd element offsets).
    O::store_bf16(bf.data() + base + 1, O::load(in.data() + base));
    O::store_f16(f16.data() + base + 1, O::load(in.data() + base));
  }
  for (std::size_t i = 0; i < in.size() && failures < 10; ++i) {
    if (bf[i + 1] != alibi::to_bfloat16(in[i]).bits)
      ++failures, ADD_FAILURE() << Isa::name << " bf16 of bits " << bits_of(in[i]) << ": " << bf[i + 1];
    if (f16[i + 1] != alibi::to_float16(in[i]).bits)
      ++failures, ADD_FAILURE() << Isa::name << " f16 of bits " << bits_of(in[i]) << ": " << f16[i + 1];
  }
  // Partial stores write exactly n values: against an inaccessible page, with the values before checked.
  for (int n = 0; n <= W; ++n) {
    GuardedU16 guarded(static_cast<std::size_t>(W));  // W slots; the last n are written, the rest must keep 0xA5A5
    for (std::size_t base = 0; base < in.size() && failures < 10; base += 1021 * W) {
      for (int variant = 0; variant < 2; ++variant) {
        std::uint16_t* slots = guarded.data();
        for (int i = 0; i < W; ++i) slots[i] = 0xA5A5;
        std::uint16_t* p = slots + (W - n);
        const auto x = O::load(in.data() + base);
        if (variant == 0) {
          O::store_bf16_partial(p, x, n);
        } else {
          O::store_f16_partial(p, x, n);
        }
        for (int i = 0; i < W - n; ++i)
          if (slots[i] != 0xA5A5) ++failures, ADD_FAILURE() << Isa::name << " partial n=" << n << " wrote before p";
        for (int i = 0; i < n; ++i) {
          const float value = in[base + static_cast<std::size_t>(i)];
          const std::uint16_t want = variant == 0 ? alibi::to_bfloat16(value).bits : alibi::to_float16(value).bits;
          if (p[i] != want) ++failures, ADD_FAILURE() << Isa::name << " partial n=" << n << " lane " << i;
        }
      }
    }
  }
}

// ---- the table test_main.cpp registers (Note [no AVX-512 before the CPU check])

#define ALIBI_CONVERT_TESTS(X)                            \
  X(ConvertTest, BFloat16ToFloatIsExactForAllPatterns)    \
  X(ConvertTest, Float16ToFloatIsExactForAllPatterns)     \
  X(ConvertTest, ToFloat16RoundsToNearestEven)            \
  X(ConvertTest, ToBFloat16RoundsToNearestEven)           \
  X(ConvertTest, SpecialValuesAndTies)                    \
  X(ConvertTest, ArraysMatchTheScalarFunctionsBitwise)    \
  X(ConvertTest, ArraysIgnoreTheFloatingPointEnvironment) \
  X(ConvertTest, RejectsBadArguments)

#define ALIBI_CONVERT_ISA_TESTS(X)          \
  X(SixteenBitLoadsMatchTheScalarFunctions) \
  X(SixteenBitStoresMatchTheScalarFunctions)

constexpr int kDefinedTests = __COUNTER__ - kCounterBefore - 1;
#define ALIBI_COUNT_ONE(...) +1
constexpr int kPlainTests = 0 ALIBI_CONVERT_TESTS(ALIBI_COUNT_ONE);
constexpr int kIsaTests = 0 ALIBI_CONVERT_ISA_TESTS(ALIBI_COUNT_ONE);
static_assert(kPlainTests + kIsaTests == kDefinedTests,
              "every test must be listed in ALIBI_CONVERT_TESTS or ALIBI_CONVERT_ISA_TESTS");

template <class Isa>
constexpr std::array<TestEntry, kIsaTests> isa_tests_for(Isa*) {
#define ALIBI_ENTRY(Name) TestEntry{"ConvertOpsTest", Isa::name, #Name, &Name<Isa>, __FILE__, Name##_line},
  return {{ALIBI_CONVERT_ISA_TESTS(ALIBI_ENTRY)}};
#undef ALIBI_ENTRY
}

#define ALIBI_ENTRY(Suite, Name) TestEntry{#Suite, nullptr, #Name, &Suite##_##Name, __FILE__, Suite##_##Name##_line},
constexpr TestEntry kPlainEntries[] = {ALIBI_CONVERT_TESTS(ALIBI_ENTRY)};
#undef ALIBI_ENTRY

constexpr auto kIsaEntries = entries_for_isas<kIsaTests>([](auto* isa) { return isa_tests_for(isa); }, CompiledIsas{});

constexpr std::array<TestEntry, kPlainTests + kIsaEntries.size()> all_entries() {
  std::array<TestEntry, kPlainTests + kIsaEntries.size()> all{};
  std::size_t n = 0;
  for (const TestEntry& entry : kPlainEntries) all[n++] = entry;
  for (const TestEntry& entry : kIsaEntries) all[n++] = entry;
  return all;
}
constexpr auto kEntries = all_entries();

}  // namespace

const TestTable kConvertTests = {kEntries.data(), kEntries.size()};

}  // namespace alibi_test
