// A 16-bit KV cache: one attention layer's cache held as bfloat16 (and, for comparison, float16 and fp32).
// Each token's K/V rows are computed in fp32, narrowed into the cache with alibi::convert, and their key
// norms appended with alibi::key_norms, so block skipping never reads the keys it skips. Every decode step
// attends with q_len = 1 over the whole cache.
//
// Reports the cache size of each element type and the largest difference of the 16-bit decodes from the
// fp32-cache decode, and checks that the appended key norms are those of the whole cache and that a
// bfloat16 decode is exactly the fp32 attention of the widened cache.
//
//   alibi_kv_cache_decode_bf16 [prompt_tokens=1024] [new_tokens=32]
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <vector>

#include "alibi/alibi.hpp"
#include "example_support.hpp"

namespace {

// A common grouped-query layout: 32 query heads on 8 kv heads of 128 dimensions.
constexpr int kHeads = 32;
constexpr int kKvHeads = 8;
constexpr int kHeadDim = 128;
constexpr std::int64_t kQueryWidth = kHeads * kHeadDim;
constexpr std::int64_t kKvWidth = kKvHeads * kHeadDim;  // floats of K (or V) per token

std::size_t size(std::int64_t n) {
  return static_cast<std::size_t>(n);
}

// The fp32 rows a model would produce: the prompt's K/V, then q, k and v of each generated token.
struct Activations {
  std::vector<float> prompt_k, prompt_v, step_q, step_k, step_v;
};

// The shape of `kv_len` keys of this layer for one query token.
alibi::AttentionShape layer_shape(std::int64_t kv_len) {
  alibi::AttentionShape shape;
  shape.q_len = 1;
  shape.kv_len = kv_len;
  shape.num_heads = kHeads;
  shape.num_kv_heads = kKvHeads;
  shape.head_dim = kHeadDim;
  return shape;
}

// fp32 rows into a cache of Element: a copy for float, a rounding conversion for the 16-bit types.
void store_rows(const float* rows, std::int64_t count, float* cache) {
  std::copy_n(rows, count, cache);
}
template <class Element>
void store_rows(const float* rows, std::int64_t count, Element* cache) {
  alibi::convert(rows, cache, size(count));
}

// One sequence's cache for one layer, laid out as alibi::attention reads K and V ([tokens][kv heads][dims])
// with the matching [tokens][kv heads] key norms.
template <class Element>
struct KvCache {
  explicit KvCache(std::int64_t max_tokens)
      : k(size(max_tokens * kKvWidth)), v(k.size()), key_norms(size(max_tokens * kKvHeads)) {}

  void append(const float* k_rows, const float* v_rows, std::int64_t tokens) {
    Element* new_keys = k.data() + length * kKvWidth;
    store_rows(k_rows, tokens * kKvWidth, new_keys);
    store_rows(v_rows, tokens * kKvWidth, v.data() + length * kKvWidth);
    // Norms of the stored (rounded) keys, as the kernel will see them: only the new rows are read.
    alibi::key_norms(new_keys, layer_shape(tokens), key_norms.data() + length * kKvHeads);
    length += tokens;
  }

  void attend(const float* q, float* out) const {
    alibi::AttentionOptions options;  // causal, default slopes; the query is the last cached token
    options.key_norms = key_norms.data();
    options.num_threads = 1;  // a one-token step is too little work to wake a thread team for
    alibi::attention(q, k.data(), v.data(), out, layer_shape(length), options);
  }

  std::size_t kv_bytes() const { return size(length * 2 * kKvWidth) * sizeof(Element); }

  std::vector<Element> k, v;
  std::vector<float> key_norms;
  std::int64_t length = 0;
};

struct DecodeRun {
  std::vector<float> outputs;  // [new_tokens][kQueryWidth]
  double seconds_per_token = 0.0;
  std::size_t kv_bytes = 0;
};

// Prefills the cache with the prompt's K/V, then decodes one token per step: append its K/V, attend.
template <class Element>
DecodeRun decode(const Activations& activations, std::int64_t prompt_tokens, std::int64_t new_tokens,
                 KvCache<Element>& cache) {
  DecodeRun run;
  run.outputs.resize(size(new_tokens * kQueryWidth));
  cache.append(activations.prompt_k.data(), activations.prompt_v.data(), prompt_tokens);
  const double seconds = example::seconds([&] {
    for (std::int64_t step = 0; step < new_tokens; ++step) {
      cache.append(&activations.step_k[size(step * kKvWidth)], &activations.step_v[size(step * kKvWidth)], 1);
      cache.attend(&activations.step_q[size(step * kQueryWidth)], &run.outputs[size(step * kQueryWidth)]);
    }
  });
  run.seconds_per_token = seconds / static_cast<double>(new_tokens);
  run.kv_bytes = cache.kv_bytes();
  return run;
}

double max_abs_difference(const std::vector<float>& a, const std::vector<float>& b) {
  double largest = 0.0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const double difference = std::abs(static_cast<double>(a[i]) - b[i]);
    largest = std::isnan(difference) ? 1e30 : std::max(largest, difference);
  }
  return largest;
}

}  // namespace

int main(int argc, char** argv) {
  const char* usage = "[prompt_tokens=1024] [new_tokens=32]";
  const std::int64_t prompt_tokens = example::count_argument(argc, argv, 1, 1024, 1, usage);
  const std::int64_t new_tokens = example::count_argument(argc, argv, 2, 32, 1, usage);
  if (!example::cpu_runs_this_build()) return 2;
  const std::int64_t total = prompt_tokens + new_tokens;

  const Activations activations{example::random_floats(size(prompt_tokens * kKvWidth), 1),
                                example::random_floats(size(prompt_tokens * kKvWidth), 2),
                                example::random_floats(size(new_tokens * kQueryWidth), 3),
                                example::random_floats(size(new_tokens * kKvWidth), 4),
                                example::random_floats(size(new_tokens * kKvWidth), 5)};

  KvCache<float> f32_cache(total);
  KvCache<alibi::bfloat16> bf16_cache(total);
  KvCache<alibi::float16> f16_cache(total);
  const DecodeRun f32 = decode(activations, prompt_tokens, new_tokens, f32_cache);
  const DecodeRun bf16 = decode(activations, prompt_tokens, new_tokens, bf16_cache);
  const DecodeRun f16 = decode(activations, prompt_tokens, new_tokens, f16_cache);

  std::printf("one layer, %d query heads on %d kv heads, head_dim %d; %lld prompt + %lld decoded tokens, ISA %s\n",
              kHeads, kKvHeads, kHeadDim, static_cast<long long>(prompt_tokens), static_cast<long long>(new_tokens),
              alibi::isa::native::name);
  std::printf("%-9s %14s %12s %15s %22s\n", "KV cache", "bytes/token", "cache MiB", "decode ms/token",
              "max |out - out_fp32|");
  const auto report = [&](const char* name, const DecodeRun& run) {
    std::printf("%-9s %14zu %12.2f %15.3f %22.3g\n", name, run.kv_bytes / size(total),
                static_cast<double>(run.kv_bytes) / (1 << 20), run.seconds_per_token * 1e3,
                max_abs_difference(run.outputs, f32.outputs));
  };
  report("float", f32);
  report("bfloat16", bf16);
  report("float16", f16);
  std::printf("bfloat16 cache saves %.2f MiB (%.0f %%) of K/V; key norms add %zu bytes per token either way\n",
              static_cast<double>(f32.kv_bytes - bf16.kv_bytes) / (1 << 20),
              100.0 * static_cast<double>(f32.kv_bytes - bf16.kv_bytes) / static_cast<double>(f32.kv_bytes),
              kKvHeads * sizeof(float));

  // Norms appended a token at a time are the norms of the whole cache computed at once.
  std::vector<float> all_norms(size(total * kKvHeads));
  alibi::key_norms(bf16_cache.k.data(), layer_shape(total), all_norms.data());
  const bool norms_match = all_norms == bf16_cache.key_norms;
  std::printf("appended key norms vs key norms of the whole cache: %s\n", norms_match ? "identical" : "DIFFERENT");

  // The 16-bit decode is exactly fp32 attention over the widened cache: redo the last step that way.
  KvCache<float> widened(total);
  alibi::convert(bf16_cache.k.data(), widened.k.data(), bf16_cache.k.size());
  alibi::convert(bf16_cache.v.data(), widened.v.data(), bf16_cache.v.size());
  widened.key_norms = bf16_cache.key_norms;
  widened.length = total;
  std::vector<float> last_step(size(kQueryWidth));
  widened.attend(&activations.step_q[size((new_tokens - 1) * kQueryWidth)], last_step.data());
  const bool exact = std::memcmp(last_step.data(), &bf16.outputs[size((new_tokens - 1) * kQueryWidth)],
                                 last_step.size() * sizeof(float)) == 0;
  std::printf("last bfloat16 step vs fp32 attention over the widened cache: %s\n",
              exact ? "bitwise identical" : "DIFFERENT");

  // Unit-scale values: bfloat16 keeps 8 significant bits (relative rounding error <= 2^-8), float16 11 (2^-11).
  const bool close =
      max_abs_difference(bf16.outputs, f32.outputs) < 1e-2 && max_abs_difference(f16.outputs, f32.outputs) < 2e-3;
  const bool ok = norms_match && exact && close;
  std::printf("%s\n", ok ? "OK" : "MISMATCH");
  return ok ? 0 : 1;
}
