// Per-ISA benchmark entry points. CMake compiles this file once per ISA with that ISA's flags and
// -DALIBI_BENCH_ISA=<isa>; every exported function carries the ISA in its name, and alibi's inline ABI
// namespace keeps the library's inline code of the three builds apart.
//
// Note [no SIMD before the CPU check]: nothing here runs at static-initialisation time (no namespace-scope
// objects with constructors, no iostream), so loading the binary on a CPU without AVX-512 never executes
// an AVX-512 instruction; the driver calls these functions only after __builtin_cpu_supports.
#include <cstddef>
#include <cstdint>
#include <type_traits>

#if defined(__SSE2__)
#include <immintrin.h>
#endif

#include "alibi/attention.hpp"
#include "alibi/backward.hpp"
#include "alibi/isa/ops.hpp"
#include "alibi/serving.hpp"
#include "variants.hpp"

#ifndef ALIBI_BENCH_ISA
#error "compile with -DALIBI_BENCH_ISA=scalar|avx2|avx512"
#endif

#define ALIBI_BENCH_CAT_(a, b) a##b
#define ALIBI_BENCH_CAT(a, b) ALIBI_BENCH_CAT_(a, b)
#define ALIBI_BENCH_EXPORT(base) ALIBI_BENCH_CAT(base, ALIBI_BENCH_ISA)

static_assert(std::is_same<alibi::isa::native, alibi::isa::ALIBI_BENCH_ISA>::value,
              "the compile flags of this TU do not make ALIBI_BENCH_ISA the native ISA; check ALIBI_FLAGS_<isa>");

namespace alibi_bench {

void ALIBI_BENCH_EXPORT(run_attention_)(const AttentionCall& call) {
  switch (call.kv_type) {
    case KvType::bf16:
      alibi::attention<alibi::isa::native>(call.q, call.k_bf16, call.v_bf16, call.out, call.shape, call.options);
      return;
    case KvType::f16:
      alibi::attention<alibi::isa::native>(call.q, call.k_f16, call.v_f16, call.out, call.shape, call.options);
      return;
    case KvType::f32:
      break;
  }
  alibi::attention<alibi::isa::native>(call.q, call.k, call.v, call.out, call.shape, call.options);
}

namespace {

// Internal linkage: each ISA's TU has its own copy (an external template would be one weak symbol).
template <class KV>
void run_serving_as(const ServingCall& call) {
  const KV* k = static_cast<const KV*>(call.k);
  const KV* v = static_cast<const KV*>(call.v);
  if (call.block_table == nullptr) {
    alibi::attention_varlen<alibi::isa::native>(call.q, k, v, call.out, call.batch, call.options);
    return;
  }
  alibi::PagedKV<KV> cache;
  cache.k_pages = k;
  cache.v_pages = v;
  cache.num_pages = call.num_pages;
  cache.page_size = call.page_size;
  cache.block_table = call.block_table;
  cache.max_pages_per_seq = call.max_pages_per_seq;
  alibi::attention_paged<alibi::isa::native>(call.q, cache, call.out, call.batch, call.options);
}

}  // namespace

void ALIBI_BENCH_EXPORT(run_serving_)(const ServingCall& call) {
  switch (call.kv_type) {
    case KvType::bf16:
      run_serving_as<alibi::bfloat16>(call);
      return;
    case KvType::f16:
      run_serving_as<alibi::float16>(call);
      return;
    case KvType::f32:
      break;
  }
  run_serving_as<float>(call);
}

void ALIBI_BENCH_EXPORT(run_backward_)(const BackwardCall& call) {
  alibi::attention_backward<alibi::isa::native>(call.q, call.k, call.v, call.out, call.lse, call.dout, call.grads,
                                                call.shape, call.options);
}

// ---- FMA peak: independent accumulator chains that never touch memory ---------------------------------
// Enough chains to cover latency x issue width (Zen3: 4-cycle FMA on 2 pipes needs 8; 12 leaves slack for
// other cores). The multiplier and addend keep every chain near 1, far from overflow and denormals.

#if defined(__AVX512F__)
constexpr int kChains = 12;
constexpr std::int64_t kFlopsPerRound = kChains * 16 * 2;

float ALIBI_BENCH_EXPORT(fma_chains_)(std::int64_t rounds, float seed) {
  const __m512 multiplier = _mm512_set1_ps(0.999999f);
  const __m512 addend = _mm512_set1_ps(1e-6f);
  __m512 acc[kChains];
#pragma GCC unroll 12
  for (int c = 0; c < kChains; ++c) acc[c] = _mm512_set1_ps(seed + 0.01f * static_cast<float>(c));
  for (std::int64_t r = 0; r < rounds; ++r) {
#pragma GCC unroll 12
    for (int c = 0; c < kChains; ++c) acc[c] = _mm512_fmadd_ps(acc[c], multiplier, addend);
  }
  __m512 total = acc[0];
#pragma GCC unroll 12
  for (int c = 1; c < kChains; ++c) total = _mm512_add_ps(total, acc[c]);
  return _mm512_reduce_add_ps(total);
}

#elif defined(__AVX2__) && defined(__FMA__)
constexpr int kChains = 12;
constexpr std::int64_t kFlopsPerRound = kChains * 8 * 2;

float ALIBI_BENCH_EXPORT(fma_chains_)(std::int64_t rounds, float seed) {
  const __m256 multiplier = _mm256_set1_ps(0.999999f);
  const __m256 addend = _mm256_set1_ps(1e-6f);
  __m256 acc[kChains];
#pragma GCC unroll 12
  for (int c = 0; c < kChains; ++c) acc[c] = _mm256_set1_ps(seed + 0.01f * static_cast<float>(c));
  for (std::int64_t r = 0; r < rounds; ++r) {
#pragma GCC unroll 12
    for (int c = 0; c < kChains; ++c) acc[c] = _mm256_fmadd_ps(acc[c], multiplier, addend);
  }
  __m256 total = acc[0];
#pragma GCC unroll 12
  for (int c = 1; c < kChains; ++c) total = _mm256_add_ps(total, acc[c]);
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, total);
  float sum = 0.0f;
  for (float lane : lanes) sum += lane;
  return sum;
}

#elif defined(__SSE2__)
// The scalar build has no FMA instruction (fmaf would be a libm call), and the compiler is free to
// vectorise the scalar kernel with SSE2, so its ceiling is packed SSE2 multiply then add: 2 flops per lane.
// 14 chains of mul+add (6-cycle latency) keep Zen3's two multiply and two add pipes busy in 16 registers.
constexpr int kChains = 14;
constexpr std::int64_t kFlopsPerRound = kChains * 4 * 2;

float ALIBI_BENCH_EXPORT(fma_chains_)(std::int64_t rounds, float seed) {
  const __m128 multiplier = _mm_set1_ps(0.999999f);
  const __m128 addend = _mm_set1_ps(1e-6f);
  __m128 acc[kChains];
#pragma GCC unroll 14
  for (int c = 0; c < kChains; ++c) acc[c] = _mm_set1_ps(seed + 0.01f * static_cast<float>(c));
  for (std::int64_t r = 0; r < rounds; ++r) {
#pragma GCC unroll 14
    for (int c = 0; c < kChains; ++c) acc[c] = _mm_add_ps(_mm_mul_ps(acc[c], multiplier), addend);
  }
  __m128 total = acc[0];
#pragma GCC unroll 14
  for (int c = 1; c < kChains; ++c) total = _mm_add_ps(total, acc[c]);
  alignas(16) float lanes[4];
  _mm_store_ps(lanes, total);
  return lanes[0] + lanes[1] + lanes[2] + lanes[3];
}

#else
constexpr int kChains = 12;
constexpr std::int64_t kFlopsPerRound = kChains * 2;

float ALIBI_BENCH_EXPORT(fma_chains_)(std::int64_t rounds, float seed) {
  float acc[kChains];
  for (int c = 0; c < kChains; ++c) acc[c] = seed + 0.01f * static_cast<float>(c);
  for (std::int64_t r = 0; r < rounds; ++r)
    for (int c = 0; c < kChains; ++c) acc[c] = acc[c] * 0.999999f + 1e-6f;
  float sum = 0.0f;
  for (float a : acc) sum += a;
  return sum;
}
#endif

std::int64_t ALIBI_BENCH_EXPORT(fma_flops_per_round_)() {
  return kFlopsPerRound;
}

// ---- Streaming read: four independent sums so the adds never limit the load rate -------------------

double ALIBI_BENCH_EXPORT(sum_floats_)(const float* data, std::size_t count) {
  std::size_t i = 0;
  double sum = 0.0;
#if defined(__AVX512F__)
  __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
  for (; i + 64 <= count; i += 64) {
    s0 = _mm512_add_ps(s0, _mm512_loadu_ps(data + i));
    s1 = _mm512_add_ps(s1, _mm512_loadu_ps(data + i + 16));
    s2 = _mm512_add_ps(s2, _mm512_loadu_ps(data + i + 32));
    s3 = _mm512_add_ps(s3, _mm512_loadu_ps(data + i + 48));
  }
  sum = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
#elif defined(__AVX2__)
  __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
  for (; i + 32 <= count; i += 32) {
    s0 = _mm256_add_ps(s0, _mm256_loadu_ps(data + i));
    s1 = _mm256_add_ps(s1, _mm256_loadu_ps(data + i + 8));
    s2 = _mm256_add_ps(s2, _mm256_loadu_ps(data + i + 16));
    s3 = _mm256_add_ps(s3, _mm256_loadu_ps(data + i + 24));
  }
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, _mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
  for (float lane : lanes) sum += lane;
#elif defined(__SSE2__)
  __m128 s0 = _mm_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
  for (; i + 16 <= count; i += 16) {
    s0 = _mm_add_ps(s0, _mm_loadu_ps(data + i));
    s1 = _mm_add_ps(s1, _mm_loadu_ps(data + i + 4));
    s2 = _mm_add_ps(s2, _mm_loadu_ps(data + i + 8));
    s3 = _mm_add_ps(s3, _mm_loadu_ps(data + i + 12));
  }
  alignas(16) float lanes[4];
  _mm_store_ps(lanes, _mm_add_ps(_mm_add_ps(s0, s1), _mm_add_ps(s2, s3)));
  for (float lane : lanes) sum += lane;
#endif
  for (; i < count; ++i) sum += data[i];
  return sum;
}

// ---- Streaming read with dependent multiply-adds (Note [overlap probe] in bench/main.cpp) -------------
// Every loaded vector feeds kFmas multiply-adds spread over 8 chains, so the arithmetic waits on the loads
// as a kernel's does. The probe's compute rate is whatever these chains reach (on the Zen 5 guest about half
// the FMA peak; the family reports it as compute_ns_per_KiB), not the peak. Vectors of the library's widest
// ISA in this build (vectors of fewer than 8 floats: no probe).

namespace {
using ProbeOps = alibi::simd::Ops<alibi::isa::native>;
constexpr bool kHasProbe = ProbeOps::width >= 8;

template <int kFmas>
double read_with_fmas(const float* data, std::size_t count) {
  constexpr std::size_t lanes = ProbeOps::width;
  const ProbeOps::vec scale = ProbeOps::set1(1e-3f);
  ProbeOps::vec acc[8];
#pragma GCC unroll 8
  for (int c = 0; c < 8; ++c) acc[c] = ProbeOps::zero();
  for (std::size_t i = 0; i + 8 * lanes <= count; i += 8 * lanes) {
#pragma GCC unroll 8
    for (int v = 0; v < 8; ++v) {
      const ProbeOps::vec x = ProbeOps::load(data + i + static_cast<std::size_t>(v) * lanes);
#pragma GCC unroll 16
      for (int f = 0; f < kFmas; ++f) acc[(v * kFmas + f) & 7] = ProbeOps::fma(x, scale, acc[(v * kFmas + f) & 7]);
    }
  }
  double sum = 0.0;
  for (const ProbeOps::vec& a : acc) sum += static_cast<double>(ProbeOps::reduce_add(a));
  return sum;
}
}  // namespace

double ALIBI_BENCH_EXPORT(read_with_fmas_)(const float* data, std::size_t count, int fmas_per_vector) {
  if (kHasProbe) {
    switch (fmas_per_vector) {
      case 2:
        return read_with_fmas<2>(data, count);
      case 4:
        return read_with_fmas<4>(data, count);
      case 8:
        return read_with_fmas<8>(data, count);
      case 16:
        return read_with_fmas<16>(data, count);
      default:
        break;
    }
  }
  return 0.0;
}

std::size_t ALIBI_BENCH_EXPORT(probe_lanes_)() {
  return kHasProbe ? static_cast<std::size_t>(ProbeOps::width) : 0;
}

}  // namespace alibi_bench
