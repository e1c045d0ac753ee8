#pragma once
// The seam between the benchmark driver (built without ISA flags) and the per-ISA translation units.
//
// alibi's value types (AttentionShape, AttentionOptions) live directly in namespace alibi, the same in
// every TU whatever its ISA flags (Note [ABI namespace] in alibi/detail/config.hpp), so they cross this
// seam as they are.
#include <cstddef>
#include <cstdint>

#include "alibi/types.hpp"

namespace alibi_bench {

/// Element type of K and V in a benchmarked call.
enum class KvType { f32, bf16, f16 };

inline const char* kv_type_name(KvType type) {
  return type == KvType::bf16 ? "bf16" : (type == KvType::f16 ? "f16" : "f32");
}
inline int kv_type_bytes(KvType type) {
  return type == KvType::f32 ? 4 : 2;
}

/// One attention call: the arguments of alibi::attention. Layouts as there: q/out
/// [batch][q_len][num_heads][head_dim], k/v [batch][kv_len][num_kv_heads][head_dim]. The benchmarks use
/// the causal mask with the queries on the last q_len key positions (the option defaults); the Eigen
/// baseline and the naive reference read only the shape and options.slopes, which they need spelled out.
struct AttentionCall {
  const float* q = nullptr;
  const float* k = nullptr;
  const float* v = nullptr;
  /// kv_type bf16 / f16: the kernels read these instead of k and v (the Eigen baseline and the naive
  /// reference always read the fp32 k and v).
  KvType kv_type = KvType::f32;
  const alibi::bfloat16* k_bf16 = nullptr;
  const alibi::bfloat16* v_bf16 = nullptr;
  const alibi::float16* k_f16 = nullptr;
  const alibi::float16* v_f16 = nullptr;
  float* out = nullptr;
  alibi::AttentionShape shape;
  alibi::AttentionOptions options;
};

/// One alibi::attention_varlen call (block_table null) or alibi::attention_paged call (block_table set).
/// k and v point to elements of kv_type (float, alibi::bfloat16 or alibi::float16): the packed keys
/// [total_kv][num_kv_heads][head_dim] of all sequences, or the page pools [num_pages][page_size][num_kv_heads]
/// [head_dim]. q and out are [total_q][num_heads][head_dim], total_q = batch.q_offsets[batch.num_seqs].
struct ServingCall {
  const float* q = nullptr;
  KvType kv_type = KvType::f32;
  const void* k = nullptr;
  const void* v = nullptr;
  const std::int32_t* block_table = nullptr;  ///< [num_seqs][max_pages_per_seq]; null: attention_varlen
  std::int64_t num_pages = 0;
  int page_size = 0;
  std::int64_t max_pages_per_seq = 0;
  float* out = nullptr;
  alibi::SeqBatch batch;
  alibi::AttentionOptions options;
};

/// One alibi::attention_backward call (fp32 K/V): the forward's out and lse (AttentionOptions::lse of the
/// forward call with the same shape and options), dout, and the gradients asked for.
struct BackwardCall {
  const float* q = nullptr;
  const float* k = nullptr;
  const float* v = nullptr;
  const float* out = nullptr;
  const float* lse = nullptr;
  const float* dout = nullptr;
  alibi::AttentionGrads grads;
  alibi::AttentionShape shape;
  alibi::AttentionOptions options;
};

// Functions each per-ISA TU (bench/kernel_variants.cpp built with ALIBI_BENCH_ISA=<isa>) defines.
// Only call the ones whose ISA the CPU supports.
#define ALIBI_BENCH_DECLARE_VARIANT(isa)                                                              \
  /* alibi::attention<alibi::isa::native> compiled with this ISA's flags. */                          \
  void run_attention_##isa(const AttentionCall& call);                                                \
  /* alibi::attention_varlen / attention_paged<alibi::isa::native> compiled with this ISA's flags. */ \
  void run_serving_##isa(const ServingCall& call);                                                    \
  /* alibi::attention_backward<alibi::isa::native> compiled with this ISA's flags. */                 \
  void run_backward_##isa(const BackwardCall& call);                                                  \
  /* Register-only multiply-add chains; returns a value that depends on every chain (keep it). */     \
  float fma_chains_##isa(std::int64_t rounds, float seed);                                            \
  /* Floating-point operations one round of fma_chains_<isa> performs. */                             \
  std::int64_t fma_flops_per_round_##isa();                                                           \
  /* Streaming read of count floats with this ISA's widest loads. */                                  \
  double sum_floats_##isa(const float* data, std::size_t count);                                      \
  /* Streaming read, each loaded vector feeding fmas_per_vector (2, 4, 8, 16) dependent FMAs. */      \
  double read_with_fmas_##isa(const float* data, std::size_t count, int fmas_per_vector);             \
  /* Floats per vector of read_with_fmas_<isa> (0: this build has no FMA probe). */                   \
  std::size_t probe_lanes_##isa();

ALIBI_BENCH_DECLARE_VARIANT(scalar)
ALIBI_BENCH_DECLARE_VARIANT(avx2)
ALIBI_BENCH_DECLARE_VARIANT(avx512)

#undef ALIBI_BENCH_DECLARE_VARIANT

/// Unfused Eigen baseline (bench/eigen_baseline.cpp); call.slopes must be set. Single-threaded.
void run_eigen_attention(const AttentionCall& call);

}  // namespace alibi_bench
