// alibi/eigen.hpp: the bias as an Eigen matrix and single-head attention on Eigen row-major matrices
// (float K/V and 16-bit K/V: Eigen::bfloat16, Eigen::half, alibi::bfloat16, alibi::float16), checked
// against a float64 dense softmax written here with Eigen.
#include <gtest/gtest.h>

#include <Eigen/Core>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <ostream>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "alibi/convert.hpp"
#include "alibi/eigen.hpp"

namespace {

using alibi::RowMatrixXf;
using RowMatrixXd = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
constexpr float kInf = std::numeric_limits<float>::infinity();

struct Case {
  Eigen::Index q_len, kv_len, head_dim;
  alibi::Mask mask;
  std::int64_t window;
  std::int64_t q_pos0;
};

std::ostream& operator<<(std::ostream& os, const Case& c) {
  return os << "q_len " << c.q_len << " kv_len " << c.kv_len << " head_dim " << c.head_dim
            << (c.mask == alibi::Mask::causal ? " causal" : " bidirectional") << " window " << c.window << " q_pos0 "
            << c.q_pos0;
}

// Dense float64 attention: materialise all logits, mask, softmax per row. Rows that see nothing are zero.
RowMatrixXd reference_attention(const RowMatrixXd& q, const RowMatrixXd& k, const RowMatrixXd& v, double slope,
                                alibi::Mask mask, double scale, std::int64_t window, std::int64_t q_pos0) {
  const Eigen::Index q_len = q.rows(), kv_len = k.rows();
  const std::int64_t first = q_pos0 == -1 ? kv_len - q_len : q_pos0;
  RowMatrixXd logits = scale * (q * k.transpose());
  Eigen::Matrix<bool, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> visible(q_len, kv_len);
  for (Eigen::Index i = 0; i < q_len; ++i) {
    const std::int64_t p = first + i;
    for (Eigen::Index j = 0; j < kv_len; ++j) {
      const std::int64_t distance = p - j;
      if (mask == alibi::Mask::causal) {
        visible(i, j) = distance >= 0 && (window == 0 || distance < window);
        logits(i, j) -= slope * static_cast<double>(distance);
      } else {
        const std::int64_t gap = distance < 0 ? -distance : distance;
        visible(i, j) = window == 0 || gap < window;
        logits(i, j) -= slope * static_cast<double>(gap);
      }
    }
  }
  RowMatrixXd weights = RowMatrixXd::Zero(q_len, kv_len);
  for (Eigen::Index i = 0; i < q_len; ++i) {
    double row_max = -std::numeric_limits<double>::infinity();
    for (Eigen::Index j = 0; j < kv_len; ++j)
      if (visible(i, j)) row_max = std::max(row_max, logits(i, j));
    if (row_max == -std::numeric_limits<double>::infinity()) continue;
    double sum = 0.0;
    for (Eigen::Index j = 0; j < kv_len; ++j)
      if (visible(i, j)) sum += (weights(i, j) = std::exp(logits(i, j) - row_max));
    weights.row(i) /= sum;
  }
  return weights * v;
}

RowMatrixXf random_matrix(Eigen::Index rows, Eigen::Index cols, std::mt19937& rng) {
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  RowMatrixXf m(rows, cols);
  for (Eigen::Index i = 0; i < m.size(); ++i) m.data()[i] = uniform(rng);
  return m;
}

// Contract tolerance for unit-scale inputs: max abs error <= 2e-5 x max |ref|.
void expect_close(const RowMatrixXf& actual, const RowMatrixXd& expected, const std::string& what) {
  ASSERT_EQ(actual.rows(), expected.rows()) << what;
  ASSERT_EQ(actual.cols(), expected.cols()) << what;
  if (expected.size() == 0) return;
  const double tolerance = 2e-5 * std::max(expected.cwiseAbs().maxCoeff(), 1e-30);
  const double error = (actual.cast<double>() - expected).cwiseAbs().maxCoeff();
  EXPECT_LE(error, tolerance) << what;
  EXPECT_TRUE(actual.allFinite()) << what;
}

template <class Call>
std::string invalid_argument_message(Call&& call) {
  try {
    call();
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "<no std::invalid_argument thrown>";
}

TEST(EigenCausalBias, MatchesHandWrittenValues) {
  // q_len 2, kv_len 3, default q_pos0: the queries sit at positions 1 and 2.
  const Eigen::MatrixXf bias = alibi::causal_bias(0.5f, 2, 3);
  ASSERT_EQ(bias.rows(), 2);
  ASSERT_EQ(bias.cols(), 3);
  EXPECT_EQ(bias(0, 0), -0.5f);
  EXPECT_EQ(bias(0, 1), 0.0f);
  EXPECT_EQ(bias(0, 2), -kInf);
  EXPECT_EQ(bias(1, 0), -1.0f);
  EXPECT_EQ(bias(1, 1), -0.5f);
  EXPECT_EQ(bias(1, 2), 0.0f);
}

TEST(EigenCausalBias, ExplicitQueryPositionsIncludingLiteralZero) {
  // A literal 0 must select the Eigen overload (not a null `out` of the pointer overload).
  const Eigen::MatrixXf at_zero = alibi::causal_bias(0.25f, 3, 4, 0);
  const std::int64_t q_pos0 = 5;
  const Eigen::MatrixXf past_the_keys = alibi::causal_bias(0.25f, 3, 4, q_pos0);
  for (Eigen::Index i = 0; i < 3; ++i)
    for (Eigen::Index j = 0; j < 4; ++j) {
      const float expected_at_zero = j <= i ? -0.25f * static_cast<float>(i - j) : -kInf;
      EXPECT_EQ(at_zero(i, j), expected_at_zero) << i << "," << j;
      EXPECT_EQ(past_the_keys(i, j), -0.25f * static_cast<float>(5 + i - j)) << i << "," << j;
    }
}

TEST(EigenCausalBias, MoreQueriesThanKeysGivesFullyMaskedLeadingRows) {
  const Eigen::MatrixXf bias = alibi::causal_bias(1.0f, 4, 2);  // positions -2, -1, 0, 1
  EXPECT_TRUE((bias.topRows(2).array() == -kInf).all());
  EXPECT_EQ(bias(2, 0), 0.0f);
  EXPECT_EQ(bias(2, 1), -kInf);
  EXPECT_EQ(bias(3, 0), -1.0f);
}

TEST(EigenCausalBias, EmptyAndRejected) {
  EXPECT_EQ(alibi::causal_bias(0.5f, 0, 7).size(), 0);
  EXPECT_NE(invalid_argument_message([] { alibi::causal_bias(0.5f, -1, 3); }).find("q_len"), std::string::npos);
  EXPECT_NE(invalid_argument_message([] { alibi::causal_bias(0.5f, 2, -3); }).find("kv_len"), std::string::npos);
  EXPECT_NE(invalid_argument_message([] { alibi::causal_bias(0.5f, 2, 3, -2); }).find("q_pos0"), std::string::npos);
  EXPECT_NE(invalid_argument_message([] { alibi::causal_bias(std::nanf(""), 2, 3); }).find("slope"), std::string::npos);
}

class EigenAttention : public ::testing::TestWithParam<Case> {};

TEST_P(EigenAttention, MatchesFloat64DenseSoftmax) {
  const Case c = GetParam();
  std::mt19937 rng(static_cast<unsigned>(c.q_len * 1000003 + c.kv_len * 1009 + c.head_dim));
  const RowMatrixXf q = random_matrix(c.q_len, c.head_dim, rng);
  const RowMatrixXf k = random_matrix(c.kv_len, c.head_dim, rng);
  const RowMatrixXf v = random_matrix(c.kv_len, c.head_dim, rng);
  const float slope = 0.125f;
  alibi::AttentionOptions options;
  options.mask = c.mask;
  options.window = c.window;
  options.q_pos0 = c.q_pos0;
  const RowMatrixXd expected =
      reference_attention(q.cast<double>(), k.cast<double>(), v.cast<double>(), slope, c.mask,
                          1.0 / std::sqrt(static_cast<double>(c.head_dim)), c.window, c.q_pos0);

  RowMatrixXf out = RowMatrixXf::Constant(c.q_len, c.head_dim, 7.0f);
  alibi::attention(q, k, v, out, slope, options);
  expect_close(out, expected, "native");

  const RowMatrixXf returned = alibi::attention(q, k, v, slope, options);
  EXPECT_TRUE(returned.cwiseEqual(out).all()) << "returning variant differs from the out variant";

  expect_close(alibi::attention<alibi::isa::scalar>(q, k, v, slope, options), expected, "scalar");
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, EigenAttention,
    ::testing::Values(Case{1, 1, 1, alibi::Mask::causal, 0, -1}, Case{7, 7, 3, alibi::Mask::causal, 0, -1},
                      Case{17, 65, 16, alibi::Mask::causal, 0, -1}, Case{64, 64, 64, alibi::Mask::causal, 0, -1},
                      Case{65, 130, 33, alibi::Mask::causal, 9, -1}, Case{1, 129, 128, alibi::Mask::causal, 0, -1},
                      Case{1, 300, 80, alibi::Mask::causal, 0, 150}, Case{33, 20, 8, alibi::Mask::causal, 0, -1},
                      Case{15, 40, 17, alibi::Mask::causal, 0, 0}, Case{16, 16, 2, alibi::Mask::bidirectional, 0, -1},
                      Case{40, 90, 65, alibi::Mask::bidirectional, 0, 10},
                      Case{63, 63, 32, alibi::Mask::bidirectional, 5, -1}));

TEST(EigenAttentionInterop, StridedHeadSlicesOfRawTensors) {
  // [tokens][heads][head_dim] buffers as a model keeps them; one head is a strided view of each.
  const Eigen::Index tokens = 37, heads = 3, head_dim = 24, head = 1;
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  std::vector<float> q(tokens * heads * head_dim), k(q.size()), v(q.size()), out(q.size(), 42.0f);
  for (auto* buffer : {&q, &k, &v})
    for (float& x : *buffer) x = uniform(rng);

  using Strided = Eigen::OuterStride<>;
  const Strided stride(heads * head_dim);
  Eigen::Map<const RowMatrixXf, 0, Strided> q_head(q.data() + head * head_dim, tokens, head_dim, stride);
  Eigen::Map<const RowMatrixXf, 0, Strided> k_head(k.data() + head * head_dim, tokens, head_dim, stride);
  Eigen::Map<const RowMatrixXf, 0, Strided> v_head(v.data() + head * head_dim, tokens, head_dim, stride);
  Eigen::Map<RowMatrixXf, 0, Strided> out_head(out.data() + head * head_dim, tokens, head_dim, stride);

  const float slope = 0.3f;
  alibi::attention(q_head, k_head, v_head, out_head, slope);

  const RowMatrixXd expected = reference_attention(
      RowMatrixXf(q_head).cast<double>(), RowMatrixXf(k_head).cast<double>(), RowMatrixXf(v_head).cast<double>(), slope,
      alibi::Mask::causal, 1.0 / std::sqrt(static_cast<double>(head_dim)), 0, -1);
  expect_close(RowMatrixXf(out_head), expected, "strided head slice");
  for (Eigen::Index t = 0; t < tokens; ++t)
    for (Eigen::Index h = 0; h < heads; ++h)
      for (Eigen::Index d = 0; d < head_dim; ++d) {
        if (h == head) continue;
        ASSERT_EQ(out[static_cast<std::size_t>((t * heads + h) * head_dim + d)], 42.0f)
            << "other heads must stay untouched";
      }
}

TEST(EigenAttentionInterop, ContiguousMapsAndColumnMajorInputs) {
  const Eigen::Index q_len = 9, kv_len = 21, head_dim = 12;
  std::mt19937 rng(11);
  const RowMatrixXf q = random_matrix(q_len, head_dim, rng);
  const RowMatrixXf k = random_matrix(kv_len, head_dim, rng);
  const RowMatrixXf v = random_matrix(kv_len, head_dim, rng);
  std::vector<float> out_buffer(static_cast<std::size_t>(q_len * head_dim), 0.0f);
  Eigen::Map<RowMatrixXf> out(out_buffer.data(), q_len, head_dim);
  Eigen::Map<const RowMatrixXf> q_map(q.data(), q_len, head_dim);
  alibi::attention(q_map, k, v, out, 0.5f);

  const RowMatrixXd expected = reference_attention(q.cast<double>(), k.cast<double>(), v.cast<double>(), 0.5,
                                                   alibi::Mask::causal, 1.0 / std::sqrt(12.0), 0, -1);
  expect_close(RowMatrixXf(out), expected, "contiguous maps");

  // Column-major inputs are copied to row-major temporaries; the result must not change.
  const Eigen::MatrixXf q_col = q, k_col = k, v_col = v;
  EXPECT_TRUE(alibi::attention(q_col, k_col, v_col, 0.5f).cwiseEqual(RowMatrixXf(out)).all());
}

TEST(EigenAttentionInterop, ExplicitSlopeWinsOverOptionsSlopes) {
  std::mt19937 rng(3);
  const RowMatrixXf q = random_matrix(10, 8, rng), k = random_matrix(10, 8, rng), v = random_matrix(10, 8, rng);
  const float other_slope = 4.0f;
  alibi::AttentionOptions options;
  options.slopes = &other_slope;
  const RowMatrixXd expected = reference_attention(q.cast<double>(), k.cast<double>(), v.cast<double>(), 0.0625,
                                                   alibi::Mask::causal, 1.0 / std::sqrt(8.0), 0, -1);
  expect_close(alibi::attention(q, k, v, 0.0625f, options), expected, "options.slopes ignored");
}

TEST(EigenAttentionInterop, EmptyWork) {
  const RowMatrixXf none(0, 4), keys = RowMatrixXf::Ones(3, 4);
  EXPECT_EQ(alibi::attention(none, keys, keys, 0.5f).rows(), 0);
  // Queries without keys see nothing: zero rows.
  const RowMatrixXf out = alibi::attention(RowMatrixXf::Ones(2, 4), none, none, 0.5f);
  EXPECT_TRUE(out.isZero(0.0f));
}

TEST(EigenAttentionInterop, BadShapesThrowNamingTheParameterAndLeaveOutUntouched) {
  std::mt19937 rng(5);
  const RowMatrixXf q = random_matrix(6, 8, rng), k = random_matrix(10, 8, rng), v = random_matrix(10, 8, rng);
  RowMatrixXf out = RowMatrixXf::Constant(6, 8, 3.0f);
  const RowMatrixXf narrow = random_matrix(10, 7, rng), short_v = random_matrix(9, 8, rng);
  RowMatrixXf wrong_rows(5, 8), wrong_cols(6, 9);

  const auto message = [](auto&& call) { return invalid_argument_message(call); };
  EXPECT_NE(message([&] { alibi::attention(q, narrow, v, out, 0.5f); }).find("attention: k "), std::string::npos);
  EXPECT_NE(message([&] { alibi::attention(q, k, narrow, out, 0.5f); }).find("attention: v "), std::string::npos);
  EXPECT_NE(message([&] { alibi::attention(q, k, short_v, out, 0.5f); }).find("attention: v "), std::string::npos);
  EXPECT_NE(message([&] { alibi::attention(q, k, v, wrong_rows, 0.5f); }).find("attention: out "), std::string::npos);
  EXPECT_NE(message([&] { alibi::attention(q, k, v, wrong_cols, 0.5f); }).find("attention: out "), std::string::npos);
  EXPECT_NE(message([&] { alibi::attention(q, k, v, out, std::nanf("")); }).find("slope"), std::string::npos);
  alibi::AttentionOptions negative_window;
  negative_window.window = -1;
  EXPECT_NE(message([&] { alibi::attention(q, k, v, out, 0.5f, negative_window); }).find("window"), std::string::npos);
  EXPECT_TRUE((out.array() == 3.0f).all()) << "out must be untouched after a rejected call";

  // head_dim 0 is rejected by the core API.
  RowMatrixXf empty_out(6, 0);
  EXPECT_NE(message([&] {
              alibi::attention(RowMatrixXf(6, 0), RowMatrixXf(10, 0), RowMatrixXf(10, 0), empty_out, 0.5f);
            }).find("head_dim"),
            std::string::npos);
}

TEST(EigenAttentionInterop, OutSharingElementsWithAnInputIsRejected) {
  std::mt19937 rng(9);
  RowMatrixXf fused = random_matrix(8, 16, rng);  // [q | out] side by side in one buffer
  const RowMatrixXf k = random_matrix(8, 8, rng), v = random_matrix(8, 8, rng);
  const RowMatrixXf before = fused;
  auto left = fused.leftCols(8);
  auto middle = fused.middleCols(4, 8);
  auto right = fused.rightCols(8);

  const std::string same = invalid_argument_message([&] { alibi::attention(left, k, v, left, 0.5f); });
  EXPECT_NE(same.find("out shares elements with q"), std::string::npos) << same;
  const std::string partial = invalid_argument_message([&] { alibi::attention(left, k, v, middle, 0.5f); });
  EXPECT_NE(partial.find("out shares elements with q"), std::string::npos) << partial;
  RowMatrixXf kv_buffer = k;
  auto kv_rows = kv_buffer.middleRows(2, 6);
  const RowMatrixXf six_queries = random_matrix(6, 8, rng);
  const std::string with_k =
      invalid_argument_message([&] { alibi::attention(six_queries, kv_buffer, v, kv_rows, 0.5f); });
  EXPECT_NE(with_k.find("out shares elements with k"), std::string::npos) << with_k;
  EXPECT_TRUE(fused.cwiseEqual(before).all()) << "rejected calls must not write";
  EXPECT_TRUE(kv_buffer.cwiseEqual(k).all()) << "rejected calls must not write";

  // Interleaved column blocks of one buffer share no element: allowed, and the result is right.
  alibi::attention(left, k, v, right, 0.5f);
  const RowMatrixXd expected =
      reference_attention(before.leftCols(8).cast<double>(), k.cast<double>(), v.cast<double>(), 0.5,
                          alibi::Mask::causal, 1.0 / std::sqrt(8.0), 0, -1);
  expect_close(RowMatrixXf(right), expected, "out interleaved with q");
  EXPECT_TRUE(fused.leftCols(8).cwiseEqual(before.leftCols(8)).all());
}

// ---- 16-bit K/V ----

template <class Scalar>
using RowMatrix16 = alibi::RowMatrixX<Scalar>;

// K/V values as the reference sees them: widened by Eigen's own conversion, independent of alibi's.
template <class Scalar>
RowMatrixXd widened(const RowMatrix16<Scalar>& m) {
  return m.template cast<float>().template cast<double>();
}

template <class EigenScalar>
std::uint16_t eigen_bits(EigenScalar x) {
  std::uint16_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  return bits;
}

// Values of every rounding class: random ones (none representable in 16 bits), ties in either format,
// binary16 subnormals and underflow, the binary16 overflow threshold, bfloat16's large range.
std::vector<float> rounding_probes() {
  std::vector<float> values = {0.0f,
                               -0.0f,
                               0.1f,
                               1.0f / 3.0f,
                               -2.0f / 3.0f,
                               1.0f + 0x1p-11f,
                               1.0f + 3 * 0x1p-11f,
                               1.0f + 0x1p-8f,
                               1.0f + 3 * 0x1p-8f,
                               0x1p-24f,
                               0x1.8p-24f,
                               0x1p-25f,
                               0x1.1p-25f,
                               3.1e-6f,
                               -6.0e-8f,
                               65504.0f,
                               65519.99f,
                               65520.0f,
                               1e5f,
                               -3.4e38f,
                               1e-30f,
                               1e30f};
  std::mt19937 rng(17);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  for (int exponent = -30; exponent <= 20; ++exponent)
    for (int i = 0; i < 20; ++i) values.push_back(std::ldexp(uniform(rng), exponent));
  return values;
}

TEST(EigenSixteenBit, EigenAndAlibiRoundEveryFloatToTheSameBits) {
  for (const float x : rounding_probes()) {
    const Eigen::half eigen_half(x);
    const Eigen::bfloat16 eigen_bfloat16(x);
    ASSERT_EQ(eigen_bits(eigen_half), alibi::to_float16(x).bits) << "Eigen::half vs alibi::to_float16 at " << x;
    ASSERT_EQ(eigen_bits(eigen_bfloat16), alibi::to_bfloat16(x).bits) << "Eigen::bfloat16 vs to_bfloat16 at " << x;
    // Widening: both libraries give the same float from the same bits.
    const float from_eigen_half = static_cast<float>(eigen_half);
    const float from_alibi_half = alibi::to_float(alibi::to_float16(x));
    ASSERT_EQ(std::memcmp(&from_eigen_half, &from_alibi_half, sizeof(float)), 0) << x;
    const float from_eigen_bfloat16 = static_cast<float>(eigen_bfloat16);
    const float from_alibi_bfloat16 = alibi::to_float(alibi::to_bfloat16(x));
    ASSERT_EQ(std::memcmp(&from_eigen_bfloat16, &from_alibi_bfloat16, sizeof(float)), 0) << x;
  }
}

template <class Scalar>
class EigenSixteenBitAttention : public ::testing::Test {};

struct SixteenBitNames {
  template <class Scalar>
  static std::string GetName(int) {
    return std::is_same<Scalar, Eigen::bfloat16>::value ? "bfloat16" : "half";
  }
};
using EigenSixteenBitScalars = ::testing::Types<Eigen::bfloat16, Eigen::half>;
TYPED_TEST_SUITE(EigenSixteenBitAttention, EigenSixteenBitScalars, SixteenBitNames);

TYPED_TEST(EigenSixteenBitAttention, MatchesFloat64DenseSoftmaxOfTheWidenedValues) {
  using Scalar = TypeParam;
  const Case cases[] = {
      {1, 1, 1, alibi::Mask::causal, 0, -1},           {7, 7, 3, alibi::Mask::causal, 0, -1},
      {17, 65, 16, alibi::Mask::causal, 0, -1},        {65, 130, 33, alibi::Mask::causal, 9, -1},
      {1, 300, 128, alibi::Mask::causal, 0, -1},       {1, 300, 80, alibi::Mask::causal, 0, 150},
      {40, 90, 65, alibi::Mask::bidirectional, 0, 10}, {63, 63, 32, alibi::Mask::bidirectional, 5, -1}};
  for (const Case& c : cases) {
    std::mt19937 rng(static_cast<unsigned>(c.q_len * 1000003 + c.kv_len * 1009 + c.head_dim));
    const RowMatrixXf q = random_matrix(c.q_len, c.head_dim, rng);
    const RowMatrix16<Scalar> k = random_matrix(c.kv_len, c.head_dim, rng).template cast<Scalar>();
    const RowMatrix16<Scalar> v = random_matrix(c.kv_len, c.head_dim, rng).template cast<Scalar>();
    const float slope = 0.125f;
    alibi::AttentionOptions options;
    options.mask = c.mask;
    options.window = c.window;
    options.q_pos0 = c.q_pos0;
    const RowMatrixXd expected =
        reference_attention(q.cast<double>(), widened(k), widened(v), slope, c.mask,
                            1.0 / std::sqrt(static_cast<double>(c.head_dim)), c.window, c.q_pos0);
    std::ostringstream what;
    what << c;

    RowMatrixXf out = RowMatrixXf::Constant(c.q_len, c.head_dim, 7.0f);
    alibi::attention(q, k, v, out, slope, options);
    expect_close(out, expected, "native " + what.str());
    EXPECT_TRUE(alibi::attention(q, k, v, slope, options).cwiseEqual(out).all()) << "returning variant " << c;
    expect_close(alibi::attention<alibi::isa::scalar>(q, k, v, slope, options), expected, "scalar " + what.str());

    // The contract is exact: the fp32 attention of the widened values, bit for bit.
    const RowMatrixXf k_float = k.template cast<float>(), v_float = v.template cast<float>();
    EXPECT_TRUE(alibi::attention(q, k_float, v_float, slope, options).cwiseEqual(out).all())
        << "differs from fp32 K/V holding the same values, " << c;
  }
}

TYPED_TEST(EigenSixteenBitAttention, RoundingToSixteenBitsIsVisibleAtTheTestTolerance) {
  // Guards the test above: if K/V were read as their unrounded fp32 values, or as the other 16-bit format,
  // the result would leave the tolerance.
  using Scalar = TypeParam;
  std::mt19937 rng(23);
  const RowMatrixXf q = random_matrix(32, 64, rng), k_exact = random_matrix(96, 64, rng),
                    v_exact = random_matrix(96, 64, rng);
  const RowMatrix16<Scalar> k = k_exact.cast<Scalar>(), v = v_exact.cast<Scalar>();
  const double scale = 1.0 / std::sqrt(64.0);
  const RowMatrixXd rounded =
      reference_attention(q.cast<double>(), widened(k), widened(v), 0.25, alibi::Mask::causal, scale, 0, -1);
  const RowMatrixXd unrounded = reference_attention(q.cast<double>(), k_exact.cast<double>(), v_exact.cast<double>(),
                                                    0.25, alibi::Mask::causal, scale, 0, -1);
  const double tolerance = 2e-5 * rounded.cwiseAbs().maxCoeff();
  EXPECT_GT((rounded - unrounded).cwiseAbs().maxCoeff(), 4 * tolerance);
  expect_close(alibi::attention(q, k, v, 0.25f), rounded, "16-bit K/V");
}

TEST(EigenSixteenBit, AlibiScalarMatricesGiveTheSameResultAsEigenScalarsAndThePointerApi) {
  const Eigen::Index q_len = 11, kv_len = 70, head_dim = 24;
  std::mt19937 rng(29);
  const RowMatrixXf q = random_matrix(q_len, head_dim, rng), k = random_matrix(kv_len, head_dim, rng),
                    v = random_matrix(kv_len, head_dim, rng);
  const auto count = static_cast<std::size_t>(kv_len * head_dim);
  alibi::AttentionShape shape;
  shape.q_len = q_len;
  shape.kv_len = kv_len;
  shape.num_heads = 1;
  shape.num_kv_heads = 1;
  shape.head_dim = static_cast<int>(head_dim);
  const float slope = 0.5f;
  alibi::AttentionOptions options;
  options.slopes = &slope;

  std::vector<alibi::bfloat16> k_bf16(count), v_bf16(count);
  alibi::convert(k.data(), k_bf16.data(), count);
  alibi::convert(v.data(), v_bf16.data(), count);
  const Eigen::Map<const RowMatrix16<alibi::bfloat16>> k_alibi_bf16(k_bf16.data(), kv_len, head_dim);
  const Eigen::Map<const RowMatrix16<alibi::bfloat16>> v_alibi_bf16(v_bf16.data(), kv_len, head_dim);
  const RowMatrixXf from_alibi_bf16 = alibi::attention(q, k_alibi_bf16, v_alibi_bf16, slope);
  EXPECT_TRUE(
      from_alibi_bf16.cwiseEqual(alibi::attention(q, k.cast<Eigen::bfloat16>(), v.cast<Eigen::bfloat16>(), slope))
          .all());
  RowMatrixXf from_pointers(q_len, head_dim);
  alibi::attention(q.data(), k_bf16.data(), v_bf16.data(), from_pointers.data(), shape, options);
  EXPECT_TRUE(from_alibi_bf16.cwiseEqual(from_pointers).all());

  std::vector<alibi::float16> k_f16(count), v_f16(count);
  alibi::convert(k.data(), k_f16.data(), count);
  alibi::convert(v.data(), v_f16.data(), count);
  const Eigen::Map<const RowMatrix16<alibi::float16>> k_alibi_f16(k_f16.data(), kv_len, head_dim);
  const Eigen::Map<const RowMatrix16<alibi::float16>> v_alibi_f16(v_f16.data(), kv_len, head_dim);
  const RowMatrixXf from_alibi_f16 = alibi::attention(q, k_alibi_f16, v_alibi_f16, slope);
  EXPECT_TRUE(
      from_alibi_f16.cwiseEqual(alibi::attention(q, k.cast<Eigen::half>(), v.cast<Eigen::half>(), slope)).all());
  alibi::attention(q.data(), k_f16.data(), v_f16.data(), from_pointers.data(), shape, options);
  EXPECT_TRUE(from_alibi_f16.cwiseEqual(from_pointers).all());
}

TYPED_TEST(EigenSixteenBitAttention, StridedHeadSlicesAndColumnMajorKeysAndValues) {
  // A 16-bit [tokens][heads][head_dim] cache; one head is a strided view of it.
  using Scalar = TypeParam;
  const Eigen::Index tokens = 45, heads = 3, head_dim = 20, head = 2;
  std::mt19937 rng(31);
  const RowMatrix16<Scalar> k_cache = random_matrix(tokens, heads * head_dim, rng).template cast<Scalar>();
  const RowMatrix16<Scalar> v_cache = random_matrix(tokens, heads * head_dim, rng).template cast<Scalar>();
  const RowMatrixXf q = random_matrix(tokens, head_dim, rng);
  RowMatrixXf out_tensor = RowMatrixXf::Constant(tokens, heads * head_dim, 42.0f);

  using Strided = Eigen::OuterStride<>;
  const Strided stride(heads * head_dim);
  const Eigen::Map<const RowMatrix16<Scalar>, 0, Strided> k_head(k_cache.data() + head * head_dim, tokens, head_dim,
                                                                 stride);
  const Eigen::Map<const RowMatrix16<Scalar>, 0, Strided> v_head(v_cache.data() + head * head_dim, tokens, head_dim,
                                                                 stride);
  auto out_head = out_tensor.middleCols(head * head_dim, head_dim);
  alibi::attention(q, k_head, v_head, out_head, 0.3f);

  const RowMatrixXd expected =
      reference_attention(q.cast<double>(), widened(RowMatrix16<Scalar>(k_head)), widened(RowMatrix16<Scalar>(v_head)),
                          0.3, alibi::Mask::causal, 1.0 / std::sqrt(static_cast<double>(head_dim)), 0, -1);
  expect_close(RowMatrixXf(out_head), expected, "strided 16-bit head slice");
  EXPECT_TRUE((out_tensor.leftCols(head * head_dim).array() == 42.0f).all()) << "other heads must stay untouched";

  // Column-major K/V are copied to row-major temporaries; the result must not change.
  const Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic> k_col = k_head, v_col = v_head;
  EXPECT_TRUE(alibi::attention(q, k_col, v_col, 0.3f).cwiseEqual(RowMatrixXf(out_head)).all());
}

TYPED_TEST(EigenSixteenBitAttention, BadShapesThrowNamingTheParameter) {
  using Scalar = TypeParam;
  std::mt19937 rng(37);
  const RowMatrixXf q = random_matrix(6, 8, rng);
  const RowMatrix16<Scalar> k = random_matrix(10, 8, rng).template cast<Scalar>();
  const RowMatrix16<Scalar> narrow = random_matrix(10, 7, rng).template cast<Scalar>();
  const RowMatrix16<Scalar> short_v = random_matrix(9, 8, rng).template cast<Scalar>();
  RowMatrixXf out = RowMatrixXf::Constant(6, 8, 3.0f);
  const auto message = [](auto&& call) { return invalid_argument_message(call); };
  EXPECT_NE(message([&] { alibi::attention(q, narrow, k, out, 0.5f); }).find("attention: k "), std::string::npos);
  EXPECT_NE(message([&] { alibi::attention(q, k, short_v, out, 0.5f); }).find("attention: v "), std::string::npos);
  EXPECT_NE(message([&] { alibi::attention(q, k, k, out, std::nanf("")); }).find("slope"), std::string::npos);
  EXPECT_TRUE((out.array() == 3.0f).all()) << "out must be untouched after a rejected call";
}

TEST(EigenSixteenBit, OutSharingBytesWithSixteenBitKeysIsRejectedAndAdjacentOnesAreNot) {
  // One buffer holding bfloat16 keys (4 x 8, 64 bytes) and then a float out (4 x 8, 128 bytes): the overlap
  // test must measure each view in its own element size (keys measured in floats would reach into out).
  const Eigen::Index rows = 4, head_dim = 8;
  const std::size_t key_bytes = static_cast<std::size_t>(rows * head_dim) * sizeof(Eigen::bfloat16);
  const std::size_t out_bytes = static_cast<std::size_t>(rows * head_dim) * sizeof(float);
  std::vector<float> storage((key_bytes + out_bytes) / sizeof(float), 0.0f);
  auto* bytes = reinterpret_cast<unsigned char*>(storage.data());
  std::mt19937 rng(41);
  const RowMatrixXf q = random_matrix(rows, head_dim, rng);
  const RowMatrix16<Eigen::bfloat16> keys = random_matrix(rows, head_dim, rng).cast<Eigen::bfloat16>();
  const RowMatrix16<Eigen::bfloat16> v = random_matrix(rows, head_dim, rng).cast<Eigen::bfloat16>();
  std::memcpy(static_cast<void*>(bytes), keys.data(), key_bytes);
  const Eigen::Map<const RowMatrix16<Eigen::bfloat16>> k(reinterpret_cast<const Eigen::bfloat16*>(bytes), rows,
                                                         head_dim);

  // out starting one float before the keys end: its first float holds the last key element.
  Eigen::Map<RowMatrixXf> overlapping(storage.data() + key_bytes / sizeof(float) - 1, rows, head_dim);
  const std::string rejected = invalid_argument_message([&] { alibi::attention(q, k, v, overlapping, 0.5f); });
  EXPECT_NE(rejected.find("out shares elements with k"), std::string::npos) << rejected;

  Eigen::Map<RowMatrixXf> adjacent(storage.data() + key_bytes / sizeof(float), rows, head_dim);
  alibi::attention(q, k, v, adjacent, 0.5f);
  const RowMatrixXd expected = reference_attention(q.cast<double>(), widened(keys), widened(v), 0.5,
                                                   alibi::Mask::causal, 1.0 / std::sqrt(8.0), 0, -1);
  expect_close(RowMatrixXf(adjacent), expected, "out right after 16-bit keys");
}

}  // namespace
