// alibi_bench: the fused ALiBi kernels of every ISA build side by side with an unfused Eigen baseline and
// a naive reference, with counters relative to this machine's measured FMA peak and read bandwidth.
//
// Benchmark names are "<family>/<variant>/<key>:<value>/..." so bench/plot.py can parse them; see
// bench/RESULTS.md for what each family measures and the commands that run it.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <exception>
#include <functional>
#include <limits>
#include <map>
#include <random>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

#include "alibi/slopes.hpp"
#include "harness.hpp"
#include "machine.hpp"
#include "naive_reference.hpp"
#include "variants.hpp"
#include "workload.hpp"

#ifndef ALIBI_BENCH_EIGEN_ISA_NAME
#define ALIBI_BENCH_EIGEN_ISA_NAME "avx2"
#endif

namespace alibi_bench {
namespace {

/// Something that computes attention: an alibi ISA build, the Eigen baseline or the naive reference.
struct Variant {
  std::string name;
  std::function<void(const AttentionCall&)> run;
  const IsaVariant* isa = nullptr;  ///< whose FMA peak bounds it; nullptr: no peak_frac
  bool is_alibi_kernel = false;     ///< honours num_threads and skip_tolerance
};

constexpr float kNoSkipping = 0.0f;
constexpr float kDefaultSkipping = alibi::AttentionOptions{}.skip_tolerance;  // the shipped default

const std::vector<float>& default_slopes(int num_heads) {
  static std::map<int, std::vector<float>> cache;
  auto found = cache.find(num_heads);
  if (found == cache.end()) found = cache.emplace(num_heads, alibi::slopes(num_heads)).first;
  return found->second;
}

std::vector<Variant> kernel_variants(bool include_scalar) {
  std::vector<Variant> list;
  for (const IsaVariant& isa : isa_variants()) {
    if (!isa.cpu_supported || (!include_scalar && isa.name == "scalar")) continue;
    list.push_back(Variant{isa.name, isa.run_attention, &isa, true});
  }
  return list;
}

bool eigen_available() {
#if ALIBI_BENCH_HAVE_EIGEN
  const IsaVariant* isa = find_isa_variant(ALIBI_BENCH_EIGEN_ISA_NAME);
  return isa != nullptr && isa->cpu_supported;
#else
  return false;
#endif
}

Variant eigen_variant() {
#if ALIBI_BENCH_HAVE_EIGEN
  return Variant{"eigen", run_eigen_attention, find_isa_variant(ALIBI_BENCH_EIGEN_ISA_NAME), false};
#else
  return Variant{};
#endif
}

Variant naive_variant() {
  return Variant{"naive", run_naive_attention, nullptr, false};
}

std::string eigen_key(const Shape& shape) {
  return "eigen/" + shape_key(shape);
}

/// Seconds of one Eigen call on this shape: recorded by the eigen variant of the same family when it ran
/// before, measured once here otherwise.
double eigen_seconds(const Shape& shape) {
  return reference_seconds(eigen_key(shape), [&] {
    Tensors& tensors = tensors_for(shape);
    AttentionCall call = make_call(shape, tensors, tensors.out.data());
    call.options.slopes = default_slopes(shape.num_heads).data();
    eigen_variant().run(call);
  });
}

/// Upper bounds on every key's norm, as a KV cache would keep them next to K (AttentionOptions::key_norms):
/// double accumulation over the keys the kernel reads (widened from 16 bits for those types) rounded up,
/// so each is >= the true norm.
const float* key_norms_for(const Shape& shape, KvType kv_type) {
  Tensors& tensors = tensors_for(shape);
  static KvType computed_for = KvType::f32;
  if (tensors.key_norms.empty() || computed_for != kv_type) {
    const AttentionCall call = make_call(shape, tensors, tensors.out.data(), kv_type);
    const std::size_t rows = tensors.k.size() / static_cast<std::size_t>(shape.head_dim);
    tensors.key_norms.resize(rows);
    for (std::size_t row = 0; row < rows; ++row) {
      double sq = 0.0;
      for (int d = 0; d < shape.head_dim; ++d) {
        const std::size_t at = row * static_cast<std::size_t>(shape.head_dim) + static_cast<std::size_t>(d);
        const double x = kv_type == KvType::bf16  ? alibi::to_float(call.k_bf16[at])
                         : kv_type == KvType::f16 ? alibi::to_float(call.k_f16[at])
                                                  : call.k[at];
        sq += x * x;
      }
      tensors.key_norms[row] = static_cast<float>(std::sqrt(sq) * (1.0 + 1e-6));
    }
    computed_for = kv_type;
  }
  return tensors.key_norms.data();
}

/// The call run_variant times: `variant` on `shape` with these options, writing to `out` (null: the
/// shape's output tensor).
AttentionCall variant_call(const Variant& variant, const Shape& shape, int num_threads, float skip_tolerance,
                           const float* slopes = nullptr, bool cached_norms = false, KvType kv_type = KvType::f32,
                           float* out = nullptr) {
  Tensors& tensors = tensors_for(shape);
  AttentionCall call = make_call(shape, tensors, out != nullptr ? out : tensors.out.data(), kv_type);
  if (cached_norms) call.options.key_norms = key_norms_for(shape, kv_type);
  call.options.num_threads = num_threads;
  call.options.skip_tolerance = skip_tolerance;
  call.options.slopes = slopes != nullptr         ? slopes
                        : variant.is_alibi_kernel ? nullptr
                                                  : default_slopes(shape.num_heads).data();
  return call;
}

/// Times `call` of `variant`, each call followed by one of `baseline` (timed_loop_paired: its seconds per
/// call go to `baseline_seconds`); returns seconds per call (0 if it could not run).
template <class Baseline>
double run_call_paired(benchmark::State& state, const Variant& variant, const AttentionCall& call, Baseline&& baseline,
                       double& baseline_seconds) {
  try {
    return timed_loop_paired(
        state, [&] { variant.run(call); }, std::forward<Baseline>(baseline), baseline_seconds);
  } catch (const std::exception& error) {
    state.SkipWithError(error.what());
    return 0.0;
  }
}

/// Times `variant` on `shape`; returns seconds per call (0 if it could not run).
double run_variant(benchmark::State& state, const Variant& variant, const Shape& shape, int num_threads,
                   float skip_tolerance, const float* slopes = nullptr, bool cached_norms = false,
                   KvType kv_type = KvType::f32) {
  const AttentionCall call = variant_call(variant, shape, num_threads, skip_tolerance, slopes, cached_norms, kv_type);
  double unused = 0.0;
  return run_call_paired(
      state, variant, call, [] {}, unused);
}

void set_flop_counters(benchmark::State& state, const Variant& variant, const Shape& shape, double seconds,
                       int num_threads) {
  const double gflops = attention_flops(shape) / seconds * 1e-9;
  state.counters["GFLOPs"] = gflops;
  if (variant.isa != nullptr) state.counters["peak_frac"] = gflops / (fma_peak_gflops(*variant.isa) * num_threads);
  if (eigen_available() && variant.name != "eigen") state.counters["speedup_vs_eigen"] = eigen_seconds(shape) / seconds;
}

double max_relative_error(const AlignedVector<float>& result, const std::vector<float>& reference) {
  double max_error = 0.0, max_reference = 0.0;
  for (std::size_t i = 0; i < reference.size(); ++i) {
    max_error = std::max(max_error, std::fabs(static_cast<double>(result[i]) - reference[i]));
    max_reference = std::max(max_reference, std::fabs(static_cast<double>(reference[i])));
  }
  return max_reference > 0.0 ? max_error / max_reference : max_error;
}

const std::vector<float>& naive_output(const Shape& shape) {
  static std::map<std::string, std::vector<float>> cache;
  auto found = cache.find(shape_key(shape));
  if (found != cache.end()) return found->second;
  Tensors& tensors = tensors_for(shape);
  std::vector<float> out(tensors.out.size());
  AttentionCall call = make_call(shape, tensors, out.data());
  call.options.slopes = default_slopes(shape.num_heads).data();
  run_naive_attention(call);
  return cache.emplace(shape_key(shape), std::move(out)).first->second;
}

benchmark::internal::Benchmark* add(const std::string& name, std::function<void(benchmark::State&)> body) {
  return benchmark::RegisterBenchmark(name.c_str(), [body](benchmark::State& state) { body(state); })
      ->UseManualTime()
      ->Unit(benchmark::kMillisecond);
}

std::string prefill_suffix(const Shape& shape) {
  return "/len:" + std::to_string(shape.q_len) + "/heads:" + std::to_string(shape.num_heads) +
         "/dim:" + std::to_string(shape.head_dim);
}

// ---- small: every variant including the naive reference, with its error against that reference -------
void register_small() {
  std::vector<Variant> variants{naive_variant()};
  if (eigen_available()) variants.push_back(eigen_variant());
  for (const Variant& kernel : kernel_variants(true)) variants.push_back(kernel);
  for (std::int64_t len : {128, 256, 512}) {
    const Shape shape{1, len, len, 8, 8, 64};
    for (const Variant& variant : variants) {
      add("small/" + variant.name + prefill_suffix(shape), [=](benchmark::State& state) {
        const double seconds = run_variant(state, variant, shape, 1, kNoSkipping);
        if (seconds <= 0.0) return;
        if (variant.name == "eigen") record_reference(eigen_key(shape), seconds);
        if (variant.name != "naive")
          state.counters["max_rel_err_vs_naive"] = max_relative_error(tensors_for(shape).out, naive_output(shape));
        set_flop_counters(state, variant, shape, seconds, 1);
      });
    }
  }
}

// ---- prefill: causal q_len = kv_len, one thread, no skipping (every counted FLOP is done) -------------
void register_prefill() {
  struct Length {
    std::int64_t tokens;
    int heads;
  };
  // 32 heads where that stays affordable for the Eigen baseline; 8 heads beyond.
  const std::vector<Length> lengths{{1024, 32}, {2048, 32}, {4096, 8}, {8192, 8}};
  for (const Length& length : lengths) {
    for (int head_dim : {64, 80, 96, 128}) {
      const Shape shape{1, length.tokens, length.tokens, length.heads, length.heads, head_dim};
      std::vector<Variant> variants;
      if (eigen_available()) variants.push_back(eigen_variant());  // first, so its time is cached
      for (const Variant& kernel : kernel_variants(length.tokens <= 2048)) variants.push_back(kernel);
      for (const Variant& variant : variants) {
        add("prefill/" + variant.name + prefill_suffix(shape) + "/threads:1", [=](benchmark::State& state) {
          const double seconds = run_variant(state, variant, shape, 1, kNoSkipping);
          if (seconds <= 0.0) return;
          if (variant.name == "eigen") record_reference(eigen_key(shape), seconds);
          set_flop_counters(state, variant, shape, seconds, 1);
        });
      }
    }
  }
}

std::vector<int> thread_counts() {
  std::vector<int> counts{1, 2};
  if (hardware_threads() > 2) counts.push_back(hardware_threads());
  return counts;
}

// ---- threads: the same prefill on 1 and more threads -------------------------------------------------
void register_threads() {
  const Shape shape{1, 4096, 4096, 32, 32, 128};
  for (const Variant& variant : kernel_variants(false)) {
    for (int threads : thread_counts()) {
      add("threads/" + variant.name + prefill_suffix(shape) + "/threads:" + std::to_string(threads),
          [=](benchmark::State& state) {
            const std::string one_thread_key = variant.name + "/threads:1/" + shape_key(shape);
            const double seconds = run_variant(state, variant, shape, threads, kNoSkipping);
            if (seconds <= 0.0) return;
            if (threads == 1) record_reference(one_thread_key, seconds);
            const double gflops = attention_flops(shape) / seconds * 1e-9;
            state.counters["GFLOPs"] = gflops;
            state.counters["peak_frac"] = gflops / (fma_peak_gflops(*variant.isa) * threads);
            state.counters["speedup_vs_1thread"] =
                reference_seconds(one_thread_key,
                                  [&] {
                                    Tensors& tensors = tensors_for(shape);
                                    AttentionCall call = make_call(shape, tensors, tensors.out.data());
                                    call.options.num_threads = 1;
                                    call.options.skip_tolerance = kNoSkipping;
                                    variant.run(call);
                                  }) /
                seconds;
          });
    }
  }
}

constexpr KvType kKvTypes[] = {KvType::f32, KvType::bf16, KvType::f16};

// A decode row: bw_frac is K/V bytes per second against the read bandwidth measured in this binary. A 16-bit
// row runs the fp32 decode of the same shape after each of its calls: time_vs_f32 is the ratio of the two
// (issue 11: <= 0.6), measured side by side rather than against another row.
void add_decode(const std::string& name, const Variant& variant, KvType kv_type, const Shape& shape, int threads) {
  add(name, [=](benchmark::State& state) {
    double seconds = 0.0;
    if (kv_type == KvType::f32) {
      seconds = run_variant(state, variant, shape, threads, kNoSkipping, nullptr, false, kv_type);
    } else {
      std::vector<float> f32_out(tensors_for(shape).out.size());
      const AttentionCall f32_call =
          variant_call(variant, shape, threads, kNoSkipping, nullptr, false, KvType::f32, f32_out.data());
      double f32_seconds = 0.0;
      seconds = run_call_paired(
          state, variant, variant_call(variant, shape, threads, kNoSkipping, nullptr, false, kv_type),
          [&] { variant.run(f32_call); }, f32_seconds);
      if (seconds > 0.0) state.counters["time_vs_f32"] = seconds / f32_seconds;
    }
    if (seconds <= 0.0) return;
    const double gbps = kv_bytes(shape, kv_type) / seconds * 1e-9;
    state.counters["GBps"] = gbps;
    state.counters["bw_frac"] = gbps / read_bandwidth_gbs(threads);
    state.counters["GFLOPs"] = attention_flops(shape) / seconds * 1e-9;
  });
}

// ---- decode: a few query rows against a long KV cache, GQA 32/8, no skipping (every byte is read) ------
void register_decode() {
  for (const Variant& variant : kernel_variants(true)) {
    for (KvType kv_type : kKvTypes) {
      for (std::int64_t q_len : {1, 2, 4}) {  // 4, 8 and 16 rows per kv head
        for (std::int64_t kv_len : {4096, 16384, 65536}) {
          for (int threads : thread_counts()) {
            add_decode("decode/" + variant.name + "/type:" + kv_type_name(kv_type) + "/q:" + std::to_string(q_len) +
                           "/kv:" + std::to_string(kv_len) +
                           "/heads:32/kv_heads:8/dim:128/threads:" + std::to_string(threads),
                       variant, kv_type, Shape{1, q_len, kv_len, 32, 8, 128}, threads);
          }
        }
      }
    }
  }
}

// ---- decode_mha: the same with multi-head attention (one kv head per query head: BLOOM, MPT, Falcon-RW,
// Baichuan), 32 heads of 128, one row per kv head; 16384 keys are as many K/V bytes as the GQA decode's 65536,
// 512 keys a short conversation whose cache stays in L2/L3 (where the arithmetic, not the stream, sets the time).
void register_decode_mha() {
  for (const Variant& variant : kernel_variants(true)) {
    for (KvType kv_type : kKvTypes) {
      for (std::int64_t kv_len : {512, 4096, 16384}) {
        for (int threads : thread_counts()) {
          add_decode("decode_mha/" + variant.name + "/type:" + kv_type_name(kv_type) + "/q:1/kv:" +
                         std::to_string(kv_len) + "/heads:32/kv_heads:32/dim:128/threads:" + std::to_string(threads),
                     variant, kv_type, Shape{1, 1, kv_len, 32, 32, 128}, threads);
        }
      }
    }
  }
}

// ---- decode_short: one token against a short cache (1, 64, 1024 keys), one thread: what a call costs
// beyond its arithmetic (setup, scratch; bench/RESULTS.md 2026-12-02), which dominates short contexts.
void register_decode_short() {
  for (const Variant& variant : kernel_variants(true)) {
    for (KvType kv_type : {KvType::f32, KvType::bf16}) {
      for (std::int64_t kv_len : {1, 64, 1024}) {
        const Shape shape{1, 1, kv_len, 32, 8, 128};
        add("decode_short/" + variant.name + "/type:" + kv_type_name(kv_type) + "/q:1/kv:" + std::to_string(kv_len) +
                "/heads:32/kv_heads:8/dim:128/threads:1",
            [=](benchmark::State& state) {
              const double seconds = run_variant(state, variant, shape, 1, kNoSkipping, nullptr, false, kv_type);
              if (seconds <= 0.0) return;
              state.counters["us_per_call"] = seconds * 1e6;
            });
      }
    }
  }
}

// ---- prefill_kv: GQA prefill per K/V element type, one thread; 16-bit types against fp32 in the same run --
void register_prefill_kv() {
  const Shape shape{1, 2048, 2048, 32, 8, 128};
  for (const Variant& variant : kernel_variants(false)) {
    const std::string f32_key = "prefill_kv/" + variant.name + "/f32/" + shape_key(shape);
    for (KvType kv_type : kKvTypes) {
      add("prefill_kv/" + variant.name + "/type:" + kv_type_name(kv_type) + prefill_suffix(shape) +
              "/kv_heads:8/threads:1",
          [=](benchmark::State& state) {
            const double seconds = run_variant(state, variant, shape, 1, kNoSkipping, nullptr, false, kv_type);
            if (seconds <= 0.0) return;
            const double gflops = attention_flops(shape) / seconds * 1e-9;
            state.counters["GFLOPs"] = gflops;
            state.counters["peak_frac"] = gflops / fma_peak_gflops(*variant.isa);
            if (kv_type == KvType::f32) {
              record_reference(f32_key, seconds);
              return;
            }
            state.counters["speed_vs_f32"] = reference_seconds(f32_key,
                                                               [&] {
                                                                 Tensors& tensors = tensors_for(shape);
                                                                 AttentionCall call =
                                                                     make_call(shape, tensors, tensors.out.data());
                                                                 call.options.skip_tolerance = kNoSkipping;
                                                                 variant.run(call);
                                                               }) /
                                             seconds;
          });
    }
  }
}

// ---- skip: ALiBi block skipping (issue 4), default tolerance against none, one thread ------------------
void register_skip_pair(const std::string& family, const std::string& suffix, const Variant& variant,
                        const Shape& shape, const float* slopes, bool cached_norms = false,
                        KvType kv_type = KvType::f32) {
  const std::string unskipped_key = family + "/" + variant.name + suffix + "/tol:0";
  for (bool skipping : {false, true}) {
    add(family + "/" + variant.name + suffix + (skipping ? "/tol:default" : "/tol:0"), [=](benchmark::State& state) {
      const float tolerance = skipping ? kDefaultSkipping : kNoSkipping;
      const double seconds =
          run_variant(state, variant, shape, 1, tolerance, slopes, skipping && cached_norms, kv_type);
      if (seconds <= 0.0) return;
      if (!skipping) {
        record_reference(unskipped_key, seconds);
        return;
      }
      state.counters["speedup_vs_noskip"] =
          reference_seconds(unskipped_key,
                            [&] {
                              Tensors& tensors = tensors_for(shape);
                              AttentionCall call = make_call(shape, tensors, tensors.out.data(), kv_type);
                              call.options.slopes = slopes;
                              call.options.skip_tolerance = kNoSkipping;
                              variant.run(call);
                            }) /
          seconds;
    });
  }
}

void register_skip() {
  for (const Variant& variant : kernel_variants(false)) {
    for (std::int64_t len : {4096, 8192, 16384, 32768, 65536}) {
      const Shape shape{1, len, len, 8, 8, 64};
      register_skip_pair("skip_prefill", prefill_suffix(shape), variant, shape, nullptr);
    }
    const Shape decode{1, 1, 65536, 32, 8, 64};
    register_skip_pair("skip_decode", "/q:1/kv:65536/heads:32/kv_heads:8/dim:64", variant, decode, nullptr);
    // The same decode with the key norm bounds a KV cache keeps (AttentionOptions::key_norms): skipped keys
    // are then never read.
    register_skip_pair("skip_decode_cached_norms", "/q:1/kv:65536/heads:32/kv_heads:8/dim:64", variant, decode, nullptr,
                       true);
    // 16-bit caches: the same speed-up over their own unskipped decode is expected.
    for (KvType kv_type : {KvType::bf16, KvType::f16})
      register_skip_pair("skip_decode_cached_norms",
                         std::string("/type:") + kv_type_name(kv_type) + "/q:1/kv:65536/heads:32/kv_heads:8/dim:64",
                         variant, decode, nullptr, true, kv_type);
    // Per head: one head at a time with that head's default slope; 1 - 1/speedup approximates the share
    // of the head's work the bound removed.
    const std::vector<float>& slopes = default_slopes(8);
    for (int head = 0; head < 8; ++head) {
      const Shape one_head{1, 16384, 16384, 1, 1, 64};
      const float* slope = slopes.data() + head;
      char slope_text[32];
      std::snprintf(slope_text, sizeof slope_text, "%g", static_cast<double>(*slope));
      register_skip_pair("skip_head", "/len:16384/head:" + std::to_string(head) + "/slope:" + slope_text + "/dim:64",
                         variant, one_head, slope);
    }
  }
}

// ---- serving layouts (issue 13): paged K/V and ragged batches ------------------------------------------
// --alibi_smoke registers both families at tiny sizes (the names carry the sizes) and checks each output
// bitwise against the dense call of the same keys: a quick check that they run, not a measurement (the
// backward family below has its own smoke check).
bool g_smoke = false;

/// Times one attention_varlen / attention_paged call of `isa`, each followed by one of `baseline`
/// (timed_loop_paired); returns seconds per call (0 if it could not run).
template <class Baseline>
double run_serving_paired(benchmark::State& state, const IsaVariant& isa, const ServingCall& call, Baseline&& baseline,
                          double& baseline_seconds) {
  try {
    return timed_loop_paired(
        state, [&] { isa.run_serving(call); }, std::forward<Baseline>(baseline), baseline_seconds);
  } catch (const std::exception& error) {
    state.SkipWithError(error.what());
    return 0.0;
  }
}

/// run_serving_paired without a baseline.
double run_serving(benchmark::State& state, const IsaVariant& isa, const ServingCall& call) {
  double unused = 0.0;
  return run_serving_paired(
      state, isa, call, [] {}, unused);
}

/// --alibi_smoke: the output of a serving call must be the bits of `expected` (the dense calls).
void smoke_check(benchmark::State& state, const float* out, const std::vector<float>& expected) {
  if (g_smoke && std::memcmp(out, expected.data(), expected.size() * sizeof(float)) != 0)
    state.SkipWithError("output differs from the dense call on the same keys");
}

// Note [page order probe]: what the memory system alone charges for reading a paged cache. A plain read
// (the widest loads, every line once, no software requests, one thread) of the K and V pages of a pool, a
// page of K then the same page of V, in the block table's order against the same pages in address order;
// medians of 5, the two orders alternating. Measured once per pool. read_vs_in_order of 1.3 says that on
// this machine a reader that leaves the pages to the hardware prefetchers loses 30 % at the jumps, so a
// decode within 10 % of the contiguous one has to win that back with requests or hide it under compute.
double page_order_read_ratio(const PagedTensors& paged) {
  static std::map<std::string, double> measured;
  auto found = measured.find(paged.key);
  if (found != measured.end()) return found->second;
  const IsaVariant* reader = widest_cpu_isa();
  if (reader == nullptr || paged.num_pages == 0) return 0.0;
  const std::size_t page_bytes = paged.k.size() / static_cast<std::size_t>(paged.num_pages);
  const auto read = [&](bool table_order) {
    double sum = 0.0;
    const auto start = Clock::now();
    for (std::int64_t p = 0; p < paged.num_pages; ++p) {
      const std::size_t page = table_order ? static_cast<std::size_t>(paged.block_table[static_cast<std::size_t>(p)])
                                           : static_cast<std::size_t>(p);
      sum +=
          reader->sum_floats(reinterpret_cast<const float*>(&paged.k[page * page_bytes]), page_bytes / sizeof(float));
      sum +=
          reader->sum_floats(reinterpret_cast<const float*>(&paged.v[page * page_bytes]), page_bytes / sizeof(float));
    }
    const double elapsed = seconds_since(start);
    benchmark::DoNotOptimize(sum);
    return elapsed;
  };
  std::vector<double> in_table_order, in_address_order;
  for (int pass = 0; pass < 5; ++pass) {
    in_table_order.push_back(read(true));
    in_address_order.push_back(read(false));
  }
  std::sort(in_table_order.begin(), in_table_order.end());
  std::sort(in_address_order.begin(), in_address_order.end());
  const double ratio = in_table_order[2] / in_address_order[2];
  measured[paged.key] = ratio;
  return ratio;
}

// ---- paged_decode: one sequence's q_len 1 decode with its keys in a paged cache whose pages are shuffled
// in the pool, against the same decode on contiguous K/V (alibi::attention, layout:contiguous) and through
// attention_varlen (layout:varlen), GQA 32/8, no skipping (every byte is read). time_vs_contiguous: seconds
// / seconds of the contiguous call (same type and threads), which runs after each call of the row, so
// both are measured side by side (1.10 = 10 % slower). read_vs_in_order: the same for a plain read of the
// pool's pages in the table's order (Note [page order probe]).
void register_paged_decode() {
  const std::int64_t kv_len = g_smoke ? 1024 : 65536;
  const Shape shape{1, 1, kv_len, 32, 8, 128};
  const std::vector<int> page_sizes{16, 128};
  const std::string shape_name = "/q:1/kv:" + std::to_string(kv_len) + "/heads:32/kv_heads:8/dim:128";
  for (const Variant& variant : kernel_variants(true)) {
    for (KvType kv_type : {KvType::f32, KvType::bf16}) {
      const std::string prefix = "paged_decode/" + variant.name + "/type:" + kv_type_name(kv_type) + shape_name;
      // 0: contiguous (alibi::attention), -1: attention_varlen on the contiguous keys, > 0: paged.
      std::vector<int> layouts{0, -1};
      layouts.insert(layouts.end(), page_sizes.begin(), page_sizes.end());
      for (int layout : layouts) {
        const std::string layout_name = layout == 0    ? "/layout:contiguous"
                                        : layout == -1 ? "/layout:varlen"
                                                       : "/layout:paged/page:" + std::to_string(layout);
        for (int threads : thread_counts()) {
          add(prefix + layout_name + "/threads:" + std::to_string(threads), [=](benchmark::State& state) {
            double seconds = 0.0;
            if (layout == 0) {
              seconds = run_variant(state, variant, shape, threads, kNoSkipping, nullptr, false, kv_type);
              if (seconds <= 0.0) return;
            } else {
              Tensors& tensors = tensors_for(shape);
              // The contiguous call runs after each serving call, into its own output (which is what the
              // smoke check compares the serving call's with).
              std::vector<float> contiguous_out(tensors.out.size());
              const AttentionCall contiguous =
                  variant_call(variant, shape, threads, kNoSkipping, nullptr, false, kv_type, contiguous_out.data());
              const std::int64_t q_offsets[2] = {0, 1};
              ServingCall call;
              call.q = tensors.q.data();
              call.kv_type = kv_type;
              call.k = call_k(contiguous);
              call.v = call_v(contiguous);
              double read_vs_in_order = 0.0;
              if (layout > 0) {
                const PagedTensors& paged = paged_tensors_for(shape, kv_type, layout);
                if (!g_smoke) read_vs_in_order = page_order_read_ratio(paged);
                call.k = paged.k.data();
                call.v = paged.v.data();
                call.block_table = paged.block_table.data();
                call.num_pages = paged.num_pages;
                call.page_size = paged.page_size;
                call.max_pages_per_seq = paged.num_pages;
              }
              call.out = tensors.out.data();
              call.batch = alibi::SeqBatch{1, q_offsets, &shape.kv_len, 32, 8, 128};
              call.options.num_threads = threads;
              call.options.skip_tolerance = kNoSkipping;
              double contiguous_seconds = 0.0;
              seconds = run_serving_paired(
                  state, *variant.isa, call, [&] { variant.run(contiguous); }, contiguous_seconds);
              if (seconds <= 0.0) return;
              smoke_check(state, tensors.out.data(), contiguous_out);
              state.counters["time_vs_contiguous"] = seconds / contiguous_seconds;
              if (read_vs_in_order > 0.0) state.counters["read_vs_in_order"] = read_vs_in_order;
            }
            const double gbps = kv_bytes(shape, kv_type) / seconds * 1e-9;
            state.counters["GBps"] = gbps;
            state.counters["bw_frac"] = gbps / read_bandwidth_gbs(threads);
            state.counters["GFLOPs"] = attention_flops(shape) / seconds * 1e-9;
          });
        }
      }
    }
  }
}

// ---- ragged: one attention_varlen call over 2 causal prefill sequences and 30 decode sequences (q_len 1,
// 2k to 16k keys, in a fixed shuffled order), GQA 32/8, no skipping; 1 and more threads.
RaggedBatch ragged_batch() {
  const std::int64_t scale = g_smoke ? 16 : 1;  // --alibi_smoke: every length / 16
  RaggedBatch batch;
  batch.num_heads = 32;
  batch.num_kv_heads = 8;
  batch.head_dim = 128;
  constexpr int kDecodes = 30;
  const std::int64_t shortest = 2048 / scale, longest = 16384 / scale;
  std::vector<std::int64_t> decode_lens;
  for (int i = 0; i < kDecodes; ++i) decode_lens.push_back(shortest + (longest - shortest) * i / (kDecodes - 1));
  std::shuffle(decode_lens.begin(), decode_lens.end(), std::mt19937_64(13));
  for (int i = 0; i < kDecodes; ++i) {
    if (i == 5 || i == 20) {  // the prefills sit among the decodes
      const std::int64_t tokens = (i == 5 ? 1024 : 2048) / scale;
      batch.q_lens.push_back(tokens);
      batch.kv_lens.push_back(tokens);
    }
    batch.q_lens.push_back(1);
    batch.kv_lens.push_back(decode_lens[static_cast<std::size_t>(i)]);
  }
  return batch;
}

void register_ragged() {
  const RaggedBatch batch = ragged_batch();
  const std::int64_t scale = g_smoke ? 16 : 1;
  const std::string shape_name = "/prefill:2x" + std::to_string(1024 / scale) + "-" + std::to_string(2048 / scale) +
                                 "/decode:30x" + std::to_string(2048 / scale) + "-" + std::to_string(16384 / scale) +
                                 "/heads:32/kv_heads:8/dim:128";
  for (const Variant& variant : kernel_variants(false)) {
    for (KvType kv_type : {KvType::f32, KvType::bf16}) {
      const std::string prefix = "ragged/" + variant.name + "/type:" + kv_type_name(kv_type) + shape_name;
      const std::string one_thread_key = prefix + "/threads:1";
      for (int threads : thread_counts()) {
        add(prefix + "/threads:" + std::to_string(threads), [=](benchmark::State& state) {
          RaggedTensors& tensors = ragged_tensors_for(batch, kv_type);
          ServingCall call = make_ragged_call(batch, tensors, kv_type);
          call.options.num_threads = threads;
          call.options.skip_tolerance = kNoSkipping;
          std::vector<float> expected;
          if (g_smoke) {  // one dense call per sequence on its packed keys
            expected.resize(tensors.out.size());
            std::int64_t kv_row = 0;
            const std::int64_t kv_width = std::int64_t{batch.num_kv_heads} * batch.head_dim;
            for (std::size_t s = 0; s < batch.q_lens.size(); ++s) {
              const std::int64_t q_row = tensors.q_offsets[s] * batch.num_heads * batch.head_dim;
              AttentionCall dense;
              dense.q = tensors.q.data() + q_row;
              dense.kv_type = kv_type;
              dense.k = kv_type == KvType::f32 ? tensors.k.data() + kv_row * kv_width : nullptr;
              dense.v = kv_type == KvType::f32 ? tensors.v.data() + kv_row * kv_width : nullptr;
              dense.k_bf16 = kv_type == KvType::bf16 ? tensors.k_bf16.data() + kv_row * kv_width : nullptr;
              dense.v_bf16 = kv_type == KvType::bf16 ? tensors.v_bf16.data() + kv_row * kv_width : nullptr;
              dense.out = expected.data() + q_row;
              dense.shape = batch.sequence(s);
              dense.options.num_threads = threads;
              dense.options.skip_tolerance = kNoSkipping;
              variant.run(dense);
              kv_row += batch.kv_lens[s];
            }
          }
          const double seconds = run_serving(state, *variant.isa, call);
          if (seconds <= 0.0) return;
          smoke_check(state, tensors.out.data(), expected);
          if (threads == 1) record_reference(one_thread_key, seconds);
          const double gflops = ragged_flops(batch) / seconds * 1e-9;
          const double gbps = ragged_kv_bytes(batch, kv_type) / seconds * 1e-9;
          state.counters["GFLOPs"] = gflops;
          state.counters["peak_frac"] = gflops / (fma_peak_gflops(*variant.isa) * threads);
          state.counters["GBps"] = gbps;
          state.counters["bw_frac"] = gbps / read_bandwidth_gbs(threads);
          state.counters["speedup_vs_1thread"] = reference_seconds(one_thread_key,
                                                                   [&] {
                                                                     ServingCall single = call;
                                                                     single.options.num_threads = 1;
                                                                     variant.isa->run_serving(single);
                                                                   }) /
                                                 seconds;
        });
      }
    }
  }
}

// ---- backward (issue 14): attention_backward of a causal prefill, every gradient, 1 and more threads.
// --alibi_smoke: 256 tokens, and every thread count's gradients must be the bits of the 1-thread call's.
struct BackwardTensors {
  AlignedVector<float> out, lse, dout, dq, dk, dv, dslopes;
};

void register_backward() {
  const std::int64_t tokens = g_smoke ? 256 : 2048;
  const Shape shape{1, tokens, tokens, 8, 8, 128};
  for (const Variant& variant : kernel_variants(false)) {
    const std::string prefix = "backward/" + variant.name + prefill_suffix(shape);
    const std::string one_thread_key = prefix + "/threads:1";
    for (int threads : thread_counts()) {
      add(prefix + "/threads:" + std::to_string(threads), [=](benchmark::State& state) {
        Tensors& tensors = tensors_for(shape);
        const auto n = tensors.q.size();
        BackwardTensors t{AlignedVector<float>(n),
                          AlignedVector<float>(static_cast<std::size_t>(shape.q_len * shape.num_heads)),
                          AlignedVector<float>(n),
                          AlignedVector<float>(n),
                          AlignedVector<float>(tensors.k.size()),
                          AlignedVector<float>(tensors.v.size()),
                          AlignedVector<float>(static_cast<std::size_t>(shape.num_heads))};
        fill_standard_normal(t.dout, 4);
        AttentionCall forward = make_call(shape, tensors, t.out.data());
        forward.options.skip_tolerance = kNoSkipping;
        forward.options.lse = t.lse.data();
        variant.run(forward);
        BackwardCall call;
        call.q = tensors.q.data();
        call.k = tensors.k.data();
        call.v = tensors.v.data();
        call.out = t.out.data();
        call.lse = t.lse.data();
        call.dout = t.dout.data();
        call.grads = alibi::AttentionGrads{t.dq.data(), t.dk.data(), t.dv.data(), t.dslopes.data()};
        call.shape = shape;
        call.options.skip_tolerance = kNoSkipping;
        call.options.num_threads = threads;
        const auto one_thread = [&] {
          BackwardCall single = call;
          single.options.num_threads = 1;
          variant.isa->run_backward(single);
        };
        if (g_smoke && threads > 1) {  // Note [deterministic backward]: the 1-thread bits, whatever the threads
          one_thread();
          const BackwardTensors expected = t;
          variant.isa->run_backward(call);
          for (auto member :
               {&BackwardTensors::dq, &BackwardTensors::dk, &BackwardTensors::dv, &BackwardTensors::dslopes})
            if (std::memcmp((t.*member).data(), (expected.*member).data(), (t.*member).size() * sizeof(float)) != 0)
              state.SkipWithError("gradients differ from the 1-thread call's");
        }
        const double seconds = timed_loop(state, [&] { variant.isa->run_backward(call); });
        if (seconds <= 0.0) return;
        if (threads == 1) record_reference(one_thread_key, seconds);
        const double gflops = backward_flops(shape) / seconds * 1e-9;
        state.counters["GFLOPs"] = gflops;
        state.counters["peak_frac"] = gflops / (fma_peak_gflops(*variant.isa) * threads);
        state.counters["speedup_vs_1thread"] = reference_seconds(one_thread_key, one_thread) / seconds;
      });
    }
  }
}

// ---- overlap: how much arithmetic one core hides under its read stream ---------------------------------
// Note [overlap probe]: a decode reads K/V once and does a fixed amount of arithmetic on every byte (4
// query rows per kv head: 2 flops per fp32 byte, 4 per 16-bit byte), which waits on the loads. How much of
// it a core hides under its read stream bounds the fraction of the read bandwidth such a kernel reaches.
// The probe reads the 512 MiB buffer once per iteration, each loaded vector feeding fmas_per_vector
// dependent FMAs spread over 8 chains (flops_per_byte = fmas_per_vector / 2, whatever the width), and times
// the same loop over its first 256 KiB (in L2, best of 5). Per KiB: read = this binary's one-thread read
// bandwidth, compute = the in-L2 time, stream = the time from memory; overlap = (read + compute - stream) /
// min(read, compute): 1 when the stream takes max(read, compute), 0 when the two add up. bw_frac is the
// stream's bytes/s against the read bandwidth: what a kernel with that arithmetic and one sequential stream
// can reach on this core.
void register_overlap() {
  for (const IsaVariant& isa : isa_variants()) {
    if (!isa.cpu_supported || isa.probe_lanes() == 0) continue;
    for (int fmas_per_vector : {2, 4, 8, 16}) {
      const IsaVariant* probe = &isa;
      add("overlap/" + isa.name + "/flops_per_byte:" + std::to_string(fmas_per_vector / 2),
          [probe, fmas_per_vector](benchmark::State& state) {
            using Clock = std::chrono::steady_clock;
            const std::size_t stream_bytes = (g_smoke ? std::size_t{16} : std::size_t{512}) << 20;
            const std::size_t cached_bytes = std::size_t{256} << 10;
            AlignedVector<float> buffer(stream_bytes / sizeof(float), 1.0f);
            double sink = 0.0;
            double compute_seconds = std::numeric_limits<double>::infinity();
            constexpr int kCachedRepeats = 64;
            for (int pass = 0; pass < 6; ++pass) {  // the first pass brings the 256 KiB in
              const auto start = Clock::now();
              for (int repeat = 0; repeat < kCachedRepeats; ++repeat)
                sink += probe->read_with_fmas(buffer.data(), cached_bytes / sizeof(float), fmas_per_vector);
              const double elapsed = std::chrono::duration<double>(Clock::now() - start).count() / kCachedRepeats;
              if (pass > 0) compute_seconds = std::min(compute_seconds, elapsed);
            }
            std::vector<double> stream_seconds;
            for (auto _ : state) {
              const auto start = Clock::now();
              sink += probe->read_with_fmas(buffer.data(), buffer.size(), fmas_per_vector);
              const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
              state.SetIterationTime(elapsed);
              stream_seconds.push_back(elapsed);
            }
            benchmark::DoNotOptimize(sink);
            std::sort(stream_seconds.begin(), stream_seconds.end());
            const double stream_ns =
                stream_seconds[stream_seconds.size() / 2] * 1e9 / (static_cast<double>(stream_bytes) / 1024.0);
            const double compute_ns = compute_seconds * 1e9 / (static_cast<double>(cached_bytes) / 1024.0);
            const double read_ns = 1024.0 / read_bandwidth_gbs(1);
            state.counters["GBps"] = 1024.0 / stream_ns;
            state.counters["bw_frac"] = read_ns / stream_ns;
            state.counters["stream_ns_per_KiB"] = stream_ns;
            state.counters["compute_ns_per_KiB"] = compute_ns;
            state.counters["overlap"] = (read_ns + compute_ns - stream_ns) / std::min(read_ns, compute_ns);
          });
    }
  }
}

void add_machine_context() {
  char text[64];
  for (const IsaVariant& isa : isa_variants()) {
    if (!isa.cpu_supported) {
      benchmark::AddCustomContext("alibi_isa_" + isa.name, "compiled, not supported by this CPU: not registered");
      continue;
    }
    std::snprintf(text, sizeof text, "%.2f", fma_peak_gflops(isa));
    benchmark::AddCustomContext("alibi_fma_peak_gflops_" + isa.name, text);
  }
  for (int threads : thread_counts()) {
    std::snprintf(text, sizeof text, "%.2f", read_bandwidth_gbs(threads));
    benchmark::AddCustomContext("alibi_read_bandwidth_gbs_threads_" + std::to_string(threads), text);
  }
  benchmark::AddCustomContext("alibi_eigen_baseline",
                              eigen_available() ? ALIBI_BENCH_EIGEN_ISA_NAME " build, 1 thread" : "not available");
}

}  // namespace
}  // namespace alibi_bench

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  // Our own flag, removed before Google Benchmark checks for unrecognised ones.
  int kept = 1;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--alibi_smoke") == 0)
      alibi_bench::g_smoke = true;
    else
      argv[kept++] = argv[i];
  }
  argc = kept;
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  alibi_bench::add_machine_context();
  alibi_bench::register_small();
  alibi_bench::register_prefill();
  alibi_bench::register_threads();
  alibi_bench::register_decode();
  alibi_bench::register_decode_mha();
  alibi_bench::register_decode_short();
  alibi_bench::register_prefill_kv();
  alibi_bench::register_skip();
  alibi_bench::register_paged_decode();
  alibi_bench::register_ragged();
  alibi_bench::register_backward();
  alibi_bench::register_overlap();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
