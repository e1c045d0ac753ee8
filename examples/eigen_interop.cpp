// alibi with Eigen: attention on one head of a model's [tokens][heads][head_dim] buffers through
// Eigen::Map views, the bias as an Eigen::MatrixXf, and a dense Eigen softmax as the cross-check; then the
// same head with K/V held as Eigen::bfloat16, as a 16-bit KV cache keeps them.
//
//   alibi_eigen_interop [tokens=256]
#include <Eigen/Core>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <vector>

#include "alibi/alibi.hpp"
#include "alibi/eigen.hpp"
#include "example_support.hpp"

int main(int argc, char** argv) {
  const Eigen::Index tokens = example::count_argument(argc, argv, 1, 256, 1, "[tokens=256]");
  if (!example::cpu_runs_this_build()) return 2;
  const Eigen::Index heads = 4, head_dim = 64, head = 2;

  // Raw buffers laid out as alibi (and most inference code) keeps them.
  const auto count = static_cast<std::size_t>(tokens * heads * head_dim);
  std::vector<float> q = example::random_floats(count, 1), k = example::random_floats(count, 2),
                     v = example::random_floats(count, 3), out(count, 0.0f);

  // One head is a strided view: head_dim floats per token, heads * head_dim floats apart. Strided inputs
  // are packed into temporaries by the wrapper; the strided output is written back in place.
  using HeadView = Eigen::Map<const alibi::RowMatrixXf, 0, Eigen::OuterStride<>>;
  const Eigen::OuterStride<> token_stride(heads * head_dim);
  const HeadView q_head(q.data() + head * head_dim, tokens, head_dim, token_stride);
  const HeadView k_head(k.data() + head * head_dim, tokens, head_dim, token_stride);
  const HeadView v_head(v.data() + head * head_dim, tokens, head_dim, token_stride);
  Eigen::Map<alibi::RowMatrixXf, 0, Eigen::OuterStride<>> out_head(out.data() + head * head_dim, tokens, head_dim,
                                                                   token_stride);
  const float slope = alibi::slopes(static_cast<int>(heads))[static_cast<std::size_t>(head)];
  alibi::attention(q_head, k_head, v_head, out_head, slope);

  // The same head the unfused way: dense logits + the bias from alibi::causal_bias, softmax per row.
  const Eigen::MatrixXf bias = alibi::causal_bias(slope, tokens, tokens);
  const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
  Eigen::MatrixXf logits = scale * (q_head * k_head.transpose()) + bias;
  Eigen::MatrixXf weights = (logits.colwise() - logits.rowwise().maxCoeff()).array().exp().matrix();
  weights = weights.array().colwise() / weights.rowwise().sum().array();
  const Eigen::MatrixXf dense = weights * v_head;

  // A contiguous head (here: a packed copy) needs no temporaries; the returning overload allocates out.
  const alibi::RowMatrixXf q_packed = q_head, k_packed = k_head, v_packed = v_head;
  const alibi::RowMatrixXf returned = alibi::attention(q_packed, k_packed, v_packed, slope);

  // 16-bit K/V: Eigen::bfloat16 (or Eigen::half) matrices are read in place as alibi::bfloat16; the result
  // is the fp32 attention of the rounded values, so it matches fp32 K/V holding those values bit for bit.
  const alibi::RowMatrixX<Eigen::bfloat16> k_bf16 = k_packed.cast<Eigen::bfloat16>(),
                                           v_bf16 = v_packed.cast<Eigen::bfloat16>();
  const alibi::RowMatrixXf from_bf16 = alibi::attention(q_packed, k_bf16, v_bf16, slope);
  const alibi::RowMatrixXf from_rounded_f32 =
      alibi::attention(q_packed, k_bf16.cast<float>(), v_bf16.cast<float>(), slope);

  const float strided_vs_dense = (dense - out_head).cwiseAbs().maxCoeff();
  const float returned_vs_strided = (returned - out_head).cwiseAbs().maxCoeff();
  const float bf16_vs_f32 = (from_bf16 - out_head).cwiseAbs().maxCoeff();
  const float bf16_vs_rounded_f32 = (from_bf16 - from_rounded_f32).cwiseAbs().maxCoeff();
  std::printf("head %ld of %ld (slope %g), %ld tokens, head_dim %ld, ISA %s\n", static_cast<long>(head),
              static_cast<long>(heads), static_cast<double>(slope), static_cast<long>(tokens),
              static_cast<long>(head_dim), alibi::isa::native::name);
  std::printf("bias corner (last 3 queries x first 3 keys):\n");
  for (Eigen::Index i = tokens - std::min<Eigen::Index>(3, tokens); i < tokens; ++i) {
    for (Eigen::Index j = 0; j < std::min<Eigen::Index>(3, tokens); ++j)
      std::printf(" %9.3f", static_cast<double>(bias(i, j)));
    std::printf("\n");
  }
  std::printf("fused (strided Map) vs dense Eigen softmax: max abs difference %.3g\n",
              static_cast<double>(strided_vs_dense));
  std::printf("returning overload on packed copies vs strided call: max abs difference %.3g\n",
              static_cast<double>(returned_vs_strided));
  std::printf("bfloat16 K/V vs fp32 K/V: max abs difference %.3g (K/V rounded to 8 significant bits)\n",
              static_cast<double>(bf16_vs_f32));
  std::printf("bfloat16 K/V vs fp32 K/V holding the same rounded values: max abs difference %.3g\n",
              static_cast<double>(bf16_vs_rounded_f32));
  const bool ok =
      strided_vs_dense < 1e-5f && returned_vs_strided == 0.0f && bf16_vs_f32 < 2e-2f && bf16_vs_rounded_f32 == 0.0f;
  std::printf("%s\n", ok ? "OK" : "MISMATCH");
  return ok ? 0 : 1;
}
