#pragma once
// Test cases of alibi::attention shared by the per-ISA test sources (attention_test.cpp, kv16_test.cpp):
// a case (shape, options, tensors), the random shape generator, running a case and comparing it with the
// float64 reference (tests/reference.hpp), and the checks several tests repeat (rows against the
// reference, bitwise equality across thread counts, which rows a non-finite key reaches).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <random>
#include <string>
#include <vector>

#include "alibi/alibi.hpp"
#include "reference.hpp"
#include "test_support.hpp"

namespace alibi_test {

// ---- a test case: shape, options and its tensors

struct Case {
  alibi::AttentionShape shape;
  alibi::AttentionOptions options;   // options.slopes is ignored: see custom_slopes
  std::vector<float> custom_slopes;  // empty: the library's default slopes
  std::vector<float> q, k, v;

  alibi::AttentionOptions call_options() const {
    alibi::AttentionOptions o = options;
    o.slopes = custom_slopes.empty() ? nullptr : custom_slopes.data();
    return o;
  }
  std::string describe() const { return alibi_test::describe(shape, call_options()); }

  void fill(std::mt19937& rng, float q_sigma = 1.0f, float k_sigma = 1.0f, float v_sigma = 1.0f) {
    q = normal_floats(static_cast<std::size_t>(q_count(shape)), rng, q_sigma);
    k = normal_floats(static_cast<std::size_t>(kv_count(shape)), rng, k_sigma);
    v = normal_floats(static_cast<std::size_t>(kv_count(shape)), rng, v_sigma);
  }
};

inline Case make_case(int batch, std::int64_t q_len, std::int64_t kv_len, int num_heads, int num_kv_heads,
                      int head_dim) {
  Case c;
  c.shape.batch = batch;
  c.shape.q_len = q_len;
  c.shape.kv_len = kv_len;
  c.shape.num_heads = num_heads;
  c.shape.num_kv_heads = num_kv_heads;
  c.shape.head_dim = head_dim;
  return c;
}

// How far `got` is from `want`: the largest |got - want| and the largest |want| (its scale).
struct Deviation {
  double difference = 0.0, scale = 0.0;
};
inline Deviation deviation(const std::vector<float>& got, const std::vector<float>& want) {
  Deviation d;
  for (std::size_t n = 0; n < want.size(); ++n) {
    d.scale = std::max(d.scale, std::fabs(double(want[n])));
    d.difference = std::max(d.difference, std::fabs(double(got[n]) - want[n]));
  }
  return d;
}

template <class Isa>
std::vector<float> run(const Case& c) {
  std::vector<float> out(static_cast<std::size_t>(q_count(c.shape)), unwritten_marker());
  alibi::attention<Isa>(c.q.data(), c.k.data(), c.v.data(), out.data(), c.shape, c.call_options());
  return out;
}

inline ReferenceOutput reference_of(const Case& c) {
  return reference_attention(make_reference_problem(c.q.data(), c.k.data(), c.v.data(), c.shape, c.call_options()));
}

// Runs the case on Isa and compares the whole output with the reference.
template <class Isa>
Comparison check(const Case& c, bool allow_logit_rounding = false) {
  const std::vector<float> out = run<Isa>(c);
  return compare_to_reference(out.data(), reference_of(c), c.shape, max_abs(c.v), allow_logit_rounding);
}

#define EXPECT_MATCHES_REFERENCE(comparison, c) \
  EXPECT_TRUE((comparison).first_failure.empty()) << (c).describe() << "\n  " << (comparison).first_failure

// ---- random shapes

inline constexpr std::int64_t kLengths[] = {0, 1, 2, 7, 15, 16, 17, 63, 64, 65, 127, 129, 257, 513};
inline constexpr int kHeadCounts[] = {1, 2, 3, 5, 6, 8, 12, 16, 40};
inline constexpr int kHeadDims[] = {1, 2, 3, 7, 8, 15, 16, 17, 32, 33, 63, 64, 65, 80, 96, 100, 128, 160, 256};

template <class T, std::size_t N>
T pick(const T (&values)[N], std::mt19937& rng) {
  return values[std::uniform_int_distribution<std::size_t>(0, N - 1)(rng)];
}

inline int random_divisor(int n, std::mt19937& rng) {
  std::vector<int> divisors;
  for (int d = 1; d <= n; ++d)
    if (n % d == 0) divisors.push_back(d);
  return divisors[std::uniform_int_distribution<std::size_t>(0, divisors.size() - 1)(rng)];
}

// Work of the float64 reference, in multiply-adds (zero lengths still cost a row or two).
inline std::int64_t reference_work(const alibi::AttentionShape& s) {
  return std::int64_t{s.batch} * std::max<std::int64_t>(s.q_len, 1) * std::max<std::int64_t>(s.kv_len, 1) *
         s.num_heads * s.head_dim;
}

// Case `index` pins one size to a listed value in rotation (q_len, kv_len, num_heads, head_dim), so every
// listed value occurs; the other sizes are drawn until the reference's work fits `max_work`. Options keep
// the logits unit-scale, as the 2e-5 tolerance assumes: negative slopes are gentle, and rows more than 16
// positions from every key (q_len > kv_len, explicit q_pos0) get a window of at most 16 or gentle slopes,
// since otherwise the bias alone makes every logit of the row large (LargeInputsWithQueriesFarPastTheKeys
// and RandomShapesWithFarRows cover that regime with its own tolerance; they pass unit_scale = false).
inline Case random_case(int index, std::mt19937& rng, std::int64_t max_work, bool unit_scale = true) {
  const int pinned = index % 4;
  const int slot = index / 4;
  auto draw = [&](bool pin, auto& values, auto& out) {
    if (pin)
      out = values[static_cast<std::size_t>(slot) % (sizeof(values) / sizeof(values[0]))];
    else
      out = pick(values, rng);
  };
  Case c;
  for (int attempt = 0;; ++attempt) {
    c.shape.batch = std::uniform_int_distribution<int>(1, 3)(rng);
    draw(pinned == 0, kLengths, c.shape.q_len);
    draw(pinned == 1, kLengths, c.shape.kv_len);
    draw(pinned == 2, kHeadCounts, c.shape.num_heads);
    draw(pinned == 3, kHeadDims, c.shape.head_dim);
    if (reference_work(c.shape) <= max_work) break;
    if (attempt > 10000) {  // the pinned size alone is too big: keep it, shrink the rest
      c.shape.batch = 1;
      if (pinned != 0) c.shape.q_len = 1;
      if (pinned != 1) c.shape.kv_len = 7;
      if (pinned != 2) c.shape.num_heads = 1;
      if (pinned != 3) c.shape.head_dim = 8;
      break;
    }
  }
  c.shape.num_kv_heads = random_divisor(c.shape.num_heads, rng);

  std::uniform_real_distribution<double> unit(0.0, 1.0);
  alibi::AttentionOptions& o = c.options;
  o.mask = unit(rng) < 0.5 ? alibi::Mask::causal : alibi::Mask::bidirectional;
  if (unit(rng) < 0.5) {
    const std::int64_t kv = c.shape.kv_len;
    const std::int64_t windows[] = {
        1, 2, 3, 7, 16, 64, std::max<std::int64_t>(1, kv / 2), std::max<std::int64_t>(1, kv), kv + 3};
    o.window = pick(windows, rng);
  }
  if (unit(rng) < 0.4) {
    const std::int64_t last = std::max<std::int64_t>(0, c.shape.kv_len - c.shape.q_len) + 16;
    o.q_pos0 = std::uniform_int_distribution<std::int64_t>(0, last)(rng);
  }
  if (unit(rng) < 0.3) o.scale = static_cast<float>((0.25 + 1.75 * unit(rng)) / std::sqrt(double(c.shape.head_dim)));
  if (unit(rng) < 0.4) {
    for (int h = 0; h < c.shape.num_heads; ++h) {
      const double kind = unit(rng);
      c.custom_slopes.push_back(kind < 0.2   ? 0.0f
                                : kind < 0.4 ? static_cast<float>(-0.02 * unit(rng))
                                             : static_cast<float>(0.6 * unit(rng)));
    }
  }
  const std::int64_t first = o.q_pos0 == -1 ? c.shape.kv_len - c.shape.q_len : o.q_pos0;
  const bool far_rows =
      c.shape.q_len > 0 && c.shape.kv_len > 0 &&
      (first + c.shape.q_len - 1 > c.shape.kv_len - 1 + 16 || (o.mask == alibi::Mask::bidirectional && first < -16));
  if (unit_scale && far_rows && (o.window == 0 || o.window > 16)) {
    if (unit(rng) < 0.5) {
      o.window = std::uniform_int_distribution<std::int64_t>(1, 16)(rng);
    } else {
      c.custom_slopes.clear();
      for (int h = 0; h < c.shape.num_heads; ++h)
        c.custom_slopes.push_back(unit(rng) < 0.2 ? 0.0f : static_cast<float>(0.04 * unit(rng) - 0.02));
    }
  }
  const int thread_counts[] = {1, 2, 3, 0};
  o.num_threads = pick(thread_counts, rng);
  c.fill(rng);
  return c;
}

// ---- checks several tests share

// The float64 reference of chosen rows (all heads, batch entry 0) of a case, for long cases where the
// whole reference would cost too much.
struct SpotReference {
  std::vector<std::int64_t> rows;
  std::vector<ReferenceRow> refs;  // per row, per head
  double max_reference = 0.0;
};

inline SpotReference spot_reference(const Case& c, const std::vector<std::int64_t>& rows) {
  const ReferenceProblem problem =
      make_reference_problem(c.q.data(), c.k.data(), c.v.data(), c.shape, c.call_options());
  SpotReference spot;
  spot.rows = rows;
  for (std::int64_t i : rows)
    for (int h = 0; h < c.shape.num_heads; ++h) {
      spot.refs.push_back(reference_row(problem, 0, i, h));
      for (double x : spot.refs.back().out) spot.max_reference = std::max(spot.max_reference, std::fabs(x));
    }
  return spot;
}

// Compares the spot rows of `out`, the output of case `c`, with their reference. Allowed error: the
// unit-scale tolerance of compare_to_reference, plus Note [logit rounding bound] when `allow_logit_rounding`.
inline void expect_rows_match(const std::vector<float>& out, const Case& c, const SpotReference& spot,
                              bool allow_logit_rounding = false) {
  const double base = 2e-5 * spot.max_reference + 4.0 * kUnitRoundoff * max_abs(c.v);
  std::size_t n = 0;
  for (std::int64_t i : spot.rows)
    for (int h = 0; h < c.shape.num_heads; ++h, ++n)
      for (int d = 0; d < c.shape.head_dim; ++d) {
        const float got = out[static_cast<std::size_t>((i * c.shape.num_heads + h) * c.shape.head_dim + d)];
        const ReferenceRow& ref = spot.refs[n];
        const double want = ref.out[static_cast<std::size_t>(d)];
        const double allowed = base + (allow_logit_rounding ? ref.rounding_bound[static_cast<std::size_t>(d)] : 0.0);
        ASSERT_LE(std::fabs(got - want), allowed)
            << c.describe() << "\n  row " << i << " head " << h << " dim " << d << ": got " << got << ", reference "
            << want << " (sees " << ref.visible_keys << " keys)";
      }
}

inline void expect_rows_match_reference(const std::vector<float>& out, const Case& c,
                                        const std::vector<std::int64_t>& rows, bool allow_logit_rounding = false) {
  expect_rows_match(out, c, spot_reference(c, rows), allow_logit_rounding);
}

// Rows worth checking in a case of `length` >= 1 query rows: both ends, the middle, around the 128-row
// boundaries, and a few random ones (those that exist).
inline std::vector<std::int64_t> spot_rows(std::int64_t length, std::mt19937& rng) {
  const std::int64_t candidates[] = {0, 1, 2, 127, 128, 129, length / 2 - 1, length / 2, length - 2, length - 1};
  std::vector<std::int64_t> rows;
  for (std::int64_t row : candidates)
    if (row >= 0 && row < length) rows.push_back(row);
  for (int extra = 0; extra < 6; ++extra)
    rows.push_back(std::uniform_int_distribution<std::int64_t>(0, length - 1)(rng));
  return rows;
}

// Runs `c` with one thread, then with each of `thread_counts`, through `run_case` (a callable that takes the
// case and returns its output), and requires the same bytes every time.
template <class C, class Run>
void expect_bitwise_equal_across_threads(C c, std::initializer_list<int> thread_counts, Run run_case) {
  c.options.num_threads = 1;
  const std::vector<float> serial = run_case(c);
  for (int threads : thread_counts) {
    c.options.num_threads = threads;
    const std::vector<float> parallel = run_case(c);
    ASSERT_EQ(std::memcmp(serial.data(), parallel.data(), serial.size() * sizeof(float)), 0)
        << c.describe() << ": differs from num_threads=1 with num_threads=" << threads;
  }
}

// Sets a boolean test hook (alibi::test_hooks) for its lifetime, then restores it.
class HookSet {
 public:
  explicit HookSet(bool& hook) : hook_(hook), saved_(hook) { hook_ = true; }
  ~HookSet() { hook_ = saved_; }
  HookSet(const HookSet&) = delete;
  HookSet& operator=(const HookSet&) = delete;

 private:
  bool& hook_;
  bool saved_;
};

// Keeps every call at its ISA's full vector width for its lifetime (test_hooks::full_width_only).
class FullWidthOnly : HookSet {
 public:
  FullWidthOnly() : HookSet(alibi::test_hooks::full_width_only) {}
};

// While alive: paged decodes over short pages take narrower vectors wherever the page rule of
// Plan::prefers_narrower applies, on every machine (test_hooks::narrower_pages_always).
class NarrowerPagesAlways : HookSet {
 public:
  NarrowerPagesAlways() : HookSet(alibi::test_hooks::narrower_pages_always) {}
};

// While alive: streaming decodes read their keys in order, never in page pairs (test_hooks::no_key_pairs).
class NoKeyPairs : HookSet {
 public:
  NoKeyPairs() : HookSet(alibi::test_hooks::no_key_pairs) {}
};

// While alive: streaming decodes take page pairs wherever they apply, on every machine
// (test_hooks::key_pairs_always).
class KeyPairsAlways : HookSet {
 public:
  KeyPairsAlways() : HookSet(alibi::test_hooks::key_pairs_always) {}
};

// Lowers the plan's single-thread threshold for its lifetime, so small shapes really run on a thread team.
class AllCallsUseThreads {
 public:
  AllCallsUseThreads() : saved_(alibi::test_hooks::single_thread_flops) {
    alibi::test_hooks::single_thread_flops = 0.0;
  }
  ~AllCallsUseThreads() { alibi::test_hooks::single_thread_flops = saved_; }
  AllCallsUseThreads(const AllCallsUseThreads&) = delete;
  AllCallsUseThreads& operator=(const AllCallsUseThreads&) = delete;

 private:
  double saved_;
};

// Whether query row i of case `c` sees key j (the contract's visibility rule).
inline bool sees_key(const Case& c, std::int64_t i, std::int64_t j) {
  const std::int64_t q_pos0 = c.options.q_pos0 == -1 ? c.shape.kv_len - c.shape.q_len : c.options.q_pos0;
  const std::int64_t p = q_pos0 + i, w = c.options.window;
  if (c.options.mask == alibi::Mask::causal) return j <= p && (w == 0 || p - j < w);
  return w == 0 || (p > j ? p - j : j - p) < w;
}

// Where a non-finite element in key or value row `bad_key` of batch 0, kv head `bad_kv_head` went: `out` is
// the output with it, `clean` the output of the same case without it.
struct NonFiniteSpread {
  int seeing = 0;                  // output rows that see the bad key
  int changed_without_seeing = 0;  // rows that do not see it, yet whose bytes differ from `clean`
  int finite_while_seeing = 0;     // rows that see it and came out all finite
};

inline NonFiniteSpread non_finite_spread(const Case& c, std::int64_t bad_key, int bad_kv_head,
                                         const std::vector<float>& out, const std::vector<float>& clean) {
  const int H = c.shape.num_heads, D = c.shape.head_dim, group = H / c.shape.num_kv_heads;
  NonFiniteSpread spread;
  for (int b = 0; b < c.shape.batch; ++b)
    for (std::int64_t i = 0; i < c.shape.q_len; ++i)
      for (int h = 0; h < H; ++h) {
        const std::size_t at = static_cast<std::size_t>(((b * c.shape.q_len + i) * H + h) * D);
        const bool sees = b == 0 && h / group == bad_kv_head && sees_key(c, i, bad_key);
        if (sees) {
          ++spread.seeing;
          spread.finite_while_seeing +=
              std::all_of(out.begin() + static_cast<std::ptrdiff_t>(at),
                          out.begin() + static_cast<std::ptrdiff_t>(at) + D, [](float x) { return std::isfinite(x); });
        } else {
          spread.changed_without_seeing +=
              std::memcmp(out.data() + at, clean.data() + at, sizeof(float) * static_cast<std::size_t>(D)) != 0;
        }
      }
  return spread;
}

// A shape and the options that place its rows, for tables of cases.
struct ShapeAndOptions {
  int batch;
  std::int64_t q_len, kv_len;
  int heads, kv_heads, head_dim;
  alibi::Mask mask;
  std::int64_t window, q_pos0;  // q_pos0 relative to key row 0; -1 as in the API
};

// Head dims 1, 17, 80; lengths 1, 63, 65, 257; 3, 5 and 12 heads; multi-head, grouped and multi-query;
// both masks, windows, explicit query positions, rows that see nothing. Every row stays within a few
// positions of the keys, so the logits are unit-scale and the fp32 tests' tolerance applies unchanged.
constexpr ShapeAndOptions kAwkwardShapes[] = {
    {1, 1, 257, 12, 4, 80, alibi::Mask::causal, 0, -1},         // decode, grouped-query
    {2, 63, 65, 5, 5, 17, alibi::Mask::bidirectional, 7, -1},   // windowed encoder
    {1, 65, 63, 3, 1, 1, alibi::Mask::causal, 0, -1},           // multi-query; the first two rows see nothing
    {1, 257, 257, 3, 3, 17, alibi::Mask::causal, 64, -1},       // sliding window
    {1, 1, 1, 5, 1, 80, alibi::Mask::bidirectional, 0, -1},     // one key
    {2, 17, 65, 12, 1, 1, alibi::Mask::bidirectional, 20, 50},  // multi-query, explicit q_pos0
    {1, 63, 257, 3, 1, 80, alibi::Mask::causal, 0, 100},        // queries in the middle of the keys
    {1, 65, 257, 5, 1, 17, alibi::Mask::bidirectional, 0, 96},  // bidirectional, keys on both sides
    {3, 65, 63, 12, 4, 17, alibi::Mask::causal, 16, 0},         // batch 3, q_pos0 0, window
    {1, 63, 1, 3, 3, 80, alibi::Mask::bidirectional, 3, 0},     // a single key seen by three rows
};

}  // namespace alibi_test
