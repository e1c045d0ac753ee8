// The README's main demo: one realistic ALiBi attention call - 2048 tokens, 32 query heads sharing 8 kv
// heads (grouped-query attention), head_dim 128, causal - timed, and checked against a plain float64 loop.
//
//   alibi_demo [tokens=2048] [repeats=3]
//
// Exit code 0 when every checked row matches, 1 on a mismatch, 2 on bad arguments.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <random>
#include <vector>

#include "alibi/alibi.hpp"
#include "example_support.hpp"

namespace {

constexpr int kNumHeads = 32;
constexpr int kNumKvHeads = 8;
constexpr int kHeadDim = 128;

// One output row the obvious way, in float64: logits, causal ALiBi bias, softmax, weighted sum of v.
std::vector<double> naive_row(const std::vector<float>& q, const std::vector<float>& k, const std::vector<float>& v,
                              std::int64_t row, int head, double slope) {
  const int kv_head = head / (kNumHeads / kNumKvHeads);
  const double scale = 1.0 / std::sqrt(static_cast<double>(kHeadDim));
  const float* q_row = &q[static_cast<std::size_t>((row * kNumHeads + head) * kHeadDim)];
  const std::int64_t visible = row + 1;  // q_len == kv_len: query row i sits at key position i
  std::vector<double> logits(static_cast<std::size_t>(visible));
  double max_logit = -std::numeric_limits<double>::infinity();
  for (std::int64_t j = 0; j < visible; ++j) {
    const float* k_row = &k[static_cast<std::size_t>((j * kNumKvHeads + kv_head) * kHeadDim)];
    double dot = 0.0;
    for (int d = 0; d < kHeadDim; ++d) dot += static_cast<double>(q_row[d]) * k_row[d];
    const double logit = scale * dot - slope * static_cast<double>(row - j);
    logits[static_cast<std::size_t>(j)] = logit;
    max_logit = std::max(max_logit, logit);
  }
  std::vector<double> result(kHeadDim, 0.0);
  double sum = 0.0;
  for (std::int64_t j = 0; j < visible; ++j) {
    const double weight = std::exp(logits[static_cast<std::size_t>(j)] - max_logit);
    sum += weight;
    const float* v_row = &v[static_cast<std::size_t>((j * kNumKvHeads + kv_head) * kHeadDim)];
    for (int d = 0; d < kHeadDim; ++d) result[static_cast<std::size_t>(d)] += weight * v_row[d];
  }
  for (double& x : result) x /= sum;
  return result;
}

}  // namespace

int main(int argc, char** argv) {
  const char* usage = "[tokens=2048] [repeats=3]";
  const std::int64_t tokens = example::count_argument(argc, argv, 1, 2048, 1, usage);
  const int repeats = static_cast<int>(example::count_argument(argc, argv, 2, 3, 1, usage));
  if (!example::cpu_runs_this_build()) return 2;

  alibi::AttentionShape shape;
  shape.batch = 1;
  shape.q_len = tokens;
  shape.kv_len = tokens;
  shape.num_heads = kNumHeads;
  shape.num_kv_heads = kNumKvHeads;
  shape.head_dim = kHeadDim;
  const auto q_count = static_cast<std::size_t>(tokens * kNumHeads * kHeadDim);
  const auto kv_count = static_cast<std::size_t>(tokens * kNumKvHeads * kHeadDim);
  const std::vector<float> q = example::random_floats(q_count, 1);
  const std::vector<float> k = example::random_floats(kv_count, 2);
  const std::vector<float> v = example::random_floats(kv_count, 3);
  std::vector<float> out(q_count);

  std::printf("alibi demo: causal ALiBi attention, %lld tokens, %d query heads sharing %d kv heads, head_dim %d\n",
              static_cast<long long>(tokens), kNumHeads, kNumKvHeads, kHeadDim);
  std::printf("ISA in use: %s, threads: %d\n", alibi::isa::native::name, example::default_threads());

  alibi::attention(q.data(), k.data(), v.data(), out.data(), shape);  // warm-up: page in buffers, start threads
  double best = std::numeric_limits<double>::infinity();
  for (int r = 0; r < repeats; ++r)
    best = std::min(best, example::seconds([&] { alibi::attention(q.data(), k.data(), v.data(), out.data(), shape); }));

  // Causal FLOPs: each query row does a q.k and a p.v multiply-add (4 * head_dim) per visible key; row i
  // sees i + 1 keys.
  const double visible_pairs = static_cast<double>(tokens) * static_cast<double>(tokens + 1) / 2.0;
  const double flops = 4.0 * kHeadDim * kNumHeads * visible_pairs;
  std::printf("time: %.2f ms (best of %d), %.1f GFLOP -> %.1f GFLOP/s\n", best * 1e3, repeats, flops * 1e-9,
              flops * 1e-9 / best);

  // Check a sample of rows of every head (first, second, middle, last, and random ones) against float64.
  const std::vector<float> slopes = alibi::slopes(kNumHeads);
  std::mt19937_64 rng(4);
  std::uniform_int_distribution<std::int64_t> any_row(0, tokens - 1);
  double max_error = 0.0, max_reference = 0.0;
  std::int64_t rows_checked = 0;
  for (int head = 0; head < kNumHeads; ++head) {
    std::vector<std::int64_t> rows = {0, std::min<std::int64_t>(1, tokens - 1), tokens / 2, tokens - 1};
    for (int extra = 0; extra < 4; ++extra) rows.push_back(any_row(rng));
    for (const std::int64_t row : rows) {
      const std::vector<double> expected = naive_row(q, k, v, row, head, slopes[static_cast<std::size_t>(head)]);
      const float* actual = &out[static_cast<std::size_t>((row * kNumHeads + head) * kHeadDim)];
      for (int d = 0; d < kHeadDim; ++d) {
        const double error = std::abs(static_cast<double>(actual[d]) - expected[static_cast<std::size_t>(d)]);
        max_error = std::isnan(error) ? std::numeric_limits<double>::infinity() : std::max(max_error, error);
        max_reference = std::max(max_reference, std::abs(expected[static_cast<std::size_t>(d)]));
      }
      ++rows_checked;
    }
  }
  const double tolerance = 2e-5 * max_reference;
  const bool ok = max_error <= tolerance;
  std::printf("check vs naive float64 loop on %lld rows: max abs error %.3g (tolerance %.3g) %s\n",
              static_cast<long long>(rows_checked), max_error, tolerance, ok ? "OK" : "MISMATCH");
  return ok ? 0 : 1;
}
