#pragma once
// The seam between the benchmark driver (built without ISA flags) and the per-ISA translation units.
//
// Only plain types cross this seam: alibi's own types live in an ABI namespace that differs per ISA
// (alibi::v0_avx2::AttentionShape is not alibi::v0_scalar::AttentionShape), so each ISA TU converts an
// AttentionCall into its own alibi types.
#include <cstddef>
#include <cstdint>

namespace alibi_bench {

/// One attention call, layouts as in alibi::attention: q/out [batch][q_len][num_heads][head_dim],
/// k/v [batch][kv_len][num_kv_heads][head_dim]. Causal mask; queries on the last q_len key positions.
struct AttentionCall {
  const float* q = nullptr;
  const float* k = nullptr;
  const float* v = nullptr;
  float* out = nullptr;
  int batch = 1;
  std::int64_t q_len = 0;
  std::int64_t kv_len = 0;
  int num_heads = 0;
  int num_kv_heads = 0;
  int head_dim = 0;
  /// num_heads slopes; nullptr lets the kernel use alibi::slopes(num_heads). The Eigen baseline and the
  /// naive reference need them spelled out.
  const float* slopes = nullptr;
  int num_threads = 1;
  /// Negative: keep the library's default tolerance, so "default" really means the shipped default.
  float skip_tolerance = -1.0f;
  /// Optional caller-kept key norm bounds ([batch][kv_len][num_kv_heads]), AttentionOptions::key_norms.
  const float* key_norms = nullptr;
};

// Functions each per-ISA TU (bench/kernel_variants.cpp built with ALIBI_BENCH_ISA=<isa>) defines.
// Only call the ones whose ISA the CPU supports.
#define ALIBI_BENCH_DECLARE_VARIANT(isa)                                                                \
  /* alibi::attention<alibi::isa::native> compiled with this ISA's flags. */                           \
  void run_attention_##isa(const AttentionCall& call);                                                  \
  /* Register-only multiply-add chains; returns a value that depends on every chain (keep it). */       \
  float fma_chains_##isa(std::int64_t rounds, float seed);                                              \
  /* Floating-point operations one round of fma_chains_<isa> performs. */                              \
  std::int64_t fma_flops_per_round_##isa();                                                             \
  /* Streaming read of count floats with this ISA's widest loads. */                                    \
  double sum_floats_##isa(const float* data, std::size_t count);

ALIBI_BENCH_DECLARE_VARIANT(scalar)
ALIBI_BENCH_DECLARE_VARIANT(avx2)
ALIBI_BENCH_DECLARE_VARIANT(avx512)

#undef ALIBI_BENCH_DECLARE_VARIANT

/// Unfused Eigen baseline (bench/eigen_baseline.cpp); call.slopes must be set. Single-threaded.
void run_eigen_attention(const AttentionCall& call);

}  // namespace alibi_bench
