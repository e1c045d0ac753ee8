#pragma once
// Small helpers shared by the examples: argument parsing, timing, random tensors, a CPU check.
// Not part of the library.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <thread>
#include <vector>

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace example {

/// Parses argv[index] as an integer >= minimum, or returns `fallback` when the argument is absent.
/// Exits with a usage message on anything else.
inline std::int64_t count_argument(int argc, char** argv, int index, std::int64_t fallback, std::int64_t minimum,
                                   const char* usage) {
  if (index >= argc) return fallback;
  char* end = nullptr;
  const long long value = std::strtoll(argv[index], &end, 10);
  if (end == argv[index] || *end != '\0' || value < minimum) {
    std::fprintf(stderr, "bad argument '%s' (expected an integer >= %lld)\nusage: %s %s\n", argv[index],
                 static_cast<long long>(minimum), argv[0], usage);
    std::exit(2);
  }
  return value;
}

/// Seconds elapsed while running `work()`.
template <class Work>
double seconds(Work&& work) {
  const auto start = std::chrono::steady_clock::now();
  work();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

/// `count` floats uniform in [-1, 1), reproducible from `seed`.
inline std::vector<float> random_floats(std::size_t count, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  std::vector<float> values(count);
  for (float& x : values) x = uniform(rng);
  return values;
}

/// Threads alibi::attention uses with num_threads = 0 in this build (OpenMP's count when compiled with it).
inline int default_threads() {
#if defined(_OPENMP)
  return omp_get_max_threads();
#else
  const unsigned hardware = std::thread::hardware_concurrency();
  return hardware == 0 ? 1 : static_cast<int>(hardware);
#endif
}

/// False (with a message naming the fix) when the CPU lacks an ISA these examples were compiled for, so a
/// mismatched build stops with an explanation instead of an illegal-instruction crash in the kernel.
inline bool cpu_runs_this_build() {
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
  const char* missing = nullptr;
#if defined(__AVX512F__)
  if (!__builtin_cpu_supports("avx512f")) missing = "AVX-512F";
#endif
#if defined(__AVX2__)
  if (!__builtin_cpu_supports("avx2")) missing = "AVX2";
#endif
#if defined(__FMA__)
  if (!__builtin_cpu_supports("fma")) missing = "FMA";
#endif
  if (missing != nullptr) {
    std::fprintf(stderr,
                 "this example was compiled for %s, which this CPU lacks; reconfigure with "
                 "-DALIBI_EXAMPLES_ISA=scalar (or native) and rebuild\n",
                 missing);
    return false;
  }
#endif
  return true;
}

}  // namespace example
