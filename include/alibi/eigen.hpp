#pragma once
// Eigen 3.4 interop: ALiBi bias and fused attention for one (batch, head) slice held in Eigen matrices.
// Opt-in (alibi.hpp does not include it) and the only alibi header that includes Eigen.
#include <algorithm>
#include <cstdint>
#include <limits>
#include <string>
#include <type_traits>

#include <Eigen/Core>

#include "alibi/attention.hpp"
#include "alibi/bias.hpp"
#include "alibi/detail/checked.hpp"
#include "alibi/detail/config.hpp"
#include "alibi/detail/errors.hpp"

ALIBI_NAMESPACE_BEGIN

/// Dynamic-size, row-major float matrix: the layout of one head's rows in alibi's tensors.
using RowMatrixXf = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

/// The causal ALiBi bias of one head as a q_len x kv_len matrix; same values and errors as
/// alibi::causal_bias(slope, q_len, kv_len, out, q_pos0).
///
/// `q_pos0` is a template parameter only so that a literal `0` picks this overload instead of being read
/// as a null `float* out` by the pointer overload; any integer type works.
/// @throws std::invalid_argument as alibi::causal_bias does.
template <class Position = std::int64_t, std::enable_if_t<std::is_integral<Position>::value, int> = 0>
Eigen::MatrixXf causal_bias(float slope, Eigen::Index q_len, Eigen::Index kv_len, Position q_pos0 = -1) {
  // Validate before allocating so a bad size throws std::invalid_argument, not std::bad_alloc.
  detail::require(q_len >= 0, "causal_bias", "q_len", "must be >= 0, got " + std::to_string(q_len));
  detail::require(kv_len >= 0, "causal_bias", "kv_len", "must be >= 0, got " + std::to_string(kv_len));
  detail::checked_mul(q_len, kv_len, "causal_bias", "q_len * kv_len");
  RowMatrixXf rows(q_len, kv_len);
  causal_bias(slope, q_len, kv_len, rows.data(), static_cast<std::int64_t>(q_pos0));
  return rows;  // Eigen::MatrixXf is column-major; the conversion transposes the storage order
}

namespace detail {

// Largest integer <= a / b for b > 0.
inline std::int64_t floor_div(std::int64_t a, std::int64_t b) {
  return a / b - (a % b != 0 && a < 0 ? 1 : 0);
}

// True when two row-major views share at least one float. A view is `rows` runs of `cols` floats, one
// every `outerStride()` floats; runs of `a` are tested against the arithmetic progression of `b`'s runs,
// so interleaved views of one buffer (q and out as column blocks of a fused tensor) are not confused
// with aliasing ones.
template <class ViewA, class ViewB>
bool share_elements(const ViewA& a, const ViewB& b) {
  if (a.size() == 0 || b.size() == 0) return false;
  constexpr std::int64_t kFloat = sizeof(float);
  const auto b_first = reinterpret_cast<std::intptr_t>(b.data());
  const std::int64_t b_run = b.cols() * kFloat;
  const std::int64_t b_step = b.rows() > 1 ? b.outerStride() * kFloat : 0;
  for (Eigen::Index i = 0; i < a.rows(); ++i) {
    // a's run i as a byte interval [start, start + a_run) relative to b's first float.
    const std::int64_t start = reinterpret_cast<std::intptr_t>(a.data() + i * a.outerStride()) - b_first;
    const std::int64_t a_run = a.cols() * kFloat;
    if (b_step <= 0) {
      if (start < b_run && start + a_run > 0) return true;
      continue;
    }
    // b's run r is [r * b_step, r * b_step + b_run); it meets a's run iff start - b_run < r * b_step < start + a_run.
    const std::int64_t r_low = std::max<std::int64_t>(floor_div(start - b_run, b_step) + 1, 0);
    const std::int64_t r_high = std::min<std::int64_t>(floor_div(start + a_run - 1, b_step), b.rows() - 1);
    if (r_low <= r_high) return true;
  }
  return false;
}

inline void require_columns(Eigen::Index cols, Eigen::Index head_dim, const char* parameter) {
  require(cols == head_dim, "attention", parameter,
          "must have head_dim = q.cols() = " + std::to_string(head_dim) + " columns, got " + std::to_string(cols));
}

}  // namespace detail

/// Fused ALiBi attention of a single (batch, head) slice:
///   out = softmax(scale * q k^T + bias) v
/// with q and out [q_len x head_dim], k and v [kv_len x head_dim], one head with slope `slope`.
/// Every other option (mask, scale, window, q_pos0, num_threads, skip_tolerance) has the meaning it has in
/// alibi::attention; `options.slopes` is ignored because `slope` gives the head's slope explicitly.
///
/// Any row-major float matrix, Map or block binds to the arguments. Inputs whose rows are not contiguous
/// (a head sliced out of a [tokens][heads][head_dim] tensor) or that are column-major are copied to a
/// contiguous temporary by Eigen::Ref; `out` may be a strided row-major view, in which case the result goes
/// through a temporary as well.
///
/// @throws std::invalid_argument naming the parameter when the shapes disagree (k, v or out with a column
///         count other than q.cols(), v with a row count other than k.rows(), out with a row count other
///         than q.rows()), when `out` overlaps q, k or v, and for everything alibi::attention rejects
///         (e.g. head_dim = 0, a non-finite slope). `out` is untouched then.
template <class Isa = isa::native>
void attention(const Eigen::Ref<const RowMatrixXf>& q, const Eigen::Ref<const RowMatrixXf>& k,
               const Eigen::Ref<const RowMatrixXf>& v, Eigen::Ref<RowMatrixXf> out, float slope,
               const AttentionOptions& options = {}) {
  detail::require_isa<Isa>();
  const Eigen::Index head_dim = q.cols();
  detail::require_columns(k.cols(), head_dim, "k");
  detail::require_columns(v.cols(), head_dim, "v");
  detail::require_columns(out.cols(), head_dim, "out");
  detail::require(
      v.rows() == k.rows(), "attention", "v",
      "must have kv_len = k.rows() = " + std::to_string(k.rows()) + " rows, got " + std::to_string(v.rows()));
  detail::require(
      out.rows() == q.rows(), "attention", "out",
      "must have q_len = q.rows() = " + std::to_string(q.rows()) + " rows, got " + std::to_string(out.rows()));
  // Checked on the caller's views: the pointer API only sees the packed copies made below.
  const char* aliased = detail::share_elements(out, q)   ? "q"
                        : detail::share_elements(out, k) ? "k"
                        : detail::share_elements(out, v) ? "v"
                                                         : nullptr;
  if (aliased != nullptr)
    detail::invalid_argument(std::string("alibi::attention: out shares elements with ") + aliased);

  // Ref<const RowMatrixXf> allows any outer stride; the kernel needs rows packed back to back.
  const auto packed = [](const Eigen::Ref<const RowMatrixXf>& m) {
    return m.outerStride() == m.cols() || m.rows() <= 1;
  };
  const RowMatrixXf q_copy = packed(q) ? RowMatrixXf() : RowMatrixXf(q);
  const RowMatrixXf k_copy = packed(k) ? RowMatrixXf() : RowMatrixXf(k);
  const RowMatrixXf v_copy = packed(v) ? RowMatrixXf() : RowMatrixXf(v);

  AttentionShape shape;
  shape.batch = 1;
  shape.q_len = q.rows();
  shape.kv_len = k.rows();
  shape.num_heads = 1;
  shape.num_kv_heads = 1;
  // AttentionShape holds head_dim as int: reject a wider one by name instead of truncating it.
  detail::require(head_dim <= Eigen::Index(std::numeric_limits<int>::max()), "attention", "head_dim",
                  "must fit in int, got " + std::to_string(head_dim));
  shape.head_dim = static_cast<int>(head_dim);
  AttentionOptions head_options = options;
  head_options.slopes = &slope;

  const float* q_data = packed(q) ? q.data() : q_copy.data();
  const float* k_data = packed(k) ? k.data() : k_copy.data();
  const float* v_data = packed(v) ? v.data() : v_copy.data();
  if (packed(out)) {
    alibi::attention<Isa>(q_data, k_data, v_data, out.data(), shape, head_options);
  } else {
    RowMatrixXf result(out.rows(), out.cols());
    alibi::attention<Isa>(q_data, k_data, v_data, result.data(), shape, head_options);
    out = result;
  }
}

/// Returning variant of the slice attention above: a new q.rows() x q.cols() row-major matrix.
/// @throws std::invalid_argument as the overload with `out` does.
template <class Isa = isa::native>
RowMatrixXf attention(const Eigen::Ref<const RowMatrixXf>& q, const Eigen::Ref<const RowMatrixXf>& k,
                      const Eigen::Ref<const RowMatrixXf>& v, float slope, const AttentionOptions& options = {}) {
  RowMatrixXf out(q.rows(), q.cols());
  attention<Isa>(q, k, v, out, slope, options);
  return out;
}

ALIBI_NAMESPACE_END
