// Peak and bandwidth measurement. Built without ISA flags: the SIMD loops live in the per-ISA TUs and
// are reached only through IsaVariant entries whose ISA the CPU supports.
#include "machine.hpp"

#include "aligned_vector.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <thread>

#include <time.h>

namespace alibi_bench {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// CPU time of the calling thread: time slices lost to other processes do not count, so a busy machine
// cannot make the measured peak (a ceiling) look lower than the core's.
double thread_cpu_seconds() {
#if defined(CLOCK_THREAD_CPUTIME_ID)
  timespec now{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
  return static_cast<double>(now.tv_sec) + 1e-9 * static_cast<double>(now.tv_nsec);
#else
  return std::chrono::duration<double>(Clock::now().time_since_epoch()).count();
#endif
}

bool cpu_supports(const std::string& isa) {
#if defined(__x86_64__) || defined(__i386__)
  if (isa == "avx2") return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (isa == "avx512")
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
#endif
  return isa == "scalar";
}

// Results flow here so the compiler cannot drop the measured loops.
volatile double g_sink = 0.0;

}  // namespace

const std::vector<IsaVariant>& isa_variants() {
  static const std::vector<IsaVariant> variants = [] {
    std::vector<IsaVariant> list;
    auto add = [&list](const char* name, void (*run)(const AttentionCall&), void (*serving)(const ServingCall&),
                       float (*fma)(std::int64_t, float), std::int64_t (*flops)(),
                       double (*sum)(const float*, std::size_t), void (*backward)(const BackwardCall&),
                       double (*read_with_fmas)(const float*, std::size_t, int), std::size_t (*probe_lanes)()) {
      list.push_back(
          IsaVariant{name, cpu_supports(name), run, serving, fma, flops, sum, backward, read_with_fmas, probe_lanes});
    };
#if ALIBI_BENCH_HAVE_scalar
    add("scalar", run_attention_scalar, run_serving_scalar, fma_chains_scalar, fma_flops_per_round_scalar,
        sum_floats_scalar, run_backward_scalar, read_with_fmas_scalar, probe_lanes_scalar);
#endif
#if ALIBI_BENCH_HAVE_avx2
    add("avx2", run_attention_avx2, run_serving_avx2, fma_chains_avx2, fma_flops_per_round_avx2, sum_floats_avx2,
        run_backward_avx2, read_with_fmas_avx2, probe_lanes_avx2);
#endif
#if ALIBI_BENCH_HAVE_avx512
    add("avx512", run_attention_avx512, run_serving_avx512, fma_chains_avx512, fma_flops_per_round_avx512,
        sum_floats_avx512, run_backward_avx512, read_with_fmas_avx512, probe_lanes_avx512);
#endif
    return list;
  }();
  return variants;
}

const IsaVariant* find_isa_variant(const std::string& name) {
  for (const IsaVariant& isa : isa_variants())
    if (isa.name == name) return &isa;
  return nullptr;
}

const IsaVariant* widest_cpu_isa() {
  const IsaVariant* widest = nullptr;
  for (const IsaVariant& isa : isa_variants())
    if (isa.cpu_supported) widest = &isa;
  return widest;
}

double fma_peak_gflops(const IsaVariant& isa) {
  static std::map<std::string, double> measured;
  auto found = measured.find(isa.name);
  if (found != measured.end()) return found->second;
  if (!isa.cpu_supported) return 0.0;

  // Size one run to ~40 ms from a short probe, then keep the fastest of five: the peak is a ceiling, so
  // interference from other processes (which thread CPU time mostly hides) can only lower a sample.
  std::int64_t rounds = 1 << 16;
  for (;;) {
    const double start = thread_cpu_seconds();
    g_sink = g_sink + isa.fma_chains(rounds, 1.0f);
    const double elapsed = thread_cpu_seconds() - start;
    if (elapsed > 0.005) {
      rounds =
          std::max<std::int64_t>(rounds, static_cast<std::int64_t>(static_cast<double>(rounds) * (0.04 / elapsed)));
      break;
    }
    rounds *= 4;
  }
  double best = 0.0;
  for (int run = 0; run < 5; ++run) {
    const double start = thread_cpu_seconds();
    g_sink = g_sink + isa.fma_chains(rounds, 1.0f + 0.001f * static_cast<float>(run));
    const double elapsed = thread_cpu_seconds() - start;
    best = std::max(best, static_cast<double>(rounds) * static_cast<double>(isa.fma_flops_per_round()) / elapsed);
  }
  measured[isa.name] = best * 1e-9;
  return best * 1e-9;
}

double read_bandwidth_gbs(int threads) {
  static std::map<int, double> measured;
  auto found = measured.find(threads);
  if (found != measured.end()) return found->second;

  const IsaVariant* reader = widest_cpu_isa();
  if (reader == nullptr) return 0.0;

  const std::size_t count = (std::size_t{512} << 20) / sizeof(float);  // 512 MiB: far beyond any cache
  AlignedVector<float> buffer(count, 1.0f);                            // written once: pages are resident
  const std::size_t workers_total = static_cast<std::size_t>(threads);
  const std::size_t part = count / workers_total;

  double best = 0.0;
  for (int pass = 0; pass < 4; ++pass) {
    std::atomic<bool> go{false};
    std::vector<std::thread> workers;
    std::vector<double> sums(workers_total, 0.0);
    for (std::size_t t = 1; t < workers_total; ++t)
      workers.emplace_back([&, t] {
        while (!go.load(std::memory_order_acquire)) std::this_thread::yield();
        sums[t] = reader->sum_floats(buffer.data() + part * t, part);
      });
    const auto start = Clock::now();
    go.store(true, std::memory_order_release);
    sums[0] = reader->sum_floats(buffer.data(), part);
    for (std::thread& worker : workers) worker.join();
    const double elapsed = seconds_since(start);
    for (double s : sums) g_sink = g_sink + s;
    best = std::max(best, static_cast<double>(part * workers_total * sizeof(float)) / elapsed);
  }
  measured[threads] = best * 1e-9;
  return best * 1e-9;
}

int hardware_threads() {
  return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

}  // namespace alibi_bench
