// alibi::attention<Isa> against the float64 reference (tests/reference.hpp), typed over every ISA this
// binary was compiled for. The same source is built three times: without ISA flags, with the AVX2 flags
// and with the AVX-512 flags (tests/CMakeLists.txt).
//
// Tolerances (see compare_to_reference in test_support.hpp):
//   unit-scale inputs: |out - ref| <= 2e-5 * max|ref| (+ 4 ulp of max|v|, the resolution of a weighted mean);
//   large logits: additionally the error that fp32 rounding of the logits implies, Note [logit rounding
//   bound] in reference.hpp, computed per element from the actual logits.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <initializer_list>
#include <iterator>
#include <limits>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "alibi/alibi.hpp"
#include "attention_cases.hpp"
#include "float16_reference.hpp"
#include "reference.hpp"
#include "test_registry.hpp"
#include "test_support.hpp"

namespace alibi_test {
namespace {

constexpr int kCounterBefore = __COUNTER__;

// ---- random shapes (the case, its generator and the shared checks: tests/attention_cases.hpp)

ALIBI_ISA_TEST(RandomShapesMatchTheReference) {
  const int num_cases = scaled(500, 100);
  const std::int64_t max_work = scaled(3000000, 400000);
  std::mt19937 rng(20240601);
  double worst_ratio = 0.0, worst_error = 0.0;
  int failures = 0;
  std::set<std::int64_t> q_lens, kv_lens;
  std::set<int> heads, dims;
  int bidirectional = 0, windowed = 0, explicit_q_pos0 = 0, custom_slopes = 0, grouped = 0;
  for (int index = 0; index < num_cases; ++index) {
    const Case c = random_case(index, rng, max_work);
    const Comparison result = check<Isa>(c);
    worst_ratio = std::max(worst_ratio, result.worst_ratio);
    worst_error = std::max(worst_error, result.max_error);
    if (!result.first_failure.empty() && ++failures <= 20)
      ADD_FAILURE() << "case " << index << ": " << c.describe() << "\n  " << result.first_failure;
    q_lens.insert(c.shape.q_len);
    kv_lens.insert(c.shape.kv_len);
    heads.insert(c.shape.num_heads);
    dims.insert(c.shape.head_dim);
    bidirectional += c.options.mask == alibi::Mask::bidirectional;
    windowed += c.options.window > 0;
    explicit_q_pos0 += c.options.q_pos0 >= 0;
    custom_slopes += !c.custom_slopes.empty();
    grouped += c.shape.num_kv_heads < c.shape.num_heads;
  }
  EXPECT_EQ(failures, 0) << failures << " of " << num_cases << " cases failed (first 20 shown above)";
  // The draw covers what the contract lists (a guard against editing the generator into blindness).
  EXPECT_EQ(q_lens.size(), std::size(kLengths));
  EXPECT_EQ(kv_lens.size(), std::size(kLengths));
  EXPECT_EQ(heads.size(), std::size(kHeadCounts));
  EXPECT_EQ(dims.size(), std::size(kHeadDims));
  for (int count : {bidirectional, windowed, explicit_q_pos0, custom_slopes, grouped}) EXPECT_GT(count, num_cases / 10);
  std::printf("[ %s ] %d random cases: worst error %.3g, worst error / tolerance %.3g\n", Isa::name, num_cases,
              worst_error, worst_ratio);
  ::testing::Test::RecordProperty("worst_error_over_tolerance", std::to_string(worst_ratio));
}

ALIBI_ISA_TEST(RandomShapesWithFarRows) {
  // The same draw without keeping rows near the keys: rows far before or past every key have logits that
  // are large through the bias alone, so the tolerance adds Note [logit rounding bound].
  const int num_cases = scaled(200, 40);
  std::mt19937 rng(20240602);
  double worst_ratio = 0.0;
  int failures = 0;
  for (int index = 0; index < num_cases; ++index) {
    const Case c = random_case(index, rng, scaled(3000000, 400000), /*unit_scale=*/false);
    const Comparison result = check<Isa>(c, /*allow_logit_rounding=*/true);
    worst_ratio = std::max(worst_ratio, result.worst_ratio);
    if (!result.first_failure.empty() && ++failures <= 20)
      ADD_FAILURE() << "case " << index << ": " << c.describe() << "\n  " << result.first_failure;
  }
  EXPECT_EQ(failures, 0) << failures << " of " << num_cases << " cases failed (first 20 shown above)";
  std::printf("[ %s ] %d random cases with far rows: worst error / tolerance %.3g\n", Isa::name, num_cases,
              worst_ratio);
}

// ---- specific situations

ALIBI_ISA_TEST(DecodeOneQueryAgainstALongCache) {
  std::mt19937 rng(7);
  int cases = 0;
  for (std::int64_t kv_len : {std::int64_t{1000}, std::int64_t{scaled(8192, 2048)}}) {
    Case c = make_case(1, 1, kv_len, 16, 4, 64);
    c.fill(rng);
    for (std::int64_t q_pos0 : {std::int64_t{-1}, std::int64_t{0}, std::int64_t{777}, kv_len + 10}) {
      for (alibi::Mask mask : {alibi::Mask::causal, alibi::Mask::bidirectional}) {
        for (std::int64_t window : {std::int64_t{0}, std::int64_t{256}}) {
          c.options.q_pos0 = q_pos0;
          c.options.mask = mask;
          c.options.window = window;
          const Comparison result = check<Isa>(c);
          EXPECT_MATCHES_REFERENCE(result, c);
          ++cases;
        }
      }
    }
  }
  EXPECT_EQ(cases, 32);
}

// A unit holds about Tuning::kTargetRows (144) rows, so a decode of many kv heads, or of several query rows
// per kv head, spreads its kv heads over several units, the last with fewer heads than the others (BLOOM's
// 112 heads with 2 or 4 query rows: units of 72 or 36 heads). Streaming units keep per-unit lane state; each
// must match the reference whether it runs after a wider unit on the same thread (1 thread) or not.
ALIBI_ISA_TEST(DecodesOverSeveralUnitsOfKvHeads) {
  struct Shape {
    std::int64_t q_len, kv_len;
    int heads, kv_heads, head_dim;
    std::int64_t window;
  };
  const Shape shapes[] = {
      {4, 200, 112, 112, 16, 0},  // 4 rows per kv head: 36 + 36 + 36 + 4 heads
      {2, 130, 112, 112, 8, 0},   // 2 rows: 72 + 40
      {15, 63, 16, 16, 16, 63},   // 15 rows: 10 + 6
      {3, 300, 96, 32, 17, 0},    // 9 rows: 16 + 16
      {2, 257, 160, 40, 1, 0},    // 8 rows: 18 + 18 + 4
  };
  std::mt19937 rng(2020);
  int cases = 0;
  for (const Shape& s : shapes) {
    Case c = make_case(1, s.q_len, s.kv_len, s.heads, s.kv_heads, s.head_dim);
    c.fill(rng);
    c.options.window = s.window;
    for (int threads : {1, 2}) {
      c.options.num_threads = threads;
      const Comparison result = check<Isa>(c);
      EXPECT_MATCHES_REFERENCE(result, c);
      ++cases;
    }
  }
  EXPECT_EQ(cases, 10);
}

ALIBI_ISA_TEST(QueriesAtNegativePositions) {
  // q_len > kv_len with the default q_pos0: the first rows sit before key 0. Causal: they see nothing
  // (zeros). Bidirectional: the contract's visibility |p - j| < window (or always) still holds.
  std::mt19937 rng(11);
  for (alibi::Mask mask : {alibi::Mask::causal, alibi::Mask::bidirectional}) {
    for (std::int64_t window : {std::int64_t{0}, std::int64_t{4}}) {
      Case c = make_case(2, 20, 5, 4, 2, 16);
      c.options.mask = mask;
      c.options.window = window;
      c.fill(rng);
      const std::vector<float> out = run<Isa>(c);
      const Comparison result = compare_to_reference(out.data(), reference_of(c), c.shape, max_abs(c.v), false);
      EXPECT_MATCHES_REFERENCE(result, c);
      if (mask == alibi::Mask::causal) {  // rows 0..14 are at positions -15..-1: exact zeros
        for (std::int64_t b = 0; b < 2; ++b)
          for (std::int64_t n = 0; n < 15 * 4 * 16; ++n)
            ASSERT_EQ(out[static_cast<std::size_t>(b * 20 * 64 + n)], 0.0f);
      }
    }
  }
}

ALIBI_ISA_TEST(RowsThatSeeNoKeyAreExactZeros) {
  std::mt19937 rng(12);
  struct Situation {
    alibi::Mask mask;
    std::int64_t window, q_pos0;
  } situations[] = {
      {alibi::Mask::causal, 5, 200},         // every key is more than window behind
      {alibi::Mask::bidirectional, 5, 200},  // likewise on both sides
      {alibi::Mask::bidirectional, 3, 0},    // rows near 0 see keys, the rest do not (kv_len 3)
  };
  for (const Situation& s : situations) {
    Case c = make_case(1, 9, 3, 3, 3, 7);
    c.options.mask = s.mask;
    c.options.window = s.window;
    c.options.q_pos0 = s.q_pos0;
    c.fill(rng);
    const std::vector<float> out = run<Isa>(c);
    const ReferenceOutput ref = reference_of(c);
    for (std::size_t n = 0; n < out.size(); ++n) {
      ASSERT_FALSE(std::isnan(out[n])) << c.describe() << " element " << n;
      if (ref.out[n] == 0.0) {
        ASSERT_EQ(out[n], 0.0f) << c.describe() << " element " << n;
      }
    }
    const Comparison result = compare_to_reference(out.data(), ref, c.shape, max_abs(c.v), false);
    EXPECT_MATCHES_REFERENCE(result, c);
  }
}

ALIBI_ISA_TEST(CustomSlopesIncludingZeroAndNegative) {
  std::mt19937 rng(13);
  const std::vector<float> slope_sets[] = {
      {0.0f, -0.02f, 0.5f, -0.1f, 0.0f, 0.25f},
      {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f},  // plain softmax attention
      {-0.05f, -0.05f, -0.01f, -0.001f, -0.08f, -0.03f},
  };
  for (const std::vector<float>& slopes : slope_sets) {
    for (alibi::Mask mask : {alibi::Mask::causal, alibi::Mask::bidirectional}) {
      for (std::int64_t window : {std::int64_t{0}, std::int64_t{9}}) {
        Case c = make_case(2, 65, 129, 6, 3, 33);
        c.custom_slopes = slopes;
        c.options.mask = mask;
        c.options.window = window;
        c.fill(rng);
        const Comparison result = check<Isa>(c);
        EXPECT_MATCHES_REFERENCE(result, c);
      }
    }
  }
}

ALIBI_ISA_TEST(EachQueryHeadReadsItsGroupsKvHead) {
  // With V constant per kv head (kv head g holds g + 1 everywhere), any softmax gives back that constant,
  // so head h must output h / (num_heads / num_kv_heads) + 1: a check of the mapping needing no reference.
  std::mt19937 rng(14);
  for (int num_kv_heads : {1, 2, 3, 4, 6, 12}) {
    Case c = make_case(2, 9, 33, 12, num_kv_heads, 17);
    c.fill(rng);
    for (std::size_t n = 0; n < c.v.size(); ++n)
      c.v[n] = static_cast<float>(
          n / static_cast<std::size_t>(c.shape.head_dim) % static_cast<std::size_t>(num_kv_heads) + 1);
    const std::vector<float> out = run<Isa>(c);
    const int group = 12 / num_kv_heads;
    for (std::size_t n = 0; n < out.size(); ++n) {
      const int h = static_cast<int>(n / 17 % 12);
      ASSERT_NEAR(out[n], h / group + 1, 1e-5 * (h / group + 1)) << c.describe() << " head " << h;
    }
    const Comparison result = compare_to_reference(out.data(), reference_of(c), c.shape, max_abs(c.v), false);
    EXPECT_MATCHES_REFERENCE(result, c);
  }
}

ALIBI_ISA_TEST(ScaleZeroMeansInverseSqrtHeadDim) {
  std::mt19937 rng(15);
  for (int head_dim : {1, 7, 64, 80}) {
    Case c = make_case(1, 17, 40, 2, 1, head_dim);
    c.fill(rng, 2.0f, 2.0f);
    const std::vector<float> by_default = run<Isa>(c);
    c.options.scale = static_cast<float>(1.0 / std::sqrt(double(head_dim)));
    const Comparison explicit_scale =
        compare_to_reference(by_default.data(), reference_of(c), c.shape, max_abs(c.v), false);
    EXPECT_MATCHES_REFERENCE(explicit_scale, c);
    if (head_dim > 1) {  // and the scale matters: with 1 the output is clearly different
      c.options.scale = 1.0f;
      const std::vector<float> unscaled = run<Isa>(c);
      double difference = 0.0;
      for (std::size_t n = 0; n < unscaled.size(); ++n)
        difference = std::max(difference, std::fabs(double(unscaled[n]) - by_default[n]));
      EXPECT_GT(difference, 1e-2) << c.describe();
    }
  }
}

ALIBI_ISA_TEST(LargeInputsWithQueriesFarPastTheKeys) {
  // The contract's large-logit case: q and k scaled by 30 and queries 1e5 positions past the keys. Allowed
  // error: Note [logit rounding bound] (what fp32 rounding of the logits implies) on top of the unit tolerance.
  std::mt19937 rng(16);
  struct Shape {
    int batch;
    std::int64_t q_len, kv_len;
    int heads, kv_heads, dim;
  } shapes[] = {{1, 17, 129, 8, 2, 64}, {2, 33, 200, 4, 4, 32}, {1, 5, 513, 3, 1, 100}};
  double worst_ratio = 0.0;
  for (const Shape& s : shapes) {
    for (alibi::Mask mask : {alibi::Mask::causal, alibi::Mask::bidirectional}) {
      for (std::int64_t q_pos0 : {std::int64_t{-1}, s.kv_len + 100000}) {
        Case c = make_case(s.batch, s.q_len, s.kv_len, s.heads, s.kv_heads, s.dim);
        c.options.mask = mask;
        c.options.q_pos0 = q_pos0;
        c.fill(rng, 30.0f, 30.0f, 1.0f);
        const std::vector<float> out = run<Isa>(c);
        for (float x : out) ASSERT_TRUE(std::isfinite(x)) << c.describe();
        const Comparison result = compare_to_reference(out.data(), reference_of(c), c.shape, max_abs(c.v), true);
        EXPECT_MATCHES_REFERENCE(result, c);
        worst_ratio = std::max(worst_ratio, result.worst_ratio);
      }
    }
  }
  std::printf("[ %s ] large inputs: worst error / tolerance %.3g\n", Isa::name, worst_ratio);
}

ALIBI_ISA_TEST(LogitsOfTenThousandDoNotOverflow) {
  // Scale chosen so the largest |scale * q.k| is 1e4, and slopes of +-10 whose biases reach +-1e4 too.
  std::mt19937 rng(17);
  double worst_ratio = 0.0;
  for (bool steep_slopes : {false, true}) {
    for (alibi::Mask mask : {alibi::Mask::causal, alibi::Mask::bidirectional}) {
      Case c = make_case(1, 31, 1000, 4, 2, 32);
      c.options.mask = mask;
      c.fill(rng);
      if (steep_slopes) c.custom_slopes = {10.0f, -10.0f, 0.0f, -3.0f};
      double largest_dot = 0.0;
      const int group = 2;
      for (std::int64_t i = 0; i < c.shape.q_len; ++i)
        for (int h = 0; h < 4; ++h)
          for (std::int64_t j = 0; j < c.shape.kv_len; ++j) {
            double dot = 0.0;
            for (int d = 0; d < 32; ++d)
              dot += double(c.q[static_cast<std::size_t>((i * 4 + h) * 32 + d)]) *
                     c.k[static_cast<std::size_t>((j * 2 + h / group) * 32 + d)];
            largest_dot = std::max(largest_dot, std::fabs(dot));
          }
      c.options.scale = static_cast<float>(1e4 / largest_dot);
      const std::vector<float> out = run<Isa>(c);
      for (float x : out) ASSERT_TRUE(std::isfinite(x)) << c.describe();
      const Comparison result = compare_to_reference(out.data(), reference_of(c), c.shape, max_abs(c.v), true);
      EXPECT_MATCHES_REFERENCE(result, c);
      worst_ratio = std::max(worst_ratio, result.worst_ratio);
    }
  }
  std::printf("[ %s ] logits of 1e4: worst error / tolerance %.3g\n", Isa::name, worst_ratio);
}

ALIBI_ISA_TEST(LongContextSpotChecked) {
  const std::int64_t length = scaled(8192, 2048);
  std::mt19937 rng(18);
  {  // causal prefill, default slopes, grouped-query
    Case c = make_case(1, length, length, 4, 2, 32);
    c.fill(rng);
    expect_rows_match_reference(run<Isa>(c), c, spot_rows(length, rng));
  }
  {  // bidirectional with a window, slopes that never let distant keys fade (0 and negative), multi-query
    Case c = make_case(1, length, length, 4, 1, 16);
    c.options.mask = alibi::Mask::bidirectional;
    c.options.window = 1000;
    c.custom_slopes = {0.0f, -0.001f, 0.01f, 0.5f};
    c.fill(rng);
    expect_rows_match_reference(run<Isa>(c), c, spot_rows(length, rng));
  }
}

// Issue 4 (ALiBi block skipping): the default skip_tolerance must agree with no skipping to 1e-6 of the
// output's scale, and slopes <= 0 must never skip (bitwise equal to skip_tolerance = 0).
ALIBI_ISA_TEST(DefaultSkipToleranceMatchesNoSkipping) {
  std::mt19937 rng(24);
  const std::int64_t length = scaled(2048, 512);
  struct Situation {
    std::int64_t q_len, kv_len;
    int heads, kv_heads;
    alibi::Mask mask;
    std::int64_t window;
  } situations[] = {
      {length, length, 8, 8, alibi::Mask::causal, 0},             // prefill
      {1, 4 * length, 32, 8, alibi::Mask::causal, 0},             // decode, grouped-query
      {length / 2, length, 8, 2, alibi::Mask::bidirectional, 0},  // encoder-style
      {length, length, 8, 4, alibi::Mask::causal, length / 4},    // sliding window
  };
  for (const Situation& s : situations) {
    Case c = make_case(1, s.q_len, s.kv_len, s.heads, s.kv_heads, 64);
    c.options.mask = s.mask;
    c.options.window = s.window;
    c.fill(rng);
    const std::vector<float> skipped = run<Isa>(c);
    c.options.skip_tolerance = 0.0f;
    const std::vector<float> exact = run<Isa>(c);
    const Deviation dev = deviation(skipped, exact);
    const double scale = dev.scale, difference = dev.difference;
    EXPECT_LE(difference, 1e-6 * scale) << c.describe();
  }
}

// Block skipping drops at most skip_tolerance of a row's mass (relative to its largest term), which moves
// each output element by at most 2 * tol * max|v| (kept/dropped split of the softmax average). Checked for
// permissive tolerances, where a wrong bound would show, on random and adversarial inputs: far-away keys
// with large norms that align with the queries (the bound must not skip them).
ALIBI_ISA_TEST(SkippedMassStaysWithinTolerance) {
  std::mt19937 rng(26);
  const std::int64_t length = scaled(1024, 384);
  struct Situation {
    std::int64_t q_len, kv_len;
    int heads, kv_heads;
    alibi::Mask mask;
    bool adversarial;
  } situations[] = {
      {length, length, 8, 8, alibi::Mask::causal, false},
      {length, length, 8, 8, alibi::Mask::causal, true},
      {1, 4 * length, 16, 4, alibi::Mask::causal, true},
      {length / 2, length, 8, 2, alibi::Mask::bidirectional, true},
  };
  for (const Situation& s : situations) {
    Case c = make_case(1, s.q_len, s.kv_len, s.heads, s.kv_heads, 32);
    c.fill(rng);
    if (s.adversarial) {
      // Every 97th key copies a query direction, scaled up: a large logit far from most queries.
      const int D = c.shape.head_dim;
      for (std::int64_t j = 0; j < c.shape.kv_len; j += 97)
        for (int kvh = 0; kvh < c.shape.num_kv_heads; ++kvh)
          for (int d = 0; d < D; ++d)
            c.k[static_cast<std::size_t>((j * c.shape.num_kv_heads + kvh) * D + d)] =
                12.0f * c.q[static_cast<std::size_t>(d)];
    }
    double max_v = 0.0;
    for (float x : c.v) max_v = std::max(max_v, std::fabs(double(x)));
    c.options.skip_tolerance = 0.0f;
    const std::vector<float> exact = run<Isa>(c);
    for (float tolerance : {1e-4f, 1e-2f, 0.2f}) {
      c.options.skip_tolerance = tolerance;
      const std::vector<float> skipped = run<Isa>(c);
      const Deviation dev = deviation(skipped, exact);
      const double scale = dev.scale, difference = dev.difference;
      EXPECT_LE(difference, 2.0 * tolerance * max_v + 1e-5 * scale)
          << c.describe() << " tolerance " << tolerance << (s.adversarial ? " adversarial" : "");
    }
  }
}

// Queries and keys scaled by 30: logits spread over hundreds, so the bound rarely lets a row stop, and the
// default tolerance must still reproduce the unskipped result.
ALIBI_ISA_TEST(LargeNormsStayExactWithSkipping) {
  std::mt19937 rng(27);
  Case c = make_case(1, scaled(1024, 256), scaled(1024, 256), 8, 4, 64);
  c.fill(rng, 30.0f, 30.0f, 1.0f);
  const std::vector<float> skipped = run<Isa>(c);
  c.options.skip_tolerance = 0.0f;
  const std::vector<float> exact = run<Isa>(c);
  const Deviation dev = deviation(skipped, exact);
  const double scale = dev.scale, difference = dev.difference;
  EXPECT_LE(difference, 1e-6 * scale) << c.describe();
}

ALIBI_ISA_TEST(NonPositiveSlopesNeverSkip) {
  std::mt19937 rng(25);
  for (alibi::Mask mask : {alibi::Mask::causal, alibi::Mask::bidirectional}) {
    Case c = make_case(1, scaled(1024, 256), scaled(1024, 256), 4, 2, 32);
    c.options.mask = mask;
    c.custom_slopes = {0.0f, -0.001f, -0.5f, -0.0f};
    c.fill(rng);
    c.options.skip_tolerance = 0.5f;  // permissive: still nothing may be dropped
    const std::vector<float> permissive = run<Isa>(c);
    c.options.skip_tolerance = 0.0f;
    const std::vector<float> exact = run<Isa>(c);
    ASSERT_EQ(std::memcmp(permissive.data(), exact.data(), exact.size() * sizeof(float)), 0) << c.describe();
  }
}

// Note [decode across threads] in kernels/plan.hpp: a decode with fewer pieces of work than threads spreads
// its kv heads over more units, down to one head per unit. Its rows must keep their bits for every thread
// count and match the reference: multi-head and GQA decodes, below and past 2 x 2048 keys (split-K),
// windows, with and without skipping.
ALIBI_ISA_TEST(DecodesSpreadOverThreadsKeepTheirBits) {
  const AllCallsUseThreads threads_even_for_small_calls;
  struct Shape {
    std::int64_t q_len, kv_len;
    int heads, kv_heads, head_dim;
    std::int64_t window;
  };
  const Shape shapes[] = {{1, 600, 12, 12, 17, 0},
                          {2, 1100, 12, 4, 16, 0},
                          {1, 300, 5, 5, 80, 50},
                          {4, 4500, 10, 5, 8, 0},
                          {1, 65, 3, 3, 1, 0}};
  std::mt19937 rng(2412);
  for (const Shape& s : shapes) {
    for (float tolerance : {0.0f, alibi::AttentionOptions{}.skip_tolerance}) {
      Case c = make_case(1, s.q_len, s.kv_len, s.heads, s.kv_heads, s.head_dim);
      c.options.window = s.window;
      c.options.skip_tolerance = tolerance;
      c.fill(rng);
      c.options.num_threads = s.kv_heads;  // a unit per kv head
      const Comparison result = check<Isa>(c);
      EXPECT_MATCHES_REFERENCE(result, c);
      ASSERT_NO_FATAL_FAILURE(expect_bitwise_equal_across_threads(c, {2, 3, s.kv_heads, 16}, run<Isa>));
    }
  }
}

ALIBI_ISA_TEST(ThreadCountDoesNotChangeABit) {
  const AllCallsUseThreads threads_even_for_small_calls;
  std::mt19937 rng(19);
  for (int index = 0; index < scaled(12, 4); ++index) {
    // Several query blocks per (batch, kv head) so the threads really share the work. One draw per
    // statement: the order of evaluation of function arguments is unspecified, so draws inside one call
    // would give different cases with different compilers.
    const int head_dims[] = {1, 7, 16, 33, 64};
    const int batch = std::uniform_int_distribution<int>(1, 2)(rng);
    const int head_dim = pick(head_dims, rng);
    Case c = make_case(batch, 0, 0, 8, 2, head_dim);
    c.shape.q_len = std::uniform_int_distribution<std::int64_t>(1, 200)(rng);
    c.shape.kv_len = std::uniform_int_distribution<std::int64_t>(1, 200)(rng);
    c.shape.num_kv_heads = random_divisor(c.shape.num_heads, rng);
    c.options.mask = index % 2 ? alibi::Mask::bidirectional : alibi::Mask::causal;
    c.options.window = index % 3 == 0 ? 37 : 0;
    if (index % 4 == 1) c.custom_slopes = {0.0f, -0.01f, 0.3f, 0.1f, 0.0f, 0.02f, -0.005f, 0.7f};
    c.fill(rng);
    ASSERT_NO_FATAL_FAILURE(expect_bitwise_equal_across_threads(c, {2, 3, 0, 7}, run<Isa>));
  }
  // Decode against a cache long enough to be split across threads (split-K: fixed key chunks, merged in
  // key order), with and without a causal window, with and without skipping.
  for (int q_len : {1, 3}) {
    for (float tolerance : {0.0f, alibi::AttentionOptions{}.skip_tolerance}) {
      Case c = make_case(1, q_len, 9000, 8, 2, 16);
      c.options.skip_tolerance = tolerance;
      c.options.window = q_len == 3 ? 5000 : 0;
      c.fill(rng);
      ASSERT_NO_FATAL_FAILURE(expect_bitwise_equal_across_threads(c, {2, 3}, run<Isa>));
    }
  }
}

// Note [narrower vectors] (kernels/plan.hpp): an AVX-512 decode over at most 8 keys runs on AVX2 vectors,
// which is only sound if both widths give the same bits. They do by construction (one FMA chain per row
// and key, keys folded in key order); here the full-width AVX-512 kernel against the AVX2 one on decodes
// and short prefills over few keys, out and lse, with and without skipping and windows, and the default
// AVX-512 call (narrower where the rule says so) against both.
ALIBI_ISA_TEST(NarrowerVectorsGiveTheSameBits) {
  if constexpr (!std::is_same<Isa, alibi::isa::avx512>::value) {
    GTEST_SKIP() << "only AVX-512 moves calls to narrower vectors";
  } else {
    const auto same = [](const std::vector<float>& a, const std::vector<float>& b) {
      return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
    };
    std::mt19937 rng(23);
    const int head_dims[] = {1, 7, 16, 17, 80, 128};
    for (int index = 0; index < scaled(60, 20); ++index) {
      const int group = std::uniform_int_distribution<int>(1, 4)(rng);
      const int kv_heads = std::uniform_int_distribution<int>(1, 5)(rng);
      const int head_dim = pick(head_dims, rng);
      const std::int64_t kv_len = index % 3 == 0 ? std::uniform_int_distribution<std::int64_t>(9, 70)(rng)
                                                 : std::uniform_int_distribution<std::int64_t>(1, 8)(rng);
      const std::int64_t q_len = index % 4 == 3 ? std::uniform_int_distribution<std::int64_t>(1, kv_len)(rng)
                                                : std::uniform_int_distribution<std::int64_t>(1, 4 / group)(rng);
      Case c = make_case(index % 5 == 0 ? 2 : 1, q_len, kv_len, group * kv_heads, kv_heads, head_dim);
      if (index % 2 == 1) c.options.skip_tolerance = 0.0f;
      if (index % 7 == 2) c.options.window = 3;
      if (index % 6 == 4) c.options.mask = alibi::Mask::bidirectional;
      c.fill(rng);
      std::vector<float> lse_narrow(static_cast<std::size_t>(q_count(c.shape) / head_dim), unwritten_marker());
      std::vector<float> lse_wide = lse_narrow, lse_default = lse_narrow;
      std::vector<float> narrow, wide, by_default;
      c.options.lse = lse_narrow.data();
      narrow = run<alibi::isa::avx2>(c);
      c.options.lse = lse_default.data();
      by_default = run<Isa>(c);
      {
        const FullWidthOnly full_width;
        c.options.lse = lse_wide.data();
        wide = run<Isa>(c);
      }
      c.options.lse = nullptr;
      EXPECT_TRUE(same(wide, narrow)) << c.describe() << ": AVX-512 and AVX2 outputs differ";
      EXPECT_TRUE(same(lse_wide, lse_narrow)) << c.describe() << ": AVX-512 and AVX2 lse differ";
      EXPECT_TRUE(same(by_default, narrow) && same(lse_default, lse_narrow)) << c.describe();
    }
    // The skipping bounds computed per call: the same floats on both widths, for every key.
    for (int head_dim : {1, 17, 80, 128, 256}) {
      Case c = make_case(2, 1, 300, 6, 3, head_dim);
      c.fill(rng, 1.0f, 5.0f);
      std::vector<float> out(static_cast<std::size_t>(q_count(c.shape)));
      alibi::detail::Buffer<float> default_slopes;
      const alibi::detail::Problem pr = alibi::detail::validate_attention(
          c.q.data(), c.k.data(), c.v.data(), out.data(), c.shape, c.call_options(), default_slopes);
      const alibi::kernels::KeyNormBounds<Isa> wide_bounds(pr, c.k.data());
      const alibi::kernels::KeyNormBounds<alibi::isa::avx2> narrow_bounds(pr, c.k.data());
      int differing = 0;
      for (std::int64_t bk = 0; bk < c.shape.batch * c.shape.num_kv_heads; ++bk)
        for (std::int64_t j = 0; j < c.shape.kv_len; ++j) {
          const float a = wide_bounds.key(bk, j), b = narrow_bounds.key(bk, j);
          differing += std::memcmp(&a, &b, sizeof a) != 0;
        }
      EXPECT_EQ(differing, 0) << "head_dim " << head_dim << ": key-norm bounds differ between AVX-512 and AVX2";
    }
    // Beyond the rule's calls the widths agree too: long decodes (split-K) and prefills, with skipping
    // (per-call key-norm bounds, or the caller's alibi::key_norms) and without, keys spread wide enough
    // that skipping really drops blocks.
    const std::int64_t lengths[] = {200, 4500};
    for (std::int64_t kv_len : lengths) {
      for (int skipping : {0, 1, 2}) {  // off, per-call bounds, cached key norms
        Case c = make_case(1, kv_len > 1000 ? 2 : 37, kv_len, 12, 3, 17);
        if (skipping == 0) c.options.skip_tolerance = 0.0f;
        c.fill(rng, 1.0f, 3.0f);
        std::vector<float> norms(static_cast<std::size_t>(kv_len * 3));
        alibi::key_norms(c.k.data(), c.shape, norms.data());
        if (skipping == 2) c.options.key_norms = norms.data();
        const std::vector<float> on_avx2 = run<alibi::isa::avx2>(c), on_avx512 = run<Isa>(c);
        EXPECT_TRUE(same(on_avx512, on_avx2)) << c.describe() << ": AVX-512 and AVX2 outputs differ";
      }
    }
  }
}

// Issue 10, defect 1: a NaN or inf in one key or value row reaches exactly the rows that see that key; every
// other row comes out bitwise as in the run without it (the Q.K overflow check, the P.V tiles and the
// skipping bounds all look only at keys a row sees). Keys of batch 0, kv head 1.
template <class Isa>
void expect_non_finite_reaches_only_its_rows(const Case& clean, std::int64_t bad_key, int bad_element) {
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  const std::vector<float> reference = run<Isa>(clean);
  const int D = clean.shape.head_dim;
  const int bad_kv_head = 1;
  for (int tensor = 0; tensor < 2; ++tensor) {  // k, then v
    for (float bad : {nan, inf, -inf}) {
      Case c = clean;
      std::vector<float>& x = tensor == 0 ? c.k : c.v;
      x[static_cast<std::size_t>((bad_key * c.shape.num_kv_heads + bad_kv_head) * D + bad_element)] = bad;
      const NonFiniteSpread spread = non_finite_spread(c, bad_key, bad_kv_head, run<Isa>(c), reference);
      EXPECT_EQ(spread.changed_without_seeing, 0)
          << c.describe() << " skip_tolerance=" << c.options.skip_tolerance << ": " << (tensor == 0 ? "k" : "v")
          << " = " << bad << " at key " << bad_key << " changed " << spread.changed_without_seeing
          << " rows that do not see it (" << spread.seeing << " rows see it)";
    }
  }
}

ALIBI_ISA_TEST(NonFiniteKeyOrValueReachesOnlyRowsThatSeeIt) {
  std::mt19937 rng(28);
  struct Situation {
    alibi::Mask mask;
    std::int64_t window;
  } situations[] = {{alibi::Mask::causal, 0},
                    {alibi::Mask::causal, 9},
                    {alibi::Mask::bidirectional, 0},
                    {alibi::Mask::bidirectional, 9}};
  for (const Situation& s : situations) {
    // Default skipping, none, and permissive skipping (whose dropped mass shows in the output bits).
    for (float tolerance : {alibi::AttentionOptions{}.skip_tolerance, 0.0f, 1e-2f}) {
      // c with this situation's mask, the given window, one thread and this tolerance, filled from rng.
      auto filled = [&](Case c, std::int64_t window) {
        c.options.mask = s.mask;
        c.options.window = window;
        c.options.num_threads = 1;
        c.options.skip_tolerance = tolerance;
        c.fill(rng);
        return c;
      };
      // The case: one key block.
      ASSERT_NO_FATAL_FAILURE(
          expect_non_finite_reaches_only_its_rows<Isa>(filled(make_case(2, 37, 53, 4, 2, 24), s.window), 39, 3));
      {  // long enough that rows skip blocks, so the skipping bounds meet the bad key
        Case c = make_case(1, 500, 700, 4, 2, 24);
        c.custom_slopes = {0.5f, 0.25f, 0.5f, 0.125f};
        ASSERT_NO_FATAL_FAILURE(
            expect_non_finite_reaches_only_its_rows<Isa>(filled(c, s.window == 0 ? 0 : 200), 450, 5));
      }
      // Decodes on the streaming path where it allows (AVX-512: both; AVX2: the first): 3 query rows of
      // a group of 2 (6 rows per kv head, computed as 8) and 5 of a group of 3 (15, computed as 16). With
      // the window some of the rows see the bad key and some do not.
      for (const int group : {2, 3})
        ASSERT_NO_FATAL_FAILURE(expect_non_finite_reaches_only_its_rows<Isa>(
            filled(make_case(1, group == 2 ? 3 : 5, 300, 2 * group, 2, 24), s.window), 290, 7));
    }
  }
}

// Issue 10, defect 2: skipping never changes a head whose slope is <= 0, bitwise, also when the call is
// split along the keys (decode against a long cache).
ALIBI_ISA_TEST(SkippingNeverChangesHeadsWithNonPositiveSlopes) {
  std::mt19937 rng(29);
  for (alibi::Mask mask : {alibi::Mask::causal, alibi::Mask::bidirectional}) {
    for (std::int64_t window : {std::int64_t{0}, std::int64_t{3000}}) {
      Case c = make_case(2, 1, 8192, 4, 2, 64);
      c.custom_slopes = {-1.0f / 16, 0.0f, 1.0f / 8, -0.0f};
      c.options.mask = mask;
      c.options.window = window;
      c.fill(rng);
      const std::vector<float> skipped = run<Isa>(c);
      c.options.skip_tolerance = 0.0f;
      const std::vector<float> exact = run<Isa>(c);
      const std::size_t D = static_cast<std::size_t>(c.shape.head_dim);
      int changed = 0;
      for (std::size_t row = 0; row < exact.size() / D; ++row) {
        const int h = static_cast<int>(row % 4);
        if (c.custom_slopes[static_cast<std::size_t>(h)] > 0.0f) continue;
        changed += std::memcmp(skipped.data() + row * D, exact.data() + row * D, sizeof(float) * D) != 0;
      }
      EXPECT_EQ(changed, 0) << c.describe() << ": rows of heads with slope <= 0 changed by skipping";
    }
  }
}

// The in-register transpose the streaming decode reads K through (Ops::transpose): element (i, l) of the
// W x W input ends up at (l, i), every bit kept (NaN payloads, signed zeros, denormals included).
ALIBI_ISA_TEST(VectorTransposeMovesEveryElement) {
  using O = alibi::simd::Ops<Isa>;
  using vec = typename O::vec;
  constexpr int W = O::width;
  std::uint32_t in[W][W], out[W][W];
  for (int i = 0; i < W; ++i)
    for (int l = 0; l < W; ++l) in[i][l] = 0x7fc00000u + static_cast<std::uint32_t>(i * W + l);  // quiet NaNs
  if constexpr (W > 1) {
    in[0][1] = 0x80000000u;  // -0
    in[1][0] = 0x00000001u;  // the smallest denormal
  }
  vec x[W];
  for (int i = 0; i < W; ++i) {
    float row[W];
    std::memcpy(row, in[i], sizeof row);
    x[i] = O::load(row);
  }
  O::transpose(x);
  for (int i = 0; i < W; ++i) {
    float row[W];
    O::store(row, x[i]);
    std::memcpy(out[i], row, sizeof row);
  }
  for (int i = 0; i < W; ++i)
    for (int l = 0; l < W; ++l) EXPECT_EQ(out[i][l], in[l][i]) << "element (" << i << ", " << l << ")";
}

// The transposed 16-bit loads the streaming decode reads 16-bit K through (Ops::load_transposed_bf16/f16):
// value i of row l ends up in lane l of x[i], widened exactly (against the formats' definitions, sharing no
// code with the library), from rows that lie anywhere (each its own allocation of exactly W values, so an
// ASan build flags any read past a row).
template <class Isa, bool Bf16>
void check_transposed_16bit_loads() {
  using O = alibi::simd::Ops<Isa>;
  using vec = typename O::vec;
  constexpr int W = O::width;
  std::mt19937 rng(Bf16 ? 11 : 12);
  for (int trial = 0; trial < 64; ++trial) {
    std::vector<std::vector<std::uint16_t>> rows(W, std::vector<std::uint16_t>(W));
    for (auto& row : rows)
      for (auto& value : row) value = static_cast<std::uint16_t>(rng());  // every kind: NaN, inf, subnormal
    if (trial == 0) {
      rows[0][0] = 0x8000;          // -0
      rows[W - 1][W - 1] = 0x0001;  // the smallest subnormal (binary16) / denormal (bfloat16)
    }
    vec x[W];
    const auto row_at = [&rows](int l) { return rows[static_cast<std::size_t>(l)].data(); };
    if constexpr (Bf16)
      O::load_transposed_bf16(row_at, x);
    else
      O::load_transposed_f16(row_at, x);
    for (int i = 0; i < W; ++i) {
      float lanes[W];
      O::store(lanes, x[i]);
      for (int l = 0; l < W; ++l) {
        const std::uint16_t bits = rows[static_cast<std::size_t>(l)][static_cast<std::size_t>(i)];
        const double expected = Bf16 ? decode_bf16(bits) : decode_f16(bits);
        const bool sign = (bits & 0x8000) != 0;
        if (std::isnan(expected)) {
          EXPECT_TRUE(std::isnan(lanes[l])) << "value " << i << " of row " << l;
        } else {
          EXPECT_EQ(static_cast<double>(lanes[l]), expected) << "value " << i << " of row " << l;
        }
        EXPECT_EQ(std::signbit(lanes[l]), sign) << "value " << i << " of row " << l;
      }
    }
  }
}
ALIBI_ISA_TEST(VectorTransposedSixteenBitLoadsWidenEveryValue) {
  check_transposed_16bit_loads<Isa, true>();
  check_transposed_16bit_loads<Isa, false>();
}

// The lane interleave page pairs (Note [page pairs] in kernels/unit_worker.hpp) put S back into key order
// with: lanes of a and b alternately, the first W of them in lo and the rest in hi, every bit kept.
ALIBI_ISA_TEST(VectorInterleaveAlternatesLanes) {
  using O = alibi::simd::Ops<Isa>;
  constexpr int W = O::width;
  std::uint32_t a_bits[W], b_bits[W], lo_bits[W], hi_bits[W];
  for (int l = 0; l < W; ++l) {
    a_bits[l] = 0x7fc00000u + static_cast<std::uint32_t>(l);  // quiet NaNs with distinct payloads
    b_bits[l] = 0x7fc00000u + static_cast<std::uint32_t>(W + l);
  }
  a_bits[0] = 0x80000000u;  // -0
  b_bits[0] = 0x00000001u;  // the smallest denormal
  float a[W], b[W], lo[W], hi[W];
  std::memcpy(a, a_bits, sizeof a);
  std::memcpy(b, b_bits, sizeof b);
  typename O::vec lo_vec, hi_vec;
  O::interleave(O::load(a), O::load(b), lo_vec, hi_vec);
  O::store(lo, lo_vec);
  O::store(hi, hi_vec);
  std::memcpy(lo_bits, lo, sizeof lo);
  std::memcpy(hi_bits, hi, sizeof hi);
  for (int i = 0; i < 2 * W; ++i) {
    const std::uint32_t expected = i % 2 == 0 ? a_bits[i / 2] : b_bits[i / 2];
    EXPECT_EQ(i < W ? lo_bits[i] : hi_bits[i - W], expected) << "interleaved lane " << i;
  }
}

// Note [scalar fma] in isa/scalar.hpp: Ops::fma rounds once wherever the target has an FMA instruction
// (always on AVX2 and AVX-512), also where the same product is used on its own next to it, which is where a
// compiler fusing a * b + c by itself leaves it unfused. (1 + 2^-12)^2 - (1 + 2^-11) is 2^-24 exactly; the
// product rounded first (to nearest even) gives 0.
ALIBI_ISA_TEST(VectorFmaRoundsOnceInEveryContext) {
  using O = alibi::simd::Ops<Isa>;
  constexpr int W = O::width;
  volatile float factor = 1.0f + std::ldexp(1.0f, -12), addend = -(1.0f + std::ldexp(1.0f, -11));
  float a[W], c[W], product[W], fused[W];
  for (int l = 0; l < W; ++l) {
    a[l] = factor;
    c[l] = addend;
  }
  const auto x = O::load(a);
  O::store(product, O::mul(x, x));
  O::store(fused, O::fma(x, x, O::load(c)));
  const float expected = O::fused_fma ? std::ldexp(1.0f, -24) : 0.0f;
  for (int l = 0; l < W; ++l) {
    EXPECT_EQ(product[l], 1.0f + std::ldexp(1.0f, -11)) << "lane " << l;
    EXPECT_EQ(fused[l], expected) << "lane " << l << (O::fused_fma ? ": not fused" : ": fused");
  }
}

// Note [batch invariance], bidirectional mask: every row sees all keys (or its window) whatever rows share
// its call, so a row's out and lse must not depend on them. The query rows of one bidirectional prefill
// computed piece by piece (calls with q_pos0 = the piece's first row over the same keys, a piece of 1 row on
// the streaming path where the group allows it) give the bytes of the one-call prefill, with skip_tolerance 0
// and default, with fp32 and bfloat16 K/V, on 1, 2 and 3 threads.
ALIBI_ISA_TEST(BidirectionalRowsAreBatchInvariant) {
  struct Piecewise {
    int heads, kv_heads, head_dim;
    std::int64_t length, window;
    std::vector<std::int64_t> pieces;  // cycled until the rows are covered
  };
  const std::vector<Piecewise> cases = {
      {4, 4, 17, 300, 0, {1, 7, 64, 33}},   {8, 2, 80, 520, 0, {7, 1, 64, 129, 2}}, {6, 3, 1, 200, 37, {64, 1, 7, 19}},
      {8, 1, 128, 260, 0, {1, 64, 7, 45}},  {12, 4, 8, 150, 20, {3, 1, 11}},        {2, 2, 16, 70, 0, {1, 2, 3, 4}},
      {2, 1, 8, 4300, 0, {2100, 1, 7, 64}},  // past 2 x 2048 keys: key chunks, split-K for the short pieces
  };
  std::mt19937 rng(4242);
  int index = 0;
  for (const Piecewise& c : cases) {
    for (float tolerance : {0.0f, alibi::AttentionOptions{}.skip_tolerance}) {
      for (bool bf16 : {false, true}) {
        Case whole = make_case(1, c.length, c.length, c.heads, c.kv_heads, c.head_dim);
        whole.fill(rng);
        whole.options.mask = alibi::Mask::bidirectional;
        whole.options.window = c.window;
        whole.options.skip_tolerance = tolerance;
        whole.options.num_threads = 1 + index % 3;
        std::vector<alibi::bfloat16> k16(whole.k.size()), v16(whole.v.size());
        if (bf16) {
          alibi::convert(whole.k.data(), k16.data(), k16.size());
          alibi::convert(whole.v.data(), v16.data(), v16.size());
        }
        const std::int64_t row_floats = std::int64_t{c.heads} * c.head_dim;
        auto call = [&](std::int64_t first, std::int64_t rows, int threads, float* out, float* lse) {
          alibi::AttentionShape shape = whole.shape;
          shape.q_len = rows;
          alibi::AttentionOptions options = whole.call_options();
          options.q_pos0 = first;
          options.num_threads = threads;
          options.lse = lse;
          const float* q = whole.q.data() + first * row_floats;
          if (bf16)
            alibi::attention<Isa>(q, k16.data(), v16.data(), out, shape, options);
          else
            alibi::attention<Isa>(q, whole.k.data(), whole.v.data(), out, shape, options);
        };
        std::vector<float> out(static_cast<std::size_t>(c.length * row_floats)),
            lse(static_cast<std::size_t>(c.length * c.heads));
        call(0, c.length, whole.options.num_threads, out.data(), lse.data());
        const float nan = std::numeric_limits<float>::quiet_NaN();
        std::vector<float> piece_out(out.size(), nan), piece_lse(lse.size(), nan);
        std::int64_t first = 0;
        for (std::size_t n = 0; first < c.length; ++n) {
          const std::int64_t rows = std::min(c.length - first, c.pieces[n % c.pieces.size()]);
          call(first, rows, 1 + (index + static_cast<int>(n)) % 3, piece_out.data() + first * row_floats,
               piece_lse.data() + first * c.heads);
          first += rows;
        }
        const std::string context = whole.describe() + (bf16 ? " bf16 K/V" : " fp32 K/V");
        std::int64_t first_bad = -1;
        for (std::int64_t i = 0; i < c.length && first_bad < 0; ++i)
          if (std::memcmp(out.data() + i * row_floats, piece_out.data() + i * row_floats,
                          sizeof(float) * static_cast<std::size_t>(row_floats)) != 0 ||
              std::memcmp(lse.data() + i * c.heads, piece_lse.data() + i * c.heads,
                          sizeof(float) * static_cast<std::size_t>(c.heads)) != 0)
            first_bad = i;
        EXPECT_EQ(first_bad, -1) << context << ": row " << first_bad << " differs when computed in pieces";
        ++index;
      }
    }
  }
}

// Note [scratch reuse] in detail/buffer.hpp: scratch freed by one call is handed to the next calls of the
// same thread. A reused block must come back initialised like a fresh one, and a call after other calls
// (other shapes, the packed and the streaming paths, NaN and inf in their inputs) must give the bits it
// gives first.
ALIBI_ISA_TEST(ScratchReusedAcrossCallsChangesNoBit) {
  using alibi::detail::Buffer;
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (std::size_t n : {std::size_t{1}, std::size_t{17}, std::size_t{1000}, std::size_t{70000}}) {
    {
      Buffer<float> dirty(n);
      for (float& x : dirty) x = nan;
    }
    const Buffer<float> fresh(n);
    std::size_t nonzero = 0;
    for (float x : fresh) nonzero += x != 0.0f;
    EXPECT_EQ(nonzero, 0u) << n << " value-initialised floats after a freed buffer of NaN";
    {
      Buffer<float> dirty(n);
      for (float& x : dirty) x = nan;
    }
    Buffer<float> assigned;
    assigned.assign(n, 2.5f);
    std::size_t wrong = 0;
    for (float x : assigned) wrong += x != 2.5f;
    EXPECT_EQ(wrong, 0u) << n << " floats assigned 2.5 after a freed buffer of NaN";
  }

  std::mt19937 rng(23);
  Case decode = make_case(1, 1, 3000, 8, 2, 80);    // the streaming decode, split-K
  Case prefill = make_case(2, 65, 257, 12, 3, 17);  // packed blocks
  Case dirty = make_case(1, 63, 500, 5, 5, 33);
  for (Case* c : {&decode, &prefill, &dirty}) c->fill(rng);
  for (std::size_t i = 0; i < dirty.k.size(); i += 7) dirty.k[i] = nan;
  for (std::size_t i = 3; i < dirty.v.size(); i += 5) dirty.v[i] = -std::numeric_limits<float>::infinity();
  const std::vector<float> decode_first = run<Isa>(decode), prefill_first = run<Isa>(prefill);
  for (int round = 0; round < 2; ++round) {
    run<Isa>(dirty);
    EXPECT_TRUE(same_bits(run<Isa>(decode), decode_first)) << decode.describe() << " after other calls";
    run<Isa>(dirty);
    EXPECT_TRUE(same_bits(run<Isa>(prefill), prefill_first)) << prefill.describe() << " after other calls";
  }
}

// The vector exp of the softmax (isa/exp.hpp): within 2 ulp of exp over the whole normal range of its
// results, exactly 0 below it (never a denormal: Note [exp flush to zero]), NaN through, exp(0) = 1, and
// saturating (finite) far above the softmax's range.
ALIBI_ISA_TEST(VectorExpIsAccurateAndFlushesToZero) {
  using O = alibi::simd::Ops<Isa>;
  constexpr int W = O::width;
  float in[W], out[W];
  const auto eval = [&] { O::store(out, alibi::simd::exp<Isa>(O::load(in))); };
  double worst_ulp = 0.0;
  float worst_x = 0.0f;
  for (float x0 = -87.33f; x0 <= 0.0f; x0 += 0.000731f * W) {
    for (int l = 0; l < W; ++l) in[l] = std::min(0.0f, x0 + 0.000731f * static_cast<float>(l));
    eval();
    for (int l = 0; l < W; ++l) {
      const double exact = std::exp(static_cast<double>(in[l]));
      const double ulp = std::ldexp(1.0, std::ilogb(static_cast<float>(exact)) - 23);
      const double err = std::fabs(static_cast<double>(out[l]) - exact) / ulp;
      if (err > worst_ulp) {
        worst_ulp = err;
        worst_x = in[l];
      }
    }
  }
  EXPECT_LE(worst_ulp, 2.0) << "at x = " << worst_x;
  const float inf = std::numeric_limits<float>::infinity();
  const float specials[] = {
      0.0f,   -0.0f, -87.3365f, -87.34f, -88.0f, -103.0f, -1e30f, -inf, std::numeric_limits<float>::quiet_NaN(),
      100.0f, 1e20f, inf};
  for (const float x : specials) {
    std::fill_n(in, W, x);
    eval();
    for (int l = 0; l < W; ++l) {
      if (std::isnan(x)) {
        EXPECT_TRUE(std::isnan(out[l]));
      } else if (x > 88.0f) {
        EXPECT_TRUE(std::isfinite(out[l])) << "x = " << x;  // saturates at e^88: never inf, never UB
        EXPECT_GT(out[l], 1e38f) << "x = " << x;
      } else if (x >= -87.3365f) {
        EXPECT_GE(out[l], std::numeric_limits<float>::min()) << "x = " << x;  // normal, not flushed
        EXPECT_NEAR(out[l], std::exp(static_cast<double>(x)), 2.5e-7 * std::exp(static_cast<double>(x))) << "x = " << x;
      } else {
        EXPECT_EQ(out[l], 0.0f) << "x = " << x;  // exact zero, not a denormal
        EXPECT_FALSE(std::signbit(out[l]));
      }
    }
  }
}

// q . k0 = -2 * 3e38 + 3 * 3e38 = 3e38 is finite and the largest logit, but the first partial sum
// (-6e38) overflows fp32 to -inf: a kernel that trusts it gives key 0 no weight and returns v1. The row
// must come out as the true softmax, ~v0 (found by the fuzzer).
ALIBI_ISA_TEST(OverflowingPartialDotProductStillGivesTheTrueSoftmax) {
  alibi::AttentionShape shape;
  shape.q_len = 1;
  shape.kv_len = 2;
  shape.num_heads = 1;
  shape.num_kv_heads = 1;
  shape.head_dim = 2;
  const float slope = 0.0f;
  alibi::AttentionOptions options;
  options.scale = 1.0f;
  options.slopes = &slope;
  options.mask = alibi::Mask::bidirectional;
  for (int hot_key : {0, 1}) {
    std::vector<float> q = {-2.0f, 3.0f}, k(4, 0.0f), v(4), out(2, -7.0f);
    k[static_cast<std::size_t>(2 * hot_key)] = 3e38f;
    k[static_cast<std::size_t>(2 * hot_key + 1)] = 3e38f;
    for (int j = 0; j < 2; ++j) {
      v[static_cast<std::size_t>(2 * j)] = j == hot_key ? 1.0f : -1.0f;
      v[static_cast<std::size_t>(2 * j + 1)] = j == hot_key ? 2.0f : -2.0f;
    }
    alibi::attention<Isa>(q.data(), k.data(), v.data(), out.data(), shape, options);
    EXPECT_NEAR(out[0], 1.0f, 1e-6f) << "hot key " << hot_key;
    EXPECT_NEAR(out[1], 2.0f, 1e-6f) << "hot key " << hot_key;
  }
}

ALIBI_ISA_TEST(UnalignedPointers) {
  // Every tensor starts one float past an aligned allocation.
  std::mt19937 rng(20);
  for (int head_dim : {7, 16, 33, 64}) {
    Case c = make_case(2, 19, 45, 4, 2, head_dim);
    c.options.mask = head_dim % 2 ? alibi::Mask::causal : alibi::Mask::bidirectional;
    c.fill(rng);
    auto shifted = [](const std::vector<float>& x) {
      std::vector<float> y(x.size() + 1, 0.0f);
      std::copy(x.begin(), x.end(), y.begin() + 1);
      return y;
    };
    const std::vector<float> q = shifted(c.q), k = shifted(c.k), v = shifted(c.v);
    std::vector<float> out(c.q.size() + 1, unwritten_marker());
    alibi::attention<Isa>(q.data() + 1, k.data() + 1, v.data() + 1, out.data() + 1, c.shape, c.call_options());
    EXPECT_TRUE(std::isnan(out[0])) << "wrote before out";
    const Comparison result = compare_to_reference(out.data() + 1, reference_of(c), c.shape, max_abs(c.v), false);
    EXPECT_MATCHES_REFERENCE(result, c);
  }
}

ALIBI_ISA_TEST(OutputMayAdjoinTheInputs) {
  // out directly after q and directly before k in one buffer: adjacent is not overlapping.
  std::mt19937 rng(21);
  Case c = make_case(1, 8, 8, 2, 2, 8);
  c.fill(rng);
  const std::size_t n = c.q.size();  // q, out, k and v all hold 128 floats here
  std::vector<float> buffer(4 * n, unwritten_marker());
  std::copy(c.q.begin(), c.q.end(), buffer.begin());
  std::copy(c.k.begin(), c.k.end(), buffer.begin() + static_cast<std::ptrdiff_t>(2 * n));
  std::copy(c.v.begin(), c.v.end(), buffer.begin() + static_cast<std::ptrdiff_t>(3 * n));
  ASSERT_NO_THROW(alibi::attention<Isa>(buffer.data(), buffer.data() + 2 * n, buffer.data() + 3 * n, buffer.data() + n,
                                        c.shape, c.call_options()));
  const Comparison result = compare_to_reference(buffer.data() + n, reference_of(c), c.shape, max_abs(c.v), false);
  EXPECT_MATCHES_REFERENCE(result, c);
}

ALIBI_ISA_TEST(ZeroSizedWork) {
  std::mt19937 rng(22);
  const std::vector<float> some(4096, 1.0f);
  for (alibi::Mask mask : {alibi::Mask::causal, alibi::Mask::bidirectional}) {
    alibi::AttentionOptions options;
    options.mask = mask;
    // batch 0 or q_len 0: nothing to compute; the empty tensors may be null and a given out is not touched.
    EXPECT_NO_THROW(
        alibi::attention<Isa>(nullptr, nullptr, nullptr, nullptr, make_case(0, 5, 7, 4, 2, 8).shape, options));
    EXPECT_NO_THROW(
        alibi::attention<Isa>(nullptr, some.data(), some.data(), nullptr, make_case(2, 0, 7, 4, 2, 8).shape, options));
    for (const Case& c : {make_case(0, 5, 7, 4, 2, 8), make_case(2, 0, 7, 4, 2, 8), make_case(0, 0, 0, 1, 1, 1)}) {
      std::vector<float> out(64, 42.0f);
      const std::vector<float> before = out;
      EXPECT_NO_THROW(alibi::attention<Isa>(some.data(), some.data(), some.data(), out.data(), c.shape, options));
      EXPECT_EQ(out, before) << c.describe();
    }
    // kv_len 0 with queries: every row sees nothing, so zeros; k and v may be null.
    for (std::int64_t q_pos0 : {std::int64_t{-1}, std::int64_t{0}, std::int64_t{5}}) {
      Case c = make_case(2, 6, 0, 4, 2, 9);
      c.options.mask = mask;
      c.options.q_pos0 = q_pos0;
      c.fill(rng);
      std::vector<float> out(c.q.size(), unwritten_marker());
      ASSERT_NO_THROW(alibi::attention<Isa>(c.q.data(), nullptr, nullptr, out.data(), c.shape, c.call_options()));
      for (float x : out) ASSERT_EQ(x, 0.0f) << c.describe();
    }
  }
}

ALIBI_ISA_TEST(RejectsBadArgumentsWithoutWriting) {
  const Case base = [] {
    Case c = make_case(2, 5, 7, 4, 2, 8);
    std::mt19937 rng(23);
    c.fill(rng);
    return c;
  }();
  std::vector<float> out(base.q.size(), 12345.0f);
  auto with_shape = [&](auto edit, const char* parameter, const std::string& what) {
    alibi::AttentionShape shape = base.shape;
    edit(shape);
    expect_rejected([&] { alibi::attention<Isa>(base.q.data(), base.k.data(), base.v.data(), out.data(), shape); },
                    parameter, out, what);
  };
  auto with_options = [&](auto edit, const char* parameter, const std::string& what) {
    alibi::AttentionOptions options;
    edit(options);
    expect_rejected(
        [&] { alibi::attention<Isa>(base.q.data(), base.k.data(), base.v.data(), out.data(), base.shape, options); },
        parameter, out, what);
  };
  using Shape = alibi::AttentionShape;
  using Options = alibi::AttentionOptions;
  const std::int64_t int64_min = std::numeric_limits<std::int64_t>::min();
  with_shape([](Shape& s) { s.batch = -1; }, "batch", "batch -1");
  with_shape([](Shape& s) { s.q_len = -1; }, "q_len", "q_len -1");
  with_shape([&](Shape& s) { s.q_len = int64_min; }, "q_len", "q_len INT64_MIN");
  with_shape([](Shape& s) { s.kv_len = -1; }, "kv_len", "kv_len -1");
  with_shape([](Shape& s) { s.num_heads = 0; }, "num_heads", "num_heads 0");
  with_shape([](Shape& s) { s.num_heads = -4; }, "num_heads", "num_heads -4");
  with_shape([](Shape& s) { s.num_kv_heads = 0; }, "num_kv_heads", "num_kv_heads 0");
  with_shape([](Shape& s) { s.num_kv_heads = -2; }, "num_kv_heads", "num_kv_heads -2");
  with_shape([](Shape& s) { s.num_kv_heads = 3; }, "num_kv_heads", "num_kv_heads 3 of 4 heads");
  with_shape([](Shape& s) { s.num_kv_heads = 8; }, "num_kv_heads", "num_kv_heads 8 of 4 heads");
  with_shape([](Shape& s) { s.head_dim = 0; }, "head_dim", "head_dim 0");
  with_shape([](Shape& s) { s.head_dim = -8; }, "head_dim", "head_dim -8");
  with_shape([](Shape& s) { s.q_len = std::int64_t{1} << 61; }, "q_len", "q_len whose tensor size overflows");
  with_shape([](Shape& s) { s.kv_len = std::int64_t{1} << 61; }, "kv_len", "kv_len whose tensor size overflows");

  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  with_options([](Options& o) { o.window = -1; }, "window", "window -1");
  with_options([&](Options& o) { o.window = int64_min; }, "window", "window INT64_MIN");
  with_options([](Options& o) { o.q_pos0 = -2; }, "q_pos0", "q_pos0 -2");
  with_options([&](Options& o) { o.q_pos0 = int64_min; }, "q_pos0", "q_pos0 INT64_MIN");
  with_options([](Options& o) { o.q_pos0 = std::numeric_limits<std::int64_t>::max(); }, "q_pos0",
               "q_pos0 whose last row overflows");
  for (float scale : {nan, inf, -inf})
    with_options([&](Options& o) { o.scale = scale; }, "scale", "scale " + std::to_string(scale));
  with_options([](Options& o) { o.num_threads = -1; }, "num_threads", "num_threads -1");
  with_options([](Options& o) { o.mask = static_cast<alibi::Mask>(7); }, "mask", "mask out of range");
  for (float tolerance : {-1.0f, nan, inf})
    with_options([&](Options& o) { o.skip_tolerance = tolerance; }, "skip_tolerance",
                 "skip_tolerance " + std::to_string(tolerance));
  for (int bad_head : {0, 3}) {
    for (float bad : {nan, inf, -inf}) {
      std::vector<float> slopes = {0.5f, 0.25f, 0.125f, 0.0625f};
      slopes[static_cast<std::size_t>(bad_head)] = bad;
      with_options([&](Options& o) { o.slopes = slopes.data(); }, "slopes",
                   "slopes[" + std::to_string(bad_head) + "] = " + std::to_string(bad));
    }
  }

  // Null tensors that are not empty.
  const Options defaults;
  expect_rejected([&] { alibi::attention<Isa>(nullptr, base.k.data(), base.v.data(), out.data(), base.shape); }, "q",
                  out, "null q");
  expect_rejected([&] { alibi::attention<Isa>(base.q.data(), nullptr, base.v.data(), out.data(), base.shape); }, "k",
                  out, "null k");
  expect_rejected([&] { alibi::attention<Isa>(base.q.data(), base.k.data(), nullptr, out.data(), base.shape); }, "v",
                  out, "null v");
  expect_rejected([&] { alibi::attention<Isa>(base.q.data(), base.k.data(), base.v.data(), nullptr, base.shape); },
                  "out", out, "null out");

  // out overlapping an input: the shared memory keeps its bytes.
  const std::size_t nq = base.q.size(), nkv = base.k.size();  // 320 and 224 floats
  {
    std::vector<float> shared(base.q);
    shared.resize(2 * nq, 7.0f);
    float* q = shared.data();
    expect_rejected([&] { alibi::attention<Isa>(q, base.k.data(), base.v.data(), q, base.shape, defaults); }, "out",
                    shared, "out == q");
    expect_rejected([&] { alibi::attention<Isa>(q, base.k.data(), base.v.data(), q + 100, base.shape, defaults); },
                    "out", shared, "out inside q");
    expect_rejected([&] { alibi::attention<Isa>(q, base.k.data(), base.v.data(), q + nq - 1, base.shape, defaults); },
                    "out", shared, "out sharing q's last float");
    expect_rejected([&] { alibi::attention<Isa>(q + nq - 1, base.k.data(), base.v.data(), q, base.shape, defaults); },
                    "out", shared, "q starting on out's last float");
  }
  for (int tensor = 0; tensor < 2; ++tensor) {  // k, then v
    std::vector<float> shared(base.k);
    shared.resize(nkv + nq, 7.0f);
    float* kv = shared.data();
    const float* k = tensor == 0 ? kv : base.k.data();
    const float* v = tensor == 1 ? kv : base.v.data();
    const std::string name = tensor == 0 ? "k" : "v";
    expect_rejected([&] { alibi::attention<Isa>(base.q.data(), k, v, kv, base.shape, defaults); }, "out", shared,
                    "out == " + name);
    expect_rejected([&] { alibi::attention<Isa>(base.q.data(), k, v, kv + nkv - 1, base.shape, defaults); }, "out",
                    shared, "out sharing " + name + "'s last float");
  }
}

// The whole message of a few rejections, written out by hand: validation formats its values only when a
// check fails (Note [validation messages]), so a format that lost a value or took the wrong one shows here.
ALIBI_ISA_TEST(ErrorMessagesShowTheOffendingValues) {
  Case c = make_case(1, 3, 4, 6, 3, 8);
  std::mt19937 rng(29);
  c.fill(rng);
  std::vector<float> out(c.q.size());
  auto message_of = [&](auto call) -> std::string {
    try {
      call();
    } catch (const std::invalid_argument& e) {
      return e.what();
    }
    return "(no exception)";
  };
  alibi::AttentionShape shape = c.shape;
  shape.head_dim = -3;
  EXPECT_EQ(message_of([&] { alibi::attention<Isa>(c.q.data(), c.k.data(), c.v.data(), out.data(), shape); }),
            "alibi::attention: head_dim must be >= 1, got -3");
  shape = c.shape;
  shape.num_kv_heads = 4;
  EXPECT_EQ(message_of([&] { alibi::attention<Isa>(c.q.data(), c.k.data(), c.v.data(), out.data(), shape); }),
            "alibi::attention: num_kv_heads must divide num_heads (6), got 4");
  alibi::AttentionOptions options;
  options.kv_pos0 = -9000000000;
  EXPECT_EQ(
      message_of([&] { alibi::attention<Isa>(c.q.data(), c.k.data(), c.v.data(), out.data(), c.shape, options); }),
      "alibi::attention: kv_pos0 must be >= 0, got -9000000000");
  EXPECT_EQ(message_of([&] {
              alibi::attention<Isa>(c.q.data(), c.k.data(), c.v.data(), const_cast<float*>(c.k.data()), c.shape);
            }),
            "alibi::attention: out must not overlap k");
  EXPECT_EQ(message_of([&] { alibi::slopes(8, -0.5f); }), "alibi::slopes: max_bias must be finite and > 0, got -0.5");

  // A paged cache whose block table points past its pages: the entry, its value and the bound.
  const std::int64_t q_offsets[2] = {0, 1}, kv_lens[1] = {5};
  alibi::SeqBatch batch;
  batch.num_seqs = 1;
  batch.q_offsets = q_offsets;
  batch.kv_lens = kv_lens;
  batch.num_heads = 6;
  batch.num_kv_heads = 3;
  batch.head_dim = 8;
  const std::vector<float> pages(static_cast<std::size_t>(2 * 4 * 3 * 8), 0.5f);
  const std::int32_t table[2] = {1, 7};
  alibi::PagedKV<float> cache;
  cache.k_pages = pages.data();
  cache.v_pages = pages.data();
  cache.num_pages = 2;
  cache.page_size = 4;
  cache.block_table = table;
  cache.max_pages_per_seq = 2;
  EXPECT_EQ(message_of([&] { alibi::attention_paged<Isa>(c.q.data(), cache, out.data(), batch); }),
            "alibi::attention_paged: block_table entry [0][1] = 7 is outside [0, num_pages = 2)");
}

// ---- the table test_main.cpp registers (Note [no AVX-512 before the CPU check])

#define ALIBI_ATTENTION_TESTS(X)                          \
  X(RandomShapesMatchTheReference)                        \
  X(RandomShapesWithFarRows)                              \
  X(DecodeOneQueryAgainstALongCache)                      \
  X(DecodesOverSeveralUnitsOfKvHeads)                     \
  X(QueriesAtNegativePositions)                           \
  X(RowsThatSeeNoKeyAreExactZeros)                        \
  X(CustomSlopesIncludingZeroAndNegative)                 \
  X(EachQueryHeadReadsItsGroupsKvHead)                    \
  X(ScaleZeroMeansInverseSqrtHeadDim)                     \
  X(LargeInputsWithQueriesFarPastTheKeys)                 \
  X(LogitsOfTenThousandDoNotOverflow)                     \
  X(LongContextSpotChecked)                               \
  X(DefaultSkipToleranceMatchesNoSkipping)                \
  X(SkippedMassStaysWithinTolerance)                      \
  X(LargeNormsStayExactWithSkipping)                      \
  X(NonPositiveSlopesNeverSkip)                           \
  X(DecodesSpreadOverThreadsKeepTheirBits)                \
  X(ThreadCountDoesNotChangeABit)                         \
  X(NarrowerVectorsGiveTheSameBits)                       \
  X(NonFiniteKeyOrValueReachesOnlyRowsThatSeeIt)          \
  X(SkippingNeverChangesHeadsWithNonPositiveSlopes)       \
  X(VectorExpIsAccurateAndFlushesToZero)                  \
  X(VectorTransposeMovesEveryElement)                     \
  X(VectorTransposedSixteenBitLoadsWidenEveryValue)       \
  X(VectorInterleaveAlternatesLanes)                      \
  X(VectorFmaRoundsOnceInEveryContext)                    \
  X(BidirectionalRowsAreBatchInvariant)                   \
  X(ScratchReusedAcrossCallsChangesNoBit)                 \
  X(OverflowingPartialDotProductStillGivesTheTrueSoftmax) \
  X(UnalignedPointers)                                    \
  X(OutputMayAdjoinTheInputs)                             \
  X(ZeroSizedWork)                                        \
  X(RejectsBadArgumentsWithoutWriting)                    \
  X(ErrorMessagesShowTheOffendingValues)

ALIBI_ISA_TEST_ENTRIES("AttentionTest", ALIBI_ATTENTION_TESTS);

}  // namespace

const TestTable kAttentionTests = {kEntries.data(), kEntries.size()};

}  // namespace alibi_test
