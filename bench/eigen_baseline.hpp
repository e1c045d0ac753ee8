#pragma once
// The unfused attention a user would write with Eigen 3.4: per (batch, head) one GEMM for the scores, the
// ALiBi bias and causal mask added to the score matrix, a row softmax, and one GEMM for the output.
// Memory stays bounded by one q_len x kv_len score matrix, reused across heads.
//
// Include this header from exactly one TU (bench/eigen_baseline.cpp): that TU is built with one ISA's
// flags, and Eigen's inline code is not in an ABI namespace, so a second copy built with other flags
// could be merged with it by the linker.
#include <algorithm>
#include <cmath>
#include <cstdint>

#include <Eigen/Core>

#include "variants.hpp"

namespace alibi_bench {
namespace eigen_unfused {

using RowMajorMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using ConstHeadView = Eigen::Map<const RowMajorMatrix, Eigen::Unaligned, Eigen::OuterStride<>>;
using HeadView = Eigen::Map<RowMajorMatrix, Eigen::Unaligned, Eigen::OuterStride<>>;
using KeyIndexRow = Eigen::Array<float, 1, Eigen::Dynamic>;

inline void attention(const AttentionCall& call) {
  Eigen::setNbThreads(1);
  const std::int64_t q_len = call.shape.q_len;
  const std::int64_t kv_len = call.shape.kv_len;
  const int num_heads = call.shape.num_heads;
  const int num_kv_heads = call.shape.num_kv_heads;
  const int head_dim = call.shape.head_dim;
  const int group = num_heads / num_kv_heads;
  const std::int64_t q_pos0 = kv_len - q_len;
  const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
  const Eigen::OuterStride<> q_stride(static_cast<Eigen::Index>(num_heads) * head_dim);
  const Eigen::OuterStride<> kv_stride(static_cast<Eigen::Index>(num_kv_heads) * head_dim);

  // Key indices as floats: j - p is an exact integer below 2^24, so the bias m * (j - p) is rounded once.
  const KeyIndexRow key_index = KeyIndexRow::LinSpaced(kv_len, 0.0f, static_cast<float>(kv_len - 1));
  RowMajorMatrix scores(q_len, kv_len);

  for (int b = 0; b < call.shape.batch; ++b) {
    for (int h = 0; h < num_heads; ++h) {
      const int kv_head = h / group;
      const float slope = call.options.slopes[h];
      ConstHeadView q(call.q + (static_cast<std::int64_t>(b) * q_len * num_heads + h) * head_dim, q_len, head_dim,
                      q_stride);
      ConstHeadView k(call.k + (static_cast<std::int64_t>(b) * kv_len * num_kv_heads + kv_head) * head_dim, kv_len,
                      head_dim, kv_stride);
      ConstHeadView v(call.v + (static_cast<std::int64_t>(b) * kv_len * num_kv_heads + kv_head) * head_dim, kv_len,
                      head_dim, kv_stride);
      HeadView out(call.out + (static_cast<std::int64_t>(b) * q_len * num_heads + h) * head_dim, q_len, head_dim,
                   q_stride);

      scores.noalias() = q * k.transpose();
      for (std::int64_t i = 0; i < q_len; ++i) {
        const std::int64_t position = q_pos0 + i;
        const std::int64_t visible = position < 0 ? 0 : std::min(position + 1, kv_len);
        auto row = scores.row(i).array();
        if (visible < kv_len) row.tail(kv_len - visible).setZero();  // causal mask: weight exactly 0
        if (visible == 0) continue;
        auto seen = row.head(visible);
        seen = seen * scale + slope * (key_index.head(visible) - static_cast<float>(position));
        const float row_max = seen.maxCoeff();
        seen = (seen - row_max).exp();
        seen /= seen.sum();
      }
      out.noalias() = scores * v;
    }
  }
}

}  // namespace eigen_unfused
}  // namespace alibi_bench
