#pragma once
// The oracle of the reliability tests and the fuzzer: which calls the contract rejects, and what a
// accepted call must produce, with an error bound that holds for adversarial inputs.
//
// Written from the contract (issue 2, alibi/attention.hpp), sharing no code with the library. Unlike the
// unit tests' reference (tests/reference.hpp), whose logit rounding bound uses the statistical sqrt(D)
// growth of random data, this bound is a worst-case one: a fuzzer searches for exactly the inputs where
// a statistical bound fails.
//
// Note [fp32 error bound]: the kernel computes each logit s_j = scale * (q . k_j) - m |p - j| in fp32 and
// its softmax weights from those. With u = 2^-24, a logit it forms is within
//     delta_j = u ((D + 4) |scale| sum_d |q_d k_jd| + 3 |m (p - j)| + |s_j| + (max_k s_k - s_j)) + 8 u
//               + 2^-149 (sum_d |k_jd| + D + 2)
// of s_j: q * scale rounded and a D-term dot product (gamma_{D+1}, one more u for the fp32 default scale
// 1/sqrtf(D)), the distance and bias products, the shift by the row max, a few ulp of exp, and absolute
// errors of products in the subnormal range. The weights w'_j the kernel can then produce lie in
//     [1 / (1 + sum_{k != j} e^{(s_k + delta_k) - (s_j - delta_j)}),
//      1 / (1 + sum_{k != j} e^{(s_k - delta_k) - (s_j + delta_j)})]
// which stays meaningful (weight anywhere in [0, 1]) when delta is larger than the logit gaps, e.g. for
// logits near the fp32 range. The output error in dimension d is at most
//     sum_j max|w'_j - w_j| |v_jd|  +  (2n + 16) u sum_j w'_j |v_jd|  (P.V accumulation, sum, normalisation)
//     + n 2^-149 (subnormal products) + n e^-87.3 max|v_d| (exp flushes terms below e^-87.3 to zero)
//     + 4 t max|v_d| (block skipping drops at most the fraction t = skip_tolerance of the mass per side)
// and the contract's 2e-5 max|ref| per case comes on top. Whatever the logits, the output is a weighted
// mean of the visible value rows: each dimension lies in [min_j v_jd, max_j v_jd] up to the P.V rounding.
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <string>
#include <vector>

#include "call.hpp"

namespace alibi_reliability {

using int128 = __int128;

constexpr double kUnitRoundoff = 0x1p-24;
constexpr double kSubnormalStep = 0x1p-149;
// Skip tolerances above this are not accuracy-checked (the caller asked for a coarse answer): only
// finiteness and the convex-combination bound are.
constexpr float kLargestCheckedSkipTolerance = 1e-4f;

// ---- the contract's rule for the default slopes, in double, rounded once to float

inline std::vector<float> contract_slopes(int num_heads) {
  int p = 1;
  while (2 * p <= num_heads) p *= 2;
  std::vector<float> m;
  for (int h = 0; h < num_heads; ++h) {
    const double exponent = h < p ? -8.0 * (h + 1) / p : -4.0 * (2.0 * (h - p) + 1.0) / p;
    m.push_back(static_cast<float>(std::pow(2.0, exponent)));
  }
  return m;
}

// ---- which calls must be rejected

// The largest element count whose byte size fits std::ptrdiff_t (and so std::size_t).
constexpr int128 kMaxElements = int128{PTRDIFF_MAX} / static_cast<int128>(sizeof(float));

// The product of four sizes, exact up to 2^100 and saturated there (far past kMaxElements); -1 if any
// size is negative. (Four sizes up to 2^63 would overflow even __int128.)
inline int128 element_count(std::int64_t a, std::int64_t b, std::int64_t c, std::int64_t d) {
  const std::int64_t sizes[] = {a, b, c, d};
  for (std::int64_t s : sizes)
    if (s < 0) return -1;
  for (std::int64_t s : sizes)
    if (s == 0) return 0;
  constexpr int128 kSaturated = int128{1} << 100;
  int128 product = 1;
  for (std::int64_t s : sizes) {
    if (product > kSaturated / s) return kSaturated;
    product *= s;
  }
  return product;
}

inline int128 q_elements(const Call& c) {
  return element_count(c.shape.batch, c.shape.q_len, c.shape.num_heads, c.shape.head_dim);
}
inline int128 kv_elements(const Call& c) {
  return element_count(c.shape.batch, c.shape.kv_len, c.shape.num_kv_heads, c.shape.head_dim);
}

enum class Verdict { accept, reject, either };

// Whether `a_count` elements of `a_bytes` bytes at a share a byte with `b_count` elements of `b_bytes` at b.
inline bool byte_ranges_overlap(const void* a, int128 a_count, int a_bytes, const void* b, int128 b_count,
                                int b_bytes) {
  if (a == nullptr || b == nullptr || a_count <= 0 || b_count <= 0) return false;
  const auto pa = static_cast<int128>(reinterpret_cast<std::uintptr_t>(a));
  const auto pb = static_cast<int128>(reinterpret_cast<std::uintptr_t>(b));
  const auto na = a_count * a_bytes;
  const auto nb = b_count * b_bytes;
  return pa < pb + nb && pb < pa + na;
}

// The k and v the library is given, when they are not the floats c.k and c.v: 16-bit K/V (issue 11), whose
// elements take 2 bytes. The rules on null and overlapping tensors apply to this memory, while the
// accuracy checks read c.k and c.v, which then hold the exact values of the 16-bit elements as floats.
struct KvArguments {
  const void* k = nullptr;
  const void* v = nullptr;
  int element_bytes = static_cast<int>(sizeof(float));
};

// What the contract says about a call: the issue 2 rejection list plus what attention.hpp documents
// (num_threads < 0, skip_tolerance, an enumerator outside Mask, q_pos0 + q_len overflowing).
// `either` where the contract leaves the choice to the library: a null k or v with no query to read them.
inline Verdict expected_verdict(const Call& c, const KvArguments& kv, std::string* why = nullptr) {
  auto reject = [&](const char* reason) {
    if (why != nullptr) *why = reason;
    return Verdict::reject;
  };
  const alibi::AttentionShape& s = c.shape;
  const alibi::AttentionOptions& o = c.options;
  if (s.batch < 0) return reject("batch < 0");
  if (s.q_len < 0) return reject("q_len < 0");
  if (s.kv_len < 0) return reject("kv_len < 0");
  if (s.num_heads <= 0) return reject("num_heads <= 0");
  if (s.num_kv_heads <= 0) return reject("num_kv_heads <= 0");
  if (s.num_heads % s.num_kv_heads != 0) return reject("num_kv_heads does not divide num_heads");
  if (s.head_dim <= 0) return reject("head_dim <= 0");
  if (o.mask != alibi::Mask::causal && o.mask != alibi::Mask::bidirectional) return reject("mask is not an enumerator");
  if (o.window < 0) return reject("window < 0");
  if (o.q_pos0 < -1) return reject("q_pos0 < -1");
  if (int128{o.q_pos0} + s.q_len > INT64_MAX) return reject("q_pos0 + q_len overflows");
  if (o.kv_pos0 < 0) return reject("kv_pos0 < 0");
  if (int128{o.kv_pos0} + s.kv_len > INT64_MAX) return reject("kv_pos0 + kv_len overflows");
  if (o.num_threads < 0) return reject("num_threads < 0");
  if (!std::isfinite(o.scale)) return reject("non-finite scale");
  if (!(std::isfinite(o.skip_tolerance) && o.skip_tolerance >= 0.0f)) return reject("bad skip_tolerance");
  if (o.slopes != nullptr)
    for (int h = 0; h < s.num_heads; ++h)
      if (!std::isfinite(o.slopes[h])) return reject("non-finite slope");
  const int128 nq = q_elements(c), nkv = kv_elements(c);
  if (nq > kMaxElements) return reject("q/out element count overflows");
  if (nkv > kMaxElements) return reject("k/v element count overflows");
  if (nq > 0 && (c.q == nullptr || c.out == nullptr)) return reject("null q or out");
  if (nq > 0 && nkv > 0 && (kv.k == nullptr || kv.v == nullptr)) return reject("null k or v");
  const int float_bytes = static_cast<int>(sizeof(float));
  if (byte_ranges_overlap(c.out, nq, float_bytes, c.q, nq, float_bytes)) return reject("out overlaps q");
  if (nq > 0 && (byte_ranges_overlap(c.out, nq, float_bytes, kv.k, nkv, kv.element_bytes) ||
                 byte_ranges_overlap(c.out, nq, float_bytes, kv.v, nkv, kv.element_bytes)))
    return reject("out overlaps k or v");
  // lse (issue 12): one float per output row, never sharing a byte with the tensors.
  const int128 rows = element_count(s.batch, s.q_len, s.num_heads, 1);
  if (o.lse != nullptr && (byte_ranges_overlap(o.lse, rows, float_bytes, c.q, nq, float_bytes) ||
                           byte_ranges_overlap(o.lse, rows, float_bytes, c.out, nq, float_bytes)))
    return reject("lse overlaps q or out");
  if (o.lse != nullptr && nq > 0 &&
      (byte_ranges_overlap(o.lse, rows, float_bytes, kv.k, nkv, kv.element_bytes) ||
       byte_ranges_overlap(o.lse, rows, float_bytes, kv.v, nkv, kv.element_bytes)))
    return reject("lse overlaps k or v");
  // The written arrays against the per-head and per-key inputs (read while out and lse are written).
  const int128 norms = element_count(s.batch, s.kv_len, s.num_kv_heads, 1);
  const int128 lse_rows = o.lse != nullptr ? rows : 0;
  if (byte_ranges_overlap(c.out, nq, float_bytes, o.slopes, s.num_heads, float_bytes) ||
      byte_ranges_overlap(o.lse, lse_rows, float_bytes, o.slopes, s.num_heads, float_bytes))
    return reject("out or lse overlaps slopes");
  if (nq > 0 && nkv > 0 &&
      (byte_ranges_overlap(c.out, nq, float_bytes, o.key_norms, norms, float_bytes) ||
       byte_ranges_overlap(o.lse, lse_rows, float_bytes, o.key_norms, norms, float_bytes)))
    return reject("out or lse overlaps key_norms");
  if (nq == 0 && nkv > 0 && (kv.k == nullptr || kv.v == nullptr)) return Verdict::either;
  return Verdict::accept;
}

// A call with float K/V.
inline Verdict expected_verdict(const Call& c, std::string* why = nullptr) {
  return expected_verdict(c, KvArguments{c.k, c.v, static_cast<int>(sizeof(float))}, why);
}

// ---- what an accepted call must produce

// The position of query row 0 counted from key row 0 (the contract places key row j at kv_pos0 + j, and
// only position differences matter). int128: the difference of two int64 positions.
inline int128 resolved_q_pos0(const Call& c) {
  return c.options.q_pos0 == -1 ? int128{c.shape.kv_len} - c.shape.q_len : int128{c.options.q_pos0} - c.options.kv_pos0;
}

// The contract's visibility rule, for key j and the query at position p (window 0: unlimited).
inline bool contract_visible(const Call& c, int128 p, int128 j) {
  const int128 distance = p - j;
  const std::int64_t window = c.options.window;
  if (is_causal(c)) return distance >= 0 && (window == 0 || distance < window);
  return window == 0 || (distance < 0 ? -distance : distance) < window;
}

// Visible keys [lo, hi) of the query at position p (the rule above always gives an interval).
inline void visible_interval(const Call& c, int128 p, std::int64_t& lo, std::int64_t& hi) {
  const std::int64_t kv_len = c.shape.kv_len;
  if (kv_len <= 4096) {  // small: straight from the rule, key by key
    lo = hi = 0;
    bool found = false;
    for (std::int64_t j = 0; j < kv_len; ++j) {
      if (!contract_visible(c, p, j)) continue;
      if (!found) lo = j;
      found = true;
      hi = j + 1;
    }
    return;
  }
  const int128 w = c.options.window;
  int128 first = w > 0 ? p - w + 1 : 0;
  int128 end = is_causal(c) ? p + 1 : (w > 0 ? p + w : int128{kv_len});
  first = std::max<int128>(first, 0);
  end = std::min<int128>(end, kv_len);
  if (end < first) end = first;
  lo = static_cast<std::int64_t>(first);
  hi = static_cast<std::int64_t>(end);
}

struct RowExpectation {
  std::int64_t lo = 0, hi = 0;       // visible keys
  bool sees_nonfinite = false;       // its query row, or a visible key or value row, holds a NaN or inf
  bool sees_nan = false;             // ... holds a NaN
  bool sees_inf = false;             // ... holds an infinity
  bool near_fp32_overflow = false;   // some logit the fp32 kernel forms may leave the float range
  std::vector<double> ref;           // exact output (float64), per dimension
  std::vector<double> bound;         // Note [fp32 error bound], per dimension (without the 2e-5 max|ref| term)
  std::vector<double> max_abs_v;     // over the visible value rows, per dimension
  std::vector<double> min_v, max_v;  // the box around the visible value rows, per dimension
  double lse = -HUGE_VAL;            // exact log-sum-exp of the visible logits (issue 12)
  double lse_bound = 0.0;            // how far the kernel's fp32 lse may be from it
};

inline bool all_finite(const float* x, int n) {
  for (int d = 0; d < n; ++d)
    if (!std::isfinite(x[d])) return false;
  return true;
}

inline bool any_nan(const float* x, int n) {
  for (int d = 0; d < n; ++d)
    if (std::isnan(x[d])) return true;
  return false;
}

inline bool any_inf(const float* x, int n) {
  for (int d = 0; d < n; ++d)
    if (std::isinf(x[d])) return true;
  return false;
}

// Row (b, i, h) of an accepted call; `slopes` are the num_heads floats the call uses.
inline RowExpectation expect_row(const Call& c, const float* slopes, std::int64_t b, std::int64_t i, int h) {
  const alibi::AttentionShape& s = c.shape;
  const int D = s.head_dim;
  const int kv_head = h / (s.num_heads / s.num_kv_heads);
  const int128 p = resolved_q_pos0(c) + i;
  const float scale_option = c.options.scale;
  const double scale =
      scale_option != 0.0f ? static_cast<double>(scale_option) : 1.0 / std::sqrt(static_cast<double>(D));
  const double m = slopes[h];
  const double u = kUnitRoundoff;
  const float* q = c.q + ((b * s.q_len + i) * s.num_heads + h) * D;
  auto kv_row = [&](const float* base, std::int64_t j) {
    return base + ((b * s.kv_len + j) * s.num_kv_heads + kv_head) * static_cast<std::int64_t>(D);
  };

  RowExpectation row;
  visible_interval(c, p, row.lo, row.hi);
  row.ref.assign(static_cast<std::size_t>(D), 0.0);
  row.bound.assign(static_cast<std::size_t>(D), 0.0);
  row.max_abs_v.assign(static_cast<std::size_t>(D), 0.0);
  row.min_v.assign(static_cast<std::size_t>(D), 0.0);
  row.max_v.assign(static_cast<std::size_t>(D), 0.0);
  const std::int64_t n = row.hi - row.lo;
  if (n == 0) return row;

  row.sees_nan = any_nan(q, D);
  row.sees_inf = any_inf(q, D);
  for (std::int64_t j = row.lo; j < row.hi; ++j) {
    const float* key = kv_row(c.k, j);
    const float* value = kv_row(c.v, j);
    row.sees_nan = row.sees_nan || any_nan(key, D) || any_nan(value, D);
    row.sees_inf = row.sees_inf || any_inf(key, D) || any_inf(value, D);
  }
  row.sees_nonfinite = row.sees_nan || row.sees_inf;
  if (row.sees_nonfinite) return row;

  constexpr double kNearOverflow = FLT_MAX / 4.0;
  for (int d = 0; d < D; ++d) row.near_fp32_overflow |= std::fabs(q[d] * scale) > kNearOverflow;

  std::vector<double> logit(static_cast<std::size_t>(n)), delta(static_cast<std::size_t>(n));
  for (std::int64_t t = 0; t < n; ++t) {
    const float* key = kv_row(c.k, row.lo + t);
    double dot = 0.0, magnitude = 0.0, key_sum = 0.0;
    for (int d = 0; d < D; ++d) {
      dot += static_cast<double>(q[d]) * key[d];  // exact products: 24 + 24 bits
      magnitude += std::fabs(static_cast<double>(q[d]) * key[d]);
      key_sum += std::fabs(key[d]);
    }
    const int128 distance = p - (row.lo + t);
    const double bias = -m * std::fabs(static_cast<double>(distance));
    const auto at = static_cast<std::size_t>(t);
    logit[at] = scale * dot + bias;
    magnitude *= std::fabs(scale);
    delta[at] = u * ((D + 4) * magnitude + 3.0 * std::fabs(bias) + std::fabs(logit[at])) + 8.0 * u +
                kSubnormalStep * (key_sum + D + 2);
    row.near_fp32_overflow |=
        magnitude > kNearOverflow || std::fabs(bias) > kNearOverflow || std::fabs(logit[at]) > kNearOverflow;
  }
  const double max_logit = *std::max_element(logit.begin(), logit.end());
  for (std::int64_t t = 0; t < n; ++t)
    delta[static_cast<std::size_t>(t)] += u * (max_logit - logit[static_cast<std::size_t>(t)]);
  const double max_delta = *std::max_element(delta.begin(), delta.end());

  // Exact weights, and the range Note [fp32 error bound] allows for each.
  std::vector<double> weight(static_cast<std::size_t>(n)), high(weight.size()), low(weight.size());
  double total = 0.0;
  for (std::size_t t = 0; t < weight.size(); ++t) total += weight[t] = std::exp(logit[t] - max_logit);
  for (double& w : weight) w /= total;
  // log sum e^{s'_j} moves by at most max_j delta_j when every logit does; then the fp32 sum (n + 16 u),
  // the flushed terms (n e^-87.3 relative), the dropped skipped mass (at most 2t, as a log: 4t), and the
  // rounding of the result to fp32.
  row.lse = max_logit + std::log(total);
  row.lse_bound = max_delta + (static_cast<double>(n) + 16.0) * u + static_cast<double>(n) * 1.2e-38 +
                  4.0 * static_cast<double>(c.options.skip_tolerance) + 2.0 * u * std::fabs(row.lse);
  // sum_{k != j} e^{a_k - c_j} = e^{M - c_j} (sum_k e^{a_k - M} - e^{a_j - M}), M = max a: O(n) per row.
  auto others = [&](double sign_a, std::vector<double>& result, double sign_c) {
    double largest = -HUGE_VAL;
    for (std::size_t t = 0; t < weight.size(); ++t) largest = std::max(largest, logit[t] + sign_a * delta[t]);
    double sum = 0.0;
    for (std::size_t t = 0; t < weight.size(); ++t) sum += std::exp(logit[t] + sign_a * delta[t] - largest);
    for (std::size_t t = 0; t < weight.size(); ++t) {
      const double own = std::exp(logit[t] + sign_a * delta[t] - largest);
      // sum - own cancels when j dominates: round it towards the wider weight range.
      const double rest = std::max(0.0, sum - own + sign_a * 1e-15 * sum);
      const double spread = std::exp(largest - (logit[t] + sign_c * delta[t])) * rest;
      result[t] = 1.0 / (1.0 + spread);
      if (!(result[t] >= 0.0 && result[t] <= 1.0)) result[t] = sign_c > 0 ? 1.0 : 0.0;
    }
  };
  others(-1.0, high, +1.0);  // j at its largest, the others at their smallest
  others(+1.0, low, -1.0);
  if (n == 1) high[0] = low[0] = 1.0;  // one visible key: p = e^0 = 1, out = v exactly

  const double t_skip = c.options.skip_tolerance;
  for (int d = 0; d < D; ++d) {
    double ref = 0.0, spread = 0.0, magnitude = 0.0, largest = 0.0, lowest_v = HUGE_VAL, highest_v = -HUGE_VAL;
    for (std::size_t t = 0; t < weight.size(); ++t) {
      const double value = kv_row(c.v, row.lo + static_cast<std::int64_t>(t))[d];
      lowest_v = std::min(lowest_v, value);
      highest_v = std::max(highest_v, value);
      ref += weight[t] * value;
      spread += (std::max(high[t] - weight[t], weight[t] - low[t]) + 1e-12) * std::fabs(value);
      magnitude += high[t] * std::fabs(value);
      largest = std::max(largest, std::fabs(value));
    }
    const auto at = static_cast<std::size_t>(d);
    row.ref[at] = ref;
    row.max_abs_v[at] = largest;
    row.min_v[at] = lowest_v;
    row.max_v[at] = highest_v;
    row.bound[at] = spread + (2.0 * static_cast<double>(n) + 16.0) * u * magnitude +
                    static_cast<double>(n) * (kSubnormalStep + 1.2e-38 * largest) + 4.0 * t_skip * largest;
  }
  return row;
}

// ---- checking an accepted call's output

struct CheckOptions {
  // Rows whose logits may leave the fp32 range are only checked for finiteness and the convex-combination
  // bound (for a run that must keep going past a known library bug of that kind).
  bool tolerate_fp32_overflow_rows = false;
  // Note [non-finite rows] promises that a NaN reaches exactly the rows that see it: with nothing skipped
  // (skip_tolerance 0), such a row must not come out finite. Only checked when the row sees no infinity:
  // an inf in a key can make a logit -inf, and a key of weight e^-inf = 0 legitimately ignores its value
  // row (NaN included). False: do not check at all.
  bool require_nan_propagation = true;
};

struct CheckStats {
  std::int64_t rows = 0, rows_accuracy_checked = 0, rows_nonfinite_inputs = 0, rows_tolerated_overflow = 0;
  double worst_ratio = 0.0;  // max over checked elements of error / allowed
};

inline std::string row_name(std::int64_t b, std::int64_t i, int h) {
  return "[b=" + std::to_string(b) + "][i=" + std::to_string(i) + "][h=" + std::to_string(h) + "]";
}

// Returns an empty string when `out` (laid out like q) is what the contract allows, else the first problem.
inline std::string check_output(const Call& c, const float* out, const CheckOptions& options = {},
                                CheckStats* stats = nullptr) {
  CheckStats local;
  CheckStats& st = stats != nullptr ? *stats : local;
  const alibi::AttentionShape& s = c.shape;
  const alibi::AttentionOptions& o = c.options;
  const std::vector<float> default_slopes = o.slopes == nullptr ? contract_slopes(s.num_heads) : std::vector<float>{};
  const float* slopes = o.slopes != nullptr ? o.slopes : default_slopes.data();
  const int D = s.head_dim;
  const bool check_accuracy = o.skip_tolerance <= kLargestCheckedSkipTolerance;

  std::vector<RowExpectation> rows;
  rows.reserve(static_cast<std::size_t>(s.batch * s.q_len * s.num_heads));
  double max_ref = 0.0;
  for (std::int64_t b = 0; b < s.batch; ++b)
    for (std::int64_t i = 0; i < s.q_len; ++i)
      for (int h = 0; h < s.num_heads; ++h) {
        rows.push_back(expect_row(c, slopes, b, i, h));
        if (!rows.back().sees_nonfinite)
          for (double x : rows.back().ref) max_ref = std::max(max_ref, std::fabs(x));
      }
  const double case_tolerance = 2e-5 * max_ref;

  std::size_t r = 0;
  for (std::int64_t b = 0; b < s.batch; ++b)
    for (std::int64_t i = 0; i < s.q_len; ++i)
      for (int h = 0; h < s.num_heads; ++h, ++r) {
        const RowExpectation& row = rows[r];
        const float* got = out + ((b * s.q_len + i) * s.num_heads + h) * D;
        ++st.rows;
        const float* got_lse = o.lse != nullptr ? o.lse + ((b * s.q_len + i) * s.num_heads + h) : nullptr;
        if (row.hi == row.lo) {  // sees no key: zeros, whatever the inputs hold
          for (int d = 0; d < D; ++d)
            if (got[d] != 0.0f)
              return "row " + row_name(b, i, h) + " sees no key but out[" + std::to_string(d) +
                     "] = " + std::to_string(got[d]);
          if (got_lse != nullptr && !(*got_lse == -HUGE_VALF))
            return "row " + row_name(b, i, h) + " sees no key but lse = " + std::to_string(*got_lse);
          continue;
        }
        if (row.sees_nonfinite) {
          ++st.rows_nonfinite_inputs;
          if (row.sees_nan && !row.sees_inf && o.skip_tolerance == 0.0f && options.require_nan_propagation &&
              all_finite(got, D))
            return "row " + row_name(b, i, h) + " sees a NaN (nothing skipped) but came out finite";
          continue;
        }
        const double n = static_cast<double>(row.hi - row.lo);
        for (int d = 0; d < D; ++d)
          if (!std::isfinite(got[d]))
            return "row " + row_name(b, i, h) + " has finite inputs but out[" + std::to_string(d) +
                   "] = " + std::to_string(got[d]);
        if (row.near_fp32_overflow && options.tolerate_fp32_overflow_rows) {
          ++st.rows_tolerated_overflow;
          continue;
        }
        for (int d = 0; d < D; ++d) {
          const auto at = static_cast<std::size_t>(d);
          // Whatever was skipped and however the logits rounded: a weighted mean of the visible values, so
          // inside their box (up to the rounding of the P.V sums).
          const double slack = (2.0 * n + 16.0) * kUnitRoundoff * row.max_abs_v[at] + n * kSubnormalStep;
          if (!(got[d] >= row.min_v[at] - slack && got[d] <= row.max_v[at] + slack)) {
            char text[320];
            std::snprintf(text, sizeof text,
                          "row %s d=%d (visible keys [%lld, %lld)): got %.9g, outside [%.9g, %.9g] spanned by the "
                          "visible values: not a weighted mean of them",
                          row_name(b, i, h).c_str(), d, static_cast<long long>(row.lo), static_cast<long long>(row.hi),
                          static_cast<double>(got[d]), row.min_v[at], row.max_v[at]);
            return text;
          }
        }
        // An lse beyond the float range (huge slopes times huge distances) may round to an infinity.
        const bool lse_in_range = std::fabs(row.lse) + row.lse_bound < FLT_MAX;
        if (got_lse != nullptr && lse_in_range && !std::isfinite(*got_lse))
          return "row " + row_name(b, i, h) + " has finite inputs but lse = " + std::to_string(*got_lse);
        if (!check_accuracy) continue;
        ++st.rows_accuracy_checked;
        if (got_lse != nullptr && lse_in_range) {
          const double error = std::fabs(static_cast<double>(*got_lse) - row.lse);
          if (row.lse_bound > 0.0) st.worst_ratio = std::max(st.worst_ratio, error / row.lse_bound);
          if (!(error <= row.lse_bound)) {
            char text[320];
            std::snprintf(text, sizeof text,
                          "row %s (visible keys [%lld, %lld)): lse %.9g, reference %.9g, error %.3g > allowed %.3g",
                          row_name(b, i, h).c_str(), static_cast<long long>(row.lo), static_cast<long long>(row.hi),
                          static_cast<double>(*got_lse), row.lse, error, row.lse_bound);
            return text;
          }
        }
        for (int d = 0; d < D; ++d) {
          const auto at = static_cast<std::size_t>(d);
          const double error = std::fabs(static_cast<double>(got[d]) - row.ref[at]);
          const double allowed = case_tolerance + row.bound[at];
          if (allowed > 0.0) st.worst_ratio = std::max(st.worst_ratio, error / allowed);
          if (!(error <= allowed)) {
            char text[320];
            std::snprintf(
                text, sizeof text,
                "row %s d=%d (visible keys [%lld, %lld)): got %.9g, reference %.9g, error %.3g > allowed %.3g%s",
                row_name(b, i, h).c_str(), d, static_cast<long long>(row.lo), static_cast<long long>(row.hi),
                static_cast<double>(got[d]), row.ref[at], error, allowed,
                row.near_fp32_overflow ? " (logits near the fp32 range)" : "");
            return text;
          }
        }
      }
  return {};
}

}  // namespace alibi_reliability
