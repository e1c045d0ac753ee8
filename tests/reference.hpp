#pragma once
// Plain float64 reference of the whole alibi contract (issue 2), written straight from the contract text
// and sharing no code with the library: slopes, causal_bias and attention, one query row at a time.
// Only the library's plain data types (AttentionShape, AttentionOptions, Mask) are used, to read a call.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <vector>

#include "alibi/attention.hpp"

namespace alibi_test {

// fp32 unit roundoff.
constexpr double kUnitRoundoff = 0x1p-24;

// The contract's slope rule in double: n heads, p = largest power of two <= n,
//   h < p: 2^(-max_bias (h + 1) / p),   h >= p: 2^(-(max_bias / 2) (2 (h - p) + 1) / p).
inline std::vector<double> reference_slopes(int num_heads, double max_bias = 8.0) {
  int p = 1;
  while (2 * p <= num_heads) p *= 2;
  std::vector<double> m(static_cast<std::size_t>(num_heads));
  for (int h = 0; h < num_heads; ++h) {
    const double exponent = h < p ? -max_bias * (h + 1) / p : -(max_bias / 2) * (2.0 * (h - p) + 1.0) / p;
    m[static_cast<std::size_t>(h)] = std::pow(2.0, exponent);
  }
  return m;
}

// Position of query row 0 among the keys.
inline std::int64_t resolve_q_pos0(std::int64_t q_pos0, std::int64_t q_len, std::int64_t kv_len) {
  return q_pos0 == -1 ? kv_len - q_len : q_pos0;
}

// causal_bias as the contract states it, in double; -infinity where the key is in the query's future.
inline std::vector<double> reference_causal_bias(double slope, std::int64_t q_len, std::int64_t kv_len,
                                                 std::int64_t q_pos0 = -1) {
  const std::int64_t first = resolve_q_pos0(q_pos0, q_len, kv_len);
  std::vector<double> bias(static_cast<std::size_t>(q_len * kv_len));
  for (std::int64_t i = 0; i < q_len; ++i) {
    const std::int64_t p = first + i;
    for (std::int64_t j = 0; j < kv_len; ++j)
      bias[static_cast<std::size_t>(i * kv_len + j)] =
          j <= p ? -slope * static_cast<double>(p - j) : -std::numeric_limits<double>::infinity();
  }
  return bias;
}

// One attention call with every default resolved the way the contract defines it.
struct ReferenceProblem {
  const float* q = nullptr;
  const float* k = nullptr;
  const float* v = nullptr;
  alibi::AttentionShape shape;
  bool causal = true;
  std::int64_t window = 0;
  std::int64_t q_pos0 = 0;
  double scale = 0.0;
  std::vector<double> slopes;  // the float slopes the library is given (or alibi::slopes' floats), widened
};

inline ReferenceProblem make_reference_problem(const float* q, const float* k, const float* v,
                                               const alibi::AttentionShape& shape,
                                               const alibi::AttentionOptions& options) {
  ReferenceProblem pr;
  pr.q = q;
  pr.k = k;
  pr.v = v;
  pr.shape = shape;
  pr.causal = options.mask == alibi::Mask::causal;
  pr.window = options.window;
  pr.q_pos0 = resolve_q_pos0(options.q_pos0, shape.q_len, shape.kv_len);
  pr.scale = options.scale != 0.0f ? static_cast<double>(options.scale) : 1.0 / std::sqrt(double(shape.head_dim));
  if (options.slopes != nullptr) {
    pr.slopes.assign(options.slopes, options.slopes + shape.num_heads);
  } else {
    // nullptr means alibi::slopes(num_heads): a float per head, so round the exact slope once to float.
    for (double m : reference_slopes(shape.num_heads)) pr.slopes.push_back(static_cast<float>(m));
  }
  return pr;
}

// Key j is visible to the query at position p (contract: causal j <= p and p - j < window; bidirectional
// |p - j| < window; window 0 = unlimited).
inline bool reference_visible(const ReferenceProblem& pr, std::int64_t p, std::int64_t j) {
  const std::int64_t distance = p - j;
  if (pr.causal) return distance >= 0 && (pr.window == 0 || distance < pr.window);
  return pr.window == 0 || std::llabs(distance) < pr.window;
}

// The exact output of one (batch, query row, head) and a bound on the output error that fp32 rounding of
// the logits alone can cause.
//
// Note [logit rounding bound]: an fp32 kernel computes logit s_j = scale * (q . k_j) + b_j with an absolute
// error of about
//     delta_j = u * ((sqrt(D) + 2) * |scale| * sum_d |q_d k_jd| + 2 |b_j| + |s_j| + |s_j - max_k s_k|) + 4u
// (u = 2^-24). Terms: the D-term dot product, whose rounding errors have random signs and so grow like
// sqrt(D) u (Higham, "Accuracy and Stability of Numerical Algorithms", 2.8; the worst case D u never occurs
// with random data and would allow ~30x the errors seen), plus the scaling; the bias product and sum; the
// shift by the row maximum; a few ulp of exp. Softmax weights then move by
// w'_j / w_j = e^(eps_j) / sum_k w_k e^(eps_k) with |eps_j| <= delta_j, so with A = sum w_k e^(delta_k),
// B = sum w_k e^(-delta_k):  |w'_j - w_j| <= w_j c_j,  c_j = max(e^(delta_j) / B - 1, 1 - e^(-delta_j) / A),
// and the output error in dimension d is at most  sum_j w_j c_j |v_jd|.  This is what "fp32 rounding of the
// logits" implies, and the large-logit tests allow exactly that on top of the unit-scale tolerance.
struct ReferenceRow {
  std::vector<double> out;             // head_dim values; zeros when no key is visible
  std::vector<double> rounding_bound;  // per dimension, Note [logit rounding bound]
  std::int64_t visible_keys = 0;
};

inline ReferenceRow reference_row(const ReferenceProblem& pr, std::int64_t b, std::int64_t i, int h) {
  const alibi::AttentionShape& s = pr.shape;
  const std::int64_t D = s.head_dim;
  const int group = s.num_heads / s.num_kv_heads;
  const int kv_head = h / group;
  const std::int64_t p = pr.q_pos0 + i;
  const double m = pr.slopes[static_cast<std::size_t>(h)];
  const float* q = pr.q + ((b * s.q_len + i) * s.num_heads + h) * D;
  auto key_row = [&](const float* base, std::int64_t j) {
    return base + ((b * s.kv_len + j) * s.num_kv_heads + kv_head) * D;
  };

  ReferenceRow row;
  row.out.assign(static_cast<std::size_t>(D), 0.0);
  row.rounding_bound.assign(static_cast<std::size_t>(D), 0.0);

  std::vector<std::int64_t> keys;
  std::vector<double> logit, bias, dot_magnitude;
  for (std::int64_t j = 0; j < s.kv_len; ++j) {
    if (!reference_visible(pr, p, j)) continue;
    const float* k = key_row(pr.k, j);
    double dot = 0.0, magnitude = 0.0;
    for (std::int64_t d = 0; d < D; ++d) {
      dot += double(q[d]) * double(k[d]);
      magnitude += std::fabs(double(q[d]) * double(k[d]));
    }
    const double distance = static_cast<double>(p - j);
    const double b_j = -m * (pr.causal ? distance : std::fabs(distance));
    keys.push_back(j);
    bias.push_back(b_j);
    logit.push_back(pr.scale * dot + b_j);
    dot_magnitude.push_back(std::fabs(pr.scale) * magnitude);
  }
  row.visible_keys = static_cast<std::int64_t>(keys.size());
  if (keys.empty()) return row;

  const double max_logit = *std::max_element(logit.begin(), logit.end());
  std::vector<double> weight(keys.size());
  double total = 0.0;
  for (std::size_t n = 0; n < keys.size(); ++n) total += weight[n] = std::exp(logit[n] - max_logit);

  const double u = kUnitRoundoff;
  std::vector<double> delta(keys.size());
  double upper = 0.0, lower = 0.0;  // A and B of Note [logit rounding bound]
  for (std::size_t n = 0; n < keys.size(); ++n) {
    weight[n] /= total;
    const double dot_error = (std::sqrt(double(D)) + 2.0) * dot_magnitude[n];
    delta[n] = u * (dot_error + 2.0 * std::fabs(bias[n]) + std::fabs(logit[n]) + (max_logit - logit[n])) + 4.0 * u;
    upper += weight[n] * std::exp(delta[n]);
    lower += weight[n] * std::exp(-delta[n]);
  }
  for (std::size_t n = 0; n < keys.size(); ++n) {
    const double change = std::max(std::exp(delta[n]) / lower - 1.0, 1.0 - std::exp(-delta[n]) / upper);
    const float* v = key_row(pr.v, keys[n]);
    for (std::int64_t d = 0; d < D; ++d) {
      row.out[static_cast<std::size_t>(d)] += weight[n] * double(v[d]);
      row.rounding_bound[static_cast<std::size_t>(d)] += weight[n] * change * std::fabs(double(v[d]));
    }
  }
  return row;
}

// The whole output, laid out like `out`: [batch][q_len][num_heads][head_dim].
struct ReferenceOutput {
  std::vector<double> out;
  std::vector<double> rounding_bound;
};

inline ReferenceOutput reference_attention(const ReferenceProblem& pr) {
  const alibi::AttentionShape& s = pr.shape;
  const std::size_t count = static_cast<std::size_t>(s.batch * s.q_len * s.num_heads * s.head_dim);
  ReferenceOutput result;
  result.out.assign(count, 0.0);
  result.rounding_bound.assign(count, 0.0);
  for (std::int64_t b = 0; b < s.batch; ++b)
    for (std::int64_t i = 0; i < s.q_len; ++i)
      for (int h = 0; h < s.num_heads; ++h) {
        const ReferenceRow row = reference_row(pr, b, i, h);
        const std::size_t offset = static_cast<std::size_t>(((b * s.q_len + i) * s.num_heads + h) * s.head_dim);
        std::copy(row.out.begin(), row.out.end(), result.out.begin() + static_cast<std::ptrdiff_t>(offset));
        std::copy(row.rounding_bound.begin(), row.rounding_bound.end(),
                  result.rounding_bound.begin() + static_cast<std::ptrdiff_t>(offset));
      }
  return result;
}

}  // namespace alibi_test
