// alibi/eigen.hpp: the bias as an Eigen matrix and single-head attention on Eigen row-major matrices,
// checked against a float64 dense softmax written here with Eigen.
#include <gtest/gtest.h>

#include <Eigen/Core>
#include <cmath>
#include <cstdint>
#include <limits>
#include <ostream>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

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

}  // namespace
