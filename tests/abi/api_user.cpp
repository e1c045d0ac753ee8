// Every entry point of the library, compiled once per ISA flag set (ALIBI_ABI_TEST_ISA names it) into one
// program: the objects must not share any weak symbol whose code depends on the flags (Note [ABI namespace]).
#include <cstdint>
#include <vector>

#include "alibi/alibi.hpp"
#include "alibi/dispatch.hpp"

#define ALIBI_ABI_TEST_CAT_(a, b) a##b
#define ALIBI_ABI_TEST_CAT(a, b) ALIBI_ABI_TEST_CAT_(a, b)

float ALIBI_ABI_TEST_CAT(use_api_, ALIBI_ABI_TEST_ISA)(int threads) {
  const alibi::AttentionShape shape{2, 37, 53, 4, 2, 24};
  const std::size_t q_count = 2 * 37 * 4 * 24, kv_count = 2 * 53 * 2 * 24;
  std::vector<float> q(q_count), k(kv_count), v(kv_count), out(q_count), norms(2 * 53 * 2);
  for (std::size_t n = 0; n < q_count; ++n) q[n] = static_cast<float>(n % 13) * 0.1f - 0.6f;
  for (std::size_t n = 0; n < kv_count; ++n) {
    k[n] = static_cast<float>(n % 11) * 0.1f - 0.5f;
    v[n] = static_cast<float>(n % 7) * 0.2f - 0.6f;
  }
  alibi::AttentionOptions options;
  options.num_threads = threads;
  alibi::attention(q.data(), k.data(), v.data(), out.data(), shape, options);
  float total = out[5];
  alibi::key_norms(k.data(), shape, norms.data());
  options.key_norms = norms.data();
  alibi::dispatch::attention(q.data(), k.data(), v.data(), out.data(), shape, options);
  total += out[7] + alibi::slopes(12)[3];
  std::vector<float> bias(37 * 53);
  alibi::causal_bias(0.25f, 37, 53, bias.data());
  // 16-bit conversions: plain arrays (a std::vector of our types would add its own weak members).
  alibi::bfloat16 bf16[37] = {};
  alibi::float16 f16[37] = {};
  float wide[37] = {};
  alibi::convert(bias.data(), bf16, 37);
  alibi::convert(bias.data() + 37, f16, 37);
  alibi::convert(bf16, wide, 37);
  total += wide[3];
  alibi::convert(f16, wide, 37);
  total += wide[5] + alibi::to_float(alibi::to_bfloat16(total)) + alibi::to_float(alibi::to_float16(total));
  return total + bias[100] + static_cast<float>(alibi::dispatch::isa_name()[0]);
}
