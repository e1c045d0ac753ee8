// Partial attention (issue 12): AttentionOptions::kv_pos0 (the K/V are a shard of a longer sequence),
// AttentionOptions::lse (each row's log-sum-exp) and alibi::merge_partials, typed over every ISA this binary
// was compiled for, with float, bfloat16 and float16 K/V.
//
// Expected values come from a float64 reference written here from the text (the shared one in
// reference.hpp knows neither key positions nor lse): query row i at position q_pos0 + i (q_pos0 = -1:
// kv_pos0 + kv_len - q_len), key row j at kv_pos0 + j, bias, mask and window by those absolute positions,
// lse = ln sum_j exp(scale q.k_j + bias_j) over the visible keys, -inf for a row that sees none.
//
// Tolerances: out as the fp32 tests (compare_to_reference: 2e-5 max|ref| + 4 ulp of max|v|); lse
//   |lse - ref| <= 1e-5 max(1, |ref|)  (+ the logit rounding bound of the row where the case has large logits).
// Shards of a sequence merged with merge_partials in any order and grouping must equal one call over the
// whole K/V to 2e-6 max|out| (the bound) and the lse to 1e-5 max(1, |lse|); merge_partials itself is
// held to a double-precision merge of the same float inputs to a few ulp.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <initializer_list>
#include <limits>
#include <numeric>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "alibi/alibi.hpp"
#include "attention_cases.hpp"
#include "float16_reference.hpp"
#include "kv_types.hpp"
#include "reference.hpp"
#include "test_registry.hpp"
#include "test_support.hpp"

namespace alibi_test {
namespace {

constexpr int kCounterBefore = __COUNTER__;

constexpr std::int64_t kInt64Max = std::numeric_limits<std::int64_t>::max();
constexpr float kInf = std::numeric_limits<float>::infinity();

// ---- K/V element types (kv_types.hpp)

// The K/V of a case as the kernel reads them.
template <class KV>
struct KvTensors {
  std::vector<KV> k, v;
  const KV* k_data() const { return k.data(); }
  const KV* v_data() const { return v.data(); }
};

// Stores c's K/V as KV and replaces c.k, c.v by the exact values of the stored elements, so the reference
// (which reads c) computes on what the kernel reads.
template <class KV>
KvTensors<KV> store_kv(Case& c) {
  KvTensors<KV> t;
  for (float& x : c.k) {
    t.k.push_back(stored_as<KV>(x));
    x = value_of(t.k.back());
  }
  for (float& x : c.v) {
    t.v.push_back(stored_as<KV>(x));
    x = value_of(t.v.back());
  }
  return t;
}

// ---- running a case with lse

inline std::int64_t row_count(const alibi::AttentionShape& s) {
  return std::int64_t{s.batch} * s.q_len * s.num_heads;
}

struct Output {
  std::vector<float> out, lse;
};

std::string describe_partial(const Case& c) {
  std::ostringstream text;
  text << c.describe() << " kv_pos0=" << c.options.kv_pos0 << " skip_tolerance=" << c.options.skip_tolerance;
  return text.str();
}

// One call of alibi::attention<Isa> with lse requested; every element starts as unwritten_marker().
template <class Isa, class KV>
Output run_partial(const Case& c, const KV* k, const KV* v) {
  Output r;
  r.out.assign(static_cast<std::size_t>(q_count(c.shape)), unwritten_marker());
  r.lse.assign(static_cast<std::size_t>(row_count(c.shape)), unwritten_marker());
  alibi::AttentionOptions o = c.call_options();
  o.lse = r.lse.empty() ? nullptr : r.lse.data();
  alibi::attention<Isa>(c.q.data(), k, v, r.out.data(), c.shape, o);
  return r;
}

template <class Isa, class KV>
Output run_partial(const Case& c, const KvTensors<KV>& t) {
  return run_partial<Isa>(c, t.k_data(), t.v_data());
}

// out followed by lse: one vector, for expect_bitwise_equal_across_threads.
template <class Isa, class KV>
std::vector<float> run_joined(const Case& c, const KvTensors<KV>& t) {
  Output r = run_partial<Isa>(c, t);
  r.out.insert(r.out.end(), r.lse.begin(), r.lse.end());
  return r.out;
}

bool is_negative_infinity(float x) {
  return std::isinf(x) && x < 0.0f;
}

// ---- the float64 reference with key positions and lse

// Absolute position of query row 0 (may be negative only through q_pos0 = -1).
std::int64_t first_query_position(const Case& c) {
  const alibi::AttentionOptions& o = c.options;
  return o.q_pos0 == -1 ? o.kv_pos0 + c.shape.kv_len - c.shape.q_len : o.q_pos0;
}

struct LseRow {
  std::vector<double> out;             // head_dim values; zeros when no key is visible
  std::vector<double> rounding_bound;  // Note [logit rounding bound], per dimension
  double lse = -HUGE_VAL;
  double lse_bound = 0.0;  // what fp32 rounding of the logits can do to the lse (same note)
  std::int64_t visible_keys = 0;
};

// Row (b, i, h) of case c. Positions: query p = first_query_position(c) + i, key t_j = kv_pos0 + j. Their
// differences fit in int64 for every input the library accepts (both are in [0, 2^63), or p is negative
// only when q_pos0 = -1 puts it within q_len of the last key). The bias -m d_j (d_j = p - t_j causal,
// |p - t_j| bidirectional) is split exactly as -m d_min - m (d_j - d_min), d_min the smallest distance of
// a visible key: the second part is a small integer times m, so the logits stay exact in double however far
// the query is from the keys, and the first is a constant of the row that only the lse carries.
LseRow reference_lse_row(const Case& c, const std::vector<double>& slopes, double scale, std::int64_t b, std::int64_t i,
                         int h) {
  const alibi::AttentionShape& s = c.shape;
  const alibi::AttentionOptions& o = c.options;
  const std::int64_t D = s.head_dim;
  const int kv_head = h / (s.num_heads / s.num_kv_heads);
  const std::int64_t p = first_query_position(c) + i;
  const double m = slopes[static_cast<std::size_t>(h)];
  const bool causal = o.mask == alibi::Mask::causal;
  const float* q = c.q.data() + ((b * s.q_len + i) * s.num_heads + h) * D;
  auto key_row = [&](const std::vector<float>& base, std::int64_t j) {
    return base.data() + ((b * s.kv_len + j) * s.num_kv_heads + kv_head) * D;
  };

  LseRow row;
  row.out.assign(static_cast<std::size_t>(D), 0.0);
  row.rounding_bound.assign(static_cast<std::size_t>(D), 0.0);
  std::vector<std::int64_t> keys, distance;
  for (std::int64_t j = 0; j < s.kv_len; ++j) {
    const std::int64_t t = o.kv_pos0 + j;
    const std::int64_t signed_distance = p - t;
    const std::int64_t d = signed_distance >= 0 ? signed_distance : -signed_distance;
    const bool visible =
        causal ? signed_distance >= 0 && (o.window == 0 || d < o.window) : (o.window == 0 || d < o.window);
    if (!visible) continue;
    keys.push_back(j);
    distance.push_back(causal ? signed_distance : d);
  }
  row.visible_keys = static_cast<std::int64_t>(keys.size());
  if (keys.empty()) return row;

  const std::int64_t d_min = *std::min_element(distance.begin(), distance.end());
  std::vector<double> logit, bias, dot_magnitude;
  for (std::size_t n = 0; n < keys.size(); ++n) {
    const float* k = key_row(c.k, keys[n]);
    double dot = 0.0, magnitude = 0.0;
    for (std::int64_t d = 0; d < D; ++d) {
      dot += double(q[d]) * double(k[d]);
      magnitude += std::fabs(double(q[d]) * double(k[d]));
    }
    const double b_j = -m * static_cast<double>(distance[n] - d_min);
    bias.push_back(b_j);
    logit.push_back(scale * dot + b_j);
    dot_magnitude.push_back(std::fabs(scale) * magnitude);
  }
  const double max_logit = *std::max_element(logit.begin(), logit.end());
  std::vector<double> weight(keys.size());
  double total = 0.0;
  for (std::size_t n = 0; n < keys.size(); ++n) total += weight[n] = std::exp(logit[n] - max_logit);
  row.lse = -m * static_cast<double>(d_min) + max_logit + std::log(total);

  // Note [logit rounding bound] in reference.hpp, on the logits above.
  const double u = kUnitRoundoff;
  std::vector<double> delta(keys.size());
  double upper = 0.0, lower = 0.0;
  for (std::size_t n = 0; n < keys.size(); ++n) {
    weight[n] /= total;
    const double dot_error = (std::sqrt(double(D)) + 2.0) * dot_magnitude[n];
    delta[n] = u * (dot_error + 2.0 * std::fabs(bias[n]) + std::fabs(logit[n]) + (max_logit - logit[n])) + 4.0 * u;
    upper += weight[n] * std::exp(delta[n]);
    lower += weight[n] * std::exp(-delta[n]);
  }
  row.lse_bound = std::max(std::log(upper), -std::log(lower));
  for (std::size_t n = 0; n < keys.size(); ++n) {
    const double change = std::max(std::exp(delta[n]) / lower - 1.0, 1.0 - std::exp(-delta[n]) / upper);
    const float* v = key_row(c.v, keys[n]);
    for (std::int64_t d = 0; d < D; ++d) {
      row.out[static_cast<std::size_t>(d)] += weight[n] * double(v[d]);
      row.rounding_bound[static_cast<std::size_t>(d)] += weight[n] * change * std::fabs(double(v[d]));
    }
  }
  return row;
}

std::vector<double> slopes_of(const Case& c) {
  std::vector<double> slopes;
  if (!c.custom_slopes.empty()) {
    slopes.assign(c.custom_slopes.begin(), c.custom_slopes.end());
  } else {
    for (double m : reference_slopes(c.shape.num_heads)) slopes.push_back(static_cast<float>(m));
  }
  return slopes;
}

double scale_of(const Case& c) {
  return c.options.scale != 0.0f ? static_cast<double>(c.options.scale) : 1.0 / std::sqrt(double(c.shape.head_dim));
}

struct LseReference {
  ReferenceOutput output;  // out and its rounding bound, laid out like out
  std::vector<double> lse, lse_bound;
  std::vector<std::int64_t> visible_keys;  // per row
};

LseReference lse_reference(const Case& c) {
  const alibi::AttentionShape& s = c.shape;
  const std::vector<double> slopes = slopes_of(c);
  const double scale = scale_of(c);
  LseReference ref;
  for (std::int64_t b = 0; b < s.batch; ++b)
    for (std::int64_t i = 0; i < s.q_len; ++i)
      for (int h = 0; h < s.num_heads; ++h) {
        const LseRow row = reference_lse_row(c, slopes, scale, b, i, h);
        ref.output.out.insert(ref.output.out.end(), row.out.begin(), row.out.end());
        ref.output.rounding_bound.insert(ref.output.rounding_bound.end(), row.rounding_bound.begin(),
                                         row.rounding_bound.end());
        ref.lse.push_back(row.lse);
        ref.lse_bound.push_back(row.lse_bound);
        ref.visible_keys.push_back(row.visible_keys);
      }
  return ref;
}

// Allowed |lse - ref| for a row that sees keys.
double lse_allowance(double ref, double rounding_bound, bool allow_logit_rounding) {
  return 1e-5 * std::max(1.0, std::fabs(ref)) + (allow_logit_rounding ? rounding_bound : 0.0);
}

// Checks a call's out and lse against the reference: out as compare_to_reference; lse within lse_allowance;
// rows that see no key exactly zeros and -inf. Returns the first failure ("" if none).
std::string check_against(const Output& got, const Case& c, const LseReference& ref, bool allow_logit_rounding,
                          double* worst_lse_ratio = nullptr) {
  const Comparison out = compare_to_reference(got.out.data(), ref.output, c.shape, max_abs(c.v), allow_logit_rounding);
  if (!out.first_failure.empty()) return "out: " + out.first_failure;
  const std::size_t D = static_cast<std::size_t>(c.shape.head_dim);
  for (std::size_t r = 0; r < ref.lse.size(); ++r) {
    std::ostringstream text;
    text << "row " << r << " (b=" << r / static_cast<std::size_t>(c.shape.q_len * c.shape.num_heads)
         << " i=" << r / static_cast<std::size_t>(c.shape.num_heads) % static_cast<std::size_t>(c.shape.q_len)
         << " h=" << r % static_cast<std::size_t>(c.shape.num_heads) << ", sees " << ref.visible_keys[r] << " keys): ";
    if (ref.visible_keys[r] == 0) {
      if (!is_negative_infinity(got.lse[r])) return text.str() + "lse " + std::to_string(got.lse[r]) + ", not -inf";
      for (std::size_t d = 0; d < D; ++d)
        if (got.out[r * D + d] != 0.0f) return text.str() + "out is not exactly zero";
      continue;
    }
    const double allowed = lse_allowance(ref.lse[r], ref.lse_bound[r], allow_logit_rounding);
    const double error = std::fabs(double(got.lse[r]) - ref.lse[r]);
    if (!(std::isfinite(got.lse[r]) && error <= allowed)) {
      std::ostringstream detail;
      detail.precision(10);
      detail << "lse " << got.lse[r] << ", reference " << ref.lse[r] << ", error " << error << " > allowed " << allowed;
      return text.str() + detail.str();
    }
    if (worst_lse_ratio != nullptr) *worst_lse_ratio = std::max(*worst_lse_ratio, error / allowed);
  }
  return "";
}

// Runs c (K/V stored as KV) on Isa and checks it against the reference.
template <class Isa, class KV>
void expect_matches_lse_reference(Case c, bool allow_logit_rounding = false, double* worst_lse_ratio = nullptr) {
  const KvTensors<KV> t = store_kv<KV>(c);
  const Output got = run_partial<Isa>(c, t);
  const std::string failure = check_against(got, c, lse_reference(c), allow_logit_rounding, worst_lse_ratio);
  EXPECT_TRUE(failure.empty()) << "KV=" << kv_name(KV{}) << " " << describe_partial(c) << "\n  " << failure;
}

// ---- lse and key positions against the reference

// The awkward shapes (kAwkwardShapes): attention_cases.hpp.

// Each shape at kv_pos0 0, at kv_pos0 77 with q_pos0 -1 (resolved against kv_pos0) and with the equivalent
// explicit q_pos0, and at kv_pos0 2^40 + 5; float and 16-bit K/V; with and without skipping.
ALIBI_ISA_TEST(LseMatchesTheReferenceOnAwkwardShapes) {
  std::mt19937 rng(1201);
  int rotation = 0;
  for (const ShapeAndOptions& a : kAwkwardShapes) {
    Case c = make_case(a.batch, a.q_len, a.kv_len, a.heads, a.kv_heads, a.head_dim);
    c.options.mask = a.mask;
    c.options.window = a.window;
    c.options.num_threads = 2;
    c.fill(rng);
    for (std::int64_t kv_pos0 : {std::int64_t{0}, std::int64_t{77}, (std::int64_t{1} << 40) + 5}) {
      c.options.kv_pos0 = kv_pos0;
      c.options.q_pos0 = a.q_pos0 == -1 ? -1 : a.q_pos0 + kv_pos0;
      c.options.skip_tolerance = kv_pos0 == 77 ? 0.0f : alibi::AttentionOptions{}.skip_tolerance;
      for_each_kv_rotating(rotation++, [&](auto element) {
        using KV = decltype(element);
        expect_matches_lse_reference<Isa, KV>(c);
      });
      // q_pos0 = -1 is kv_pos0 + kv_len - q_len: the same bytes as that position given explicitly.
      const std::int64_t resolved = kv_pos0 + a.kv_len - a.q_len;
      if (a.q_pos0 == -1 && resolved >= 0) {
        Case explicit_case = c;
        explicit_case.options.q_pos0 = resolved;
        const Output implicit = run_partial<Isa>(c, c.k.data(), c.v.data());
        const Output given = run_partial<Isa>(explicit_case, c.k.data(), c.v.data());
        EXPECT_TRUE(same_bits(implicit.out, given.out) && same_bits(implicit.lse, given.lse))
            << describe_partial(c) << ": q_pos0 -1 differs from q_pos0 " << resolved;
      }
    }
  }
  {  // custom slopes: zero, negative (also -0) and steep, with a window, away from position 0
    Case c = make_case(2, 63, 65, 5, 5, 17);
    c.custom_slopes = {0.0f, -0.02f, 0.5f, 0.25f, -0.0f};
    c.options.window = 9;
    c.options.kv_pos0 = 1000;
    c.fill(rng);
    for (alibi::Mask mask : {alibi::Mask::causal, alibi::Mask::bidirectional}) {
      c.options.mask = mask;
      for_each_kv([&](auto element) {
        using KV = decltype(element);
        expect_matches_lse_reference<Isa, KV>(c);
      });
    }
  }
}

// random_case's shapes and options (tests/attention_cases.hpp) with the keys moved to kv_pos0 (the queries
// keep their place relative to the keys), K/V rotating through float, bfloat16 and float16. Requesting the
// lse must not change out (not the contract's words, a property of the implementation: the lse is computed
// from the row's final max and sum).
ALIBI_ISA_TEST(RandomShapesWithKeyOffsetsMatchTheReference) {
  const int num_cases = scaled(60, 12);
  const std::int64_t max_work = scaled(1000000, 150000);
  const std::int64_t offsets[] = {0, 1, 16, 1000, 123456789, (std::int64_t{1} << 40) + 3};
  std::mt19937 rng(1202);
  int failures = 0;
  double worst_lse_ratio = 0.0;
  for (int index = 0; index < num_cases; ++index) {
    Case c = random_case(index, rng, max_work);
    const std::int64_t kv_pos0 = pick(offsets, rng);
    c.options.kv_pos0 = kv_pos0;
    if (c.options.q_pos0 != -1) c.options.q_pos0 += kv_pos0;
    if (index % 4 == 3) c.options.skip_tolerance = 0.0f;
    const auto check_one = [&](auto element) {
      using KV = decltype(element);
      Case s = c;
      const KvTensors<KV> t = store_kv<KV>(s);
      const Output got = run_partial<Isa>(s, t);
      const std::string failure = check_against(got, s, lse_reference(s), false, &worst_lse_ratio);
      if (!failure.empty() && ++failures <= 10)
        ADD_FAILURE() << "case " << index << ": KV=" << kv_name(KV{}) << " " << describe_partial(s) << "\n  "
                      << failure;
      std::vector<float> plain(got.out.size(), unwritten_marker());
      alibi::attention<Isa>(s.q.data(), t.k_data(), t.v_data(), plain.data(), s.shape, s.call_options());
      EXPECT_TRUE(same_bits(plain, got.out)) << describe_partial(s) << ": out differs when lse is requested";
    };
    if (index % 3 == 0) check_one(0.0f);
    if (index % 3 == 1) check_one(alibi::bfloat16{});
    if (index % 3 == 2) check_one(alibi::float16{});
  }
  EXPECT_EQ(failures, 0) << failures << " of " << num_cases << " cases failed (first 10 shown above)";
  std::printf("[ %s ] %d random cases with key offsets: worst lse error / tolerance %.3g\n", Isa::name, num_cases,
              worst_lse_ratio);
}

// Queries any distance from their keys: causal rows after a shard, bidirectional rows before and after
// one, gaps from 1 to 2^62 positions, windows that reach part of the shard, and slopes of every sign. Within
// the key range the logits are unit-scale, so out is held to the unit tolerance however large the gap; the
// lse carries the gap's bias -m * gap (relative tolerance).
ALIBI_ISA_TEST(FarQueriesAndKeysStayExact) {
  std::mt19937 rng(1203);
  const std::int64_t q_len = 33, kv_len = 65;
  const std::int64_t gaps[] = {1, 1000, 1000000, 1000000000000, std::int64_t{1} << 62};
  const std::vector<float> slope_sets[] = {{}, {0.0f, -0.02f, 0.5f, 1e-3f}};
  int rotation = 0;
  for (std::int64_t gap : gaps) {
    for (int layout = 0; layout < 3; ++layout) {
      Case c = make_case(1, q_len, kv_len, 4, 2, 17);
      c.fill(rng);
      alibi::AttentionOptions& o = c.options;
      o.num_threads = 1 + layout % 2;
      if (layout == 0) {  // causal: queries after the keys
        o.mask = alibi::Mask::causal;
        o.kv_pos0 = 12345;
        o.q_pos0 = o.kv_pos0 + kv_len - 1 + gap;
      } else if (layout == 1) {  // bidirectional: keys after the queries
        o.mask = alibi::Mask::bidirectional;
        o.q_pos0 = 7;
        o.kv_pos0 = o.q_pos0 + q_len + gap - 1;
      } else {  // bidirectional: keys before the queries, at position 0
        o.mask = alibi::Mask::bidirectional;
        o.kv_pos0 = 0;
        o.q_pos0 = kv_len - 1 + gap;
      }
      for (const std::vector<float>& slopes : slope_sets) {
        c.custom_slopes = slopes;
        // No window; then one that reaches about half the shard, varying by row.
        for (std::int64_t window : {std::int64_t{0}, gap + kv_len / 2}) {
          o.window = window;
          for_each_kv_rotating(rotation++, [&](auto element) {
            using KV = decltype(element);
            expect_matches_lse_reference<Isa, KV>(c);
          });
        }
      }
    }
  }
}

// The same keys moved along the sequence, queries moving with them: everything but the positions is equal,
// so out and lse agree to the tolerance with the case at position 0, up to the largest positions accepted
// (kv_pos0 + kv_len == INT64_MAX, and q_pos0 + q_len == INT64_MAX).
ALIBI_ISA_TEST(KeyOffsetsUpToTheLargestPosition) {
  std::mt19937 rng(1204);
  for (alibi::Mask mask : {alibi::Mask::causal, alibi::Mask::bidirectional}) {
    Case c = make_case(2, 40, 90, 6, 2, 33);
    c.options.mask = mask;
    c.options.window = mask == alibi::Mask::causal ? 0 : 30;
    c.fill(rng);
    for (std::int64_t kv_pos0 : {std::int64_t{0}, std::int64_t{1} << 32, kInt64Max - 90, kInt64Max - 90 - 7}) {
      c.options.kv_pos0 = kv_pos0;
      c.options.q_pos0 = -1;
      expect_matches_lse_reference<Isa, float>(c);
      // Explicit: the last query row at INT64_MAX - 1 (q_pos0 + q_len == INT64_MAX is the largest allowed).
      c.options.q_pos0 = kInt64Max - 40;
      c.options.skip_tolerance = 0.0f;
      expect_matches_lse_reference<Isa, alibi::bfloat16>(c);
      c.options.skip_tolerance = alibi::AttentionOptions{}.skip_tolerance;
    }
  }
}

// Block skipping leaves skipped keys out of the lse too, at most skip_tolerance of the row's mass relative
// to its largest term: lse_skip in [lse_exact + log1p(-tolerance), lse_exact], up to rounding. With the
// default tolerance the lse matches the unskipped one; the unskipped one matches the reference (spot rows).
ALIBI_ISA_TEST(SkippedMassStaysWithinToleranceInTheLse) {
  std::mt19937 rng(1205);
  const std::int64_t length = scaled(1024, 320);
  struct Situation {
    std::int64_t q_len, kv_len;
    int heads, kv_heads;
    alibi::Mask mask;
    std::int64_t kv_pos0, q_pos0;
  } situations[] = {
      {length, length, 8, 8, alibi::Mask::causal, 0, -1},                      // prefill
      {length, length, 8, 4, alibi::Mask::causal, 5000, -1},                   // prefill of a later shard
      {4, 4 * length, 16, 4, alibi::Mask::causal, 1 << 20, (1 << 20) + 9000},  // queries past a long shard
      {length / 2, length, 8, 2, alibi::Mask::bidirectional, 300, 0},          // keys after the queries
  };
  for (const Situation& at : situations) {
    Case c = make_case(1, at.q_len, at.kv_len, at.heads, at.kv_heads, 32);
    c.options.mask = at.mask;
    c.options.kv_pos0 = at.kv_pos0;
    c.options.q_pos0 = at.q_pos0;
    c.fill(rng);
    c.options.skip_tolerance = 0.0f;
    const Output exact = run_partial<Isa>(c, c.k.data(), c.v.data());
    {  // spot rows of the exact result against the reference
      const std::vector<double> slopes = slopes_of(c);
      for (std::int64_t i : spot_rows(c.shape.q_len, rng))
        for (int h = 0; h < c.shape.num_heads; ++h) {
          const LseRow ref = reference_lse_row(c, slopes, scale_of(c), 0, i, h);
          const float got = exact.lse[static_cast<std::size_t>(i * c.shape.num_heads + h)];
          if (ref.visible_keys == 0) {
            EXPECT_TRUE(is_negative_infinity(got)) << describe_partial(c) << " row " << i << " head " << h;
          } else {
            EXPECT_LE(std::fabs(got - ref.lse), lse_allowance(ref.lse, ref.lse_bound, false))
                << describe_partial(c) << " row " << i << " head " << h << ": lse " << got << ", reference " << ref.lse;
          }
        }
    }
    for (float tolerance : {alibi::AttentionOptions{}.skip_tolerance, 1e-4f, 1e-2f, 0.2f}) {
      c.options.skip_tolerance = tolerance;
      const Output skipped = run_partial<Isa>(c, c.k.data(), c.v.data());
      for (std::size_t r = 0; r < exact.lse.size(); ++r) {
        const double want = exact.lse[r], got = skipped.lse[r];
        if (std::isinf(want)) {
          ASSERT_EQ(want, got) << describe_partial(c) << " row " << r;
          continue;
        }
        const double rounding = 2e-6 * std::max(1.0, std::fabs(want));
        ASSERT_GE(got, want + std::log1p(-double(tolerance)) - rounding) << describe_partial(c) << " row " << r;
        ASSERT_LE(got, want + rounding) << describe_partial(c) << " row " << r;
      }
    }
  }
}

// Large logits (q and k scaled by 30) with the queries far from a shard: out and lse within the unit
// tolerance plus what fp32 rounding of the logits implies (Note [logit rounding bound]).
ALIBI_ISA_TEST(LargeLogitsFarFromTheKeys) {
  std::mt19937 rng(1214);
  double worst_lse_ratio = 0.0;
  for (alibi::Mask mask : {alibi::Mask::causal, alibi::Mask::bidirectional}) {
    for (std::int64_t gap : {std::int64_t{0}, std::int64_t{100000}}) {
      Case c = make_case(1, 17, 129, 8, 2, 64);
      c.options.mask = mask;
      c.options.kv_pos0 = 5000;
      c.options.q_pos0 = mask == alibi::Mask::causal ? 5000 + 129 - 17 + gap : 5000 - 17 - gap;
      if (c.options.q_pos0 < 0) c.options.q_pos0 = 0;
      c.fill(rng, 30.0f, 30.0f, 1.0f);
      for_each_kv_rotating(static_cast<int>(gap != 0) + 2 * static_cast<int>(mask == alibi::Mask::causal),
                           [&](auto element) {
                             using KV = decltype(element);
                             expect_matches_lse_reference<Isa, KV>(c, true, &worst_lse_ratio);
                           });
    }
  }
  std::printf("[ %s ] large logits: worst lse error / tolerance %.3g\n", Isa::name, worst_lse_ratio);
}

// Values near the largest float: the weighted sum overflows in fp32 and the kernel recomputes such rows
// exactly (Note [non-finite rows]); their lse must come from the same recomputation, with the row's
// position constant, in the tile path (prefill) and after split-K (a long decode on two threads).
ALIBI_ISA_TEST(RowsRecomputedExactlyKeepTheirLse) {
  std::mt19937 rng(1215);
  for (int layout = 0; layout < 2; ++layout) {
    Case c = layout == 0 ? make_case(1, 20, 150, 4, 2, 16) : make_case(1, 1, scaled(9000, 3000), 4, 2, 16);
    c.fill(rng);
    for (std::size_t n = 0; n < c.v.size(); ++n) c.v[n] = n % 3 == 0 ? 3e38f : 2.9e38f;
    c.options.kv_pos0 = 777;
    c.options.q_pos0 = 777 + c.shape.kv_len + 40;  // 40 positions past the shard: the lse carries -40 m
    c.options.num_threads = 2;
    c.options.skip_tolerance = 0.0f;
    for (const std::vector<float>& slopes : {std::vector<float>{}, std::vector<float>{0.0f, 0.1f, -0.01f, 0.5f}}) {
      c.custom_slopes = slopes;
      Case s = c;
      const Output got = run_partial<Isa>(s, s.k.data(), s.v.data());
      for (float x : got.out) ASSERT_TRUE(std::isfinite(x)) << describe_partial(s);
      const std::string failure = check_against(got, s, lse_reference(s), false);
      EXPECT_TRUE(failure.empty()) << describe_partial(s) << "\n  " << failure;
    }
  }
}

// ---- shards of a sequence merged with merge_partials

// Rows [c0, c1) of each sequence of a [batch][length][heads][head_dim] tensor.
template <class T>
std::vector<T> slice_rows(const std::vector<T>& x, int batch, std::int64_t length, std::int64_t row_elements,
                          std::int64_t c0, std::int64_t c1) {
  std::vector<T> part;
  for (std::int64_t b = 0; b < batch; ++b)
    part.insert(part.end(), x.begin() + static_cast<std::ptrdiff_t>((b * length + c0) * row_elements),
                x.begin() + static_cast<std::ptrdiff_t>((b * length + c1) * row_elements));
  return part;
}

// Merges the partial results into one, in an order and grouping drawn from rng: each step merges two random
// partials, writing to a fresh buffer, in place into either input, or out into one input and lse into the
// other.
template <class Isa>
Output merge_in_random_order(std::vector<Output> parts, int head_dim, std::mt19937& rng) {
  while (parts.size() > 1) {
    const std::size_t x = std::uniform_int_distribution<std::size_t>(0, parts.size() - 1)(rng);
    std::size_t y = std::uniform_int_distribution<std::size_t>(0, parts.size() - 2)(rng);
    if (y >= x) ++y;
    Output& a = parts[x];
    Output& b = parts[y];
    const std::int64_t rows = static_cast<std::int64_t>(a.lse.size());
    switch (std::uniform_int_distribution<int>(0, 3)(rng)) {
      case 0: {
        Output merged{std::vector<float>(a.out.size(), unwritten_marker()),
                      std::vector<float>(a.lse.size(), unwritten_marker())};
        alibi::merge_partials<Isa>(a.out.data(), a.lse.data(), b.out.data(), b.lse.data(), merged.out.data(),
                                   merged.lse.data(), rows, head_dim);
        a = std::move(merged);
        break;
      }
      case 1:
        alibi::merge_partials<Isa>(a.out.data(), a.lse.data(), b.out.data(), b.lse.data(), a.out.data(), a.lse.data(),
                                   rows, head_dim);
        break;
      case 2:
        alibi::merge_partials<Isa>(a.out.data(), a.lse.data(), b.out.data(), b.lse.data(), b.out.data(), b.lse.data(),
                                   rows, head_dim);
        a = std::move(b);
        break;
      default:
        alibi::merge_partials<Isa>(a.out.data(), a.lse.data(), b.out.data(), b.lse.data(), a.out.data(), b.lse.data(),
                                   rows, head_dim);
        a.lse = b.lse;
        break;
    }
    parts.erase(parts.begin() + static_cast<std::ptrdiff_t>(y));
  }
  return parts.front();
}

// Merged shards against one call over the whole K/V: out within 2e-6 max|out|, lse within 1e-5 max(1, |lse|),
// rows that see no key exactly zeros and -inf. Returns the first failure ("" if none).
std::string compare_merged(const Output& merged, const Output& whole, int head_dim, double* worst_ratio) {
  const double max_out = max_abs(whole.out);
  for (std::size_t n = 0; n < whole.out.size(); ++n) {
    const double error = std::fabs(double(merged.out[n]) - whole.out[n]);
    const double allowed = 2e-6 * max_out;
    if (!(error <= allowed))
      return "out[" + std::to_string(n) + "] (row " + std::to_string(n / static_cast<std::size_t>(head_dim)) +
             "): merged " + std::to_string(merged.out[n]) + ", whole " + std::to_string(whole.out[n]) + ", error " +
             std::to_string(error) + " > " + std::to_string(allowed);
    if (allowed > 0) *worst_ratio = std::max(*worst_ratio, error / allowed);
  }
  for (std::size_t r = 0; r < whole.lse.size(); ++r) {
    if (std::isinf(whole.lse[r])) {
      if (!is_negative_infinity(merged.lse[r]) || !is_negative_infinity(whole.lse[r]))
        return "row " + std::to_string(r) + ": lse merged " + std::to_string(merged.lse[r]) + ", whole " +
               std::to_string(whole.lse[r]);
      for (int d = 0; d < head_dim; ++d)
        if (merged.out[r * static_cast<std::size_t>(head_dim) + static_cast<std::size_t>(d)] != 0.0f)
          return "row " + std::to_string(r) + " sees no key, yet its merged out is not zero";
      continue;
    }
    const double error = std::fabs(double(merged.lse[r]) - whole.lse[r]);
    const double allowed = 1e-5 * std::max(1.0, std::fabs(double(whole.lse[r])));
    if (!(error <= allowed))
      return "row " + std::to_string(r) + ": lse merged " + std::to_string(merged.lse[r]) + ", whole " +
             std::to_string(whole.lse[r]) + ", error " + std::to_string(error) + " > " + std::to_string(allowed);
  }
  return "";
}

// Splits the case's K/V at `cuts` (sorted, within [0, kv_len]; equal cuts make empty shards), runs one call
// per shard with kv_pos0 = the case's kv_pos0 + the shard's first row and the case's query position given
// explicitly, and merges the partials in a random order.
template <class Isa, class KV>
Output run_shards(const Case& c, const KvTensors<KV>& t, const std::vector<std::int64_t>& cuts, std::mt19937& rng) {
  const alibi::AttentionShape& s = c.shape;
  const std::int64_t row_elements = std::int64_t{s.num_kv_heads} * s.head_dim;
  std::vector<Output> parts;
  std::vector<std::int64_t> bounds = {0};
  bounds.insert(bounds.end(), cuts.begin(), cuts.end());
  bounds.push_back(s.kv_len);
  for (std::size_t n = 0; n + 1 < bounds.size(); ++n) {
    Case shard = c;
    shard.shape.kv_len = bounds[n + 1] - bounds[n];
    shard.options.kv_pos0 = c.options.kv_pos0 + bounds[n];
    shard.options.q_pos0 = first_query_position(c);
    const std::vector<KV> k = slice_rows(t.k, s.batch, s.kv_len, row_elements, bounds[n], bounds[n + 1]);
    const std::vector<KV> v = slice_rows(t.v, s.batch, s.kv_len, row_elements, bounds[n], bounds[n + 1]);
    parts.push_back(run_partial<Isa>(shard, k.data(), v.data()));
  }
  return merge_in_random_order<Isa>(std::move(parts), s.head_dim, rng);
}

// 2 to 5 shards at random cut points (some empty, some of one key), random shapes, masks, windows, slopes,
// positions and thread counts, float and 16-bit K/V; plus a long decode whose whole call splits the keys
// across threads (split-K), so that path's merge is compared too.
ALIBI_ISA_TEST(ShardsMergedInAnyOrderEqualOneCall) {
  std::mt19937 rng(1206);
  const std::int64_t q_lengths[] = {1, 2, 17, 63, 65, 130};
  const std::int64_t kv_lengths[] = {1, 2, 63, 65, 257, 300};
  const int head_counts[] = {3, 5, 12, 8};
  const int head_dims[] = {1, 17, 80, 64, 3};
  const int num_cases = scaled(30, 8);
  double worst_ratio = 0.0;
  std::vector<Case> cases;
  for (int index = 0; index < num_cases; ++index) {
    // One draw per statement (the order of evaluation of function arguments is unspecified).
    const int batch = std::uniform_int_distribution<int>(1, 2)(rng);
    const std::int64_t q_len = pick(q_lengths, rng);
    const std::int64_t kv_len = pick(kv_lengths, rng);
    const int heads = pick(head_counts, rng);
    const int head_dim = pick(head_dims, rng);
    Case c = make_case(batch, q_len, kv_len, heads, 1, head_dim);
    c.shape.num_kv_heads = random_divisor(heads, rng);
    std::uniform_real_distribution<double> unit(0.0, 1.0);
    alibi::AttentionOptions& o = c.options;
    o.mask = unit(rng) < 0.6 ? alibi::Mask::causal : alibi::Mask::bidirectional;
    if (unit(rng) < 0.4) o.window = std::uniform_int_distribution<std::int64_t>(1, kv_len + 5)(rng);
    const std::int64_t bases[] = {0, 3, 4096, 1000000007};
    o.kv_pos0 = pick(bases, rng);
    if (unit(rng) < 0.5) {
      o.q_pos0 = -1;  // the last q_len positions; kept only where that is not before position 0
      if (o.kv_pos0 + kv_len - q_len < 0) o.kv_pos0 += q_len;
    } else {  // anywhere from before the shard to a little past it
      o.q_pos0 =
          std::max<std::int64_t>(0, o.kv_pos0 + std::uniform_int_distribution<std::int64_t>(-q_len, kv_len + 20)(rng));
    }
    if (unit(rng) < 0.4) {
      for (int h = 0; h < heads; ++h) {
        const double kind = unit(rng);
        c.custom_slopes.push_back(kind < 0.2   ? 0.0f
                                  : kind < 0.4 ? static_cast<float>(-0.02 * unit(rng))
                                               : static_cast<float>(0.6 * unit(rng)));
      }
    }
    if (unit(rng) < 0.25) o.skip_tolerance = 0.0f;
    const int thread_counts[] = {1, 2, 3, 0};
    o.num_threads = pick(thread_counts, rng);
    c.fill(rng);
    cases.push_back(c);
  }
  {  // decode over a long cache
    Case c = make_case(1, 1, 9000, 8, 2, 64);
    c.options.kv_pos0 = 70000;
    c.options.num_threads = 2;
    c.fill(rng);
    cases.push_back(c);
  }
  for (std::size_t index = 0; index < cases.size(); ++index) {
    const Case& c = cases[index];
    const auto check_one = [&](auto element) {
      using KV = decltype(element);
      Case s = c;
      const KvTensors<KV> t = store_kv<KV>(s);
      const Output whole = run_partial<Isa>(s, t);
      for (int split = 0; split < 2; ++split) {
        const int shards = std::uniform_int_distribution<int>(2, 5)(rng);
        std::vector<std::int64_t> cuts;
        for (int n = 0; n < shards - 1; ++n)
          cuts.push_back(std::uniform_int_distribution<std::int64_t>(0, s.shape.kv_len)(rng));
        std::sort(cuts.begin(), cuts.end());
        const Output merged = run_shards<Isa>(s, t, cuts, rng);
        const std::string failure = compare_merged(merged, whole, s.shape.head_dim, &worst_ratio);
        std::ostringstream at;
        for (std::int64_t cut : cuts) at << " " << cut;
        EXPECT_TRUE(failure.empty()) << "case " << index << ": KV=" << kv_name(KV{}) << " " << describe_partial(s)
                                     << " cut at" << at.str() << "\n  " << failure;
      }
    };
    if (index % 3 == 0 || index + 1 == cases.size()) check_one(0.0f);
    if (index % 3 == 1 || (index + 1 == cases.size() && !alibi_test_quick_mode())) check_one(alibi::bfloat16{});
    if (index % 3 == 2) check_one(alibi::float16{});
  }
  std::printf("[ %s ] %zu sharded cases: worst out error / (2e-6 max|out|) %.3g\n", Isa::name, cases.size(),
              worst_ratio);
}

// Shards no row can see (causal: entirely in the future of every row; a window's reach exceeded on either
// side) give exactly zeros and -inf; a shard only the last row reaches gives the reference; merging a
// partial with an unseen shard's, in either order, gives the partial bit for bit.
ALIBI_ISA_TEST(ShardsNoRowSeesGiveZerosAndNegativeInfinity) {
  std::mt19937 rng(1207);
  const std::int64_t q_pos0 = 1000, q_len = 9, kv_len = 20;  // rows at 1000 .. 1008
  struct Unseen {
    alibi::Mask mask;
    std::int64_t window, kv_pos0;
  } unseen[] = {
      {alibi::Mask::causal, 0, 1009},                          // the key just after the last row
      {alibi::Mask::causal, 0, 5000},                          // far in the future
      {alibi::Mask::causal, 0, kInt64Max - kv_len},            // at the largest positions
      {alibi::Mask::causal, 4, 1000 - 4 - kv_len + 1},         // last key 4 before row 0: outside its window
      {alibi::Mask::bidirectional, 3, 1008 + 3},               // 3 after the last row: outside the window
      {alibi::Mask::bidirectional, 3, 1000 - 3 - kv_len + 1},  // 3 before the first row
  };
  for (const Unseen& at : unseen) {
    Case c = make_case(2, q_len, kv_len, 6, 3, 17);
    c.options.mask = at.mask;
    c.options.window = at.window;
    c.options.kv_pos0 = at.kv_pos0;
    c.options.q_pos0 = q_pos0;
    c.options.num_threads = 2;
    c.fill(rng);
    // A partial all rows see: the keys just before the queries.
    Case seen = c;
    seen.shape.kv_len = 50;
    seen.options.kv_pos0 = q_pos0 - 25;
    seen.fill(rng);
    for_each_kv([&](auto element) {
      using KV = decltype(element);
      Case s = c;
      const KvTensors<KV> t = store_kv<KV>(s);
      const Output empty = run_partial<Isa>(s, t);
      for (float x : empty.out) ASSERT_EQ(x, 0.0f) << "KV=" << kv_name(KV{}) << " " << describe_partial(s);
      for (float x : empty.lse) ASSERT_TRUE(is_negative_infinity(x)) << describe_partial(s) << ": lse " << x;

      Case other = seen;
      const KvTensors<KV> other_t = store_kv<KV>(other);
      const Output real = run_partial<Isa>(other, other_t);
      const std::int64_t rows = row_count(s.shape);
      Output merged{std::vector<float>(real.out.size(), unwritten_marker()),
                    std::vector<float>(real.lse.size(), unwritten_marker())};
      alibi::merge_partials<Isa>(real.out.data(), real.lse.data(), empty.out.data(), empty.lse.data(),
                                 merged.out.data(), merged.lse.data(), rows, s.shape.head_dim);
      EXPECT_TRUE(same_bits(merged.out, real.out) && same_bits(merged.lse, real.lse)) << describe_partial(s);
      alibi::merge_partials<Isa>(empty.out.data(), empty.lse.data(), real.out.data(), real.lse.data(),
                                 merged.out.data(), merged.lse.data(), rows, s.shape.head_dim);
      EXPECT_TRUE(same_bits(merged.out, real.out) && same_bits(merged.lse, real.lse)) << describe_partial(s);
    });
  }
  {  // causal, the shard starts at the last row: only that row sees its first key
    Case c = make_case(2, q_len, kv_len, 6, 3, 17);
    c.options.kv_pos0 = q_pos0 + q_len - 1;
    c.options.q_pos0 = q_pos0;
    c.fill(rng);
    for_each_kv([&](auto element) {
      using KV = decltype(element);
      expect_matches_lse_reference<Isa, KV>(c);
    });
  }
}

// ---- merge_partials on its own

// The double-precision merge of the same float inputs.
void double_merge(double out_a, double lse_a, double out_b, double lse_b, double& out, double& lse) {
  if (std::isinf(lse_a) && lse_a < 0 && std::isinf(lse_b) && lse_b < 0) {
    out = 0.0;
    lse = -HUGE_VAL;
    return;
  }
  const double m = std::max(lse_a, lse_b);
  const double w_a = std::exp(lse_a - m), w_b = std::exp(lse_b - m);
  // A -inf side has weight 0 and its out is never read (it may hold anything).
  out = ((w_a > 0 ? w_a * out_a : 0.0) + (w_b > 0 ? w_b * out_b : 0.0)) / (w_a + w_b);
  lse = m + std::log(w_a + w_b);
}

struct MergeInputs {
  std::vector<float> out_a, lse_a, out_b, lse_b;
};

// Checks out/lse, the result of merging `in`, against double_merge: out within 16 ulp of |a| + |b| per
// element (each weight is an fp32 exp of an fp32 difference), lse within 8 ulp of max(1, |lse|).
void expect_merge_matches_double(const MergeInputs& in, const std::vector<float>& out, const std::vector<float>& lse,
                                 int head_dim, const std::string& what) {
  const std::size_t D = static_cast<std::size_t>(head_dim);
  for (std::size_t r = 0; r < in.lse_a.size(); ++r) {
    double want_lse = 0.0;
    for (std::size_t d = 0; d < D; ++d) {
      double want = 0.0;
      const std::size_t n = r * D + d;
      double_merge(in.out_a[n], in.lse_a[r], in.out_b[n], in.lse_b[r], want, want_lse);
      const double a = std::isinf(in.lse_a[r]) ? 0.0 : std::fabs(double(in.out_a[n]));
      const double b = std::isinf(in.lse_b[r]) ? 0.0 : std::fabs(double(in.out_b[n]));
      const double allowed = 16.0 * kUnitRoundoff * (a + b);
      ASSERT_LE(std::fabs(double(out[n]) - want), allowed)
          << what << ": row " << r << " dim " << d << " (lse_a " << in.lse_a[r] << ", lse_b " << in.lse_b[r]
          << ", out_a " << in.out_a[n] << ", out_b " << in.out_b[n] << "): got " << out[n] << ", want " << want;
    }
    if (std::isinf(want_lse)) {
      ASSERT_TRUE(is_negative_infinity(lse[r])) << what << ": row " << r << " lse " << lse[r];
    } else {
      ASSERT_LE(std::fabs(double(lse[r]) - want_lse), 8.0 * kUnitRoundoff * std::max(1.0, std::fabs(want_lse)))
          << what << ": row " << r << " (lse_a " << in.lse_a[r] << ", lse_b " << in.lse_b[r] << "): got " << lse[r]
          << ", want " << want_lse;
    }
  }
}

// Random rows, lse pairs drawn from close, far apart, one or both -inf, huge and tiny; the rows of a -inf side
// hold NaN markers, which must never reach the result. Against the double merge.
ALIBI_ISA_TEST(MergeMatchesADoublePrecisionMerge) {
  std::mt19937 rng(1208);
  for (int head_dim : {1, 3, 17, 80, 128}) {
    const std::int64_t rows = 97;
    MergeInputs in;
    in.out_a = normal_floats(static_cast<std::size_t>(rows * head_dim), rng, 2.0f);
    in.out_b = normal_floats(static_cast<std::size_t>(rows * head_dim), rng, 2.0f);
    std::uniform_real_distribution<float> spread(-30.0f, 30.0f), tiny(-1e-6f, 1e-6f);
    for (std::int64_t r = 0; r < rows; ++r) {
      float a = spread(rng), b = a;
      switch (r % 8) {
        case 0:
          b = a + tiny(rng);
          break;
        case 1:
          b = spread(rng);
          break;
        case 2:
          b = a + 100.0f;
          break;
        case 3:
          a = -kInf;
          break;
        case 4:
          b = -kInf;
          break;
        case 5:
          a = b = -kInf;
          break;
        case 6:
          a *= 1e6f, b = a + 3.0f;
          break;
        default:
          b = a + 0.5f;
          break;
      }
      in.lse_a.push_back(a);
      in.lse_b.push_back(b);
      for (int d = 0; d < head_dim; ++d) {
        if (std::isinf(a)) in.out_a[static_cast<std::size_t>(r * head_dim + d)] = unwritten_marker();
        if (std::isinf(b)) in.out_b[static_cast<std::size_t>(r * head_dim + d)] = unwritten_marker();
      }
    }
    std::vector<float> out(in.out_a.size(), unwritten_marker()), lse(in.lse_a.size(), unwritten_marker());
    alibi::merge_partials<Isa>(in.out_a.data(), in.lse_a.data(), in.out_b.data(), in.lse_b.data(), out.data(),
                               lse.data(), rows, head_dim);
    ASSERT_NO_FATAL_FAILURE(
        expect_merge_matches_double(in, out, lse, head_dim, "head_dim " + std::to_string(head_dim)));
  }
}

// The edge cases, row by row: one side -inf (the other side's bytes), both (zeros, -inf, whatever the outs
// hold), lse differences of 1e30 and more in both directions (the dominant side's bytes, no NaN), equal lse
// (the average, lse + log 2), and the largest finite lse.
ALIBI_ISA_TEST(MergeEdgeCases) {
  const float big = 1e30f, max = std::numeric_limits<float>::max();
  struct Pair {
    float lse_a, lse_b;
    int expect;  // 0: side a's bytes, 1: side b's bytes, 2: zeros and -inf, 3: the double merge
  } pairs[] = {
      {-kInf, 2.5f, 1},    {2.5f, -kInf, 0},   {-kInf, -1e30f, 1}, {-kInf, -kInf, 2}, {big, 0.0f, 0},
      {0.0f, big, 1},      {-big, 0.0f, 1},    {0.0f, -big, 0},    {big, -big, 0},    {-big, big, 1},
      {max, -max, 0},      {-max, max, 1},     {max, max, 3},      {-max, -max, 3},   {3.0f, 3.0f, 3},
      {-1e30f, -1e30f, 3}, {88.0f, -88.0f, 3}, {0.0f, 200.0f, 1},
  };
  std::mt19937 rng(1209);
  for (int head_dim : {1, 17, 80}) {
    const std::int64_t rows = static_cast<std::int64_t>(sizeof pairs / sizeof pairs[0]);
    const std::size_t D = static_cast<std::size_t>(head_dim);
    MergeInputs in;
    in.out_a = normal_floats(static_cast<std::size_t>(rows) * D, rng);
    in.out_b = normal_floats(static_cast<std::size_t>(rows) * D, rng);
    for (const Pair& p : pairs) {
      in.lse_a.push_back(p.lse_a);
      in.lse_b.push_back(p.lse_b);
    }
    std::vector<float> out(in.out_a.size(), unwritten_marker()), lse(in.lse_a.size(), unwritten_marker());
    alibi::merge_partials<Isa>(in.out_a.data(), in.lse_a.data(), in.out_b.data(), in.lse_b.data(), out.data(),
                               lse.data(), rows, head_dim);
    for (std::size_t r = 0; r < static_cast<std::size_t>(rows); ++r) {
      const Pair& p = pairs[r];
      const std::string what = "head_dim " + std::to_string(head_dim) + ", lse_a " + std::to_string(p.lse_a) +
                               ", lse_b " + std::to_string(p.lse_b);
      for (std::size_t d = 0; d < D; ++d) ASSERT_FALSE(std::isnan(out[r * D + d])) << what;
      ASSERT_FALSE(std::isnan(lse[r])) << what;
      if (p.expect == 0 || p.expect == 1) {
        const std::vector<float>& side = p.expect == 0 ? in.out_a : in.out_b;
        EXPECT_EQ(std::memcmp(out.data() + r * D, side.data() + r * D, D * sizeof(float)), 0)
            << what << ": out is not the dominant side's";
        EXPECT_EQ(std::memcmp(&lse[r], p.expect == 0 ? &p.lse_a : &p.lse_b, sizeof(float)), 0)
            << what << ": lse " << lse[r];
      } else if (p.expect == 2) {
        for (std::size_t d = 0; d < D; ++d) EXPECT_EQ(out[r * D + d], 0.0f) << what;
        EXPECT_TRUE(is_negative_infinity(lse[r])) << what << ": lse " << lse[r];
      }
    }
    ASSERT_NO_FATAL_FAILURE(expect_merge_matches_double(in, out, lse, head_dim, "edge cases"));
    // Equal lse: exactly the rounded average (w = 1 on both sides, sum 2).
    for (std::size_t r = 0; r < static_cast<std::size_t>(rows); ++r) {
      if (pairs[r].lse_a != pairs[r].lse_b || std::isinf(pairs[r].lse_a)) continue;
      for (std::size_t d = 0; d < D; ++d) {
        const float want = static_cast<float>((double(in.out_a[r * D + d]) + in.out_b[r * D + d]) / 2.0);
        EXPECT_NEAR(out[r * D + d], want, std::fabs(want) * 2 * kUnitRoundoff + 1e-30) << "equal lse, row " << r;
      }
    }
  }
  // rows = 0: every pointer may be null, nothing happens.
  EXPECT_NO_THROW(alibi::merge_partials<Isa>(nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, 0, 8));
  std::vector<float> untouched(16, 42.0f);
  EXPECT_NO_THROW(alibi::merge_partials<Isa>(untouched.data(), untouched.data(), untouched.data(), untouched.data(),
                                             untouched.data(), untouched.data(), 0, 8));
  for (float x : untouched) EXPECT_EQ(x, 42.0f);
}

// out may be out_a or out_b, lse may be lse_a or lse_b, in every combination: the same bytes as into
// separate buffers.
ALIBI_ISA_TEST(MergeInPlace) {
  std::mt19937 rng(1210);
  const int head_dim = 17;
  const std::int64_t rows = 40;
  MergeInputs in;
  in.out_a = normal_floats(static_cast<std::size_t>(rows * head_dim), rng);
  in.out_b = normal_floats(static_cast<std::size_t>(rows * head_dim), rng);
  in.lse_a = normal_floats(static_cast<std::size_t>(rows), rng, 3.0f);
  in.lse_b = normal_floats(static_cast<std::size_t>(rows), rng, 3.0f);
  in.lse_a[3] = -kInf;
  in.lse_b[5] = -kInf;
  in.lse_a[7] = in.lse_b[7] = -kInf;
  in.lse_a[9] = 1e30f;
  std::vector<float> want_out(in.out_a.size()), want_lse(in.lse_a.size());
  alibi::merge_partials<Isa>(in.out_a.data(), in.lse_a.data(), in.out_b.data(), in.lse_b.data(), want_out.data(),
                             want_lse.data(), rows, head_dim);
  for (int out_into = 0; out_into < 3; ++out_into)      // separate, a, b
    for (int lse_into = 0; lse_into < 3; ++lse_into) {  // separate, a, b
      MergeInputs x = in;
      std::vector<float> out(in.out_a.size(), unwritten_marker()), lse(in.lse_a.size(), unwritten_marker());
      float* o = out_into == 0 ? out.data() : out_into == 1 ? x.out_a.data() : x.out_b.data();
      float* l = lse_into == 0 ? lse.data() : lse_into == 1 ? x.lse_a.data() : x.lse_b.data();
      ASSERT_NO_THROW(alibi::merge_partials<Isa>(x.out_a.data(), x.lse_a.data(), x.out_b.data(), x.lse_b.data(), o, l,
                                                 rows, head_dim));
      const std::vector<float> got_out(o, o + want_out.size()), got_lse(l, l + want_lse.size());
      EXPECT_TRUE(same_bits(got_out, want_out) && same_bits(got_lse, want_lse)) << "out into "
                                                                                << "-ab"[out_into] << ", lse into "
                                                                                << "-ab"[lse_into];
    }
}

// ---- bad input

ALIBI_ISA_TEST(RejectsBadPositionsAndLseWithoutWriting) {
  std::mt19937 rng(1211);
  Case base = make_case(2, 5, 7, 4, 2, 8);
  base.fill(rng);
  const std::int64_t int64_min = std::numeric_limits<std::int64_t>::min();
  for_each_kv([&](auto element) {
    using KV = decltype(element);
    Case c = base;
    const KvTensors<KV> t = store_kv<KV>(c);
    const std::string name = kv_name(KV{});
    std::vector<float> out(c.q.size(), 12345.0f), lse(static_cast<std::size_t>(row_count(c.shape)), 54321.0f);
    auto with_options = [&](auto edit, const char* parameter, const std::string& what) {
      alibi::AttentionOptions o;
      o.lse = lse.data();
      edit(o);
      expect_rejected_guarding(
          [&] { alibi::attention<Isa>(c.q.data(), t.k_data(), t.v_data(), out.data(), c.shape, o); }, {parameter},
          {&out, &lse}, what + " (" + name + " K/V)");
    };
    using Options = alibi::AttentionOptions;
    with_options([](Options& o) { o.kv_pos0 = -1; }, "kv_pos0", "kv_pos0 -1");
    with_options([&](Options& o) { o.kv_pos0 = int64_min; }, "kv_pos0", "kv_pos0 INT64_MIN");
    with_options([](Options& o) { o.kv_pos0 = kInt64Max - 7 + 1; }, "kv_pos0", "kv_pos0 + kv_len = INT64_MAX + 1");
    with_options([](Options& o) { o.kv_pos0 = kInt64Max; }, "kv_pos0", "kv_pos0 INT64_MAX");
    with_options(
        [](Options& o) {
          o.kv_pos0 = kInt64Max;
          o.q_pos0 = 0;
        },
        "kv_pos0", "kv_pos0 INT64_MAX with q_pos0 0");
    with_options(
        [](Options& o) {
          o.q_pos0 = -2;
          o.kv_pos0 = 100;
        },
        "q_pos0", "q_pos0 -2 with kv_pos0 100");
    with_options([&](Options& o) { o.q_pos0 = int64_min; }, "q_pos0", "q_pos0 INT64_MIN");
    with_options([](Options& o) { o.q_pos0 = kInt64Max - 5 + 1; }, "q_pos0", "q_pos0 + q_len = INT64_MAX + 1");
    with_options(
        [](Options& o) {
          o.q_pos0 = kInt64Max;
          o.kv_pos0 = 3;
        },
        "q_pos0", "q_pos0 INT64_MAX");

    // The largest positions accepted.
    {
      alibi::AttentionOptions o;
      o.lse = lse.data();
      o.kv_pos0 = kInt64Max - 7;
      o.q_pos0 = kInt64Max - 5;
      EXPECT_NO_THROW(alibi::attention<Isa>(c.q.data(), t.k_data(), t.v_data(), out.data(), c.shape, o)) << name;
      o.q_pos0 = -1;
      EXPECT_NO_THROW(alibi::attention<Isa>(c.q.data(), t.k_data(), t.v_data(), out.data(), c.shape, o)) << name;
      std::fill(out.begin(), out.end(), 12345.0f);
      std::fill(lse.begin(), lse.end(), 54321.0f);
    }

    // lse overlapping q, out, k or v (whole, by an offset, by one float at either end) in one buffer.
    const std::size_t nq = c.q.size(), nl = lse.size();
    const std::size_t kv_bytes = t.k.size() * sizeof(KV);
    const alibi::AttentionOptions defaults;
    for (std::size_t offset : {std::size_t{0}, std::size_t{3}, nq - 1}) {  // lse inside or at the end of q
      std::vector<float> shared(c.q);
      shared.resize(nq + nl, 7.0f);
      alibi::AttentionOptions o = defaults;
      o.lse = shared.data() + offset;
      expect_rejected_guarding(
          [&] { alibi::attention<Isa>(shared.data(), t.k_data(), t.v_data(), out.data(), c.shape, o); }, {"lse"},
          {&shared, &out}, "lse at q + " + std::to_string(offset) + " (" + name + ")");
    }
    {  // lse's last float is q's first
      std::vector<float> shared(nq + nl, 7.0f);
      std::copy(c.q.begin(), c.q.end(), shared.begin() + static_cast<std::ptrdiff_t>(nl - 1));
      alibi::AttentionOptions o = defaults;
      o.lse = shared.data();
      expect_rejected_guarding(
          [&] { alibi::attention<Isa>(shared.data() + nl - 1, t.k_data(), t.v_data(), out.data(), c.shape, o); },
          {"lse"}, {&shared, &out}, "lse's last float on q's first (" + name + ")");
    }
    for (std::size_t offset : {std::size_t{0}, std::size_t{5}, nq - 1}) {  // lse inside out
      std::vector<float> shared(nq + nl, 7.0f);
      alibi::AttentionOptions o = defaults;
      o.lse = shared.data() + offset;
      expect_rejected_guarding(
          [&] { alibi::attention<Isa>(c.q.data(), t.k_data(), t.v_data(), shared.data(), c.shape, o); }, {"lse"},
          {&shared}, "lse at out + " + std::to_string(offset) + " (" + name + ")");
    }
    {  // out starting on lse's last float
      std::vector<float> shared(nq + nl, 7.0f);
      alibi::AttentionOptions o = defaults;
      o.lse = shared.data();
      expect_rejected_guarding(
          [&] { alibi::attention<Isa>(c.q.data(), t.k_data(), t.v_data(), shared.data() + nl - 1, c.shape, o); },
          {"lse"}, {&shared}, "out starting on lse's last float (" + name + ")");
    }
    {  // out or lse sharing memory with slopes or key_norms, which the kernel reads while it writes them
      const int heads = c.shape.num_heads;
      const std::size_t norm_count = static_cast<std::size_t>(c.shape.batch * c.shape.kv_len * c.shape.num_kv_heads);
      for (int written = 0; written < 2; ++written)
        for (int input = 0; input < 2; ++input) {
          const std::size_t input_count = input == 0 ? static_cast<std::size_t>(heads) : norm_count;
          // The input's last float is the written array's first.
          std::vector<float> shared(input_count + (written == 0 ? nq : nl), 0.25f);
          float* input_data = shared.data();
          float* written_data = shared.data() + input_count - 1;
          alibi::AttentionOptions o = defaults;
          (input == 0 ? o.slopes : o.key_norms) = input_data;
          if (written == 1) o.lse = written_data;
          float* out_data = written == 0 ? written_data : out.data();
          const char* parameter = written == 0 ? "out" : "lse";
          expect_rejected_guarding(
              [&] { alibi::attention<Isa>(c.q.data(), t.k_data(), t.v_data(), out_data, c.shape, o); }, {parameter},
              {&shared, &out},
              std::string(parameter) + " starting on the last float of " + (input == 0 ? "slopes" : "key_norms") +
                  " (" + name + ")");
        }
    }
    for (int tensor = 0; tensor < 2; ++tensor) {  // lse over k or v, at the start and across the end
      const std::vector<KV>& own = tensor == 0 ? t.k : t.v;
      for (std::size_t lse_at : {std::size_t{0}, kv_bytes - 4}) {
        std::vector<float> shared((kv_bytes + nl * sizeof(float)) / 4 + 1, 7.0f);
        unsigned char* bytes = reinterpret_cast<unsigned char*>(shared.data());
        std::memcpy(bytes, own.data(), kv_bytes);
        const KV* kv = reinterpret_cast<const KV*>(bytes);
        alibi::AttentionOptions o = defaults;
        o.lse = reinterpret_cast<float*>(bytes + lse_at);
        expect_rejected_guarding(
            [&] {
              alibi::attention<Isa>(c.q.data(), tensor == 0 ? kv : t.k_data(), tensor == 1 ? kv : t.v_data(),
                                    out.data(), c.shape, o);
            },
            {"lse"}, {&shared, &out},
            std::string("lse at byte ") + std::to_string(lse_at) + " of " + (tensor == 0 ? "k" : "v") + " (" + name +
                ")");
      }
    }
    {  // adjoining is not overlapping: lse right after out and right before q, in one buffer
      std::vector<float> shared(nl + nq + nq, 7.0f);
      float* q = shared.data() + nl + nq;
      std::copy(c.q.begin(), c.q.end(), q);
      float* o_ptr = shared.data();
      alibi::AttentionOptions o = defaults;
      o.lse = shared.data() + nq;  // after out, before q
      ASSERT_NO_THROW(alibi::attention<Isa>(q, t.k_data(), t.v_data(), o_ptr, c.shape, o)) << name;
      Output got;
      got.out.assign(o_ptr, o_ptr + nq);
      got.lse.assign(o.lse, o.lse + nl);
      const std::string failure = check_against(got, c, lse_reference(c), false);
      EXPECT_TRUE(failure.empty()) << "lse adjoining out and q (" << name << "): " << failure;
    }
  });
}

ALIBI_ISA_TEST(MergeRejectsBadArgumentsWithoutWriting) {
  const int D = 8;
  const std::int64_t rows = 6;
  const std::size_t n_out = static_cast<std::size_t>(rows * D), n_lse = static_cast<std::size_t>(rows);
  std::mt19937 rng(1212);
  const std::vector<float> out_a = normal_floats(n_out, rng), out_b = normal_floats(n_out, rng);
  const std::vector<float> lse_a = normal_floats(n_lse, rng), lse_b = normal_floats(n_lse, rng);
  std::vector<float> out(n_out, 12345.0f), lse(n_lse, 54321.0f);
  const float* none = nullptr;
  auto call = [&](const float* oa, const float* la, const float* ob, const float* lb, float* o, float* l,
                  std::int64_t r, int d) { return [=] { alibi::merge_partials<Isa>(oa, la, ob, lb, o, l, r, d); }; };
  const auto& A = out_a;
  const auto& B = out_b;
  expect_rejected_guarding(call(none, lse_a.data(), B.data(), lse_b.data(), out.data(), lse.data(), rows, D), {"out_a"},
                           {&out, &lse}, "null out_a");
  expect_rejected_guarding(call(A.data(), none, B.data(), lse_b.data(), out.data(), lse.data(), rows, D), {"lse_a"},
                           {&out, &lse}, "null lse_a");
  expect_rejected_guarding(call(A.data(), lse_a.data(), none, lse_b.data(), out.data(), lse.data(), rows, D), {"out_b"},
                           {&out, &lse}, "null out_b");
  expect_rejected_guarding(call(A.data(), lse_a.data(), B.data(), none, out.data(), lse.data(), rows, D), {"lse_b"},
                           {&out, &lse}, "null lse_b");
  expect_rejected_guarding(call(A.data(), lse_a.data(), B.data(), lse_b.data(), nullptr, lse.data(), rows, D), {"out"},
                           {&out, &lse}, "null out");
  expect_rejected_guarding(call(A.data(), lse_a.data(), B.data(), lse_b.data(), out.data(), nullptr, rows, D), {"lse"},
                           {&out, &lse}, "null lse");
  expect_rejected_guarding(call(A.data(), lse_a.data(), B.data(), lse_b.data(), out.data(), lse.data(), -1, D),
                           {"rows"}, {&out, &lse}, "rows -1");
  expect_rejected_guarding(call(A.data(), lse_a.data(), B.data(), lse_b.data(), out.data(), lse.data(),
                                std::numeric_limits<std::int64_t>::min(), D),
                           {"rows"}, {&out, &lse}, "rows INT64_MIN");
  expect_rejected_guarding(call(A.data(), lse_a.data(), B.data(), lse_b.data(), out.data(), lse.data(), rows, 0),
                           {"head_dim"}, {&out, &lse}, "head_dim 0");
  expect_rejected_guarding(call(A.data(), lse_a.data(), B.data(), lse_b.data(), out.data(), lse.data(), rows, -3),
                           {"head_dim"}, {&out, &lse}, "head_dim -3");
  expect_rejected_guarding(
      call(A.data(), lse_a.data(), B.data(), lse_b.data(), out.data(), lse.data(), std::int64_t{1} << 62, D),
      {"rows", "head_dim"}, {&out, &lse}, "rows * head_dim overflowing");

  // Overlaps other than the exact in-place aliases, inside one buffer holding every array in a slot of n_out
  // floats with an empty slot after it, so that each shifted array overlaps exactly one other:
  //   [out_a | - | out_b | - | lse_a | - | lse_b | - | out | - | lse | -]
  const std::size_t slot = n_out;
  const std::size_t at_out_a = 0, at_out_b = 2 * slot, at_lse_a = 4 * slot, at_lse_b = 6 * slot;
  const std::size_t at_out = 8 * slot, at_lse = 10 * slot, size = 12 * slot;
  auto fresh = [&] {
    std::vector<float> buffer(size, 7.0f);
    std::copy(out_a.begin(), out_a.end(), buffer.begin() + static_cast<std::ptrdiff_t>(at_out_a));
    std::copy(out_b.begin(), out_b.end(), buffer.begin() + static_cast<std::ptrdiff_t>(at_out_b));
    std::copy(lse_a.begin(), lse_a.end(), buffer.begin() + static_cast<std::ptrdiff_t>(at_lse_a));
    std::copy(lse_b.begin(), lse_b.end(), buffer.begin() + static_cast<std::ptrdiff_t>(at_lse_b));
    return buffer;
  };
  struct Overlap {
    std::size_t out_at, lse_at;
    const char* name;     // the parameter the message must name
    const char* or_name;  // or this one (overlaps between the two outputs name either)
    const char* what;
  } overlaps[] = {
      {at_out_a + 1, at_lse, "out", "out", "out one float past out_a"},
      {at_out_a + D, at_lse, "out", "out", "out one row past out_a"},
      {at_out_b - 1, at_lse, "out", "out", "out one float before out_b"},
      {at_out_b + D, at_lse, "out", "out", "out one row past out_b"},
      {at_lse_a - 1, at_lse, "out", "out", "out running into lse_a"},
      {at_lse_b, at_lse, "out", "out", "out == lse_b"},
      {at_out, at_lse_a + 1, "lse", "lse", "lse one float past lse_a"},
      {at_out, at_lse_b - 1, "lse", "lse", "lse one float before lse_b"},
      {at_out, at_out_a, "lse", "lse", "lse == out_a"},
      {at_out, at_out_a + 2, "lse", "lse", "lse inside out_a"},
      {at_out, at_out_b + n_out - 1, "lse", "lse", "lse starting on out_b's last float"},
      {at_out, at_out + 3, "out", "lse", "lse inside out"},
      {at_lse + n_lse - 1, at_lse, "out", "lse", "out starting on lse's last float"},
  };
  for (const Overlap& o : overlaps) {
    std::vector<float> buffer = fresh();
    float* base = buffer.data();
    ASSERT_LE(std::max(o.out_at + n_out, o.lse_at + n_lse), size) << o.what;
    expect_rejected_guarding(call(base + at_out_a, base + at_lse_a, base + at_out_b, base + at_lse_b, base + o.out_at,
                                  base + o.lse_at, rows, D),
                             {o.name, o.or_name}, {&buffer}, o.what);
  }
  // Adjoining is not overlapping: out right after out_a, lse right after lse_a, in the same buffer.
  {
    std::vector<float> buffer = fresh();
    float* base = buffer.data();
    ASSERT_NO_THROW(alibi::merge_partials<Isa>(base + at_out_a, base + at_lse_a, base + at_out_b, base + at_lse_b,
                                               base + at_out_a + n_out, base + at_lse_a + n_lse, rows, D));
    MergeInputs in{out_a, lse_a, out_b, lse_b};
    const std::vector<float> got_out(base + at_out_a + n_out, base + at_out_a + 2 * n_out);
    const std::vector<float> got_lse(base + at_lse_a + n_lse, base + at_lse_a + 2 * n_lse);
    ASSERT_NO_FATAL_FAILURE(expect_merge_matches_double(in, got_out, got_lse, D, "adjoining buffers"));
  }
}

// ---- threads

// out and lse are the same bytes for every thread count, with thread teams even for small calls, and for
// a decode whose keys are split across threads (split-K merges its pieces by the rule merge_partials uses).
ALIBI_ISA_TEST(ThreadCountDoesNotChangeOutOrLse) {
  const AllCallsUseThreads threads_even_for_small_calls;
  std::mt19937 rng(1213);
  std::vector<Case> cases;
  for (int index = 0; index < scaled(8, 3); ++index) {
    const int batch = std::uniform_int_distribution<int>(1, 2)(rng);
    const int head_dims[] = {1, 17, 33, 64};
    const int head_dim = pick(head_dims, rng);
    Case c = make_case(batch, 0, 0, 8, 2, head_dim);
    c.shape.q_len = std::uniform_int_distribution<std::int64_t>(1, 200)(rng);
    c.shape.kv_len = std::uniform_int_distribution<std::int64_t>(1, 200)(rng);
    c.options.mask = index % 2 ? alibi::Mask::bidirectional : alibi::Mask::causal;
    c.options.window = index % 3 == 0 ? 37 : 0;
    c.options.kv_pos0 = index % 4 == 0 ? 0 : 100000 + index;
    c.options.q_pos0 = index % 3 == 1 ? -1 : c.options.kv_pos0 + 50;
    if (index % 4 == 1) c.custom_slopes = {0.0f, -0.01f, 0.3f, 0.1f, 0.0f, 0.02f, -0.005f, 0.7f};
    c.fill(rng);
    cases.push_back(c);
  }
  for (float tolerance : {0.0f, alibi::AttentionOptions{}.skip_tolerance}) {
    Case c = make_case(1, 3, 9000, 8, 2, 16);
    c.options.skip_tolerance = tolerance;
    c.options.kv_pos0 = 1 << 20;
    c.options.q_pos0 = (1 << 20) + 9500;  // past the shard
    c.fill(rng);
    cases.push_back(c);
  }
  for (const Case& c : cases) {
    for_each_kv([&](auto element) {
      using KV = decltype(element);
      Case s = c;
      const KvTensors<KV> t = store_kv<KV>(s);
      const auto run_case = [&](const Case& x) { return run_joined<Isa>(x, t); };
      SCOPED_TRACE(std::string("KV=") + kv_name(KV{}) + " kv_pos0=" + std::to_string(s.options.kv_pos0));
      ASSERT_NO_FATAL_FAILURE(expect_bitwise_equal_across_threads(s, {2, 3}, run_case));
    });
  }
}

// ---- the table test_main.cpp registers (Note [no AVX-512 before the CPU check])

#define ALIBI_PARTIAL_TESTS(X)                   \
  X(LseMatchesTheReferenceOnAwkwardShapes)       \
  X(RandomShapesWithKeyOffsetsMatchTheReference) \
  X(FarQueriesAndKeysStayExact)                  \
  X(KeyOffsetsUpToTheLargestPosition)            \
  X(SkippedMassStaysWithinToleranceInTheLse)     \
  X(LargeLogitsFarFromTheKeys)                   \
  X(RowsRecomputedExactlyKeepTheirLse)           \
  X(ShardsMergedInAnyOrderEqualOneCall)          \
  X(ShardsNoRowSeesGiveZerosAndNegativeInfinity) \
  X(MergeMatchesADoublePrecisionMerge)           \
  X(MergeEdgeCases)                              \
  X(MergeInPlace)                                \
  X(RejectsBadPositionsAndLseWithoutWriting)     \
  X(MergeRejectsBadArgumentsWithoutWriting)      \
  X(ThreadCountDoesNotChangeOutOrLse)

ALIBI_ISA_TEST_ENTRIES("PartialAttentionTest", ALIBI_PARTIAL_TESTS);

}  // namespace

const TestTable kPartialTests = {kEntries.data(), kEntries.size()};

}  // namespace alibi_test
