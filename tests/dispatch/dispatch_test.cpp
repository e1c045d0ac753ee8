// alibi::dispatch from a TU compiled WITHOUT ISA flags: the ISA it picks (widest the CPU has, capped by
// ALIBI_ISA), bitwise equality with alibi::attention<isa::X> compiled with X's flags on many shapes and for
// float, bfloat16 and float16 K/V (also with kv_pos0 and lse), of dispatch::attention_varlen and
// dispatch::attention_paged with their alibi:: counterparts, of dispatch::merge_partials and
// dispatch::attention_backward likewise, agreement with a float64 reference, and argument errors.
//
// Usage: alibi_dispatch_test EXPECTED, run by ctest once per ALIBI_ISA setting. EXPECTED is the ISA that
// must be chosen ("scalar", "avx2", "avx512"), "widest" (the widest this CPU supports), or "error" (every
// call must throw std::invalid_argument naming ALIBI_ISA). "avx2"/"avx512" on a CPU without them means
// "error" (a cap above what the CPU has is refused).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <numeric>
#include <random>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "../reference.hpp"
#include "alibi/convert.hpp"
#include "alibi/dispatch.hpp"
#include "reference_kernels.hpp"

namespace {

int failures = 0;

void fail(const std::string& what) {
  ++failures;
  std::fprintf(stderr, "FAIL: %s\n", what.c_str());
}

bool cpu_has(const std::string& isa) {
  __builtin_cpu_init();
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (isa == "avx2") return avx2;
  if (isa == "avx512")
    return avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
  return isa == "scalar";
}

// The reference kernel of `isa` among its three builds (Fn picks the overload of each name).
template <class Fn>
Fn for_isa(const std::string& isa, Fn scalar, Fn avx2, Fn avx512) {
  return isa == "avx512" ? avx512 : isa == "avx2" ? avx2 : scalar;
}

template <class KV>
alibi_dispatch_test::AttentionFn<KV> reference_for(const std::string& isa) {
  return for_isa<alibi_dispatch_test::AttentionFn<KV>>(isa, alibi_dispatch_test::attention_scalar,
                                                       alibi_dispatch_test::attention_avx2,
                                                       alibi_dispatch_test::attention_avx512);
}

// K/V stored as a 16-bit type (rounded by the library; convert_test.cpp checks that).
const char* kv_name(float) {
  return "float";
}
const char* kv_name(alibi::bfloat16) {
  return "bfloat16";
}
const char* kv_name(alibi::float16) {
  return "float16";
}
float stored_as(float x, float) {
  return x;
}
alibi::bfloat16 stored_as(float x, alibi::bfloat16) {
  return alibi::to_bfloat16(x);
}
alibi::float16 stored_as(float x, alibi::float16) {
  return alibi::to_float16(x);
}

struct Case {
  alibi::AttentionShape shape;
  alibi::AttentionOptions options;
  std::vector<float> slopes;
};

std::vector<Case> make_cases() {
  std::mt19937 rng(20261130);
  std::vector<Case> cases;
  // Awkward sizes first, then random ones.
  const int dims[] = {1, 17, 80, 64, 128, 3};
  const std::int64_t lengths[] = {1, 63, 65, 257, 2, 130};
  const int heads[][2] = {{3, 1}, {5, 5}, {12, 4}, {8, 2}, {4, 4}, {6, 3}};
  for (int n = 0; n < 6; ++n) {
    Case c;
    c.shape.batch = 1 + n % 2;
    c.shape.q_len = lengths[n];
    c.shape.kv_len = lengths[(n + 2) % 6] + lengths[n];
    c.shape.num_heads = heads[n][0];
    c.shape.num_kv_heads = heads[n][1];
    c.shape.head_dim = dims[n];
    c.options.num_threads = 1 + n % 2;
    cases.push_back(c);
  }
  for (int n = 0; n < 24; ++n) {
    Case c;
    std::uniform_int_distribution<int> batch(1, 2), dim(1, 96), groups(1, 3), kv_heads(1, 3);
    std::uniform_int_distribution<std::int64_t> len(1, 300);
    c.shape.batch = batch(rng);
    c.shape.head_dim = dim(rng);
    c.shape.num_kv_heads = kv_heads(rng);
    c.shape.num_heads = c.shape.num_kv_heads * groups(rng);
    c.shape.q_len = len(rng);
    const std::int64_t extra = len(rng);
    c.shape.kv_len = n % 3 == 0 ? c.shape.q_len : c.shape.q_len + extra;
    c.options.mask = n % 4 == 1 ? alibi::Mask::bidirectional : alibi::Mask::causal;
    c.options.window = n % 5 == 2 ? 1 + extra / 3 : 0;
    c.options.num_threads = 1 + n % 2;
    if (n % 6 == 3) c.options.skip_tolerance = 0.0f;
    if (n % 7 == 4) {
      std::uniform_real_distribution<float> slope(-0.2f, 0.6f);
      for (int h = 0; h < c.shape.num_heads; ++h) c.slopes.push_back(slope(rng));
    }
    cases.push_back(c);
  }
  // Decode over a long cache (split-K) and a long causal prefill (block skipping).
  Case decode;
  decode.shape = {1, 1, 9000, 8, 2, 64};
  decode.options.num_threads = 2;
  cases.push_back(decode);
  Case prefill;
  prefill.shape = {1, 700, 700, 4, 4, 32};
  cases.push_back(prefill);
  return cases;
}

std::vector<float> random_values(std::size_t count, std::mt19937& rng) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> values(count);
  for (float& x : values) x = normal(rng);
  return values;
}

std::string describe(const Case& c) {
  const alibi::AttentionShape& s = c.shape;
  char text[256];
  std::snprintf(text, sizeof text, "batch=%d q_len=%lld kv_len=%lld heads=%d/%d head_dim=%d mask=%d window=%lld",
                s.batch, static_cast<long long>(s.q_len), static_cast<long long>(s.kv_len), s.num_heads, s.num_kv_heads,
                s.head_dim, static_cast<int>(c.options.mask), static_cast<long long>(c.options.window));
  return text;
}

// Largest error of `out` against the float64 reference, relative to 1 + |ref|, beyond what fp32 rounding of
// the logits explains (Note [logit rounding bound] in tests/reference.hpp).
double worst_error(const std::vector<float>& out, const std::vector<float>& q, const std::vector<float>& k,
                   const std::vector<float>& v, const Case& c) {
  const alibi_test::ReferenceOutput exact = alibi_test::reference_attention(
      alibi_test::make_reference_problem(q.data(), k.data(), v.data(), c.shape, c.options));
  double worst = 0.0;
  for (std::size_t n = 0; n < out.size(); ++n) {
    const double error = std::fabs(double(out[n]) - exact.out[n]) - exact.rounding_bound[n];
    worst = std::max(worst, error / (1.0 + std::fabs(exact.out[n])));
  }
  return worst;
}

// The index of the first element where a and b differ in their bits; a.size() if none.
std::size_t first_difference(const std::vector<float>& a, const std::vector<float>& b) {
  std::size_t first = 0;
  while (first < a.size() && std::memcmp(&a[first], &b[first], sizeof(float)) == 0) ++first;
  return first;
}

// The case with K/V stored as KV: dispatch against alibi::attention<isa::X> built with X's flags, bit for
// bit. (The per-ISA tests, kv16_test.cpp, hold that kernel to the float64 reference on the stored values;
// repeating it here would triple this program's run time for every ALIBI_ISA setting.)
template <class KV>
void check_16bit_case(const std::string& isa, const Case& c, const std::vector<float>& q, const std::vector<float>& k,
                      const std::vector<float>& v) {
  std::vector<KV> k16, v16;
  for (float x : k) k16.push_back(stored_as(x, KV{}));
  for (float x : v) v16.push_back(stored_as(x, KV{}));
  std::vector<float> out(q.size(), -7.0f), expected(q.size(), -9.0f);
  alibi::dispatch::attention(q.data(), k16.data(), v16.data(), out.data(), c.shape, c.options);
  reference_for<KV>(isa)(q.data(), k16.data(), v16.data(), expected.data(), c.shape, c.options);
  const std::size_t first = first_difference(out, expected);
  if (first != out.size())
    fail("dispatch output differs from alibi::attention<isa::" + isa + "> built with its flags, " + kv_name(KV{}) +
         " K/V, " + describe(c) + ", first at element " + std::to_string(first));
}

template <class KV>
alibi_dispatch_test::VarlenFn<KV> varlen_reference_for(const std::string& isa) {
  return for_isa<alibi_dispatch_test::VarlenFn<KV>>(isa, alibi_dispatch_test::attention_varlen_scalar,
                                                    alibi_dispatch_test::attention_varlen_avx2,
                                                    alibi_dispatch_test::attention_varlen_avx512);
}

template <class KV>
alibi_dispatch_test::PagedFn<KV> paged_reference_for(const std::string& isa) {
  return for_isa<alibi_dispatch_test::PagedFn<KV>>(isa, alibi_dispatch_test::attention_paged_scalar,
                                                   alibi_dispatch_test::attention_paged_avx2,
                                                   alibi_dispatch_test::attention_paged_avx512);
}

struct Served {
  std::vector<float> out, lse;
};

// Issue 13: dispatch::attention_varlen and dispatch::attention_paged against alibi::attention_varlen<isa::X>
// and alibi::attention_paged<isa::X> built with X's flags, bit for bit in out and lse, on a ragged batch
// (a decode row over 4200 keys, prefill chunks, sequences without queries or keys) whose pages are shuffled
// over the pool, with NaN in the slots no sequence uses and out-of-range ids in the unused table entries;
// and the three layouts through dispatch (paged without key norms, varlen, one dispatch::attention call per
// sequence) agree bit for bit.
template <class KV>
void check_serving_layouts(const std::string& isa) {
  constexpr int heads = 12, kv_heads = 4, head_dim = 17, page_size = 16;
  const std::vector<std::pair<std::int64_t, std::int64_t>> seqs = {{1, 4200}, {63, 65}, {0, 9},
                                                                   {3, 0},    {65, 65}, {1, 1}};
  const auto num_seqs = static_cast<std::int64_t>(seqs.size());
  std::vector<std::int64_t> q_offsets{0}, kv_offsets{0}, kv_lens, pages_needed;
  for (const auto& [q_len, kv_len] : seqs) {
    q_offsets.push_back(q_offsets.back() + q_len);
    kv_offsets.push_back(kv_offsets.back() + kv_len);
    kv_lens.push_back(kv_len);
    pages_needed.push_back((kv_len + page_size - 1) / page_size);
  }
  alibi::SeqBatch batch;
  batch.num_seqs = num_seqs;
  batch.q_offsets = q_offsets.data();
  batch.kv_lens = kv_lens.data();
  batch.num_heads = heads;
  batch.num_kv_heads = kv_heads;
  batch.head_dim = head_dim;
  const std::int64_t q_row = std::int64_t{heads} * head_dim, kv_row = std::int64_t{kv_heads} * head_dim;
  const std::int64_t total_q = q_offsets.back(), total_kv = kv_offsets.back();

  std::mt19937 rng(1309);
  const std::vector<float> q = random_values(static_cast<std::size_t>(total_q * q_row), rng);
  std::vector<KV> k, v;
  for (float x : random_values(static_cast<std::size_t>(total_kv * kv_row), rng)) k.push_back(stored_as(x, KV{}));
  for (float x : random_values(static_cast<std::size_t>(total_kv * kv_row), rng)) v.push_back(stored_as(x, KV{}));

  // The pages: sequence s's key j in slot j % page_size of page table[s * max_pages + j / page_size].
  const std::int64_t max_pages = *std::max_element(pages_needed.begin(), pages_needed.end()) + 1;
  const std::int64_t num_pages = std::accumulate(pages_needed.begin(), pages_needed.end(), std::int64_t{0}) + 2;
  std::vector<std::int32_t> ids(static_cast<std::size_t>(num_pages));
  std::iota(ids.begin(), ids.end(), 0);
  std::shuffle(ids.begin(), ids.end(), rng);
  std::vector<std::int32_t> table(static_cast<std::size_t>(num_seqs * max_pages), static_cast<std::int32_t>(num_pages));
  std::size_t next_id = 0;
  for (std::int64_t s = 0; s < num_seqs; ++s)
    for (std::int64_t p = 0; p < pages_needed[static_cast<std::size_t>(s)]; ++p)
      table[static_cast<std::size_t>(s * max_pages + p)] = ids[next_id++];
  const auto pool = static_cast<std::size_t>(num_pages * page_size * kv_row);
  std::vector<KV> k_pages(pool, stored_as(std::nanf(""), KV{})), v_pages(pool, stored_as(std::nanf(""), KV{}));
  for (std::int64_t s = 0; s < num_seqs; ++s)
    for (std::int64_t j = 0; j < kv_lens[static_cast<std::size_t>(s)]; ++j) {
      const std::int64_t slot =
          std::int64_t{table[static_cast<std::size_t>(s * max_pages + j / page_size)]} * page_size + j % page_size;
      const auto from = static_cast<std::ptrdiff_t>((kv_offsets[static_cast<std::size_t>(s)] + j) * kv_row);
      std::copy(k.begin() + from, k.begin() + from + kv_row, k_pages.begin() + slot * kv_row);
      std::copy(v.begin() + from, v.begin() + from + kv_row, v_pages.begin() + slot * kv_row);
    }
  alibi::PagedKV<KV> cache;
  cache.k_pages = k_pages.data();
  cache.v_pages = v_pages.data();
  cache.num_pages = num_pages;
  cache.page_size = page_size;
  cache.block_table = table.data();
  cache.max_pages_per_seq = max_pages;
  // Key norms per slot, page by page (the unused slots' NaN keys give NaN bounds nobody reads).
  std::vector<float> norms(static_cast<std::size_t>(num_pages * page_size * kv_heads));
  for (std::int64_t p = 0; p < num_pages; ++p)
    alibi::key_norms(k_pages.data() + p * page_size * kv_row,
                     alibi::AttentionShape{1, 1, page_size, heads, kv_heads, head_dim},
                     norms.data() + p * page_size * kv_heads);

  alibi::AttentionOptions options;
  options.num_threads = 2;
  auto fresh = [&] {
    return Served{std::vector<float>(static_cast<std::size_t>(total_q * q_row), -7.0f),
                  std::vector<float>(static_cast<std::size_t>(total_q * heads), -7.0f)};
  };
  auto same = [](const Served& a, const Served& b) {
    return first_difference(a.out, b.out) == a.out.size() && first_difference(a.lse, b.lse) == a.lse.size();
  };
  const std::string context = std::string(kv_name(KV{})) + " K/V, isa::" + isa;

  Served varlen = fresh(), varlen_expected = fresh();
  alibi::AttentionOptions o = options;
  o.lse = varlen.lse.data();
  alibi::dispatch::attention_varlen(q.data(), k.data(), v.data(), varlen.out.data(), batch, o);
  o.lse = varlen_expected.lse.data();
  varlen_reference_for<KV>(isa)(q.data(), k.data(), v.data(), varlen_expected.out.data(), batch, o);
  if (!same(varlen, varlen_expected))
    fail("dispatch::attention_varlen differs from alibi::attention_varlen built with its flags, " + context);

  Served paged = fresh(), paged_expected = fresh(), paged_plain = fresh();
  o = options;
  o.key_norms = norms.data();
  o.lse = paged.lse.data();
  alibi::dispatch::attention_paged(q.data(), cache, paged.out.data(), batch, o);
  o.lse = paged_expected.lse.data();
  paged_reference_for<KV>(isa)(q.data(), cache, paged_expected.out.data(), batch, o);
  if (!same(paged, paged_expected))
    fail("dispatch::attention_paged differs from alibi::attention_paged built with its flags, " + context);
  o = options;
  o.lse = paged_plain.lse.data();
  alibi::dispatch::attention_paged(q.data(), cache, paged_plain.out.data(), batch, o);
  if (!same(paged_plain, varlen)) fail("dispatch::attention_paged differs from dispatch::attention_varlen, " + context);

  Served dense = fresh();
  for (std::int64_t s = 0; s < num_seqs; ++s) {
    const std::int64_t q0 = q_offsets[static_cast<std::size_t>(s)], kv0 = kv_offsets[static_cast<std::size_t>(s)];
    const alibi::AttentionShape shape{
        1,       q_offsets[static_cast<std::size_t>(s) + 1] - q0, kv_lens[static_cast<std::size_t>(s)], heads, kv_heads,
        head_dim};
    o = options;
    o.lse = dense.lse.data() + q0 * heads;
    alibi::dispatch::attention(q.data() + q0 * q_row, k.data() + kv0 * kv_row, v.data() + kv0 * kv_row,
                               dense.out.data() + q0 * q_row, shape, o);
  }
  if (!same(dense, varlen))
    fail("dispatch::attention per sequence differs from dispatch::attention_varlen, " + context);
}

alibi_dispatch_test::MergeFn merge_reference_for(const std::string& isa) {
  return for_isa<alibi_dispatch_test::MergeFn>(isa, alibi_dispatch_test::merge_partials_scalar,
                                               alibi_dispatch_test::merge_partials_avx2,
                                               alibi_dispatch_test::merge_partials_avx512);
}

// Issue 12: the case's keys moved to kv_pos0 > 0, the queries given an explicit position in their middle,
// and lse requested: dispatch's out and lse are bitwise those of alibi::attention<isa::X> built with X's
// flags, for float and bfloat16 K/V.
template <class KV>
void check_partial_case(const std::string& isa, Case c, const std::vector<float>& q, const std::vector<KV>& k,
                        const std::vector<KV>& v, const char* kv) {
  const alibi::AttentionShape& s = c.shape;
  c.options.kv_pos0 = 1000003;
  c.options.q_pos0 = c.options.kv_pos0 + s.kv_len / 2;
  const auto rows = static_cast<std::size_t>(s.batch * s.q_len * s.num_heads);
  std::vector<float> out(q.size(), -7.0f), lse(rows, -7.0f), expected(q.size(), -9.0f), expected_lse(rows, -9.0f);
  alibi::AttentionOptions options = c.options;
  options.lse = lse.data();
  alibi::dispatch::attention(q.data(), k.data(), v.data(), out.data(), s, options);
  options.lse = expected_lse.data();
  reference_for<KV>(isa)(q.data(), k.data(), v.data(), expected.data(), s, options);
  if (first_difference(out, expected) != out.size() || first_difference(lse, expected_lse) != lse.size())
    fail(std::string("dispatch out or lse with kv_pos0 differs from alibi::attention<isa::") + isa +
         "> built with its flags, " + kv + " K/V, " + describe(c));
}

// dispatch::merge_partials against alibi::merge_partials<isa::X> built with X's flags, bit for bit, on rows
// whose lse are close, far apart, -inf on one or both sides; also in place (out = out_a, lse = lse_b).
void check_merge(const std::string& isa) {
  std::mt19937 rng(12);
  const int head_dim = 33;
  const std::int64_t rows = 64;
  const std::vector<float> out_a = random_values(static_cast<std::size_t>(rows * head_dim), rng);
  const std::vector<float> out_b = random_values(static_cast<std::size_t>(rows * head_dim), rng);
  std::vector<float> lse_a = random_values(static_cast<std::size_t>(rows), rng);
  std::vector<float> lse_b = random_values(static_cast<std::size_t>(rows), rng);
  for (std::int64_t r = 0; r < rows; ++r) {
    const auto n = static_cast<std::size_t>(r);
    if (r % 5 == 1) lse_a[n] = -HUGE_VALF;
    if (r % 7 == 2) lse_b[n] = -HUGE_VALF;
    if (r % 9 == 3) lse_b[n] = lse_a[n] + 40.0f;
    if (r % 11 == 4) lse_a[n] = 1e30f;
  }
  std::vector<float> out(out_a.size(), -7.0f), lse(lse_a.size(), -7.0f);
  std::vector<float> expected(out_a.size(), -9.0f), expected_lse(lse_a.size(), -9.0f);
  alibi::dispatch::merge_partials(out_a.data(), lse_a.data(), out_b.data(), lse_b.data(), out.data(), lse.data(), rows,
                                  head_dim);
  merge_reference_for(isa)(out_a.data(), lse_a.data(), out_b.data(), lse_b.data(), expected.data(), expected_lse.data(),
                           rows, head_dim);
  if (first_difference(out, expected) != out.size() || first_difference(lse, expected_lse) != lse.size())
    fail("dispatch::merge_partials differs from alibi::merge_partials<isa::" + isa + "> built with its flags");
  std::vector<float> in_place = out_a, in_place_lse = lse_b;
  alibi::dispatch::merge_partials(in_place.data(), lse_a.data(), out_b.data(), in_place_lse.data(), in_place.data(),
                                  in_place_lse.data(), rows, head_dim);
  if (first_difference(in_place, expected) != out.size() || first_difference(in_place_lse, expected_lse) != lse.size())
    fail("dispatch::merge_partials in place differs from a separate output");
}

// Issue 14: dispatch::attention_backward against alibi::attention_backward<isa::X> built with X's flags, bit for
// bit (every gradient), on a grouped-query shard with custom slopes and a window.
void check_backward(const std::string& isa) {
  const alibi_dispatch_test::BackwardFn reference = for_isa<alibi_dispatch_test::BackwardFn>(
      isa, alibi_dispatch_test::attention_backward_scalar, alibi_dispatch_test::attention_backward_avx2,
      alibi_dispatch_test::attention_backward_avx512);
  std::mt19937 rng(14);
  const alibi::AttentionShape s{2, 37, 70, 6, 2, 19};
  const auto q_size = static_cast<std::size_t>(s.batch * s.q_len * s.num_heads * s.head_dim);
  const auto kv_size = static_cast<std::size_t>(s.batch * s.kv_len * s.num_kv_heads * s.head_dim);
  const std::vector<float> q = random_values(q_size, rng), k = random_values(kv_size, rng),
                           v = random_values(kv_size, rng), dout = random_values(q_size, rng);
  const std::vector<float> slopes = {0.5f, 0.0f, -0.1f, 0.03f, 0.2f, 0.01f};
  alibi::AttentionOptions options;
  options.slopes = slopes.data();
  options.window = 40;
  options.kv_pos0 = 1000;
  options.q_pos0 = 1050;
  std::vector<float> out(q_size), lse(q_size / static_cast<std::size_t>(s.head_dim));
  options.lse = lse.data();
  alibi::dispatch::attention(q.data(), k.data(), v.data(), out.data(), s, options);
  std::vector<float> grads[2][4];
  for (auto& g : grads) {
    g[0].assign(q_size, -7.0f);
    g[1].assign(kv_size, -7.0f);
    g[2].assign(kv_size, -7.0f);
    g[3].assign(slopes.size(), -7.0f);
  }
  const alibi::AttentionGrads got{grads[0][0].data(), grads[0][1].data(), grads[0][2].data(), grads[0][3].data()};
  const alibi::AttentionGrads want{grads[1][0].data(), grads[1][1].data(), grads[1][2].data(), grads[1][3].data()};
  alibi::dispatch::attention_backward(q.data(), k.data(), v.data(), out.data(), lse.data(), dout.data(), got, s,
                                      options);
  reference(q.data(), k.data(), v.data(), out.data(), lse.data(), dout.data(), want, s, options);
  for (int n = 0; n < 4; ++n)
    if (first_difference(grads[0][n], grads[1][n]) != grads[0][n].size())
      fail("dispatch::attention_backward differs from alibi::attention_backward<isa::" + isa +
           "> built with its flags, gradient " + std::to_string(n));
}

void check_cases(const std::string& isa) {
  std::mt19937 rng(7);
  int index = 0;
  for (Case& c : make_cases()) {
    if (!c.slopes.empty()) c.options.slopes = c.slopes.data();
    const alibi::AttentionShape& s = c.shape;
    const auto q_count = static_cast<std::size_t>(s.batch * s.q_len * s.num_heads * s.head_dim);
    const auto kv_count = static_cast<std::size_t>(s.batch * s.kv_len * s.num_kv_heads * s.head_dim);
    const std::vector<float> q = random_values(q_count, rng);
    const std::vector<float> k = random_values(kv_count, rng);
    const std::vector<float> v = random_values(kv_count, rng);
    std::vector<float> out(q_count, -7.0f), expected(q_count, -9.0f);
    alibi::dispatch::attention(q.data(), k.data(), v.data(), out.data(), s, c.options);
    reference_for<float>(isa)(q.data(), k.data(), v.data(), expected.data(), s, c.options);
    const std::size_t first = first_difference(out, expected);
    if (first != q_count) {
      fail("dispatch output differs from alibi::attention<isa::" + isa + "> built with its flags, " + describe(c) +
           ", first at element " + std::to_string(first));
      continue;
    }
    const double worst = worst_error(out, q, k, v, c);
    if (!(worst <= 2e-5))
      fail("dispatch output is far from the float64 reference (" + std::to_string(worst) + "), " + describe(c));
    check_16bit_case<alibi::bfloat16>(isa, c, q, k, v);
    check_16bit_case<alibi::float16>(isa, c, q, k, v);
    if (index++ % 3 == 0) {
      check_partial_case(isa, c, q, k, v, "float");
      std::vector<alibi::bfloat16> k16, v16;
      for (float x : k) k16.push_back(stored_as(x, alibi::bfloat16{}));
      for (float x : v) v16.push_back(stored_as(x, alibi::bfloat16{}));
      check_partial_case(isa, c, q, k16, v16, "bfloat16");
    }
  }
  check_serving_layouts<float>(isa);
  check_serving_layouts<alibi::bfloat16>(isa);
  check_serving_layouts<alibi::float16>(isa);
  check_merge(isa);
  check_backward(isa);
}

void check_argument_errors() {
  const alibi::AttentionShape shape{1, 4, 4, 2, 3, 8};  // num_kv_heads does not divide num_heads
  std::vector<float> q(64, 1.0f), k(96, 1.0f), v(96, 1.0f), out(64, 5.0f);
  try {
    alibi::dispatch::attention(q.data(), k.data(), v.data(), out.data(), shape);
    fail("num_kv_heads = 3 with num_heads = 2 was accepted");
  } catch (const std::invalid_argument& e) {
    if (std::strstr(e.what(), "num_kv_heads") == nullptr)
      fail(std::string("the message does not name num_kv_heads: ") + e.what());
  }
  // 16-bit K/V: a null key tensor is named, whichever ISA runs.
  const std::vector<alibi::float16> v16(96, alibi::to_float16(1.0f));
  const alibi::float16* no_keys = nullptr;
  try {
    alibi::dispatch::attention(q.data(), no_keys, v16.data(), out.data(), alibi::AttentionShape{1, 4, 4, 2, 2, 8});
    fail("a null float16 k was accepted");
  } catch (const std::invalid_argument& e) {
    if (std::strstr(e.what(), " k ") == nullptr) fail(std::string("the message does not name k: ") + e.what());
  }
  for (float x : out)
    if (x != 5.0f) {
      fail("a rejected call wrote to out");
      break;
    }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s scalar|avx2|avx512|widest|error\n", argv[0]);
    return 2;
  }
  std::string expected = argv[1];
  if (expected == "widest") expected = cpu_has("avx512") ? "avx512" : (cpu_has("avx2") ? "avx2" : "scalar");
  if (expected != "error" && !cpu_has(expected)) expected = "error";
  const char* cap = std::getenv("ALIBI_ISA");
  std::printf("ALIBI_ISA=%s, expecting %s\n", cap != nullptr ? cap : "(unset)", expected.c_str());

  if (expected == "error") {
    for (int attempt = 0; attempt < 2; ++attempt) {  // a refused value stays refused
      try {
        const char* name = alibi::dispatch::isa_name();
        fail(std::string("ALIBI_ISA was accepted, isa_name() = ") + name);
      } catch (const std::invalid_argument& e) {
        if (std::strstr(e.what(), "ALIBI_ISA") == nullptr)
          fail(std::string("the message does not name ALIBI_ISA: ") + e.what());
      }
    }
    std::vector<float> q(8, 1.0f), k(8, 1.0f), v(8, 1.0f), out(8, 3.0f);
    try {
      alibi::dispatch::attention(q.data(), k.data(), v.data(), out.data(), alibi::AttentionShape{1, 1, 1, 1, 1, 8});
      fail("attention() ran although ALIBI_ISA is unusable");
    } catch (const std::invalid_argument& e) {
      if (std::strstr(e.what(), "ALIBI_ISA") == nullptr)
        fail(std::string("the message does not name ALIBI_ISA: ") + e.what());
    }
    const std::vector<alibi::bfloat16> kv16(8, alibi::to_bfloat16(1.0f));
    try {
      alibi::dispatch::attention(q.data(), kv16.data(), kv16.data(), out.data(),
                                 alibi::AttentionShape{1, 1, 1, 1, 1, 8});
      fail("attention() with bfloat16 K/V ran although ALIBI_ISA is unusable");
    } catch (const std::invalid_argument& e) {
      if (std::strstr(e.what(), "ALIBI_ISA") == nullptr)
        fail(std::string("the message does not name ALIBI_ISA: ") + e.what());
    }
    if (out[0] != 3.0f) fail("a refused call wrote to out");
  } else {
    const std::string chosen = alibi::dispatch::isa_name();
    if (chosen != expected) fail("isa_name() is " + chosen + ", expected " + expected);
    check_cases(chosen);
    check_argument_errors();
  }
  if (failures != 0) {
    std::fprintf(stderr, "%d failure(s)\n", failures);
    return 1;
  }
  std::printf("ok: dispatch runs %s\n", expected.c_str());
  return 0;
}
