#pragma once
// One attention call as plain data, independent of the library's types.
//
// alibi's types live in an inline namespace named after the ISA flags of the including TU (alibi::v0_scalar,
// alibi::v0_avx2, ...), so a TU built without ISA flags cannot hand an alibi::AttentionShape to a TU built
// with -mavx2. The reliability tests therefore describe a call with this struct, and each ISA TU
// (kernels_*.cpp) converts it to its own alibi types. The oracle (oracle.hpp) reads it too.
#include <cstdint>
#include <cstdio>
#include <string>

namespace alibi_reliability {

struct Call {
  const float* q = nullptr;
  const float* k = nullptr;
  const float* v = nullptr;
  float* out = nullptr;
  // AttentionShape
  int batch = 1;
  std::int64_t q_len = 0;
  std::int64_t kv_len = 0;
  int num_heads = 0;
  int num_kv_heads = 0;
  int head_dim = 0;
  // AttentionOptions
  int mask = 0;  // 0: Mask::causal, 1: Mask::bidirectional; anything else is an invalid enumerator value
  float scale = 0.0f;
  const float* slopes = nullptr;
  std::int64_t window = 0;
  std::int64_t q_pos0 = -1;
  int num_threads = 1;
  float skip_tolerance = 0x1p-24f;  // the library's documented default
  const float* key_norms = nullptr;
};

inline std::string describe(const Call& c) {
  char text[512];
  std::snprintf(text, sizeof text,
                "batch=%d q_len=%lld kv_len=%lld num_heads=%d num_kv_heads=%d head_dim=%d mask=%d scale=%.9g "
                "window=%lld q_pos0=%lld num_threads=%d skip_tolerance=%.9g key_norms=%s slopes=",
                c.batch, static_cast<long long>(c.q_len), static_cast<long long>(c.kv_len), c.num_heads,
                c.num_kv_heads, c.head_dim, c.mask, static_cast<double>(c.scale), static_cast<long long>(c.window),
                static_cast<long long>(c.q_pos0), c.num_threads, static_cast<double>(c.skip_tolerance),
                c.key_norms != nullptr ? "given" : "none");
  std::string result = text;
  if (c.slopes == nullptr || c.num_heads <= 0 || c.num_heads > 64) return result + (c.slopes ? "custom" : "default");
  for (int h = 0; h < c.num_heads; ++h) {
    std::snprintf(text, sizeof text, "%s%.9g", h ? "," : "{", static_cast<double>(c.slopes[h]));
    result += text;
  }
  return result + "}";
}

}  // namespace alibi_reliability
