// Defined behaviour on bad values (issue 5, items 4 and 5; attention.hpp, Note [non-finite rows]):
//   - a NaN or inf in a query row changes only that row's output;
//   - a NaN or inf in a key or value row changes only the rows that see it (mask, window, kv head), and a
//     NaN reaches every row that sees it when no block is skipped;
//   - finite inputs give finite outputs that match the float64 reference, even when logits leave the
//     float range; subnormals and -0.0 are ordinary values;
//   - tensors misaligned by one, two or three floats give the same bits as aligned ones, on every kernel.
#include <gtest/gtest.h>

#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <string>
#include <vector>

#include "support.hpp"

namespace alibi_reliability {
namespace {

class BadValues : public KernelTest {};
ALIBI_INSTANTIATE_FOR_KERNELS(BadValues);

const float kNaN = std::numeric_limits<float>::quiet_NaN();
const float kInf = std::numeric_limits<float>::infinity();

struct Scenario {
  const char* name;
  ShapeSpec shape;
};

std::vector<Scenario> scenarios() {
  std::vector<Scenario> list;
  ShapeSpec s;
  s.batch = 2, s.q_len = 23, s.kv_len = 29, s.num_heads = s.num_kv_heads = 2, s.head_dim = 9;
  list.push_back({"causal", s});
  s.window = 4;
  list.push_back({"causal_window", s});
  s.mask = Mask::bidirectional, s.window = 0;
  list.push_back({"bidirectional", s});
  s.window = 3;
  list.push_back({"bidirectional_window", s});
  s = {};
  s.batch = 2, s.q_len = 23, s.kv_len = 29, s.num_heads = 6, s.num_kv_heads = 2, s.head_dim = 9;
  list.push_back({"grouped_query", s});
  s.q_len = 35;  // more queries than keys: the first 6 rows see nothing
  list.push_back({"grouped_query_more_queries_than_keys", s});
  s = {};
  s.batch = 1, s.q_len = 3, s.kv_len = 70, s.num_heads = 4, s.num_kv_heads = 1, s.head_dim = 17;
  list.push_back({"multi_query_decode", s});
  return list;
}

enum Tensor { kQ, kK, kV };
const char* tensor_name(Tensor t) {
  return t == kQ ? "q" : t == kK ? "k" : "v";
}

struct Element {
  std::int64_t b, row;  // row: query row i (q) or key row j (k, v)
  int head;             // query head (q) or kv head (k, v)
  int d;
};

// The elements to poison, spread over batches, first/last rows and heads, and head_dim tails.
std::vector<Element> elements(const Call& c, Tensor t) {
  const std::int64_t rows = t == kQ ? c.shape.q_len : c.shape.kv_len;
  const int heads = t == kQ ? c.shape.num_heads : c.shape.num_kv_heads;
  return {{0, 0, 0, 0},
          {c.shape.batch - 1, rows - 1, heads - 1, c.shape.head_dim - 1},
          {c.shape.batch - 1, rows / 2, heads / 2, c.shape.head_dim / 2},
          {0, rows - 2 >= 0 ? rows - 2 : 0, heads - 1, 0}};
}

// Does output row (b, i, h) read the element? From the contract: its own query row; key and value rows of
// its kv head that are visible from its position.
bool row_sees(const Call& c, Tensor t, const Element& e, std::int64_t b, std::int64_t i, int h) {
  if (b != e.b) return false;
  if (t == kQ) {  // its own row, unless that row sees no key at all (then it is zeros whatever q holds)
    std::int64_t lo, hi;
    visible_interval(c, int128{resolved_q_pos0(c)} + i, lo, hi);
    return i == e.row && h == e.head && lo < hi;
  }
  if (h / (c.shape.num_heads / c.shape.num_kv_heads) != e.head) return false;
  return contract_visible(c, int128{resolved_q_pos0(c)} + i, e.row);
}

float* element_address(Problem& p, Tensor t, const Element& e) {
  const Call& c = p.call;
  if (t == kQ) return p.q() + ((e.b * c.shape.q_len + e.row) * c.shape.num_heads + e.head) * c.shape.head_dim + e.d;
  float* base = t == kK ? p.k() : p.v();
  return base + ((e.b * c.shape.kv_len + e.row) * c.shape.num_kv_heads + e.head) * c.shape.head_dim + e.d;
}

// Rows that do not see a poisoned element but came out with other bits (recomputed): reported, not failed.
int g_rows_recomputed = 0;
int g_rows_seeing = 0, g_poisoned_calls = 0;

void report_poison_counts() {
  ::testing::Test::RecordProperty("poisoned_calls", g_poisoned_calls);
  ::testing::Test::RecordProperty("rows_seeing_poison", g_rows_seeing);
  ::testing::Test::RecordProperty("other_rows_recomputed", g_rows_recomputed);
  std::printf(
      "  %d calls with a poisoned element, %d rows saw it, %d other rows were recomputed (same value, other bits)\n",
      g_poisoned_calls, g_rows_seeing, g_rows_recomputed);
  g_rows_recomputed = g_rows_seeing = g_poisoned_calls = 0;
}

void check_poisoned(const Kernel& kernel, const Scenario& scenario, Tensor t, float poison, float skip_tolerance) {
  Problem p = make_problem(scenario.shape, 21);
  p.call.options.skip_tolerance = skip_tolerance;
  ASSERT_NO_THROW(kernel.attention(p.call));
  ASSERT_EQ(check_output(p.call, p.call.out), "") << "clean inputs";
  const std::vector<float> clean = p.output();
  const Call& c = p.call;
  for (const Element& e : elements(c, t)) {
    SCOPED_TRACE(std::string(scenario.name) + ": " + tensor_name(t) + "[b=" + std::to_string(e.b) + "][" +
                 std::to_string(e.row) + "][head " + std::to_string(e.head) + "][d=" + std::to_string(e.d) +
                 "] = " + std::to_string(poison) + ", skip_tolerance " + std::to_string(skip_tolerance));
    float* address = element_address(p, t, e);
    const float saved = *address;
    *address = poison;
    ASSERT_NO_THROW(kernel.attention(p.call));
    int rows_seeing = 0;
    std::string lost_nan;  // first row that sees the NaN but came out finite
    for (std::int64_t b = 0; b < c.shape.batch; ++b)
      for (std::int64_t i = 0; i < c.shape.q_len; ++i)
        for (int h = 0; h < c.shape.num_heads; ++h) {
          const std::int64_t at = ((b * c.shape.q_len + i) * c.shape.num_heads + h) * c.shape.head_dim;
          const float* got = c.out + at;
          if (!row_sees(c, t, e, b, i, h)) {
            // Finite, and (check_output below) as accurate as before. Not necessarily the same bits: a row
            // that shares a kernel tile with one that sees an inf value can pick up 0 * inf = NaN, and is
            // then recomputed exactly in double (Note [non-finite rows]).
            ASSERT_TRUE(all_finite(got, c.shape.head_dim)) << "row [b=" << b << "][i=" << i << "][h=" << h
                                                           << "] does not see the poisoned element but is not finite";
            if (!bitwise_equal(got, clean.data() + at, c.shape.head_dim)) ++g_rows_recomputed;
            continue;
          }
          ++rows_seeing;
          // NaN is never absorbed: a row that reads it (nothing skipped) reports it.
          if (std::isnan(poison) && skip_tolerance == 0.0f && all_finite(got, c.shape.head_dim) && lost_nan.empty())
            lost_nan = row_name(b, i, h);
        }
    EXPECT_EQ(lost_nan, "") << "this row sees a NaN (nothing skipped) but came out finite";
    // The oracle agrees on everything it can check (rows with finite inputs).
    ASSERT_EQ(check_output(p.call, p.call.out), "");
    g_rows_seeing += rows_seeing;
    ++g_poisoned_calls;
    *address = saved;
  }
}

TEST_P(BadValues, NonFiniteQueryChangesOnlyItsRow) {
  ALIBI_SKIP_UNLESS_CPU();
  for (const Scenario& scenario : scenarios())
    for (float poison : {kNaN, kInf, -kInf})
      for (float skip : {0.0f, 0x1p-24f}) check_poisoned(GetParam(), scenario, kQ, poison, skip);
  report_poison_counts();
}

TEST_P(BadValues, NonFiniteKeyChangesOnlyRowsThatSeeIt) {
  ALIBI_SKIP_UNLESS_CPU();
  for (const Scenario& scenario : scenarios())
    for (float poison : {kNaN, kInf, -kInf})
      for (float skip : {0.0f, 0x1p-24f}) check_poisoned(GetParam(), scenario, kK, poison, skip);
  report_poison_counts();
}

TEST_P(BadValues, NonFiniteValueChangesOnlyRowsThatSeeIt) {
  ALIBI_SKIP_UNLESS_CPU();
  for (const Scenario& scenario : scenarios())
    for (float poison : {kNaN, kInf, -kInf})
      for (float skip : {0.0f, 0x1p-24f}) check_poisoned(GetParam(), scenario, kV, poison, skip);
  report_poison_counts();
}

// ---- finite inputs stay finite and right

void expect_matches_oracle(const Kernel& kernel, Problem& p) {
  ASSERT_NO_THROW(kernel.attention(p.call)) << describe(p.call);
  for (std::int64_t n = 0; n < p.q_count(); ++n)
    ASSERT_TRUE(std::isfinite(p.call.out[n])) << "out[" << n << "] = " << p.call.out[n] << ": " << describe(p.call);
  EXPECT_EQ(check_output(p.call, p.call.out), "") << describe(p.call);
}

// q and k ~ 1e19: q.k ~ 1e38 * sqrt(D), beyond FLT_MAX for many pairs.
TEST_P(BadValues, HugeFiniteQueriesAndKeysGiveFiniteCorrectOutputs) {
  ALIBI_SKIP_UNLESS_CPU();
  for (Mask mask : {Mask::causal, Mask::bidirectional}) {
    ShapeSpec s;
    s.q_len = 19, s.kv_len = 31, s.num_heads = 4, s.num_kv_heads = 2, s.head_dim = 16, s.mask = mask;
    Problem p = make_problem(s, 31);
    for (std::int64_t n = 0; n < p.q_count(); ++n) p.q()[n] *= 1e19f;
    for (std::int64_t n = 0; n < p.kv_count(); ++n) p.k()[n] *= 1e19f;
    expect_matches_oracle(GetParam(), p);
  }
}

// Every visible logit is below -FLT_MAX (q = 1e19, k = -1e19, D = 4: q.k = -4e38), yet finite in exact
// arithmetic: the answer is the softmax of the biases alone, not zeros.
TEST_P(BadValues, AllLogitsBelowFloatRangeStillGiveTheSoftmax) {
  ALIBI_SKIP_UNLESS_CPU();
  ShapeSpec s;
  s.q_len = 3, s.kv_len = 5, s.head_dim = 4;
  Problem p = make_problem(s, 32);
  for (std::int64_t n = 0; n < p.q_count(); ++n) p.q()[n] = 1e19f;
  for (std::int64_t n = 0; n < p.kv_count(); ++n) p.k()[n] = -1e19f;
  for (std::int64_t n = 0; n < p.kv_count(); ++n) p.v()[n] = 1.0f + std::fabs(p.v()[n]);
  p.call.options.scale = 1.0f;
  expect_matches_oracle(GetParam(), p);
}

// A finite slope so large that every bias overflows: the nearest key takes all the weight.
TEST_P(BadValues, HugeFiniteSlopeGivesTheNearestKey) {
  ALIBI_SKIP_UNLESS_CPU();
  ShapeSpec s;
  s.q_len = 2, s.kv_len = 6, s.head_dim = 3, s.q_pos0 = 8;  // the queries sit past every key
  Problem p = make_problem(s, 33);
  for (std::int64_t n = 0; n < p.kv_count(); ++n) p.v()[n] = 1.0f + std::fabs(p.v()[n]);  // zeros are no mean of these
  p.slopes = {3e38f};
  p.call.options.slopes = p.slopes.data();
  expect_matches_oracle(GetParam(), p);
}

// Keys so small that their squares underflow in fp32 (|k| < 2^-63), against a query so large that every
// q.k is still 1000: block skipping must bound those keys' norms correctly, or it drops keys that carry
// most of the mass. (Default skip_tolerance; 128 keys so there is a second block to skip.)
TEST_P(BadValues, TinyKeysWithHugeQueriesAreNotSkipped) {
  ALIBI_SKIP_UNLESS_CPU();
  for (Mask mask : {Mask::causal, Mask::bidirectional}) {
    ShapeSpec s;
    s.q_len = 2, s.kv_len = 128, s.head_dim = 3, s.mask = mask;
    Problem p = make_problem(s, 37);
    for (std::int64_t n = 0; n < p.q_count(); ++n) p.q()[n] = 1e32f;
    for (std::int64_t n = 0; n < p.kv_count(); ++n) p.k()[n] = 1e-29f / 3.0f;
    for (std::int64_t j = 0; j < s.kv_len; ++j)
      for (int d = 0; d < s.head_dim; ++d) p.v()[j * s.head_dim + d] = j < 64 ? 1.0f : 0.0f;
    p.call.options.scale = 1.0f;
    expect_matches_oracle(GetParam(), p);
  }
}

TEST_P(BadValues, HugeScalesAndHugeValues) {
  ALIBI_SKIP_UNLESS_CPU();
  ShapeSpec s;
  s.q_len = 9, s.kv_len = 13, s.num_heads = 3, s.num_kv_heads = 3, s.head_dim = 10;
  for (float scale : {1e30f, -1e30f, 1e-30f, FLT_TRUE_MIN, 3e38f}) {
    Problem p = make_problem(s, 34);
    p.call.options.scale = scale;
    expect_matches_oracle(GetParam(), p);
  }
  Problem values = make_problem(s, 35);  // values near FLT_MAX: the P.V sums overflow in fp32
  for (std::int64_t n = 0; n < values.kv_count(); ++n) values.v()[n] = values.v()[n] > 0 ? FLT_MAX : -FLT_MAX;
  expect_matches_oracle(GetParam(), values);
}

TEST_P(BadValues, SubnormalsAndNegativeZeros) {
  ALIBI_SKIP_UNLESS_CPU();
  ShapeSpec s;
  s.q_len = 11, s.kv_len = 11, s.num_heads = 2, s.num_kv_heads = 1, s.head_dim = 12;
  Problem p = make_problem(s, 36);
  for (std::int64_t n = 0; n < p.q_count(); ++n) p.q()[n] = n % 3 == 0 ? -0.0f : p.q()[n] * 1e-39f;
  for (std::int64_t n = 0; n < p.kv_count(); ++n) p.k()[n] *= 1e-40f;
  for (std::int64_t n = 0; n < p.kv_count(); ++n) p.v()[n] = n % 2 ? -0.0f : p.v()[n] * 1e-42f;
  expect_matches_oracle(GetParam(), p);
}

// ---- misaligned tensors

TEST_P(BadValues, MisalignedTensorsGiveTheSameBits) {
  ALIBI_SKIP_UNLESS_CPU();
  int cases = 0;
  for (int head_dim : {1, 3, 7, 8, 9, 16, 17, 33})
    for (std::int64_t kv_len : {1, 5, 64, 67}) {
      ShapeSpec s;
      s.batch = 2, s.q_len = std::min<std::int64_t>(kv_len, 9), s.kv_len = kv_len, s.num_heads = 4;
      s.num_kv_heads = 2, s.head_dim = head_dim,
      s.mask = (head_dim + kv_len) % 2 == 0 ? Mask::causal : Mask::bidirectional;
      s.window = kv_len > 5 ? 6 : 0;
      Problem aligned = make_problem(s, static_cast<std::uint32_t>(100 + head_dim * 7 + kv_len));
      ASSERT_NO_THROW(GetParam().attention(aligned.call));
      ASSERT_EQ(check_output(aligned.call, aligned.call.out), "") << describe(aligned.call);
      for (int misalign : {1, 2, 3}) {
        Problem shifted = make_problem(s, 0, misalign);
        copy_values(aligned, shifted);
        ASSERT_NE(reinterpret_cast<std::uintptr_t>(shifted.call.q) % 16, 0u);
        ASSERT_NO_THROW(GetParam().attention(shifted.call));
        EXPECT_TRUE(bitwise_equal(shifted.call.out, aligned.call.out, aligned.q_count()))
            << "misaligned by " << misalign << " floats: " << describe(s.q_len > 0 ? shifted.call : aligned.call);
        ++cases;
      }
    }
  ::testing::Test::RecordProperty("misaligned_cases", cases);
}

}  // namespace
}  // namespace alibi_reliability
