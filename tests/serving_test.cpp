// Ragged batches and paged K/V caches (issue 13): alibi::attention_varlen and alibi::attention_paged, typed
// over every ISA this binary was compiled for, with float, bfloat16 and float16 K/V. (Their alibi::dispatch
// entry points: tests/dispatch, built once rather than in every binary.)
//
// What is checked:
//   - attention_varlen against a float64 reference, sequence by sequence (the reference of partial_test.cpp
//     with kv_pos0 = 0: query row i of a sequence sits at kv_len - q_len + i), out and lse, with the fp32
//     tests' tolerances (out: 2e-5 max|ref| + 4 ulp of max|v|; lse: 1e-5 max(1, |ref|));
//   - bitwise: attention_varlen == one alibi::attention call per sequence (batch 1, same options), for
//     any num_threads, with and without skipping and cached key norms, including split-K decodes;
//   - bitwise: attention_paged == attention_varlen on the keys gathered from the pages, for page sizes
//     1, 3, 16, 64 and larger than every sequence, shuffled and shared pages, NaN in every slot no sequence
//     uses and garbage in every block-table entry no sequence uses;
//   - AVX-512 paged decodes moved to AVX2 vectors (Note [narrower vectors]): the bytes of the full-width
//     kernel, of AVX2 and of attention_varlen;
//   - bad input: std::invalid_argument naming the field, out and lse untouched;
//   - empty batches;
//   - batch invariance: a causal prefill in chunks (dense, ragged and paged calls) and its last row as a
//     decode give the bytes of the one-call prefill, skipping on and off, any num_threads.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <limits>
#include <numeric>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
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
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

// ---- K/V element types (kv_types.hpp)

// Exactly one of the three, in rotation by `index` (for the expensive loops: every type still comes up).
template <class Body>
void one_kv_rotating(int index, Body&& body) {
  if (index % 3 == 0) body(0.0f);
  if (index % 3 == 1) body(alibi::bfloat16{});
  if (index % 3 == 2) body(alibi::float16{});
}

// memcmp of `count` floats; true for count 0 (whose pointers may be null).
bool same_floats(const float* a, const float* b, std::size_t count) {
  return count == 0 || std::memcmp(a, b, count * sizeof(float)) == 0;
}

bool is_negative_infinity(float x) {
  return std::isinf(x) && x < 0.0f;
}

// ---- a ragged batch

struct Batch {
  int heads = 0, kv_heads = 0, head_dim = 0;
  std::vector<std::int64_t> q_offsets{0}, kv_lens;
  std::vector<float> q, k, v;        // packed; k and v hold the exact values of the stored K/V elements
  alibi::AttentionOptions options;   // slopes, lse and key_norms are set per call
  std::vector<float> custom_slopes;  // empty: the default slopes

  std::int64_t num_seqs() const { return static_cast<std::int64_t>(kv_lens.size()); }
  std::int64_t q_begin(std::int64_t s) const { return q_offsets[static_cast<std::size_t>(s)]; }
  std::int64_t q_len(std::int64_t s) const { return q_begin(s + 1) - q_begin(s); }
  std::int64_t kv_len(std::int64_t s) const { return kv_lens[static_cast<std::size_t>(s)]; }
  std::int64_t kv_begin(std::int64_t s) const {
    return std::accumulate(kv_lens.begin(), kv_lens.begin() + s, std::int64_t{0});
  }
  std::int64_t total_q() const { return q_offsets.back(); }
  std::int64_t total_kv() const { return std::accumulate(kv_lens.begin(), kv_lens.end(), std::int64_t{0}); }
  std::int64_t q_row() const { return std::int64_t{heads} * head_dim; }
  std::int64_t kv_row() const { return std::int64_t{kv_heads} * head_dim; }

  alibi::SeqBatch seq_batch() const {
    alibi::SeqBatch b;
    b.num_seqs = num_seqs();
    b.q_offsets = q_offsets.data();
    b.kv_lens = kv_lens.data();
    b.num_heads = heads;
    b.num_kv_heads = kv_heads;
    b.head_dim = head_dim;
    return b;
  }
  alibi::AttentionOptions call_options() const {
    alibi::AttentionOptions o = options;
    o.slopes = custom_slopes.empty() ? nullptr : custom_slopes.data();
    return o;
  }
  // The dense shape of sequence s alone.
  alibi::AttentionShape shape_of(std::int64_t s) const {
    alibi::AttentionShape shape;
    shape.batch = 1;
    shape.q_len = q_len(s);
    shape.kv_len = kv_len(s);
    shape.num_heads = heads;
    shape.num_kv_heads = kv_heads;
    shape.head_dim = head_dim;
    return shape;
  }
  std::string describe() const {
    std::ostringstream text;
    text << "heads=" << heads << "/" << kv_heads << " head_dim=" << head_dim << " seqs(q,kv)={";
    for (std::int64_t s = 0; s < num_seqs(); ++s) text << (s ? " " : "") << "(" << q_len(s) << "," << kv_len(s) << ")";
    text << "} mask=" << mask_name(options.mask) << " window=" << options.window << " scale=" << options.scale
         << " skip_tolerance=" << options.skip_tolerance << " num_threads=" << options.num_threads << " slopes=";
    if (custom_slopes.empty()) {
      text << "default";
    } else {
      text << "{";
      for (std::size_t h = 0; h < custom_slopes.size(); ++h) text << (h ? "," : "") << custom_slopes[h];
      text << "}";
    }
    return text.str();
  }
};

using Seqs = std::vector<std::pair<std::int64_t, std::int64_t>>;  // (q_len, kv_len) per sequence

Batch make_batch(const Seqs& seqs, int heads, int kv_heads, int head_dim, std::mt19937& rng) {
  Batch b;
  b.heads = heads;
  b.kv_heads = kv_heads;
  b.head_dim = head_dim;
  for (const auto& s : seqs) {
    b.q_offsets.push_back(b.q_offsets.back() + s.first);
    b.kv_lens.push_back(s.second);
  }
  b.q = normal_floats(static_cast<std::size_t>(b.total_q() * b.q_row()), rng);
  b.k = normal_floats(static_cast<std::size_t>(b.total_kv() * b.kv_row()), rng);
  b.v = normal_floats(static_cast<std::size_t>(b.total_kv() * b.kv_row()), rng);
  return b;
}

template <class KV>
struct KvTensors {
  std::vector<KV> k, v;
};

// Stores b's K/V as KV and replaces b.k, b.v by the exact values of the stored elements.
template <class KV>
KvTensors<KV> store_kv(Batch& b) {
  KvTensors<KV> t;
  for (float& x : b.k) {
    t.k.push_back(stored_as<KV>(x));
    x = value_of(t.k.back());
  }
  for (float& x : b.v) {
    t.v.push_back(stored_as<KV>(x));
    x = value_of(t.v.back());
  }
  return t;
}

// alibi::key_norms of the packed keys: [total_kv][kv_heads].
template <class KV>
std::vector<float> packed_key_norms(const Batch& b, const std::vector<KV>& k) {
  std::vector<float> norms(static_cast<std::size_t>(b.total_kv() * b.kv_heads), unwritten_marker());
  alibi::AttentionShape shape;
  shape.batch = 1;
  shape.kv_len = b.total_kv();
  shape.num_kv_heads = b.kv_heads;
  shape.head_dim = b.head_dim;
  alibi::key_norms(k.data(), shape, norms.data());
  return norms;
}

struct Output {
  std::vector<float> out, lse;
};

Output fresh_output(const Batch& b) {
  Output r;
  r.out.assign(static_cast<std::size_t>(b.total_q() * b.q_row()), unwritten_marker());
  r.lse.assign(static_cast<std::size_t>(b.total_q() * b.heads), unwritten_marker());
  return r;
}

// attention_varlen<Isa> with lse requested.
template <class Isa, class KV>
Output run_varlen(const Batch& b, const KV* k, const KV* v, const float* key_norms = nullptr) {
  Output r = fresh_output(b);
  alibi::AttentionOptions o = b.call_options();
  o.lse = r.lse.empty() ? nullptr : r.lse.data();
  o.key_norms = key_norms;
  alibi::attention_varlen<Isa>(b.q.data(), k, v, r.out.data(), b.seq_batch(), o);
  return r;
}

// One alibi::attention<Isa> call per sequence (batch 1, the same options), written into one output.
template <class Isa, class KV>
Output run_per_sequence(const Batch& b, const KV* k, const KV* v, const float* key_norms = nullptr) {
  Output r = fresh_output(b);
  for (std::int64_t s = 0; s < b.num_seqs(); ++s) {
    const std::int64_t kv0 = b.kv_begin(s), q0 = b.q_begin(s);
    alibi::AttentionOptions o = b.call_options();
    std::vector<float> lse(static_cast<std::size_t>(b.q_len(s) * b.heads));
    o.lse = lse.empty() ? nullptr : lse.data();
    o.key_norms = key_norms != nullptr ? key_norms + kv0 * b.kv_heads : nullptr;
    std::vector<float> out(static_cast<std::size_t>(b.q_len(s) * b.q_row()));
    alibi::attention<Isa>(b.q.data() + q0 * b.q_row(), k + kv0 * b.kv_row(), v + kv0 * b.kv_row(), out.data(),
                          b.shape_of(s), o);
    std::copy(out.begin(), out.end(), r.out.begin() + static_cast<std::ptrdiff_t>(q0 * b.q_row()));
    std::copy(lse.begin(), lse.end(), r.lse.begin() + static_cast<std::ptrdiff_t>(q0 * b.heads));
  }
  return r;
}

// The first row (sequence, row, head) where a and b differ in out or lse, "" if bitwise equal.
std::string first_difference(const Output& a, const Output& b, const Batch& batch) {
  const std::size_t D = static_cast<std::size_t>(batch.head_dim), H = static_cast<std::size_t>(batch.heads);
  auto where = [&](std::size_t row) {
    std::int64_t s = 0;
    while (s + 1 < batch.num_seqs() && static_cast<std::int64_t>(row / H) >= batch.q_begin(s + 1)) ++s;
    std::ostringstream text;
    text << "sequence " << s << " (q_len " << batch.q_len(s) << ", kv_len " << batch.kv_len(s) << ") row "
         << static_cast<std::int64_t>(row / H) - batch.q_begin(s) << " head " << row % H;
    return text.str();
  };
  if (a.out.size() != b.out.size() || a.lse.size() != b.lse.size()) return "sizes differ";
  for (std::size_t n = 0; n < a.out.size(); ++n)
    if (std::memcmp(&a.out[n], &b.out[n], sizeof(float)) != 0) {
      std::ostringstream text;
      text.precision(9);
      text << "out differs at " << where(n / D) << " dim " << n % D << ": " << a.out[n] << " vs " << b.out[n];
      return text.str();
    }
  for (std::size_t r = 0; r < a.lse.size(); ++r)
    if (std::memcmp(&a.lse[r], &b.lse[r], sizeof(float)) != 0) {
      std::ostringstream text;
      text.precision(9);
      text << "lse differs at " << where(r) << ": " << a.lse[r] << " vs " << b.lse[r];
      return text.str();
    }
  return "";
}

// ---- the float64 reference (partial_test.cpp's, with kv_pos0 = 0 and one sequence at a time)

struct LseRow {
  std::vector<double> out;
  double lse = -HUGE_VAL;
  std::int64_t visible_keys = 0;
};

std::vector<double> slopes_of(const Batch& b) {
  std::vector<double> slopes;
  if (!b.custom_slopes.empty()) {
    slopes.assign(b.custom_slopes.begin(), b.custom_slopes.end());
  } else {
    for (double m : reference_slopes(b.heads)) slopes.push_back(static_cast<float>(m));
  }
  return slopes;
}

double scale_of(const Batch& b) {
  return b.options.scale != 0.0f ? static_cast<double>(b.options.scale) : 1.0 / std::sqrt(double(b.head_dim));
}

// Row i, head h of sequence s: query position p = kv_len - q_len + i (negative when q_len > kv_len), key j
// at position j; the bias is split as -m d_min - m (d_j - d_min) so the logits stay exact in double.
LseRow reference_row_of(const Batch& b, const std::vector<double>& slopes, double scale, std::int64_t s, std::int64_t i,
                        int h) {
  const std::int64_t D = b.head_dim, kv_len = b.kv_len(s), kv0 = b.kv_begin(s);
  const int kv_head = h / (b.heads / b.kv_heads);
  const std::int64_t p = kv_len - b.q_len(s) + i;
  const double m = slopes[static_cast<std::size_t>(h)];
  const bool causal = b.options.mask == alibi::Mask::causal;
  const std::int64_t w = b.options.window;
  const float* q = b.q.data() + ((b.q_begin(s) + i) * b.heads + h) * D;
  auto row = [&](const std::vector<float>& x, std::int64_t j) {
    return x.data() + ((kv0 + j) * b.kv_heads + kv_head) * D;
  };
  LseRow r;
  r.out.assign(static_cast<std::size_t>(D), 0.0);
  std::vector<std::int64_t> keys, distance;
  for (std::int64_t j = 0; j < kv_len; ++j) {
    const std::int64_t signed_distance = p - j;
    const std::int64_t d = signed_distance >= 0 ? signed_distance : -signed_distance;
    const bool visible = causal ? signed_distance >= 0 && (w == 0 || d < w) : (w == 0 || d < w);
    if (!visible) continue;
    keys.push_back(j);
    distance.push_back(d);
  }
  r.visible_keys = static_cast<std::int64_t>(keys.size());
  if (keys.empty()) return r;
  const std::int64_t d_min = *std::min_element(distance.begin(), distance.end());
  std::vector<double> logit;
  for (std::size_t n = 0; n < keys.size(); ++n) {
    const float* k = row(b.k, keys[n]);
    double dot = 0.0;
    for (std::int64_t d = 0; d < D; ++d) dot += double(q[d]) * double(k[d]);
    logit.push_back(scale * dot - m * static_cast<double>(distance[n] - d_min));
  }
  const double max_logit = *std::max_element(logit.begin(), logit.end());
  double total = 0.0;
  std::vector<double> weight(keys.size());
  for (std::size_t n = 0; n < keys.size(); ++n) total += weight[n] = std::exp(logit[n] - max_logit);
  r.lse = -m * static_cast<double>(d_min) + max_logit + std::log(total);
  for (std::size_t n = 0; n < keys.size(); ++n) {
    const float* v = row(b.v, keys[n]);
    for (std::int64_t d = 0; d < D; ++d) r.out[static_cast<std::size_t>(d)] += weight[n] / total * double(v[d]);
  }
  return r;
}

// Checks a varlen output against the reference, every row of every sequence. "" if all within tolerance.
std::string check_against_reference(const Output& got, const Batch& b) {
  const std::vector<double> slopes = slopes_of(b);
  const double scale = scale_of(b);
  std::vector<LseRow> refs;
  double max_ref = 0.0;
  for (std::int64_t s = 0; s < b.num_seqs(); ++s)
    for (std::int64_t i = 0; i < b.q_len(s); ++i)
      for (int h = 0; h < b.heads; ++h) {
        refs.push_back(reference_row_of(b, slopes, scale, s, i, h));
        for (double x : refs.back().out) max_ref = std::max(max_ref, std::fabs(x));
      }
  const double allowed = 2e-5 * max_ref + 4.0 * kUnitRoundoff * max_abs(b.v);
  const std::size_t D = static_cast<std::size_t>(b.head_dim);
  std::size_t r = 0;
  for (std::int64_t s = 0; s < b.num_seqs(); ++s)
    for (std::int64_t i = 0; i < b.q_len(s); ++i)
      for (int h = 0; h < b.heads; ++h, ++r) {
        const LseRow& ref = refs[r];
        std::ostringstream at;
        at.precision(9);
        at << "sequence " << s << " (q_len " << b.q_len(s) << ", kv_len " << b.kv_len(s) << ") row " << i << " head "
           << h << " (sees " << ref.visible_keys << " keys): ";
        const float lse = got.lse[r];
        if (ref.visible_keys == 0) {
          if (!is_negative_infinity(lse)) return at.str() + "lse " + std::to_string(lse) + ", not -inf";
          for (std::size_t d = 0; d < D; ++d)
            if (got.out[r * D + d] != 0.0f) return at.str() + "out is not exactly zero";
          continue;
        }
        const double lse_error = std::fabs(double(lse) - ref.lse);
        if (!(std::isfinite(lse) && lse_error <= 1e-5 * std::max(1.0, std::fabs(ref.lse)))) {
          at << "lse " << lse << ", reference " << ref.lse;
          return at.str();
        }
        for (std::size_t d = 0; d < D; ++d) {
          const double x = got.out[r * D + d], error = std::fabs(x - ref.out[d]);
          if (!(std::isfinite(x) && error <= allowed)) {
            at << "dim " << d << ": out " << x << ", reference " << ref.out[d] << ", error " << error << " > "
               << allowed;
            return at.str();
          }
        }
      }
  return "";
}

// ---- shapes

struct Heads {
  int heads, kv_heads, head_dim;
};
// 3, 5 and 12 heads, multi-head, grouped and multi-query; head_dim 1, 17, 80.
constexpr Heads kAwkwardHeads[] = {{12, 4, 80}, {5, 5, 17}, {3, 1, 1}, {12, 1, 17}, {5, 1, 80}, {3, 3, 17}};

// Reference work of a batch, in multiply-adds.
std::int64_t reference_work(const Seqs& seqs, const Heads& h) {
  std::int64_t work = 0;
  for (const auto& s : seqs) work += std::max<std::int64_t>(s.first, 1) * std::max<std::int64_t>(s.second, 1);
  return work * h.heads * h.head_dim;
}

// Decode, chunked prefill, prefill, no queries, no keys, more queries than keys, single keys.
const Seqs kAwkwardSeqs = {{1, 257}, {63, 65}, {65, 65},  {0, 63}, {5, 0},  {65, 63},
                           {1, 1},   {0, 0},   {17, 257}, {3, 2},  {1, 64}, {63, 63}};

// A random ragged batch of up to 7 sequences mixing every kind, within `max_work`.
Seqs random_seqs(std::mt19937& rng, const Heads& h, std::int64_t max_work) {
  const std::int64_t lengths[] = {1, 2, 7, 16, 17, 63, 64, 65, 127, 129, 257};
  std::uniform_int_distribution<int> kind_of(0, 6);
  for (;;) {
    Seqs seqs;
    const int count = std::uniform_int_distribution<int>(1, 7)(rng);
    for (int n = 0; n < count; ++n) {
      const std::int64_t kv = pick(lengths, rng);
      switch (kind_of(rng)) {
        case 0:  // prefill
          seqs.push_back({kv, kv});
          break;
        case 1:  // chunked prefill
          seqs.push_back({std::uniform_int_distribution<std::int64_t>(1, kv)(rng), kv});
          break;
        case 2:
        case 3:  // decode
          seqs.push_back({1, kv});
          break;
        case 4:  // no queries
          seqs.push_back({0, kv});
          break;
        case 5:  // no keys
          seqs.push_back({std::uniform_int_distribution<std::int64_t>(0, 3)(rng), 0});
          break;
        default:  // more queries than keys (at most 16 more: unit-scale logits, see random_case)
          seqs.push_back({kv + std::uniform_int_distribution<std::int64_t>(1, 16)(rng), kv});
          break;
      }
    }
    if (reference_work(seqs, h) <= max_work) return seqs;
  }
}

// Random options: mask, window, scale, custom slopes (zero and negative too), skipping, threads.
void randomize_options(Batch& b, std::mt19937& rng) {
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  alibi::AttentionOptions& o = b.options;
  o.mask = unit(rng) < 0.5 ? alibi::Mask::causal : alibi::Mask::bidirectional;
  if (unit(rng) < 0.5) {
    const std::int64_t windows[] = {1, 2, 3, 7, 16, 64, 300};
    o.window = pick(windows, rng);
  }
  if (unit(rng) < 0.3) o.scale = static_cast<float>((0.25 + 1.75 * unit(rng)) / std::sqrt(double(b.head_dim)));
  if (unit(rng) < 0.4) {
    b.custom_slopes.clear();
    for (int h = 0; h < b.heads; ++h) {
      const double kind = unit(rng);
      b.custom_slopes.push_back(kind < 0.2   ? 0.0f
                                : kind < 0.4 ? static_cast<float>(-0.02 * unit(rng))
                                             : static_cast<float>(0.6 * unit(rng)));
    }
  }
  if (unit(rng) < 0.3) o.skip_tolerance = 0.0f;
  const int thread_counts[] = {1, 2, 3, 0};
  o.num_threads = pick(thread_counts, rng);
}

// ---- 1. attention_varlen against the reference

template <class Isa, class KV>
void expect_varlen_matches_reference(Batch b, const std::string& context) {
  const KvTensors<KV> t = store_kv<KV>(b);
  const Output got = run_varlen<Isa>(b, t.k.data(), t.v.data());
  const std::string failure = check_against_reference(got, b);
  EXPECT_TRUE(failure.empty()) << context << " KV=" << kv_name(KV{}) << " " << b.describe() << "\n  " << failure;
}

// The awkward sequences with every head layout, causal, bidirectional, windowed, with custom slopes.
ALIBI_ISA_TEST(VarlenMatchesTheReferenceOnAwkwardBatches) {
  std::mt19937 rng(1301);
  int rotation = 0;
  const int layouts = scaled(6, 3);
  for (int layout = 0; layout < layouts; ++layout) {
    const Heads& h = kAwkwardHeads[layout];
    Seqs seqs = kAwkwardSeqs;
    if (h.heads * h.head_dim <= 100) seqs.push_back({257, 257});  // a long prefill where the reference is cheap
    Batch b = make_batch(seqs, h.heads, h.kv_heads, h.head_dim, rng);
    b.options.num_threads = 2;
    struct Variant {
      alibi::Mask mask;
      std::int64_t window;
      bool custom_slopes;
    } variants[] = {{alibi::Mask::causal, 0, false},
                    {alibi::Mask::bidirectional, 0, false},
                    {alibi::Mask::causal, 16, true},
                    {alibi::Mask::bidirectional, 7, true}};
    for (const Variant& variant : variants) {
      b.options.mask = variant.mask;
      b.options.window = variant.window;
      b.custom_slopes.clear();
      if (variant.custom_slopes) {  // zero, negative (also -0), gentle and steep
        const float choices[] = {0.0f, -0.02f, 0.5f, 0.03f, -0.0f, 0.25f};
        for (int n = 0; n < h.heads; ++n) b.custom_slopes.push_back(choices[n % 6]);
      }
      one_kv_rotating(rotation++, [&](auto element) {
        using KV = decltype(element);
        expect_varlen_matches_reference<Isa, KV>(b, "awkward batch");
      });
    }
  }
}

// Random ragged batches with random options, K/V rotating through the three types.
ALIBI_ISA_TEST(VarlenMatchesTheReferenceOnRandomBatches) {
  std::mt19937 rng(1302);
  const int num_cases = scaled(24, 6);
  const std::int64_t max_work = scaled(600000, 100000);
  for (int index = 0; index < num_cases; ++index) {
    const Heads& h = kAwkwardHeads[static_cast<std::size_t>(index) % (sizeof kAwkwardHeads / sizeof kAwkwardHeads[0])];
    const int head_dims[] = {1, 8, 17, 33, 64, 80};
    const Heads drawn{h.heads, h.kv_heads, index % 2 ? h.head_dim : pick(head_dims, rng)};
    Batch b = make_batch(random_seqs(rng, drawn, max_work), drawn.heads, drawn.kv_heads, drawn.head_dim, rng);
    randomize_options(b, rng);
    const std::string context = "random case " + std::to_string(index);
    if (index % 3 == 0) expect_varlen_matches_reference<Isa, float>(b, context);
    if (index % 3 == 1) expect_varlen_matches_reference<Isa, alibi::bfloat16>(b, context);
    if (index % 3 == 2) expect_varlen_matches_reference<Isa, alibi::float16>(b, context);
  }
}

// ---- 2. attention_varlen == one dense call per sequence, bitwise

// Short and long sequences, among them decodes of more than 4096 keys (split-K) with 1 and 4 queries.
Batch bitwise_batch(std::mt19937& rng, bool with_long) {
  Seqs seqs = {{1, 257}, {63, 65}, {0, 30}, {65, 65}, {4, 0}, {1, 1}, {40, 33}, {33, 150}, {1, 0}};
  if (with_long) {
    const std::int64_t long_len = scaled(4500, 4200);
    seqs.insert(seqs.begin() + 2, {1, long_len});
    seqs.push_back({4, long_len + 97});
  }
  return make_batch(seqs, 8, 2, 33, rng);
}

ALIBI_ISA_TEST(VarlenEqualsOneCallPerSequenceBitwise) {
  std::mt19937 rng(1303);
  const Batch base = bitwise_batch(rng, true);
  int rotation = 0;
  for (alibi::Mask mask : {alibi::Mask::causal, alibi::Mask::bidirectional}) {
    for_each_kv_rotating(rotation++, [&](auto element) {
      using KV = decltype(element);
      Batch b = base;
      b.options.mask = mask;
      b.options.window = mask == alibi::Mask::causal ? 0 : 300;
      if (mask == alibi::Mask::bidirectional) b.custom_slopes = {0.0f, -0.01f, 0.3f, 0.1f, 0.5f, 0.02f, -0.0f, 0.7f};
      b.options.num_threads = 2;
      const KvTensors<KV> t = store_kv<KV>(b);
      const std::vector<float> norms = packed_key_norms(b, t.k);
      // Skipping off (key norms unused then), the default tolerance without and with cached norms, and a
      // tolerance that skips more, with cached norms.
      const struct {
        float tolerance;
        const float* key_norms;
      } settings[] = {{0.0f, nullptr},
                      {alibi::AttentionOptions{}.skip_tolerance, nullptr},
                      {alibi::AttentionOptions{}.skip_tolerance, norms.data()},
                      {1e-3f, norms.data()}};
      for (const auto& setting : settings) {
        b.options.skip_tolerance = setting.tolerance;
        {
          const float* key_norms = setting.key_norms;
          const Output varlen = run_varlen<Isa>(b, t.k.data(), t.v.data(), key_norms);
          const Output dense = run_per_sequence<Isa>(b, t.k.data(), t.v.data(), key_norms);
          const std::string difference = first_difference(varlen, dense, b);
          EXPECT_TRUE(difference.empty()) << "KV=" << kv_name(KV{}) << " " << b.describe()
                                          << " key_norms=" << (key_norms ? "given" : "none") << "\n  " << difference;
        }
      }
    });
  }
}

// num_threads 1, 2, 3 and 0 give the same bytes, with thread teams even for the small sequences.
ALIBI_ISA_TEST(VarlenThreadCountDoesNotChangeABit) {
  const AllCallsUseThreads threads_even_for_small_calls;
  std::mt19937 rng(1304);
  const Batch base = bitwise_batch(rng, true);
  for_each_kv([&](auto element) {
    using KV = decltype(element);
    Batch b = base;
    const KvTensors<KV> t = store_kv<KV>(b);
    const std::vector<float> norms = packed_key_norms(b, t.k);
    for (const float* key_norms : {static_cast<const float*>(nullptr), norms.data()}) {
      b.options.num_threads = 1;
      const Output serial = run_varlen<Isa>(b, t.k.data(), t.v.data(), key_norms);
      for (int threads : {2, 3}) {
        b.options.num_threads = threads;
        const Output parallel = run_varlen<Isa>(b, t.k.data(), t.v.data(), key_norms);
        const std::string difference = first_difference(serial, parallel, b);
        EXPECT_TRUE(difference.empty()) << "KV=" << kv_name(KV{}) << " " << b.describe()
                                        << ": differs from num_threads 1\n  " << difference;
      }
    }
  });
}

// A sequence's bytes do not depend on its place in the batch or on the other sequences: the batch
// reversed, and each sequence alone in a batch of one.
ALIBI_ISA_TEST(VarlenSequenceOrderAndCompanyDoNotMatter) {
  std::mt19937 rng(1305);
  const Batch base = bitwise_batch(rng, !alibi_test_quick_mode());
  for_each_kv_rotating(0, [&](auto element) {
    using KV = decltype(element);
    Batch b = base;
    b.options.num_threads = 3;
    b.options.skip_tolerance = 1e-3f;  // skips enough that a decision made differently changes the bytes
    const KvTensors<KV> t = store_kv<KV>(b);
    const Output forward = run_varlen<Isa>(b, t.k.data(), t.v.data());
    // The same sequences in reverse order.
    Batch reversed;
    reversed.heads = b.heads;
    reversed.kv_heads = b.kv_heads;
    reversed.head_dim = b.head_dim;
    reversed.options = b.options;
    KvTensors<KV> rt;
    for (std::int64_t s = b.num_seqs() - 1; s >= 0; --s) {
      reversed.q_offsets.push_back(reversed.q_offsets.back() + b.q_len(s));
      reversed.kv_lens.push_back(b.kv_len(s));
      const auto q0 = b.q.begin() + static_cast<std::ptrdiff_t>(b.q_begin(s) * b.q_row());
      reversed.q.insert(reversed.q.end(), q0, q0 + static_cast<std::ptrdiff_t>(b.q_len(s) * b.q_row()));
      const std::ptrdiff_t kv0 = static_cast<std::ptrdiff_t>(b.kv_begin(s) * b.kv_row());
      const std::ptrdiff_t kvn = static_cast<std::ptrdiff_t>(b.kv_len(s) * b.kv_row());
      rt.k.insert(rt.k.end(), t.k.begin() + kv0, t.k.begin() + kv0 + kvn);
      rt.v.insert(rt.v.end(), t.v.begin() + kv0, t.v.begin() + kv0 + kvn);
    }
    const Output backward = run_varlen<Isa>(reversed, rt.k.data(), rt.v.data());
    for (std::int64_t s = 0; s < b.num_seqs(); ++s) {
      const std::int64_t r = b.num_seqs() - 1 - s;  // its index in the reversed batch
      const std::size_t n_out = static_cast<std::size_t>(b.q_len(s) * b.q_row());
      const std::size_t n_lse = static_cast<std::size_t>(b.q_len(s) * b.heads);
      EXPECT_TRUE(same_floats(forward.out.data() + b.q_begin(s) * b.q_row(),
                              backward.out.data() + reversed.q_begin(r) * b.q_row(), n_out))
          << "KV=" << kv_name(KV{}) << " sequence " << s << ": out changes when the batch is reversed";
      EXPECT_TRUE(same_floats(forward.lse.data() + b.q_begin(s) * b.heads,
                              backward.lse.data() + reversed.q_begin(r) * b.heads, n_lse))
          << "KV=" << kv_name(KV{}) << " sequence " << s << ": lse changes when the batch is reversed";
      // Alone: a batch of one sequence.
      Batch alone;
      alone.heads = b.heads;
      alone.kv_heads = b.kv_heads;
      alone.head_dim = b.head_dim;
      alone.options = b.options;
      alone.q_offsets = {0, b.q_len(s)};
      alone.kv_lens = {b.kv_len(s)};
      alone.q.assign(b.q.begin() + static_cast<std::ptrdiff_t>(b.q_begin(s) * b.q_row()),
                     b.q.begin() + static_cast<std::ptrdiff_t>(b.q_begin(s + 1) * b.q_row()));
      const Output single =
          run_varlen<Isa>(alone, t.k.data() + b.kv_begin(s) * b.kv_row(), t.v.data() + b.kv_begin(s) * b.kv_row());
      EXPECT_TRUE(same_floats(forward.out.data() + b.q_begin(s) * b.q_row(), single.out.data(), n_out))
          << "KV=" << kv_name(KV{}) << " sequence " << s << ": out differs from the sequence alone";
      EXPECT_TRUE(same_floats(forward.lse.data() + b.q_begin(s) * b.heads, single.lse.data(), n_lse))
          << "KV=" << kv_name(KV{}) << " sequence " << s << ": lse differs from the sequence alone";
    }
  });
}

// ---- 3. attention_paged == attention_varlen on the gathered keys, bitwise

// Unused block-table entries hold these: each is outside [0, num_pages) or merely unused.
constexpr std::int32_t kGarbageIds[] = {-1, std::numeric_limits<std::int32_t>::min(),
                                        std::numeric_limits<std::int32_t>::max(), -12345};

template <class KV>
struct PagedCache {
  std::vector<KV> k_pages, v_pages;
  std::vector<float> norms;  // [num_pages][page_size][kv_heads]; NaN or 0 in unused slots
  std::vector<std::int32_t> table;
  std::int64_t num_pages = 0, max_pages = 0;
  int page_size = 0;
  std::int64_t unused_slots = 0;

  alibi::PagedKV<KV> view() const {
    alibi::PagedKV<KV> c;
    c.k_pages = k_pages.data();
    c.v_pages = v_pages.data();
    c.num_pages = num_pages;
    c.page_size = page_size;
    c.block_table = table.data();
    c.max_pages_per_seq = max_pages;
    return c;
  }
};

// Builds a paged cache for b's sequences: page ids shuffled, some sequences sharing the pages of the one
// before (prefix sharing), a few pages nobody uses; every unused slot NaN (or inf), every unused table
// entry garbage. Then b's keys become the gathered keys (exact values) and `gathered` their stored elements.
template <class KV>
PagedCache<KV> build_paged(Batch& b, int page_size, std::mt19937& rng, KvTensors<KV>& gathered,
                           std::vector<float>& gathered_norms, bool share = true) {
  PagedCache<KV> c;
  c.page_size = page_size;
  const std::int64_t n = b.num_seqs();
  std::vector<std::int64_t> needed(static_cast<std::size_t>(n));
  for (std::int64_t s = 0; s < n; ++s) needed[static_cast<std::size_t>(s)] = (b.kv_len(s) + page_size - 1) / page_size;
  c.max_pages = *std::max_element(needed.begin(), needed.end()) + 2;
  // Which entries reuse a page of the previous sequence (its full pages only), which need a fresh one.
  std::vector<std::int64_t> shared(static_cast<std::size_t>(n), 0);
  std::int64_t fresh = 0;
  for (std::int64_t s = 0; s < n; ++s) {
    if (share && s > 0 && s % 2 == 1)
      shared[static_cast<std::size_t>(s)] = std::min(needed[static_cast<std::size_t>(s)], b.kv_len(s - 1) / page_size);
    fresh += needed[static_cast<std::size_t>(s)] - shared[static_cast<std::size_t>(s)];
  }
  c.num_pages = fresh + 3;  // three pages nobody uses
  std::vector<std::int32_t> ids(static_cast<std::size_t>(c.num_pages));
  std::iota(ids.begin(), ids.end(), 0);
  std::shuffle(ids.begin(), ids.end(), rng);
  c.table.resize(static_cast<std::size_t>(n * c.max_pages));
  for (std::size_t e = 0; e < c.table.size(); ++e)
    c.table[e] = e % 5 == 4 ? static_cast<std::int32_t>(c.num_pages) : kGarbageIds[e % 4];
  std::size_t next = 0;
  for (std::int64_t s = 0; s < n; ++s)
    for (std::int64_t p = 0; p < needed[static_cast<std::size_t>(s)]; ++p)
      c.table[static_cast<std::size_t>(s * c.max_pages + p)] =
          p < shared[static_cast<std::size_t>(s)] ? c.table[static_cast<std::size_t>((s - 1) * c.max_pages + p)]
                                                  : ids[next++];
  // The slots some sequence reads.
  const std::int64_t slots = c.num_pages * page_size;
  std::vector<char> used(static_cast<std::size_t>(slots), 0);
  auto slot_of = [&](std::int64_t s, std::int64_t j) {
    return std::int64_t{c.table[static_cast<std::size_t>(s * c.max_pages + j / page_size)]} * page_size + j % page_size;
  };
  for (std::int64_t s = 0; s < n; ++s)
    for (std::int64_t j = 0; j < b.kv_len(s); ++j) used[static_cast<std::size_t>(slot_of(s, j))] = 1;
  const std::int64_t row = b.kv_row();
  const std::vector<float> k = normal_floats(static_cast<std::size_t>(slots * row), rng);
  const std::vector<float> v = normal_floats(static_cast<std::size_t>(slots * row), rng);
  c.k_pages.resize(k.size());
  c.v_pages.resize(v.size());
  for (std::int64_t slot = 0; slot < slots; ++slot) {
    const bool in_use = used[static_cast<std::size_t>(slot)] != 0;
    c.unused_slots += !in_use;
    for (std::int64_t e = slot * row; e < (slot + 1) * row; ++e) {
      const float poison = e % 7 == 3 ? std::numeric_limits<float>::infinity() : kNaN;
      c.k_pages[static_cast<std::size_t>(e)] = stored_as<KV>(in_use ? k[static_cast<std::size_t>(e)] : poison);
      c.v_pages[static_cast<std::size_t>(e)] = stored_as<KV>(in_use ? v[static_cast<std::size_t>(e)] : poison);
    }
  }
  // Key norms per slot, as a cache keeps them; unused slots hold NaN or 0 (a bound that would let skipping
  // drop keys if it were ever read).
  c.norms.assign(static_cast<std::size_t>(slots * b.kv_heads), unwritten_marker());
  alibi::AttentionShape pool;
  pool.batch = 1;
  pool.kv_len = slots;
  pool.num_kv_heads = b.kv_heads;
  pool.head_dim = b.head_dim;
  alibi::key_norms(c.k_pages.data(), pool, c.norms.data());
  for (std::int64_t slot = 0; slot < slots; ++slot)
    if (!used[static_cast<std::size_t>(slot)])
      for (int h = 0; h < b.kv_heads; ++h)
        c.norms[static_cast<std::size_t>(slot * b.kv_heads + h)] = slot % 2 ? kNaN : 0;
  // The gathered keys.
  gathered.k.clear();
  gathered.v.clear();
  gathered_norms.clear();
  for (std::int64_t s = 0; s < n; ++s)
    for (std::int64_t j = 0; j < b.kv_len(s); ++j) {
      const std::int64_t at = slot_of(s, j);
      gathered.k.insert(gathered.k.end(), c.k_pages.begin() + static_cast<std::ptrdiff_t>(at * row),
                        c.k_pages.begin() + static_cast<std::ptrdiff_t>((at + 1) * row));
      gathered.v.insert(gathered.v.end(), c.v_pages.begin() + static_cast<std::ptrdiff_t>(at * row),
                        c.v_pages.begin() + static_cast<std::ptrdiff_t>((at + 1) * row));
      gathered_norms.insert(gathered_norms.end(), c.norms.begin() + static_cast<std::ptrdiff_t>(at * b.kv_heads),
                            c.norms.begin() + static_cast<std::ptrdiff_t>((at + 1) * b.kv_heads));
    }
  b.k.clear();
  b.v.clear();
  for (const KV& x : gathered.k) b.k.push_back(value_of(x));
  for (const KV& x : gathered.v) b.v.push_back(value_of(x));
  return c;
}

template <class Isa, class KV>
Output run_paged(const Batch& b, const PagedCache<KV>& c, bool with_norms) {
  Output r = fresh_output(b);
  alibi::AttentionOptions o = b.call_options();
  o.lse = r.lse.empty() ? nullptr : r.lse.data();
  o.key_norms = with_norms ? c.norms.data() : nullptr;
  alibi::attention_paged<Isa>(b.q.data(), c.view(), r.out.data(), b.seq_batch(), o);
  return r;
}

bool all_finite(const std::vector<float>& x) {
  return std::all_of(x.begin(), x.end(), [](float value) { return std::isfinite(value); });
}

// Every page size, shuffled and shared pages, NaN in the unused slots, garbage in the unused entries; with
// and without key norms per slot; causal and bidirectional; skipping on and off.
ALIBI_ISA_TEST(PagedEqualsVarlenOnTheGatheredKeys) {
  std::mt19937 rng(1306);
  const Seqs seqs = {{1, 257}, {63, 65}, {65, 65}, {0, 40}, {3, 0}, {1, 1}, {17, 100}, {5, 3}, {1, 16}, {2, 64}};
  int rotation = 0;
  for (int page_size : {1, 3, 16, 64, 300}) {
    const Heads& h = kAwkwardHeads[static_cast<std::size_t>(rotation) % 3];
    one_kv_rotating(rotation++, [&](auto element) {
      using KV = decltype(element);
      Batch b = make_batch(seqs, h.heads, h.kv_heads, h.head_dim, rng);
      b.options.num_threads = 2;
      KvTensors<KV> t;
      std::vector<float> norms;
      const PagedCache<KV> cache = build_paged<KV>(b, page_size, rng, t, norms);
      ASSERT_GT(cache.unused_slots, 0);
      for (alibi::Mask mask : {alibi::Mask::causal, alibi::Mask::bidirectional}) {
        b.options.mask = mask;
        b.options.window = mask == alibi::Mask::causal ? 0 : 50;
        // No skipping; the default tolerance without and with cached norms; a tolerance of 0.2 with cached
        // norms (skips far more, so a bound read from the wrong slot changes the bytes).
        for (int setting = 0; setting < 4; ++setting) {
          b.options.skip_tolerance = setting == 0   ? 0.0f
                                     : setting == 3 ? 0.2f
                                                    : alibi::AttentionOptions{}.skip_tolerance;
          {
            const bool with_norms = setting >= 2;
            const Output paged = run_paged<Isa>(b, cache, with_norms);
            const Output varlen = run_varlen<Isa>(b, t.k.data(), t.v.data(), with_norms ? norms.data() : nullptr);
            const std::string context = std::string("KV=") + kv_name(KV{}) + " page_size=" + std::to_string(page_size) +
                                        " key_norms=" + (with_norms ? "per slot" : "none") + " " + b.describe();
            EXPECT_TRUE(all_finite(paged.out)) << context << ": a NaN from an unused slot leaked into out";
            const std::string difference = first_difference(paged, varlen, b);
            EXPECT_TRUE(difference.empty()) << context << "\n  " << difference;
          }
        }
      }
      // And the reference, once per page size (the gathered keys are b's keys now).
      b.options.skip_tolerance = alibi::AttentionOptions{}.skip_tolerance;
      const Output paged = run_paged<Isa>(b, cache, true);
      const std::string failure = check_against_reference(paged, b);
      EXPECT_TRUE(failure.empty()) << "KV=" << kv_name(KV{}) << " page_size=" << page_size << " " << b.describe()
                                   << "\n  " << failure;
    });
  }
}

// Long decodes (split-K) and a chunked prefill through pages of 16 (the shift path) and 3 (the division
// path), with thread teams and cached norms: the varlen bytes.
ALIBI_ISA_TEST(PagedSplitKDecodeEqualsVarlen) {
  const AllCallsUseThreads threads_even_for_small_calls;
  std::mt19937 rng(1307);
  const std::int64_t long_len = scaled(4500, 4200);
  const Seqs seqs = {{1, long_len}, {4, long_len + 31}, {30, 200}, {1, 17}};
  int rotation = 0;
  for (int page_size : {16, 3}) {
    for_each_kv_rotating(rotation++, [&](auto element) {
      using KV = decltype(element);
      Batch b = make_batch(seqs, 8, 2, 32, rng);
      KvTensors<KV> t;
      std::vector<float> norms;
      const PagedCache<KV> cache = build_paged<KV>(b, page_size, rng, t, norms);
      for (int threads : {1, 3}) {
        b.options.num_threads = threads;
        for (bool with_norms : {false, true}) {
          const Output paged = run_paged<Isa>(b, cache, with_norms);
          const Output varlen = run_varlen<Isa>(b, t.k.data(), t.v.data(), with_norms ? norms.data() : nullptr);
          EXPECT_TRUE(all_finite(paged.out)) << "page_size " << page_size;
          const std::string difference = first_difference(paged, varlen, b);
          EXPECT_TRUE(difference.empty())
              << "KV=" << kv_name(KV{}) << " page_size=" << page_size << " num_threads=" << threads
              << " key_norms=" << with_norms << "\n  " << difference;
        }
      }
    });
  }
}

// The same logical keys in pages of every size give the same bytes (no page size is special).
ALIBI_ISA_TEST(PagedResultDoesNotDependOnThePageSize) {
  std::mt19937 rng(1308);
  const Seqs seqs = {{1, 200}, {40, 70}, {70, 70}, {1, 5}};
  Batch base = make_batch(seqs, 6, 3, 17, rng);
  base.options.num_threads = 2;
  const KvTensors<float> logical = store_kv<float>(base);
  Output first;
  for (int page_size : {1, 2, 3, 4, 7, 8, 16, 32, 64, 128, 500}) {
    // Pages holding base's keys: sequence s's key j goes to the slot its (shuffled) table names.
    PagedCache<float> c;
    c.page_size = page_size;
    c.max_pages = 0;
    std::vector<std::int64_t> needed;
    for (std::int64_t s = 0; s < base.num_seqs(); ++s) {
      needed.push_back((base.kv_len(s) + page_size - 1) / page_size);
      c.max_pages = std::max(c.max_pages, needed.back());
    }
    c.num_pages = std::accumulate(needed.begin(), needed.end(), std::int64_t{0}) + 1;
    std::vector<std::int32_t> ids(static_cast<std::size_t>(c.num_pages));
    std::iota(ids.begin(), ids.end(), 0);
    std::shuffle(ids.begin(), ids.end(), rng);
    c.table.assign(static_cast<std::size_t>(base.num_seqs() * c.max_pages), -7);
    const std::int64_t row = base.kv_row();
    c.k_pages.assign(static_cast<std::size_t>(c.num_pages * page_size * row), kNaN);
    c.v_pages.assign(c.k_pages.size(), kNaN);
    std::size_t next = 0;
    for (std::int64_t s = 0; s < base.num_seqs(); ++s) {
      for (std::int64_t p = 0; p < needed[static_cast<std::size_t>(s)]; ++p)
        c.table[static_cast<std::size_t>(s * c.max_pages + p)] = ids[next++];
      for (std::int64_t j = 0; j < base.kv_len(s); ++j) {
        const std::int64_t slot =
            std::int64_t{c.table[static_cast<std::size_t>(s * c.max_pages + j / page_size)]} * page_size +
            j % page_size;
        const std::ptrdiff_t from = static_cast<std::ptrdiff_t>((base.kv_begin(s) + j) * row);
        std::copy(logical.k.begin() + from, logical.k.begin() + from + row,
                  c.k_pages.begin() + static_cast<std::ptrdiff_t>(slot * row));
        std::copy(logical.v.begin() + from, logical.v.begin() + from + row,
                  c.v_pages.begin() + static_cast<std::ptrdiff_t>(slot * row));
      }
    }
    const Output got = run_paged<Isa>(base, c, false);
    if (first.out.empty()) {
      first = got;
      continue;
    }
    const std::string difference = first_difference(got, first, base);
    EXPECT_TRUE(difference.empty()) << "page_size " << page_size << " differs from page_size 1\n  " << difference;
  }
}

// Note [narrower vectors] (kernels/plan.hpp): AVX-512 runs the decodes of a paged fp32 cache with pages
// no longer than a block on AVX2 vectors when 16 keys of the unit's kv heads are more K than half of L1D (here
// 3 kv heads of 200 and 8 of 80: 2400 and 2560 bytes per key; on every machine under
// test_hooks::narrower_pages_always: AMD cores keep full width). Those sequences run on a team of their own;
// every sequence keeps the bytes of the full-width kernel, of AVX2 and of attention_varlen on the gathered
// keys, and matches the reference.
ALIBI_ISA_TEST(PagedDecodesOnNarrowerVectorsGiveTheSameBits) {
  if constexpr (!std::is_same<Isa, alibi::isa::avx512>::value) {
    GTEST_SKIP() << "only AVX-512 moves calls to narrower vectors";
  } else {
    const AllCallsUseThreads threads_even_for_small_calls;
    std::mt19937 rng(1309);
    const std::int64_t long_len = scaled(4500, 4200);
    // Decodes (one of them split-K, one over <= 8 keys), two rows per kv head, and sequences that do not
    // stream (a prefill, five query rows of a head group of 4: 20 rows per kv head).
    const Seqs seqs = {{1, 257}, {1, long_len}, {30, 200}, {1, 65}, {2, 100}, {1, 3}, {0, 20}, {5, 70}};
    const Heads layouts[] = {{12, 3, 200}, {8, 8, 80}};
    int rotation = 0;
    for (const Heads& h : layouts) {
      for (int page_size : {1, 3, 16, 63, 64}) {
        Batch b = make_batch(seqs, h.heads, h.kv_heads, h.head_dim, rng);
        KvTensors<float> t;
        std::vector<float> norms;
        const PagedCache<float> cache = build_paged<float>(b, page_size, rng, t, norms);
        const int setting = rotation++ % 3;  // skipping off; default tolerance; with cached norms
        if (setting == 0) b.options.skip_tolerance = 0.0f;
        b.options.num_threads = 1 + rotation % 2;
        const bool with_norms = setting == 2;
        Output planned;
        {
          const NarrowerPagesAlways page_rule_on_every_machine;
          planned = run_paged<Isa>(b, cache, with_norms);
        }
        const Output on_avx2 = run_paged<alibi::isa::avx2>(b, cache, with_norms);
        Output full_width;
        {
          const FullWidthOnly keep_full_width;
          full_width = run_paged<Isa>(b, cache, with_norms);
        }
        const Output varlen = run_varlen<Isa>(b, t.k.data(), t.v.data(), with_norms ? norms.data() : nullptr);
        const std::string context = "heads " + std::to_string(h.heads) + "/" + std::to_string(h.kv_heads) +
                                    " head_dim " + std::to_string(h.head_dim) + " page_size " +
                                    std::to_string(page_size) + " setting " + std::to_string(setting);
        EXPECT_TRUE(first_difference(planned, full_width, b).empty())
            << context << ": differs from the full-width kernel\n  " << first_difference(planned, full_width, b);
        EXPECT_TRUE(first_difference(planned, on_avx2, b).empty())
            << context << ": differs from AVX2\n  " << first_difference(planned, on_avx2, b);
        EXPECT_TRUE(first_difference(planned, varlen, b).empty())
            << context << ": differs from attention_varlen\n  " << first_difference(planned, varlen, b);
        const std::string failure = check_against_reference(planned, b);
        EXPECT_TRUE(failure.empty()) << context << "\n  " << failure;
      }
    }
  }
}

// Note [page pairs] (kernels/unit_worker.hpp): on vectors of 16 lanes, decodes whose key of the unit's kv heads
// is 2 KiB (16-bit 8 kv heads of 128 or 16 of 64, fp32 4 of 128 or 1 of 512) take Q.K over a group's even keys,
// then its odd keys (on every machine under test_hooks::key_pairs_always: AMD cores leave them out). They give
// the bits of the same calls reading keys in order (test_hooks::no_key_pairs), paged equals varlen, and both
// match the reference: 1-4 rows per kv head, blocks with an odd number of key vectors, short and split-K
// sequences, a window, pages of 1, 16 and 64 keys, skipping off / default / cached norms, 1-2 threads. Runs in
// every binary; only AVX-512 takes the pairs.
ALIBI_ISA_TEST(DecodesInPagePairsGiveTheSameBits) {
  const AllCallsUseThreads threads_even_for_small_calls;
  std::mt19937 rng(1403);
  const std::int64_t long_len = scaled(4500, 4200);
  // Decodes over 1, 3, 17, 63, 65 (two key vectors and a lone one), 97, 257 and split-K lengths; a sequence
  // without queries and a short prefill.
  const Seqs seqs = {{1, 257}, {1, 97}, {1, long_len}, {1, 65}, {1, 3}, {0, 20}, {1, 63}, {1, 17}, {5, 40}, {1, 1}};
  int rotation = 0;
  for_each_kv([&](auto element) {
    using KV = decltype(element);
    const std::vector<Heads> layouts = sizeof(KV) == 2 ? std::vector<Heads>{{32, 8, 128}, {16, 16, 64}, {24, 8, 128}}
                                                       : std::vector<Heads>{{16, 4, 128}, {2, 1, 512}, {8, 4, 128}};
    for (const Heads& h : layouts) {
      const int page_size = std::array<int, 3>{16, 1, 64}[static_cast<std::size_t>(rotation % 3)];
      Batch b = make_batch(seqs, h.heads, h.kv_heads, h.head_dim, rng);
      const int setting = (rotation / 3) % 3;  // skipping off; default tolerance; with cached norms
      if (setting == 0) b.options.skip_tolerance = 0.0f;
      if (rotation % 4 == 3) b.options.window = 37;
      b.options.num_threads = 1 + rotation % 2;
      ++rotation;
      KvTensors<KV> t;
      std::vector<float> norms;
      const PagedCache<KV> cache = build_paged<KV>(b, page_size, rng, t, norms);
      const bool with_norms = setting == 2;
      const float* varlen_norms = with_norms ? norms.data() : nullptr;
      Output paged, varlen, paged_in_order, varlen_in_order;
      {
        const KeyPairsAlways in_pairs_on_every_machine;
        paged = run_paged<Isa>(b, cache, with_norms);
        varlen = run_varlen<Isa>(b, t.k.data(), t.v.data(), varlen_norms);
      }
      {
        const NoKeyPairs keys_in_order;
        paged_in_order = run_paged<Isa>(b, cache, with_norms);
        varlen_in_order = run_varlen<Isa>(b, t.k.data(), t.v.data(), varlen_norms);
      }
      const std::string context = std::string("KV=") + kv_name(KV{}) + " heads " + std::to_string(h.heads) + "/" +
                                  std::to_string(h.kv_heads) + " head_dim " + std::to_string(h.head_dim) +
                                  " page_size " + std::to_string(page_size) + " setting " + std::to_string(setting) +
                                  " window " + std::to_string(b.options.window);
      EXPECT_TRUE(first_difference(varlen, varlen_in_order, b).empty())
          << context << ": varlen differs from keys in order\n  " << first_difference(varlen, varlen_in_order, b);
      EXPECT_TRUE(first_difference(paged, paged_in_order, b).empty())
          << context << ": paged differs from keys in order\n  " << first_difference(paged, paged_in_order, b);
      EXPECT_TRUE(first_difference(paged, varlen, b).empty())
          << context << ": paged differs from varlen\n  " << first_difference(paged, varlen, b);
      const std::string failure = check_against_reference(varlen, b);
      EXPECT_TRUE(failure.empty()) << context << "\n  " << failure;
    }
  });
}

// ---- 4. bad input

ALIBI_ISA_TEST(RejectsBadInputWithoutWriting) {
  std::mt19937 rng(1310);
  const Seqs seqs = {{2, 5}, {0, 3}, {3, 3}, {1, 0}};
  for_each_kv([&](auto element) {
    using KV = decltype(element);
    Batch b = make_batch(seqs, 4, 2, 8, rng);
    KvTensors<KV> t;
    std::vector<float> norms;
    const PagedCache<KV> cache = build_paged<KV>(b, 2, rng, t, norms);
    const std::string name = kv_name(KV{});
    std::vector<float> out(b.q.size(), 12345.0f), lse(static_cast<std::size_t>(b.total_q() * b.heads), 54321.0f);
    alibi::AttentionOptions with_lse;
    with_lse.lse = lse.data();
    // Both entry points with an edited batch / options / cache.
    auto both = [&](const alibi::SeqBatch& sb, const alibi::AttentionOptions& o, const char* field,
                    const std::string& what) {
      expect_rejected_guarding(
          [&] { alibi::attention_varlen<Isa>(b.q.data(), t.k.data(), t.v.data(), out.data(), sb, o); }, {field},
          {&out, &lse}, "varlen: " + what + " (" + name + ")");
      expect_rejected_guarding([&] { alibi::attention_paged<Isa>(b.q.data(), cache.view(), out.data(), sb, o); },
                               {field}, {&out, &lse}, "paged: " + what + " (" + name + ")");
    };
    auto paged_only = [&](const alibi::PagedKV<KV>& pk, const alibi::AttentionOptions& o, const char* field,
                          const std::string& what, std::initializer_list<const char*> also = {}) {
      (void)also;
      expect_rejected_guarding([&] { alibi::attention_paged<Isa>(b.q.data(), pk, out.data(), b.seq_batch(), o); },
                               {field, also.size() ? *also.begin() : field}, {&out, &lse},
                               "paged: " + what + " (" + name + ")");
    };
    {
      alibi::SeqBatch sb = b.seq_batch();
      sb.num_seqs = -1;
      both(sb, with_lse, "num_seqs", "num_seqs -1");
      sb.num_seqs = std::numeric_limits<std::int64_t>::min();
      both(sb, with_lse, "num_seqs", "num_seqs INT64_MIN");
    }
    {
      alibi::SeqBatch sb = b.seq_batch();
      sb.q_offsets = nullptr;
      both(sb, with_lse, "q_offsets", "null q_offsets");
    }
    {
      alibi::SeqBatch sb = b.seq_batch();
      sb.kv_lens = nullptr;
      both(sb, with_lse, "kv_lens", "null kv_lens");
    }
    {  // q_offsets not starting at 0 (shifted by one: the same row counts)
      std::vector<std::int64_t> offsets = b.q_offsets;
      for (std::int64_t& x : offsets) ++x;
      alibi::SeqBatch sb = b.seq_batch();
      sb.q_offsets = offsets.data();
      both(sb, with_lse, "q_offsets", "q_offsets[0] == 1");
      offsets = b.q_offsets;
      offsets[0] = -1;
      sb.q_offsets = offsets.data();
      both(sb, with_lse, "q_offsets", "q_offsets[0] == -1");
    }
    {                                                   // decreasing offsets: in the middle, and at the end
      std::vector<std::int64_t> offsets = b.q_offsets;  // 0 2 2 5 6
      offsets[2] = 1;                                   // 0 2 1 5 6
      alibi::SeqBatch sb = b.seq_batch();
      sb.q_offsets = offsets.data();
      both(sb, with_lse, "q_offsets", "q_offsets decreasing in the middle");
      offsets = b.q_offsets;
      offsets.back() = offsets[offsets.size() - 2] - 1;
      sb.q_offsets = offsets.data();
      both(sb, with_lse, "q_offsets", "q_offsets decreasing at the end");
    }
    {  // negative kv_lens, first and last
      for (std::size_t at : {std::size_t{0}, b.kv_lens.size() - 1}) {
        std::vector<std::int64_t> lens = b.kv_lens;
        lens[at] = -1;
        alibi::SeqBatch sb = b.seq_batch();
        sb.kv_lens = lens.data();
        both(sb, with_lse, "kv_lens", "kv_lens[" + std::to_string(at) + "] = -1");
      }
    }
    {  // kv_lens whose sum overflows
      std::vector<std::int64_t> lens = b.kv_lens;
      lens[0] = kInt64Max / 2 + 1;
      lens[2] = kInt64Max / 2 + 1;
      alibi::SeqBatch sb = b.seq_batch();
      sb.kv_lens = lens.data();
      expect_rejected_guarding(
          [&] { alibi::attention_varlen<Isa>(b.q.data(), t.k.data(), t.v.data(), out.data(), sb, with_lse); },
          {"kv_lens"}, {&out, &lse}, "varlen: kv_lens summing past INT64_MAX (" + name + ")");
      lens[0] = kInt64Max;
      lens[2] = 1;
      expect_rejected_guarding(
          [&] { alibi::attention_varlen<Isa>(b.q.data(), t.k.data(), t.v.data(), out.data(), sb, with_lse); },
          {"kv_lens"}, {&out, &lse}, "varlen: kv_lens INT64_MAX + 1 (" + name + ")");
    }
    {  // positions
      alibi::AttentionOptions o = with_lse;
      o.q_pos0 = 0;
      both(b.seq_batch(), o, "q_pos0", "q_pos0 0");
      o.q_pos0 = 5;
      both(b.seq_batch(), o, "q_pos0", "q_pos0 5");
      o.q_pos0 = -2;
      both(b.seq_batch(), o, "q_pos0", "q_pos0 -2");
      o = with_lse;
      o.kv_pos0 = 3;
      both(b.seq_batch(), o, "kv_pos0", "kv_pos0 3");
      o.kv_pos0 = -1;
      both(b.seq_batch(), o, "kv_pos0", "kv_pos0 -1");
    }
    {  // q_offsets whose total overflows the q/out tensor (total_q * num_heads * head_dim)
      std::vector<std::int64_t> offsets = b.q_offsets;
      offsets.back() = kInt64Max / 2;
      alibi::SeqBatch sb = b.seq_batch();
      sb.q_offsets = offsets.data();
      expect_rejected_guarding(
          [&] { alibi::attention_varlen<Isa>(b.q.data(), t.k.data(), t.v.data(), out.data(), sb, with_lse); },
          {"q_offsets", "total_q"}, {&out, &lse}, "varlen: total_q overflowing (" + name + ")");
    }
    {  // null q, out, k, v with rows and keys
      alibi::SeqBatch sb = b.seq_batch();
      expect_rejected_guarding(
          [&] { alibi::attention_varlen<Isa>(nullptr, t.k.data(), t.v.data(), out.data(), sb, with_lse); }, {"q"},
          {&out, &lse}, "varlen: null q (" + name + ")");
      expect_rejected_guarding(
          [&] { alibi::attention_varlen<Isa>(b.q.data(), t.k.data(), t.v.data(), nullptr, sb, with_lse); }, {"out"},
          {&out, &lse}, "varlen: null out (" + name + ")");
      expect_rejected_guarding(
          [&] {
            alibi::attention_varlen<Isa>(b.q.data(), static_cast<const KV*>(nullptr), t.v.data(), out.data(), sb,
                                         with_lse);
          },
          {"k"}, {&out, &lse}, "varlen: null k (" + name + ")");
      expect_rejected_guarding(
          [&] {
            alibi::attention_varlen<Isa>(b.q.data(), t.k.data(), static_cast<const KV*>(nullptr), out.data(), sb,
                                         with_lse);
          },
          {"v"}, {&out, &lse}, "varlen: null v (" + name + ")");
      alibi::PagedKV<KV> pk = cache.view();
      pk.k_pages = nullptr;
      paged_only(pk, with_lse, "k_pages", "null k_pages");
      pk = cache.view();
      pk.v_pages = nullptr;
      paged_only(pk, with_lse, "v_pages", "null v_pages");
    }
    // The paged cache.
    {
      alibi::PagedKV<KV> pk = cache.view();
      pk.block_table = nullptr;
      paged_only(pk, with_lse, "block_table", "null block_table");
    }
    for (int page_size : {0, -1, std::numeric_limits<int>::min()}) {
      alibi::PagedKV<KV> pk = cache.view();
      pk.page_size = page_size;
      paged_only(pk, with_lse, "page_size", "page_size " + std::to_string(page_size));
    }
    {
      alibi::PagedKV<KV> pk = cache.view();
      pk.num_pages = -1;
      paged_only(pk, with_lse, "num_pages", "num_pages -1");
      pk = cache.view();
      pk.max_pages_per_seq = -1;
      paged_only(pk, with_lse, "max_pages_per_seq", "max_pages_per_seq -1");
    }
    {  // a used entry outside [0, num_pages): in the first sequence's first page, and in a later one's last
      for (std::int32_t bad : {-1, static_cast<std::int32_t>(cache.num_pages), std::numeric_limits<std::int32_t>::max(),
                               std::numeric_limits<std::int32_t>::min()}) {
        for (std::size_t entry : {std::size_t{0}, static_cast<std::size_t>(2 * cache.max_pages + 1)}) {
          std::vector<std::int32_t> table = cache.table;
          table[entry] = bad;
          alibi::PagedKV<KV> pk = cache.view();
          pk.block_table = table.data();
          paged_only(pk, with_lse, "block_table",
                     "block_table entry " + std::to_string(entry) + " = " + std::to_string(bad));
        }
      }
      // The same entry with num_pages one smaller than it: the id equals num_pages.
      alibi::PagedKV<KV> pk = cache.view();
      pk.num_pages = *std::max_element(cache.table.begin(), cache.table.begin() + 1);
      paged_only(pk, with_lse, "block_table", "block_table entry == num_pages");
    }
    {  // a sequence needing more pages than the table has: sequence 0 has 5 keys = 3 pages of 2
      alibi::PagedKV<KV> pk = cache.view();
      pk.max_pages_per_seq = 2;
      paged_only(pk, with_lse, "max_pages_per_seq", "max_pages_per_seq 2 for 3 pages");
      pk.max_pages_per_seq = 0;
      paged_only(pk, with_lse, "max_pages_per_seq", "max_pages_per_seq 0");
      pk = cache.view();
      pk.page_size = 1;  // now sequence 0 needs 5 pages, the table has cache.max_pages (5 = 3 + 2)
      std::vector<std::int32_t> table(static_cast<std::size_t>(b.num_seqs() * 4), 0);
      pk.block_table = table.data();
      pk.max_pages_per_seq = 4;
      paged_only(pk, with_lse, "max_pages_per_seq", "page_size 1, 5 keys, 4 entries");
    }
    {  // num_pages * page_size overflowing
      alibi::PagedKV<KV> pk = cache.view();
      pk.num_pages = kInt64Max / 4;
      pk.page_size = 16;
      paged_only(pk, with_lse, "num_pages", "num_pages * page_size overflowing", {"page_size"});
      pk.num_pages = kInt64Max;
      pk.page_size = 2;
      paged_only(pk, with_lse, "num_pages", "num_pages INT64_MAX", {"page_size"});
      // The storage in elements overflowing (num_pages * page_size fits, times kv_heads * head_dim not).
      pk.num_pages = std::int64_t{1} << 58;
      pk.page_size = 2;
      expect_rejected_guarding(
          [&] { alibi::attention_paged<Isa>(b.q.data(), pk, out.data(), b.seq_batch(), with_lse); }, {"k", "num_pages"},
          {&out, &lse}, "paged: storage elements overflowing (" + name + ")");
    }
    // Overlaps: out over q, over the pages, over the block table; lse over out.
    {
      const std::size_t nq = b.q.size();
      std::vector<float> shared(b.q);
      shared.resize(2 * nq, 7.0f);
      expect_rejected_guarding(
          [&] {
            alibi::attention_varlen<Isa>(shared.data(), t.k.data(), t.v.data(), shared.data() + 3, b.seq_batch(),
                                         with_lse);
          },
          {"out"}, {&shared, &lse}, "varlen: out overlapping q (" + name + ")");
      expect_rejected_guarding(
          [&] {
            alibi::attention_paged<Isa>(shared.data(), cache.view(), shared.data() + nq - 1, b.seq_batch(), with_lse);
          },
          {"out"}, {&shared, &lse}, "paged: out starting on q's last float (" + name + ")");
    }
    {  // out over the k or v pages (a copy of the pool inside the output buffer)
      for (int tensor = 0; tensor < 2; ++tensor) {
        const std::vector<KV>& own = tensor == 0 ? cache.k_pages : cache.v_pages;
        const std::size_t bytes = own.size() * sizeof(KV);
        std::vector<float> shared(bytes / sizeof(float) + out.size() + 1, 7.0f);
        std::memcpy(shared.data(), own.data(), bytes);
        alibi::PagedKV<KV> pk = cache.view();
        (tensor == 0 ? pk.k_pages : pk.v_pages) = reinterpret_cast<const KV*>(shared.data());
        expect_rejected_guarding(
            [&] {
              alibi::attention_paged<Isa>(b.q.data(), pk, shared.data() + bytes / sizeof(float) - 1, b.seq_batch(),
                                          with_lse);
            },
            {"out"}, {&shared, &lse},
            std::string("paged: out starting on the last float of ") + (tensor == 0 ? "k_pages" : "v_pages") + " (" +
                name + ")");
      }
    }
    {                                                       // out over the block table
      const std::size_t table_floats = cache.table.size();  // int32 and float are both 4 bytes
      std::vector<float> shared(table_floats + out.size(), 7.0f);
      std::memcpy(shared.data(), cache.table.data(), table_floats * sizeof(std::int32_t));
      alibi::PagedKV<KV> pk = cache.view();
      pk.block_table = reinterpret_cast<const std::int32_t*>(shared.data());
      expect_rejected_guarding(
          [&] {
            alibi::attention_paged<Isa>(b.q.data(), pk, shared.data() + table_floats - 1, b.seq_batch(), with_lse);
          },
          {"out"}, {&shared, &lse}, "paged: out starting on the block table's last entry (" + name + ")");
    }
    {  // lse over out, and lse over the key norms
      std::vector<float> shared(out.size() + lse.size(), 7.0f);
      alibi::AttentionOptions o;
      o.lse = shared.data() + out.size() - 1;
      expect_rejected_guarding(
          [&] { alibi::attention_varlen<Isa>(b.q.data(), t.k.data(), t.v.data(), shared.data(), b.seq_batch(), o); },
          {"lse"}, {&shared}, "varlen: lse starting on out's last float (" + name + ")");
      expect_rejected_guarding(
          [&] { alibi::attention_paged<Isa>(b.q.data(), cache.view(), shared.data(), b.seq_batch(), o); }, {"lse"},
          {&shared}, "paged: lse starting on out's last float (" + name + ")");
    }
    // The valid call still works after all that.
    EXPECT_NO_THROW(alibi::attention_paged<Isa>(b.q.data(), cache.view(), out.data(), b.seq_batch(), with_lse)) << name;
  });
}

// ---- 5. empty batches

ALIBI_ISA_TEST(EmptyBatchesAndSequencesWithoutKeys) {
  std::vector<float> untouched(64, 42.0f);
  alibi::SeqBatch none;
  none.num_heads = 4;
  none.num_kv_heads = 2;
  none.head_dim = 8;
  // num_seqs 0: no-op, with every pointer null, or with real buffers that must keep their bytes.
  EXPECT_NO_THROW(alibi::attention_varlen<Isa>(nullptr, nullptr, nullptr, nullptr, none));
  EXPECT_NO_THROW(alibi::attention_paged<Isa>(
      nullptr, alibi::PagedKV<alibi::bfloat16>{nullptr, nullptr, 0, 1, nullptr, 0}, nullptr, none));
  alibi::AttentionOptions o;
  o.lse = untouched.data() + 32;
  EXPECT_NO_THROW(
      alibi::attention_varlen<Isa>(untouched.data(), untouched.data(), untouched.data(), untouched.data(), none, o));
  const std::int64_t zero = 0;
  none.q_offsets = &zero;
  EXPECT_NO_THROW(
      alibi::attention_varlen<Isa>(untouched.data(), untouched.data(), untouched.data(), untouched.data(), none, o));
  for (float x : untouched) EXPECT_EQ(x, 42.0f);

  // Every sequence without keys: zeros and -inf, null K/V and a null block table allowed.
  std::mt19937 rng(1311);
  for_each_kv([&](auto element) {
    using KV = decltype(element);
    Batch b = make_batch({{3, 0}, {0, 0}, {1, 0}, {5, 0}}, 5, 1, 17, rng);
    for (alibi::Mask mask : {alibi::Mask::causal, alibi::Mask::bidirectional}) {
      b.options.mask = mask;
      Output varlen = run_varlen<Isa>(b, static_cast<const KV*>(nullptr), static_cast<const KV*>(nullptr));
      Output paged = fresh_output(b);
      alibi::AttentionOptions p = b.call_options();
      p.lse = paged.lse.data();
      alibi::PagedKV<KV> empty_cache;
      empty_cache.page_size = 16;
      alibi::attention_paged<Isa>(b.q.data(), empty_cache, paged.out.data(), b.seq_batch(), p);
      for (const Output* r : {&varlen, &paged}) {
        for (float x : r->out) ASSERT_EQ(x, 0.0f) << kv_name(KV{}) << " " << b.describe();
        for (float x : r->lse) ASSERT_TRUE(is_negative_infinity(x)) << kv_name(KV{}) << " lse " << x;
      }
    }
  });
}

// ---- batch invariance (issue 13)

struct InvarianceCase {
  int heads, kv_heads, head_dim;
  std::int64_t length, window;
  std::vector<std::int64_t> chunk_sizes;  // cycled until the prefill is covered
  int page_size;
  std::vector<float> slopes;  // empty: the default slopes
};

// The invariance rule: a row's out and lse do not depend on how its sequence's queries are batched.
// A causal prefill computed in chunks (each chunk a call with kv_len = the chunk's end: dense attention<>
// calls with q_len < kv_len, one ragged attention_varlen batch of all chunks, and attention_paged over one
// shared set of shuffled pages) and the last row alone as a q_len 1 decode give the bytes of the one-call
// prefill, with skip_tolerance 0 and default, with and without cached key norms, on 1, 2 and 3 threads.
// Chunks of at most 16 rows per kv head (AVX2: 8; and the decode) take the streaming decode (Note [streaming
// decode]; 7, 8, 9 and 14 rows here, computed as 8 or 16 with padding rows),
// the others the packed tiles: both must give the same bits.
ALIBI_ISA_TEST(ChunkedPrefillAndDecodeAreBatchInvariant) {
  std::mt19937 rng(1312);
  const AllCallsUseThreads threaded;
  const std::vector<InvarianceCase> cases = {
      {4, 4, 17, 300, 0, {1, 7, 64, 33}, 16, {}},
      {8, 2, 80, 520, 0, {7, 1, 64, 129, 2}, 7, {}},
      {6, 3, 1, 200, 37, {64, 1, 7, 19}, 1, {}},
      {8, 1, 128, 260, 0, {1, 64, 7, 45}, 32, {}},
      {12, 4, 8, 150, 20, {3, 1, 11}, 5, {}},
      // Past 2 * 2048 keys: the chunks and the decode have few units and take split-K, the prefill does not.
      {2, 1, 8, 4300, 0, {2100, 1, 7, 64, 1999, 128}, 64, {}},
      // The same with head_dim 1, where the skipping bound is tight, and slopes that leave the first chunk
      // just under the default tolerance for the last rows: whether a row skips it shows in its bits.
      {2, 1, 1, 4300, 0, {2100, 1, 7, 64, 1999, 128}, 64, {0.0085f, 0.008f}},
  };
  int index = 0;
  for (const InvarianceCase& c : cases) {
    for (float tolerance : {0.0f, alibi::AttentionOptions{}.skip_tolerance}) {
      const bool with_norms = tolerance > 0.0f && index % 2 == 1;
      const int threads = 1 + index % 3, chunk_threads = 1 + (index + 1) % 3;
      one_kv_rotating(index++, [&](auto element) {
        using KV = decltype(element);
        Batch whole = make_batch({{c.length, c.length}}, c.heads, c.kv_heads, c.head_dim, rng);
        whole.custom_slopes = c.slopes;
        whole.options.window = c.window;
        whole.options.skip_tolerance = tolerance;
        whole.options.num_threads = threads;
        const KvTensors<KV> t = store_kv<KV>(whole);
        const std::vector<float> norms = packed_key_norms(whole, t.k);
        const float* whole_norms = with_norms ? norms.data() : nullptr;
        const Output one_call = run_per_sequence<Isa>(whole, t.k.data(), t.v.data(), whole_norms);
        const std::string context = std::string("KV=") + kv_name(KV{}) + " key_norms=" + (with_norms ? "1" : "0") +
                                    " chunk threads=" + std::to_string(chunk_threads) + " " + whole.describe();

        // The chunks as the sequences of one ragged batch, each over the keys up to its end.
        Batch chunks = whole;
        chunks.options.num_threads = chunk_threads;
        chunks.q_offsets = {0};
        chunks.kv_lens.clear();
        chunks.k.clear();
        chunks.v.clear();
        std::vector<KV> k, v;
        std::vector<float> chunk_norms;
        for (std::size_t n = 0; chunks.q_offsets.back() < c.length; ++n) {
          const std::int64_t begin = chunks.q_offsets.back();
          const std::int64_t end = std::min(c.length, begin + c.chunk_sizes[n % c.chunk_sizes.size()]);
          chunks.q_offsets.push_back(end);
          chunks.kv_lens.push_back(end);
          const auto keys = static_cast<std::ptrdiff_t>(end * whole.kv_row());
          k.insert(k.end(), t.k.begin(), t.k.begin() + keys);
          v.insert(v.end(), t.v.begin(), t.v.begin() + keys);
          chunk_norms.insert(chunk_norms.end(), norms.begin(), norms.begin() + end * whole.kv_heads);
        }
        const float* norms_of_chunks = with_norms ? chunk_norms.data() : nullptr;
        // The same chunks through attention_paged: every chunk's table row lists the same shuffled pages.
        const std::int64_t pages = (c.length + c.page_size - 1) / c.page_size;
        std::vector<std::int32_t> ids(static_cast<std::size_t>(pages));
        std::iota(ids.begin(), ids.end(), 0);
        std::shuffle(ids.begin(), ids.end(), rng);
        const std::int64_t page_floats = std::int64_t{c.page_size} * whole.kv_row();
        std::vector<KV> k_pages(static_cast<std::size_t>(pages * page_floats), stored_as<KV>(kNaN));
        std::vector<KV> v_pages(k_pages.size(), stored_as<KV>(kNaN));
        std::vector<float> page_norms(static_cast<std::size_t>(pages * c.page_size * c.kv_heads), kNaN);
        for (std::int64_t j = 0; j < c.length; ++j) {
          const std::int64_t slot =
              ids[static_cast<std::size_t>(j / c.page_size)] * std::int64_t{c.page_size} + j % c.page_size;
          std::copy(t.k.begin() + j * whole.kv_row(), t.k.begin() + (j + 1) * whole.kv_row(),
                    k_pages.begin() + slot * whole.kv_row());
          std::copy(t.v.begin() + j * whole.kv_row(), t.v.begin() + (j + 1) * whole.kv_row(),
                    v_pages.begin() + slot * whole.kv_row());
          std::copy(norms.begin() + j * whole.kv_heads, norms.begin() + (j + 1) * whole.kv_heads,
                    page_norms.begin() + slot * whole.kv_heads);
        }
        std::vector<std::int32_t> table;
        for (std::int64_t s = 0; s < chunks.num_seqs(); ++s) table.insert(table.end(), ids.begin(), ids.end());
        alibi::PagedKV<KV> cache;
        cache.k_pages = k_pages.data();
        cache.v_pages = v_pages.data();
        cache.num_pages = pages;
        cache.page_size = c.page_size;
        cache.block_table = table.data();
        cache.max_pages_per_seq = pages;
        Output paged = fresh_output(chunks);
        alibi::AttentionOptions paged_options = chunks.call_options();
        paged_options.lse = paged.lse.data();
        paged_options.key_norms = with_norms ? page_norms.data() : nullptr;
        alibi::attention_paged<Isa>(chunks.q.data(), cache, paged.out.data(), chunks.seq_batch(), paged_options);

        const Output ways[] = {run_per_sequence<Isa>(chunks, k.data(), v.data(), norms_of_chunks),
                               run_varlen<Isa>(chunks, k.data(), v.data(), norms_of_chunks), paged};
        const char* way_names[] = {"dense calls", "attention_varlen", "attention_paged"};
        const std::size_t row = static_cast<std::size_t>(whole.q_row()), H = static_cast<std::size_t>(c.heads);
        for (std::size_t w = 0; w < 3; ++w)
          for (std::int64_t i = 0; i < c.length; ++i) {
            const auto at = static_cast<std::size_t>(i);
            ASSERT_TRUE(same_floats(ways[w].out.data() + at * row, one_call.out.data() + at * row, row) &&
                        same_floats(ways[w].lse.data() + at * H, one_call.lse.data() + at * H, H))
                << way_names[w] << ": row " << i << " differs from the one-call prefill; " << context;
          }

        // The last row alone as a q_len 1 decode, dense and ragged.
        {
          Batch decode = whole;
          decode.options.num_threads = chunk_threads;
          decode.q_offsets = {0, 1};
          decode.q.assign(whole.q.end() - whole.q_row(), whole.q.end());
          const std::size_t last = static_cast<std::size_t>(c.length - 1);
          for (const Output& r : {run_per_sequence<Isa>(decode, t.k.data(), t.v.data(), whole_norms),
                                  run_varlen<Isa>(decode, t.k.data(), t.v.data(), whole_norms)})
            ASSERT_TRUE(same_floats(r.out.data(), one_call.out.data() + last * row, row) &&
                        same_floats(r.lse.data(), one_call.lse.data() + last * H, H))
                << "the last row as a decode differs from the one-call prefill; " << context;
        }
      });
    }
  }
}

// ---- the table test_main.cpp registers (Note [no AVX-512 before the CPU check])

#define ALIBI_SERVING_TESTS(X)                    \
  X(VarlenMatchesTheReferenceOnAwkwardBatches)    \
  X(VarlenMatchesTheReferenceOnRandomBatches)     \
  X(VarlenEqualsOneCallPerSequenceBitwise)        \
  X(VarlenThreadCountDoesNotChangeABit)           \
  X(VarlenSequenceOrderAndCompanyDoNotMatter)     \
  X(PagedEqualsVarlenOnTheGatheredKeys)           \
  X(PagedSplitKDecodeEqualsVarlen)                \
  X(PagedResultDoesNotDependOnThePageSize)        \
  X(PagedDecodesOnNarrowerVectorsGiveTheSameBits) \
  X(DecodesInPagePairsGiveTheSameBits)            \
  X(RejectsBadInputWithoutWriting)                \
  X(EmptyBatchesAndSequencesWithoutKeys)          \
  X(ChunkedPrefillAndDecodeAreBatchInvariant)

ALIBI_ISA_TEST_ENTRIES("ServingTest", ALIBI_SERVING_TESTS);

}  // namespace

const TestTable kServingTests = {kEntries.data(), kEntries.size()};

}  // namespace alibi_test
