// "Train short, test long" made visible: one causal ALiBi head at growing context lengths, fused alibi
// kernel vs the dense path (materialise the n x n logits with Eigen, bias, softmax, multiply by V).
// The fused kernel's extra memory stays flat; the dense path's grows as n^2 and is skipped, with a
// message, once its n x n matrix would not fit.
//
//   alibi_extrapolation [max_tokens=65536] [dense_limit_mib=4096]
//
// Peak extra memory is the growth of the process's peak resident set (VmHWM, reset through
// /proc/self/clear_refs) while one call runs, with inputs and outputs allocated beforehand. Linux only;
// elsewhere it prints n/a.
#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#if defined(__linux__)
#include <unistd.h>
#endif
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "alibi/alibi.hpp"
#include "example_support.hpp"

namespace {

using RowMatrixXf = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
constexpr int kHeadDim = 128;
constexpr double kMiB = 1024.0 * 1024.0;

// A field of /proc/self/status in KiB ("VmRSS", "VmHWM"), or -1 when unavailable.
long status_kib(const char* field) {
  std::ifstream status("/proc/self/status");
  std::string line;
  const std::string prefix = std::string(field) + ":";
  while (std::getline(status, line))
    if (line.compare(0, prefix.size(), prefix) == 0) return std::stol(line.substr(prefix.size()));
  return -1;
}

struct Measurement {
  double seconds = 0.0;
  double peak_extra_mib = -1.0;  // < 0: not measurable here
};

template <class Work>
Measurement measure(Work&& work) {
#if defined(__GLIBC__)
  malloc_trim(0);  // hand freed memory back so the baseline below is the live set
#endif
  std::ofstream("/proc/self/clear_refs") << "5";  // resets VmHWM to the current VmRSS (Linux >= 4.0)
  const long before_kib = status_kib("VmRSS");
  Measurement m;
  m.seconds = example::seconds(work);
  const long peak_kib = status_kib("VmHWM");
  if (before_kib >= 0 && peak_kib >= before_kib) m.peak_extra_mib = static_cast<double>(peak_kib - before_kib) / 1024.0;
  return m;
}

// Bytes the dense path may use for its n x n matrix: the user's limit, and at most half the free RAM.
double dense_budget_mib(double limit_mib) {
#if defined(__linux__)
  const long pages = sysconf(_SC_AVPHYS_PAGES), page_size = sysconf(_SC_PAGESIZE);
  if (pages > 0 && page_size > 0)
    return std::min(limit_mib, 0.5 * static_cast<double>(pages) * static_cast<double>(page_size) / kMiB);
#endif
  return limit_mib;
}

// The unfused way: logits = scale Q K^T (n x n), + causal ALiBi bias, row softmax, times V.
void dense_attention(const float* q, const float* k, const float* v, float* out, Eigen::Index n, float slope) {
  const Eigen::Map<const RowMatrixXf> Q(q, n, kHeadDim), K(k, n, kHeadDim), V(v, n, kHeadDim);
  Eigen::Map<RowMatrixXf> O(out, n, kHeadDim);
  RowMatrixXf scores(n, n);
  scores.noalias() = (1.0f / std::sqrt(static_cast<float>(kHeadDim))) * Q * K.transpose();
  for (Eigen::Index i = 0; i < n; ++i) {
    float* row = scores.row(i).data();
    float row_max = -std::numeric_limits<float>::infinity();
    for (Eigen::Index j = 0; j <= i; ++j) {
      row[j] -= slope * static_cast<float>(i - j);
      row_max = std::max(row_max, row[j]);
    }
    float sum = 0.0f;
    for (Eigen::Index j = 0; j <= i; ++j) sum += (row[j] = std::exp(row[j] - row_max));
    for (Eigen::Index j = 0; j <= i; ++j) row[j] /= sum;
    std::fill(row + i + 1, row + n, 0.0f);  // the causal mask
  }
  O.noalias() = scores * V;
}

std::string format_memory(double mib) {
  if (mib < 0.0) return "n/a";
  char text[32];
  std::snprintf(text, sizeof text, "%.1f MiB", mib);
  return text;
}

}  // namespace

int main(int argc, char** argv) {
  const char* usage = "[max_tokens=65536] [dense_limit_mib=4096]";
  const std::int64_t max_tokens = example::count_argument(argc, argv, 1, 65536, 1, usage);
  const double dense_limit_mib = static_cast<double>(example::count_argument(argc, argv, 2, 4096, 1, usage));
  if (!example::cpu_runs_this_build()) return 2;
#if defined(__GLIBC__)
  mallopt(M_MMAP_THRESHOLD, 1 << 20);  // large blocks come from mmap and go back to the OS when freed
#endif

  std::vector<std::int64_t> lengths;
  for (const std::int64_t n : {1024, 4096, 16384, 65536})
    if (n <= max_tokens) lengths.push_back(n);
  if (lengths.empty() || lengths.back() != max_tokens) lengths.push_back(max_tokens);
  const std::int64_t longest = lengths.back();

  // One head of an 8-head model; the kernel never looks at absolute positions, only at distances.
  const float slope = alibi::slopes(8)[3];
  const auto count = static_cast<std::size_t>(longest * kHeadDim);
  const std::vector<float> q = example::random_floats(count, 1), k = example::random_floats(count, 2),
                           v = example::random_floats(count, 3);
  std::vector<float> fused_out(count), dense_out(count);
  const double budget_mib = dense_budget_mib(dense_limit_mib);

  std::printf("one causal ALiBi head (slope %g), head_dim %d, ISA %s, %d threads\n", static_cast<double>(slope),
              kHeadDim, alibi::isa::native::name, example::default_threads());
  std::printf("%8s | %11s | %16s | %11s | %16s | %s\n", "tokens", "alibi time", "alibi peak extra", "dense time",
              "dense peak extra", "max |alibi - dense|");
  bool ok = true;
  for (const std::int64_t n : lengths) {
    alibi::AttentionShape shape;
    shape.q_len = n;
    shape.kv_len = n;
    shape.num_heads = 1;
    shape.num_kv_heads = 1;
    shape.head_dim = kHeadDim;
    alibi::AttentionOptions options;
    options.slopes = &slope;
    const Measurement fused =
        measure([&] { alibi::attention(q.data(), k.data(), v.data(), fused_out.data(), shape, options); });
    std::printf("%8lld | %8.1f ms | %16s | ", static_cast<long long>(n), fused.seconds * 1e3,
                format_memory(fused.peak_extra_mib).c_str());

    const double dense_matrix_mib = static_cast<double>(n) * static_cast<double>(n) * sizeof(float) / kMiB;
    if (dense_matrix_mib > budget_mib) {
      std::printf("skipped: its %lld x %lld float matrix needs %.0f MiB, over the %.0f MiB budget\n",
                  static_cast<long long>(n), static_cast<long long>(n), dense_matrix_mib, budget_mib);
      continue;
    }
    const Measurement dense =
        measure([&] { dense_attention(q.data(), k.data(), v.data(), dense_out.data(), n, slope); });
    double max_difference = 0.0;
    for (std::size_t i = 0; i < static_cast<std::size_t>(n * kHeadDim); ++i)
      max_difference = std::max(max_difference, static_cast<double>(std::abs(fused_out[i] - dense_out[i])));
    if (!(max_difference < 1e-4)) ok = false;  // both fp32; the dense path sums in a different order
    std::printf("%8.1f ms | %16s | %.2g\n", dense.seconds * 1e3, format_memory(dense.peak_extra_mib).c_str(),
                max_difference);
  }
  std::printf("%s\n", ok ? "OK: fused and dense agree wherever the dense path ran" : "MISMATCH");
  return ok ? 0 : 1;
}
