#pragma once
// What this machine can do, measured in the benchmark process itself: the FMA peak of each ISA build
// and the streaming read bandwidth. The kernel benchmarks report fractions of these numbers.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "variants.hpp"

namespace alibi_bench {

/// One per-ISA build of bench/kernel_variants.cpp linked into this binary.
struct IsaVariant {
  std::string name;
  bool cpu_supported = false;  ///< false: never call the functions below (they may SIGILL)
  void (*run_attention)(const AttentionCall&) = nullptr;
  void (*run_serving)(const ServingCall&) = nullptr;
  float (*fma_chains)(std::int64_t rounds, float seed) = nullptr;
  std::int64_t (*fma_flops_per_round)() = nullptr;
  double (*sum_floats)(const float* data, std::size_t count) = nullptr;
  void (*run_backward)(const BackwardCall&) = nullptr;
  double (*read_with_fmas)(const float* data, std::size_t count, int fmas_per_vector) = nullptr;
  std::size_t (*probe_lanes)() = nullptr;  ///< 0: no read_with_fmas in this build
};

/// The ISA builds compiled into the binary, narrowest first, whether or not the CPU runs them.
const std::vector<IsaVariant>& isa_variants();
const IsaVariant* find_isa_variant(const std::string& name);

/// The widest ISA build the CPU runs (any width saturates DRAM, but narrow loads could limit a single
/// core), or null.
const IsaVariant* widest_cpu_isa();

/// Best of a few ~40 ms runs of the register-only FMA loop, in GFLOP/s, one thread. Measured once.
double fma_peak_gflops(const IsaVariant& isa);

/// Best of a few passes summing a 512 MiB buffer split across `threads` threads, in GB/s (1e9 B/s).
/// Measured once per thread count; the buffer is freed afterwards.
double read_bandwidth_gbs(int threads);

/// std::thread::hardware_concurrency(), at least 1.
int hardware_threads();

}  // namespace alibi_bench
