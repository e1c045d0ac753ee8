#pragma once
// Eigen 3.4 interop: ALiBi bias and fused attention for one (batch, head) slice held in Eigen matrices.
// Opt-in (alibi.hpp does not include it) and the only alibi header that includes Eigen. K and V may be
// float, Eigen::bfloat16, Eigen::half, alibi::bfloat16 or alibi::float16 matrices.
#include <algorithm>
#include <cstdint>
#include <limits>
#include <type_traits>

#include <Eigen/Core>

#include "alibi/attention.hpp"
#include "alibi/bias.hpp"
#include "alibi/detail/checked.hpp"
#include "alibi/detail/config.hpp"
#include "alibi/detail/errors.hpp"
#include "alibi/detail/require_isa.hpp"
#include "alibi/types.hpp"

ALIBI_NAMESPACE_BEGIN

/// Dynamic-size, row-major matrix: the layout of one head's rows in alibi's tensors.
template <class Scalar>
using RowMatrixX = Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using RowMatrixXf = RowMatrixX<float>;

/// The causal ALiBi bias of one head as a q_len x kv_len matrix; same values and errors as
/// alibi::causal_bias(slope, q_len, kv_len, out, q_pos0).
///
/// `q_pos0` is a template parameter only so that a literal `0` picks this overload instead of being read
/// as a null `float* out` by the pointer overload; any integer type works.
/// @throws std::invalid_argument as alibi::causal_bias does.
template <class Position = std::int64_t, std::enable_if_t<std::is_integral<Position>::value, int> = 0>
Eigen::MatrixXf causal_bias(float slope, Eigen::Index q_len, Eigen::Index kv_len, Position q_pos0 = -1) {
  // Validate before allocating so a bad size throws std::invalid_argument, not std::bad_alloc.
  detail::require(q_len >= 0, "causal_bias", "q_len", "must be >= 0, got %lld", q_len);
  detail::require(kv_len >= 0, "causal_bias", "kv_len", "must be >= 0, got %lld", kv_len);
  detail::checked_mul(q_len, kv_len, "causal_bias", "q_len * kv_len");
  RowMatrixXf rows(q_len, kv_len);
  causal_bias(slope, q_len, kv_len, rows.data(), static_cast<std::int64_t>(q_pos0));
  return rows;  // Eigen::MatrixXf is column-major; the conversion transposes the storage order
}

namespace detail {

// Eigen's 16-bit scalars are read in place as alibi's: an Eigen::bfloat16 / Eigen::half matrix's data
// pointer becomes an alibi::bfloat16 / float16 pointer. That needs the same size and alignment, no hidden
// state (trivially copyable, standard layout) and one 16-bit member holding the raw bits: the top half
// of a binary32 (Eigen::bfloat16::value) and a binary16 (Eigen::half::x, a uint16 or an ARM __fp16).
// tests/eigen_interop_test.cpp checks that both libraries round a float to the same bits.
static_assert(sizeof(Eigen::bfloat16) == sizeof(bfloat16), "Eigen::bfloat16 must have alibi::bfloat16's size");
static_assert(alignof(Eigen::bfloat16) == alignof(bfloat16), "Eigen::bfloat16 must have alibi::bfloat16's alignment");
static_assert(std::is_trivially_copyable<Eigen::bfloat16>::value, "Eigen::bfloat16 must be plain data");
static_assert(std::is_standard_layout<Eigen::bfloat16>::value, "Eigen::bfloat16 must be plain data");
static_assert(std::is_same<decltype(Eigen::bfloat16::value), unsigned short>::value,
              "Eigen::bfloat16 must hold its raw 16 bits");
static_assert(sizeof(Eigen::bfloat16::value) == sizeof(Eigen::bfloat16),
              "Eigen::bfloat16 must hold nothing but its raw 16 bits");
static_assert(sizeof(Eigen::half) == sizeof(float16), "Eigen::half must have alibi::float16's size");
static_assert(alignof(Eigen::half) == alignof(float16), "Eigen::half must have alibi::float16's alignment");
static_assert(std::is_trivially_copyable<Eigen::half>::value, "Eigen::half must be plain data");
static_assert(std::is_standard_layout<Eigen::half>::value, "Eigen::half must be plain data");
static_assert(sizeof(Eigen::half::x) == sizeof(Eigen::half), "Eigen::half must hold nothing but its 16 bits");

// The alibi element type whose bits a K/V matrix scalar holds; undefined for other scalars.
template <class Scalar>
struct KvElement;
template <>
struct KvElement<float> {
  using type = float;
};
template <>
struct KvElement<bfloat16> {
  using type = bfloat16;
};
template <>
struct KvElement<float16> {
  using type = float16;
};
template <>
struct KvElement<Eigen::bfloat16> {
  using type = bfloat16;
};
template <>
struct KvElement<Eigen::half> {
  using type = float16;
};

template <class Scalar>
constexpr bool is_16bit_kv_scalar =
    std::is_same<Scalar, Eigen::bfloat16>::value || std::is_same<Scalar, Eigen::half>::value ||
    std::is_same<Scalar, bfloat16>::value || std::is_same<Scalar, float16>::value;

// K and V matrices of one 16-bit scalar type (float K/V take the Eigen::Ref overloads).
template <class KMatrix, class VMatrix>
constexpr bool is_16bit_kv_pair = (std::is_same<typename KMatrix::Scalar, typename VMatrix::Scalar>::value &&
                                   is_16bit_kv_scalar<typename KMatrix::Scalar>);

// Largest integer <= a / b for b > 0.
inline std::int64_t floor_div(std::int64_t a, std::int64_t b) {
  return a / b - (a % b != 0 && a < 0 ? 1 : 0);
}

// True when two row-major views share at least one byte. A view is `rows` runs of `cols` elements, one
// every `outerStride()` elements; runs of `a` are tested against the arithmetic progression of `b`'s runs,
// so interleaved views of one buffer (q and out as column blocks of a fused tensor) are not confused
// with aliasing ones. The two views may have different element sizes (a float out and 16-bit K/V).
template <class ViewA, class ViewB>
bool share_elements(const ViewA& a, const ViewB& b) {
  if (a.size() == 0 || b.size() == 0) return false;
  constexpr std::int64_t a_element = sizeof(typename ViewA::Scalar);
  constexpr std::int64_t b_element = sizeof(typename ViewB::Scalar);
  const auto b_first = reinterpret_cast<std::intptr_t>(b.data());
  const std::int64_t b_run = b.cols() * b_element;
  const std::int64_t b_step = b.rows() > 1 ? b.outerStride() * b_element : 0;
  for (Eigen::Index i = 0; i < a.rows(); ++i) {
    // a's run i as a byte interval [start, start + a_run) relative to b's first byte.
    const std::int64_t start = reinterpret_cast<std::intptr_t>(a.data() + i * a.outerStride()) - b_first;
    const std::int64_t a_run = a.cols() * a_element;
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
  require(cols == head_dim, "attention", parameter, "must have head_dim = q.cols() = %lld columns, got %lld", head_dim,
          cols);
}

// The slice attention behind the public overloads below, for K/V matrices of any KvElement scalar.
template <class Isa, class KvScalar>
void slice_attention(const Eigen::Ref<const RowMatrixXf>& q, const Eigen::Ref<const RowMatrixX<KvScalar>>& k,
                     const Eigen::Ref<const RowMatrixX<KvScalar>>& v, Eigen::Ref<RowMatrixXf> out, float slope,
                     const AttentionOptions& options) {
  require_isa<Isa>();
  const Eigen::Index head_dim = q.cols();
  require_columns(k.cols(), head_dim, "k");
  require_columns(v.cols(), head_dim, "v");
  require_columns(out.cols(), head_dim, "out");
  require(v.rows() == k.rows(), "attention", "v", "must have kv_len = k.rows() = %lld rows, got %lld", k.rows(),
          v.rows());
  require(out.rows() == q.rows(), "attention", "out", "must have q_len = q.rows() = %lld rows, got %lld", q.rows(),
          out.rows());
  // Checked on the caller's views: the pointer API only sees the packed copies made below.
  const char* aliased = share_elements(out, q)   ? "q"
                        : share_elements(out, k) ? "k"
                        : share_elements(out, v) ? "v"
                                                 : nullptr;
  require(aliased == nullptr, "attention", "out", "shares elements with %s", aliased);

  // An Eigen::Ref allows any outer stride; the kernel needs rows packed back to back.
  const auto packed = [](const auto& m) { return m.outerStride() == m.cols() || m.rows() <= 1; };
  const RowMatrixXf q_copy = packed(q) ? RowMatrixXf() : RowMatrixXf(q);
  const RowMatrixX<KvScalar> k_copy = packed(k) ? RowMatrixX<KvScalar>() : RowMatrixX<KvScalar>(k);
  const RowMatrixX<KvScalar> v_copy = packed(v) ? RowMatrixX<KvScalar>() : RowMatrixX<KvScalar>(v);

  AttentionShape shape;
  shape.batch = 1;
  shape.q_len = q.rows();
  shape.kv_len = k.rows();
  shape.num_heads = 1;
  shape.num_kv_heads = 1;
  // AttentionShape holds head_dim as int: reject a wider one by name instead of truncating it.
  require(head_dim <= Eigen::Index(std::numeric_limits<int>::max()), "attention", "head_dim",
          "must fit in int, got %lld", head_dim);
  shape.head_dim = static_cast<int>(head_dim);
  AttentionOptions head_options = options;
  head_options.slopes = &slope;

  // Same bits, read in place (the static_asserts above): Eigen's 16-bit scalars become alibi's.
  using Element = typename KvElement<KvScalar>::type;
  const float* q_data = packed(q) ? q.data() : q_copy.data();
  const auto* k_data = reinterpret_cast<const Element*>(packed(k) ? k.data() : k_copy.data());
  const auto* v_data = reinterpret_cast<const Element*>(packed(v) ? v.data() : v_copy.data());
  if (packed(out)) {
    alibi::attention<Isa>(q_data, k_data, v_data, out.data(), shape, head_options);
  } else {
    RowMatrixXf result(out.rows(), out.cols());
    alibi::attention<Isa>(q_data, k_data, v_data, result.data(), shape, head_options);
    out = result;
  }
}

}  // namespace detail

/// Fused ALiBi attention of a single (batch, head) slice:
///   out = softmax(scale * q k^T + bias) v
/// with q and out [q_len x head_dim], k and v [kv_len x head_dim], one head with slope `slope`.
/// Every other option (mask, scale, window, q_pos0, kv_pos0, lse: q.rows() floats, num_threads, skip_tolerance)
/// has the meaning it has in
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
  detail::slice_attention<Isa, float>(q, k, v, out, slope, options);
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

/// The slice attention above with 16-bit K and V: matrix expressions (Map, block, Ref, either storage
/// order) of one scalar type, Eigen::bfloat16, Eigen::half, alibi::bfloat16 or alibi::float16. The result
/// is exactly the fp32 attention of q against the K and V values widened to float; q, out, the slope and
/// all arithmetic stay fp32. Row-major K/V with contiguous rows are read in place, without a conversion
/// pass or a copy.
/// @throws std::invalid_argument as the float overload does.
template <class Isa = isa::native, class KMatrix, class VMatrix,
          std::enable_if_t<detail::is_16bit_kv_pair<KMatrix, VMatrix>, int> = 0>
void attention(const Eigen::Ref<const RowMatrixXf>& q, const Eigen::MatrixBase<KMatrix>& k,
               const Eigen::MatrixBase<VMatrix>& v, Eigen::Ref<RowMatrixXf> out, float slope,
               const AttentionOptions& options = {}) {
  using KvScalar = typename KMatrix::Scalar;
  detail::slice_attention<Isa, KvScalar>(q, k, v, out, slope, options);
}

/// Returning variant of the 16-bit K/V slice attention: a new q.rows() x q.cols() row-major matrix.
/// @throws std::invalid_argument as the float overload does.
template <class Isa = isa::native, class KMatrix, class VMatrix,
          std::enable_if_t<detail::is_16bit_kv_pair<KMatrix, VMatrix>, int> = 0>
RowMatrixXf attention(const Eigen::Ref<const RowMatrixXf>& q, const Eigen::MatrixBase<KMatrix>& k,
                      const Eigen::MatrixBase<VMatrix>& v, float slope, const AttentionOptions& options = {}) {
  RowMatrixXf out(q.rows(), q.cols());
  attention<Isa>(q, k, v, out, slope, options);
  return out;
}

ALIBI_NAMESPACE_END
